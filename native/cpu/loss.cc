// Pooling, L2 normalisation and the fused CMAE losses (ops/loss.h).
#include <cmath>
#include <limits>

#include "core/threads.h"
#include "cpu/cpu_backend.h"
#include "cpu/scratch.h"

namespace cmae::cpu {

namespace {

// Smallest amount of work (elements touched) worth handing to a thread.
constexpr int64_t kMinWork = 1 << 14;

// Rows (of `row_work` elements each) per parallel chunk, so each chunk carries >= kMinWork.
int64_t rows_per_chunk(int64_t row_work) {
  if (row_work < 1) row_work = 1;
  return row_work >= kMinWork ? 1 : kMinWork / row_work;
}

// The norm-pix loss is reduced in blocks of this many patches: block partials are written by the
// thread that owns the block and added in block order, so the sum never depends on the split.
constexpr int64_t kPatchBlock = 16;

// Σ_{i<n} term(i) in double with four interleaved accumulators (lane = i mod 4, combined as
// (a0 + a1) + (a2 + a3), then the tail in order): a fixed order that breaks the add latency chain.
template <typename Term>
inline double lane_sum(int64_t n, Term&& term) {
  double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += term(i);
    a1 += term(i + 1);
    a2 += term(i + 2);
    a3 += term(i + 3);
  }
  double s = (a0 + a1) + (a2 + a3);
  for (; i < n; ++i) s += term(i);
  return s;
}

inline double dot_f64(const float* a, const float* b, int64_t n) {
  return lane_sum(n, [&](int64_t i) { return static_cast<double>(a[i]) * b[i]; });
}

inline double sum_squares(const float* x, int64_t n) { return dot_f64(x, x, n); }

}  // namespace

// ---- mean pooling -------------------------------------------------------------------------------

