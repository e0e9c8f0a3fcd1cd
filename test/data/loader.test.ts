import { describe, expect, it } from 'vitest';
import { ValueError, kernels } from '../../src/index';
import { DataLoader, type Batch, type BatchTiming, type InMemoryDataset, type LazyDataset, gatherPixels, permutation } from '../../src/data/index';
import type { AugmentOptions } from '../../src/data/loader';
import { coordinateImages } from './reference';

const N = 50;
const H = 12;
const dataset: InMemoryDataset = {
  name: 'synthetic',
  size: N,
  height: H,
  width: H,
  channels: 3,
  pixels: coordinateImages(N, H, H, 3, 5),
  labels: Int32Array.from({ length: N }, (_, i) => i % 7),
  numClasses: 7,
};
const augment: AugmentOptions = { outSize: 8, shiftRange: 3 };

interface Plain {
  indices: number[];
  labels?: number[];
  shifts?: number[];
  images: Float32Array;
  target?: Float32Array;
}

async function collect(loader: DataLoader, epoch: number, startBatch = 0): Promise<Plain[]> {
  const out: Plain[] = [];
  for await (const b of loader.batches(epoch, startBatch)) {
    out.push({
      indices: Array.from(b.indices),
      labels: b.labels && Array.from(b.labels),
      shifts: b.shifts && Array.from(b.shifts),
      images: b.images.toArray(),
      target: b.targetImages?.toArray(),
    });
    b.dispose();
  }
  return out;
}

describe('permutation', () => {
  it('is a seeded permutation', () => {
    const p = permutation(1000, 3, 0);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(permutation(1000, 3, 0)).toEqual(p);
    expect(permutation(1000, 3, 1)).not.toEqual(p);
    expect(permutation(1000, 4, 0)).not.toEqual(p);
  });
});

