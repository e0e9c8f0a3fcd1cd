#!/usr/bin/env node
// `npm run bench [-- --json] [-- --torch] [--bf16] [--quick] [--threads 1,2] [--batch 64] [--only gemm,kernels,e2e]`
//
// Speed of cmae on this machine, and (with --torch) of the same jobs in Debian's PyTorch
// (/usr/bin/python3 + python3-torch, bench/torch_bench.py) in the same invocation, with the ratio
// cmae/PyTorch per row (> 1 = cmae faster). Every figure is the median of repeated runs after a
// warm-up, with its spread (p10–p90 around the median). Nothing here is asserted.
//
// Sections: machine (ISA path, threads, FP32 FMA peak measured by a short FMA loop, bench/fma_peak.c,
// compiled on demand with the system C compiler); GEMM for every product shape of a `tiny` step
// (forward, and both backward products); the other kernels; end to end at batch 64 (CMAE step, MAE
// step, encoder inference) in images/s with FLOPs per image and % of peak. Two-thread figures are
// bracketed by FMA probes: when 2 threads deliver about one core's FMA rate the run is flagged.
//
// --bf16 (CPUs with AVX512_BF16): adds end-to-end rows with setMatmulPrecision('bf16') (no PyTorch
// counterpart) and a section on its accuracy against the fp32 path.
//
// Imports the compiled package (../dist/cjs/index.js): build it with `npx tsc -p tsconfig.json`.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { geometry, stepLayers, flopsPerImage } from './flops.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const cmae = require('../dist/cjs/index.js');
const { CMAE, AdamW, Tensor, kernels, presets, setNumThreads, setMatmulPrecision, info } = cmae;
// The fused residual + LayerNorm (ops/norm.h) has no public wrapper: call the addon directly.
const fused = require('../dist/cjs/native.js').getBinding().kernels;
const { nativeOf } = require('../dist/cjs/tensor.js');

// ---- options --------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const opts = {
  json: flag('--json'),
  torch: flag('--torch'),
  bf16: flag('--bf16'),
  quick: flag('--quick'),
  threads: value('--threads', '1,2').split(',').map(Number),
  batch: Number(value('--batch', '64')),
  only: new Set(value('--only', 'gemm,kernels,e2e').split(',')),
  python: value('--python', '/usr/bin/python3'),
  // Directory holding an optimised libblas.so.3 for PyTorch (Debian's torch links the generic
  // libblas.so.3; with only the reference BLAS installed its GEMMs run at ~7 GFLOP/s).
  torchBlas: value('--torch-blas', process.env.CMAE_BENCH_TORCH_BLAS ?? ''),
};
const REPS = opts.quick ? 5 : 9;
const E2E_REPS = opts.quick ? 4 : 7;
const MIN_REP_MS = 5;
const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

// ---- timing ----------------------------------------------------------------------------------------

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
  return { median: q(0.5), p10: q(0.1), p90: q(0.9), min: s[0], max: s[s.length - 1], n: s.length };
}

const nowS = () => Number(process.hrtime.bigint()) / 1e9;

/** Seconds per call of a synchronous fn: warm-up, then REPS reps of `inner` calls (each rep >= MIN_REP_MS). */
function timeSync(fn, { reps = REPS, warmupS = 0.1 } = {}) {
  let t0 = nowS();
  let calls = 0;
  while (calls < 2 || nowS() - t0 < warmupS) {
    fn();
    calls++;
  }
  const per = (nowS() - t0) / calls;
  const inner = Math.max(1, Math.floor(MIN_REP_MS / 1e3 / Math.max(per, 1e-9)));
  const out = [];
  for (let r = 0; r < reps; r++) {
    t0 = nowS();
    for (let i = 0; i < inner; i++) fn();
    out.push((nowS() - t0) / inner);
  }
  return stats(out);
}

async function timeAsync(fn, { reps = E2E_REPS, warmup = 2 } = {}) {
  for (let i = 0; i < warmup; i++) await fn();
  const out = [];
  for (let r = 0; r < reps; r++) {
    const t0 = nowS();
    await fn();
    out.push(nowS() - t0);
  }
  return stats(out);
}

const spreadPct = (s) => (s ? (100 * (s.p90 - s.p10)) / 2 / s.median : NaN);

// ---- FMA peak probe -------------------------------------------------------------------------------

