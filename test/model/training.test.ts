/**
 * The `tiny` model learns on real images (the MNIST digits of the `mnist` package): over 200 steps
 * the reconstruction loss of CMAE and MAE falls well below its starting value; MoCo v3, SimCLR and
 * DenseCL (on `nano`, whole views: the DataLoader's independent view pairs and the 2B-sample online pass
 * end to end) end below chance, the loss of features that cannot tell a positive from negatives.
 */
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, DataLoader, holdoutSplit, loadMnist, methods, presets, type Mode } from '../../src/index';

const steps = 200;
const batchSize = 16;

/**
 * The loss each step: the reconstruction of the methods that reconstruct, else the contrastive
 * one; DenseCL's is split into its global part, (contrastive − λ·dense)/(1 − λ) (MoCo v3's loss),
 * and its dense InfoNCE (`dense`).
 */
async function trainOnDigits(mode: Mode, preset: 'tiny' | 'nano', lr: number): Promise<{ losses: number[]; dense: number[] }> {
  const { train } = holdoutSplit(await loadMnist(), { testFraction: 0.1, seed: 0 });
  const traits = methods[mode];
  const model = await CMAE.create({ preset, channels: 1, mode, seed: 0 });
  const loader = new DataLoader(train, { batchSize, seed: 0, targetView: traits.targetView, augment: { outSize: 32, shiftRange: traits.targetView === 'none' ? 0 : 7 } });
  const optimizer = new AdamW(model, { lr });
  const losses: number[] = [];
  const dense: number[] = [];
  const lambda = model.config.denseWeight ?? 0;
  for (let epoch = 0; losses.length < steps; epoch++) {
    for await (const batch of loader.batches(epoch)) {
      const parts = await model.lossAndGrad({ images: batch.images, targetImages: batch.targetImages });
      await optimizer.step();
      if (traits.momentum) await model.updateMomentum(0.996);
      batch.dispose();
      if (parts.dense !== undefined) dense.push(parts.dense);
      losses.push(traits.reconstructs ? parts.reconstruction : (parts.contrastive - lambda * (parts.dense ?? 0)) / (1 - lambda));
      if (losses.length === steps) break;
    }
  }
  optimizer.dispose();
  model.dispose();
  return { losses, dense };
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

describe('models train on MNIST digits', () => {
  it.each(['cmae', 'mae'] as const)('tiny %s: reconstruction loss over the last 20 of 200 steps is well below the first 5', async (mode) => {
    const { losses } = await trainOnDigits(mode, 'tiny', 5e-4);
    expect(losses.every(Number.isFinite)).toBe(true);
    const start = mean(losses.slice(0, 5));
    const end = mean(losses.slice(-20));
    expect(end).toBeLessThan(0.5 * start);
  }, 300_000);

  // Chance: uniform logits. MoCo v3: each view's InfoNCE over the batch, 2τ·ln B, two views;
  // SimCLR: NT-Xent over the 2B − 1 candidates of each row; DenseCL: (1 − λ)·MoCo v3's + λ·dense
  // InfoNCE, whose rows also have B candidates (the matched key, the B − 1 other images), so the
  // same 2·2τ·ln B. Measured: MoCo v3 0.942 → 0.713 (chance 0.776), SimCLR 3.538 → 3.056 (chance
  // 3.434), DenseCL's global part 0.917 → 0.725; its dense part, below chance from the first step
  // (the matched key is the most similar token of a same-init momentum encoder, the negatives other
  // images), goes 0.296 → 0.439.
  it.each([
    ['mocov3', 2 * 2 * presets.nano.tau * Math.log(batchSize)],
    ['densecl', 2 * 2 * presets.nano.tau * Math.log(batchSize)],
    ['simclr', Math.log(2 * batchSize - 1)],
  ] as const)('nano %s: contrastive loss over the last 20 of 200 steps is below chance (%d) and below 0.9 of the first 5', async (mode, chance) => {
    const { losses, dense } = await trainOnDigits(mode, 'nano', 1e-3);
    expect(losses.every(Number.isFinite)).toBe(true);
    const start = mean(losses.slice(0, 5));
    const end = mean(losses.slice(-20));
    expect(end).toBeLessThan(chance);
    expect(end).toBeLessThan(0.9 * start);
    expect(dense.length).toBe(mode === 'densecl' ? steps : 0);
    for (const d of dense) expect(d).toBeGreaterThanOrEqual(0);
    if (mode === 'densecl') expect(mean(dense.slice(-20))).toBeLessThan(chance);
  }, 300_000);
});
