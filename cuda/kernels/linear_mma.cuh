// The tensor-core GEMMs (compute capability 8.0+): TF32 with mma.sync.m16n8k8 and BF16 with
// mma.sync.m16n8k16, float32 accumulators in both. The block shape is the same for the two:
//
//   block tile BM x BN, k-steps of kMmaBK = 32; WarpsM x WarpsN warps, each owning a warp tile of
//   (BM/WarpsM) x (BN/WarpsN) = MI m16 row tiles x NI n8 column tiles, MI·NI·4 accumulators per
//   lane in the C fragment layout (rows g, g + 8; columns 2t, 2t + 1; see common/mma.cuh).
//
// Each operand tile is staged in shared memory in its stored orientation (k-contiguous rows, or
// m/n-contiguous rows for a transposed operand), with rows padded so that fragment loads hit 32
// distinct banks, and the fragments come from there:
//   TF32 (tiles as float32; cp.async.cg 16-byte copies, a Stages-deep pipeline, one barrier
//        per k-step): k-contiguous tiles by ldmatrix (an 8x8 matrix of b16 pairs is an 8x4 tile of
//        32-bit values, exactly the m16n8k8 A and B layouts), m/n-contiguous ones by 32-bit shared
//        loads (rows padded by 8 floats: lane (g, t) reads bank 8t + g); every fragment register
//        rounded by to_tf32 (cvt.rna) on the way to the mma.
//   BF16 (tiles as bf16, converted by pack_bf16x2 as they are staged: global -> registers -> round
//        -> shared, double_buffered_steps like the SIMT kernel): ldmatrix for k-contiguous tiles,
//        ldmatrix.trans for m/n-contiguous ones (rows padded by 4 words: 8 rows of 16 bytes hit 32
//        banks). Half the shared bytes of TF32 per k, so twice the k per byte of shared traffic.
// Edge tiles are zero-filled (fetch4 / copy4_async), so every mma is whole; bounds are checked
// in the epilogue. Accumulation order per element: the k-steps of the block's K slice in order,
// each mma summing its k8/k16 in the hardware's fixed order: deterministic for a given plan.
//
// Under nvcc the bodies exist for sm_80+ only (an sm_75 build keeps an empty kernel that the host
// never launches: the backend refuses TF32/BF16 there).
#pragma once
#include "common/async_copy.cuh"
#include "common/mma.cuh"
#include "kernels/linear_common.cuh"

#if CMAE_CUDA_EMULATED || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
#define CMAE_LINEAR_TENSOR_CORES 1
#else
#define CMAE_LINEAR_TENSOR_CORES 0
#endif

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {

constexpr int kMmaBK = 32;
// The occupancy the register allocation aims at: 12 warps per SM, i.e. one 8-warp block (up to
// 255 registers a thread, which ptxas uses to run fragment loads ahead) or three 4-warp blocks
// (at most 170 registers).
constexpr int kMmaWarpsPerSM = 12;

// A Rows x Cols tile of 4-byte words in shared memory, rows padded by Pad words.
template <int Rows, int Cols, int Pad>
struct SharedTile {
  static constexpr int kLd = Cols + Pad;
  static constexpr int kWords = Rows * kLd;
  static_assert(kLd % 4 == 0, "rows must stay 16-byte aligned (cp.async, ldmatrix)");
};

// The block shape of a tensor-core GEMM and the shared tiles each precision stages.
template <int BM, int BN, int WarpsM, int WarpsN, bool TransA, bool TransB>
struct MmaShape {
  static constexpr int kThreads = WarpsM * WarpsN * 32;
  static constexpr int kWarpM = BM / WarpsM, kWarpN = BN / WarpsN;
  static constexpr int MI = kWarpM / 16, NI = kWarpN / 8;
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "warp tiles of whole m16 tiles and n8 tile pairs");
  // The stored tiles (rows x cols of float32): A is BM x BK (TransA: BK x BM), B is BK x BN
  // (TransB: BN x BK).
  static constexpr int kARows = TransA ? kMmaBK : BM, kACols = TransA ? BM : kMmaBK;
  static constexpr int kBRows = TransB ? BN : kMmaBK, kBCols = TransB ? kMmaBK : BN;
  // TF32: float words; k-contiguous rows padded by 4 (ldmatrix), m/n-contiguous by 8 (scalar loads).
  using Tf32A = SharedTile<kARows, kACols, TransA ? 8 : 4>;
  using Tf32B = SharedTile<kBRows, kBCols, TransB ? 4 : 8>;
  static constexpr int kTf32StageWords = Tf32A::kWords + Tf32B::kWords;
  static constexpr std::size_t tf32_shared_bytes(int stages) { return std::size_t{4} * stages * kTf32StageWords; }
  // BF16: words of two bf16 along the stored row, rows padded by 4 words.
  using Bf16A = SharedTile<kARows, kACols / 2, 4>;
  using Bf16B = SharedTile<kBRows, kBCols / 2, 4>;
  static constexpr int kBf16BufferWords = Bf16A::kWords + Bf16B::kWords;
  static constexpr std::size_t kBf16SharedBytes = std::size_t{2} * kBf16BufferWords * 4;
};

