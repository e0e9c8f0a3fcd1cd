/**
 * A folder of JPEG / PNG / WebP (and other formats sharp reads) images, decoded lazily.
 *
 * Layout: one sub-folder per class (labels = index in the sorted folder names, files found
 * recursively inside each, like torchvision's ImageFolder; files directly in the root are then
 * ignored), or a flat folder of images (no labels). Each image is decoded with sharp and resized to
 * size×size (fit 'cover': scaled to cover, centre-cropped; libvips' default filter), alpha dropped
 * (not composited, like PIL's convert('RGB')), grey expanded to RGB, or for channels 1 reduced to
 * grey with PIL's luma 0.299/0.587/0.114. Decoded images live in a bounded LRU cache, so a large folder
 * never has to fit in memory. Each file is read once and its header checked before any pixel is
 * decoded: an image claiming more than `maxPixels` (a forged or absurd header) is refused.
 */
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { FormatError, IOError, ValueError } from '../errors';
import type { LazyDataset } from './dataset';
import { MAX_DEFLATE_RATIO, readBytes, requireDir } from './files';

// The part of sharp's API used here (typed locally: sharp's own typings resolve differently under
// CommonJS and ESM module resolution).
interface SharpPipeline {
  metadata(): Promise<{ format?: string; width?: number; height?: number; pageHeight?: number }>;
  resize(width: number, height: number, options: { fit: 'cover' }): SharpPipeline;
  toColourspace(space: string): SharpPipeline;
  removeAlpha(): SharpPipeline;
  raw(): SharpPipeline;
  toBuffer(options: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }>;
}
type SharpModule = (input: Buffer, options: { limitInputPixels: number | false; failOn: 'warning' }) => SharpPipeline;

/** Default `maxPixels`: 16384², the largest imageSize a model takes (native/model/config.cc). */
export const MAX_IMAGE_PIXELS = 16384 * 16384;

/**
 * Most pixels a PNG, JPEG or GIF file may claim per byte of its size. No PNG holds more (deflate
 * expands at most 1032×, and a 1-bit PNG packs 8 pixels a byte); a Huffman-coded JPEG spends at
 * least one bit on each 8×8 block (at most 512 pixels a byte), GIF's 12-bit LZW codes at most 4096
 * pixels each. A small file claiming more is forged or truncated, and refusing it before decoding
 * matters: a progressive JPEG's decoder allocates the whole image's coefficients up front (an
 * 847-byte file claiming 16000×16000 took 1.5 GB). WebP, AVIF and TIFF have no such bound (an
 * 88-byte lossless WebP holds a flat 1024×1024): only maxPixels limits them.
 */
const MAX_PIXELS_PER_BYTE = 8 * MAX_DEFLATE_RATIO;
const BYTE_BOUNDED_FORMATS = new Set(['png', 'jpeg', 'gif']);

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp'];

export interface ImageFolderOptions {
  /** Side of the decoded square images. */
  size: number;
  /** 3 (RGB, default) or 1 (grey). */
  channels?: 1 | 3;
  /** Most decoded images kept in memory. Default 4096. */
  cacheSize?: number;
  /** Images decoded at once. Default 4. */
  concurrency?: number;
  /**
   * Largest image decoded, in pixels (width × height, of the first page), checked on the file's
   * header before decoding: a header claiming more is a FormatError. Default MAX_IMAGE_PIXELS.
   */
  maxPixels?: number;
  /** File extensions accepted (lower case, with the dot). */
  extensions?: string[];
  name?: string;
}

export interface CacheStats {
  cached: number;
  capacity: number;
  hits: number;
  misses: number;
}

export interface ImageFolderDataset extends LazyDataset {
  /** Absolute paths, in dataset order. */
  readonly files: readonly string[];
  cacheStats(): CacheStats;
  clearCache(): void;
}

