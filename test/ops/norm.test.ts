import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, Tensor, getNumThreads, kernels, setNumThreads } from '../../src/index';
import { dot, expectClose, finiteDifference, isas, skipWithoutIsa, randn, toF64, withIsa, withThreads, expectSameBits, nanTensor } from '../helpers/check';
import * as ref from '../reference/norm';

// (rows, C): a single row, a single channel, odd sizes (no SIMD width or block multiple), the ViT
// activation (64·65 tokens, 192 channels), and a long row.
const layernormShapes: [number, number][] = [
  [1, 64],
  [5, 1],
  [7, 33],
  [65, 192],
  [4160, 192],
  [3, 1000],
];
// BatchNorm needs B >= 2 in training mode.
const batchnormShapes: [number, number][] = [
  [2, 5],
  [7, 33],
  [65, 192],
  [4160, 192],
  [3, 1000],
  [1000, 1],
];

/** offset + scale·N(0,1): a non-zero mean so that the mean subtraction cancels digits. */
function shifted(n: number, seed: number, offset = 4, scale = 1.5): Float32Array {
  return randn(n, seed, scale).map((v) => v + offset);
}

function add(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]);
}

interface LnCase {
  x: Float32Array;
  w: Float32Array;
  b: Float32Array;
  dy: Float32Array;
}

function lnCase(R: number, C: number, seed: number): LnCase {
  return {
    x: shifted(R * C, seed),
    w: randn(C, seed + 1, 0.5).map((v) => v + 1),
    b: randn(C, seed + 2, 0.5),
    dy: randn(R * C, seed + 3),
  };
}

describe('float64 references agree with finite differences of L = Σ dout·out', () => {
  it('layernorm: d/dinp, d/dweight, d/dbias', () => {
    const [R, C, eps] = [3, 5, 1e-6];
    const c = lnCase(R, C, 7);
    const [x, w, b, dy] = [toF64(c.x), toF64(c.w), toF64(c.b), toF64(c.dy)];
    const loss = () => dot(ref.layernorm(x, w, b, R, C, eps).out, dy);
    const g = ref.layernormBackward(dy, x, w, R, C, eps);
    const opts = { atol: 1e-7, rtol: 1e-6 };
    expectClose(finiteDifference(loss, x), g.dinp, { ...opts, label: 'fd dinp' });
    expectClose(finiteDifference(loss, w), g.dweight, { ...opts, label: 'fd dweight' });
    expectClose(finiteDifference(loss, b), g.dbias, { ...opts, label: 'fd dbias' });
  });

  it.each([true, false])('batchnorm (affine=%s): d/dinp, d/dweight, d/dbias', (affine) => {
    const [B, C, eps] = [4, 3, 1e-5];
    const c = lnCase(B, C, 17);
    const [x, w, b, dy] = [toF64(c.x), toF64(c.w), toF64(c.b), toF64(c.dy)];
    const loss = () => dot(ref.batchnorm(x, affine ? w : null, affine ? b : null, B, C, eps).out, dy);
    const g = ref.batchnormBackward(dy, x, affine ? w : null, B, C, eps);
    const opts = { atol: 1e-7, rtol: 1e-6 };
    expectClose(finiteDifference(loss, x), g.dinp, { ...opts, label: 'fd dinp' });
    if (affine) {
      expectClose(finiteDifference(loss, w), g.dweight, { ...opts, label: 'fd dweight' });
      expectClose(finiteDifference(loss, b), g.dbias, { ...opts, label: 'fd dbias' });
    }
  });
});

