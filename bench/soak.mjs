#!/usr/bin/env node
// `node [--expose-gc] bench/soak.mjs [--preset tiny] [--batch 64] [--steps 10000] [--every 100] [--out soak.jsonl]`
//
// The soak run of the reliability issue (not in CI): train() for many steps on the bundled MNIST
// digits, recording every `--every` steps the resident size (/proc/self/status VmRSS), the peak
// (VmHWM), V8's heap and what cmae reported to V8 (nativeMemory()). Memory must be flat after the
// warm-up: the summary gives the growth from the first tenth of the run to its end, per 1,000 steps.
// With --expose-gc every sample is taken after a full GC, so the heap figure is what the run
// retains, not garbage V8 has not collected yet. Linux only (it reads /proc). Imports the compiled
// package (../dist/cjs/index.js).
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const cmae = require(path.join(here, '..', 'dist', 'cjs', 'index.js'));
const argv = process.argv.slice(2);
const value = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const preset = value('--preset', 'tiny');
const batchSize = Number(value('--batch', '64'));
const steps = Number(value('--steps', '10000'));
const every = Number(value('--every', '100'));
const out = value('--out', undefined);

const status = () => {
  const text = readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(text)[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
};
const MB = 1024 * 1024;

const { train: trainSplit } = cmae.holdoutSplit(await cmae.loadMnist(), { testFraction: 0.1, seed: 0 });
const model = await cmae.CMAE.create({ preset, channels: 1, seed: 0 });
const data = new cmae.DataLoader(trainSplit, { batchSize, seed: 0, augment: { outSize: model.config.imageSize, shiftRange: 7 } });
if (out) writeFileSync(out, '');
const samples = [];
const started = Date.now();
await cmae.train({
  model, data, steps, lr: 1e-4,
  onStep: (s) => {
    if (s.step % every !== 0 && s.step !== 1) return;
    globalThis.gc?.();
    const { rss, hwm } = status();
    const row = { step: s.step, rssMB: rss / MB, peakMB: hwm / MB, heapMB: process.memoryUsage().heapUsed / MB, reportedMB: cmae.nativeMemory().reportedBytes / MB, seconds: (Date.now() - started) / 1000 };
    samples.push(row);
    if (out) appendFileSync(out, `${JSON.stringify(row)}\n`);
    process.stderr.write(`step ${s.step}: rss ${row.rssMB.toFixed(1)} MB, peak ${row.peakMB.toFixed(1)}, heap ${row.heapMB.toFixed(1)}, reported ${row.reportedMB.toFixed(1)}\n`);
  },
});
model.dispose();
const warm = samples.find((r) => r.step >= steps / 10) ?? samples[0];
const end = samples.at(-1);
const per1000 = (key) => ((end[key] - warm[key]) / Math.max(1, end.step - warm.step)) * 1000;
console.log(JSON.stringify({
  preset, batchSize, steps, warmStep: warm.step,
  rssMB: { warm: warm.rssMB, end: end.rssMB, growthPer1000Steps: per1000('rssMB') },
  reportedMB: { warm: warm.reportedMB, end: end.reportedMB, growthPer1000Steps: per1000('reportedMB') },
  heapMB: { warm: warm.heapMB, end: end.heapMB, afterGc: typeof globalThis.gc === 'function' }, peakMB: end.peakMB, seconds: end.seconds,
}, null, 1));
