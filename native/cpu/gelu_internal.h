// The vector GELU of each ISA on an element range [begin, end), shared by the element-wise kernels
// (activation.h's gelu_forward/gelu_backward, which parallelise over it) and the GEMM epilogue
// (gemm_internal.h's PostOp), so a fused and an unfused GELU give bit-identical results.
// Lane-wise arithmetic only: an element's result does not depend on where it sits in the range.
#pragma once
#include <cstdint>

namespace cmae::cpu {

namespace fused_avx2 {  // fused.cc (AVX2 + FMA)
void gelu_forward(float* out, const float* inp, int64_t begin, int64_t end);
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t begin, int64_t end);
}  // namespace fused_avx2

namespace fused_avx512 {  // fused_avx512.cc; call only when current_isa() is AVX512
void gelu_forward(float* out, const float* inp, int64_t begin, int64_t end);
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t begin, int64_t end);
}  // namespace fused_avx512

}  // namespace cmae::cpu
