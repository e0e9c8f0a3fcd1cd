// Element-wise activations (ops/activation.h), and the AVX2 + FMA instance of the vectorised GELU
// (cpu/gelu.h): the row loops and the math are cpu/vec_math.h's templates on the 8-lane traits of
// cpu/vec_avx2.h; activation_avx512.cc instantiates the same templates with 16 lanes. Both are
// also the GEMM epilogue's (gemm_internal.h PostOp), so a fused and an unfused GELU give
// bit-identical results.
#include "core/cpu_features.h"
#include "core/threads.h"
#include "cpu/cpu_backend.h"
#include "cpu/gelu.h"
#include "cpu/vec_avx2.h"
#include "cpu/vec_math.h"

namespace cmae::cpu {

namespace gelu_avx2 {

void gelu_forward(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  vec::gelu_rows<avx2::Vec, false>(out, ldo, nullptr, 0, inp, ldi, rows, cols);
}

void gelu_backward(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi, int64_t rows,
                   int64_t cols) {
  vec::gelu_rows<avx2::Vec, true>(dinp, ldd, dout, ldo, inp, ldi, rows, cols);
}

}  // namespace gelu_avx2

void CpuBackend::gelu_forward(float* out, const float* inp, int64_t n) {
  const bool avx512 = current_isa() == Isa::AVX512;
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
    if (avx512) {
      gelu_avx512::gelu_forward(out + begin, 0, inp + begin, 0, 1, end - begin);
    } else {
      gelu_avx2::gelu_forward(out + begin, 0, inp + begin, 0, 1, end - begin);
    }
  });
}

void CpuBackend::gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  const bool avx512 = current_isa() == Isa::AVX512;
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
    if (avx512) {
      gelu_avx512::gelu_backward(dinp + begin, 0, dout + begin, 0, inp + begin, 0, 1, end - begin);
    } else {
      gelu_avx2::gelu_backward(dinp + begin, 0, dout + begin, 0, inp + begin, 0, 1, end - begin);
    }
  });
}

void CpuBackend::relu_forward(float* out, const float* inp, int64_t n) {
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
  });
}

void CpuBackend::relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
  });
}

}  // namespace cmae::cpu
