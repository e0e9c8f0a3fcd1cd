/**
 * The shape of the compiled addon's exports (native/napi/addon.cc), typed argument by argument: the
 * whole TypeScript ↔ native boundary. Internal; the public API wraps it.
 *
 * Conventions: tensors are NativeTensorHandle; an optional tensor is `OptionalHandle` (null or
 * undefined = absent); outputs come first (llm.c order), as in the C++ bindings. The native side
 * checks every argument again (types, shapes, dtypes, devices) and throws the typed errors of
 * src/errors.ts, so these types document the contract rather than enforce it.
 */
import type { AugmentParams, SampleDraws } from './kernels/data';

export type NativeDType = 'float32' | 'int32';
/** 'cpu', 'cuda' or 'cuda:N' as arguments; a device reports itself as 'cpu' or 'cuda:N'. */
export type NativeDevice = 'cpu' | 'cuda' | `cuda:${number}`;

export interface NativeTensorHandle {
  shape(): number[];
  dtype(): NativeDType;
  device(): NativeDevice;
  disposed(): boolean;
  /** A host copy (from any device). */
  toArray(): Float32Array | Int32Array;
  /** A zero-copy view of a CPU tensor (DeviceError on other devices). */
  view(): Float32Array | Int32Array;
  copyFrom(source: Float32Array | Int32Array): void;
  /** A copy on another device. */
  to(device: NativeDevice): NativeTensorHandle;
  dispose(): void;
}

type Handle = NativeTensorHandle;
type OptionalHandle = NativeTensorHandle | null | undefined;

export interface NativeInfo {
  buildType: string;
  buildSystem: string;
  compiler: string;
  napiVersion: number;
  isa: string;
  bestIsa: string;
  matmulPrecision: string;
  bf16: boolean;
  openmp: boolean;
  threads: number;
  defaultThreads: number;
  cuda: NativeCudaInfo;
}

export interface NativeCudaDevice {
  index: number;
  name: string;
  /** "major.minor". */
  computeCapability: string;
  multiprocessors: number;
  memoryBytes: number;
}

export interface NativeCudaInfo {
  /** Whether this addon carries a CUDA backend. */
  compiled: boolean;
  /** Which one: the nvcc build ('gpu') or the SIMT emulator's ('emulated', test builds only). */
  build: 'gpu' | 'emulated' | null;
  status: string;
  devices: NativeCudaDevice[];
}

export interface NativeParameterInfo {
  name: string;
  shape: number[];
  offset: number;
  numel: number;
  role: 'trainable' | 'momentum' | 'buffer';
  weightDecay: boolean;
}

export interface NativeModelInfo {
  numPatches: number;
  numGroups: number;
  numVisible: number;
  patchDim: number;
  trainableCount: number;
  totalCount: number;
  maskCounter: number;
  recomputeActivations: boolean;
  /** Backend memory the model holds now: its arenas, its training and inference workspaces (the optimizer's moments are the optimizer's). */
  memoryBytes: number;
  device: NativeDevice;
}

export interface NativeLossParts {
  loss: number;
  reconstruction: number;
  contrastive: number;
}

/** Tensors that receive intermediate results of lossAndGrad (tests, pictures). */
export interface NativeLossOutputs {
  pred?: Handle;
  mask?: Handle;
  idsRestore?: Handle;
  q?: Handle;
  zT?: Handle;
}

/** native/napi/model_wrap.cc. The native side owns the busy flag and the disposed state. */
export interface NativeModel {
  parameterTable(): NativeParameterInfo[];
  info(): NativeModelInfo;
  /** A host copy of an arena (from any device). */
  readArena(which: 'params' | 'grads'): Float32Array;
  /** The same copy, made on a worker (a queued call: BusyError while another runs). */
  readArenaAsync(which: 'params' | 'grads'): Promise<Float32Array>;
  /** Writes values into the params arena at an element offset. */
  writeArena(which: 'params', values: Float32Array, offset: number): void;
  lossAndGrad(images: Handle, targetImages: OptionalHandle, maskNoise: OptionalHandle, outputs: NativeLossOutputs | undefined): Promise<NativeLossParts>;
  encode(out: Handle, images: Handle, pool: string, branch: string, blocks: number): Promise<void>;
  clsAttention(out: Handle, images: Handle, branch: string): Promise<void>;
  /** A classifier model's step (src/models/classifier.ts): resolves with the cross-entropy. */
  classifierLossAndGrad(images: Handle, targets: Handle, logits: OptionalHandle, dropPath: number, step: number): Promise<number>;
  /** A classifier model's logits into out [N, numClasses]. */
  predict(out: Handle, images: Handle): Promise<void>;
  updateMomentum(momentum: number): Promise<void>;
  resetMomentum(): void;
  setMaskCounter(counter: number): void;
  /** Trains data-parallel in this job from the next step on; null: alone (native/napi/model_wrap.cc). */
  setCollective(collective: NativeCollective | null): void;
  /** Activation recomputation for the training step (native/model/cmae_model.h). */
  setRecomputeActivations(on: boolean): void;
  disposed(): boolean;
  dispose(): void;
}

