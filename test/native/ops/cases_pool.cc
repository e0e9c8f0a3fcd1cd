// Cases of ops/pool.h: the mean over tokens [start, N) and F.normalize, forward and backward, with
// rows below eps (the clamp) and the aliasing the contract allows.
#include <cmath>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

// test/ops/loss.test.ts's bounds.
constexpr Tolerance kMeanPool{1e-6, 1e-5};
constexpr Tolerance kL2Out{1e-7, 1e-5};
constexpr Tolerance kL2Norm{1e-7, 1e-6};
constexpr Tolerance kL2Backward{1e-6, 1e-5};
// dout/(N − start): one rounding, or two through a reciprocal.
constexpr Tolerance kTwoRoundings{0.0, 0x1p-22};

struct PoolShape {
  int64_t B, N, D, start;
};

std::string label(const PoolShape& s) { return shape_label("B", s.B, "N", s.N, "D", s.D, "start", s.start); }

enum class Rows {
  Normal,
  WithZeroRow,  // row 0 all zeros: norm 0 < eps = 1e-12
  BelowEps,     // eps 0.5 and every third row of norm ~0.2
};

struct L2Case {
  int64_t R, D;
  Rows rows = Rows::Normal;
  bool in_place = false;
};

std::string label(const L2Case& c) {
  std::string l = shape_label("R", c.R, "D", c.D);
  if (c.rows == Rows::WithZeroRow) l += " zero row";
  if (c.rows == Rows::BelowEps) l += " eps=0.5 rows below eps";
  return c.in_place ? l + " in place" : l;
}

float eps_of(const L2Case& c) { return c.rows == Rows::BelowEps ? 0.5f : 1e-12f; }

Floats l2_input(OpRun& run, const L2Case& c) {
  Floats x = run.normal(c.R * c.D);
  for (int64_t r = 0; r < c.R; ++r)
    for (int64_t d = 0; d < c.D; ++d) {
      float& v = x[static_cast<size_t>(r * c.D + d)];
      if (c.rows == Rows::WithZeroRow && r == 0) v = 0.0f;
      if (c.rows == Rows::BelowEps && r % 3 == 0) v *= 0.2f / std::sqrt(static_cast<float>(c.D));
    }
  return x;
}

void run_l2_forward(OpRun& run, const L2Case& c) {
  const auto [R, D, rows, in_place] = c;
  const Floats x = l2_input(run, c);
  const Buffer inp = in_place ? run.accumulator("inp=out", x, {R, D}) : run.input("inp", x, {R, D});
  const Buffer out = in_place ? inp : run.output("out", {R, D});
  const Buffer norm = run.output("norm", {R});
  run.backend().l2_normalize_forward(out.f32(), norm.f32(), inp.f32(), R, D, eps_of(c));
  const ref::L2Normalize want = ref::l2_normalize(x, R, D, eps_of(c));
  run.expect_close(out, want.out, kL2Out);
  run.expect_close(norm, want.norm, kL2Norm);
}

void run_l2_backward(OpRun& run, const L2Case& c) {
  const auto [R, D, rows, in_place] = c;
  const Floats x = l2_input(run, c);
  const Buffer inp = run.input("inp", x, {R, D});
  const Buffer norm = run.input("norm", ref::to_floats(ref::l2_normalize(x, R, D, eps_of(c)).norm), {R});
  const Floats dout_values = run.normal(R * D);
  const Buffer dout = in_place ? run.accumulator("dout=dinp", dout_values, {R, D}) : run.input("dout", dout_values, {R, D});
  const Buffer dinp = in_place ? dout : run.output("dinp", {R, D});
  run.backend().l2_normalize_backward(dinp.f32(), dout.f32(), inp.f32(), norm.f32(), R, D, eps_of(c));
  run.expect_close(dinp, ref::l2_normalize_backward(dout_values, x, R, D, eps_of(c)), kL2Backward);
}

struct MatchCase {
  int64_t B, La, Lk, D;
  int64_t a_prefix = 0, k_prefix = 0;  // leading rows per sample that are not tokens (the cls token: 1)
  bool ties = false;                   // exact ties: duplicated key rows that some queries equal
};

std::string label(const MatchCase& c) {
  std::string l = shape_label("B", c.B, "La", c.La, "Lk", c.Lk, "D", c.D);
  if (c.a_prefix || c.k_prefix) l += " " + shape_label("a_prefix", c.a_prefix, "k_prefix", c.k_prefix);
  if (c.ties) l += " exact ties";
  return l;
}

