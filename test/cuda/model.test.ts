/**
 * The CUDA device end to end on the SIMT emulator (cmae_emulated.node): device discovery, tensors
 * across devices, kernels on device tensors, and the model on 'cuda' against the same model on the
 * CPU — losses, gradients, staging of CPU inputs and outputs, each matmul precision, encode,
 * checkpoints across devices and a bit-identical resume.
 */
import './emulated';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AdamW, BusyError, CMAE, DeviceError, Tensor, getMatmulPrecision, info, kernels, setMatmulPrecision, type MatmulPrecision, type Mode,
} from '../../src/index';
import { DataLoader } from '../../src/data/index';
import { train } from '../../src/train/trainer';
import { expectClose, expectSameBits, randn, randu } from '../helpers/check';
import { noiseDataset } from '../helpers/fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-cuda-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
// Every test starts from fp32 products on both devices (the emulated device's own default is tf32,
// compute capability >= 8.0), also the first one and one run alone with -t.
const fp32Everywhere = () => {
  setMatmulPrecision('fp32', 'cpu');
  setMatmulPrecision('fp32', 'cuda');
};
beforeEach(fp32Everywhere);
afterEach(fp32Everywhere);

const B = 4;
const imageNumel = B * 3 * 16 * 16; // the micro preset: 3×16×16, 16 patches of 4×4, 4 mask groups

