// Internals of the multi-head self-attention kernels (ops/attention.h): the ISA-independent
// algorithm, written once as templates on a vector-traits type V. attention.cc instantiates it with
// the 8-lane traits of each compile target (portable, AVX2; the avx2 build hands the avx512 path
// over), attention_avx512.cc with 16-lane AVX-512 traits; each translation unit is compiled with
// its own ISA flags.
//
// One (b, h) pair at a time per thread, q/k/v read in place from the (B, N, 3D) qkv rows:
//   forward:  K^T and V are copied into per-thread scratch (cpu/scratch.h), zero padded to whole vectors (Np =
//             round_up(N, W) columns of K^T, hdp = round_up(hd, W) columns of V). For each block of
//             kRowBlock query rows: S = scale·Q·K^T into an L1-sized block, a stable softmax per row
//             (max subtracted, vectorised exp; 4 rows interleaved), the att rows written once, then
//             out = P·V reading P back from those att rows.
//   backward: V^T, K, Q and dO are copied the same way. For each row block dP = dO·V^T, then per row
//             dS = scale·P⊙(dP − Σ_j P·dP) in place, into an N x Np scratch; then dQ = dS·K,
//             dK = dS^T·Q and dV = P^T·dO, written straight into dqkv.
// Every product goes through one register-blocked micro-kernel, C[r, :] = alpha·Σ_t A(r, t)·B[t, :]:
// one FMA chain in t order per element, so the blocking (and the thread split) never changes the
// arithmetic. Reductions (row max, row sums) are fixed-order vector reductions of one row.
// While the forward computes one (b, h) pair, the q/k/v rows of the thread's next pair are
// prefetched into L2: they are strided slices of a tensor too large for the caches.
//
// The traits V: cpu/vec_portable.h / cpu/vec_avx2.h / cpu/vec_avx512.h (every operation is listed in cpu/vec_math.h,
// whose e^x the softmax uses), plus the micro-tile shape, which each translation unit adds:
//   kMaxCV, kAccumulators                      Reg columns per micro-tile (at most); accumulator
//                                              registers per micro-tile
//
// Linkage: every function here is a template on V, and each translation unit defines its V in an
// unnamed namespace, derived from the traits of its ISA's header (themselves in an unnamed
// namespace), so every instantiation has internal linkage: the linker can never pick an AVX-512
// body for the AVX2 path, or an AVX2 one for the portable path. The same
// holds for the vec_math.h templates they call. Never include vec_avx512.h from an AVX2 unit.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>

#include "core/threads.h"
#include "cpu/scratch.h"
#include "cpu/vec_math.h"

namespace cmae::cpu {

// attention_avx512.cc: CpuBackend::attention_forward/backward's AVX-512 path, called only when
// current_isa() is AVX512.
void attention_forward_avx512(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H);
void attention_backward_avx512(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N,
                               int64_t D, int64_t H);

namespace attention_impl {

constexpr int kMaxRB = 8;           // rows per micro-tile
constexpr int64_t kRowBlock = 24;   // query rows per fused forward / dP block
constexpr float kExpFlush = -80.0f; // e^x for x below this is 0 (see ops/attention.h)
// Work (flops) below which a (b, h) chunk is not worth a thread.
constexpr int64_t kMinFlopsPerChunk = int64_t{1} << 18;

// ---- e^x ----------------------------------------------------------------------------------------

// e^x for x <= 0 (a score minus its row max), cpu/vec_math.h's: x < kExpFlush (and -inf) gives
// exactly 0 (which also keeps every computed lane above vec_math.h's -87); NaN stays NaN.
template <class V>
inline typename V::Reg exp_score(typename V::Reg x) {
  return vec::exp_nonpositive<V>(x, V::not_lt(x, V::set1(kExpFlush)));
}

// ---- the micro-kernel ---------------------------------------------------------------------------

// C(r, :) = alpha · Σ_{t < T} A(r, t)·B(t, :), for the first `cols` columns of C.
struct MatMul {
  const float* a;  // A(r, t) = a[r*a_rs + t*a_ts]
  int64_t a_rs;
  int64_t a_ts;
  const float* b;  // B(t, :) = b + t*ldb: whole vectors, aligned to a vector, zero padded past cols
  int64_t ldb;
  float* c;        // C(r, :) = c + r*ldc; only columns < cols are written
  int64_t ldc;
  int64_t T;
  float alpha;
};

// Rows [r0, r0 + RB) by vectors [v0, v0 + CV) of C.
template <class V, int RB, int CV>
inline void tile(const MatMul& m, int64_t r0, int64_t v0, int64_t cols) {
  constexpr int kW = V::kW;
  typename V::Reg acc[RB][CV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) acc[r][v] = V::zero();
  const float* a = m.a + r0 * m.a_rs;
  const float* b = m.b + v0 * kW;
  for (int64_t t = 0; t < m.T; ++t) {
    typename V::Reg bv[CV];
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) bv[v] = V::load(b + t * m.ldb + v * kW);
    const float* at = a + t * m.a_ts;
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const typename V::Reg ar = V::broadcast(at + r * m.a_rs);
#pragma GCC unroll 4
      for (int v = 0; v < CV; ++v) acc[r][v] = V::fmadd(ar, bv[v], acc[r][v]);
    }
  }
  const typename V::Reg alpha = V::set1(m.alpha);
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v)
      V::store_first(m.c + (r0 + r) * m.ldc + (v0 + v) * kW, V::mul(acc[r][v], alpha), cols - (v0 + v) * kW);
}

