import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, Tensor, ValueError, getMatmulPrecision, getNumThreads, info, kernels, setMatmulPrecision, setNumThreads } from '../../src/index';
import { dot, expectClose, expectSameBits, finiteDifference, isas, skipWithoutBf16, skipWithoutIsa, randn, toF64, withIsa, sameBits } from '../helpers/check';
import { gelu, geluGrad } from '../reference/math';
import { linearBackwardRef, linearForwardRef, matmulRef } from '../reference/linear';

// [M, N, K]: no multiple of any tile (AVX2 6x16, AVX-512 12x32) in the small ones; K > 256 gives
// several K blocks, M > 192 several row blocks, N > 1536 two column blocks and several packed-B
// super blocks; the last one is a model shape (64·21 tokens, 192 → 576).
const shapes: [number, number, number][] = [
  [1, 1, 1],
  [5, 7, 3],
  [17, 33, 65],
  [129, 31, 200],
  [40, 70, 600],
  [7, 1537, 600],
  [1344, 192, 576],
];
const transposes: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

/** Tolerance for sums of K products of O(1) values. */
function tol(K: number, label: string) {
  return { atol: 1e-4 * Math.sqrt(Math.max(K, 1)), rtol: 1e-4, label };
}

/** Operands and the float64 product op(A)·op(B) for one case; the reference is shared by both ISAs. */
const cases = new Map<string, { a: Float32Array; b: Float32Array; product: Float64Array }>();
function gemmCase(M: number, N: number, K: number, transA: boolean, transB: boolean) {
  const key = `${M}x${N}x${K}:${transA}:${transB}`;
  let c = cases.get(key);
  if (!c) {
    const a = randn(M * K, 1000 + M + 7 * K);
    const b = randn(K * N, 2000 + N + 13 * K);
    c = { a, b, product: matmulRef(a, b, M, N, K, { transA, transB }) };
    cases.set(key, c);
  }
  return c;
}

/** Runs fn with 1, 2 and 3 compute threads and checks that every result is bit-identical. */
function expectThreadIndependent(fn: () => (Float32Array | Int32Array)[], label: string): void {
  const saved = getNumThreads();
  try {
    const results = [1, 2, 3].map((n) => {
      setNumThreads(n);
      return fn();
    });
    for (let t = 1; t < results.length; t++) {
      results[0].forEach((r, i) => expect(sameBits(results[t][i], r), `${label}: output ${i}, ${t + 1} threads vs 1`).toBe(true));
    }
  } finally {
    setNumThreads(saved);
  }
}

describe('reference linear backward', () => {
  it('agrees with central finite differences of L = Σ dout·out', () => {
    const [R, C, OC] = [4, 5, 3];
    const inp = toF64(randn(R * C, 1));
    const weight = toF64(randn(OC * C, 2));
    const bias = toF64(randn(OC, 3));
    const dout = toF64(randn(R * OC, 4));
    const ref = linearBackwardRef(dout, inp, weight, R, C, OC);
    const L = () => dot(dout, linearForwardRef(inp, weight, bias, R, C, OC));
    expectClose(finiteDifference(L, inp), ref.dinp, { atol: 1e-7, rtol: 1e-7, label: 'fd dinp' });
    expectClose(finiteDifference(L, weight), ref.dweight, { atol: 1e-7, rtol: 1e-7, label: 'fd dweight' });
    expectClose(finiteDifference(L, bias), ref.dbias, { atol: 1e-7, rtol: 1e-7, label: 'fd dbias' });
  });
});

