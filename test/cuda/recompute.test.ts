/**
 * Activation recomputation on the CUDA model (the SIMT emulator, cmae_emulated.node): the
 * recomputed forward runs the device's kernels on the same inputs, so two training steps give the
 * same losses and parameters, bit for bit, with and without it (test/model/recompute.test.ts is the
 * CPU's twin).
 */
import './emulated';
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE } from '../../src/index';
import { randn } from '../helpers/check';

async function run(recompute: boolean): Promise<{ losses: number[]; params: Float32Array }> {
  const model = await CMAE.create({ preset: 'micro', seed: 5, device: 'cuda' });
  model.recomputeActivations = recompute;
  const optimizer = new AdamW(model, { lr: 2e-3 });
  const n = 4 * 3 * 16 * 16;
  const losses: number[] = [];
  for (let step = 0; step < 2; step++) {
    losses.push((await model.lossAndGrad({ images: randn(n, 10 + step), targetImages: randn(n, 20 + step) })).loss);
    await optimizer.step({ lr: 2e-3 });
    await model.updateMomentum(0.99);
  }
  const params = await model.native.readArenaAsync('params');
  optimizer.dispose();
  model.dispose();
  return { losses, params };
}

describe('recomputeActivations on cuda (emulated)', () => {
  it('cmae: 2 AdamW + EMA steps, the same losses and parameters bit for bit', async () => {
    const plain = await run(false);
    const recomputed = await run(true);
    expect(recomputed.losses).toEqual(plain.losses);
    expect(plain.losses.every(Number.isFinite)).toBe(true);
    expect(Buffer.from(recomputed.params.buffer).equals(Buffer.from(plain.params.buffer))).toBe(true);
  });
});