// The last `left` (< RB) rows, starting at r0.
template <class V, int CV, int RB>
inline void tail_rows(const MatMul& m, int64_t r0, int64_t left, int64_t v0, int64_t cols) {
  if constexpr (RB > 0) {
    if (left == RB) {
      tile<V, RB, CV>(m, r0, v0, cols);
    } else {
      tail_rows<V, CV, RB - 1>(m, r0, left, v0, cols);
    }
  }
}

template <class V, int CV>
void tile_rows(const MatMul& m, int64_t M, int64_t v0, int64_t cols) {
  constexpr int RB = std::min(kMaxRB, V::kAccumulators / CV);
  int64_t r = 0;
  for (; r + RB <= M; r += RB) tile<V, RB, CV>(m, r, v0, cols);
  tail_rows<V, CV, RB - 1>(m, r, M - r, v0, cols);
}

// tile_rows<cv> for a run-time cv in [1, CV].
template <class V, int CV>
inline void tile_rows_of(int64_t cv, const MatMul& m, int64_t M, int64_t v0, int64_t cols) {
  if constexpr (CV > 1) {
    if (cv < CV) {
      tile_rows_of<V, CV - 1>(cv, m, M, v0, cols);
      return;
    }
  }
  tile_rows<V, CV>(m, M, v0, cols);
}

// C (M x cols) = alpha·A·B. The column vectors are split into chunks of at most kMaxCV, as even as
// possible (AVX2: 9 = 3+3+3 rather than 2+2+2+2+1; AVX-512: 13 = 4+3+3+3, not 4+4+4+1: a one-vector
// tile is bound by its A broadcasts).
template <class V>
void matmul(const MatMul& m, int64_t M, int64_t cols) {
  const int64_t vectors = (cols + V::kW - 1) / V::kW;
  const int64_t chunks = (vectors + V::kMaxCV - 1) / V::kMaxCV;
  for (int64_t c = 0, v0 = 0; c < chunks; ++c) {
    const int64_t cv = vectors / chunks + (c < vectors % chunks ? 1 : 0);
    tile_rows_of<V, V::kMaxCV>(cv, m, M, v0, cols);
    v0 += cv;
  }
}

// ---- layout helpers -----------------------------------------------------------------------------

// dst (rows x ldd) = src rows (stride lds) of `cols` values, zero padded to ldd.
template <class V>
void copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ldd; c += V::kW) V::store(dst + r * ldd + c, V::load_first(src + r * lds + c, cols - c));
}

// dst (cols x ldd) = transpose of src (rows x cols, stride lds), zero padded: ldd is a multiple of
// kW and >= rows. Never reads past column `cols` of a source row.
template <class V>
void transpose_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  constexpr int kW = V::kW;
  for (int64_t r0 = 0; r0 < ldd; r0 += kW)
    for (int64_t c0 = 0; c0 < cols; c0 += kW) {
      typename V::Reg x[kW];
#pragma GCC unroll 16
      for (int i = 0; i < kW; ++i) x[i] = r0 + i < rows ? V::load_first(src + (r0 + i) * lds + c0, cols - c0) : V::zero();
      V::transpose(x);
      const int64_t n = std::min<int64_t>(kW, cols - c0);
      for (int64_t i = 0; i < n; ++i) V::store(dst + (c0 + i) * ldd + r0, x[i]);
    }
}

// Asks for the cache lines of rows [0, rows) of `cols` floats (stride ld) into L2 (prefetcht1):
// the next (b, h) pair's rows are strided slices of large tensors, so neither the hardware
// prefetcher nor out-of-order execution hides their misses, which otherwise stall the copies.
template <int kWrite>  // 1: for rows about to be written (prefetchw)
inline void prefetch_rows(const float* p, int64_t ld, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const uintptr_t last = reinterpret_cast<uintptr_t>(p + r * ld + cols - 1);
    for (uintptr_t line = reinterpret_cast<uintptr_t>(p + r * ld) & ~uintptr_t{63}; line <= last; line += 64)
      __builtin_prefetch(reinterpret_cast<const void*>(line), kWrite, 2);
  }
}

