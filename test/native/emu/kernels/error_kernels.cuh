// Kernels with planted bugs that the emulator must report (error_cases.cc). Each is valid CUDA
// that compiles under nvcc too; on a GPU each would hang or compute garbage.
#pragma once
#include "common/compat.cuh"
#include "common/mma.cuh"

namespace cmae::emu_tests {

// Lane 20 joins a shuffle whose mask (lanes 0-15) does not name it.
__global__ void planted_lane_outside_mask(float* out) {
  const unsigned lane = threadIdx.x % 32;
  float v = static_cast<float>(lane);
  if (lane < 16 || lane == 20) v = __shfl_xor_sync(0x0000ffffu, v, 1);
  out[threadIdx.x] = v;
}

// Lanes 16-31 return early, yet lanes 8-15 shuffle down by 8 with a full mask: they read lanes
// that have exited.
__global__ void planted_read_from_exited_lane(float* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane >= 16) return;
  float v = static_cast<float>(lane);
  v += __shfl_down_sync(0xffffffffu, v, 8);
  out[threadIdx.x] = v;
}

// The second warp leaves before the barrier the first waits at.
__global__ void planted_divergent_syncthreads(float* out) {
  if (threadIdx.x >= 32) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// Lane 0 waits at the block barrier for lanes 1-31, which wait at __syncwarp for lane 0.
__global__ void planted_deadlock(float* out) {
  if (threadIdx.x % 32 == 0) __syncthreads();
  else __syncwarp();
  out[threadIdx.x] = 1.0f;
}

// Half a warp shuffles while the other half votes, each naming the whole warp.
__global__ void planted_mismatched_collectives(float* out) {
  const unsigned lane = threadIdx.x % 32;
  float v = static_cast<float>(lane);
  if (lane < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else v = static_cast<float>(__ballot_sync(0xffffffffu, lane % 2 == 0));
  out[threadIdx.x] = v;
}

// The planted divergent barrier, in block 3 of the grid only: the message must name that block.
__global__ void planted_divergence_in_block_3(float* out) {
  if (blockIdx.x == 3 && threadIdx.x >= 32) return;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

// 40 KiB of static shared memory; with 200 KiB of dynamic shared memory over the block's limit.
__global__ void large_static_shared(float* out) {
  CMAE_SHARED(float, big, 10240);
  big[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = big[(threadIdx.x + 1) % blockDim.x];
}

// mma needs a whole warp: launched with 48 threads, the second warp has 16 lanes.
__global__ void mma_in_partial_warp(float* out) {
  const std::uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  const float c[4] = {0, 0, 0, 0};
  float d[4];
  cuda::mma_m16n8k8_tf32(d, a, b, c);
  out[threadIdx.x] = d[0];
}

// ldmatrix from global memory instead of shared memory.
__global__ void ldmatrix_from_global(const std::uint32_t* global_rows, std::uint32_t* out) {
  std::uint32_t r[4];
  cuda::ldmatrix_x4(r, &global_rows[4 * threadIdx.x]);
  out[threadIdx.x] = r[0];
}

}  // namespace cmae::emu_tests
