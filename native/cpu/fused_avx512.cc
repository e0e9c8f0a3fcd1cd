// AVX-512 (16-lane) twin of the vectorised GELU in fused.cc: the same formulas and constants, so
// results agree with the AVX2 path to rounding (they are not bit-identical across ISAs: the
// exponent rounding and blend instructions differ). Called only after run-time detection.
#include <immintrin.h>

// GCC 12 reports the undefined vectors inside some AVX-512 intrinsics (_mm512_abs_ps, masked moves).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>

#include "cpu/gelu_internal.h"

namespace cmae::cpu::fused_avx512 {

namespace {

// e^x for x <= 0 (clamped below at -87). Cephes expf as in fused.cc; the 2^n scaling by vscalefps.
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

// Φ(x) and e^{-x²/2}; the formulas of fused.cc's normal_cdf_exp (see there), with rcp14 + one
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

}  // namespace

// Elements [begin, end): full vectors, then one masked vector (masked-off lanes read as 0 and are
// not stored; every element goes through the same instructions).
void gelu_forward(float* out, const float* inp, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = tail_mask(end - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, inp + i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(x, normal_cdf_exp(x).cdf));
  }
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = tail_mask(end - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, inp + i);
    // Φ(x) + x·φ(x), φ(x) = e^{-x²/2}/√(2π): one exponential serves both.
    const CdfExp ce = normal_cdf_exp(x);
    const __m512 grad = _mm512_fmadd_ps(x, _mm512_mul_ps(ce.e, _mm512_set1_ps(0.39894228040143267794f)), ce.cdf);
    _mm512_mask_storeu_ps(dinp + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dout + i), grad));
  }
}

}  // namespace cmae::cpu::fused_avx512