describe.each(isas())('layernorm (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each(layernormShapes)('forward and backward match the float64 reference, (%i, %i)', (R, C) => {
    withIsa(isa, () => {
      const eps = 1e-6;
      const c = lnCase(R, C, 100 + R + C);
      const inp = Tensor.from(c.x, [R, C]);
      const weight = Tensor.from(c.w, [C]);
      const bias = Tensor.from(c.b, [C]);
      const f = kernels.layernormForward(inp, weight, bias, { eps, out: nanTensor([R, C]), mean: nanTensor([R]), rstd: nanTensor([R]) });
      const r = ref.layernorm(c.x, c.w, c.b, R, C, eps);
      expectClose(f.out.toArray(), r.out, { atol: 2e-5, rtol: 1e-5, label: 'out' });
      expectClose(f.mean.toArray(), r.mean, { atol: 1e-6, rtol: 1e-6, label: 'mean' });
      expectClose(f.rstd.toArray(), r.rstd, { atol: 0, rtol: 2e-6, label: 'rstd' });

      const g = kernels.layernormBackward(Tensor.from(c.dy, [R, C]), inp, weight, f.mean, f.rstd, { dinp: nanTensor([R, C]) });
      const rg = ref.layernormBackward(c.dy, c.x, c.w, R, C, eps);
      // Sums over rows grow like sqrt(R): scale the absolute tolerance with it.
      const rowTol = 2e-6 * Math.sqrt(R);
      expectClose(g.dinp.toArray(), rg.dinp, { atol: 2e-5, rtol: 1e-4, label: 'dinp' });
      expectClose(g.dweight.toArray(), rg.dweight, { atol: rowTol, rtol: 1e-5, label: 'dweight' });
      expectClose(g.dbias.toArray(), rg.dbias, { atol: rowTol, rtol: 1e-5, label: 'dbias' });
    });
  });

  it('normalises the last dim of a 3-D input; mean/rstd take the leading dims or a flat [rows]', () => {
    withIsa(isa, () => {
      const [B, N, C] = [2, 3, 17];
      const c = lnCase(B * N, C, 5);
      const inp = Tensor.from(c.x, [B, N, C]);
      const f = kernels.layernormForward(inp, Tensor.from(c.w, [C]), Tensor.from(c.b, [C]));
      expect(f.mean.shape).toEqual([B, N]);
      expect(f.rstd.shape).toEqual([B, N]);
      const r = ref.layernorm(c.x, c.w, c.b, B * N, C, 1e-6);
      expectClose(f.out.toArray(), r.out, { atol: 2e-5, rtol: 1e-5, label: 'out' });
      const flat = kernels.layernormForward(inp, Tensor.from(c.w, [C]), Tensor.from(c.b, [C]), { mean: nanTensor([B * N]), rstd: nanTensor([B * N]) });
      expectSameBits(flat.mean.toArray(), f.mean.toArray(), 'flat mean');
      expectSameBits(flat.out.toArray(), f.out.toArray(), 'flat out');
    });
  });

  it('stays accurate when |mean| >> std (cancellation)', () => {
    withIsa(isa, () => {
      const [R, C, eps] = [16, 192, 1e-6];
      const x = shifted(R * C, 9, 300, 0.05);
      const w = new Float32Array(C).fill(1);
      const b = new Float32Array(C);
      const f = kernels.layernormForward(Tensor.from(x, [R, C]), Tensor.from(w, [C]), Tensor.from(b, [C]), { eps });
      const r = ref.layernorm(x, w, b, R, C, eps);
      // The variance stays exact to float rounding; the output cannot beat the float32 mean, which
      // is off by up to half an ulp of 300 (1.5e-5, i.e. 3e-4 of a standard deviation).
      expectClose(f.rstd.toArray(), r.rstd, { atol: 0, rtol: 2e-6, label: 'rstd' });
      expectClose(f.mean.toArray(), r.mean, { atol: 1.6e-5, rtol: 0, label: 'mean' });
      expectClose(f.out.toArray(), r.out, { atol: 6e-4, rtol: 0, label: 'out' });
    });
  });

  it('backward adds into dinp with accumulate, and dweight/dbias always accumulate', () => {
    withIsa(isa, () => {
      const [R, C] = [7, 33];
      const c = lnCase(R, C, 21);
      const inp = Tensor.from(c.x, [R, C]);
      const weight = Tensor.from(c.w, [C]);
      const f = kernels.layernormForward(inp, weight, Tensor.from(c.b, [C]));
      const rg = ref.layernormBackward(c.dy, c.x, c.w, R, C, 1e-6);
      const dinp0 = randn(R * C, 22);
      const dw0 = randn(C, 23);
      const db0 = randn(C, 24);
      const dinp = Tensor.from(dinp0, [R, C]);
      const dweight = Tensor.from(dw0, [C]);
      const dbias = Tensor.from(db0, [C]);
      const dout = Tensor.from(c.dy, [R, C]);
      kernels.layernormBackward(dout, inp, weight, f.mean, f.rstd, { dinp, dweight, dbias, accumulate: true });
      const opts = { atol: 2e-5, rtol: 1e-5 };
      expectClose(dinp.toArray(), add(dinp0, rg.dinp), { ...opts, label: 'dinp +=' });
      expectClose(dweight.toArray(), add(dw0, rg.dweight), { ...opts, label: 'dweight +=' });
      expectClose(dbias.toArray(), add(db0, rg.dbias), { ...opts, label: 'dbias +=' });
      // Without accumulate dinp is overwritten, but the parameter gradients still add up.
      kernels.layernormBackward(dout, inp, weight, f.mean, f.rstd, { dinp, dweight, dbias });
      expectClose(dinp.toArray(), rg.dinp, { ...opts, label: 'dinp =' });
      expectClose(dweight.toArray(), add(add(dw0, rg.dweight), rg.dweight), { ...opts, label: 'dweight += twice' });
      expectClose(dbias.toArray(), add(add(db0, rg.dbias), rg.dbias), { ...opts, label: 'dbias += twice' });
      // The wrapper allocates a zero dinp when accumulating into nothing.
      const fresh = kernels.layernormBackward(dout, inp, weight, f.mean, f.rstd, { accumulate: true });
      expectClose(fresh.dinp.toArray(), rg.dinp, { ...opts, label: 'fresh dinp' });
    });
  });
});

