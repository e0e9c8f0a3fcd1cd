/**
 * Embeddings of a data set's images, streamed: `embed(model, data)` is an async iterable of
 * `{ index, path?, label?, embedding }` in the data set's order. Each batch is decoded (sharp, for
 * an image folder) and resized while the previous one is encoded, and no further: at most about
 * two batches of pixels are held, whatever the size of the folder. An image that cannot be read is
 * skipped (reported through `onSkip` and counted), never fatal.
 */
import { objectArg } from '../args';
import { CMAE, type FeaturePool } from '../models/cmae';
import type { Device, Tensor } from '../tensor';
import { AbortError, FormatError, IOError, ValueError } from '../errors';
import { type Dataset, isInMemory, imageBytes, validateDataset } from '../data/dataset';
import { folderDecodeSize, loadImageFolder } from '../data/image-folder';
import { checkNormalization, type Normalization } from '../data/loader';
import type { PixelSource } from '../kernels/data';
import { normalizedView } from './images';

export interface Embedding {
  /** Position of the image in the data set (skipped images leave gaps). */
  index: number;
  /** The image's file (absolute), for image folders. */
  path?: string;
  /** Its class id, when the data set has labels. */
  label?: number;
  /** The encoder's pooled features, `dim` values (blocks·dim with EmbedOptions.blocks). */
  embedding: Float32Array;
}

export interface SkippedImage {
  index: number;
  path?: string;
  /** Why it could not be read (a FormatError or IOError naming the file). */
  error: Error;
}

export interface EmbedProgress {
  /** Images handled so far (embedded + skipped), of `total`. */
  done: number;
  total: number;
  embedded: number;
  skipped: number;
  elapsedSeconds: number;
  /** done / elapsedSeconds. */
  imagesPerSecond: number;
}

export interface EmbedOptions {
  /**
   * The pixel normalisation the encoder was trained with (0..1 units). Required with a model
   * object; with a checkpoint path the checkpoint's own (its metadata.normalization) is the default.
   */
  normalization?: Normalization;
  /** cls token, mean of the patch tokens, or 'avg' (see EncodeOptions); default: the model's own (CMAE.featurePool). */
  pool?: FeaturePool;
  /** The last `blocks` encoder blocks' features side by side (EncodeOptions.blocks): embeddings of blocks·dim values. Default 1. */
  blocks?: number;
  /** Images per encoder call, and per decoded batch. Default 64. */
  batchSize?: number;
  /** Images of a lazy data set (a folder) decoded at once. Default 4 (libuv's thread pool). */
  concurrency?: number;
  /** Where a checkpoint given by path is loaded. Default 'cpu'. */
  device?: Device;
  /** Stops the stream at the next batch: the iteration rejects with AbortError. */
  signal?: AbortSignal;
  /** Called after every batch. */
  onProgress?: (progress: EmbedProgress) => void;
  /** Called for each image that cannot be read. Default: process.emitWarning naming the file. */
  onSkip?: (skipped: SkippedImage) => void;
}

/** The stream `embed()` returns: iterate it once; the counts are live. */
export interface EmbeddingStream extends AsyncIterable<Embedding> {
  /** Images in the data set (known once iteration has started for a folder given by path). */
  readonly total: number;
  /** Embeddings handed out so far. */
  readonly embedded: number;
  /** The images skipped so far. */
  readonly skipped: readonly SkippedImage[];
}

interface Resolved {
  model: CMAE;
  normalization: Normalization;
  data: Dataset;
  owned: boolean;
}

/** A decoded, resized, normalised batch, and which data set images it holds. */
interface PreparedBatch {
  images?: Tensor<'float32'>;
  indices: number[];
}

/**
 * Streams the embeddings of `data` (a Dataset, or an image folder's path) under `model` (a CMAE,
 * or a checkpoint's path, then loaded and disposed by the stream). The arguments are checked now;
 * the work happens as the stream is iterated.
 */
