// SGEMM driver (BLIS/GotoBLAS loop nest), packing routines and the 6x16 micro-kernel on 8-lane
// vectors, in each compile target (cpu/target.h: AVX2 + FMA, or portable); in the avx2 build the
// driver also runs the AVX-512 kernel sets (gemm_avx512.cc, gemm_bf16_avx512.cc) on that path.
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
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/cpu_features.h"
#include "core/errors.h"
#include "core/threads.h"
#include "cpu/target.h"
// after cpu/target.h: its target part needs CMAE_CPU_TARGET
#include "cpu/gemm_internal.h"
#include "cpu/scratch.h"

namespace cmae::cpu::CMAE_CPU_TARGET {
namespace gemm {
namespace {

// Packed B super block: about 2 MiB, so the panels packed by the first region are still cached
// when the second region uses them.
constexpr int64_t kPackedBBudget = int64_t{1} << 19;
// Work below which a parallel region costs more than it saves.
constexpr double kMinFlopsPerChunk = 1 << 20;
constexpr int64_t kMinPackPerChunk = int64_t{1} << 15;
constexpr int64_t kPackRows = 32;  // rows of a k-major B per packing unit

// ---- packing (memory-bound; the avx2 build's packing also serves the AVX-512 kernels) ------------

// ---- k-major sources (Aᵀ stored [K, M], B stored [K, N]): element (k, c) at src[k*ld + c] --------
// Rows k in [k_begin, k_end) of a block of `cols` columns and K extent kc are packed into panels of
// width w (p-th panel at dst + p*w*kc, row k at + k*w); the last panel, if partial, has width
// last_w >= its valid columns and is zero padded. Each source row is read once, left to right
// (reading one panel's strip down all k would touch a new cache line and page per row).

template <int W>
inline void copy_row(float* d, const float* s) {
  std::memcpy(d, s, W * sizeof(float));  // a constant size: the compiler's widest moves
}

// Valid columns [0, valid) of a row into a panel row of width w, zeros beyond.
inline void copy_row_partial(float* d, const float* s, int valid, int w) {
  for (int g = 0; g < w; g += 8) {
    Vec::store_first(d + g, Vec::load_first(s + g, std::clamp(valid - g, 0, 8)), std::min(8, w - g));
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
      for (int64_t k = 0; k < kc; ++k) Vec::store_first(d + k * w, Vec::zero(), lanes);
      continue;
    }
    const float* rows[8];
    for (int r = 0; r < 8; ++r) rows[r] = src + (g + std::min(r, v - 1)) * ld;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      Vec::Reg x[8];
      for (int r = 0; r < 8; ++r) x[r] = r < v ? Vec::loadu(rows[r] + k) : Vec::zero();
      Vec::transpose(x);
      if (lanes == 8) {
        for (int j = 0; j < 8; ++j) Vec::storeu(d + (k + j) * w, x[j]);
      } else {
        for (int j = 0; j < 8; ++j) Vec::store_first(d + (k + j) * w, x[j], lanes);
      }
    }
    for (; k < kc; ++k) {
      for (int r = 0; r < lanes; ++r) d[k * w + r] = r < v ? rows[r][k] : 0.0f;
    }
  }
}

// The epilogue's post-op with this target's vector GELU (and, in the avx2 build, AVX-512's).
constexpr auto apply_post_target = apply_post<gelu_rows::gelu_forward, gelu_rows::gelu_backward>;
#if defined(CMAE_CPU_TARGET_AVX2)
constexpr auto apply_post_avx512 = apply_post<gelu_avx512::gelu_forward, gelu_avx512::gelu_backward>;
#endif

// ---- micro-kernel: 6 rows x (8*NV) columns, 12 accumulators -----------------------------------

constexpr int kMr = 6;
constexpr int kNr = 16;

template <int NV>
inline void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, const Epilogue& ep,
                         const float* bias) {
  constexpr int W = 8 * NV;
  Vec::Reg acc[kMr][NV];
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec::zero();
  for (int r = 0; r < m; ++r) __builtin_prefetch(c + r * ldc, 0, 3);  // to L1 (prefetcht0 on x86)

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    Vec::Reg bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = Vec::loadu(b + 8 * v);
#pragma GCC unroll 6
    for (int r = 0; r < kMr; ++r) {
      const Vec::Reg ar = Vec::broadcast(a + r);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = Vec::fmadd(ar, bv[v], acc[r][v]);
    }
    a += kMr;
    b += W;
  }

  // v = fma(alpha, acc, t), t = beta*c [+ bias] or bias or 0 (gemm_internal.h).
  const Vec::Reg valpha = Vec::set1(ep.alpha);
  const Vec::Reg vbeta = Vec::set1(ep.beta);
  const bool read_c = ep.beta != 0.0f;
  int lanes[NV];
  Vec::Reg vbias[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    lanes[v] = std::clamp(n - 8 * v, 0, 8);
    vbias[v] = bias ? Vec::load_first(bias + 8 * v, lanes[v]) : Vec::zero();
  }
  const bool full = n == W;
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r) {
    if (r >= m) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      Vec::Reg t = vbias[v];
      if (read_c) {
        const Vec::Reg cv = full ? Vec::loadu(cr + 8 * v) : Vec::load_first(cr + 8 * v, lanes[v]);
        t = bias ? Vec::fmadd(vbeta, cv, t) : Vec::mul(vbeta, cv);
      }
      const Vec::Reg out = Vec::fmadd(valpha, acc[r][v], t);
      if (full) {
        Vec::storeu(cr + 8 * v, out);
      } else if (n > 8 * v) {
        Vec::store_first(cr + 8 * v, out, lanes[v]);
      }
    }
  }
}