describe.each(isas())('matmul family (%s)', (isa) => {
  skipWithoutIsa(isa);
  describe.each(transposes)('transA=%s transB=%s', (transA, transB) => {
    it.each(shapes)('sgemm M=%i N=%i K=%i matches the float64 reference', (M, N, K) => {
      withIsa(isa, () => {
        const { a, b, product } = gemmCase(M, N, K, transA, transB);
        const A = Tensor.from(a, transA ? [K, M] : [M, K]);
        const B = Tensor.from(b, transB ? [N, K] : [K, N]);
        // beta = 0: C starts as NaN, so any element not written or read-and-scaled shows up.
        const c = kernels.matmul(A, B, { transA, transB, out: Tensor.full([M, N], NaN) });
        expectClose(c.toArray(), product, tol(K, 'C = op(A)op(B)'));
        // alpha, beta not 0 or 1: C = 0.75·op(A)op(B) − 1.25·C0.
        const c0 = randn(M * N, 3000 + M);
        const out = Tensor.from(c0, [M, N]);
        kernels.matmul(A, B, { transA, transB, alpha: 0.75, beta: -1.25, out });
        expectClose(out.toArray(), Array.from(product, (p, i) => 0.75 * p - 1.25 * c0[i]), tol(K, 'C = αAB + βC'));
      });
    });
  });

  it('K = 0 gives C = beta·C without reading A or B; empty M or N is a no-op', () => {
    withIsa(isa, () => {
      const A = Tensor.empty([3, 0]);
      const B = Tensor.empty([0, 4]);
      expectClose(kernels.matmul(A, B, { out: Tensor.full([3, 4], NaN) }).toArray(), new Array(12).fill(0), { atol: 0, rtol: 0 });
      const c0 = randn(12, 5);
      const c = kernels.matmul(A, B, { alpha: 2, beta: 0.5, out: Tensor.from(c0, [3, 4]) });
      expectClose(c.toArray(), Array.from(c0, (v) => 0.5 * v), { atol: 0, rtol: 0 });
      expect(kernels.matmul(Tensor.empty([0, 5]), Tensor.empty([5, 4])).shape).toEqual([0, 4]);
      expect(kernels.matmul(Tensor.empty([3, 5]), Tensor.empty([5, 0])).shape).toEqual([3, 0]);
    });
  });

  it('sgemm is bit-identical for 1, 2 and 3 threads (row split, column split, many K blocks)', () => {
    withIsa(isa, () => {
      const run = (M: number, N: number, K: number, transA: boolean, transB: boolean) => {
        const A = Tensor.from(randn(M * K, 41), transA ? [K, M] : [M, K]);
        const B = Tensor.from(randn(K * N, 42), transB ? [N, K] : [K, N]);
        const c0 = randn(M * N, 43);
        return () => [
          kernels.matmul(A, B, { transA, transB }).toArray(),
          kernels.matmul(A, B, { transA, transB, alpha: 0.5, beta: 1.5, out: Tensor.from(c0, [M, N]) }).toArray(),
        ];
      };
      expectThreadIndependent(run(1344, 192, 576, false, true), 'NT 1344x192x576');
      expectThreadIndependent(run(1344, 576, 192, false, false), 'NN 1344x576x192');
      expectThreadIndependent(run(192, 576, 1344, true, false), 'TN 192x576x1344');
      expectThreadIndependent(run(5, 3000, 100, false, false), 'NN 5x3000x100 (column split)');
    });
  });

  it.each([
    [[1, 1], 1, true],
    [[5, 7], 3, true],
    [[3, 11, 48], 192, true],
    [[2, 50, 128], 48, false],
    [[1344, 192], 576, true],
  ] as [number[], number, boolean][])('linear forward inp=%j OC=%i bias=%s', (inpShape, OC, withBias) => {
    withIsa(isa, () => {
      const C = inpShape[inpShape.length - 1];
      const R = inpShape.slice(0, -1).reduce((p, d) => p * d, 1);
      const x = randn(R * C, 7 + C);
      const w = randn(OC * C, 8 + OC, 0.2);
      const bias = withBias ? randn(OC, 9) : null;
      const out = kernels.linearForward(
        Tensor.from(x, inpShape),
        Tensor.from(w, [OC, C]),
        bias ? Tensor.from(bias, [OC]) : null,
        Tensor.full([...inpShape.slice(0, -1), OC], NaN),
      );
      expect(out.shape).toEqual([...inpShape.slice(0, -1), OC]);
      expectClose(out.toArray(), linearForwardRef(x, w, bias, R, C, OC), tol(C, 'linear out'));
    });
  });

  it.each([
    [5, 7, 3],
    [37, 65, 33],
    [1344, 192, 128],
  ])('linear backward R=%i C=%i OC=%i matches the reference and finite differences; grads accumulate', (R, C, OC) => {
    withIsa(isa, () => {
      const x = randn(R * C, 21);
      const w = randn(OC * C, 22, 0.2);
      const g = randn(R * OC, 23);
      const ref = linearBackwardRef(g, x, w, R, C, OC);
      const inp = Tensor.from(x, [R, C]);
      const weight = Tensor.from(w, [OC, C]);
      const dout = Tensor.from(g, [R, OC]);
      // Pre-filled dweight/dbias: the kernel adds to them; dinp starts as NaN: it is overwritten.
      const dw0 = randn(OC * C, 24);
      const db0 = randn(OC, 25);
      const grads = kernels.linearBackward(dout, inp, weight, {
        dinp: Tensor.full([R, C], NaN),
        dweight: Tensor.from(dw0, [OC, C]),
        dbias: Tensor.from(db0, [OC]),
      });
      expectClose(grads.dinp!.toArray(), ref.dinp, tol(OC, 'dinp'));
      expectClose(grads.dweight.toArray(), Array.from(ref.dweight, (v, i) => v + dw0[i]), tol(R, 'dweight'));
      expectClose(grads.dbias!.toArray(), Array.from(ref.dbias, (v, i) => v + db0[i]), tol(R, 'dbias'));

      // Native gradients vs central differences of the float64 forward at sampled entries.
      if (R * C * OC <= 1e5) {
        const xd = toF64(x);
        const wd = toF64(w);
        const L = () => dot(g, linearForwardRef(xd, wd, null, R, C, OC));
        const dinp = grads.dinp!.toArray();
        const dweight = grads.dweight.toArray();
        for (let s = 0; s < 8; s++) {
          const i = (s * 7919) % (R * C);
          const j = (s * 104729) % (OC * C);
          // finiteDifference perturbs element 0 of a one-element view, i.e. xd[i] (or wd[j]).
          const fdx = finiteDifference(() => L(), xd.subarray(i, i + 1) as Float64Array);
          expect(Math.abs(fdx[0] - dinp[i])).toBeLessThan(1e-4 * Math.sqrt(OC) * (1 + Math.abs(fdx[0])));
          const fdw = finiteDifference(() => L(), wd.subarray(j, j + 1) as Float64Array);
          expect(Math.abs(fdw[0] + dw0[j] - dweight[j])).toBeLessThan(1e-4 * Math.sqrt(R) * (1 + Math.abs(fdw[0])));
        }
      }

      // Allocated gradients start at zero; a second call adds the same again (dinp is not needed).
      const once = kernels.linearBackward(dout, inp, weight);
      const twice = kernels.linearBackward(dout, inp, weight, { dinp: null, dweight: once.dweight, dbias: once.dbias });
      expect(twice.dinp).toBeNull();
      expectClose(twice.dweight.toArray(), Array.from(ref.dweight, (v) => 2 * v), tol(R, 'dweight x2'));
      expectClose(twice.dbias!.toArray(), Array.from(ref.dbias, (v) => 2 * v), tol(R, 'dbias x2'));
      expect(kernels.linearBackward(dout, inp, weight, { hasBias: false }).dbias).toBeNull();
    });
  });

  it('linear forward and backward are bit-identical for 1, 2 and 3 threads', () => {
    withIsa(isa, () => {
      const [R, C, OC] = [4160, 128, 48];
      const inp = Tensor.from(randn(R * C, 31), [64, 65, C]);
      const weight = Tensor.from(randn(OC * C, 32, 0.1), [OC, C]);
      const bias = Tensor.from(randn(OC, 33), [OC]);
      const dout = Tensor.from(randn(R * OC, 34), [64, 65, OC]);
      expectThreadIndependent(() => {
        const g = kernels.linearBackward(dout, inp, weight);
        return [kernels.linearForward(inp, weight, bias).toArray(), g.dinp!.toArray(), g.dweight.toArray(), g.dbias!.toArray()];
      }, 'linear 4160x128->48');
    });
  });
});

