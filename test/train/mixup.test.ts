// Mixup and CutMix (src/train/mixup.ts): the Beta draws, the mixed images and the matching λ.
import { describe, expect, it } from 'vitest';
import { ValueError, softTargets } from '../../src/index';
import { betaDraw, mixBatch } from '../../src/train/mixup';
import { makeRng } from '../../src/eval/rng';
import { randn } from '../helpers/check';

describe('mixup / cutmix', () => {
  it.each([0.2, 0.8, 1, 3])('Beta(α, α) draws have mean 1/2 and variance 1/(4(2α + 1)), α = %d', (alpha) => {
    const rng = makeRng(11);
    const n = 20000;
    const xs = Array.from({ length: n }, () => betaDraw(alpha, rng));
    expect(xs.every((x) => x >= 0 && x <= 1)).toBe(true); // α = 0.2 puts mass so near 0 and 1 that some draws round to them
    const mean = xs.reduce((a, b) => a + b, 0) / n;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    const want = 1 / (4 * (2 * alpha + 1));
    expect(Math.abs(mean - 0.5)).toBeLessThan(4 * Math.sqrt(want / n));
    expect(Math.abs(variance - want) / want).toBeLessThan(0.05);
  });

  const [N, C, S] = [4, 2, 8];
  const per = C * S * S;
  const images = randn(N * per, 3);

  it('mixup blends each image with the reversed batch by λ; the labels by the same λ', () => {
    const m = mixBatch(images, N, C, S, { mixup: 0.8, cutmix: 0 }, 5)!;
    expect(m.kind).toBe('mixup');
    expect(Array.from(m.partner)).toEqual([3, 2, 1, 0]);
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < per; k++) {
        const want = m.lambda * images[i * per + k] + (1 - m.lambda) * images[(N - 1 - i) * per + k];
        expect(Math.abs(m.images[i * per + k] - want)).toBeLessThan(1e-6);
      }
    }
    const t = softTargets(Int32Array.from([0, 1, 2, 3]), 4, 0.1, m);
    expect(t[0 * 4 + 0]).toBeCloseTo(0.025 + m.lambda * 0.9, 6);
    expect(t[0 * 4 + 3]).toBeCloseTo(0.025 + (1 - m.lambda) * 0.9, 6);
    for (let i = 0; i < N; i++) expect(t.subarray(i * 4, i * 4 + 4).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
  });

  it('cutmix pastes one box of the partner into every image; λ is the share left', () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const m = mixBatch(images, N, C, S, { mixup: 0, cutmix: 1 }, seed)!;
      expect(m.kind).toBe('cutmix');
      for (let i = 0; i < N; i++) {
        let fromPartner = 0;
        for (let k = 0; k < per; k++) {
          const own = images[i * per + k];
          const other = images[m.partner[i] * per + k];
          expect(m.images[i * per + k] === own || m.images[i * per + k] === other).toBe(true);
          if (m.images[i * per + k] === other && other !== own) fromPartner++;
        }
        expect(fromPartner / per).toBeCloseTo(1 - m.lambda, 10);
      }
    }
  });

  it('both on: the switch probability picks CutMix or mixup per batch; off: nothing; bad α: ValueError', () => {
    const kinds = new Set(Array.from({ length: 40 }, (_, s) => mixBatch(images, N, C, S, { mixup: 0.8, cutmix: 1 }, s)!.kind));
    expect(kinds).toEqual(new Set(['mixup', 'cutmix']));
    expect(mixBatch(images, N, C, S, { mixup: 0, cutmix: 0 }, 1)).toBeUndefined();
    expect(mixBatch(images, N, C, S, { mixup: 0.8, cutmix: 0 }, 9)).toEqual(mixBatch(images, N, C, S, { mixup: 0.8, cutmix: 0 }, 9));
  });
});

describe('finetune() with mixup and cutmix', () => {
  it('trains with finite losses; a negative α is refused', async () => {
    const { Classifier } = await import('../../src/index');
    const { DataLoader } = await import('../../src/data/index');
    const { noiseDataset } = await import('../helpers/fixtures');
    const { finetune } = await import('../../src/train/finetune');
    const normalization = { mean: [0.5], std: [0.25] };
    const model = await Classifier.create({ preset: 'micro', numClasses: 4 });
    const data = new DataLoader(noiseDataset(32), { batchSize: 8, targetView: 'none', normalize: normalization, augment: { outSize: 16, shiftRange: 0 } });
    const base = { model, data, test: noiseDataset(8, 3), testOptions: { imageSize: 16, normalization }, epochs: 1 };
    const losses: number[] = [];
    const r = await finetune({ ...base, mixup: 0.8, cutmix: 1, onStep: (s) => losses.push(s.loss) });
    expect(r.steps).toBe(4);
    expect(losses.every(Number.isFinite)).toBe(true);
    await expect(finetune({ ...base, mixup: -1 })).rejects.toThrow(ValueError);
    await expect(finetune({ ...base, mixup: -1 })).rejects.toThrow(/mixup must be a non-negative Beta α/);
    model.dispose();
  });
});
