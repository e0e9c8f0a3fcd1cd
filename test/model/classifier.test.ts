/**
 * The classifier (fine-tuning) against the PyTorch reference (test/reference/make_fixtures.py,
 * classifier_{cls,mean}_micro): logits, the soft-target cross-entropy, every parameter gradient,
 * and the parameters after three AdamW steps with layer-wise lr decay. Then the API: built from a
 * pre-training checkpoint, checkpoints, typed errors.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, Classifier, FormatError, ShapeError, Tensor, ValueError, softTargets } from '../../src/index';
import { readSafetensors, type SafeTensorsFile } from '../../src/io/safetensors';
import type { ClassifierConfig } from '../../src/models/classifier';
import { nativeOf } from '../../src/tensor';
import { expectClose, randn } from '../helpers/check';

const fixtures = path.join(__dirname, '..', 'fixtures');

interface FixtureJson {
  config: ClassifierConfig;
  train: { lr: number; betas: [number, number]; eps: number; weightDecay: number; layerDecay: number; steps: number };
  losses: { step: number; total: number }[];
}

function withPrefix(file: SafeTensorsFile, prefix: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, entry] of file.tensors) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), entry.data as Float32Array);
  return out;
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

async function fromFixture(name: string) {
  const json = JSON.parse(readFileSync(path.join(fixtures, `${name}.json`), 'utf8')) as FixtureJson;
  const file = await readSafetensors(path.join(fixtures, `${name}.safetensors`));
  const { mode: _mode, numClasses, globalPool, ...encoder } = json.config;
  const model = await Classifier.create({ ...encoder, numClasses, pool: globalPool ? 'mean' : 'cls' });
  model.loadStateDict(withPrefix(file, 'param.')); // strict: the same parameter names as the reference
  const images = file.tensors.get('input.images')!.data as Float32Array;
  const targets = file.tensors.get('input.targets')!.data as Float32Array;
  return { json, file, model, images, targets };
}

describe.each(['classifier_cls_micro', 'classifier_mean_micro'])('classifier vs PyTorch (%s)', (name) => {
  it('logits, loss and every gradient match; predict gives the same logits', async () => {
    const { json, file, model, images, targets } = await fromFixture(name);
    const logits = Tensor.full([4, json.config.numClasses], NaN);
    const loss = await model.lossAndGrad({ images, targets, logits });
    expect(Math.abs(loss - json.losses[0].total) / json.losses[0].total).toBeLessThan(1e-5);
    const refLogits = file.tensors.get('expect.logits')!.data as Float64Array;
    expectClose(logits.toArray(), refLogits, { atol: 1e-5 * maxAbs(refLogits), rtol: 1e-4, label: 'logits' });
    const grads = model.gradients();
    const refGrads = withPrefix(file, 'grad.');
    expect([...grads.keys()].sort()).toEqual([...refGrads.keys()].sort());
    const globalScale = Math.max(...[...refGrads.values()].map(maxAbs));
    for (const [param, ref] of refGrads) {
      // The k part of qkv.bias has a zero gradient (softmax shift invariance): float32 noise natively.
      const atol = param.endsWith('attn.qkv.bias') ? 1e-5 * globalScale : 1e-4 * Math.max(maxAbs(ref), 1e-3);
      expectClose(grads.get(param)!, ref, { atol, rtol: 1e-4, label: `grad ${param}` });
    }
    const predicted = await model.predict(images);
    expectClose(predicted, refLogits, { atol: 1e-5 * maxAbs(refLogits), rtol: 1e-4, label: 'predict' });
    model.dispose();
  });

  it('three AdamW steps with layer-wise lr decay end at the reference parameters', async () => {
    const { json, file, model, images, targets } = await fromFixture(name);
    const t = json.train;
    const optimizer = new AdamW(model, { lr: t.lr, betas: t.betas, eps: t.eps, weightDecay: t.weightDecay, layerDecay: t.layerDecay });
    for (let step = 0; step < t.steps; step++) {
      const loss = await model.lossAndGrad({ images, targets });
      expect(Math.abs(loss - json.losses[step].total) / json.losses[step].total).toBeLessThan(1e-5);
      await optimizer.step();
    }
    const state = model.stateDict();
    const refGrads = withPrefix(file, 'grad.');
    for (const [param, ref] of withPrefix(file, 'step3.')) {
      const got = state.get(param)!;
      const g = refGrads.get(param);
      // Elements whose reference gradient is below the float32 noise floor of the sums move by a
      // sign-decided ±lr per step on both sides (as in golden.ts): bounded by 3·lr.
      const floor = g ? 1e-5 * maxAbs(g) : 0;
      for (let i = 0; i < ref.length; i++) {
        const bound = g && Math.abs(g[i]) < floor ? 3 * t.lr + 1e-6 : 1e-4 * Math.max(Math.abs(ref[i]), 1e-2);
        if (Math.abs(got[i] - ref[i]) > bound) expect.fail(`step3 ${param}[${i}]: ${got[i]} vs ${ref[i]}`);
      }
    }
    // Layer decay matters here: without it the same steps end elsewhere.
    const plain = (await fromFixture(name)).model;
    const flat = new AdamW(plain, { lr: t.lr, betas: t.betas, eps: t.eps, weightDecay: t.weightDecay });
    for (let step = 0; step < t.steps; step++) {
      await plain.lossAndGrad({ images, targets });
      await flat.step();
    }
    const embed = 'patch_embed.proj.weight';
    expect(maxAbs(plain.stateDict().get(embed)!.map((v, i) => v - state.get(embed)![i]))).toBeGreaterThan(1e-4);
    for (const m of [model, plain]) m.dispose();
  });
});

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
    expect(() => softTargets(Int32Array.from([3]), 3)).toThrow(/label 3 \(row 0\) is outside \[0, 3\)/);
    await expect(Classifier.create({ preset: 'micro', numClasses: 0 })).rejects.toThrow(ValueError);
    await expect(Classifier.create({ preset: 'micro', numClasses: 3, pool: 'max' as 'cls' })).rejects.toThrow(/pool must be 'cls' or 'mean'/);
    expect(() => new AdamW(clf, { layerDecay: 1.5 })).toThrow(/layerDecay must be in \(0, 1\], got 1.5/);
    const pre = await CMAE.create({ preset: 'micro', mode: 'mae' });
    await expect(pre.native.classifierLossAndGrad(nativeOf(Tensor.from(images, [2, 3, 16, 16]))!, nativeOf(Tensor.full([2, 3], 0))!, null)).rejects.toThrow(
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
