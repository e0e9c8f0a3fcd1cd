/** Normalisation layers: LayerNorm and BatchNorm1d (native/ops/norm.h). */
import { Tensor, nativeOf } from '../tensor';
import { kernelsNative, outputLike, zerosLike } from './util';

/** Forward outputs of a normalisation: `out`, and `mean`/`rstd` (rstd = 1/sqrt(var + eps)) saved for backward. */
export interface NormForwardResult {
  out: Tensor;
  mean: Tensor;
  rstd: Tensor;
}

export interface LayernormForwardOptions {
  /** Added to the variance (default 1e-6, the ViT/MAE setting). */
  eps?: number;
  out?: Tensor;
  /** Per-row mean, shape = the leading dims of `inp` (or flat [rows]). */
  mean?: Tensor;
  /** Per-row 1/sqrt(var + eps), same shape as `mean`. */
  rstd?: Tensor;
}

/** LayerNorm over the last dim of `inp` (..., C): out = (x − mean)·rstd·weight + bias, biased variance. */
export function layernormForward(inp: Tensor, weight: Tensor, bias: Tensor, options: LayernormForwardOptions = {}): NormForwardResult {
  const { eps = 1e-6 } = options;
  const rows = inp.shape.slice(0, -1);
  const out = outputLike(options.out, inp.shape, inp);
  const mean = outputLike(options.mean, rows, inp);
  const rstd = outputLike(options.rstd, rows, inp);
  kernelsNative().layernormForward(nativeOf(out), nativeOf(mean), nativeOf(rstd), nativeOf(inp), nativeOf(weight), nativeOf(bias), eps);
  return { out, mean, rstd };
}

export interface LayernormBackwardOptions {
  /** Overwritten, or added to when `accumulate` is true (allocated zero-filled then). */
  dinp?: Tensor;
  /** Accumulated (+=); allocated zero-filled when omitted. */
  dweight?: Tensor;
  /** Accumulated (+=); allocated zero-filled when omitted. */
  dbias?: Tensor;
  /** Add into `dinp` instead of overwriting it (the residual-stream case). Default false. */
  accumulate?: boolean;
}

export interface LayernormBackwardResult {
  dinp: Tensor;
  dweight: Tensor;
  dbias: Tensor;
}

/** Gradients of layernormForward; `mean` and `rstd` are the ones it returned. */
export function layernormBackward(
  dout: Tensor,
  inp: Tensor,
  weight: Tensor,
  mean: Tensor,
  rstd: Tensor,
  options: LayernormBackwardOptions = {},
): LayernormBackwardResult {
  const { accumulate = false } = options;
  const dinp = options.dinp ?? (accumulate ? zerosLike(inp.shape, inp) : outputLike(undefined, inp.shape, inp));
  const dweight = options.dweight ?? zerosLike(weight.shape, weight);
  const dbias = options.dbias ?? zerosLike(weight.shape, weight);
  kernelsNative().layernormBackward(
    nativeOf(dinp),
    nativeOf(dweight),
    nativeOf(dbias),
    nativeOf(dout),
    nativeOf(inp),
    nativeOf(weight),
    nativeOf(mean),
    nativeOf(rstd),
    accumulate,
  );
  return { dinp, dweight, dbias };
}

/** Channel count of a (B, C) batch (the native side checks the rank). */
function channels(inp: Tensor): number {
  return inp.shape[inp.shape.length - 1] ?? 0;
}

export interface BatchnormForwardOptions {
  /** Per-channel scale (C); omitted = affine=False (identity). */
  weight?: Tensor;
  /** Per-channel shift (C); omitted = affine=False (zero). */
  bias?: Tensor;
  /** Updated in place: r = (1 − momentum)·r + momentum·batch mean. */
  runningMean?: Tensor;
  /** Updated in place with the unbiased batch variance (B/(B−1)). */
  runningVar?: Tensor;
  /** Default 1e-5 (torch.nn.BatchNorm1d). */
  eps?: number;
  /** Default 0.1 (torch.nn.BatchNorm1d). */
  momentum?: number;
  out?: Tensor;
  mean?: Tensor;
  rstd?: Tensor;
}

/** BatchNorm1d in training mode over `inp` (B, C), B >= 2: batch statistics, biased variance. */
export function batchnormForward(inp: Tensor, options: BatchnormForwardOptions = {}): NormForwardResult {
  const { eps = 1e-5, momentum = 0.1 } = options;
  const c = channels(inp);
  const out = outputLike(options.out, inp.shape, inp);
  const mean = outputLike(options.mean, [c], inp);
  const rstd = outputLike(options.rstd, [c], inp);
  kernelsNative().batchnormForward(
    nativeOf(out),
    nativeOf(mean),
    nativeOf(rstd),
    nativeOf(options.runningMean),
    nativeOf(options.runningVar),
    nativeOf(inp),
    nativeOf(options.weight),
    nativeOf(options.bias),
    eps,
    momentum,
  );
  return { out, mean, rstd };
}

export interface BatchnormBackwardOptions {
  /** The forward's weight; omitted = affine=False (then no dweight/dbias unless passed). */
  weight?: Tensor;
  dinp?: Tensor;
  /** Accumulated (+=); allocated zero-filled when omitted and `weight` is given. */
  dweight?: Tensor;
  /** Accumulated (+=); allocated zero-filled when omitted and `weight` is given. */
  dbias?: Tensor;
}

export interface BatchnormBackwardResult {
  dinp: Tensor;
  dweight?: Tensor;
  dbias?: Tensor;
}

/** Gradients of batchnormForward (training mode); `mean` and `rstd` are the ones it returned. */
export function batchnormBackward(
  dout: Tensor,
  inp: Tensor,
  mean: Tensor,
  rstd: Tensor,
  options: BatchnormBackwardOptions = {},
): BatchnormBackwardResult {
  const { weight } = options;
  const c = channels(inp);
  const dinp = outputLike(options.dinp, inp.shape, inp);
  const dweight = options.dweight ?? (weight ? zerosLike([c], weight) : undefined);
  const dbias = options.dbias ?? (weight ? zerosLike([c], weight) : undefined);
  kernelsNative().batchnormBackward(
    nativeOf(dinp),
    nativeOf(dweight),
    nativeOf(dbias),
    nativeOf(dout),
    nativeOf(inp),
    nativeOf(weight),
    nativeOf(mean),
    nativeOf(rstd),
  );
  return { dinp, dweight, dbias };
}

export interface BatchnormInferenceOptions {
  weight?: Tensor;
  bias?: Tensor;
  /** Default 1e-5. */
  eps?: number;
  out?: Tensor;
}

/** BatchNorm1d in eval mode: out = (x − runningMean)/sqrt(runningVar + eps)·weight + bias. */
export function batchnormInference(inp: Tensor, runningMean: Tensor, runningVar: Tensor, options: BatchnormInferenceOptions = {}): Tensor {
  const { eps = 1e-5 } = options;
  const out = outputLike(options.out, inp.shape, inp);
  kernelsNative().batchnormInference(
    nativeOf(out),
    nativeOf(inp),
    nativeOf(runningMean),
    nativeOf(runningVar),
    nativeOf(options.weight),
    nativeOf(options.bias),
    eps,
  );
  return out;
}
