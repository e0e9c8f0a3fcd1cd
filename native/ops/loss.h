// Pooling, L2 normalisation and the two CMAE losses (spec §1.6, §2.7). Activation gradients
// overwrite (=). The fused losses write the scalar loss into `loss` (one float in the backend's
// memory, so a device backend never waits on the host) and, when the gradient pointer is non-null,
// the gradient of dloss·loss. Every reduction has a fixed summation order, so results do not depend
// on the thread count.
#pragma once
#include <cstdint>

namespace cmae {

struct LossOps {
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