// Linear + GELU fused through the GEMM epilogue (the ViT MLP's fc1 forward, and GELU + fc2 backward).
// [R, C, OC] of the Linear: small awkward sizes; several row blocks; K > 256 (the post-op must run
// on the last K block only); N > 1536 (two column blocks, and with 5 rows the column split, so the
// post-op operands are offset by jc and by each thread's columns); a model shape.
const mlpShapes: [number, number, number][] = [
  [7, 5, 3],
  [37, 65, 33],
  [400, 64, 200],
  [50, 600, 70],
  [5, 40, 3100],
  [1104, 192, 768],
];

describe.each(isas())('Linear + GELU epilogue fusion (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each(mlpShapes)('linearGeluForward R=%i C=%i OC=%i: pre and GELU(pre) match float64, bit-identical to the two kernels', (R, C, OC) => {
    withIsa(isa, () => {
      const x = randn(R * C, 51 + C);
      const w = randn(OC * C, 52 + OC, 1 / Math.sqrt(C));
      const bias = randn(OC, 53);
      const inp = Tensor.from(x, [R, C]);
      const weight = Tensor.from(w, [OC, C]);
      const b = Tensor.from(bias, [OC]);
      // Outputs start as NaN: every element must be written.
      const { pre, out } = kernels.linearGeluForward(inp, weight, b, { pre: Tensor.full([R, OC], NaN), out: Tensor.full([R, OC], NaN) });
      const preRef = linearForwardRef(x, w, bias, R, C, OC);
      expectClose(pre!.toArray(), preRef, tol(C, 'pre'));
      // GELU' <= 1.13, so the product's rounding carries over; plus GELU's own 1e-7.
      expectClose(out.toArray(), Array.from(preRef, gelu), { ...tol(C, 'GELU(pre)'), atol: 1.2e-4 * Math.sqrt(C) });
      // Exactly what the unfused kernels give (same vector GELU, applied element-wise).
      const pre2 = kernels.linearForward(inp, weight, b);
      expectSameBits(pre!.toArray(), pre2.toArray(), 'pre vs linearForward');
      expectSameBits(out.toArray(), kernels.geluForward(pre2).toArray(), 'out vs linearForward + geluForward');
      // Without the pre-activation (inference): the same out.
      const only = kernels.linearGeluForward(inp, weight, b, { keepPre: false, out: Tensor.full([R, OC], NaN) });
      expect(only.pre).toBeNull();
      expectSameBits(only.out.toArray(), out.toArray(), 'keepPre: false');
      // No bias.
      const nb = kernels.linearGeluForward(inp, weight, null);
      expectSameBits(nb.out.toArray(), kernels.geluForward(kernels.linearForward(inp, weight, null)).toArray(), 'no bias');
    });
  });

  it.each(mlpShapes)('geluLinearBackward R=%i C=%i OC=%i matches float64 and finite differences, bit-identical to the two kernels', (R, C, OC) => {
    withIsa(isa, () => {
      // The Linear's input is act = GELU(pre), [R, C]; dout is [R, OC].
      const p = randn(R * C, 61 + C, 1.5);
      const preT = Tensor.from(p, [R, C]);
      const act = kernels.geluForward(preT);
      const a = act.toArray();
      const w = randn(OC * C, 62 + OC, 1 / Math.sqrt(OC));
      const g = randn(R * OC, 63);
      const weight = Tensor.from(w, [OC, C]);
      const dout = Tensor.from(g, [R, OC]);
      const dw0 = randn(OC * C, 64);
      const db0 = randn(OC, 65);
      const grads = kernels.geluLinearBackward(dout, act, preT, weight, {
        dpre: Tensor.full([R, C], NaN),
        dweight: Tensor.from(dw0, [OC, C]),
        dbias: Tensor.from(db0, [OC]),
      });
      const ref = linearBackwardRef(g, a, w, R, C, OC);
      const dpreRef = Array.from(ref.dinp, (v, i) => v * geluGrad(p[i]));
      expectClose(grads.dpre.toArray(), dpreRef, { ...tol(OC, 'dpre'), atol: 1.2e-4 * Math.sqrt(OC) });
      expectClose(grads.dweight.toArray(), Array.from(ref.dweight, (v, i) => v + dw0[i]), tol(R, 'dweight'));
      expectClose(grads.dbias!.toArray(), Array.from(ref.dbias, (v, i) => v + db0[i]), tol(R, 'dbias'));

      // Bit-identical to linearBackward + geluBackward.
      const split = kernels.linearBackward(dout, act, weight);
      const dpre2 = kernels.geluBackward(split.dinp!, preT);
      const fused = kernels.geluLinearBackward(dout, act, preT, weight);
      expectSameBits(fused.dpre.toArray(), dpre2.toArray(), 'dpre vs linearBackward + geluBackward');
      expectSameBits(fused.dweight.toArray(), split.dweight.toArray(), 'dweight');
      expectSameBits(fused.dbias!.toArray(), split.dbias!.toArray(), 'dbias');
      expect(kernels.geluLinearBackward(dout, act, preT, weight, { hasBias: false }).dbias).toBeNull();

      // dpre against central differences of L = Σ dout · Linear(GELU(pre)) in float64, sampled.
      if (R * C * OC <= 2e5) {
        const pd = toF64(p);
        const wd = toF64(w);
        const L = () => dot(g, linearForwardRef(Array.from(pd, gelu), wd, null, R, C, OC));
        const dpre = grads.dpre.toArray();
        for (let s = 0; s < 6; s++) {
          const i = (s * 7919) % (R * C);
          const fd = finiteDifference(() => L(), pd.subarray(i, i + 1) as Float64Array);
          expect(Math.abs(fd[0] - dpre[i])).toBeLessThan(1e-4 * Math.sqrt(OC) * (1 + Math.abs(fd[0])));
        }
      }
    });
  });

  it('fused forward and backward are bit-identical for 1, 2 and 3 threads', () => {
    withIsa(isa, () => {
      const [R, C, OC] = [4160, 128, 512];
      const inp = Tensor.from(randn(R * C, 71), [64, 65, C]);
      const w1 = Tensor.from(randn(OC * C, 72, 0.1), [OC, C]);
      const b1 = Tensor.from(randn(OC, 73), [OC]);
      const w2 = Tensor.from(randn(C * OC, 74, 0.05), [C, OC]);
      const dout = Tensor.from(randn(R * C, 75), [64, 65, C]);
      expectThreadIndependent(() => {
        const f = kernels.linearGeluForward(inp, w1, b1);
        const g = kernels.geluLinearBackward(dout, f.out, f.pre!, w2);
        return [f.pre!.toArray(), f.out.toArray(), g.dpre.toArray(), g.dweight.toArray(), g.dbias!.toArray()];
      }, 'MLP 4160x128->512->128');
    });
  });
});

