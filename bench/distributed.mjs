// npm run bench:dist — one process against N ranks of `cmae launch` on this machine: the same
// pre-training (global batch, steps, seed) timed interleaved, `reps` times each, so a noisy
// machine shows as spread rather than as a false speed-up. Prints images/s (the mean of the
// steps' rates from --json) and the wall time of each run. Needs mpirun (Open MPI).
//   node bench/distributed.mjs [--nproc 2] [--preset nano] [--steps 150] [--batch-size 64] [--reps 2] [--json]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const option = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const nproc = Number(option('--nproc', '2'));
const preset = option('--preset', 'nano');
const steps = option('--steps', '150');
const batchSize = option('--batch-size', '64');
const reps = Number(option('--reps', '2'));
const json = argv.includes('--json');
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cjs', 'cli', 'main.js');
const out = mkdtempSync(path.join(os.tmpdir(), 'cmae-bench-dist-'));

function pretrain(launch) {
  const args = ['pretrain', '--preset', preset, '--steps', steps, '--batch-size', batchSize, '--no-eval', '--json', '--out', path.join(out, launch ? 'ranks' : 'one')];
  const command = launch ? [cli, 'launch', '--nproc', String(nproc), '--', ...args] : [cli, ...args];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, command, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${command.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  const summary = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  return { imagesPerSecond: summary.imagesPerSecond, trainSeconds: summary.seconds, wallSeconds: wall };
}

try {
  const rows = [];
  for (let rep = 1; rep <= reps; rep++) {
    rows.push({ setting: `1 process, ${os.availableParallelism()} threads`, rep, ...pretrain(false) });
    rows.push({ setting: `${nproc} ranks (cmae launch)`, rep, ...pretrain(true) });
  }
  if (json) {
    process.stdout.write(`${JSON.stringify({ preset, steps: Number(steps), batchSize: Number(batchSize), nproc, cores: os.availableParallelism(), rows }, null, 2)}\n`);
  } else {
    console.log(`${preset}, global batch ${batchSize}, ${steps} steps, ${os.availableParallelism()} cores`);
    console.log(`${'setting'.padEnd(28)} rep   img/s   train s   wall s`);
    for (const r of rows) {
      console.log(`${r.setting.padEnd(28)} ${String(r.rep).padStart(3)} ${r.imagesPerSecond.toFixed(0).padStart(7)} ${r.trainSeconds.toFixed(1).padStart(9)} ${r.wallSeconds.toFixed(1).padStart(8)}`);
    }
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
