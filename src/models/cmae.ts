/**
 * The CMAE model (and MAE as its special case): a thin TypeScript handle over the native model
 * (native/model, through native/napi/model_wrap.cc). Every heavy call returns a Promise and runs off
 * the event loop; one call at a time per model (a concurrent call rejects with BusyError).
 *
 * Who owns which rule: TypeScript owns presets and defaults (./config.ts), turning plain arrays into
 * tensors, and the state-dict conventions (names, strict loading); the native model owns every rule
 * about its inputs (shapes, dtypes, devices, what each mode needs, value ranges), the busy flag and
 * the disposed state, and its errors arrive here already typed.
 */
import { getBinding } from '../native';
import { DisposedError, FormatError, ShapeError, ValueError } from '../errors';
import { describeValue, objectArg, stringArg } from '../args';
import { Tensor, nativeOf, type Device } from '../tensor';
import type { NativeLossOutputs, NativeModel, NativeTensorHandle } from '../binding-types';
import { methods, type ModelConfig, type PresetName, resolveConfig } from './config';
import { readSafetensors, writeSafetensors, type SafeTensorEntry } from '../io/safetensors';
import { loadEncoder, type LoadEncoderOptions, type LoadedEncoder } from './foreign';
import { recordedNormalization, type Normalization } from '../data/loader';
import { embedImages, type EmbedImagesOptions, type ImageSource } from '../embed/images';
import { DistributedJob } from '../distributed/job';

export interface ParameterInfo {
  name: string;
  shape: number[];
  offset: number;
  numel: number;
  /** 'trainable' gets gradients; 'momentum' is the EMA branch; 'buffer' is fixed (pos embeddings, BN stats). */
  role: 'trainable' | 'momentum' | 'buffer';
  weightDecay: boolean;
}

export interface CreateOptions extends Partial<ModelConfig> {
  preset?: PresetName;
  /** Seed of the counter-based RNG for init and masks. Default 0. */
  seed?: number;
  /** Where the model's parameters, gradients and activations live. Default 'cpu'. */
  device?: Device;
}

export type ImagesInput = Float32Array | Tensor;

export interface LossAndGradInput {
  /** NCHW float32 images (the online view; also the reconstruction target; MoCo v3: the first view). */
  images: ImagesInput;
  /** NCHW float32 second view: CMAE's pixel-shifted target view, MoCo v3's second augmented view (unused by MAE). */
  targetImages?: ImagesInput;
  /**
   * [R, numGroups] uniform noise fixing the mask (tests); drawn from the seeded RNG when omitted.
   * R = N images, or 2N for MoCo v3 (the rows of the first view's samples, then the second's).
   */
  maskNoise?: Float32Array | Tensor;
  /**
   * Tensors to receive intermediate results (for tests and pictures): pred [N, L, P] (not MoCo v3),
   * mask and idsRestore [R, L], q and zT [R, projectorDim] (CMAE, MoCo v3).
   */
  outputs?: { pred?: Tensor; mask?: Tensor; idsRestore?: Tensor; q?: Tensor; zT?: Tensor };
}

export interface LossParts {
  /** rcWeight·reconstruction + ctWeight·contrastive (MAE: reconstruction). */
  loss: number;
  reconstruction: number;
  /**
   * 2τ·InfoNCE (0 in MAE mode; MoCo v3: the sum over both views, as its symmetric loss; DenseCL:
   * (1 − denseWeight)·global + denseWeight·dense).
   */
  contrastive: number;
  /** DenseCL only: its dense InfoNCE, 2τ-scaled and summed over both views (part of `contrastive`). */
  dense?: number;
}

