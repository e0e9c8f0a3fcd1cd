/**
 * Memory of a long-lived process (issue 13, "Memory"): these tests measure memory, never time.
 * Each scenario runs in a fresh child process (memory-probe.cjs, against the compiled package in
 * dist/ and the addon src/native.ts finds, CMAE_ADDON_PATH included), so the resident size is the
 * scenario's own and not the test runner's.
 *
 * What they catch, measured on the builds that had the faults:
 * - cycles: arenas from aligned_alloc stay in glibc's heap after dispose(): +9 MB RSS per nano
 *   create/step/dispose cycle (1.1 GB after 100 cycles).
 * - loader, train: blocks below the mmap threshold from aligned_alloc are never reused by the next
 *   aligned_alloc of their size (glibc memalign): ~100 KB per 16-image micro batch.
 * - accounting: handles collected without dispose() never took back what they reported to V8.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const MB = 1024 * 1024;
const probe = path.join(__dirname, 'memory-probe.cjs');

interface Growth {
  warm: number;
  end: number;
  done: number;
}

function runProbe<T>(args: string[], nodeFlags: string[] = []): T {
  const r = spawnSync(process.execPath, [...nodeFlags, probe, ...args], { encoding: 'utf8', env: { ...process.env }, maxBuffer: 1 << 20 });
  expect(r.status, `memory-probe ${args.join(' ')} failed: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

// The child stops at twice the bound, so a leaking build fails in seconds rather than filling memory.
function expectBoundedGrowth(scenario: string, count: number, boundMB: number): void {
  const g = runProbe<Growth>([scenario, String(count), String(2 * boundMB * MB)]);
  const growthMB = (g.end - g.warm) / MB;
  const summary = `${scenario}: RSS ${(g.warm / MB).toFixed(1)} MB after warm-up, ${(g.end / MB).toFixed(1)} MB after ${g.done} of ${count}`;
  expect(growthMB, summary).toBeLessThan(boundMB);
  expect(g.done, summary).toBe(count);
}

describe('memory of a long-lived process', () => {
  it('300 create / training step / dispose cycles of a nano model keep RSS flat (arenas go back to the OS)', () => {
    expectBoundedGrowth('cycles', 300, 64);
  });

  it('3,000 DataLoader batches without a manual gc keep RSS bounded', () => {
    expectBoundedGrowth('loader', 3000, 32);
  });

  it('1,000 train() steps keep RSS bounded', () => {
    expectBoundedGrowth('train', 1000, 32);
  });

  it('a tiny, batch-64 pre-training process peaks under 400 MB with recomputeActivations (and is measured without)', () => {
    interface Peak {
      peak: number;
      done: number;
    }
    const lean = runProbe<Peak>(['peak', '12', '1']);
    const full = runProbe<Peak>(['peak', '12', '0']);
    const summary = `peak RSS ${(lean.peak / MB).toFixed(1)} MB recomputing, ${(full.peak / MB).toFixed(1)} MB saving every activation`;
    expect(lean.done).toBe(12);
    expect(lean.peak / MB, summary).toBeLessThan(400);
    // the saving is the encoder's saved activations, ~100 MB at this size
    expect((full.peak - lean.peak) / MB, summary).toBeGreaterThan(50);
  });

  it('what cmae reports to V8 returns to its starting value after dispose() and after GC of undisposed handles', () => {
    interface Snapshot {
      reported: number;
      cpu: number;
      arrayBuffers: number;
    }
    const s = runProbe<Record<string, Snapshot>>(['accounting'], ['--expose-gc']);
    // V8's external count also holds its own array buffers (arrayBuffers) and an external buffer
    // per live view: cmae's share is the rest. A few bytes of V8's own drift are tolerated.
    const own = (x: Snapshot) => x.reported - x.arrayBuffers;
    const near = (actual: number, expected: number, what: string) => expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThan(4096);
    const tensorBytes = 4 * (1 << 20);
    expect(s.tensorAlive.cpu - s.baseline.cpu).toBe(tensorBytes);
    near(own(s.tensorAlive) - own(s.baseline), tensorBytes, 'a live tensor reports its bytes');
    // A view outlives its disposed tensor: the memory stays, and so does V8's count of its buffer.
    expect(s.viewAlive.cpu - s.baseline.cpu).toBe(tensorBytes);
    near(own(s.viewAlive) - own(s.baseline), tensorBytes, "a view's buffer is counted (by V8) while it lives");
    expect(s.modelAlive.cpu).toBeGreaterThan(s.baseline.cpu);
    near(own(s.modelAlive) - own(s.baseline), s.modelAlive.cpu - s.baseline.cpu, 'a model and its optimizer report what they hold');
    for (const name of ['tensorDisposed', 'viewsAndTensorsCollected', 'modelDisposed', 'modelCollected']) {
      expect(s[name].cpu, `${name}: CPU backend bytes`).toBe(s.baseline.cpu);
      near(own(s[name]), own(s.baseline), `${name}: reported to V8`);
    }
  });
});
