// Kernels of the emulator's block-level tests (block_cases.cc): reductions through shared memory
// and __syncthreads, shared-memory identity and initial contents, dynamic shared memory, atomics,
// schedule orders. Compiled by g++ for the emulator and by nvcc (nvcc_kernels.cu) to prove one
// source serves both.
#pragma once
#include "common/compat.cuh"

namespace cmae::emu_tests {

// Sums in[0, n) per block into out[blockIdx.x] with a shared-memory tree over the next power of
// two above blockDim.x (partners beyond the block are skipped), so any block size works. Without
// StoreBarrier the __syncthreads between the stores and the tree is planted away: a thread may
// read partial[tid + s] before its owner wrote it, which only some schedule orders expose.
template <bool StoreBarrier>
__device__ void tree_sum(const float* in, float* out, int n) {
  CMAE_SHARED(float, partial, 1024);
  const unsigned tid = threadIdx.x;
  const unsigned i = blockIdx.x * blockDim.x + tid;
  partial[tid] = i < static_cast<unsigned>(n) ? in[i] : 0.0f;
  if (StoreBarrier) __syncthreads();
  unsigned span = 1;
  while (span < blockDim.x) span *= 2;
  for (unsigned s = span / 2; s > 0; s /= 2) {
    if (tid < s && tid + s < blockDim.x) partial[tid] += partial[tid + s];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = partial[0];
}

__global__ void block_sum_tree(const float* in, float* out, int n) { tree_sum<true>(in, out, n); }
__global__ void block_sum_tree_missing_barrier(const float* in, float* out, int n) { tree_sum<false>(in, out, n); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The llm.c shape of a block reduction (blockDim.x a multiple of 32): each warp sums by shuffles,
// lane 0 of each warp leaves its sum in shared memory, then warp 0 alone reduces those.
__global__ void block_sum_warps(const float* in, float* out, int n) {
  CMAE_SHARED(float, warp_sums, 32);
  const unsigned tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  float v = 0.0f;
  for (unsigned i = blockIdx.x * blockDim.x + tid; i < static_cast<unsigned>(n); i += blockDim.x * gridDim.x) v += in[i];
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32 ? warp_sums[lane] : 0.0f;
    v = warp_sum(v);
    if (lane == 0) out[blockIdx.x] = v;
  }
}

// Lanes pass values around their warp through shared memory, which needs __syncwarp between the
// write and the read (independent thread scheduling: no lockstep).
__global__ void warp_rotate_shared(const float* in, float* out) {
  CMAE_SHARED(float, slots, 1024);
  const unsigned tid = threadIdx.x, warp_base = tid / 32 * 32;
  slots[tid] = in[blockIdx.x * blockDim.x + tid];
  __syncwarp();
  out[blockIdx.x * blockDim.x + tid] = slots[warp_base + (tid + 1) % 32];
}

// warp_rotate_shared with the __syncwarp planted away.
__global__ void warp_rotate_shared_missing_syncwarp(const float* in, float* out) {
  CMAE_SHARED(float, slots, 1024);
  const unsigned tid = threadIdx.x, warp_base = tid / 32 * 32;
  slots[tid] = in[blockIdx.x * blockDim.x + tid];
  out[blockIdx.x * blockDim.x + tid] = slots[warp_base + (tid + 1) % 32];
}

// Every thread records its coordinates: 12 unsigned per thread, in launch order of the block.
__global__ void record_coordinates(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned* o = out + 12 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
  const unsigned values[12] = {threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z,
                               blockDim.x,  blockDim.y,  blockDim.z,  gridDim.x,  gridDim.y,  gridDim.z};
  for (int k = 0; k < 12; ++k) o[k] = values[k];
}

// Each thread reads its shared slot before anything wrote it (the emulator's NaN), then leaves
// its block's number behind for the next block to (not) see.
__global__ void shared_before_write(float* first_reads) {
  CMAE_SHARED(float, scratch, 256);
  const unsigned tid = threadIdx.x;
  first_reads[blockIdx.x * blockDim.x + tid] = scratch[tid];
  __syncthreads();
  scratch[tid] = static_cast<float>(blockIdx.x + 1);
}

__device__ float* helper_shared_array() {
  CMAE_SHARED(float, in_helper, 8);
  return in_helper;
}

// Addresses of shared arrays as each thread sees them (4 per thread): two distinct declarations,
// a declaration executed in every iteration of a loop, and one inside a helper called twice.
__global__ void shared_addresses(unsigned long long* out) {
  CMAE_SHARED(float, first, 32);
  CMAE_SHARED(int, second, 32);
  unsigned long long in_loop[3];
  for (int i = 0; i < 3; ++i) {
    CMAE_SHARED(float, loop_array, 16);
    in_loop[i] = reinterpret_cast<unsigned long long>(loop_array);
  }
  const unsigned long long helper_a = reinterpret_cast<unsigned long long>(helper_shared_array());
  const unsigned long long helper_b = reinterpret_cast<unsigned long long>(helper_shared_array());
  unsigned long long* o = out + 4 * (blockIdx.x * blockDim.x + threadIdx.x);
  o[0] = reinterpret_cast<unsigned long long>(first);
  o[1] = reinterpret_cast<unsigned long long>(second);
  o[2] = in_loop[0] == in_loop[1] && in_loop[1] == in_loop[2] ? in_loop[0] : 0;
  o[3] = helper_a == helper_b ? helper_a : 0;
}

// Stores per_thread floats per thread into dynamic shared memory and reads the block's values
// back in reverse thread order; a static array beside it must keep its value. first_read gets
// what each thread's first dynamic slot held before the write.
__global__ void dynamic_shared_reverse(const float* in, float* out, float* first_read, int per_thread) {
  CMAE_DYNAMIC_SHARED(float, buffer);
  CMAE_SHARED(float, marker, 1);
  const unsigned tid = threadIdx.x, base = blockIdx.x * blockDim.x;
  if (tid == 0) marker[0] = 42.0f;
  first_read[base + tid] = buffer[tid * per_thread];
  __syncthreads();
  for (int k = 0; k < per_thread; ++k) buffer[tid * per_thread + k] = in[(base + tid) * per_thread + k];
  __syncthreads();
  const unsigned mirror = blockDim.x - 1 - tid;
  for (int k = 0; k < per_thread; ++k) out[(base + tid) * per_thread + k] = buffer[mirror * per_thread + k] + (marker[0] - 42.0f);
}

// Every atomic the emulator provides, from every thread of every block. The CAS counter reads
// its start value before a barrier, so all but one thread of a block first fail their CAS.
__global__ void atomics_everywhere(float* float_sum, double* double_sum, int* int_sum, unsigned* unsigned_sum, int* int_max, int* int_min,
                                   unsigned* cas_counter, int* exchange_slot, int* exchanged, float* block_sums) {
  CMAE_SHARED(float, block_sum, 1);
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (threadIdx.x == 0) block_sum[0] = 0.0f;
  const unsigned seen = *cas_counter;
  __syncthreads();
  atomicAdd(float_sum, 0.25f * static_cast<float>(i % 7));
  atomicAdd(double_sum, 0.5 * i);
  atomicAdd(int_sum, i);
  atomicAdd(unsigned_sum, 3u);
  const int scrambled = (i * 7919) % 10007 - 5000;
  atomicMax(int_max, scrambled);
  atomicMin(int_min, scrambled);
  for (unsigned assumed = seen;;) {
    const unsigned old = atomicCAS(cas_counter, assumed, assumed + 1);
    if (old == assumed) break;
    assumed = old;
  }
  exchanged[i] = atomicExch(exchange_slot, i);
  atomicAdd(&block_sum[0], 1.0f);
  __syncthreads();
  if (threadIdx.x == 0) block_sums[blockIdx.x] = block_sum[0];
}

// Records the order in which threads (and blocks) start: order[k] = the k-th thread to arrive,
// numbered blockIdx.x * blockDim.x + threadIdx.x. Twice, before and after a barrier.
__global__ void record_arrival_order(unsigned* counter, unsigned* order_before, unsigned* order_after) {
  const unsigned me = blockIdx.x * blockDim.x + threadIdx.x;
  order_before[atomicAdd(&counter[0], 1u)] = me;
  __syncthreads();
  order_after[atomicAdd(&counter[1], 1u)] = me;
}

// A kernel that only synchronises: the cost of fibre switches.
__global__ void barrier_loop(int iterations, int* out) {
  for (int i = 0; i < iterations; ++i) __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = iterations;
}

}  // namespace cmae::emu_tests
