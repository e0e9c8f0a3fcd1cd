// AVX-512 micro-kernel of the SGEMM family: 8 rows x 48 columns (24 zmm accumulators), plus 8 x 32
// and 8 x 16 variants for the narrowed last panel. Compiled with -mavx512f/bw/dq/vl and only called
// after current_isa() said the CPU has them (gemm.cc). Arithmetic contract: gemm_internal.h.
#include <immintrin.h>

#include <algorithm>

#include "cpu/gemm_internal.h"
#include "cpu/gemm_tile_avx512.h"

namespace cmae::cpu::gemm {
namespace {

// 8 x 48: 24 accumulators + 3 B vectors + 1 broadcast. MR = 8 makes packing op(A) one 8x8
// transpose per 8 k with no wasted lanes, and divides every row count of the model (tokens x
// batch, and the OC of the weight gradients); 48 divides most of its widths (48, 192, 576, 768).
constexpr int kMr = avx512_tile::kMr;
constexpr int kNv = 3;
constexpr int kNr = 16 * kNv;
constexpr int64_t kKc = 256;      // B micro-panel 48 KiB streams from L1/L2; A micro-panel 8 KiB
constexpr int64_t kMc = kMr * 24;  // A block 192 x 256 (192 KiB) stays in L2

// a: the packed A micro-panel (lda == 0), or op(A)'s first row of the tile itself, rows lda apart
// (lda > 0: unpacked; rows past m repeat row m-1 so every load stays inside A).
template <int NV>
inline void micro_avx512(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int m, int n,
                         const Epilogue& ep, const float* bias) {
  constexpr int W = 16 * NV;
  __m512 acc[kMr][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  avx512_tile::prefetch_c<NV>(c, ldc, m);

  if (lda == 0) {
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
      __m512 bv[NV];
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 8
      for (int r = 0; r < kMr; ++r) {
        const __m512 ar = _mm512_set1_ps(a[r]);
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
      }
      a += kMr;
      b += W;
    }
  } else {
    const float* rows[kMr];
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) rows[r] = a + std::min(r, m - 1) * lda;
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
      __m512 bv[NV];
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 8
      for (int r = 0; r < kMr; ++r) {
        const __m512 ar = _mm512_set1_ps(rows[r][k]);
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
      }
      b += W;
    }
  }

  avx512_tile::store<NV>(acc, c, ldc, m, n, ep, bias);
}

void macro_avx512(int64_t mc, int64_t nc, int64_t kc, const float* ap, int64_t lda, const float* bp, float* c, int64_t ldc,
                  const Epilogue& ep, const PrefetchPlan& next) {
  macro_loop<kMr, kNr, gelu_avx512::gelu_forward, gelu_avx512::gelu_backward>(
      mc, nc, c, ldc, ep, next, [&](int64_t i, int64_t j, int m, int n, const float* bias) {
        const float* a = lda ? ap + i * lda : ap + i * kc;
        if (n > 32) {
          micro_avx512<3>(kc, a, lda, bp + j * kc, c + i * ldc + j, ldc, m, n, ep, bias);
        } else if (n > 16) {
          micro_avx512<2>(kc, a, lda, bp + j * kc, c + i * ldc + j, ldc, m, n, ep, bias);
        } else {
          micro_avx512<1>(kc, a, lda, bp + j * kc, c + i * ldc + j, ldc, m, n, ep, bias);
        }
      });
}

const KernelSet kAvx512Kernels = {kMr, kNr, 16, kKc, kMc, 1536, true, false, macro_avx512};

}  // namespace

const KernelSet& avx512_kernels() { return kAvx512Kernels; }

}  // namespace cmae::cpu::gemm
