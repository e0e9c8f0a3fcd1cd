// The fused CMAE losses (ops/loss.h).
#include <cmath>
#include <limits>

#include "core/threads.h"
#include "cpu/target.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

namespace {

// The norm-pix loss is reduced in blocks of this many patches: block partials are written by the
// thread that owns the block and added in block order, so the sum never depends on the split.
constexpr int64_t kPatchBlock = 16;

// dq of a row through F.normalize, q̂ = q / max(||q||, eps), given dq̂ (double) and q_inv =
// 1/max(||q||, eps): (dq̂ − q̂·(q̂·dq̂)) / ||q||, or dq̂/eps where the clamp holds (its gradient).
void normalize_row_backward(float* o, const float* q, const double* dqhat, double nq, double q_inv, double eps, int64_t E) {
  if (nq >= eps) {
    const double proj = lane_sum(E, [&](int64_t e) { return q[e] * q_inv * dqhat[e]; });
    for (int64_t e = 0; e < E; ++e) o[e] = static_cast<float>((dqhat[e] - q[e] * q_inv * proj) * q_inv);
  } else {
    for (int64_t e = 0; e < E; ++e) o[e] = static_cast<float>(dqhat[e] * q_inv);
  }
}

}  // namespace

// ---- normalised-pixel MSE ---------------------------------------------------------------------

void normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask,
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

void infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau,
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
      normalize_row_backward(dq + i * E, qi, dqhat, nq, q_inv, kNormEps, E);
    }
  });
  double total = 0.0;
  for (int64_t i = 0; i < B; ++i) total += row_loss[i];
  *loss = static_cast<float>(static_cast<double>(scale) * total / static_cast<double>(B));
}

// ---- DenseCL's dense InfoNCE --------------------------------------------------------------------

void dense_infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, const int32_t* match, int64_t B,
                                    int64_t Lq, int64_t Lk, int64_t E, float tau, float scale, float dloss) {
  const int64_t R = B * Lq;
  if (R <= 0) {
    *loss = 0.0f;
    return;
  }
  constexpr double kNormEps = 1e-12;  // F.normalize's default
  double* sums = scratch<double>(ScratchSlot::Reduction, static_cast<size_t>(B * E + R));
  double* neg = sums;           // (B, E): n̂_m = normalize(mean_j k[m, j, :]), each sample's negative for the others
  double* row_loss = sums + B * E;  // (R): CE of each query row, summed in row order at the end
  parallel_for(B, min_items(Lk * E), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      double* n = neg + m * E;
      for (int64_t e = 0; e < E; ++e) n[e] = 0.0;
      for (int64_t j = 0; j < Lk; ++j) {
        const float* kj = k + (m * Lk + j) * E;
        for (int64_t e = 0; e < E; ++e) n[e] += static_cast<double>(kj[e]);
      }
      // The 1/Lk of the mean cancels in the normalisation but not in F.normalize's eps clamp.
      for (int64_t e = 0; e < E; ++e) n[e] /= static_cast<double>(Lk);
      const double norm = std::sqrt(lane_sum(E, [&](int64_t e) { return n[e] * n[e]; }));
      const double inv = 1.0 / (norm > kNormEps ? norm : kNormEps);
      for (int64_t e = 0; e < E; ++e) n[e] *= inv;
    }
  });
  const double inv_tau = 1.0 / static_cast<double>(tau);
  // d loss / d logit = scale/R · (softmax − [positive]), times dloss.
  const double grad_coef = static_cast<double>(scale) * static_cast<double>(dloss) / static_cast<double>(R);
  // Per worker thread: (B) negative logits, then their exp(logit − max), and (E) d loss / d q̂_r.
  const PerThreadScratch<double> rows(ScratchSlot::ReductionRows, static_cast<size_t>(B + E));
  parallel_for(R, min_items(B * E), [&](int64_t begin, int64_t end) {
    double* logits = rows.thread_slice();
    double* dqhat = logits + B;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / Lq;
      const float* qr = q + r * E;
      const float* kp = k + (b * Lk + match[r]) * E;
      const double nq = std::sqrt(sum_squares(qr, E)), nk = std::sqrt(sum_squares(kp, E));
      const double q_inv = 1.0 / (nq > kNormEps ? nq : kNormEps), k_inv = 1.0 / (nk > kNormEps ? nk : kNormEps);
      const double pos = dot_f64(qr, kp, E) * q_inv * k_inv * inv_tau;
      double max_logit = pos;
      for (int64_t m = 0; m < B; ++m) {
        if (m == b) continue;
        const double* nm = neg + m * E;
        logits[m] = lane_sum(E, [&](int64_t e) { return static_cast<double>(qr[e]) * nm[e]; }) * q_inv * inv_tau;
        max_logit = logits[m] > max_logit ? logits[m] : max_logit;
      }
      const double pos_exp = std::exp(pos - max_logit);
      double sum = pos_exp;
      for (int64_t m = 0; m < B; ++m) {
        if (m == b) continue;
        logits[m] = std::exp(logits[m] - max_logit);
        sum += logits[m];
      }
      row_loss[r] = max_logit + std::log(sum) - pos;
      if (!dq) continue;

      const double inv_sum = 1.0 / sum;
      const double c_pos = grad_coef * (pos_exp * inv_sum - 1.0) * k_inv * inv_tau;  // d s₊ / d q̂ = k̂₊/τ
      for (int64_t e = 0; e < E; ++e) dqhat[e] = c_pos * static_cast<double>(kp[e]);
      for (int64_t m = 0; m < B; ++m) {
        if (m == b) continue;
        const double c = grad_coef * logits[m] * inv_sum * inv_tau;
        const double* nm = neg + m * E;
        // Explicit fma, as infonce: the same rounding whatever the alignment of the thread's scratch.
#pragma omp simd
        for (int64_t e = 0; e < E; ++e) dqhat[e] = std::fma(c, nm[e], dqhat[e]);
      }
      normalize_row_backward(dq + r * E, qr, dqhat, nq, q_inv, kNormEps, E);
    }
  });
  double total = 0.0;
  for (int64_t r = 0; r < R; ++r) total += row_loss[r];
  *loss = static_cast<float>(static_cast<double>(scale) * total / static_cast<double>(R));
}