let sharpModule: SharpModule | undefined;
function loadSharp(): SharpModule {
  if (sharpModule) return sharpModule;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sharpModule = require('sharp') as SharpModule;
    return sharpModule;
  } catch (error) {
    throw new IOError(`image folders need the 'sharp' package (npm install sharp): ${(error as Error).message}`);
  }
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function listImages(dir: string, extensions: Set<string>, recursive: boolean): Promise<string[]> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (error) {
    throw new IOError(`cannot list ${dir}: ${(error as Error).message}`);
  }
  entries.sort((a, b) => byName(a.name, b.name));
  const out: string[] = [];
  for (const e of entries) {
    const p = nodePath.join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive) out.push(...(await listImages(p, extensions, true)));
    } else if (e.isFile() && extensions.has(nodePath.extname(e.name).toLowerCase())) {
      out.push(p);
    }
  }
  return out;
}

/** Decodes one image file to size×size×channels uint8. */
async function decodeImage(file: string, size: number, channels: 1 | 3, maxPixels: number): Promise<Uint8Array> {
  // Read once: the header check and the decode see the same bytes (not a file replaced between
  // them), and sharp's per-filename cache never serves an older version of a rewritten file.
  return decodeImageBytes(await readBytes(file), file, size, channels, maxPixels);
}

/**
 * Decodes an encoded image (PNG, JPEG, … as read from a file) to size×size×channels uint8, as an
 * image folder does; `file` names it in errors. @internal
 */
