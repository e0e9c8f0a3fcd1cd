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

// Runs `layout(Bump&)` to measure, allocates on `backend`, runs it again to assign pointers.
template <typename Layout>
Tensor plan_workspace(Backend& backend, Layout&& layout) {
  Bump measure;
  layout(measure);
  Tensor memory = Tensor::empty({measure.used() > 0 ? measure.used() : 1}, DType::F32, backend);
  Bump assign(memory.f32());
  layout(assign);
  return memory;
}

}  // namespace cmae::model
