// Matrix products: SGEMM and the fully connected layer (PyTorch nn.Linear semantics, weights stored
// [out, in]). Row-major throughout.
//
// Determinism (CPU): every C element is computed by exactly one thread, as a chain of FMAs over k
// in increasing order, split into K blocks whose boundaries depend only on K and the ISA; so
// results are bit-identical for any thread count (they may differ between the portable, AVX2 and
// AVX-512 paths).
#pragma once
#include <cstdint>
#include <string>

namespace cmae {

// Precision of every product of a backend (sgemm, linear_*), like PyTorch's
// set_float32_matmul_precision. FP32: float32 products (the CPU default). BF16: the operands
// rounded to bfloat16 (round to nearest even), products summed in float32; bias, beta·C and the
// epilogues stay float32; relative error of a product ~2^-8 per operand instead of 2^-24. TF32:
// operands rounded to TensorFloat-32 (10-bit mantissa), float32 sums (a GPU mode).
enum class MatmulPrecision : int { FP32 = 0, BF16 = 1, TF32 = 2 };
const char* matmul_precision_name(MatmulPrecision precision);           // "fp32" | "bf16" | "tf32"
MatmulPrecision parse_matmul_precision(const std::string& name);         // throws ErrorKind::Value

struct LinearOps {
  // Throws ErrorKind::Value naming the precision when this backend (or this CPU) cannot run it.
  // CPU: FP32, and BF16 on AVX512_BF16 CPUs (with the AVX-512 path; under CMAE_ISA=avx2 or
  // portable products are FP32 whatever this says).
  virtual void set_matmul_precision(MatmulPrecision precision) = 0;
  virtual MatmulPrecision matmul_precision() const = 0;

  // C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C. op(A) = A (lda >= K) or Aᵀ (A stored [K,M],
  // lda >= M); same for B. beta == 0 must not read C (C may hold NaN). Any M, N, K >= 0; K == 0 or
  // alpha == 0 gives C = beta · C without reading A or B. C must not alias A or B.
  virtual void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc) = 0;

  // out[R,OC] = inp[R,C] · weight[OC,C]ᵀ + bias[OC] (bias may be null). out is overwritten (=).
  virtual void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                              int64_t OC) = 0;

  // A Linear followed by GELU (a ViT MLP's fc1), GELU applied in the GEMM epilogue:
  // pre[R,OC] = inp·weightᵀ + bias (=), out[R,OC] = GELU(pre) (=), bit-identical to linear_forward +
  // gelu_forward. pre == nullptr: only out is written (inference keeps no pre-activation). out must
  // not alias inp or weight; pre and out must not alias each other.
  virtual void linear_gelu_forward(float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R,
                                   int64_t C, int64_t OC) = 0;

  // Backward of out = Linear(GELU(pre)) (a ViT MLP's GELU + fc2), GELU's derivative applied in the
  // epilogue of the input-gradient GEMM: dpre[R,C] = (dout·weight) ⊙ GELU'(pre) (=); dweight[OC,C]
  // += doutᵀ·act; dbias[OC] += Σ_rows dout (dbias may be null). act = GELU(pre), the Linear's input
  // as saved by the forward. Bit-identical to linear_backward + gelu_backward.
  virtual void gelu_linear_backward(float* dpre, float* dweight, float* dbias, const float* dout, const float* act,
                                    const float* pre, const float* weight, int64_t R, int64_t C, int64_t OC) = 0;

  // dinp[R,C] = dout·weight (=) unless dinp == nullptr; dweight[OC,C] += doutᵀ·inp; dbias[OC] +=
  // Σ_rows dout (dbias may be null), summed as rows.h column_sums_add does. dout: (R, OC); inp: (R, C);
  // weight: (OC, C).
  virtual void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, int64_t R, int64_t C, int64_t OC) = 0;

 protected:
  ~LinearOps() = default;
};

}  // namespace cmae
