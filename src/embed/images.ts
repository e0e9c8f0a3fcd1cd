/**
 * From encoded images to features: `model.embedImages(pathsOrBuffers)` (src/models/cmae.ts). Each
 * image is decoded as an image folder decodes it (src/data/image-folder.ts), made into the model's
 * view as embed() makes it (resize only, the normalisation applied) and encoded, a batch at a time.
 */
import { describeValue, objectArg } from '../args';
import { ValueError } from '../errors';
import { decodeImageBytes, folderDecodeSize } from '../data/image-folder';
import { readBytes } from '../data/files';
import { checkNormalization, resizeOnly, type Normalization } from '../data/loader';
import { makeViewsAsync, type PixelSource } from '../kernels/data';
import type { Tensor } from '../tensor';
import type { CMAE, FeaturePool } from '../models/cmae';

/** An image file's path, or the bytes of an encoded image (a Buffer or Uint8Array: PNG, JPEG, WebP, …). */
export type ImageSource = string | Uint8Array;

export interface EmbedImagesOptions {
  /** As encode(): 'cls', 'mean' or 'avg'; default the model's own (CMAE.featurePool). */
  pool?: FeaturePool;
  /** As encode(): the last `blocks` blocks' features side by side (N·blocks·dim). Default 1. */
  blocks?: number;
  /** Images decoded and encoded at once (bounds memory). Default 64. */
  batchSize?: number;
  /** Images decoded at once. Default 4 (libuv's thread pool). */
  concurrency?: number;
  /** Overrides the checkpoint's normalisation (model.normalization); required when the model has none. */
  normalization?: Normalization;
}

/** The features of `images` under `model`: a flat Float32Array of N·dim (N·blocks·dim), in the order given. */
export async function embedImages(model: CMAE, images: readonly ImageSource[], options?: EmbedImagesOptions): Promise<Float32Array> {
  const { pool, batchSize = 64, concurrency = 4, normalization = model.normalization, blocks = 1 } = objectArg(options, 'options', true);
  if (!Array.isArray(images)) throw new ValueError(`images must be an array of file paths or encoded image bytes (Buffer or Uint8Array), got ${describeValue(images)}`);
  images.forEach((image, i) => {
    if (!(typeof image === 'string' && image !== '') && !(image instanceof Uint8Array)) {
      throw new ValueError(`images[${i}] must be a file path or the bytes of an encoded image (Buffer or Uint8Array), got ${describeValue(image)}`);
    }
  });
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValueError(`options.batchSize must be a positive integer, got ${describeValue(batchSize)}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ValueError(`options.concurrency must be a positive integer, got ${describeValue(concurrency)}`);
  if (normalization === undefined) {
    throw new ValueError('options.normalization is required: this model records none (a checkpoint written by cmae pretrain or train() records it; CMAE.create() models have none)');
  }
  const { channels, imageSize, depth } = model.config;
  if (!Number.isInteger(blocks) || blocks < 1 || blocks > Math.max(1, depth)) {
    throw new ValueError(`options.blocks must be an integer from 1 to the encoder's depth (${depth}), got ${describeValue(blocks)}`);
  }
  const dim = model.config.dim * blocks;
  checkNormalization(normalization, channels, 'options.normalization');
  const features = new Float32Array(images.length * dim);
  for (let begin = 0; begin < images.length; begin += batchSize) {
    const batch = images.slice(begin, begin + batchSize);
    const side = folderDecodeSize(imageSize);
    const pixels = new Uint8Array(batch.length * side * side * channels);
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const i = next++;
        const image = batch[i];
        const decoded =
          typeof image === 'string'
            ? await decodeImageBytes(await readBytes(image), image, side, channels as 1 | 3)
            : await decodeImageBytes(image, `images[${begin + i}] (${image.length} bytes)`, side, channels as 1 | 3);
        pixels.set(decoded, i * decoded.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, worker));
    const source = { pixels, size: batch.length, height: side, width: side, channels };
    const view = await normalizedView(source, Int32Array.from(batch.keys()), model, normalization);
    try {
      features.set(await model.encode(view, { pool, batchSize, blocks }), begin * dim);
    } finally {
      view.dispose();
    }
  }
  return features;
}

/**
 * The model's view of images `indices` of `source`: resized to its imageSize and normalised, on its
 * device (embed() and embedImages() see images the same way as evaluation does).
 */
export async function normalizedView(source: PixelSource, indices: Int32Array, model: CMAE, normalization: Normalization): Promise<Tensor<'float32'>> {
  const params = { ...resizeOnly(model.config.imageSize), mean: normalization.mean, std: normalization.std, twoViews: false };
  // No random draws in a resize-only single view: seed and stream are irrelevant.
  const views = await makeViewsAsync(source, indices, params, 0, 0, { device: model.device });
  views.shifts.dispose();
  return views.online as Tensor<'float32'>;
}
