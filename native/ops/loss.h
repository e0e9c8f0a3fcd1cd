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

 protected:
  ~LossOps() = default;
};

}  // namespace cmae
