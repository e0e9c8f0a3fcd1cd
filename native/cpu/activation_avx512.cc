// The AVX-512 instance of the vectorised GELU (cpu/gelu.h): cpu/vec_math.h's row loops and math on
// the 16-lane traits of cpu/vec_avx512.h, the same templates that activation.cc instantiates for
// AVX2 (so results agree with the AVX2 path to rounding; they are not bit-identical across ISAs:
// the 2^n scaling, the reciprocal and the blends differ). Called only after run-time detection.
#include "cpu/gelu.h"
#include "cpu/vec_avx512.h"
#include "cpu/vec_math.h"

namespace cmae::cpu::gelu_avx512 {

void gelu_forward(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  vec::gelu_rows<avx512::Vec, false>(out, ldo, nullptr, 0, inp, ldi, rows, cols);
}

void gelu_backward(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi, int64_t rows,
                   int64_t cols) {
  vec::gelu_rows<avx512::Vec, true>(dinp, ldd, dout, ldo, inp, ldi, rows, cols);
}

}  // namespace cmae::cpu::gelu_avx512