// Stored-operand chunk (row, col .. col + 3) into shared memory by cp.async: one 16-byte copy
// when it lies inside the operand and is aligned, else per element (4-byte copies inside, zeros
// outside).
__device__ __forceinline__ void copy4_async(const GemmOperand& g, int row, int col, float* dst) {
  const float* src = g.data + static_cast<int64_t>(row) * g.ld + col;
  if (row < g.rows && g.vec4 && col + 3 < g.cols) {
    cp_async_16(dst, src);
    return;
  }
  CMAE_UNROLL
  for (int j = 0; j < 4; ++j) {
    if (row < g.rows && col + j < g.cols)
      cp_async_4(dst + j, src + j);
    else
      dst[j] = 0.0f;
  }
}

// The warp tile's accumulators through the epilogue (row0, col0: the warp tile's origin in C).
template <int MI, int NI>
__device__ __forceinline__ void store_warp_tile(const GemmEpilogue& epilogue, int row0, int col0, const float (&acc)[MI][NI][4]) {
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane >> 2, t = lane % 4;
  CMAE_UNROLL
  for (int mi = 0; mi < MI; ++mi)
    CMAE_UNROLL
    for (int ni = 0; ni < NI; ++ni) {
      const int row = row0 + mi * 16 + g, col = col0 + ni * 8 + 2 * t;
      const float top[2] = {acc[mi][ni][0], acc[mi][ni][1]}, bottom[2] = {acc[mi][ni][2], acc[mi][ni][3]};
      epilogue.store<2>(row, col, top);
      epilogue.store<2>(row + 8, col, bottom);
    }
}

template <int MI, int NI>
__device__ __forceinline__ void zero_accumulators(float (&acc)[MI][NI][4]) {
  CMAE_UNROLL
  for (int mi = 0; mi < MI; ++mi)
    CMAE_UNROLL
    for (int ni = 0; ni < NI; ++ni)
      CMAE_UNROLL
      for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;
}

