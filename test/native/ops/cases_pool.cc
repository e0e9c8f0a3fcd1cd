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
