/**
 * The fine-tuned model: a pre-trained ViT encoder + a linear head, trained end to end on labels
 * (MAE's fine-tuning). A thin handle over the native model in classifier mode
 * (native/model/cmae_model.h: the encoder on every patch, mean of the patch tokens → fc_norm →
 * head with `globalPool`, MAE's default, or the cls token → norm → head), through the same kernels
 * as pre-training. Calls that compute return Promises and run off the event loop, one at a time.
 *
 * Built from a pre-training checkpoint (`fromPretrained`: its online encoder, the one MAE and CMAE
 * fine-tune; the momentum encoder is an EMA of it and is not used), from scratch (`create`), or
 * from a classifier checkpoint (`load`).
 */
import { getBinding } from '../native';
import { DisposedError, FormatError, ShapeError, ValueError } from '../errors';
import { describeValue, objectArg, stringArg } from '../args';
import { Tensor, nativeOf, type Device } from '../tensor';
import type { NativeModel } from '../binding-types';
import { type ModelConfig, type PresetName, resolveConfig } from './config';
import { CHECKPOINT_FORMAT, checkTensorsFit, inBatches, stateViews, toImages, writeState, type ImagesInput, type ParameterInfo } from './cmae';
import { readSafetensors, writeSafetensors, type SafeTensorEntry, type SafeTensorsFile } from '../io/safetensors';

/** The encoder's configuration and the head's: what a classifier checkpoint records. */
export interface ClassifierConfig extends Omit<ModelConfig, 'mode'> {
  mode: 'classifier';
  numClasses: number;
  /** true: mean of the patch tokens → fc_norm (MAE's fine-tuning default); false: cls token → norm. */
  globalPool: boolean;
}

export interface ClassifierOptions extends Partial<Omit<ModelConfig, 'mode'>> {
  numClasses: number;
  /** 'mean' (default, MAE's global_pool) or 'cls'. */
  pool?: 'cls' | 'mean';
  /** Seed of the initialisation (the head; the whole model with `create`). Default 0. */
  seed?: number;
  device?: Device;
}

export const CLASSIFIER_FORMAT = 'cmae-classifier';

export class Classifier {
  readonly config: Readonly<ClassifierConfig>;
  readonly seed: number;
  /** @internal */
  readonly native: NativeModel;
  private readonly table: ParameterInfo[];
  private readonly byName: Map<string, ParameterInfo>;
  /** lossAndGrad's default `step`: one more than the last step taken. */
  private stepsTaken = 0;

  private constructor(config: ClassifierConfig, seed: number, device: Device) {
    this.config = Object.freeze({ ...config });
    this.seed = seed;
    this.native = new (getBinding().NativeModel)(config, seed, device);
    this.table = this.native.parameterTable();
    this.byName = new Map(this.table.map((p) => [p.name, p]));
  }

  /** A classifier with a freshly initialised encoder (the from-scratch baseline), from a preset (default 'tiny'). */
  static async create(options: ClassifierOptions & { preset?: PresetName }): Promise<Classifier> {
    const { preset, ...rest } = objectArg(options, 'options');
    const { config, seed, device } = classifierConfig(resolveConfig(preset, encoderFields(rest)), rest);
    return new Classifier(config, seed, device);
  }

  /**
   * A classifier whose encoder is the online encoder of a pre-training checkpoint (cmae, mae, …),
   * with a new head of `numClasses` (N(0, 2e-5²) weight, zero bias, as MAE) and, with pool 'mean',
   * a new fc_norm. The encoder's architecture is the checkpoint's unless `options` change it; a
   * tensor that does not fit the requested classifier is a FormatError naming it.
   */
  static async fromPretrained(path: string, options: ClassifierOptions): Promise<Classifier> {
    const file = await readSafetensors(stringArg(path, 'path'));
    const rest = objectArg(options, 'options');
    const saved = parseConfig(file.metadata, path, CHECKPOINT_FORMAT, 'a cmae pre-training checkpoint');
    const { mode: _mode, preset: _preset, ...fields } = saved as Partial<ModelConfig> & { preset?: unknown };
    const { config, seed, device } = classifierConfig(resolveConfig(undefined, { ...fields, ...encoderFields(rest) }), rest);
    const plan = getBinding().planParameters(config);
    // What the pre-training checkpoint provides: the encoder and its norm (cls pooling); the head,
    // fc_norm and the fixed position embeddings are the classifier's own.
    const fresh = (name: string) => name.startsWith('head.') || name.startsWith('fc_norm.') || name === 'pos_embed';
    checkTensorsFit(file.tensors, plan.filter((p) => !fresh(p.name)), path, 'the requested classifier', 'the classifier');
    const model = new Classifier(config, seed, device);
    const state = new Map<string, Float32Array>();
    for (const p of plan) if (!fresh(p.name)) state.set(p.name, file.tensors.get(p.name)!.data as Float32Array);
    model.loadStateDict(state, { strict: false });
    return model;
  }

