/**
 * The pre-training methods on one engine (src/models/config.ts `methods`): what each builds, its
 * defaults, its inputs, and MoCo v3's symmetric two-view step beyond what the golden fixture pins
 * (whole views, view symmetry, encode, checkpoints). The losses and gradients themselves are
 * checked against PyTorch in golden.ts (mocov3_micro).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CMAE, ShapeError, Tensor, ValueError, methods, presets, resolveConfig, type Mode } from '../../src/index';
import { reconstructionRows } from '../../src/viz/reconstruct';
import { minBatchSize } from '../../src/models/config';
import { expectClose, expectSameBits, randn } from '../helpers/check';

const dir = mkdtempSync(path.join(tmpdir(), 'cmae-methods-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const micro = presets.micro;
const imageNumel = micro.channels * micro.imageSize * micro.imageSize;
const images = (n: number, seed: number) => randn(n * imageNumel, seed);

/** One step's losses and gradients of a fresh micro `mode` model on (x1, x2), then on (x2, x1). */
async function withViewsSwapped(mode: Mode, seed: number, x1: Float32Array, x2: Float32Array) {
  const run = async (a: Float32Array, b: Float32Array) => {
    const model = await CMAE.create({ preset: 'micro', mode, seed });
    const parts = await model.lossAndGrad({ images: a, targetImages: b });
    const grads = model.gradients();
    model.dispose();
    return { parts, grads };
  };
  return [await run(x1, x2), await run(x2, x1)] as const;
}

describe('methods', () => {
  it('each method brings its defaults unless the caller sets them; unknown methods are refused', () => {
    expect(resolveConfig('nano', { mode: 'mae' })).toMatchObject({ maskRatio: 0.75, maskGroup: 1 });
    expect(resolveConfig('tiny', { mode: 'mocov3' })).toMatchObject({ maskRatio: 0, maskGroup: 2 });
    expect(resolveConfig('tiny', { mode: 'cmae' })).toMatchObject({ maskRatio: 0.65, maskGroup: 2 });
    // nano's own CMAE masking (45 % per patch, the sweep's choice); MAE keeps its 75 % there too.
    expect(resolveConfig('nano', { mode: 'cmae' })).toMatchObject({ maskRatio: 0.45, maskGroup: 1 });
    expect(resolveConfig('nano', { mode: 'mae', maskRatio: 0.5 })).toMatchObject({ maskRatio: 0.5, maskGroup: 1 });
    expect(() => resolveConfig('nano', { mode: 'dino' as never })).toThrowError(/mode must be one of cmae, mae, mocov3, maskdistill, simclr, densecl, got 'dino'/);
  });

  it('a mocov3 model holds the encoders and heads only, and sees whole views by default', async () => {
    const model = await CMAE.create({ preset: 'micro', mode: 'mocov3', seed: 1 });
    const names = model.parameters().map((p) => p.name);
    expect(names.filter((n) => /decoder|mask_token/.test(n))).toEqual([]);
    for (const n of ['projector.fc1.weight', 'predictor.fc2.weight', 'momentum_encoder.blocks.0.attn.qkv.weight', 'momentum_projector.bn.running_var', 'norm.weight']) {
      expect(names).toContain(n);
    }
    expect(model.numVisible).toBe(model.numPatches);
    // Its traits say what its batches hold.
    expect(methods.mocov3).toEqual({ momentum: true, contrastive: true, reconstructs: null, targetView: 'independent', onlineViews: 2 });
    model.dispose();
  });

  it('mocov3 refuses a missing second view, one-image batches, B mask rows and a pred output, naming each', async () => {
    const model = await CMAE.create({ preset: 'micro', mode: 'mocov3', seed: 1 });
    await expect(model.lossAndGrad({ images: images(4, 1) })).rejects.toThrow(/MoCo v3 needs targetImages \(the second augmented view/);
    await expect(model.lossAndGrad({ images: images(1, 1), targetImages: images(1, 2) })).rejects.toThrow(ShapeError);
    await expect(model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2), maskNoise: new Float32Array(4 * model.numGroups) })).rejects.toThrow(
      /maskNoise/,
    );
    const pred = Tensor.full([4, model.numPatches, 48], NaN);
    await expect(model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2), outputs: { pred } })).rejects.toThrow(ValueError);
    await expect(model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2), outputs: { pred } })).rejects.toThrow(/no pixel decoder/);
    await expect(reconstructionRows(model, Tensor.from(images(2, 3), [2, 3, 16, 16]), { mean: [0, 0, 0], std: [1, 1, 1] })).rejects.toThrow(
      /a mocov3 model has no pixel decoder/,
    );
    model.dispose();
  });

  it('mocov3 with whole views is symmetric: swapping the views gives bit-identical losses and gradients', async () => {
    const x1 = images(6, 11);
    const x2 = images(6, 12);
    const [ab, ba] = await withViewsSwapped('mocov3', 5, x1, x2);
    expect(ab.parts.reconstruction).toBe(0);
    expect(ab.parts.contrastive).toBeGreaterThan(0);
    expect(ba.parts).toEqual(ab.parts);
    for (const [name, g] of ab.grads) expectSameBits(ba.grads.get(name)!, g, name);
  });

  it('mocov3 masked views (FLIP): the online encoder sees only the kept patches, per view', async () => {
    const model = await CMAE.create({ preset: 'micro', mode: 'mocov3', maskRatio: 0.5, seed: 2 });
    const B = 4;
    const mask = Tensor.full([2 * B, model.numPatches], NaN);
    const q = Tensor.full([2 * B, micro.projectorDim], NaN);
    const zT = Tensor.full([2 * B, micro.projectorDim], NaN);
    await model.lossAndGrad({ images: images(B, 1), targetImages: images(B, 2), outputs: { mask, q, zT } });
    const m = mask.toArray();
    for (let r = 0; r < 2 * B; r++) {
      const row = Array.from(m.subarray(r * model.numPatches, (r + 1) * model.numPatches));
      expect(row.filter((v) => v === 1).length).toBe(model.numPatches - model.numVisible);
      expect(row.every((v) => v === 0 || v === 1)).toBe(true);
    }
    expect(model.numVisible).toBe(model.numPatches / 2);
    for (const t of [q, zT]) expect(t.toArray().every(Number.isFinite)).toBe(true);
    model.dispose();
  });

  it('mocov3 encodes with both branches and round-trips through a checkpoint that records the method', async () => {
    const model = await CMAE.create({ preset: 'micro', mode: 'mocov3', seed: 3 });
    await model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2) });
    const x = images(3, 9);
    const online = await model.encode(x, { pool: 'mean' });
    const momentum = await model.encode(x, { pool: 'mean', branch: 'momentum' });
    expect(online.length).toBe(3 * micro.dim);
    expect(Array.from(online).every(Number.isFinite) && Array.from(momentum).every(Number.isFinite)).toBe(true);
    const file = path.join(dir, 'mocov3.safetensors');
    await model.save(file);
    const again = await CMAE.load(file);
    expect(again.config.mode).toBe('mocov3');
    expectSameBits(await again.encode(x, { pool: 'mean' }), online, 'features after load');
    again.dispose();
    model.dispose();
  });
});

