/**
 * Crash safety: a training process killed with SIGKILL at 20 seeded random moments (between steps,
 * inside steps, during checkpoint writes) and resumed each time leaves a checkpoint that always
 * loads, a metrics.jsonl with every step once, no temporary files, and ends bit-identical to a
 * run that was never interrupted. Runs the compiled package in children (train-child.cjs).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CMAE } from '../../src/index';
import { readSafetensors } from '../../src/io/safetensors';
import { expectSameBits, makeRng } from '../helpers/check';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-kill-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const child = path.join(__dirname, 'train-child.cjs');
// More steps than 20 kills can use up (each attempt advances at most ~5: see KillMoment), so the
// run is still going at every kill, however fast the machine.
const STEPS = 120;

/**
 * When to kill: after the child has reported `afterSteps` steps, a `fraction` of one step's time
 * later (the time between its last two step lines; up to 1.5: into the next step, or its
 * checkpoint write). Counted in steps, not milliseconds, so that a fast or a loaded machine kills
 * at the same kinds of moments.
 */
interface KillMoment {
  afterSteps: number;
  fraction: number;
}

/** Runs the child until it exits, or kills it at `kill`. */
function runChild(dir: string, kill?: KillMoment): Promise<{ code: number | null; signal: string | null; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [child, dir, String(STEPS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let timer: NodeJS.Timeout | undefined;
    const lineTimes: number[] = [];
    p.stdout.on('data', (d) => {
      stdout += d;
      for (const _ of String(d).matchAll(/^step \d+$/gm)) lineTimes.push(performance.now());
      if (kill !== undefined && !timer && lineTimes.length >= kill.afterSteps) {
        const n = lineTimes.length;
        const stepMs = n >= 2 ? lineTimes[n - 1] - lineTimes[n - 2] : 20;
        timer = setTimeout(() => p.kill('SIGKILL'), Math.floor(kill.fraction * stepMs));
      }
    });
    p.stderr.on('data', (d) => (stdout += d));
    p.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout });
    });
  });
}

describe('SIGKILL during training', () => {
  it('20 kills, each resumed: every checkpoint loads, no step is lost or repeated, the end is bit-identical', async () => {
    const reference = path.join(root, 'reference');
    const clean = await runChild(reference);
    expect(clean.code, clean.stdout).toBe(0);

    const dir = path.join(root, 'killed');
    const rng = makeRng(20);
    let kills = 0;
    for (let attempt = 0; attempt < 60; attempt++) {
      // After 1-3 steps, then up to 1.5 steps' time: the kill lands in a step, between steps or
      // during a checkpoint write (one is written after every step), a few steps on each time.
      const r = await runChild(dir, kills < 20 ? { afterSteps: 1 + Math.floor(rng() * 3), fraction: 1.5 * rng() } : undefined);
      if (r.code === 0) break;
      expect(r.signal, r.stdout).toBe('SIGKILL');
      kills++;
      const file = path.join(dir, 'checkpoint.safetensors');
      if (existsSync(file)) {
        // Whatever moment the kill hit, the checkpoint is a whole one (written atomically).
        const model = await CMAE.load(file);
        model.dispose();
      }
    }
    expect(kills).toBe(20);
    const metrics = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(metrics).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const a = await readSafetensors(path.join(reference, 'checkpoint.safetensors'));
    const b = await readSafetensors(path.join(dir, 'checkpoint.safetensors'));
    expect(b.metadata.step).toBe(String(STEPS));
    for (const [name, entry] of a.tensors) expectSameBits(b.tensors.get(name)!.data as Float32Array, entry.data as Float32Array, name);
  }, 300_000);
});