  /** Loads a classifier checkpoint written by save(). */
  static async load(path: string, options: { device?: Device } = {}): Promise<Classifier> {
    const { model } = await Classifier.loadWithExtra(path, options);
    return model;
  }

  /** @internal load(), also returning the file's metadata. */
  static async loadWithExtra(path: string, options: { device?: Device } = {}): Promise<{ model: Classifier; metadata: Record<string, string> }> {
    const file = await readSafetensors(stringArg(path, 'path'));
    return { model: Classifier.fromCheckpointFile(file, path, options), metadata: file.metadata };
  }

  /** @internal A classifier from a checkpoint already read (`path` names it in errors). */
  static fromCheckpointFile(file: SafeTensorsFile, path: string, options: { device?: Device } = {}): Classifier {
    const { device = 'cpu' } = objectArg(options, 'options');
    const saved = parseConfig(file.metadata, path, CLASSIFIER_FORMAT, 'a cmae classifier checkpoint (cmae finetune writes them)') as Partial<ClassifierConfig>;
    const { mode: _mode, numClasses, globalPool, ...fields } = saved;
    const { config } = classifierConfig(resolveConfig(undefined, fields), { numClasses: numClasses as number, pool: globalPool === false ? 'cls' : 'mean' });
    checkTensorsFit(file.tensors, getBinding().planParameters(config), path, 'metadata.config', 'the config');
    const model = new Classifier(config, Number(file.metadata.seed ?? 0), device);
    const state = new Map<string, Float32Array>();
    for (const p of model.table) state.set(p.name, file.tensors.get(p.name)!.data as Float32Array);
    model.loadStateDict(state);
    return model;
  }

  get device(): Device {
    return this.native.info().device;
  }
  /** What the head sees: 'mean' (of the patch tokens, then fc_norm: config.globalPool) or 'cls'. */
  get pool(): 'cls' | 'mean' {
    return this.config.globalPool ? 'mean' : 'cls';
  }
  get numClasses(): number {
    return this.config.numClasses;
  }
  get trainableCount(): number {
    return this.native.info().trainableCount;
  }
  get disposed(): boolean {
    return this.native.disposed();
  }

  /** Every parameter and buffer, in arena order. */
  parameters(): ParameterInfo[] {
    if (this.native.disposed()) throw new DisposedError('model was disposed and can no longer be used');
    return this.table.map((p) => ({ ...p, shape: [...p.shape] }));
  }

  /**
   * Forward + backward of the softmax cross-entropy on one batch: images NCHW, targets [N,
   * numClasses] distributions (`softTargets` builds them from labels); resolves with the loss.
   * `logits` [N, numClasses], when given, receives the forward's logits. `dropPath` in [0, 1)
   * (default 0): stochastic depth as timm's ViT (block i drops each residual branch of each sample
   * with probability dropPath·i/(depth − 1)); its draws are a pure function of (seed, `step`), `step`
   * defaulting to the number of lossAndGrad calls made so far, so pass it when resuming.
   */
  async lossAndGrad(input: {
    images: ImagesInput;
    targets: Float32Array | Tensor;
    logits?: Tensor;
    dropPath?: number;
    step?: number;
  }): Promise<number> {
    objectArg(input, 'input');
    if (input.images === undefined) throw new ValueError('input.images is required (NCHW float32 images, a Float32Array or a Tensor)');
    if (input.targets === undefined) throw new ValueError('input.targets is required ([N, numClasses] float32 class distributions)');
    const images = toImages(input.images, this.config.channels, this.config.imageSize, 'images');
    let targets: Tensor | undefined;
    try {
      if (input.targets instanceof Tensor) targets = input.targets;
      else if (input.targets instanceof Float32Array) {
        const n = images.shape[0] * this.numClasses;
        if (input.targets.length !== n) throw new ShapeError(`targets has ${input.targets.length} values, expected ${n} for shape [${images.shape[0]}, ${this.numClasses}]`);
        targets = Tensor.from(input.targets, [images.shape[0], this.numClasses]);
      } else throw new ValueError(`input.targets must be a Float32Array or a Tensor, got ${describeValue(input.targets)}`);
      const step = input.step ?? this.stepsTaken;
      const loss = await this.native.classifierLossAndGrad(nativeOf(images), nativeOf(targets), nativeOf(input.logits) ?? null, input.dropPath ?? 0, step);
      this.stepsTaken = step + 1;
      return loss;
    } finally {
      if (!(input.images instanceof Tensor)) images.dispose();
      if (targets && targets !== input.targets) targets.dispose();
    }
  }

  /** Logits [N, numClasses] (a flat Float32Array) of whole images, `batchSize` (default 256) per native call. */
  async predict(images: ImagesInput, options?: { batchSize?: number }): Promise<Float32Array> {
    const { batchSize = 256 } = objectArg(options, 'options', true);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValueError(`batchSize must be a positive integer, got ${batchSize}`);
    return inBatches(images, this.config.channels, this.config.imageSize, this.numClasses, batchSize, (out, chunk) => this.native.predict(out, chunk));
  }

