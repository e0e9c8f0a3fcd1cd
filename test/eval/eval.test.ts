import { describe, expect, it } from 'vitest';
import { ShapeError, ValueError, knnClassify, linearProbe } from '../../src/index';
import { makeRng } from '../helpers/check';

/** Gaussian clusters around random unit centres, `perClass` points per class. */
function clusters(classes: number, perClass: number, dim: number, spread: number, seed: number) {
  const rng = makeRng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, gauss));
  const features = new Float32Array(classes * perClass * dim);
  const labels = new Int32Array(classes * perClass);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < perClass; i++) {
      const row = c * perClass + i;
      labels[row] = c;
      for (let j = 0; j < dim; j++) features[row * dim + j] = centres[c][j] + spread * gauss();
    }
  }
  return { features, labels, dim };
}

describe('k-NN', () => {
  it('weights votes by exp(sim / T) over the top-k cosine neighbours (hand-computed case)', () => {
    // Train: two points of class 0 at angles ±10°, three of class 1 at 80°..100°; query at 30°.
    const deg = (a: number) => [Math.cos((a * Math.PI) / 180), Math.sin((a * Math.PI) / 180)];
    const train = { features: Float32Array.from([10, -10, 80, 90, 100].flatMap(deg)), labels: Int32Array.from([0, 0, 1, 1, 1]), dim: 2 };
    const test = { features: Float32Array.from(deg(30).map((v) => v * 5)), labels: Int32Array.from([0]), dim: 2 };
    // k = 5: class 0 gets exp(cos20°/T)+exp(cos40°/T), class 1 exp(cos50°/T)+exp(cos60°/T)+exp(cos70°/T).
    expect(knnClassify(train, test, { k: 5, temperature: 0.07 }).top1).toBe(1);
    // With a very large temperature the votes are nearly equal: three class-1 neighbours win.
    expect(knnClassify(train, test, { k: 5, temperature: 1e6 }).predictions[0]).toBe(1);
    // k = 1: the nearest neighbour (10°) decides.
    expect(knnClassify(train, test, { k: 1 }).predictions[0]).toBe(0);
  });

  it('separates well-separated clusters and is at chance on pure noise', () => {
    const train = clusters(5, 60, 16, 0.3, 1);
    const test = clusters(5, 20, 16, 0.3, 1); // same centres (same seed), fresh noise below
    expect(knnClassify(train, test).top1).toBeGreaterThan(0.95);
    const noise = clusters(5, 60, 16, 50, 3);
    const noiseTest = clusters(5, 40, 16, 50, 4);
    expect(knnClassify(noise, noiseTest).top1).toBeLessThan(0.45);
  });

  it('rejects inconsistent inputs', () => {
    const a = clusters(2, 4, 3, 1, 1);
    expect(() => knnClassify(a, { ...a, dim: 4 })).toThrow(ShapeError);
    expect(() => knnClassify(a, a, { k: 0 })).toThrow(ValueError);
    expect(() => knnClassify({ ...a, labels: new Int32Array(3) }, a)).toThrow(/labels/);
  });
});

describe('linear probe', () => {
  it('learns linearly separable clusters and reports train and test top-1', () => {
    const train = clusters(4, 100, 12, 0.5, 7);
    const test = clusters(4, 30, 12, 0.5, 7);
    const result = linearProbe(train, test, { epochs: 10, batchSize: 64, seed: 1 });
    expect(result.top1).toBeGreaterThan(0.95);
    expect(result.trainTop1).toBeGreaterThan(0.95);
    expect(result.predictions.length).toBe(120);
  });

  it('is deterministic for a seed and rejects bad options', () => {
    const train = clusters(3, 40, 6, 1, 2);
    const test = clusters(3, 10, 6, 1, 2);
    const a = linearProbe(train, test, { epochs: 3, seed: 5 });
    const b = linearProbe(train, test, { epochs: 3, seed: 5 });
    expect(Array.from(a.predictions)).toEqual(Array.from(b.predictions));
    expect(() => linearProbe(train, test, { epochs: 0 })).toThrow(ValueError);
    expect(() => linearProbe(train, test, { batchSize: 1 })).toThrow(ValueError);
  });
});
