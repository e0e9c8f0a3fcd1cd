// Kernels of the multi-head attention core (ops/attention.h): FlashAttention-style FP32 SIMT
// kernels that never materialise the N x N probabilities. The forward saves the row log-sum-exp
// L = max + log Σ exp(s − max) of every (b, h, query) (B·H·N floats); the backward recomputes
// P = exp(S − L) tile by tile (AttentionSaved::LogSumExp). Launched by cuda/attention.cu.
//
// ---- Tiles and thread layout (every kernel) -----------------------------------------------------
// A block is 128 threads (4 warps) and owns a band of kTileRows = 64 "rows" of one (b, h) head:
// query rows in the forward, row-dot and dQ kernels, key rows in the dK/dV kernel. It walks the
// other dimension in tiles of kTileCols = 32 "columns" (keys, or queries for dK/dV). Warp w owns
// rows [16w, 16w + 16); within it, lane l owns rows 16w + l/8 + 4i (i < 4) and the score columns
// l%8 + 8j (j < 4): a 4 x 4 micro-tile of each 64 x 32 score tile, whose row reductions are
// 3 xor-shuffles over the 8 lanes of the row (a fixed tree). Products with hd-wide results
// (O, dQ, dK, dV) give each thread the same 4 rows by float4 chunks at columns 4(l%8) + 32t
// (t < C, C = ceil(hd / 32), a template parameter: hd <= 32·kMaxChunks = 128). A warp whose rows all
// lie past N skips its arithmetic (it still loads and meets the barriers): with N = 197 the last
// band of 64 rows costs one warp, not four.
//
// Shared memory holds token tiles (q, k, v or dO rows of hd floats, row stride ld = 32·C + 4 so
// that ld/4 is odd: the 8 lanes reading 8 different rows as float4 hit 8 different bank quads)
// zero-filled past hd and past N, so padded rows and columns add exact zeros; and score tiles (P,
// dS; row stride 40, so the 4 x 4 micro-tile writes of a warp are conflict-free). Score products
// read both operands as float4 along hd (8 LDS.128 per 64 FMA); value products read P rows as
// float4 broadcasts and the token tile as contiguous float4 chunks.
//
// ---- Kernels ----------------------------------------------------------------------------------
//   forward       query band; key tiles with an online softmax (running max m and per-thread
//                 partial sums l, rescaled by exp(m_old − m_new)); O += P·V; at the end l is summed
//                 over the row's 8 lanes, O /= l, L = m + log l.
//   row_dots      query band; D_i = Σ_j P_ij·dP_ij (= rowsum(dO ∘ O), without O), dP = dO·Vᵀ. D is
//                 parked in dqkv at (b, i, h·hd), the first q-gradient element of the head, until
//                 query_grads overwrites it: no scratch buffer.
//   key_grads     key band; query tiles: Pᵀ = exp(K·Qᵀ·scale − L), dPᵀ = V·dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − D);
//                 dV += Pᵀ·dO, dK += dSᵀ·Q (then ·scale), written into dqkv's k and v parts.
//   query_grads   query band; key tiles: P, dP, dS as above; dQ += dS·K (then ·scale), written over
//                 the parked D of its own rows (read before its first barrier).
// The launch order row_dots → key_grads → query_grads makes D complete before anyone reads it,
// and overwritten only by the block that owns it. Each output element is written by one thread:
// no atomics, so results repeat bit for bit. Every raw score q·k is the same fmaf chain over d in
// every kernel (fmaf(a, b, c) = fmaf(b, a, c)), so the backward recomputes the forward's exactly.
// Shared helpers: load_tile_pair (a step of the tile loop, with its barriers),
// probabilities_and_grads (P and dP of a micro-tile), score_product / value_product (the two
// product shapes).
//
// ---- The e^-80 flush ----------------------------------------------------------------------------
// Forward: exp(s − m) is 0 where s − m < −80 for the running max m; since m only grows, that is a
// subset of the contract's flush (against the final max), and what the running max lets through but
// the final one would flush ends < e^-80 relative after rescaling, far below float resolution of
// out. Backward: P = 0 where s − L < −80, i.e. s − max < −80 + log l (0 <= log l <= log N): again a
// difference below e^-80 relative. Either way the CPU's and these results agree to float rounding.
//
// ---- Why FP32 SIMT, not tensor cores -------------------------------------------------------------
// The attention cases are held to FP32 tolerances (no matmul precision flag), and TF32 rounds q, k
// to 10 mantissa bits: score errors of ~1e-3 relative, far outside them. 3xTF32 (or BF16 with
// split operands) on mma.sync would keep FP32 accuracy at ~2.5-3x the SIMT throughput (and plain
// TF32/BF16 ~6-10x) for the products here, which are ~90 % of these kernels' time. Attention is
// ~4 % of a ViT step's FLOPs, but with the backward's recomputation (4.5x the forward's products
// instead of 2x) at ~60 FP32 against ~400 TF32 TFLOP/s for the Linears it may take ~20-25 % of the
// step's time (cuda/attention.cu's table): a tensor-core variant gated on the matmul precision is
// the next step if the first GPU profile confirms it.
#pragma once
#include "common/compat.cuh"
#include "common/reduce.cuh"

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {
namespace attention {

constexpr int kThreads = 128;          // 4 warps
constexpr int kTileRows = 64;          // rows of the block's band
constexpr int kBandRows = 16;          // rows of one warp
constexpr int kRowsPerThread = 4;      // rows l/8 + 4i of the warp's band
constexpr int kRowStep = 4;
constexpr int kTileCols = 32;          // columns of a score tile
constexpr int kColsPerThread = 4;      // score columns l%8 + 8j
constexpr int kColGroups = 8;
constexpr int kChunkStep = 32;         // a thread's float4 chunks of an hd-wide row: 4(l%8) + 32t
constexpr int kMaxChunks = 4;          // hd <= 128
constexpr int kScoreLd = 40;           // row stride of a score tile (≡ 8 mod 32: conflict-free writes)
constexpr float kExpFlush = -80.0f;    // exp(x) for x below this is 0 (ops/attention.h)
static_assert(kTileRows == kThreads / 32 * kBandRows && kBandRows == kRowsPerThread * kRowStep, "a warp's rows tile its band");
static_assert(kTileCols == kColGroups * kColsPerThread && kRowStep * kColGroups == 32, "a warp's lanes tile a score tile");
static_assert(kRowsPerThread == kColsPerThread, "load_lse serves a thread's rows and its score columns alike");

// The blocks per SM each kernel is compiled for (__launch_bounds__'s minimum, which caps its
// registers at 65536 / (128·n)): about what its shared memory allows at hd 32 and 64 anyway (cuda/
// attention.cu), and without a minimum ptxas settles on 96 registers for some of them and spills.
// key_grads holds two accumulator sets (dK, dV); C > 2 needs up to 255 registers.
template <int C>
constexpr int kForwardBlocks = C <= 2 ? 4 : 2;
constexpr int kRowDotsBlocks = 4;
template <int C>
constexpr int kQueryGradsBlocks = C <= 2 ? 4 : 2;
template <int C>
constexpr int kKeyGradsBlocks = C == 1 ? 4 : C == 2 ? 3 : 2;

__host__ __device__ constexpr int min_int(int a, int b) { return a < b ? a : b; }

// Four consecutive floats, one 128-bit shared or global access (common/reduce.cuh).
using Float4 = FloatVec<4>;

// The sizes of one call, computed on the host (cuda/attention.cu).
struct Shape {
  int N;           // tokens
  int H;           // heads
  int hd;          // head dim
  int ld;          // row stride of a token tile in shared memory: 32·C + 4
  int64_t D;       // model width = H·hd; the k (v) part of a qkv row starts at D (2D)
  float scale;     // hd^-0.5, rounded once to float (timm's head_dim ** -0.5)
  bool vector;     // hd % 4 == 0 and every pointer 16-byte aligned: float4 global accesses
};

// Floats of shared memory of each kernel (cuda/attention.cu sizes the launches with them).
__host__ __device__ constexpr int forward_shared_floats(int ld) { return (kTileRows + 2 * kTileCols) * ld + kTileRows * kScoreLd; }
__host__ __device__ constexpr int row_dots_shared_floats(int ld) { return 2 * (kTileRows + kTileCols) * ld; }
__host__ __device__ constexpr int key_grads_shared_floats(int ld) { return 2 * (kTileRows + kTileCols) * ld + 2 * kTileRows * kScoreLd; }
__host__ __device__ constexpr int query_grads_shared_floats(int ld) { return 2 * (kTileRows + kTileCols) * ld + kTileRows * kScoreLd; }

// What this thread owns of the band and of each score tile (see the header comment).
struct ThreadTile {
  int band;  // first row of its warp's 16
  int row;   // its rows: row + kRowStep·i
  int col;   // its score columns col + kColGroups·j; its value chunks at 4·col + kChunkStep·t
};

__device__ __forceinline__ ThreadTile thread_tile() {
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  return {warp * kBandRows, warp * kBandRows + lane / kColGroups, lane % kColGroups};
}

// The block's (b, h) head and its band of rows, from the 1-D grid (band fastest, so the blocks of
// one head run together and share its k/v rows in L2).
struct BlockHead {
  int64_t b, h, bh;
  int first;  // first row of the band
};

__device__ __forceinline__ BlockHead block_head(const Shape& s) {
  const int64_t bands = ceil_div(s.N, kTileRows);
  const int64_t bh = static_cast<int64_t>(blockIdx.x) / bands;
  return {bh / s.H, bh % s.H, bh, static_cast<int>(static_cast<int64_t>(blockIdx.x) % bands) * kTileRows};
}

// exp(x) for a score minus its row max or L (x <= 0 up to rounding), 0 below the flush threshold.
__device__ __forceinline__ float exp_flushed(float x) { return x < kExpFlush ? 0.0f : expf(x); }

// op (SumOp, MaxOp) over the 8 lanes of a score row (xor butterfly: a fixed tree, the same bits
// in every lane).
template <typename Op>
__device__ __forceinline__ float row_reduce(float v, Op op) {
  CMAE_UNROLL
  for (int offset = kColGroups / 2; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// tile[r·ld + c] (r < rows, c < ld) = element c of token r's head slice, src[r·stride + c], for
// r < valid and c < hd; 0 elsewhere. Every thread of the block calls it (a barrier must follow).
__device__ __forceinline__ void load_tokens(float* tile, int rows, const float* src, int64_t stride, int valid, const Shape& s) {
  if (s.vector) {
    const int quads = s.ld / 4;
    for (int i = static_cast<int>(threadIdx.x); i < rows * quads; i += kThreads) {
      const int r = i / quads, c = i % quads * 4;
      Float4 v = Float4::splat(0.0f);
      if (r < valid && c < s.hd) v = load_vec<4>(src + r * stride + c);
      store_vec(tile + r * s.ld + c, v);
    }
  } else {
    for (int i = static_cast<int>(threadIdx.x); i < rows * s.ld; i += kThreads) {
      const int r = i / s.ld, c = i % s.ld;
      tile[r * s.ld + c] = r < valid && c < s.hd ? src[r * stride + c] : 0.0f;
    }
  }
}

// acc[i][j] = Σ_{d < round_up(hd, 4)} a[row_i·ld + d]·b[col_j·ld + d] for this thread's rows of
// the token tile a (the band) and its columns of the token tile b (one score tile): one fmaf chain
// per element in d order.
__device__ __forceinline__ void score_product(float (&acc)[kRowsPerThread][kColsPerThread], const float* a, const float* b,
                                              const ThreadTile& t, const Shape& s) {
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i)
    CMAE_UNROLL
    for (int j = 0; j < kColsPerThread; ++j) acc[i][j] = 0.0f;
  const float* a_row = a + t.row * s.ld;
  const float* b_row = b + t.col * s.ld;
  for (int d = 0; d < s.hd; d += 4) {
    Float4 av[kRowsPerThread], bv[kColsPerThread];
    CMAE_UNROLL
    for (int i = 0; i < kRowsPerThread; ++i) av[i] = load_vec<4>(a_row + i * kRowStep * s.ld + d);
    CMAE_UNROLL
    for (int j = 0; j < kColsPerThread; ++j) bv[j] = load_vec<4>(b_row + j * kColGroups * s.ld + d);
    CMAE_UNROLL
    for (int i = 0; i < kRowsPerThread; ++i)
      CMAE_UNROLL
      for (int j = 0; j < kColsPerThread; ++j) {
        float v = acc[i][j];
        CMAE_UNROLL
        for (int e = 0; e < 4; ++e) v = fmaf(av[i].v[e], bv[j].v[e], v);
        acc[i][j] = v;
      }
  }
}

__device__ __forceinline__ void fma4(float p, const Float4& x, Float4& acc) {
  CMAE_UNROLL
  for (int e = 0; e < 4; ++e) acc.v[e] = fmaf(p, x.v[e], acc.v[e]);
}

__device__ __forceinline__ void scale4(Float4& x, float f) {
  CMAE_UNROLL
  for (int e = 0; e < 4; ++e) x.v[e] *= f;
}

// acc[i][c] += Σ_{k < kTileCols} p[row_i·kScoreLd + k]·v[k·ld + 4·col + kChunkStep·c (4 floats)]:
// this thread's rows of the score tile p times the token tile v, in k order.
template <int C>
__device__ __forceinline__ void value_product(Float4 (&acc)[kRowsPerThread][C], const float* p, const float* v, const ThreadTile& t,
                                              const Shape& s) {
  const float* p_row = p + t.row * kScoreLd;
  const float* v_col = v + 4 * t.col;
  for (int k = 0; k < kTileCols; k += 4) {
    Float4 pv[kRowsPerThread];
    CMAE_UNROLL
    for (int i = 0; i < kRowsPerThread; ++i) pv[i] = load_vec<4>(p_row + i * kRowStep * kScoreLd + k);
    CMAE_UNROLL
    for (int u = 0; u < 4; ++u) {
      Float4 vv[C];
      CMAE_UNROLL
      for (int c = 0; c < C; ++c) vv[c] = load_vec<4>(v_col + (k + u) * s.ld + c * kChunkStep);
      CMAE_UNROLL
      for (int i = 0; i < kRowsPerThread; ++i) {
        const float pk = pv[i].v[u];
        CMAE_UNROLL
        for (int c = 0; c < C; ++c) fma4(pk, vv[c], acc[i][c]);
      }
    }
  }
}

// Writes f·acc[i][c] (this thread's rows and chunks) to dst[row·stride + column] for rows < valid
// and columns < hd; dst is the band's first row, at the head's first column.
template <int C>
__device__ __forceinline__ void store_rows(float* dst, int64_t stride, int valid, const Float4 (&acc)[kRowsPerThread][C], float f,
                                           const ThreadTile& t, const Shape& s) {
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int r = t.row + i * kRowStep;
    if (r >= valid) continue;
    CMAE_UNROLL
    for (int c = 0; c < C; ++c) {
      const int col = 4 * t.col + c * kChunkStep;
      Float4 v = acc[i][c];
      scale4(v, f);
      float* out = dst + r * stride + col;
      if (s.vector) {
        if (col < s.hd) store_vec(out, v);
      } else {
        CMAE_UNROLL
        for (int e = 0; e < 4; ++e)
          if (col + e < s.hd) out[e] = v.v[e];
      }
    }
  }
}

// Where the head's slice of `token` starts in a (B, N, row_floats) tensor (its q part in qkv).
__device__ __forceinline__ int64_t head_offset(const BlockHead& bh, int token, int64_t row_floats, const Shape& s) {
  return (bh.b * s.N + token) * row_floats + bh.h * s.hd;
}

template <int C>
__device__ __forceinline__ void zero_rows(Float4 (&acc)[kRowsPerThread][C]) {
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i)
    CMAE_UNROLL
    for (int c = 0; c < C; ++c) acc[i][c] = Float4::splat(0.0f);
}

// One step of the walk over the other dimension (for t0 = 0, 32, ... < N): loads the rows of the
// tokens [t0, t0 + count) of two token slices (src_a + token·stride_a and likewise b: k and v, or
// q and dO) into tile_a and tile_b (kTileCols x ld each), between two barriers (the previous tile
// consumed, this one complete); returns count. Every thread of the block must call it.
__device__ __forceinline__ int load_tile_pair(int t0, float* tile_a, const float* src_a, int64_t stride_a, float* tile_b,
                                              const float* src_b, int64_t stride_b, const Shape& s) {
  const int count = min_int(kTileCols, s.N - t0);
  __syncthreads();
  load_tokens(tile_a, kTileCols, src_a + t0 * stride_a, stride_a, count, s);
  load_tokens(tile_b, kTileCols, src_b + t0 * stride_b, stride_b, count, s);
  __syncthreads();
  return count;
}

// L of the 4 queries first + step·i (this thread's rows, or its columns of a query tile); 0 past N
// (scores of such rows are never stored, and such columns are masked).
__device__ __forceinline__ void load_lse(float (&L)[kRowsPerThread], const float* lse, const BlockHead& bh, int first, int step,
                                         const Shape& s) {
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int r = first + step * i;
    L[i] = r < s.N ? lse[bh.bh * s.N + r] : 0.0f;
  }
}

