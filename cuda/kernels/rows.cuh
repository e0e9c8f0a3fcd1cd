// Kernels of the rows family (ops/rows.h): the small steps between the big ops.
//
//   add_inplace      an element-wise map (activation.cuh's Map with AddInPlace): dst = dst + src.
//   column_sums_add  two passes, in exactly the contract's order (the CPU's, so both backends give
//                    the same bits): column_block_sums_kernel writes the partial sum of every
//                    32-row block of every column (one thread per (block, column), consecutive
//                    threads on consecutive columns, so each row is read coalesced), then
//                    column_fold_kernel adds a column's partials in row order into dst (one thread
//                    per column, loads batched ahead of the add chain). The partials
//                    (ceil(R/32) x C floats) live in the backend's scratch (CudaBackend::scratch).
//   transpose_add    32x32 tiles through shared memory (one padded row per tile row, so neither
//                    the row-wise read nor the column-wise read has bank conflicts); a block of
//                    256 threads moves one tile, reading src and updating dst coalesced.
//   broadcast_row    a 2-D grid: x over the row's elements (4 at a time when aligned), y over the
//                    destination rows.
//   scale_rows       broadcast_row's grid, each thread scaling its W columns of every row it meets.
//   first_nonfinite  a grid-stride scan that atomicMin's the first bad index each thread meets
//                    (so the smallest overall), between a one-thread init and a one-thread finish.
#pragma once
#include <cstdint>

#include "common/compat.cuh"
#include "kernels/activation.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace kernels {

struct AddInPlace {
  __device__ __forceinline__ float operator()(float dst, float src) const { return dst + src; }
};

// Rows per partial sum of column_sums_add (the contract's fixed blocks).
constexpr int64_t kColumnSumRowBlock = 32;

// partials[k·C + c] = Σ_{r in [32k, min(32k + 32, R))} src[r·ld + c] (in row order, from 0), for
// k < ceil(R/32), c < C.
__global__ void __launch_bounds__(kStreamThreads)
    column_block_sums_kernel(float* partials, const float* src, int64_t R, int64_t C, int64_t ld) {
  const int64_t blocks = ceil_div(R, kColumnSumRowBlock);
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= blocks * C) return;
  const int64_t k = item / C, c = item - k * C;
  const int64_t r_begin = k * kColumnSumRowBlock;
  const int64_t r_end = r_begin + kColumnSumRowBlock < R ? r_begin + kColumnSumRowBlock : R;
  float sum = 0.0f;
  for (int64_t r = r_begin; r < r_end; ++r) sum += src[r * ld + c];
  partials[item] = sum;
}

// Threads per block of column_fold_kernel: small blocks, so that the few columns (C = 768 for the
// patch-embedding bias) spread over many SMs.
constexpr unsigned kColumnFoldThreads = 32;
// Partials a fold thread loads before adding them: the adds form one chain (the contract's
// order), so the loads, which do not depend on it, are issued kFoldBatch at a time to hide the
// L2 latency instead of one per add.
constexpr int kFoldBatch = 16;

// dst[c] += Σ_k partials[k·C + c], the partials added in k order from 0, for c < C.
__global__ void __launch_bounds__(kColumnFoldThreads) column_fold_kernel(float* dst, const float* partials, int64_t blocks, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const float* column = partials + c;
  float sum = 0.0f;
  int64_t k = 0;
  for (; k + kFoldBatch <= blocks; k += kFoldBatch) {
    float batch[kFoldBatch];
    CMAE_UNROLL
    for (int u = 0; u < kFoldBatch; ++u) batch[u] = column[(k + u) * C];
    CMAE_UNROLL
    for (int u = 0; u < kFoldBatch; ++u) sum += batch[u];
  }
  for (; k < blocks; ++k) sum += column[k * C];
  dst[c] += sum;
}

constexpr int kTransposeTile = 32;

// dst (C, R) += srcᵀ for the 32x32 tile blockIdx.x (tiles numbered row-major over src, tiles_c per
// row of tiles). Block: 256 threads, 8 rows of 32.
__global__ void __launch_bounds__(kStreamThreads)
    transpose_add_kernel(float* dst, const float* src, int64_t R, int64_t C, int64_t tiles_c) {
  using TileRow = float[kTransposeTile + 1];
  CMAE_SHARED(TileRow, tile, kTransposeTile);
  const int64_t tile_r = blockIdx.x / tiles_c, tile_c = blockIdx.x - tile_r * tiles_c;
  const int64_t r0 = tile_r * kTransposeTile, c0 = tile_c * kTransposeTile;
  const int tx = threadIdx.x % kTransposeTile, ty = threadIdx.x / kTransposeTile;
  const int rows_per_pass = blockDim.x / kTransposeTile;
  for (int k = ty; k < kTransposeTile; k += rows_per_pass) {
    const int64_t r = r0 + k, c = c0 + tx;
    if (r < R && c < C) tile[k][tx] = src[r * C + c];
  }
  __syncthreads();
  for (int k = ty; k < kTransposeTile; k += rows_per_pass) {
    const int64_t c = c0 + k, r = r0 + tx;
    if (c < C && r < R) dst[c * R + r] += tile[tx][k];
  }
}

// dst[i·ld + d] = row[d] for i < count, d < D; W = 4 needs D and ld multiples of 4 and aligned
// pointers. Grid: x over ceil(D/W) element groups, y over rows (strided).
template <int W>
__global__ void __launch_bounds__(kStreamThreads) broadcast_row_kernel(float* dst, int64_t ld, const float* row, int64_t count, int64_t D) {
  const int64_t d = row_grid_column<W>();
  if (d >= D) return;
  const FloatVec<W> value = load_vec<W>(row + d);
  for (int64_t i = blockIdx.y; i < count; i += gridDim.y) store_vec<W>(dst + i * ld + d, value);
}

// dst[r·n + i] = scale[r] · src[r·n + i]; W = 4 needs n a multiple of 4 and aligned pointers (dst
// may alias src: each thread reads its elements before writing them). Grid as broadcast_row's.
template <int W>
__global__ void __launch_bounds__(kStreamThreads)
    scale_rows_kernel(float* dst, const float* src, const float* scale, int64_t R, int64_t n) {
  const int64_t i = row_grid_column<W>();
  if (i >= n) return;
  for (int64_t r = blockIdx.y; r < R; r += gridDim.y) {
    const float s = scale[r];
    FloatVec<W> v = load_vec<W>(src + r * n + i);
    CMAE_UNROLL
    for (int k = 0; k < W; ++k) v.v[k] *= s;
    store_vec<W>(dst + r * n + i, v);
  }
}

// first_nonfinite: *index starts at n (first_nonfinite_init_kernel); every thread that meets a
// non-finite element in its grid-stride pass lowers it with atomicMin and stops; then n becomes −1.
__global__ void first_nonfinite_init_kernel(int32_t* index, int64_t n) { *index = static_cast<int32_t>(n); }

__global__ void __launch_bounds__(kStreamThreads) first_nonfinite_kernel(int32_t* index, const float* x, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    if (!(x[i] - x[i] == 0.0f)) {  // NaN and ±Inf give NaN
      atomicMin(index, static_cast<int32_t>(i));
      return;
    }
  }
}

__global__ void first_nonfinite_finish_kernel(int32_t* index, int64_t n) {
  if (*index == static_cast<int32_t>(n)) *index = -1;
}

}  // namespace kernels

CMAE_CUDA_NAMESPACE_END
