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

 private:
  float* base_;
  int64_t used_ = 0;
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