  /** Gradients of every trainable parameter by name (views of one host copy of the arena; valid after lossAndGrad). */
  gradients(): Map<string, Float32Array> {
    return stateViews(this.table, this.native.readArena('grads'), (p) => p.role === 'trainable');
  }

  /** Every parameter and buffer by timm name (views of one host copy of the arena; synchronous, as CMAE.stateDict()). */
  stateDict(): Map<string, Float32Array> {
    return stateViews(this.table, this.native.readArena('params'));
  }

  /** @internal stateDict(), the copy made on a worker (a queued call: BusyError while another runs). */
  async readStateDict(): Promise<Map<string, Float32Array>> {
    return stateViews(this.table, await this.native.readArenaAsync('params'));
  }

  /** Overwrites parameters by name; strict (default): every name known and every parameter given. */
  loadStateDict(state: Map<string, Float32Array | ArrayLike<number>>, options: { strict?: boolean } = {}): void {
    if (!(state instanceof Map)) throw new ValueError(`state must be a Map of parameter name to values, got ${describeValue(state)}`);
    writeState(this.native, this.byName, state, objectArg(options, 'options').strict ?? true);
  }

  /** Saves parameters and config (and `metadata`) to a .safetensors file, atomically. */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    stringArg(path, 'path');
    objectArg(metadata, 'metadata');
    const state = await this.readStateDict();
    const tensors = new Map<string, SafeTensorEntry>();
    for (const p of this.table) tensors.set(p.name, { dtype: 'F32', shape: p.shape, data: state.get(p.name)! });
    await writeSafetensors(path, tensors, { ...metadata, format: CLASSIFIER_FORMAT, version: '1', config: JSON.stringify(this.config), seed: String(this.seed) });
  }

  /** Frees native memory. Idempotent; later calls throw DisposedError. */
  dispose(): void {
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Soft targets [N, numClasses] from labels: (1 − ε)·one-hot + ε/numClasses (label smoothing as
 * timm's LabelSmoothingCrossEntropy). With `mix` (mixup/cutmix), row i blends its label with that of
 * row mix.partner[i] by mix.lambda: λ·t(y_i) + (1 − λ)·t(y_partner), as timm's Mixup.
 */
export function softTargets(labels: Int32Array, numClasses: number, smoothing = 0, mix?: { partner: Int32Array; lambda: number }): Float32Array {
  if (!(smoothing >= 0 && smoothing < 1)) throw new ValueError(`labelSmoothing must be in [0, 1), got ${smoothing}`);
  const n = labels.length;
  const off = smoothing / numClasses;
  const t = new Float32Array(n * numClasses).fill(off);
  const lam = mix ? mix.lambda : 1;
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) throw new ValueError(`label ${y} (row ${i}) is outside [0, ${numClasses})`);
    t[i * numClasses + y] += lam * (1 - smoothing);
    if (mix) t[i * numClasses + labels[mix.partner[i]]] += (1 - lam) * (1 - smoothing);
  }
  return t;
}

/** The config fields of a checkpoint's metadata, after checking its format. */
function parseConfig(meta: Record<string, string>, path: string, format: string, what: string): Record<string, unknown> {
  if (meta.format !== format) throw new FormatError(`${path}: not ${what} (metadata.format is '${meta.format ?? 'missing'}')`);
  let config: unknown;
  try {
    config = JSON.parse(meta.config);
  } catch {
    throw new FormatError(`${path}: metadata.config is not valid JSON`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new FormatError(`${path}: metadata.config is not an object`);
  return config as Record<string, unknown>;
}

/** The encoder overrides among classifier options (the rest are the head's, the seed and the device). */
function encoderFields(options: Partial<ClassifierOptions>): Partial<ModelConfig> {
  const { numClasses: _n, pool: _p, seed: _s, device: _d, ...fields } = options;
  return fields;
}

function classifierConfig(encoder: ModelConfig, options: Partial<ClassifierOptions>): { config: ClassifierConfig; seed: number; device: Device } {
  const { numClasses, pool = 'mean', seed = 0, device = 'cpu' } = options;
  if (!Number.isInteger(numClasses) || (numClasses as number) < 1) throw new ValueError(`numClasses must be a positive integer, got ${describeValue(numClasses)}`);
  if (pool !== 'cls' && pool !== 'mean') throw new ValueError(`pool must be 'cls' or 'mean', got ${describeValue(pool)}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw new ValueError(`seed must be a non-negative integer, got ${seed}`);
  // The classifier sees every patch.
  const config: ClassifierConfig = { ...encoder, mode: 'classifier', maskRatio: 0, numClasses: numClasses as number, globalPool: pool === 'mean' };
  return { config, seed, device };
}
