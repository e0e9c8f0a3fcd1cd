import { describe, expect, it } from 'vitest';
import { ShapeError, Tensor, ValueError, getNumThreads, kernels, setNumThreads } from '../../src/index';
import { dot, expectClose, isas, skipWithoutIsa, makeRng, randn, toF64, withIsa, withThreads, expectSameBits, nanTensor } from '../helpers/check';
import * as ref from '../reference/attention';

// (B, N, D, H): one token and one head; tiny odd sizes (hd = 4: less than a vector); 21 tokens
// (CMAE's visible tokens), hd = 16; the ViT-Tiny-ish block (65 tokens, hd = 64); 50 tokens, 4 heads;
// hd = 32 (the one head size whose scale 32^-0.5 is not a power of two). No N is a multiple of 8.
type Dims = [number, number, number, number];
const shapes: Dims[] = [
  [1, 1, 4, 1],
  [2, 5, 12, 3],
  [3, 21, 48, 3],
  [2, 65, 192, 3],
  [1, 50, 64, 4],
  [2, 21, 128, 4],
];

interface Case {
  qkv: Float32Array;
  dout: Float32Array;
}

function makeCase([B, N, D]: Dims, seed: number, scale = 1): Case {
  return { qkv: randn(B * N * 3 * D, seed, scale), dout: randn(B * N * D, seed + 1) };
}

interface Run {
  out: Float32Array;
  att: Float32Array;
  dqkv: Float32Array;
}

/** Forward then backward through the kernels, every output pre-filled with NaN. */
function run([B, N, D, H]: Dims, c: Case): Run {
  const qkv = Tensor.from(c.qkv, [B, N, 3 * D]);
  const { out, att } = kernels.attentionForward(qkv, H, { out: nanTensor([B, N, D]), att: nanTensor([B, H, N, N]) });
  const dqkv = kernels.attentionBackward(Tensor.from(c.dout, [B, N, D]), qkv, att, H, nanTensor([B, N, 3 * D]));
  return { out: out.toArray() as Float32Array, att: att.toArray() as Float32Array, dqkv: dqkv.toArray() as Float32Array };
}

function absMax(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const label = (d: Dims) => `B=${d[0]} N=${d[1]} D=${d[2]} H=${d[3]}`;

describe('attention reference', () => {
  it.each(shapes.map((d) => [label(d), d] as const))('backward agrees with finite differences of Σ dout·out, %s', (_, dims) => {
    const [B, N, D, H] = dims;
    const c = makeCase(dims, 7 + N);
    const x = toF64(c.qkv);
    const analytic = ref.attentionBackward(c.dout, x, B, N, D, H);
    // Every entry for the small shapes, a seeded sample of 48 for the others.
    const all = x.length <= 400;
    const rng = makeRng(100 + N);
    const idx = all ? Array.from(x, (_, i) => i) : Array.from({ length: 48 }, () => Math.floor(rng() * x.length));
    const loss = () => dot(ref.attentionForward(x, B, N, D, H).out, c.dout);
    const eps = 1e-6;
    const fd = idx.map((i) => {
      const saved = x[i];
      x[i] = saved + eps;
      const plus = loss();
      x[i] = saved - eps;
      const minus = loss();
      x[i] = saved;
      return (plus - minus) / (2 * eps);
    });
    expectClose(fd, idx.map((i) => analytic[i]), { atol: 1e-7, rtol: 1e-6, label: 'fd dqkv' });
  });
});

describe.each(isas())('attention (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each(shapes.map((d) => [label(d), d] as const))('forward and backward match the float64 reference, %s', (_, dims) => {
    withIsa(isa, () => {
      const [B, N, D, H] = dims;
      const c = makeCase(dims, 31 + N + D);
      const r = run(dims, c);
      const f = ref.attentionForward(c.qkv, B, N, D, H);
      expectClose(r.att, f.att, { atol: 2e-7, rtol: 1e-5, label: 'att' });
      expectClose(r.out, f.out, { atol: 1e-6, rtol: 1e-5, label: 'out' });
      expectClose(r.dqkv, ref.attentionBackward(c.dout, c.qkv, B, N, D, H), { atol: 2e-6, rtol: 1e-5, label: 'dqkv' });
      // Each row of att is a probability distribution.
      const sums = Array.from({ length: B * H * N }, (_, row) => r.att.subarray(row * N, (row + 1) * N).reduce((s, p) => s + p, 0));
      expectClose(sums, new Array(B * H * N).fill(1), { atol: 2e-6, rtol: 0, label: 'row sums' });
    });
  });

  it('large scores (inputs x30: near one-hot rows) stay finite and match the reference', () => {
    withIsa(isa, () => {
      for (const dims of [[2, 65, 192, 3], [3, 21, 48, 3]] as Dims[]) {
        const [B, N, D, H] = dims;
        const c = makeCase(dims, 5 + N, 30);
        const r = run(dims, c);
        const f = ref.attentionForward(c.qkv, B, N, D, H);
        // Scores reach ~1e3: float32 rounding moves a score by ~1e-3 absolute, so probabilities
        // move by ~1e-4 and out/dqkv by ~1e-4 of their largest magnitude (|v| ~ 30).
        expectClose(r.att, f.att, { atol: 5e-4, rtol: 0, label: 'att x30' });
        expectClose(r.out, f.out, { atol: 3e-4 * absMax(f.out), rtol: 1e-3, label: 'out x30' });
        const g = ref.attentionBackward(c.dout, c.qkv, B, N, D, H);
        expectClose(r.dqkv, g, { atol: 1e-3 * absMax(g), rtol: 1e-3, label: 'dqkv x30' });
      }
    });
  });

  it('results do not depend on the thread count (bit-identical with 1 and 2 threads)', () => {
    withIsa(isa, () => {
      for (const dims of [[2, 65, 192, 3], [16, 21, 48, 3]] as Dims[]) {
        const c = makeCase(dims, 3);
        const one = withThreads(1, () => run(dims, c));
        const two = withThreads(2, () => run(dims, c));
        expectSameBits(one.out, two.out, `out ${label(dims)}`);
        expectSameBits(one.att, two.att, `att ${label(dims)}`);
        expectSameBits(one.dqkv, two.dqkv, `dqkv ${label(dims)}`);
      }
    });
  });
});

