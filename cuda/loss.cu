// The fused CMAE losses of the CUDA backend (ops/loss.h); the kernels and their design are in
// kernels/loss.cuh. The loss stays in device memory; the scratch between the passes (the mask sum
// and the block partials, or the per-row cross-entropies) is the backend's scratch (CudaBackend::scratch).
//
// Expected bound, base preset (ViT-B/16 at 224 px, batch 256), H100/H200:
//   normpix_mse_forward_backward  B 256, L 196, P 768, 75 % masked: reads pred + target of the
//       masked rows (37632 x 768 x 8 B = 231 MB) and the mask, writes dpred (154 MB): 385 MB at
//       4.3 TB/s = 90 us (the double arithmetic, ~8 DFLOP per element, is ~15 us of FP64).
//   infonce_forward_backward  B 256, E 256: 2·B²·E = 33.5 M FP64 FMAs (+ 16.7 M for the k norms,
//       recomputed per row) = 3 us at ~17 T DFMA/s; each row's block reads k twice (512 KiB) from
//       L2: 128 MB of L2 traffic, ~15-20 us, which bounds it; DRAM sees q and k once (0.5 MB).
//   dense_infonce_forward_backward (DenseCL)  B 256, Lq = Lk 196, E 256: 50176 query rows, each
//       B·E FP64 FMAs forward and again for dq: 6.6 G DFMA, ~0.4 ms; but every row's block reads the
//       pooled negatives (256 x 256 doubles, 0.5 MB) twice from L2: 51 GB of L2 traffic, ~5 ms, which
//       bounds it (several query rows per block sharing the negatives, or a GEMM of Q by the
//       negatives, would cut it ~10x; not yet measured on a GPU).
//   softmax_cross_entropy_forward_backward  B 256, C 1000: reads logits and targets (2 MB) and
//       writes dlogits (1 MB): under 1 us of DRAM; the 256 one-block rows and the final sum's
//       launch (~5 us) bound it.
#include "cuda_backend.h"
#include "kernels/loss.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask,
                                               int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss) {
  const int64_t R = B * L;
  if (R <= 0 || P <= 0) {
    fill_zero(loss, sizeof(float));  // the float 0 (no element, so no gradient either)
    return;
  }
  const int64_t blocks = ceil_div(R, kernels::kRowsPerBlock);
  double* sums = static_cast<double*>(scratch(static_cast<size_t>(1 + blocks) * sizeof(double)));
  double* mask_sum = sums;
  double* partials = sums + 1;
  kernels::launch_sum("normpix_mask_sum", mask, R, kernels::WriteDouble{mask_sum}, stream_);
  kernels::dispatch_width(P % 4 == 0 && all_aligned16(dpred, pred, target), [&](auto width) {
    constexpr int W = decltype(width)::value;
    CMAE_LAUNCH(kernels::normpix_rows_kernel<W>, static_cast<unsigned>(blocks), kernels::kStreamThreads, 0, stream_, partials, dpred,
                pred, target, mask, static_cast<const double*>(mask_sum), R, P, norm_pix, eps, dloss);
  });
  kernels::launch_sum("normpix_mse_loss", static_cast<const double*>(partials), blocks,
                      kernels::WriteNormPixLoss{loss, mask_sum}, stream_);
}

void CudaBackend::infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau,
                                           float scale, float dloss) {
  if (B <= 0) {
    fill_zero(loss, sizeof(float));
    return;
  }
  double* row_loss = static_cast<double*>(scratch(static_cast<size_t>(B) * sizeof(double)));
  const std::size_t shared_bytes = kernels::infonce_shared_bytes(B, E);
  kernels::dispatch_width(E % 4 == 0 && all_aligned16(q, k), [&](auto width) {
    constexpr int W = decltype(width)::value;
    CMAE_LAUNCH(kernels::infonce_rows_kernel<W>, static_cast<unsigned>(B), kernels::kInfoNceThreads, shared_bytes, stream_, row_loss,
                dq, q, k, B, E, tau, scale, dloss);
  });
  kernels::launch_sum("infonce_loss", static_cast<const double*>(row_loss), B,
                      kernels::WriteScaledMean{loss, static_cast<double>(scale), B}, stream_);
}