describe.each(isas())('batchnorm (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each(batchnormShapes)('forward, backward and running statistics match the float64 reference, (%i, %i)', (B, C) => {
    withIsa(isa, () => {
      const eps = 1e-5;
      const c = lnCase(B, C, 300 + B + C);
      const inp = Tensor.from(c.x, [B, C]);
      const weight = Tensor.from(c.w, [C]);
      const bias = Tensor.from(c.b, [C]);
      const runningMean = Tensor.zeros([C]);
      const runningVar = Tensor.full([C], 1);
      const f = kernels.batchnormForward(inp, {
        weight,
        bias,
        runningMean,
        runningVar,
        out: nanTensor([B, C]),
        mean: nanTensor([C]),
        rstd: nanTensor([C]),
      });
      const r = ref.batchnorm(c.x, c.w, c.b, B, C, eps);
      expectClose(f.out.toArray(), r.out, { atol: 2e-5, rtol: 1e-5, label: 'out' });
      expectClose(f.mean.toArray(), r.mean, { atol: 1e-6, rtol: 1e-6, label: 'mean' });
      expectClose(f.rstd.toArray(), r.rstd, { atol: 0, rtol: 2e-6, label: 'rstd' });
      expectClose(runningMean.toArray(), ref.runningUpdate(new Float64Array(C), r.mean, 0.1), { atol: 1e-6, rtol: 1e-6, label: 'runningMean' });
      expectClose(runningVar.toArray(), ref.runningUpdate(new Float64Array(C).fill(1), r.varUnbiased, 0.1), { atol: 1e-6, rtol: 2e-6, label: 'runningVar' });

      const g = kernels.batchnormBackward(Tensor.from(c.dy, [B, C]), inp, f.mean, f.rstd, { weight, dinp: nanTensor([B, C]) });
      const rg = ref.batchnormBackward(c.dy, c.x, c.w, B, C, eps);
      const rowTol = 2e-6 * Math.sqrt(B);
      expectClose(g.dinp.toArray(), rg.dinp, { atol: 2e-5, rtol: 1e-4, label: 'dinp' });
      expectClose(g.dweight!.toArray(), rg.dweight, { atol: rowTol, rtol: 1e-5, label: 'dweight' });
      expectClose(g.dbias!.toArray(), rg.dbias, { atol: rowTol, rtol: 1e-5, label: 'dbias' });
    });
  });

  it('running statistics follow PyTorch over two calls (unbiased variance, momentum)', () => {
    withIsa(isa, () => {
      const [B, C] = [10, 6];
      const x1 = shifted(B * C, 41);
      const x2 = shifted(B * C, 42, -2, 0.7);
      for (const momentum of [undefined, 0.25]) {
        const m = momentum ?? 0.1;
        const runningMean = Tensor.zeros([C]);
        const runningVar = Tensor.full([C], 1);
        kernels.batchnormForward(Tensor.from(x1, [B, C]), { runningMean, runningVar, momentum });
        kernels.batchnormForward(Tensor.from(x2, [B, C]), { runningMean, runningVar, momentum });
        const r1 = ref.batchnorm(x1, null, null, B, C, 1e-5);
        const r2 = ref.batchnorm(x2, null, null, B, C, 1e-5);
        const rm = ref.runningUpdate(ref.runningUpdate(new Float64Array(C), r1.mean, m), r2.mean, m);
        const rv = ref.runningUpdate(ref.runningUpdate(new Float64Array(C).fill(1), r1.varUnbiased, m), r2.varUnbiased, m);
        expectClose(runningMean.toArray(), rm, { atol: 1e-6, rtol: 1e-6, label: `runningMean (momentum ${m})` });
        expectClose(runningVar.toArray(), rv, { atol: 1e-6, rtol: 2e-6, label: `runningVar (momentum ${m})` });
      }
    });
  });

  it('affine=False: no weight or bias, no parameter gradients', () => {
    withIsa(isa, () => {
      const [B, C, eps] = [65, 33, 1e-5];
      const c = lnCase(B, C, 51);
      const inp = Tensor.from(c.x, [B, C]);
      const f = kernels.batchnormForward(inp, { out: nanTensor([B, C]) });
      expectClose(f.out.toArray(), ref.batchnorm(c.x, null, null, B, C, eps).out, { atol: 2e-5, rtol: 1e-5, label: 'out' });
      const g = kernels.batchnormBackward(Tensor.from(c.dy, [B, C]), inp, f.mean, f.rstd, { dinp: nanTensor([B, C]) });
      expect(g.dweight).toBeUndefined();
      expect(g.dbias).toBeUndefined();
      expectClose(g.dinp.toArray(), ref.batchnormBackward(c.dy, c.x, null, B, C, eps).dinp, { atol: 2e-5, rtol: 1e-4, label: 'dinp' });
    });
  });

  it('backward accumulates dweight/dbias and overwrites dinp', () => {
    withIsa(isa, () => {
      const [B, C] = [7, 33];
      const c = lnCase(B, C, 61);
      const inp = Tensor.from(c.x, [B, C]);
      const weight = Tensor.from(c.w, [C]);
      const f = kernels.batchnormForward(inp, { weight, bias: Tensor.from(c.b, [C]) });
      const rg = ref.batchnormBackward(c.dy, c.x, c.w, B, C, 1e-5);
      const dw0 = randn(C, 62);
      const db0 = randn(C, 63);
      const dinp = Tensor.from(randn(B * C, 64), [B, C]);
      const dweight = Tensor.from(dw0, [C]);
      const dbias = Tensor.from(db0, [C]);
      kernels.batchnormBackward(Tensor.from(c.dy, [B, C]), inp, f.mean, f.rstd, { weight, dinp, dweight, dbias });
      const opts = { atol: 2e-5, rtol: 1e-5 };
      expectClose(dinp.toArray(), rg.dinp, { ...opts, label: 'dinp =' });
      expectClose(dweight.toArray(), add(dw0, rg.dweight), { ...opts, label: 'dweight +=' });
      expectClose(dbias.toArray(), add(db0, rg.dbias), { ...opts, label: 'dbias +=' });
    });
  });

  it.each([true, false])('inference uses the running statistics (affine=%s)', (affine) => {
    withIsa(isa, () => {
      const [B, C, eps] = [65, 192, 1e-5];
      const x = shifted(B * C, 71);
      const rm = shifted(C, 72, 4, 0.5);
      const rv = randn(C, 73).map((v) => 0.5 + v * v);
      const w = affine ? randn(C, 74, 0.5).map((v) => v + 1) : null;
      const b = affine ? randn(C, 75, 0.5) : null;
      const out = kernels.batchnormInference(Tensor.from(x, [B, C]), Tensor.from(rm, [C]), Tensor.from(rv, [C]), {
        weight: w ? Tensor.from(w, [C]) : undefined,
        bias: b ? Tensor.from(b, [C]) : undefined,
        out: nanTensor([B, C]),
      });
      expectClose(out.toArray(), ref.batchnormInference(x, rm, rv, w, b, B, C, eps), { atol: 2e-5, rtol: 1e-5, label: 'out' });
    });
  });
});

