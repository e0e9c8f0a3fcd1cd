// Kernels of the pool family (ops/pool.h): the mean over tokens and F.normalize, forward and
// backward. W = 4 variants use 128-bit accesses and need D % 4 == 0 and 16-byte aligned pointers
// (then every row start is aligned too).
//
//   mean_pool_forward   a thread per (sample, W columns), 2-D grid (x: columns, y: samples); it
//                       adds the tokens [start, N) one after another in float (the CPU's order:
//                       the first token, += the others, × 1/(N − start)), so the backends agree bit
//                       for bit. Rows are read coalesced across the threads of a block.
//   mean_pool_backward  a thread per (token row, W columns), 2-D grid (x: columns, y: rows,
//                       strided): dout·(1/(N − start)) for tokens >= start, 0 before.
//   l2_normalize_*      a warp per row (8 rows per 256-thread block): the row's Σx² (forward) or
//                       Σx·dout (backward) in double through warp_sum, then the row is written by
//                       the lanes that read it (so out / dinp may alias the input exactly).
#pragma once
#include <cmath>
#include <cstdint>

#include "common/compat.cuh"
#include "common/reduce.cuh"
#include "kernels/activation.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace kernels {

// The weight of each pooled token, 1/(N − start) in float (0 when no token is pooled).
__device__ __forceinline__ float pool_weight(int64_t count) { return count > 0 ? 1.0f / static_cast<float>(count) : 0.0f; }

// out[b, d] = mean_{n in [start, N)} inp[b, n, d].
template <int W>
__global__ void __launch_bounds__(kStreamThreads)
    mean_pool_forward_kernel(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) {
  const int64_t d = row_grid_column<W>();
  if (d >= D) return;
  const int64_t count = N - start;
  const float weight = pool_weight(count);
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    FloatVec<W> sum = FloatVec<W>::splat(0.0f);
    if (count > 0) {
      const float* x = inp + (b * N + start) * D + d;
      sum = load_vec<W>(x);
      for (int64_t n = 1; n < count; ++n) {
        const FloatVec<W> row = load_vec<W>(x + n * D);
        CMAE_UNROLL
        for (int k = 0; k < W; ++k) sum.v[k] += row.v[k];
      }
      CMAE_UNROLL
      for (int k = 0; k < W; ++k) sum.v[k] *= weight;
    }
    store_vec<W>(out + b * D + d, sum);
  }
}

// dinp[b, n, d] = dout[b, d] / (N − start) for n >= start, else 0.
template <int W>
__global__ void __launch_bounds__(kStreamThreads)
    mean_pool_backward_kernel(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) {
  const int64_t d = row_grid_column<W>();
  if (d >= D) return;
  const float weight = pool_weight(N - start);
  for (int64_t r = blockIdx.y; r < B * N; r += gridDim.y) {
    const int64_t b = r / N, n = r - b * N;
    FloatVec<W> g = FloatVec<W>::splat(0.0f);
    if (n >= start) {
      g = load_vec<W>(dout + b * D + d);
      CMAE_UNROLL
      for (int k = 0; k < W; ++k) g.v[k] *= weight;
    }
    store_vec<W>(dinp + r * D + d, g);
  }
}

// norm[r] = ||x_r|| (Σx² in double), out_r = x_r / max(norm[r], eps) (F.normalize).
template <int W>
__global__ void __launch_bounds__(kStreamThreads)
    l2_normalize_forward_kernel(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) {
  const int64_t r = warp_row(R);
  if (r < 0) return;  // the whole warp leaves (r is the warp's), so warp_sum's full mask holds
  const unsigned lane = threadIdx.x % 32;
  const float* x = inp + r * D;
  double ss = 0.0;
  for (int64_t d = lane * W; d < D; d += 32 * W) {
    const FloatVec<W> v = load_vec<W>(x + d);
    CMAE_UNROLL
    for (int k = 0; k < W; ++k) ss += static_cast<double>(v.v[k]) * v.v[k];
  }
  ss = warp_sum(ss);
  const float n = static_cast<float>(sqrt(ss));
  if (lane == 0) norm[r] = n;
  const float denom = n > eps ? n : eps;
  float* o = out + r * D;
  for (int64_t d = lane * W; d < D; d += 32 * W) {
    FloatVec<W> v = load_vec<W>(x + d);
    CMAE_UNROLL
    for (int k = 0; k < W; ++k) v.v[k] /= denom;
    store_vec<W>(o + d, v);
  }
}

