/**
 * Activation recomputation (model.recomputeActivations; TransformerStack::layout's recompute): the
 * online encoder keeps only each block's output and runs each block's forward again in the
 * backward, with the same kernels on the same inputs — so training with it must give the same
 * bits as training without, for every method and for the classifier with drop path.
 */
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, Classifier, Tensor, ValueError, methods, nativeMemory, softTargets, type Mode } from '../../src/index';
import { randn } from '../helpers/check';

async function trainBits(mode: Mode, recompute: boolean): Promise<{ losses: number[][]; params: Float32Array; grads: Float32Array }> {
  const model = await CMAE.create({ preset: 'micro', mode, seed: 11 });
  model.recomputeActivations = recompute;
  expect(model.recomputeActivations).toBe(recompute);
  const optimizer = new AdamW(model, { lr: 2e-3 });
  const B = 6, n = B * 3 * 16 * 16;
  const losses: number[][] = [];
  for (let step = 0; step < 3; step++) {
    const parts = await model.lossAndGrad({ images: randn(n, 100 + step), targetImages: randn(n, 200 + step) });
    losses.push([parts.loss, parts.reconstruction, parts.contrastive]);
    await optimizer.step({ lr: 2e-3 });
    if (methods[mode].momentum) await model.updateMomentum(0.99);
  }
  const grads = model.native.readArena('grads');
  const params = model.native.readArena('params');
  optimizer.dispose();
  model.dispose();
  return { losses, params, grads };
}

describe('recomputeActivations', () => {
  for (const mode of ['cmae', 'mae', 'mocov3', 'simclr', 'maskdistill', 'densecl'] as const) {
    it(`${mode}: 3 AdamW steps give the same losses, gradients and parameters, bit for bit`, async () => {
      const plain = await trainBits(mode, false);
      const recomputed = await trainBits(mode, true);
      expect(recomputed.losses).toEqual(plain.losses);
      expect(Buffer.from(recomputed.grads.buffer).equals(Buffer.from(plain.grads.buffer))).toBe(true);
      expect(Buffer.from(recomputed.params.buffer).equals(Buffer.from(plain.params.buffer))).toBe(true);
      expect(plain.losses.flat().every(Number.isFinite)).toBe(true);
    });
  }

  it('the classifier with drop path (the recomputed forward redraws the same branch scales)', async () => {
    const run = async (recompute: boolean) => {
      const clf = await Classifier.create({ preset: 'micro', numClasses: 4, seed: 3 });
      clf.native.setRecomputeActivations(recompute);
      const images = randn(5 * 3 * 16 * 16, 9);
      const targets = softTargets(Int32Array.from([0, 1, 2, 3, 1]), 4, 0.1);
      const loss = await clf.lossAndGrad({ images, targets, dropPath: 0.3, step: 4 });
      const grads = clf.native.readArena('grads');
      clf.dispose();
      return { loss, grads };
    };
    const plain = await run(false);
    const recomputed = await run(true);
    expect(recomputed.loss).toBe(plain.loss);
    expect(Buffer.from(recomputed.grads.buffer).equals(Buffer.from(plain.grads.buffer))).toBe(true);
  });

  it('switching it on frees the training workspace, and the next step plans a smaller one', async () => {
    // (micro's 2 blocks save little; tiny's 12 show it; measured as what the model reports to V8)
    const model = await CMAE.create({ preset: 'tiny', seed: 1 });
    const n = 8 * 3 * 32 * 32;
    const images = Tensor.from(randn(n, 1), [8, 3, 32, 32]);
    const targetImages = Tensor.from(randn(n, 2), [8, 3, 32, 32]);
    const step = () => model.lossAndGrad({ images, targetImages });
    const before = nativeMemory().reportedBytes;
    await step();
    const full = nativeMemory().reportedBytes;
    model.recomputeActivations = true;
    const freed = nativeMemory().reportedBytes;
    expect(full - freed).toBeGreaterThan(0.99 * (full - before)); // the workspace is gone
    await step();
    const lean = nativeMemory().reportedBytes;
    expect(lean - freed).toBeLessThan(0.9 * (full - before)); // and comes back smaller (tiny, batch 8: 77 %)
    model.recomputeActivations = false;
    await step();
    expect(nativeMemory().reportedBytes).toBeGreaterThan(lean);
    expect(() => {
      (model as unknown as { recomputeActivations: unknown }).recomputeActivations = 'yes';
    }).toThrow(ValueError);
    for (const t of [images, targetImages, model]) t.dispose();
  });
});
