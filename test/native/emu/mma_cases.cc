// Tensor-core and cp.async cases of cmae_emu_tests: the TF32/BF16 conversions, mma.m16n8k8 TF32
// and mma.m16n8k16 BF16 against a float64 GEMM of the rounded inputs, every ldmatrix form against
// the PTX layout, and the cp.async group semantics.
//
// Tolerance of the mma cases: |d - ref| <= 2e-6 * (sum_k |a_ik * b_kj| + |c_ij|). The products of
// TF32 or BF16 inputs are exact in float32, so the only error is float32 accumulation over
// K <= 16 terms (at most K * 2^-24 of that sum, 9.5e-7 for K = 16); a layout or rounding mistake
// is off by far more (2^-11 relative at least).
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/launch.cuh"
#include "emu_test.h"
#include "kernels/mma_kernels.cuh"

namespace cmae::emu_tests {
namespace {

float from_bits(std::uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

// Rounds a normal float to `bits` significant bits (leading one included), by its definition:
// half away from zero (TF32's cvt.rna) or half to even (BF16's cvt.rn).
float round_significand(float x, int bits, bool ties_away) {
  if (!std::isfinite(x) || x == 0.0f) return x;
  int exponent;
  const double scaled = std::ldexp(std::frexp(static_cast<double>(x), &exponent), bits);
  const double rounded = std::ldexp(ties_away ? std::round(scaled) : std::nearbyint(scaled), exponent - bits);
  return std::fabs(rounded) > FLT_MAX ? std::copysign(std::numeric_limits<float>::infinity(), x) : static_cast<float>(rounded);
}
float reference_tf32(float x) { return round_significand(x, 11, true); }
float reference_bf16(float x) { return round_significand(x, 8, false); }

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

std::string conversions() {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               1.0f + std::ldexp(1.0f, -11),       // TF32 tie: away from zero
                               1.0f + 3 * std::ldexp(1.0f, -11),   // TF32 tie above an odd significand
                               -1.0f - std::ldexp(1.0f, -11),      // negative tie
                               1.0f + std::ldexp(1.0f, -8),        // BF16 tie: to even (down)
                               1.0f + 3 * std::ldexp(1.0f, -8),    // BF16 tie: to even (up)
                               -(1.0f + 3 * std::ldexp(1.0f, -8)),
                               FLT_MAX,
                               -FLT_MAX,
                               FLT_MIN,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN()};
  std::uint32_t state = 12345;
  for (int i = 0; i < 2000; ++i) {  // random normal floats across the exponent range
    state = state * 1664525u + 1013904223u;
    const std::uint32_t exponent = 1 + (state >> 8) % 253;
    state = state * 1664525u + 1013904223u;
    values.push_back(from_bits((state & 0x80000000u) | exponent << 23 | (state & 0x7FFFFFu)));
  }
  for (const float x : values) {
    const float tf32 = from_bits(cuda::to_tf32(x));
    CMAE_TEST_CHECK(same_float(tf32, reference_tf32(x)), "to_tf32(", x, ") = ", tf32, ", expected ", reference_tf32(x));
    CMAE_TEST_CHECK(std::isnan(x) || (cuda::to_tf32(x) & 0x1FFFu) == 0, "to_tf32 left low bits set for ", x);
    const std::uint32_t packed = cuda::pack_bf16x2(x, -x);
    const float lo = from_bits(packed << 16), hi = from_bits(packed & 0xFFFF0000u);
    CMAE_TEST_CHECK(same_float(lo, reference_bf16(x)) && same_float(hi, reference_bf16(-x)), "pack_bf16x2(", x, ", ", -x, ") = ", lo, ", ", hi);
  }
  return std::to_string(values.size()) + " floats (ties, extremes, infinities, NaN, random normals) round to TF32 (nearest, " +
         "ties away) and BF16 (nearest even, low half first) by their definitions";
}

// d = a * b + c in float64 from the given (already rounded) inputs; also the error scale.
void reference_gemm(const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c, int k, std::vector<double>& d,
                    std::vector<double>& scale) {
  d.assign(16 * 8, 0.0);
  scale.assign(16 * 8, 0.0);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double sum = c[i * 8 + j], magnitude = std::fabs(c[i * 8 + j]);
      for (int kk = 0; kk < k; ++kk) {
        sum += static_cast<double>(a[i * k + kk]) * b[kk * 8 + j];
        magnitude += std::fabs(static_cast<double>(a[i * k + kk]) * b[kk * 8 + j]);
      }
      d[i * 8 + j] = sum;
      scale[i * 8 + j] = magnitude;
    }
}

std::vector<float> random_floats(std::size_t n, std::uint32_t seed) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / 16777216.0f * 4.0f - 2.0f;  // [-2, 2), not representable in TF32 or BF16
  }
  return v;
}

double max_relative_error(const std::vector<float>& d, const std::vector<double>& ref, const std::vector<double>& scale) {
  double worst = 0;
  for (std::size_t i = 0; i < d.size(); ++i) worst = std::max(worst, std::fabs(d[i] - ref[i]) / scale[i]);
  return worst;
}

constexpr double kMmaTolerance = 2e-6;