void run_match_tokens(OpRun& run, const MatchCase& c) {
  const auto [B, La, Lk, D, a_prefix, k_prefix, ties] = c;
  const int64_t a_stride = (a_prefix + La) * D, k_stride = (k_prefix + Lk) * D;
  // Keys at different scales (the argmax is over cosines, not dot products), and a zero key row
  // (its cosine is 0: the eps clamp) in every sample.
  Floats k = run.normal(B * k_stride);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < Lk; ++j)
      for (int64_t d = 0; d < D; ++d) {
        float& v = k[static_cast<size_t>(b * k_stride + (k_prefix + j) * D + d)];
        v = j == Lk / 2 && Lk > 1 ? 0.0f : v * static_cast<float>(1 + j % 3);
      }
  Floats a = run.normal(B * a_stride);
  if (ties && Lk >= 4)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t d = 0; d < D; ++d) {
        // Keys 3 and 1 equal (the later one must lose), query 0 equal to them.
        const size_t k1 = static_cast<size_t>(b * k_stride + (k_prefix + 1) * D + d);
        k[static_cast<size_t>(b * k_stride + (k_prefix + 3) * D + d)] = k[k1];
        a[static_cast<size_t>(b * a_stride + a_prefix * D + d)] = k[k1];
      }
  const Buffer a_b = run.input("a", a, {B * a_stride});
  const Buffer k_b = run.input("k", k, {B * k_stride});
  const Buffer match = run.output("match", {B, La}, ElementType::I32);
  run.backend().match_tokens(match.i32(), a_b.f32() + a_prefix * D, a_stride, k_b.f32() + k_prefix * D, k_stride, B, La, Lk, D);
  Floats a_tokens(a.begin() + a_prefix * D, a.end()), k_tokens(k.begin() + k_prefix * D, k.end());
  Doubles margin;
  const Ints want = ref::match_tokens(a_tokens, a_stride, k_tokens, k_stride, B, La, Lk, D, &margin);
  // Random data must not come within rounding of a tie: the backends' dot products sum in other
  // orders (a designed tie compares equal rows, whose sums match bit for bit).
  for (size_t r = 0; r < margin.size(); ++r)
    CMAE_TEST_CHECK(margin[r] > 1e-9, "query row ", r, " has a near-tie (margin ", margin[r], "): change the case's data");
  if (ties && Lk >= 4)
    for (int64_t b = 0; b < B; ++b) CMAE_TEST_CHECK(want[static_cast<size_t>(b * La)] == 1, "the designed tie of sample ", b, " is lost");
  run.expect_equal(match, want);
}

}  // namespace

void add_pool_cases(CaseTable& table) {
  // One token, odd sizes, ViT-tiny's 65 tokens without the cls token (start 1), a single pooled
  // token (start = N − 1), and a whole ViT-tiny batch (64 samples) for the thread-count case.
  const PoolShape pools[] = {{1, 1, 1, 0}, {3, 7, 5, 0}, {2, 65, 192, 1}, {4, 17, 33, 16}, {64, 65, 192, 1}};
  for (const PoolShape& s : pools) {
    const bool big = s.B == 64;
    table.add("pool", "mean_pool_forward", label(s), [s](OpRun& run) {
      const auto [B, N, D, start] = s;
      const Buffer inp = run.input("inp", run.normal(B * N * D), {B, N, D});
      const Buffer out = run.output("out", {B, D});
      run.backend().mean_pool_forward(out.f32(), inp.f32(), B, N, D, start);
      run.expect_close(out, ref::mean_pool(inp.host(), B, N, D, start), kMeanPool);
    }).thread_invariant = big;
    // Rows [0, start) must be set to 0 too (they start as NaN).
    table.add("pool", "mean_pool_backward", label(s), [s](OpRun& run) {
      const auto [B, N, D, start] = s;
      const Buffer dout = run.input("dout", run.normal(B * D), {B, D});
      const Buffer dinp = run.output("dinp", {B, N, D});
      run.backend().mean_pool_backward(dinp.f32(), dout.f32(), B, N, D, start);
      run.expect_close(dinp, ref::mean_pool_backward(dout.host(), B, N, D, start), kTwoRoundings);
    }).thread_invariant = big;
  }

  // One key, D = 2 (not 1: there every cosine is ±|a|, ties in exact arithmetic that each backend's
  // rounding breaks its own way), odd sizes, exact ties, the cls-token strides of the model's calls (the online
  // view's 4 visible tokens against the momentum view's 16, micro), and a thread-count case (ViT-tiny
  // on 32×32 at batch 64 with 75 % masked: 16 visible tokens of 192 against 64).
  const MatchCase matches[] = {{2, 3, 1, 4}, {3, 5, 7, 2}, {3, 5, 7, 9}, {2, 6, 8, 5, 0, 0, true},
                               {4, 4, 16, 32, 1, 1}, {3, 16, 16, 32, 1, 1, true}, {64, 16, 64, 192, 1, 1}};
  for (const MatchCase& c : matches) {
    table.add("pool", "match_tokens", label(c), [c](OpRun& run) { run_match_tokens(run, c); }).thread_invariant = c.B == 64;
  }

  // D = 1 (x̂ = ±1), odd sizes, the CMAE projector output (256) for a batch of 64.
  // (512, 256) is the thread-count case (rows split 64 at a time at least).
  const L2Case l2[] = {{1, 1}, {7, 13}, {64, 256}, {512, 256}, {7, 13, Rows::WithZeroRow}, {9, 13, Rows::BelowEps},
                       {7, 13, Rows::Normal, true}, {9, 13, Rows::BelowEps, true}};
  for (const L2Case& c : l2) {
    const bool big = c.R == 512;
    table.add("pool", "l2_normalize_forward", label(c), [c](OpRun& run) { run_l2_forward(run, c); }).thread_invariant = big;
    table.add("pool", "l2_normalize_backward", label(c), [c](OpRun& run) { run_l2_backward(run, c); }).thread_invariant = big;
  }
}

}  // namespace cmae::op_tests
