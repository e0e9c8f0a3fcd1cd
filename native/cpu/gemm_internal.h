// Internals of the SGEMM family (gemm.cc drives and has the 8-lane micro-kernel of each compile
// target, gemm_avx512.cc and gemm_bf16_avx512.cc add the AVX-512 micro-kernels).
// BLIS/GotoBLAS structure: C is computed in K blocks of `kc` (boundaries fixed by K and the ISA),
// op(B) is packed cooperatively into micro-panels of NR columns, each thread packs its own
// MC x kc blocks of op(A) into micro-panels of MR rows, and a register-blocked MR x NR
// micro-kernel multiplies one A micro-panel by one B micro-panel.
//
// Packed layouts (zero padded, so micro-kernels always run full tiles and mask only the stores;
// an unpacked row-major A is read with its last valid row repeated instead):
//   A block: panel q holds op(A)[i0 + q*MR + r, pc + k] at a[q*MR*kc + k*MR + r], r < MR.
//   B block: panel p holds op(B)[pc + k, j0 + p*NR + c] at b[p*NR*kc + k*W + c], c < W, where W is
//            NR except for the last panel, which is narrowed to round_up(columns left, nr_min).
//
// Every C element gets  v = alpha*acc (beta == 0, C not read) or v = fma(alpha, acc, beta*c),
// then v += bias[j] on the last K block. Both kernels use exactly this arithmetic on every element
// (edge tiles included), which is what makes the result independent of how C is split.
// An element-wise post-op (GELU or GELU's derivative, for the ViT MLP) then runs on the finished
// block while it is still in cache, instead of as a separate pass that streams the activation
// through memory again. It calls the same vector GELU as gelu_forward/gelu_backward
// (cpu/gelu.h), so fused and unfused results are bit-identical. Gelu runs on each NR-column strip
// (mc x NR, ~36 KiB, in L1/L2) as soon as it is finished; GeluGrad, which also reads the
// pre-activation, runs once on the whole macro block, row by row: reading pre in 192-byte pieces
// of rows a few KiB apart (per strip) waited on DRAM for every piece, hardware and software
// prefetch notwithstanding (measured: fused backward 24 ms against 16 ms for the two passes).
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/gelu.h"

namespace cmae::cpu::gemm {

enum class PostOp : uint8_t {
  None,
  Gelu,      // post_out[i, j] = GELU(C[i, j]); post_out may be C itself (then C ends as GELU(C))
  GeluGrad,  // C[i, j] *= GELU'(post_in[i, j])
};

struct Epilogue {
  float alpha;
  float beta;              // 0: C is write-only
  const float* col_bias;   // (N) added after the update, or null
  PostOp post = PostOp::None;  // applied after the last K block only
  float* post_out = nullptr;       // Gelu: same shape as C, row stride post_ld, origin at C's origin
  const float* post_in = nullptr;  // GeluGrad: likewise
  int64_t post_ld = 0;

  // This epilogue for the block of C that starts at (row, col): post-op operands moved there.
  Epilogue post_at(int64_t row, int64_t col) const {
    Epilogue e = *this;
    const int64_t offset = row * post_ld + col;
    if (e.post_out) e.post_out += offset;
    if (e.post_in) e.post_in += offset;
    return e;
  }
};

// Applies ep.post to rows x cols of C at c (ep's post_out/post_in point at the same element as c),
// with the vector GELU of one ISA (cpu/gelu.h).
template <GeluForwardRows Forward, GeluBackwardRows Backward>
void apply_post(const Epilogue& ep, float* c, int64_t ldc, int64_t rows, int64_t cols) {
  if (ep.post == PostOp::Gelu) {
    Forward(ep.post_out, ep.post_ld, c, ldc, rows, cols);
  } else if (ep.post == PostOp::GeluGrad) {
    Backward(c, ldc, c, ldc, ep.post_in, ep.post_ld, rows, cols);
  }
}

// Source of the next A block to pack: `rows` rows of `bytes` bytes, `stride` bytes apart. The
// macro-kernel prefetches it into L2 a little after each micro-kernel call, so the next packing
// pass reads from cache instead of waiting on DRAM (packing is otherwise memory-latency bound).
struct PrefetchPlan {
  const char* base = nullptr;
  int64_t stride = 0;
  int64_t rows = 0;
  int64_t bytes = 0;
};

class Prefetcher {
 public:
  Prefetcher(const PrefetchPlan& plan, int64_t calls) : plan_(plan) {
    const int64_t lines = plan.rows * ((plan.bytes + 127) / 64);
    per_call_ = calls > 0 ? (lines + calls - 1) / calls : 0;
  }
  void step() {
    for (int64_t i = 0; i < per_call_ && row_ < plan_.rows; ++i) {
      __builtin_prefetch(plan_.base + row_ * plan_.stride + offset_, 0, 2);  // to L2 (prefetcht1 on x86)
      offset_ += 64;
      if (offset_ >= plan_.bytes + 64) {
        offset_ = 0;
        ++row_;
      }
    }
  }