// The same for D, parked in dqkv by row_dots.
__device__ __forceinline__ void load_parked_dots(float (&Dr)[kRowsPerThread], const float* dqkv, const BlockHead& bh, int first, int step,
                                                 const Shape& s) {
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int r = first + step * i;
    Dr[i] = r < s.N ? dqkv[head_offset(bh, r, 3 * s.D, s)] : 0.0f;
  }
}

// This thread's micro-tile of P = exp(scale·a_s·b_sᵀ − L) (0 in the columns past `cols`) and of
// dP = a_d·b_dᵀ: the band's (q, dO) rows against a tile's (k, v) rows, or for a key band its
// (k, v) rows against a tile's (q, dO) rows, which gives Pᵀ and dPᵀ (rows_are_queries = false: L
// is then per column).
__device__ __forceinline__ void probabilities_and_grads(float (&p)[kRowsPerThread][kColsPerThread],
                                                        float (&dp)[kRowsPerThread][kColsPerThread], const float* a_s,
                                                        const float* b_s, const float* a_d, const float* b_d,
                                                        const float (&L)[kRowsPerThread], bool rows_are_queries, int cols,
                                                        const ThreadTile& t, const Shape& s) {
  score_product(p, a_s, b_s, t, s);
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i)
    CMAE_UNROLL
    for (int j = 0; j < kColsPerThread; ++j) {
      const float lse_ij = rows_are_queries ? L[i] : L[j];
      const float gap = p[i][j] * s.scale - lse_ij;
      p[i][j] = t.col + j * kColGroups < cols ? exp_flushed(gap) : 0.0f;
    }
  score_product(dp, a_d, b_d, t, s);
}

