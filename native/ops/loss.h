// Pooling, L2 normalisation and the two CMAE losses (spec §1.6, §2.7). Contract shared by
// cmae::cpu and cmae::cuda (same names, same arguments; CUDA adds a trailing stream).
// Activation gradients overwrite (=). The fused losses return the scalar loss and, when the
// gradient pointer is non-null, write the gradient of dloss·loss into it.
// Every reduction has a fixed summation order, so results do not depend on the thread count.
// Scratch: normpix_mse_forward_backward and infonce_forward_backward keep their reduction scratch
// in thread-local buffers that grow to the largest size seen and are then reused (no allocation in
// steady-state training steps).
#pragma once
#include <cstdint>

namespace cmae::cpu {

// Mean over tokens [start, N): out (B, D) = mean_{n in [start,N)} inp[b, n, :]; inp (B, N, D).
// Requires 0 <= start < N.
void mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start);
// dinp (B, N, D): rows [start, N) = dout/(N-start) (=), rows [0,start) set to 0 (=). dout (B, D).
void mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start);

// Row-wise L2 normalisation out = x / max(||x||, eps) (F.normalize semantics, eps 1e-12); norm (R) saved.
// inp, out: (R, D); norm: (R) = ||x|| (unclamped). out may alias inp.
void l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps);
// dinp (R, D) (=): if norm >= eps, (dout − x̂·(x̂·dout)) / norm, else dout / eps (PyTorch's clamp_min
// gradient). inp is the forward input, norm the saved forward norm. dinp may alias dout.
void l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D, float eps);

// Normalised-pixel MSE over masked patches (spec §1.6), forward and backward fused.
// pred, target: (B, L, P) (target = patchify(image) in pixels-last layout); mask (B, L) 1 = masked.
// If norm_pix: target_n = (target - mean_P)/sqrt(var_unbiased_P + eps) per patch (var divides by P-1), eps = 1e-6; else target_n = target.
// loss = Σ_{b,l} mask·mean_P((pred - target_n)²) / Σ mask; returns loss (double accumulation, deterministic).
// dpred (B, L, P) (=) = dloss * d loss/d pred (zeros on visible patches); dpred may be null (forward only). If Σ mask == 0, loss = 0 and dpred = 0.
// Requires P >= 2 when norm_pix (the unbiased variance of one value is undefined).
float normpix_mse_forward_backward(float* dpred, const float* pred, const float* target, const float* mask, int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss);

// InfoNCE of CMAE (spec §2.7), forward and backward fused, single process (B_global = B):
// q̂ = q/||q||, k̂ = k/||k|| (F.normalize, eps 1e-12), logits = q̂·k̂ᵀ/τ (B×B), loss = scale · mean_i CE(logits_i, label i),
// scale = 2τ in CMAE (passed in). dq (B, E) (=) = dloss · d loss/d q (gradient flows to q only; k is a constant target); dq may be null.
// q, k: (B, E). Returns the loss. Deterministic for any thread count.
float infonce_forward_backward(float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau, float scale, float dloss);

}  // namespace cmae::cpu
