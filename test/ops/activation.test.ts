import { describe, expect, it } from 'vitest';
import { Tensor, kernels } from '../../src/index';
import { dot, expectClose, finiteDifference, isas, skipWithoutIsa, randn, toF64, withIsa } from '../helpers/check';
import { erf, gelu, geluGrad } from '../reference/math';

const sizes = [1, 7, 33, 1000, 70_001]; // odd sizes: not multiples of any SIMD width or chunk

describe('reference erf', () => {
  it('matches known values', () => {
    expectClose([erf(0.5), erf(1), erf(2.5), erf(-3.5), erf(5)], [0.5204998778130465, 0.8427007929497149, 0.9995930479825550, -0.9999992569016276, 0.9999999999984626], { atol: 1e-14, rtol: 0 });
  });
});

describe.each(isas())('activations (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each(sizes)('gelu forward and backward match the float64 reference, n=%i', (n) => {
    withIsa(isa, () => {
      const x = randn(n, 11 + n, 2.5);
      const dout = randn(n, 99 + n);
      const inp = Tensor.from(x, [n]);
      const out = kernels.geluForward(inp, Tensor.full([n], NaN));
      expectClose(out.toArray(), Array.from(x, gelu), { atol: 1e-6, rtol: 1e-6, label: 'gelu' });
      const dinp = kernels.geluBackward(Tensor.from(dout, [n]), inp, Tensor.full([n], NaN));
      expectClose(dinp.toArray(), Array.from(x, (v, i) => dout[i] * geluGrad(v)), { atol: 1e-6, rtol: 1e-5, label: 'dgelu' });
    });
  });

  it('gelu reference derivative agrees with finite differences', () => {
    const x = toF64(randn(64, 5, 3));
    const w = toF64(randn(64, 6));
    const fd = finiteDifference((v) => dot(Array.from(v, gelu), w), x);
    expectClose(fd, Array.from(x, (v, i) => w[i] * geluGrad(v)), { atol: 1e-7, rtol: 1e-6, label: 'fd gelu' });
  });

  it.each(sizes)('relu forward and backward, n=%i', (n) => {
    withIsa(isa, () => {
      const x = randn(n, 3 + n);
      const dout = randn(n, 4 + n);
      const out = kernels.reluForward(Tensor.from(x, [n]), Tensor.full([n], NaN));
      const o = out.toArray();
      expectClose(o, Array.from(x, (v) => Math.max(v, 0)), { atol: 0, rtol: 0, label: 'relu' });
      const dinp = kernels.reluBackward(Tensor.from(dout, [n]), out, Tensor.full([n], NaN)).toArray();
      expectClose(dinp, Array.from(x, (v, i) => (v > 0 ? dout[i] : 0)), { atol: 0, rtol: 0, label: 'drelu' });
      // FD on a point away from the kink agrees with the analytic backward.
      const i = x.findIndex((v) => Math.abs(v) > 0.1);
      const f = (v: number) => Math.max(v, 0) * dout[i];
      expect((f(x[i] + 1e-4) - f(x[i] - 1e-4)) / 2e-4).toBeCloseTo(dinp[i], 4);
    });
  });

  it('rejects mismatched shapes with a ShapeError and keeps the process alive', () => {
    const a = Tensor.from(randn(6, 1), [2, 3]);
    expect(() => kernels.geluForward(a, Tensor.empty([3, 2]))).toThrowError(/out must have shape \[2, 3\], got \[3, 2\]/);
    expect(() => kernels.geluForward(a, Tensor.empty([2, 3], 'int32'))).toThrowError(/must be float32, got int32/);
  });
});