describe('attention argument checks', () => {
  const qkv = Tensor.from(randn(2 * 5 * 36, 1), [2, 5, 36]); // D = 12
  const dout = Tensor.from(randn(2 * 5 * 12, 2), [2, 5, 12]);

  it('allocates outputs of the right shapes', () => {
    const { out, att } = kernels.attentionForward(qkv, 3);
    expect(out.shape).toEqual([2, 5, 12]);
    expect(att.shape).toEqual([2, 3, 5, 5]);
    expect(kernels.attentionBackward(dout, qkv, att, 3).shape).toEqual([2, 5, 36]);
  });

  it('rejects bad shapes with a ShapeError naming the argument and keeps the process alive', () => {
    expect(() => kernels.attentionForward(qkv, 5)).toThrowError(ShapeError);
    expect(() => kernels.attentionForward(qkv, 5)).toThrowError(/qkv has D = 12 .*not divisible by heads = 5/);
    expect(() => kernels.attentionForward(Tensor.empty([2, 5, 35]), 1)).toThrowError(/qkv must have shape \(B, N, 3D\)/);
    expect(() => kernels.attentionForward(Tensor.empty([10, 36]), 1)).toThrowError(/qkv must have shape \(B, N, 3D\)/);
    expect(() => kernels.attentionForward(qkv, 3, { out: Tensor.empty([2, 5, 36]) })).toThrowError(/out must have shape \[2, 5, 12\], got \[2, 5, 36\]/);
    expect(() => kernels.attentionForward(qkv, 3, { att: Tensor.empty([2, 5, 5]) })).toThrowError(/att must have shape \[2, 3, 5, 5\], got \[2, 5, 5\]/);
    expect(() => kernels.attentionForward(qkv, 0)).toThrowError(ValueError);
    const { att } = kernels.attentionForward(qkv, 3);
    expect(() => kernels.attentionBackward(dout, qkv, att, 2)).toThrowError(/att must have shape \[2, 2, 5, 5\], got \[2, 3, 5, 5\]/);
    expect(() => kernels.attentionBackward(Tensor.empty([2, 5, 36]), qkv, att, 3)).toThrowError(/dout must have shape \[2, 5, 12\]/);
    expect(() => kernels.attentionBackward(dout, qkv, att, 3, Tensor.empty([2, 5, 12]))).toThrowError(/dqkv must have shape \[2, 5, 36\], got \[2, 5, 12\]/);
    expect(() => kernels.attentionForward(Tensor.empty([2, 5, 36], 'int32'), 3)).toThrowError(/qkv must be float32, got int32/);
    // Still usable afterwards.
    expect(kernels.attentionForward(qkv, 3).out.toArray().every(Number.isFinite)).toBe(true);
  });
});