function batch(seed: number, groups: number) {
  return { images: randn(imageNumel, seed), targetImages: randn(imageNumel, seed + 1), maskNoise: randu(B * groups, seed + 2) };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

describe('the emulated CUDA device', () => {
  it('is listed by info() as one device of the emulated build', () => {
    const cuda = info().cuda;
    expect(cuda.compiled).toBe(true);
    expect(cuda.build).toBe('emulated');
    expect(cuda.devices.length).toBe(1);
    const [d] = cuda.devices;
    expect(d.index).toBe(0);
    expect(d.name.length).toBeGreaterThan(0);
    expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
    expect(d.multiprocessors).toBeGreaterThan(0);
    expect(d.memoryBytes).toBeGreaterThan(0);
  });

  it('tensors move between devices bit for bit; device names are checked', () => {
    const x = randn(1000, 1);
    x[3] = NaN;
    x[4] = -0;
    const onCuda = Tensor.from(x, [10, 100], { device: 'cuda' });
    expect(onCuda.device).toBe('cuda:0');
    expectSameBits(onCuda.toArray(), x, 'toArray from cuda');
    const back = onCuda.to('cpu');
    expect(back.device).toBe('cpu');
    expectSameBits(back.toArray(), x, 'to(cpu)');
    expectSameBits(back.to('cuda:0').toArray(), x, 'cpu → cuda:0 → host');
    expect(() => onCuda.view()).toThrowError(DeviceError);
    expect(Array.from(Tensor.full([3], 2.5, 'float32', { device: 'cuda' }).toArray())).toEqual([2.5, 2.5, 2.5]);
    expect(Array.from(Tensor.zeros([2], 'int32', { device: 'cuda' }).toArray())).toEqual([0, 0]);
    expect(() => Tensor.empty([2], 'float32', { device: 'cuda:1' })).toThrowError(DeviceError);
    expect(() => Tensor.empty([2], 'float32', { device: 'cuda:1' })).toThrowError(/'cuda:1' does not exist/);
    expect(() => Tensor.empty([2], 'float32', { device: 'gpu' as 'cuda' })).toThrowError(/unknown device 'gpu' \(expected 'cpu', 'cuda' or 'cuda:N'\)/);
    for (const t of [onCuda, back]) t.dispose();
  });

  it('kernels run on device tensors, equal to the CPU, and refuse mixed devices', () => {
    const x = randn(2 * 3 * 8 * 8, 2);
    const cpu = kernels.patchify(Tensor.from(x, [2, 3, 8, 8]), 4);
    const images = Tensor.from(x, [2, 3, 8, 8], { device: 'cuda' });
    const cuda = kernels.patchify(images, 4, { out: Tensor.full([2, 4, 48], NaN, 'float32', { device: 'cuda' }) });
    expect(cuda.device).toBe('cuda:0');
    expectSameBits(cuda.toArray(), cpu.toArray(), 'patchify cuda vs cpu');
    expect(kernels.patchify(images, 4).device).toBe('cuda:0');
    expect(() => kernels.patchify(images, 4, { out: Tensor.empty([2, 4, 48]) })).toThrowError(DeviceError);
    expect(() => kernels.patchify(images, 4, { out: Tensor.empty([2, 4, 48]) })).toThrowError(/cpu|cuda/);
  });

  it('outputs and gradient accumulators the caller does not pass are allocated on the inputs\' device', () => {
    const [inp, weight, dout] = [randn(6 * 8, 3), randn(4 * 8, 4), randn(6 * 4, 5)];
    const host = { inp: Tensor.from(inp, [6, 8]), weight: Tensor.from(weight, [4, 8]), dout: Tensor.from(dout, [6, 4]) };
    const dev = { inp: host.inp.to('cuda'), weight: host.weight.to('cuda'), dout: host.dout.to('cuda') };
    const y = kernels.linearForward(dev.inp, dev.weight);
    expect(y.device).toBe('cuda:0');
    setMatmulPrecision('fp32', 'cuda');
    expectClose(y.toArray(), kernels.linearForward(host.inp, host.weight).toArray(), { atol: 1e-5, rtol: 1e-5, label: 'linearForward' });
    const g = kernels.linearBackward(dev.dout, dev.inp, dev.weight);
    const want = kernels.linearBackward(host.dout, host.inp, host.weight);
    for (const key of ['dinp', 'dweight', 'dbias'] as const) {
      expect(g[key]!.device, key).toBe('cuda:0');
      expectClose(g[key]!.toArray(), want[key]!.toArray(), { atol: 1e-5, rtol: 1e-5, label: key });
    }
  });

  it('each device has its own matmul precision', () => {
    setMatmulPrecision('tf32', 'cuda');
    expect(getMatmulPrecision('cuda')).toBe('tf32');
    expect(getMatmulPrecision('cpu')).toBe('fp32');
    expect(getMatmulPrecision()).toBe('fp32');
    setMatmulPrecision('bf16', 'cuda:0');
    expect(getMatmulPrecision('cuda')).toBe('bf16');
    expect(() => setMatmulPrecision('fp16' as MatmulPrecision, 'cuda')).toThrowError(/'fp32', 'tf32' or 'bf16'/);
    expect(() => getMatmulPrecision('cuda:7' as 'cuda')).toThrowError(DeviceError);
  });
});

describe.each<Mode>(['cmae', 'mae'])('%s on cuda against the same model on the CPU', (mode) => {
  async function pair(seed = 3) {
    const cpu = await CMAE.create({ preset: 'micro', mode, seed });
    const cuda = await CMAE.create({ preset: 'micro', mode, seed, device: 'cuda' });
    return { cpu, cuda };
  }

  it('starts from the same parameters and agrees on three fp32 AdamW + EMA steps (CPU inputs and outputs staged)', async () => {
    const { cpu, cuda } = await pair();
    expect(cuda.device).toBe('cuda:0');
    const a = cpu.stateDict();
    const b = cuda.stateDict();
    for (const [name, values] of a) expectSameBits(b.get(name)!, values, `initial ${name}`);
    const opts = { lr: 1e-3, weightDecay: 0.05 };
    const optimizers = [new AdamW(cpu, opts), new AdamW(cuda, opts)];
    const L = 16;
    const P = 48;
    for (let step = 0; step < 3; step++) {
      const input = batch(10 + step, cpu.numGroups);
      const outputs = [cpu, cuda].map(() => ({
        pred: Tensor.full([B, L, P], NaN),
        mask: Tensor.full([B, L], NaN),
        idsRestore: Tensor.full([B, L], -1, 'int32'),
        ...(mode === 'cmae' ? { q: Tensor.full([B, 16], NaN), zT: Tensor.full([B, 16], NaN) } : {}),
      }));
      const parts = [await cpu.lossAndGrad({ ...input, outputs: outputs[0] }), await cuda.lossAndGrad({ ...input, outputs: outputs[1] })];
      expect(Math.abs(parts[1].loss - parts[0].loss) / parts[0].loss, `step ${step} loss`).toBeLessThan(1e-5);
      expect(Math.abs(parts[1].reconstruction - parts[0].reconstruction) / parts[0].reconstruction).toBeLessThan(1e-5);
      if (mode === 'cmae') expect(Math.abs(parts[1].contrastive - parts[0].contrastive) / parts[0].contrastive).toBeLessThan(1e-5);
      else expect(parts[1].contrastive).toBe(0);
      // The outputs were CPU tensors: the native job staged them and copied the results back.
      expectSameBits(outputs[1].mask.toArray(), outputs[0].mask.toArray(), 'mask');
      expectSameBits(outputs[1].idsRestore.toArray(), outputs[0].idsRestore.toArray(), 'idsRestore');
      for (const key of Object.keys(outputs[0]).filter((k) => k !== 'mask' && k !== 'idsRestore') as ('pred' | 'q' | 'zT')[]) {
        const want = outputs[0][key]!.toArray();
        expectClose(outputs[1][key]!.toArray(), want, { atol: 1e-5 * maxAbs(want), rtol: 1e-4, label: `step ${step} ${key}` });
      }
      if (step === 0) {
        const g = cuda.gradients();
        const scale = Math.max(...[...cpu.gradients().values()].map(maxAbs));
        for (const [name, want] of cpu.gradients()) {
          expectClose(g.get(name)!, want, { atol: 1e-5 * scale + 1e-4 * maxAbs(want), rtol: 1e-4, label: `grad ${name}` });
        }
      }
      for (const o of optimizers) await o.step();
      if (mode === 'cmae') for (const m of [cpu, cuda]) await m.updateMomentum(0.99);
      for (const o of outputs) for (const t of Object.values(o)) t.dispose();
    }
    for (const o of optimizers) o.dispose();
    for (const m of [cpu, cuda]) m.dispose();
  });

  it.each<[MatmulPrecision, number]>([
    ['tf32', 5e-3],
    ['bf16', 3e-2],
  ])('with %s matrix products the losses stay within %f of fp32', async (precision, tolerance) => {
    const { cpu, cuda } = await pair(4);
    const input = batch(20, cpu.numGroups);
    const want = await cpu.lossAndGrad(input);
    setMatmulPrecision(precision, 'cuda');
    const got = await cuda.lossAndGrad(input);
    expect(Math.abs(got.loss - want.loss) / want.loss).toBeLessThan(tolerance);
    expect(Math.abs(got.reconstruction - want.reconstruction) / want.reconstruction).toBeLessThan(tolerance);
    // And the products really are reduced-precision ones (not fp32 by another name).
    expect(got.loss).not.toBe(want.loss);
    cpu.dispose();
    cuda.dispose();
  });

  it('takes device tensors as inputs, and refuses tensors of another device', async () => {
    const { cpu, cuda } = await pair(5);
    const input = batch(30, cpu.numGroups);
    const onDevice = {
      images: Tensor.from(input.images, [B, 3, 16, 16], { device: 'cuda' }),
      targetImages: Tensor.from(input.targetImages, [B, 3, 16, 16], { device: 'cuda' }),
      maskNoise: Tensor.from(input.maskNoise, [B, cpu.numGroups], { device: 'cuda' }),
    };
    const fromHost = await cuda.lossAndGrad(input);
    cuda.loadStateDict(cpu.stateDict());
    const fromDevice = await cuda.lossAndGrad(onDevice);
    expect(fromDevice.loss).toBe(fromHost.loss);
    await expect(cpu.lossAndGrad({ ...input, images: onDevice.images })).rejects.toThrowError(DeviceError);
    await expect(cpu.lossAndGrad({ ...input, images: onDevice.images })).rejects.toThrowError(/images must be on cpu, got cuda/);
    await expect(cpu.encode(onDevice.images)).rejects.toThrowError(DeviceError);
    for (const t of Object.values(onDevice)) t.dispose();
    cpu.dispose();
    cuda.dispose();
  });

  it('encodes like the CPU model, for each pool and branch, of the last block and the last two', async () => {
    const { cpu, cuda } = await pair(6);
    const images = randn(5 * 3 * 16 * 16, 40);
    const branches = mode === 'cmae' ? (['online', 'momentum'] as const) : (['online'] as const);
    for (const pool of ['cls', 'mean', 'avg'] as const)
      for (const branch of pool === 'avg' ? (['online'] as const) : branches) {
        for (const blocks of [1, 2]) {
          const want = await cpu.encode(images, { pool, branch, blocks, batchSize: 2 });
          const got = await cuda.encode(images, { pool, branch, blocks, batchSize: 2 });
          expect(got.length).toBe(5 * blocks * cpu.config.dim);
          expectClose(got, want, { atol: 1e-5 * maxAbs(want), rtol: 1e-4, label: `encode ${pool} ${branch} blocks ${blocks}` });
        }
      }
    cpu.dispose();
    cuda.dispose();
  });

  it('gives the cls attention of the CPU model, for each branch', async () => {
    const { cpu, cuda } = await pair(8);
    const images = randn(5 * 3 * 16 * 16, 41);
    for (const branch of mode === 'cmae' ? (['online', 'momentum'] as const) : (['online'] as const)) {
      const want = await cpu.clsAttention(images, { branch, batchSize: 2 });
      const got = await cuda.clsAttention(images, { branch, batchSize: 2 });
      expect(got.length).toBe(5 * cpu.config.heads * 16);
      expectClose(got, want, { atol: 1e-6, rtol: 1e-4, label: `clsAttention ${branch}` });
    }
    cpu.dispose();
    cuda.dispose();
  });

  it('checkpoints move across devices bit for bit', async () => {
    const { cuda } = await pair(7);
    const optimizer = new AdamW(cuda, { lr: 1e-3 });
    await cuda.lossAndGrad(batch(50, cuda.numGroups));
    await optimizer.step();
    const file = path.join(root, `${mode}-cuda.safetensors`);
    await cuda.save(file);
    const state = cuda.stateDict();
    for (const device of ['cpu', 'cuda'] as const) {
      const loaded = await CMAE.load(file, { device });
      expect(loaded.device).toBe(device === 'cpu' ? 'cpu' : 'cuda:0');
      expect(loaded.maskCounter).toBe(cuda.maskCounter);
      for (const [name, values] of state) expectSameBits(loaded.stateDict().get(name)!, values, `${device} ${name}`);
      loaded.dispose();
    }
    optimizer.dispose();
    cuda.dispose();
  });
});

describe('one device, several callers', () => {
  it('model jobs on one device take turns (concurrent results equal sequential ones); kernels and settings wait for none', async () => {
    const models = await Promise.all([1, 2].map((seed) => CMAE.create({ preset: 'micro', seed, device: 'cuda' })));
    const inputs = [batch(60, models[0].numGroups), batch(61, models[0].numGroups)];
    const concurrent = await Promise.all(models.map((m, i) => m.lossAndGrad(inputs[i])));
    const sequential = [];
    for (let i = 0; i < 2; i++) sequential.push(await models[i].lossAndGrad(inputs[i]));
    expect(concurrent).toEqual(sequential);

    // While a job runs on cuda:0, a kernel call on its tensors or a precision change there is a
    // BusyError (the JS thread never waits for a job); afterwards both work.
    const big = { images: randn(16 * 3 * 16 * 16, 62), targetImages: randn(16 * 3 * 16 * 16, 63) };
    const x = Tensor.from(randn(2 * 3 * 8 * 8, 64), [2, 3, 8, 8], { device: 'cuda' });
    let done = false;
    const job = models[0].lossAndGrad(big).then(() => { done = true; });
    let busy: unknown = null;
    while (!done && busy === null) {
      try {
        kernels.patchify(x, 4).dispose();
        await new Promise((resolve) => setImmediate(resolve));
      } catch (e) {
        busy = e;
      }
    }
    expect(busy).toBeInstanceOf(BusyError);
    expect(String(busy)).toMatch(/is running a model or optimizer job/);
    if (!done) expect(() => setMatmulPrecision('tf32', 'cuda')).toThrowError(BusyError);
    await job;
    expect(kernels.patchify(x, 4).device).toBe('cuda:0');
    setMatmulPrecision('tf32', 'cuda');
    x.dispose();
    for (const m of models) m.dispose();
  });
});

describe('batches made on cuda', () => {
  it('a DataLoader on cuda gives the CPU loader\'s batches (same draws; pixels within one 8-bit level)', async () => {
    const dataset = noiseDataset(20, 99);
    const options = { batchSize: 8, seed: 3, augment: { outSize: 16, shiftRange: 3 }, normalize: 'none' as const };
    const onCpu = new DataLoader(dataset, options);
    const onCuda = new DataLoader(dataset, { ...options, device: 'cuda' });
    const a = onCpu.batches(0)[Symbol.asyncIterator]();
    const b = onCuda.batches(0)[Symbol.asyncIterator]();
    for (let step = 0; step < 2; step++) {
      const [x, y] = [(await a.next()).value!, (await b.next()).value!];
      expect(y.images.device).toBe('cuda:0');
      expect(y.targetImages!.device).toBe('cuda:0');
      expect(Array.from(y.indices)).toEqual(Array.from(x.indices));
      expect(Array.from(y.shifts!)).toEqual(Array.from(x.shifts!));
      // ops/data.h: float results may differ by a few ulps where compilers contract a·b + c
      // differently, and rarely by one 8-bit level where that meets a rounding boundary.
      for (const [got, want, label] of [[y.images, x.images, 'online'], [y.targetImages!, x.targetImages!, 'target']] as const) {
        const g = got.toArray();
        const w = want.toArray();
        let beyondUlps = 0;
        for (let i = 0; i < w.length; i++) {
          const d = Math.abs(g[i] - w[i]);
          expect(d, `${label}[${i}]`).toBeLessThanOrEqual(1 / 255 + 1e-6);
          if (d > 1e-5) beyondUlps++;
        }
        expect(beyondUlps, `${label}: pixels one level apart`).toBeLessThanOrEqual(Math.ceil(w.length / 200));
      }
      x.dispose();
      y.dispose();
    }
    await a.return?.();
    await b.return?.();
  });
});

describe('training on cuda', () => {
  async function setup() {
    const model = await CMAE.create({ preset: 'micro', seed: 1, device: 'cuda' });
    const data = new DataLoader(noiseDataset(24, 777), { batchSize: 8, seed: 1, augment: { outSize: 16, shiftRange: 3 }, device: 'cuda' });
    return { model, data };
  }

  it('a resumed run is bit-identical to an uninterrupted one', async () => {
    const full = await setup();
    const result = await train({ model: full.model, data: full.data, steps: 4, lr: 1e-3, outDir: path.join(root, 'full') });
    const part = await setup();
    const partDir = path.join(root, 'part');
    const controller = new AbortController();
    const first = await train({
      model: part.model, data: part.data, steps: 4, lr: 1e-3, outDir: partDir, signal: controller.signal,
      onStep: (s) => { if (s.step === 2) controller.abort(); },
    });
    expect(first.steps).toBe(2);
    part.model.dispose();
    const again = await setup();
    const second = await train({ model: again.model, data: again.data, steps: 4, lr: 1e-3, outDir: partDir, resumeFrom: path.join(partDir, 'checkpoint.safetensors') });
    expect(second.history.map((h) => h.loss)).toEqual(result.history.slice(2).map((h) => h.loss));
    const a = full.model.stateDict();
    const b = again.model.stateDict();
    for (const [name, values] of a) expectSameBits(b.get(name)!, values, name);
    full.model.dispose();
    again.model.dispose();
  });
});