 private:
  PrefetchPlan plan_;
  int64_t per_call_ = 0;
  int64_t row_ = 0;
  int64_t offset_ = 0;
};

// The loop of every macro-kernel (MacroKernel below), written once: the block's NR-column strips
// (the packed B panels) in order, in each the MR-row micro-tiles top to bottom, one prefetcher step
// after each micro-kernel call, and the post-op where the header explains: Gelu on each strip as
// soon as it is finished, GeluGrad once on the whole block. tile(i, j, m, n, bias) runs the ISA's
// micro-kernel on rows [i, i + m) x columns [j, j + n) of the block (m <= MR, n <= NR: it picks the
// variant for the narrowed last panel), bias = the strip's column bias or null; Forward/Backward
// are the ISA's vector GELU. Instantiated on each kernel's lambda (internal linkage, like the
// micro-kernels: cpu/attention_impl.h, "Linkage"), and always inlined into the macro-kernel: as a
// separate function taking the lambda by reference, its micro-kernel loops lost a register (the K
// bound spilled to the stack) against the hand-written loops this replaces.
template <int MR, int NR, GeluForwardRows Forward, GeluBackwardRows Backward, class Tile>
[[gnu::always_inline]] inline void macro_loop(int64_t mc, int64_t nc, float* c, int64_t ldc, const Epilogue& ep,
                                              const PrefetchPlan& next, Tile&& tile) {
  Prefetcher prefetch(next, ((mc + MR - 1) / MR) * ((nc + NR - 1) / NR));
  for (int64_t j = 0; j < nc; j += NR) {
    const int n = static_cast<int>(std::min<int64_t>(NR, nc - j));
    const float* bias = ep.col_bias ? ep.col_bias + j : nullptr;
    for (int64_t i = 0; i < mc; i += MR) {
      tile(i, j, static_cast<int>(std::min<int64_t>(MR, mc - i)), n, bias);
      prefetch.step();
    }
    if (ep.post == PostOp::Gelu) apply_post<Forward, Backward>(ep.post_at(0, j), c + j, ldc, mc, n);  // strip still in L1/L2
  }
  if (ep.post == PostOp::GeluGrad) apply_post<Forward, Backward>(ep, c, ldc, mc, nc);  // whole rows of pre (above)
}

// Multiplies a packed A block (mc rows) by a packed B block (nc columns), K extent kc, into C
// (row-major, ldc); the B block starts at panel 0, its bias (if any) at ep.col_bias[0]. Prefetches
// `next` along the way.
// a is the packed A block (lda == 0) or, for kernel sets with direct_a, op(A) itself at the block's
// first row and K offset, rows lda apart (lda > 0).
using MacroKernel = void (*)(int64_t mc, int64_t nc, int64_t kc, const float* a, int64_t lda, const float* b_packed, float* c,
                             int64_t ldc, const Epilogue& ep, const PrefetchPlan& next);

struct KernelSet {
  int mr;        // micro-tile rows
  int nr;        // micro-tile columns (panel width)
  int nr_min;    // granularity of the narrowed last panel
  int64_t kc;    // target K block (the actual block is balanced: see k_block_size in gemm.cc)
  int64_t mc;    // rows of A per packed block (multiple of mr)
  int64_t nc;    // columns of B per packed block (multiple of nr)
  bool direct_a; // the macro-kernel can read a row-major op(A) in place (see gemm.cc)
  bool bf16;     // the macro-kernel takes bf16-pair panels (to_bf16_pairs) instead of float32 ones
  MacroKernel macro;
};

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Width of a packed B panel that holds `cols` valid columns.
inline int panel_width(int64_t cols, int nr, int nr_min) {
  return cols >= nr ? nr : static_cast<int>(round_up(cols, nr_min));
}

// Total packed width of nc columns (full panels plus the narrowed last one).
inline int64_t packed_width(int64_t nc, int nr, int nr_min) {
  const int64_t full = nc / nr * nr;
  return full + (nc > full ? panel_width(nc - full, nr, nr_min) : 0);
}

const KernelSet& avx512_kernels();  // gemm_avx512.cc
const KernelSet& avx512_bf16_kernels();  // gemm_bf16_avx512.cc: only with cpu_supports_avx512_bf16()

// gemm_bf16_avx512.cc: rows [k0, k1) (k0 even) of a packed float32 panel (src[k*w + c], kc rows) into
// bf16 pairs dst[(k/2)*w + c] (low half row k, high half row k+1, 0 past kc), rounded to nearest even.
void to_bf16_pairs(uint32_t* dst, const float* src, int64_t k0, int64_t k1, int64_t kc, int w);

}  // namespace cmae::cpu::gemm

#ifdef CMAE_CPU_TARGET
// The driver of one compile target (gemm.cc, cpu/target.h), behind its sgemm and linear ops.
namespace cmae::cpu::CMAE_CPU_TARGET::gemm {
using namespace cmae::cpu::gemm;  // the shared types and loops above, as gemm:: in the target
// C = alpha*op(A)op(B) + beta*C [+ bias].
void gemm_run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
              int64_t ldb, float* C, int64_t ldc, const Epilogue& ep);
}  // namespace cmae::cpu::CMAE_CPU_TARGET::gemm
#endif
