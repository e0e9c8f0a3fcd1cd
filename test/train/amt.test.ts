/**
 * Attention-driven masking (src/train/amt.ts): the cls attention the model gives (against a float64
 * forward of a one-block encoder from its own weights), the noise drawn from it (the multinomial
 * order it stands for, group sums), masks that follow the attention, and training with it
 * (checkpoint record, resume rule, refusals).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CMAE, Tensor, ValueError, readSafetensors, resolveConfig } from '../../src/index';
import { DataLoader } from '../../src/data/index';
import { train } from '../../src/train/trainer';
import { attentionMaskNoise, attentionMaskNoiseFor } from '../../src/train/amt';
import { makeRng } from '../../src/eval/rng';
import { expectClose, expectSameBits, randn } from '../helpers/check';
import * as ref from '../reference/loss';
import { maskingRef, patchifyRef } from '../reference/patch';
import { noiseDataset } from '../helpers/fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-amt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The cls query's softmax over the 1 + L keys of a depth-1 encoder, in float64 from the state dict. */
function referenceClsAttention(model: CMAE, images: Float32Array, n: number): Float64Array {
  const { channels: C, imageSize: S, patchSize: p, dim: D, heads: H } = model.config;
  const g = S / p, L = g * g, hd = D / H;
  const sd = model.stateDict();
  const get = (name: string) => {
    const v = sd.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  };
  const W = get('patch_embed.proj.weight'), bias = get('patch_embed.proj.bias'), pos = get('pos_embed'), cls = get('cls_token');
  const n1w = get('blocks.0.norm1.weight'), n1b = get('blocks.0.norm1.bias'), qw = get('blocks.0.attn.qkv.weight'), qb = get('blocks.0.attn.qkv.bias');
  const out = new Float64Array(n * H * L);
  for (let b = 0; b < n; b++) {
    const x = new Float64Array((1 + L) * D);
    for (let d = 0; d < D; d++) x[d] = cls[d] + pos[d];
    for (let l = 0; l < L; l++) {
      const gy = Math.floor(l / g), gx = l % g;
      for (let d = 0; d < D; d++) {
        let s = bias[d];
        for (let c = 0; c < C; c++)
          for (let py = 0; py < p; py++)
            for (let px = 0; px < p; px++) s += W[((d * C + c) * p + py) * p + px] * images[((b * C + c) * S + gy * p + py) * S + gx * p + px];
        x[(1 + l) * D + d] = s + pos[(1 + l) * D + d];
      }
    }
    const qkv = new Float64Array((1 + L) * 3 * D);
    for (let t = 0; t <= L; t++) {
      const row = x.subarray(t * D, (t + 1) * D);
      const mean = row.reduce((a, v) => a + v, 0) / D;
      const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / D;
      const ln = row.map((v, d) => ((v - mean) / Math.sqrt(variance + 1e-6)) * n1w[d] + n1b[d]);
      for (let o = 0; o < 3 * D; o++) {
        let s = qb[o];
        for (let d = 0; d < D; d++) s += qw[o * D + d] * ln[d];
        qkv[t * 3 * D + o] = s;
      }
    }
    for (let h = 0; h < H; h++) {
      const scores = new Float64Array(1 + L);
      for (let j = 0; j <= L; j++) {
        let s = 0;
        for (let d = 0; d < hd; d++) s += qkv[h * hd + d] * qkv[j * 3 * D + D + h * hd + d];
        scores[j] = s / Math.sqrt(hd);
      }
      const top = Math.max(...scores);
      const sum = scores.reduce((a, s) => a + Math.exp(s - top), 0);
      for (let l = 0; l < L; l++) out[(b * H + h) * L + l] = Math.exp(scores[1 + l] - top) / sum;
    }
  }
  return out;
}

