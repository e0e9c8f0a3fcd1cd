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
const STEPS = 40;

/** Runs the child until it exits, or kills it after `killAfterMs` (counted from its first step). */
function runChild(dir: string, killAfterMs?: number): Promise<{ code: number | null; signal: string | null; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [child, dir, String(STEPS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let timer: NodeJS.Timeout | undefined;
    p.stdout.on('data', (d) => {
      stdout += d;
      if (killAfterMs !== undefined && !timer) timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
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
      // Kill within 120 ms of the first step: a micro step and its checkpoint take ~10-30 ms, so the
      // kill lands in a step, between steps or during a checkpoint write, a few steps on each time.
      const r = await runChild(dir, kills < 20 ? Math.floor(rng() * 120) : undefined);
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
