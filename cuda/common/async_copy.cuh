// Asynchronous global-to-shared copies (cp.async, sm_80+), the loads of a multi-stage GEMM pipeline:
//
//   cp_async_16(&tile[i], &global[i]);   // issue (per thread)
//   cp_async_commit();                   // close this thread's group of copies
//   cp_async_wait<1>();                  // this thread's groups but the newest 1 have landed
//   __syncthreads();                     // ... and now every thread's have
//
// Under nvcc, inline PTX. Under the SIMT emulator each thread's copies are queued and performed
// only when cp_async_wait covers their group (or the thread exits), so a kernel that reads the
// destination before waiting reads the NaN that shared memory starts with, and fails its test.
// Addresses must be aligned to the copy's size; the destination must be shared memory.
#pragma once
#include "common/compat.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

#if CMAE_CUDA_EMULATED

__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src) { emu::cp_async(shared_dst, global_src, 16); }
__device__ __forceinline__ void cp_async_8(void* shared_dst, const void* global_src) { emu::cp_async(shared_dst, global_src, 8); }
__device__ __forceinline__ void cp_async_4(void* shared_dst, const void* global_src) { emu::cp_async(shared_dst, global_src, 4); }
__device__ __forceinline__ void cp_async_commit() { emu::cp_async_commit(); }
template <int PendingGroups>
__device__ __forceinline__ void cp_async_wait() {
  emu::cp_async_wait(PendingGroups);
}

#else

// .cg (bypass L1: the data is read once into shared memory) exists for 16 bytes only.
__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src) {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(shared_dst)), "l"(global_src));
#else
  __trap();  // cp.async needs sm_80: kernels using it are only launched on such devices
#endif
}
// .ca (through L1) for the smaller sizes.
template <int Bytes>
__device__ __forceinline__ void cp_async_ca(void* shared_dst, const void* global_src) {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(shared_address(shared_dst)), "l"(global_src), "n"(Bytes));
#else
  __trap();
#endif
}
__device__ __forceinline__ void cp_async_8(void* shared_dst, const void* global_src) { cp_async_ca<8>(shared_dst, global_src); }
__device__ __forceinline__ void cp_async_4(void* shared_dst, const void* global_src) { cp_async_ca<4>(shared_dst, global_src); }
__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// The "memory" clobber keeps the compiler from moving shared-memory reads above the wait.
template <int PendingGroups>
__device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PendingGroups) : "memory");
#endif
}

#endif

CMAE_CUDA_NAMESPACE_END