describe('clsAttention', () => {
  it('is the last block’s cls→patch softmax (float64 forward of a one-block encoder), on both branches', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 3, depth: 1 });
    const n = 3;
    const images = randn(n * 3 * 16 * 16, 9);
    const want = referenceClsAttention(model, images, n);
    for (const branch of ['online', 'momentum'] as const) {
      const got = await model.clsAttention(images, { branch, batchSize: 2 });
      expect(got.length).toBe(n * model.config.heads * 16);
      expectClose(got, want, { atol: 1e-6, rtol: 1e-4, label: branch });
    }
    model.dispose();
  });

  it('rows are probabilities short of the cls key’s share; refusals name the problem', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 4, mode: 'mae' });
    const att = await model.clsAttention(randn(2 * 3 * 16 * 16, 1));
    for (let r = 0; r < 2 * model.config.heads; r++) {
      const row = att.subarray(r * 16, (r + 1) * 16);
      const sum = row.reduce((a, v) => a + v, 0);
      expect(sum).toBeGreaterThan(0);
      expect(sum).toBeLessThan(1);
      for (const v of row) expect(v).toBeGreaterThan(0);
    }
    await expect(model.clsAttention(randn(3 * 16 * 16, 1), { branch: 'momentum' })).rejects.toThrow(/mae model has no momentum branch/);
    await expect(model.clsAttention(randn(3 * 16 * 16, 1), { batchSize: 0 })).rejects.toThrow(ValueError);
    model.dispose();
  });
});

describe('attentionMaskNoise', () => {
  // One head, grid 4 (16 patches), one image: the attention row given.
  const noiseOf = (row: number[], draws: number, group = 1, seed = 1) => {
    const rng = makeRng(seed);
    return Array.from({ length: draws }, () => attentionMaskNoise(Float32Array.from(row), 1, 1, 4, group, rng));
  };
  const argmax = (a: Float32Array) => a.indexOf(Math.max(...a));

  it('masks the patch the cls token attends to first, every time', () => {
    const row = Array.from({ length: 16 }, () => 0.01);
    row[5] = 0.5;
    for (const noise of noiseOf(row, 200)) {
      for (const v of noise) expect(Number.isFinite(v)).toBe(true);
      expect(argmax(noise)).toBe(5);
    }
  });

  it('orders patches as a draw without replacement ∝ weight (2 : 1 gives 2/3 first)', () => {
    // Min-max weights 1, 0.5, 0, …: the first draw is patch 0 with probability 2/3, patch 1 with 1/3.
    const row = Array.from({ length: 16 }, () => 0);
    row[0] = 1;
    row[1] = 0.5;
    const draws = noiseOf(row, 3000, 1, 7);
    const first0 = draws.filter((d) => argmax(d) === 0).length / draws.length;
    const first1 = draws.filter((d) => argmax(d) === 1).length / draws.length;
    expect(Math.abs(first0 - 2 / 3)).toBeLessThan(0.03);
    expect(Math.abs(first1 - 1 / 3)).toBeLessThan(0.03);
  });

  it('sums a group’s patches; heads are min-max normalised and averaged; a flat head adds nothing', () => {
    // Grid 4 in 2×2 groups: patches 10, 11, 14, 15 form group 3.
    const hot = Array.from({ length: 16 }, (_, l) => ([10, 11, 14, 15].includes(l) ? 3 : 1));
    for (const noise of noiseOf(hot, 100, 2)) {
      expect(noise.length).toBe(4);
      expect(argmax(noise)).toBe(3);
    }
    // Three heads: rowA, a scaled and shifted copy (the same after min-max) and a flat one (weight 1
    // everywhere), averaged: w = (2·w_A + 1)/3. With the same draws, noise − log w is the same Gumbel.
    const rowA = randn(16, 5);
    const lo = Math.min(...rowA), hi = Math.max(...rowA);
    const wA = Array.from(rowA, (v) => (v - lo) / (hi - lo));
    const heads3 = Float32Array.from([...rowA, ...rowA.map((v) => 10 * v + 3), ...Array.from({ length: 16 }, () => 0.2)]);
    const one = attentionMaskNoise(rowA, 1, 1, 4, 1, makeRng(11));
    const three = attentionMaskNoise(heads3, 1, 3, 4, 1, makeRng(11));
    const gumbel = Array.from(one, (v, l) => v - Math.log(Math.max(wA[l], 1e-9)));
    expectClose(three, gumbel.map((g, l) => Math.log((2 * wA[l] + 1) / 3) + g), { atol: 2e-5, rtol: 1e-5, label: 'three heads' });
    expect(() => attentionMaskNoise(rowA, 2, 1, 4, 1, makeRng(1))).toThrow(/B·heads·L = 32 values, got 16/);
    expect(() => attentionMaskNoise(rowA, 1, 1, 4, 3, makeRng(1))).toThrow(/group 3 must divide the grid 4/);
  });
});

