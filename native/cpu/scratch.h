// Working memory of the CPU kernels: the one facility for it. A buffer is taken on the calling
// thread *before* a parallel region starts, so an allocation failure throws (the out-of-memory
// cmae::Error of CpuBackend::allocate, large buffers mapped like tensors) where
// the binding or the model catches it (an exception that escapes an OpenMP region terminates the
// process); the region's threads then use disjoint slices of it (thread_slice). Buffers belong to
// (calling thread, slot), grow to the largest size asked for and are kept: no allocation once warm.
// Each concurrent use within one call chain has its own slot, so no two live uses alias.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/threads.h"

namespace cmae::cpu {

enum class ScratchSlot : int {
  GemmPackedA,     // per worker thread: one MC x KC block of op(A)
  GemmPackedB,     // one packed super block of op(B)
  GemmPackedA16,   // the same two as bf16 pairs (MatmulPrecision::BF16)
  GemmPackedB16,
  Attention,       // per worker thread: K/V copies and a score block of one (b, h) pair
  Reduction,       // ordered reductions: per-block or per-row partial sums
  ReductionRows,   // per worker thread: a row's worth of temporaries inside a reduction
  Masking,         // per worker thread: the group order of one sample
  kCount,
};

// `bytes` bytes (64-byte aligned) of the calling thread's buffer for `slot`. Throws cmae::Error
// (ErrorKind::Device, out of memory).
void* scratch_bytes(ScratchSlot slot, size_t bytes);

template <typename T>
T* scratch(ScratchSlot slot, size_t count) {
  return static_cast<T*>(scratch_bytes(slot, count * sizeof(T)));
}

// Scratch for every thread of the next parallel region (available_threads() slices of `per_thread`
// elements, each slice 64-byte aligned); inside the region, thread_slice() picks the caller's. The
// region is the one parallel_for opens below the construction point: where it runs inline (one
// thread, or already inside run_parts' region), every call gets slice 0.
template <typename T>
class PerThreadScratch {
 public:
  PerThreadScratch(ScratchSlot slot, size_t per_thread)
      : stride_((per_thread * sizeof(T) + 63) / 64 * 64 / sizeof(T)),
        base_(scratch<T>(slot, stride_ * static_cast<size_t>(available_threads()))),
        level_(parallel_level()) {}
  T* thread_slice() const {
    const int index = parallel_level() > level_ ? thread_index_in_region() : 0;
    return base_ + stride_ * static_cast<size_t>(index);
  }

 private:
  size_t stride_;
  T* base_;
  int level_;  // parallel nesting depth where the scratch was taken
};

}  // namespace cmae::cpu
