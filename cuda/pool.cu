// Pooling and L2-normalisation ops of the CUDA backend (ops/pool.h); the kernels and their design
// are in kernels/pool.cuh. Each op picks the 128-bit variant when D % 4 == 0 and the pointers are
// 16-byte aligned, else the scalar one (the same arithmetic, so the same bits).
//
// Expected bound, base preset (ViT-B/16, batch 256), H100/H200 at 4.3 TB/s (memory-bound):
//   op                     call                                             bytes moved     time
//   mean_pool_forward      momentum encoder tokens 256 x 197 x 768, start 1  155 MB read     36 us
//                          feature decoder 256 x 196 x 512, start 0          103 MB read     24 us
//   mean_pool_backward     feature decoder 256 x 196 x 512                   103 MB written  24 us
//   l2_normalize_forward   projector output 256 x 256                        0.5 MB          launch-bound (~3 us)
//   l2_normalize_backward  256 x 256                                         0.8 MB          launch-bound (~3 us)
//   match_tokens (DenseCL) 196 x 196 tokens per image, D 768: 7.4 G FP64 FMAs (~0.45 ms at ~17 T
//                          DFMA/s), but each query row's block reads its image's 196 keys (0.6 MB) from
//                          L2: 30 GB of L2 traffic, ~3 ms, which bounds it (a GEMM-shaped tiling that
//                          shares key tiles across query rows would remove it; not yet measured on a GPU)
// ptxas (sm_80 only) reports a 4-byte spill in l2_normalize_backward<4>, around the double-precision
// 1/norm slow path (denormal operands); sm_90 has none.
#include <algorithm>

#include "cuda_backend.h"
#include "kernels/pool.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) {
  if (B <= 0 || D <= 0) return;
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(out, inp), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const kernels::RowGrid g = kernels::row_grid(B, D / W);
    CMAE_LAUNCH(kernels::mean_pool_forward_kernel<W>, g.grid, g.block, 0, stream_, out, inp, B, N, D, start);
  });
}

void CudaBackend::mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) {
  if (B <= 0 || N <= 0 || D <= 0) return;
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(dinp, dout), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const kernels::RowGrid g = kernels::row_grid(B * N, D / W);
    CMAE_LAUNCH(kernels::mean_pool_backward_kernel<W>, g.grid, g.block, 0, stream_, dinp, dout, B, N, D, start);
  });
}

void CudaBackend::l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) {
  if (R <= 0) return;
  const unsigned blocks = static_cast<unsigned>(ceil_div(R, kernels::kRowsPerBlock));
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(out, inp), [&](auto width) {
    constexpr int W = decltype(width)::value;
    CMAE_LAUNCH(kernels::l2_normalize_forward_kernel<W>, blocks, kernels::kStreamThreads, 0, stream_, out, norm, inp, R, D, eps);
  });
}

void CudaBackend::l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D,
                                        float eps) {
  if (R <= 0) return;
  const unsigned blocks = static_cast<unsigned>(ceil_div(R, kernels::kRowsPerBlock));
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(dinp, dout, inp), [&](auto width) {
    constexpr int W = decltype(width)::value;
    CMAE_LAUNCH(kernels::l2_normalize_backward_kernel<W>, blocks, kernels::kStreamThreads, 0, stream_, dinp, dout, inp, norm, R, D,
                eps);
  });
}

void CudaBackend::match_tokens(int32_t* match, const float* a, int64_t a_stride, const float* k, int64_t k_stride, int64_t B,
                               int64_t La, int64_t Lk, int64_t D) {
  if (B <= 0 || La <= 0) return;
  double* k_inv = static_cast<double*>(scratch(static_cast<size_t>(B * Lk) * sizeof(double)));
  const int64_t keys = B * Lk;
  CMAE_LAUNCH(kernels::key_inverse_norms_kernel, static_cast<unsigned>(std::min<int64_t>(ceil_div(keys, 256), 4096)), 256u, 0, stream_,
              k_inv, k, k_stride, Lk, D, keys);
  CMAE_LAUNCH(kernels::match_tokens_kernel, static_cast<unsigned>(B * La), kernels::kMatchThreads, 0, stream_, match, a, a_stride, k,
              k_stride, static_cast<const double*>(k_inv), La, Lk, D);
}

CMAE_CUDA_NAMESPACE_END
