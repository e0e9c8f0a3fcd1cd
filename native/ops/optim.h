// Optimiser steps over flat parameter arenas: AdamW (spec §1.8, §2.10), the momentum-encoder EMA
// (spec §2.9) and global-norm helpers for gradient clipping. Contract shared by cmae::cpu and
// cmae::cuda (same names, same arguments; CUDA adds a trailing stream). The per-element math is
// core/math.h's (adamw_update, ema_lerp), so both backends compute bit-for-bit the same formula.
// Updates are in place. Nothing here depends on the thread count.
#pragma once
#include <cstdint>

#include "core/math.h"

namespace cmae::cpu {

// AdamW over a flat parameter arena (n elements): for each i, math.h adamw_update(params[i], m[i], v[i], grad_scale*grads[i], decay_mask[i], step).
// decay_mask (n) holds 1 for decayed parameters and 0 for excluded ones (biases, norms, tokens, pos embeddings); may be null = all 1.
// grad_scale multiplies gradients (1 normally; for global-norm clipping pass min(1, max_norm/norm)).
// params, m, v, grads: (n). grads is only read.
void adamw_step(float* params, float* m, float* v, const float* grads, const float* decay_mask, int64_t n, const AdamWStep& step, float grad_scale);

// target ← m·target + (1−m)·online (math.h ema_lerp), over n elements. target, online: (n).
void ema_update(float* target, const float* online, int64_t n, float momentum);

// sqrt(Σ g²) over n elements, accumulated in double in fixed-size blocks reduced in index order (independent of thread count).
// Uses a thread-local scratch of one double per block (grows to the largest size seen, then reused).
double global_norm(const float* grads, int64_t n);

// Scales n elements in place: x *= s.
void scale_inplace(float* x, int64_t n, float s);

}  // namespace cmae::cpu
