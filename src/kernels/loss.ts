/** Pooling, L2 normalisation, norm-pix MSE, InfoNCE, NT-Xent and softmax cross-entropy (native/ops/loss.h; spec §1.6, §2.7). */
import { Tensor, nativeOf } from '../tensor';
import { ShapeError } from '../errors';
import { kernelsNative, outputLike } from './util';

/** out (B, D) = mean of inp (B, N, D) over tokens [start, N) (start 1 skips the cls token). */
export function meanPoolForward(inp: Tensor, start = 0, out?: Tensor): Tensor {
  if (inp.shape.length !== 3) throw new ShapeError(`inp must be 3-D (B, N, D), got [${inp.shape.join(', ')}]`);
  const o = outputLike(out, [inp.shape[0], inp.shape[2]], inp);
  kernelsNative().meanPoolForward(nativeOf(o), nativeOf(inp), start);
  return o;
}

/** dinp (B, tokens, D): rows [start, tokens) = dout / (tokens − start), rows before start = 0. */
export function meanPoolBackward(dout: Tensor, tokens: number, start = 0, dinp?: Tensor): Tensor {
  if (dout.shape.length !== 2) throw new ShapeError(`dout must be 2-D (B, D), got [${dout.shape.join(', ')}]`);
  const d = outputLike(dinp, [dout.shape[0], tokens, dout.shape[1]], dout);
  kernelsNative().meanPoolBackward(nativeOf(d), nativeOf(dout), start);
  return d;
}

export interface L2NormalizeResult {
  /** (R, D): rows divided by max(‖row‖, eps). */
  out: Tensor<'float32'>;
  /** (R): ‖row‖ (unclamped), saved for the backward. */
  norm: Tensor<'float32'>;
}

/** Row-wise F.normalize of inp (R, D). `out` may be `inp` (in place). */
export function l2NormalizeForward(inp: Tensor, eps = 1e-12, out?: Tensor, norm?: Tensor): L2NormalizeResult {
  if (inp.shape.length !== 2) throw new ShapeError(`inp must be 2-D (R, D), got [${inp.shape.join(', ')}]`);
  const o = outputLike(out, inp.shape, inp);
  const n = outputLike(norm, [inp.shape[0]], inp);
  kernelsNative().l2NormalizeForward(nativeOf(o), nativeOf(n), nativeOf(inp), eps);
  return { out: o, norm: n };
}

/** dinp = d(F.normalize)/d inp applied to dout; `norm` is the forward's saved norm. */
export function l2NormalizeBackward(dout: Tensor, inp: Tensor, norm: Tensor, eps = 1e-12, dinp?: Tensor): Tensor {
  const d = outputLike(dinp, inp.shape, inp);
  kernelsNative().l2NormalizeBackward(nativeOf(d), nativeOf(dout), nativeOf(inp), nativeOf(norm), eps);
  return d;
}

export interface NormpixMseOptions {
  /** Normalise each target patch by its mean and unbiased variance (MAE's norm_pix_loss). Default true. */
  normPix?: boolean;
  /** Added to the variance. Default 1e-6. */
  eps?: number;
  /** Upstream gradient of the loss (the loss weight). Default 1. */
  dloss?: number;
  /** Compute dpred. Default true. */
  withGrad?: boolean;
  /** Output for the gradient (B, L, P), allocated when omitted. */
  dpred?: Tensor;
}

export interface NormpixMseResult {
  loss: number;
  /** dloss · d loss / d pred (zero on visible patches); undefined when withGrad is false. */
  dpred?: Tensor<'float32'>;
}

/**
 * Masked (normalised-pixel) reconstruction loss, spec §1.6. pred, target: (B, L, P) with target =
 * patchify(image); mask (B, L), 1 = masked (reconstructed), 0 = visible (ignored).
 */
export function normpixMse(pred: Tensor, target: Tensor, mask: Tensor, options: NormpixMseOptions = {}): NormpixMseResult {
  const { normPix = true, eps = 1e-6, dloss = 1, withGrad = true } = options;
  const dpred = withGrad ? outputLike(options.dpred, pred.shape, pred) : undefined;
  const loss = kernelsNative().normpixMseForwardBackward(nativeOf(dpred) ?? null, nativeOf(pred), nativeOf(target), nativeOf(mask), normPix, eps, dloss);
  return { loss, dpred };
}