// Element (i, j) of this thread's micro-tile in a score tile.
__device__ __forceinline__ int score_at(const ThreadTile& t, int i, int j) {
  return (t.row + i * kRowStep) * kScoreLd + t.col + j * kColGroups;
}

// ---- forward ------------------------------------------------------------------------------------

// out (B, N, D) and lse (B, H, N) for the 64 query rows of the block's band.
template <int C>
__global__ void __launch_bounds__(kThreads, kForwardBlocks<C>) forward(float* out, float* lse, const float* qkv, Shape s) {
  CMAE_DYNAMIC_SHARED(float, shared);
  float* const q_tile = shared;                       // kTileRows x ld
  float* const k_tile = q_tile + kTileRows * s.ld;    // kTileCols x ld
  float* const v_tile = k_tile + kTileCols * s.ld;    // kTileCols x ld
  float* const p_tile = v_tile + kTileCols * s.ld;    // kTileRows x kScoreLd
  const BlockHead bh = block_head(s);
  const ThreadTile t = thread_tile();
  const int64_t qkv_row = 3 * s.D;
  const float* const head = qkv + head_offset(bh, 0, qkv_row, s);  // q of token 0
  const int rows = min_int(kTileRows, s.N - bh.first);
  const bool active = t.band < rows;  // warp-uniform
  load_tokens(q_tile, kTileRows, head + bh.first * qkv_row, qkv_row, rows, s);

  float m[kRowsPerThread], l[kRowsPerThread];  // running max, this thread's partial sum
  Float4 o[kRowsPerThread][C];
  zero_rows(o);
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
  }
  for (int key0 = 0; key0 < s.N; key0 += kTileCols) {
    const int keys = load_tile_pair(key0, k_tile, head + s.D, qkv_row, v_tile, head + 2 * s.D, qkv_row, s);
    if (!active) continue;
    float sc[kRowsPerThread][kColsPerThread];
    score_product(sc, q_tile, k_tile, t, s);
    CMAE_UNROLL
    for (int i = 0; i < kRowsPerThread; ++i) {
      float tile_max = -INFINITY;
      CMAE_UNROLL
      for (int j = 0; j < kColsPerThread; ++j) {
        sc[i][j] = t.col + j * kColGroups < keys ? sc[i][j] * s.scale : -INFINITY;
        tile_max = fmaxf(tile_max, sc[i][j]);
      }
      const float m_new = fmaxf(m[i], row_reduce(tile_max, MaxOp{}));
      const float rescale = expf(m[i] - m_new);  // 0 on the first tile (m = −inf)
      m[i] = m_new;
      float sum = 0.0f;
      CMAE_UNROLL
      for (int j = 0; j < kColsPerThread; ++j) {
        const float p = exp_flushed(sc[i][j] - m_new);
        sum += p;
        p_tile[score_at(t, i, j)] = p;
      }
      l[i] = fmaf(l[i], rescale, sum);
      CMAE_UNROLL
      for (int c = 0; c < C; ++c) scale4(o[i][c], rescale);
    }
    __syncwarp();  // a warp reads only the p rows its own lanes wrote
    value_product(o, p_tile, v_tile, t, s);
  }
  if (!active) return;
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i) {
    const float total = row_reduce(l[i], SumOp{});
    const int r = bh.first + t.row + i * kRowStep;
    if (t.col == 0 && r < s.N) lse[bh.bh * s.N + r] = m[i] + logf(total);
    const float inv = 1.0f / total;
    CMAE_UNROLL
    for (int c = 0; c < C; ++c) scale4(o[i][c], inv);
  }
  store_rows(out + head_offset(bh, bh.first, s.D, s), s.D, rows, o, 1.0f, t, s);
}

