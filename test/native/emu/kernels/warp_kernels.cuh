// Kernels of the emulator's warp-intrinsic tests (warp_cases.cc): every shuffle, vote, reduction
// and block-barrier variant, written so that the host can check each lane's result against the
// CUDA Programming Guide's definition.
#pragma once
#include "common/compat.cuh"

namespace cmae::emu_tests {

enum ShuffleKind : int { kShuffleIndex = 0, kShuffleUp = 1, kShuffleDown = 2, kShuffleXor = 3 };

template <typename T>
__device__ __forceinline__ T shuffle_by_kind(int kind, T value, int arg, int width) {
  const unsigned full = 0xffffffffu;
  switch (kind) {
    case kShuffleIndex: return __shfl_sync(full, value, arg, width);
    case kShuffleUp: return __shfl_up_sync(full, value, static_cast<unsigned>(arg), width);
    case kShuffleDown: return __shfl_down_sync(full, value, static_cast<unsigned>(arg), width);
    default: return __shfl_xor_sync(full, value, arg, width);
  }
}

// One shuffle of each value type, by every thread of the block: out_* has one entry per thread.
// values_* hold each thread's input; arg is srcLane, delta or laneMask depending on kind.
__global__ void shuffle_probe(int kind, int arg, int width, const float* values_f, const int* values_i, const unsigned* values_u,
                              const double* values_d, float* out_f, int* out_i, unsigned* out_u, double* out_d) {
  const unsigned t = threadIdx.x;
  out_f[t] = shuffle_by_kind(kind, values_f[t], arg, width);
  out_i[t] = shuffle_by_kind(kind, values_i[t], arg, width);
  out_u[t] = shuffle_by_kind(kind, values_u[t], arg, width);
  out_d[t] = shuffle_by_kind(kind, values_d[t], arg, width);
}

// Shuffles by a lane-dependent source (each lane reads lane (lane * 7 + 3) % 32).
__global__ void shuffle_per_lane_source(const int* values, int* out) {
  const unsigned t = threadIdx.x;
  out[t] = __shfl_sync(0xffffffffu, values[t], static_cast<int>((t % 32) * 7 + 3) % 32);
}

// Two halves of each warp run independent collectives with their own masks at the same time. In
// the upper half only lanes 24-31 vote, so lanes 16-23 wait at the reduction for lanes still at
// the ballot. out gets 4 values per thread.
__global__ void partial_mask_collectives(const int* values, int* out) {
  const unsigned t = threadIdx.x, lane = t % 32;
  const int v = values[t];
  int* o = out + 4 * t;
  if (lane < 16) {
    o[0] = __shfl_xor_sync(0x0000ffffu, v, 1, 16);
    o[1] = static_cast<int>(__ballot_sync(0x0000ffffu, v % 3 == 0));
    o[2] = __reduce_add_sync(0x0000ffffu, v);
    o[3] = __all_sync(0x0000ffffu, v > 0);
  } else {
    o[0] = __shfl_down_sync(0xffff0000u, v, 2, 16);
    o[1] = lane >= 24 ? static_cast<int>(__ballot_sync(0xff000000u, v % 3 == 0)) : -1;
    o[2] = __reduce_max_sync(0xffff0000u, v);
    o[3] = __any_sync(0xffff0000u, v > 1000);
  }
}

// Votes after some lanes exited: a mask may name exited lanes (they do not take part), as long as
// nothing reads their values. out gets 2 values per live thread.
__global__ void votes_after_exit(const int* values, unsigned* out) {
  const unsigned t = threadIdx.x, lane = t % 32;
  if (lane >= 24) return;
  const int v = values[t];
  out[2 * t] = __ballot_sync(0xffffffffu, v % 2 == 0);
  out[2 * t + 1] = static_cast<unsigned>(__all_sync(0xffffffffu, v >= 0));
}

// Full-warp votes and reductions: 9 results per thread.
__global__ void votes_and_reductions(const int* values, int* out) {
  const unsigned t = threadIdx.x;
  const int v = values[t];
  const unsigned u = static_cast<unsigned>(v);
  const unsigned full = 0xffffffffu;
  int* o = out + 9 * t;
  o[0] = static_cast<int>(__ballot_sync(full, v > 0));
  o[1] = __all_sync(full, v > -1000);
  o[2] = __any_sync(full, v > 90);
  o[3] = __reduce_add_sync(full, v);
  o[4] = __reduce_min_sync(full, v);
  o[5] = __reduce_max_sync(full, v);
  o[6] = static_cast<int>(__reduce_add_sync(full, u));
  o[7] = static_cast<int>(__reduce_min_sync(full, u));
  o[8] = static_cast<int>(__reduce_max_sync(full, u));
}

// The predicate forms of __syncthreads: 3 results per thread.
__global__ void syncthreads_predicates(const int* predicates, int* out) {
  const unsigned t = threadIdx.x;
  const int p = predicates[t];
  out[3 * t] = __syncthreads_count(p);
  out[3 * t + 1] = __syncthreads_and(p);
  out[3 * t + 2] = __syncthreads_or(p);
}

// Many collectives back to back, each on the previous one's result, so a value left over from an
// earlier collective would show.
__global__ void chained_shuffles(const unsigned* values, unsigned* out, int rounds) {
  const unsigned lane = threadIdx.x % 32;
  unsigned v = values[threadIdx.x];
  for (int r = 0; r < rounds; ++r) {
    v = __shfl_sync(0xffffffffu, v * 3u + lane, static_cast<int>((lane + static_cast<unsigned>(r)) % 32));
    v ^= __ballot_sync(0xffffffffu, (v & 1u) != 0);
  }
  out[threadIdx.x] = v;
}

}  // namespace cmae::emu_tests
