// Pooling and L2 normalisation of token features (the feature decoder's and momentum encoder's mean
// over tokens, and F.normalize). Activation gradients overwrite (=). Every reduction has a fixed
// summation order, so results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace cmae {

struct PoolOps {
  // Mean over tokens [start, N): out (B, D) = mean_{n in [start,N)} inp[b, n, :]; inp (B, N, D).
  // Requires 0 <= start < N.
  virtual void mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) = 0;
  // dinp (B, N, D): rows [start, N) = dout/(N-start) (=), rows [0,start) set to 0 (=). dout (B, D).
  virtual void mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) = 0;

  // Row-wise L2 normalisation out = x / max(||x||, eps) (F.normalize semantics); norm (R) saved.
  // inp, out: (R, D); norm: (R) = ||x|| (unclamped). out may alias inp.
  virtual void l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) = 0;
  // dinp (R, D) (=): if norm >= eps, (dout − x̂·(x̂·dout)) / norm, else dout / eps (PyTorch's
  // clamp_min gradient). inp is the forward input, norm the saved forward norm. dinp may alias dout.
  virtual void l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R,
                                     int64_t D, float eps) = 0;
  // DenseCL's correspondence: for each query token the most similar key token of the same sample
  // by cosine. Query row (b, i) is a[b·a_stride + i·D .. +D), i < La; key row (b, j) is
  // k[b·k_stride + j·D .. +D), j < Lk (strides in floats, so the callers pass token rows of a
  // (B, 1 + L, D) encoder output without a copy). match (B, La) int32 (=): argmax_j a_i·k_j /
  // max(||k_j||, 1e-12) (the query's norm cannot change the argmax), the smallest j on ties.
  // Lk >= 1; no gradient (an index).
  virtual void match_tokens(int32_t* match, const float* a, int64_t a_stride, const float* k, int64_t k_stride, int64_t B,
                            int64_t La, int64_t Lk, int64_t D) = 0;

 protected:
  ~PoolOps() = default;
};

}  // namespace cmae
