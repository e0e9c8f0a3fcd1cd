// Element-wise activations (ops/activation.h), and the vectorised GELU of one compile target
// (cpu/gelu.h, cpu/target.h): the row loops and the math are cpu/vec_math.h's templates on the
// target's 8-lane traits (cpu/vec_avx2.h or cpu/vec_portable.h); activation_avx512.cc instantiates
// the same templates with 16 lanes. Both are
// also the GEMM epilogue's (gemm_internal.h PostOp), so a fused and an unfused GELU give
// bit-identical results.
#include "core/cpu_features.h"
#include "core/threads.h"
#include "cpu/target.h"
#include "cpu/gelu.h"
#include "cpu/vec_math.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

namespace gelu_rows {

void gelu_forward(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  vec::gelu_rows<Vec, false>(out, ldo, nullptr, 0, inp, ldi, rows, cols);
}

void gelu_backward(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi, int64_t rows,
                   int64_t cols) {
  vec::gelu_rows<Vec, true>(dinp, ldd, dout, ldo, inp, ldi, rows, cols);
}

}  // namespace gelu_rows

namespace {

// This target's vector GELU, or the AVX-512 one when the avx2 build serves the avx512 path (the
// portable build never references it: it is not compiled off x86).
GeluForwardRows forward_rows() {
#if defined(CMAE_CPU_TARGET_AVX2)
  if (current_isa() == Isa::AVX512) return gelu_avx512::gelu_forward;
#endif
  return gelu_rows::gelu_forward;
}
GeluBackwardRows backward_rows() {
#if defined(CMAE_CPU_TARGET_AVX2)
  if (current_isa() == Isa::AVX512) return gelu_avx512::gelu_backward;
#endif
  return gelu_rows::gelu_backward;
}

}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
  const GeluForwardRows rows = forward_rows();
  parallel_for(n, kMinElementsPerThread,
               [&](int64_t begin, int64_t end) { rows(out + begin, 0, inp + begin, 0, 1, end - begin); });
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  const GeluBackwardRows rows = backward_rows();
  parallel_for(n, kMinElementsPerThread,
               [&](int64_t begin, int64_t end) { rows(dinp + begin, 0, dout + begin, 0, inp + begin, 0, 1, end - begin); });
}

void relu_forward(float* out, const float* inp, int64_t n) {
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
  });
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
  });
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
