import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CMAE, Tensor, readSafetensors } from '../../src/index';
import { expectSameBits } from '../helpers/check';
import { DataLoader } from '../../src/data/index';
import { noiseDataset } from '../helpers/fixtures';
import { type StepInfo, checkResumable, train } from '../../src/train/trainer';
import { cosineWithWarmup, momentumSchedule } from '../../src/optim/schedules';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-train-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dataset = (n: number) => noiseDataset(n);

async function setup(seed = 1) {
  const model = await CMAE.create({ preset: 'micro', seed });
  const data = new DataLoader(dataset(48), { batchSize: 8, seed, augment: { outSize: 16, shiftRange: 3 } });
  return { model, data };
}

describe('schedules', () => {
  it('warmup then cosine, per step (spec §5 numbers)', () => {
    // MAE: warmup 40 of E epochs, lr 2.4e-3 → 1.2e-3 at epoch 20, 2.4e-3 at 40, 1.2e-3 mid-cosine.
    const lr = cosineWithWarmup({ baseLr: 2.4e-3, warmupSteps: 40, totalSteps: 800 });
    expect(lr(0)).toBe(0);
    expect(lr(20)).toBeCloseTo(1.2e-3, 12);
    expect(lr(40)).toBeCloseTo(2.4e-3, 12);
    expect(lr(40 + 380)).toBeCloseTo(1.2e-3, 12);
    // CMAE: warmup from 1e-4·lr, so step 0 is 2.4e-7, not 0.
    expect(cosineWithWarmup({ baseLr: 2.4e-3, warmupSteps: 40, totalSteps: 800, warmupStartFactor: 1e-4 })(0)).toBeCloseTo(2.4e-7, 15);
    const m = momentumSchedule(0.996, 1, 100);
    expect(m(0)).toBeCloseTo(0.996, 12);
    expect(m(50)).toBeCloseTo(0.998, 12);
    expect(m(100)).toBeCloseTo(1, 12);
    expect(momentumSchedule(0.996, 0.996, 10)(7)).toBe(0.996);
  });
});

