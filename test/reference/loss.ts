/**
 * Float64 references for native/ops/loss.h, written from the spec's formulas (§1.6, §2.7) and
 * PyTorch semantics, independently of the native code. Arrays are row-major, as in the kernels.
 */

type Arr = ArrayLike<number>;

/** out (B, D) = mean over tokens [start, N) of inp (B, N, D). */
export function meanPool(inp: Arr, B: number, N: number, D: number, start: number): Float64Array {
  const out = new Float64Array(B * D);
  for (let b = 0; b < B; b++) {
    for (let d = 0; d < D; d++) {
      let s = 0;
      for (let n = start; n < N; n++) s += inp[(b * N + n) * D + d];
      out[b * D + d] = s / (N - start);
    }
  }
  return out;
}

/** dinp (B, N, D) of meanPool for upstream dout (B, D). */
export function meanPoolBackward(dout: Arr, B: number, N: number, D: number, start: number): Float64Array {
  const dinp = new Float64Array(B * N * D);
  for (let b = 0; b < B; b++) {
    for (let n = start; n < N; n++) {
      for (let d = 0; d < D; d++) dinp[(b * N + n) * D + d] = dout[b * D + d] / (N - start);
    }
  }
  return dinp;
}

/** F.normalize(x, dim=-1, eps): rows divided by max(‖row‖, eps); also the unclamped norms. */
export function l2Normalize(x: Arr, R: number, D: number, eps = 1e-12): { out: Float64Array; norm: Float64Array } {
  const out = new Float64Array(R * D);
  const norm = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += x[r * D + d] ** 2;
    norm[r] = Math.sqrt(s);
    const denom = Math.max(norm[r], eps);
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d] / denom;
  }
  return { out, norm };
}

/**
 * Vector–Jacobian product of F.normalize: with c = max(n, eps), y = x/c,
 * ∂y_a/∂x_b = δ_ab/c − x_a·x_b/(c²·n) when n ≥ eps (clamp passes the gradient), else δ_ab/eps.
 */
export function l2NormalizeBackward(dout: Arr, x: Arr, R: number, D: number, eps = 1e-12): Float64Array {
  const dinp = new Float64Array(R * D);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += x[r * D + d] ** 2;
    const n = Math.sqrt(s);
    const c = Math.max(n, eps);
    let xg = 0;
    for (let d = 0; d < D; d++) xg += x[r * D + d] * dout[r * D + d];
    for (let b = 0; b < D; b++) {
      let v = dout[r * D + b] / c;
      if (n >= eps) v -= (x[r * D + b] * xg) / (c * c * n);
      dinp[r * D + b] = v;
    }
  }
  return dinp;
}

/** The norm-pix target (spec §1.6): per patch (t − mean)/sqrt(unbiased var + eps), or t itself. */
export function normpixTarget(target: Arr, rows: number, P: number, normPix: boolean, eps = 1e-6): Float64Array {
  const out = new Float64Array(rows * P);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < P; i++) mean += target[r * P + i];
    mean /= P;
    let ss = 0;
    for (let i = 0; i < P; i++) ss += (target[r * P + i] - mean) ** 2;
    const std = Math.sqrt(ss / (P - 1) + eps);
    for (let i = 0; i < P; i++) out[r * P + i] = normPix ? (target[r * P + i] - mean) / std : target[r * P + i];
  }
  return out;
}

/** Σ mask·mean_P((pred − target_n)²) / Σ mask (0 when nothing is masked). */
export function normpixMse(pred: Arr, target: Arr, mask: Arr, B: number, L: number, P: number, normPix: boolean, eps = 1e-6): number {
  const t = normpixTarget(target, B * L, P, normPix, eps);
  let num = 0;
  let den = 0;
  for (let r = 0; r < B * L; r++) {
    let s = 0;
    for (let i = 0; i < P; i++) s += (pred[r * P + i] - t[r * P + i]) ** 2;
    num += mask[r] * (s / P);
    den += mask[r];
  }
  return den === 0 ? 0 : num / den;
}

/** dloss · ∂normpixMse/∂pred = dloss · mask·2(pred − target_n)/(P·Σ mask). */
export function normpixMseGrad(pred: Arr, target: Arr, mask: Arr, B: number, L: number, P: number, normPix: boolean, eps = 1e-6, dloss = 1): Float64Array {
  const t = normpixTarget(target, B * L, P, normPix, eps);
  let den = 0;
  for (let r = 0; r < B * L; r++) den += mask[r];
  const g = new Float64Array(B * L * P);
  if (den === 0) return g;
  for (let r = 0; r < B * L; r++) {
    for (let i = 0; i < P; i++) g[r * P + i] = (dloss * mask[r] * 2 * (pred[r * P + i] - t[r * P + i])) / (P * den);
  }
  return g;
}