// ---- NT-Xent --------------------------------------------------------------------------------------

void ntxent_forward_backward(float* loss, float* dz, const float* z, int64_t R, int64_t E, float tau, float scale,
                             float dloss) {
  if (R <= 0) {
    *loss = 0.0f;
    return;
  }
  constexpr double kNormEps = 1e-12;  // F.normalize's default
  const int64_t N = R / 2;
  const auto positive = [&](int64_t i) { return i < N ? i + N : i - N; };
  double* sums = scratch<double>(ScratchSlot::Reduction, static_cast<size_t>(3 * R));
  double* inv = sums;           // (R): 1 / max(||z_j||, eps)
  double* lse = sums + R;       // (R): log Σ_{j≠i} exp(s_ij)
  double* row_loss = sums + 2 * R;
  parallel_for(R, min_items(E), [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const double n = std::sqrt(sum_squares(z + j * E, E));
      inv[j] = 1.0 / (n > kNormEps ? n : kNormEps);
    }
  });
  const double inv_tau = 1.0 / static_cast<double>(tau);
  const auto similarity = [&](int64_t i, int64_t j) { return dot_f64(z + i * E, z + j * E, E) * inv[i] * inv[j] * inv_tau; };
  // Per worker thread: (R) similarities of one row, then (E) d loss / d ẑ_k.
  const PerThreadScratch<double> rows(ScratchSlot::ReductionRows, static_cast<size_t>(R + E));
  // Pass 1: each row's log-sum-exp over its candidates, and its loss.
  parallel_for(R, min_items(R * E), [&](int64_t begin, int64_t end) {
    double* s = rows.thread_slice();
    for (int64_t i = begin; i < end; ++i) {
      double max_s = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < R; ++j) {
        if (j == i) continue;
        s[j] = similarity(i, j);
        max_s = s[j] > max_s ? s[j] : max_s;
      }
      double sum = 0.0;
      for (int64_t j = 0; j < R; ++j)
        if (j != i) sum += std::exp(s[j] - max_s);
      lse[i] = max_s + std::log(sum);
      row_loss[i] = lse[i] - s[positive(i)];
    }
  });
  double total = 0.0;
  for (int64_t i = 0; i < R; ++i) total += row_loss[i];
  *loss = static_cast<float>(static_cast<double>(scale) * total / static_cast<double>(R));
  if (!dz) return;

  // Pass 2: row k's gradient gathers both of its roles, row k's anchor softmax and column k of
  // every other row's (s is symmetric): c_j = P_kj + P_jk − 2·[j = p(k)].
  const double grad_coef = static_cast<double>(scale) * static_cast<double>(dloss) * inv_tau / static_cast<double>(R);
  parallel_for(R, min_items(R * E), [&](int64_t begin, int64_t end) {
    double* dzhat = rows.thread_slice() + R;
    for (int64_t k = begin; k < end; ++k) {
      for (int64_t e = 0; e < E; ++e) dzhat[e] = 0.0;
      for (int64_t j = 0; j < R; ++j) {
        if (j == k) continue;
        const double s = similarity(k, j);
        const double c = grad_coef * (std::exp(s - lse[k]) + std::exp(s - lse[j]) - (j == positive(k) ? 2.0 : 0.0)) * inv[j];
        const float* zj = z + j * E;
        // Explicit fma, as in InfoNCE: the same rounding whatever the scratch row's alignment.
#pragma omp simd
        for (int64_t e = 0; e < E; ++e) dzhat[e] = std::fma(c, static_cast<double>(zj[e]), dzhat[e]);
      }
      const float* zk = z + k * E;
      float* o = dz + k * E;
      const double nk_inv = inv[k];
      if (std::sqrt(sum_squares(zk, E)) >= kNormEps) {
        // ẑ = z/||z||: dz = (dẑ − ẑ·(ẑ·dẑ)) / ||z||
        const double proj = lane_sum(E, [&](int64_t e) { return zk[e] * nk_inv * dzhat[e]; });
        for (int64_t e = 0; e < E; ++e) o[e] = static_cast<float>((dzhat[e] - zk[e] * nk_inv * proj) * nk_inv);
      } else {
        for (int64_t e = 0; e < E; ++e) o[e] = static_cast<float>(dzhat[e] * nk_inv);
      }
    }
  });
}

