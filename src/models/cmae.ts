/**
 * The CMAE model (and MAE as its special case): a thin TypeScript handle over the native model.
 * Every heavy call returns a Promise and runs off the event loop; one call at a time per model
 * (a concurrent call rejects with BusyError).
 */
import { getBinding } from '../native';
import { BusyError, DisposedError, FormatError, ShapeError, ValueError } from '../errors';
import { Tensor, nativeOf } from '../tensor';
import { type ModelConfig, type PresetName, resolveConfig } from './config';
import { readSafetensors, writeSafetensors, type SafeTensorEntry } from '../io/safetensors';

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
}

export type ImagesInput = Float32Array | Tensor;

export interface LossAndGradInput {
  /** NCHW float32 images (the online view; also the reconstruction target). */
  images: ImagesInput;
  /** NCHW float32 pixel-shifted target view (CMAE mode). */
  targetImages?: ImagesInput;
  /** [N, numGroups] uniform noise fixing the mask (tests); drawn from the seeded RNG when omitted. */
  maskNoise?: Float32Array | Tensor;
  /** Tensors to receive intermediate results (for tests and pictures). */
  outputs?: { pred?: Tensor; mask?: Tensor; idsRestore?: Tensor; q?: Tensor; zT?: Tensor };
}

export interface LossParts {
  /** rcWeight·reconstruction + ctWeight·contrastive (MAE: reconstruction). */
  loss: number;
  reconstruction: number;
  /** 2τ·InfoNCE (0 in MAE mode). */
  contrastive: number;
}

export interface EncodeOptions {
  pool?: 'cls' | 'mean';
  branch?: 'online' | 'momentum';
  /** Images per native call (bounds memory). Default 256. */
  batchSize?: number;
}

interface NativeModel {
  parameterTable(): ParameterInfo[];
  arena(which: 'params' | 'grads' | 'decayMask'): unknown;
  info(): { numPatches: number; numGroups: number; numVisible: number; patchDim: number; trainableCount: number; totalCount: number; maskCounter: number };
  lossAndGrad(images: unknown, target: unknown, noise: unknown, outputs: unknown): Promise<LossParts>;
  encode(out: unknown, images: unknown, pool: string, branch: string): Promise<void>;
  updateMomentum(m: number): Promise<void>;
  resetMomentum(): void;
  adamwStep(m: unknown, v: unknown, options: Record<string, number>): Promise<number>;
  setMaskCounter(counter: number): void;
  dispose(): void;
}

export const CHECKPOINT_FORMAT = 'cmae-checkpoint';
export const CHECKPOINT_VERSION = '1';

export class CMAE {
  readonly config: Readonly<ModelConfig>;
  readonly seed: number;
  /** @internal */
  readonly native: NativeModel;
  private readonly table: ParameterInfo[];
  private readonly byName: Map<string, ParameterInfo>;
  private paramsArena: Tensor;
  private gradsArena: Tensor;
  private isDisposed = false;

  private constructor(config: ModelConfig, seed: number) {
    const binding = getBinding();
    this.config = Object.freeze({ ...config });
    this.seed = seed;
    this.native = new binding.NativeModel(config, seed) as NativeModel;
    this.table = this.native.parameterTable();
    this.byName = new Map(this.table.map((p) => [p.name, p]));
    this.paramsArena = new Tensor(this.native.arena('params') as never);
    this.gradsArena = new Tensor(this.native.arena('grads') as never);
  }