let probeBinary = null;
function buildProbe() {
  if (probeBinary !== null) return probeBinary || null;
  const src = path.join(here, 'fma_peak.c');
  const hash = createHash('sha1').update(readFileSync(src)).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), 'cmae-bench');
  const bin = path.join(dir, `fma_peak-${hash}`);
  try {
    if (!existsSync(bin)) {
      mkdirSync(dir, { recursive: true });
      execFileSync(process.env.CC || 'cc', ['-O2', '-pthread', '-o', bin, src], { stdio: 'pipe' });
    }
    probeBinary = bin;
  } catch (e) {
    log(`note: could not build the FMA probe (${String(e.message).split('\n')[0]}); % of peak not shown`);
    probeBinary = '';
  }
  return probeBinary || null;
}

/** {isa, gflops1, gflopsT, threads} or null. */
function fmaProbe(threads, isa) {
  const bin = buildProbe();
  if (!bin) return null;
  try {
    return JSON.parse(execFileSync(bin, [String(threads), '0.1', isa], { encoding: 'utf8' }));
  } catch {
    return null;
  }
}

// ---- workloads ------------------------------------------------------------------------------------

function cfgOf(overrides = {}) {
  return { ...presets.tiny, ...overrides };
}
const CMAE_CFG = cfgOf();
const MAE_CFG = cfgOf({ mode: 'mae', maskRatio: 0.75, maskGroup: 1 });

/** Unique GEMM shapes of a tiny CMAE step: forward (NT + bias), dinp (NN), dweight (TN, +=). */
function gemmShapes(c, B) {
  const { layers } = stepLayers(c, B, 'train');
  const byKey = new Map();
  const add = (op, M, N, K, name, count) => {
    const key = `${op}:${M}x${N}x${K}`;
    const e = byKey.get(key);
    if (e) {
      e.count += count;
      if (!e.names.includes(name)) e.names.push(name);
    } else byKey.set(key, { id: `gemm.${key}`, op, M, N, K, names: [name], count });
  };
  for (const l of layers) {
    add('fwd', l.R, l.out, l.in, l.name, l.count);
    if (l.fwdOnly) continue;
    if (l.dinp) add('bwd_data', l.R, l.in, l.out, l.name, l.count);
    if (l.wgradT) add('bwd_weight', l.in, l.out, l.wgradRows, `${l.name}ᵀ`, l.count);
    else add('bwd_weight', l.out, l.in, l.R, l.name, l.count);
  }
  return [...byKey.values()].sort((a, b) => b.M * b.N * b.K * b.count - a.M * a.N * a.K * a.count);
}

function randTensor(shape, scale = 1, seed = 1) {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return Tensor.from(a, shape);
}

function gemmRunner(g) {
  const { M, N, K, op } = g;
  if (op === 'fwd') {
    const x = randTensor([M, K]);
    const w = randTensor([N, K], 0.05, 2);
    const b = randTensor([N], 1, 3);
    const out = Tensor.empty([M, N]);
    return () => kernels.linearForward(x, w, b, out);
  }
  if (op === 'bwd_data') {
    const d = randTensor([M, K]);
    const w = randTensor([K, N], 0.05, 2);
    const out = Tensor.empty([M, N]);
    return () => kernels.matmul(d, w, { out });
  }
  const d = randTensor([K, M], 0.05);
  const x = randTensor([K, N], 1, 2);
  const out = Tensor.zeros([M, N]);
  return () => kernels.matmul(d, x, { transA: true, beta: 1, out });
}

