// The two CMAE losses (spec §1.6, §2.7), forward and backward fused. The losses write the scalar loss into `loss` (one float in the backend's
// memory, so a device backend never waits on the host) and, when the gradient pointer is non-null,
// the gradient of dloss·loss. Every reduction has a fixed summation order, so results do not depend
// on the thread count.
#pragma once
#include <cstdint>

namespace cmae {

struct LossOps {
  // Normalised-pixel MSE over masked patches (spec §1.6), forward and backward fused.
  // pred, target: (B, L, P) (target = patchify(image), pixels-last); mask (B, L), 1 = masked.
  // If norm_pix: target_n = (target − mean_P)/sqrt(var_unbiased_P + eps) per patch (var divides by
  // P−1); else target_n = target. loss (1) = Σ_{b,l} mask·mean_P((pred − target_n)²) / Σ mask
  // (accumulated in double). dpred (B, L, P) (=) = dloss · d loss/d pred (zeros on visible
  // patches); dpred may be null (forward only). If Σ mask == 0, loss = 0 and dpred = 0.
  // Requires P >= 2 when norm_pix (the unbiased variance of one value is undefined).
  virtual void normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask,
                                            int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss) = 0;

  // InfoNCE of CMAE (spec §2.7), forward and backward fused, single process (B_global = B):
  // q̂ = q/||q||, k̂ = k/||k|| (F.normalize, eps 1e-12), logits = q̂·k̂ᵀ/τ (B×B), loss (1) = scale ·
  // mean_i CE(logits_i, label i), scale = 2τ in CMAE (passed in). dq (B, E) (=) = dloss · d loss/d q
  // (the gradient flows to q only; k is a constant target); dq may be null. q, k: (B, E).
  virtual void infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau,
                                        float scale, float dloss) = 0;

  // SimCLR's NT-Xent over R = 2N samples, forward and backward fused. z (R, E): view 1's N rows,
  // then view 2's; ẑ = z/max(||z||, 1e-12) (F.normalize); s_ij = ẑ_i·ẑ_j/τ; the positive of row i is
  // its other view, p(i) = (i + N) mod R, and its candidates are every j ≠ i: loss (1) = scale ·
  // mean_i [log Σ_{j≠i} exp(s_ij) − s_{i,p(i)}]. dz (R, E) (=) = dloss · d loss/d z through both
  // of z's roles (anchor and candidate): d loss/d ẑ_k = scale/(R·τ) Σ_{j≠k} (P_kj + P_jk − 2·[j =
  // p(k)]) ẑ_j with P_ij = softmax_{j≠i}(s_i)_j; dz may be null. R even and ≥ 2 (the caller checks).
  virtual void ntxent_forward_backward(float* loss, float* dz, const float* z, int64_t R, int64_t E, float tau, float scale,
                                       float dloss) = 0;

  // DenseCL's dense InfoNCE, forward and backward fused. q (B, Lq, E): the online dense
  // projections; k (B, Lk, E): the momentum ones (constant targets); match (B, Lq) in [0, Lk): the
  // positive key token of each query (match_tokens). q̂, k̂ = rows / max(||row||, 1e-12); the
  // negatives of sample b are the other samples' pooled keys n̂_m = normalize(mean_j k[m, j, :])
  // (DenseCL's queue of pooled dense keys, here the batch's other images), m ≠ b. For query row
  // r = (b, i): s₊ = q̂_r·k̂[b, match[r]]/τ, s_m = q̂_r·n̂_m/τ; loss (1) = scale · mean over the B·Lq
  // rows of [log(exp s₊ + Σ_{m≠b} exp s_m) − s₊] (B = 1: no negatives, loss 0). dq (B, Lq, E) (=)
  // = dloss · d loss/d q (k is constant); dq may be null. Summation order fixed (results do not
  // depend on the thread count). Lk >= 1.
  virtual void dense_infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, const int32_t* match,
                                              int64_t B, int64_t Lq, int64_t Lk, int64_t E, float tau, float scale,
                                              float dloss) = 0;

  // The classifier's softmax cross-entropy against soft targets, forward and backward fused.
  // logits, targets: (B, C); a target row is a distribution over the C classes (one-hot, label
  // smoothing's (1 − ε)·one-hot + ε/C, mixup's blend of two), built by the caller.
  // loss (1) = mean_b Σ_c −targets_bc · log softmax(logits_b)_c (log-sum-exp with the row max,
  // accumulated in double). dlogits (B, C) (=) = dloss/B · (softmax(logits_b)_c · Σ_c' targets_bc'
  // − targets_bc) (the exact gradient, also for rows that do not sum to 1); dlogits may be null.
  // B = 0 gives loss 0.
  virtual void softmax_cross_entropy_forward_backward(float* loss, float* dlogits, const float* logits, const float* targets,
                                                      int64_t B, int64_t C, float dloss) = 0;

 protected:
  ~LossOps() = default;
};

}  // namespace cmae