describe('DataLoader', () => {
  it('covers every index once per epoch, reshuffles between epochs, keeps labels aligned', async () => {
    const loader = new DataLoader(dataset, { batchSize: 8, seed: 1, dropLast: false, augment });
    expect(loader.stepsPerEpoch).toBe(7);
    const e0 = await collect(loader, 0);
    const e1 = await collect(loader, 1);
    for (const epoch of [e0, e1]) {
      expect(epoch.map((b) => b.indices.length)).toEqual([8, 8, 8, 8, 8, 8, 2]);
      const all = epoch.flatMap((b) => b.indices);
      expect([...all].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i));
      for (const b of epoch) {
        expect(b.labels).toEqual(b.indices.map((k) => k % 7));
        expect(b.images.length).toBe(b.indices.length * 3 * 64);
        expect(b.target!.length).toBe(b.images.length);
        expect(b.shifts!.length).toBe(2 * b.indices.length);
        expect(b.shifts!.every((s) => s >= 0 && s <= 3)).toBe(true);
      }
    }
    expect(e1.flatMap((b) => b.indices)).not.toEqual(e0.flatMap((b) => b.indices));
    // A fresh loader with the same seed reproduces the epoch exactly.
    const again = await collect(new DataLoader(dataset, { batchSize: 8, seed: 1, dropLast: false, augment }), 1);
    expect(again.map((b) => b.indices)).toEqual(e1.map((b) => b.indices));
    expect(again[3].images).toEqual(e1[3].images);
    const unshuffled = await collect(new DataLoader(dataset, { batchSize: 8, shuffle: false, augment }), 0);
    expect(unshuffled[1].indices).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('startBatch resumes an epoch with exactly the batches an uninterrupted pass yields', async () => {
    const loader = new DataLoader(dataset, { batchSize: 8, seed: 3, augment });
    const full = await collect(loader, 2);
    const resumed = await collect(loader, 2, 4);
    expect(resumed).toEqual(full.slice(4));
    expect(await collect(loader, 2, loader.stepsPerEpoch)).toEqual([]);
    await expect(collect(loader, 2, loader.stepsPerEpoch + 1)).rejects.toThrow(ValueError);
  });

  it('drops the last incomplete batch by default', async () => {
    const loader = new DataLoader(dataset, { batchSize: 8, augment });
    expect(loader.stepsPerEpoch).toBe(6);
    const batches = await collect(loader, 0);
    expect(batches.length).toBe(6);
    expect(batches.every((b) => b.indices.length === 8)).toBe(true);
    expect(() => new DataLoader(dataset, { batchSize: 64, augment })).toThrowError(ValueError);
    expect(() => new DataLoader(dataset, { batchSize: 0, augment })).toThrowError(ValueError);
  });

  it('prefetching yields exactly the batches of no prefetching, and reports timings', async () => {
    const timings: BatchTiming[] = [];
    const withPrefetch = new DataLoader(dataset, { batchSize: 16, seed: 9, augment, onTiming: (t) => timings.push(t) });
    const without = new DataLoader(dataset, { batchSize: 16, seed: 9, augment, prefetch: false });
    const a = await collect(withPrefetch, 2);
    const b = await collect(without, 2);
    expect(a.length).toBe(3);
    for (let i = 0; i < a.length; i++) {
      expect(a[i].indices).toEqual(b[i].indices);
      expect(a[i].shifts).toEqual(b[i].shifts);
      expect(a[i].images).toEqual(b[i].images);
      expect(a[i].target).toEqual(b[i].target);
    }
    expect(timings.map((t) => [t.epoch, t.step])).toEqual([[2, 0], [2, 1], [2, 2]]);
    expect(timings.every((t) => t.waitMs >= 0 && t.prepareMs > 0)).toBe(true);
    expect(withPrefetch.stats.batches).toBe(3);
    expect(withPrefetch.stats.waitMs).toBeCloseTo(timings.reduce((s, t) => s + t.waitMs, 0), 6);
  });

  it('overlaps augmentation of the next batch with the consumer', async () => {
    const big: InMemoryDataset = { ...dataset, size: 256, pixels: coordinateImages(256, 32, 32, 3, 1), labels: undefined, height: 32, width: 32 };
    const timings: BatchTiming[] = [];
    const loader = new DataLoader(big, { batchSize: 64, seed: 1, augment: { outSize: 32, shiftRange: 7 }, onTiming: (t) => timings.push(t) });
    for await (const b of loader.batches(0)) {
      const t0 = performance.now();
      while (performance.now() - t0 < 30); // a 30 ms "training step" that keeps the JS thread busy
      b.dispose();
    }
    expect(loader.stats.batches).toBe(4);
    // Batches 1..3 were augmented during the previous step: the consumer hardly waited for them.
    const later = timings.slice(1);
    const wait = later.reduce((s, t) => s + t.waitMs, 0);
    const prepare = later.reduce((s, t) => s + t.prepareMs, 0);
    expect(wait).toBeLessThan(0.5 * prepare);
  });

  it('lazy datasets give the same batches as in-memory ones', async () => {
    let calls = 0;
    const lazy: LazyDataset = {
      name: 'lazy',
      size: N,
      height: H,
      width: H,
      channels: 3,
      labels: dataset.labels,
      numClasses: 7,
      getPixels: async (indices) => {
        calls++;
        return gatherPixels(dataset, indices);
      },
    };
    const opts = { batchSize: 10, seed: 4, augment, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } };
    const a = await collect(new DataLoader(lazy, opts), 0);
    const b = await collect(new DataLoader(dataset, opts), 0);
    expect(calls).toBe(5);
    for (let i = 0; i < a.length; i++) {
      expect(a[i].images).toEqual(b[i].images);
      expect(a[i].target).toEqual(b[i].target);
      expect(a[i].labels).toEqual(b[i].labels);
    }
  });

  it("normalize 'dataset' standardises each channel; one view in MAE mode", async () => {
    // No augmentation: the view is the image itself (a same-size bicubic resize is the identity).
    const loader = new DataLoader(dataset, {
      batchSize: 10,
      shuffle: false,
      targetView: 'none',
      augment: { outSize: H, shiftRange: 0, randomCrop: false, flipP: 0 },
    });
    const norm = await loader.normalization();
    expect(norm.mean.length).toBe(3);
    const sums = [0, 0, 0];
    const sq = [0, 0, 0];
    let count = 0;
    for await (const b of loader.batches(0)) {
      expect(b.targetImages).toBeUndefined();
      expect(b.shifts).toBeUndefined();
      const x = b.images.toArray();
      for (let i = 0; i < x.length; i++) {
        const c = Math.floor(i / (H * H)) % 3;
        sums[c] += x[i];
        sq[c] += x[i] * x[i];
      }
      count += b.indices.length * H * H;
      b.dispose();
    }
    for (let c = 0; c < 3; c++) {
      expect(sums[c] / count).toBeCloseTo(0, 4);
      expect(sq[c] / count).toBeCloseTo(1, 3);
    }
  });

  it('every (epoch, step, view) draws from its own augmentation stream', () => {
    const loader = new DataLoader(dataset, { batchSize: 8, seed: 4, targetView: 'independent', normalize: 'none', augment });
    const n = loader.stepsPerEpoch;
    // The layout, written down: batch counter epoch·stepsPerEpoch + step; the second view's in the upper half of 2^48.
    expect(loader.streamOf(0, 0)).toBe(kernels.augmentStream(0));
    expect(loader.streamOf(2, 3)).toBe(kernels.augmentStream(2 * n + 3));
    expect(loader.streamOf(2, 3, true)).toBe(kernels.augmentStream(2 * n + 3 + 2 ** 47));
    const seen = new Set<number>();
    for (let epoch = 0; epoch < 50; epoch++) {
      for (let step = 0; step < n; step++) for (const second of [false, true]) seen.add(loader.streamOf(epoch, step, second));
    }
    expect(seen.size).toBe(50 * n * 2);
  });

  it("targetView 'independent': each view is the augmented view of its own make_views draw (MoCo v3's pairs)", async () => {
    const loader = new DataLoader(dataset, { batchSize: 8, seed: 4, targetView: 'independent', normalize: 'none', augment });
    const pairs = await collect(loader, 1);
    expect(pairs.length).toBe(6);
    const order = loader.order(1);
    for (const [step, batch] of pairs.entries()) {
      expect(batch.shifts).toBeUndefined();
      expect(batch.indices).toEqual(Array.from(order.slice(step * 8, step * 8 + 8)));
      const params = { ...augment, mean: [0, 0, 0], std: [1, 1, 1], twoViews: true };
      const idx = Int32Array.from(batch.indices);
      for (const [second, got] of [[false, batch.images], [true, batch.target!]] as const) {
        const views = kernels.makeViews(dataset, idx, params, 4, loader.streamOf(1, step, second));
        expect(got).toEqual(views.target!.toArray());
        for (const t of [views.online, views.target!, views.shifts]) t.dispose();
      }
      // Two different crops/colours of the same images, not one view twice.
      expect(batch.target).not.toEqual(batch.images);
    }
    expect(() => new DataLoader(dataset, { batchSize: 8, augment, targetView: 'both' as never })).toThrowError(
      /targetView must be 'shifted', 'independent' or 'none', got both/,
    );
  });

  it('stopping early disposes the prefetched batch and leaves the loader usable', async () => {
    const loader = new DataLoader(dataset, { batchSize: 8, augment });
    let seen: Batch | undefined;
    for await (const b of loader.batches(0)) {
      seen = b;
      break;
    }
    expect(seen!.indices.length).toBe(8);
    seen!.dispose();
    expect((await collect(loader, 0)).length).toBe(6);
  });
});