  /** Builds a model from a preset (default 'tiny') and overrides, initialised from `seed`. */
  static async create(options: CreateOptions = {}): Promise<CMAE> {
    const { preset, seed = 0, ...overrides } = options;
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw new ValueError(`seed must be a non-negative integer, got ${seed}`);
    return new CMAE(resolveConfig(preset, overrides), seed);
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
  /** How many masks the seeded RNG has drawn (part of the checkpoint, for bit-identical resume). */
  get maskCounter(): number {
    return this.native.info().maskCounter;
  }
  set maskCounter(counter: number) {
    this.native.setMaskCounter(counter);
  }
  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Every parameter and buffer, in arena order. */
  parameters(): ParameterInfo[] {
    return this.table.map((p) => ({ ...p, shape: [...p.shape] }));
  }

  /** Number of trainable scalars. */
  get trainableCount(): number {
    return this.native.info().trainableCount;
  }

  /** Forward + backward on one batch: returns the losses; gradients are then in gradients(). */
  async lossAndGrad(input: LossAndGradInput): Promise<LossParts> {
    this.assertAlive();
    const { channels: C, imageSize: S } = this.config;
    const images = toImages(input.images, C, S, 'images');
    const n = images.shape[0];
    if (this.config.mode === 'cmae' && input.targetImages === undefined) {
      throw new ValueError("CMAE mode needs targetImages (the pixel-shifted view); use mode 'mae' to train without it");
    }
    const target = input.targetImages === undefined ? undefined : toImages(input.targetImages, C, S, 'targetImages');
    if (target && target.shape[0] !== n) throw new ShapeError(`targetImages has ${target.shape[0]} images, images has ${n}`);
    let noise: Tensor | undefined;
    if (input.maskNoise !== undefined) {
      noise = input.maskNoise instanceof Tensor ? input.maskNoise : tensorOf(input.maskNoise, [n, this.numGroups], 'maskNoise');
    }
    const outputs = input.outputs
      ? Object.fromEntries(Object.entries(input.outputs).map(([k, t]) => [k, nativeOf(t as Tensor)]))
      : undefined;
    return this.run(() => this.native.lossAndGrad(nativeOf(images), nativeOf(target), nativeOf(noise), outputs));
  }

  /** Copies of the gradients of every trainable parameter, by timm name (valid after lossAndGrad). */
  gradients(): Map<string, Float32Array> {
    this.assertAlive();
    const grads = this.gradsArena.view() as Float32Array;
    const out = new Map<string, Float32Array>();
    for (const p of this.table) if (p.role === 'trainable') out.set(p.name, grads.slice(p.offset, p.offset + p.numel));
    return out;
  }

  /** Copies of every parameter and buffer, by timm/MAE name (PyTorch layouts). */
  stateDict(): Map<string, Float32Array> {
    this.assertAlive();
    const params = this.paramsArena.view() as Float32Array;
    const out = new Map<string, Float32Array>();
    for (const p of this.table) out.set(p.name, params.slice(p.offset, p.offset + p.numel));
    return out;
  }

  /**
   * Overwrites parameters from a name → values map. strict (default): every name must be known and
   * every parameter present. Shapes are checked by element count. Fixed buffers may be omitted in
   * non-strict mode (they keep their computed values); a map without momentum weights re-copies
   * the online weights into the momentum branch.
   */
  loadStateDict(state: Map<string, Float32Array | ArrayLike<number>>, options: { strict?: boolean } = {}): void {
    this.assertIdle();
    const strict = options.strict ?? true;
    const params = this.paramsArena.view() as Float32Array;
    for (const [name, values] of state) {
      const p = this.byName.get(name);
      if (!p) {
        if (strict) throw new ValueError(`unknown parameter '${name}' in state dict`);
        continue;
      }
      if (values.length !== p.numel) {
        throw new ShapeError(`parameter '${name}' must have ${p.numel} values (shape [${p.shape.join(', ')}]), got ${values.length}`);
      }
    }
    const missing = this.table.filter((p) => !state.has(p.name));
    if (strict && missing.length > 0) throw new ValueError(`state dict is missing ${missing.length} parameters, e.g. '${missing[0].name}'`);
    for (const [name, values] of state) {
      const p = this.byName.get(name);
      if (p) params.set(values as ArrayLike<number>, p.offset);
    }
    if (this.config.mode === 'cmae' && missing.some((p) => p.role === 'momentum')) this.native.resetMomentum();
  }

  /** Features of whole (unmasked) images: [N, dim]. Online branch applies the final LayerNorm. */
  async encode(images: ImagesInput, options: EncodeOptions = {}): Promise<Float32Array> {
    this.assertAlive();
    const { pool = 'cls', branch = 'online', batchSize = 256 } = options;
    if (pool !== 'cls' && pool !== 'mean') throw new ValueError(`pool must be 'cls' or 'mean', got '${pool}'`);
    if (branch !== 'online' && branch !== 'momentum') throw new ValueError(`branch must be 'online' or 'momentum', got '${branch}'`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValueError(`batchSize must be a positive integer, got ${batchSize}`);
    const { channels: C, imageSize: S, dim: D } = this.config;
    const all = toImages(images, C, S, 'images');
    const n = all.shape[0];
    const result = new Float32Array(n * D);
    const flat = all.view() as Float32Array;
    const per = C * S * S;
    for (let start = 0; start < n; start += batchSize) {
      const count = Math.min(batchSize, n - start);
      const chunk = count === n ? all : Tensor.from(flat.subarray(start * per, (start + count) * per), [count, C, S, S]);
      const out = Tensor.empty([count, D]);
      await this.run(() => this.native.encode(nativeOf(out), nativeOf(chunk), pool, branch));
      result.set(out.view() as Float32Array, start * D);
      out.dispose();
      if (chunk !== all) chunk.dispose();
    }
    if (!(images instanceof Tensor)) all.dispose();
    return result;
  }

  /** θ_momentum ← m·θ_momentum + (1 − m)·θ_online (encoder without final norm, projector). */
  async updateMomentum(momentum: number): Promise<void> {
    this.assertAlive();
    if (!(momentum >= 0 && momentum <= 1)) throw new ValueError(`momentum must be in [0, 1], got ${momentum}`);
    await this.run(() => this.native.updateMomentum(momentum));
  }

  /** Saves parameters, config and `extra` tensors/metadata to a .safetensors file (atomically). */
  async save(path: string, extra: { tensors?: Map<string, Float32Array>; metadata?: Record<string, string> } = {}): Promise<void> {
    this.assertIdle();
    const tensors = new Map<string, SafeTensorEntry>();
    for (const p of this.table) {
      tensors.set(p.name, { dtype: 'F32', shape: p.shape, data: (this.paramsArena.view() as Float32Array).slice(p.offset, p.offset + p.numel) });
    }
    for (const [name, data] of extra.tensors ?? []) tensors.set(name, { dtype: 'F32', shape: [data.length], data });
    const metadata: Record<string, string> = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      config: JSON.stringify(this.config),
      seed: String(this.seed),
      maskCounter: String(this.maskCounter),
      ...extra.metadata,
    };
    await writeSafetensors(path, tensors, metadata);
  }

  /** Loads a checkpoint written by save(): config, parameters and RNG position. */
  static async load(path: string): Promise<CMAE> {
    const file = await readSafetensors(path);
    const { model } = await CMAE.fromCheckpointFile(file, path);
    return model;
  }

  /** @internal Builds a model from an already-parsed checkpoint. */
  static async fromCheckpointFile(
    file: Awaited<ReturnType<typeof readSafetensors>>,
    path: string,
  ): Promise<{ model: CMAE; extra: Map<string, SafeTensorEntry> }> {
    const meta = file.metadata;
    if (meta.format !== CHECKPOINT_FORMAT) throw new FormatError(`${path}: not a cmae checkpoint (metadata.format is '${meta.format ?? 'missing'}')`);
    let config: ModelConfig;
    try {
      config = JSON.parse(meta.config) as ModelConfig;
    } catch {
      throw new FormatError(`${path}: metadata.config is not valid JSON`);
    }
    const model = await CMAE.create({ ...config, preset: undefined, seed: Number(meta.seed ?? 0) });
    const state = new Map<string, Float32Array>();
    const extra = new Map<string, SafeTensorEntry>();
    for (const [name, entry] of file.tensors) {
      if (model.byName.has(name)) {
        if (entry.dtype !== 'F32') throw new FormatError(`${path}: tensor '${name}' must be F32, got ${entry.dtype}`);
        state.set(name, entry.data as Float32Array);
      } else {
        extra.set(name, entry);
      }
    }
    model.loadStateDict(state);
    model.maskCounter = Number(meta.maskCounter ?? 0);
    return { model, extra };
  }

  /** Frees native memory. Idempotent; later calls throw DisposedError. */
  dispose(): void {
    if (this.isDisposed) return;
    this.assertIdle();
    this.isDisposed = true;
    this.paramsArena.dispose();
    this.gradsArena.dispose();
    this.native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** @internal */
  assertAlive(): void {
    if (this.isDisposed) throw new DisposedError('model was disposed and can no longer be used');
  }

  private busy = false;
  private assertIdle(): void {
    this.assertAlive();
    if (this.busy) throw new BusyError('model is busy with another call; await the previous promise first');
  }

  /** @internal Runs one native async call, enforcing one call at a time. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    this.assertIdle();
    this.busy = true;
    try {
      return await call();
    } finally {
      this.busy = false;
    }
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
