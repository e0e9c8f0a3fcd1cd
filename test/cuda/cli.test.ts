/**
 * The `cmae` command with --device cuda, as a user runs it (dist/ CLI), on the emulated CUDA
 * device: the child processes inherit CMAE_ADDON_PATH from ./emulated. Tiny budgets: the emulator
 * runs every kernel's threads on the host.
 */
import './emulated';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, runCli, writeIdxDataset } from '../helpers/fixtures';
import { readSafetensors } from '../../src/index';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-cuda-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const run = runCli;

// 40 labelled 28×28 digits-like images as gzipped IDX files: small enough for the emulator.
const data = path.join(root, 'idx');
beforeAll(() => {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build the TypeScript first (npm ci or npm run build:ts)`);
  writeIdxDataset(data, 40, 4, 11);
});

describe('cmae CLI on the emulated cuda device', () => {
  it('info lists the device', () => {
    const json = JSON.parse(run('info', '--json').stdout);
    expect(json.cuda.compiled).toBe(true);
    expect(json.cuda.build).toBe('emulated');
    expect(json.cuda.devices.length).toBe(1);
    expect(run('info').stdout).toMatch(/cuda:0/);
  });

  const out = path.join(root, 'run');
  it('pretrain --device cuda trains there with the device default precision (tf32), and records it', async () => {
    const r = run('pretrain', '--data', `idx:${data}`, '--preset', 'micro', '--steps', '3', '--batch-size', '8', '--device', 'cuda', '--out', out, '--no-eval', '--json');
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.steps).toBe(3);
    expect(summary.device).toBe('cuda:0');
    expect(summary.matmulPrecision).toBe('tf32');
    expect(Number.isFinite(summary.lastLoss)).toBe(true);
    const checkpoint = await readSafetensors(path.join(out, 'checkpoint.safetensors'));
    expect(checkpoint.metadata.device).toBe('cuda:0');
    expect(checkpoint.metadata.matmulPrecision).toBe('tf32');
  });

  it('--resume continues on cuda, and eval and reconstruct run there', () => {
    const resumed = run('pretrain', '--data', `idx:${data}`, '--preset', 'micro', '--steps', '4', '--batch-size', '8', '--device', 'cuda',
      '--matmul-precision', 'fp32', '--out', out, '--resume', '--no-eval', '--json');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).steps).toBe(4);
    const checkpoint = path.join(out, 'checkpoint.safetensors');
    const evaluated = run('eval', '--checkpoint', checkpoint, '--data', `idx:${data}`, '--knn', '--device', 'cuda', '--json');
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(JSON.parse(evaluated.stdout).results.checkpoint.knnTop1).toBeGreaterThanOrEqual(0);
    const picture = path.join(root, 'recon.png');
    const reconstructed = run('reconstruct', '--checkpoint', checkpoint, '--data', `idx:${data}`, '--count', '4', '--device', 'cuda', '--out', picture);
    expect(reconstructed.code, reconstructed.stderr).toBe(0);
    expect(statSync(picture).size).toBeGreaterThan(100);
  });

  it('refuses devices that do not exist and precisions the device lacks, in one line with exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['pretrain', '--device', 'cuda:1', '--out', path.join(root, 'x')], /--device cuda:1: this machine has 1 CUDA device\(s\), cuda:0 to cuda:0/],
      [['pretrain', '--device', 'tpu', '--out', path.join(root, 'x')], /--device must be cpu, cuda or cuda:N, got 'tpu'/],
      [['pretrain', '--device', 'cuda', '--matmul-precision', 'fp16', '--out', path.join(root, 'x')], /--matmul-precision/],
      [['eval', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--device', 'cuda:2'], /cuda:2/],
    ];
    for (const [args, message] of cases) {
      const r = run(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n').length, args.join(' ')).toBe(1);
    }
  });
});
