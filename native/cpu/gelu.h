// The vector GELU of each ISA on a rows x cols block (each operand with its own row stride; a 1-D
// range is one row), shared by the element-wise kernels (CpuBackend::gelu_forward/gelu_backward,
// which parallelise over it) and the GEMM epilogue (gemm_internal.h's PostOp), so a fused and an
// unfused GELU give bit-identical results. Every path is an instance of the same templates
// (cpu/vec_math.h gelu_rows, which owns the numerics). Lane-wise arithmetic only: an element's
// result does not depend on where it sits in the block. Outputs may alias their inputs exactly.
//   gelu_forward:  out = GELU(inp)
//   gelu_backward: dinp = dout · GELU'(inp)
#pragma once
#include <cstdint>

namespace cmae::cpu {

// The signatures below, as pointers (the GEMM epilogue takes them as template arguments).
using GeluForwardRows = void (*)(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols);
using GeluBackwardRows = void (*)(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi,
                                  int64_t rows, int64_t cols);

#ifdef CMAE_CPU_TARGET
namespace CMAE_CPU_TARGET::gelu_rows {  // activation.cc, in each compile target (cpu/target.h)
void gelu_forward(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols);
void gelu_backward(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi, int64_t rows,
                   int64_t cols);
}  // namespace CMAE_CPU_TARGET::gelu_rows
#endif

namespace gelu_avx512 {  // activation_avx512.cc; call only when current_isa() is AVX512
void gelu_forward(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols);
void gelu_backward(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi, int64_t rows,
                   int64_t cols);
}  // namespace gelu_avx512

}  // namespace cmae::cpu
