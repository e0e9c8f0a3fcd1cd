/**
 * CIFAR-10, binary version (cifar-10-binary.tar.gz, extracted): data_batch_1..5.bin (train) and
 * test_batch.bin (test). Each record is 1 label byte then 3072 pixel bytes: the 32×32 red plane,
 * then green, then blue (row-major). Records are converted to HWC.
 */
import { promises as fsp } from 'node:fs';
import * as nodePath from 'node:path';
import { FormatError, IOError, ValueError } from '../errors';
import type { InMemoryDataset } from './dataset';
import { readBytes, requireDir, statKind } from './files';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const SIDE = 32;
const PLANE = SIDE * SIDE;
const RECORD = 1 + 3 * PLANE;

/** Decodes CIFAR-10 binary records into (pixels HWC, labels). `file` names the source in errors. */
export function parseCifar10Batch(bytes: Uint8Array, file: string): { pixels: Uint8Array; labels: Int32Array } {
  if (bytes.length === 0 || bytes.length % RECORD !== 0) {
    throw new FormatError(`${file}: ${bytes.length} bytes is not a whole number of CIFAR-10 records of ${RECORD} bytes (truncated or not a CIFAR-10 binary batch)`);
  }
  const n = bytes.length / RECORD;
  const pixels = new Uint8Array(n * 3 * PLANE);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const rec = r * RECORD;
    const label = bytes[rec];
    if (label > 9) throw new FormatError(`${file}: record ${r} has label ${label}, CIFAR-10 labels are 0..9`);
    labels[r] = label;
    const out = r * 3 * PLANE;
    for (let p = 0; p < PLANE; p++) {
      pixels[out + 3 * p] = bytes[rec + 1 + p];
      pixels[out + 3 * p + 1] = bytes[rec + 1 + PLANE + p];
      pixels[out + 3 * p + 2] = bytes[rec + 1 + 2 * PLANE + p];
    }
  }
  return { pixels, labels };
}

/** Encodes HWC images and labels as CIFAR-10 binary records (for tests and exports). */
export function encodeCifar10Batch(pixels: Uint8Array, labels: ArrayLike<number>): Uint8Array {
  const n = labels.length;
  if (pixels.length !== n * 3 * PLANE) throw new ValueError(`pixels has ${pixels.length} bytes, ${n} images of 32x32x3 need ${n * 3 * PLANE}`);
  const out = new Uint8Array(n * RECORD);
  for (let r = 0; r < n; r++) {
    out[r * RECORD] = labels[r];
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++) out[r * RECORD + 1 + c * PLANE + p] = pixels[r * 3 * PLANE + 3 * p + c];
    }
  }
  return out;
}

/**
 * Loads a split from a directory holding the .bin batches (or its cifar-10-batches-bin/
 * sub-directory, as the archive extracts).
 */
export async function loadCifar10(dir: string, options: { split?: 'train' | 'test' } = {}): Promise<InMemoryDataset> {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new ValueError(`split must be 'train' or 'test', got ${String(split)}`);
  await requireDir(dir, 'CIFAR-10');
  const nested = nodePath.join(dir, 'cifar-10-batches-bin');
  const root = (await statKind(nested)) === 'dir' ? nested : dir;
  const names = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const parts: { pixels: Uint8Array; labels: Int32Array }[] = [];
  for (const name of names) {
    const file = nodePath.join(root, name);
    if ((await statKind(file)) !== 'file') throw new IOError(`CIFAR-10 ${split} batch ${file} is missing`);
    parts.push(parseCifar10Batch(await readBytes(file), file));
  }
  const size = parts.reduce((s, p) => s + p.labels.length, 0);
  const pixels = new Uint8Array(size * 3 * PLANE);
  const labels = new Int32Array(size);
  let at = 0;
  for (const p of parts) {
    pixels.set(p.pixels, at * 3 * PLANE);
    labels.set(p.labels, at);
    at += p.labels.length;
  }
  let classNames = CIFAR10_CLASSES;
  try {
    const meta = (await fsp.readFile(nodePath.join(root, 'batches.meta.txt'), 'utf8')).split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    if (meta.length === 10) classNames = meta;
  } catch {
    // no metadata file: keep the standard names
  }
  return { name: `cifar10-${split}`, size, height: SIDE, width: SIDE, channels: 3, pixels, labels, numClasses: 10, classNames };
}