export interface InfonceOptions {
  /** Temperature τ. Default 0.07. */
  tau?: number;
  /** Loss multiplier; CMAE uses 2τ (MoCo v3). Default 2·tau. */
  scale?: number;
  /** Upstream gradient of the loss. Default 1. */
  dloss?: number;
  /** Compute dq. Default true. */
  withGrad?: boolean;
  /** Output for the gradient (B, E), allocated when omitted. */
  dq?: Tensor;
}

export interface InfonceResult {
  loss: number;
  /** dloss · d loss / d q (k is a constant target); undefined when withGrad is false. */
  dq?: Tensor<'float32'>;
}

/**
 * CMAE's InfoNCE (spec §2.7): rows of q (B, E) against rows of k (B, E), both L2-normalised,
 * logits q̂·k̂ᵀ/τ, label i for row i, loss = scale · mean cross-entropy.
 */
export function infonce(q: Tensor, k: Tensor, options: InfonceOptions = {}): InfonceResult {
  const { tau = 0.07, dloss = 1, withGrad = true } = options;
  const scale = options.scale ?? 2 * tau;
  const dq = withGrad ? outputLike(options.dq, q.shape, q) : undefined;
  const loss = kernelsNative().infonceForwardBackward(nativeOf(dq) ?? null, nativeOf(q), nativeOf(k), tau, scale, dloss);
  return { loss, dq };
}

export interface NtxentOptions {
  /** Temperature τ. Default 0.1. */
  tau?: number;
  /** Loss multiplier. Default 1 (SimCLR's NT-Xent). */
  scale?: number;
  /** Upstream gradient of the loss. Default 1. */
  dloss?: number;
  /** Compute dz. Default true. */
  withGrad?: boolean;
  /** Output for the gradient (2N, E), allocated when omitted. */
  dz?: Tensor;
}

export interface NtxentResult {
  loss: number;
  /** dloss · d loss / d z through both roles of each row (anchor and candidate); undefined when withGrad is false. */
  dz?: Tensor<'float32'>;
}

/**
 * SimCLR's NT-Xent over 2N samples: z (2N, E) holds view 1's N rows, then view 2's; rows are
 * L2-normalised, row i's positive is its other view (i ± N) and its candidates all 2N − 1 other
 * rows; loss = scale · mean cross-entropy of the similarities / τ.
 */
export function ntxent(z: Tensor, options: NtxentOptions = {}): NtxentResult {
  const { tau = 0.1, scale = 1, dloss = 1, withGrad = true } = options;
  const dz = withGrad ? outputLike(options.dz, z.shape, z) : undefined;
  const loss = kernelsNative().ntxentForwardBackward(nativeOf(dz) ?? null, nativeOf(z), tau, scale, dloss);
  return { loss, dz };
}

export interface SoftmaxCrossEntropyOptions {
  /** Upstream gradient of the loss. Default 1. */
  dloss?: number;
  /** Compute dlogits. Default true. */
  withGrad?: boolean;
  /** Output for the gradient (B, C), allocated when omitted. */
  dlogits?: Tensor;
}

export interface SoftmaxCrossEntropyResult {
  loss: number;
  /** dloss · d loss / d logits; undefined when withGrad is false. */
  dlogits?: Tensor<'float32'>;
}

/**
 * The classifier's loss: mean over rows of −Σ_c targets_c · log softmax(logits)_c, logits and
 * targets (B, C). Targets are distributions (one-hot, label-smoothed, mixup blends): see
 * `softTargets` in src/train/finetune.ts.
 */
export function softmaxCrossEntropy(logits: Tensor, targets: Tensor, options: SoftmaxCrossEntropyOptions = {}): SoftmaxCrossEntropyResult {
  const { dloss = 1, withGrad = true } = options;
  const dlogits = withGrad ? outputLike(options.dlogits, logits.shape, logits) : undefined;
  const loss = kernelsNative().softmaxCrossEntropyForwardBackward(nativeOf(dlogits) ?? null, nativeOf(logits), nativeOf(targets), dloss);
  return { loss, dlogits };
}