export async function decodeImageBytes(bytes: Uint8Array, file: string, size: number, channels: 1 | 3, maxPixels = MAX_IMAGE_PIXELS): Promise<Uint8Array> {
  const sharp = loadSharp();
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const cannotDecode = (error: unknown) => new FormatError(`${file}: cannot decode image (${(error as Error).message})`);
  let claimed: Awaited<ReturnType<SharpPipeline['metadata']>>;
  try {
    // Header only (no pixel is decoded), unlimited so that the check below can say what it claims.
    claimed = await sharp(input, { limitInputPixels: false, failOn: 'warning' }).metadata();
  } catch (error) {
    throw cannotDecode(error);
  }
  const width = claimed.width ?? 0;
  const height = claimed.pageHeight ?? claimed.height ?? 0; // only the first page is decoded
  const claims = `${file}: its header claims ${width}x${height} = ${width * height} pixels`;
  if (width * height > maxPixels) throw new FormatError(`${claims}, more than maxPixels ${maxPixels} (refused before decoding)`);
  if (BYTE_BOUNDED_FORMATS.has(claimed.format ?? '') && width * height > MAX_PIXELS_PER_BYTE * bytes.length) {
    throw new FormatError(`${claims}, more than a ${bytes.length}-byte image file can hold (forged or truncated; refused before decoding)`);
  }
  let data: Buffer;
  let got: number;
  try {
    // Always decode to sRGB; grey output is computed below with PIL's luma (sharp's greyscale
    // works in linear light and gives different values). failOn 'warning': damaged pixel data
    // (truncated, bad CRC) is an error, never a half-grey image. limitInputPixels again, in case
    // the decoder disagrees with the header reader.
    const result = await sharp(input, { limitInputPixels: maxPixels, failOn: 'warning' })
      .resize(size, size, { fit: 'cover' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    data = result.data;
    got = result.info.channels;
    if (result.info.width !== size || result.info.height !== size) throw new Error(`decoded to ${result.info.width}x${result.info.height}`);
  } catch (error) {
    throw cannotDecode(error);
  }
  const n = size * size;
  const out = new Uint8Array(n * channels);
  if (got === channels) {
    out.set(data.subarray(0, n * channels));
  } else if (got === 1 && channels === 3) {
    for (let i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = data[i];
  } else if (got >= 3 && channels === 1) {
    for (let i = 0; i < n; i++) out[i] = Math.round(0.299 * data[got * i] + 0.587 * data[got * i + 1] + 0.114 * data[got * i + 2]);
  } else if (got >= 3 && channels === 3) {
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[3 * i + c] = data[got * i + c];
  } else {
    for (let i = 0; i < n; i++) out[channels === 3 ? 3 * i : i] = data[got * i];
    if (channels === 3) for (let i = 0; i < n; i++) out[3 * i + 1] = out[3 * i + 2] = out[3 * i];
  }
  return out;
}

/**
 * The side a folder's images are decoded at for a model of `imageSize` (at least 64; the views are
 * resampled from it). Every command that reads a folder for a model uses it, so that embeddings see
 * a folder's images as training and evaluation did.
 */
export function folderDecodeSize(imageSize: number): number {
  return Math.max(64, imageSize);
}

/** Lists an image folder and returns a lazy dataset over it (nothing is decoded yet). */
export async function loadImageFolder(dir: string, options: ImageFolderOptions): Promise<ImageFolderDataset> {
  const { size, channels = 3, cacheSize = 4096, concurrency = 4, maxPixels = MAX_IMAGE_PIXELS } = options;
  if (!Number.isInteger(size) || size <= 0) throw new ValueError(`size must be a positive integer, got ${size}`);
  if (channels !== 1 && channels !== 3) throw new ValueError(`channels must be 1 or 3, got ${String(channels)}`);
  if (!Number.isInteger(cacheSize) || cacheSize < 0) throw new ValueError(`cacheSize must be a non-negative integer, got ${cacheSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ValueError(`concurrency must be a positive integer, got ${concurrency}`);
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) throw new ValueError(`maxPixels must be a positive integer, got ${maxPixels}`);
  const extensions = new Set((options.extensions ?? IMAGE_EXTENSIONS).map((e) => e.toLowerCase()));
  await requireDir(dir, 'image folder');
  const root = nodePath.resolve(dir);
  const entries = (await fsp.readdir(root, { withFileTypes: true })).sort((a, b) => byName(a.name, b.name));
  const classDirs = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  let files: string[];
  let labels: Int32Array | undefined;
  let classNames: string[] | undefined;
  if (classDirs.length > 0) {
    files = [];
    const labelList: number[] = [];
    classNames = classDirs;
    for (let k = 0; k < classDirs.length; k++) {
      const inClass = await listImages(nodePath.join(root, classDirs[k]), extensions, true);
      files.push(...inClass);
      for (let i = 0; i < inClass.length; i++) labelList.push(k);
    }
    labels = Int32Array.from(labelList);
  } else {
    files = await listImages(root, extensions, false);
  }
  if (files.length === 0) throw new FormatError(`${root}: no images found (extensions ${[...extensions].join(', ')})`);

  const imageBytes = size * size * channels;
  const cache = new Map<number, Uint8Array>(); // insertion order = recency (oldest first)
  const stats = { hits: 0, misses: 0 };

  const remember = (index: number, pixels: Uint8Array) => {
    if (cacheSize === 0) return;
    cache.delete(index);
    cache.set(index, pixels);
    while (cache.size > cacheSize) cache.delete(cache.keys().next().value as number);
  };

  const getPixels = async (indices: ArrayLike<number>): Promise<Uint8Array> => {
    const out = new Uint8Array(indices.length * imageBytes);
    const missing = new Map<number, number[]>(); // image index → output positions
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i];
      if (!Number.isInteger(k) || k < 0 || k >= files.length) throw new ValueError(`index ${k} is out of range for ${files.length} images`);
      const hit = cache.get(k);
      if (hit) {
        stats.hits++;
        cache.delete(k);
        cache.set(k, hit);
        out.set(hit, i * imageBytes);
      } else {
        const slots = missing.get(k);
        if (slots) slots.push(i);
        else missing.set(k, [i]);
      }
    }
    const todo = [...missing.keys()];
    stats.misses += todo.length;
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const k = todo[next++];
        const pixels = await decodeImage(files[k], size, channels, maxPixels);
        for (const i of missing.get(k)!) out.set(pixels, i * imageBytes);
        remember(k, pixels);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
    return out;
  };

  return {
    name: options.name ?? nodePath.basename(root),
    size: files.length,
    height: size,
    width: size,
    channels,
    labels,
    numClasses: classNames?.length,
    classNames,
    files,
    getPixels,
    cacheStats: () => ({ cached: cache.size, capacity: cacheSize, hits: stats.hits, misses: stats.misses }),
    clearCache: () => cache.clear(),
  };
}
