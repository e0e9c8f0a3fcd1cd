/**
 * Image datasets: N images of one size, packed (N, H, W, C) uint8 HWC with C = 1 or 3, optional
 * int32 labels. Either in memory (`pixels`) or lazy (`getPixels(indices)`, e.g. an image folder
 * decoded on demand).
 */
import { ValueError } from '../errors';
import { permutation } from './shuffle';

export interface DatasetInfo {
  name: string;
  /** Number of images. */
  size: number;
  height: number;
  width: number;
  /** 1 (grey) or 3 (RGB). */
  channels: number;
  /** (size) class ids in [0, numClasses), when the dataset has labels. */
  labels?: Int32Array;
  numClasses?: number;
  classNames?: string[];
}

export interface InMemoryDataset extends DatasetInfo {
  /** (size, height, width, channels) uint8. */
  pixels: Uint8Array;
}

export interface LazyDataset extends DatasetInfo {
  /** The images at `indices`, packed (indices.length, height, width, channels) uint8. */
  getPixels(indices: ArrayLike<number>): Promise<Uint8Array>;
}

export type Dataset = InMemoryDataset | LazyDataset;

export function isInMemory(dataset: Dataset): dataset is InMemoryDataset {
  return (dataset as InMemoryDataset).pixels instanceof Uint8Array;
}

/** Bytes of one image. */
export function imageBytes(dataset: DatasetInfo): number {
  return dataset.height * dataset.width * dataset.channels;
}

function checkIndices(dataset: DatasetInfo, indices: ArrayLike<number>): void {
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i];
    if (!Number.isInteger(k) || k < 0 || k >= dataset.size) {
      throw new ValueError(`index ${k} (position ${i}) is out of range for dataset '${dataset.name}' of ${dataset.size} images`);
    }
  }
}

/** Pixels of the images at `indices` (copied, packed), for either kind of dataset. */
export async function gatherPixels(dataset: Dataset, indices: ArrayLike<number>): Promise<Uint8Array> {
  checkIndices(dataset, indices);
  if (!isInMemory(dataset)) return dataset.getPixels(indices);
  const n = imageBytes(dataset);
  const out = new Uint8Array(indices.length * n);
  for (let i = 0; i < indices.length; i++) out.set(dataset.pixels.subarray(indices[i] * n, (indices[i] + 1) * n), i * n);
  return out;
}

/** The images at `indices`, as a dataset of their own (in-memory datasets are copied; lazy ones map indices). */
export function subset<D extends Dataset>(dataset: D, indices: ArrayLike<number>, name = `${dataset.name}[subset]`): D {
  checkIndices(dataset, indices);
  const idx = Int32Array.from(indices as ArrayLike<number>);
  const labels = dataset.labels ? Int32Array.from(idx, (k) => dataset.labels![k]) : undefined;
  const info: DatasetInfo = {
    name,
    size: idx.length,
    height: dataset.height,
    width: dataset.width,
    channels: dataset.channels,
    labels,
    numClasses: dataset.numClasses,
    classNames: dataset.classNames,
  };
  if (isInMemory(dataset)) {
    const n = imageBytes(dataset);
    const pixels = new Uint8Array(idx.length * n);
    idx.forEach((k, i) => pixels.set(dataset.pixels.subarray(k * n, (k + 1) * n), i * n));
    return { ...info, pixels } as D;
  }
  const parent = dataset as LazyDataset;
  return {
    ...info,
    getPixels: (sub: ArrayLike<number>) => {
      checkIndices(info, sub);
      return parent.getPixels(Array.from(sub as ArrayLike<number>, (k) => idx[k]));
    },
  } as D;
}

export interface HoldoutOptions {
  /** Fraction of the images held out for testing, in (0, 1). Default 0.1. */
  testFraction?: number;
  seed?: number;
}

/**
 * A seeded random train/test split for datasets without an official one. The same seed always gives
 * the same split; index order inside each part follows the dataset.
 */
export function holdoutSplit<D extends Dataset>(dataset: D, options: HoldoutOptions = {}): { train: D; test: D } {
  const { testFraction = 0.1, seed = 0 } = options;
  if (!(testFraction > 0 && testFraction < 1)) throw new ValueError(`testFraction must be in (0, 1), got ${testFraction}`);
  const nTest = Math.round(dataset.size * testFraction);
  if (nTest < 1 || nTest >= dataset.size) {
    throw new ValueError(`testFraction ${testFraction} of ${dataset.size} images leaves an empty train or test split`);
  }
  const perm = permutation(dataset.size, seed, 0x7e57);
  const test = Int32Array.from(perm.subarray(0, nTest)).sort();
  const train = Int32Array.from(perm.subarray(nTest)).sort();
  return { train: subset(dataset, train, `${dataset.name}[train]`), test: subset(dataset, test, `${dataset.name}[test]`) };
}

/** Checks the invariants every loader promises (sizes, label range); throws ValueError. */
export function validateDataset(dataset: Dataset): void {
  const { name, size, height, width, channels } = dataset;
  for (const [k, v] of Object.entries({ size, height, width })) {
    if (!Number.isInteger(v) || v < 0) throw new ValueError(`dataset '${name}': ${k} must be a non-negative integer, got ${v}`);
  }
  if (channels !== 1 && channels !== 3) throw new ValueError(`dataset '${name}': channels must be 1 or 3, got ${channels}`);
  if (isInMemory(dataset) && dataset.pixels.length !== size * height * width * channels) {
    throw new ValueError(`dataset '${name}': pixels has ${dataset.pixels.length} bytes, expected ${size * height * width * channels}`);
  }
  if (dataset.labels) {
    if (dataset.labels.length !== size) throw new ValueError(`dataset '${name}': ${dataset.labels.length} labels for ${size} images`);
    const nc = dataset.numClasses ?? Infinity;
    for (let i = 0; i < size; i++) {
      const l = dataset.labels[i];
      if (l < 0 || l >= nc) throw new ValueError(`dataset '${name}': label ${l} of image ${i} is outside [0, ${nc})`);
    }
  }
}
