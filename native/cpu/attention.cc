// Multi-head self-attention core (ops/attention.h): the AVX2 kernels and the ISA dispatch. The
// AVX-512 twin, attention_avx512.cc, has the same structure with 16-lane vectors.
//
// One (b, h) pair at a time per thread, q/k/v read in place from the (B, N, 3D) qkv rows:
//   forward:  K^T and V are copied into thread-local scratch, zero padded to whole vectors (Np =
//             round_up(N, W) columns of K^T, hdp = round_up(hd, W) columns of V). For each block of
//             kRowBlock query rows: S = scale·Q·K^T into an L1-sized block, a stable softmax per row
//             (max subtracted, vectorised exp), the att row written once, then out = P·V.
//   backward: V^T, K, Q and dO are copied the same way. For each row block dP = dO·V^T, then per row
//             dS = scale·P⊙(dP − Σ_j P·dP) in place, into an N x Np scratch; then dQ = dS·K,
//             dK = dS^T·Q and dV = P^T·dO, written straight into dqkv.
// Every product goes through one register-blocked micro-kernel, C[r, :] = alpha·Σ_t A(r, t)·B[t, :]:
// one FMA chain in t order per element, so the blocking (and the thread split) never changes the
// arithmetic. Reductions (row max, row sums) are fixed-order vector reductions of one row.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>

#include "core/cpu_features.h"
#include "core/threads.h"
#include "ops/attention.h"

