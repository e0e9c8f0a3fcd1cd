// Row ops of the CUDA backend (ops/rows.h); the kernels and their design are in kernels/rows.cuh.
// column_sums_add sums in the contract's order (32-row blocks, then the blocks in row order), the
// CPU's, so the two backends agree bit for bit; the other ops have no reduction.
//
// Expected bound, base preset (ViT-B/16, batch 256: 49 visible patches + cls per sample),
// H100/H200 at 4.3 TB/s (all memory-bound):
//   op               call                                        bytes moved              time
//   add_inplace      encoder residual 12800 x 768 (9.8 M)        12 B/elt: 118 MB          27 us
//                    momentum encoder residual 50432 x 768       12 B/elt: 465 MB         108 us
//                    pixel decoder residual 50432 x 512          12 B/elt: 310 MB          72 us
//   column_sums_add  patch-embedding bias R 12544, C 768         39 MB + 2.4 MB partials   10 us, + ~3 us for the fold
//                                                                (392 chained adds per column, loads batched 16 deep)
//                    cls-token gradient R 256, C 768, ld 50·768  0.8 MB                    launch-bound (2 launches, ~5 us)
//   transpose_add    patch-embedding weight 768 x 768            7 MB (read + update)      1.6 us
//   broadcast_row    cls rows, 256 x 768                         0.8 MB written            launch-bound (~3 us)
//   scale_rows       drop path (fine-tuning), 256 x 197·768      8 B/elt: 310 MB          72 us
#include "cuda_backend.h"
#include "kernels/rows.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::add_inplace(float* dst, const float* src, int64_t n) {
  kernels::launch_map("add_inplace", kernels::AddInPlace{}, dst, dst, src, n, properties_.multiprocessors, stream_);
}

void CudaBackend::column_sums_add(float* dst, const float* src, int64_t R, int64_t C, int64_t ld) {
  if (R <= 0 || C <= 0) return;
  const int64_t blocks = ceil_div(R, kernels::kColumnSumRowBlock);
  float* partials = static_cast<float*>(scratch(static_cast<size_t>(blocks * C) * sizeof(float)));
  const unsigned threads = kernels::kStreamThreads;
  CMAE_LAUNCH(kernels::column_block_sums_kernel, static_cast<unsigned>(ceil_div(blocks * C, threads)), threads, 0, stream_, partials,
              src, R, C, ld);
  CMAE_LAUNCH(kernels::column_fold_kernel, static_cast<unsigned>(ceil_div(C, kernels::kColumnFoldThreads)), kernels::kColumnFoldThreads,
              0, stream_, dst, partials, blocks, C);
}

void CudaBackend::transpose_add(float* dst, const float* src, int64_t R, int64_t C) {
  if (R <= 0 || C <= 0) return;
  const int64_t tiles_c = ceil_div(C, kernels::kTransposeTile);
  const int64_t tiles = ceil_div(R, kernels::kTransposeTile) * tiles_c;
  CMAE_LAUNCH(kernels::transpose_add_kernel, static_cast<unsigned>(tiles), kernels::kStreamThreads, 0, stream_, dst, src, R, C,
              tiles_c);
}

void CudaBackend::broadcast_row(float* dst, int64_t ld, const float* row, int64_t count, int64_t D) {
  if (count <= 0 || D <= 0) return;
  kernels::dispatch_width(D % 4 == 0 && ld % 4 == 0 && all_aligned16(dst, row), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const kernels::RowGrid g = kernels::row_grid(count, D / W);
    CMAE_LAUNCH(kernels::broadcast_row_kernel<W>, g.grid, g.block, 0, stream_, dst, ld, row, count, D);
  });
}

void CudaBackend::scale_rows(float* dst, const float* src, const float* scale, int64_t R, int64_t n) {
  if (R <= 0 || n <= 0) return;
  kernels::dispatch_width(n % 4 == 0 && all_aligned16(dst, src), [&](auto width) {
    constexpr int W = decltype(width)::value;
    const kernels::RowGrid g = kernels::row_grid(R, n / W);
    CMAE_LAUNCH(kernels::scale_rows_kernel<W>, g.grid, g.block, 0, stream_, dst, src, scale, R, n);
  });
}

void CudaBackend::first_nonfinite(int32_t* index, const float* x, int64_t n) {
  CMAE_LAUNCH(kernels::first_nonfinite_init_kernel, 1u, 1u, 0, stream_, index, n);
  if (n > 0) {
    CMAE_LAUNCH(kernels::first_nonfinite_kernel, stream_blocks(n, kernels::kStreamThreads, properties_.multiprocessors),
                kernels::kStreamThreads, 0, stream_, index, x, n);
  }
  CMAE_LAUNCH(kernels::first_nonfinite_finish_kernel, 1u, 1u, 0, stream_, index, n);
}

CMAE_CUDA_NAMESPACE_END