// acc[mi][ni] += a[mi]·b[ni] over the warp tile: m16n8k8 TF32 or m16n8k16 BF16 mma (the
// fragment registers have the same shape for both).
template <bool Bf16, int MI, int NI>
__device__ __forceinline__ void warp_tile_mma(float (&acc)[MI][NI][4], const std::uint32_t (&a)[MI][4], const std::uint32_t (&b)[NI][2]) {
  CMAE_UNROLL
  for (int mi = 0; mi < MI; ++mi)
    CMAE_UNROLL
    for (int ni = 0; ni < NI; ++ni) {
      if (Bf16)
        mma_m16n8k16_bf16(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
      else
        mma_m16n8k8_tf32(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
    }
}

__device__ __forceinline__ std::uint32_t tf32_bits(std::uint32_t float_bits) { return to_tf32(__uint_as_float(float_bits)); }

// ---- TF32 ------------------------------------------------------------------------------------

template <int BM, int BN, int WarpsM, int WarpsN, int Stages, bool TransA, bool TransB>
__global__ void __launch_bounds__(WarpsM* WarpsN * 32, kMmaWarpsPerSM / (WarpsM * WarpsN)) gemm_tf32(GemmArgs args) {
#if CMAE_LINEAR_TENSOR_CORES
  using Shape = MmaShape<BM, BN, WarpsM, WarpsN, TransA, TransB>;
  using ATile = typename Shape::Tf32A;
  using BTile = typename Shape::Tf32B;
  constexpr int kThreads = Shape::kThreads, MI = Shape::MI, NI = Shape::NI, BK = kMmaBK, kStages = Stages;
  static_assert(Stages >= 2, "a pipeline");
  CMAE_DYNAMIC_SHARED(float, shared);

  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int g = lane >> 2, t = lane % 4;
  const int warp_m0 = warp / WarpsN * Shape::kWarpM, warp_n0 = warp % WarpsN * Shape::kWarpN;
  const BlockWork work = block_work<BM, BN>(args);
  const int m0 = work.m0, n0 = work.n0;

  // k-step `step` into pipeline stage `stage`: this thread's chunks, one cp.async group.
  const auto load_stage = [&](int stage, int step) {
    float* a_tile = shared + stage * Shape::kTf32StageWords;
    float* b_tile = a_tile + ATile::kWords;
    const int k0 = work.k_begin + step * BK;
    for_each_chunk<Shape::kARows, Shape::kACols, kThreads>(tid, [&](int, int r, int c) {
      copy4_async(args.a, TransA ? k0 + r : m0 + r, TransA ? m0 + c : k0 + c, &a_tile[r * ATile::kLd + c]);
    });
    for_each_chunk<Shape::kBRows, Shape::kBCols, kThreads>(tid, [&](int, int r, int c) {
      copy4_async(args.b, TransB ? n0 + r : k0 + r, TransB ? k0 + c : n0 + c, &b_tile[r * BTile::kLd + c]);
    });
  };

  float acc[MI][NI][4];
  zero_accumulators(acc);

  const int steps = (work.k_end - work.k_begin + BK - 1) / BK;
  // Prologue: the first kStages - 1 k-steps in flight, one commit group each (empty past the end,
  // so that group i always holds k-step i).
  CMAE_UNROLL
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load_stage(s, s);
    cp_async_commit();
  }
  for (int step = 0; step < steps; ++step) {
    // Groups 0..step have landed for this thread; the barrier makes them every thread's, and
    // also retires the reads of the stage computed in step - 1, which the next load reuses.
    cp_async_wait<kStages - 2>();
    __syncthreads();
    if (step + kStages - 1 < steps) load_stage((step + kStages - 1) % kStages, step + kStages - 1);
    cp_async_commit();

    const float* a_tile = shared + step % kStages * Shape::kTf32StageWords;
    const float* b_tile = a_tile + ATile::kWords;
    CMAE_UNROLL
    for (int kk = 0; kk < BK; kk += 8) {
      std::uint32_t a[MI][4], b[NI][2];
      CMAE_UNROLL
      for (int mi = 0; mi < MI; ++mi) {
        const int m = warp_m0 + mi * 16;
        if (TransA) {  // a_tile[k][m]: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
          const float* p = &a_tile[(kk + t) * ATile::kLd + m + g];
          a[mi][0] = to_tf32(p[0]);
          a[mi][1] = to_tf32(p[8]);
          a[mi][2] = to_tf32(p[4 * ATile::kLd]);
          a[mi][3] = to_tf32(p[4 * ATile::kLd + 8]);
        } else {  // a_tile[m][k]: matrices (rows 0-7 | 8-15) x (k 0-3 | 4-7), lane l -> row l % 16
          ldmatrix_x4(a[mi], &a_tile[(m + lane % 16) * ATile::kLd + kk + 4 * (lane / 16)]);
          CMAE_UNROLL
          for (int r = 0; r < 4; ++r) a[mi][r] = tf32_bits(a[mi][r]);
        }
      }
      CMAE_UNROLL
      for (int nj = 0; nj < NI; nj += 2) {
        const int n = warp_n0 + nj * 8;
        if (TransB) {  // b_tile[n][k]: matrices n 0-7 k 0-3, n 0-7 k 4-7, n 8-15 k 0-3, n 8-15 k 4-7
          std::uint32_t r[4];
          const int i = lane / 8;
          ldmatrix_x4(r, &b_tile[(n + lane % 8 + 8 * (i / 2)) * BTile::kLd + kk + 4 * (i % 2)]);
          b[nj][0] = tf32_bits(r[0]);
          b[nj][1] = tf32_bits(r[1]);
          b[nj + 1][0] = tf32_bits(r[2]);
          b[nj + 1][1] = tf32_bits(r[3]);
        } else {  // b_tile[k][n]: b0 = B[t][g], b1 = B[t+4][g]
          CMAE_UNROLL
          for (int h = 0; h < 2; ++h) {
            const float* p = &b_tile[(kk + t) * BTile::kLd + n + 8 * h + g];
            b[nj + h][0] = to_tf32(p[0]);
            b[nj + h][1] = to_tf32(p[4 * BTile::kLd]);
          }
        }
      }
      warp_tile_mma<false>(acc, a, b);
    }
  }
  cp_async_wait<0>();  // only empty groups can remain; nothing is left in flight at exit

  store_warp_tile(args.epilogue, m0 + warp_m0, n0 + warp_n0, acc);
#endif
}

// ---- BF16 ------------------------------------------------------------------------------------

template <int BM, int BN, int WarpsM, int WarpsN, bool TransA, bool TransB>
__global__ void __launch_bounds__(WarpsM* WarpsN * 32, kMmaWarpsPerSM / (WarpsM * WarpsN)) gemm_bf16(GemmArgs args) {
#if CMAE_LINEAR_TENSOR_CORES
  using Shape = MmaShape<BM, BN, WarpsM, WarpsN, TransA, TransB>;
  using ATile = typename Shape::Bf16A;
  using BTile = typename Shape::Bf16B;
  constexpr int kThreads = Shape::kThreads, MI = Shape::MI, NI = Shape::NI, BK = kMmaBK;
  constexpr int kALoads = (BM * BK / 4 + kThreads - 1) / kThreads, kBLoads = (BN * BK / 4 + kThreads - 1) / kThreads;
  CMAE_DYNAMIC_SHARED(std::uint32_t, shared);

  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int warp_m0 = warp / WarpsN * Shape::kWarpM, warp_n0 = warp % WarpsN * Shape::kWarpN;
  const BlockWork work = block_work<BM, BN>(args);
  const int m0 = work.m0, n0 = work.n0;

  // k-step tiles into registers (float32), then rounded to bf16 pairs into shared buffer `buffer`.
  Float4 a_next[kALoads], b_next[kBLoads];
  const auto fetch_tiles = [&](int k0) {
    for_each_chunk<Shape::kARows, Shape::kACols, kThreads>(tid, [&](int i, int r, int c) {
      a_next[i] = fetch4(args.a, TransA ? k0 + r : m0 + r, TransA ? m0 + c : k0 + c);
    });
    for_each_chunk<Shape::kBRows, Shape::kBCols, kThreads>(tid, [&](int i, int r, int c) {
      b_next[i] = fetch4(args.b, TransB ? n0 + r : k0 + r, TransB ? k0 + c : n0 + c);
    });
  };
  const auto to_bf16 = [](const Float4& v) { return Words2{{pack_bf16x2(v.v[0], v.v[1]), pack_bf16x2(v.v[2], v.v[3])}}; };
  const auto stage_tiles = [&](int buffer) {
    std::uint32_t* a_tile = shared + buffer * Shape::kBf16BufferWords;
    std::uint32_t* b_tile = a_tile + ATile::kWords;
    for_each_chunk<Shape::kARows, Shape::kACols, kThreads>(tid, [&](int i, int r, int c) {
      *reinterpret_cast<Words2*>(&a_tile[r * ATile::kLd + c / 2]) = to_bf16(a_next[i]);
    });
    for_each_chunk<Shape::kBRows, Shape::kBCols, kThreads>(tid, [&](int i, int r, int c) {
      *reinterpret_cast<Words2*>(&b_tile[r * BTile::kLd + c / 2]) = to_bf16(b_next[i]);
    });
  };

  float acc[MI][NI][4];
  zero_accumulators(acc);

  const int i = lane / 8;  // the ldmatrix matrix this lane addresses a row of
  double_buffered_steps<BK>(work, fetch_tiles, stage_tiles, [&](int buffer) {
    const std::uint32_t* a_tile = shared + buffer * Shape::kBf16BufferWords;
    const std::uint32_t* b_tile = a_tile + ATile::kWords;
    CMAE_UNROLL
    for (int kk = 0; kk < BK; kk += 16) {
      std::uint32_t a[MI][4], b[NI][2];
      CMAE_UNROLL
      for (int mi = 0; mi < MI; ++mi) {
        const int m = warp_m0 + mi * 16;
        if (TransA)  // a_tile[k][m/2]: .trans of (m 0-7 | 8-15) x (k 0-7 | 8-15) -> a0..a3
          ldmatrix_x4_trans(a[mi], &a_tile[(kk + 8 * (i / 2) + lane % 8) * ATile::kLd + (m + 8 * (i % 2)) / 2]);
        else  // a_tile[m][k/2]: lane l -> row l % 16, k 8·(l / 16)
          ldmatrix_x4(a[mi], &a_tile[(m + lane % 16) * ATile::kLd + (kk + 8 * (lane / 16)) / 2]);
      }
      CMAE_UNROLL
      for (int nj = 0; nj < NI; nj += 2) {
        // Matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15): b0, b1 of
        // n8 tile nj, then of nj + 1.
        const int n = warp_n0 + nj * 8;
        std::uint32_t r[4];
        if (TransB)  // b_tile[n][k/2]
          ldmatrix_x4(r, &b_tile[(n + lane % 8 + 8 * (i / 2)) * BTile::kLd + (kk + 8 * (i % 2)) / 2]);
        else  // b_tile[k][n/2], read column-wise
          ldmatrix_x4_trans(r, &b_tile[(kk + lane % 8 + 8 * (i % 2)) * BTile::kLd + (n + 8 * (i / 2)) / 2]);
        b[nj][0] = r[0];
        b[nj][1] = r[1];
        b[nj + 1][0] = r[2];
        b[nj + 1][1] = r[3];
      }
      warp_tile_mma<true>(acc, a, b);
    }
  });

  store_warp_tile(args.epilogue, m0 + warp_m0, n0 + warp_n0, acc);
#endif
}

}  // namespace kernels
CMAE_CUDA_NAMESPACE_END