namespace cmae::cpu {

// attention_avx512.cc: same contract, called only when current_isa() is AVX512.
void attention_forward_avx512(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H);
void attention_backward_avx512(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N,
                               int64_t D, int64_t H);

namespace {

constexpr int kW = 8;               // floats per vector
constexpr int kMaxCV = 3;           // vectors of C columns per micro-tile
constexpr int kAccumulators = 12;   // accumulator registers per micro-tile (of 16 ymm)
constexpr int kMaxRB = 8;           // rows per micro-tile
constexpr int64_t kRowBlock = 24;   // query rows per fused forward / dP block
constexpr float kExpFlush = -80.0f; // e^x for x below this is 0 (see ops/attention.h)
// Work (flops) below which a (b, h) chunk is not worth a thread.
constexpr int64_t kMinFlopsPerChunk = int64_t{1} << 18;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- scratch ------------------------------------------------------------------------------------

// Thread-local, 64-byte aligned buffer: grown on first use, kept for the thread's lifetime. get()
// runs inside parallel regions, where an exception would terminate the process: it returns null
// when the allocation fails and the caller reports std::bad_alloc after the region.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }
  float* get(size_t floats) noexcept {
    if (floats > capacity_) {
      std::free(data_);
      capacity_ = 0;
      const size_t bytes = (std::max<size_t>(floats, 1) * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) return nullptr;
      capacity_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

thread_local Scratch t_scratch;

// ---- vector helpers -----------------------------------------------------------------------------

inline __m256i lane_mask(int64_t n) {  // lanes [0, n) set (none for n <= 0, all for n >= 8)
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Stores lanes [0, n) of x (all of them when n >= 8).
inline void store_first(float* p, __m256 x, int64_t n) {
  if (n >= kW) {
    _mm256_storeu_ps(p, x);
  } else if (n > 0) {
    _mm256_maskstore_ps(p, lane_mask(n), x);
  }
}

// Loads lanes [0, n) of p, zeros elsewhere; never reads past p[n - 1].
inline __m256 load_first(const float* p, int64_t n) {
  return n >= kW ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask(n));
}

inline float hsum(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x for x <= 0 (a score minus its row max). Cephes expf: x = n·ln2 + r with |r| <= ln2/2, e^r
// by a degree-6 polynomial, 2^n through the exponent bits. x < kExpFlush (and -inf) gives exactly
// 0; NaN stays NaN.
inline __m256 exp_nonpositive(__m256 x) {
  const __m256 flush = _mm256_cmp_ps(x, _mm256_set1_ps(kExpFlush), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(kExpFlush), x);  // NaN in x passes through
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(flush, _mm256_mul_ps(p, _mm256_castsi256_ps(two_n)));
}

// ---- the micro-kernel ---------------------------------------------------------------------------

// C(r, :) = alpha · Σ_{t < T} A(r, t)·B(t, :), for the first `cols` columns of C.
struct MatMul {
  const float* a;  // A(r, t) = a[r*a_rs + t*a_ts]
  int64_t a_rs;
  int64_t a_ts;
  const float* b;  // B(t, :) = b + t*ldb: whole vectors, 32-byte aligned, zero padded past cols
  int64_t ldb;
  float* c;        // C(r, :) = c + r*ldc; only columns < cols are written
  int64_t ldc;
  int64_t T;
  float alpha;
};

// Rows [r0, r0 + RB) by vectors [v0, v0 + CV) of C.
template <int RB, int CV>
inline void tile(const MatMul& m, int64_t r0, int64_t v0, int64_t cols) {
  __m256 acc[RB][CV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) acc[r][v] = _mm256_setzero_ps();
  const float* a = m.a + r0 * m.a_rs;
  const float* b = m.b + v0 * kW;
  for (int64_t t = 0; t < m.T; ++t) {
    __m256 bv[CV];
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) bv[v] = _mm256_load_ps(b + t * m.ldb + v * kW);
    const float* at = a + t * m.a_ts;
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const __m256 ar = _mm256_broadcast_ss(at + r * m.a_rs);
#pragma GCC unroll 4
      for (int v = 0; v < CV; ++v) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  const __m256 alpha = _mm256_set1_ps(m.alpha);
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v)
      store_first(m.c + (r0 + r) * m.ldc + (v0 + v) * kW, _mm256_mul_ps(acc[r][v], alpha), cols - (v0 + v) * kW);
}

// The last `left` (< RB) rows, starting at r0.
template <int CV, int RB>
inline void tail_rows(const MatMul& m, int64_t r0, int64_t left, int64_t v0, int64_t cols) {
  if constexpr (RB > 0) {
    if (left == RB) {
      tile<RB, CV>(m, r0, v0, cols);
    } else {
      tail_rows<CV, RB - 1>(m, r0, left, v0, cols);
    }
  }
}

template <int CV>
void tile_rows(const MatMul& m, int64_t M, int64_t v0, int64_t cols) {
  constexpr int RB = std::min(kMaxRB, kAccumulators / CV);
  int64_t r = 0;
  for (; r + RB <= M; r += RB) tile<RB, CV>(m, r, v0, cols);
  tail_rows<CV, RB - 1>(m, r, M - r, v0, cols);
}

// C (M x cols) = alpha·A·B. The column vectors are split into chunks of at most kMaxCV, as even as
// possible (9 = 3+3+3 rather than 2+2+2+2+1: a one-vector tile is bound by its A broadcasts).
void matmul(const MatMul& m, int64_t M, int64_t cols) {
  const int64_t vectors = (cols + kW - 1) / kW;
  const int64_t chunks = (vectors + kMaxCV - 1) / kMaxCV;
  for (int64_t c = 0, v0 = 0; c < chunks; ++c) {
    const int64_t cv = vectors / chunks + (c < vectors % chunks ? 1 : 0);
    switch (cv) {
      case 3: tile_rows<3>(m, M, v0, cols); break;
      case 2: tile_rows<2>(m, M, v0, cols); break;
      default: tile_rows<1>(m, M, v0, cols); break;
    }
    v0 += cv;
  }
}

// ---- layout helpers -----------------------------------------------------------------------------

// dst (rows x ldd) = src rows (stride lds) of `cols` values, zero padded to ldd.
void copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ldd; c += kW) _mm256_store_ps(dst + r * ldd + c, load_first(src + r * lds + c, cols - c));
}

// In-register transpose of an 8 x 8 block: r[i] lane j <- r[j] lane i.
inline void transpose8(__m256 r[8]) {
  __m256 t[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4g + c], per 128-bit lane l: rows 4g..4g+3 of column c + 4l.
  __m256 u[8];
#pragma GCC unroll 2
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

// dst (cols x ldd) = transpose of src (rows x cols, stride lds), zero padded: ldd is a multiple of
// kW and >= rows. Never reads past column `cols` of a source row.
void transpose_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t r0 = 0; r0 < ldd; r0 += kW)
    for (int64_t c0 = 0; c0 < cols; c0 += kW) {
      __m256 x[kW];
#pragma GCC unroll 8
      for (int i = 0; i < kW; ++i)
        x[i] = r0 + i < rows ? load_first(src + (r0 + i) * lds + c0, cols - c0) : _mm256_setzero_ps();
      transpose8(x);
      const int64_t n = std::min<int64_t>(kW, cols - c0);
      for (int64_t i = 0; i < n; ++i) _mm256_store_ps(dst + (c0 + i) * ldd + r0, x[i]);
    }
}

// s[0, np) holds the scores of one query row (entries >= n are ignored). Writes the probabilities to
// s[0, np) (0 past n) and to att_row[0, n).
void softmax_row(float* s, int64_t n, int64_t np, float* att_row) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t full = n / kW * kW;  // s[full, np) is the one partial vector, if any
  if (full < np) {
    const __m256 x = _mm256_load_ps(s + full);
    _mm256_store_ps(s + full, _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(lane_mask(n - full))));
  }
  __m256 mx = ninf;
  for (int64_t j = 0; j < np; j += kW) mx = _mm256_max_ps(mx, _mm256_load_ps(s + j));
  const __m256 row_max = _mm256_set1_ps(hmax(mx));
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < np; j += kW) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(s + j), row_max));
    _mm256_store_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
  for (int64_t j = 0; j < np; j += kW) {
    const __m256 p = _mm256_mul_ps(_mm256_load_ps(s + j), inv);
    _mm256_store_ps(s + j, p);
    store_first(att_row + j, p, n - j);
  }
}

