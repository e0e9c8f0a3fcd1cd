/**
 * Lifetimes and concurrency of the handles users hold (CMAE, AdamW, Tensor): after dispose() every
 * method is a DisposedError (never a crash or a silent result); dispose() during a running call is
 * refused with BusyError and leaves the call to finish; overlapping calls on one model are a
 * BusyError; models in one process share no hidden state.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { AdamW, BusyError, CMAE, DisposedError, Tensor } from '../../src/index';
import { expectSameBits, randn } from '../helpers/check';

const image = 3 * 16 * 16;
const images = (n: number, seed: number) => randn(n * image, seed);

describe('after dispose()', () => {
  it('every method of a model, its optimizer and a tensor is a DisposedError', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 1 });
    const opt = new AdamW(model);
    const t = Tensor.from(new Float32Array(4), [4]);
    const file = '/nonexistent/never-written.safetensors';
    opt.dispose();
    model.dispose();
    t.dispose();
    model.dispose(); // idempotent
    const sync: [string, () => unknown][] = [
      ['numPatches', () => model.numPatches],
      ['numGroups', () => model.numGroups],
      ['numVisible', () => model.numVisible],
      ['patchDim', () => model.patchDim],
      ['device', () => model.device],
      ['maskCounter', () => model.maskCounter],
      ['set maskCounter', () => (model.maskCounter = 3)],
      ['trainableCount', () => model.trainableCount],
      ['parameters', () => model.parameters()],
      ['gradients', () => model.gradients()],
      ['stateDict', () => model.stateDict()],
      ['loadStateDict', () => model.loadStateDict(new Map())],
      ['optimizer.stateTensors', () => opt.stateTensors()],
      ['optimizer.loadStateTensors', () => opt.loadStateTensors(new Map(), 1)],
      ['tensor.toArray', () => t.toArray()],
      ['tensor.view', () => t.view()],
      ['tensor.copyFrom', () => t.copyFrom(new Float32Array(4))],
      ['tensor.to', () => t.to('cpu')],
    ];
    for (const [name, call] of sync) expect(call, name).toThrow(DisposedError);
    const async: [string, () => Promise<unknown>][] = [
      ['lossAndGrad', () => model.lossAndGrad({ images: images(2, 1), targetImages: images(2, 2) })],
      ['encode', () => model.encode(images(1, 1))],
      ['updateMomentum', () => model.updateMomentum(0.9)],
      ['save', () => model.save(file)],
      ['loadTeacher', () => model.loadTeacher(file)],
      ['optimizer.step', () => opt.step()],
    ];
    for (const [name, call] of async) await expect(call(), name).rejects.toThrow(DisposedError);
    expect(model.disposed).toBe(true);
    expect(t.disposed).toBe(true);
    expect(() => new AdamW(model)).toThrow(DisposedError);
  });
});

describe('concurrency', () => {
  it('dispose() during a call is a BusyError and the call completes; overlapping calls are a BusyError', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 2 });
    const running = model.lossAndGrad({ images: images(4, 1), targetImages: images(4, 2) });
    expect(() => model.dispose()).toThrow(BusyError);
    await expect(model.encode(images(1, 3))).rejects.toThrow(BusyError);
    const parts = await running;
    expect(Number.isFinite(parts.loss)).toBe(true);
    model.dispose(); // now it may
    expect(model.disposed).toBe(true);
  });

  it('models in one process share no hidden state: interleaved training gives each the results it has alone', async () => {
    const alone = async (seed: number) => {
      const m = await CMAE.create({ preset: 'micro', seed });
      const o = new AdamW(m, { lr: 1e-3 });
      const losses: number[] = [];
      for (let s = 0; s < 3; s++) {
        losses.push((await m.lossAndGrad({ images: images(4, 10 * seed + s), targetImages: images(4, 10 * seed + s + 5) })).loss);
        await o.step();
      }
      const state = m.stateDict().get('blocks.1.mlp.fc2.weight')!;
      o.dispose();
      m.dispose();
      return { losses, state };
    };
    const a = await alone(1);
    const b = await alone(2);
    // Both at once, their calls in flight together.
    const ma = await CMAE.create({ preset: 'micro', seed: 1 });
    const mb = await CMAE.create({ preset: 'micro', seed: 2 });
    const oa = new AdamW(ma, { lr: 1e-3 });
    const ob = new AdamW(mb, { lr: 1e-3 });
    const la: number[] = [];
    const lb: number[] = [];
    for (let s = 0; s < 3; s++) {
      const [pa, pb] = await Promise.all([
        ma.lossAndGrad({ images: images(4, 10 + s), targetImages: images(4, 10 + s + 5) }),
        mb.lossAndGrad({ images: images(4, 20 + s), targetImages: images(4, 20 + s + 5) }),
      ]);
      la.push(pa.loss);
      lb.push(pb.loss);
      await Promise.all([oa.step(), ob.step()]);
    }
    expect(la).toEqual(a.losses);
    expect(lb).toEqual(b.losses);
    expectSameBits(ma.stateDict().get('blocks.1.mlp.fc2.weight')!, a.state, 'model a');
    expectSameBits(mb.stateDict().get('blocks.1.mlp.fc2.weight')!, b.state, 'model b');
    for (const x of [oa, ob]) x.dispose();
    for (const x of [ma, mb]) x.dispose();
  });

  it('a worker thread using the addon at the same time as the main thread gets the same results as either alone', async () => {
    const x = Array.from({ length: 4 * image }, (_, i) => Math.sin(i * 3));
    const here = async () => {
      const m = await CMAE.create({ preset: 'micro', seed: 3 });
      const o = new AdamW(m, { lr: 1e-3 });
      const losses: number[] = [];
      for (let s = 0; s < 3; s++) {
        losses.push((await m.lossAndGrad({ images: Float32Array.from(x), targetImages: Float32Array.from(x) })).loss);
        await o.step();
      }
      o.dispose();
      m.dispose();
      return losses;
    };
    const alone = await here();
    const worker = new Worker(path.join(__dirname, 'worker-child.cjs'), { workerData: { seed: 3, images: x } });
    const [inWorker, together] = await Promise.all([new Promise<number[]>((resolve, reject) => worker.on('message', resolve).on('error', reject)), here()]);
    await worker.terminate();
    expect(inWorker).toEqual(alone);
    expect(together).toEqual(alone);
  });
});
