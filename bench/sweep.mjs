// npm run bench:sweep — what decides small-scale representation quality (issue: beat raw pixels).
// Runs `cmae pretrain` once per variant on the same data, budget and seed, changing one thing from
// the README's default run, then scores each checkpoint with cls and mean-pooled features (k-NN,
// linear probe). Prints one JSON line per variant and, at the end, a markdown table (what
// bench/SWEEP.md records, with its conclusions).
//   node bench/sweep.mjs [--only name,name] [--out DIR] [--data mnist] [--seeds 0,1,2] [--steps N (a smoke run)]
// With several seeds each variant runs once per seed (the seed also draws the held-out split), and
// the table ends with each variant's mean over them.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', 'dist', 'cjs', 'cli', 'main.js');
const argv = process.argv.slice(2);
const value = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const out = value('--out', path.join(os.tmpdir(), 'cmae-sweep'));
const data = value('--data', 'mnist');
const seeds = value('--seeds', value('--seed', '0')).split(',').filter(Boolean);
const only = value('--only', '')?.split(',').filter(Boolean);
const budget = argv.includes('--steps') ? ['--steps', value('--steps')] : [];

// name → pretrain arguments on top of the default run (nano, 6 epochs, batch 64, blr 1.5e-3; CMAE
// masking 45 % per patch, nano's since 2026-12-04: the rows of bench/SWEEP.md measured before then
// changed one thing from 65 % in 2×2 groups, the spec's).
const variants = [
  ['default (cmae)', []],
  ['mae', ['--method', 'mae']],
  ["spec's masking (65 % in 2x2 groups)", ['--mask-ratio', '0.65', '--masking', 'group']],
  ['mask 0.65 per patch', ['--mask-ratio', '0.65']],
  ['mask 0.45 in 2x2 groups', ['--masking', 'group']],
  ['mask 0.85', ['--mask-ratio', '0.85']],
  ['blr 3e-3', ['--blr', '3e-3']],
  ['blr 0.75e-3', ['--blr', '0.75e-3']],
  ['batch 128', ['--batch-size', '128']],
  ['shift 0', ['--shift-range', '0']],
  ['min crop 0.5', ['--min-crop', '0.5']],
  ['12 epochs', ['--epochs', '12']],
  // Model options (--model): the contrastive loss's temperature and weight, masking groups, depths.
  ['tau 0.2', ['--model', 'tau=0.2']],
  ['ct weight 0.3', ['--model', 'ctWeight=0.3']],
  ['ct weight 3', ['--model', 'ctWeight=3']],
  // Attention-driven masking (AMT's, src/train/amt.ts) against per-patch random masking, for CMAE and MAE.
  ['amt masking', ['--masking', 'amt']],
  ['mae amt masking', ['--method', 'mae', '--masking', 'amt']],
  // AMT's throwing (--model throwRatio) at its paper's 45 % masked / 40 % thrown, and the winners
  // and MAE at CMAE's 45 %.
  ['mae amt masking + throwing', ['--method', 'mae', '--masking', 'amt', '--mask-ratio', '0.45', '--model', 'throwRatio=0.4']],
  ['mae mask 0.45', ['--method', 'mae', '--mask-ratio', '0.45']],
  ['feature decoder depth 2', ['--model', 'featureDecoderDepth=2']],
  ['encoder depth 3', ['--model', 'depth=3']],
];

function run(args) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`cmae ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-800)}`);
  return JSON.parse(r.stdout);
}

const rows = [];
mkdirSync(out, { recursive: true });
for (const [name, extra] of variants) {
  if (only?.length && !only.includes(name)) continue;
  for (const seed of seeds) {
    const dir = path.join(out, `${name.replace(/[^a-z0-9.]+/gi, '-')}-seed${seed}`);
    const t0 = Date.now();
    const summary = run(['pretrain', '--data', data, '--seed', seed, '--out', dir, ...budget, ...extra, '--json']);
    const mean = run(['eval', '--checkpoint', path.join(dir, 'checkpoint.safetensors'), '--data', data, '--seed', seed, '--knn', '--linear', '--pool', 'mean', '--json']);
    const row = {
      name, seed, args: extra.join(' '), steps: summary.steps, minutes: (Date.now() - t0) / 60000,
      clsKnn: summary.knnTop1, clsLinear: summary.linearTop1, meanKnn: mean.results.checkpoint.knnTop1, meanLinear: mean.results.checkpoint.linearTop1,
      randomKnn: summary.randomInitKnnTop1, randomLinear: summary.randomInitLinearTop1, pixelsKnn: summary.pixelsKnnTop1, pixelsLinear: summary.pixelsLinearTop1,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
}
const pct = (v) => (v === undefined ? '-' : (100 * v).toFixed(1));
const FIELDS = ['steps', 'minutes', 'clsKnn', 'clsLinear', 'meanKnn', 'meanLinear', 'randomKnn', 'randomLinear', 'pixelsKnn', 'pixelsLinear'];
const table = [...rows];
if (seeds.length > 1) {
  for (const name of new Set(rows.map((r) => r.name))) {
    const of = rows.filter((r) => r.name === name);
    const avg = Object.fromEntries(FIELDS.map((f) => [f, of.reduce((s, r) => s + r[f], 0) / of.length]));
    table.push({ ...of[0], ...avg, seed: `mean of ${of.length}` });
  }
}
console.log(`\n| variant | seed | steps | min | cls k-NN | cls linear | mean k-NN | mean linear | random-init k-NN / linear | pixels k-NN / linear |`);
console.log(`|---|---|---|---|---|---|---|---|---|---|`);
for (const r of table) {
  console.log(`| ${r.name}${r.args ? ` (\`${r.args}\`)` : ''} | ${r.seed} | ${Math.round(r.steps)} | ${r.minutes.toFixed(1)} | ${pct(r.clsKnn)} | ${pct(r.clsLinear)} | ${pct(r.meanKnn)} | ${pct(r.meanLinear)} | ${pct(r.randomKnn)} / ${pct(r.randomLinear)} | ${pct(r.pixelsKnn)} / ${pct(r.pixelsLinear)} |`);
}