/** The other kernels at the sizes a tiny CMAE step at batch B runs them (the largest instance). */
function kernelSpecs(c, B) {
  const { grid, L, K, P, keep } = geometry(c);
  const N = 1 + L;
  const R = B * N;
  const Hd = c.dim * c.mlpRatio;
  const f4 = 4;
  const list = [
    { kind: 'layernorm_fwd', label: `LayerNorm fwd [${R},${c.dim}]`, params: { R, C: c.dim }, bytes: 2 * R * c.dim * f4 },
    { kind: 'layernorm_bwd', label: `LayerNorm bwd [${R},${c.dim}]`, params: { R, C: c.dim }, bytes: 4 * R * c.dim * f4 },
    { kind: 'attention_fwd', label: `attention fwd B${B} N${N} D${c.dim} H${c.heads}`, params: { B, N, D: c.dim, H: c.heads }, flops: 4 * B * N * N * c.dim },
    { kind: 'attention_bwd', label: `attention bwd B${B} N${N} D${c.dim} H${c.heads}`, params: { B, N, D: c.dim, H: c.heads }, flops: 8 * B * N * N * c.dim },
    { kind: 'residual_ln', label: `residual add + LayerNorm (fused) [${R},${c.dim}]`, params: { R, C: c.dim }, bytes: 4 * R * c.dim * f4 },
    { kind: 'gelu_fwd', label: `GELU fwd [${R},${Hd}]`, params: { n: R * Hd }, bytes: 2 * R * Hd * f4 },
    { kind: 'gelu_bwd', label: `GELU bwd [${R},${Hd}]`, params: { n: R * Hd }, bytes: 3 * R * Hd * f4 },
    { kind: 'mask_gather', label: `masking+gather+pos B${B} L${L} K${K} D${c.dim}`, params: { B, grid, group: c.maskGroup, D: c.dim, maskRatio: c.maskRatio, keep }, bytes: 2 * B * K * c.dim * f4 },
    { kind: 'unshuffle_fwd', label: `unshuffle fwd B${B} L${L} K${K} D${c.decoderDim}`, params: { B, L, K, D: c.decoderDim }, bytes: (B * (1 + K) + 2 * B * N) * c.decoderDim * f4 },
    { kind: 'unshuffle_bwd', label: `unshuffle bwd B${B} L${L} K${K} D${c.decoderDim}`, params: { B, L, K, D: c.decoderDim }, bytes: (B * (1 + K) + B * N) * c.decoderDim * f4 },
    { kind: 'normpix', label: `norm-pix loss fwd+bwd [${B},${L},${P}]`, params: { B, L, P, patch: c.patchSize, C: c.channels }, bytes: 3 * B * L * P * f4 },
    { kind: 'infonce', label: `InfoNCE fwd+bwd B${B} E${c.projectorDim}`, params: { B, E: c.projectorDim, tau: c.tau }, flops: 2 * 2 * B * B * c.projectorDim },
    { kind: 'batchnorm_fwd', label: `BatchNorm fwd [${B},${c.projectorHidden}]`, params: { B, C: c.projectorHidden }, bytes: 2 * B * c.projectorHidden * f4 },
    { kind: 'batchnorm_bwd', label: `BatchNorm bwd [${B},${c.projectorHidden}]`, params: { B, C: c.projectorHidden }, bytes: 3 * B * c.projectorHidden * f4 },
  ];
  return list.map((k) => ({ ...k, id: `kernel.${k.kind}` }));
}