describe('thread-count independence', () => {
  it('layernorm and batchnorm give bit-identical results for 1, 2 and 3 threads', () => {
    const [R, C] = [4160, 192];
    const c = lnCase(R, C, 81);
    const inp = Tensor.from(c.x, [R, C]);
    const dout = Tensor.from(c.dy, [R, C]);
    const weight = Tensor.from(c.w, [C]);
    const bias = Tensor.from(c.b, [C]);
    const run = () => {
      const ln = kernels.layernormForward(inp, weight, bias);
      const lg = kernels.layernormBackward(dout, inp, weight, ln.mean, ln.rstd);
      const runningMean = Tensor.zeros([C]);
      const runningVar = Tensor.full([C], 1);
      const bn = kernels.batchnormForward(inp, { weight, bias, runningMean, runningVar });
      const bg = kernels.batchnormBackward(dout, inp, bn.mean, bn.rstd, { weight });
      const bi = kernels.batchnormInference(inp, runningMean, runningVar, { weight, bias });
      return {
        lnOut: ln.out,
        lnMean: ln.mean,
        lnRstd: ln.rstd,
        lnDinp: lg.dinp,
        lnDweight: lg.dweight,
        lnDbias: lg.dbias,
        bnOut: bn.out,
        bnMean: bn.mean,
        bnRstd: bn.rstd,
        runningMean,
        runningVar,
        bnDinp: bg.dinp,
        bnDweight: bg.dweight!,
        bnDbias: bg.dbias!,
        bnInference: bi,
      };
    };
    const one = withThreads(1, run);
    for (const n of [2, 3]) {
      const many = withThreads(n, run);
      for (const [name, t] of Object.entries(one)) {
        expectSameBits(many[name as keyof typeof one].toArray() as Float32Array, t.toArray() as Float32Array, `${name} (${n} threads)`);
      }
    }
  });
});

