import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CMAE, readSafetensors } from '../../src/index';
import { DataLoader } from '../../src/data/index';
import { noiseDataset } from '../helpers/fixtures';
import { train } from '../../src/train/trainer';
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
    await expect(train({ model: other, data, steps: 2, resumeFrom: path.join(dir, 'checkpoint.safetensors') })).rejects.toThrow(/different model configuration/);
    expect(() => new DataLoader(dataset(4), { batchSize: 8, augment: { outSize: 16, shiftRange: 3 } })).toThrow(/fewer than one batch/);
    expect(existsSync(path.join(dir, 'checkpoint.safetensors'))).toBe(true);
    other.dispose();
    model.dispose();
  });
});
