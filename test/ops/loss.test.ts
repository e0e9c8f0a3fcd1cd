import { describe, expect, it } from 'vitest';
import { ShapeError, Tensor, ValueError, getNumThreads, kernels, setNumThreads } from '../../src/index';
import { dot, expectClose, finiteDifference, isas, skipWithoutIsa, makeRng, randn, toF64, withIsa, withThreads, nanTensor, sameBits } from '../helpers/check';
import * as ref from '../reference/loss';

/** A 0/1 mask of n entries with about `ratio` ones (and at least one 1 and one 0 when n ≥ 2). */
function randomMask(n: number, seed: number, ratio = 0.75): Float32Array {
  const rng = makeRng(seed);
  const m = Float32Array.from({ length: n }, () => (rng() < ratio ? 1 : 0));
  if (n >= 2) {
    m[0] = 1;
    m[n - 1] = 0;
  }
  return m;
}

describe('float64 loss references agree with central finite differences', () => {
  it('mean pool', () => {
    const [B, N, D, start] = [2, 5, 3, 1];
    const x = toF64(randn(B * N * D, 1));
    const w = toF64(randn(B * D, 2));
    const fd = finiteDifference((v) => dot(ref.meanPool(v, B, N, D, start), w), x);
    expectClose(fd, ref.meanPoolBackward(w, B, N, D, start), { atol: 1e-8, rtol: 1e-7, label: 'fd mean pool' });
  });

  it.each([1e-12, 1.5])('l2 normalize, eps=%d (clamped rows take the dout/eps branch)', (eps) => {
    const [R, D] = [4, 6];
    const x = toF64(randn(R * D, 3));
    for (let d = 0; d < D; d++) x[D + d] *= 0.1; // row 1 has a norm below 1.5
    const w = toF64(randn(R * D, 4));
    const fd = finiteDifference((v) => dot(ref.l2Normalize(v, R, D, eps).out, w), x);
    expectClose(fd, ref.l2NormalizeBackward(w, x, R, D, eps), { atol: 1e-7, rtol: 1e-6, label: 'fd l2 normalize' });
  });

  it.each([true, false])('norm-pix MSE w.r.t. pred, normPix=%s', (normPix) => {
    const [B, L, P] = [2, 3, 5];
    const pred = toF64(randn(B * L * P, 5));
    const target = toF64(randn(B * L * P, 6, 2));
    const mask = randomMask(B * L, 7);
    const fd = finiteDifference((v) => 0.7 * ref.normpixMse(v, target, mask, B, L, P, normPix), pred);
    expectClose(fd, ref.normpixMseGrad(pred, target, mask, B, L, P, normPix, 1e-6, 0.7), { atol: 1e-8, rtol: 1e-6, label: 'fd normpix' });
  });

  it('InfoNCE w.r.t. q', () => {
    const [B, E, tau] = [6, 5, 0.1];
    const q = toF64(randn(B * E, 8));
    const k = toF64(randn(B * E, 9));
    const fd = finiteDifference((v) => 0.5 * ref.infonce(v, k, B, E, tau, 2 * tau), q);
    expectClose(fd, ref.infonceGradQ(q, k, B, E, tau, 2 * tau, 0.5), { atol: 1e-7, rtol: 1e-6, label: 'fd infonce' });
  });

  it('NT-Xent w.r.t. z (both roles of every row)', () => {
    const [R, E, tau] = [8, 5, 0.2];
    const z = toF64(randn(R * E, 12));
    const fd = finiteDifference((v) => ref.ntxent(v, R, E, tau, 1, 0.5).loss * 0.5, z);
    expectClose(fd, ref.ntxent(z, R, E, tau, 1, 0.5).grad, { atol: 1e-7, rtol: 1e-6, label: 'fd ntxent' });
  });

  it('norm-pix target: mean 0, biased second moment (P−1)/P, constant patches → 0 (spec §5)', () => {
    const P = 768;
    const t = randn(3 * P, 10, 3);
    t.fill(0.37, 2 * P); // patch 2 is constant
    const n = ref.normpixTarget(t, 3, P, true);
    for (let r = 0; r < 2; r++) {
      const row = n.subarray(r * P, (r + 1) * P);
      expect(Math.abs(row.reduce((a, b) => a + b, 0) / P)).toBeLessThan(1e-12);
      expect(row.reduce((a, b) => a + b * b, 0) / P).toBeCloseTo(767 / 768, 6);
    }
    expect(Array.from(n.subarray(2 * P))).toEqual(new Array(P).fill(0));
  });
});

