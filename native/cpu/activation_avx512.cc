// AVX-512 (16-lane) twin of the vectorised GELU in activation.cc: the same formulas and constants, so
// results agree with the AVX2 path to rounding (they are not bit-identical across ISAs: the
// exponent rounding and blend instructions differ). Called only after run-time detection.
#include <immintrin.h>

// GCC 12 reports the undefined vectors inside some AVX-512 intrinsics (_mm512_abs_ps, masked moves).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdint>

#include "cpu/gelu.h"

namespace cmae::cpu::gelu_avx512 {

namespace {

// e^x for x <= 0 (clamped below at -87). Cephes expf as in activation.cc; the 2^n scaling by vscalefps.
inline __m512 exp_neg(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
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
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// Φ(x) and e^{-x²/2}; the formulas of activation.cc's normal_cdf_exp (see there), with rcp14 + one
// Newton step for s (~28 bits) instead of a division.
struct CdfExp {
  __m512 cdf;
  __m512 e;
};

inline CdfExp normal_cdf_exp(__m512 x) {
  const __m512 t = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752440f));
  const __mmask16 in_range = _mm512_cmp_ps_mask(t, _mm512_set1_ps(4.5f), _CMP_LE_OQ);
  const __m512 e = _mm512_maskz_mov_ps(in_range, exp_neg(_mm512_mul_ps(x, _mm512_mul_ps(x, _mm512_set1_ps(-0.5f)))));
  const __m512 d = _mm512_fmadd_ps(_mm512_min_ps(t, _mm512_set1_ps(4.5f)), _mm512_set1_ps(0.3f), _mm512_set1_ps(1.0f));
  __m512 s = _mm512_rcp14_ps(d);
  s = _mm512_mul_ps(s, _mm512_fnmadd_ps(d, s, _mm512_set1_ps(2.0f)));
  const __m512 u = _mm512_fmadd_ps(s, _mm512_set1_ps(3.48148148148148148f), _mm512_set1_ps(-2.48148148148148148f));
  __m512 q = _mm512_set1_ps(-2.6610516250e-06f);
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-2.0295020931e-05f));
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(1.8332795950e-05f));
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(8.9014478190e-04f));
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(6.0155818544e-03f));
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(2.4523083188e-02f));
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(7.0943925523e-02f));
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(1.5264723779e-01f));
  q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(2.4498463791e-01f));
  const __m512 half_erfc = _mm512_mul_ps(e, _mm512_mul_ps(s, q));
  const __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
  // NaN x: t is NaN, so e = 0 and s, q stay finite (min gives 4.5): Φ is a number, but GELU =
  // x·Φ and GELU' = Φ + x·φ are NaN, as they must be (tested).
  return {_mm512_mask_blend_ps(positive, half_erfc, _mm512_sub_ps(_mm512_set1_ps(1.0f), half_erfc)), e};
}

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// The per-element result: GELU(x), or dout·GELU'(x) with GELU' = Φ(x) + x·φ(x),
// φ(x) = e^{-x²/2}/√(2π) (one exponential serves both).
template <bool kBackward>
inline __m512 gelu_result(__m512 x, __m512 dout) {
  const CdfExp ce = normal_cdf_exp(x);
  if (!kBackward) return _mm512_mul_ps(x, ce.cdf);
  return _mm512_mul_ps(dout, _mm512_fmadd_ps(x, _mm512_mul_ps(ce.e, _mm512_set1_ps(0.39894228040143267794f)), ce.cdf));
}

// G whole vectors at once: G independent dependency chains (the exp and Q polynomials are ~30
// dependent operations, more than out-of-order execution overlaps across loop iterations), which
// the compiler interleaves: 2x faster than one vector per iteration. in/dout/out[g] point at the
// g-th vector. Per element the arithmetic is the same for any G (and for the masked tail below).
template <int G, bool kBackward>
inline void gelu_vectors(const float* const* in, const float* const* dout, float* const* out) {
  __m512 x[G];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) x[g] = _mm512_loadu_ps(in[g]);
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
    const __m512 d = kBackward ? _mm512_loadu_ps(dout[g]) : _mm512_setzero_ps();
    _mm512_storeu_ps(out[g], gelu_result<kBackward>(x[g], d));
  }
}

