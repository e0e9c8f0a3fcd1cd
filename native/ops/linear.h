// Matrix multiply family: SGEMM and the fully connected layer (PyTorch nn.Linear semantics, weights
// stored [out, in]). Contract shared by cmae::cpu and cmae::cuda (same names, same arguments; CUDA
// adds a trailing stream). Row-major throughout.
//
// Determinism: every C element is computed by exactly one thread, as a chain of FMAs over k in
// increasing order, split into K blocks whose boundaries depend only on K and the ISA; so results
// are bit-identical for any thread count (they may differ between the AVX2 and AVX-512 paths).
// Scratch: packing buffers are thread-local to the calling and worker threads, grown on first use
// and kept (no allocation once warm). Safe to call from several threads at once.
#pragma once
#include <cstdint>

namespace cmae::cpu {

// Precision of every product of this family (sgemm, linear_*), process-wide (like PyTorch's
// set_float32_matmul_precision). FP32: float32 products, the default. BF16 (opt-in): the operands
// are rounded to bfloat16 (round to nearest even) as they are packed, pairs of products are
// summed in float32 by vdpbf16ps and accumulated in float32; bias, beta·C and the epilogue stay
// float32. ~2x the FP32 throughput on AVX512_BF16 CPUs; relative error of a product ~2^-8 per
// operand instead of 2^-24. Only with the AVX-512 path: when the AVX2 path is in use (CMAE_ISA,
// set_isa) products are FP32 whatever this says. Results stay independent of the thread count.
enum class MatmulPrecision : int { FP32 = 0, BF16 = 1 };
// Throws ErrorKind::Value for BF16 on a CPU without AVX512_BF16.
void set_matmul_precision(MatmulPrecision precision);
MatmulPrecision matmul_precision();

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C. op(A) = A (lda >= K) or Aᵀ (A stored [K,M], lda >= M); same for B.
// beta == 0 must not read C (C may hold NaN). Deterministic: each C element is computed by one thread with a summation order that does not depend on the thread count.
// Any M, N, K >= 0; K == 0 or alpha == 0 gives C = beta * C without reading A or B. C must not alias A or B.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// out[R,OC] = inp[R,C] · weight[OC,C]ᵀ + bias[OC] (bias may be null). Weights stored as PyTorch stores them ([out, in]).
// out is overwritten (=) and never read.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, int64_t OC);

// A Linear followed by GELU (a ViT MLP's fc1), GELU applied in the GEMM epilogue while each block
// is in cache: pre[R,OC] = inp·weightᵀ + bias (=), out[R,OC] = GELU(pre) (=), bit-identical to
// linear_forward + gelu_forward. pre == nullptr: only out is written (inference keeps no
// pre-activation). out must not alias inp or weight; pre and out must not alias each other.
void linear_gelu_forward(float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                         int64_t OC);

// Backward of out = Linear(GELU(pre)) (a ViT MLP's GELU + fc2), GELU's derivative applied in the
// epilogue of the input-gradient GEMM: dpre[R,C] = (dout·weight) ⊙ GELU'(pre) (=); dweight[OC,C] +=
// doutᵀ·act; dbias[OC] += Σ_rows dout (dbias may be null). act = GELU(pre), the Linear's input as
// saved by the forward. Bit-identical to linear_backward + gelu_backward.
void gelu_linear_backward(float* dpre, float* dweight, float* dbias, const float* dout, const float* act, const float* pre,
                          const float* weight, int64_t R, int64_t C, int64_t OC);

// dinp[R,C] = dout·weight (overwrite, =) unless dinp == nullptr; dweight[OC,C] += doutᵀ·inp; dbias[OC] += Σ_rows dout (dbias may be null).
// The dweight/dbias sums must not depend on the thread count (fixed row blocking, fixed reduction order).
// dout: (R, OC); inp: (R, C); weight: (OC, C).
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t R, int64_t C, int64_t OC);

}  // namespace cmae::cpu