// ---- backward -----------------------------------------------------------------------------------

// The shared memory of a query-band backward kernel: the band's q and dO rows, a key tile's k and
// v rows, and (query_grads) a dS tile.
struct QueryBand {
  float* q_tile;   // kTileRows x ld
  float* do_tile;  // kTileRows x ld
  float* k_tile;   // kTileCols x ld
  float* v_tile;   // kTileCols x ld
  float* ds_tile;  // kTileRows x kScoreLd (query_grads_shared_floats)
  const float* head;  // qkv at the head's q of token 0
  int rows;           // the band's rows below N
  bool active;        // this warp has rows below N
  float L[kRowsPerThread];  // of this thread's rows
};

// Carves the shared memory, loads the band's q and dO rows (a barrier must follow: the first
// load_tile_pair's) and this thread's L.
__device__ __forceinline__ QueryBand load_query_band(float* shared, const float* dout, const float* qkv, const float* lse,
                                                     const BlockHead& bh, const ThreadTile& t, const Shape& s) {
  QueryBand q;
  q.q_tile = shared;
  q.do_tile = q.q_tile + kTileRows * s.ld;
  q.k_tile = q.do_tile + kTileRows * s.ld;
  q.v_tile = q.k_tile + kTileCols * s.ld;
  q.ds_tile = q.v_tile + kTileCols * s.ld;
  q.head = qkv + head_offset(bh, 0, 3 * s.D, s);
  q.rows = min_int(kTileRows, s.N - bh.first);
  q.active = t.band < q.rows;
  load_tokens(q.q_tile, kTileRows, q.head + bh.first * 3 * s.D, 3 * s.D, q.rows, s);
  load_tokens(q.do_tile, kTileRows, dout + head_offset(bh, bh.first, s.D, s), s.D, q.rows, s);
  load_lse(q.L, lse, bh, bh.first + t.row, kRowStep, s);
  return q;
}

