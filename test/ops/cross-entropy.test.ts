// The classifier's softmax cross-entropy kernel (native/ops/loss.h) against a float64 reference,
// which is itself checked by central finite differences.
import { describe, expect, it } from 'vitest';
import { ShapeError, Tensor, kernels } from '../../src/index';
import { expectClose, finiteDifference, isas, skipWithoutIsa, makeRng, randn, sameBits, toF64, withIsa, withThreads, nanTensor } from '../helpers/check';
import * as ref from '../reference/loss';

/** Soft targets (B, C): label smoothing ε, and with `mixed` a blend of two labels (mixup's). */
function softTargets(B: number, C: number, seed: number, smoothing: number, mixed: boolean): Float32Array {
  const rng = makeRng(seed);
  const t = new Float32Array(B * C).fill(smoothing / C);
  for (let b = 0; b < B; b++) {
    const lam = mixed ? rng() : 1;
    t[b * C + Math.floor(rng() * C)] += lam * (1 - smoothing);
    if (mixed) t[b * C + Math.floor(rng() * C)] += (1 - lam) * (1 - smoothing);
  }
  return t;
}

describe('softmax cross-entropy reference', () => {
  it.each([false, true])('agrees with central finite differences w.r.t. the logits (mixed targets: %s)', (mixed) => {
    const [B, C] = [4, 6];
    const logits = toF64(randn(B * C, 1, 2));
    const targets = softTargets(B, C, 2, 0.1, mixed);
    const fd = finiteDifference((v) => 0.7 * ref.softmaxCrossEntropy(v, targets, B, C).loss, logits);
    expectClose(fd, ref.softmaxCrossEntropy(logits, targets, B, C, 0.7).grad, { atol: 1e-8, rtol: 1e-6, label: 'fd cross-entropy' });
  });

  it('known answers: uniform logits give ln C, a one-hot target on a dominant logit ~0', () => {
    const [B, C] = [3, 10];
    const uniform = ref.softmaxCrossEntropy(new Float64Array(B * C), softTargets(B, C, 3, 0, false), B, C);
    expect(uniform.loss).toBeCloseTo(Math.log(C), 12);
    const logits = new Float64Array(C);
    logits[4] = 50;
    const target = new Float64Array(C);
    target[4] = 1;
    expect(ref.softmaxCrossEntropy(logits, target, 1, C).loss).toBeLessThan(1e-20);
  });
});

describe.each(isas())('softmax cross-entropy kernel (%s)', (isa) => {
  skipWithoutIsa(isa);
  it.each([
    [1, 1, 0, false, 1],
    [8, 10, 0, false, 1],
    [8, 10, 0.1, false, 0.5],
    [8, 10, 0.1, true, 1],
    [3, 1000, 0.1, true, 2],
    [33, 7, 0.2, true, 1],
  ])('forward and backward vs float64, B=%i C=%i smoothing=%d mixed=%s dloss=%d', (B, C, smoothing, mixed, dloss) => {
    withIsa(isa, () => {
      const logits = randn(B * C, 10 + B, 3);
      const targets = softTargets(B, C, 20 + C, smoothing, mixed);
      const { loss, dlogits } = kernels.softmaxCrossEntropy(Tensor.from(logits, [B, C]), Tensor.from(targets, [B, C]), {
        dloss,
        dlogits: nanTensor([B, C]),
      });
      const want = ref.softmaxCrossEntropy(logits, targets, B, C, dloss);
      expect(Math.abs(loss - want.loss)).toBeLessThan(1e-6 + 1e-6 * Math.abs(want.loss));
      expectClose(dlogits!.toArray(), want.grad, { atol: 1e-8, rtol: 1e-6, label: 'dlogits' });
      const fwd = kernels.softmaxCrossEntropy(Tensor.from(logits, [B, C]), Tensor.from(targets, [B, C]), { withGrad: false });
      expect(fwd.dlogits).toBeUndefined();
      expect(fwd.loss).toBe(loss);
    });
  });

  it('large logits stay finite (the log-sum-exp is shifted by the row max)', () => {
    withIsa(isa, () => {
      const [B, C] = [4, 10];
      const logits = randn(B * C, 30, 80);
      const targets = softTargets(B, C, 31, 0.1, false);
      const { loss, dlogits } = kernels.softmaxCrossEntropy(Tensor.from(logits, [B, C]), Tensor.from(targets, [B, C]));
      const want = ref.softmaxCrossEntropy(logits, targets, B, C);
      expect(Number.isFinite(loss)).toBe(true);
      expect(Math.abs(loss - want.loss)).toBeLessThan(1e-6 * Math.abs(want.loss));
      expectClose(dlogits!.toArray(), want.grad, { atol: 1e-8, rtol: 1e-6, label: 'dlogits' });
    });
  });

  it('is bit-identical for 1 and 2 threads', () => {
    withIsa(isa, () => {
      const [B, C] = [512, 100];
      const logits = Tensor.from(randn(B * C, 40, 2), [B, C]);
      const targets = Tensor.from(softTargets(B, C, 41, 0.1, true), [B, C]);
      const run = () => {
        const r = kernels.softmaxCrossEntropy(logits, targets);
        return { loss: r.loss, d: r.dlogits!.toArray() };
      };
      const one = withThreads(1, run);
      const two = withThreads(2, run);
      expect(two.loss).toBe(one.loss);
      expect(sameBits(two.d, one.d)).toBe(true);
    });
  });

  it('rejects bad shapes and arguments with typed errors naming the argument', () => {
    const logits = Tensor.from(randn(12, 50), [3, 4]);
    expect(() => kernels.softmaxCrossEntropy(logits, Tensor.empty([4, 3]))).toThrowError(ShapeError);
    expect(() => kernels.softmaxCrossEntropy(logits, Tensor.empty([4, 3]))).toThrowError(/targets must have shape \[3, 4\], got \[4, 3\]/);
    expect(() => kernels.softmaxCrossEntropy(Tensor.empty([12]), Tensor.empty([12]))).toThrowError(/logits must be/);
    expect(() => kernels.softmaxCrossEntropy(logits, logits, { dlogits: Tensor.empty([3, 3]) })).toThrowError(/dlogits must have shape \[3, 4\]/);
    expect(() => kernels.softmaxCrossEntropy(logits, logits, { dloss: Infinity })).toThrowError(/dloss must be finite/);
  });
});