template <typename Kernel>
std::string check_mma(const char* what, Kernel kernel, int k, float (*round)(float)) {
  double worst = 0;
  under_all_schedules([&] {
    for (std::uint32_t seed = 1; seed <= 3; ++seed) {
      const std::vector<float> a = random_floats(16 * k, seed), b = random_floats(k * 8, seed + 10), c = random_floats(16 * 8, seed + 20);
      std::vector<float> d(16 * 8), ra(a.size()), rb(b.size());
      cuda::launch(what, kernel, 1, 32, 0, nullptr, a.data(), b.data(), c.data(), d.data());
      for (std::size_t i = 0; i < a.size(); ++i) ra[i] = round(a[i]);
      for (std::size_t i = 0; i < b.size(); ++i) rb[i] = round(b[i]);
      std::vector<double> ref, scale;
      reference_gemm(ra, rb, c, k, ref, scale);
      const double error = max_relative_error(d, ref, scale);
      CMAE_TEST_CHECK(error <= kMmaTolerance, what, " seed ", seed, ": relative error ", error);
      worst = std::max(worst, error);
    }
  });
  std::ostringstream os;
  os << what << " matches a float64 GEMM of the rounded inputs: worst error " << worst << " of sum|a*b|+|c| (tolerance " << kMmaTolerance
     << ")";
  return os.str();
}

std::string mma_tf32() { return check_mma("mma_tf32_tile", mma_tf32_tile, 8, reference_tf32); }
std::string mma_bf16() { return check_mma("mma_bf16_tile", mma_bf16_tile, 16, reference_bf16); }
std::string mma_bf16_ldmatrix() { return check_mma("mma_bf16_from_shared", mma_bf16_from_shared, 16, reference_bf16); }

std::string ldmatrix_layouts() {
  // The 16x16 tile of 16-bit elements e(r, c) = 0x1000 + 16 r + c, two per word, low half first.
  const auto element = [](unsigned r, unsigned c) { return 0x1000u + 16 * r + c; };
  std::vector<std::uint32_t> words(128);
  for (unsigned r = 0; r < 16; ++r)
    for (unsigned p = 0; p < 8; ++p) words[r * 8 + p] = element(r, 2 * p) | element(r, 2 * p + 1) << 16;
  // The kernel's lane 8i + r points at tile row (8i + r) % 16, columns from 8 * ((8i + r) / 16).
  const auto matrix = [&](unsigned i, unsigned r, unsigned c) { return element((8 * i + r) % 16, 8 * ((8 * i + r) / 16) + c); };
  under_all_schedules([&] {
    std::vector<std::uint32_t> out(12 * 32);
    CMAE_LAUNCH(ldmatrix_forms, 1, 32, 0, nullptr, words.data(), out.data());
    for (unsigned lane = 0; lane < 32; ++lane) {
      const unsigned g = lane >> 2, t = lane % 4;
      const std::uint32_t* o = &out[12 * lane];
      for (unsigned i = 0; i < 4; ++i) {
        const std::uint32_t plain = matrix(i, g, 2 * t) | matrix(i, g, 2 * t + 1) << 16;
        const std::uint32_t transposed = matrix(i, 2 * t, g) | matrix(i, 2 * t + 1, g) << 16;
        CMAE_TEST_CHECK(o[i] == plain, "x4 lane ", lane, " register ", i);
        CMAE_TEST_CHECK(o[4 + i] == transposed, "x4.trans lane ", lane, " register ", i);
        if (i < 2) CMAE_TEST_CHECK(o[8 + i] == plain && o[10 + i] == transposed, "x2 lane ", lane, " register ", i);
      }
    }
  });
  return "ldmatrix .x4, .x4.trans, .x2, .x2.trans hand every lane the elements the PTX layout names";
}

std::string cp_async_groups() {
  std::vector<float> src = eighths(512, 21);
  under_all_schedules([&] {
    std::vector<float> seen(512, 0.0f);
    CMAE_LAUNCH(cp_async_stages, 1, 32, 0, nullptr, src.data(), seen.data());
    for (int i = 0; i < 128; ++i) {
      CMAE_TEST_CHECK(seen[i] == src[i], "stage 0 after wait<1>, element ", i);
      CMAE_TEST_CHECK(is_shared_poison(seen[128 + i]), "stage 1 landed before any wait covered it, element ", i);
      CMAE_TEST_CHECK(seen[256 + i] == src[128 + i], "stage 1 after wait<0>, element ", i);
    }
    for (int i = 0; i < 64; ++i) CMAE_TEST_CHECK(seen[384 + i] == src[256 + i], "cp_async_8, element ", i);
    for (int i = 0; i < 32; ++i) CMAE_TEST_CHECK(seen[448 + i] == src[320 + i], "cp_async_4, element ", i);
  });
  return "cp.async 16/8/4: a group lands when cp_async_wait covers it, not before (the newest group is still NaN after wait<1>)";
}

}  // namespace

void add_mma_cases(testing::Suite& suite) {
  suite.add("emu/tf32_bf16_conversions", conversions);
  suite.add("emu/mma_m16n8k8_tf32", mma_tf32);
  suite.add("emu/mma_m16n8k16_bf16", mma_bf16);
  suite.add("emu/ldmatrix_layouts", ldmatrix_layouts);
  suite.add("emu/mma_bf16_through_ldmatrix", mma_bf16_ldmatrix);
  suite.add("emu/cp_async_groups", cp_async_groups);
}

}  // namespace cmae::emu_tests
