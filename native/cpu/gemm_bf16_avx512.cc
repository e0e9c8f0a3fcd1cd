// Opt-in bf16 kernels of the SGEMM family (linear.h MatmulPrecision::BF16): an 8 x 48 micro-kernel
// on vdpbf16ps, and the conversion of packed float32 panels into bf16 pairs. Compiled with
// -mavx512bf16 (this file matches *_avx512.cc) and only called after cpu_supports_avx512_bf16().
//
// Packed bf16 layout (from the float32 panels of gemm_internal.h): k is taken in pairs; the pair
// (k = 2j, 2j+1) of column c of a panel of width w is one 32-bit word at dst[j*w + c], low half =
// bf16(k = 2j), high half = bf16(k = 2j+1) (0 past an odd K). vdpbf16ps with a broadcast pair of
// A and a vector of B pairs then adds A(r,2j)·B(2j,c) + A(r,2j+1)·B(2j+1,c) to lane c in float32.
// Every C element is still one fixed chain over k (in pairs), so results do not depend on the
// thread count.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpu/gemm_internal.h"
#include "cpu/gemm_tile_avx512.h"

namespace cmae::cpu::gemm {
namespace {

constexpr int kMr = avx512_tile::kMr;
constexpr int kNv = 3;
constexpr int kNr = 16 * kNv;
constexpr int64_t kKc = 256;  // even: whole pairs in every K block but the last of an odd K
constexpr int64_t kMc = kMr * 24;

// a: kcp pairs x 8 rows (a[j*8 + r]); b: kcp pairs x W columns (b[j*W + c]).
template <int NV>
inline void micro_bf16(int64_t kcp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int m, int n, const Epilogue& ep,
                       const float* bias) {
  constexpr int W = 16 * NV;
  __m512 acc[kMr][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  avx512_tile::prefetch_c<NV>(c, ldc, m);
#pragma GCC unroll 4
  for (int64_t j = 0; j < kcp; ++j) {
    __m512bh bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], ar, bv[v]);
    }
    a += kMr;
    b += W;
  }
  avx512_tile::store<NV>(acc, c, ldc, m, n, ep, bias);
}

// a and b are the bf16-pair panels (passed as float* through the MacroKernel signature); kc is the
// block's K extent in elements.
void macro_bf16(int64_t mc, int64_t nc, int64_t kc, const float* ap, int64_t /*lda: always packed*/, const float* bp, float* c,
                int64_t ldc, const Epilogue& ep, const PrefetchPlan& next) {
  const int64_t kcp = (kc + 1) / 2;
  const uint32_t* a16 = reinterpret_cast<const uint32_t*>(ap);
  const uint32_t* b16 = reinterpret_cast<const uint32_t*>(bp);
  macro_loop<kMr, kNr, gelu_avx512::gelu_forward, gelu_avx512::gelu_backward>(
      mc, nc, c, ldc, ep, next, [&](int64_t i, int64_t j, int m, int n, const float* bias) {
        if (n > 32) {
          micro_bf16<3>(kcp, a16 + i * kcp, b16 + j * kcp, c + i * ldc + j, ldc, m, n, ep, bias);
        } else if (n > 16) {
          micro_bf16<2>(kcp, a16 + i * kcp, b16 + j * kcp, c + i * ldc + j, ldc, m, n, ep, bias);
        } else {
          micro_bf16<1>(kcp, a16 + i * kcp, b16 + j * kcp, c + i * ldc + j, ldc, m, n, ep, bias);
        }
      });
}

const KernelSet kBf16Kernels = {kMr, kNr, 16, kKc, kMc, 1536, false, true, macro_bf16};

}  // namespace

const KernelSet& avx512_bf16_kernels() { return kBf16Kernels; }

void to_bf16_pairs(uint32_t* dst, const float* src, int64_t k0, int64_t k1, int64_t kc, int w) {
  // 16-bit lane 2c <- lane c (row k), lane 2c+1 <- lane 16+c (row k+1) of a cvtne2ps result.
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                                              20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int64_t k = k0; k < k1; k += 2) {
    const float* even = src + k * w;
    const float* odd = k + 1 < kc ? src + (k + 1) * w : nullptr;
    uint32_t* d = dst + (k / 2) * w;
    for (int c = 0; c < w; c += 32) {
      const int n0 = std::min(16, w - c), n1 = std::clamp(w - c - 16, 0, 16);
      const __m512 e0 = _mm512_maskz_loadu_ps(avx512_tile::lane_mask16(n0), even + c);
      const __m512 e1 = _mm512_maskz_loadu_ps(avx512_tile::lane_mask16(n1), even + c + 16);
      const __m512 o0 = odd ? _mm512_maskz_loadu_ps(avx512_tile::lane_mask16(n0), odd + c) : _mm512_setzero_ps();
      const __m512 o1 = odd ? _mm512_maskz_loadu_ps(avx512_tile::lane_mask16(n1), odd + c + 16) : _mm512_setzero_ps();
      // cvtne2ps: lanes 0..15 = bf16(second operand), 16..31 = bf16(first); round to nearest even.
      const __m512i lo = (__m512i)_mm512_cvtne2ps_pbh(o0, e0);
      const __m512i hi = (__m512i)_mm512_cvtne2ps_pbh(o1, e1);
      _mm512_mask_storeu_epi32(d + c, avx512_tile::lane_mask16(n0), _mm512_permutexvar_epi16(interleave, lo));
      if (n1 > 0) _mm512_mask_storeu_epi32(d + c + 16, avx512_tile::lane_mask16(n1), _mm512_permutexvar_epi16(interleave, hi));
    }
  }
}

}  // namespace cmae::cpu::gemm
