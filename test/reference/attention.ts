/**
 * Float64 reference for the multi-head self-attention core of a timm ViT block (between the fused
 * qkv Linear and the output projection), written from the definition, independently of the native
 * code: split qkv (B, N, 3D) into per-head q, k, v (timm's reshape(B, N, 3, H, hd)), scores
 * q·kᵀ·hd^-0.5, a softmax per row, the weighted sum of v, heads concatenated back into (B, N, D).
 * The backward applies the chain rule to each of those steps (checked against finite differences
 * in test/ops/attention.test.ts).
 */

export interface AttentionRef {
  /** (B, N, D) */
  out: Float64Array;
  /** (B, H, N, N) */
  att: Float64Array;
}

interface Heads {
  /** (B, H, N, hd) each */
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
}

/** q, k, v as (B, H, N, hd) arrays from qkv (B, N, 3D). */
function splitHeads(qkv: ArrayLike<number>, B: number, N: number, D: number, H: number): Heads {
  const hd = D / H;
  const q = new Float64Array(B * H * N * hd);
  const k = new Float64Array(B * H * N * hd);
  const v = new Float64Array(B * H * N * hd);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++)
        for (let d = 0; d < hd; d++) {
          const dst = ((b * H + h) * N + n) * hd + d;
          const src = (b * N + n) * 3 * D + h * hd + d;
          q[dst] = qkv[src];
          k[dst] = qkv[src + D];
          v[dst] = qkv[src + 2 * D];
        }
  return { q, k, v };
}

/** Softmax probabilities (B, H, N, N) of the scaled scores. */
function probabilities(q: Float64Array, k: Float64Array, B: number, N: number, D: number, H: number): Float64Array {
  const hd = D / H;
  const scale = 1 / Math.sqrt(hd);
  const att = new Float64Array(B * H * N * N);
  const row = new Float64Array(N);
  for (let bh = 0; bh < B * H; bh++)
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[(bh * N + i) * hd + d] * k[(bh * N + j) * hd + d];
        row[j] = s * scale;
      }
      const max = Math.max(...row);
      let sum = 0;
      for (let j = 0; j < N; j++) sum += Math.exp(row[j] - max);
      for (let j = 0; j < N; j++) att[(bh * N + i) * N + j] = Math.exp(row[j] - max) / sum;
    }
  return att;
}

export function attentionForward(qkv: ArrayLike<number>, B: number, N: number, D: number, H: number): AttentionRef {
  const hd = D / H;
  const { q, k, v } = splitHeads(qkv, B, N, D, H);
  const att = probabilities(q, k, B, N, D, H);
  const out = new Float64Array(B * N * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      for (let i = 0; i < N; i++)
        for (let d = 0; d < hd; d++) {
          let s = 0;
          for (let j = 0; j < N; j++) s += att[(bh * N + i) * N + j] * v[(bh * N + j) * hd + d];
          out[(b * N + i) * D + h * hd + d] = s;
        }
    }
  return { out, att };
}

/**
 * dqkv (B, N, 3D) for the loss Σ dout·out. Recomputes the probabilities from qkv:
 *   dv = Pᵀ·dO,  dP = dO·vᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),  dq = dS·k·scale,  dk = dSᵀ·q·scale.
 */
export function attentionBackward(dout: ArrayLike<number>, qkv: ArrayLike<number>, B: number, N: number, D: number, H: number): Float64Array {
  const hd = D / H;
  const scale = 1 / Math.sqrt(hd);
  const { q, k, v } = splitHeads(qkv, B, N, D, H);
  const att = probabilities(q, k, B, N, D, H);
  const dqkv = new Float64Array(B * N * 3 * D);
  const dP = new Float64Array(N * N);
  const dS = new Float64Array(N * N);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const P = (i: number, j: number) => att[(bh * N + i) * N + j];
      const dO = (i: number, d: number) => dout[(b * N + i) * D + h * hd + d];
      const at = (x: Float64Array, n: number, d: number) => x[(bh * N + n) * hd + d];
      const grad = (part: number, n: number, d: number) => (b * N + n) * 3 * D + part * D + h * hd + d;
      // out_i = Σ_j P_ij v_j: gradients of P and v.
      for (let i = 0; i < N; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += dO(i, d) * at(v, j, d);
          dP[i * N + j] = s;
        }
      for (let j = 0; j < N; j++)
        for (let d = 0; d < hd; d++) {
          let s = 0;
          for (let i = 0; i < N; i++) s += P(i, j) * dO(i, d);
          dqkv[grad(2, j, d)] = s;
        }
      // Softmax: dS_ij = P_ij (dP_ij − Σ_l P_il dP_il).
      for (let i = 0; i < N; i++) {
        let dot = 0;
        for (let l = 0; l < N; l++) dot += P(i, l) * dP[i * N + l];
        for (let j = 0; j < N; j++) dS[i * N + j] = P(i, j) * (dP[i * N + j] - dot);
      }
      // S_ij = scale · q_i·k_j.
      for (let n = 0; n < N; n++)
        for (let d = 0; d < hd; d++) {
          let sq = 0;
          let sk = 0;
          for (let m = 0; m < N; m++) {
            sq += dS[n * N + m] * at(k, m, d);
            sk += dS[m * N + n] * at(q, m, d);
          }
          dqkv[grad(0, n, d)] = sq * scale;
          dqkv[grad(1, n, d)] = sk * scale;
        }
    }
  return dqkv;
}