describe('Linear + GELU argument checks', () => {
  const inp = Tensor.from(randn(6, 1), [2, 3]);
  const w = Tensor.from(randn(12, 2), [4, 3]);
  it('rejects mismatched shapes and aliased buffers with typed errors', () => {
    expect(() => kernels.linearGeluForward(inp, Tensor.empty([4, 2]))).toThrowError(/weight must have shape \[OC, C\] with C = 3/);
    expect(() => kernels.linearGeluForward(inp, w, null, { pre: Tensor.empty([2, 3]) })).toThrowError(/pre must have shape \[2, 4\], got \[2, 3\]/);
    const out = Tensor.empty([2, 4]);
    expect(() => kernels.linearGeluForward(inp, w, null, { pre: out, out })).toThrow(ValueError);
    expect(() => kernels.linearGeluForward(inp, w, null, { pre: out, out })).toThrowError(/pre must not share memory with inp, weight or out/);
    const act = Tensor.from(randn(8, 3), [2, 4]);
    const pre = Tensor.from(randn(8, 4), [2, 4]);
    const dout = Tensor.from(randn(6, 5), [2, 3]);
    const w2 = Tensor.from(randn(12, 6), [3, 4]);
    expect(() => kernels.geluLinearBackward(dout, act, Tensor.empty([2, 3]), w2)).toThrow(ShapeError);
    expect(() => kernels.geluLinearBackward(dout, act, Tensor.empty([2, 3]), w2)).toThrowError(/pre must have shape \[2, 4\], got \[2, 3\]/);
    expect(() => kernels.geluLinearBackward(Tensor.empty([2, 4]), act, pre, w2)).toThrowError(/dout must have shape \[2, 3\], got \[2, 4\]/);
    expect(() => kernels.geluLinearBackward(dout, act, pre, w2, { dpre: pre })).toThrowError(/dpre must not share memory/);
    expect(() => kernels.geluLinearBackward(dout, act, pre, Tensor.empty([3, 4], 'int32'))).toThrow(DTypeError);
  });
});

