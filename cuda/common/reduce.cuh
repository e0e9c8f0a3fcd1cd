// Fixed-order reductions, vector accesses and launch arithmetic shared by the CUDA kernels. Every
// sum here combines
// its terms in an order fixed by the launch shape alone (butterfly shuffles, then the warps of a
// block in index order), never by timing: a kernel built on them gives bit-identical results from
// run to run, which resume-equals-uninterrupted needs. No floating-point atomics on results.
//
// Device side: warp_sum / warp_max (one warp), block_sum / block_max (one 1-D block),
// block_sum_array (a block summing a whole array, the second pass of a two-pass reduction), and
// FloatVec / load_vec / store_vec (W floats in one access: W = 4 is a 128-bit load or store).
// Host side: ceil_div, aligned16 (may a pointer take 128-bit accesses) and stream_blocks (the grid
// of a grid-stride loop). The device memory between the passes of a two-pass reduction is the
// backend's CudaBackend::scratch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/compat.cuh"
#include "common/runtime.h"

// `#pragma unroll` for nvcc; nothing for g++ (which warns about the CUDA pragma, and whose
// unrolling does not matter under the emulator).
#if CMAE_CUDA_EMULATED
#define CMAE_UNROLL
#else
#define CMAE_UNROLL _Pragma("unroll")
#endif

CMAE_CUDA_NAMESPACE_BEGIN

// ceil(a / b) for positive b.
__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- warp and block reductions ------------------------------------------------------------------

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); }
};

// op over the 32 lanes of a full warp, in every lane (xor butterfly: a fixed tree, and every lane
// combines the same operands in the same order, so all lanes hold the same bits).
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  CMAE_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// The sum of v over the 32 lanes of a full warp, in every lane.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  return warp_reduce(v, SumOp{});
}

// The maximum of v over the 32 lanes of a full warp, in every lane (NaNs are ignored, as fmax does).
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, MaxOp{}); }
__device__ __forceinline__ double warp_max(double v) { return warp_reduce(v, MaxOp{}); }

// op over every thread of a 1-D block, returned to every thread. blockDim.x must be a multiple of
// 32 (at most 1024) and every thread must call it (three __syncthreads). `identity` fills the
// lanes past the last warp. `scratch` is 32 elements of shared memory of T, reusable after the
// call returns.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T identity, T* scratch, Op op) {
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  // Warp 0 alone combines the per-warp results in a fixed tree. Its lane 0 overwrites scratch[0]
  // only after the shuffles, which every lane of warp 0 enters after its read: no other warp reads
  // scratch before the next barrier.
  if (warp == 0) {
    T total = lane < warps ? scratch[lane] : identity;
    total = warp_reduce(total, op);
    if (lane == 0) scratch[0] = total;
  }
  __syncthreads();
  const T total = scratch[0];
  __syncthreads();  // scratch may be reused by the caller
  return total;
}

// The sum of v over every thread of the block, returned to every thread (block_reduce's rules).
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  return block_reduce(v, T(0), scratch, SumOp{});
}

// The maximum of v over every thread of the block, returned to every thread (block_reduce's rules).
template <typename T>
__device__ __forceinline__ T block_max(T v, T* scratch) {
  return block_reduce(v, T(-INFINITY), scratch, MaxOp{});
}

// Σ values[0, count) by one 1-D block, accumulated in T and returned to every thread: thread t
// adds values t, t + blockDim.x, ... in index order (coalesced), then block_sum's tree. The order
// depends on count and blockDim.x alone; count may be 0.
template <typename T, typename V>
__device__ __forceinline__ T block_sum_array(const V* values, int64_t count, T* scratch) {
  T v = T(0);
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) v += static_cast<T>(values[i]);
  return block_sum(v, scratch);
}

// ---- vector accesses ----------------------------------------------------------------------------

// W consecutive floats, aligned so that W = 4 is one 128-bit access (ld/st.global.v4.f32, or
// ld/st.shared.v4). Kernels templated on W take W = 4 where every pointer is 16-byte aligned and
// every row length a multiple of 4, and W = 1 otherwise, with the same arithmetic.
template <int W>
struct alignas(4 * W) FloatVec {
  float v[W];

  __device__ __forceinline__ static FloatVec splat(float x) {
    FloatVec r;
    CMAE_UNROLL
    for (int k = 0; k < W; ++k) r.v[k] = x;
    return r;
  }
};

template <int W>
__device__ __forceinline__ FloatVec<W> load_vec(const float* p) {
  return *reinterpret_cast<const FloatVec<W>*>(p);
}

template <int W>
__device__ __forceinline__ void store_vec(float* p, const FloatVec<W>& x) {
  *reinterpret_cast<FloatVec<W>*>(p) = x;
}

// Whether every pointer allows 16-byte accesses (a null pointer does: it is never read).
inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }
template <typename... T>
inline bool all_aligned16(const T*... p) {
  return (aligned16(p) && ...);
}

// ---- host: launch arithmetic and scratch ---------------------------------------------------------

// Blocks of `threads` threads for a grid-stride loop over `items` work items: enough to fill every
// SM `blocks_per_sm` times (2048 threads per SM at 256 per block), never more than the items need,
// at least 1.
inline unsigned stream_blocks(int64_t items, unsigned threads, int multiprocessors, unsigned blocks_per_sm = 8) {
  const int64_t wanted = ceil_div(items > 0 ? items : 1, threads);
  const int64_t fill = static_cast<int64_t>(multiprocessors > 0 ? multiprocessors : 1) * blocks_per_sm;
  return static_cast<unsigned>(wanted < fill ? wanted : fill);
}

// ---- launch shapes shared by the families --------------------------------------------------------

namespace kernels {

// Threads per block of the streaming and warp-per-row kernels.
constexpr unsigned kStreamThreads = 256;

// Rows per block of the warp-per-row kernels (a 256-thread block, a warp per row).
constexpr unsigned kRowsPerBlock = kStreamThreads / 32;

// The row of the calling warp in a warp-per-row kernel, or -1 past the last row.
__device__ __forceinline__ int64_t warp_row(int64_t rows) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  return r < rows ? r : -1;
}

// Calls launch_width(std::integral_constant<int, 4>{}) when `vectorized`, else with 1: one launch
// site for both widths of a kernel template (`constexpr int W = decltype(w)::value;` inside).
template <typename F>
void dispatch_width(bool vectorized, F&& launch_width) {
  if (vectorized) {
    launch_width(std::integral_constant<int, 4>{});
  } else {
    launch_width(std::integral_constant<int, 1>{});
  }
}

}  // namespace kernels

CMAE_CUDA_NAMESPACE_END
