// What the three GEMM kernels of the linear family share (linear.cuh gives the overview): the
// problem as the kernels see it, 4-float fetches of an operand with zero fill at its edges, the
// epilogue every product ends in (alpha·acc + beta·C, bias, GELU, GELU'), which output tile and
// K slice a block takes (block_work), the register-staged main loop, and the kernel that adds up
// the slices of a split product (gemm_split_sum).
//
// Operands are described as they are stored: "stored rows x stored cols", row-major with leading
// dimension ld. op(A) = A is stored M x K, Aᵀ is stored K x M; op(B) = B is stored K x N, Bᵀ is
// stored N x K. A kernel stages each operand tile in shared memory in its stored orientation (or
// transposes it on the way, SIMT) and loads the fragments the arithmetic wants from there.
#pragma once
#include <cstdint>

#include "common/compat.cuh"
#include "common/reduce.cuh"
#include "core/math.h"

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {

using Float4 = FloatVec<4>;
// Four bf16 values in two words: one 8-byte shared store.
struct alignas(8) Words2 {
  std::uint32_t v[2];
};

// One GEMM operand in global memory: `rows` x `cols` (its stored shape), row-major, row stride `ld`.
struct GemmOperand {
  const float* data;
  int64_t ld;
  int rows, cols;
  bool vec4;  // data 16-byte aligned and ld % 4 == 0: 16-byte loads of 4 in-range elements are legal
};

// Elements (row, col .. col + 3) of the operand, 0 outside it (edge tiles, padding never read).
__device__ __forceinline__ Float4 fetch4(const GemmOperand& g, int row, int col) {
  Float4 out{{0.0f, 0.0f, 0.0f, 0.0f}};
  if (row >= g.rows) return out;
  const float* p = g.data + static_cast<int64_t>(row) * g.ld + col;
  if (g.vec4 && col + 3 < g.cols) return load_vec<4>(p);
  CMAE_UNROLL
  for (int j = 0; j < 4; ++j)
    if (col + j < g.cols) out.v[j] = p[j];
  return out;
}

// Calls f(i, row, col) for the 4-float chunks (row, col .. col + 3) of a Rows x Cols tile that
// thread `tid` of kThreads moves: chunk tid + i·kThreads, row by row (a warp covers whole rows:
// coalesced).
template <int Rows, int Cols, int Threads, typename F>
__device__ __forceinline__ void for_each_chunk(int tid, F&& f) {
  constexpr int kChunks = Rows * Cols / 4, kPerRow = Cols / 4;
  static_assert(Cols % 4 == 0, "4-float chunks");
  CMAE_UNROLL
  for (int i = 0; i < (kChunks + Threads - 1) / Threads; ++i) {
    const int chunk = tid + i * Threads;
    if (kChunks % Threads == 0 || chunk < kChunks) f(i, chunk / kPerRow, chunk % kPerRow * 4);
  }
}

// The end of every product, per output element (row, col) with acc = op(A)·op(B) there:
//   value = alpha·acc (+ beta·out, read only when beta != 0) (+ bias[col]) (· gelu_grad(gelu_grad_of))
//   out = value (when out is set), gelu_out = gelu(value) (when gelu_out is set)
// out, gelu_grad_of and gelu_out share the row stride ld. sgemm uses alpha and beta, the Linear
// layers bias and the GELU terms (alpha = 1, beta = 0: value = acc + bias exactly, the same
// bits whichever outputs are written, which makes the fused ops bit-identical to the unfused).
struct GemmEpilogue {
  float* out;
  int64_t ld;
  float alpha, beta;
  const float* bias;
  const float* gelu_grad_of;
  float* gelu_out;
  int rows, cols;        // M, N
  bool vec;              // every pointer 16-byte aligned and ld % 4 == 0: aligned runs move as vectors
  int64_t slice_stride;  // split K: block (x, y) writes out + y·slice_stride (its slice's partials)

  // Elements (row, col .. col + W - 1) of a thread's accumulators; col is a multiple of W.
  template <int W>
  __device__ __forceinline__ void store(int row, int col, const float (&acc)[W]) const {
    if (row >= rows || col >= cols) return;
    const bool whole = vec && col + W <= cols;  // one W-wide access per array
    const int valid = cols - col;
    const int64_t at = static_cast<int64_t>(row) * ld + col;
    float value[W];
    CMAE_UNROLL
    for (int j = 0; j < W; ++j) value[j] = alpha * acc[j];
    if (beta != 0.0f) {
      float c[W];
      load_run(out + at, whole, valid, c);
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) value[j] = fmaf(beta, c[j], value[j]);
    }
    if (bias) {
      float b[W];
      load_run(bias + col, whole, valid, b);
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) value[j] += b[j];
    }
    if (gelu_grad_of) {
      float x[W];
      load_run(gelu_grad_of + at, whole, valid, x);
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) value[j] *= gelu_grad(x[j]);
    }
    if (out) store_run(out + blockIdx.y * slice_stride + at, whole, valid, value);
    if (gelu_out) {
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) value[j] = gelu(value[j]);
      store_run(gelu_out + at, whole, valid, value);
    }
  }

 private:
  // W elements from p (one vector access when whole, else the first `valid` of them, 0 after).
  template <int W>
  __device__ __forceinline__ static void load_run(const float* p, bool whole, int valid, float (&v)[W]) {
    if (whole) {
      const FloatVec<W> loaded = load_vec<W>(p);
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) v[j] = loaded.v[j];
      return;
    }
    CMAE_UNROLL
    for (int j = 0; j < W; ++j) v[j] = j < valid ? p[j] : 0.0f;
  }
  template <int W>
  __device__ __forceinline__ static void store_run(float* p, bool whole, int valid, const float (&v)[W]) {
    if (whole) {
      FloatVec<W> stored;
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) stored.v[j] = v[j];
      store_vec<W>(p, stored);
      return;
    }
    CMAE_UNROLL
    for (int j = 0; j < W; ++j)
      if (j < valid) p[j] = v[j];
  }
};

