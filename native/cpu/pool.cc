// Pooling and L2 normalisation of token features (ops/pool.h).
#include <cmath>
#include <limits>

#include "core/threads.h"
#include "cpu/target.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

// ---- mean pooling -------------------------------------------------------------------------------

void mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) {
  const int64_t count = N - start;
  if (count <= 0) {
    for (int64_t i = 0; i < B * D; ++i) out[i] = 0.0f;
    return;
  }
  const float inv = 1.0f / static_cast<float>(count);
  parallel_for(B, min_items(count * D), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* o = out + b * D;
      const float* x = inp + (b * N + start) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = x[d];
      for (int64_t n = 1; n < count; ++n) {
        const float* row = x + n * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] += row[d];
      }
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] *= inv;
    }
  });
}

void mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) {
  const int64_t count = N - start;
  const float inv = count > 0 ? 1.0f / static_cast<float>(count) : 0.0f;
  parallel_for(B * N, min_items(D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / N;
      const int64_t n = r - b * N;
      float* o = dinp + r * D;
      const float* g = dout + b * D;
      const float s = n >= start ? inv : 0.0f;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = g[d] * s;
    }
  });
}

// ---- L2 normalisation -------------------------------------------------------------------------

void l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) {
  parallel_for(R, min_items(D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = inp + r * D;
      float* o = out + r * D;
      const float n = static_cast<float>(std::sqrt(sum_squares(x, D)));
      norm[r] = n;
      const float denom = n > eps ? n : eps;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = x[d] / denom;
    }
  });
}

void l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D,
                           float eps) {
  parallel_for(R, min_items(D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = inp + r * D;
      const float* g = dout + r * D;
      float* o = dinp + r * D;
      const double n = norm[r];
      if (n >= eps) {
        // y = x/n: dx = (g − y·(y·g))/n = g/n − x·(x·g)/n³
        const double inv = 1.0 / n;
        const double c = dot_f64(x, g, D) * inv * inv * inv;
        for (int64_t d = 0; d < D; ++d) o[d] = static_cast<float>(g[d] * inv - x[d] * c);
      } else {
        // The denominator is the constant eps: no gradient through the norm.
        const double inv = 1.0 / eps;
        for (int64_t d = 0; d < D; ++d) o[d] = static_cast<float>(g[d] * inv);
      }
    }
  });
}

// ---- DenseCL's token matching --------------------------------------------------------------------

void match_tokens(int32_t* match, const float* a, int64_t a_stride, const float* k, int64_t k_stride, int64_t B, int64_t La,
                  int64_t Lk, int64_t D) {
  if (B <= 0 || La <= 0) return;
  constexpr double kNormEps = 1e-12;  // F.normalize's default
  // 1 / max(||k_j||, eps) per key row, then each query row scans its sample's keys in order (a strict
  // > keeps the smallest j on ties).
  double* k_inv = scratch<double>(ScratchSlot::Reduction, static_cast<size_t>(B * Lk));
  parallel_for(B * Lk, min_items(D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const double n = std::sqrt(sum_squares(k + (r / Lk) * k_stride + (r % Lk) * D, D));
      k_inv[r] = 1.0 / (n > kNormEps ? n : kNormEps);
    }
  });
  parallel_for(B * La, min_items(Lk * D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / La;
      const float* ai = a + b * a_stride + (r % La) * D;
      double best = -std::numeric_limits<double>::infinity();
      int32_t arg = 0;
      for (int64_t j = 0; j < Lk; ++j) {
        const double s = dot_f64(ai, k + b * k_stride + j * D, D) * k_inv[b * Lk + j];
        if (s > best) {
          best = s;
          arg = static_cast<int32_t>(j);
        }
      }
      match[r] = arg;
    }
  });
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