void macro_kernel(int64_t mc, int64_t nc, int64_t kc, const float* ap, int64_t /*lda: always packed*/, const float* bp, float* c,
                  int64_t ldc, const Epilogue& ep, const PrefetchPlan& next) {
  macro_loop<kMr, kNr, gelu_rows::gelu_forward, gelu_rows::gelu_backward>(
      mc, nc, c, ldc, ep, next, [&](int64_t i, int64_t j, int m, int n, const float* bias) {
        if (n > 8) {
          micro_kernel<2>(kc, ap + i * kc, bp + j * kc, c + i * ldc + j, ldc, m, n, ep, bias);
        } else {
          micro_kernel<1>(kc, ap + i * kc, bp + j * kc, c + i * ldc + j, ldc, m, n, ep, bias);
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

const KernelSet kKernels = {kMr, kNr, 8, 256, kMr * 24, 1536, false, false, macro_kernel};

// Packed float32 rows as bf16 pairs (gemm_internal.h to_bf16_pairs), for the AVX-512 BF16 kernel
// set, which only the avx2 build runs: no kernel set of the portable build has bf16 set, so there
// this is never called (and to_bf16_pairs, an AVX-512 source, is not compiled off x86).
void pack_bf16_pairs(uint32_t* dst, const float* src, int64_t k0, int64_t k1, int64_t kc, int w) {
#if defined(CMAE_CPU_TARGET_AVX2)
  to_bf16_pairs(dst, src, k0, k1, kc, w);
#else
  (void)dst, (void)src, (void)k0, (void)k1, (void)kc, (void)w;
#endif
}

// The kernel set of the path in use: this target's, or in the avx2 build an AVX-512 one.
const KernelSet& kernels_in_use() {
#if defined(CMAE_CPU_TARGET_AVX2)
  if (current_isa() == Isa::AVX512) {
    return cpu_backend().matmul_precision() == MatmulPrecision::BF16 ? avx512_bf16_kernels() : avx512_kernels();
  }
#endif
  return kKernels;
}

// Floats of the largest packed A block of any kernel set this target runs, so the per-thread
// buffer is sized once.
size_t packed_a_block_floats() {
  size_t floats = static_cast<size_t>(kKernels.mc * kKernels.kc);
#if defined(CMAE_CPU_TARGET_AVX2)
  floats = std::max(floats, static_cast<size_t>(avx512_kernels().mc * avx512_kernels().kc));
#endif
  return floats;
}

}  // namespace


void gemm_run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, const Epilogue& ep) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || ep.alpha == 0.0f) {
    scale_only(M, N, C, ldc, ep);
    if (ep.post != PostOp::None) {
#if defined(CMAE_CPU_TARGET_AVX2)
      if (current_isa() == Isa::AVX512) return apply_post_avx512(ep, C, ldc, M, N);
#endif
      apply_post_target(ep, C, ldc, M, N);
    }
    return;
  }
  const KernelSet& ks = kernels_in_use();
  const bool bf16 = ks.bf16;
  const int64_t mr = ks.mr, nr = ks.nr;
  const int64_t kc_size = k_block_size(K, ks.kc);
  const int threads = available_threads();
  // A row-major op(A) is read in place by kernels that can (AVX-512): its rows are contiguous in k
  // already, and packing them cost a pass over A from DRAM that the micro-kernel's own streaming
  // loads overlap with the FMAs (measured +3-5 % on the K = 512-768 products, +1-1.5 % per step).
  const bool direct_a = ks.direct_a && !trans_a;
  const size_t packed_a_floats = packed_a_block_floats();
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
            if (bf16) pack_bf16_pairs(bp16 + kb * kcp_size * ncp + col * ((kc + 1) / 2), bp + kb * kc_size * ncp + col * kc, 0, kc, kc, w);
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
                  pack_bf16_pairs(bp16 + kb * kcp_size * ncp + p * nr * ((kc + 1) / 2), bp + kb * kc_size * ncp + p * nr * kc, k0, k1, kc,
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
              for (int64_t q = 0; q * mr < mc; ++q) pack_bf16_pairs(ap16 + q * mr * ((kc + 1) / 2), ap + q * mr * kc, 0, kc, kc, ks.mr);
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

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm::gemm_run(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, gemm::Epilogue{alpha, beta, nullptr});
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
