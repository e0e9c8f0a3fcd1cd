// The vectorised math of the CPU kernels, written once for every path as templates on a vector-traits
// type V (cpu/vec_portable.h and cpu/vec_avx2.h: 8 lanes, cpu/vec_avx512.h: 16 lanes): e^x for x <= 0 (GELU and the
// attention softmax), Φ(x) together with e^{-x²/2}, GELU and GELU' on a vector, and the GELU row
// loops behind cpu/gelu.h (activation.cc / activation_avx512.cc instantiate them; the GEMM epilogue
// and the element-wise kernels call those). Per lane, both ISAs run the same formulas and constants;
// they differ where the traits do (the 2^n scaling, the reciprocal, blends), so AVX2 and AVX-512
// results agree to rounding but are not bit-identical to each other.
//
// The traits V (a struct of static inline functions around one register type):
//   using Reg, Mask; kW                        one vector of floats; a lane mask (AVX2: a vector of
//                                              all-ones/zero lanes, AVX-512: a k-mask); lanes per Reg
//   zero(), set1(x), broadcast(p)              all lanes 0 / x / *p
//   load(p), store(p, x)                       whole vector, p aligned to kW floats
//   loadu(p), storeu(p, x)                     whole vector, unaligned
//   load_first(p, n), store_first(p, x, n)     lanes [0, n) only (all for n >= kW), unaligned;
//                                              load_first zeros the other lanes, never reads p[n..]
//   add, sub, mul, max, min, abs               lane-wise; max/min(a, b) give b where either is NaN
//   fmadd(a, b, c) = a·b+c, fnmadd = c−a·b     fused
//   round(x)                                   to nearest (even), no exceptions
//   rcp(d)                                     1/d (AVX2: a division; AVX-512: rcp14 + one Newton
//                                              step, ~28 bits)
//   scale_pow2(p, n)                           p·2^n for integral n >= -126 (AVX2: garbage below)
//   le, gt, not_lt (a, b) -> Mask              a <= b, a > b (false on NaN), !(a < b) (true on NaN)
//   select(m, a, b), zero_unless(m, x)         m ? a : b, m ? x : 0
//   first_lanes(n) -> Mask                     lanes [0, n) (none for n <= 0, all for n >= kW)
//   hsum(x), hmax(x)                           fixed-order horizontal reductions
//   transpose(Reg r[kW])                       in-register kW x kW transpose: r[i][j] <- r[j][i]
//
// Linkage: everything here is a template on V, and each V has internal linkage (an unnamed
// namespace in its header), so every instantiation has too (cpu/attention_impl.h, "Linkage").
// Keep it that way: no non-template inline functions in this header.
#pragma once
#include <cstdint>