describe.each(isas())('loss kernels (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each([
    [1, 1, 1, 0],
    [3, 7, 33, 0],
    [3, 7, 33, 1],
    [2, 50, 129, 1],
    [2, 4, 5, 3],
  ])('mean pool forward and backward, B=%i N=%i D=%i start=%i', (B, N, D, start) => {
    withIsa(isa, () => {
      const x = randn(B * N * D, 11 + N + start);
      const dout = randn(B * D, 12 + D);
      const inp = Tensor.from(x, [B, N, D]);
      const out = kernels.meanPoolForward(inp, start, nanTensor([B, D]));
      expectClose(out.toArray(), ref.meanPool(x, B, N, D, start), { atol: 1e-6, rtol: 1e-5, label: 'mean pool' });
      const dinp = kernels.meanPoolBackward(Tensor.from(dout, [B, D]), N, start, nanTensor([B, N, D]));
      expectClose(dinp.toArray(), ref.meanPoolBackward(dout, B, N, D, start), { atol: 1e-7, rtol: 1e-6, label: 'dmean pool' });
    });
  });

  it.each([
    [1, 1, 1e-12],
    [6, 37, 1e-12],
    [9, 256, 1e-12],
    [5, 7, 1.5],
  ])('l2 normalize forward and backward, R=%i D=%i eps=%d', (R, D, eps) => {
    withIsa(isa, () => {
      const x = randn(R * D, 20 + D, 1.3);
      if (R > 2) for (let d = 0; d < D; d++) x[D + d] *= 0.05; // a short row (below eps=1.5)
      if (R > 3 && eps === 1e-12) x.fill(0, 2 * D, 3 * D); // an all-zero row: out 0, gradient dout/eps
      const g = randn(R * D, 21 + D);
      const inp = Tensor.from(x, [R, D]);
      const { out, norm } = kernels.l2NormalizeForward(inp, eps, nanTensor([R, D]), nanTensor([R]));
      const r = ref.l2Normalize(x, R, D, eps);
      expectClose(out.toArray(), r.out, { atol: 1e-7, rtol: 1e-5, label: 'l2 out' });
      expectClose(norm.toArray(), r.norm, { atol: 1e-7, rtol: 1e-6, label: 'l2 norm' });
      const dinp = kernels.l2NormalizeBackward(Tensor.from(g, [R, D]), inp, norm, eps, nanTensor([R, D]));
      expectClose(dinp.toArray(), ref.l2NormalizeBackward(g, x, R, D, eps), { atol: 1e-6, rtol: 1e-5, label: 'dl2' });
    });
  });

  it.each([
    [3, 7, 48, true],
    [3, 7, 48, false],
    [2, 49, 97, true],
    [1, 1, 2, true],
  ])('norm-pix MSE forward and backward vs reference, B=%i L=%i P=%i normPix=%s', (B, L, P, normPix) => {
    withIsa(isa, () => {
      const pred = randn(B * L * P, 30 + P);
      const target = randn(B * L * P, 31 + P, 2);
      for (let i = 0; i < target.length; i++) target[i] += 0.5; // non-zero patch means
      const mask = B * L === 1 ? Float32Array.of(1) : randomMask(B * L, 32 + L);
      const dloss = 0.7;
      const { loss, dpred } = kernels.normpixMse(Tensor.from(pred, [B, L, P]), Tensor.from(target, [B, L, P]), Tensor.from(mask, [B, L]), { normPix, dloss, dpred: nanTensor([B, L, P]) });
      expect(loss).toBeCloseTo(ref.normpixMse(pred, target, mask, B, L, P, normPix), 5);
      expect(Math.abs(loss / ref.normpixMse(pred, target, mask, B, L, P, normPix) - 1)).toBeLessThan(1e-6);
      const d = dpred!.toArray();
      expectClose(d, ref.normpixMseGrad(pred, target, mask, B, L, P, normPix, 1e-6, dloss), { atol: 1e-9, rtol: 1e-5, label: 'dpred' });
      for (let r = 0; r < B * L; r++) {
        if (mask[r] === 0) expect(d.subarray(r * P, (r + 1) * P).every((v) => v === 0)).toBe(true);
      }
      // Forward only: same loss, no gradient.
      const fwd = kernels.normpixMse(Tensor.from(pred, [B, L, P]), Tensor.from(target, [B, L, P]), Tensor.from(mask, [B, L]), { normPix, withGrad: false });
      expect(fwd.dpred).toBeUndefined();
      expect(fwd.loss).toBe(loss);
    });
  });

  it('norm-pix target through the kernel: mean 0, biased second moment 767/768 (spec §5)', () => {
    withIsa(isa, () => {
      const [B, L, P] = [2, 5, 768];
      const target = randn(B * L * P, 40, 3);
      for (let i = 0; i < target.length; i++) target[i] += 1.25;
      const { loss, dpred } = kernels.normpixMse(Tensor.zeros([B, L, P]), Tensor.from(target, [B, L, P]), Tensor.full([B, L], 1));
      // With pred = 0 the loss is the target's mean square, and dpred = −2·target_n/(P·Σmask).
      expect(loss).toBeCloseTo(767 / 768, 5);
      const d = dpred!.toArray();
      for (let r = 0; r < B * L; r++) {
        let s = 0;
        let s2 = 0;
        for (let i = 0; i < P; i++) {
          const t = (-d[r * P + i] * P * B * L) / 2;
          s += t;
          s2 += t * t;
        }
        expect(Math.abs(s / P)).toBeLessThan(1e-5);
        expect(s2 / P).toBeCloseTo(767 / 768, 5);
      }
    });
  });

  it('constant patches give target 0; empty masks give loss 0 and zero gradient', () => {
    withIsa(isa, () => {
      const [B, L, P] = [2, 3, 11];
      const pred = randn(B * L * P, 50);
      const target = new Float32Array(B * L * P);
      for (let r = 0; r < B * L; r++) target.fill(0.1 + 0.37 * r, r * P, (r + 1) * P);
      const mask = Float32Array.of(1, 0, 1, 1, 0, 1);
      const msum = 4;
      const { loss, dpred } = kernels.normpixMse(Tensor.from(pred, [B, L, P]), Tensor.from(target, [B, L, P]), Tensor.from(mask, [B, L]));
      let expected = 0;
      for (let r = 0; r < B * L; r++) for (let i = 0; i < P; i++) expected += (mask[r] * pred[r * P + i] ** 2) / P;
      expect(loss).toBeCloseTo(expected / msum, 6);
      const d = dpred!.toArray();
      expectClose(d, Array.from(pred, (p, i) => (mask[Math.floor(i / P)] * 2 * p) / (P * msum)), { atol: 1e-8, rtol: 1e-6, label: 'dpred constant' });

      const empty = kernels.normpixMse(Tensor.from(pred, [B, L, P]), Tensor.from(target, [B, L, P]), Tensor.zeros([B, L]), { dpred: nanTensor([B, L, P]) });
      expect(empty.loss).toBe(0);
      expect(empty.dpred!.toArray().every((v) => v === 0)).toBe(true);
    });
  });

  it.each([
    [13, 37, 0.07, undefined, 1],
    [5, 3, 0.2, 1, 0.5],
    [1, 8, 0.07, undefined, 1],
    [64, 256, 0.07, undefined, 1],
  ])('InfoNCE forward and backward vs reference, B=%i E=%i tau=%d scale=%s dloss=%d', (B, E, tau, scale, dloss) => {
    withIsa(isa, () => {
      const q = randn(B * E, 60 + B);
      const k = randn(B * E, 61 + B);
      for (let e = 0; e < E; e++) k[e] = q[e] + 0.3 * k[e]; // row 0 correlated with its target
      const s = scale ?? 2 * tau;
      const { loss, dq } = kernels.infonce(Tensor.from(q, [B, E]), Tensor.from(k, [B, E]), { tau, scale, dloss, dq: nanTensor([B, E]) });
      const expected = ref.infonce(q, k, B, E, tau, s);
      expect(Math.abs(loss - expected)).toBeLessThan(1e-6 + 1e-5 * Math.abs(expected));
      expectClose(dq!.toArray(), ref.infonceGradQ(q, k, B, E, tau, s, dloss), { atol: 1e-7, rtol: 1e-4, label: 'dq' });
      const fwd = kernels.infonce(Tensor.from(q, [B, E]), Tensor.from(k, [B, E]), { tau, scale, withGrad: false });
      expect(fwd.dq).toBeUndefined();
      expect(fwd.loss).toBe(loss);
    });
  });

  it('InfoNCE with all logits equal is 2τ·ln(B): B=256 → 0.7763 (spec §5), zero gradient', () => {
    withIsa(isa, () => {
      const [B, E, tau] = [256, 32, 0.07];
      const q = randn(B * E, 70);
      const row = randn(E, 71);
      const k = new Float32Array(B * E);
      for (let j = 0; j < B; j++) k.set(row, j * E); // every target identical: each row's logits are equal
      const { loss, dq } = kernels.infonce(Tensor.from(q, [B, E]), Tensor.from(k, [B, E]), { tau });
      expect(loss).toBeCloseTo(0.7763, 4);
      expect(Math.abs(loss - 2 * tau * Math.log(B))).toBeLessThan(2e-6);
      expectClose(dq!.toArray(), new Float64Array(B * E), { atol: 1e-6, rtol: 0, label: 'dq equal logits' });
    });
  });

  it('InfoNCE of a perfectly separated batch is ~0', () => {
    withIsa(isa, () => {
      const [B, E] = [16, 19];
      const q = new Float32Array(B * E);
      for (let i = 0; i < B; i++) q[i * E + i] = 1 + i; // orthogonal rows, any length
      const k = new Float32Array(B * E);
      for (let i = 0; i < B; i++) k[i * E + i] = 0.5;
      const { loss, dq } = kernels.infonce(Tensor.from(q, [B, E]), Tensor.from(k, [B, E]), { tau: 0.01 });
      expect(loss).toBeGreaterThanOrEqual(0);
      expect(loss).toBeLessThan(1e-9);
      expect(dq!.toArray().every((v) => Math.abs(v) < 1e-9)).toBe(true);
    });
  });

  it.each([
    [2, 3, 0.1, 1, 1],
    [10, 7, 0.1, 1, 0.5],
    [26, 37, 0.2, 0.4, 1],
    [128, 64, 0.1, 1, 1],
  ])('NT-Xent forward and backward vs reference, R=%i E=%i tau=%d scale=%d dloss=%d', (R, E, tau, scale, dloss) => {
    withIsa(isa, () => {
      const z = randn(R * E, 100 + R);
      for (let i = R / 2; i < R; i++) for (let e = 0; e < E; e++) z[i * E + e] = z[(i - R / 2) * E + e] + 0.7 * z[i * E + e]; // views correlated
      const { loss, dz } = kernels.ntxent(Tensor.from(z, [R, E]), { tau, scale, dloss, dz: nanTensor([R, E]) });
      const expected = ref.ntxent(z, R, E, tau, scale, dloss);
      expect(Math.abs(loss - expected.loss)).toBeLessThan(1e-6 + 1e-5 * Math.abs(expected.loss));
      expectClose(dz!.toArray(), expected.grad, { atol: 1e-7, rtol: 1e-4, label: 'dz' });
      const fwd = kernels.ntxent(Tensor.from(z, [R, E]), { tau, scale, withGrad: false });
      expect(fwd.dz).toBeUndefined();
      expect(fwd.loss).toBe(loss);
    });
  });

  it('NT-Xent of R = 2 is 0 (one candidate, the positive); of 2N equal rows it is ln(2N − 1)', () => {
    withIsa(isa, () => {
      const two = kernels.ntxent(Tensor.from(randn(2 * 6, 110), [2, 6]));
      expect(two.loss).toBe(0);
      const [R, E] = [16, 8];
      const row = randn(E, 111);
      const z = new Float32Array(R * E);
      for (let i = 0; i < R; i++) z.set(row, i * E);
      const { loss, dz } = kernels.ntxent(Tensor.from(z, [R, E]), { tau: 0.5 });
      expect(Math.abs(loss - Math.log(R - 1))).toBeLessThan(1e-6);
      expectClose(dz!.toArray(), new Float64Array(R * E), { atol: 1e-6, rtol: 0, label: 'dz equal rows' });
    });
  });

  it('reductions are bit-identical for 1 and 2 threads', () => {
    withIsa(isa, () => {
      const [B, L, P] = [8, 49, 96];
      const pred = Tensor.from(randn(B * L * P, 80), [B, L, P]);
      const target = Tensor.from(randn(B * L * P, 81, 2), [B, L, P]);
      const mask = Tensor.from(randomMask(B * L, 82), [B, L]);
      const [Bq, E] = [64, 48];
      const q = Tensor.from(randn(Bq * E, 83), [Bq, E]);
      const k = Tensor.from(randn(Bq * E, 84), [Bq, E]);
      const run = () => {
        const n = kernels.normpixMse(pred, target, mask, { dloss: 0.3 });
        const c = kernels.infonce(q, k);
        const x = kernels.ntxent(q);
        return { n: n.loss, dpred: n.dpred!.toArray(), c: c.loss, dq: c.dq!.toArray(), x: x.loss, dz: x.dz!.toArray() };
      };
      const one = withThreads(1, run);
      const two = withThreads(2, run);
      expect(two.n).toBe(one.n);
      expect(two.c).toBe(one.c);
      expect(two.x).toBe(one.x);
      expect(sameBits(two.dz, one.dz)).toBe(true);
      expect(sameBits(two.dpred, one.dpred)).toBe(true);
      expect(sameBits(two.dq, one.dq)).toBe(true);
    });
  });

  it('rejects bad shapes and arguments with typed errors naming the argument', () => {
    const x = Tensor.from(randn(24, 90), [2, 3, 4]);
    expect(() => kernels.meanPoolForward(x, 3)).toThrowError(ValueError);
    expect(() => kernels.meanPoolForward(x, 3)).toThrowError(/start must be in \[0, N\) = \[0, 3\), got 3/);
    expect(() => kernels.meanPoolForward(x, 0, Tensor.empty([2, 3]))).toThrowError(/out must have shape \[2, 4\], got \[2, 3\]/);
    expect(() => kernels.meanPoolForward(Tensor.empty([6, 4]), 0)).toThrowError(ShapeError);
    expect(() => kernels.l2NormalizeForward(Tensor.empty([2, 4]), 0)).toThrowError(/eps must be a positive finite number/);
    expect(() => kernels.l2NormalizeForward(Tensor.empty([2, 4]), 1e-12, undefined, Tensor.empty([4]))).toThrowError(/norm must have shape \[2\], got \[4\]/);
    expect(() => kernels.normpixMse(x, x, Tensor.empty([3, 2]))).toThrowError(/mask must have shape \[2, 3\], got \[3, 2\]/);
    expect(() => kernels.normpixMse(x, Tensor.empty([2, 3, 4], 'int32'), Tensor.empty([2, 3]))).toThrowError(/target must be float32, got int32/);
    const one = Tensor.from(randn(6, 91), [2, 3, 1]);
    expect(() => kernels.normpixMse(one, one, Tensor.full([2, 3], 1))).toThrowError(/normPix needs at least 2 values per patch/);
    const q = Tensor.from(randn(12, 92), [3, 4]);
    expect(() => kernels.infonce(q, Tensor.empty([4, 3]))).toThrowError(/k must have shape \[3, 4\], got \[4, 3\]/);
    expect(() => kernels.infonce(q, q, { tau: 0 })).toThrowError(/tau must be a positive finite number, got 0/);
    expect(() => kernels.infonce(q, q, { dloss: Infinity })).toThrowError(/dloss must be finite/);
    expect(() => kernels.ntxent(q)).toThrowError(ShapeError);
    expect(() => kernels.ntxent(q)).toThrowError(/z must have an even number \(>= 2\) of rows, the two views' N each, .*got \[3, 4\]/);
    const z = Tensor.from(randn(16, 93), [4, 4]);
    expect(() => kernels.ntxent(z, { dz: Tensor.empty([4, 3]) })).toThrowError(/dz must have shape \[4, 4\], got \[4, 3\]/);
    expect(() => kernels.ntxent(z, { tau: -1 })).toThrowError(/tau must be a positive finite number, got -1/);
  });
});
