/**
 * DataLoader: seeded shuffling, batching, and the two-view augmentation of each batch
 * (kernels.makeViewsAsync), with one batch of prefetch: while the consumer works on batch k
 * (typically a training step on the compute pool), batch k+1 is being augmented on a libuv worker
 * with a single thread. Everything drawn is a pure function of (seed, epoch, step), so a resumed run
 * sees the same batches, and prefetching never changes what is produced.
 */
import { FormatError, ValueError } from '../errors';
import { objectArg } from '../args';
import type { Device, Tensor } from '../tensor';
import { augmentStream, computeMeanStd, makeViewsAsync, type AugmentParams, type PixelSource } from '../kernels/data';
import { type Dataset, isInMemory, gatherPixels, validateDataset } from './dataset';
import { permutation } from './shuffle';

/** Augmentation options: AugmentParams without the normalisation (set by `normalize`). */
export type AugmentOptions = Omit<AugmentParams, 'mean' | 'std' | 'twoViews'>;

/**
 * The deterministic view of evaluation, reconstructions and embeddings: the whole image resized to
 * outSize, no crop, flip or shift (and, with one view, no colour augmentation).
 */
export function resizeOnly(outSize: number): AugmentOptions {
  return { outSize, shiftRange: 0, randomCrop: false, flipP: 0 };
}

export interface Normalization {
  mean: number[];
  std: number[];
}

export interface BatchTiming {
  epoch: number;
  step: number;
  /** How long the consumer waited for this batch (0 when the prefetch was already done). */
  waitMs: number;
  /** Time from starting this batch (pixel gathering + augmentation) to its completion. */
  prepareMs: number;
}

export interface LoaderStats {
  batches: number;
  waitMs: number;
  prepareMs: number;
}

export interface DataLoaderOptions {
  batchSize: number;
  seed?: number;
  /** Reshuffle every epoch (seeded by (seed, epoch)). Default true. */
  shuffle?: boolean;
  /** Drop the last incomplete batch. Default true. */
  dropLast?: boolean;
  augment: AugmentOptions;
  /**
   * The second view of each image (a method's MethodTraits.targetView): 'shifted' (default) = CMAE's
   * pixel-shifted, colour-augmented crop of the online view's master; 'independent' = two views
   * each augmented independently (own crop, flip, shift and colour ops: MoCo v3), as `images` and
   * `targetImages`; 'none' = the online view only (MAE, evaluation).
   */
  targetView?: 'shifted' | 'independent' | 'none';
  /**
   * Normalisation in 0..1 pixel units: explicit, 'dataset' (per-channel mean/std of the dataset,
   * at most `statsImages` images of a lazy dataset), or 'none'. Default 'dataset'.
   */
  normalize?: Normalization | 'dataset' | 'none';
  /** Images used for 'dataset' statistics of a lazy dataset. Default 1024. */
  statsImages?: number;
  /** Augment batch k+1 while batch k is consumed. Default true. */
  prefetch?: boolean;
  /**
   * Where batches are made: 'cpu' (default), or a CUDA device, where each batch's uint8 images
   * are uploaded and augmented on the device (the views never cross back; pass the model's device).
   */
  device?: Device;
  /** Called once per batch, as it is handed to the consumer. */
  onTiming?: (timing: BatchTiming) => void;
}

export interface Batch {
  epoch: number;
  step: number;
  /** Online view (B, C, S, S) float32. Owned by the consumer: dispose() when done. */
  images: Tensor<'float32'>;
  /** Second view (B, C, S, S) float32 (not with targetView 'none'). */
  targetImages?: Tensor<'float32'>;
  /** Dataset indices of the batch's images. */
  indices: Int32Array;
  labels?: Int32Array;
  /** (B·2) int32: dy, dx per sample of the target view (targetView 'shifted' only). */
  shifts?: Int32Array;
  /** Frees the batch's tensors. */
  dispose(): void;
}

export class DataLoader {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly targetView: 'shifted' | 'independent' | 'none';
  readonly prefetch: boolean;
  readonly device: Device;
  /** Batches per epoch. */
  readonly stepsPerEpoch: number;
  /** Totals over every batch handed out so far. */
  readonly stats: LoaderStats = { batches: 0, waitMs: 0, prepareMs: 0 };
  private readonly augment: AugmentOptions;
  private readonly normalizeOption: Normalization | 'dataset' | 'none';
  private readonly statsImages: number;
  private readonly onTiming?: (timing: BatchTiming) => void;
  private norm?: Promise<Normalization>;

