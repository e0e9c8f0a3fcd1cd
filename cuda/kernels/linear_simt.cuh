// The FP32 GEMM on CUDA cores (every GPU; the only path below compute capability 8.0): a register-
// tiled SIMT kernel in the classic shape.
//
// A block of (BM/TM)·(BN/TN) threads computes a BM x BN tile of C over K in steps of kSimtBK = 8.
// Each step, the A and B tiles are staged in shared memory as k-rows (As[k][m], Bs[k][n]; an
// operand stored k-contiguous is transposed on the way), double-buffered through registers
// (double_buffered_steps: the loads of step s + 1 hide behind the 8·TM·TN FMAs of step s).
// Thread (tx, ty) owns TM x TN accumulators: rows ty·4 + {0..3} of each of the TM/4 row bands
// (BM/(TM/4) apart) and columns tx·4 + {0..3} of each TN/4 column band, so its fragment reads are
// 16-byte shared loads (A: a broadcast within the warp, B: 16 consecutive float4s) and its stores
// 16-byte runs that a warp writes as 256 contiguous bytes. Every accumulator is one FMA chain in
// increasing k over the block's K slice: the result depends on the product's plan (a function of
// its shape), never on the schedule.
#pragma once
#include "kernels/linear_common.cuh"

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {

constexpr int kSimtBK = 8;

// At most 128 registers (two 256-thread blocks per SM), which the 8 x 8 tile fits without spills.
template <int BM, int BN, int TM, int TN, bool TransA, bool TransB>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2) gemm_simt(GemmArgs args) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  constexpr int BK = kSimtBK;
  static_assert(TM % 4 == 0 && TN % 4 == 0 && (BM / (TM / 4)) % 4 == 0 && (BN / (TN / 4)) % 4 == 0, "4-wide thread bands");
  constexpr int kBandM = BM / (TM / 4), kBandN = BN / (TN / 4);  // distance between a thread's row (column) bands
  // Stored tile shapes: A is BM x BK (TransA: BK x BM), B is BK x BN (TransB: BN x BK).
  constexpr int kARows = TransA ? BK : BM, kACols = TransA ? BM : BK;
  constexpr int kBRows = TransB ? BN : BK, kBCols = TransB ? BK : BN;
  constexpr int kALoads = (BM * BK / 4 + kThreads - 1) / kThreads, kBLoads = (BN * BK / 4 + kThreads - 1) / kThreads;
  // k-rows padded by 4 floats: the transposing stores of 2 k-chunks x 16 rows then hit 32 banks.
  using ARow = float[BM + 4];
  using BRow = float[BN + 4];
  CMAE_SHARED(ARow, a_tile, 2 * BK);
  CMAE_SHARED(BRow, b_tile, 2 * BK);

  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  const BlockWork work = block_work<BM, BN>(args);
  const int m0 = work.m0, n0 = work.n0;

  Float4 a_next[kALoads], b_next[kBLoads];
  // The tiles of the k-step at k0 into registers; after the step before is computed, into shared
  // memory.
  const auto fetch_tiles = [&](int k0) {
    for_each_chunk<kARows, kACols, kThreads>(tid, [&](int i, int r, int c) {
      a_next[i] = TransA ? fetch4(args.a, k0 + r, m0 + c) : fetch4(args.a, m0 + r, k0 + c);
    });
    for_each_chunk<kBRows, kBCols, kThreads>(tid, [&](int i, int r, int c) {
      b_next[i] = TransB ? fetch4(args.b, n0 + r, k0 + c) : fetch4(args.b, k0 + r, n0 + c);
    });
  };
  const auto stage_tiles = [&](int buffer) {
    for_each_chunk<kARows, kACols, kThreads>(tid, [&](int i, int r, int c) {
      if (TransA) {
        store_vec<4>(&a_tile[buffer * BK + r][c], a_next[i]);
      } else {
        CMAE_UNROLL
        for (int j = 0; j < 4; ++j) a_tile[buffer * BK + c + j][r] = a_next[i].v[j];
      }
    });
    for_each_chunk<kBRows, kBCols, kThreads>(tid, [&](int i, int r, int c) {
      if (TransB) {
        CMAE_UNROLL
        for (int j = 0; j < 4; ++j) b_tile[buffer * BK + c + j][r] = b_next[i].v[j];
      } else {
        store_vec<4>(&b_tile[buffer * BK + r][c], b_next[i]);
      }
    });
  };

  float acc[TM][TN];
  CMAE_UNROLL
  for (int i = 0; i < TM; ++i)
    CMAE_UNROLL
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  double_buffered_steps<BK>(work, fetch_tiles, stage_tiles, [&](int buffer) {
    CMAE_UNROLL
    for (int k = 0; k < BK; ++k) {
      float a[TM], b[TN];
      CMAE_UNROLL
      for (int band = 0; band < TM / 4; ++band) {
        const Float4 v = load_vec<4>(&a_tile[buffer * BK + k][band * kBandM + ty * 4]);
        CMAE_UNROLL
        for (int j = 0; j < 4; ++j) a[band * 4 + j] = v.v[j];
      }
      CMAE_UNROLL
      for (int band = 0; band < TN / 4; ++band) {
        const Float4 v = load_vec<4>(&b_tile[buffer * BK + k][band * kBandN + tx * 4]);
        CMAE_UNROLL
        for (int j = 0; j < 4; ++j) b[band * 4 + j] = v.v[j];
      }
      CMAE_UNROLL
      for (int i = 0; i < TM; ++i)
        CMAE_UNROLL
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  });

  CMAE_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + i / 4 * kBandM + ty * 4 + i % 4;
    CMAE_UNROLL
    for (int band = 0; band < TN / 4; ++band) {
      const float run[4] = {acc[i][band * 4], acc[i][band * 4 + 1], acc[i][band * 4 + 2], acc[i][band * 4 + 3]};
      args.epilogue.store<4>(row, n0 + band * kBandN + tx * 4, run);
    }
  }
}

}  // namespace kernels
CMAE_CUDA_NAMESPACE_END
