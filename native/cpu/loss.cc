// The fused CMAE losses (ops/loss.h).
#include <cmath>
#include <limits>

#include "core/threads.h"
#include "cpu/cpu_backend.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace cmae::cpu {

namespace {

// The norm-pix loss is reduced in blocks of this many patches: block partials are written by the
// thread that owns the block and added in block order, so the sum never depends on the split.
constexpr int64_t kPatchBlock = 16;

}  // namespace

// ---- normalised-pixel MSE ---------------------------------------------------------------------

void CpuBackend::normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask,
                                              int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss) {
  const int64_t R = B * L;
  double mask_sum = 0.0;
  for (int64_t r = 0; r < R; ++r) mask_sum += mask[r];
  if (mask_sum == 0.0 || P <= 0) {
    if (dpred) {
      parallel_for(R * P, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
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
  parallel_for(blocks, min_items(kPatchBlock * P), [&](int64_t begin, int64_t end) {
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
  parallel_for(B, min_items(E), [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const double n = std::sqrt(sum_squares(k + j * E, E));
      k_coef[j] = 1.0 / ((n > kNormEps ? n : kNormEps) * static_cast<double>(tau));
    }
  });
  // d loss / d logit_ij = scale/B · (softmax_ij − δ_ij), times dloss.
  const double grad_coef = static_cast<double>(scale) * static_cast<double>(dloss) / static_cast<double>(B);
  parallel_for(B, min_items(B * E), [&](int64_t begin, int64_t end) {
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
