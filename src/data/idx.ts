/**
 * IDX files (the MNIST / Fashion-MNIST format), raw or gzipped.
 *
 * Layout: 2 zero bytes, a type byte (0x08 = unsigned byte, the only type image datasets use), the
 * number of dimensions d, then d big-endian u32 sizes, then the data in row-major order. Images
 * are magic 0x00000803 (N, H, W); labels 0x00000801 (N). Reading is strict: a wrong magic, a
 * truncated file or trailing bytes throw FormatError naming the file.
 */
import * as nodePath from 'node:path';
import { FormatError, IOError, ValueError } from '../errors';
import type { InMemoryDataset } from './dataset';
import { readMaybeGzip, requireDir, statKind } from './files';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = { 0x08: 'ubyte', 0x09: 'byte', 0x0b: 'short', 0x0c: 'int', 0x0d: 'float', 0x0e: 'double' };

/** Parses IDX bytes (already gunzipped). `file` names the source in error messages. */
export function parseIdx(bytes: Uint8Array, file: string, expectedDims?: number): IdxArray {
  if (bytes.length < 4) throw new FormatError(`${file}: too short for an IDX header (${bytes.length} bytes)`);
  const magic = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  const hex = `0x${magic.toString(16).padStart(8, '0')}`;
  if (bytes[0] !== 0 || bytes[1] !== 0 || !(bytes[2] in TYPE_NAMES)) {
    throw new FormatError(`${file}: bad IDX magic ${hex} (expected 0x00000803 for images or 0x00000801 for labels)`);
  }
  if (bytes[2] !== 0x08) throw new FormatError(`${file}: IDX element type ${TYPE_NAMES[bytes[2]]} (magic ${hex}) is not supported, only unsigned bytes`);
  const ndim = bytes[3];
  if (expectedDims !== undefined && ndim !== expectedDims) {
    throw new FormatError(`${file}: IDX magic ${hex} has ${ndim} dimensions, expected ${expectedDims} (magic 0x0000080${expectedDims})`);
  }
  if (ndim < 1) throw new FormatError(`${file}: IDX magic ${hex} declares no dimensions`);
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) throw new FormatError(`${file}: truncated IDX header (${bytes.length} bytes, need ${headerBytes} for ${ndim} dimensions)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const have = bytes.length - headerBytes;
  if (have < count) throw new FormatError(`${file}: truncated IDX data: dims [${dims.join(', ')}] need ${count} bytes, file has ${have}`);
  if (have > count) throw new FormatError(`${file}: ${have - count} unexpected bytes after the IDX data of dims [${dims.join(', ')}]`);
  return { dims, data: bytes.subarray(headerBytes) };
}

/**
 * The byte size an IDX header declares (header + data). A prefix too short for its header is the
 * whole (inflated) file, so its own length is the size: parseIdx then names what is missing. Lets a
 * gzipped file be inflated only as far as it claims.
 */
function idxDeclaredSize(header: Uint8Array): number {
  if (header.length < 4 || header.length < 4 + 4 * header[3]) return header.length;
  const ndim = header[3];
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  let count = 1;
  for (let i = 0; i < ndim; i++) count *= view.getUint32(4 + 4 * i, false);
  return 4 + 4 * ndim + count;
}

/** Reads one IDX file (gzip detected from its first bytes; inflated only as far as its header declares). */
export async function readIdx(file: string, expectedDims?: number): Promise<IdxArray> {
  // 4 + 4·255: the longest IDX header.
  return parseIdx(await readMaybeGzip(file, { headerBytes: 1024, expectedSize: idxDeclaredSize }), file, expectedDims);
}

/** Encodes unsigned-byte data as IDX (for tests and exports). */
export function encodeIdx(data: Uint8Array, dims: readonly number[]): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new ValueError(`data has ${data.length} bytes but dims [${dims.join(', ')}] need ${count}`);
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

export interface IdxFiles {
  images: string;
  labels?: string;
}

export interface LoadIdxOptions {
  /** Which split to look for in a directory: train-* or t10k-* (also test-*). Default 'train'. */
  split?: 'train' | 'test';
  name?: string;
  /** Class names (e.g. Fashion-MNIST's), stored on the dataset. */
  classNames?: string[];
}

/** Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function candidates(split: 'train' | 'test', kind: 'images' | 'labels'): string[] {
  const prefixes = split === 'train' ? ['train'] : ['t10k', 'test'];
  const idxDim = kind === 'images' ? 3 : 1;
  const names: string[] = [];
  for (const p of prefixes) {
    for (const sep of ['-', '.']) {
      const base = `${p}-${kind}${sep}idx${idxDim}-ubyte`;
      names.push(base, `${base}.gz`);
    }
  }
  return names;
}

async function findIn(dir: string, names: string[]): Promise<string | undefined> {
  for (const n of names) {
    const p = nodePath.join(dir, n);
    if ((await statKind(p)) === 'file') return p;
  }
  return undefined;
}

/** Finds the images and labels files of a split in an MNIST-layout directory (IOError if absent). */
export async function findIdxFiles(dir: string, split: 'train' | 'test' = 'train'): Promise<Required<IdxFiles>> {
  await requireDir(dir, 'IDX dataset');
  const imageNames = candidates(split, 'images');
  const labelNames = candidates(split, 'labels');
  const images = await findIn(dir, imageNames);
  if (!images) throw new IOError(`no ${split} images file in ${dir} (looked for ${imageNames.join(', ')})`);
  const labels = await findIn(dir, labelNames);
  if (!labels) throw new IOError(`no ${split} labels file in ${dir} (looked for ${labelNames.join(', ')})`);
  return { images, labels };
}

/**
 * Loads an IDX image dataset: a directory in MNIST layout (train-images-idx3-ubyte[.gz] +
 * train-labels-idx1-ubyte[.gz], or t10k-* for split 'test'), or explicit files (labels optional).
 * Images may be (N, H, W) or (N, H, W, C) with C = 1 or 3.
 */
export async function loadIdx(source: string | IdxFiles, options: LoadIdxOptions = {}): Promise<InMemoryDataset> {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new ValueError(`split must be 'train' or 'test', got ${String(split)}`);
  const files: IdxFiles = typeof source === 'string' ? await findIdxFiles(source, split) : source;
  const images = await readIdx(files.images);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new FormatError(`${files.images}: IDX images must have 3 dimensions (N, H, W) (magic 0x00000803) or 4 (N, H, W, C), got ${images.dims.length}`);
  }
  const [n, h, w] = images.dims;
  const c = images.dims.length === 4 ? images.dims[3] : 1;
  if (c !== 1 && c !== 3) throw new FormatError(`${files.images}: IDX images must have 1 or 3 channels, got ${c}`);
  let labels: Int32Array | undefined;
  let numClasses: number | undefined;
  if (files.labels) {
    const l = await readIdx(files.labels, 1);
    if (l.dims[0] !== n) throw new FormatError(`${files.labels}: ${l.dims[0]} labels but ${files.images} has ${n} images`);
    labels = Int32Array.from(l.data);
    numClasses = labels.reduce((m, v) => Math.max(m, v + 1), 0);
    if (options.classNames) numClasses = Math.max(numClasses, options.classNames.length);
  }
  const name = options.name ?? (typeof source === 'string' ? `${nodePath.basename(nodePath.resolve(source))}-${split}` : nodePath.basename(files.images));
  return { name, size: n, height: h, width: w, channels: c, pixels: images.data, labels, numClasses, classNames: options.classNames };
}

/**
 * Fashion-MNIST from a directory in MNIST layout: `dir`, else $CMAE_FASHION_MNIST_DIR, else the
 * Debian package's location (/usr/share/datasets/fashion-mnist, `apt-get install dataset-fashion-mnist`).
 */
export async function loadFashionMnist(options: { split?: 'train' | 'test'; dir?: string } = {}): Promise<InMemoryDataset> {
  const dir = options.dir ?? process.env.CMAE_FASHION_MNIST_DIR ?? DEBIAN_FASHION_MNIST_DIR;
  const split = options.split ?? 'train';
  return loadIdx(dir, { split, name: `fashion-mnist-${split}`, classNames: FASHION_MNIST_CLASSES });
}