// ---- softmax and its backward -------------------------------------------------------------------

// Rows [0, G) of s (stride np) hold scores (entries >= n are ignored). Writes the probabilities to
// att rows (stride n) [0, n); s is left holding the unnormalised exponentials. The G rows go through
// each step together: one row alone is a serial chain (max, hmax, exp, sum, hsum, divide) that
// leaves the core mostly idle; G independent chains overlap. Per row the arithmetic (and its order)
// is that of a single-row softmax, so G never changes the result.
template <class V, int G>
void softmax_group(float* s, int64_t n, int64_t np, float* att) {
  using Reg = typename V::Reg;
  constexpr int kW = V::kW;
  const Reg ninf = V::set1(-std::numeric_limits<float>::infinity());
  const int64_t full = n / kW * kW;  // s[full, np) is the one partial vector, if any
  Reg mx[G];
#pragma GCC unroll 8
  for (int i = 0; i < G; ++i) mx[i] = ninf;
  for (int64_t j = 0; j < full; j += kW)
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) mx[i] = V::max(mx[i], V::load(s + i * np + j));
  if (full < np)
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) mx[i] = V::max(mx[i], V::select(V::first_lanes(n - full), V::load(s + i * np + full), ninf));
  Reg row_max[G], sum[G];
#pragma GCC unroll 8
  for (int i = 0; i < G; ++i) {
    row_max[i] = V::set1(V::hmax(mx[i]));
    sum[i] = V::zero();
  }
  for (int64_t j = 0; j < np; j += kW)
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) {
      Reg e = exp_score<V>(V::sub(V::load(s + i * np + j), row_max[i]));
      if (j >= full) e = V::select(V::first_lanes(n - j), e, V::zero());  // lanes past n contribute exactly 0
      V::store(s + i * np + j, e);
      sum[i] = V::add(sum[i], e);
    }
  Reg inv[G];
#pragma GCC unroll 8
  for (int i = 0; i < G; ++i) inv[i] = V::set1(1.0f / V::hsum(sum[i]));
  for (int64_t j = 0; j < np; j += kW)
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) V::store_first(att + i * n + j, V::mul(V::load(s + i * np + j), inv[i]), n - j);
}

// softmax_group over `rows` rows: groups of 4, then the rest.
template <class V>
void softmax_rows(float* s, int64_t rows, int64_t n, int64_t np, float* att) {
  constexpr int G = 4;
  int64_t r = 0;
  for (; r + G <= rows; r += G) softmax_group<V, G>(s + r * np, n, np, att + r * n);
  switch (rows - r) {
    case 3: softmax_group<V, 3>(s + r * np, n, np, att + r * n); break;
    case 2: softmax_group<V, 2>(s + r * np, n, np, att + r * n); break;
    case 1: softmax_group<V, 1>(s + r * np, n, np, att + r * n); break;
    default: break;
  }
}

// d[0, np) holds dP of one row; p_row[0, n) its probabilities. d becomes scale·P⊙(dP − Σ_j P·dP)
// (0 past n).
template <class V>
void dscores_row(float* d, const float* p_row, int64_t n, int64_t np, float scale) {
  using Reg = typename V::Reg;
  Reg acc = V::zero();
  for (int64_t j = 0; j < np; j += V::kW) acc = V::fmadd(V::load_first(p_row + j, n - j), V::load(d + j), acc);
  const Reg dot = V::set1(V::hsum(acc));
  const Reg vscale = V::set1(scale);
  for (int64_t j = 0; j < np; j += V::kW) {
    const Reg p = V::mul(V::load_first(p_row + j, n - j), vscale);
    V::store(d + j, V::mul(p, V::sub(V::load(d + j), dot)));
  }
}

// ---- drivers ------------------------------------------------------------------------------------

// Sizes of one call: head dim, padded token count (np) and padded head dim (hdp), score scale.
template <class V>
struct Dims {
  Dims(int64_t N, int64_t D, int64_t H)
      : hd(D / H),
        np((N + V::kW - 1) / V::kW * V::kW),
        hdp((hd + V::kW - 1) / V::kW * V::kW),
        // timm's head_dim ** -0.5, rounded once to float.
        scale(static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))) {}
  int64_t hd;
  int64_t np;
  int64_t hdp;
  float scale;
};