// One step of a query-band kernel's walk over the key tiles: loads the tile at key0 (every thread
// must call it) and, in the active warps, computes P and dP of this thread's micro-tile; returns
// whether it did.
__device__ __forceinline__ bool key_tile_scores(float (&p)[kRowsPerThread][kColsPerThread], float (&dp)[kRowsPerThread][kColsPerThread],
                                                const QueryBand& q, int key0, const ThreadTile& t, const Shape& s) {
  const int keys = load_tile_pair(key0, q.k_tile, q.head + s.D, 3 * s.D, q.v_tile, q.head + 2 * s.D, 3 * s.D, s);
  if (!q.active) return false;
  probabilities_and_grads(p, dp, q.q_tile, q.k_tile, q.do_tile, q.v_tile, q.L, /*rows_are_queries=*/true, keys, t, s);
  return true;
}

// D_i = Σ_j P_ij·dP_ij for the band's query rows, parked at dqkv (b, i, h·hd). Static: a
// non-template kernel defined in a header gets internal linkage, so several translation units (a
// test's and attention.cu) may include it.
static __global__ void __launch_bounds__(kThreads, kRowDotsBlocks)
    row_dots(float* dqkv, const float* dout, const float* qkv, const float* lse, Shape s) {
  CMAE_DYNAMIC_SHARED(float, shared);
  const BlockHead bh = block_head(s);
  const ThreadTile t = thread_tile();
  const QueryBand q = load_query_band(shared, dout, qkv, lse, bh, t, s);

  float dot[kRowsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int key0 = 0; key0 < s.N; key0 += kTileCols) {
    float p[kRowsPerThread][kColsPerThread], dp[kRowsPerThread][kColsPerThread];
    if (!key_tile_scores(p, dp, q, key0, t, s)) continue;
    CMAE_UNROLL
    for (int i = 0; i < kRowsPerThread; ++i)
      CMAE_UNROLL
      for (int j = 0; j < kColsPerThread; ++j) dot[i] = fmaf(p[i][j], dp[i][j], dot[i]);
  }
  if (!q.active) return;
  CMAE_UNROLL
  for (int i = 0; i < kRowsPerThread; ++i) {
    const float total = row_reduce(dot[i], SumOp{});
    const int r = bh.first + t.row + i * kRowStep;
    if (t.col == 0 && r < s.N) dqkv[head_offset(bh, r, 3 * s.D, s)] = total;
  }
}

