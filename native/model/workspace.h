// Activation memory planned once per (config, batch size) and never allocated inside a step
// (native/README.md, principle 2). Layout code runs twice: first against a null base to measure, then
// against the real buffer; take() hands out 64-byte aligned slices. The buffer lives in a
// backend's memory: slices are only pointer arithmetic, never dereferenced here.
#pragma once
#include <cstdint>

#include "backend/backend.h"
#include "core/tensor.h"

namespace cmae::model {

class Bump {
 public:
  explicit Bump(float* base = nullptr) : base_(base) {}
  float* take(int64_t count) {
    float* p = base_ ? base_ + used_ : nullptr;
    used_ += (count + 15) / 16 * 16;  // 16 floats = 64 bytes keeps every slice aligned
    return p;
  }
  int32_t* take_i32(int64_t count) { return reinterpret_cast<int32_t*>(take(count)); }
  int64_t used() const { return used_; }

  // A buffer of `per_sample` floats for each sample of a `batch`, indexed by the sample's index in
  // the batch. Inside a window (set_window) only the window's samples get memory, and the pointer
  // returned is where sample 0's row would be, so callers keep indexing by batch index: a
  // data-parallel rank plans its own samples' activations only (on a GPU the workspace is
  // allocated memory, not address space the OS backs lazily). The pointer arithmetic leaves the
  // buffer for a rank r > 0, and is only ever taken back into it by adding an index of the window.
  float* take_samples(int64_t per_sample, int64_t batch) {
    if (window_count_ < 0) return take(batch * per_sample);
    float* p = take(window_count_ * per_sample);
    return p ? reinterpret_cast<float*>(reinterpret_cast<uintptr_t>(p) - sizeof(float) * static_cast<uintptr_t>(window_first_ * per_sample))
             : nullptr;
  }
  void set_window(int64_t first, int64_t count) {
    window_first_ = first;
    window_count_ = count;
  }
  void clear_window() { set_window(0, -1); }

 private:
  float* base_;
  int64_t used_ = 0;
  int64_t window_first_ = 0, window_count_ = -1;  // count < 0: no window
};

// Runs `layout(Bump&)` to measure, asks `memory(floats)` for a buffer of at least that many floats
// of backend memory (the owner decides whether it is new or reused), runs it again to assign
// pointers into it.
template <typename Memory, typename Layout>
void plan_workspace(Memory&& memory, Layout&& layout) {
  Bump measure;
  layout(measure);
  float* base = memory(measure.used() > 0 ? measure.used() : 1);
  Bump assign(base);
  layout(assign);
}

}  // namespace cmae::model
