/**
 * The `tiny` model learns on real images (the MNIST digits of the `mnist` package): over 200 steps
 * the reconstruction loss falls well below its starting value, in CMAE and in MAE mode.
 */
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, DataLoader, holdoutSplit, loadMnist } from '../../src/index';

const steps = 200;
const batchSize = 16;

async function trainTiny(mode: 'cmae' | 'mae'): Promise<number[]> {
  const { train } = holdoutSplit(await loadMnist(), { testFraction: 0.1, seed: 0 });
  const model = await CMAE.create({ preset: 'tiny', channels: 1, mode, seed: 0, ...(mode === 'mae' ? { maskGroup: 1, maskRatio: 0.75 } : {}) });
  const loader = new DataLoader(train, { batchSize, seed: 0, twoViews: mode === 'cmae', augment: { outSize: 32, shiftRange: mode === 'cmae' ? 7 : 0 } });
  const optimizer = new AdamW(model, { lr: 5e-4 });
  const losses: number[] = [];
  for (let epoch = 0; losses.length < steps; epoch++) {
    for await (const batch of loader.batches(epoch)) {
      const parts = await model.lossAndGrad({ images: batch.images, targetImages: batch.targetImages });
      await optimizer.step();
      if (mode === 'cmae') await model.updateMomentum(0.996);
      batch.dispose();
      losses.push(parts.reconstruction);
      if (losses.length === steps) break;
    }
  }
  optimizer.dispose();
  model.dispose();
  return losses;
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

describe('tiny trains on MNIST digits', () => {
  it.each(['cmae', 'mae'] as const)('%s: reconstruction loss over the last 20 of 200 steps is well below the first 5', async (mode) => {
    const losses = await trainTiny(mode);
    expect(losses.every(Number.isFinite)).toBe(true);
    const start = mean(losses.slice(0, 5));
    const end = mean(losses.slice(-20));
    expect(end).toBeLessThan(0.5 * start);
  }, 300_000);
});