// dQ of the band's 64 query rows, over every key tile; overwrites the band's parked D.
template <int C>
__global__ void __launch_bounds__(kThreads, kQueryGradsBlocks<C>)
    query_grads(float* dqkv, const float* dout, const float* qkv, const float* lse, Shape s) {
  CMAE_DYNAMIC_SHARED(float, shared);
  const BlockHead bh = block_head(s);
  const ThreadTile t = thread_tile();
  const QueryBand q = load_query_band(shared, dout, qkv, lse, bh, t, s);
  // Read before the first barrier of load_tile_pair; the band's only writes to dqkv come after it.
  float Dr[kRowsPerThread];
  load_parked_dots(Dr, dqkv, bh, bh.first + t.row, kRowStep, s);

  Float4 dq[kRowsPerThread][C];
  zero_rows(dq);
  for (int key0 = 0; key0 < s.N; key0 += kTileCols) {
    float p[kRowsPerThread][kColsPerThread], dp[kRowsPerThread][kColsPerThread];
    if (!key_tile_scores(p, dp, q, key0, t, s)) continue;
    CMAE_UNROLL
    for (int i = 0; i < kRowsPerThread; ++i)
      CMAE_UNROLL
      for (int j = 0; j < kColsPerThread; ++j) q.ds_tile[score_at(t, i, j)] = p[i][j] * (dp[i][j] - Dr[i]);
    __syncwarp();  // a warp reads only the score rows its own lanes wrote
    value_product(dq, q.ds_tile, q.k_tile, t, s);
  }
  if (!q.active) return;
  store_rows(dqkv + head_offset(bh, bh.first, 3 * s.D, s), 3 * s.D, q.rows, dq, s.scale, t, s);
}

