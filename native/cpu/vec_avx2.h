// The vector traits of the CPU kernels for 8-lane AVX2 + FMA vectors: every operation that the
// ISA-independent templates (cpu/vec_math.h: e^x, Φ, GELU; cpu/attention_impl.h) call, as static
// inline functions around one register type. cpu/vec_avx512.h is the 16-lane twin, with the same
// names and the same per-lane results; vec_math.h lists the interface.
//
// Include only from the avx2 build of the kernel sources (cpu/target.h: AVX2 + FMA), never from an
// AVX-512 or a portable one. Linkage: Vec lives in an unnamed namespace, so it and every template instantiated on
// it have internal linkage in each translation unit; the linker can never merge an AVX2 body with
// an AVX-512 one (cpu/attention_impl.h, "Linkage").
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace cmae::cpu::avx2 {
namespace {

struct Vec {
  using Reg = __m256;
  using Mask = __m256;  // a lane is all ones (true) or all zeros (false)
  static constexpr int kW = 8;  // floats per vector

  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg load(const float* p) { return _mm256_load_ps(p); }  // aligned to 32 bytes
  static void store(float* p, Reg x) { _mm256_store_ps(p, x); }
  static Reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, Reg x) { _mm256_storeu_ps(p, x); }

  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }  // b where either is NaN
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }  // b where either is NaN
  static Reg abs(Reg x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static Reg round(Reg x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 1/d by a division (rcp_ps has only 12 bits; the AVX-512 twin refines rcp14 instead).
  static Reg rcp(Reg d) { return _mm256_div_ps(_mm256_set1_ps(1.0f), d); }
  // p·2^n for integral n in [-126, 127], through the exponent bits.
  static Reg scale_pow2(Reg p, Reg n) {
    const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
  }

  // Comparisons: le and gt are false where either side is NaN, not_lt is true there.
  static Mask le(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static Mask gt(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Mask not_lt(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_NLT_UQ); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm256_blendv_ps(b, a, m); }  // m ? a : b
  static Reg zero_unless(Mask m, Reg x) { return _mm256_and_ps(m, x); }          // m ? x : 0

  // Lanes [0, n) set (none for n <= 0, all for n >= 8).
  static Mask first_lanes(int64_t n) {
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  }
  // Lanes [0, n) only (all for n >= 8), unaligned: load_first zeros the other lanes and never reads
  // p[n..]; store_first writes nothing else.
  static Reg load_first(const float* p, int64_t n) {
    return n >= kW ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, _mm256_castps_si256(first_lanes(n)));
  }
  // Plain 256/128/64/32-bit stores: vmaskmovps stores are microcoded and slow on AMD Zen (masked
  // loads are fine).
  static void store_first(float* p, Reg x, int64_t n) {
    if (n >= kW) {
      _mm256_storeu_ps(p, x);
      return;
    }
    __m128 h = _mm256_castps256_ps128(x);
    if (n >= 4) {
      _mm_storeu_ps(p, h);
      h = _mm256_extractf128_ps(x, 1);
      p += 4;
      n -= 4;
    }
    if (n >= 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), h);
      h = _mm_movehl_ps(h, h);
      p += 2;
      n -= 2;
    }
    if (n == 1) _mm_store_ss(p, h);
  }

  // Fixed-order horizontal reductions.
  static float hsum(Reg x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(Reg x) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // In-register transpose of an 8 x 8 block: r[i] lane j <- r[j] lane i.
  static void transpose(Reg r[8]) {
    Reg t[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + c], per 128-bit lane l: rows 4g..4g+3 of column c + 4l.
    Reg u[8];
#pragma GCC unroll 2
    for (int g = 0; g < 2; ++g) {
      u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
  }
};

}  // namespace
}  // namespace cmae::cpu::avx2
