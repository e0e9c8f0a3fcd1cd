/** Float64 references for the matrix multiply family, written independently of the native code. */

/** Element (i, j) of op(X) where op(X) is [rows, cols]: X itself, or Xᵀ of X stored [cols, rows]. */
function at(x: ArrayLike<number>, trans: boolean, rows: number, cols: number, i: number, j: number): number {
  return trans ? x[j * rows + i] : x[i * cols + j];
}

/**
 * C = alpha · op(A)[M,K] · op(B)[K,N] + beta · C0, row-major, in float64. `c0` may be omitted
 * (treated as 0) and is never read when beta is 0 (so it may hold NaN).
 */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number; c0?: ArrayLike<number> } = {},
): Float64Array {
  const { transA = false, transB = false, alpha = 1, beta = 0, c0 } = opts;
  // op(B) as a dense float64 [K, N] first, so the inner loop is unit stride.
  const bk = new Float64Array(K * N);
  for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) bk[k * N + j] = at(b, transB, K, N, k, j);
  const out = new Float64Array(M * N);
  const row = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    row.fill(0);
    for (let k = 0; k < K; k++) {
      const aik = at(a, transA, M, K, i, k);
      const off = k * N;
      for (let j = 0; j < N; j++) row[j] += aik * bk[off + j];
    }
    for (let j = 0; j < N; j++) out[i * N + j] = alpha * row[j] + (beta !== 0 && c0 ? beta * c0[i * N + j] : 0);
  }
  return out;
}

/** out[R, OC] = inp[R, C] · weight[OC, C]ᵀ + bias[OC]. */
export function linearForwardRef(
  inp: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  R: number,
  C: number,
  OC: number,
): Float64Array {
  const out = new Float64Array(R * OC);
  for (let r = 0; r < R; r++) {
    for (let o = 0; o < OC; o++) {
      let s = bias ? bias[o] : 0;
      for (let c = 0; c < C; c++) s += inp[r * C + c] * weight[o * C + c];
      out[r * OC + o] = s;
    }
  }
  return out;
}

/** Gradients of L = Σ dout ⊙ linearForwardRef(inp, weight, bias) (not accumulated). */
export function linearBackwardRef(
  dout: ArrayLike<number>,
  inp: ArrayLike<number>,
  weight: ArrayLike<number>,
  R: number,
  C: number,
  OC: number,
): { dinp: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const dinp = new Float64Array(R * C);
  const dweight = new Float64Array(OC * C);
  const dbias = new Float64Array(OC);
  for (let r = 0; r < R; r++) {
    for (let o = 0; o < OC; o++) {
      const g = dout[r * OC + o];
      dbias[o] += g;
      for (let c = 0; c < C; c++) {
        dinp[r * C + c] += g * weight[o * C + c];
        dweight[o * C + c] += g * inp[r * C + c];
      }
    }
  }
  return { dinp, dweight, dbias };
}