export interface EncodeOptions {
  /**
   * 'cls': the cls token after the final norm; 'mean': the mean of the normalised patch tokens;
   * 'avg': the mean of the patch tokens, then the final norm (timm's global_pool='avg' with
   * fc_norm, the pool of an encoder loaded from an fc_norm checkpoint; online branch only).
   */
  pool?: FeaturePool;
  branch?: 'online' | 'momentum';
  /**
   * The last `blocks` encoder blocks' features, each pooled (and, online, normed by the final norm)
   * as the last block's, concatenated from the earliest: [N, blocks·dim]. Default 1. DINO's linear
   * evaluation of ViTs concatenates several blocks; here the last 2 gave +1.6 points of linear
   * probe on Fashion-MNIST (bench/SWEEP.md).
   */
  blocks?: number;
  /** Images per native call (bounds memory). Default 256. */
  batchSize?: number;
}

/** How encode() pools (EncodeOptions.pool). */
export type FeaturePool = 'cls' | 'mean' | 'avg';

export const CHECKPOINT_FORMAT = 'cmae-checkpoint';
export const CHECKPOINT_VERSION = '1';

export class CMAE {
  readonly config: Readonly<ModelConfig>;
  readonly seed: number;
  /** @internal */
  readonly native: NativeModel;
  private readonly table: ParameterInfo[];
  private readonly byName: Map<string, ParameterInfo>;
  private checkpointMetadata: Readonly<Record<string, string>> = Object.freeze({});
  private checkpointNormalization?: Normalization;
  private ownPool: FeaturePool = 'cls';

  private constructor(config: ModelConfig, seed: number, device: Device) {
    const binding = getBinding();
    this.config = Object.freeze({ ...config });
    this.seed = seed;
    this.native = new binding.NativeModel(config, seed, device);
    this.table = this.native.parameterTable();
    this.byName = new Map(this.table.map((p) => [p.name, p]));
  }

  /** Builds a model from a preset (default 'tiny') and overrides, initialised from `seed`. */
  static async create(options?: CreateOptions): Promise<CMAE> {
    const { preset, seed = 0, device = 'cpu', ...overrides } = objectArg(options, 'options', true);
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw new ValueError(`seed must be a non-negative integer, got ${seed}`);
    return new CMAE(resolveConfig(preset, overrides), seed, device);
  }

  get numPatches(): number {
    return this.native.info().numPatches;
  }
  get numGroups(): number {
    return this.native.info().numGroups;
  }
  get numVisible(): number {
    return this.native.info().numVisible;
  }
  get patchDim(): number {
    return this.native.info().patchDim;
  }
  /** The device the model lives on. */
  get device(): Device {
    return this.native.info().device;
  }
  /** How many masks the seeded RNG has drawn (part of the checkpoint, for bit-identical resume). */
  get maskCounter(): number {
    return this.native.info().maskCounter;
  }
  set maskCounter(counter: number) {
    this.native.setMaskCounter(counter);
  }
  get disposed(): boolean {
    return this.native.disposed();
  }

  /**
   * Activation recomputation (checkpointing) for training steps: the online encoder keeps only
   * each block's output and recomputes the rest in the backward. The same losses and gradients, bit
   * for bit; about 100 MB less at `tiny`, batch 64, for 3-5 % more time per step there (12 % at
   * `nano`). Off by default.
   */
  get recomputeActivations(): boolean {
    return this.native.info().recomputeActivations;
  }
  set recomputeActivations(on: boolean) {
    if (typeof on !== 'boolean') throw new ValueError(`recomputeActivations must be a boolean, got ${describeValue(on)}`);
    this.native.setRecomputeActivations(on);
  }

  /**
   * Trains data-parallel in `job` from the next lossAndGrad on (null: alone again). Every rank then
   * passes the same global batch; each computes its share of the samples and all hold the same
   * gradients after the step (native/model/cmae_model.h, set_collective). Pre-training methods but
   * densecl, on the CPU. The trainer's `distributed` option does this for a run.
   */
  setDistributed(job: DistributedJob | null): void {
    if (job !== null && !(job instanceof DistributedJob)) throw new ValueError(`job must be a DistributedJob or null, got ${describeValue(job)}`);
    this.native.setCollective(job ? job.native : null);
  }

  /** The string metadata of the checkpoint this model was loaded from (CMAE.load); {} for a created model. */
  get metadata(): Readonly<Record<string, string>> {
    return this.checkpointMetadata;
  }