// Lanes [0, n) of one vector, n < 16 (masked-off lanes read as 0 and are not stored).
template <bool kBackward>
inline void gelu_tail(const float* in, const float* dout, float* out, int64_t n) {
  const __mmask16 m = tail_mask(n);
  const __m512 d = kBackward ? _mm512_maskz_loadu_ps(m, dout) : _mm512_setzero_ps();
  _mm512_mask_storeu_ps(out, m, gelu_result<kBackward>(_mm512_maskz_loadu_ps(m, in), d));
}

// One row: whole vectors in groups of 4, 2, 1, then the masked tail.
template <bool kBackward>
inline void gelu_row(float* out, const float* dout, const float* in, int64_t cols) {
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    const float* i4[4] = {in + c, in + c + 16, in + c + 32, in + c + 48};
    const float* d4[4] = {dout + c, dout + c + 16, dout + c + 32, dout + c + 48};
    float* o4[4] = {out + c, out + c + 16, out + c + 32, out + c + 48};
    gelu_vectors<4, kBackward>(i4, d4, o4);
  }
  if (c + 32 <= cols) {
    const float* i2[2] = {in + c, in + c + 16};
    const float* d2[2] = {dout + c, dout + c + 16};
    float* o2[2] = {out + c, out + c + 16};
    gelu_vectors<2, kBackward>(i2, d2, o2);
    c += 32;
  }
  if (c + 16 <= cols) {
    const float* i1[1] = {in + c};
    const float* d1[1] = {dout + c};
    float* o1[1] = {out + c};
    gelu_vectors<1, kBackward>(i1, d1, o1);
    c += 16;
  }
  if (c < cols) gelu_tail<kBackward>(in + c, dout + c, out + c, cols - c);
}

// The GEMM epilogue's strips are 48 columns wide: one row is 3 vectors, i.e. a pair plus a lone
// latency-bound vector; two rows at a time make them a group of 4 and a pair.
template <bool kBackward>
void gelu_rows(float* out, int64_t ldo, const float* dout, int64_t ldd, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  int64_t r = 0;
  if (cols == 48) {
    for (; r + 2 <= rows; r += 2) {
      const float* a = inp + r * ldi;
      const float* b = a + ldi;
      const float* da = kBackward ? dout + r * ldd : nullptr;
      const float* db = kBackward ? da + ldd : nullptr;
      float* oa = out + r * ldo;
      float* ob = oa + ldo;
      const float* i4[4] = {a, a + 16, a + 32, b};
      const float* d4[4] = {da, da + 16, da + 32, db};
      float* o4[4] = {oa, oa + 16, oa + 32, ob};
      gelu_vectors<4, kBackward>(i4, d4, o4);
      const float* i2[2] = {b + 16, b + 32};
      const float* d2[2] = {db + 16, db + 32};
      float* o2[2] = {ob + 16, ob + 32};
      gelu_vectors<2, kBackward>(i2, d2, o2);
    }
  }
  for (; r < rows; ++r) gelu_row<kBackward>(out + r * ldo, kBackward ? dout + r * ldd : nullptr, inp + r * ldi, cols);
}

}  // namespace

void gelu_forward(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  gelu_rows<false>(out, ldo, nullptr, 0, inp, ldi, rows, cols);
}

void gelu_backward(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi, int64_t rows,
                   int64_t cols) {
  gelu_rows<true>(dinp, ldd, dout, ldo, inp, ldi, rows, cols);
}

}  // namespace cmae::cpu::gelu_avx512
