// AVX-512 twin of attention.cc (same structure and arithmetic order, 16-lane vectors, 24
// accumulators per micro-tile). Compiled with -mavx512f/bw/dq/vl and only called after
// current_isa() said the CPU has them. Everything but the two entry points is in an anonymous
// namespace: helpers with the same names in attention.cc are compiled for AVX2 and must not merge.

// GCC 12's avx512fintrin.h self-initialises the pass-through operand of several intrinsics
// (_mm512_undefined_ps), which -Wmaybe-uninitialized flags once they are inlined. Harmless.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>

#include "core/threads.h"

namespace cmae::cpu {

void attention_forward_avx512(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H);
void attention_backward_avx512(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N,
                               int64_t D, int64_t H);

namespace {

constexpr int kW = 16;              // floats per vector
constexpr int kMaxCV = 4;           // vectors of C columns per micro-tile
constexpr int kAccumulators = 24;   // accumulator registers per micro-tile (of 32 zmm)
constexpr int kMaxRB = 8;           // rows per micro-tile
constexpr int64_t kRowBlock = 24;   // query rows per fused forward / dP block
constexpr float kExpFlush = -80.0f; // e^x for x below this is 0 (see ops/attention.h)
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

inline __mmask16 lane_mask(int64_t n) {  // lanes [0, n) set
  return n >= kW ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1u);
}

inline void store_first(float* p, __m512 x, int64_t n) {
  if (n >= kW) {
    _mm512_storeu_ps(p, x);
  } else if (n > 0) {
    _mm512_mask_storeu_ps(p, lane_mask(n), x);
  }
}

// Lanes [0, n) of p, zeros elsewhere; never reads past p[n - 1].
inline __m512 load_first(const float* p, int64_t n) {
  return n >= kW ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lane_mask(n), p);
}

// e^x for x <= 0, as exp_nonpositive in attention.cc (same polynomial; 2^n by scalef).
inline __m512 exp_nonpositive(__m512 x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpFlush), _CMP_NLT_UQ);  // x >= flush or NaN
  x = _mm512_max_ps(_mm512_set1_ps(kExpFlush), x);  // NaN in x passes through
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}

// ---- the micro-kernel ---------------------------------------------------------------------------

// C(r, :) = alpha · Σ_{t < T} A(r, t)·B(t, :), for the first `cols` columns of C.
struct MatMul {
  const float* a;  // A(r, t) = a[r*a_rs + t*a_ts]
  int64_t a_rs;
  int64_t a_ts;
  const float* b;  // B(t, :) = b + t*ldb: whole vectors, 64-byte aligned, zero padded past cols
  int64_t ldb;
  float* c;        // C(r, :) = c + r*ldc; only columns < cols are written
  int64_t ldc;
  int64_t T;
  float alpha;
};

template <int RB, int CV>
inline void tile(const MatMul& m, int64_t r0, int64_t v0, int64_t cols) {
  __m512 acc[RB][CV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) acc[r][v] = _mm512_setzero_ps();
  const float* a = m.a + r0 * m.a_rs;
  const float* b = m.b + v0 * kW;
  for (int64_t t = 0; t < m.T; ++t) {
    __m512 bv[CV];
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) bv[v] = _mm512_load_ps(b + t * m.ldb + v * kW);
    const float* at = a + t * m.a_ts;
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const __m512 ar = _mm512_set1_ps(at[r * m.a_rs]);
#pragma GCC unroll 4
      for (int v = 0; v < CV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  const __m512 alpha = _mm512_set1_ps(m.alpha);
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v)
      store_first(m.c + (r0 + r) * m.ldc + (v0 + v) * kW, _mm512_mul_ps(acc[r][v], alpha), cols - (v0 + v) * kW);
}

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
// possible (13 = 4+3+3+3, not 4+4+4+1: a one-vector tile is bound by its A broadcasts).
void matmul(const MatMul& m, int64_t M, int64_t cols) {
  const int64_t vectors = (cols + kW - 1) / kW;
  const int64_t chunks = (vectors + kMaxCV - 1) / kMaxCV;
  for (int64_t c = 0, v0 = 0; c < chunks; ++c) {
    const int64_t cv = vectors / chunks + (c < vectors % chunks ? 1 : 0);
    switch (cv) {
      case 4: tile_rows<4>(m, M, v0, cols); break;
      case 3: tile_rows<3>(m, M, v0, cols); break;
      case 2: tile_rows<2>(m, M, v0, cols); break;
      default: tile_rows<1>(m, M, v0, cols); break;
    }
    v0 += cv;
  }
}

// ---- layout helpers (as attention.cc) -----------------------------------------------------------

void copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ldd; c += kW) _mm512_store_ps(dst + r * ldd + c, load_first(src + r * lds + c, cols - c));
}

// In-register transpose of a 16 x 16 block: r[i] lane j <- r[j] lane i.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4g + c], per 128-bit lane l: rows 4g..4g+3 of column c + 4l.
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    r[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);        // groups 0,1: columns c, c+8
    t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);    // groups 0,1: columns c+4, c+12
    t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD);
  }
}

// dst (cols x ldd) = transpose of src (rows x cols, stride lds), zero padded: ldd is a multiple of
// kW and >= rows. Never reads past column `cols` of a source row.
void transpose_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t r0 = 0; r0 < ldd; r0 += kW)
    for (int64_t c0 = 0; c0 < cols; c0 += kW) {
      __m512 x[kW];
#pragma GCC unroll 16
      for (int i = 0; i < kW; ++i)
        x[i] = r0 + i < rows ? load_first(src + (r0 + i) * lds + c0, cols - c0) : _mm512_setzero_ps();
      transpose16(x);
      const int64_t n = std::min<int64_t>(kW, cols - c0);
      for (int64_t i = 0; i < n; ++i) _mm512_store_ps(dst + (c0 + i) * ldd + r0, x[i]);
    }
}

void softmax_row(float* s, int64_t n, int64_t np, float* att_row) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t full = n / kW * kW;  // s[full, np) is the one partial vector, if any
  if (full < np) _mm512_store_ps(s + full, _mm512_mask_mov_ps(ninf, lane_mask(n - full), _mm512_load_ps(s + full)));
  __m512 mx = ninf;
  for (int64_t j = 0; j < np; j += kW) mx = _mm512_max_ps(mx, _mm512_load_ps(s + j));
  const __m512 row_max = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < np; j += kW) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_load_ps(s + j), row_max));
    _mm512_store_ps(s + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t j = 0; j < np; j += kW) {
    const __m512 p = _mm512_mul_ps(_mm512_load_ps(s + j), inv);
    _mm512_store_ps(s + j, p);
    store_first(att_row + j, p, n - j);
  }
}

void dscores_row(float* d, const float* p_row, int64_t n, int64_t np, float scale) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < np; j += kW) acc = _mm512_fmadd_ps(load_first(p_row + j, n - j), _mm512_load_ps(d + j), acc);
  const __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(acc));
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t j = 0; j < np; j += kW) {
    const __m512 p = _mm512_mul_ps(load_first(p_row + j, n - j), vscale);
    _mm512_store_ps(d + j, _mm512_mul_ps(p, _mm512_sub_ps(_mm512_load_ps(d + j), dot)));
  }
}

float score_scale(int64_t hd) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))); }

int64_t min_pairs(int64_t N, int64_t hd) {
  const int64_t flops = 4 * N * N * hd;
  return flops >= kMinFlopsPerChunk ? 1 : kMinFlopsPerChunk / std::max<int64_t>(flops, 1);
}

}  // namespace

void attention_forward_avx512(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
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
      const float* q = qkv + b * N * 3 * D + h * hd;
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

void attention_backward_avx512(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N,
                               int64_t D, int64_t H) {
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
      const int64_t offset = b * N * 3 * D + h * hd;
      const float* q_in = qkv + offset;
      const float* dout_in = dout + b * N * D + h * hd;
      const float* p = att + bh * N * N;
      transpose_rows(vt, np, q_in + 2 * D, 3 * D, N, hd);
      copy_rows(k, hdp, q_in + D, 3 * D, N, hd);
      copy_rows(q, hdp, q_in, 3 * D, N, hd);
      copy_rows(dout_bh, hdp, dout_in, D, N, hd);
      for (int64_t i0 = 0; i0 < N; i0 += kRowBlock) {
        const int64_t rows = std::min(kRowBlock, N - i0);
        matmul({dout_in + i0 * D, D, 1, vt, np, ds + i0 * np, np, hd, 1.0f}, rows, np);
        for (int64_t r = i0; r < i0 + rows; ++r) dscores_row(ds + r * np, p + r * N, N, np, scale);
      }
      float* dq = dqkv + offset;
      matmul({ds, np, 1, k, hdp, dq, 3 * D, N, 1.0f}, N, hd);
      matmul({ds, 1, np, q, hdp, dq + D, 3 * D, N, 1.0f}, N, hd);
      matmul({p, 1, N, dout_bh, hdp, dq + 2 * D, 3 * D, N, 1.0f}, N, hd);
    }
  });
  if (out_of_memory.load()) throw std::bad_alloc();
}

}  // namespace cmae::cpu
