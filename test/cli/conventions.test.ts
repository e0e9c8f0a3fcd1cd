/**
 * The conventions every `cmae` command keeps, run as a user runs it (the compiled CLI in dist/):
 * --version, commander's parse errors printed as every other error (one `cmae:` line, exit 2),
 * arguments refused before any slow work, Ctrl-C before training still saving and exiting 130,
 * and help texts that say what the command does.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, interruptCli, runCli } from '../helpers/fixtures';
import { readSafetensorsMetadata } from '../../src/index';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-cli-conventions-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(() => {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build the TypeScript first (npm run build:ts)`);
});

/** stderr of a refused command: exactly one line, `cmae: …`, no stack trace. */
function oneErrorLine(r: { code: number | null; stderr: string }, what: string): string {
  expect(r.code, what).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines, what).toHaveLength(1);
  expect(lines[0], what).toMatch(/^cmae: /);
  return lines[0];
}

describe('cmae command-line conventions', () => {
  it("--version (and -V) prints package.json's version", () => {
    const { version } = JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = runCli(flag);
      expect(r.code, flag).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
  });

  it("commander's parse errors are one `cmae:` line naming the command's help, exit code 2", () => {
    const cases: [string[], string][] = [
      [['pretrain', '--bogus'], "cmae: unknown option '--bogus' (see cmae pretrain --help)"],
      [['pretrain', '--step', '3'], "cmae: unknown option '--step' (Did you mean --steps?) (see cmae pretrain --help)"],
      [['embed', '--out'], "cmae: option '--out <file>' argument missing (see cmae embed --help)"],
      [['frobnicate'], "cmae: unknown command 'frobnicate' (see cmae --help)"],
      [['--bogus'], "cmae: unknown option '--bogus' (see cmae --help)"],
    ];
    for (const [args, line] of cases) expect(oneErrorLine(runCli(...args), args.join(' '))).toBe(line);
  });

  it('a batch too small for the method, or a --resume of another run, is refused before any slow work, naming why', () => {
    for (const method of ['cmae', 'mocov3', 'simclr', 'densecl']) {
      const r = runCli('pretrain', '--method', method, '--batch-size', '1', '--out', path.join(root, `b1-${method}`));
      expect(oneErrorLine(r, method)).toBe(
        `cmae: --batch-size 1: --method ${method} needs at least 2 images per batch (BatchNorm statistics and the contrastive loss's negatives)`,
      );
      expect(existsSync(path.join(root, `b1-${method}`)), method).toBe(false);
    }
    const out = path.join(root, 'micro');
    const first = runCli('pretrain', '--preset', 'micro', '--steps', '1', '--batch-size', '8', '--no-eval', '--out', out);
    expect(first.code, first.stderr).toBe(0);
    // Without --no-eval: the baselines (seconds of work) would come first if the check came late.
    const other = runCli('pretrain', '--preset', 'nano', '--steps', '2', '--out', out, '--resume');
    const line = oneErrorLine(other, '--resume');
    expect(line).toMatch(/cannot resume from .*checkpoint\.safetensors: it was written for another run; it differs in maskRatio \(checkpoint 0\.65, now 0\.45\), maskGroup \(checkpoint 2, now 1\), imageSize \(checkpoint 16, now 32\), dim \(checkpoint 32, now 128\), depth \(checkpoint 2, now 6\)/);
    expect(other.stderr).not.toMatch(/baselines/);
  });

  it('Ctrl-C before training starts (during the baselines) still saves a checkpoint and exits with 130', async () => {
    const out = path.join(root, 'early-interrupt');
    // The start line is printed just before the baselines, which take seconds.
    const r = await interruptCli(/^cmae pretrain: /m, 'pretrain', '--preset', 'micro', '--steps', '100000', '--batch-size', '8', '--out', out);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/interrupted: finishing the current step and saving a checkpoint/);
    expect(r.stdout).toMatch(/stopped at step 0; checkpoint saved to .*checkpoint\.safetensors \(continue with --resume\)/);
    expect((await readSafetensorsMetadata(path.join(out, 'checkpoint.safetensors'))).step).toBe('0');
  });

  it('reconstruct --help says what the picture holds: a row per image, three columns', () => {
    const r = runCli('reconstruct', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toMatch(/a row per image, in three columns \(original \| masked input \| reconstruction\)/);
    expect(r.stdout).not.toMatch(/rows:/);
  });
});