function kernelRunner(k) {
  const p = k.params;
  switch (k.kind) {
    case 'layernorm_fwd':
    case 'layernorm_bwd': {
      const x = randTensor([p.R, p.C]);
      const w = Tensor.full([p.C], 1);
      const b = Tensor.zeros([p.C]);
      const fwd = kernels.layernormForward(x, w, b, { eps: 1e-6 });
      if (k.kind === 'layernorm_fwd') return () => kernels.layernormForward(x, w, b, { eps: 1e-6, out: fwd.out, mean: fwd.mean, rstd: fwd.rstd });
      const dout = randTensor([p.R, p.C], 1, 5);
      const dinp = Tensor.empty([p.R, p.C]);
      const dw = Tensor.zeros([p.C]);
      const db = Tensor.zeros([p.C]);
      return () => kernels.layernormBackward(dout, x, w, fwd.mean, fwd.rstd, { dinp, dweight: dw, dbias: db });
    }
    case 'attention_fwd':
    case 'attention_bwd': {
      const qkv = randTensor([p.B, p.N, 3 * p.D]);
      const fwd = kernels.attentionForward(qkv, p.H);
      if (k.kind === 'attention_fwd') return () => kernels.attentionForward(qkv, p.H, { out: fwd.out, att: fwd.att });
      const dout = randTensor([p.B, p.N, p.D], 1, 7);
      const dqkv = Tensor.empty([p.B, p.N, 3 * p.D]);
      return () => kernels.attentionBackward(dout, qkv, fwd.att, p.H, dqkv);
    }
    case 'gelu_fwd':
    case 'gelu_bwd': {
      const x = randTensor([p.n], 3);
      const out = Tensor.empty([p.n]);
      const dout = randTensor([p.n], 1, 9);
      if (k.kind === 'gelu_fwd') return () => kernels.geluForward(x, out);
      return () => kernels.geluBackward(dout, x, out);
    }
    case 'residual_ln': {
      const a = randTensor([p.R, p.C]);
      const b = randTensor([p.R, p.C], 1, 2);
      const sum = Tensor.empty([p.R, p.C]);
      const out = Tensor.empty([p.R, p.C]);
      const mean = Tensor.empty([p.R]);
      const rstd = Tensor.empty([p.R]);
      const w = Tensor.full([p.C], 1);
      const bias = Tensor.zeros([p.C]);
      const args = [sum, out, mean, rstd, a, b, w, bias].map(nativeOf);
      return () => fused.residualLayernormForward(...args, 1e-6);
    }
    case 'mask_gather': {
      const L = p.grid * p.grid;
      const G = (p.grid / p.group) ** 2;
      const tokens = randTensor([p.B, L, p.D]);
      const pos = randTensor([L, p.D], 1, 3);
      const noise = Tensor.empty([p.B, G]);
      const K = p.keep * p.group * p.group;
      const m = { idsKeep: Tensor.empty([p.B, K], 'int32'), idsRestore: Tensor.empty([p.B, L], 'int32'), mask: Tensor.empty([p.B, L]) };
      const out = Tensor.empty([p.B, 1 + K, p.D]);
      let step = 0;
      return () => {
        kernels.maskingNoise(p.B, G, 0, step++, noise);
        kernels.randomMasking(noise, { gridH: p.grid, gridW: p.grid, group: p.group, keepGroups: p.keep, ...m });
        kernels.gatherVisibleForward(tokens, m.idsKeep, { pos, prefix: 1, out });
      };
    }
    case 'unshuffle_fwd':
    case 'unshuffle_bwd': {
      const G = p.L;
      const noise = randTensor([p.B, G], 1, 11);
      const { idsRestore } = kernels.randomMasking(noise, { gridH: Math.sqrt(p.L), gridW: Math.sqrt(p.L), group: 1, keepGroups: p.K });
      const inp = randTensor([p.B, 1 + p.K, p.D]);
      const tok = randTensor([p.D], 1, 2);
      const pos = randTensor([p.L, p.D], 1, 3);
      const out = Tensor.empty([p.B, 1 + p.L, p.D]);
      if (k.kind === 'unshuffle_fwd') return () => kernels.unshuffleForward(inp, tok, idsRestore, { pos, prefix: 1, out });
      const dout = randTensor([p.B, 1 + p.L, p.D], 1, 4);
      const dinp = Tensor.empty([p.B, 1 + p.K, p.D]);
      const dtok = Tensor.zeros([p.D]);
      return () => kernels.unshuffleBackward(dout, idsRestore, p.K, { prefix: 1, dinp, dmaskToken: dtok });
    }
    case 'normpix': {
      const pred = randTensor([p.B, p.L, p.P]);
      const target = randTensor([p.B, p.L, p.P], 1, 2);
      const mask = Tensor.from(Float32Array.from({ length: p.B * p.L }, (_, i) => ((i * 7) % 20 < 13 ? 1 : 0)), [p.B, p.L]);
      const dpred = Tensor.empty([p.B, p.L, p.P]);
      return () => kernels.normpixMse(pred, target, mask, { normPix: true, withGrad: true, dpred });
    }
    case 'infonce': {
      const q = randTensor([p.B, p.E]);
      const kk = randTensor([p.B, p.E], 1, 2);
      const dq = Tensor.empty([p.B, p.E]);
      return () => kernels.infonce(q, kk, { tau: p.tau, scale: 2 * p.tau, withGrad: true, dq });
    }
    case 'batchnorm_fwd':
    case 'batchnorm_bwd': {
      const x = randTensor([p.B, p.C]);
      const w = Tensor.full([p.C], 1);
      const b = Tensor.zeros([p.C]);
      const rm = Tensor.zeros([p.C]);
      const rv = Tensor.full([p.C], 1);
      const fwd = kernels.batchnormForward(x, { weight: w, bias: b, runningMean: rm, runningVar: rv, eps: 1e-6, momentum: 0.1 });
      if (k.kind === 'batchnorm_fwd') {
        return () => kernels.batchnormForward(x, { weight: w, bias: b, runningMean: rm, runningVar: rv, eps: 1e-6, momentum: 0.1, out: fwd.out, mean: fwd.mean, rstd: fwd.rstd });
      }
      const dout = randTensor([p.B, p.C], 1, 3);
      const dinp = Tensor.empty([p.B, p.C]);
      const dw = Tensor.zeros([p.C]);
      const db = Tensor.zeros([p.C]);
      return () => kernels.batchnormBackward(dout, x, fwd.mean, fwd.rstd, { weight: w, dinp, dweight: dw, dbias: db });
    }
    case 'adamw': {
      const params = randTensor([p.n], 0.02);
      const m = Tensor.zeros([p.n]);
      const v = Tensor.zeros([p.n]);
      const g = randTensor([p.n], 1e-3, 2);
      let step = 0;
      return () => kernels.adamwStep(params, m, v, g, { lr: 1e-4, step: ++step, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.05 });
    }
    case 'ema': {
      const t = randTensor([p.n]);
      const o = randTensor([p.n], 1, 2);
      return () => kernels.emaUpdate(t, o, 0.996);
    }
    default:
      throw new Error(k.kind);
  }
}

