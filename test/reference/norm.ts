/**
 * Float64 references for LayerNorm and BatchNorm1d (PyTorch semantics), written from the
 * definitions, independently of the native code: statistics by plain two-pass sums, gradients from
 * the textbook formulas (checked against finite differences in test/ops/norm.test.ts).
 */

export interface NormRef {
  out: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export interface NormGradRef {
  dinp: Float64Array;
  dweight: Float64Array;
  dbias: Float64Array;
}

/** Mean and biased variance of n values read through at(i). */
function moments(n: number, at: (i: number) => number): { mean: number; variance: number } {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += at(i);
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (at(i) - mean) ** 2;
  return { mean, variance: sq / n };
}

/** LayerNorm of x (R, C) over C: out = (x − μ)/sqrt(σ² + eps)·w + b. */
export function layernorm(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, R: number, C: number, eps: number): NormRef {
  const out = new Float64Array(R * C);
  const mean = new Float64Array(R);
  const rstd = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    const { mean: mu, variance } = moments(C, (c) => x[r * C + c]);
    const rs = 1 / Math.sqrt(variance + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < C; c++) out[r * C + c] = (x[r * C + c] - mu) * rs * w[c] + b[c];
  }
  return { out, mean, rstd };
}

/**
 * Gradients of L = Σ dout·layernorm(x) with statistics recomputed in float64:
 *   x̂ = (x − μ)·rstd, g = dout·w,  dx = rstd·(g − mean_c(g) − x̂·mean_c(g·x̂)),
 *   dw = Σ_r dout·x̂,  db = Σ_r dout.
 */
export function layernormBackward(dout: ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number>, R: number, C: number, eps: number): NormGradRef {
  const dinp = new Float64Array(R * C);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  const { mean, rstd } = layernorm(x, w, new Float64Array(C), R, C, eps);
  const xhat = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    let gMean = 0;
    let gxMean = 0;
    for (let c = 0; c < C; c++) {
      xhat[c] = (x[r * C + c] - mean[r]) * rstd[r];
      const g = dout[r * C + c] * w[c];
      gMean += g / C;
      gxMean += (g * xhat[c]) / C;
      dweight[c] += dout[r * C + c] * xhat[c];
      dbias[c] += dout[r * C + c];
    }
    for (let c = 0; c < C; c++) dinp[r * C + c] = rstd[r] * (dout[r * C + c] * w[c] - gMean - xhat[c] * gxMean);
  }
  return { dinp, dweight, dbias };
}

export interface BatchnormRef extends NormRef {
  /** Unbiased batch variance per channel (what PyTorch folds into running_var). */
  varUnbiased: Float64Array;
}

/** BatchNorm1d, training mode, over x (B, C); w/b null = affine=False. */
export function batchnorm(x: ArrayLike<number>, w: ArrayLike<number> | null, b: ArrayLike<number> | null, B: number, C: number, eps: number): BatchnormRef {
  const out = new Float64Array(B * C);
  const mean = new Float64Array(C);
  const rstd = new Float64Array(C);
  const varUnbiased = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const { mean: mu, variance } = moments(B, (r) => x[r * C + c]);
    const rs = 1 / Math.sqrt(variance + eps);
    mean[c] = mu;
    rstd[c] = rs;
    varUnbiased[c] = (variance * B) / (B - 1);
    for (let r = 0; r < B; r++) out[r * C + c] = (x[r * C + c] - mu) * rs * (w ? w[c] : 1) + (b ? b[c] : 0);
  }
  return { out, mean, rstd, varUnbiased };
}

/** Gradients of L = Σ dout·batchnorm(x): the LayerNorm formulas with rows and channels swapped. */
export function batchnormBackward(dout: ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number> | null, B: number, C: number, eps: number): NormGradRef {
  const dinp = new Float64Array(B * C);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  const { mean, rstd } = batchnorm(x, null, null, B, C, eps);
  for (let c = 0; c < C; c++) {
    const wc = w ? w[c] : 1;
    let sumDy = 0;
    let sumDyXhat = 0;
    for (let r = 0; r < B; r++) {
      const xhat = (x[r * C + c] - mean[c]) * rstd[c];
      sumDy += dout[r * C + c];
      sumDyXhat += dout[r * C + c] * xhat;
    }
    dweight[c] = sumDyXhat;
    dbias[c] = sumDy;
    for (let r = 0; r < B; r++) {
      const xhat = (x[r * C + c] - mean[c]) * rstd[c];
      dinp[r * C + c] = wc * rstd[c] * (dout[r * C + c] - sumDy / B - (xhat * sumDyXhat) / B);
    }
  }
  return { dinp, dweight, dbias };
}

/** PyTorch's running-statistics update: r ← (1 − momentum)·r + momentum·stat (stat = unbiased variance for running_var). */
export function runningUpdate(running: ArrayLike<number>, stat: ArrayLike<number>, momentum: number): Float64Array {
  return Float64Array.from(running, (r, i) => (1 - momentum) * r + momentum * stat[i]);
}

/** BatchNorm1d, eval mode. */
export function batchnormInference(
  x: ArrayLike<number>,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  w: ArrayLike<number> | null,
  b: ArrayLike<number> | null,
  B: number,
  C: number,
  eps: number,
): Float64Array {
  const out = new Float64Array(B * C);
  for (let r = 0; r < B; r++) {
    for (let c = 0; c < C; c++) out[r * C + c] = ((x[r * C + c] - runningMean[c]) / Math.sqrt(runningVar[c] + eps)) * (w ? w[c] : 1) + (b ? b[c] : 0);
  }
  return out;
}