/** The B×B logits q̂·k̂ᵀ/τ. */
function infonceLogits(q: Arr, k: Arr, B: number, E: number, tau: number): Float64Array {
  const qh = l2Normalize(q, B, E).out;
  const kh = l2Normalize(k, B, E).out;
  const logits = new Float64Array(B * B);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < B; j++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += qh[i * E + e] * kh[j * E + e];
      logits[i * B + j] = s / tau;
    }
  }
  return logits;
}

/** scale · mean_i CE(softmax(logits_i), i) with logits = q̂·k̂ᵀ/τ (spec §2.7, one process). */
export function infonce(q: Arr, k: Arr, B: number, E: number, tau: number, scale: number): number {
  const logits = infonceLogits(q, k, B, E, tau);
  let total = 0;
  for (let i = 0; i < B; i++) {
    let max = -Infinity;
    for (let j = 0; j < B; j++) max = Math.max(max, logits[i * B + j]);
    let s = 0;
    for (let j = 0; j < B; j++) s += Math.exp(logits[i * B + j] - max);
    total += max + Math.log(s) - logits[i * B + i];
  }
  return (scale * total) / B;
}

/** dloss · ∂infonce/∂q by the chain rule: logits → q̂ (via k̂/τ) → q (via l2NormalizeBackward). */
export function infonceGradQ(q: Arr, k: Arr, B: number, E: number, tau: number, scale: number, dloss = 1): Float64Array {
  const logits = infonceLogits(q, k, B, E, tau);
  const kh = l2Normalize(k, B, E).out;
  const dqh = new Float64Array(B * E);
  for (let i = 0; i < B; i++) {
    let max = -Infinity;
    for (let j = 0; j < B; j++) max = Math.max(max, logits[i * B + j]);
    let s = 0;
    for (let j = 0; j < B; j++) s += Math.exp(logits[i * B + j] - max);
    for (let j = 0; j < B; j++) {
      const p = Math.exp(logits[i * B + j] - max) / s;
      const dlogit = ((dloss * scale) / B) * (p - (i === j ? 1 : 0));
      for (let e = 0; e < E; e++) dqh[i * E + e] += (dlogit * kh[j * E + e]) / tau;
    }
  }
  return l2NormalizeBackward(dqh, q, B, E);
}

/**
 * SimCLR's NT-Xent over R = 2N rows (positive of i: (i + N) mod R, candidates: every j ≠ i),
 * scale · mean cross-entropy of ẑ_i·ẑ_j/τ: the loss and dloss · ∂loss/∂z through both roles of
 * every row, accumulated as each logit is formed (independent of the kernel's closed form).
 */
export function ntxent(z: Arr, R: number, E: number, tau: number, scale: number, dloss = 1): { loss: number; grad: Float64Array } {
  const zh = l2Normalize(z, R, E).out;
  const dzh = new Float64Array(R * E);
  let total = 0;
  for (let i = 0; i < R; i++) {
    const pos = (i + R / 2) % R;
    const s = new Float64Array(R);
    let max = -Infinity;
    for (let j = 0; j < R; j++) {
      if (j === i) continue;
      let d = 0;
      for (let e = 0; e < E; e++) d += zh[i * E + e] * zh[j * E + e];
      s[j] = d / tau;
      max = Math.max(max, s[j]);
    }
    let sum = 0;
    for (let j = 0; j < R; j++) if (j !== i) sum += Math.exp(s[j] - max);
    total += max + Math.log(sum) - s[pos];
    for (let j = 0; j < R; j++) {
      if (j === i) continue;
      const dlogit = ((dloss * scale) / R) * (Math.exp(s[j] - max) / sum - (j === pos ? 1 : 0));
      for (let e = 0; e < E; e++) {
        dzh[i * E + e] += (dlogit * zh[j * E + e]) / tau;
        dzh[j * E + e] += (dlogit * zh[i * E + e]) / tau;
      }
    }
  }
  return { loss: (scale * total) / R, grad: l2NormalizeBackward(dzh, z, R, E) };
}

/**
 * Softmax cross-entropy against soft targets: mean_b −Σ_c t_bc·log p_bc, p = softmax(l_b), with its
 * gradient dloss/B·(p·Σt − t) (the chain rule through log p_c = l_c − logsumexp(l)).
 */
export function softmaxCrossEntropy(logits: Arr, targets: Arr, B: number, C: number, dloss = 1): { loss: number; grad: Float64Array } {
  const grad = new Float64Array(B * C);
  let total = 0;
  for (let b = 0; b < B; b++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, logits[b * C + c]);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(logits[b * C + c] - max);
    const lse = max + Math.log(sum);
    let tSum = 0;
    for (let c = 0; c < C; c++) {
      total -= targets[b * C + c] * (logits[b * C + c] - lse);
      tSum += targets[b * C + c];
    }
    for (let c = 0; c < C; c++) grad[b * C + c] = (dloss / B) * (Math.exp(logits[b * C + c] - lse) * tSum - targets[b * C + c]);
  }
  return { loss: total / B, grad };
}