describe('densecl', () => {
  const denseNames = ['dense_projector.fc1.weight', 'dense_projector.fc1.bias', 'dense_projector.fc2.weight', 'dense_projector.fc2.bias'];

  it('brings its defaults and its own field denseWeight, which no other method takes', async () => {
    expect(resolveConfig('tiny', { mode: 'densecl' })).toMatchObject({ maskRatio: 0, maskGroup: 2, denseWeight: 0.5 });
    expect(resolveConfig('nano', { mode: 'densecl', denseWeight: 0.25 }).denseWeight).toBe(0.25);
    expect('denseWeight' in resolveConfig('nano', { mode: 'mocov3' })).toBe(false);
    expect(() => resolveConfig('nano', { mode: 'mocov3', denseWeight: 0.5 })).toThrowError(/model option 'denseWeight' belongs to mode 'densecl', not 'mocov3'/);
    await expect(CMAE.create({ preset: 'micro', mode: 'densecl', denseWeight: 1.5 })).rejects.toThrow(/config.denseWeight must be in \[0, 1\], got 1.5/);
    expect(methods.densecl).toEqual({ momentum: true, contrastive: true, reconstructs: null, targetView: 'independent', onlineViews: 2 });
  });

  it('holds MoCo v3 plus the dense projectors, online and momentum, of the heads\' widths', async () => {
    const model = await CMAE.create({ preset: 'micro', mode: 'densecl', seed: 1 });
    const table = new Map(model.parameters().map((p) => [p.name, p]));
    expect([...table.keys()].filter((n) => /decoder|mask_token/.test(n))).toEqual([]);
    for (const n of denseNames) {
      expect(table.get(n)!.role).toBe('trainable');
      expect(table.get(`momentum_${n}`)!.role).toBe('momentum');
      expect(table.get(`momentum_${n}`)!.shape).toEqual(table.get(n)!.shape);
    }
    expect(table.get('dense_projector.fc1.weight')!.shape).toEqual([micro.projectorHidden, micro.dim]);
    expect(table.get('dense_projector.fc2.weight')!.shape).toEqual([micro.projectorDim, micro.projectorHidden]);
    // The momentum twins start as copies of the online dense projector.
    const state = model.stateDict();
    for (const n of denseNames) expectSameBits(state.get(`momentum_${n}`)!, state.get(n)!, n);
    model.dispose();
  });

  it('with denseWeight 0 it is MoCo v3 exactly (bit for bit), the dense loss still reported', async () => {
    const dense = await CMAE.create({ preset: 'micro', mode: 'densecl', denseWeight: 0, seed: 8 });
    const moco = await CMAE.create({ preset: 'micro', mode: 'mocov3', seed: 8 });
    const state = dense.stateDict();
    for (const n of [...state.keys()]) if (n.includes('dense_projector')) state.delete(n);
    moco.loadStateDict(state);
    const input = { images: images(6, 21), targetImages: images(6, 22) };
    const a = await dense.lossAndGrad(input);
    const b = await moco.lossAndGrad(input);
    expect(a.contrastive).toBe(b.contrastive);
    expect(a.loss).toBe(b.loss);
    expect(b.dense).toBeUndefined();
    expect(a.dense).toBeGreaterThan(0);
    const gm = moco.gradients();
    for (const [name, g] of dense.gradients()) {
      if (name.startsWith('dense_projector.')) expect(g.every((v) => v === 0), name).toBe(true);
      else expectSameBits(g, gm.get(name)!, name);
    }
    dense.dispose();
    moco.dispose();
  });

  it('the dense loss moves the encoder: λ changes the encoder gradient and trains the dense projector', async () => {
    const input = { images: images(6, 23), targetImages: images(6, 24) };
    const run = async (denseWeight: number) => {
      const model = await CMAE.create({ preset: 'micro', mode: 'densecl', denseWeight, seed: 9 });
      const parts = await model.lossAndGrad(input);
      const grads = model.gradients();
      model.dispose();
      return { parts, grads };
    };
    const none = await run(0);
    const half = await run(0.5);
    const full = await run(1);
    // The forward does not depend on λ: the same dense loss, and the global one is λ = 0's.
    expect(half.parts.dense).toBe(none.parts.dense);
    expect(full.parts.dense).toBe(none.parts.dense);
    expect(half.parts.contrastive).toBeCloseTo(0.5 * none.parts.contrastive + 0.5 * none.parts.dense!, 6);
    // λ = 1: the loss is the dense one alone; the global heads get no gradient.
    expect(full.parts.contrastive).toBe(full.parts.dense);
    expect(full.grads.get('predictor.fc2.weight')!.every((v) => v === 0)).toBe(true);
    for (const n of denseNames) expect(half.grads.get(n)!.some((v) => v !== 0), n).toBe(true);
    const enc = 'blocks.0.attn.qkv.weight';
    const [g0, g1] = [none.grads.get(enc)!, full.grads.get(enc)!];
    expect(g1.some((v) => v !== 0)).toBe(true);
    expect(g1.some((v, i) => Math.abs(v - g0[i]) > 1e-3 * Math.abs(g0[i]) + 1e-9)).toBe(true);
  });

  it('with whole views it is symmetric: swapping the views gives the same losses and gradients', async () => {
    const x1 = images(6, 25);
    const x2 = images(6, 26);
    const [ab, ba] = await withViewsSwapped('densecl', 10, x1, x2);
    expect(ab.parts.dense).toBeGreaterThan(0);
    expect(ba.parts).toEqual(ab.parts);
    // Not bit for bit as MoCo v3: a weight gradient sums its token rows view by view, and swapping
    // the views swaps the order of those two float32 partial sums.
    for (const [name, g] of ab.grads) expectClose(ba.grads.get(name)!, g, { atol: 1e-7, rtol: 1e-5, label: name });
  });

  it('masked views (FLIP): queries are the visible tokens, keys every token; a checkpoint records the method and λ', async () => {
    const model = await CMAE.create({ preset: 'micro', mode: 'densecl', maskRatio: 0.5, denseWeight: 0.3, seed: 11 });
    expect(model.numVisible).toBe(model.numPatches / 2);
    const parts = await model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2) });
    expect(Number.isFinite(parts.loss) && parts.dense! > 0).toBe(true);
    await expect(model.lossAndGrad({ images: images(4, 1) })).rejects.toThrow(/DenseCL needs targetImages/);
    const file = path.join(dir, 'densecl.safetensors');
    await model.save(file);
    const again = await CMAE.load(file);
    expect(again.config).toMatchObject({ mode: 'densecl', denseWeight: 0.3, maskRatio: 0.5 });
    const x = images(3, 9);
    expectSameBits(await again.encode(x, { pool: 'mean', branch: 'momentum' }), await model.encode(x, { pool: 'mean', branch: 'momentum' }), 'momentum features after load');
    again.dispose();
    model.dispose();
  });
});

