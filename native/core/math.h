// Per-element math of the backends (see host_device.h): every backend computes these formulas, so
// they are written once. Keep them branch-light: they sit in inner loops.
#pragma once
#include <cmath>
#include "host_device.h"

namespace cmae {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// GELU in PyTorch nn.GELU's default (exact erf) form: 0.5·x·(1 + erf(x/√2)) (spec §1.3), computed as
// x·Φ(x) with Φ(x) = erfc(−x/√2)/2: the same function without 1 + erf's cancellation for x < 0,
// where a few ulps of erff would otherwise dominate the result.
CMAE_HD float normal_cdf(float x) { return 0.5f * erfcf(-x * kInvSqrt2); }
CMAE_HD float gelu(float x) { return x * normal_cdf(x); }

// d/dx GELU(x) = Φ(x) + x·φ(x).
CMAE_HD float gelu_grad(float x) {
  const float cdf = normal_cdf(x);
  const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
  return cdf + x * pdf;
}

// Hyper-parameters of one AdamW step, with the bias corrections precomputed once per step.
struct AdamWStep {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;
  float bias_correction1;  // 1 - beta1^t
  float bias_correction2;  // 1 - beta2^t
};

// One AdamW element update (decoupled weight decay, PyTorch torch.optim.AdamW semantics):
//   p ← p − lr·wd·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//   p ← p − lr · (m / bc1) / (sqrt(v / bc2) + eps)
// decay_mask is 1 for parameters that take weight decay, 0 for the excluded ones (spec §2.10).
CMAE_HD void adamw_update(float& param, float& m, float& v, float grad, float decay_mask,
                          const AdamWStep& s) {
  param -= s.lr * s.weight_decay * decay_mask * param;
  m = s.beta1 * m + (1.0f - s.beta1) * grad;
  v = s.beta2 * v + (1.0f - s.beta2) * grad * grad;
  const float m_hat = m / s.bias_correction1;
  const float v_hat = v / s.bias_correction2;
  param -= s.lr * m_hat / (sqrtf(v_hat) + s.eps);
}

// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_): the factor the gradients are
// multiplied by, min(1, max_norm / (norm + 1e-6)). The one place this rule lives.
CMAE_HD float clip_coefficient(double norm, double max_norm) {
  const double coef = max_norm / (norm + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

// Momentum-encoder update θ_t ← m·θ_t + (1−m)·θ_o (spec §2.9).
CMAE_HD float ema_lerp(float target, float online, float momentum) {
  return momentum * target + (1.0f - momentum) * online;
}

}  // namespace cmae
