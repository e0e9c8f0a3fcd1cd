/**
 * The model's fused / vectorised passes against float64 references:
 * the vectorised exact-erf GELU (forward, backward) and residual add + LayerNorm.
 * GELU is the model's (kernels.geluForward/Backward); the fused residual + LayerNorm is bound directly from the addon (no public TS wrapper).
 */
import { describe, expect, it } from 'vitest';
import { Tensor, kernels } from '../../src/index';
import { getBinding } from '../../src/native';
import { nativeOf } from '../../src/tensor';
import { expectClose, expectSameBits, isas, skipWithoutIsa, randn, withIsa, withThreads } from '../helpers/check';
import { gelu, geluGrad } from '../reference/math';
import { layernorm } from '../reference/norm';

const k = () => getBinding().kernels;
const sizes = [1, 7, 33, 1000, 70_001]; // odd sizes: not multiples of any SIMD width or chunk

function geluOf(x: Float32Array): Float32Array {
  const inp = Tensor.from(x, [x.length]);
  const out = Tensor.full([x.length], NaN);
  kernels.geluForward(inp, out);
  return out.toArray() as Float32Array;
}

function geluGradOf(dout: Float32Array, x: Float32Array): Float32Array {
  const d = Tensor.full([x.length], NaN);
  kernels.geluBackward(Tensor.from(dout, [x.length]), Tensor.from(x, [x.length]), d);
  return d.toArray() as Float32Array;
}

