#!/usr/bin/env node
// Run by hand (needs Debian's python3-torch): a checkpoint saved by cmae loads in the PyTorch
// reference and gives the same encoder features. Trains a `tiny` model 3 steps, saves it, encodes 4
// images with cmae, runs `make_fixtures.py --check-checkpoint` on the same files and compares.
//   node test/reference/checkpoint-roundtrip.mjs   (after npm ci / npm run build:ts)
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cmae = createRequire(import.meta.url)(path.join(here, '..', '..', 'dist', 'cjs', 'index.js'));
const dir = mkdtempSync(path.join(tmpdir(), 'cmae-roundtrip-'));
const random = (n, seed) => {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    a[i] = ((x >>> 8) / 16777216 - 0.5) * 3;
  }
  return a;
};

const model = await cmae.CMAE.create({ preset: 'tiny', seed: 11 });
const opt = new cmae.AdamW(model, { lr: 1e-3 });
for (let i = 0; i < 3; i++) {
  await model.lossAndGrad({ images: random(8 * 3 * 32 * 32, i + 1), targetImages: random(8 * 3 * 32 * 32, i + 7) });
  await opt.step();
  await model.updateMomentum(0.99);
}
const checkpoint = path.join(dir, 'tiny.safetensors');
const imagesFile = path.join(dir, 'images.safetensors');
const torchFile = path.join(dir, 'torch.safetensors');
await model.save(checkpoint);
const images = random(4 * 3 * 32 * 32, 99);
await cmae.writeSafetensors(imagesFile, { images: { dtype: 'F32', shape: [4, 3, 32, 32], data: images } });
const ours = { cls: await model.encode(images, { pool: 'cls' }), pooled: await model.encode(images, { pool: 'mean' }) };
execFileSync('/usr/bin/python3', [path.join(here, 'make_fixtures.py'), '--check-checkpoint', checkpoint, '--images', imagesFile, '--out', torchFile], {
  env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const theirs = await cmae.readSafetensors(torchFile);
let worst = 0;
for (const key of ['cls', 'pooled']) {
  const a = ours[key];
  const b = theirs.tensors.get(key).data;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  worst = Math.max(worst, diff / scale);
  console.log(`${key}: max |cmae − torch| = ${diff.toExponential(2)} (max |torch| = ${scale.toFixed(3)})`);
}
console.log(worst < 1e-5 ? 'checkpoint round trip OK' : 'MISMATCH');
process.exitCode = worst < 1e-5 ? 0 : 1;