void CpuBackend::mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) {
  const int64_t count = N - start;
  if (count <= 0) {
    for (int64_t i = 0; i < B * D; ++i) out[i] = 0.0f;
    return;
  }
  const float inv = 1.0f / static_cast<float>(count);
  parallel_for(B, rows_per_chunk(count * D), [&](int64_t begin, int64_t end) {
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

void CpuBackend::mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) {
  const int64_t count = N - start;
  const float inv = count > 0 ? 1.0f / static_cast<float>(count) : 0.0f;
  parallel_for(B * N, rows_per_chunk(D), [&](int64_t begin, int64_t end) {
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

void CpuBackend::l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) {
  parallel_for(R, rows_per_chunk(D), [&](int64_t begin, int64_t end) {
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

void CpuBackend::l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D,
                                       float eps) {
  parallel_for(R, rows_per_chunk(D), [&](int64_t begin, int64_t end) {
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

// ---- normalised-pixel MSE ---------------------------------------------------------------------

void CpuBackend::normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask,
                                              int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss) {
  const int64_t R = B * L;
  double mask_sum = 0.0;
  for (int64_t r = 0; r < R; ++r) mask_sum += mask[r];
  if (mask_sum == 0.0 || P <= 0) {
    if (dpred) {
      parallel_for(R * P, kMinWork, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) dpred[i] = 0.0f;
      });
    }
    *loss = 0.0f;
    return;
  }
  // d loss / d pred[r, i] = mask[r] · 2·(pred − target_n) / (P · Σ mask)
  const double grad_coef = 2.0 * static_cast<double>(dloss) / (static_cast<double>(P) * mask_sum);
  const int64_t blocks = (R + kPatchBlock - 1) / kPatchBlock;
  double* partial = scratch<double>(ScratchSlot::Reduction, static_cast<size_t>(blocks));
  parallel_for(blocks, rows_per_chunk(kPatchBlock * P), [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t r_end = (blk + 1) * kPatchBlock < R ? (blk + 1) * kPatchBlock : R;
      double acc = 0.0;
      for (int64_t r = blk * kPatchBlock; r < r_end; ++r) {
        const float w = mask[r];
        float* dp = dpred ? dpred + r * P : nullptr;
        if (w == 0.0f) {
          if (dp) {
            for (int64_t i = 0; i < P; ++i) dp[i] = 0.0f;
          }
          continue;
        }
        const float* p = pred + r * P;
        const float* t = target + r * P;
        double mean = 0.0;
        double rstd = 1.0;
        if (norm_pix) {
          mean = lane_sum(P, [&](int64_t i) { return static_cast<double>(t[i]); }) / static_cast<double>(P);
          const double var = lane_sum(P, [&](int64_t i) {
                               const double c = t[i] - mean;
                               return c * c;
                             }) / static_cast<double>(P - 1);
          rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
        }
        const double g = grad_coef * w;
        const double sq = lane_sum(P, [&](int64_t i) {
          const double diff = p[i] - (t[i] - mean) * rstd;
          if (dp) dp[i] = static_cast<float>(g * diff);
          return diff * diff;
        });
        acc += w * (sq / static_cast<double>(P));
      }
      partial[blk] = acc;
    }
  });
  double total = 0.0;
  for (int64_t blk = 0; blk < blocks; ++blk) total += partial[blk];
  *loss = static_cast<float>(total / mask_sum);
}

// ---- InfoNCE ------------------------------------------------------------------------------------

void CpuBackend::infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau,
                                          float scale, float dloss) {
  if (B <= 0) {
    *loss = 0.0f;
    return;
  }
  constexpr double kNormEps = 1e-12;  // F.normalize's default
  double* sums = scratch<double>(ScratchSlot::Reduction, static_cast<size_t>(2 * B));
  double* k_coef = sums;        // (B): 1 / (max(||k_j||, eps) · τ), so logit_ij = (q_i·k_j)·q_inv·k_coef[j]
  double* row_loss = sums + B;  // (B): CE of row i, summed in row order at the end
  // Per worker thread: (B) logits, then exp(logit − max), and (E) d loss / d q̂_i.
  const PerThreadScratch<double> rows(ScratchSlot::ReductionRows, static_cast<size_t>(B + E));
  parallel_for(B, rows_per_chunk(E), [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const double n = std::sqrt(sum_squares(k + j * E, E));
      k_coef[j] = 1.0 / ((n > kNormEps ? n : kNormEps) * static_cast<double>(tau));
    }
  });
  // d loss / d logit_ij = scale/B · (softmax_ij − δ_ij), times dloss.
  const double grad_coef = static_cast<double>(scale) * static_cast<double>(dloss) / static_cast<double>(B);
  parallel_for(B, rows_per_chunk(B * E), [&](int64_t begin, int64_t end) {
    double* logits = rows.thread_slice();
    double* dqhat = logits + B;
    for (int64_t i = begin; i < end; ++i) {
      const float* qi = q + i * E;
      const double nq = std::sqrt(sum_squares(qi, E));
      const double q_inv = 1.0 / (nq > kNormEps ? nq : kNormEps);
      double max_logit = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < B; ++j) {
        const double s = dot_f64(qi, k + j * E, E) * q_inv * k_coef[j];
        logits[j] = s;
        max_logit = s > max_logit ? s : max_logit;
      }
      const double diag = logits[i];
      double sum = 0.0;
      for (int64_t j = 0; j < B; ++j) {
        logits[j] = std::exp(logits[j] - max_logit);
        sum += logits[j];
      }
      row_loss[i] = max_logit + std::log(sum) - diag;
      if (!dq) continue;

      for (int64_t e = 0; e < E; ++e) dqhat[e] = 0.0;
      const double inv_sum = 1.0 / sum;
      for (int64_t j = 0; j < B; ++j) {
        const double dlogit = grad_coef * (logits[j] * inv_sum - (j == i ? 1.0 : 0.0));
        const double c = dlogit * k_coef[j];  // d logit_ij / d q̂_i = k_j / (||k_j||·τ)
        const float* kj = k + j * E;
        // Explicit fma: the peeled and vector iterations round identically whatever the buffer's
        // alignment, so the result does not depend on which thread's scratch holds the row.
#pragma omp simd
        for (int64_t e = 0; e < E; ++e) dqhat[e] = std::fma(c, static_cast<double>(kj[e]), dqhat[e]);
      }
      float* o = dq + i * E;
      if (nq >= kNormEps) {
        // q̂ = q/||q||: dq = (dq̂ − q̂·(q̂·dq̂)) / ||q||
        const double proj = lane_sum(E, [&](int64_t e) { return qi[e] * q_inv * dqhat[e]; });
        for (int64_t e = 0; e < E; ++e) o[e] = static_cast<float>((dqhat[e] - qi[e] * q_inv * proj) * q_inv);
      } else {
        for (int64_t e = 0; e < E; ++e) o[e] = static_cast<float>(dqhat[e] * q_inv);
      }
    }
  });
  double total = 0.0;
  for (int64_t i = 0; i < B; ++i) total += row_loss[i];
  *loss = static_cast<float>(static_cast<double>(scale) * total / static_cast<double>(B));
}

}  // namespace cmae::cpu