describe.each(isas())('fused kernels (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each(sizes)('vectorised GELU forward and backward match the float64 reference, n=%i', (n) => {
    withIsa(isa, () => {
      const x = randn(n, 11 + n, 2.5);
      const dout = randn(n, 99 + n);
      expectClose(geluOf(x), Array.from(x, gelu), { atol: 1e-6, rtol: 1e-6, label: 'gelu' });
      expectClose(geluGradOf(dout, x), Array.from(x, (v, i) => dout[i] * geluGrad(v)), { atol: 1e-6, rtol: 1e-5, label: 'dgelu' });
    });
  });

  it('GELU is accurate over the whole range, tails and special values included', () => {
    withIsa(isa, () => {
      const n = 200_001;
      const x = Float32Array.from({ length: n }, (_, i) => -16 + (32 * i) / (n - 1));
      const ones = new Float32Array(n).fill(1);
      // Tighter than the model needs: ~1 ulp of the result plus 1e-7 absolute.
      expectClose(geluOf(x), Array.from(x, gelu), { atol: 1e-7, rtol: 3e-7, label: 'gelu range' });
      expectClose(geluGradOf(ones, x), Array.from(x, geluGrad), { atol: 2e-7, rtol: 1e-6, label: 'dgelu range' });
      const special = Float32Array.from([0, -0, Infinity, -Infinity, NaN, 1e-30, -1e-30, 88, -88, 3.4e38, -3.4e38]);
      const y = geluOf(special);
      expect(y[0]).toBe(0);
      expect(y[2]).toBe(Infinity);
      expect(Number.isNaN(y[4])).toBe(true);
      expect(Number.isNaN(y[3])).toBe(true); // GELU(−∞) = −∞·Φ(−∞) = −∞·0: NaN, as PyTorch and activation.h
      expect(y[5]).toBeCloseTo(5e-31, 35);
      expect(y[7]).toBe(88);
      expect(y[8]).toBe(-0);
      expect(y[9]).toBe(special[9]);
      // GELU' = Φ + x·φ: NaN stays NaN; ±∞ give NaN (∞·0) as in PyTorch; exact ends elsewhere.
      const dy = geluGradOf(new Float32Array(special.length).fill(1), special);
      expect(dy[0]).toBe(0.5);
      expect(Number.isNaN(dy[4])).toBe(true);
      expect(Number.isNaN(dy[2]) && Number.isNaN(dy[3])).toBe(true);
      expect(dy[7]).toBe(1);
      expect(dy[8]).toBe(0);
      expect(dy[9]).toBe(1);
    });
  });

  it('GELU results do not depend on the thread count or the position in the array', () => {
    const x = randn(100_003, 5, 3);
    const one = withThreads(1, () => geluOf(x));
    const two = withThreads(2, () => geluOf(x));
    expectSameBits(one, two, 'gelu 1 vs 2 threads');
    const shifted = geluOf(x.subarray(3));
    expectSameBits(shifted, one.subarray(3), 'gelu shifted by 3 elements');
    const g1 = withThreads(1, () => geluGradOf(x, x));
    const g2 = withThreads(2, () => geluGradOf(x, x));
    expectSameBits(g1, g2, 'dgelu 1 vs 2 threads');
  });

  it.each([
    [1, 1],
    [5, 7],
    [130, 192],
    [301, 128],
  ])('residual add + LayerNorm matches the float64 reference, R=%i C=%i', (R, C) => {
    withIsa(isa, () => {
      const a = randn(R * C, R + C, 1.5);
      const b = randn(R * C, 7 * R + C, 0.7);
      const w = randn(C, 3 + C, 0.5).map((v) => 1 + v);
      const bias = randn(C, 4 + C, 0.2);
      const sum = Tensor.full([R, C], NaN);
      const out = Tensor.full([R, C], NaN);
      const mean = Tensor.full([R], NaN);
      const rstd = Tensor.full([R], NaN);
      const run = () =>
        k().residualLayernormForward(
          nativeOf(sum), nativeOf(out), nativeOf(mean), nativeOf(rstd),
          nativeOf(Tensor.from(a, [R, C])), nativeOf(Tensor.from(b, [R, C])),
          nativeOf(Tensor.from(w, [C])), nativeOf(Tensor.from(bias, [C])), 1e-6,
        );
      run();
      const s = Float32Array.from(a, (v, i) => v + b[i]);
      expectClose(sum.toArray(), s, { atol: 0, rtol: 0, label: 'sum' });
      const ref = layernorm(s, w, bias, R, C, 1e-6);
      expectClose(out.toArray(), ref.out, { atol: 1e-5, rtol: 1e-5, label: 'ln out' });
      expectClose(mean.toArray(), ref.mean, { atol: 1e-6, rtol: 1e-5, label: 'mean' });
      expectClose(rstd.toArray(), ref.rstd, { atol: 1e-6, rtol: 1e-5, label: 'rstd' });
      // In place (sum aliases a) gives the same bits, for 1 and 2 threads.
      const first = out.toArray() as Float32Array;
      const inPlace = Tensor.from(a, [R, C]);
      const out2 = Tensor.full([R, C], NaN);
      for (const t of [1, 2]) {
        withThreads(t, () =>
          k().residualLayernormForward(
            nativeOf(inPlace), nativeOf(out2), nativeOf(mean), nativeOf(rstd),
            nativeOf(inPlace), nativeOf(Tensor.from(b, [R, C])),
            nativeOf(Tensor.from(w, [C])), nativeOf(Tensor.from(bias, [C])), 1e-6,
          ),
        );
        expectSameBits(out2.toArray() as Float32Array, first, `in-place, ${t} threads`);
        inPlace.view().set(a);
      }
    });
  });

  it('rejects mismatched shapes and aliasing with typed errors', () => {
    const a = Tensor.from(randn(6, 1), [2, 3]);
    expect(() => kernels.geluForward(a, Tensor.empty([3, 2]))).toThrowError(/out must have shape \[2, 3\]/);
    const m = Tensor.empty([2]);
    const w = Tensor.empty([3]);
    expect(() => k().residualLayernormForward(nativeOf(a), nativeOf(a), nativeOf(m), nativeOf(m), nativeOf(a), nativeOf(a), nativeOf(w), nativeOf(w), 1e-6)).toThrowError(
      /must not alias/,
    );
  });
});
