/**
 * Foreign checkpoints (CMAE.loadEncoder) against the PyTorch reference's timm-layout ViT
 * (test/reference/make_fixtures.py, make_timm_fixture): both pos_embed layouts, both final norms
 * and their pools, the classifier head, position tables resampled to other grids as PyTorch's
 * bicubic does (with and without antialias), and one error listing every bad tensor.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CMAE, FormatError, ValueError } from '../../src/index';
import { readSafetensors, writeSafetensors, type SafeTensorEntry, type SafeTensorsFile } from '../../src/io/safetensors';
import { resampleBicubic } from '../../src/models/resample';
import { expectClose } from '../helpers/check';

const fixtures = path.join(__dirname, '..', 'fixtures');
const tokenCkpt = path.join(fixtures, 'timm_vit_micro_token.safetensors');
const avgCkpt = path.join(fixtures, 'timm_vit_micro_avg.safetensors');
const HEADS = 2;
const tmp = mkdtempSync(path.join(tmpdir(), 'cmae-foreign-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let expectFile: SafeTensorsFile | undefined;
async function ref(name: string): Promise<Float32Array | Float64Array> {
  expectFile ??= await readSafetensors(path.join(fixtures, 'timm_vit_micro_expect.safetensors'));
  const entry = expectFile.tensors.get(name);
  if (!entry) throw new Error(`fixture has no tensor '${name}'`);
  return entry.data as Float32Array | Float64Array;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** The golden tests' float32-vs-float64 tolerance for features. */
function expectFeatures(got: ArrayLike<number>, want: ArrayLike<number>, label: string): void {
  expectClose(got, want, { atol: 1e-5 * maxAbs(want), rtol: 1e-4, label });
}

function logits(features: Float32Array, head: { weight: Float32Array; bias: Float32Array; numClasses: number }, dim: number): Float64Array {
  const n = features.length / dim;
  const out = new Float64Array(n * head.numClasses);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < head.numClasses; k++) {
      let s = head.bias[k];
      for (let d = 0; d < dim; d++) s += features[i * dim + d] * head.weight[k * dim + d];
      out[i * head.numClasses + k] = s;
    }
  }
  return out;
}

/** A copy of a fixture checkpoint with tensors replaced (undefined: removed) or added. */
async function variant(from: string, name: string, edits: Record<string, SafeTensorEntry | undefined>, metadata?: Record<string, string>): Promise<string> {
  const file = await readSafetensors(from);
  const tensors = new Map(file.tensors);
  for (const [key, entry] of Object.entries(edits)) {
    if (entry) tensors.set(key, entry);
    else tensors.delete(key);
  }
  const out = path.join(tmp, `${name}.safetensors`);
  await writeSafetensors(out, tensors, metadata ?? file.metadata);
  return out;
}

const f32 = (shape: number[], fill = 0.1): SafeTensorEntry => ({ dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill) });

describe('bicubic resampling vs PyTorch F.interpolate (align_corners=False)', () => {
  it.each([
    [9, 4, true],
    [9, 4, false],
    [2, 3, true],
    [2, 3, false],
  ])('(5, 7, 3) → (%i, %i), antialias %s, every element', async (h, w, antialias) => {
    const src = await ref('input.bicubic');
    const want = await ref(`expect.bicubic_${h}x${w}_${antialias ? 'aa' : 'noaa'}`);
    const got = resampleBicubic(src, 5, 7, 3, h, w, { antialias });
    expect(got.length).toBe(h * w * 3);
    expectClose(got, want, { atol: 1e-12, rtol: 1e-12, label: `bicubic ${h}x${w}` });
  });

  it('the two modes differ (antialias uses a = -0.5 and renormalised taps even when upsampling)', async () => {
    const src = await ref('input.bicubic');
    const a = resampleBicubic(src, 5, 7, 3, 9, 4, { antialias: true });
    const b = resampleBicubic(src, 5, 7, 3, 9, 4, { antialias: false });
    expect(maxAbs(a.map((v, i) => v - b[i]))).toBeGreaterThan(1e-3);
  });

  it('the same size is the identity; bad sizes are ValueErrors', () => {
    const src = Float64Array.from({ length: 2 * 3 * 4 }, (_, i) => Math.sin(i));
    for (const antialias of [true, false]) expectClose(resampleBicubic(src, 2, 3, 4, 2, 3, { antialias }), src, { atol: 1e-15, rtol: 0 });
    expect(() => resampleBicubic(src, 2, 3, 4, 0, 3, { antialias: true })).toThrow(/outH must be a positive integer, got 0/);
    expect(() => resampleBicubic(src, 2, 2, 4, 3, 3, { antialias: true })).toThrow(ValueError);
  });
});

