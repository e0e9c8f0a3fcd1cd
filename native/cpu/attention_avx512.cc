// Multi-head self-attention core (ops/attention.h), AVX-512 path: the 16-lane vector traits of
// attention_impl.h and the two entry points that instantiate it (24 accumulators per micro-tile).
// Compiled with -mavx512f/bw/dq/vl and only called after current_isa() said the CPU has them.

// GCC 12's avx512fintrin.h self-initialises the pass-through operand of several intrinsics
// (_mm512_undefined_ps), which -Wmaybe-uninitialized flags once they are inlined. Harmless.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/attention_impl.h"

namespace cmae::cpu {
namespace avx512_impl {
namespace {  // internal linkage for every instantiation (attention_impl.h, "Linkage")

// The vector traits of attention_impl.h for 16-lane AVX-512 vectors.
struct Vec {
  using Reg = __m512;
  static constexpr int kW = 16;             // floats per vector
  static constexpr int kMaxCV = 4;          // vectors of C columns per micro-tile
  static constexpr int kAccumulators = 24;  // accumulator registers per micro-tile (of 32 zmm)

  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg load(const float* p) { return _mm512_load_ps(p); }
  static void store(float* p, Reg x) { _mm512_store_ps(p, x); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static Reg round(Reg x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

  static __mmask16 lane_mask(int64_t n) {  // lanes [0, n) set
    return n >= kW ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1u);
  }
  static void store_first(float* p, Reg x, int64_t n) {
    if (n >= kW) {
      _mm512_storeu_ps(p, x);
    } else if (n > 0) {
      _mm512_mask_storeu_ps(p, lane_mask(n), x);
    }
  }
  static Reg load_first(const float* p, int64_t n) {
    return n >= kW ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lane_mask(n), p);
  }
  static Reg keep_first(Reg x, int64_t n, Reg fill) { return _mm512_mask_mov_ps(fill, lane_mask(n), x); }

  static float hsum(Reg x) { return _mm512_reduce_add_ps(x); }
  static float hmax(Reg x) { return _mm512_reduce_max_ps(x); }

  // exp_nonpositive: the lanes to keep (x >= flush threshold, or NaN) as a k-mask; 2^n by scalef.
  static __mmask16 exp_flush(Reg x) {
    return _mm512_cmp_ps_mask(x, _mm512_set1_ps(attention_impl::kExpFlush), _CMP_NLT_UQ);
  }
  static Reg exp_scale(Reg p, Reg n, __mmask16 keep) { return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n)); }

  // In-register transpose of a 16 x 16 block: r[i] lane j <- r[j] lane i.
  static void transpose(Reg r[16]) {
    Reg t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4g + c], per 128-bit lane l: rows 4g..4g+3 of column c + 4l.
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      r[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);      // groups 0,1: columns c, c+8
      t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);  // groups 0,1: columns c+4, c+12
      t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
      t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
      r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
      r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
      r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD);
    }
  }
};

}  // namespace
}  // namespace avx512_impl

void attention_forward_avx512(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  attention_impl::forward<avx512_impl::Vec>(out, att, qkv, B, N, D, H);
}

void attention_backward_avx512(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N,
                               int64_t D, int64_t H) {
  attention_impl::backward<avx512_impl::Vec>(dqkv, dout, qkv, att, B, N, D, H);
}

}  // namespace cmae::cpu
