import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, BusyError, CMAE, DeviceError, DisposedError, ShapeError, ValueError, getNumThreads, kernels, nativeMemory, presets, setNumThreads } from '../../src/index';
import { getBinding } from '../../src/native';
import { expectSameBits, randn, randu } from '../helpers/check';

const dir = mkdtempSync(path.join(tmpdir(), 'cmae-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function images(n: number, size: number, channels: number, seed: number): Float32Array {
  return randn(n * channels * size * size, seed);
}

async function losses(seed: number, steps: number, threads?: number): Promise<number[]> {
  const before = getNumThreads();
  if (threads) setNumThreads(threads);
  try {
    const model = await CMAE.create({ preset: 'tiny', seed });
    const opt = new AdamW(model, { lr: 1e-3 });
    const out: number[] = [];
    for (let s = 0; s < steps; s++) {
      const x = images(8, 32, 3, 100 + s);
      const parts = await model.lossAndGrad({ images: x, targetImages: images(8, 32, 3, 200 + s) });
      out.push(parts.loss, parts.reconstruction, parts.contrastive);
      await opt.step();
      await model.updateMomentum(0.996);
    }
    opt.dispose();
    model.dispose();
    return out;
  } finally {
    setNumThreads(before);
  }
}

describe('CMAE model API', () => {
  it('initialises as spec §1.7 says: xavier bounds, token std, LayerNorm ones, fixed sin-cos, momentum = online', async () => {
    const model = await CMAE.create({ preset: 'tiny', seed: 3 });
    const state = model.stateDict();
    const qkv = state.get('blocks.0.attn.qkv.weight')!;
    const bound = Math.sqrt(6 / (192 + 576));
    expect(Math.max(...Array.from(qkv, Math.abs))).toBeLessThanOrEqual(bound);
    const std = Math.sqrt(qkv.reduce((s, v) => s + v * v, 0) / qkv.length);
    expect(std).toBeGreaterThan(0.95 * bound / Math.sqrt(3));
    expect(std).toBeLessThan(1.05 * bound / Math.sqrt(3));
    const cls = state.get('cls_token')!;
    const clsStd = Math.sqrt(cls.reduce((s, v) => s + v * v, 0) / cls.length);
    expect(clsStd).toBeGreaterThan(0.015);
    expect(clsStd).toBeLessThan(0.025);
    expect(Array.from(state.get('blocks.3.norm1.weight')!).every((v) => v === 1)).toBe(true);
    expect(Array.from(state.get('blocks.3.attn.qkv.bias')!).every((v) => v === 0)).toBe(true);
    const pos = state.get('pos_embed')!;
    expect(Array.from(pos.subarray(0, 192)).every((v) => v === 0)).toBe(true); // cls row
    expect(Array.from(pos.subarray(192))).toEqual(Array.from(kernels.sincosPosEmbed2d(8, 8, 192).toArray()));
    expect(Array.from(state.get('momentum_encoder.blocks.11.mlp.fc2.weight')!)).toEqual(Array.from(state.get('blocks.11.mlp.fc2.weight')!));
    expect(Array.from(state.get('momentum_projector.fc1.weight')!)).toEqual(Array.from(state.get('projector.fc1.weight')!));
    const decayed = model.parameters().filter((p) => p.weightDecay).map((p) => p.name);
    expect(decayed).toContain('blocks.0.attn.qkv.weight');
    expect(decayed).toContain('patch_embed.proj.weight');
    expect(decayed.some((n) => n.endsWith('.bias') || n.includes('norm') || n.includes('token') || n.includes('.bn.'))).toBe(false);
    expect(model.numVisible).toBe(20); // 16 groups, int(16·0.35) = 5 kept, ×4 patches
    model.dispose();
  });

  it('keeps the event loop ticking during lossAndGrad', async () => {
    const model = await CMAE.create({ preset: 'tiny', seed: 1 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    await model.lossAndGrad({ images: images(32, 32, 3, 1), targetImages: images(32, 32, 3, 2) });
    const elapsed = performance.now() - started;
    clearInterval(timer);
    // A blocked loop would tick 0–1 times; a free one ticks about once per elapsed millisecond.
    expect(ticks).toBeGreaterThan(Math.min(20, elapsed / 10));
    model.dispose();
  });

  it('save(), checkpoints and exports copy the arenas on a worker: the same bits as stateDict(), as a queued call', async () => {
    const model = await CMAE.create({ preset: 'tiny', seed: 3 });
    const optimizer = new AdamW(model);
    await model.lossAndGrad({ images: images(4, 32, 3, 1), targetImages: images(4, 32, 3, 2) });
    await optimizer.step();
    // A queued call: the model is busy until the copy is done, and the event loop turns meanwhile.
    let turned = false;
    setImmediate(() => (turned = true));
    const pending = model.readStateDict();
    await expect(model.lossAndGrad({ images: images(4, 32, 3, 1), targetImages: images(4, 32, 3, 2) })).rejects.toThrow(BusyError);
    const copied = await pending;
    expect(turned).toBe(true);
    const sync = model.stateDict();
    expect([...copied.keys()]).toEqual([...sync.keys()]);
    for (const [name, values] of sync) expectSameBits(copied.get(name)!, values, name);
    const moments = optimizer.stateTensors();
    const copiedMoments = await optimizer.readStateTensors();
    expect([...copiedMoments.keys()]).toEqual([...moments.keys()]);
    for (const [name, values] of moments) expectSameBits(copiedMoments.get(name)!, values, name);
    optimizer.dispose();
    await expect(optimizer.readStateTensors()).rejects.toThrow(DisposedError);
    model.dispose();
    await expect(model.readStateDict()).rejects.toThrow(DisposedError);
  });

  it('the same seed gives bit-identical losses over 10 steps; a different seed does not', async () => {
    const a = await losses(7, 10);
    const b = await losses(7, 10);
    expect(b).toEqual(a);
    const c = await losses(8, 1);
    expect(c[0]).not.toBe(a[0]);
  });

  it('1, 2 and 3 threads give bit-identical losses, parameters and features', async () => {
    // 2 threads run the two sample halves side by side, 1 and 3 threads run them in turn with
    // every kernel on all threads: every sum has a fixed order either way.
    async function run(threads: number) {
      const before = getNumThreads();
      setNumThreads(threads);
      try {
        const model = await CMAE.create({ preset: 'tiny', seed: 5 });
        const opt = new AdamW(model, { lr: 1e-3 });
        const out: number[] = [];
        for (let s = 0; s < 3; s++) {
          const parts = await model.lossAndGrad({ images: images(8, 32, 3, 100 + s), targetImages: images(8, 32, 3, 200 + s) });
          out.push(parts.loss, parts.reconstruction, parts.contrastive);
          await opt.step();
          await model.updateMomentum(0.996);
        }
        const features = await model.encode(images(5, 32, 3, 300), { pool: 'mean' });
        const state = model.stateDict();
        opt.dispose();
        model.dispose();
        return { out, features, state };
      } finally {
        setNumThreads(before);
      }
    }
    const one = await run(1);
    for (const threads of [2, 3]) {
      const other = await run(threads);
      expect(other.out, `${threads} threads: losses`).toEqual(one.out);
      expectSameBits(other.features, one.features, `${threads} threads: features`);
      for (const [name, value] of one.state) expectSameBits(other.state.get(name)!, value, `${threads} threads: ${name}`);
    }
  });

  it("encode's blocks: the last n blocks' features side by side, each what encode() of the encoder cut after that block gives", async () => {
    const model = await CMAE.create({ preset: 'nano', channels: 3, seed: 4 });
    // one step and an EMA update, so that the momentum branch differs from the online one
    const opt = new AdamW(model, { lr: 1e-3 });
    await model.lossAndGrad({ images: images(4, 32, 3, 5), targetImages: images(4, 32, 3, 6) });
    await opt.step();
    await model.updateMomentum(0.9);
    opt.dispose();
    const { dim: D, depth } = model.config;
    const state = model.stateDict();
    const cut = async (blocks: number) => {
      const m = await CMAE.create({ ...model.config, depth: blocks, seed: 1 });
      const keys = new Set(m.stateDict().keys());
      m.loadStateDict(new Map([...state].filter(([name]) => keys.has(name))));
      return m;
    };
    const shorter = [await cut(depth - 2), await cut(depth - 1)];
    const x = images(5, 32, 3, 21);
    const cases = [['cls', 'online'], ['mean', 'online'], ['avg', 'online'], ['cls', 'momentum'], ['mean', 'momentum']] as const;
    for (const [pool, branch] of cases) {
      // batchSize 2: three native calls, and the CPU's two batch parts of uneven size
      const three = await model.encode(x, { pool, branch, blocks: 3, batchSize: 2 });
      expect(three.length).toBe(5 * 3 * D);
      const expected = [...(await Promise.all(shorter.map((m) => m.encode(x, { pool, branch })))), await model.encode(x, { pool, branch })];
      for (let j = 0; j < 3; j++) {
        for (let i = 0; i < 5; i++) {
          const got = three.subarray(i * 3 * D + j * D, i * 3 * D + (j + 1) * D);
          expectSameBits(got, expected[j]!.subarray(i * D, (i + 1) * D), `${pool} ${branch}: image ${i}, block ${depth - 3 + j}`);
        }
      }
      // the blocks differ (the comparison above is not of one block three times)
      expect(Array.from(expected[0]!)).not.toEqual(Array.from(expected[2]!));
    }
    await expect(model.encode(x, { blocks: depth + 1 })).rejects.toThrow(`blocks must be an integer from 1 to the encoder's depth (${depth}), got number ${depth + 1}`);
    await expect(model.encode(x, { blocks: 1.5 })).rejects.toThrow(ValueError);
    for (const m of shorter) m.dispose();
    model.dispose();
  });

  it('encode gives the same features whatever the chunk size, for both pools and branches', async () => {
    const model = await CMAE.create({ preset: 'tiny', seed: 2 });
    const x = images(7, 32, 3, 9);
    for (const pool of ['cls', 'mean'] as const) {
      for (const branch of ['online', 'momentum'] as const) {
        const all = await model.encode(x, { pool, branch });
        const chunked = await model.encode(x, { pool, branch, batchSize: 3 });
        expect(all.length).toBe(7 * 192);
        expect(Array.from(chunked)).toEqual(Array.from(all));
        expect(all.every(Number.isFinite)).toBe(true);
      }
    }
    model.dispose();
  });

  it('save and load round-trip parameters, config and RNG position', async () => {
    const model = await CMAE.create({ preset: 'tiny', seed: 4, channels: 1 });
    await model.lossAndGrad({ images: images(4, 32, 1, 1), targetImages: images(4, 32, 1, 2) }); // advances the mask RNG
    const file = path.join(dir, 'a.safetensors');
    await model.save(file);
    const loaded = await CMAE.load(file);
    expect(loaded.config).toEqual(model.config);
    expect(loaded.maskCounter).toBe(1);
    const x = images(3, 32, 1, 5);
    expect(Array.from(await loaded.encode(x))).toEqual(Array.from(await model.encode(x)));
    // Same masks from here on: identical losses.
    const batch = { images: images(4, 32, 1, 6), targetImages: images(4, 32, 1, 7) };
    expect((await loaded.lossAndGrad(batch)).loss).toBe((await model.lossAndGrad(batch)).loss);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    loaded.dispose();
    model.dispose();
  });

  it('gives clear typed errors and stays usable', async () => {
    const model = await CMAE.create({ preset: 'tiny', seed: 1 });
    await expect(model.lossAndGrad({ images: new Float32Array(100), targetImages: new Float32Array(100) })).rejects.toThrow(ShapeError);
    await expect(model.lossAndGrad({ images: images(2, 32, 3, 1) })).rejects.toThrow(/needs targetImages/);
    await expect(model.lossAndGrad({ images: images(2, 32, 3, 1), targetImages: images(3, 32, 3, 1) })).rejects.toThrow(ShapeError);
    await expect(model.lossAndGrad({ images: images(2, 32, 3, 1), targetImages: images(2, 32, 3, 1), maskNoise: randu(5, 1) })).rejects.toThrow(/maskNoise has 5 values/);
    await expect(model.lossAndGrad({ images: images(1, 32, 3, 1), targetImages: images(1, 32, 3, 1) })).rejects.toThrow(/at least 2 images/);
    const first = model.lossAndGrad({ images: images(4, 32, 3, 1), targetImages: images(4, 32, 3, 2) });
    await expect(model.encode(images(1, 32, 3, 1))).rejects.toThrow(BusyError);
    await first;
    await expect(model.updateMomentum(1.5)).rejects.toThrow(ValueError);
    await expect(CMAE.create({ preset: 'tiny', dim: 190 })).rejects.toThrow(/not divisible/);
    await expect(CMAE.create({ preset: 'nope' as 'tiny' })).rejects.toThrow(/unknown preset/);
    await expect(CMAE.create({ preset: 'tiny', bogus: 1 } as never)).rejects.toThrow(/unknown model option 'bogus'/);
    expect(() => model.loadStateDict(new Map([['cls_token', new Float32Array(3)]]))).toThrow(ShapeError);
    model.dispose();
    await expect(model.encode(images(1, 32, 3, 1))).rejects.toThrow(DisposedError);
  });

  it('lives on one device, refuses a device it has no backend for, and the native side owns every input rule', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 1 });
    expect(model.device).toBe('cpu');
    // No CUDA backend in this build: a clear DeviceError, never a crash.
    await expect(CMAE.create({ preset: 'micro', device: 'cuda' })).rejects.toThrow(DeviceError);
    await expect(CMAE.create({ preset: 'micro', device: 'cuda' })).rejects.toThrow(/device 'cuda' is not available/);
    await expect(CMAE.create({ preset: 'micro', device: 'tpu' as 'cpu' })).rejects.toThrow(/unknown device 'tpu'/);
    // The native config has no defaults of its own: a missing key is named.
    const { tau: _tau, ...withoutTau } = presets.micro;
    expect(() => new (getBinding().NativeModel)(withoutTau, 0, 'cpu')).toThrow(/config\.tau is missing/);
    // Pool and branch names, momentum range: checked natively (typed errors).
    await expect(model.encode(images(2, 16, 3, 1), { pool: 'max' as 'cls' })).rejects.toThrow(/pool must be 'cls', 'mean' or 'avg', got 'max'/);
    await expect(model.encode(images(2, 16, 3, 1), { branch: 'target' as 'online' })).rejects.toThrow(/branch must be 'online' or 'momentum'/);
    await expect(model.updateMomentum(-0.1)).rejects.toThrow(/momentum must be in \[0, 1\]/);
    // AdamW's options are checked when it is made, naming the option.
    expect(() => new AdamW(model, { eps: 0 })).toThrow(ValueError);
    expect(() => new AdamW(model, { betas: [0.9, 1] })).toThrow(/beta2 must be in \[0, 1\)/);
    expect(() => new AdamW(model, { lr: Number.POSITIVE_INFINITY })).toThrow(/lr must be a non-negative number a float32 can hold, got inf/);
    // Finite as a double, infinite as the kernels' float32: refused too.
    expect(() => new AdamW(model, { lr: 1e39 })).toThrow(/lr must be a non-negative number a float32 can hold, got 1e\+39/);
    expect(() => new AdamW(model, { weightDecay: Number.POSITIVE_INFINITY })).toThrow(/weightDecay must be a non-negative number a float32 can hold/);
    const opt = new AdamW(model);
    await expect(opt.step({ lr: -1 })).rejects.toThrow(/lr must be a non-negative number a float32 can hold, got -1/);
    // Host copies of the arenas are refused while a call runs (the native busy flag).
    const running = model.lossAndGrad({ images: images(4, 16, 3, 1), targetImages: images(4, 16, 3, 2) });
    expect(() => model.stateDict()).toThrow(BusyError);
    expect(() => model.gradients()).toThrow(BusyError);
    expect(() => opt.stateTensors()).toThrow(BusyError);
    await expect(opt.step()).rejects.toThrow(BusyError);
    await running;
    expect(await opt.step()).toBeGreaterThan(0);
    opt.dispose();
    model.dispose();
    expect(model.disposed).toBe(true);
    expect(() => model.stateDict()).toThrow(DisposedError);
  });

  it('training and encode share one workspace: interleaving them changes no result, and it holds the larger plan, not both', async () => {
    const x = images(6, 16, 3, 31);
    const y = images(40, 16, 3, 32);
    const held = () => nativeMemory().cpuAllocatedBytes;
    type Run = { loss?: number; grads?: Map<string, Float32Array>; features: Float32Array[]; planned: number };
    // steps: 'train' (one lossAndGrad at batch 6), 'encode' (40 images in one call).
    const run = async (steps: ('train' | 'encode')[]): Promise<Run> => {
      const model = await CMAE.create({ preset: 'micro', seed: 5 });
      const start = held();
      const out: Run = { features: [], planned: 0 };
      for (const step of steps) {
        if (step === 'train') {
          out.loss = (await model.lossAndGrad({ images: x, targetImages: x, maskNoise: randu(6 * model.numGroups, 33) })).loss;
          out.grads = model.gradients();
        } else {
          out.features.push(await model.encode(y, { batchSize: 40 }));
        }
      }
      out.planned = held() - start;
      model.dispose();
      return out;
    };
    const trainOnly = await run(['train']);
    const encodeOnly = await run(['encode']);
    const both = await run(['encode', 'train', 'encode']);
    expect(both.loss).toBe(trainOnly.loss);
    for (const [name, g] of trainOnly.grads!) expectSameBits(both.grads!.get(name)!, g, name);
    expectSameBits(both.features[0], encodeOnly.features[0], 'encode before training');
    expectSameBits(both.features[1], encodeOnly.features[0], 'encode after training');
    // One buffer for the larger plan; each plan's identity ids (at most 40 × 16 int32) on top.
    expect(both.planned).toBeLessThanOrEqual(Math.max(trainOnly.planned, encodeOnly.planned) + 40 * 16 * 4 + 4096);
    expect(both.planned).toBeLessThan(trainOnly.planned + encodeOnly.planned);
  });

  it('trains in MAE mode without a target view', async () => {
    const model = await CMAE.create({ preset: 'tiny', mode: 'mae', maskGroup: 1, maskRatio: 0.75, seed: 1 });
    expect(model.parameters().some((p) => p.name.startsWith('momentum_'))).toBe(false);
    const parts = await model.lossAndGrad({ images: images(4, 32, 3, 1) });
    expect(parts.contrastive).toBe(0);
    expect(parts.loss).toBe(parts.reconstruction);
    await expect(model.encode(images(1, 32, 3, 1), { branch: 'momentum' })).rejects.toThrow(/no momentum branch/);
    model.dispose();
  });
});