// ---- softmax cross-entropy (the classifier's loss) -------------------------------------------------

void softmax_cross_entropy_forward_backward(float* loss, float* dlogits, const float* logits, const float* targets,
                                            int64_t B, int64_t C, float dloss) {
  if (B <= 0) {
    *loss = 0.0f;
    return;
  }
  double* row_loss = scratch<double>(ScratchSlot::Reduction, static_cast<size_t>(B));
  const double grad_coef = static_cast<double>(dloss) / static_cast<double>(B);
  parallel_for(B, min_items(C), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* l = logits + b * C;
      const float* t = targets + b * C;
      float max_l = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < C; ++c) max_l = l[c] > max_l ? l[c] : max_l;
      const double sum = lane_sum(C, [&](int64_t c) { return std::exp(static_cast<double>(l[c]) - max_l); });
      const double lse = static_cast<double>(max_l) + std::log(sum);
      const double t_sum = lane_sum(C, [&](int64_t c) { return static_cast<double>(t[c]); });
      // Σ_c t_c·(lse − l_c) = Σt·lse − Σ t·l.
      row_loss[b] = t_sum * lse - lane_sum(C, [&](int64_t c) { return static_cast<double>(t[c]) * l[c]; });
      if (!dlogits) continue;
      float* d = dlogits + b * C;
      for (int64_t c = 0; c < C; ++c) d[c] = static_cast<float>(grad_coef * (std::exp(static_cast<double>(l[c]) - lse) * t_sum - t[c]));
    }
  });
  double total = 0.0;
  for (int64_t b = 0; b < B; ++b) total += row_loss[b];
  *loss = static_cast<float>(total / static_cast<double>(B));
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