describe('CMAE.loadEncoder: timm-layout checkpoints vs the PyTorch reference', () => {
  it('pos_embed with the cls row + norm + head: pool cls, mean and the logits match', async () => {
    const { model, pool, head, notes } = await CMAE.loadEncoder(tokenCkpt, { heads: HEADS, preset: 'micro' });
    expect(pool).toBe('cls');
    expect(model.config).toMatchObject({ imageSize: 16, channels: 3, patchSize: 4, dim: 16, depth: 2, heads: 2, mlpRatio: 2 });
    const images = (await ref('input.images16')) as Float32Array;
    const cls = await model.encode(images, { pool });
    expectFeatures(cls, await ref('expect.token.features'), 'cls features');
    expectFeatures(await model.encode(images, { pool: 'mean' }), await ref('expect.token.mean'), 'mean features');
    expect(head?.numClasses).toBe(5);
    expectFeatures(logits(cls, head!, 16), await ref('expect.token.logits'), 'logits');
    expect(notes.join('\n')).toMatch(/created fresh \(seed 0, cmae's init\): .*decoder_embed/);
    expect(notes.join('\n')).toMatch(/momentum branch starts as a copy/);
    // The momentum encoder is the loaded one (its features without the final norm are the same tokens).
    const state = model.stateDict();
    expect(Array.from(state.get('momentum_encoder.blocks.1.mlp.fc2.weight')!)).toEqual(Array.from(state.get('blocks.1.mlp.fc2.weight')!));
    model.dispose();
  });

  it('no_embed_class pos_embed (no cls row) + fc_norm + head: pool avg and the logits match', async () => {
    const { model, pool, head, notes } = await CMAE.loadEncoder(avgCkpt, { heads: HEADS });
    expect(pool).toBe('avg');
    const images = (await ref('input.images16')) as Float32Array;
    const feats = await model.encode(images, { pool });
    expectFeatures(feats, await ref('expect.avg.features'), 'avg features');
    expectFeatures(logits(feats, head!, 16), await ref('expect.avg.logits'), 'logits');
    expect(Array.from(model.stateDict().get('pos_embed')!.subarray(0, 16))).toEqual(new Array(16).fill(0));
    expect(notes.join('\n')).toMatch(/no cls row/);
    await expect(model.encode(images, { pool: 'avg', branch: 'momentum' })).rejects.toThrow(/only the online branch/);
    // The encoder's own pool is its default and travels with it: saved as a cmae checkpoint and
    // loaded back, encode() without options still gives the timm features.
    expect(model.featurePool).toBe('avg');
    expect(Array.from(await model.encode(images))).toEqual(Array.from(feats));
    const converted = path.join(tmp, 'converted-avg.safetensors');
    await model.save(converted);
    expect((await readSafetensors(converted)).metadata.pool).toBe('avg');
    const loaded = await CMAE.load(converted);
    expect(loaded.featurePool).toBe('avg');
    expect(Array.from(await loaded.encode(images))).toEqual(Array.from(feats));
    loaded.dispose();
    // A cmae model's own pool is cls, and a checkpoint naming another pool than the three is refused.
    const plain = await CMAE.create({ preset: 'micro' });
    expect(plain.featurePool).toBe('cls');
    plain.dispose();
    const file = await readSafetensors(converted);
    const bad = path.join(tmp, 'bad-pool.safetensors');
    await writeSafetensors(bad, file.tensors, { ...file.metadata, pool: 'max' });
    await expect(CMAE.load(bad)).rejects.toThrow(/metadata\.pool must be 'cls', 'mean' or 'avg', got "max"/);
    model.dispose();
  });

  it.each([
    ['token', true],
    ['token', false],
    ['avg', true],
    ['avg', false],
  ] as const)('%s checkpoint at 20² (grid 4 → 5, antialias %s): resampled with a warning, features match', async (name, antialias) => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const { model, pool, notes } = await CMAE.loadEncoder(name === 'token' ? tokenCkpt : avgCkpt, { heads: HEADS, imageSize: 20, antialias });
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/pos_embed resampled from a 4×4 grid to 5×5/);
      expect(warn.mock.calls[0][1]).toMatchObject({ code: 'CMAE_POS_EMBED_RESAMPLED' });
      expect(notes.some((n) => n.startsWith('pos_embed resampled'))).toBe(true);
      const feats = await model.encode((await ref('input.images20')) as Float32Array, { pool });
      expectFeatures(feats, await ref(`expect.${name}.resized5_${antialias ? 'aa' : 'noaa'}.features`), 'resized features');
      model.dispose();
    } finally {
      warn.mockRestore();
    }
  });

  it.each([
    [5, true],
    [5, false],
    [3, true],
    [3, false],
  ])('the loaded table at grid %i (antialias %s) is PyTorch\'s, element by element, cls row kept', async (grid, antialias) => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const { model } = await CMAE.loadEncoder(tokenCkpt, { heads: HEADS, imageSize: 4 * grid, antialias });
      const want = await ref(`expect.token.pos${grid}_${antialias ? 'aa' : 'noaa'}`);
      expect(want.length).toBe((1 + grid * grid) * 16);
      // The grid rows: float32 storage of float64 values, 2^-24 relative.
      const state = model.stateDict();
      expectClose(state.get('pos_embed')!.subarray(16), want.subarray(16), { atol: 1e-7, rtol: 1e-7, label: 'pos_embed' });
      // The cls row kept, folded into cls_token (cmae's table keeps row 0 zero).
      expect(Array.from(state.get('pos_embed')!.subarray(0, 16))).toEqual(new Array(16).fill(0));
      const cls = (await readSafetensors(tokenCkpt)).tensors.get('cls_token')!.data as Float32Array;
      expectClose(state.get('cls_token')!, cls.map((v, i) => v + want[i]), { atol: 1e-7, rtol: 1e-7, label: 'cls_token + row 0' });
      model.dispose();
    } finally {
      warn.mockRestore();
    }
  });
});