export function embed(model: CMAE | string, data: Dataset | string, options?: EmbedOptions): EmbeddingStream {
  const o = objectArg(options, 'options', true);
  const { pool, batchSize = 64, concurrency = 4, blocks = 1 } = o;
  if (!(model instanceof CMAE) && (typeof model !== 'string' || model === '')) throw new ValueError(`model must be a CMAE or a checkpoint path, got ${typeof model}`);
  if (typeof data !== 'string' && (typeof data !== 'object' || data === null)) throw new ValueError(`data must be a Dataset or an image folder path, got ${String(data)}`);
  if (typeof data === 'string' && data === '') throw new ValueError('data must be a Dataset or an image folder path, got an empty string');
  if (pool !== undefined && pool !== 'cls' && pool !== 'mean' && pool !== 'avg') throw new ValueError(`pool must be 'cls', 'mean' or 'avg', got ${String(pool)}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValueError(`batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ValueError(`concurrency must be a positive integer, got ${concurrency}`);
  // (its upper bound, the encoder's depth, is encode()'s check once a checkpoint path is loaded)
  if (!Number.isInteger(blocks) || blocks < 1) throw new ValueError(`blocks must be a positive integer, got ${blocks}`);
  if (model instanceof CMAE && blocks > Math.max(1, model.config.depth)) {
    throw new ValueError(`blocks must be an integer from 1 to the encoder's depth (${model.config.depth}), got ${blocks}`);
  }
  if (model instanceof CMAE && o.normalization === undefined) {
    throw new ValueError('normalization is required with a model object (the {mean, std} it was trained with; a checkpoint path brings its own)');
  }
  if (model instanceof CMAE) checkNormalization(o.normalization!, model.config.channels, 'normalization');
  if (typeof data !== 'string') validateDataset(data);
  if (model instanceof CMAE && typeof data !== 'string') checkChannels(data, model);

  const skipped: SkippedImage[] = [];
  let total = typeof data === 'string' ? 0 : data.size;
  let embedded = 0;
  let started = false;
  const onSkip = o.onSkip ?? ((s: SkippedImage) => process.emitWarning(`skipped an unreadable image: ${s.error.message}`, 'CmaeWarning'));

  async function resolve(): Promise<Resolved> {
    let m: CMAE;
    let normalization = o.normalization;
    const owned = typeof model === 'string';
    if (typeof model === 'string') {
      m = await CMAE.load(model, { device: o.device });
      try {
        normalization ??= m.normalization;
        if (normalization === undefined) throw new FormatError(`${model}: the checkpoint records no normalization (metadata.normalization); pass options.normalization`);
        checkNormalization(normalization, m.config.channels, 'normalization');
      } catch (error) {
        m.dispose();
        throw error;
      }
    } else {
      m = model;
    }
    try {
      const d =
        typeof data === 'string'
          ? // No cache: every image is decoded once, and a large folder must not pile up in memory.
            await loadImageFolder(data, { size: folderDecodeSize(m.config.imageSize), channels: m.config.channels as 1 | 3, cacheSize: 0, concurrency })
          : data;
      checkChannels(d, m);
      return { model: m, normalization: normalization!, data: d, owned };
    } catch (error) {
      if (owned) m.dispose();
      throw error;
    }
  }

  async function* iterate(): AsyncGenerator<Embedding, void, undefined> {
    const t0 = performance.now();
    const { model: m, normalization, data: d, owned } = await resolve();
    total = d.size;
    const files = 'files' in d && Array.isArray(d.files) ? (d.files as readonly string[]) : undefined;
    const dim = m.config.dim * blocks;
    const steps = Math.ceil(d.size / batchSize);
    const prepare = (step: number): Promise<PreparedBatch> => {
      const begin = step * batchSize;
      const indices = Array.from({ length: Math.min(batchSize, d.size - begin) }, (_, i) => begin + i);
      const p = prepareBatch(d, indices, m, normalization, concurrency, (index, error) => {
        const s: SkippedImage = { index, path: files?.[index], error };
        skipped.push(s);
        onSkip(s);
      });
      p.catch(() => undefined); // a batch nobody awaits (the consumer stopped) must not crash the process
      return p;
    };
    let pending: Promise<PreparedBatch> | undefined;
    try {
      throwIfAborted(o.signal, 0);
      pending = steps > 0 ? prepare(0) : undefined;
      for (let step = 0; step < steps; step++) {
        const batch = await pending!;
        // The next batch decodes while this one is encoded, and no further one: bounded memory.
        pending = step + 1 < steps ? prepare(step + 1) : undefined;
        let features: Float32Array | undefined;
        if (batch.images) {
          try {
            features = await m.encode(batch.images, { pool, batchSize, blocks });
          } finally {
            batch.images.dispose();
          }
        }
        const done = Math.min(d.size, (step + 1) * batchSize);
        const elapsedSeconds = (performance.now() - t0) / 1000;
        o.onProgress?.({ done, total: d.size, embedded: embedded + batch.indices.length, skipped: skipped.length, elapsedSeconds, imagesPerSecond: done / Math.max(elapsedSeconds, 1e-9) });
        throwIfAborted(o.signal, embedded);
        for (let i = 0; i < batch.indices.length; i++) {
          const index = batch.indices[i];
          embedded++;
          yield { index, path: files?.[index], label: d.labels?.[index], embedding: features!.slice(i * dim, (i + 1) * dim) };
        }
      }
    } finally {
      if (pending) (await pending.catch(() => undefined))?.images?.dispose();
      if (owned) m.dispose();
    }
  }

  return {
    get total() {
      return total;
    },
    get embedded() {
      return embedded;
    },
    skipped,
    [Symbol.asyncIterator]() {
      if (started) throw new ValueError('an embedding stream can be iterated once; call embed() again');
      started = true;
      return iterate();
    },
  };
}

function throwIfAborted(signal: AbortSignal | undefined, embedded: number): void {
  if (signal?.aborted) throw new AbortError(`embedding cancelled after ${embedded} images`);
}

function checkChannels(data: Dataset, model: CMAE): void {
  if (data.channels !== model.config.channels) {
    throw new ValueError(`data '${data.name}' has ${data.channels}-channel images, the model expects ${model.config.channels}`);
  }
}

/**
 * Decodes (lazy data sets: image by image, `concurrency` at a time, unreadable ones reported and
 * left out) and makes the normalised, resized views of one batch on the model's device.
 */
async function prepareBatch(
  data: Dataset,
  indices: number[],
  model: CMAE,
  normalization: Normalization,
  concurrency: number,
  skip: (index: number, error: Error) => void,
): Promise<PreparedBatch> {
  let source: PixelSource;
  let local: Int32Array;
  let kept = indices;
  if (isInMemory(data)) {
    source = data;
    local = Int32Array.from(indices);
  } else {
    const per = imageBytes(data);
    const decoded: (Uint8Array | undefined)[] = new Array(indices.length);
    let next = 0;
    const worker = async () => {
      while (next < indices.length) {
        const i = next++;
        try {
          decoded[i] = await data.getPixels([indices[i]]);
        } catch (error) {
          // Unreadable or undecodable files are the user's data, not a failure of the run.
          if (!(error instanceof FormatError || error instanceof IOError)) throw error;
          skip(indices[i], error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, indices.length) }, worker));
    kept = indices.filter((_, i) => decoded[i] !== undefined);
    const pixels = new Uint8Array(kept.length * per);
    let row = 0;
    for (const image of decoded) if (image) pixels.set(image, per * row++);
    source = { pixels, size: kept.length, height: data.height, width: data.width, channels: data.channels };
    local = Int32Array.from({ length: kept.length }, (_, i) => i);
  }
  if (kept.length === 0) return { indices: [] };
  return { images: await normalizedView(source, local, model, normalization), indices: kept };
}