describe('training with attention-driven masking', () => {
  it('masks the patches the encoder attends to more often than the others', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 5, mode: 'mae' });
    const B = 16;
    const images = Tensor.from(randn(B * 3 * 16 * 16, 21), [B, 3, 16, 16]);
    const attention = await model.clsAttention(images);
    const noise = await attentionMaskNoiseFor(model, images, 0);
    const mask = Tensor.empty([B, 16]);
    await model.lossAndGrad({ images, maskNoise: noise, outputs: { mask } });
    const m = mask.toArray() as Float32Array;
    // Per image: the mean head-averaged attention of the masked patches against the visible ones.
    let higher = 0;
    for (let b = 0; b < B; b++) {
      let masked = 0, visible = 0, nm = 0, nv = 0;
      for (let l = 0; l < 16; l++) {
        let a = 0;
        for (let h = 0; h < model.config.heads; h++) a += attention[(b * model.config.heads + h) * 16 + l];
        if (m[b * 16 + l] === 1) (masked += a), nm++;
        else (visible += a), nv++;
      }
      expect(nm).toBe(16 - model.numVisible);
      if (masked / nm > visible / nv) higher++;
    }
    expect(higher).toBeGreaterThanOrEqual(12);
    // The same step draws the same noise; another step another.
    expect(Array.from(await attentionMaskNoiseFor(model, images, 0))).toEqual(Array.from(noise));
    expect(Array.from(await attentionMaskNoiseFor(model, images, 1))).not.toEqual(Array.from(noise));
    mask.dispose();
    images.dispose();
    model.dispose();
  });

  it('trains cmae with it, records it in the checkpoint, and refuses a resume that would change it', async () => {
    const data = () => new DataLoader(noiseDataset(64), { batchSize: 8, seed: 1, targetView: 'shifted', augment: { outSize: 16, shiftRange: 2 } });
    const model = await CMAE.create({ preset: 'micro', seed: 6, maskGroup: 1 });
    const outDir = path.join(root, 'amt');
    const result = await train({ model, data: data(), steps: 3, outDir, maskSampling: 'attention' });
    expect(result.steps).toBe(3);
    for (const s of result.history) expect(Number.isFinite(s.loss)).toBe(true);
    const file = await readSafetensors(result.checkpointPath!);
    expect(file.metadata.maskSampling).toBe('attention');
    await expect(train({ model, data: data(), steps: 4, outDir, resumeFrom: result.checkpointPath })).rejects.toThrow(
      /it differs in maskSampling \(checkpoint "attention", now "uniform"\)/,
    );
    const resumed = await train({ model, data: data(), steps: 4, outDir, resumeFrom: result.checkpointPath, maskSampling: 'attention' });
    expect(resumed.steps).toBe(4);
    model.dispose();
  });

  it('refuses methods without masked reconstruction and unknown samplings', async () => {
    const moco = await CMAE.create({ preset: 'micro', seed: 7, mode: 'mocov3' });
    const data = new DataLoader(noiseDataset(16), { batchSize: 8, seed: 1, targetView: 'independent', augment: { outSize: 16 } });
    await expect(train({ model: moco, data, steps: 1, maskSampling: 'attention' })).rejects.toThrow(/masked-reconstruction methods \(mae, cmae, maskdistill\), not mocov3/);
    await expect(train({ model: moco, data, steps: 1, maskSampling: 'gumbel' as never })).rejects.toThrow(/maskSampling must be 'uniform' or 'attention'/);
    moco.dispose();
  });
});

