/**
 * The native model against the PyTorch reference (test/reference/make_fixtures.py): same weights,
 * images, shifted images and mask noise must give the same losses (rel 1e-5), outputs, every
 * parameter gradient (rel 1e-4), and the same parameters after 3 AdamW + EMA steps (rel 1e-4).
 * One suite per device: golden.test.ts runs it on the CPU, test/cuda/golden.test.ts on the
 * emulated CUDA backend.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, Tensor, type Device } from '../../src/index';
import { readSafetensors, type SafeTensorsFile } from '../../src/io/safetensors';
import { methods, type ModelConfig } from '../../src/models/config';
import { expectClose } from '../helpers/check';

const fixtures = path.join(__dirname, '..', 'fixtures');

interface FixtureJson {
  config: ModelConfig;
  train: { lr: number; betas: [number, number]; eps: number; weightDecay: number; emaMomentum: number; steps: number };
  losses: { step: number; total: number; rc?: number; ct?: number; dense?: number }[];
  zeroGradients: { count: Record<string, number> };
}

async function loadFixture(name: string): Promise<{ json: FixtureJson; file: SafeTensorsFile }> {
  const json = JSON.parse(readFileSync(path.join(fixtures, `${name}.json`), 'utf8')) as FixtureJson;
  const file = await readSafetensors(path.join(fixtures, `${name}.safetensors`));
  return { json, file };
}

function tensorData(file: SafeTensorsFile, name: string): Float32Array | Float64Array | Int32Array {
  const entry = file.tensors.get(name);
  if (!entry) throw new Error(`fixture has no tensor '${name}'`);
  return entry.data as Float32Array | Float64Array | Int32Array;
}

function withPrefix(file: SafeTensorsFile, prefix: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, entry] of file.tensors) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), entry.data as Float32Array);
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

async function modelFromFixture(json: FixtureJson, file: SafeTensorsFile, device: Device): Promise<CMAE> {
  const model = await CMAE.create({ ...json.config, seed: 0, device });
  const state = withPrefix(file, 'param.');
  // The reference also stores momentum_encoder.pos_embed (a frozen copy of pos_embed); ours shares pos_embed.
  expect(Array.from(state.get('momentum_encoder.pos_embed') ?? state.get('pos_embed')!)).toEqual(Array.from(state.get('pos_embed')!));
  state.delete('momentum_encoder.pos_embed');
  model.loadStateDict(state); // strict: every parameter present, no unknown name
  return model;
}

/** The golden suite on one device (its matmul precision left as the caller set it: fp32 for these tolerances). */
export function describeGolden(device: Device): void {
  describe.each(['cmae_micro', 'mae_micro', 'mocov3_micro', 'maskdistill_micro', 'simclr_micro', 'densecl_micro'])(`golden model vs PyTorch on ${device} (%s)`, (name) => {
    it('forward outputs, losses and every gradient match', async () => {
      const { json, file } = await loadFixture(name);
      const model = await modelFromFixture(json, file, device);
      const c = json.config;
      const traits = methods[c.mode];
      const B = 4;
      const R = traits.onlineViews * B; // online samples: MoCo v3 encodes both views
      const L = (c.imageSize / c.patchSize) ** 2;
      const P = c.patchSize * c.patchSize * c.channels;
      const outputs = {
        ...(traits.reconstructs ? { pred: Tensor.full([B, L, traits.reconstructs === 'pixels' ? P : c.dim], NaN) } : {}),
        mask: Tensor.full([R, L], NaN),
        idsRestore: Tensor.full([R, L], -1, 'int32'),
        ...(traits.contrastive ? { q: Tensor.full([R, c.projectorDim], NaN) } : {}),
        ...(traits.contrastive && traits.momentum ? { zT: Tensor.full([R, c.projectorDim], NaN) } : {}),
      };
      expect(model.device).toBe(device === 'cuda' ? 'cuda:0' : device);
      const parts = await model.lossAndGrad({
        images: tensorData(file, 'input.images') as Float32Array,
        targetImages: traits.contrastive ? (tensorData(file, 'input.target_images') as Float32Array) : undefined,
        maskNoise: tensorData(file, 'input.mask_noise') as Float32Array,
        outputs,
      });
      const ref = json.losses[0];
      expect(parts.loss).toBeCloseTo(ref.total, 5);
      if (traits.reconstructs) expect(Math.abs(parts.reconstruction - ref.rc!) / ref.rc!).toBeLessThan(1e-5);
      else expect(parts.reconstruction).toBe(0);
      if (traits.contrastive) expect(Math.abs(parts.contrastive - ref.ct!) / ref.ct!).toBeLessThan(1e-5);
      else expect(parts.contrastive).toBe(0);
      // DenseCL's dense part of the contrastive loss, reported apart; no other method has one.
      if (c.mode === 'densecl') expect(Math.abs(parts.dense! - ref.dense!) / ref.dense!).toBeLessThan(1e-5);
      else expect(parts.dense).toBeUndefined();
      expect(Math.abs(parts.loss - ref.total) / ref.total).toBeLessThan(1e-5);

      expectClose(outputs.mask.toArray(), tensorData(file, 'expect.mask'), { atol: 0, rtol: 0, label: 'mask' });
      expectClose(outputs.idsRestore.toArray(), tensorData(file, 'expect.ids_restore'), { atol: 0, rtol: 0, label: 'ids_restore' });
      if (outputs.pred) {
        const predRef = tensorData(file, 'expect.pred');
        expectClose(outputs.pred.toArray(), predRef, { atol: 1e-5 * maxAbs(predRef), rtol: 1e-4, label: 'pred' });
      }
      if (traits.contrastive) {
        const compared = traits.momentum ? ([['q', 'expect.q'], ['zT', 'expect.z_t']] as const) : ([['q', 'expect.q']] as const);
        for (const [key, ref] of compared) {
          const r = tensorData(file, ref);
          expectClose((outputs as Record<string, Tensor>)[key].toArray(), r, { atol: 1e-5 * maxAbs(r), rtol: 1e-4, label: key });
        }
      }

      const grads = model.gradients();
      const refGrads = withPrefix(file, 'grad.');
      expect([...grads.keys()].sort()).toEqual([...refGrads.keys()].sort());
      const globalScale = Math.max(...[...refGrads.values()].map(maxAbs));
      for (const [param, refGrad] of refGrads) {
        // rel 1e-4 of the tensor's scale (elementwise relative error is meaningless near zero
        // entries). Gradients that are mathematically zero (listed by the fixture) are float32
        // cancellation noise natively: bounded by 1e-5 of the model's largest gradient.
        const atol = param in json.zeroGradients.count ? 1e-5 * globalScale : 1e-4 * Math.max(maxAbs(refGrad), 1e-3);
        expectClose(grads.get(param)!, refGrad, { atol, rtol: 1e-4, label: `grad ${param}` });
      }
      model.dispose();
    });

    it('encode() matches the reference features: cls and mean pooling, online and momentum branches', async () => {
      const { json, file } = await loadFixture(name);
      const model = await modelFromFixture(json, file, device);
      const images = tensorData(file, 'input.images') as Float32Array;
      const branches = methods[json.config.mode].momentum ? (['online', 'momentum'] as const) : (['online'] as const);
      for (const branch of branches) {
        for (const pool of ['cls', 'mean'] as const) {
          const ref = tensorData(file, `expect.encode.${branch}.${pool}`);
          // batchSize 3: four images in two native calls, so the chunking is compared too.
          const got = await model.encode(images, { pool, branch, batchSize: 3 });
          expect(got.length, `${branch} ${pool}`).toBe(ref.length);
          expectClose(got, ref, { atol: 1e-5 * maxAbs(ref), rtol: 1e-4, label: `encode ${branch} ${pool}` });
        }
      }
      // The defaults are the online branch's cls token.
      expectClose(await model.encode(images), tensorData(file, 'expect.encode.online.cls'), { atol: 1e-5 * maxAbs(tensorData(file, 'expect.encode.online.cls')), rtol: 1e-4, label: 'encode defaults' });
      if (!methods[json.config.mode].momentum) await expect(model.encode(images, { branch: 'momentum' })).rejects.toThrow(/has no momentum branch/);
      model.dispose();
    });

    it('three AdamW + EMA steps end at the reference parameters', async () => {
      const { json, file } = await loadFixture(name);
      const model = await modelFromFixture(json, file, device);
      const c = json.config;
      const t = json.train;
      const optimizer = new AdamW(model, { lr: t.lr, betas: t.betas, eps: t.eps, weightDecay: t.weightDecay });
      const input = {
        images: tensorData(file, 'input.images') as Float32Array,
        targetImages: methods[c.mode].contrastive ? (tensorData(file, 'input.target_images') as Float32Array) : undefined,
        maskNoise: tensorData(file, 'input.mask_noise') as Float32Array,
      };
      for (let step = 0; step < t.steps; step++) {
        const parts = await model.lossAndGrad(input);
        expect(Math.abs(parts.loss - json.losses[step].total) / json.losses[step].total).toBeLessThan(1e-5);
        await optimizer.step();
        if (methods[c.mode].momentum) await model.updateMomentum(t.emaMomentum);
      }
      const state = model.stateDict();
      const expected = withPrefix(file, 'step3.');
      expected.delete('momentum_encoder.pos_embed');
      const refGrads = withPrefix(file, 'grad.');
      const zeroGradParams = json.zeroGradients.count;
      for (const [param, ref] of expected) {
        const got = state.get(param)!;
        // A momentum parameter follows its online twin, whose gradient decides the tolerance.
        const twin = param.replace(/^momentum_encoder\./, '').replace(/^momentum_projector\./, 'projector.').replace(/^momentum_dense_projector\./, 'dense_projector.');
        const g = refGrads.get(twin);
        if (param.endsWith('.bn.running_mean') && twin.replace('.bn.running_mean', '.fc1.bias') in zeroGradParams) {
          // BatchNorm's running mean tracks fc1's output, so it inherits the drift of fc1.bias (below).
          expectClose(got, ref, { atol: 3 * t.lr, rtol: 0, label: `step3 ${param}` });
          continue;
        }
        if (twin in zeroGradParams) {
          // Elements whose true gradient is exactly zero: AdamW normalises float32 round-off into
          // updates of up to lr per step, so they are compared with an absolute bound of 3·lr.
          const exact = Array.from(ref, (v, i) => (g && Math.abs(g[i]) < 1e-9 ? NaN : v));
          for (let i = 0; i < ref.length; i++) {
            if (Number.isNaN(exact[i])) expect(Math.abs(got[i] - ref[i])).toBeLessThanOrEqual(3 * t.lr + 1e-6);
            else expect(Math.abs(got[i] - ref[i])).toBeLessThanOrEqual(1e-4 * Math.max(Math.abs(ref[i]), 1e-2));
          }
          continue;
        }
        // Elements whose reference gradient is below float32 round-off of the gradient sums (1e-5 of
        // the tensor's largest, e.g. 2e-7 against 0.17): AdamW normalises the update, so their sign —
        // and so a ±lr step — is decided by that round-off, on both sides. Same 3·lr bound as above;
        // they must stay a tiny minority, so that the bound cannot hide a wrong tensor.
        const noiseFloor = g ? 1e-5 * maxAbs(g) : 0;
        const tiny = g ? ref.map((_, i) => (Math.abs(g[i]) < noiseFloor ? 1 : 0)).reduce((a, b) => a + b, 0) : 0;
        expect(tiny, `${param}: elements with a gradient below the float32 noise floor`).toBeLessThanOrEqual(Math.max(1, ref.length / 100));
        const checked = Array.from(ref, (v, i) => (g && Math.abs(g[i]) < noiseFloor ? got[i] : v));
        for (let i = 0; i < ref.length; i++) {
          if (g && Math.abs(g[i]) < noiseFloor) expect(Math.abs(got[i] - ref[i])).toBeLessThanOrEqual(3 * t.lr + 1e-6);
        }
        expectClose(got, checked, { atol: 1e-4 * Math.max(maxAbs(ref), 1e-2), rtol: 1e-4, label: `step3 ${param}` });
      }
      optimizer.dispose();
      model.dispose();
    });
  });
}
