#!/usr/bin/env node
// `node bench/memory.mjs [--preset tiny] [--batch 64] [--steps 20] [--data mnist|noise] [--checkpoint] [--recompute]`
//
// Where the memory of a training process goes: the `cmae pretrain` set-up (the dataset, a model, its
// AdamW, a DataLoader with prefetch, train()) run for a few steps, with the process's resident size
// (/proc/self/status VmRSS) and its peak (VmHWM) read after each phase, and nativeMemory() (what
// cmae reported to V8: every native allocation visible to JS, native/napi/*_wrap.cc; and the CPU
// kernels' scratch) giving the exact size of each native piece. --checkpoint: train() writes its
// checkpoint at the end (into a temporary directory), as `cmae pretrain` does. --recompute: the model
// recomputes its encoder's activations in the backward (model.recomputeActivations). Prints a table;
// nothing is asserted (the bounds are tested in test/reliability/memory.test.ts). Linux only (it
// reads /proc).
//
// Imports the compiled package (../dist/cjs/index.js): build it with `npm run build:ts`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const argv = process.argv.slice(2);
const value = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const preset = value('--preset', 'tiny');
const batchSize = Number(value('--batch', '64'));
const steps = Number(value('--steps', '20'));
const data = value('--data', 'mnist');
const outDir = argv.includes('--checkpoint') ? mkdtempSync(path.join(tmpdir(), 'cmae-memory-')) : undefined;

const MB = 1024 * 1024;
const status = () => {
  const text = readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(text)[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
};
// What cmae reported to V8 (process.memoryUsage().external does not include it).
const external = () => cmae.nativeMemory().reportedBytes;

const rows = [];
let last = status();
const phase = (name, detail = '') => {
  const now = status();
  rows.push({ name, rss: now.rss, delta: now.rss - last.rss, hwm: now.hwm, detail });
  last = now;
};

phase('node baseline (before cmae)');
const cmae = require('../dist/cjs/index.js');
const { CMAE, AdamW, DataLoader, train, loadMnist, presets } = cmae;
cmae.info(); // loads the addon and starts its thread pool
phase('addon loaded');

let dataset;
if (data === 'mnist') {
  dataset = await loadMnist();
} else {
  const n = 4096, side = presets[preset].imageSize;
  const pixels = new Uint8Array(n * side * side * 3).map((_, i) => (i * 37) % 251);
  dataset = { name: 'noise', size: n, height: side, width: side, channels: 3, pixels };
}
phase('dataset loaded', `${dataset.size} × ${dataset.height}×${dataset.width}×${dataset.channels} uint8 = ${(dataset.pixels.byteLength / MB).toFixed(1)} MB`);

let ext = external();
const model = await CMAE.create({ preset, channels: dataset.channels, seed: 0 });
model.recomputeActivations = argv.includes('--recompute');
const arenas = external() - ext;
const trainable = model.trainableCount;
const total = model.native.info().totalCount;
phase(
  'model created',
  `arenas ${(arenas / MB).toFixed(1)} MB: params ${((total * 4) / MB).toFixed(1)}, grads ${((trainable * 4) / MB).toFixed(1)}, ` +
    `per-part grads ${((arenas - total * 4 - trainable * 4) / MB).toFixed(1)} (and the BatchNorm running-stats backup)`,
);

ext = external();
const optimizer = new AdamW(model);
const moments = external() - ext;
phase('AdamW created', `moments ${(moments / MB).toFixed(1)} MB (touched at the first step)`);
optimizer.dispose(); // train() makes its own

const loader = new DataLoader(dataset, { batchSize, seed: 0, augment: { outSize: model.config.imageSize, shiftRange: 7 } });
await loader.normalization();
const viewBytes = batchSize * model.config.channels * model.config.imageSize ** 2 * 4;
phase('loader ready', `a batch: 2 views × ${(viewBytes / MB).toFixed(2)} MB; with prefetch 2 batches live`);

ext = external();
let firstStep = true;
let workspace = 0;
await train({
  model,
  data: loader,
  steps,
  outDir,
  onStep: () => {
    if (!firstStep) return;
    firstStep = false;
    // After step 1: the workspace is planned; the next batch is being prepared (2 views), the
    // optimizer's moments exist again.
    workspace = external() - ext - moments - 2 * viewBytes;
    phase('first step', `training workspace ≈ ${(workspace / MB).toFixed(1)} MB (external memory)`);
  },
});
const scratch = cmae.nativeMemory().cpuScratchBytes;
phase(`${steps} steps${outDir ? ' + checkpoint' : ''}`, `kernel scratch ${(scratch / MB).toFixed(1)} MB`);
if (outDir) rmSync(outDir, { recursive: true, force: true });
model.dispose();
phase('model disposed');

const pad = (s, n) => String(s).padEnd(n);
const num = (b) => (b / MB).toFixed(1).padStart(8);
console.log(`cmae memory: ${preset}, batch ${batchSize}, ${steps} steps${outDir ? ' and a checkpoint' : ''}, data ${data}`);
console.log(`${pad('phase', 30)}     RSS   ΔRSS   peak  (MB)`);
for (const r of rows) console.log(`${pad(r.name, 30)}${num(r.rss)}${num(r.delta)}${num(r.hwm)}  ${r.detail}`);
const peak = status().hwm;
const known = rows[2].rss + arenas + moments + workspace + 2 * 2 * viewBytes + scratch;
console.log(`peak RSS ${(peak / MB).toFixed(1)} MB; accounted: baseline + data ${(rows[2].rss / MB).toFixed(1)}, arenas ${(arenas / MB).toFixed(1)}, ` +
  `moments ${(moments / MB).toFixed(1)}, workspace ${(workspace / MB).toFixed(1)}, loader ${((4 * viewBytes) / MB).toFixed(1)}, ` +
  `scratch ${(scratch / MB).toFixed(1)}; rest (JS heap, thread stacks, glibc arenas) ${((peak - known) / MB).toFixed(1)}`);
