// The vector traits of the CPU kernels for the portable path: 8 float lanes as a GCC/Clang vector
// extension (vector_size(32)), which the compiler lowers to whatever the target has (two NEON
// registers on aarch64, two SSE registers on a generic x86-64). The same interface and the same
// per-lane results as cpu/vec_avx2.h (the list is in cpu/vec_math.h): the same 8-lane width, the
// same NaN rules for max/min and the comparisons, the same horizontal reduction orders, so the
// kernels' blocking and summation orders are those of the AVX2 path. fmadd is fused where the
// target has an FMA instruction (aarch64), a product and a sum where it has not (x86-64 without
// -mfma): the tolerances of the op cases hold either way.
//
// No intrinsics and no target headers: this compiles for any target GCC or Clang has. Linkage: as
// cpu/vec_avx2.h (Vec in an unnamed namespace, so nothing instantiated on it is merged with another
// path's body by the linker).
#pragma once
#include <cstdint>
#include <cstring>

namespace cmae::cpu::portable {
namespace {

struct Vec {
  using Reg = float __attribute__((vector_size(32)));
  using Mask = int32_t __attribute__((vector_size(32)));  // a lane is all ones (true) or all zeros
  using Bits = uint32_t __attribute__((vector_size(32)));
  static constexpr int kW = 8;  // floats per vector

  static Reg zero() { return Reg{}; }
  static Reg set1(float x) { return Reg{x, x, x, x, x, x, x, x}; }
  static Reg broadcast(const float* p) { return set1(*p); }
  // Through memcpy, not a Reg* (that would read floats through another type: strict aliasing);
  // the compiler emits single vector moves.
  static Reg load(const float* p) {
    Reg r;
    std::memcpy(&r, __builtin_assume_aligned(p, 32), sizeof(r));
    return r;
  }
  static void store(float* p, Reg x) { std::memcpy(__builtin_assume_aligned(p, 32), &x, sizeof(x)); }
  static Reg loadu(const float* p) {
    Reg r;
    std::memcpy(&r, p, sizeof(r));
    return r;
  }
  static void storeu(float* p, Reg x) { std::memcpy(p, &x, sizeof(x)); }

  static Reg add(Reg a, Reg b) { return a + b; }
  static Reg sub(Reg a, Reg b) { return a - b; }
  static Reg mul(Reg a, Reg b) { return a * b; }
  static Reg max(Reg a, Reg b) { return select(a > b, a, b); }  // b where either is NaN (as maxps)
  static Reg min(Reg a, Reg b) { return select(a < b, a, b); }  // b where either is NaN (as minps)
  static Reg abs(Reg x) { return reinterpret_cast<Reg>(reinterpret_cast<Bits>(x) & 0x7fffffffu); }
#if defined(__FP_FAST_FMAF)
  // The target has a fused multiply-add (aarch64; x86-64 with -mfma): fused, like the AVX2 path.
  static Reg fmadd(Reg a, Reg b, Reg c) {
    Reg r;
    for (int i = 0; i < kW; ++i) r[i] = __builtin_fmaf(a[i], b[i], c[i]);
    return r;
  }
  static Reg fnmadd(Reg a, Reg b, Reg c) {
    Reg r;
    for (int i = 0; i < kW; ++i) r[i] = __builtin_fmaf(-a[i], b[i], c[i]);
    return r;
  }
#else
  // No FMA instruction: fmaf would be a library call per lane, so a rounded product and a sum.
  static Reg fmadd(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return c - a * b; }
#endif
  // To nearest, ties to even, by the 1.5·2^23 shift: exact for |x| < 2^22; larger floats are
  // integers already and pass unchanged (NaN too).
  static Reg round(Reg x) {
    const Reg shift = set1(12582912.0f);
    const Reg r = (x + shift) - shift;
    return select(abs(x) < set1(4194304.0f), r, x);
  }
  static Reg rcp(Reg d) { return set1(1.0f) / d; }  // a division, as the AVX2 path
  // p·2^n for integral n in [-126, 127], through the exponent bits.
  static Reg scale_pow2(Reg p, Reg n) {
    const Mask e = (__builtin_convertvector(n, Mask) + 127) << 23;
    return p * reinterpret_cast<Reg>(e);
  }

  // Comparisons: le and gt are false where either side is NaN, not_lt is true there.
  static Mask le(Reg a, Reg b) { return a <= b; }
  static Mask gt(Reg a, Reg b) { return a > b; }
  static Mask not_lt(Reg a, Reg b) { return ~(a < b); }
  static Reg select(Mask m, Reg a, Reg b) {  // m ? a : b
    const Bits mb = reinterpret_cast<Bits>(m);
    return reinterpret_cast<Reg>((reinterpret_cast<Bits>(a) & mb) | (reinterpret_cast<Bits>(b) & ~mb));
  }
  static Reg zero_unless(Mask m, Reg x) {  // m ? x : 0
    return reinterpret_cast<Reg>(reinterpret_cast<Bits>(x) & reinterpret_cast<Bits>(m));
  }

  // Lanes [0, n) set (none for n <= 0, all for n >= 8).
  static Mask first_lanes(int64_t n) {
    const int32_t k = n <= 0 ? 0 : n >= kW ? kW : static_cast<int32_t>(n);
    const Mask lane = {0, 1, 2, 3, 4, 5, 6, 7};
    return lane < Mask{k, k, k, k, k, k, k, k};
  }
  // Lanes [0, n) only (all for n >= 8), unaligned: load_first zeros the other lanes and never reads
  // p[n..]; store_first writes nothing else.
  static Reg load_first(const float* p, int64_t n) {
    if (n >= kW) return loadu(p);
    Reg r = zero();
    for (int64_t i = 0; i < n; ++i) r[i] = p[i];
    return r;
  }
  static void store_first(float* p, Reg x, int64_t n) {
    if (n >= kW) {
      storeu(p, x);
      return;
    }
    for (int64_t i = 0; i < n; ++i) p[i] = x[i];
  }

  // Fixed-order horizontal reductions, in the order of cpu/vec_avx2.h's: halves, then pairs 2
  // apart, then the last two.
  static float hsum(Reg x) {
    float s[4];
    for (int i = 0; i < 4; ++i) s[i] = x[i] + x[i + 4];
    return (s[0] + s[2]) + (s[1] + s[3]);
  }
  static float hmax(Reg x) {
    auto max1 = [](float a, float b) { return a > b ? a : b; };
    float s[4];
    for (int i = 0; i < 4; ++i) s[i] = max1(x[i], x[i + 4]);
    return max1(max1(s[0], s[2]), max1(s[1], s[3]));
  }

  // Transpose of an 8 x 8 block: r[i] lane j <- r[j] lane i.
  static void transpose(Reg r[8]) {
    Reg t[8];
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) t[i][j] = r[j][i];
    for (int i = 0; i < 8; ++i) r[i] = t[i];
  }
};

}  // namespace
}  // namespace cmae::cpu::portable