/** Every hyper-parameter of an AdamW (defaults live in src/optim/adamw.ts); lr is the initial one. */
export interface NativeAdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
  /** Layer-wise learning-rate decay (1 = off). */
  layerDecay: number;
}

/** native/napi/optimizer_wrap.cc: AdamW moments in the model's backend. */
export interface NativeAdamW {
  /** One update at learning rate lr as step number `step` (1-based); resolves with the global gradient norm before clipping. */
  step(lr: number, step: number): Promise<number>;
  read(which: 'expAvg' | 'expAvgSq'): Float32Array;
  readAsync(which: 'expAvg' | 'expAvgSq'): Promise<Float32Array>;
  write(which: 'expAvg' | 'expAvgSq', values: Float32Array): void;
  dispose(): void;
}

/** The `kernels` namespace (native/napi/kernels_*.cc): synchronous, outputs first. */
export interface NativeKernels {
  // activation
  geluForward(out: Handle, inp: Handle): void;
  geluBackward(dinp: Handle, dout: Handle, inp: Handle): void;
  reluForward(out: Handle, inp: Handle): void;
  reluBackward(dinp: Handle, dout: Handle, out: Handle): void;
  // attention
  attentionForward(out: Handle, att: Handle, qkv: Handle, heads: number): void;
  attentionBackward(dqkv: Handle, dout: Handle, qkv: Handle, att: Handle, heads: number): void;
  // linear
  sgemm(c: Handle, a: Handle, b: Handle, transA: boolean, transB: boolean, alpha: number, beta: number): void;
  linearForward(out: Handle, inp: Handle, weight: Handle, bias: OptionalHandle): void;
  linearBackward(dinp: OptionalHandle, dweight: Handle, dbias: OptionalHandle, dout: Handle, inp: Handle, weight: Handle): void;
  linearGeluForward(pre: OptionalHandle, out: Handle, inp: Handle, weight: Handle, bias: OptionalHandle): void;
  geluLinearBackward(dpre: Handle, dweight: Handle, dbias: OptionalHandle, dout: Handle, act: Handle, pre: Handle, weight: Handle): void;
  // loss
  meanPoolForward(out: Handle, inp: Handle, start: number): void;
  meanPoolBackward(dinp: Handle, dout: Handle, start: number): void;
  l2NormalizeForward(out: Handle, norm: Handle, inp: Handle, eps: number): void;
  l2NormalizeBackward(dinp: Handle, dout: Handle, inp: Handle, norm: Handle, eps: number): void;
  normpixMseForwardBackward(dpred: OptionalHandle, pred: Handle, target: Handle, mask: Handle, normPix: boolean, eps: number, dloss: number): number;
  infonceForwardBackward(dq: OptionalHandle, q: Handle, k: Handle, tau: number, scale: number, dloss: number): number;
  ntxentForwardBackward(dz: OptionalHandle, z: Handle, tau: number, scale: number, dloss: number): number;
  softmaxCrossEntropyForwardBackward(dlogits: OptionalHandle, logits: Handle, targets: Handle, dloss: number): number;
  // norm
  layernormForward(out: Handle, mean: Handle, rstd: Handle, inp: Handle, weight: Handle, bias: Handle, eps: number): void;
  layernormBackward(
    dinp: Handle, dweight: Handle, dbias: Handle, dout: Handle, inp: Handle, weight: Handle, mean: Handle, rstd: Handle, accumulate: boolean,
  ): void;
  residualLayernormForward(
    sum: Handle, out: Handle, mean: Handle, rstd: Handle, a: Handle, b: Handle, weight: Handle, bias: Handle, eps: number,
  ): void;
  batchnormForward(
    out: Handle, mean: Handle, rstd: Handle, runningMean: OptionalHandle, runningVar: OptionalHandle, inp: Handle,
    weight: OptionalHandle, bias: OptionalHandle, eps: number, momentum: number,
  ): void;
  batchnormBackward(
    dinp: Handle, dweight: OptionalHandle, dbias: OptionalHandle, dout: Handle, inp: Handle, weight: OptionalHandle, mean: Handle, rstd: Handle,
  ): void;
  batchnormInference(
    out: Handle, inp: Handle, runningMean: Handle, runningVar: Handle, weight: OptionalHandle, bias: OptionalHandle, eps: number,
  ): void;
  // optim
  adamwStep(
    params: Handle, m: Handle, v: Handle, grads: Handle, decayMask: OptionalHandle, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, stepNumber: number, gradScale: number,
  ): void;
  emaUpdate(target: Handle, online: Handle, momentum: number): void;
  globalNorm(grads: Handle): number;
  clipGradNorm(grads: Handle, maxNorm: number): number;
  scaleInplace(x: Handle, s: number): void;
  // patch
  patchify(patches: Handle, images: Handle, p: number, layout: string): void;
  unpatchify(images: Handle, patches: Handle, p: number, layout: string): void;
  patchifyVisible(patches: Handle, images: Handle, ids: Handle, p: number, layout: string): void;
  randomMasking(
    idsKeep: Handle, idsRestore: Handle, mask: Handle, noise: Handle, gridH: number, gridW: number, group: number, keepGroups: number,
  ): void;
  maskingNoise(noise: Handle, seed: number, stream: number): void;
  gatherVisibleForward(out: Handle, tokens: Handle, pos: OptionalHandle, idsKeep: Handle, prefix: number): void;
  addPositions(out: Handle, tokens: Handle, pos: OptionalHandle, ids: Handle, prefix: number): void;
  gatherVisibleBackward(dtokens: Handle, dout: Handle, idsKeep: Handle, prefix: number): void;
  unshuffleForward(
    out: Handle, inp: Handle, maskToken: Handle, pos: OptionalHandle, posPrefix: OptionalHandle, idsRestore: Handle, prefix: number,
  ): void;
  unshuffleBackward(dinp: Handle, dmaskToken: Handle, dout: Handle, idsRestore: Handle, prefix: number): void;
  sincosPosEmbed2d(out: Handle, gridH: number, gridW: number): void;
  // rng
  philoxUniform(out: Handle, seed: number, stream: number, offset: number): void;
  philoxWords(seed: number, stream: number, index: number): [number, number, number, number];
  // data (CPU tensors)
  makeViews(
    online: Handle, target: OptionalHandle, shifts: OptionalHandle, sources: Uint8Array, dims: readonly number[], indices: Int32Array,
    params: AugmentParams, seed: number, stream: number,
  ): void;
  makeViewsAsync(
    online: Handle, target: OptionalHandle, shifts: OptionalHandle, sources: Uint8Array, dims: readonly number[], indices: Int32Array,
    params: AugmentParams, seed: number, stream: number,
  ): Promise<void>;
  computeMeanStd(sources: Uint8Array, dims: readonly number[]): { mean: number[]; std: number[] };
  augmentDraws(batch: number, dims: readonly number[], params: AugmentParams, seed: number, stream: number): SampleDraws[];
}

