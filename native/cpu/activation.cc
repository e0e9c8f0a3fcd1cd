#include "ops/activation.h"

#include "core/threads.h"

namespace cmae::cpu {

// 16k elements per thread chunk: below that, the fork/join costs more than the work.
constexpr int64_t kElementwiseChunk = 1 << 14;

void relu_forward(float* out, const float* inp, int64_t n) {
  parallel_for(n, kElementwiseChunk, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
  });
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_for(n, kElementwiseChunk, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
  });
}

}  // namespace cmae::cpu