// d[0, np) holds dP of one row; p_row[0, n) its probabilities. d becomes scale·P⊙(dP − Σ_j P·dP)
// (0 past n).
void dscores_row(float* d, const float* p_row, int64_t n, int64_t np, float scale) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t j = 0; j < np; j += kW) acc = _mm256_fmadd_ps(load_first(p_row + j, n - j), _mm256_load_ps(d + j), acc);
  const __m256 dot = _mm256_set1_ps(hsum(acc));
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int64_t j = 0; j < np; j += kW) {
    const __m256 p = _mm256_mul_ps(load_first(p_row + j, n - j), vscale);
    _mm256_store_ps(d + j, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_load_ps(d + j), dot)));
  }
}

// timm's head_dim ** -0.5, rounded once to float.
float score_scale(int64_t hd) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))); }

// (b, h) pairs per thread chunk: at least kMinFlopsPerChunk of work.
int64_t min_pairs(int64_t N, int64_t hd) {
  const int64_t flops = 4 * N * N * hd;
  return flops >= kMinFlopsPerChunk ? 1 : kMinFlopsPerChunk / std::max<int64_t>(flops, 1);
}

void forward_avx2(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  const int64_t hd = D / H;
  const int64_t np = round_up(N, kW);
  const int64_t hdp = round_up(hd, kW);
  const float scale = score_scale(hd);
  std::atomic<bool> out_of_memory{false};
  parallel_for(B * H, min_pairs(N, hd), [&](int64_t begin, int64_t end) {
    float* kt = t_scratch.get(static_cast<size_t>(hd * np + N * hdp + kRowBlock * np));
    if (!kt) {
      out_of_memory.store(true);
      return;
    }
    float* v = kt + hd * np;
    float* s = v + N * hdp;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* q = qkv + b * N * 3 * D + h * hd;  // row n at q + n*3D; k at +D, v at +2D
      transpose_rows(kt, np, q + D, 3 * D, N, hd);
      copy_rows(v, hdp, q + 2 * D, 3 * D, N, hd);
      float* att_bh = att + bh * N * N;
      for (int64_t i0 = 0; i0 < N; i0 += kRowBlock) {
        const int64_t rows = std::min(kRowBlock, N - i0);
        matmul({q + i0 * 3 * D, 3 * D, 1, kt, np, s, np, hd, scale}, rows, np);
        for (int64_t r = 0; r < rows; ++r) softmax_row(s + r * np, N, np, att_bh + (i0 + r) * N);
        matmul({s, np, 1, v, hdp, out + (b * N + i0) * D + h * hd, D, N, 1.0f}, rows, hd);
      }
    }
  });
  if (out_of_memory.load()) throw std::bad_alloc();
}

void backward_avx2(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N, int64_t D,
                   int64_t H) {
  const int64_t hd = D / H;
  const int64_t np = round_up(N, kW);
  const int64_t hdp = round_up(hd, kW);
  const float scale = score_scale(hd);
  std::atomic<bool> out_of_memory{false};
  parallel_for(B * H, min_pairs(N, hd), [&](int64_t begin, int64_t end) {
    float* vt = t_scratch.get(static_cast<size_t>(hd * np + 3 * N * hdp + N * np));
    if (!vt) {
      out_of_memory.store(true);
      return;
    }
    float* k = vt + hd * np;
    float* q = k + N * hdp;
    float* dout_bh = q + N * hdp;
    float* ds = dout_bh + N * hdp;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const int64_t offset = b * N * 3 * D + h * hd;  // q of token 0 in qkv / dqkv
      const float* q_in = qkv + offset;
      const float* dout_in = dout + b * N * D + h * hd;
      const float* p = att + bh * N * N;
      transpose_rows(vt, np, q_in + 2 * D, 3 * D, N, hd);
      copy_rows(k, hdp, q_in + D, 3 * D, N, hd);
      copy_rows(q, hdp, q_in, 3 * D, N, hd);
      copy_rows(dout_bh, hdp, dout_in, D, N, hd);
      for (int64_t i0 = 0; i0 < N; i0 += kRowBlock) {
        const int64_t rows = std::min(kRowBlock, N - i0);
        matmul({dout_in + i0 * D, D, 1, vt, np, ds + i0 * np, np, hd, 1.0f}, rows, np);  // dP
        for (int64_t r = i0; r < i0 + rows; ++r) dscores_row(ds + r * np, p + r * N, N, np, scale);
      }
      float* dq = dqkv + offset;
      matmul({ds, np, 1, k, hdp, dq, 3 * D, N, 1.0f}, N, hd);                // dQ = dS·K
      matmul({ds, 1, np, q, hdp, dq + D, 3 * D, N, 1.0f}, N, hd);            // dK = dS^T·Q
      matmul({p, 1, N, dout_bh, hdp, dq + 2 * D, 3 * D, N, 1.0f}, N, hd);   // dV = P^T·dO
    }
  });
  if (out_of_memory.load()) throw std::bad_alloc();
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  if (current_isa() == Isa::AVX512) return attention_forward_avx512(out, att, qkv, B, N, D, H);
  forward_avx2(out, att, qkv, B, N, D, H);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N, int64_t D,
                        int64_t H) {
  if (current_isa() == Isa::AVX512) return attention_backward_avx512(dqkv, dout, qkv, att, B, N, D, H);
  backward_avx2(dqkv, dout, qkv, att, B, N, D, H);
}

}  // namespace cmae::cpu
