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

  it('compares directions, not lengths: both sides are L2-normalised before the similarity', () => {
    // Class 0 has a long training vector along x; class 1 a short one at 45°. A query at 40° is
    // nearest class 1 by cosine (0.996 vs 0.766) but class 0 by raw dot product (7.7 vs 1.0).
    const train = { features: Float32Array.from([10, 0, Math.SQRT1_2, Math.SQRT1_2]), labels: Int32Array.from([0, 1]), dim: 2 };
    const q = [Math.cos((40 * Math.PI) / 180), Math.sin((40 * Math.PI) / 180)];
    const test = { features: Float32Array.from(q), labels: Int32Array.from([1]), dim: 2 };
    expect(knnClassify(train, test, { k: 1 }).predictions[0]).toBe(1);
    // Scaling the query does not change the vote either (the query side is normalised too).
    const far = { features: Float32Array.from(q.map((v) => 1000 * v)), labels: Int32Array.from([1]), dim: 2 };
    const { predictions } = knnClassify(train, far, { k: 2, temperature: 0.07 });
    expect(predictions[0]).toBe(1); // exp(0.996/0.07) outweighs exp(0.766/0.07); unnormalised, 1000× would swamp it
  });

  it('votes with the exact cosine: the temperature decides between one close and two far neighbours', () => {
    // Query along x; class 0 one neighbour at cosine 0.9, class 1 two at cosine 0.5. Votes
    // exp(0.9/T) vs 2·exp(0.5/T): class 0 wins iff 0.4/T > ln 2, i.e. for T = 0.5 but not T = 0.6.
    // Every vector has a norm far from 1, so similarities that are not exactly cosines (no or a
    // wrong normalisation on either side: scaled by a factor outside [0.87, 1.04]) flip a vote.
    const at = (cos: number, sign: number, norm: number) => [norm * cos, sign * norm * Math.sqrt(1 - cos * cos)];
    const train = { features: Float32Array.from([...at(0.9, 1, 0.2), ...at(0.5, 1, 5), ...at(0.5, -1, 7)]), labels: Int32Array.from([0, 1, 1]), dim: 2 };
    const test = { features: Float32Array.from([3, 0]), labels: Int32Array.from([0]), dim: 2 };
    expect(knnClassify(train, test, { k: 3, temperature: 0.5 }).predictions[0]).toBe(0);
    expect(knnClassify(train, test, { k: 3, temperature: 0.6 }).predictions[0]).toBe(1);
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
    const result = linearProbe(train, test, { seed: 1 });
    expect(result.top1).toBeGreaterThan(0.95);
    expect(result.trainTop1).toBeGreaterThan(0.95);
    expect(result.predictions.length).toBe(120);
    expect([1e-4, 1e-3, 1e-2]).toContain(result.weightDecay);
    expect(result.iterations).toBeGreaterThan(0);
  });

  it('reaches the optimum of penalised logistic regression (float64 gradient descent as the reference)', () => {
    // Overlapping clusters, so the optimum is not at infinity; a constant dimension too.
    const train = clusters(3, 40, 5, 1.5, 11);
    const test = clusters(3, 20, 5, 1.5, 12);
    for (const set of [train, test]) for (let r = 0; r < set.labels.length; r++) set.features[r * 5 + 4] = 2.5;
    const lambda = 1e-2;
    const got = linearProbe(train, test, { weightDecay: lambda, tolerance: 1e-7, maxIterations: 1000 });
    // Reference: standardise with the train statistics, then plain gradient descent in float64.
    const [n, d, k] = [train.labels.length, 5, 3];
    const mean = new Float64Array(d);
    const std = new Float64Array(d);
    for (let j = 0; j < d; j++) {
      let s1 = 0;
      let s2 = 0;
      for (let r = 0; r < n; r++) s1 += train.features[r * d + j];
      mean[j] = s1 / n;
      for (let r = 0; r < n; r++) s2 += (train.features[r * d + j] - mean[j]) ** 2;
      std[j] = s2 / n > 1e-12 ? Math.sqrt(s2 / n) : 1;
    }
    const standardised = (set: typeof train) => Float64Array.from(set.features, (v, i) => (v - mean[i % d]) / std[i % d]);
    const [zTrain, zTest] = [standardised(train), standardised(test)];
    const w = new Float64Array(k * d);
    const b = new Float64Array(k);
    const logits = (zs: Float64Array, r: number) => {
      const out = new Float64Array(k);
      for (let c = 0; c < k; c++) {
        out[c] = b[c];
        for (let j = 0; j < d; j++) out[c] += w[c * d + j] * zs[r * d + j];
      }
      return out;
    };
    for (let it = 0; it < 20000; it++) {
      const gw = new Float64Array(k * d);
      const gb = new Float64Array(k);
      for (let r = 0; r < n; r++) {
        const l = logits(zTrain, r);
        const max = Math.max(...l);
        let sum = 0;
        for (let c = 0; c < k; c++) sum += Math.exp(l[c] - max);
        for (let c = 0; c < k; c++) {
          const g = (Math.exp(l[c] - max) / sum - (c === train.labels[r] ? 1 : 0)) / n;
          gb[c] += g;
          for (let j = 0; j < d; j++) gw[c * d + j] += g * zTrain[r * d + j];
        }
      }
      for (let i = 0; i < k * d; i++) w[i] -= 0.5 * (gw[i] + lambda * w[i]);
      for (let c = 0; c < k; c++) b[c] -= 0.5 * gb[c];
    }
    const predictOn = (zs: Float64Array, count: number) =>
      Array.from({ length: count }, (_, r) => {
        const l = logits(zs, r);
        return l.indexOf(Math.max(...l));
      });
    const predict = (set: typeof test) => predictOn(set === test ? zTest : zTrain, set.labels.length);
    expect(Array.from(got.predictions)).toEqual(predict(test));
    const trainPred = predict(train);
    expect(got.trainTop1).toBeCloseTo(trainPred.filter((p, r) => p === train.labels[r]).length / n, 10);
  });

  it('is deterministic for a seed and rejects bad options', () => {
    const train = clusters(3, 40, 6, 1, 2);
    const test = clusters(3, 10, 6, 1, 2);
    const a = linearProbe(train, test, { seed: 5 });
    const b = linearProbe(train, test, { seed: 5 });
    expect(Array.from(a.predictions)).toEqual(Array.from(b.predictions));
    expect(a.weightDecay).toBe(b.weightDecay);
    expect(() => linearProbe(train, test, { weightDecay: -1 })).toThrow(/weightDecay must be 'auto' or a finite number >= 0, got -1/);
    expect(() => linearProbe(train, test, { weightDecays: [] })).toThrow(ValueError);
    expect(() => linearProbe(train, test, { heldOutFraction: 1 })).toThrow(/heldOutFraction must be in \(0, 1\)/);
    expect(() => linearProbe(train, test, { selectionRows: 1 })).toThrow(ValueError);
    expect(() => linearProbe(train, test, { maxIterations: 0 })).toThrow(/maxIterations must be a positive integer/);
    expect(() => linearProbe(train, test, { tolerance: 0 })).toThrow(ValueError);
    expect(() => linearProbe(train, { ...test, dim: 3, features: new Float32Array(90) }, {})).toThrow(/dim 6, test features 3/);
  });
});