namespace cmae::cpu::vec {

// ---- e^x ----------------------------------------------------------------------------------------

// e^x for x <= 0 on the lanes of `keep`, exactly 0 on the others: the caller's flush rule (a
// threshold on x for the softmax, the range of Φ's fit for GELU), which must leave out every lane
// below -87 (2^n must stay a normal number; e^-87 ~ 1.6e-38). The other lanes may hold anything,
// -inf or NaN included; NaN x on a kept lane stays NaN. No clamp of x: both callers' masks
// already exclude those lanes, and a clamp would cost an operation per vector.
// Cephes expf: x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, then p·2^n. ~1 ulp.
template <class V>
inline typename V::Reg exp_nonpositive(typename V::Reg x, typename V::Mask keep) {
  using Reg = typename V::Reg;
  const Reg n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  Reg r = V::fnmadd(n, V::set1(0.693359375f), x);
  r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
  Reg p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  p = V::fmadd(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
  return V::zero_unless(keep, V::scale_pow2(p, n));
}

// ---- Φ(x) and GELU ------------------------------------------------------------------------------

// Φ(x) = P(X <= x) for X ~ N(0,1), and e = e^{-x²/2}, which GELU's derivative needs as well:
//   erfc(t) = e^{-t²}·erfcx(t) with t = |x|/√2, so e^{-t²} = e; erfcx(t) = s·Q(s), s = 1/(1 + 0.3t),
//   Q a degree-8 polynomial in u = (s − s_min)/(1 − s_min)·2 − 1 fitted on t ∈ [0, 4.5] (relative
//   error 2.4e-8; erfcx is smooth and ~1/t in s, so few terms suffice); Φ = 1 − erfc/2 (x > 0) or
//   erfc/2 (x <= 0, no 1 + erf cancellation in the lower tail); erfc = 0 for t > 4.5 (true value <
//   2e-10), which also makes Φ(−88) exactly 0. One exponential and one polynomial over the whole
//   range, no branches: ~35 vector operations, against ~50 for the two-range erf/erfc it replaced
//   (and ~70 for the derivative, which needed a second exponential). Coefficients and the float32
//   error check: scripts/fit-gelu.py. Error vs float64 stays within 1e-7 abs + 3e-7 rel for GELU.
// s = V::rcp(d): a division on AVX2 (rcp_ps has 12 bits), rcp14 + a Newton step on AVX-512.
template <class V>
struct CdfExp {
  typename V::Reg cdf;
  typename V::Reg e;
};

template <class V>
inline CdfExp<V> normal_cdf_exp(typename V::Reg x) {
  using Reg = typename V::Reg;
  const Reg t = V::mul(V::abs(x), V::set1(0.70710678118654752440f));
  const typename V::Mask in_range = V::le(t, V::set1(4.5f));  // -x²/2 >= -20.25 there
  const Reg e = exp_nonpositive<V>(V::mul(x, V::mul(x, V::set1(-0.5f))), in_range);
  const Reg d = V::fmadd(V::min(t, V::set1(4.5f)), V::set1(0.3f), V::set1(1.0f));
  const Reg s = V::rcp(d);
  const Reg u = V::fmadd(s, V::set1(3.48148148148148148f), V::set1(-2.48148148148148148f));
  Reg q = V::set1(-2.6610516250e-06f);
  q = V::fmadd(q, u, V::set1(-2.0295020931e-05f));
  q = V::fmadd(q, u, V::set1(1.8332795950e-05f));
  q = V::fmadd(q, u, V::set1(8.9014478190e-04f));
  q = V::fmadd(q, u, V::set1(6.0155818544e-03f));
  q = V::fmadd(q, u, V::set1(2.4523083188e-02f));
  q = V::fmadd(q, u, V::set1(7.0943925523e-02f));
  q = V::fmadd(q, u, V::set1(1.5264723779e-01f));
  q = V::fmadd(q, u, V::set1(2.4498463791e-01f));  // Q/2: the 1/2 of Φ folded in
  const Reg half_erfc = V::mul(e, V::mul(s, q));
  const typename V::Mask positive = V::gt(x, V::zero());
  // NaN x: t is NaN, so e = 0 and s, q stay finite (min gives 4.5): Φ is a number, but GELU =
  // x·Φ and GELU' = Φ + x·φ are NaN, as they must be (tested).
  return {V::select(positive, V::sub(V::set1(1.0f), half_erfc), half_erfc), e};
}

// The per-element result of the GELU kernels: GELU(x), or dout·GELU'(x) with GELU' = Φ(x) + x·φ(x),
// φ(x) = e^{-x²/2}/√(2π) (one exponential serves both).
template <class V, bool kBackward>
inline typename V::Reg gelu_result(typename V::Reg x, typename V::Reg dout) {
  const CdfExp<V> ce = normal_cdf_exp<V>(x);
  if (!kBackward) return V::mul(x, ce.cdf);
  return V::mul(dout, V::fmadd(x, V::mul(ce.e, V::set1(0.39894228040143267794f)), ce.cdf));
}

// ---- GELU row loops (cpu/gelu.h) ----------------------------------------------------------------

// G whole vectors at once: G independent dependency chains (the exp and Q polynomials are ~30
// dependent operations, more than out-of-order execution overlaps across loop iterations), which
// the compiler interleaves: 2x faster than one vector per iteration. in/dout/out[g] point at the
// g-th vector (dout unused in the forward). Per element the arithmetic is the same for any G (and
// for the partial tail below). Compile-time groups of whole vectors matter: a runtime-indexed
// list of (pointer, mask) slots was 1.5–2x slower (bench/NOTES.md, change 12).
template <class V, int G, bool kBackward>
inline void gelu_vectors(const float* const* in, const float* const* dout, float* const* out) {
  typename V::Reg x[G];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) x[g] = V::loadu(in[g]);
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
    const typename V::Reg d = kBackward ? V::loadu(dout[g]) : V::zero();
    V::storeu(out[g], gelu_result<V, kBackward>(x[g], d));
  }
}

