// Optimiser passes over flat parameter arenas: AdamW (spec §1.8, §2.10), the momentum-encoder EMA
// (spec §2.9) and the global-norm helpers of gradient clipping. The per-element math is core/math.h's
// (adamw_update, ema_lerp, clip_coefficient), so every backend computes the same formula. Updates
// are in place. Nothing here depends on the thread count. Scalars that feed one pass from another
// (the norm, the clipping scale) stay in the backend's memory.
#pragma once
#include <cstdint>

#include "core/math.h"

namespace cmae {

struct OptimOps {
  // AdamW over n elements: for each i, adamw_update(params[i], m[i], v[i], s·grads[i], decay_mask[i],
  // step), s = *grad_scale (one float in backend memory; null = 1; for clipping it is what
  // clip_coefficient wrote). decay_mask (n): 1 = decayed, 0 = excluded (biases, norms, tokens, pos
  // embeddings); null = all 1. params, m, v, grads: (n); grads is only read.
  virtual void adamw_step(float* params, float* m, float* v, const float* grads, const float* decay_mask, int64_t n,
                          const AdamWStep& step, const float* grad_scale) = 0;

  // target ← m·target + (1−m)·online (ema_lerp), over n elements. target, online: (n).
  virtual void ema_update(float* target, const float* online, int64_t n, float momentum) = 0;

  // *norm (one double) = sqrt(Σ g²) over n elements, accumulated in double in fixed-size blocks
  // reduced in index order.
  virtual void global_norm(double* norm, const float* grads, int64_t n) = 0;

  // *scale (one float) = clip_coefficient(*norm, max_norm): torch.nn.utils.clip_grad_norm_'s
  // min(1, max_norm / (norm + 1e-6)).
  virtual void clip_coefficient(float* scale, const double* norm, double max_norm) = 0;

  // x *= s over n elements.
  virtual void scale_inplace(float* x, int64_t n, float s) = 0;

 protected:
  ~OptimOps() = default;
};

}  // namespace cmae