// dinp_r = (dout_r − x̂_r (x̂_r·dout_r)) / norm[r] = dout_r/n − x_r (x_r·dout_r)/n³ if norm[r] >= eps,
// else dout_r / eps; in double, as the CPU.
template <int W>
__global__ void __launch_bounds__(kStreamThreads) l2_normalize_backward_kernel(float* dinp, const float* dout, const float* inp,
                                                                               const float* norm, int64_t R, int64_t D, float eps) {
  const int64_t r = warp_row(R);
  if (r < 0) return;
  const unsigned lane = threadIdx.x % 32;
  const float* x = inp + r * D;
  const float* g = dout + r * D;
  float* o = dinp + r * D;
  const double n = norm[r];
  if (n >= eps) {
    double dot = 0.0;
    for (int64_t d = lane * W; d < D; d += 32 * W) {
      const FloatVec<W> xv = load_vec<W>(x + d), gv = load_vec<W>(g + d);
      CMAE_UNROLL
      for (int k = 0; k < W; ++k) dot += static_cast<double>(xv.v[k]) * gv.v[k];
    }
    dot = warp_sum(dot);
    const double inv = 1.0 / n;
    const double c = dot * inv * inv * inv;
    for (int64_t d = lane * W; d < D; d += 32 * W) {
      const FloatVec<W> xv = load_vec<W>(x + d), gv = load_vec<W>(g + d);
      FloatVec<W> ov;
      CMAE_UNROLL
      for (int k = 0; k < W; ++k) ov.v[k] = static_cast<float>(gv.v[k] * inv - xv.v[k] * c);
      store_vec<W>(o + d, ov);
    }
  } else {
    // The denominator is the constant eps: no gradient through the norm.
    const double inv = 1.0 / static_cast<double>(eps);
    for (int64_t d = lane * W; d < D; d += 32 * W) {
      FloatVec<W> v = load_vec<W>(g + d);
      CMAE_UNROLL
      for (int k = 0; k < W; ++k) v.v[k] = static_cast<float>(v.v[k] * inv);
      store_vec<W>(o + d, v);
    }
  }
}

// ---- DenseCL's token matching ----------------------------------------------------------------------
// match_tokens, two launches: key_inverse_norms_kernel (a thread per key row: 1/max(||k_j||, eps)
// into scratch); match_tokens_kernel (one block per query row: a thread per key j, j = t, t + 128,
// ..., the dot over D in order, its best (score, j) with a strict > so the smallest j wins ties;
// thread 0 then takes the best of the block's, ties to the smaller j).

constexpr unsigned kMatchThreads = 128;

__global__ void key_inverse_norms_kernel(double* k_inv, const float* k, int64_t k_stride, int64_t Lk, int64_t D, int64_t count) {
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < count; r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float* kj = k + (r / Lk) * k_stride + (r % Lk) * D;
    double ss = 0.0;
    for (int64_t d = 0; d < D; ++d) ss += static_cast<double>(kj[d]) * kj[d];
    const double n = sqrt(ss);
    k_inv[r] = 1.0 / (n > 1e-12 ? n : 1e-12);
  }
}

__global__ void __launch_bounds__(kMatchThreads) match_tokens_kernel(int32_t* match, const float* a, int64_t a_stride, const float* k,
                                                                     int64_t k_stride, const double* k_inv, int64_t La, int64_t Lk,
                                                                     int64_t D) {
  CMAE_SHARED(double, best_score, kMatchThreads);
  CMAE_SHARED(int64_t, best_index, kMatchThreads);
  const int64_t r = blockIdx.x, b = r / La;
  const float* ai = a + b * a_stride + (r % La) * D;
  double best = -INFINITY;
  int64_t arg = -1;
  for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) {
    const float* kj = k + b * k_stride + j * D;
    double dot = 0.0;
    for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(ai[d]) * kj[d];
    const double s = dot * k_inv[b * Lk + j];
    if (arg < 0 || s > best) best = s, arg = j;
  }
  best_score[threadIdx.x] = best;
  best_index[threadIdx.x] = arg;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (unsigned t = 1; t < blockDim.x; ++t) {
    const int64_t j = best_index[t];
    if (j >= 0 && (best_score[t] > best || (best_score[t] == best && j < arg))) best = best_score[t], arg = j;
  }
  match[r] = static_cast<int32_t>(arg);
}

}  // namespace kernels

CMAE_CUDA_NAMESPACE_END