// Lanes [0, n) of one vector, n < kW (the other lanes read as 0 and are not stored).
template <class V, bool kBackward>
inline void gelu_tail(const float* in, const float* dout, float* out, int64_t n) {
  const typename V::Reg d = kBackward ? V::load_first(dout, n) : V::zero();
  V::store_first(out, gelu_result<V, kBackward>(V::load_first(in, n), d), n);
}

// One row: whole vectors in groups of 4, 2, 1, then the partial tail. dout is null in the forward.
template <class V, bool kBackward>
inline void gelu_row(float* out, const float* dout, const float* in, int64_t cols) {
  constexpr int W = V::kW;
  const auto d = [dout](int64_t c) { return kBackward ? dout + c : nullptr; };
  int64_t c = 0;
  for (; c + 4 * W <= cols; c += 4 * W) {
    const float* i4[4] = {in + c, in + c + W, in + c + 2 * W, in + c + 3 * W};
    const float* d4[4] = {d(c), d(c + W), d(c + 2 * W), d(c + 3 * W)};
    float* o4[4] = {out + c, out + c + W, out + c + 2 * W, out + c + 3 * W};
    gelu_vectors<V, 4, kBackward>(i4, d4, o4);
  }
  if (c + 2 * W <= cols) {
    const float* i2[2] = {in + c, in + c + W};
    const float* d2[2] = {d(c), d(c + W)};
    float* o2[2] = {out + c, out + c + W};
    gelu_vectors<V, 2, kBackward>(i2, d2, o2);
    c += 2 * W;
  }
  if (c + W <= cols) {
    const float* i1[1] = {in + c};
    const float* d1[1] = {d(c)};
    float* o1[1] = {out + c};
    gelu_vectors<V, 1, kBackward>(i1, d1, o1);
    c += W;
  }
  if (c < cols) gelu_tail<V, kBackward>(in + c, d(c), out + c, cols - c);
}

// rows x cols, each operand with its own row stride (dout/ldd unused in the forward).
// Rows of exactly 3 vectors (the AVX-512 GEMM epilogue's 48-column strips) would be a pair plus a
// lone latency-bound vector; two rows at a time make them a group of 4 and a pair.
template <class V, bool kBackward>
void gelu_rows(float* out, int64_t ldo, const float* dout, int64_t ldd, const float* inp, int64_t ldi, int64_t rows, int64_t cols) {
  constexpr int W = V::kW;
  int64_t r = 0;
  if (cols == 3 * W) {
    for (; r + 2 <= rows; r += 2) {
      const float* a = inp + r * ldi;
      const float* b = a + ldi;
      const float* da = kBackward ? dout + r * ldd : nullptr;
      const float* db = kBackward ? da + ldd : nullptr;
      float* oa = out + r * ldo;
      float* ob = oa + ldo;
      const float* i4[4] = {a, a + W, a + 2 * W, b};
      const float* d4[4] = {da, kBackward ? da + W : nullptr, kBackward ? da + 2 * W : nullptr, db};
      float* o4[4] = {oa, oa + W, oa + 2 * W, ob};
      gelu_vectors<V, 4, kBackward>(i4, d4, o4);
      const float* i2[2] = {b + W, b + 2 * W};
      const float* d2[2] = {kBackward ? db + W : nullptr, kBackward ? db + 2 * W : nullptr};
      float* o2[2] = {ob + W, ob + 2 * W};
      gelu_vectors<V, 2, kBackward>(i2, d2, o2);
    }
  }
  for (; r < rows; ++r) gelu_row<V, kBackward>(out + r * ldo, kBackward ? dout + r * ldd : nullptr, inp + r * ldi, cols);
}

}  // namespace cmae::cpu::vec
