// A timm-layout checkpoint loaded onto the emulated CUDA backend (fp32 products): the features of
// both layouts and pools against the PyTorch reference, as test/model/foreign.test.ts on the CPU.
import './emulated';
import * as path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { CMAE, setMatmulPrecision } from '../../src/index';
import { readSafetensors } from '../../src/io/safetensors';
import { expectClose } from '../helpers/check';

beforeAll(() => setMatmulPrecision('fp32', 'cuda'));

it.each(['token', 'avg'])('the %s checkpoint on cuda gives the reference features', async (name) => {
  const fixtures = path.join(__dirname, '..', 'fixtures');
  const expected = (await readSafetensors(path.join(fixtures, 'timm_vit_micro_expect.safetensors'))).tensors;
  const { model, pool } = await CMAE.loadEncoder(path.join(fixtures, `timm_vit_micro_${name}.safetensors`), { heads: 2, device: 'cuda' });
  expect(model.device).toBe('cuda:0');
  const feats = await model.encode(expected.get('input.images16')!.data as Float32Array, { pool });
  const want = expected.get(`expect.${name}.features`)!.data as Float64Array;
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expectClose(feats, want, { atol: 1e-5 * scale, rtol: 1e-4, label: `${name} features on cuda` });
  model.dispose();
});
