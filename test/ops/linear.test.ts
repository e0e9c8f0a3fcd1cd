import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, Tensor, ValueError, getNumThreads, kernels, setNumThreads } from '../../src/index';
import { dot, expectClose, finiteDifference, isas, randn, toF64, withIsa, sameBits } from '../helpers/check';
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
