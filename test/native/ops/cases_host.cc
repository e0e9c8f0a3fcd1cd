// The per-element math every backend compiles (core/math.h, core/rng.h: CMAE_HD functions, built by
// g++ here and by nvcc for the GPU), checked once on the host against float64 and published
// known-answer values. Cases "host/<header>/<function>".
#include <cmath>
#include <limits>

#include "core/math.h"
#include "core/rng.h"
#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

using testing::Suite;

// The bounds the op contracts state for the same formulas (ops/activation.h, test/ops/fused.test.ts).
constexpr Tolerance kGelu{1e-7, 3e-7};
constexpr Tolerance kGeluGrad{2e-7, 1e-6};
// Three float32 roundings of values ~|target| (ops/optim.h's EMA).
constexpr Tolerance kEma{1e-7, 3e-7};
// cosf(2π·u) of a float32 angle (2π·u carries ~4e-7 absolute) times a radius up to 5.8.
constexpr Tolerance kNormal{3e-6, 1e-6};

// Fails the case unless every element is within tol; returns the summary.
std::string check(const std::string& name, const Floats& got, const Doubles& want, Tolerance tol) {
  const int64_t n = static_cast<int64_t>(got.size());
  const Comparison c = compare(name, got.data(), want.data(), n, {n}, tol);
  if (!c.ok) throw std::runtime_error(c.summary);
  return c.summary;
}

// −12..12 in steps of 1/64, then values where the formulas degenerate.
Floats gelu_inputs() {
  Floats x;
  for (int i = -12 * 64; i <= 12 * 64; ++i) x.push_back(static_cast<float>(i) / 64.0f);
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {inf, -inf, std::numeric_limits<float>::quiet_NaN(), 1e-30f, -1e-30f, 30.0f, -30.0f, 88.0f, -88.0f, 3e38f, -3e38f})
    x.push_back(v);
  return x;
}

void add_math_cases(Suite& suite) {
  suite.add("host/math/gelu", [] {
    const Floats x = gelu_inputs();
    Floats got(x.size());
    for (size_t i = 0; i < x.size(); ++i) got[i] = gelu(x[i]);
    return check("gelu", got, ref::gelu(x), kGelu);
  });
  suite.add("host/math/gelu_grad", [] {
    const Floats x = gelu_inputs();
    Floats got(x.size());
    Doubles want(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      got[i] = gelu_grad(x[i]);
      want[i] = ref::gelu_grad(x[i]);
    }
    return check("gelu_grad", got, want, kGeluGrad);
  });

  // adamw_update element by element against torch.optim.AdamW in float64, at steps 1, 10, 1000,
  // with and without weight decay.
  suite.add("host/math/adamw_update", [] {
    HostRng rng(1);
    std::string summary;
    for (int t : {1, 10, 1000}) {
      AdamWStep s{1e-3f, 0.9f, 0.95f, 1e-8f, 0.05f, 0, 0};
      s.bias_correction1 = static_cast<float>(1.0 - std::pow(0.9, t));
      s.bias_correction2 = static_cast<float>(1.0 - std::pow(0.95, t));
      const size_t n = 4096;
      Floats p(n), m(n), v(n), g(n), mask(n);
      for (size_t i = 0; i < n; ++i) {
        p[i] = static_cast<float>(rng.normal());
        m[i] = static_cast<float>(0.01 * rng.normal());
        v[i] = static_cast<float>(1e-4 * rng.uniform());
        g[i] = static_cast<float>(0.1 * rng.normal());
        mask[i] = i % 3 == 0 ? 0.0f : 1.0f;
      }
      const ref::AdamW want = ref::adamw(p, m, v, g, &mask, s, 1.0);
      for (size_t i = 0; i < n; ++i) adamw_update(p[i], m[i], v[i], g[i], mask[i], s);
      const std::string step = "step " + std::to_string(t) + " ";
      summary += check(step + "param", p, want.params, {1e-6, 1e-6}) + "; ";
      summary += check(step + "m", m, want.m, {1e-8, 1e-5}) + "; ";
      summary += check(step + "v", v, want.v, {1e-12, 1e-5}) + "; ";
    }
    return summary;
  });

  suite.add("host/math/ema_lerp", [] {
    HostRng rng(2);
    const size_t n = 4096;
    Floats t(n), o(n);
    for (size_t i = 0; i < n; ++i) t[i] = static_cast<float>(rng.normal()), o[i] = static_cast<float>(rng.normal());
    std::string summary;
    for (float momentum : {0.996f, 0.5f, 0.0f, 1.0f}) {
      Floats got(n);
      for (size_t i = 0; i < n; ++i) got[i] = ema_lerp(t[i], o[i], momentum);
      // The endpoints are exact: 1·t + 0·o = t, 0·t + 1·o = o.
      const bool endpoint = momentum == 0.0f || momentum == 1.0f;
      summary += check("m=" + std::to_string(momentum), got, ref::ema(t, o, momentum), endpoint ? kExact : kEma) + "; ";
    }
    return summary;
  });

  suite.add("host/math/clip_coefficient", [] {
    const double inf = std::numeric_limits<double>::infinity();
    Floats got;
    Doubles want;
    for (double max_norm : {1.0, 0.25, 5.0})
      for (double norm : {0.0, 1e-9, 0.2, 0.999999, 1.0, 1.000001, 4.0, 1e30, inf}) {
        got.push_back(clip_coefficient(norm, max_norm));
        want.push_back(ref::clip_coefficient(norm, max_norm));
      }
    return check("clip_coefficient", got, want, kOneRounding);
  });
}

