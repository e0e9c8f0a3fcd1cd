/**
 * `cmae finetune` and `cmae eval --classifier` end to end (the compiled CLI), on a tiny labelled
 * IDX dataset and a micro pre-training checkpoint.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, runCli as run, writeIdxDataset } from '../helpers/fixtures';
import { readSafetensors, writeSafetensors } from '../../src/index';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-finetune-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const data = `idx:${path.join(root, 'idx')}`;
const pretrained = path.join(root, 'pre', 'checkpoint.safetensors');
const outputs = ['classifier.safetensors', 'metrics.jsonl', 'learning-curve.png', 'confusion.png'];

beforeAll(() => {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build the TypeScript first (npm ci or npm run build:ts)`);
  writeIdxDataset(path.join(root, 'idx'), 64, 4, 3);
  const r = run('pretrain', '--data', data, '--preset', 'micro', '--steps', '4', '--batch-size', '16', '--no-eval', '--out', path.join(root, 'pre'));
  if (r.code !== 0) throw new Error(r.stderr);
});

describe('cmae finetune', () => {
  const out = path.join(root, 'ft');
  it('prints top-1 per epoch, writes the best checkpoint, metrics.jsonl and both pictures; eval --classifier scores it', () => {
    const r = run('finetune', '--checkpoint', pretrained, '--data', data, '--epochs', '3', '--batch-size', '16', '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.top1PerEpoch).toHaveLength(3);
    expect(summary.bestTop1).toBe(Math.max(...summary.top1PerEpoch));
    expect(summary.steps).toBe(12);
    expect(r.stderr).toMatch(/epoch 1\/3: top-1 \d+\.\d\d% \(best \d+\.\d\d% at epoch 1\), train loss \d\.\d{4}/);
    expect(r.stderr).toMatch(/epoch 3\/3: top-1/);
    for (const f of outputs) expect(statSync(path.join(out, f)).size, f).toBeGreaterThan(100);
    const lines = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.epoch)).toEqual([1, 2, 3]);
    expect(lines.map((l) => l.top1)).toEqual(summary.top1PerEpoch);
    const ev = run('eval', '--classifier', path.join(out, 'classifier.safetensors'), '--data', data, '--json');
    expect(ev.code, ev.stderr).toBe(0);
    const scored = JSON.parse(ev.stdout);
    expect(scored.top1).toBe(summary.bestTop1); // the saved checkpoint is the best epoch's
    expect(scored.confusion.reduce((a: number, b: number) => a + b, 0)).toBe(64);
    const text = run('eval', '--classifier', path.join(out, 'classifier.safetensors'), '--data', data);
    expect(text.stdout).toMatch(/64 test images, classifier top-1 \d+\.\d\d%/);
  });

  it('never overwrites an earlier run without --force', () => {
    const before = statSync(path.join(out, 'classifier.safetensors')).mtimeMs;
    const r = run('finetune', '--checkpoint', pretrained, '--data', data, '--epochs', '1', '--batch-size', '16', '--out', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/classifier.safetensors exists \(an earlier run's output\); pass --force/);
    expect(statSync(path.join(out, 'classifier.safetensors')).mtimeMs).toBe(before);
    const forced = run('finetune', '--checkpoint', pretrained, '--data', data, '--epochs', '1', '--batch-size', '16', '--out', out, '--force', '--json');
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('--from-scratch fine-tunes the same architecture from random init', async () => {
    const dir = path.join(root, 'scratch');
    const r = run('finetune', '--checkpoint', pretrained, '--from-scratch', '--data', data, '--epochs', '1', '--batch-size', '16', '--pool', 'cls', '--out', dir, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).from).toBe('random init');
    const file = await readSafetensors(path.join(dir, 'classifier.safetensors'));
    const config = JSON.parse(file.metadata.config);
    expect([config.mode, config.globalPool, config.numClasses, config.dim]).toEqual(['classifier', false, 4, 32]);
    expect(file.tensors.has('norm.weight')).toBe(true);
  });

  it('bad input: one line, exit code 2 (a tensor that does not fit names it)', async () => {
    const file = await readSafetensors(pretrained);
    const qkv = file.tensors.get('blocks.1.attn.qkv.weight')!;
    file.tensors.set('blocks.1.attn.qkv.weight', { dtype: 'F32', shape: [96, 16], data: (qkv.data as Float32Array).subarray(0, 96 * 16) });
    const bad = path.join(root, 'bad.safetensors');
    await writeSafetensors(bad, file.tensors, file.metadata);
    const r = run('finetune', '--checkpoint', bad, '--data', data, '--epochs', '1', '--out', path.join(root, 'bad'));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/'blocks.1.attn.qkv.weight' is \[96, 16\], the classifier needs \[96, 32\]/);
    for (const [args, message] of [
      [['--data', data], /--checkpoint FILE is required/],
      [['--checkpoint', path.join(root, 'nope.safetensors')], /checkpoint not found/],
      [['--checkpoint', pretrained, '--pool', 'max'], /--pool must be cls or mean/],
      [['--checkpoint', pretrained, '--epochs', '0'], /--epochs/],
      [['--checkpoint', pretrained, '--layer-decay', '2'], /--layer-decay/],
      [['--checkpoint', pretrained, '--drop-path', '1'], /--drop-path/],
      [['--checkpoint', path.join(root, 'ft', 'classifier.safetensors')], /not a cmae pre-training checkpoint/],
      [['--checkpoint', path.join(root, 'ft', 'classifier.safetensors'), '--from-scratch'], /not a cmae pre-training checkpoint/],
    ] as const) {
      const e = run('finetune', ...args, '--out', path.join(root, 'never'));
      expect(e.code, args.join(' ')).toBe(2);
      expect(e.stderr).toMatch(message);
    }
    expect(existsSync(path.join(root, 'never'))).toBe(false);
    const ev = run('eval', '--classifier', pretrained, '--data', data);
    expect(ev.code).toBe(2);
    expect(ev.stderr).toMatch(/not a cmae classifier checkpoint/);
  });
});
