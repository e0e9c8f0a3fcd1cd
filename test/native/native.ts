/**
 * Runs a native test executable of build-tests/test/native (built by build.ts) and turns its
 * protocol (report.h: one JSON line per case) into vitest cases: the names are listed when the
 * file is collected, the binary runs once, and each case asserts its own line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { buildDir } from './build';

interface CaseResult {
  name: string;
  ok?: boolean;
  /** A case this machine cannot run (message: the CPU feature it lacks). */
  skipped?: boolean;
  message?: string;
}

function parseLines(text: string): CaseResult[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as CaseResult);
}

export function binaryPath(name: string): string {
  return path.join(buildDir, 'test', 'native', name);
}

/** One vitest case per case of the executable `name` (args are passed through, e.g. --filter). */
export function nativeCases(name: string, args: string[] = [], missingHint = ''): void {
  const binary = binaryPath(name);
  if (!existsSync(binary)) {
    // A dependency of the native tests is missing (CMake printed which): fail with the fix.
    it(`${name} is built`, () => {
      expect.fail(`${binary} was not built by test/native/build.ts${missingHint ? `: ${missingHint}` : ''}`);
    });
    return;
  }
  const listed = parseLines(execFileSync(binary, ['--list', ...args], { encoding: 'utf8' }));
  const names = listed.filter((c) => !c.skipped).map((c) => c.name);
  const results = new Map<string, CaseResult>();
  let crash = '';
  beforeAll(() => {
    const run = spawnSync(binary, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
    for (const r of parseLines(run.stdout)) results.set(r.name, r);
    if (run.status !== 0 && run.status !== 1) crash = `${name} exited with ${run.status ?? run.signal}: ${run.stderr.slice(-2000)}`;
  });
  it(`${name} lists its cases`, () => {
    expect(names.length).toBeGreaterThan(0);
  });
  // Cases the executable cannot run here are reported skipped, with its reason, not as passed.
  for (const c of listed.filter((l) => l.skipped)) {
    it(c.name, (ctx) => {
      ctx.skip(c.message);
    });
  }
  it.each(names)('%s', (caseName) => {
    const r = results.get(caseName);
    expect(r, crash || `${caseName} produced no result (stderr of the run above)`).toBeDefined();
    expect(r!.ok, r!.message).toBe(true);
  });
}
