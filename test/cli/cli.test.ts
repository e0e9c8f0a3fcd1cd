/**
 * The `cmae` command end to end, as a user runs it (the compiled CLI in dist/, built by `npm ci`),
 * each command on a tiny budget.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, interruptCli, runCli, writeIdxDataset } from '../helpers/fixtures';
import { info, readSafetensors } from '../../src/index';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const run = runCli;

beforeAll(() => {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build the TypeScript first (npm ci or npm run build:ts)`);
});

describe('cmae CLI', () => {
  it('info prints the build facts, as text and as JSON', () => {
    const text = run('info');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/SIMD path\s+avx(2|512)/);
    expect(text.stdout).toMatch(/addon\s+\S+cmae(_emulated)?\.node \((local build|prebuilt|CMAE_ADDON_PATH)\)/);
    expect(text.stdout).toMatch(/CUDA/);
    const json = JSON.parse(run('info', '--json').stdout);
    expect(json.threads).toBeGreaterThanOrEqual(1);
    expect(typeof json.cuda.compiled).toBe('boolean');
  });

  // The bundled-digits run that the resume, eval and reconstruct tests start from: made once, by
  // whichever of them runs first (so each also runs alone, e.g. under -t).
  const out = path.join(root, 'run');
  let digits: ReturnType<typeof run> | undefined;
  const digitsRun = () => (digits ??= run('pretrain', '--preset', 'micro', '--steps', '4', '--batch-size', '16', '--out', out, '--json'));
  it('pretrain runs on the bundled MNIST digits and leaves the four output files', () => {
    const r = digitsRun();
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout); // stdout is clean JSON; progress went to stderr
    expect(summary.steps).toBe(4);
    expect(summary.knnTop1).toBeGreaterThan(0.1);
    expect(summary.randomInitKnnTop1).toBeGreaterThan(0.1);
    // Beside the learned encoder, both baselines, each with k-NN and the linear probe.
    for (const key of ['linearTop1', 'randomInitLinearTop1', 'pixelsKnnTop1', 'pixelsLinearTop1']) expect(summary[key], key).toBeGreaterThan(0.1);
    expect(r.stderr).toMatch(/learned encoder +\d+\.\d+% +\d+\.\d+%\n +random-init +\d+\.\d+% +\d+\.\d+%\n +raw pixels +\d+\.\d+% +\d+\.\d+%/);
    for (const f of ['checkpoint.safetensors', 'metrics.jsonl', 'loss.png', 'reconstruction.png']) expect(statSync(path.join(out, f)).size).toBeGreaterThan(100);
  });

  it('pretrain --model overrides fields of the preset, and the checkpoint records them', async () => {
    const dir = path.join(root, 'overrides');
    const r = run('pretrain', '--preset', 'micro', '--steps', '2', '--batch-size', '8', '--model', 'tau=0.2,featureDecoderDepth=2,normPixLoss=false', '--out', dir, '--no-eval', '--json');
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse((await readSafetensors(path.join(dir, 'checkpoint.safetensors'))).metadata.config);
    expect([config.tau, config.featureDecoderDepth, config.normPixLoss, config.dim]).toEqual([0.2, 2, false, 32]);
    const bad = run('pretrain', '--preset', 'micro', '--steps', '1', '--model', 'heads=5', '--out', path.join(root, 'bad-heads'), '--no-eval');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/heads/);
  });

  it('pretrain --resume continues from the checkpoint', () => {
    expect(digitsRun().code).toBe(0);
    const r = run('pretrain', '--preset', 'micro', '--steps', '6', '--batch-size', '16', '--out', out, '--resume', '--no-eval', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).steps).toBe(6);
    // Another data set, method or configuration is refused at once, naming what differs (before
    // the baselines, which would take seconds: --no-eval is not given here).
    const other = run('pretrain', '--data', 'fashion-mnist', '--method', 'mae', '--preset', 'micro', '--steps', '8', '--out', out, '--resume');
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/cannot resume from .*checkpoint.safetensors: it was written for another run; it differs in mode \(checkpoint "cmae", now "mae"\).*data \(checkpoint "mnist", now "fashion-mnist"\)/);
    expect(other.stderr).not.toMatch(/baselines/);
  });

  it('pretrain --minutes trains for the wall-time budget with the schedule following the budget', () => {
    const started = Date.now();
    const r = run('pretrain', '--preset', 'micro', '--minutes', '0.05', '--batch-size', '16', '--out', path.join(root, 'timed'), '--no-eval', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).steps).toBeGreaterThanOrEqual(1);
    expect(r.stderr).toMatch(/time budget 0.05 min/);
    const metrics = readFileSync(path.join(root, 'timed', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    // The LR warms up and decays over the 3 s budget: the last step's LR is near the end of the cosine.
    expect(metrics.at(-1).progress).toBeGreaterThan(0.9);
    expect(metrics.at(-1).lr).toBeLessThan(0.1 * Math.max(...metrics.map((m: { lr: number }) => m.lr)));
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('Ctrl-C (SIGINT) saves a checkpoint and exits with 130', async () => {
    const dir = path.join(root, 'interrupted');
    // After the first progress line.
    const { code, stdout, stderr } = await interruptCli(/\] \d+\/100000/, 'pretrain', '--preset', 'micro', '--steps', '100000', '--batch-size', '16', '--out', dir, '--no-eval');
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted: finishing the current step and saving a checkpoint/);
    expect(stdout).toMatch(/stopped at step \d+; checkpoint saved to .*checkpoint\.safetensors \(continue with --resume\)/);
    expect(statSync(path.join(dir, 'checkpoint.safetensors')).size).toBeGreaterThan(1000);
  });

  it('eval reports k-NN and linear-probe top-1 with baselines', () => {
    expect(digitsRun().code).toBe(0);
    const r = run('eval', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--knn', '--linear', '--baselines', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    for (const row of ['checkpoint', 'random-init', 'raw-pixels']) {
      expect(report.results[row].knnTop1).toBeGreaterThan(0.1);
      expect(report.results[row].linearTop1).toBeGreaterThan(0.1);
    }
  });

  it('eval --blocks 2 scores the last two blocks\' features side by side, and refuses more blocks than the encoder has', () => {
    expect(digitsRun().code).toBe(0);
    const checkpoint = path.join(out, 'checkpoint.safetensors');
    const r = run('eval', '--checkpoint', checkpoint, '--linear', '--blocks', '2', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.blocks).toBe(2);
    expect(report.results.checkpoint.linearTop1).toBeGreaterThan(0.1);
    expect(run('eval', '--checkpoint', checkpoint, '--blocks', '2').stdout).toMatch(/features of the last 2 blocks, top-1/);
    const tooMany = run('eval', '--checkpoint', checkpoint, '--blocks', '99');
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toMatch(/--blocks 99: the encoder has \d+ blocks/);
  });

  it('reconstruct writes a picture', () => {
    expect(digitsRun().code).toBe(0);
    const file = path.join(root, 'recon.png');
    const r = run('reconstruct', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--out', file, '--count', '4');
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(file).size).toBeGreaterThan(100);
  });

  it('trains in MAE mode on IDX files (gzipped), with its masking defaults or --masking', async () => {
    const dir = path.join(root, 'idx');
    writeIdxDataset(dir, 40, 3);
    const r = run('pretrain', '--data', `idx:${dir}`, '--method', 'mae', '--preset', 'micro', '--steps', '2', '--batch-size', '8', '--out', path.join(root, 'mae'), '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).method).toBe('mae');
    const config = JSON.parse((await readSafetensors(path.join(root, 'mae', 'checkpoint.safetensors'))).metadata.config);
    expect([config.maskRatio, config.maskGroup]).toEqual([0.75, 1]); // MAE's defaults, from config.ts
    // --masking group: CMAE's 2x2 groups for MAE (16 patches in 4 groups: 1 of 4 visible at 0.75)
    const grouped = run('pretrain', '--data', `idx:${dir}`, '--method', 'mae', '--masking', 'group', '--preset', 'micro', '--steps', '1', '--batch-size', '8', '--out', path.join(root, 'mae-group'), '--no-eval', '--json');
    expect(grouped.code, grouped.stderr).toBe(0);
    expect(JSON.parse((await readSafetensors(path.join(root, 'mae-group', 'checkpoint.safetensors'))).metadata.config).maskGroup).toBe(2);
    // --masking amt: per patch, drawn by the encoder's cls attention, with AMT's throwing (--model
    // throwRatio: 0.25 thrown, 0.5 masked, 4 of 16 visible); the checkpoint records both
    const amtArgs = ['--data', `idx:${dir}`, '--method', 'mae', '--mask-ratio', '0.5', '--model', 'throwRatio=0.25', '--preset', 'micro', '--batch-size', '8', '--out', path.join(root, 'mae-amt'), '--no-eval'];
    const amt = run('pretrain', ...amtArgs, '--masking', 'amt', '--steps', '2', '--json');
    expect(amt.code, amt.stderr).toBe(0);
    expect(amt.stderr).toMatch(/4\/16 patches visible/);
    const amtFile = await readSafetensors(path.join(root, 'mae-amt', 'checkpoint.safetensors'));
    const amtConfig = JSON.parse(amtFile.metadata.config);
    expect([amtConfig.maskGroup, amtConfig.throwRatio, amtFile.metadata.maskSampling]).toEqual([1, 0.25, 'attention']);
    // … and a --resume that would sample masks another way is refused before any work
    const mixed = run('pretrain', ...amtArgs, '--masking', 'random', '--steps', '3', '--resume');
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/it differs in maskSampling \(checkpoint "attention", now "uniform"\)/);
  });

  it('trains MoCo v3, SimCLR and DenseCL (--method mocov3|simclr|densecl): no reconstruction picture, the checkpoint records the method, reconstruct refuses it', async () => {
    const dir = path.join(root, 'mocov3');
    const r = run('pretrain', '--method', 'mocov3', '--preset', 'micro', '--steps', '3', '--batch-size', '8', '--out', dir, '--no-eval', '--json');
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.method).toBe('mocov3');
    expect(summary.steps).toBe(3);
    expect(summary.outputs.map((f: string) => path.basename(f))).toEqual(['checkpoint.safetensors', 'metrics.jsonl', 'loss.png']);
    expect(r.stderr).toMatch(/mocov3 micro on .* 16\/16 patches visible/);
    const { metadata } = await readSafetensors(path.join(dir, 'checkpoint.safetensors'));
    expect(JSON.parse(metadata.config).mode).toBe('mocov3');
    const recon = run('reconstruct', '--checkpoint', path.join(dir, 'checkpoint.safetensors'), '--out', path.join(root, 'mocov3.png'));
    expect(recon.code).toBe(2);
    expect(recon.stderr).toMatch(/a mocov3 model has no pixel decoder/);
    const bad = run('pretrain', '--method', 'dino', '--preset', 'micro', '--steps', '1', '--out', path.join(root, 'bad-method'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--method must be one of cmae, mae, mocov3, maskdistill, simclr, densecl, got 'dino'/);
    // --masked-views 0.5: FLIP's masked views, 8 of 16 patches encoded per view (the checkpoint's maskRatio)
    const simclr = run('pretrain', '--method', 'simclr', '--masked-views', '0.5', '--preset', 'micro', '--steps', '2', '--batch-size', '8', '--out', path.join(root, 'simclr'), '--no-eval', '--json');
    expect(simclr.code, simclr.stderr).toBe(0);
    expect(JSON.parse(simclr.stdout).method).toBe('simclr');
    expect(simclr.stderr).toMatch(/simclr micro on .* 8\/16 patches visible/);
    expect(JSON.parse((await readSafetensors(path.join(root, 'simclr', 'checkpoint.safetensors'))).metadata.config).maskRatio).toBe(0.5);
    expect(simclr.stderr).toMatch(/loss [0-9.]+ \(ct [0-9.]+\)/);
    // DenseCL: its own field through --model, its dense loss on the progress line and in metrics.jsonl
    const denseDir = path.join(root, 'densecl');
    const densecl = run('pretrain', '--method', 'densecl', '--model', 'denseWeight=0.25', '--masked-views', '0.25', '--preset', 'micro', '--steps', '2', '--batch-size', '8', '--out', denseDir, '--no-eval', '--json');
    expect(densecl.code, densecl.stderr).toBe(0);
    expect(JSON.parse(densecl.stdout).method).toBe('densecl');
    expect(densecl.stderr).toMatch(/loss [0-9.]+ \(ct [0-9.]+, dense [0-9.]+\)/);
    expect(JSON.parse((await readSafetensors(path.join(denseDir, 'checkpoint.safetensors'))).metadata.config)).toMatchObject({ mode: 'densecl', denseWeight: 0.25, maskRatio: 0.25 });
    const metrics = readFileSync(path.join(denseDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2]);
    for (const m of metrics) expect(m.dense).toBeGreaterThan(0);
    const notDense = run('pretrain', '--method', 'mocov3', '--model', 'denseWeight=0.5', '--preset', 'micro', '--steps', '1', '--out', path.join(root, 'bad-dense'));
    expect(notDense.code).toBe(2);
    expect(notDense.stderr).toMatch(/--model: unknown key 'denseWeight'/);
  });

  it('trains MaskDistill with the momentum encoder as teacher, or with a frozen teacher from a checkpoint (--teacher)', async () => {
    const ema = path.join(root, 'maskdistill');
    const r = run('pretrain', '--method', 'maskdistill', '--preset', 'micro', '--steps', '2', '--batch-size', '8', '--out', ema, '--no-eval', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).outputs.map((f: string) => path.basename(f))).toEqual(['checkpoint.safetensors', 'metrics.jsonl', 'loss.png']);
    expect(r.stderr).toMatch(/maskdistill micro on .* 4\/16 patches visible/);
    // The teacher: the MAE checkpoint of the test above has the same micro encoder.
    const teacherFile = path.join(root, 'mae', 'checkpoint.safetensors');
    const frozen = path.join(root, 'maskdistill-frozen');
    const f = run('pretrain', '--method', 'maskdistill', '--teacher', teacherFile, '--preset', 'micro', '--steps', '3', '--batch-size', '8', '--out', frozen, '--no-eval', '--json');
    expect(f.code, f.stderr).toBe(0);
    const student = await readSafetensors(path.join(frozen, 'checkpoint.safetensors'));
    const teacher = await readSafetensors(teacherFile);
    expect(student.metadata.teacher).toBe(teacherFile);
    for (const name of ['blocks.0.attn.qkv.weight', 'patch_embed.proj.weight', 'cls_token']) {
      expect(Array.from(student.tensors.get(`momentum_encoder.${name}`)!.data as Float32Array)).toEqual(Array.from(teacher.tensors.get(name)!.data as Float32Array));
    }
    const wrong = run('pretrain', '--method', 'cmae', '--teacher', teacherFile, '--preset', 'micro', '--steps', '1', '--out', path.join(root, 'bad-teacher'));
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/--teacher is for --method maskdistill, not cmae/);
  });

  it('pretrain --matmul-precision bf16 trains with bf16 products where the CPU has them, and says so otherwise', () => {
    const r = run('pretrain', '--preset', 'micro', '--steps', '3', '--batch-size', '16', '--matmul-precision', 'bf16',
      '--out', path.join(root, 'bf16'), '--no-eval', '--json');
    if (info().bf16) {
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout);
      expect(summary.matmulPrecision).toBe('bf16');
      expect(Number.isFinite(summary.lastLoss)).toBe(true);
    } else {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/needs a CPU with AVX512_BF16/);
    }
  });

  it('bad arguments and missing files give one clear line and exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['pretrain', '--preset', 'huge'], /unknown --preset 'huge'/],
      [['pretrain', '--batch-size', '0'], /--batch-size must be a positive integer/],
      [['pretrain', '--data', 'idx'], /needs a directory/],
      [['pretrain', '--data', `idx:${path.join(root, 'nope')}`, '--steps', '1'], /nope/],
      [['pretrain', '--data', 'imagenet'], /unknown --data 'imagenet'/],
      [['pretrain', '--matmul-precision', 'fp16'], /--matmul-precision must be fp32, tf32 or bf16, got 'fp16'/],
      [['pretrain', '--matmul-precision', 'tf32'], /--matmul-precision tf32 is for CUDA devices/],
      [['pretrain', '--device', 'tpu'], /--device must be cpu, cuda or cuda:N, got 'tpu'/],
      [['pretrain', '--model', 'colour=3'], /--model: unknown key 'colour' \(expected one of .*featureDecoderDepth/],
      [['pretrain', '--model', 'mode=mae'], /--model mode: set it with --method/],
      [['pretrain', '--model', 'maskGroup=1'], /--model maskGroup: set it with --masking/],
      [['pretrain', '--masked-views', '0.5'], /--masked-views is for the two-view methods \(mocov3, simclr, densecl\), not --method cmae; use --mask-ratio/],
      [['pretrain', '--method', 'mocov3', '--masked-views', '0.5', '--mask-ratio', '0.5'], /give one of --mask-ratio and --masked-views/],
      [['pretrain', '--method', 'mocov3', '--masked-views', '1'], /--masked-views/],
      [['pretrain', '--masking', 'blocks'], /--masking must be one of random, group, amt, got 'blocks'/],
      [['pretrain', '--method', 'simclr', '--masking', 'amt'], /--masking amt: attention-driven masking is for the masked-reconstruction methods \(mae, cmae, maskdistill\), not simclr/],
      [['pretrain', '--method', 'mocov3', '--model', 'throwRatio=0.2'], /--model: unknown key 'throwRatio'/],
      [['pretrain', '--method', 'mae', '--model', 'throwRatio=0.25'], /config.maskRatio 0.75 with throwRatio 0.25 keeps no patch group visible/],
      [['pretrain', '--model', 'tau=cold'], /--model tau: expected a number or true\/false, got 'cold'/],
      [['pretrain', '--model', 'tau'], /--model takes key=value pairs/],
      [['pretrain', '--device', 'cpu:1'], /--device must be cpu, cuda or cuda:N, got 'cpu:1'/],
      // Without a usable CUDA device (CI: no GPU; the addon may still carry the CUDA backend).
      ...(info().cuda.devices.length === 0
        ? ([[['pretrain', '--device', 'cuda'], /--device cuda: no CUDA device is usable \(.+\)/]] as [string[], RegExp][])
        : []),
      [['eval', '--checkpoint', path.join(root, 'missing.safetensors')], /checkpoint not found/],
      [['eval'], /--checkpoint FILE is required/],
      [['frobnicate'], /unknown command/],
    ];
    for (const [args, message] of cases) {
      const r = run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    const bad = path.join(root, 'bad.safetensors');
    writeFileSync(bad, 'not a safetensors file at all');
    const r = run('eval', '--checkpoint', bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.safetensors/);
  });
});
