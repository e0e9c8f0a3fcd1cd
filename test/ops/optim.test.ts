import { describe, expect, it } from 'vitest';
import { ShapeError, Tensor, ValueError, getNumThreads, kernels, setNumThreads } from '../../src/index';
import { expectClose, isas, skipWithoutIsa, makeRng, randn, toF64, withIsa, withThreads, sameBits } from '../helpers/check';
import { adamwRefStep, emaRef, globalNormRef, type AdamwRefHyper } from '../reference/optim';

/** A 0/1 decay mask mixing both values in runs (like biases between weight matrices). */
function decayMask(n: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  const m = new Float32Array(n);
  let value = 1;
  for (let i = 0; i < n; i++) {
    if (rng() < 0.05) value = 1 - value;
    m[i] = value;
  }
  m[0] = 1;
  m[n - 1] = 0;
  return m;
}

const sizes = [1, 7, 1001, 70_001];

describe.each(isas())('optimiser kernels (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each(sizes)('AdamW matches a float64 torch.optim.AdamW for 3 steps, decay mask and grad scale, n=%i', (n) => {
    withIsa(isa, () => {
      const hyper: AdamwRefHyper = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05 };
      const p0 = randn(n, 100 + n);
      const mask = n === 1 ? Float32Array.of(1) : decayMask(n, 101 + n);
      const state = { param: toF64(p0), m: new Float64Array(n), v: new Float64Array(n) };
      const params = Tensor.from(p0, [n]);
      const m = Tensor.zeros([n]);
      const v = Tensor.zeros([n]);
      const gradScales = [1, 0.5, 0.8];
      for (let step = 1; step <= 3; step++) {
        const g = randn(n, 200 + 10 * step + n, 0.1 * step);
        kernels.adamwStep(params, m, v, Tensor.from(g, [n]), {
          lr: hyper.lr,
          betas: [hyper.beta1, hyper.beta2],
          eps: hyper.eps,
          weightDecay: hyper.weightDecay,
          step,
          decayMask: Tensor.from(mask, [n]),
          gradScale: gradScales[step - 1],
        });
        adamwRefStep(state, g, hyper, step, mask, gradScales[step - 1]);
        expectClose(params.toArray(), state.param, { atol: 1e-6, rtol: 1e-6, label: `params step ${step}` });
        // m can cancel across steps: its float32 error is relative to the gradients (~0.1), hence atol.
        expectClose(m.toArray(), state.m, { atol: 1e-8, rtol: 1e-5, label: `m step ${step}` });
        expectClose(v.toArray(), state.v, { atol: 1e-12, rtol: 1e-5, label: `v step ${step}` });
      }
    });
  });

  it('AdamW: excluded parameters take no weight decay, a null mask decays everything', () => {
    withIsa(isa, () => {
      const n = 33;
      const p = randn(n, 110);
      const zero = new Float32Array(n);
      // Zero gradient: only the decay moves the parameters (m = v = 0 → the Adam update is 0).
      const run = (mask?: Float32Array) => {
        const params = Tensor.from(p, [n]);
        kernels.adamwStep(params, Tensor.zeros([n]), Tensor.zeros([n]), Tensor.from(zero, [n]), { lr: 0.1, weightDecay: 0.5, step: 1, decayMask: mask && Tensor.from(mask, [n]) });
        return params.toArray();
      };
      const none = run(new Float32Array(n));
      expect(sameBits(none, p)).toBe(true);
      const all = run();
      expectClose(all, Array.from(p, (x) => x * (1 - 0.05)), { atol: 1e-7, rtol: 1e-6, label: 'decayed' });
      expect(sameBits(run(new Float32Array(n).fill(1)), all)).toBe(true);
    });
  });

  it('EMA with m = 0.996 (spec §5) and the endpoints 0 and 1', () => {
    withIsa(isa, () => {
      const target = Tensor.full([5], 1);
      kernels.emaUpdate(target, Tensor.zeros([5]), 0.996);
      expectClose(target.toArray(), new Array(5).fill(0.996), { atol: 1e-7, rtol: 0, label: 'ema 1 → 0' });

      const n = 70_001;
      const t = randn(n, 120);
      const o = randn(n, 121);
      const tt = Tensor.from(t, [n]);
      kernels.emaUpdate(tt, Tensor.from(o, [n]), 0.996);
      expectClose(tt.toArray(), emaRef(t, o, 0.996), { atol: 1e-6, rtol: 1e-6, label: 'ema' });

      const keep = Tensor.from(t, [n]);
      kernels.emaUpdate(keep, Tensor.from(o, [n]), 1);
      expect(sameBits(keep.toArray(), t)).toBe(true);
      const copy = Tensor.from(t, [n]);
      kernels.emaUpdate(copy, Tensor.from(o, [n]), 0);
      expect(sameBits(copy.toArray(), o)).toBe(true);
    });
  });

  it.each([1, 7, 16_385, 300_001])('global norm matches a float64 sum, n=%i', (n) => {
    withIsa(isa, () => {
      const g = randn(n, 130 + n, 0.01);
      const norm = kernels.globalNorm(Tensor.from(g, [n]));
      expect(Math.abs(norm - globalNormRef(g))).toBeLessThanOrEqual(1e-12 * globalNormRef(g));
    });
  });

  it('scaleInplace and clipGradNorm', () => {
    withIsa(isa, () => {
      const n = 70_001;
      const x = randn(n, 140);
      const t = Tensor.from(x, [n]);
      kernels.scaleInplace(t, 0.3);
      const s = Math.fround(0.3);
      expect(sameBits(t.toArray(), Float32Array.from(x, (v) => v * s))).toBe(true);

      const g = Tensor.from(randn(n, 141), [n]);
      const before = kernels.clipGradNorm(g, 1.0);
      expect(before).toBeGreaterThan(1);
      expect(kernels.globalNorm(g)).toBeCloseTo(1.0, 5);
      expect(kernels.clipGradNorm(g, 10)).toBeCloseTo(1.0, 5); // below max: unchanged
      expect(kernels.globalNorm(g)).toBeCloseTo(1.0, 5);
    });
  });

  it('global norm and AdamW are bit-identical for 1 and 2 threads', () => {
    withIsa(isa, () => {
      const n = 1_000_003;
      const g = Tensor.from(randn(n, 150), [n]);
      const norms = [1, 2].map((threads) => withThreads(threads, () => kernels.globalNorm(g)));
      expect(norms[1]).toBe(norms[0]);

      const p0 = randn(n, 151);
      const mask = Tensor.from(decayMask(n, 152), [n]);
      const run = () => {
        const params = Tensor.from(p0, [n]);
        const m = Tensor.zeros([n]);
        const v = Tensor.zeros([n]);
        for (let step = 1; step <= 2; step++) kernels.adamwStep(params, m, v, g, { lr: 1e-3, step, decayMask: mask, gradScale: 0.7 });
        return [params.toArray(), m.toArray(), v.toArray()];
      };
      const one = withThreads(1, run);
      const two = withThreads(2, run);
      for (let i = 0; i < 3; i++) expect(sameBits(two[i], one[i])).toBe(true);
    });
  });

  it('rejects bad arguments with typed errors naming the argument', () => {
    const p = Tensor.from(randn(6, 160), [2, 3]);
    const z = () => Tensor.zeros([2, 3]);
    const ok = { lr: 1e-3, step: 1 };
    expect(() => kernels.adamwStep(p, z(), z(), Tensor.zeros([3, 2]), ok)).toThrowError(/grads must have shape \[2, 3\], got \[3, 2\]/);
    expect(() => kernels.adamwStep(p, z(), z(), z(), { ...ok, decayMask: Tensor.zeros([6]) })).toThrowError(ShapeError);
    expect(() => kernels.adamwStep(p, z(), z(), z(), { ...ok, step: 0 })).toThrowError(/stepNumber must be an integer >= 1/);
    expect(() => kernels.adamwStep(p, z(), z(), z(), { ...ok, step: 1.5 })).toThrowError(/stepNumber must be an integer/);
    expect(() => kernels.adamwStep(p, z(), z(), z(), { ...ok, betas: [1, 0.95] })).toThrowError(/beta1 must be in \[0, 1\), got 1/);
    expect(() => kernels.adamwStep(p, z(), z(), z(), { ...ok, lr: -1 })).toThrowError(/lr must be a non-negative finite number/);
    const m = z();
    expect(() => kernels.adamwStep(p, m, m, z(), ok)).toThrowError(/params, m and v must be distinct/);
    expect(() => kernels.adamwStep(p, z(), z(), Tensor.zeros([2, 3], 'int32'), ok)).toThrowError(/grads must be float32, got int32/);
    expect(() => kernels.emaUpdate(z(), z(), 1.5)).toThrowError(ValueError);
    expect(() => kernels.emaUpdate(z(), z(), -0.1)).toThrowError(/momentum must be in \[0, 1\], got -0.1/);
    expect(() => kernels.emaUpdate(z(), Tensor.zeros([6]), 0.9)).toThrowError(/online must have shape \[2, 3\], got \[6\]/);
    expect(() => kernels.scaleInplace(z(), NaN)).toThrowError(/s must not be NaN/);
  });
});
