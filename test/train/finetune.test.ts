// finetune(): the loop's schedule, evaluation, best checkpoint, metrics and AbortSignal.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Classifier } from '../../src/index';
import { DataLoader } from '../../src/data/index';
import { noiseDataset } from '../helpers/fixtures';
import { finetune, scoreClassifier, type FinetuneStep } from '../../src/train/finetune';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-finetune-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const normalization = { mean: [0.5], std: [0.25] };

async function setup() {
  const model = await Classifier.create({ preset: 'micro', numClasses: 4, seed: 1 });
  const data = new DataLoader(noiseDataset(48), { batchSize: 8, seed: 1, targetView: 'none', normalize: normalization, augment: { outSize: 16, shiftRange: 0, flipP: 0 } });
  return { model, data, test: noiseDataset(20, 7), testOptions: { imageSize: 16, normalization } };
}

describe('finetune()', () => {
  it('warms up then decays the lr per step, scores each epoch, keeps the best epoch and writes metrics.jsonl', async () => {
    const { model, data, test, testOptions } = await setup();
    const steps: FinetuneStep[] = [];
    const outDir = path.join(root, 'run');
    const result = await finetune({ model, data, test, testOptions, epochs: 3, lr: 1e-3, warmupFraction: 0.25, outDir, onStep: (s) => steps.push(s) });
    expect(result.steps).toBe(18);
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
    // Linear warmup from 0 over round(0.25·18) = 5 steps (MAE), then the cosine to minLr.
    expect(steps[0].lr).toBe(0);
    expect(steps[4].lr).toBeCloseTo(0.8e-3, 12);
    expect(steps[5].lr).toBeCloseTo(1e-3, 12);
    expect(steps[17].lr).toBeLessThan(1e-4);
    expect(steps.every((s) => Number.isFinite(s.loss) && !s.skipped)).toBe(true);
    expect(result.history.map((h) => h.epoch)).toEqual([1, 2, 3]);
    const best = Math.max(...result.history.map((h) => h.top1));
    expect(result.best!.top1).toBe(best);
    const lines = readFileSync(path.join(outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual(JSON.parse(JSON.stringify(result.history)));
    // The checkpoint holds the best epoch's model: it scores what that epoch scored.
    const saved = await Classifier.loadWithExtra(path.join(outDir, 'classifier.safetensors'));
    expect(Number(saved.metadata.epoch)).toBe(result.best!.epoch + 1);
    expect((await scoreClassifier(saved.model, test, testOptions)).top1).toBe(best);
    const confusion = result.best!.confusion;
    expect(confusion.reduce((a, b) => a + b, 0)).toBe(20);
    for (const m of [model, saved.model]) m.dispose();
  });

  it('an aborted run stops between steps and reports it; the same seed gives the same run', async () => {
    const a = await setup();
    const controller = new AbortController();
    const r = await finetune({ ...a, epochs: 2, onStep: (s) => s.step === 3 && controller.abort(), signal: controller.signal });
    expect(r.aborted).toBe(true);
    expect(r.steps).toBe(3);
    expect(r.history).toHaveLength(0);
    const b = await setup();
    const c = await setup();
    const one = await finetune({ ...b, epochs: 1 });
    const two = await finetune({ ...c, epochs: 1 });
    expect(two.history[0].trainLoss).toBe(one.history[0].trainLoss);
    expect(Array.from(c.model.stateDict().get('head.weight')!)).toEqual(Array.from(b.model.stateDict().get('head.weight')!));
    for (const m of [a.model, b.model, c.model]) m.dispose();
  });

  it('drop path: each step draws its own drops (a run with it differs from one without, and repeats itself); bad rates are refused', async () => {
    const runs = [];
    for (const dropPath of [0.3, 0.3, 0]) {
      const s = await setup();
      const steps: number[] = [];
      await finetune({ ...s, epochs: 1, dropPath, onStep: (info) => steps.push(info.loss) });
      runs.push({ steps, head: Array.from(s.model.stateDict().get('head.weight')!) });
      s.model.dispose();
    }
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2].steps).not.toEqual(runs[0].steps);
    const s = await setup();
    for (const bad of [1, -0.1, NaN, '0.1']) {
      await expect(finetune({ ...s, epochs: 1, dropPath: bad as number })).rejects.toThrow(/dropPath must be a number in \[0, 1\)/);
    }
    s.model.dispose();
  });
});