// ---- end to end ------------------------------------------------------------------------------------

async function e2eRunner(e) {
  const model = await CMAE.create({ ...e.config, seed: 1 });
  const c = e.config;
  const B = e.batch;
  const images = randTensor([B, c.channels, c.imageSize, c.imageSize]);
  const target = randTensor([B, c.channels, c.imageSize, c.imageSize], 1, 2);
  if (e.kind === 'encode') return { model, run: () => model.encode(images, { pool: 'cls', batchSize: B }) };
  const opt = new AdamW(model, { lr: 1.5e-4, weightDecay: 0.05 });
  const run = async () => {
    await model.lossAndGrad({ images, targetImages: c.mode === 'cmae' ? target : undefined });
    await opt.step();
    if (c.mode === 'cmae') await model.updateMomentum(0.996);
  };
  return { model, run };
}

// ---- PyTorch side ----------------------------------------------------------------------------------

function torchAvailable() {
  if (!existsSync(opts.python)) return `${opts.python} not found`;
  const r = spawnSync(opts.python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.status !== 0) return `PyTorch not importable by ${opts.python} (${(r.stderr || '').trim().split('\n').pop()})`;
  return null;
}

/** A directory with an OpenBLAS libblas.so.3 to put first on PyTorch's library path, or ''. */
function torchBlasDir() {
  if (opts.torchBlas) return opts.torchBlas;
  const candidates = [
    '/usr/lib/x86_64-linux-gnu/openblas-pthread',
    '/usr/lib/x86_64-linux-gnu/openblas-openmp',
    path.join(os.homedir(), '.cache', 'cmae-bench', 'openblas-pthread'),
  ];
  return candidates.find((d) => existsSync(path.join(d, 'libblas.so.3'))) ?? '';
}