  /**
   * The pixel normalisation (0..1 units) the checkpoint records, that its encoder was trained with
   * (metadata.normalization, written by `cmae pretrain` and train()); undefined for a created model
   * or a checkpoint that records none. embedImages() applies it.
   */
  get normalization(): Normalization | undefined {
    const n = this.checkpointNormalization;
    return n && { mean: [...n.mean], std: [...n.std] };
  }

  /**
   * The pool that gives this encoder's own features, the default of encode(), the evaluation, the
   * embeddings and the ONNX export: 'cls' for cmae's models; 'avg' for a timm/MAE encoder loaded
   * with its fc_norm (loadEncoder), whose norm belongs after the pooling. Saved in checkpoints
   * (metadata.pool), so a converted fc_norm encoder keeps it.
   */
  get featurePool(): FeaturePool {
    return this.ownPool;
  }
  /** @internal Set by loadEncoder and load. */
  set featurePool(pool: FeaturePool) {
    if (pool !== 'cls' && pool !== 'mean' && pool !== 'avg') throw new ValueError(`featurePool must be 'cls', 'mean' or 'avg', got ${describeValue(pool)}`);
    this.ownPool = pool;
  }

  /** Every parameter and buffer, in arena order. */
  parameters(): ParameterInfo[] {
    this.expectAlive();
    return this.table.map((p) => ({ ...p, shape: [...p.shape] }));
  }

  /** Number of trainable scalars. */
  get trainableCount(): number {
    return this.native.info().trainableCount;
  }