describe('CMAE.loadEncoder: bad checkpoints', () => {
  it('one FormatError lists every missing, unexpected and mis-shaped tensor', async () => {
    const file = await variant(tokenCkpt, 'broken', {
      'blocks.1.mlp.fc2.bias': undefined,
      'norm.weight': undefined,
      'blocks.0.ls1.gamma': f32([16]),
      'decoder_embed.weight': f32([8, 16]),
      'blocks.0.attn.proj.weight': f32([16, 8]),
      'head.bias': f32([4]),
    });
    const err = await CMAE.loadEncoder(file, { heads: HEADS }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    const message = (err as Error).message;
    expect(message).toContain('6 problems');
    expect(message).toContain(`missing 'blocks.1.mlp.fc2.bias' [16]`);
    expect(message).toContain(`missing 'norm.weight' [16] (or 'fc_norm.weight')`);
    expect(message).toContain(`unexpected 'blocks.0.ls1.gamma' [16]`);
    expect(message).toContain(`unexpected 'decoder_embed.weight' [8, 16]`);
    expect(message).toContain(`mis-shaped 'blocks.0.attn.proj.weight' is [16, 8], expected [16, 16]`);
    expect(message).toContain(`mis-shaped 'head.bias' is [4], expected [5]`);
  });

  it('strict: false ignores tensors outside the encoder, never ViT tensors that change the features', async () => {
    const extra = await variant(tokenCkpt, 'with-decoder', { 'decoder_embed.weight': f32([8, 16]), mask_token: f32([1, 1, 8]) });
    const { model, notes } = await CMAE.loadEncoder(extra, { heads: HEADS, strict: false });
    expect(notes.join('\n')).toContain('ignored (strict: false) 2 tensors outside the encoder: decoder_embed.weight, mask_token');
    expectFeatures(await model.encode((await ref('input.images16')) as Float32Array), await ref('expect.token.features'), 'cls features');
    model.dispose();
    const scaled = await variant(tokenCkpt, 'layer-scale', { 'blocks.0.ls1.gamma': f32([16]), reg_token: f32([1, 4, 16]) });
    await expect(CMAE.loadEncoder(scaled, { heads: HEADS, strict: false })).rejects.toThrow(/2 problems:\n {2}unexpected 'blocks\.0\.ls1\.gamma' \[16\]\n {2}unexpected 'reg_token' \[1, 4, 16\]/);
  });

  it('a class_token=False model, non-float and non-finite tensors, both norms, a bad grid: named', async () => {
    const noCls = await variant(avgCkpt, 'no-cls', { cls_token: undefined });
    await expect(CMAE.loadEncoder(noCls, { heads: HEADS })).rejects.toThrow(/missing 'cls_token' \[1, 1, 16\] \(a class_token=False model/);
    const ints = await variant(tokenCkpt, 'ints', { 'blocks.0.norm1.bias': { dtype: 'I32', shape: [16], data: new Int32Array(16) } });
    await expect(CMAE.loadEncoder(ints, { heads: HEADS })).rejects.toThrow(/'blocks\.0\.norm1\.bias' is I32, expected a float tensor/);
    const nan = f32([16]);
    (nan.data as Float32Array)[3] = NaN;
    const nans = await variant(tokenCkpt, 'nans', { 'blocks.1.norm2.weight': nan });
    await expect(CMAE.loadEncoder(nans, { heads: HEADS })).rejects.toThrow(/'blocks\.1\.norm2\.weight' has a non-finite value \(NaN\) at flat index 3/);
    const both = await variant(avgCkpt, 'both-norms', { 'norm.weight': f32([16]), 'norm.bias': f32([16]) });
    await expect(CMAE.loadEncoder(both, { heads: HEADS })).rejects.toThrow(/'norm\.\*' beside 'fc_norm\.\*'/);
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const resizedButBroken = await variant(tokenCkpt, 'resized-broken', { 'blocks.0.norm1.bias': undefined });
    await expect(CMAE.loadEncoder(resizedButBroken, { heads: HEADS, imageSize: 20 })).rejects.toThrow(/1 problem:\n {2}missing 'blocks\.0\.norm1\.bias' \[16\]/);
    expect(warn).not.toHaveBeenCalled(); // a refused file warns of nothing
    warn.mockRestore();
    const ratio = await variant(tokenCkpt, 'ratio', { 'blocks.0.mlp.fc1.weight': f32([24, 16]) });
    await expect(CMAE.loadEncoder(ratio, { heads: HEADS })).rejects.toThrow(/'blocks\.0\.mlp\.fc1\.weight' is \[24, 16\]: cmae's MLP width must be a whole multiple/);
    const oddGrid = await variant(tokenCkpt, 'odd-grid', { pos_embed: f32([1, 15, 16]) });
    await expect(CMAE.loadEncoder(oddGrid, { heads: HEADS, imageSize: 16 })).rejects.toThrow(/mis-shaped 'pos_embed' is \[1, 15, 16\], expected \[1, 1 \+ g², 16\] or \[1, g², 16\]/);
  });

  it('the heads must be given (shapes cannot tell them); a given field that contradicts the file is listed', async () => {
    await expect(CMAE.loadEncoder(tokenCkpt)).rejects.toThrow(ValueError);
    await expect(CMAE.loadEncoder(tokenCkpt)).rejects.toThrow(/attention heads cannot be inferred from tensor shapes: pass options.heads/);
    await expect(CMAE.loadEncoder(tokenCkpt, { heads: HEADS, dim: 32 })).rejects.toThrow(/mis-shaped 'patch_embed\.proj\.weight' is \[16, 3, 4, 4\], expected \[32, 3, 4, 4\]/);
    await expect(CMAE.loadEncoder(tokenCkpt, { heads: HEADS, antialias: 'yes' as unknown as boolean })).rejects.toThrow(/options.antialias must be a boolean/);
    await expect(CMAE.loadEncoder(tokenCkpt, { heads: HEADS, preset: 'huge' as 'micro' })).rejects.toThrow(/unknown preset 'huge'/);
  });
});

describe('CMAE.loadEncoder: stored dtypes', () => {
  it('F64, BF16 and F16 tensors are converted to float32 exactly (F16 subnormals, signs, powers of 2)', async () => {
    const src = await readSafetensors(tokenCkpt);
    const fc1 = src.tensors.get('blocks.0.mlp.fc1.weight')!;
    const bf16Bits = Uint16Array.from({ length: 32 }, (_, i) => [0x3f80, 0xbf80, 0x4049, 0x0001, 0x8000, 0x3e00][i % 6]);
    const f16Bits = Uint16Array.from({ length: 16 }, (_, i) => [0x3c00, 0xc000, 0x3800, 0x0001, 0x03ff, 0x7bff, 0x8000, 0x3555][i % 8]);
    const file = await variant(tokenCkpt, 'dtypes', {
      'blocks.0.mlp.fc1.weight': { dtype: 'F64', shape: fc1.shape, data: Float64Array.from(fc1.data as Float32Array) },
      'blocks.0.mlp.fc1.bias': { dtype: 'BF16', shape: [32], data: bf16Bits },
      'blocks.1.norm1.bias': { dtype: 'F16', shape: [16], data: f16Bits },
    });
    const { model } = await CMAE.loadEncoder(file, { heads: HEADS });
    const state = model.stateDict();
    expect(Array.from(state.get('blocks.0.mlp.fc1.weight')!)).toEqual(Array.from(fc1.data as Float32Array));
    const bf16 = [1, -1, new Float32Array(new Uint32Array([0x40490000]).buffer)[0], new Float32Array(new Uint32Array([0x00010000]).buffer)[0], -0, 0.125];
    expect(Array.from(state.get('blocks.0.mlp.fc1.bias')!)).toEqual(Array.from({ length: 32 }, (_, i) => bf16[i % 6]));
    // 0x03ff: the largest subnormal; 0x7bff: the largest finite half; 0x3555: exponent 13 − 15, fraction 0x155.
    const f16 = [1, -2, 0.5, 2 ** -24, 1023 * 2 ** -24, 65504, -0, 2 ** -2 * (1 + 0x155 / 1024)];
    expect(Array.from(state.get('blocks.1.norm1.bias')!)).toEqual(Array.from({ length: 16 }, (_, i) => f16[i % 8]));
    model.dispose();
  });
});

describe('cmae checkpoints', () => {
  it('CMAE.load is unchanged, and loadEncoder reads the same encoder (heads from metadata.config)', async () => {
    const original = await CMAE.create({ preset: 'micro', seed: 3 });
    const file = path.join(tmp, 'cmae.safetensors');
    await original.save(file);
    const images = (await ref('input.images16')) as Float32Array;
    const want = await original.encode(images);
    const loaded = await CMAE.load(file);
    expect(Array.from(await loaded.encode(images))).toEqual(Array.from(want));
    const { model, pool, notes } = await CMAE.loadEncoder(file, { strict: false, preset: 'micro' });
    expect(pool).toBe('cls');
    expect(model.config.heads).toBe(2);
    expect(notes[0]).toContain('2 heads (from metadata.config)');
    expect(Array.from(await model.encode(images))).toEqual(Array.from(want));
    await expect(CMAE.loadEncoder(file)).rejects.toThrow(/unexpected 'decoder_embed\.weight'/);
    for (const m of [original, loaded, model]) m.dispose();
  });
});
