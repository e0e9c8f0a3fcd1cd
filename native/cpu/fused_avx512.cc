// AVX-512 (16-lane) twin of the vectorised GELU in fused.cc: the same formulas and constants, so
// results agree with the AVX2 path to rounding (they are not bit-identical across ISAs: the
// exponent rounding and blend instructions differ). Called only after run-time detection.
#include <immintrin.h>

// GCC 12 reports the undefined vectors inside some AVX-512 intrinsics (_mm512_abs_ps, masked moves).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>

namespace cmae::cpu::fused_avx512 {

namespace {

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
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

inline __m512 normal_cdf(__m512 x) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f));
  const __m512 t = _mm512_abs_ps(z);
  const __m512 s = _mm512_mul_ps(z, z);
  __m512 a = _mm512_set1_ps(7.847382556830373e-05f);
  a = _mm512_fmadd_ps(a, s, _mm512_set1_ps(-8.008229887915136e-04f));
  a = _mm512_fmadd_ps(a, s, _mm512_set1_ps(5.188104028703705e-03f));
  a = _mm512_fmadd_ps(a, s, _mm512_set1_ps(-2.685369423481354e-02f));
  a = _mm512_fmadd_ps(a, s, _mm512_set1_ps(1.1283582341366158e-01f));
  a = _mm512_fmadd_ps(a, s, _mm512_set1_ps(-3.7612625579393816e-01f));
  a = _mm512_fmadd_ps(a, s, _mm512_set1_ps(1.1283791656937683f));
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 phi_small = _mm512_fmadd_ps(_mm512_mul_ps(z, a), half, half);
  const __m512 tc = _mm512_min_ps(t, _mm512_set1_ps(4.5f));
  const __m512 u = _mm512_mul_ps(_mm512_sub_ps(tc, _mm512_set1_ps(2.7f)), _mm512_set1_ps(1.0f / 1.8f));
  __m512 b = _mm512_set1_ps(1.8251123039e-05f);
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(-1.5521308265e-04f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(6.3783491468e-04f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(-2.0865432969e-03f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(6.3877919216e-03f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(-1.8758904741e-02f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(5.4136471083e-02f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(-1.6225729454e-01f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(5.9665518656e-01f));
  b = _mm512_fmadd_ps(b, u, _mm512_set1_ps(1.6251907146e+00f));
  const __m512 half_erfc = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, _mm512_set1_ps(4.5f), _CMP_LE_OQ),
                                               _mm512_mul_ps(half, exp_neg(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_fmadd_ps(tc, tc, b)))));
  const __mmask16 positive = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
  const __m512 phi_large = _mm512_mask_blend_ps(positive, half_erfc, _mm512_sub_ps(_mm512_set1_ps(1.0f), half_erfc));
  const __mmask16 small = _mm512_cmp_ps_mask(t, _mm512_set1_ps(0.9f), _CMP_LT_OQ);
  const __m512 phi = _mm512_mask_blend_ps(small, phi_large, phi_small);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(nan, phi, x);
}

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

}  // namespace

// Elements [begin, end): full vectors, then one masked vector (masked-off lanes read as 0 and are
// not stored; every element goes through the same instructions).
void gelu_forward(float* out, const float* inp, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = tail_mask(end - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, inp + i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(x, normal_cdf(x)));
  }
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = tail_mask(end - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, inp + i);
    const __m512 e = exp_neg(_mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(-0.5f)));
    const __m512 pdf = _mm512_mul_ps(e, _mm512_set1_ps(0.39894228040143267794f));
    const __m512 grad = _mm512_fmadd_ps(x, pdf, normal_cdf(x));
    _mm512_mask_storeu_ps(dinp + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dout + i), grad));
  }
}

}  // namespace cmae::cpu::fused_avx512