  /**
   * Forward + backward on one batch: returns the losses; gradients are then in gradients(). Inputs
   * may be on the CPU (Float32Arrays or Tensors) whatever the model's device: the native job copies
   * them to the device on its worker thread, off the event loop. A Tensor on another device is a
   * DeviceError.
   */
  async lossAndGrad(input: LossAndGradInput): Promise<LossParts> {
    objectArg(input, 'input');
    if (input.images === undefined) throw new ValueError('input.images is required (NCHW float32 images, a Float32Array or a Tensor)');
    if (input.outputs !== undefined) objectArg(input.outputs, 'input.outputs');
    const { channels: C, imageSize: S } = this.config;
    const owned: Tensor[] = [];
    const tensor = (value: ImagesInput | undefined, name: string, shape?: number[]): Tensor | undefined => {
      if (value === undefined || value instanceof Tensor) return value;
      const t = shape ? tensorOf(value, shape, name) : toImages(value, C, S, name);
      owned.push(t);
      return t;
    };
    try {
      const images = tensor(input.images, 'images')!;
      const target = tensor(input.targetImages, 'targetImages');
      const rows = methods[this.config.mode].onlineViews * images.shape[0];
      const noise = tensor(input.maskNoise, 'maskNoise', [rows, this.numGroups]);
      let outputs: NativeLossOutputs | undefined;
      if (input.outputs) {
        outputs = {};
        for (const [key, t] of Object.entries(input.outputs) as [keyof NativeLossOutputs, Tensor | undefined][]) outputs[key] = nativeOf(t);
      }
      return await this.native.lossAndGrad(nativeOf(images), nativeOf(target), nativeOf(noise), outputs);
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  /**
   * Copies of the gradients of every trainable parameter, by timm name (valid after lossAndGrad).
   * The arrays are views of one fresh host copy of the arena (not of the model's memory): copying
   * each again would hold the arena twice.
   */
  gradients(): Map<string, Float32Array> {
    return stateViews(this.table, this.native.readArena('grads'), (p) => p.role === 'trainable');
  }

  /**
   * Copies of every parameter and buffer, by timm/MAE name (PyTorch layouts); views of one fresh host
   * copy, as gradients(). Synchronous: a `base` model's copy pauses the event loop for 0.4-2.6 s;
   * save(), train()'s checkpoints and exportOnnx copy off the event loop (readStateDict).
   */
  stateDict(): Map<string, Float32Array> {
    return stateViews(this.table, this.native.readArena('params'));
  }

  /** @internal stateDict(), the copy made on a worker (a queued call: BusyError while another runs). */
  async readStateDict(): Promise<Map<string, Float32Array>> {
    return stateViews(this.table, await this.native.readArenaAsync('params'));
  }

  /**
   * Overwrites parameters from a name → values map. strict (default): every name must be known and
   * every parameter present. Shapes are checked by element count. Fixed buffers may be omitted in
   * non-strict mode (they keep their computed values); a map without momentum weights re-copies
   * the online weights into the momentum branch.
   */
  loadStateDict(state: Map<string, Float32Array | ArrayLike<number>>, options: { strict?: boolean } = {}): void {
    if (!(state instanceof Map)) throw new ValueError(`state must be a Map of parameter name to values, got ${describeValue(state)}`);
    const strict = objectArg(options, 'options').strict ?? true;
    const missing = writeState(this.native, this.byName, state, strict);
    if (methods[this.config.mode].momentum && missing.some((p) => p.role === 'momentum')) this.native.resetMomentum();
  }

  /**
   * Features of whole (unmasked) images: [N, dim] (blocks > 1: [N, blocks·dim]), a flat Float32Array. Online branch applies
   * the final LayerNorm. Images on the CPU are copied to the model's device by the native job, off the
   * event loop.
   */
  async encode(images: ImagesInput, options?: EncodeOptions): Promise<Float32Array> {
    const { pool = this.featurePool, branch = 'online', batchSize = 256, blocks = 1 } = objectArg(options, 'options', true);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValueError(`batchSize must be a positive integer, got ${batchSize}`);
    const { channels: C, imageSize: S, dim: D, depth } = this.config;
    if (!Number.isInteger(blocks) || blocks < 1 || blocks > Math.max(1, depth)) {
      throw new ValueError(`blocks must be an integer from 1 to the encoder's depth (${depth}), got ${describeValue(blocks)}`);
    }
    return inBatches(images, C, S, blocks * D, batchSize, (out, chunk) => this.native.encode(out, chunk, pool, branch, blocks));
  }

  /**
   * The last encoder block's attention from the cls query to every patch, per head, for whole
   * images: [N, heads, L] (L = patches, row-major over the grid), a flat Float32Array; each
   * (image, head) row is that head's softmax over all 1 + L keys without the cls key's share. The
   * map that attention-driven masking (`masking: 'amt'`) masks by, and what DINO-style attention
   * pictures show. Branch 'momentum' for the EMA encoder (cmae, mocov3, maskdistill).
   */
  async clsAttention(images: ImagesInput, options?: { branch?: 'online' | 'momentum'; batchSize?: number }): Promise<Float32Array> {
    const { branch = 'online', batchSize = 256 } = objectArg(options, 'options', true);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValueError(`batchSize must be a positive integer, got ${batchSize}`);
    const { channels: C, imageSize: S, heads, patchSize } = this.config;
    const L = (S / patchSize) ** 2;
    return inBatches(images, C, S, [heads, L], batchSize, (out, chunk) => this.native.clsAttention(out, chunk, branch));
  }

  /**
   * Features of encoded images (file paths or the bytes of PNG, JPEG, WebP, … files): decoded with
   * sharp as an image folder is, normalised with the checkpoint's own normalisation (or
   * `options.normalization`), encoded: a flat Float32Array of N·dim, in the order given.
   */
  async embedImages(images: readonly ImageSource[], options?: EmbedImagesOptions): Promise<Float32Array> {
    this.expectAlive();
    return embedImages(this, images, options);
  }

  /** θ_momentum ← m·θ_momentum + (1 − m)·θ_online (encoder without final norm, projector); m in [0, 1]. */
  async updateMomentum(momentum: number): Promise<void> {
    await this.native.updateMomentum(momentum);
  }

  /** Saves parameters, config and `extra` tensors/metadata to a .safetensors file (atomically). */
  async save(path: string, extra: { tensors?: Map<string, Float32Array>; metadata?: Record<string, string> } = {}): Promise<void> {
    stringArg(path, 'path');
    objectArg(extra, 'extra');
    const state = await this.readStateDict();
    const tensors = new Map<string, SafeTensorEntry>();
    for (const p of this.table) tensors.set(p.name, { dtype: 'F32', shape: p.shape, data: state.get(p.name)! });
    for (const [name, data] of extra.tensors ?? []) tensors.set(name, { dtype: 'F32', shape: [data.length], data });
    const metadata: Record<string, string> = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      config: JSON.stringify(this.config),
      seed: String(this.seed),
      maskCounter: String(this.maskCounter),
      ...(this.featurePool !== 'cls' ? { pool: this.featurePool } : {}),
      ...extra.metadata,
    };
    await writeSafetensors(path, tensors, metadata);
  }

  /** Loads a checkpoint written by save(): config, parameters and RNG position. */
  static async load(path: string, options: { device?: Device } = {}): Promise<CMAE> {
    const file = await readSafetensors(stringArg(path, 'path'));
    objectArg(options, 'options');
    const { model } = await CMAE.fromCheckpointFile(file, path, options);
    return model;
  }

  /**
   * Loads a ViT encoder saved by timm or the official MAE code (safetensors with timm names) into
   * a new model: the encoder's shapes come from the file, `heads` from the options, the file's
   * metadata or a preset; the other parts are created fresh. Returns the model, the pool that
   * reproduces the checkpoint's features, its classifier head if any, and notes (./foreign.ts).
   */
  static async loadEncoder(path: string, options?: LoadEncoderOptions): Promise<LoadedEncoder> {
    return loadEncoder(path, options);
  }

  /** @internal Builds a model from an already-parsed checkpoint. */
  static async fromCheckpointFile(
    file: Awaited<ReturnType<typeof readSafetensors>>,
    path: string,
    options: { device?: Device } = {},
  ): Promise<{ model: CMAE; extra: Map<string, SafeTensorEntry> }> {
    const meta = file.metadata;
    if (meta.format !== CHECKPOINT_FORMAT) throw new FormatError(`${path}: not a cmae checkpoint (metadata.format is '${meta.format ?? 'missing'}')`);
    let config: ModelConfig;
    try {
      config = JSON.parse(meta.config) as ModelConfig;
    } catch {
      throw new FormatError(`${path}: metadata.config is not valid JSON`);
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new FormatError(`${path}: metadata.config is not an object`);
    // The file's tensors are checked against the configuration's parameter table before anything
    // is allocated: a small file claiming a huge model fails here, naming what does not match.
    const { preset: _preset, ...fields } = config as ModelConfig & { preset?: unknown };
    const full = resolveConfig(undefined, fields);
    checkTensorsFit(file.tensors, getBinding().planParameters(full), path, 'metadata.config', 'the config');
    const normalization = recordedNormalization(meta, path, full.channels);
    const model = await CMAE.create({ ...full, seed: Number(meta.seed ?? 0), device: options.device });
    model.checkpointMetadata = Object.freeze({ ...meta });
    model.checkpointNormalization = normalization;
    const state = new Map<string, Float32Array>();
    const extra = new Map<string, SafeTensorEntry>();
    for (const [name, entry] of file.tensors) {
      if (model.byName.has(name)) {
        state.set(name, entry.data as Float32Array); // dtype and shape checked above
      } else {
        extra.set(name, entry);
      }
    }
    model.loadStateDict(state);
    model.maskCounter = Number(meta.maskCounter ?? 0);
    if (meta.pool !== undefined) {
      if (meta.pool !== 'cls' && meta.pool !== 'mean' && meta.pool !== 'avg') {
        model.dispose();
        throw new FormatError(`${path}: metadata.pool must be 'cls', 'mean' or 'avg', got ${JSON.stringify(meta.pool)}`);
      }
      model.featurePool = meta.pool;
    }
    return { model, extra };
  }

  /**
   * Loads the online encoder of a cmae checkpoint into this model's momentum encoder: MaskDistill's
   * frozen teacher (train with `freezeMomentum` so that no EMA moves it). The checkpoint's encoder
   * must have this model's architecture (the fields that shape it are compared by name).
   */
  async loadTeacher(path: string): Promise<void> {
    this.expectAlive();
    if (!methods[this.config.mode].momentum) throw new ValueError(`a ${this.config.mode} model has no momentum encoder to hold a teacher`);
    const file = await readSafetensors(path);
    if (file.metadata.format !== CHECKPOINT_FORMAT) throw new FormatError(`${path}: not a cmae checkpoint (metadata.format is '${file.metadata.format ?? 'missing'}')`);
    let config: Partial<ModelConfig>;
    try {
      config = JSON.parse(file.metadata.config) as Partial<ModelConfig>;
    } catch {
      throw new FormatError(`${path}: metadata.config is not valid JSON`);
    }
    const shaping = ['imageSize', 'channels', 'patchSize', 'dim', 'depth', 'heads', 'mlpRatio'] as const;
    const differ = shaping.filter((k) => config[k] !== this.config[k]);
    if (differ.length > 0) {
      throw new ValueError(`${path}: the teacher's encoder differs from this model's in ${differ.map((k) => `${k} (${String(config[k])} vs ${this.config[k]})`).join(', ')}`);
    }
    const state = new Map<string, Float32Array>();
    for (const p of this.table) {
      if (p.role !== 'momentum' || !p.name.startsWith('momentum_encoder.')) continue;
      const source = p.name.slice('momentum_encoder.'.length);
      const entry = file.tensors.get(source);
      if (!entry) throw new FormatError(`${path}: the teacher has no tensor '${source}'`);
      if (entry.dtype !== 'F32') throw new FormatError(`${path}: tensor '${source}' must be F32, got ${entry.dtype}`);
      state.set(p.name, entry.data as Float32Array);
    }
    this.loadStateDict(state, { strict: false });
  }

  /** DisposedError for the methods that would otherwise answer from JS-side state or read a file first. */
  private expectAlive(): void {
    if (this.native.disposed()) throw new DisposedError('model was disposed and can no longer be used');
  }

  /** Frees native memory. Idempotent; later calls throw DisposedError (a BusyError while a call runs). */
  dispose(): void {
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Writes `state` (name → values) into a native model's params arena: every name known (strict) and
 * every element count right, checked before anything is written; strict also wants every parameter.
 * Returns the parameters `state` does not hold.
 */
/** @internal Views by parameter name into one host copy of an arena, of the parameters `keep` takes. */
export function stateViews(table: readonly ParameterInfo[], arena: Float32Array, keep: (p: ParameterInfo) => boolean = () => true): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const p of table) if (keep(p)) out.set(p.name, arena.subarray(p.offset, p.offset + p.numel));
  return out;
}

export function writeState(
  native: NativeModel,
  byName: Map<string, ParameterInfo>,
  state: Map<string, Float32Array | ArrayLike<number>>,
  strict: boolean,
): ParameterInfo[] {
  // Before any check of `state`: a disposed model says so whatever it is given.
  if (native.disposed()) throw new DisposedError('model was disposed and can no longer be used');
  for (const [name, values] of state) {
    const p = byName.get(name);
    if (!p) {
      if (strict) throw new ValueError(`unknown parameter '${name}' in state dict`);
      continue;
    }
    if (values.length !== p.numel) {
      throw new ShapeError(`parameter '${name}' must have ${p.numel} values (shape [${p.shape.join(', ')}]), got ${values.length}`);
    }
  }
  const missing = [...byName.values()].filter((p) => !state.has(p.name));
  if (strict && missing.length > 0) throw new ValueError(`state dict is missing ${missing.length} parameters, e.g. '${missing[0].name}'`);
  const params = native.readArena('params');
  for (const [name, values] of state) {
    const p = byName.get(name);
    if (p) params.set(values, p.offset);
  }
  native.writeArena('params', params, 0);
  return missing;
}

/**
 * Runs `run(out, chunk)` on NCHW `images` in chunks of at most `batchSize`, each into a fresh
 * [count, width] CPU tensor, and returns the rows concatenated: a flat Float32Array of N·width
 * (encode's features, predict's logits).
 */
export async function inBatches(
  images: ImagesInput,
  channels: number,
  size: number,
  row: number | readonly number[],
  batchSize: number,
  run: (out: NativeTensorHandle, chunk: NativeTensorHandle) => Promise<void>,
): Promise<Float32Array> {
  // Each image's output is `row` (a width, or a shape such as [heads, L]).
  const rowShape = typeof row === 'number' ? [row] : row;
  const width = rowShape.reduce((a, b) => a * b, 1);
  const all = toImages(images, channels, size, 'images');
  try {
    const n = all.shape[0];
    const result = new Float32Array(n * width);
    const flat = n > batchSize ? (all.toArray() as Float32Array) : undefined;
    const per = channels * size * size;
    for (let start = 0; start < n; start += batchSize) {
      const count = Math.min(batchSize, n - start);
      const chunk = flat ? Tensor.from(flat.subarray(start * per, (start + count) * per), [count, channels, size, size]) : all;
      const out = Tensor.empty([count, ...rowShape]);
      try {
        await run(nativeOf(out)!, nativeOf(chunk)!);
        result.set(out.toArray() as Float32Array, start * width);
      } finally {
        out.dispose();
        if (chunk !== all) chunk.dispose();
      }
    }
    return result;
  } finally {
    if (!(images instanceof Tensor)) all.dispose();
  }
}

/**
 * Throws a FormatError unless `tensors` holds every parameter of `plan` with its shape, as F32:
 * one line naming the first problems (the tensor, its shape and the shape `needer` needs). Runs
 * before any model is built, so a small file claiming a huge model allocates nothing.
 */
export function checkTensorsFit(
  tensors: Map<string, SafeTensorEntry>,
  plan: readonly { name: string; shape: number[] }[],
  path: string,
  what: string,
  needer: string,
): void {
  const problems: string[] = [];
  for (const p of plan) {
    const entry = tensors.get(p.name);
    if (!entry) problems.push(`missing '${p.name}' [${p.shape.join(', ')}]`);
    else if (entry.shape.length !== p.shape.length || entry.shape.some((d, i) => d !== p.shape[i])) {
      problems.push(`'${p.name}' is [${entry.shape.join(', ')}], ${needer} needs [${p.shape.join(', ')}]`);
    } else if (entry.dtype !== 'F32') problems.push(`'${p.name}' is ${entry.dtype}, not F32`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ');
    throw new FormatError(`${path}: the tensors do not match ${what} (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${shown}${problems.length > 8 ? '; …' : ''}`);
  }
}

function tensorOf(data: Float32Array, shape: number[], name: string): Tensor {
  if (!(data instanceof Float32Array)) throw new ValueError(`${name} must be a Float32Array or a Tensor`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new ShapeError(`${name} has ${data.length} values, expected ${n} for shape [${shape.join(', ')}]`);
  return Tensor.from(data, shape);
}

/** NCHW images as a Tensor; a Float32Array's batch size is inferred from its length. */
export function toImages(images: ImagesInput, channels: number, size: number, name: string): Tensor {
  const per = channels * size * size;
  if (images instanceof Tensor) {
    const s = images.shape;
    if (s.length !== 4 || s[1] !== channels || s[2] !== size || s[3] !== size) {
      throw new ShapeError(`${name} must have shape [N, ${channels}, ${size}, ${size}], got [${s.join(', ')}]`);
    }
    return images;
  }
  if (!(images instanceof Float32Array)) throw new ValueError(`${name} must be a Float32Array or a Tensor`);
  if (images.length === 0 || images.length % per !== 0) {
    throw new ShapeError(`${name} has ${images.length} values, not a whole number of ${channels}×${size}×${size} images`);
  }
  return Tensor.from(images, [images.length / per, channels, size, size]);
}
