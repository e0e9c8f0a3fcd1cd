/** Matrix multiply family: SGEMM and the fully connected layer (native/ops/linear.h). */
import { ShapeError, ValueError } from '../errors';
import { Tensor, nativeOf } from '../tensor';
import { kernelsNative, outputLike, zerosLike } from './util';

export interface MatmulOptions {
  /** Use Aᵀ: `a` is stored [K, M]. */
  transA?: boolean;
  /** Use Bᵀ: `b` is stored [N, K]. */
  transB?: boolean;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Scale of the previous contents of `out` (default 0: `out` is not read). Needs `out` when not 0. */
  beta?: number;
  /** Output [M, N]; allocated when omitted. */
  out?: Tensor;
}

function expectRank(t: Tensor, rank: number, name: string, layout: string): void {
  if (t.shape.length !== rank) throw new ShapeError(`${name} must be ${rank}-D ${layout}, got [${t.shape.join(', ')}]`);
}

/**
 * C = alpha · op(A) · op(B) + beta · C, row-major 2-D float32 tensors (A is `a`, B is `b`, C is
 * `opts.out`). Deterministic: bit-identical results for any thread count. Returns C.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false, alpha = 1, beta = 0 } = opts;
  expectRank(a, 2, 'A', transA ? '[K, M] (transA)' : '[M, K]');
  expectRank(b, 2, 'B', transB ? '[N, K] (transB)' : '[K, N]');
  if (beta !== 0 && opts.out === undefined) throw new ValueError(`beta = ${beta} needs an existing output: pass opts.out`);
  const m = transA ? a.shape[1] : a.shape[0];
  const n = transB ? b.shape[0] : b.shape[1];
  const c = outputLike(opts.out, [m, n], a);
  kernelsNative().sgemm(nativeOf(c), nativeOf(a), nativeOf(b), transA, transB, alpha, beta);
  return c;
}

/** out[..., OC] = inp[..., C] · weightᵀ + bias, weight [OC, C] (PyTorch layout), bias [OC] optional. */
export function linearForward(inp: Tensor, weight: Tensor, bias?: Tensor | null, out?: Tensor): Tensor {
  expectRank(weight, 2, 'weight', '[OC, C]');
  if (inp.shape.length < 1) throw new ShapeError('inp must have at least 1 dimension [..., C], got []');
  const o = outputLike(out, [...inp.shape.slice(0, -1), weight.shape[0]], inp);
  kernelsNative().linearForward(nativeOf(o), nativeOf(inp), nativeOf(weight), nativeOf(bias) ?? null);
  return o;
}

export interface LinearBackwardOptions {
  /** Input gradient [..., C], overwritten; allocated when omitted, not computed when null. */
  dinp?: Tensor | null;
  /** Weight gradient [OC, C], ACCUMULATED (+=); a zero-filled one is allocated when omitted. */
  dweight?: Tensor;
  /** Bias gradient [OC], ACCUMULATED (+=); a zero-filled one is allocated when omitted and hasBias. */
  dbias?: Tensor | null;
  /** Whether the layer has a bias (default true); ignored when `dbias` is given. */
  hasBias?: boolean;
}

export interface LinearGrads {
  dinp: Tensor | null;
  dweight: Tensor;
  dbias: Tensor | null;
}

/**
 * Backward of linearForward: dinp = dout · weight (overwritten), dweight += doutᵀ · inp and
 * dbias += Σ_rows dout. The parameter gradients accumulate so several calls can add into one
 * buffer; when not passed they are allocated zero-filled (so they hold just this call's gradient).
 * The sums do not depend on the thread count.
 */
export function linearBackward(dout: Tensor, inp: Tensor, weight: Tensor, opts: LinearBackwardOptions = {}): LinearGrads {
  expectRank(weight, 2, 'weight', '[OC, C]');
  const dinp = opts.dinp === null ? null : outputLike(opts.dinp, inp.shape, inp);
  const dweight = opts.dweight ?? zerosLike(weight.shape, weight);
  const dbias = opts.dbias !== undefined ? opts.dbias : opts.hasBias === false ? null : zerosLike([weight.shape[0]], weight);
  kernelsNative().linearBackward(nativeOf(dinp) ?? null, nativeOf(dweight), nativeOf(dbias) ?? null, nativeOf(dout), nativeOf(inp), nativeOf(weight));
  return { dinp, dweight, dbias };
}

export interface LinearGeluOutputs {
  /** The pre-activation inp · weightᵀ + bias, or null when it was not kept. */
  pre: Tensor | null;
  /** GELU(pre). */
  out: Tensor;
}

/**
 * A Linear layer followed by GELU (a ViT MLP's fc1) in one pass: the GELU runs in the GEMM's
 * epilogue while each block of the product is in cache. pre = inp · weightᵀ + bias and
 * out = GELU(pre), bit-identical to linearForward followed by geluForward. `keepPre: false` skips
 * the pre-activation (inference: only `out` is written and returned).
 */
export function linearGeluForward(
  inp: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  opts: { keepPre?: boolean; pre?: Tensor; out?: Tensor } = {},
): LinearGeluOutputs {
  expectRank(weight, 2, 'weight', '[OC, C]');
  if (inp.shape.length < 1) throw new ShapeError('inp must have at least 1 dimension [..., C], got []');
  const shape = [...inp.shape.slice(0, -1), weight.shape[0]];
  const out = outputLike(opts.out, shape, inp);
  const pre = opts.keepPre === false ? null : outputLike(opts.pre, shape, inp);
  kernelsNative().linearGeluForward(nativeOf(pre) ?? null, nativeOf(out), nativeOf(inp), nativeOf(weight), nativeOf(bias) ?? null);
  return { pre, out };
}

export interface GeluLinearGrads {
  dpre: Tensor;
  dweight: Tensor;
  dbias: Tensor | null;
}

/**
 * Backward of out = Linear(GELU(pre)) (a ViT MLP's GELU + fc2) in one pass over the input
 * gradient: dpre = (dout · weight) ⊙ GELU'(pre) (overwritten), dweight += doutᵀ · act and
 * dbias += Σ_rows dout, where act = GELU(pre) is the Linear's input. Bit-identical to
 * linearBackward followed by geluBackward. Parameter gradients accumulate as in linearBackward.
 */
export function geluLinearBackward(
  dout: Tensor,
  act: Tensor,
  pre: Tensor,
  weight: Tensor,
  opts: { dpre?: Tensor; dweight?: Tensor; dbias?: Tensor | null; hasBias?: boolean } = {},
): GeluLinearGrads {
  expectRank(weight, 2, 'weight', '[OC, C]');
  const dpre = outputLike(opts.dpre, act.shape, act);
  const dweight = opts.dweight ?? zerosLike(weight.shape, weight);
  const dbias = opts.dbias !== undefined ? opts.dbias : opts.hasBias === false ? null : zerosLike([weight.shape[0]], weight);
  kernelsNative().geluLinearBackward(
    nativeOf(dpre),
    nativeOf(dweight),
    nativeOf(dbias) ?? null,
    nativeOf(dout),
    nativeOf(act),
    nativeOf(pre),
    nativeOf(weight),
  );
  return { dpre, dweight, dbias };
}