// dK and dV of the band's 64 keys, over every query tile.
template <int C>
__global__ void __launch_bounds__(kThreads, kKeyGradsBlocks<C>)
    key_grads(float* dqkv, const float* dout, const float* qkv, const float* lse, Shape s) {
  CMAE_DYNAMIC_SHARED(float, shared);
  float* const k_tile = shared;                          // kTileRows x ld
  float* const v_tile = k_tile + kTileRows * s.ld;       // kTileRows x ld
  float* const q_tile = v_tile + kTileRows * s.ld;       // kTileCols x ld
  float* const do_tile = q_tile + kTileCols * s.ld;      // kTileCols x ld
  float* const p_tile = do_tile + kTileCols * s.ld;      // kTileRows x kScoreLd: Pᵀ
  float* const ds_tile = p_tile + kTileRows * kScoreLd;  // kTileRows x kScoreLd: dSᵀ
  const BlockHead bh = block_head(s);
  const ThreadTile t = thread_tile();
  const int64_t qkv_row = 3 * s.D;
  const float* const head = qkv + head_offset(bh, 0, qkv_row, s);
  const int keys = min_int(kTileRows, s.N - bh.first);
  const bool active = t.band < keys;
  load_tokens(k_tile, kTileRows, head + bh.first * qkv_row + s.D, qkv_row, keys, s);
  load_tokens(v_tile, kTileRows, head + bh.first * qkv_row + 2 * s.D, qkv_row, keys, s);

  Float4 dk[kRowsPerThread][C], dv[kRowsPerThread][C];
  zero_rows(dk);
  zero_rows(dv);
  const float* const dout_head = dout + head_offset(bh, 0, s.D, s);
  for (int query0 = 0; query0 < s.N; query0 += kTileCols) {
    const int queries = load_tile_pair(query0, q_tile, head, qkv_row, do_tile, dout_head, s.D, s);
    if (!active) continue;
    // L and D of this thread's query columns query0 + col + 8j.
    float L[kColsPerThread], Dq[kColsPerThread];
    load_lse(L, lse, bh, query0 + t.col, kColGroups, s);
    load_parked_dots(Dq, dqkv, bh, query0 + t.col, kColGroups, s);
    float p[kRowsPerThread][kColsPerThread], dp[kRowsPerThread][kColsPerThread];
    probabilities_and_grads(p, dp, k_tile, q_tile, v_tile, do_tile, L, /*rows_are_queries=*/false, queries, t, s);
    CMAE_UNROLL
    for (int i = 0; i < kRowsPerThread; ++i)
      CMAE_UNROLL
      for (int j = 0; j < kColsPerThread; ++j) {
        p_tile[score_at(t, i, j)] = p[i][j];
        ds_tile[score_at(t, i, j)] = p[i][j] * (dp[i][j] - Dq[j]);
      }
    __syncwarp();  // a warp reads only the score rows its own lanes wrote
    value_product(dv, p_tile, do_tile, t, s);
    value_product(dk, ds_tile, q_tile, t, s);
  }
  if (!active) return;
  float* const dk_band = dqkv + head_offset(bh, bh.first, qkv_row, s) + s.D;
  store_rows(dk_band, qkv_row, keys, dk, s.scale, t, s);
  store_rows(dk_band + s.D, qkv_row, keys, dv, 1.0f, t, s);
}

