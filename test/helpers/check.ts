/**
 * Test helpers: seeded random inputs, element-wise comparison in llm.c's validate_result style
 * (|a − r| ≤ atol + rtol·|r| for every element, first mismatches printed), an NMSE summary
 * (ggml), and central finite differences for float64 references.
 */
import { beforeEach, expect } from 'vitest';
import { Tensor, getNumThreads, info, setNumThreads, supportedIsas, setIsa, type Isa } from '../../src/index';

export { makeRng } from '../../src/eval/rng';
import { makeRng } from '../../src/eval/rng';

/** n standard-normal draws (Box–Muller) scaled by `scale`, as float32. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const rng = makeRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = 1 - rng();
    const u2 = rng();
    out[i] = scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

/** n uniform draws in [lo, hi) as float32. */
export function randu(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  const rng = makeRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng();
  return out;
}

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  label?: string;
}

/** Fails unless every element is finite and within atol + rtol·|expected|. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, options: CloseOptions = {}): void {
  const { atol = 1e-5, rtol = 1e-5, label = 'tensor' } = options;
  expect(actual.length, `${label}: length`).toBe(expected.length);
  const mismatches: string[] = [];
  let count = 0;
  let sqErr = 0;
  let sqRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const r = expected[i];
    sqErr += (a - r) * (a - r);
    sqRef += r * r;
    if (!Number.isFinite(a) || Math.abs(a - r) > atol + rtol * Math.abs(r)) {
      count++;
      if (mismatches.length < 5) mismatches.push(`  [${i}] got ${a}, expected ${r} (diff ${Math.abs(a - r)})`);
    }
  }
  if (count > 0) {
    const nmse = sqRef > 0 ? sqErr / sqRef : sqErr;
    throw new Error(`${label}: ${count} of ${expected.length} elements differ (atol ${atol}, rtol ${rtol}, nmse ${nmse.toExponential(2)}):\n${mismatches.join('\n')}`);
  }
}

/** Central finite-difference gradient of a scalar float64 function. */
export function finiteDifference(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + eps;
    const plus = f(x);
    x[i] = saved - eps;
    const minus = f(x);
    x[i] = saved;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

/** Σ a[i]·b[i] in float64 (the scalar loss used to turn a backward into a FD check). */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function toF64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

/**
 * The x86 SIMD paths, whatever this CPU runs: tests loop over them so both are covered, and a
 * suite for a path the CPU lacks calls skipWithoutIsa, so its tests show as skipped, not passed.
 * The portable path runs every op case of the native harness (cpu-portable/..., test/native/ops).
 */
export function isas(): Isa[] {
  return ['avx2', 'avx512'];
}

const isaFeature: Record<Isa, string> = { portable: 'nothing', avx2: 'AVX2 + FMA', avx512: 'AVX-512 (F, BW, DQ, VL)' };

/** Why a feature is absent: the CPU lacks it, or CMAE_MAX_ISA hides it (native/core/cpu_features.h). */
function absent(feature: string): string {
  const cap = process.env.CMAE_MAX_ISA;
  return `${feature} is missing on this CPU${cap ? ` or hidden by CMAE_MAX_ISA=${cap}` : ''}`;
}

/** Inside a describe for one ISA: on a CPU without it, every test there is reported skipped, saying why. */
export function skipWithoutIsa(isa: Isa): void {
  if (!supportedIsas().includes(isa)) beforeEach((ctx) => ctx.skip(absent(isaFeature[isa])));
}

/** Inside a describe: on a CPU without AVX512_BF16, every test there is reported skipped, saying why. */
export function skipWithoutBf16(): void {
  if (!info().bf16) beforeEach((ctx) => ctx.skip(absent('AVX512_BF16')));
}

/** Runs fn with the given ISA forced, restoring the previous one afterwards. */
export function withIsa<T>(isa: Isa, fn: () => T): T {
  setIsa(isa);
  try {
    return fn();
  } finally {
    setIsa(supportedIsas().includes('avx512') ? 'avx512' : 'avx2');
  }
}

/** A float32 tensor filled with NaN: an output pre-filled so that unwritten elements show. */
export function nanTensor(shape: readonly number[]): Tensor {
  return Tensor.full(shape, NaN);
}

/** True when a and b hold the same bit patterns (bit-identical results). */
export function sameBits(a: Float32Array | Int32Array, b: Float32Array | Int32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Fails unless a and b hold the same float32 bit patterns, naming the first differing element. */
export function expectSameBits(a: Float32Array | Int32Array, b: Float32Array | Int32Array, label: string): void {
  expect(a.length, label).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) throw new Error(`${label}: element ${i} differs (${a[i]} vs ${b[i]})`);
  }
}

/** Runs fn with the given compute thread count, restoring the previous count afterwards. */
export function withThreads<T>(n: number, fn: () => T): T {
  const previous = getNumThreads();
  setNumThreads(n);
  try {
    return fn();
  } finally {
    setNumThreads(previous);
  }
}