// Everything a GEMM launch takes: C[M,N] = op(A)[M,K]·op(B)[K,N], finished by `epilogue`
// (whose rows and cols are M and N). The grid is (tiles_m·tiles_n, splits): blockIdx.y takes the
// K slice [y·k_split, (y + 1)·k_split); with several slices the epilogue writes each slice's raw
// sums to its own partial matrix (out + y·slice_stride) and gemm_split_sum finishes the product.
struct GemmArgs {
  GemmOperand a, b;
  int K;
  int tiles_m, tiles_n;  // output tiles of the launch's block shape
  int k_split;           // K per slice, a multiple of every kernel's k-step (K when not split)
  GemmEpilogue epilogue;
};

// What this block computes: the output tile at (m0, n0) and the K range [k_begin, k_end) of its
// slice (blockIdx.y). Slices start at multiples of k_split, itself a multiple of every kernel's
// k-step, so only the last one can end inside a k-step (where the operands' bounds zero-fill).
// The tiles are a 1-D grid of tiles_m·tiles_n blocks walked in groups of kTileGroup tile rows, so
// the blocks resident at one time share a few A row panels and B column panels (L2 reuse) instead
// of streaming all of A per column of tiles.
constexpr int kTileGroup = 8;
struct BlockWork {
  int m0, n0;
  int k_begin, k_end;
};
template <int BM, int BN>
__device__ __forceinline__ BlockWork block_work(const GemmArgs& args) {
  const int block = static_cast<int>(blockIdx.x);
  const int per_group = kTileGroup * args.tiles_n;
  const int first_m = block / per_group * kTileGroup;
  const int group_rows = args.tiles_m - first_m < kTileGroup ? args.tiles_m - first_m : kTileGroup;
  const int in_group = block % per_group;
  const int k_begin = static_cast<int>(blockIdx.y) * args.k_split;
  return {(first_m + in_group % group_rows) * BM, in_group / group_rows * BN, k_begin,
          args.K - k_begin < args.k_split ? args.K : k_begin + args.k_split};
}

// The main loop of the register-staged kernels (SIMT and BF16) over the k-steps of the block's
// slice: each step's tiles go global -> registers (fetch(k0), issued before the step before is
// computed, so the load latency hides behind it) -> shared buffer (stage(buffer), after that
// computation) and are consumed by compute(buffer). Two buffers and one barrier per step: the buffer a step stages
// was last read in the step before, which every thread finished before that step's barrier.
template <int BK, typename Fetch, typename Stage, typename Compute>
__device__ __forceinline__ void double_buffered_steps(const BlockWork& work, Fetch&& fetch, Stage&& stage, Compute&& compute) {
  const int steps = (work.k_end - work.k_begin + BK - 1) / BK;
  if (steps > 0) {
    fetch(work.k_begin);
    stage(0);
    __syncthreads();
  }
  for (int step = 0; step < steps; ++step) {
    const int buffer = step % 2;
    if (step + 1 < steps) fetch(work.k_begin + (step + 1) * BK);
    compute(buffer);
    if (step + 1 < steps) stage(1 - buffer);
    __syncthreads();
  }
}

// The second pass of a split-K product: element (row, col) of C is the sum of the `splits`
// partial matrices (rows x ld, ld a multiple of 4, `stride` floats apart) in slice order, then
// the epilogue. Each thread of a grid-stride loop takes 4 consecutive columns of a row (16-byte
// loads, coalesced). A template (on the block size), so that the header may be included by
// several translation units.
template <int Threads>
__global__ void __launch_bounds__(Threads)
    gemm_split_sum(const float* partials, int splits, int64_t ld, int64_t stride, GemmEpilogue epilogue) {
  const int64_t runs_per_row = ld / 4, runs = epilogue.rows * runs_per_row;
  for (int64_t run = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; run < runs; run += int64_t{gridDim.x} * blockDim.x) {
    const int row = static_cast<int>(run / runs_per_row), col = static_cast<int>(run % runs_per_row * 4);
    const float* p = partials + row * ld + col;
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int split = 0; split < splits; ++split) {
      const Float4 part = load_vec<4>(p + split * stride);
      CMAE_UNROLL
      for (int j = 0; j < 4; ++j) sum[j] += part.v[j];
    }
    epilogue.store<4>(row, col, sum);  // the padding columns (col >= N) were summed but are not stored
  }
}

}  // namespace kernels
CMAE_CUDA_NAMESPACE_END