describe('throwing (throwRatio, AMT)', () => {
  const imageNumel = 3 * 16 * 16;

  it('is a field of the masked-reconstruction methods only, absent when 0; the visible share is 1 − maskRatio − throwRatio', async () => {
    expect(resolveConfig('micro', { mode: 'mae', throwRatio: 0.25 }).throwRatio).toBe(0.25);
    expect(resolveConfig('micro', { mode: 'cmae', throwRatio: 0 })).not.toHaveProperty('throwRatio');
    expect(resolveConfig('micro', { mode: 'mae' })).not.toHaveProperty('throwRatio');
    expect(() => resolveConfig('micro', { mode: 'mocov3', throwRatio: 0.2 })).toThrowError(/model option 'throwRatio' belongs to modes cmae, mae, maskdistill, not 'mocov3'/);
    const model = await CMAE.create({ preset: 'micro', mode: 'mae', maskRatio: 0.25, throwRatio: 0.5, seed: 1 });
    expect([model.numVisible, model.numPatches]).toEqual([4, 16]); // int(16 · 0.25)
    model.dispose();
    await expect(CMAE.create({ preset: 'micro', mode: 'mae', maskRatio: 0.5, throwRatio: 0.5 })).rejects.toThrow(/config.maskRatio 0.5 with throwRatio 0.5 keeps no patch group visible/);
    await expect(CMAE.create({ preset: 'micro', mode: 'mae', throwRatio: -0.1 })).rejects.toThrow(/config.throwRatio must be in \[0, 1\), got -0.1/);
  });

  it('reconstructs only the masked patches: the same prediction as without throwing, the loss over the unthrown masked ones', async () => {
    const B = 3, L = 16, P = 48;
    const images = randn(B * imageNumel, 31);
    const noise = randn(B * L, 32);
    // Both keep int(16·0.5) = 8 patches visible for the same noise; the thrower reconstructs the
    // 4 of highest noise and throws the 4 ranked between.
    const run = async (overrides: { maskRatio: number; throwRatio?: number }) => {
      const model = await CMAE.create({ preset: 'micro', mode: 'mae', seed: 3, ...overrides });
      const pred = Tensor.empty([B, L, P]);
      const mask = Tensor.empty([B, L]);
      const parts = await model.lossAndGrad({ images, maskNoise: noise, outputs: { pred, mask } });
      const grads = model.gradients();
      model.dispose();
      return { parts, pred: pred.toArray(), mask: mask.toArray(), grads };
    };
    const plain = await run({ maskRatio: 0.5 });
    const thrower = await run({ maskRatio: 0.25, throwRatio: 0.25 });
    expectSameBits(thrower.pred, plain.pred, 'pred');
    expectSameBits(thrower.mask, plain.mask, 'mask (1 = not visible: masked or thrown)');
    const reconstructed = maskingRef(noise, B, 4, 4, 1, 12).mask; // visible ∪ thrown kept: 1 on the 4 masked
    const target = patchifyRef(images, B, 3, 16, 16, 4, 'pixels-last');
    expect(thrower.parts.reconstruction).toBeCloseTo(ref.normpixMse(thrower.pred, target, reconstructed, B, L, P, true), 5);
    expect(plain.parts.reconstruction).toBeCloseTo(ref.normpixMse(plain.pred, target, plain.mask, B, L, P, true), 5);
    expect(thrower.parts.reconstruction).not.toBeCloseTo(plain.parts.reconstruction, 3);
    const name = 'decoder_pred.weight';
    expect(thrower.grads.get(name)!.every(Number.isFinite)).toBe(true);
    expect(thrower.grads.get(name)!.some((v, i) => Math.abs(v - plain.grads.get(name)![i]) > 1e-6)).toBe(true);
  });

  it('trains with attention-driven masking through the CLI-facing config, and the checkpoint records it', async () => {
    const data = new DataLoader(noiseDataset(32), { batchSize: 8, seed: 1, targetView: 'shifted', augment: { outSize: 16, shiftRange: 2 } });
    const model = await CMAE.create({ preset: 'micro', seed: 8, maskGroup: 1, maskRatio: 0.5, throwRatio: 0.25 });
    const result = await train({ model, data, steps: 2, outDir: path.join(root, 'throw'), maskSampling: 'attention' });
    for (const s of result.history) expect(Number.isFinite(s.loss) && s.reconstruction > 0).toBe(true);
    const file = await readSafetensors(result.checkpointPath!);
    expect(JSON.parse(file.metadata.config)).toMatchObject({ throwRatio: 0.25, maskRatio: 0.5 });
    const loaded = await CMAE.load(result.checkpointPath!);
    expect([loaded.config.throwRatio, loaded.numVisible]).toEqual([0.25, 4]);
    loaded.dispose();
    model.dispose();
  });
});
