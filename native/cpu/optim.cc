// Optimiser passes over flat parameter arenas (ops/optim.h).
#include <cmath>

#include "core/threads.h"
#include "cpu/target.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

namespace {

// Optimiser loops stream over the whole parameter arena (10⁷–10⁸ elements): give each thread
// large contiguous chunks.
constexpr int64_t kArenaChunk = 1 << 16;

// global_norm sums squares in fixed blocks of this many elements; the block partials are then
// added in block order. The block grid depends on n only, never on the thread count.
constexpr int64_t kNormBlock = 1 << 14;

}  // namespace

void adamw_step(float* params, float* m, float* v, const float* grads, const float* decay_mask, int64_t n,
                const AdamWStep& step, const float* grad_scale_ptr) {
  const float grad_scale = grad_scale_ptr ? *grad_scale_ptr : 1.0f;
  // Vectorised (omp simd; sqrtf vectorises thanks to -fno-math-errno): the scalar loop spent ~15
  // cycles per element in divss/sqrtss and made AdamW compute-bound at ~9 GB/s per core.
  parallel_for(n, kArenaChunk, [&](int64_t begin, int64_t end) {
    if (decay_mask) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) adamw_update(params[i], m[i], v[i], grad_scale * grads[i], decay_mask[i], step);
    } else {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) adamw_update(params[i], m[i], v[i], grad_scale * grads[i], 1.0f, step);
    }
  });
}

void ema_update(float* target, const float* online, int64_t n, float momentum) {
  parallel_for(n, kArenaChunk, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) target[i] = ema_lerp(target[i], online[i], momentum);
  });
}

void global_norm(double* norm, const float* grads, int64_t n) {
  if (n <= 0) {
    *norm = 0.0;
    return;
  }
  const int64_t blocks = (n + kNormBlock - 1) / kNormBlock;
  double* partial = scratch<double>(ScratchSlot::Reduction, static_cast<size_t>(blocks));
  parallel_for(blocks, kArenaChunk / kNormBlock, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t lo = blk * kNormBlock;
      const int64_t hi = lo + kNormBlock < n ? lo + kNormBlock : n;
      partial[blk] = sum_squares(grads + lo, hi - lo);
    }
  });
  double total = 0.0;
  for (int64_t blk = 0; blk < blocks; ++blk) total += partial[blk];
  *norm = std::sqrt(total);
}

void clip_coefficient(float* scale, const double* norm, double max_norm) { *scale = cmae::clip_coefficient(*norm, max_norm); }

void scale_inplace(float* x, int64_t n, float s) {
  parallel_for(n, kArenaChunk, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) x[i] *= s;
  });
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
