/**
 * A folder of JPEG / PNG / WebP (and other formats sharp reads) images, decoded lazily.
 *
 * Layout: one sub-folder per class (labels = index in the sorted folder names, files found
 * recursively inside each, like torchvision's ImageFolder; files directly in the root are then
 * ignored), or a flat folder of images (no labels). Each image is decoded with sharp and resized to
 * size×size (fit 'cover': scaled to cover, centre-cropped; libvips' default filter), alpha dropped
 * (not composited, like PIL's convert('RGB')), grey expanded to RGB, or for channels 1 reduced to
 * grey with PIL's luma 0.299/0.587/0.114. Decoded images live in a bounded LRU cache, so a large folder
 * never has to fit in memory.
 */
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { FormatError, IOError, ValueError } from '../errors';
import type { LazyDataset } from './dataset';
import { requireDir } from './files';

// The part of sharp's API used here (typed locally: sharp's own typings resolve differently under
// CommonJS and ESM module resolution).
interface SharpPipeline {
  resize(width: number, height: number, options: { fit: 'cover' }): SharpPipeline;
  toColourspace(space: string): SharpPipeline;
  removeAlpha(): SharpPipeline;
  raw(): SharpPipeline;
  toBuffer(options: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }>;
}
type SharpModule = (input: string) => SharpPipeline;

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
async function decodeImage(file: string, size: number, channels: 1 | 3): Promise<Uint8Array> {
  const sharp = loadSharp();
  let data: Buffer;
  let got: number;
  try {
    // Always decode to sRGB; grey output is computed below with PIL's luma (sharp's greyscale
    // works in linear light and gives different values).
    const result = await sharp(file).resize(size, size, { fit: 'cover' }).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    data = result.data;
    got = result.info.channels;
    if (result.info.width !== size || result.info.height !== size) throw new Error(`decoded to ${result.info.width}x${result.info.height}`);
  } catch (error) {
    const message = (error as Error).message;
    try {
      await fsp.access(file);
    } catch {
      throw new IOError(`cannot read image ${file}: no such file`);
    }
    throw new FormatError(`${file}: cannot decode image (${message})`);
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
  const { size, channels = 3, cacheSize = 4096, concurrency = 4 } = options;
  if (!Number.isInteger(size) || size <= 0) throw new ValueError(`size must be a positive integer, got ${size}`);
  if (channels !== 1 && channels !== 3) throw new ValueError(`channels must be 1 or 3, got ${String(channels)}`);
  if (!Number.isInteger(cacheSize) || cacheSize < 0) throw new ValueError(`cacheSize must be a non-negative integer, got ${cacheSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ValueError(`concurrency must be a positive integer, got ${concurrency}`);
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
        const pixels = await decodeImage(files[k], size, channels);
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
