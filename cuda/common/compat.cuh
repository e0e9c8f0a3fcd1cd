// The one mode switch of cmae's CUDA kernels: every kernel header includes this first. Under nvcc
// (__CUDACC__) it is plain CUDA. Under g++ the same kernel source runs on the SIMT emulator
// (cuda/emu/emu.h), which is how CI tests every kernel without a GPU: this header then defines
// CUDA's keywords, built-in variables and the intrinsics cmae's kernels use, by their CUDA
// semantics. Emulated code needs no CUDA header (a machine may have g++ but no toolkit).
//
// Rules for kernel code, so one source serves both compilers:
//   - shared memory only through CMAE_SHARED / CMAE_DYNAMIC_SHARED (below), never `__shared__`:
//     the emulator owns shared memory, and g++ rejects a bare `__shared__`. A 2-D array takes an
//     alias for its row type: `using Row = float[33]; CMAE_SHARED(Row, tile, 32);`.
//   - launches only through cmae::cuda::launch (launch.cuh), never `<<<>>>`.
//   - threads of a warp run in no fixed order (independent thread scheduling): exchange data
//     through the *_sync intrinsics or __syncwarp, never by relying on lockstep or `volatile`.
//   - inline PTX only in cuda/common (mma.cuh, async_copy.cuh), each with its emulated form; no
//     wgmma or TMA (the emulator has neither).
//   - `CMAE_CUDA_EMULATED` is 1 under the emulator, 0 under nvcc, for the rare code that differs.
#pragma once
#include <cstdint>

#include "common/limits.h"

#if defined(__CUDACC__)

#include <cuda_runtime.h>

#define CMAE_CUDA_EMULATED 0
// A statically sized shared array of the block, 16-byte aligned (what cp.async.16 and ldmatrix
// rows need) in both modes.
#define CMAE_SHARED(type, name, count) __shared__ __align__(16) type name[count]
// The launch's dynamic shared memory as a type* (one byte array for every kernel of a translation
// unit, so kernels that view it as different types do not clash).
#define CMAE_DYNAMIC_SHARED(type, name)                                     \
  extern __shared__ __align__(16) unsigned char cmae_dynamic_shared_bytes[]; \
  type* const name = reinterpret_cast<type*>(cmae_dynamic_shared_bytes)

CMAE_CUDA_NAMESPACE_BEGIN
// The .shared-window address inline PTX (cp.async, ldmatrix) takes for a generic pointer.
__device__ __forceinline__ unsigned shared_address(const void* ptr) { return static_cast<unsigned>(__cvta_generic_to_shared(ptr)); }
CMAE_CUDA_NAMESPACE_END

#else  // the SIMT emulator

#include <cmath>
#include <cstring>
#include <type_traits>

#include "emu/emu.h"

#define CMAE_CUDA_EMULATED 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// __restrict__ is a g++ keyword already.

using dim3 = ::cmae::emu::dim3;
using uint3 = ::cmae::emu::uint3;
// The built-in variables read the fibre the OS thread runs now (emu.h).
#define threadIdx (::cmae::emu::current_thread().thread_idx)
#define blockIdx (::cmae::emu::current_thread().block->block_idx)
#define blockDim (::cmae::emu::current_thread().block->block_dim)
#define gridDim (::cmae::emu::current_thread().block->grid_dim)
constexpr int warpSize = 32;

// The site object identifies the declaration, so every thread of a block (and every execution
// of the declaration in a loop) gets the same array. Block or function scope only.
#define CMAE_SHARED(type, name, count)                                  \
  static constexpr ::cmae::emu::SharedSite name##_shared_site{#name}; \
  type(&name)[count] = ::cmae::emu::static_shared_array<type, (count)>(name##_shared_site)
#define CMAE_DYNAMIC_SHARED(type, name) type* const name = static_cast<type*>(::cmae::emu::dynamic_shared())

namespace cmae::emu::detail {

template <typename To, typename From>
inline To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From) && std::is_trivially_copyable_v<From>);
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

// 4-byte values in one shfl.sync, 8-byte values as two (what nvcc emits for double and long long).
template <typename T>
inline T shuffle_value(ShuffleMode mode, unsigned mask, T value, int lane_arg, int width) {
  static_assert(std::is_trivially_copyable_v<T> && (sizeof(T) == 4 || sizeof(T) == 8), "shuffles move 4- or 8-byte values");
  if constexpr (sizeof(T) == 4) {
    return bit_cast<T>(shuffle(mode, mask, bit_cast<std::uint32_t>(value), lane_arg, width));
  } else {
    const auto bits = bit_cast<std::uint64_t>(value);
    const std::uint64_t lo = shuffle(mode, mask, static_cast<std::uint32_t>(bits), lane_arg, width);
    const std::uint64_t hi = shuffle(mode, mask, static_cast<std::uint32_t>(bits >> 32), lane_arg, width);
    return bit_cast<T>(lo | hi << 32);
  }
}

