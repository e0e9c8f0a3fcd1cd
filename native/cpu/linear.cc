#include <algorithm>

#include "core/threads.h"
#include "cpu/gemm_internal.h"
#include "ops/linear.h"

namespace cmae::cpu {

// dbias: rows are summed in fixed blocks of 32 (a partial sum per block, then the blocks in row
// order), each column by one thread, so the sum does not depend on the thread count.
constexpr int64_t kBiasRowBlock = 32;
constexpr int64_t kBiasColTile = 256;  // columns summed together (stack partials)

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, int64_t OC) {
  // out = inp · weightᵀ: NT GEMM, M = R, N = OC, K = C; the bias is added in the kernel epilogue.
  gemm::gemm_run(false, true, R, OC, C, inp, C, weight, C, out, OC, gemm::Epilogue{1.0f, 0.0f, bias});
}

void linear_gelu_forward(float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                         int64_t OC) {
  gemm::Epilogue ep{1.0f, 0.0f, bias};
  ep.post = gemm::PostOp::Gelu;
  ep.post_out = out;
  ep.post_ld = OC;
  gemm::gemm_run(false, true, R, OC, C, inp, C, weight, C, pre ? pre : out, OC, ep);
}

static void column_sums_add(float* dbias, const float* dout, int64_t R, int64_t OC) {
  auto sum = [&](int64_t begin, int64_t end) {
    for (int64_t o0 = begin; o0 < end; o0 += kBiasColTile) {
      const int64_t n = std::min(kBiasColTile, end - o0);
      float total[kBiasColTile];
      float part[kBiasColTile];
      for (int64_t o = 0; o < n; ++o) total[o] = 0.0f;
      for (int64_t r0 = 0; r0 < R; r0 += kBiasRowBlock) {
        const int64_t r1 = std::min(R, r0 + kBiasRowBlock);
        for (int64_t o = 0; o < n; ++o) part[o] = 0.0f;
        for (int64_t r = r0; r < r1; ++r) {
          const float* row = dout + r * OC + o0;
#pragma omp simd
          for (int64_t o = 0; o < n; ++o) part[o] += row[o];
        }
#pragma omp simd
        for (int64_t o = 0; o < n; ++o) total[o] += part[o];
      }
#pragma omp simd
      for (int64_t o = 0; o < n; ++o) dbias[o0 + o] += total[o];
    }
  };
#ifdef _OPENMP
  // Inside an enclosing parallel region a nested parallel_for gets a team of one but still splits
  // for num_threads(), so run inline there.
  if (omp_in_parallel()) return sum(0, OC);
#endif
  parallel_for(OC, std::max<int64_t>(16, (int64_t{1} << 16) / std::max<int64_t>(R, 1)), sum);
}

// dweight[OC,C] += doutᵀ · inp (TN, K = R; its K blocks depend only on R); dbias += Σ_rows dout.
static void parameter_grads_add(float* dweight, float* dbias, const float* dout, const float* inp, int64_t R, int64_t C,
                                int64_t OC) {
  sgemm(true, false, OC, C, R, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias) column_sums_add(dbias, dout, R, OC);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
                     int64_t R, int64_t C, int64_t OC) {
  // dinp[R,C] = dout[R,OC] · weight[OC,C]  (NN, overwrite)
  if (dinp) sgemm(false, false, R, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
  parameter_grads_add(dweight, dbias, dout, inp, R, C, OC);
}

void gelu_linear_backward(float* dpre, float* dweight, float* dbias, const float* dout, const float* act, const float* pre,
                          const float* weight, int64_t R, int64_t C, int64_t OC) {
  // dpre = (dout · weight) ⊙ GELU'(pre): the NN product with the derivative in its epilogue.
  gemm::Epilogue ep{1.0f, 0.0f, nullptr};
  ep.post = gemm::PostOp::GeluGrad;
  ep.post_in = pre;
  ep.post_ld = C;
  gemm::gemm_run(false, false, R, C, OC, dout, OC, weight, C, dpre, C, ep);
  parameter_grads_add(dweight, dbias, dout, act, R, C, OC);
}

}  // namespace cmae::cpu