/** x rounded to bfloat16 (round to nearest even), as the bf16 path packs its operands. */
function toBf16(x: Float32Array): Float32Array {
  const out = Float32Array.from(x);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    bits[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
  return out;
}

describe('bf16 matmul precision (opt-in)', () => {
  it('is fp32 by default and rejects unknown precisions', () => {
    expect(getMatmulPrecision()).toBe('fp32');
    expect(() => setMatmulPrecision('fp16' as never)).toThrow(ValueError);
    if (!info().bf16) {
      // A CPU without AVX512_BF16 must refuse the bf16 path with a typed error.
      expect(() => setMatmulPrecision('bf16')).toThrowError(/AVX512_BF16/);
    }
  });
});

describe('bf16 matmul products (AVX512_BF16)', () => {
  skipWithoutBf16();

  /** Runs fn with bf16 products, restoring fp32 afterwards. */
  function withBf16<T>(fn: () => T): T {
    setMatmulPrecision('bf16');
    try {
      return fn();
    } finally {
      setMatmulPrecision('fp32');
    }
  }

  describe.each(transposes)('transA=%s transB=%s', (transA, transB) => {
    it.each(shapes)('sgemm M=%i N=%i K=%i equals the float64 product of the bf16-rounded operands', (M, N, K) => {
      const { a, b } = gemmCase(M, N, K, transA, transB);
      const A = Tensor.from(a, transA ? [K, M] : [M, K]);
      const B = Tensor.from(b, transB ? [N, K] : [K, N]);
      const c = withBf16(() => kernels.matmul(A, B, { transA, transB, alpha: 0.75, out: Tensor.full([M, N], NaN) }).toArray());
      // Products of bf16 values are exact in float32, so only the float32 sums round: the fp32 tolerance.
      const ref = matmulRef(toBf16(a), toBf16(b), M, N, K, { transA, transB });
      expectClose(c, Array.from(ref, (v) => 0.75 * v), tol(K, 'bf16 C'));
    });
  });

  it('fused Linear + GELU forward and backward stay bit-identical to the unfused kernels, and to any thread count', () => {
    const [R, C, OC] = [1104, 192, 768];
    const inp = Tensor.from(randn(R * C, 81), [R, C]);
    const w1 = Tensor.from(randn(OC * C, 82, 0.07), [OC, C]);
    const b1 = Tensor.from(randn(OC, 83), [OC]);
    const w2 = Tensor.from(randn(C * OC, 84, 0.04), [C, OC]);
    const dout = Tensor.from(randn(R * C, 85), [R, C]);
    withBf16(() => {
      const f = kernels.linearGeluForward(inp, w1, b1);
      expectSameBits(f.out.toArray(), kernels.geluForward(kernels.linearForward(inp, w1, b1)).toArray(), 'bf16 fc1 + GELU');
      const g = kernels.geluLinearBackward(dout, f.out, f.pre!, w2);
      const split = kernels.linearBackward(dout, f.out, w2);
      expectSameBits(g.dpre.toArray(), kernels.geluBackward(split.dinp!, f.pre!).toArray(), 'bf16 GELU + fc2 backward');
      expectSameBits(g.dweight.toArray(), split.dweight.toArray(), 'bf16 dweight');
      expectThreadIndependent(() => {
        const ff = kernels.linearGeluForward(inp, w1, b1);
        const gg = kernels.geluLinearBackward(dout, ff.out, ff.pre!, w2);
        return [ff.out.toArray(), gg.dpre.toArray(), gg.dweight.toArray()];
      }, 'bf16 MLP');
    });
  });

  it('differs from fp32 by bf16 rounding only, and the AVX2 path ignores it', () => {
    const [M, N, K] = [300, 200, 192];
    const a = randn(M * K, 91);
    const b = randn(K * N, 92);
    const A = Tensor.from(a, [M, K]);
    const B = Tensor.from(b, [K, N]);
    const fp32 = kernels.matmul(A, B).toArray();
    const bf16 = withBf16(() => kernels.matmul(A, B).toArray());
    const ref = matmulRef(a, b, M, N, K, {});
    let err32 = 0;
    let err16 = 0;
    let scale = 0;
    for (let i = 0; i < ref.length; i++) {
      err32 = Math.max(err32, Math.abs(fp32[i] - ref[i]));
      err16 = Math.max(err16, Math.abs(bf16[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    // Random N(0,1) operands, K = 192: bf16 rounding (2^-9 relative per operand) dominates.
    expect(err16).toBeGreaterThan(10 * err32);
    expect(err16).toBeLessThan(0.02 * scale);
    withIsa('avx2', () => {
      expectSameBits(withBf16(() => kernels.matmul(A, B).toArray()), kernels.matmul(A, B).toArray(), 'AVX2 path: fp32 products');
    });
  });
});

describe('matmul family argument checks', () => {
  const a = Tensor.from(randn(6, 1), [2, 3]);
  const b = Tensor.from(randn(20, 2), [4, 5]);
  it('rejects inconsistent shapes with a ShapeError naming the tensors', () => {
    expect(() => kernels.matmul(a, b)).toThrow(ShapeError);
    expect(() => kernels.matmul(a, b)).toThrowError(/inner dimensions differ: op\(A\) is \[2, 3\] \(A \[2, 3\]\) but op\(B\) is \[4, 5\] \(B \[4, 5\]\)/);
    expect(() => kernels.matmul(a, b, { transA: true, transB: true })).toThrowError(/op\(A\) is \[3, 2\] \(A \[2, 3\], transA\) but op\(B\) is \[5, 4\]/);
    expect(() => kernels.matmul(a, Tensor.empty([3, 5]), { out: Tensor.empty([5, 2]) })).toThrowError(/C must have shape \[2, 5\], got \[5, 2\]/);
    expect(() => kernels.matmul(Tensor.empty([2, 3, 1]), b)).toThrowError(/A must be 2-D \[M, K\], got \[2, 3, 1\]/);
    expect(() => kernels.linearForward(a, Tensor.empty([4, 2]))).toThrowError(/weight must have shape \[OC, C\] with C = 3 .*got \[4, 2\]/);
    expect(() => kernels.linearForward(a, Tensor.empty([4, 3]), Tensor.empty([3]))).toThrowError(/bias must have shape \[4\], got \[3\]/);
    expect(() => kernels.linearForward(a, Tensor.empty([4, 3]), null, Tensor.empty([2, 3]))).toThrowError(/out must have shape \[2, 4\], got \[2, 3\]/);
    expect(() => kernels.linearBackward(Tensor.empty([2, 5]), a, Tensor.empty([4, 3]))).toThrowError(/dout must have shape \[2, 4\], got \[2, 5\]/);
    expect(() => kernels.linearBackward(Tensor.empty([2, 4]), a, Tensor.empty([4, 3]), { dweight: Tensor.empty([3, 4]) })).toThrowError(
      /dweight must have shape \[4, 3\], got \[3, 4\]/,
    );
    expect(() => kernels.linearBackward(Tensor.empty([2, 4]), a, Tensor.empty([4, 3]), { dinp: Tensor.empty([3, 2]) })).toThrow(ShapeError);
  });

  it('rejects other dtypes, beta without out and aliased outputs', () => {
    expect(() => kernels.matmul(Tensor.empty([2, 3], 'int32'), Tensor.empty([3, 2]))).toThrow(DTypeError);
    expect(() => kernels.matmul(Tensor.empty([2, 3], 'int32'), Tensor.empty([3, 2]))).toThrowError(/A must be float32, got int32/);
    expect(() => kernels.linearForward(a, Tensor.empty([4, 3], 'int32'))).toThrowError(/weight must be float32/);
    expect(() => kernels.matmul(a, Tensor.empty([3, 2]), { beta: 1 })).toThrow(ValueError);
    const sq = Tensor.from(randn(9, 3), [3, 3]);
    expect(() => kernels.matmul(sq, Tensor.empty([3, 3]), { out: sq })).toThrowError(/C must not share memory/);
  });
});