// Read-modify-write by compare-and-swap (atomics the hardware has but GCC's builtins lack).
template <typename T, typename Update>
inline T atomic_update(T* address, Update update) {
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  T desired;
  do desired = update(old);
  while (!__atomic_compare_exchange(address, &old, &desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}

}  // namespace cmae::emu::detail

// ---- block barrier -------------------------------------------------------------------------------
inline void __syncthreads() { ::cmae::emu::sync_threads(::cmae::emu::BarrierKind::Plain, 0); }
inline int __syncthreads_count(int predicate) { return ::cmae::emu::sync_threads(::cmae::emu::BarrierKind::Count, predicate); }
inline int __syncthreads_and(int predicate) { return ::cmae::emu::sync_threads(::cmae::emu::BarrierKind::And, predicate); }
inline int __syncthreads_or(int predicate) { return ::cmae::emu::sync_threads(::cmae::emu::BarrierKind::Or, predicate); }

// ---- warp collectives ----------------------------------------------------------------------------
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::cmae::emu::sync_warp(mask); }

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  return ::cmae::emu::detail::shuffle_value(::cmae::emu::ShuffleMode::Index, mask, var, src_lane, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::cmae::emu::detail::shuffle_value(::cmae::emu::ShuffleMode::Up, mask, var, static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::cmae::emu::detail::shuffle_value(::cmae::emu::ShuffleMode::Down, mask, var, static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return ::cmae::emu::detail::shuffle_value(::cmae::emu::ShuffleMode::Xor, mask, var, lane_mask, width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) { return ::cmae::emu::vote(::cmae::emu::VoteMode::Ballot, mask, predicate != 0); }
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(::cmae::emu::vote(::cmae::emu::VoteMode::All, mask, predicate != 0));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(::cmae::emu::vote(::cmae::emu::VoteMode::Any, mask, predicate != 0));
}

inline unsigned __reduce_add_sync(unsigned mask, unsigned value) { return ::cmae::emu::reduce(::cmae::emu::ReduceMode::Add, mask, value); }
inline int __reduce_add_sync(unsigned mask, int value) {
  return static_cast<int>(::cmae::emu::reduce(::cmae::emu::ReduceMode::Add, mask, static_cast<unsigned>(value)));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return ::cmae::emu::reduce(::cmae::emu::ReduceMode::MinUnsigned, mask, value);
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return static_cast<int>(::cmae::emu::reduce(::cmae::emu::ReduceMode::MinSigned, mask, static_cast<unsigned>(value)));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return ::cmae::emu::reduce(::cmae::emu::ReduceMode::MaxUnsigned, mask, value);
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return static_cast<int>(::cmae::emu::reduce(::cmae::emu::ReduceMode::MaxSigned, mask, static_cast<unsigned>(value)));
}

// ---- atomics (relaxed, as CUDA's are) --------------------------------------------------------------
inline float atomicAdd(float* address, float value) {
  return ::cmae::emu::detail::atomic_update(address, [value](float old) { return old + value; });
}
inline double atomicAdd(double* address, double value) {
  return ::cmae::emu::detail::atomic_update(address, [value](double old) { return old + value; });
}
inline int atomicAdd(int* address, int value) { return __atomic_fetch_add(address, value, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned* address, unsigned value) { return __atomic_fetch_add(address, value, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}
inline int atomicMax(int* address, int value) {
  return ::cmae::emu::detail::atomic_update(address, [value](int old) { return old > value ? old : value; });
}
inline int atomicMin(int* address, int value) {
  return ::cmae::emu::detail::atomic_update(address, [value](int old) { return old < value ? old : value; });
}
// On failure the builtin stores the value found into `compare`: either way it returns the old value.
inline int atomicCAS(int* address, int compare, int value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
inline unsigned atomicCAS(unsigned* address, unsigned compare, unsigned value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;
}
inline int atomicExch(int* address, int value) { return __atomic_exchange_n(address, value, __ATOMIC_RELAXED); }
inline unsigned atomicExch(unsigned* address, unsigned value) { return __atomic_exchange_n(address, value, __ATOMIC_RELAXED); }
inline float atomicExch(float* address, float value) {
  float old;
  __atomic_exchange(address, &value, &old, __ATOMIC_RELAXED);
  return old;
}

// ---- loads, bits and fast math ---------------------------------------------------------------------
template <typename T>
inline T __ldg(const T* address) {
  return *address;
}
inline unsigned __float_as_uint(float x) { return ::cmae::emu::detail::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return ::cmae::emu::detail::bit_cast<float>(x); }
inline int __float_as_int(float x) { return ::cmae::emu::detail::bit_cast<int>(x); }
inline float __int_as_float(int x) { return ::cmae::emu::detail::bit_cast<float>(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
// The GPU's approximate forms differ from these by a few ulp: compare results with a tolerance.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0, as on the GPU
// Explicitly rounded forms, which nvcc never contracts into an FMA; the volatile keeps g++ (which
// contracts under -mfma) from doing so either.
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) {
  volatile float sum = a + b;
  return sum;
}
inline float __fmul_rn(float a, float b) {
  volatile float product = a * b;
  return product;
}

#endif