// ---- cls_attention ------------------------------------------------------------------------------
// One block of kClsThreads per (b, h) row (blockIdx.x = b·H + h): thread t scores keys t, t +
// kClsThreads, ... with the CPU's fmaf chain over d, parks each patch key's score in its out slot,
// and exponentiates its own slots after the block's max and double sum (block_max, block_sum):
// every thread rereads only what it wrote. Tiny next to the encoder forward it follows (N·hd
// multiply-adds per row), so no shared-memory staging of q.
constexpr int kClsThreads = 128;

__global__ void __launch_bounds__(kClsThreads)
    cls_attention_kernel(float* out, const float* qkv, int64_t N, int64_t D, int64_t H, float scale) {
  CMAE_SHARED(float, max_scratch, 32);
  CMAE_SHARED(double, sum_scratch, 32);
  const int64_t b = blockIdx.x / H, h = blockIdx.x % H, hd = D / H, ld = 3 * D;
  const float* q = qkv + b * N * ld + h * hd;
  float* row = out + static_cast<int64_t>(blockIdx.x) * (N - 1);
  const auto score = [&](int64_t j) {
    const float* k = qkv + (b * N + j) * ld + D + h * hd;
    float s = 0.0f;
    for (int64_t d = 0; d < hd; ++d) s = fmaf(q[d], k[d], s);
    return s * scale;
  };
  const float cls = score(0);  // every thread: the cls key's score joins the max and the sum
  float top = cls;
  for (int64_t j = 1 + threadIdx.x; j < N; j += kClsThreads) top = fmaxf(top, row[j - 1] = score(j));
  top = block_max(top, max_scratch);
  double part = threadIdx.x == 0 ? exp(static_cast<double>(cls - top)) : 0.0;
  for (int64_t j = 1 + threadIdx.x; j < N; j += kClsThreads) part += exp(static_cast<double>(row[j - 1] - top));
  const double sum = block_sum(part, sum_scratch);
  for (int64_t j = 1 + threadIdx.x; j < N; j += kClsThreads)
    row[j - 1] = static_cast<float>(exp(static_cast<double>(row[j - 1] - top)) / sum);
}

}  // namespace attention
}  // namespace kernels
CMAE_CUDA_NAMESPACE_END