describe('maskdistill', () => {
  it('predicts the teacher features of the masked patches: its own defaults, no second view, pred of width dim', async () => {
    expect(resolveConfig('nano', { mode: 'maskdistill' })).toMatchObject({ maskRatio: 0.75, maskGroup: 1 });
    const model = await CMAE.create({ preset: 'micro', mode: 'maskdistill', seed: 4 });
    const table = new Map(model.parameters().map((p) => [p.name, p]));
    expect(table.get('decoder_pred.weight')!.shape).toEqual([micro.dim, micro.decoderDim]);
    expect([...table.keys()].filter((n) => /projector|predictor|feature_/.test(n))).toEqual([]);
    expect(table.get('momentum_encoder.blocks.1.mlp.fc2.weight')!.role).toBe('momentum');
    const B = 4;
    const pred = Tensor.full([B, model.numPatches, micro.dim], NaN);
    const mask = Tensor.full([B, model.numPatches], NaN);
    const parts = await model.lossAndGrad({ images: images(B, 1), outputs: { pred, mask } });
    expect(parts.contrastive).toBe(0);
    expect(parts.reconstruction).toBeGreaterThan(0);
    expect(parts.loss).toBe(parts.reconstruction * micro.rcWeight);
    expect(pred.toArray().every(Number.isFinite)).toBe(true);
    await expect(reconstructionRows(model, Tensor.from(images(2, 3), [2, 3, 16, 16]), { mean: [0, 0, 0], std: [1, 1, 1] })).rejects.toThrow(
      /a maskdistill model has no pixel decoder/,
    );
    model.dispose();
  });

  it('loadTeacher puts a checkpoint encoder into the momentum encoder, and refuses another architecture by field', async () => {
    const teacher = await CMAE.create({ preset: 'micro', mode: 'mae', seed: 8 });
    const file = path.join(dir, 'teacher.safetensors');
    await teacher.save(file);
    const student = await CMAE.create({ preset: 'micro', mode: 'maskdistill', seed: 9 });
    const before = student.stateDict();
    await student.loadTeacher(file);
    const after = student.stateDict();
    const source = teacher.stateDict();
    let copied = 0;
    for (const [name, values] of after) {
      if (name.startsWith('momentum_encoder.')) {
        expectSameBits(values, source.get(name.slice('momentum_encoder.'.length))!, name);
        copied++;
      } else {
        expectSameBits(values, before.get(name)!, name); // the student itself is untouched
      }
    }
    expect(copied).toBeGreaterThan(10);
    const wide = await CMAE.create({ preset: 'micro', mode: 'mae', dim: 48, heads: 2, seed: 8 });
    const wideFile = path.join(dir, 'wide-teacher.safetensors');
    await wide.save(wideFile);
    await expect(student.loadTeacher(wideFile)).rejects.toThrow(/differs from this model's in dim \(48 vs 32\)/);
    const mae = await CMAE.create({ preset: 'micro', mode: 'mae' });
    await expect(mae.loadTeacher(file)).rejects.toThrow(/a mae model has no momentum encoder/);
    for (const m of [teacher, student, wide, mae]) m.dispose();
  });
});

describe('simclr', () => {
  it('holds the encoder and a projector only, sees whole views at tau 0.2, and refuses what it lacks', async () => {
    expect(resolveConfig('nano', { mode: 'simclr' })).toMatchObject({ maskRatio: 0, tau: 0.2 });
    const model = await CMAE.create({ preset: 'micro', mode: 'simclr', seed: 6 });
    const names = model.parameters().map((p) => p.name);
    expect(names.filter((n) => /decoder|mask_token|momentum|predictor/.test(n))).toEqual([]);
    expect(names).toContain('projector.bn.running_mean');
    await expect(model.lossAndGrad({ images: images(4, 1) })).rejects.toThrow(/SimCLR needs targetImages/);
    const zT = Tensor.full([8, micro.projectorDim], NaN);
    await expect(model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2), outputs: { zT } })).rejects.toThrow(/a simclr model has no momentum branch/);
    await expect(model.encode(images(2, 3), { branch: 'momentum' })).rejects.toThrow(/a simclr model has no momentum branch/);
    await expect(model.updateMomentum(0.99)).resolves.toBeUndefined(); // nothing to move, as in MAE mode
    model.dispose();
  });

  it('is symmetric in its views (swapped, the same loss, projections and gradients) and its q output is the projection', async () => {
    const run = async (a: Float32Array, b: Float32Array) => {
      const model = await CMAE.create({ preset: 'micro', mode: 'simclr', seed: 7 });
      const q = Tensor.full([12, micro.projectorDim], NaN);
      const parts = await model.lossAndGrad({ images: a, targetImages: b, outputs: { q } });
      const grads = model.gradients();
      model.dispose();
      return { parts, grads, q: q.toArray() };
    };
    const x1 = images(6, 21);
    const x2 = images(6, 22);
    const ab = await run(x1, x2);
    const ba = await run(x2, x1);
    expect(ab.parts.reconstruction).toBe(0);
    expect(ab.parts.contrastive).toBeGreaterThan(0);
    expect(Math.abs(ba.parts.loss - ab.parts.loss)).toBeLessThan(1e-6 * ab.parts.loss);
    expect(ab.q.every(Number.isFinite)).toBe(true);
    // Swapping the views swaps the halves of the projections. Not bit for bit: the projector's
    // BatchNorm sums all 2B rows in row order, which the swap changes.
    const E = micro.projectorDim;
    expectClose(ba.q.subarray(0, 6 * E), ab.q.subarray(6 * E), { atol: 1e-6, rtol: 1e-5, label: 'q halves' });
    expectClose(ba.q.subarray(6 * E), ab.q.subarray(0, 6 * E), { atol: 1e-6, rtol: 1e-5, label: 'q halves' });
    for (const [name, g] of ab.grads) expectClose(ba.grads.get(name)!, g, { atol: 1e-6, rtol: 1e-4, label: name });
  });
});

