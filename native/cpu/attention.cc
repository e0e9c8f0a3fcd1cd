// Multi-head self-attention core (ops/attention.h): the AVX2 vector traits and the ISA dispatch.
// The algorithm is attention_impl.h; attention_avx512.cc instantiates it with 16-lane vectors.
#include <immintrin.h>

#include "core/cpu_features.h"
#include "cpu/attention_impl.h"
#include "cpu/cpu_backend.h"

namespace cmae::cpu {
namespace avx2_impl {
namespace {  // internal linkage for every instantiation (attention_impl.h, "Linkage")

// The vector traits of attention_impl.h for 8-lane AVX2 + FMA vectors.
struct Vec {
  using Reg = __m256;
  static constexpr int kW = 8;              // floats per vector
  static constexpr int kMaxCV = 3;          // vectors of C columns per micro-tile
  static constexpr int kAccumulators = 12;  // accumulator registers per micro-tile (of 16 ymm)

  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg load(const float* p) { return _mm256_load_ps(p); }
  static void store(float* p, Reg x) { _mm256_store_ps(p, x); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static Reg round(Reg x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

  static __m256i lane_mask(int64_t n) {  // lanes [0, n) set (none for n <= 0, all for n >= 8)
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static void store_first(float* p, Reg x, int64_t n) {
    if (n >= kW) {
      _mm256_storeu_ps(p, x);
    } else if (n > 0) {
      _mm256_maskstore_ps(p, lane_mask(n), x);
    }
  }
  static Reg load_first(const float* p, int64_t n) {
    return n >= kW ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask(n));
  }
  static Reg keep_first(Reg x, int64_t n, Reg fill) { return _mm256_blendv_ps(fill, x, _mm256_castsi256_ps(lane_mask(n))); }

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

  // exp_nonpositive: the lanes below the flush threshold as a vector mask; 2^n through the exponent bits.
  static Reg exp_flush(Reg x) { return _mm256_cmp_ps(x, _mm256_set1_ps(attention_impl::kExpFlush), _CMP_LT_OQ); }
  static Reg exp_scale(Reg p, Reg n, Reg flush) {
    const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(flush, _mm256_mul_ps(p, _mm256_castsi256_ps(two_n)));
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
}  // namespace avx2_impl

// `saved` holds the softmax probabilities att (B, H, N, N) (CpuBackend::attention_saved_floats).
void CpuBackend::attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  if (current_isa() == Isa::AVX512) return attention_forward_avx512(out, saved, qkv, B, N, D, H);
  attention_impl::forward<avx2_impl::Vec>(out, saved, qkv, B, N, D, H);
}

void CpuBackend::attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N,
                                    int64_t D, int64_t H) {
  if (current_isa() == Isa::AVX512) return attention_backward_avx512(dqkv, dout, qkv, saved, B, N, D, H);
  attention_impl::backward<avx2_impl::Vec>(dqkv, dout, qkv, saved, B, N, D, H);
}

}  // namespace cmae::cpu