void add_rng_cases(Suite& suite) {
  // Random123's kat_vectors for philox4x32 10: counter (4 words), key (2 words) → 4 words. Here
  // counter = (index lo, index hi, stream lo, stream hi), key = (seed lo, seed hi).
  suite.add("host/rng/philox4x32 known answers", [] {
    struct Kat {
      uint64_t seed, stream, index;
      uint32_t want[4];
    };
    const Kat kats[] = {
        {0, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {~0ull, ~0ull, ~0ull, {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (const Kat& k : kats) {
      const Philox4 got = philox4x32(k.seed, k.stream, k.index);
      for (int w = 0; w < 4; ++w)
        CMAE_TEST_CHECK(got.v[w] == k.want[w], "seed ", k.seed, " stream ", k.stream, " index ", k.index, ": word ", w, " is ", got.v[w],
                 ", want ", k.want[w]);
    }
    return std::string("3 Random123 vectors exact");
  });

  // uniform01 = the top 24 bits of word 0 times 2^-24: in [0, 1), never 1, with the moments of U(0, 1).
  suite.add("host/rng/uniform01", [] {
    CMAE_TEST_CHECK(uint_to_unit_float(0u) == 0.0f, uint_to_unit_float(0u));
    CMAE_TEST_CHECK(uint_to_unit_float(0xFFFFFFFFu) == 1.0f - 0x1p-24f, uint_to_unit_float(0xFFFFFFFFu));
    const uint64_t n = 200003;
    double sum = 0, sq = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const float u = uniform01(42, make_stream(RngStream::Test, 7), i);
      const uint32_t word = philox4x32(42, make_stream(RngStream::Test, 7), i).v[0];
      CMAE_TEST_CHECK(static_cast<double>(u) == static_cast<double>(word >> 8) * 0x1p-24, "index ", i, ": ", u, " from word ", word);
      CMAE_TEST_CHECK(u >= 0.0f && u < 1.0f, "index ", i, ": ", u);
      sum += u;
      sq += static_cast<double>(u) * u;
    }
    const double mean = sum / static_cast<double>(n), var = sq / static_cast<double>(n) - mean * mean;
    CMAE_TEST_CHECK(std::fabs(mean - 0.5) < 4.0 * std::sqrt(1.0 / 12.0 / static_cast<double>(n)), "mean ", mean);
    CMAE_TEST_CHECK(std::fabs(var - 1.0 / 12.0) < 2e-3, "variance ", var);
    return "mean " + std::to_string(mean) + ", variance " + std::to_string(var);
  });

  // normal01 against Box–Muller in float64 from the same Philox words; finite and bounded by
  // sqrt(−2 ln 2^-24) (1 − u >= 2^-24), with the moments of N(0, 1).
  suite.add("host/rng/normal01", [] {
    const uint64_t n = 100003;
    const uint64_t stream = make_stream(RngStream::Init, 3);
    Floats got(n);
    Doubles want(n);
    double sum = 0, sq = 0;
    const double bound = std::sqrt(-2.0 * std::log(0x1p-24));
    for (uint64_t i = 0; i < n; ++i) {
      got[i] = normal01(9, stream, i);
      const Philox4 r = philox4x32(9, stream, i);
      const double u1 = 1.0 - static_cast<double>(r.v[0] >> 8) * 0x1p-24, u2 = static_cast<double>(r.v[1] >> 8) * 0x1p-24;
      want[i] = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
      CMAE_TEST_CHECK(std::isfinite(got[i]) && std::fabs(got[i]) <= bound * (1 + 1e-6), "index ", i, ": ", got[i]);
      sum += got[i];
      sq += static_cast<double>(got[i]) * got[i];
    }
    const double mean = sum / static_cast<double>(n), var = sq / static_cast<double>(n) - mean * mean;
    CMAE_TEST_CHECK(std::fabs(mean) < 4.0 / std::sqrt(static_cast<double>(n)), "mean ", mean);
    CMAE_TEST_CHECK(std::fabs(var - 1.0) < 0.02, "variance ", var);
    return check("normal01", got, want, kNormal) + "; mean " + std::to_string(mean) + ", variance " + std::to_string(var);
  });

  // Purpose in the high 16 bits, the counter in the low 48 (cut, so purposes never collide).
  suite.add("host/rng/make_stream", [] {
    CMAE_TEST_CHECK(make_stream(RngStream::Mask, 5) == ((uint64_t{3} << 48) | 5), make_stream(RngStream::Mask, 5));
    CMAE_TEST_CHECK(make_stream(RngStream::Test, ~0ull) == ((uint64_t{1} << 48) | 0xFFFFFFFFFFFFull), make_stream(RngStream::Test, ~0ull));
    CMAE_TEST_CHECK(make_stream(RngStream::Init, uint64_t{1} << 48) == (uint64_t{2} << 48), make_stream(RngStream::Init, uint64_t{1} << 48));
    return std::string("exact");
  });
}

// The float64 references that have no TypeScript twin (test/reference/*.ts holds the others, with
// their finite-difference checks in test/ops/*.test.ts): their gradients against central finite
// differences of their own losses.
void add_reference_cases(Suite& suite) {
  // DenseCL's dense InfoNCE w.r.t. q, every element of dq: dloss·(L(q + h·e_i) − L(q − h·e_i))/2h,
  // h = 1e-6. (The eps-clamped branch of a zero row is not differentiable at this h; the op cases'
  // "zero query row" holds the kernels to the reference's clamp gradient.)
  suite.add("host/reference/dense_infonce finite differences", [] {
    const int64_t B = 3, Lq = 2, Lk = 3, E = 4;
    const double tau = 0.2, scale = 2 * tau, dloss = 0.7, h = 1e-6;
    HostRng rng(17);
    Doubles q(static_cast<size_t>(B * Lq * E)), k(static_cast<size_t>(B * Lk * E));
    for (double& v : q) v = rng.normal();
    for (double& v : k) v = rng.normal();
    const Ints match = {2, 0, 1, 1, 0, 2};
    const Doubles grad = ref::dense_infonce(q, k, match, B, Lq, Lk, E, tau, scale, dloss).grad;
    double worst = 0;
    for (size_t i = 0; i < q.size(); ++i) {
      Doubles plus = q, minus = q;
      plus[i] += h;
      minus[i] -= h;
      const double fd = dloss * (ref::dense_infonce(plus, k, match, B, Lq, Lk, E, tau, scale, 0).loss -
                                 ref::dense_infonce(minus, k, match, B, Lq, Lk, E, tau, scale, 0).loss) / (2 * h);
      worst = std::max(worst, std::fabs(fd - grad[i]));
      CMAE_TEST_CHECK(std::fabs(fd - grad[i]) <= 1e-7 + 1e-6 * std::fabs(fd), "dq[", i, "]: finite difference ", fd, ", reference ", grad[i]);
    }
    return "max |fd − dq| " + std::to_string(worst);
  });
}

}  // namespace

void add_host_cases(Suite& suite) {
  add_math_cases(suite);
  add_rng_cases(suite);
  add_reference_cases(suite);
}

}  // namespace cmae::op_tests
