// The fully connected layer (ops/linear.h) on the SGEMM driver (gemm.cc): the bias and GELU (or
// GELU') run in the GEMM epilogue; bias gradients are rows.cc's column sums.
#include "cpu/target.h"
#include "cpu/gemm_internal.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                    int64_t OC) {
  // out = inp · weightᵀ: NT GEMM, M = R, N = OC, K = C; the bias is added in the kernel epilogue.
  gemm::gemm_run(false, true, R, OC, C, inp, C, weight, C, out, OC, gemm::Epilogue{1.0f, 0.0f, bias});
}

void linear_gelu_forward(float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R,
                         int64_t C, int64_t OC) {
  gemm::Epilogue ep{1.0f, 0.0f, bias};
  ep.post = gemm::PostOp::Gelu;
  ep.post_out = out;
  ep.post_ld = OC;
  gemm::gemm_run(false, true, R, OC, C, inp, C, weight, C, pre ? pre : out, OC, ep);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t R, int64_t C, int64_t OC) {
  // dinp[R,C] = dout[R,OC] · weight[OC,C]  (NN, overwrite)
  if (dinp) sgemm(false, false, R, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
  // dweight[OC,C] += doutᵀ · inp (TN, K = R: its K blocks depend only on R); dbias += Σ_rows dout.
  sgemm(true, false, OC, C, R, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias) column_sums_add(dbias, dout, R, OC, OC);
}

void gelu_linear_backward(float* dpre, float* dweight, float* dbias, const float* dout, const float* act,
                          const float* pre, const float* weight, int64_t R, int64_t C, int64_t OC) {
  // dpre = (dout · weight) ⊙ GELU'(pre): the NN product with the derivative in its epilogue.
  gemm::Epilogue ep{1.0f, 0.0f, nullptr};
  ep.post = gemm::PostOp::GeluGrad;
  ep.post_in = pre;
  ep.post_ld = C;
  gemm::gemm_run(false, false, R, C, OC, dout, OC, weight, C, dpre, C, ep);
  linear_backward(nullptr, dweight, dbias, dout, act, weight, R, C, OC);
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
