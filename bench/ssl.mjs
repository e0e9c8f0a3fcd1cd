// npm run bench:ssl — the pre-training methods side by side (issue: the SSL family on one engine).
// Trains each method with `cmae pretrain` for the same wall-time budget (or the same step count)
// on the same data and seed, scores every checkpoint with the k-NN and linear probes of
// `cmae eval` (cls features, the default), beside the random-init encoder and the raw pixels,
// prints a markdown table and writes a PNG bar chart.
//   node bench/ssl.mjs [--data fashion-mnist|mnist|cifar10:DIR|…] [--minutes 5 | --steps N]
//                      [--preset nano] [--only cmae,mae,…] [--seed 0] [--out DIR]
// Wall-time budgets are only comparable on an otherwise idle machine; with other work running use
// --steps (equal steps favour the methods whose steps cost more: the table shows both).
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'dist', 'cjs', 'cli', 'main.js');
const { renderScoreBars } = createRequire(import.meta.url)(path.join(here, '..', 'dist', 'cjs', 'viz', 'pictures.js'));
const argv = process.argv.slice(2);
const value = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const data = value('--data', 'fashion-mnist');
const seed = value('--seed', '0');
const preset = value('--preset', 'nano');
const steps = value('--steps', undefined);
const minutes = steps ? undefined : value('--minutes', '5');
const out = value('--out', path.join(os.tmpdir(), 'cmae-ssl'));
const only = value('--only', '')?.split(',').filter(Boolean);

// name → pretrain arguments (each method with its own defaults, src/models/config.ts).
const methods = [
  ['cmae', ['--method', 'cmae']],
  ['mae', ['--method', 'mae']],
  ['mocov3', ['--method', 'mocov3']],
  ['mocov3 masked 0.5', ['--method', 'mocov3', '--mask-ratio', '0.5']],
  ['maskdistill', ['--method', 'maskdistill']],
  ['simclr', ['--method', 'simclr']],
  ['densecl', ['--method', 'densecl']],
];

function run(args) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`cmae ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-800)}`);
  return JSON.parse(r.stdout);
}

mkdirSync(out, { recursive: true });
const budget = steps ? ['--steps', steps] : ['--minutes', minutes];
const rows = [];
let baselines;
for (const [name, extra] of methods) {
  if (only?.length && !only.includes(name)) continue;
  const dir = path.join(out, name.replace(/[^a-z0-9.]+/gi, '-'));
  const t0 = Date.now();
  const summary = run(['pretrain', '--data', data, '--preset', preset, '--seed', seed, '--out', dir, ...budget, ...extra, '--no-eval', '--json']);
  const trainMinutes = (Date.now() - t0) / 60000;
  // Baselines once: the same encoder architecture and seed for every method, and the pixels.
  const evalArgs = ['eval', '--checkpoint', path.join(dir, 'checkpoint.safetensors'), '--data', data, '--seed', seed, '--knn', '--linear', '--json'];
  const scores = run(baselines ? evalArgs : [...evalArgs, '--baselines']).results;
  baselines ??= { randomInit: scores['random-init'], pixels: scores['raw-pixels'] };
  const row = { name, args: extra.join(' '), steps: summary.steps, trainMinutes, knn: scores.checkpoint.knnTop1, linear: scores.checkpoint.linearTop1 };
  rows.push(row);
  console.log(JSON.stringify(row));
}
const pct = (v) => (v === undefined ? '-' : (100 * v).toFixed(1));
console.log(`\n${data}, ${preset}, ${steps ? `${steps} steps` : `${minutes} min`} per method, seed ${seed}: top-1 on the held-out split`);
console.log(`\n| method | steps | train min | k-NN | linear |`);
console.log(`|---|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.name} (\`${r.args}\`) | ${r.steps} | ${r.trainMinutes.toFixed(1)} | ${pct(r.knn)} | ${pct(r.linear)} |`);
console.log(`| random-init encoder | 0 | - | ${pct(baselines.randomInit.knnTop1)} | ${pct(baselines.randomInit.linearTop1)} |`);
console.log(`| raw pixels | - | - | ${pct(baselines.pixels.knnTop1)} | ${pct(baselines.pixels.linearTop1)} |`);
const png = path.join(out, 'ssl.png');
await renderScoreBars(
  rows.map((r) => ({ name: r.name, knn: r.knn, linear: r.linear })),
  [{ name: 'raw pixels', knn: baselines.pixels.knnTop1, linear: baselines.pixels.linearTop1 }, { name: 'random-init', knn: baselines.randomInit.knnTop1, linear: baselines.randomInit.linearTop1 }],
  png,
  `${data}: ${preset}, ${steps ? `${steps} steps` : `${minutes} min`} per method`,
);
console.log(`\nwrote ${png}`);