  constructor(dataset: Dataset, options: DataLoaderOptions) {
    validateDataset(objectArg(dataset, 'dataset'));
    const { batchSize, seed = 0, shuffle = true, dropLast = true, targetView = 'shifted', normalize = 'dataset', statsImages = 1024, prefetch = true, device = 'cpu' } = objectArg(options, 'options');
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new ValueError(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw new ValueError(`seed must be a non-negative safe integer, got ${seed}`);
    if (!options.augment || !Number.isInteger(options.augment.outSize) || options.augment.outSize <= 0) {
      throw new ValueError(`augment.outSize must be a positive integer, got ${options.augment?.outSize}`);
    }
    if (typeof normalize === 'object') checkNormalization(normalize, dataset.channels);
    else if (normalize !== 'dataset' && normalize !== 'none') throw new ValueError(`normalize must be {mean, std}, 'dataset' or 'none', got ${String(normalize)}`);
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.seed = seed;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    if (targetView !== 'shifted' && targetView !== 'independent' && targetView !== 'none') {
      throw new ValueError(`targetView must be 'shifted', 'independent' or 'none', got ${String(targetView)}`);
    }
    this.targetView = targetView;
    this.prefetch = prefetch;
    this.device = device;
    this.augment = { ...options.augment };
    this.normalizeOption = normalize;
    this.statsImages = statsImages;
    this.onTiming = options.onTiming;
    this.stepsPerEpoch = dropLast ? Math.floor(dataset.size / batchSize) : Math.ceil(dataset.size / batchSize);
    if (this.stepsPerEpoch === 0) {
      throw new ValueError(`dataset '${dataset.name}' has ${dataset.size} images, fewer than one batch of ${batchSize}${dropLast ? ' (dropLast)' : ''}`);
    }
  }

  /** The image order of an epoch: a seeded permutation (or 0..N−1 without shuffling). */
  order(epoch: number): Int32Array {
    checkEpoch(epoch);
    if (!this.shuffle) return Int32Array.from({ length: this.dataset.size }, (_, i) => i);
    return permutation(this.dataset.size, this.seed, epoch);
  }

  /** The normalisation in use (computes dataset statistics on first call). */
  normalization(): Promise<Normalization> {
    if (!this.norm) this.norm = this.computeNormalization();
    return this.norm;
  }

  /** The RNG stream of a batch: a fixed function of (epoch, step) (and of which view, for 'independent' views). */
  streamOf(epoch: number, step: number, secondView = false): number {
    return augmentStream(epoch * this.stepsPerEpoch + step + (secondView ? 2 ** 47 : 0));
  }

  /**
   * The batches of one epoch. With prefetch, the next batch's augmentation is started before the
   * current one is yielded. Breaking out of the loop is safe (an in-flight batch is disposed).
   * `startBatch` skips the first batches of the epoch without preparing them (exact resume: every
   * batch is a pure function of (seed, epoch, step)).
   */
  async *batches(epoch = 0, startBatch = 0): AsyncGenerator<Batch, void, undefined> {
    checkEpoch(epoch);
    if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > this.stepsPerEpoch) {
      throw new ValueError(`startBatch must be an integer in [0, ${this.stepsPerEpoch}], got ${startBatch}`);
    }
    const norm = await this.normalization();
    const order = this.order(epoch);
    const steps = this.stepsPerEpoch;
    const start = (step: number): Promise<{ batch: Batch; prepareMs: number }> => {
      const p = this.prepare(order, epoch, step, norm);
      p.catch(() => undefined); // a batch nobody awaits (consumer stopped) must not crash the process
      return p;
    };
    let pending: Promise<{ batch: Batch; prepareMs: number }> | undefined = this.prefetch && startBatch < steps ? start(startBatch) : undefined;
    try {
      for (let step = startBatch; step < steps; step++) {
        const t0 = performance.now();
        const current = pending ?? start(step);
        pending = undefined;
        const { batch, prepareMs } = await current;
        const waitMs = performance.now() - t0;
        if (this.prefetch && step + 1 < steps) pending = start(step + 1);
        this.stats.batches++;
        this.stats.waitMs += waitMs;
        this.stats.prepareMs += prepareMs;
        this.onTiming?.({ epoch, step, waitMs, prepareMs });
        yield batch;
      }
    } finally {
      if (pending) {
        try {
          (await pending).batch.dispose();
        } catch {
          // the consumer is gone; nothing to report to
        }
      }
    }
  }

