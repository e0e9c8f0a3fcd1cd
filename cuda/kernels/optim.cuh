// Kernels of the optimiser family (ops/optim.h): passes over the flat parameter arena.
//
//   adamw_step       element-wise (activation.cuh's elementwise_kernel with AdamWUpdate): 5 streams
//                    in (params, m, v, grads, decay_mask), 3 out, 128-bit accesses when aligned; the
//                    gradient scale is read from device memory by each thread (one cached load),
//                    so clipping never waits on the host.
//   ema_update       element-wise map of ema_lerp; scale_inplace, element-wise map of x·s.
//   global_norm      two passes in double, in an order fixed by n alone: sum_squares_kernel gives
//                    each block one chunk of kNormChunk elements (256 threads, each summing its
//                    strided share, then block_sum's tree) and writes the chunk's partial; then
//                    one block of sum_kernel (activation.cuh) adds the partials in its fixed
//                    order and writes the square root into the device double (WriteSqrt).
//                    Partials: the backend's scratch (CudaBackend::scratch).
//   clip_coefficient one thread: core/math.h's clip_coefficient of the device norm.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/compat.cuh"
#include "common/reduce.cuh"
#include "core/math.h"
#include "kernels/activation.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace kernels {

// adamw_update of core/math.h on every element; decay_mask null = all 1, grad_scale null = 1.
struct AdamWUpdate {
  float* params;
  float* m;
  float* v;
  const float* grads;
  const float* decay_mask;
  const float* grad_scale;
  AdamWStep step;

  template <int W>
  __device__ __forceinline__ void apply(int64_t i) const {
    const float scale = grad_scale ? *grad_scale : 1.0f;
    FloatVec<W> p = load_vec<W>(params + i), mi = load_vec<W>(m + i), vi = load_vec<W>(v + i);
    const FloatVec<W> g = load_vec<W>(grads + i);
    const FloatVec<W> mask = decay_mask ? load_vec<W>(decay_mask + i) : FloatVec<W>::splat(1.0f);
    CMAE_UNROLL
    for (int k = 0; k < W; ++k) ::cmae::adamw_update(p.v[k], mi.v[k], vi.v[k], scale * g.v[k], mask.v[k], step);
    store_vec<W>(params + i, p);
    store_vec<W>(m + i, mi);
    store_vec<W>(v + i, vi);
  }
};

struct EmaLerp {
  float momentum;
  __device__ __forceinline__ float operator()(float target, float online) const { return ::cmae::ema_lerp(target, online, momentum); }
};

struct Scale {
  float s;
  __device__ __forceinline__ float operator()(float x) const { return x * s; }
};

// Elements per partial sum of global_norm (the CPU's block size too), and the block that sums one.
constexpr int64_t kNormChunk = 1 << 14;
constexpr unsigned kNormThreads = 256;

// partials[blockIdx.x] = Σ x² (double) over grads[chunk·kNormChunk, +kNormChunk) ∩ [0, n).
// W = 4 needs grads 16-byte aligned (chunks start at multiples of 4 elements).
template <int W>
__global__ void __launch_bounds__(kNormThreads) sum_squares_kernel(double* partials, const float* grads, int64_t n) {
  CMAE_SHARED(double, scratch, 32);
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kNormChunk;
  const int64_t count = n - begin < kNormChunk ? n - begin : kNormChunk;
  const float* x = grads + begin;
  double sum = 0.0;
  const int64_t groups = count / W;
  for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
    const FloatVec<W> v = load_vec<W>(x + g * W);
    CMAE_UNROLL
    for (int k = 0; k < W; ++k) sum += static_cast<double>(v.v[k]) * v.v[k];
  }
  for (int64_t i = groups * W + threadIdx.x; i < count; i += blockDim.x) sum += static_cast<double>(x[i]) * x[i];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// sum_kernel's finish of global_norm: the square root into the device double.
struct WriteSqrt {
  double* norm;
  __device__ __forceinline__ void operator()(double total) const { *norm = sqrt(total); }
};

__global__ void clip_coefficient_kernel(float* scale, const double* norm, double max_norm) {
  *scale = ::cmae::clip_coefficient(*norm, max_norm);
}

}  // namespace kernels

CMAE_CUDA_NAMESPACE_END