describe('trainer', () => {
  it('a momentum of 1 keeps the momentum branch as it is (a frozen MaskDistill teacher); the default schedule moves it', async () => {
    const momentumOf = (m: CMAE) => [...m.stateDict()].filter(([n]) => n.startsWith('momentum_encoder.'));
    for (const frozen of [true, false]) {
      const model = await CMAE.create({ preset: 'micro', mode: 'maskdistill', seed: 2 });
      const data = new DataLoader(dataset(24), { batchSize: 8, seed: 2, targetView: 'none', augment: { outSize: 16, shiftRange: 0 } });
      const before = momentumOf(model);
      await train({ model, data, steps: 3, lr: 1e-3, ...(frozen ? { momentumBase: 1, momentumEnd: 1 } : {}) });
      const after = new Map(momentumOf(model));
      const unchanged = before.every(([n, v]) => after.get(n)!.every((x, i) => Object.is(x, v[i])));
      expect(unchanged).toBe(frozen);
      model.dispose();
    }
  });

  it('writes metrics and a checkpoint, and a resumed run is bit-identical to an uninterrupted one', async () => {
    const full = await setup();
    const fullDir = path.join(root, 'full');
    const result = await train({ model: full.model, data: full.data, steps: 8, lr: 1e-3, outDir: fullDir, checkpointEvery: 100 });
    expect(result.steps).toBe(8);
    const metrics = readFileSync(path.join(fullDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const key of ['epoch', 'lr', 'momentum', 'loss', 'reconstruction', 'contrastive', 'imagesPerSecond', 'elapsedSeconds']) expect(metrics[0]).toHaveProperty(key);

    // Interrupted after 5 steps (crossing an epoch boundary: 6 batches per epoch), then resumed.
    const part = await setup();
    const partDir = path.join(root, 'part');
    const controller = new AbortController();
    const first = await train({
      model: part.model, data: part.data, steps: 8, lr: 1e-3, outDir: partDir, signal: controller.signal,
      onStep: (s) => { if (s.step === 5) controller.abort(); },
    });
    expect(first.aborted).toBe(true);
    expect(first.steps).toBe(5);
    const saved = await readSafetensors(path.join(partDir, 'checkpoint.safetensors'));
    expect(saved.metadata.step).toBe('5');
    part.model.dispose();

    const again = await setup(1);
    const second = await train({ model: again.model, data: again.data, steps: 8, lr: 1e-3, outDir: partDir, resumeFrom: path.join(partDir, 'checkpoint.safetensors') });
    expect(second.steps).toBe(8);
    expect(second.history.map((h) => h.loss)).toEqual(result.history.slice(5).map((h) => h.loss));
    const a = full.model.stateDict();
    const b = again.model.stateDict();
    for (const [name, values] of a) expect(Array.from(b.get(name)!), name).toEqual(Array.from(values));
    const resumedMetrics = readFileSync(path.join(partDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(resumedMetrics.length).toBe(8);
    full.model.dispose();
    again.model.dispose();
  });

  it('refuses a checkpoint of another configuration and a data source without a full batch', async () => {
    const { model, data } = await setup();
    const dir = path.join(root, 'other');
    await train({ model, data, steps: 1, lr: 1e-3, outDir: dir });
    const other = await CMAE.create({ preset: 'micro', dim: 16, heads: 2, seed: 1 });
    await expect(train({ model: other, data, steps: 2, resumeFrom: path.join(dir, 'checkpoint.safetensors') })).rejects.toThrow(/written for another run; it differs in dim \(checkpoint 32, now 16\)/);
    expect(() => new DataLoader(dataset(4), { batchSize: 8, augment: { outSize: 16, shiftRange: 3 } })).toThrow(/fewer than one batch/);
    expect(existsSync(path.join(dir, 'checkpoint.safetensors'))).toBe(true);
    other.dispose();
    model.dispose();
  });
});

describe('trainer faults', () => {
  /**
   * A BatchSource whose batches `bad` (by step) hold an image of ±3e38 pixels: finite (non-finite
   * images are refused with a ValueError before any work), but the forward overflows on it, so the
   * loss is not finite: a training fault, as an absurd learning rate makes.
   */
  function poisoned(data: DataLoader, bad: Set<number>) {
    return {
      batchSize: data.batchSize,
      stepsPerEpoch: data.stepsPerEpoch,
      async *batches(epoch: number, startBatch = 0) {
        let k = epoch * data.stepsPerEpoch + startBatch;
        for await (const b of data.batches(epoch, startBatch)) {
          if (bad.has(k++)) {
            const x = b.images.toArray();
            const image = x.length / b.images.shape[0];
            for (let i = 0; i < image; i++) x[i] = i % 2 ? 3e38 : -3e38;
            b.images.dispose();
            yield { images: Tensor.from(x, b.images.shape), targetImages: b.targetImages };
          } else {
            yield { images: b.images, targetImages: b.targetImages };
          }
        }
      },
    };
  }

  it('a non-finite loss skips the step (no update, no EMA, BatchNorm statistics kept) and reports it; the run goes on', async () => {
    const { model, data } = await setup(4);
    const steps: StepInfo[] = [];
    const before = model.stateDict();
    // Step 1 is poisoned: it must leave the model exactly as it was.
    const first = await train({ model, data: poisoned(data, new Set([0])), steps: 1, lr: 1e-3, onStep: (s) => void steps.push(s) });
    expect(steps[0].skipped).toBe(true);
    expect(Number.isNaN(steps[0].loss)).toBe(true);
    expect(first.steps).toBe(1);
    for (const [name, v] of model.stateDict()) expectSameBits(v, before.get(name)!, name);
    // Then clean steps train as usual.
    const dir = path.join(root, 'skip');
    const rest = await train({ model, data: poisoned(data, new Set([1])), steps: 4, lr: 1e-3, outDir: dir, onStep: (s) => void steps.push(s) });
    expect(rest.steps).toBe(4);
    const metrics = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.skipped === true)).toEqual([false, true, false, false]);
    expect(Number.isFinite(rest.lastLoss)).toBe(true);
    const after = model.stateDict();
    expect([...after.values()].every((v) => v.every(Number.isFinite))).toBe(true);
    model.dispose();
  });

  it('the result keeps the last historyLimit steps (the run holds at most twice that), metrics.jsonl every step', async () => {
    const { model, data } = await setup(6);
    const dir = path.join(root, 'history');
    const seen: number[] = [];
    const result = await train({ model, data, steps: 13, lr: 1e-4, outDir: dir, historyLimit: 3, onStep: (s) => void seen.push(s.loss) });
    expect(result.history.map((h) => h.step)).toEqual([11, 12, 13]);
    expect(result.history.map((h) => h.loss)).toEqual(seen.slice(10));
    expect(readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(13);
    expect((await train({ model, data, steps: 2, lr: 1e-4, historyLimit: 0 })).history).toEqual([]);
    expect((await train({ model, data, steps: 2, lr: 1e-4, historyLimit: Infinity })).history).toHaveLength(2);
    for (const bad of [-1, 1.5, NaN, '3']) {
      await expect(train({ model, data, steps: 1, historyLimit: bad as number })).rejects.toThrow(/historyLimit must be a non-negative integer or Infinity/);
    }
    model.dispose();
  });

  it('five consecutive skipped steps stop the run with a ValueError that says what happened, and write no checkpoint', async () => {
    const { model, data } = await setup(5);
    const dir = path.join(root, 'skips');
    const all = new Set(Array.from({ length: 20 }, (_, i) => i));
    await expect(train({ model, data: poisoned(data, all), steps: 10, lr: 1e-3, outDir: dir })).rejects.toThrow(
      /5 consecutive steps had a non-finite loss or gradient \(the last, step 5: loss NaN.*none was applied/,
    );
    expect(existsSync(path.join(dir, 'checkpoint.safetensors'))).toBe(false);
    await expect(train({ model, data, steps: 1, maxSkippedSteps: 0 })).rejects.toThrow(/maxSkippedSteps must be a positive integer, got 0/);
    model.dispose();
  });
});

describe('resume', () => {
  it('refuses a checkpoint of another run, naming every field that differs, before building anything', async () => {
    const { model, data } = await setup(6);
    const dir = path.join(root, 'resume-check');
    await train({ model, data, steps: 2, lr: 1e-3, outDir: dir, metadata: { data: 'mnist' } });
    const file = path.join(dir, 'checkpoint.safetensors');
    await expect(checkResumable(file, model.config, { data: 'mnist' })).resolves.toBeUndefined();
    await expect(checkResumable(file, { ...model.config, tau: 0.2, mode: 'mae' }, { data: 'fashion-mnist' })).rejects.toThrow(
      /it differs in mode \(checkpoint "cmae", now "mae"\), tau \(checkpoint 0.07, now 0.2\), data \(checkpoint "mnist", now "fashion-mnist"\)/,
    );
    model.dispose();
  });

  it('after a kill, metrics.jsonl continues from the checkpoint (no step twice) and stale temporaries are removed', async () => {
    const { model, data } = await setup(7);
    const dir = path.join(root, 'killed');
    await train({ model, data, steps: 4, lr: 1e-3, outDir: dir });
    // What a run killed after step 6 (its last checkpoint at 4) leaves: two more metric lines and
    // a half-written checkpoint temporary of a process that is gone.
    const metrics = path.join(dir, 'metrics.jsonl');
    for (const step of [5, 6]) appendFileSync(metrics, `${JSON.stringify({ step, loss: 1 })}\n`);
    const stale = path.join(dir, 'checkpoint.safetensors.tmp-999999-0123456789ab');
    writeFileSync(stale, 'partial');
    const again = await setup(7);
    await train({ model: again.model, data: again.data, steps: 8, lr: 1e-3, outDir: dir, resumeFrom: path.join(dir, 'checkpoint.safetensors') });
    const steps = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(existsSync(stale)).toBe(false);
    model.dispose();
    again.model.dispose();
  });
});