// Runs body(scratch, b, h, next) for the B·H (b, h) pairs, split over threads in chunks of at least
// kMinFlopsPerChunk of work; scratch = `floats` floats of this thread's slice (64-byte aligned,
// cpu/scratch.h); next = the index b·H + h of the pair this thread runs after this one (to
// prefetch), or -1.
template <class V, class Body>
void for_each_head(int64_t B, int64_t N, int64_t H, int64_t hd, size_t floats, Body&& body) {
  const int64_t flops = 4 * N * N * hd;
  const int64_t min_pairs = flops >= kMinFlopsPerChunk ? 1 : kMinFlopsPerChunk / std::max<int64_t>(flops, 1);
  const PerThreadScratch<float> scratch(ScratchSlot::Attention, floats);
  parallel_for(B * H, min_pairs, [&](int64_t begin, int64_t end) {
    float* buffer = scratch.thread_slice();
    for (int64_t bh = begin; bh < end; ++bh) body(buffer, bh / H, bh % H, bh + 1 < end ? bh + 1 : -1);
  });
}

template <class V>
void forward(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  const Dims<V> d(N, D, H);
  const int64_t hd = d.hd, np = d.np, hdp = d.hdp;
  for_each_head<V>(B, N, H, hd, static_cast<size_t>(hd * np + N * hdp + kRowBlock * np), [&](float* kt, int64_t b, int64_t h, int64_t next) {
    float* v = kt + hd * np;
    float* s = v + N * hdp;
    const float* q = qkv + b * N * 3 * D + h * hd;  // row n at q + n*3D; k at +D, v at +2D
    transpose_rows<V>(kt, np, q + D, 3 * D, N, hd);
    copy_rows<V>(v, hdp, q + 2 * D, 3 * D, N, hd);
    float* att_bh = att + (b * H + h) * N * N;
    const float* q_next = next < 0 ? nullptr : qkv + (next / H) * N * 3 * D + (next % H) * hd;
    for (int64_t i0 = 0; i0 < N; i0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, N - i0);
      if (q_next)  // the same rows of the next pair's q, k and v
        for (int64_t part = 0; part < 3; ++part) prefetch_rows<0>(q_next + i0 * 3 * D + part * D, 3 * D, rows, hd);
      matmul<V>({q + i0 * 3 * D, 3 * D, 1, kt, np, s, np, hd, d.scale}, rows, np);
      softmax_rows<V>(s, rows, N, np, att_bh + i0 * N);
      // out = P·V with P read back from the att rows just written (still in L1).
      matmul<V>({att_bh + i0 * N, N, 1, v, hdp, out + (b * N + i0) * D + h * hd, D, N, 1.0f}, rows, hd);
    }
  });
}

template <class V>
void backward(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N, int64_t D,
              int64_t H) {
  const Dims<V> d(N, D, H);
  const int64_t hd = d.hd, np = d.np, hdp = d.hdp;
  for_each_head<V>(B, N, H, hd, static_cast<size_t>(hd * np + 3 * N * hdp + N * np), [&](float* vt, int64_t b, int64_t h, int64_t) {
    float* k = vt + hd * np;
    float* q = k + N * hdp;
    float* dout_bh = q + N * hdp;
    float* ds = dout_bh + N * hdp;
    const int64_t offset = b * N * 3 * D + h * hd;  // q of token 0 in qkv / dqkv
    const float* q_in = qkv + offset;
    const float* dout_in = dout + b * N * D + h * hd;
    const float* p = att + (b * H + h) * N * N;
    transpose_rows<V>(vt, np, q_in + 2 * D, 3 * D, N, hd);
    copy_rows<V>(k, hdp, q_in + D, 3 * D, N, hd);
    copy_rows<V>(q, hdp, q_in, 3 * D, N, hd);
    copy_rows<V>(dout_bh, hdp, dout_in, D, N, hd);
    for (int64_t i0 = 0; i0 < N; i0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, N - i0);
      matmul<V>({dout_in + i0 * D, D, 1, vt, np, ds + i0 * np, np, hd, 1.0f}, rows, np);  // dP
      for (int64_t r = i0; r < i0 + rows; ++r) dscores_row<V>(ds + r * np, p + r * N, N, np, d.scale);
    }
    float* dq = dqkv + offset;
    matmul<V>({ds, np, 1, k, hdp, dq, 3 * D, N, 1.0f}, N, hd);               // dQ = dS·K
    matmul<V>({ds, 1, np, q, hdp, dq + D, 3 * D, N, 1.0f}, N, hd);           // dK = dS^T·Q
    matmul<V>({p, 1, N, dout_bh, hdp, dq + 2 * D, 3 * D, N, 1.0f}, N, hd);  // dV = P^T·dO
  });
}

}  // namespace attention_impl
}  // namespace cmae::cpu