export interface NativeMemoryUse {
  reported: number;
  cpuAllocated: number;
  cpuScratch: number;
}

/** native/napi/collective_wrap.cc: a joined data-parallel job. */
export interface NativeCollective {
  readonly rank: number;
  readonly worldSize: number;
  readonly engine: string;
  /** Every rank gives the same number of bytes; resolves with rank 0's, then rank 1's, …. */
  allgatherBytes(bytes: Uint8Array): Promise<Uint8Array>;
  /** Ends every rank of the job now with exit status `code`. */
  abortJob(code: number): never;
  /** Leaves the job (waits for every rank to leave); idempotent. */
  finalize(): Promise<void> | undefined;
}

export interface NativeBinding {
  NativeTensor: abstract new () => NativeTensorHandle;
  NativeModel: new (config: object, seed: number, device: NativeDevice) => NativeModel;
  /** The parameter table a model of this (complete) config would have; allocates nothing. */
  planParameters(config: object): NativeParameterInfo[];
  NativeAdamW: new (model: NativeModel, options: NativeAdamWOptions) => NativeAdamW;
  /** Loads the collective plugin at pluginPath and joins the job it was launched in. */
  openCollective(pluginPath: string, timeoutSeconds: number, bucketFloats: number): Promise<NativeCollective>;
  setErrorClasses(classes: Record<string, unknown>): void;
  tensorFromArray(data: Float32Array | Int32Array, shape: readonly number[], device?: NativeDevice): NativeTensorHandle;
  tensorEmpty(shape: readonly number[], dtype: NativeDType, device?: NativeDevice): NativeTensorHandle;
  tensorFull(shape: readonly number[], dtype: NativeDType, value: number, device?: NativeDevice): NativeTensorHandle;
  info(): NativeInfo;
  nativeMemory(): NativeMemoryUse;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setIsa(isa: string): void;
  getIsa(): string;
  supportedIsas(): string[];
  setMatmulPrecision(precision: string, device?: NativeDevice): void;
  getMatmulPrecision(device?: NativeDevice): string;
  kernels: NativeKernels;
}