  private async prepare(order: Int32Array, epoch: number, step: number, norm: Normalization): Promise<{ batch: Batch; prepareMs: number }> {
    const t0 = performance.now();
    const begin = step * this.batchSize;
    const indices = order.slice(begin, Math.min(begin + this.batchSize, order.length));
    const d = this.dataset;
    let source: PixelSource;
    let local: Int32Array;
    if (isInMemory(d)) {
      source = d;
      local = indices;
    } else {
      source = { pixels: await gatherPixels(d, indices), size: indices.length, height: d.height, width: d.width, channels: d.channels };
      local = Int32Array.from({ length: indices.length }, (_, i) => i);
    }
    const params: AugmentParams = { ...this.augment, mean: norm.mean, std: norm.std, twoViews: this.targetView !== 'none' };
    const stream = this.streamOf(epoch, step);
    const labels = d.labels ? Int32Array.from(indices, (k) => d.labels![k]) : undefined;
    let images: Tensor<'float32'>, targetImages: Tensor<'float32'> | undefined, shifts: Int32Array | undefined;
    if (this.targetView === 'independent') {
      // Each view is the augmented (target) view of its own make_views call: its own crop, flip,
      // shift and colour draws. The second call's stream is the batch's counter in the upper half
      // of the 48-bit counter space, which no batch counter reaches.
      const [a, b] = await Promise.all(
        [stream, this.streamOf(epoch, step, true)].map((s) => makeViewsAsync(source, local, params, this.seed, s, { device: this.device })),
      );
      for (const v of [a, b]) {
        v.online.dispose();
        v.shifts.dispose();
      }
      images = a.target!;
      targetImages = b.target!;
    } else {
      const views = await makeViewsAsync(source, local, params, this.seed, stream, { device: this.device });
      shifts = this.targetView === 'shifted' ? views.shifts.toArray() : undefined;
      views.shifts.dispose();
      images = views.online;
      targetImages = views.target;
    }
    const batch: Batch = {
      epoch,
      step,
      images,
      targetImages,
      indices,
      labels,
      shifts,
      dispose: () => {
        images.dispose();
        targetImages?.dispose();
      },
    };
    return { batch, prepareMs: performance.now() - t0 };
  }

  private async computeNormalization(): Promise<Normalization> {
    const opt = this.normalizeOption;
    const c = this.dataset.channels;
    if (opt === 'none') return { mean: new Array(c).fill(0), std: new Array(c).fill(1) };
    if (typeof opt === 'object') return { mean: [...opt.mean], std: [...opt.std] };
    const d = this.dataset;
    let source: PixelSource = d as PixelSource;
    if (!isInMemory(d)) {
      const n = Math.min(d.size, Math.max(1, this.statsImages));
      const idx = Array.from({ length: n }, (_, i) => Math.floor((i * d.size) / n));
      source = { pixels: await gatherPixels(d, idx), size: n, height: d.height, width: d.width, channels: c };
    }
    const { mean, std } = computeMeanStd(source);
    // A constant channel has std 0: keep it finite.
    return { mean, std: std.map((s) => (s > 1e-6 ? s : 1)) };
  }
}

function checkEpoch(epoch: number): void {
  if (!Number.isInteger(epoch) || epoch < 0) throw new ValueError(`epoch must be a non-negative integer, got ${epoch}`);
}

/**
 * The normalisation a checkpoint records in its metadata (`normalization`: JSON {mean, std}, written
 * by `cmae pretrain` and by train() from a DataLoader), or undefined when it records none. A record
 * that is not valid JSON or not {mean, std} for `channels` is a FormatError naming `path`.
 */
export function recordedNormalization(metadata: Readonly<Record<string, string>>, path: string, channels: number): Normalization | undefined {
  const text = metadata.normalization;
  if (text === undefined) return undefined;
  let parsed: Normalization;
  try {
    parsed = JSON.parse(text) as Normalization;
  } catch {
    throw new FormatError(`${path}: metadata.normalization is not valid JSON`);
  }
  try {
    checkNormalization(parsed, channels, 'metadata.normalization');
  } catch (error) {
    throw new FormatError(`${path}: ${(error as Error).message}`);
  }
  return { mean: [...parsed.mean], std: [...parsed.std] };
}

/** ValueError unless `n` holds `channels` (or 1, broadcast) finite means and positive stds. */
export function checkNormalization(n: Normalization, channels: number, name = 'normalize'): void {
  if (typeof n !== 'object' || n === null) throw new ValueError(`${name} must be {mean, std}, got ${String(n)}`);
  for (const key of ['mean', 'std'] as const) {
    const v = n[key];
    if (!Array.isArray(v) || (v.length !== channels && v.length !== 1) || !v.every((x) => Number.isFinite(x))) {
      throw new ValueError(`${name}.${key} must be an array of ${channels} finite numbers, got ${JSON.stringify(v)}`);
    }
  }
  if (!n.std.every((x) => x > 0)) throw new ValueError(`${name}.std entries must be > 0, got ${JSON.stringify(n.std)}`);
}
