// SGEMM driver (BLIS/GotoBLAS loop nest), packing routines and the AVX2 6x16 micro-kernel.
// See gemm_internal.h for the packed layouts and the per-element arithmetic contract.
//
// Loop nest, per call:
//   for jc (NC columns of C):
//     for pc0 (a "super block" of several K blocks, sized so its packed B stays in L2/L3):
//       [parallel] pack op(B)[pc0.., jc..] into NR-wide micro-panels (shared, caller's buffer)
//       [parallel] each thread owns a rectangle of C (whole row range, or whole column range
//                  when that balances better) and for each K block, for each MC rows of its range:
//                  packs op(A) into MR-row micro-panels (thread-local; a row-major op(A) is read
//                  in place instead by the AVX-512 kernels), runs the macro-kernel.
// Each C element belongs to one rectangle and sees the K blocks in increasing order, each one a
// sequential FMA chain over k, so the result does not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

#include "core/cpu_features.h"
#include "core/errors.h"
#include "core/threads.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm_internal.h"
#include "cpu/scratch.h"

namespace cmae::cpu {
namespace gemm {
namespace {

// CpuBackend::set_matmul_precision: process-wide, like PyTorch's set_float32_matmul_precision.
std::atomic<int> g_matmul_precision{static_cast<int>(MatmulPrecision::FP32)};

MatmulPrecision precision() { return static_cast<MatmulPrecision>(g_matmul_precision.load(std::memory_order_relaxed)); }

// Packed B super block: about 2 MiB, so the panels packed by the first region are still cached
// when the second region uses them.
constexpr int64_t kPackedBBudget = int64_t{1} << 19;
// Work below which a parallel region costs more than it saves.
constexpr double kMinFlopsPerChunk = 1 << 20;
constexpr int64_t kMinPackPerChunk = int64_t{1} << 15;
constexpr int64_t kPackRows = 32;  // rows of a k-major B per packing unit

// ---- packing (AVX2; memory-bound, shared by both ISAs) -----------------------------------------

inline __m256i lane_mask(int n) {  // lanes [0, n) set, n in [0, 8]
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Stores lanes [0, n) of v, n in [1, 8], touching no memory beyond. Plain 256/128/64/32-bit stores:
// vmaskmovps stores are microcoded and slow on AMD Zen (masked loads are fine).
inline void store_lanes(float* d, __m256 v, int n) {
  if (n == 8) {
    _mm256_storeu_ps(d, v);
    return;
  }
  __m128 x = _mm256_castps256_ps128(v);
  if (n >= 4) {
    _mm_storeu_ps(d, x);
    x = _mm256_extractf128_ps(v, 1);
    d += 4;
    n -= 4;
  }
  if (n >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(d), x);
    x = _mm_movehl_ps(x, x);
    d += 2;
    n -= 2;
  }
  if (n == 1) _mm_store_ss(d, x);
}

inline void transpose8(__m256 x[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(x[0], x[1]), t1 = _mm256_unpackhi_ps(x[0], x[1]);
  const __m256 t2 = _mm256_unpacklo_ps(x[2], x[3]), t3 = _mm256_unpackhi_ps(x[2], x[3]);
  const __m256 t4 = _mm256_unpacklo_ps(x[4], x[5]), t5 = _mm256_unpackhi_ps(x[4], x[5]);
  const __m256 t6 = _mm256_unpacklo_ps(x[6], x[7]), t7 = _mm256_unpackhi_ps(x[6], x[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  x[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  x[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  x[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  x[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  x[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  x[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  x[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  x[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// ---- k-major sources (Aᵀ stored [K, M], B stored [K, N]): element (k, c) at src[k*ld + c] --------
// Rows k in [k_begin, k_end) of a block of `cols` columns and K extent kc are packed into panels of
// width w (p-th panel at dst + p*w*kc, row k at + k*w); the last panel, if partial, has width
// last_w >= its valid columns and is zero padded. Each source row is read once, left to right
// (reading one panel's strip down all k would touch a new cache line and page per row).

template <int W>
inline void copy_row(float* d, const float* s) {
  int g = 0;
  for (; g + 8 <= W; g += 8) _mm256_storeu_ps(d + g, _mm256_loadu_ps(s + g));
  if (W - g >= 4) {
    _mm_storeu_ps(d + g, _mm_loadu_ps(s + g));
    g += 4;
  }
  if (W - g >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(d + g), _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(s + g)));
    g += 2;
  }
  if (W - g >= 1) d[g] = s[g];
}

// Valid columns [0, valid) of a row into a panel row of width w, zeros beyond.
inline void copy_row_partial(float* d, const float* s, int valid, int w) {
  for (int g = 0; g < w; g += 8) {
    store_lanes(d + g, _mm256_maskload_ps(s + g, lane_mask(std::clamp(valid - g, 0, 8))), std::min(8, w - g));
  }
}

template <int W>
void pack_kmajor_w(float* dst, const float* src, int64_t ld, int64_t k_begin, int64_t k_end, int64_t kc, int64_t cols,
                   int last_w) {
  const int64_t full = cols / W;
  const int rem = static_cast<int>(cols - full * W);
  float* last = dst + full * W * kc;
  for (int64_t k = k_begin; k < k_end; ++k) {
    const float* s = src + k * ld;
    for (int64_t p = 0; p < full; ++p) copy_row<W>(dst + p * W * kc + k * W, s + p * W);
    if (rem > 0) copy_row_partial(last + k * last_w, s + full * W, rem, last_w);
  }
}

void pack_kmajor(float* dst, const float* src, int64_t ld, int64_t k_begin, int64_t k_end, int64_t kc, int64_t cols, int w,
                 int last_w) {
  switch (w) {  // the MR and NR of both kernel sets; anything else takes the generic loop below
    case 6: return pack_kmajor_w<6>(dst, src, ld, k_begin, k_end, kc, cols, last_w);
    case 8: return pack_kmajor_w<8>(dst, src, ld, k_begin, k_end, kc, cols, last_w);
    case 16: return pack_kmajor_w<16>(dst, src, ld, k_begin, k_end, kc, cols, last_w);
    case 48: return pack_kmajor_w<48>(dst, src, ld, k_begin, k_end, kc, cols, last_w);
    default: break;
  }
  const int64_t panels = (cols + w - 1) / w;
  for (int64_t k = k_begin; k < k_end; ++k) {
    for (int64_t p = 0; p < panels; ++p) {
      const int valid = static_cast<int>(std::min<int64_t>(w, cols - p * w));
      copy_row_partial(dst + p * w * kc + k * (valid == w ? w : last_w), src + k * ld + p * w, valid, valid == w ? w : last_w);
    }
  }
}

// ---- k-contiguous sources (A stored [M, K], Bᵀ stored [N, K]) -----------------------------------

// dst[k*w + r] = src[r*ld + k] for r < valid, 0 for valid <= r < w; k < kc. (8x8 transposes)
void pack_cols(float* dst, const float* src, int64_t ld, int64_t kc, int w, int valid) {
  for (int g = 0; g < w; g += 8) {
    const int lanes = std::min(8, w - g);
    const int v = std::clamp(valid - g, 0, 8);
    float* d = dst + g;
    if (v == 0) {
      for (int64_t k = 0; k < kc; ++k) store_lanes(d + k * w, _mm256_setzero_ps(), lanes);
      continue;
    }
    const float* rows[8];
    for (int r = 0; r < 8; ++r) rows[r] = src + (g + std::min(r, v - 1)) * ld;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 x[8];
      for (int r = 0; r < 8; ++r) x[r] = r < v ? _mm256_loadu_ps(rows[r] + k) : _mm256_setzero_ps();
      transpose8(x);
      if (lanes == 8) {
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(d + (k + j) * w, x[j]);
      } else {
        for (int j = 0; j < 8; ++j) store_lanes(d + (k + j) * w, x[j], lanes);
      }
    }
    for (; k < kc; ++k) {
      for (int r = 0; r < lanes; ++r) d[k * w + r] = r < v ? rows[r][k] : 0.0f;
    }
  }
}

// The epilogue's post-op with each ISA's vector GELU.
constexpr auto apply_post_avx2 = apply_post<gelu_avx2::gelu_forward, gelu_avx2::gelu_backward>;
constexpr auto apply_post_avx512 = apply_post<gelu_avx512::gelu_forward, gelu_avx512::gelu_backward>;

// ---- AVX2 micro-kernel: 6 rows x (8*NV) columns, 12 accumulators -------------------------------

constexpr int kMr2 = 6;
constexpr int kNr2 = 16;

template <int NV>
inline void micro_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
                       const Epilogue& ep, const float* bias) {
  constexpr int W = 8 * NV;
  __m256 acc[kMr2][NV];
#pragma GCC unroll 6
  for (int r = 0; r < kMr2; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int r = 0; r < m; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 6
    for (int r = 0; r < kMr2; ++r) {
      const __m256 ar = _mm256_broadcast_ss(a + r);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
    }
    a += kMr2;
    b += W;
  }

  // v = fma(alpha, acc, t), t = beta*c [+ bias] or bias or 0 (gemm_internal.h).
  const __m256 valpha = _mm256_set1_ps(ep.alpha);
  const __m256 vbeta = _mm256_set1_ps(ep.beta);
  const bool read_c = ep.beta != 0.0f;
  __m256i mask[NV];
  __m256 vbias[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    mask[v] = lane_mask(std::clamp(n - 8 * v, 0, 8));
    vbias[v] = bias ? _mm256_maskload_ps(bias + 8 * v, mask[v]) : _mm256_setzero_ps();
  }
  const bool full = n == W;
#pragma GCC unroll 6
  for (int r = 0; r < kMr2; ++r) {
    if (r >= m) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      __m256 t = vbias[v];
      if (read_c) {
        const __m256 cv = full ? _mm256_loadu_ps(cr + 8 * v) : _mm256_maskload_ps(cr + 8 * v, mask[v]);
        t = bias ? _mm256_fmadd_ps(vbeta, cv, t) : _mm256_mul_ps(vbeta, cv);
      }
      const __m256 out = _mm256_fmadd_ps(valpha, acc[r][v], t);
      if (full) {
        _mm256_storeu_ps(cr + 8 * v, out);
      } else if (n > 8 * v) {
        store_lanes(cr + 8 * v, out, std::min(8, n - 8 * v));
      }
    }
  }
}

void macro_avx2(int64_t mc, int64_t nc, int64_t kc, const float* ap, int64_t /*lda: always packed*/, const float* bp, float* c,
                int64_t ldc, const Epilogue& ep, const PrefetchPlan& next) {
  macro_loop<kMr2, kNr2, gelu_avx2::gelu_forward, gelu_avx2::gelu_backward>(
      mc, nc, c, ldc, ep, next, [&](int64_t i, int64_t j, int m, int n, const float* bias) {
        if (n > 8) {
          micro_avx2<2>(kc, ap + i * kc, bp + j * kc, c + i * ldc + j, ldc, m, n, ep, bias);
        } else {
          micro_avx2<1>(kc, ap + i * kc, bp + j * kc, c + i * ldc + j, ldc, m, n, ep, bias);
        }
      });
}

// ---- driver -------------------------------------------------------------------------------------

// K block size: balanced blocks of at most kc_target, a multiple of 8 (the transpose width) when
// K needs several. Depends only on K and the ISA, never on the thread count.
int64_t k_block_size(int64_t K, int64_t kc_target) {
  if (K <= kc_target) return K;
  const int64_t blocks = (K + kc_target - 1) / kc_target;
  return round_up((K + blocks - 1) / blocks, 8);
}

// C = beta*C [+ bias] when there is nothing to multiply (K == 0 or alpha == 0).
void scale_only(int64_t M, int64_t N, float* C, int64_t ldc, const Epilogue& ep) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) {
      const float bias = ep.col_bias ? ep.col_bias[j] : 0.0f;
      c[j] = ep.beta == 0.0f ? bias : (ep.col_bias ? std::fma(ep.beta, c[j], bias) : ep.beta * c[j]);
    }
  }
}

const KernelSet kAvx2Kernels = {kMr2, kNr2, 8, 256, kMr2 * 24, 1536, false, false, macro_avx2};

}  // namespace

const KernelSet& avx2_kernels() { return kAvx2Kernels; }


void gemm_run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, const Epilogue& ep) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || ep.alpha == 0.0f) {
    scale_only(M, N, C, ldc, ep);
    if (ep.post != PostOp::None) {
      if (current_isa() == Isa::AVX512) {
        apply_post_avx512(ep, C, ldc, M, N);
      } else {
        apply_post_avx2(ep, C, ldc, M, N);
      }
    }
    return;
  }
  const bool avx512 = current_isa() == Isa::AVX512;
  const KernelSet& ks = !avx512 ? avx2_kernels() : precision() == MatmulPrecision::BF16 ? avx512_bf16_kernels() : avx512_kernels();
  const bool bf16 = ks.bf16;
  const int64_t mr = ks.mr, nr = ks.nr;
  const int64_t kc_size = k_block_size(K, ks.kc);
  const int threads = available_threads();
  // A row-major op(A) is read in place by kernels that can (AVX-512): its rows are contiguous in k
  // already, and packing them cost a pass over A from DRAM that the micro-kernel's own streaming
  // loads overlap with the FMAs (measured +3-5 % on the K = 512-768 products, +1-1.5 % per step).
  const bool direct_a = ks.direct_a && !trans_a;
  // Largest A block of either ISA, so the per-thread buffer is sized once.
  const size_t packed_a_floats = static_cast<size_t>(std::max(avx2_kernels().mc * avx2_kernels().kc,
                                                              avx512_kernels().mc * avx512_kernels().kc));
  // Per-thread packed A blocks, taken before any parallel region (cpu/scratch.h).
  const PerThreadScratch<float> packed_a(ScratchSlot::GemmPackedA, packed_a_floats);
  const PerThreadScratch<float> packed_a16(ScratchSlot::GemmPackedA16, bf16 ? packed_a_floats : 0);

  for (int64_t jc = 0; jc < N; jc += ks.nc) {
    const int64_t nc = std::min(ks.nc, N - jc);
    const int64_t ncp = packed_width(nc, ks.nr, ks.nr_min);
    const int64_t panels = (nc + nr - 1) / nr;
    const int64_t blocks_per_super = std::max<int64_t>(1, kPackedBBudget / (kc_size * ncp));
    const int64_t super_k = blocks_per_super * kc_size;
    float* bp = scratch<float>(ScratchSlot::GemmPackedB, static_cast<size_t>(std::min(super_k, K) * ncp));
    // bf16: each K block's panels again as pairs, kcp_size = ceil(kc_size / 2) pair rows per block.
    const int64_t kcp_size = (kc_size + 1) / 2;
    uint32_t* bp16 = bf16 ? scratch<uint32_t>(ScratchSlot::GemmPackedB16, static_cast<size_t>(blocks_per_super * kcp_size * ncp)) : nullptr;

    // Split C across threads: row ranges (each thread packs only its own rows of A) unless column
    // ranges give a clearly (> 1/8) better balance of micro-tiles (few rows, many columns); with a
    // column split every thread packs all of A.
    const int64_t m_tiles = (M + mr - 1) / mr;
    const int64_t t = std::max(threads, 1);
    const int64_t cost_rows = (m_tiles + t - 1) / t * panels;
    const int64_t cost_cols = (panels + t - 1) / t * m_tiles;
    const bool split_cols = threads > 1 && 8 * cost_cols < 7 * cost_rows;

    for (int64_t pc0 = 0; pc0 < K; pc0 += super_k) {
      const int64_t k_len = std::min(super_k, K - pc0);
      const int64_t k_blocks = (k_len + kc_size - 1) / kc_size;

      if (trans_b) {
        // Bᵀ stored [N, K]: one unit per (K block, panel), transposed from W rows contiguous in k.
        const int64_t pack_units = k_blocks * panels;
        const int64_t pack_chunk = std::max<int64_t>(1, kMinPackPerChunk / (kc_size * nr));
        parallel_for(pack_units, pack_chunk, [&](int64_t begin, int64_t end) {
          for (int64_t u = begin; u < end; ++u) {
            const int64_t kb = u / panels, p = u % panels;
            const int64_t pc = pc0 + kb * kc_size;
            const int64_t kc = std::min(kc_size, K - pc);
            const int64_t col = p * nr;
            const int cols = static_cast<int>(std::min(nr, nc - col));
            const int w = panel_width(cols, ks.nr, ks.nr_min);
            pack_cols(bp + kb * kc_size * ncp + col * kc, B + (jc + col) * ldb + pc, ldb, kc, w, cols);
            if (bf16) to_bf16_pairs(bp16 + kb * kcp_size * ncp + col * ((kc + 1) / 2), bp + kb * kc_size * ncp + col * kc, 0, kc, kc, w);
          }
        });
      } else {
        // B stored [K, N]: one unit per (K block, kPackRows rows), all panels row by row.
        const int64_t chunks = (kc_size + kPackRows - 1) / kPackRows;
        const int64_t last_w = panel_width(nc - (panels - 1) * nr, ks.nr, ks.nr_min);
        const int64_t pack_chunk = std::max<int64_t>(1, kMinPackPerChunk / (kPackRows * ncp));
        parallel_for(k_blocks * chunks, pack_chunk, [&](int64_t begin, int64_t end) {
          for (int64_t u = begin; u < end; ++u) {
            const int64_t kb = u / chunks, r = u % chunks;
            const int64_t pc = pc0 + kb * kc_size;
            const int64_t kc = std::min(kc_size, K - pc);
            const int64_t k0 = r * kPackRows, k1 = std::min(kc, k0 + kPackRows);
            if (k0 < k1) {
              pack_kmajor(bp + kb * kc_size * ncp, B + pc * ldb + jc, ldb, k0, k1, kc, nc, ks.nr, static_cast<int>(last_w));
              if (bf16) {
                for (int64_t p = 0; p < panels; ++p) {
                  to_bf16_pairs(bp16 + kb * kcp_size * ncp + p * nr * ((kc + 1) / 2), bp + kb * kc_size * ncp + p * nr * kc, k0, k1, kc,
                                p + 1 < panels ? ks.nr : static_cast<int>(last_w));
                }
              }
            }
          }
        });
      }

      // One rectangle [m0, m1) x [n0, n1) of this jc block: all K blocks of the super block.
      auto compute = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
        float* ap = packed_a.thread_slice();
        for (int64_t kb = 0; kb < k_blocks; ++kb) {
          const int64_t pc = pc0 + kb * kc_size;
          const int64_t kc = std::min(kc_size, K - pc);
          const bool last = pc + kc == K;
          Epilogue block_ep = ep;  // bias and post-op on the last K block only
          block_ep.beta = pc == 0 ? ep.beta : 1.0f;
          block_ep.col_bias = last && ep.col_bias ? ep.col_bias + jc + n0 : nullptr;
          if (!last) block_ep.post = PostOp::None;
          const float* b_block = bf16 ? reinterpret_cast<const float*>(bp16 + kb * kcp_size * ncp + n0 * ((kc + 1) / 2))
                                      : bp + kb * kc_size * ncp + n0 * kc;
          for (int64_t ic = m0; ic < m1; ic += ks.mc) {
            const int64_t mc = std::min(ks.mc, m1 - ic);
            // The block packed after this one: the next rows, else the first rows of the next K block.
            PrefetchPlan next;
            int64_t next_ic = ic + ks.mc, next_pc = pc, next_kc = kc;
            if (next_ic >= m1) {
              next_ic = m0;
              next_pc = pc + kc;
              next_kc = std::min(kc_size, K - next_pc);
            }
            if (next_pc < pc0 + k_len) {
              const int64_t next_mc = std::min(ks.mc, m1 - next_ic);
              const float* base = trans_a ? A + next_pc * lda + next_ic : A + next_ic * lda + next_pc;
              next = PrefetchPlan{reinterpret_cast<const char*>(base), lda * static_cast<int64_t>(sizeof(float)),
                                  trans_a ? next_kc : next_mc,
                                  (trans_a ? next_mc : next_kc) * static_cast<int64_t>(sizeof(float))};
            }
            if (trans_a) {
              pack_kmajor(ap, A + pc * lda + ic, lda, 0, kc, kc, mc, ks.mr, ks.mr);
            } else if (!direct_a) {
              for (int64_t q = 0; q * mr < mc; ++q) {
                const int64_t row = ic + q * mr;
                pack_cols(ap + q * mr * kc, A + row * lda + pc, lda, kc, ks.mr, static_cast<int>(std::min(mr, m1 - row)));
              }
            }
            const float* a_block = direct_a ? A + ic * lda + pc : ap;
            if (bf16) {  // the packed float32 micro-panels as bf16 pairs
              uint32_t* ap16 = reinterpret_cast<uint32_t*>(packed_a16.thread_slice());
              for (int64_t q = 0; q * mr < mc; ++q) to_bf16_pairs(ap16 + q * mr * ((kc + 1) / 2), ap + q * mr * kc, 0, kc, kc, ks.mr);
              a_block = reinterpret_cast<const float*>(ap16);
            }
            ks.macro(mc, n1 - n0, kc, a_block, direct_a ? lda : 0, b_block, C + ic * ldc + jc + n0, ldc,
                     block_ep.post_at(ic, jc + n0), next);
          }
        }
      };

      if (split_cols) {
        const double unit_flops = 2.0 * static_cast<double>(nr) * static_cast<double>(M) * static_cast<double>(k_len);
        const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(kMinFlopsPerChunk / unit_flops));
        parallel_for(panels, chunk, [&](int64_t begin, int64_t end) {
          compute(0, M, begin * nr, std::min(nc, end * nr));
        });
      } else {
        const double unit_flops = 2.0 * static_cast<double>(mr) * static_cast<double>(nc) * static_cast<double>(k_len);
        const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(kMinFlopsPerChunk / unit_flops));
        parallel_for(m_tiles, chunk, [&](int64_t begin, int64_t end) {
          compute(begin * mr, std::min(M, end * mr), 0, nc);
        });
      }
    }
  }
}

}  // namespace gemm

void CpuBackend::set_matmul_precision(MatmulPrecision precision) {
  CMAE_CHECK(precision != MatmulPrecision::TF32, Value, "the cpu backend has no tf32 matmuls (expected 'fp32' or 'bf16')");
  CMAE_CHECK(precision != MatmulPrecision::BF16 || cpu_supports_avx512_bf16(), Value,
             "bf16 matmuls need a CPU with AVX512_BF16 (vdpbf16ps); this one has not");
  gemm::g_matmul_precision.store(static_cast<int>(precision), std::memory_order_relaxed);
}

MatmulPrecision CpuBackend::matmul_precision() const { return gemm::precision(); }

void CpuBackend::sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm::gemm_run(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, gemm::Epilogue{alpha, beta, nullptr});
}

}  // namespace cmae::cpu
