/**
 * Plain references for patchify, masking, the visible-token gather, the decoder unshuffle and the
 * 2-D sin-cos embedding, written from the PyTorch/NumPy recipes of the spec (§1.1, §1.2, §1.4,
 * §1.5, §2.2), independently of the native code: patchify is a literal reshape + permute (MAE's
 * einsum), masking is argsort-based as in the CMAE code, gathers are plain float64 loops.
 */

export type RefLayout = 'pixels-last' | 'channels-first';

/** Row-major permute of a tensor of `shape`: out axis i is input axis axes[i] (numpy transpose). */
export function permute(data: ArrayLike<number>, shape: readonly number[], axes: readonly number[]): Float64Array {
  const rank = shape.length;
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= shape[i];
  }
  const outShape = axes.map((a) => shape[a]);
  const out = new Float64Array(s);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < s; o++) {
    let src = 0;
    for (let i = 0; i < rank; i++) src += idx[i] * inStrides[axes[i]];
    out[o] = data[src];
    for (let i = rank - 1; i >= 0; i--) {
      if (++idx[i] < outShape[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

/**
 * MAE's patchify: x.reshape(N, C, h, p, w, q); einsum('nchpwq->nhwpqc') (pixels-last) or
 * 'nchpwq->nhwcpq' (channels-first); reshape (N, h·w, p·q·C).
 */
export function patchifyRef(images: ArrayLike<number>, B: number, C: number, H: number, W: number, p: number, layout: RefLayout): Float64Array {
  const shape = [B, C, H / p, p, W / p, p]; // n c h p w q
  return permute(images, shape, layout === 'pixels-last' ? [0, 2, 4, 3, 5, 1] : [0, 2, 4, 1, 3, 5]);
}

/** Conv2d(C→Dout, kernel p, stride p, no bias) of images (B, C, H, W) with weight (Dout, C, p, p): (B, L, Dout). */
export function patchConvRef(images: ArrayLike<number>, weight: ArrayLike<number>, B: number, C: number, H: number, W: number, p: number, Dout: number): Float64Array {
  const hg = H / p;
  const wg = W / p;
  const out = new Float64Array(B * hg * wg * Dout);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < hg; i++)
      for (let j = 0; j < wg; j++)
        for (let d = 0; d < Dout; d++) {
          let acc = 0;
          for (let c = 0; c < C; c++)
            for (let y = 0; y < p; y++)
              for (let x = 0; x < p; x++) {
                acc += weight[((d * C + c) * p + y) * p + x] * images[((b * C + c) * H + i * p + y) * W + j * p + x];
              }
          out[((b * hg + i) * wg + j) * Dout + d] = acc;
        }
  return out;
}

/** Stable ascending argsort (ties keep index order: Array.prototype.sort is stable). */
export function argsort(values: ArrayLike<number>): number[] {
  return Array.from({ length: values.length }, (_, i) => i).sort((a, b) => (values[a] < values[b] ? -1 : values[a] > values[b] ? 1 : 0));
}

export interface MaskingRef {
  idsKeep: Int32Array;
  idsRestore: Int32Array;
  mask: Float64Array;
}

/**
 * CMAE's grouped masking (spec §2.2; group 1 = MAE): keep the keepGroups groups of smallest noise,
 * expand the keep flags to the patch grid, order = stable argsort of (1 − flag) (kept patches first,
 * each part ascending), idsKeep = order[:K], idsRestore = argsort(order), mask = 1 − flag.
 */
export function maskingRef(noise: ArrayLike<number>, B: number, gridH: number, gridW: number, group: number, keepGroups: number): MaskingRef {
  const gw = gridW / group;
  const G = (gridH / group) * gw;
  const L = gridH * gridW;
  const K = keepGroups * group * group;
  const idsKeep = new Int32Array(B * K);
  const idsRestore = new Int32Array(B * L);
  const mask = new Float64Array(B * L);
  for (let b = 0; b < B; b++) {
    const groupNoise = Array.from({ length: G }, (_, g) => noise[b * G + g]);
    const groupFlag = new Array<number>(G).fill(0);
    for (const g of argsort(groupNoise).slice(0, keepGroups)) groupFlag[g] = 1;
    const flag = Array.from({ length: L }, (_, l) => groupFlag[Math.floor(Math.floor(l / gridW) / group) * gw + Math.floor((l % gridW) / group)]);
    const order = argsort(flag.map((f) => 1 - f));
    const restore = argsort(order);
    for (let k = 0; k < K; k++) idsKeep[b * K + k] = order[k];
    for (let l = 0; l < L; l++) {
      idsRestore[b * L + l] = restore[l];
      mask[b * L + l] = 1 - flag[l];
    }
  }
  return { idsKeep, idsRestore, mask };
}

/** out (B, K, D)[b, k] = tokens[b, ids[b, k]] + pos[ids[b, k]] (the rows after the prefix). */
export function gatherRef(tokens: ArrayLike<number>, pos: ArrayLike<number> | null, ids: ArrayLike<number>, B: number, L: number, K: number, D: number): Float64Array {
  const out = new Float64Array(B * K * D);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < K; k++) {
      const l = ids[b * K + k];
      for (let d = 0; d < D; d++) out[(b * K + k) * D + d] = tokens[(b * L + l) * D + d] + (pos ? pos[l * D + d] : 0);
    }
  return out;
}

/** out (B, K, D)[b, k] = tokens[b, k] + pos[ids[b, k]]: addPositions on tokens that already are the visible ones. */
export function addPositionsRef(tokens: ArrayLike<number>, pos: ArrayLike<number> | null, ids: ArrayLike<number>, B: number, K: number, D: number): Float64Array {
  const out = new Float64Array(B * K * D);
  for (let r = 0; r < B * K; r++) {
    const l = ids[r];
    for (let d = 0; d < D; d++) out[r * D + d] = tokens[r * D + d] + (pos ? pos[l * D + d] : 0);
  }
  return out;
}

/** Transpose of gatherRef: dtokens (B, L, D) from dvisible (B, K, D). */
export function gatherBackwardRef(dvisible: ArrayLike<number>, ids: ArrayLike<number>, B: number, L: number, K: number, D: number): Float64Array {
  const out = new Float64Array(B * L * D);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < K; k++) {
      const l = ids[b * K + k];
      for (let d = 0; d < D; d++) out[(b * L + l) * D + d] += dvisible[(b * K + k) * D + d];
    }
  return out;
}

/**
 * MAE's decoder input: seq = [visible (K), mask_token × (L − K)]; seq = gather(seq, idsRestore);
 * prepend the prefix rows; add [posPrefix; pos]. inp (B, prefix + K, D) → (B, prefix + L, D).
 */
export function unshuffleRef(inp: ArrayLike<number>, maskToken: ArrayLike<number>, pos: ArrayLike<number> | null, posPrefix: ArrayLike<number> | null, idsRestore: ArrayLike<number>, B: number, L: number, K: number, D: number, prefix: number): Float64Array {
  const out = new Float64Array(B * (prefix + L) * D);
  for (let b = 0; b < B; b++) {
    const seq: number[][] = [];
    for (let k = 0; k < K; k++) seq.push(Array.from({ length: D }, (_, d) => inp[(b * (prefix + K) + prefix + k) * D + d]));
    for (let m = K; m < L; m++) seq.push(Array.from(maskToken));
    for (let n = 0; n < prefix + L; n++) {
      const row = n < prefix ? Array.from({ length: D }, (_, d) => inp[(b * (prefix + K) + n) * D + d]) : seq[idsRestore[b * L + n - prefix]];
      for (let d = 0; d < D; d++) {
        const e = n < prefix ? (posPrefix ? posPrefix[n * D + d] : 0) : pos ? pos[(n - prefix) * D + d] : 0;
        out[(b * (prefix + L) + n) * D + d] = row[d] + e;
      }
    }
  }
  return out;
}

/** Transpose of unshuffleRef (pos terms drop out): dinp (B, prefix + K, D) and dmaskToken (D). */
export function unshuffleBackwardRef(dout: ArrayLike<number>, idsRestore: ArrayLike<number>, B: number, L: number, K: number, D: number, prefix: number): { dinp: Float64Array; dmaskToken: Float64Array } {
  const dinp = new Float64Array(B * (prefix + K) * D);
  const dmaskToken = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < prefix; n++)
      for (let d = 0; d < D; d++) dinp[(b * (prefix + K) + n) * D + d] = dout[(b * (prefix + L) + n) * D + d];
    for (let l = 0; l < L; l++) {
      const r = idsRestore[b * L + l];
      for (let d = 0; d < D; d++) {
        const g = dout[(b * (prefix + L) + prefix + l) * D + d];
        if (r < K) dinp[(b * (prefix + K) + prefix + r) * D + d] += g;
        else dmaskToken[d] += g;
      }
    }
  }
  return { dinp, dmaskToken };
}

/** MAE get_1d_sincos_pos_embed_from_grid(embedDim, positions): (M, embedDim) = [sin(pos·ω) | cos(pos·ω)]. */
function sincos1d(embedDim: number, positions: number[]): number[][] {
  const half = embedDim / 2;
  const omega = Array.from({ length: half }, (_, d) => 1 / 10000 ** (d / half));
  return positions.map((m) => [...omega.map((w) => Math.sin(m * w)), ...omega.map((w) => Math.cos(m * w))]);
}

/**
 * MAE get_2d_sincos_pos_embed without the cls row, generalised to gridH × gridW: the meshgrid is
 * built with w first, so the first half of every row encodes the column, the second half the row.
 */
export function sincosRef(gridH: number, gridW: number, D: number): Float64Array {
  const cols: number[] = [];
  const rows: number[] = [];
  for (let i = 0; i < gridH; i++)
    for (let j = 0; j < gridW; j++) {
      cols.push(j);
      rows.push(i);
    }
  const embCol = sincos1d(D / 2, cols);
  const embRow = sincos1d(D / 2, rows);
  const out = new Float64Array(gridH * gridW * D);
  for (let k = 0; k < gridH * gridW; k++) out.set([...embCol[k], ...embRow[k]], k * D);
  return out;
}