describe('non-finite inputs', () => {
  it('are a ValueError naming the tensor, the first bad element in its shape and its value, for every method and encode', async () => {
    const cases = [
      ['cmae', 'images', 1 * imageNumel + 2 * 256 + 3 * 16 + 4, NaN, /images must hold finite values: images\[1, 2, 3, 4\] is NaN \(the first of them, flat index 1332\)/],
      ['cmae', 'targetImages', 7, Infinity, /targetImages\[0, 0, 0, 7\] is \+Inf/],
      ['simclr', 'targetImages', 3 * imageNumel - 1, -Infinity, /targetImages\[2, 2, 15, 15\] is -Inf/],
      ['mae', 'images', 0, NaN, /images\[0, 0, 0, 0\] is NaN/],
    ] as const;
    for (const [mode, which, at, value, message] of cases) {
      const model = await CMAE.create({ preset: 'micro', mode, seed: 1 });
      const input = { images: images(4, 1), targetImages: images(4, 2) };
      input[which][at] = value;
      input[which][at + 5] = NaN; // a later one: the first is named
      await expect(model.lossAndGrad(input)).rejects.toThrow(ValueError);
      await expect(model.lossAndGrad(input)).rejects.toThrow(message);
      model.dispose();
    }
    const model = await CMAE.create({ preset: 'micro', seed: 1 });
    const x = images(3, 4);
    x[imageNumel + 9] = NaN;
    await expect(model.encode(x)).rejects.toThrow(/images\[1, 0, 0, 9\] is NaN/);
    const noise = new Float32Array(4 * model.numGroups).fill(0.5);
    noise[6] = NaN;
    await expect(model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2), maskNoise: noise })).rejects.toThrow(/maskNoise\[1, 2\] is NaN/);
    model.dispose();
  });
});

describe('minBatchSize', () => {
  it("agrees with the native step for every method: one image fewer is its ShapeError, the minimum trains", async () => {
    for (const mode of Object.keys(methods) as (keyof typeof methods)[]) {
      const model = await CMAE.create({ preset: 'micro', mode, seed: 2 });
      try {
        const min = minBatchSize(mode);
        const batch = (n: number) => ({ images: images(n, 5), ...(methods[mode].targetView !== 'none' ? { targetImages: images(n, 6) } : {}) });
        const parts = await model.lossAndGrad(batch(min));
        expect(Number.isFinite(parts.loss), mode).toBe(true);
        if (min > 1) await expect(model.lossAndGrad(batch(min - 1)), mode).rejects.toThrow(ShapeError);
      } finally {
        model.dispose();
      }
    }
  });
});
