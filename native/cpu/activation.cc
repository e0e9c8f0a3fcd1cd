// Element-wise activations (ops/activation.h). GELU is vectorised per ISA: the AVX2 + FMA path is
// here, the AVX-512 one in activation_avx512.cc; both are also the GEMM epilogue's (gemm_internal.h
// PostOp), so a fused and an unfused GELU give bit-identical results.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"
#include "core/threads.h"
#include "cpu/cpu_backend.h"
#include "cpu/gelu.h"

namespace cmae::cpu {

namespace {


// ---- vector math (AVX2 + FMA, 8 lanes) ----------------------------------------------------------

// e^x for x <= 0 (clamped below at -87: result ~1.6e-38). Cephes expf: x = n·ln2 + r, |r| <= ln2/2,
// degree-6 polynomial for e^r, then scaled by 2^n through the exponent bits. ~1 ulp.
inline __m256 exp_neg(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
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
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// Φ(x) = P(X <= x) for X ~ N(0,1), and e = e^{-x²/2}, which GELU's derivative needs as well:
//   erfc(t) = e^{-t²}·erfcx(t) with t = |x|/√2, so e^{-t²} = e; erfcx(t) = s·Q(s), s = 1/(1 + 0.3t),
//   Q a degree-8 polynomial in u = (s − s_min)/(1 − s_min)·2 − 1 fitted on t ∈ [0, 4.5] (relative
//   error 2.4e-8; erfcx is smooth and ~1/t in s, so few terms suffice); Φ = 1 − erfc/2 (x > 0) or
//   erfc/2 (x <= 0, no 1 + erf cancellation in the lower tail); erfc = 0 for t > 4.5 (true value <
//   2e-10), which also makes Φ(−88) exactly 0. One exponential and one polynomial over the whole
//   range, no branches: ~35 vector operations, against ~50 for the two-range erf/erfc it replaced
//   (and ~70 for the derivative, which needed a second exponential). Coefficients and the float32
//   error check: scripts/fit-gelu.py. Error vs float64 stays within 1e-7 abs + 3e-7 rel for GELU.
// s is a division here (rcp_ps has 12 bits); the AVX-512 twin uses rcp14 + a Newton step.
struct CdfExp {
  __m256 cdf;
  __m256 e;
};

inline CdfExp normal_cdf_exp(__m256 x) {
  const __m256 t = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(0.70710678118654752440f));
  const __m256 in_range = _mm256_cmp_ps(t, _mm256_set1_ps(4.5f), _CMP_LE_OQ);
  const __m256 e = _mm256_and_ps(in_range, exp_neg(_mm256_mul_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(-0.5f)))));
  const __m256 d = _mm256_fmadd_ps(_mm256_min_ps(t, _mm256_set1_ps(4.5f)), _mm256_set1_ps(0.3f), _mm256_set1_ps(1.0f));
  const __m256 s = _mm256_div_ps(_mm256_set1_ps(1.0f), d);
  const __m256 u = _mm256_fmadd_ps(s, _mm256_set1_ps(3.48148148148148148f), _mm256_set1_ps(-2.48148148148148148f));
  __m256 q = _mm256_set1_ps(-2.6610516250e-06f);
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-2.0295020931e-05f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(1.8332795950e-05f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(8.9014478190e-04f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(6.0155818544e-03f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(2.4523083188e-02f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(7.0943925523e-02f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(1.5264723779e-01f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(2.4498463791e-01f));  // Q/2: the 1/2 of Φ folded in
  const __m256 half_erfc = _mm256_mul_ps(e, _mm256_mul_ps(s, q));
  const __m256 positive = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
  // NaN x: t is NaN, so e = 0 and s, q stay finite (min gives 4.5): Φ is a number, but GELU =
  // x·Φ and GELU' = Φ + x·φ are NaN, as they must be (tested).
  return {_mm256_blendv_ps(half_erfc, _mm256_sub_ps(_mm256_set1_ps(1.0f), half_erfc), positive), e};
}

inline __m256 gelu8(__m256 x) { return _mm256_mul_ps(x, normal_cdf_exp(x).cdf); }

inline __m256 gelu_grad8(__m256 x) {
  // Φ(x) + x·φ(x), φ(x) = e^{-x²/2}/√(2π): one exponential serves both.
  const CdfExp ce = normal_cdf_exp(x);
  return _mm256_fmadd_ps(x, _mm256_mul_ps(ce.e, _mm256_set1_ps(0.39894228040143267794f)), ce.cdf);
}

// A partial vector goes through an 8-float buffer, so every element sees the same instructions.
inline __m256 load_n(const float* p, int n) {
  if (n == 8) return _mm256_loadu_ps(p);
  alignas(32) float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < n; ++k) tmp[k] = p[k];
  return _mm256_load_ps(tmp);
}

inline void store_n(float* p, __m256 v, int n) {
  if (n == 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  for (int k = 0; k < n; ++k) p[k] = tmp[k];
}

}  // namespace

namespace gelu_avx2 {

namespace {

// The structure of activation_avx512.cc's gelu_rows with 8-lane vectors: whole vectors in groups of 4,
// 2, 1 (independent chains the compiler interleaves), the partial tail through an 8-float buffer.
template <int G, bool kBackward>
inline void gelu_vectors(const float* in, const float* dout, float* out) {
  __m256 x[G];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) x[g] = _mm256_loadu_ps(in + 8 * g);
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
    if (kBackward) {
      _mm256_storeu_ps(out + 8 * g, _mm256_mul_ps(_mm256_loadu_ps(dout + 8 * g), gelu_grad8(x[g])));
    } else {
      _mm256_storeu_ps(out + 8 * g, gelu8(x[g]));
    }
  }
}

template <bool kBackward>
void gelu_rows(float* out, int64_t ldo, const float* dout, int64_t ldd, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = inp + r * ldi;
    const float* d = kBackward ? dout + r * ldd : nullptr;
    float* o = out + r * ldo;
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) gelu_vectors<4, kBackward>(in + c, kBackward ? d + c : nullptr, o + c);
    if (c + 16 <= cols) {
      gelu_vectors<2, kBackward>(in + c, kBackward ? d + c : nullptr, o + c);
      c += 16;
    }
    if (c + 8 <= cols) {
      gelu_vectors<1, kBackward>(in + c, kBackward ? d + c : nullptr, o + c);
      c += 8;
    }
    if (c < cols) {
      const int w = static_cast<int>(cols - c);
      const __m256 x = load_n(in + c, w);
      store_n(o + c, kBackward ? _mm256_mul_ps(load_n(d + c, w), gelu_grad8(x)) : gelu8(x), w);
    }
  }
}

}  // namespace

void gelu_forward(float* out, int64_t ldo, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  gelu_rows<false>(out, ldo, nullptr, 0, inp, ldi, rows, cols);
}

void gelu_backward(float* dinp, int64_t ldd, const float* dout, int64_t ldo, const float* inp, int64_t ldi, int64_t rows,
                   int64_t cols) {
  gelu_rows<true>(dinp, ldd, dout, ldo, inp, ldi, rows, cols);
}

}  // namespace gelu_avx2

void CpuBackend::gelu_forward(float* out, const float* inp, int64_t n) {
  const bool avx512 = current_isa() == Isa::AVX512;
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
    if (avx512) {
      gelu_avx512::gelu_forward(out + begin, 0, inp + begin, 0, 1, end - begin);
    } else {
      gelu_avx2::gelu_forward(out + begin, 0, inp + begin, 0, 1, end - begin);
    }
  });
}

void CpuBackend::gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  const bool avx512 = current_isa() == Isa::AVX512;
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
    if (avx512) {
      gelu_avx512::gelu_backward(dinp + begin, 0, dout + begin, 0, inp + begin, 0, 1, end - begin);
    } else {
      gelu_avx2::gelu_backward(dinp + begin, 0, dout + begin, 0, inp + begin, 0, 1, end - begin);
    }
  });
}

void CpuBackend::relu_forward(float* out, const float* inp, int64_t n) {
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
  });
}

void CpuBackend::relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_for(n, kMinElementsPerThread, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
  });
}

}  // namespace cmae::cpu
