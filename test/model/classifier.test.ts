/**
 * The classifier (fine-tuning) on the CPU: against the PyTorch reference (classifier-golden.ts),
 * then the API: built from a pre-training checkpoint, checkpoints, typed errors.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, Classifier, FormatError, ShapeError, Tensor, ValueError, softTargets } from '../../src/index';
import { nativeOf } from '../../src/tensor';
import { expectClose, randn } from '../helpers/check';
import { describeClassifierGolden, maxAbs } from './classifier-golden';

describeClassifierGolden('cpu');

describe('Classifier API', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cmae-classifier-'));

  it('fromPretrained takes the online encoder of a pre-training checkpoint, with a fresh head', async () => {
    const pre = await CMAE.create({ preset: 'micro', seed: 3 });
    const file = path.join(dir, 'pre.safetensors');
    await pre.save(file);
    const clf = await Classifier.fromPretrained(file, { numClasses: 7, pool: 'cls', seed: 1 });
    const a = pre.stateDict();
    const b = clf.stateDict();
    for (const name of ['patch_embed.proj.weight', 'cls_token', 'blocks.1.mlp.fc2.weight', 'norm.weight']) expect(b.get(name)).toEqual(a.get(name));
    expect([...b.keys()].some((n) => n.startsWith('momentum_') || n.startsWith('decoder'))).toBe(false);
    const head = b.get('head.weight')!;
    expect(head.length).toBe(7 * 32);
    expect(maxAbs(head)).toBeGreaterThan(0);
    expect(maxAbs(head)).toBeLessThan(2e-4); // N(0, 2e-5²)
    expect(maxAbs(b.get('head.bias')!)).toBe(0);
    const mean = await Classifier.fromPretrained(file, { numClasses: 7 });
    expect(mean.config.globalPool).toBe(true);
    expect(mean.stateDict().get('fc_norm.weight')!.every((v) => v === 1)).toBe(true);
    expect(mean.stateDict().has('norm.weight')).toBe(false);
    // An encoder that does not fit the requested classifier: one line naming the tensor.
    await expect(Classifier.fromPretrained(file, { numClasses: 7, dim: 64, heads: 2 })).rejects.toThrow(FormatError);
    await expect(Classifier.fromPretrained(file, { numClasses: 7, dim: 64, heads: 2 })).rejects.toThrow(
      /'patch_embed.proj.weight' is \[32, 3, 4, 4\], the classifier needs \[64, 3, 4, 4\]/,
    );
    await expect(Classifier.fromPretrained(file, { numClasses: 7, depth: 3 })).rejects.toThrow(/missing 'blocks.2.norm1.weight'/);
    for (const m of [pre, clf, mean]) m.dispose();
  });

  it('save and load round-trip bit for bit; a pre-training checkpoint is not a classifier', async () => {
    const clf = await Classifier.create({ preset: 'micro', numClasses: 3, seed: 2 });
    const images = randn(2 * 3 * 16 * 16, 5);
    const file = path.join(dir, 'clf.safetensors');
    await clf.save(file, { epoch: '4' });
    const back = await Classifier.loadWithExtra(file);
    expect(back.metadata.epoch).toBe('4');
    expect(await back.model.predict(images)).toEqual(await clf.predict(images));
    expect(back.model.config).toEqual(clf.config);
    const pre = await CMAE.create({ preset: 'micro' });
    await pre.save(path.join(dir, 'pre2.safetensors'));
    await expect(Classifier.load(path.join(dir, 'pre2.safetensors'))).rejects.toThrow(/not a cmae classifier checkpoint/);
    await expect(CMAE.load(file)).rejects.toThrow(/not a cmae checkpoint/);
    for (const m of [clf, back.model, pre]) m.dispose();
  });

  it('bad input is a typed error naming the argument', async () => {
    const clf = await Classifier.create({ preset: 'micro', numClasses: 3 });
    const images = randn(2 * 3 * 16 * 16, 6);
    await expect(clf.lossAndGrad({ images, targets: new Float32Array(5) })).rejects.toThrow(ShapeError);
    await expect(clf.lossAndGrad({ images, targets: Tensor.full([2, 4], 0.25) })).rejects.toThrow(/targets must have shape \[2, 3\], got \[2, 4\]/);
    const nan = softTargets(Int32Array.from([0, 1]), 3, 0.1);
    nan[4] = NaN;
    await expect(clf.lossAndGrad({ images, targets: nan })).rejects.toThrow(/targets\[1, 1\] is NaN/);
    const targets = softTargets(Int32Array.from([0, 1]), 3, 0.1);
    await expect(clf.lossAndGrad({ images, targets, dropPath: 1 })).rejects.toThrow(/dropPath must be a number in \[0, 1\), got 1/);
    await expect(clf.lossAndGrad({ images, targets, dropPath: -0.1 })).rejects.toThrow(/dropPath must be a number in \[0, 1\)/);
    await expect(clf.lossAndGrad({ images, targets, dropPath: NaN })).rejects.toThrow(/dropPath/);
    await expect(clf.lossAndGrad({ images, targets, dropPath: 0.1, step: -1 })).rejects.toThrow(/step/);
    await expect(clf.lossAndGrad({ images, targets, dropPath: 0.1, step: 1.5 })).rejects.toThrow(/step/);
    expect(() => softTargets(Int32Array.from([3]), 3)).toThrow(/label 3 \(row 0\) is outside \[0, 3\)/);
    await expect(Classifier.create({ preset: 'micro', numClasses: 0 })).rejects.toThrow(ValueError);
    await expect(Classifier.create({ preset: 'micro', numClasses: 3, pool: 'max' as 'cls' })).rejects.toThrow(/pool must be 'cls' or 'mean'/);
    expect(() => new AdamW(clf, { layerDecay: 1.5 })).toThrow(/layerDecay must be in \(0, 1\], got 1.5/);
    const pre = await CMAE.create({ preset: 'micro', mode: 'mae' });
    await expect(pre.native.classifierLossAndGrad(nativeOf(Tensor.from(images, [2, 3, 16, 16]))!, nativeOf(Tensor.full([2, 3], 0))!, null, 0, 0)).rejects.toThrow(
      /classifierLossAndGrad needs a classifier model/,
    );
    clf.dispose();
    await expect(clf.predict(images)).rejects.toThrow(/disposed/);
    pre.dispose();
  });

  it('soft targets: smoothing spreads ε, mixing blends two rows, every row sums to 1', () => {
    const t = softTargets(Int32Array.from([2, 0]), 4, 0.2, { partner: Int32Array.from([1, 0]), lambda: 0.75 });
    expectClose(t, [0.05 + 0.25 * 0.8, 0.05, 0.05 + 0.75 * 0.8, 0.05, 0.05 + 0.75 * 0.8, 0.05, 0.05 + 0.25 * 0.8, 0.05], { atol: 1e-7, rtol: 0, label: 'targets' });
  });
});