describe('argument checks', () => {
  const [R, C] = [4, 8];
  const setup = () => {
    const inp = Tensor.from(shifted(R * C, 91), [R, C]);
    const w = Tensor.from(randn(C, 92), [C]);
    const b = Tensor.from(randn(C, 93), [C]);
    return { inp, w, b };
  };

  it('layernorm rejects wrong shapes and dtypes, naming the argument', () => {
    const { inp, w, b } = setup();
    const stats = kernels.layernormForward(inp, w, b);
    const short = Tensor.empty([C - 1]);
    expect(() => kernels.layernormForward(inp, short, b)).toThrow(ShapeError);
    expect(() => kernels.layernormForward(inp, short, b)).toThrowError(/weight must have shape \[8\], got \[7\]/);
    expect(() => kernels.layernormForward(inp, w, short)).toThrowError(/bias must have shape \[8\], got \[7\]/);
    expect(() => kernels.layernormForward(inp, w, b, { out: Tensor.empty([C, R]) })).toThrowError(/out must have shape \[4, 8\], got \[8, 4\]/);
    expect(() => kernels.layernormForward(inp, w, b, { mean: Tensor.empty([R + 1]) })).toThrowError(/mean must have shape \[4\]/);
    expect(() => kernels.layernormForward(inp, w, b, { rstd: Tensor.empty([R, 1]) })).toThrowError(/rstd must have shape \[4\]/);
    expect(() => kernels.layernormForward(Tensor.empty([R, 0]), Tensor.empty([0]), Tensor.empty([0]))).toThrow(ShapeError);
    expect(() => kernels.layernormForward(Tensor.empty([R, C], 'int32'), w, b)).toThrow(DTypeError);
    expect(() => kernels.layernormForward(Tensor.empty([R, C], 'int32'), w, b)).toThrowError(/inp must be float32, got int32/);
    const dout = Tensor.empty([R, C]);
    expect(() => kernels.layernormBackward(Tensor.empty([R, C + 1]), inp, w, stats.mean, stats.rstd)).toThrowError(/dout must have shape \[4, 8\], got \[4, 9\]/);
    expect(() => kernels.layernormBackward(dout, inp, w, stats.mean, stats.rstd, { dweight: short })).toThrowError(/dweight must have shape \[8\]/);
    expect(() => kernels.layernormBackward(dout, inp, w, stats.mean, stats.rstd, { dbias: short })).toThrowError(/dbias must have shape \[8\]/);
    expect(() => kernels.layernormBackward(dout, inp, w, stats.mean, Tensor.empty([R + 1]))).toThrowError(/rstd must have shape \[4\]/);
    expect(() => kernels.layernormBackward(dout, inp, w, stats.mean, stats.rstd, { dinp: Tensor.empty([R]) })).toThrowError(/dinp must have shape \[4, 8\]/);
  });

  it('batchnorm rejects wrong shapes, naming the argument, and B < 2 in training mode', () => {
    const { inp, w } = setup();
    const short = Tensor.empty([C - 1]);
    expect(() => kernels.batchnormForward(Tensor.empty([2, 3, 4]))).toThrow(ShapeError);
    expect(() => kernels.batchnormForward(Tensor.empty([2, 3, 4]))).toThrowError(/inp must have shape \(B, C\), got \[2, 3, 4\]/);
    expect(() => kernels.batchnormForward(Tensor.empty([1, C]))).toThrowError(/inp must have more than 1 row per channel/);
    expect(() => kernels.batchnormForward(inp, { weight: short })).toThrowError(/weight must have shape \[8\], got \[7\]/);
    expect(() => kernels.batchnormForward(inp, { bias: short })).toThrowError(/bias must have shape \[8\]/);
    expect(() => kernels.batchnormForward(inp, { runningMean: short })).toThrowError(/runningMean must have shape \[8\]/);
    expect(() => kernels.batchnormForward(inp, { runningVar: short })).toThrowError(/runningVar must have shape \[8\]/);
    expect(() => kernels.batchnormForward(inp, { mean: short })).toThrowError(/mean must have shape \[8\]/);
    const f = kernels.batchnormForward(inp);
    const dout = Tensor.empty([R, C]);
    expect(() => kernels.batchnormBackward(Tensor.empty([R + 1, C]), inp, f.mean, f.rstd)).toThrowError(/dout must have shape \[4, 8\], got \[5, 8\]/);
    expect(() => kernels.batchnormBackward(dout, inp, f.mean, f.rstd, { weight: short })).toThrowError(/weight must have shape \[8\]/);
    expect(() => kernels.batchnormBackward(dout, inp, f.mean, short)).toThrowError(/rstd must have shape \[8\]/);
    expect(() => kernels.batchnormBackward(dout, inp, f.mean, f.rstd, { weight: w, dbias: short })).toThrowError(/dbias must have shape \[8\]/);
    expect(() => kernels.batchnormInference(inp, short, f.rstd)).toThrowError(/runningMean must have shape \[8\], got \[7\]/);
    expect(() => kernels.batchnormInference(inp, f.mean, short)).toThrowError(/runningVar must have shape \[8\]/);
    expect(() => kernels.batchnormInference(inp, f.mean, f.rstd, { out: Tensor.empty([C, R]) })).toThrowError(/out must have shape \[4, 8\]/);
  });
});