function runTorch(threads, spec) {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'PASSIVE' };
  const blas = torchBlasDir();
  if (blas) env.LD_LIBRARY_PATH = [blas, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  const r = spawnSync(opts.python, [path.join(here, 'torch_bench.py')], { input: JSON.stringify(spec), env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    log(`note: torch_bench.py failed (${threads} threads): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
    return null;
  }
  return JSON.parse(r.stdout);
}

// ---- main ------------------------------------------------------------------------------------------

async function main() {
  const rt = info();
  const isa = rt.isa;
  const B = opts.batch;
  const doTorch = opts.torch;
  const torchMissing = doTorch ? torchAvailable() : null;
  if (doTorch && torchMissing) log(`note: --torch skipped: ${torchMissing}`);

  const gemms = opts.only.has('gemm') ? gemmShapes(CMAE_CFG, B) : [];
  const kspecs = opts.only.has('kernels') ? kernelSpecs(CMAE_CFG, B) : [];
  if (opts.only.has('kernels')) {
    // Optimizer and EMA over the real arenas of a tiny CMAE model.
    const probe = await CMAE.create({ ...CMAE_CFG, seed: 0 });
    const trainable = probe.trainableCount;
    const ema = probe.parameters().filter((p) => p.role === 'momentum').reduce((a, p) => a + p.numel, 0);
    probe.dispose();
    kspecs.push({ id: 'kernel.adamw', kind: 'adamw', label: `AdamW step n=${trainable}`, params: { n: trainable }, bytes: 7 * trainable * 4 });
    kspecs.push({ id: 'kernel.ema', kind: 'ema', label: `EMA update n=${ema}`, params: { n: ema }, bytes: 3 * ema * 4 });
  }
  const e2es = opts.only.has('e2e')
    ? [
        { id: 'e2e.cmae_step', kind: 'train', label: `CMAE train step (tiny, B${B})`, config: CMAE_CFG, batch: B },
        { id: 'e2e.mae_step', kind: 'train', label: `MAE train step (tiny, mask 0.75, B${B})`, config: MAE_CFG, batch: B },
        { id: 'e2e.encode', kind: 'encode', label: `encoder inference (tiny, 64 patches, B${B})`, config: CMAE_CFG, batch: B },
      ]
        .concat(
          opts.bf16 && rt.bf16
            ? [
                { id: 'e2e.cmae_step_bf16', kind: 'train', label: `CMAE train step, bf16 matmuls (opt-in)`, config: CMAE_CFG, batch: B, bf16: true },
                { id: 'e2e.encode_bf16', kind: 'encode', label: `encoder inference, bf16 matmuls (opt-in)`, config: CMAE_CFG, batch: B, bf16: true },
              ]
            : [],
        )
        .map((e) => ({ ...e, flopsPerImage: flopsPerImage(e.config, B, e.kind) }))
    : [];
  if (opts.bf16 && !rt.bf16) log('note: --bf16 skipped: this CPU has no AVX512_BF16');

  const report = {
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      logicalCpus: os.cpus().length,
      isa,
      bestIsa: rt.bestIsa,
      openmp: rt.openmp,
      defaultThreads: rt.defaultThreads,
      node: rt.node,
      cmae: rt.version,
      compiler: rt.compiler,
    },
    settings: { batch: B, reps: REPS, e2eReps: E2E_REPS, threads: opts.threads, quick: opts.quick },
    perThreads: {},
    torch: doTorch ? (torchMissing ? { skipped: torchMissing } : {}) : { skipped: 'not requested (--torch)' },
    rows: { gemm: gemms, kernels: kspecs, e2e: e2es },
  };

  // Warm the clock and the thread team up on a large GEMM at the section's thread count
  // (machine-notes: the first large 2-thread GEMM reads ~20% low without it).
  const warmUp = (t) => {
    setNumThreads(t);
    const a = randTensor([1024, 1024]);
    const c = Tensor.empty([1024, 1024]);
    const t0 = nowS();
    while (nowS() - t0 < 0.5) kernels.matmul(a, a, { out: c });
  };

  // Most threads first: after a minute of 1-thread work the idle second vCPU of this kind of VM is
  // slow to wake, and the 2-thread small-GEMM rows then read 0.8-0.9x PyTorch instead of 1.5-1.9x
  // (seen twice, once despite the warm-up below); a 1-thread section is not hurt by going last.
  for (const t of [...opts.threads].sort((a, b) => b - a)) {
    log(`-- ${t} thread(s)`);
    const res = { probeBefore: fmaProbe(t, isa), cmae: {}, torch: null, probeAfter: null };
    warmUp(t);
    for (const g of gemms) {
      const run = gemmRunner(g);
      res.cmae[g.id] = timeSync(run);
    }
    for (const k of kspecs) res.cmae[k.id] = timeSync(kernelRunner(k));
    for (const e of e2es) {
      const { model, run } = await e2eRunner(e);
      log(`   ${e.label}`);
      if (e.bf16) setMatmulPrecision('bf16');
      try {
        res.cmae[e.id] = await timeAsync(run, { reps: E2E_REPS, warmup: 2 });
      } finally {
        setMatmulPrecision('fp32');
      }
      model.dispose();
    }
    if (doTorch && !torchMissing) {
      log('   PyTorch');
      const spec = {
        reps: REPS,
        warmup: 0.3,
        minRep: MIN_REP_MS / 1e3,
        gemms: gemms.map(({ id, op, M, N, K }) => ({ id, op, M, N, K })),
        kernels: kspecs.map(({ id, kind, params }) => ({ id, kind, params })),
        e2e: e2es.filter((e) => !e.bf16).map(({ id, kind, config, batch }) => ({ id, kind, config, batch, reps: E2E_REPS, warmup: 2.0 })),
      };
      const out = runTorch(t, spec);
      if (out) {
        res.torch = out.results;
        report.torch.version = out.torch;
        report.torch.blas = out.blas;
        if (!/openblas|mkl|blis/i.test(out.blas ?? '')) {
          log(`WARNING: PyTorch runs its GEMMs on ${out.blas ?? 'an unknown BLAS'} (reference BLAS?): install libopenblas0-pthread or pass --torch-blas DIR`);
        }
      }
    }
    res.probeAfter = fmaProbe(t, isa);
    const probes = [res.probeBefore, res.probeAfter].filter(Boolean);
    res.peakGflops = probes.length ? Math.max(...probes.map((p) => (t === 1 ? p.gflops1 : p.gflopsT))) : null;
    res.peak1Gflops = probes.length ? Math.max(...probes.map((p) => p.gflops1)) : null;
    // 2 threads ≈ 1 thread on the FMA loop: the second core was not there (machine-notes).
    res.suspect = t > 1 && probes.some((p) => p.gflopsT < 1.5 * p.gflops1);
    report.perThreads[t] = res;
  }
  setNumThreads(0);
  if (opts.bf16 && rt.bf16) {
    log('-- bf16 accuracy');
    report.bf16Accuracy = await bf16Accuracy();
  }

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    printTables(report);
  }
}

// ---- bf16 accuracy -------------------------------------------------------------------------------

// How far the opt-in bf16 path moves results from fp32, on the model's own shapes.
async function bf16Accuracy() {
  const withPrecision = async (p, fn) => {
    setMatmulPrecision(p);
    try {
      return await fn();
    } finally {
      setMatmulPrecision('fp32');
    }
  };
  // 1. One fc1-shaped product (4160 x 768 x 192; activations ~U(-1,1), weights at Linear init
  // scale) against float64, on 64 sampled rows: relative error ||C - C64|| / ||C64||.
  const [M, N, K] = [4160, 768, 192];
  const x = randTensor([M, K], 1, 11);
  const w = randTensor([N, K], 1 / Math.sqrt(K), 12);
  const xs = x.toArray();
  const ws = w.toArray();
  const gemmError = async (p) => {
    const c = (await withPrecision(p, () => kernels.linearForward(x, w))).toArray();
    let num = 0;
    let den = 0;
    for (let r = 0; r < M; r += M / 64) {
      for (let j = 0; j < N; j++) {
        let ref = 0;
        for (let k = 0; k < K; k++) ref += xs[r * K + k] * ws[j * K + k];
        num += (c[r * N + j] - ref) ** 2;
        den += ref * ref;
      }
    }
    return Math.sqrt(num / den);
  };
  const gemm = { fp32: await gemmError('fp32'), bf16: await gemmError('bf16') };
  // 2. A tiny CMAE model: the gradient of one batch (same parameters, data, mask) and the losses
  // over 30 AdamW steps from the same start, bf16 vs fp32.
  const B = 32;
  const images = randTensor([B, 3, 32, 32], 1, 21);
  const target = randTensor([B, 3, 32, 32], 1, 22);
  const train = async (p) =>
    withPrecision(p, async () => {
      const model = await CMAE.create({ ...CMAE_CFG, seed: 7 });
      const opt = new AdamW(model, { lr: 1e-3, weightDecay: 0.05 });
      const losses = [];
      let grad = null;
      for (let step = 0; step < 30; step++) {
        const parts = await model.lossAndGrad({ images, targetImages: target });
        losses.push(parts.loss);
        if (step === 0) grad = Float32Array.from([...model.gradients().values()].flatMap((g) => Array.from(g)));
        await opt.step();
        await model.updateMomentum(0.996);
      }
      opt.dispose();
      model.dispose();
      return { losses, grad };
    });
  const a = await train('fp32');
  const b = await train('bf16');
  let dot = 0;
  let na = 0;
  let nb = 0;
  let diff = 0;
  for (let i = 0; i < a.grad.length; i++) {
    dot += a.grad[i] * b.grad[i];
    na += a.grad[i] ** 2;
    nb += b.grad[i] ** 2;
    diff += (a.grad[i] - b.grad[i]) ** 2;
  }
  return {
    gemmRelError: gemm,
    gradientCosine: dot / Math.sqrt(na * nb),
    gradientRelDiff: Math.sqrt(diff / na),
    firstLoss: { fp32: a.losses[0], bf16: b.losses[0] },
    lossAfter30Steps: { fp32: a.losses[29], bf16: b.losses[29] },
  };
}

// ---- output ------------------------------------------------------------------------------------------

function fmt(x, d = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return x.toFixed(d);
}

function table(title, header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

function printTables(report) {
  const ts = Object.keys(report.perThreads).map(Number).sort((a, b) => a - b);
  const m = report.machine;
  console.log(`cmae ${m.cmae} bench — ${m.cpu}, ${m.logicalCpus} logical CPUs, ISA path ${m.isa} (best ${m.bestIsa}), OpenMP ${m.openmp}, node ${m.node}`);
  for (const t of ts) {
    const r = report.perThreads[t];
    const pr = (p) => (p ? `${fmt(p.gflops1, 0)} (1T) / ${fmt(p.gflopsT, 0)} (${p.threads}T)` : 'n/a');
    console.log(`FP32 FMA peak, ${t} thread(s): ${fmt(r.peakGflops, 0)} GFLOP/s   [probe before: ${pr(r.probeBefore)}; after: ${pr(r.probeAfter)}]${r.suspect ? '   ** WARNING: 2 threads ≈ 1 thread on the FMA probe: second core missing, 2-thread figures unreliable **' : ''}`);
  }
  const torchOn = !report.torch.skipped;
  console.log(torchOn ? `PyTorch ${report.torch.version} (eager, float32; BLAS: ${report.torch.blas ?? '?'}), OMP/OPENBLAS_NUM_THREADS = threads, OMP_WAIT_POLICY=PASSIVE; ratio = cmae speed / PyTorch speed (> 1: cmae faster)` : `PyTorch: ${report.torch.skipped}`);
  const spread = (s) => `±${fmt(spreadPct(s), 0)}%`;

  if (report.rows.gemm.length) {
    const header = ['GEMM (op: M×N×K) [layers]', 'per step'];
    for (const t of ts) {
      header.push(`${t}T GF/s`, `${t}T %pk`);
      if (torchOn) header.push(`${t}T torch`, `${t}T ratio`);
    }
    const rows = report.rows.gemm.map((g) => {
      const flops = 2 * g.M * g.N * g.K;
      const row = [`${g.op} ${g.M}×${g.N}×${g.K} [${g.names.join(',')}]`.slice(0, 70), `×${g.count}`];
      for (const t of ts) {
        const r = report.perThreads[t];
        const s = r.cmae[g.id];
        const gf = flops / s.median / 1e9;
        row.push(`${fmt(gf, 0)} ${spread(s)}`, r.peakGflops ? `${fmt((100 * gf) / r.peakGflops, 0)}%` : '—');
        if (torchOn) {
          const ts_ = r.torch?.[g.id];
          const tg = ts_ ? flops / ts_.median / 1e9 : null;
          row.push(tg ? fmt(tg, 0) : '—', tg ? `${fmt(gf / tg, 2)}×` : '—');
        }
      }
      return row;
    });
    table(`GEMM, GFLOP/s (batch ${report.settings.batch}; fwd = linear NT + bias, bwd_data = NN, bwd_weight = TN accumulate)`, header, rows);
  }
  if (report.rows.kernels.length) {
    const header = ['kernel'];
    for (const t of ts) {
      header.push(`${t}T ms`, `${t}T rate`);
      if (torchOn) header.push(`${t}T torch ms`, `${t}T ratio`);
    }
    const rows = report.rows.kernels.map((k) => {
      const row = [k.label];
      for (const t of ts) {
        const r = report.perThreads[t];
        const s = r.cmae[k.id];
        const rate = k.flops ? `${fmt(k.flops / s.median / 1e9, 0)} GF/s` : `${fmt(k.bytes / s.median / 1e9, 1)} GB/s`;
        row.push(`${fmt(s.median * 1e3, 3)} ${spread(s)}`, rate);
        if (torchOn) {
          const x = r.torch?.[k.id];
          row.push(x ? fmt(x.median * 1e3, 3) : '—', x ? `${fmt(x.median / s.median, 2)}×` : '—');
        }
      }
      return row;
    });
    table('Other kernels (time per call; rate = GB/s of the minimum traffic, or GFLOP/s)', header, rows);
  }
  if (report.rows.e2e.length) {
    const header = ['end to end', 'GFLOP/img'];
    for (const t of ts) {
      header.push(`${t}T img/s`, `${t}T %pk`);
      if (torchOn) header.push(`${t}T torch`, `${t}T ratio`);
    }
    const rows = report.rows.e2e.map((e) => {
      const row = [e.label, fmt(e.flopsPerImage / 1e9, 2)];
      for (const t of ts) {
        const r = report.perThreads[t];
        const s = r.cmae[e.id];
        const ips = e.batch / s.median;
        // % of the FP32 FMA peak: not meaningful for the bf16 rows (vdpbf16ps has its own peak).
        row.push(`${fmt(ips, 1)} ${spread(s)}`, r.peakGflops && !e.bf16 ? `${fmt((100 * ips * e.flopsPerImage) / 1e9 / r.peakGflops, 0)}%` : '—');
        if (torchOn) {
          const x = r.torch?.[e.id];
          const tips = x ? e.batch / x.median : null;
          row.push(tips ? fmt(tips, 1) : '—', tips ? `${fmt(ips / tips, 2)}×` : '—');
        }
      }
      return row;
    });
    table('End to end, images/s (train step = lossAndGrad + AdamW + EMA; torch: the reference model of test/reference/make_fixtures.py in float32)', header, rows);
  }
  const acc = report.bf16Accuracy;
  if (acc) {
    const e = (x) => x.toExponential(2);
    console.log('\nbf16 matmuls (opt-in) against fp32');
    console.log(`  GEMM 4160x768x192, relative error vs float64: fp32 ${e(acc.gemmRelError.fp32)}, bf16 ${e(acc.gemmRelError.bf16)}`);
    console.log(
      `  tiny CMAE, one batch of 32: gradient cosine ${acc.gradientCosine.toFixed(6)}, relative difference ${e(acc.gradientRelDiff)}; ` +
        `loss ${acc.firstLoss.fp32.toFixed(5)} vs ${acc.firstLoss.bf16.toFixed(5)}`,
    );
    console.log(`  after 30 AdamW steps on that batch: loss ${acc.lossAfter30Steps.fp32.toFixed(5)} (fp32) vs ${acc.lossAfter30Steps.bf16.toFixed(5)} (bf16)`);
  }
  console.log('\nMedians after warm-up; ± = half the p10–p90 spread. Not asserted anywhere.');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
