/**
 * The classifier (fine-tuning) against the PyTorch reference (test/reference/make_fixtures.py,
 * classifier_{cls,mean}_micro) on one device: logits, the soft-target cross-entropy, every
 * parameter gradient (with and without drop path), and the parameters after three AdamW steps with
 * layer-wise lr decay. Run on the CPU by classifier.test.ts and on the emulated CUDA device by
 * test/cuda/classifier.test.ts.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdamW, Classifier, Tensor, type Device } from '../../src/index';
import { readSafetensors, type SafeTensorsFile } from '../../src/io/safetensors';
import type { ClassifierConfig } from '../../src/models/classifier';
import { expectClose } from '../helpers/check';

const fixtures = path.join(__dirname, '..', 'fixtures');

interface FixtureJson {
  config: ClassifierConfig;
  train: { lr: number; betas: [number, number]; eps: number; weightDecay: number; layerDecay: number; steps: number };
  losses: { step: number; total: number }[];
  dropPath: { seed: number; step: number; rate: number };
}

function withPrefix(file: SafeTensorsFile, prefix: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, entry] of file.tensors) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), entry.data as Float32Array);
  return out;
}

export const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

async function fromFixture(name: string, device: Device, seed = 0) {
  const json = JSON.parse(readFileSync(path.join(fixtures, `${name}.json`), 'utf8')) as FixtureJson;
  const file = await readSafetensors(path.join(fixtures, `${name}.safetensors`));
  const { mode: _mode, numClasses, globalPool, ...encoder } = json.config;
  const model = await Classifier.create({ ...encoder, numClasses, pool: globalPool ? 'mean' : 'cls', seed, device });
  model.loadStateDict(withPrefix(file, 'param.')); // strict: the same parameter names as the reference
  const images = file.tensors.get('input.images')!.data as Float32Array;
  const targets = file.tensors.get('input.targets')!.data as Float32Array;
  return { json, file, model, images, targets };
}

/** Every trainable parameter's gradient against the reference's (the same set of names). */
function expectGradientsMatch(grads: Map<string, Float32Array>, refGrads: Map<string, Float32Array>, label: string): void {
  expect([...grads.keys()].sort()).toEqual([...refGrads.keys()].sort());
  const globalScale = Math.max(...[...refGrads.values()].map(maxAbs));
  for (const [param, ref] of refGrads) {
    // The k part of qkv.bias has a zero gradient (softmax shift invariance): float32 noise natively.
    const atol = param.endsWith('attn.qkv.bias') ? 1e-5 * globalScale : 1e-4 * Math.max(maxAbs(ref), 1e-3);
    expectClose(grads.get(param)!, ref, { atol, rtol: 1e-4, label: `${label} ${param}` });
  }
}

export function describeClassifierGolden(device: Device): void {
describe.each(['classifier_cls_micro', 'classifier_mean_micro'])(`classifier vs PyTorch on ${device} (%s)`, (name) => {
  it('logits, loss and every gradient match; predict gives the same logits', async () => {
    const { json, file, model, images, targets } = await fromFixture(name, device);
    const logits = Tensor.full([4, json.config.numClasses], NaN);
    const loss = await model.lossAndGrad({ images, targets, logits });
    expect(Math.abs(loss - json.losses[0].total) / json.losses[0].total).toBeLessThan(1e-5);
    const refLogits = file.tensors.get('expect.logits')!.data as Float64Array;
    expectClose(logits.toArray(), refLogits, { atol: 1e-5 * maxAbs(refLogits), rtol: 1e-4, label: 'logits' });
    expectGradientsMatch(model.gradients(), withPrefix(file, 'grad.'), 'grad');
    const predicted = await model.predict(images);
    expectClose(predicted, refLogits, { atol: 1e-5 * maxAbs(refLogits), rtol: 1e-4, label: 'predict' });
    model.dispose();
  });

  it('drop path: the loss and every gradient match the reference given the same per-sample draws', async () => {
    const json = JSON.parse(readFileSync(path.join(fixtures, `${name}.json`), 'utf8')) as FixtureJson;
    const { seed, step, rate } = json.dropPath;
    const { file, model, images, targets } = await fromFixture(name, device, seed);
    model.loadStateDict(withPrefix(file, 'step3.'));
    const refLoss = (file.tensors.get('drop_path.loss')!.data as Float64Array)[0];
    const loss = await model.lossAndGrad({ images, targets, dropPath: rate, step });
    expect(Math.abs(loss - refLoss) / refLoss).toBeLessThan(1e-5);
    expectGradientsMatch(model.gradients(), withPrefix(file, 'drop_path.grad.'), 'drop-path grad');
    // The draws are keyed by (seed, step): the same step again gives the same bits, the reference
    // dropped some of its last block's branches (another step draws other drops), and rate 0 is the
    // plain step.
    expect(await model.lossAndGrad({ images, targets, dropPath: rate, step })).toBe(loss);
    const others: number[] = [];
    for (const s of [step + 1, step + 2, step + 3]) others.push(await model.lossAndGrad({ images, targets, dropPath: rate, step: s }));
    expect(others.some((l) => l !== loss)).toBe(true);
    const plain = await model.lossAndGrad({ images, targets });
    expect(await model.lossAndGrad({ images, targets, dropPath: 0, step })).toBe(plain);
    expect(plain).not.toBe(loss);
    model.dispose();
  });

  it('three AdamW steps with layer-wise lr decay end at the reference parameters', async () => {
    const { json, file, model, images, targets } = await fromFixture(name, device);
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
    const plain = (await fromFixture(name, device)).model;
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
}
