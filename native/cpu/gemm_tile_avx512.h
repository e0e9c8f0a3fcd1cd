// Pieces shared by the AVX-512 micro-kernels (gemm_avx512.cc: float32, gemm_bf16_avx512.cc: bf16):
// the store of an 8 x (16*NV) accumulator tile through the epilogue of gemm_internal.h. Include
// only from translation units compiled with AVX-512 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm_internal.h"

namespace cmae::cpu::gemm::avx512_tile {

constexpr int kMr = 8;  // rows of every AVX-512 micro-tile

inline __mmask16 lane_mask16(int64_t n) {  // lanes [0, n) set
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1);
}

// Prefetches the C rows of a tile before its K loop (they are read or written at the end).
template <int NV>
inline void prefetch_c(const float* c, int64_t ldc, int m) {
  for (int r = 0; r < m; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * v), _MM_HINT_T0);
  }
}

// Rows [0, m) x columns [0, n) of the tile: c = fma(alpha, acc, t), t = beta*c [+ bias] or bias or 0.
template <int NV>
inline void store(__m512 (&acc)[kMr][NV], float* c, int64_t ldc, int m, int n, const Epilogue& ep, const float* bias) {
  const __m512 valpha = _mm512_set1_ps(ep.alpha);
  const __m512 vbeta = _mm512_set1_ps(ep.beta);
  const bool read_c = ep.beta != 0.0f;
  __mmask16 mask[NV];
  __m512 vbias[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v) {
    mask[v] = lane_mask16(n - 16 * v);
    vbias[v] = bias ? _mm512_maskz_loadu_ps(mask[v], bias + 16 * v) : _mm512_setzero_ps();
  }
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    if (r >= m) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      __m512 t = vbias[v];
      if (read_c) {
        const __m512 cv = _mm512_maskz_loadu_ps(mask[v], cr + 16 * v);
        t = bias ? _mm512_fmadd_ps(vbeta, cv, t) : _mm512_mul_ps(vbeta, cv);
      }
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], _mm512_fmadd_ps(valpha, acc[r][v], t));
    }
  }
}

}  // namespace cmae::cpu::gemm::avx512_tile