void CudaBackend::dense_infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, const int32_t* match,
                                                 int64_t B, int64_t Lq, int64_t Lk, int64_t E, float tau, float scale, float dloss) {
  const int64_t R = B * Lq;
  if (R <= 0) {
    fill_zero(loss, sizeof(float));
    return;
  }
  // (B, E) pooled negatives, then (R) row losses.
  double* neg = static_cast<double*>(scratch(static_cast<size_t>(B * E + R) * sizeof(double)));
  double* row_loss = neg + B * E;
  CMAE_LAUNCH(kernels::dense_negatives_kernel, static_cast<unsigned>(B), kernels::kDenseThreads, 0, stream_, neg, k, Lk, E);
  CMAE_LAUNCH(kernels::dense_infonce_rows_kernel, static_cast<unsigned>(R), kernels::kDenseThreads, kernels::dense_infonce_shared_bytes(B, E),
              stream_, row_loss, dq, q, k, match, static_cast<const double*>(neg), B, Lq, Lk, E, tau, scale, dloss);
  kernels::launch_sum("dense_infonce_loss", static_cast<const double*>(row_loss), R,
                      kernels::WriteScaledMean{loss, static_cast<double>(scale), R}, stream_);
}

void CudaBackend::ntxent_forward_backward(float* loss, float* dz, const float* z, int64_t R, int64_t E, float tau, float scale,
                                          float dloss) {
  if (R <= 0) {
    fill_zero(loss, sizeof(float));
    return;
  }
  // (R) each: log-sum-exp, row loss, inverse norm.
  double* lse = static_cast<double*>(scratch(static_cast<size_t>(3 * R) * sizeof(double)));
  double* row_loss = lse + R;
  double* inv = lse + 2 * R;
  const std::size_t shared_bytes = kernels::ntxent_shared_bytes(R, E);
  kernels::dispatch_width(E % 4 == 0 && all_aligned16(z), [&](auto width) {
    constexpr int W = decltype(width)::value;
    CMAE_LAUNCH(kernels::ntxent_rows_kernel<W>, static_cast<unsigned>(R), kernels::kNtXentThreads, shared_bytes, stream_, lse, row_loss,
                inv, z, R, E, tau);
    if (dz != nullptr) {
      CMAE_LAUNCH(kernels::ntxent_grad_kernel<W>, static_cast<unsigned>(R), kernels::kNtXentThreads, shared_bytes, stream_, dz,
                  static_cast<const double*>(lse), static_cast<const double*>(inv), z, R, E, tau, scale, dloss);
    }
  });
  kernels::launch_sum("ntxent_loss", static_cast<const double*>(row_loss), R,
                      kernels::WriteScaledMean{loss, static_cast<double>(scale), R}, stream_);
}

void CudaBackend::softmax_cross_entropy_forward_backward(float* loss, float* dlogits, const float* logits, const float* targets,
                                                         int64_t B, int64_t C, float dloss) {
  if (B <= 0) {
    fill_zero(loss, sizeof(float));
    return;
  }
  double* row_loss = static_cast<double*>(scratch(static_cast<size_t>(B) * sizeof(double)));
  CMAE_LAUNCH(kernels::softmax_cross_entropy_rows_kernel, static_cast<unsigned>(B), kernels::kCrossEntropyThreads, 0, stream_, row_loss,
              dlogits, logits, targets, B, C, dloss);
  kernels::launch_sum("softmax_cross_entropy_loss", static_cast<const double*>(row_loss), B, kernels::WriteScaledMean{loss, 1.0, B},
                      stream_);
}

CMAE_CUDA_NAMESPACE_END
