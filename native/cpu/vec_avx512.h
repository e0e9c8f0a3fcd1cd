// The vector traits of the CPU kernels for 16-lane AVX-512 vectors: the twin of cpu/vec_avx2.h
// (same names, same per-lane results), with k-masks for Mask. vec_math.h lists the interface.
//
// Include only from translation units compiled with the AVX-512 flags (*_avx512.cc), whose code
// runs only after current_isa() said the CPU has AVX-512. Linkage: Vec lives in an unnamed
// namespace, so it and every template instantiated on it have internal linkage in each translation
// unit; the linker can never pick one of their bodies for the AVX2 path (cpu/attention_impl.h).
#pragma once
// GCC 12's avx512fintrin.h self-initialises the pass-through operand of several intrinsics
// (_mm512_undefined_ps in _mm512_abs_ps, masked moves, ...), which -Wmaybe-uninitialized flags
// once they are inlined. Harmless.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

namespace cmae::cpu::avx512 {
namespace {

struct Vec {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int kW = 16;  // floats per vector

  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg load(const float* p) { return _mm512_load_ps(p); }  // aligned to 64 bytes
  static void store(float* p, Reg x) { _mm512_store_ps(p, x); }
  static Reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, Reg x) { _mm512_storeu_ps(p, x); }

  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }  // b where either is NaN
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }  // b where either is NaN
  static Reg abs(Reg x) { return _mm512_abs_ps(x); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static Reg round(Reg x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 1/d by rcp14 and one Newton step (~28 bits), cheaper than a division.
  static Reg rcp(Reg d) {
    const Reg s = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(s, _mm512_fnmadd_ps(d, s, _mm512_set1_ps(2.0f)));
  }
  // p·2^n for integral n (vscalefps).
  static Reg scale_pow2(Reg p, Reg n) { return _mm512_scalef_ps(p, n); }

  // Comparisons: le and gt are false where either side is NaN, not_lt is true there.
  static Mask le(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static Mask gt(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Mask not_lt(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLT_UQ); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm512_mask_blend_ps(m, b, a); }  // m ? a : b
  static Reg zero_unless(Mask m, Reg x) { return _mm512_maskz_mov_ps(m, x); }        // m ? x : 0

  // Lanes [0, n) set (none for n <= 0, all for n >= 16).
  static Mask first_lanes(int64_t n) {
    return n >= kW ? Mask(0xFFFF) : n <= 0 ? Mask(0) : static_cast<Mask>((1u << n) - 1u);
  }
  // Lanes [0, n) only (all for n >= 16), unaligned: load_first zeros the other lanes and never
  // reads p[n..]; store_first writes nothing else.
  static Reg load_first(const float* p, int64_t n) {
    return n >= kW ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(first_lanes(n), p);
  }
  static void store_first(float* p, Reg x, int64_t n) {
    if (n >= kW) {
      _mm512_storeu_ps(p, x);
    } else if (n > 0) {
      _mm512_mask_storeu_ps(p, first_lanes(n), x);
    }
  }

  // Fixed-order horizontal reductions.
  static float hsum(Reg x) { return _mm512_reduce_add_ps(x); }
  static float hmax(Reg x) { return _mm512_reduce_max_ps(x); }

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
}  // namespace cmae::cpu::avx512
