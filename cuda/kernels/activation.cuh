// Kernels of the activation family (ops/activation.h), and the launch building blocks that the
// rows, optim, pool and loss families share (they live here, with their simplest users). Several
// .cu files include this header, so it holds only templates and inline functions (a plain
// __global__ defined here would be defined once per translation unit and clash at link time).
//
//   elementwise_kernel<Op>  every element-wise op: one grid-stride loop, 4 elements at a time
//        through 128-bit loads and stores when every pointer of the op is 16-byte aligned (then
//        element 4i of each array is too), one at a time otherwise and for the last n mod 4. The
//        grid fills every SM 8 times (stream_blocks), so each thread keeps a few 16-byte loads in
//        flight. An Op is a small struct of pointers and scalars with
//          template <int W> __device__ void apply(int64_t i) const   // elements [i, i + W)
//        Map<F, Inputs> is the Op of out[i] = f(a[i]) or f(a[i], b[i]); out may alias a or b
//        exactly, since each element is read and then written by the same thread.
//   row_grid / row_grid_column  the 2-D launch of "a thread per (row, W columns)" kernels.
//   sum_kernel<V, Finish>       the last pass of a two-pass reduction: one block adds an array
//        in a fixed order (block_sum_array, double) and hands the total to a finish functor that
//        writes the op's result into device memory.
//
// The activations are Maps of core/math.h's formulas: each element's value depends on that
// element alone, never on the grid, the alignment or the vector path.
#pragma once
#include <cstdint>
#include <type_traits>

#include "common/compat.cuh"
#include "common/launch.cuh"
#include "common/reduce.cuh"
#include "core/math.h"

CMAE_CUDA_NAMESPACE_BEGIN

namespace kernels {

// op.apply<4>(i) for i = 0, 4, ... below n rounded down to a multiple of 4 when `vectorized`,
// op.apply<1>(i) for the other elements; spread over the grid.
template <typename Op>
__global__ void __launch_bounds__(kStreamThreads) elementwise_kernel(Op op, int64_t n, bool vectorized) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t groups = n / 4;
    for (int64_t g = first; g < groups; g += stride) op.template apply<4>(g * 4);
    scalar_begin = groups * 4;
  }
  for (int64_t i = scalar_begin + first; i < n; i += stride) op.template apply<1>(i);
}

// Queues op over n elements on `stream` (nothing when n <= 0); vectorized says whether every
// pointer of op is 16-byte aligned.
template <typename Op>
void launch_elementwise(const char* name, const Op& op, int64_t n, bool vectorized, int multiprocessors, Stream stream) {
  if (n <= 0) return;
  const int64_t items = vectorized ? ceil_div(n, 4) : n;
  launch(name, elementwise_kernel<Op>, stream_blocks(items, kStreamThreads, multiprocessors), kStreamThreads, 0, stream, op, n,
         vectorized);
}

// out[i] = f(a[i]) (Inputs = 1) or f(a[i], b[i]) (Inputs = 2).
template <typename F, int Inputs>
struct Map {
  static_assert(Inputs == 1 || Inputs == 2, "Map takes one or two inputs");
  F f;
  float* out;
  const float* a;
  const float* b;  // unused when Inputs = 1

  template <int W>
  __device__ __forceinline__ void apply(int64_t i) const {
    const FloatVec<W> x = load_vec<W>(a + i);
    FloatVec<W> r;
    if constexpr (Inputs == 2) {
      const FloatVec<W> y = load_vec<W>(b + i);
      CMAE_UNROLL
      for (int k = 0; k < W; ++k) r.v[k] = f(x.v[k], y.v[k]);
    } else {
      CMAE_UNROLL
      for (int k = 0; k < W; ++k) r.v[k] = f(x.v[k]);
    }
    store_vec<W>(out + i, r);
  }
};

// Queues out[i] = f(a[i]) over n elements.
template <typename F>
void launch_map(const char* name, F f, float* out, const float* a, int64_t n, int multiprocessors, Stream stream) {
  launch_elementwise(name, Map<F, 1>{f, out, a, nullptr}, n, all_aligned16(out, a), multiprocessors, stream);
}

// Queues out[i] = f(a[i], b[i]) over n elements.
template <typename F>
void launch_map(const char* name, F f, float* out, const float* a, const float* b, int64_t n, int multiprocessors,
                Stream stream) {
  launch_elementwise(name, Map<F, 2>{f, out, a, b}, n, all_aligned16(out, a, b), multiprocessors, stream);
}

// The launch shape of a kernel over `rows` rows of `groups` work items, a thread per item: blocks
// of up to 256 threads across a row (whole warps), grid.y over the rows (strided beyond 65535).
struct RowGrid {
  dim3 grid;
  dim3 block;
};
inline RowGrid row_grid(int64_t rows, int64_t groups) {
  const int64_t threads = groups >= kStreamThreads ? kStreamThreads : ceil_div(groups > 0 ? groups : 1, 32) * 32;
  const int64_t y = rows < kMaxGridDimYZ ? (rows > 0 ? rows : 1) : kMaxGridDimYZ;
  return {dim3(static_cast<unsigned>(ceil_div(groups > 0 ? groups : 1, threads)), static_cast<unsigned>(y)),
          dim3(static_cast<unsigned>(threads))};
}

// The first of the W columns of the calling thread in a row_grid launch (W per work item).
template <int W>
__device__ __forceinline__ int64_t row_grid_column() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * W;
}

// ---- warp-per-row kernels and final sums -------------------------------------------------------

// Threads of sum_kernel's single block.
constexpr unsigned kFinishThreads = 1024;

// finish(Σ values[0, count)), the sum in double in block_sum_array's fixed order, called by thread
// 0 of a single block of kFinishThreads: the last pass of every two-pass reduction (the partials
// of global_norm, the losses' partials, the norm-pix mask sum). count may be 0.
template <typename V, typename Finish>
__global__ void __launch_bounds__(kFinishThreads) sum_kernel(const V* values, int64_t count, Finish finish) {
  CMAE_SHARED(double, scratch, 32);
  const double total = block_sum_array(values, count, scratch);
  if (threadIdx.x == 0) finish(total);
}

template <typename V, typename Finish>
void launch_sum(const char* name, const V* values, int64_t count, Finish finish, Stream stream) {
  launch(name, sum_kernel<V, Finish>, 1, kFinishThreads, 0, stream, values, count, finish);
}

// ---- the activations ----------------------------------------------------------------------------

struct GeluForward {
  __device__ __forceinline__ float operator()(float x) const { return ::cmae::gelu(x); }
};

// dout · GELU'(inp)
struct GeluBackward {
  __device__ __forceinline__ float operator()(float dout, float inp) const { return dout * ::cmae::gelu_grad(inp); }
};

// max(x, 0), NaN → 0 (as the CPU's x > 0 ? x : 0).
struct ReluForward {
  __device__ __forceinline__ float operator()(float x) const { return x > 0.0f ? x : 0.0f; }
};

// dout where the forward output is positive, else 0.
struct ReluBackward {
  __device__ __forceinline__ float operator()(float dout, float out) const { return out > 0.0f ? dout : 0.0f; }
};

}  // namespace kernels

CMAE_CUDA_NAMESPACE_END
