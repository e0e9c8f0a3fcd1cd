// Cases of ops/rows.h: the small row steps between the big ops (residual adds, bias and cls-token
// gradient sums with a row stride, a transposed gradient, the cls row broadcast).
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct ColumnSumCase {
  int64_t R, C, ld;
};

// src: R rows of ld floats (the last one C long), NaN between the C columns that are read.
Floats strided_rows(OpRun& run, int64_t R, int64_t C, int64_t ld) {
  Floats v(static_cast<size_t>(R > 0 ? (R - 1) * ld + C : 0), kNaN);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) v[static_cast<size_t>(r * ld + c)] = static_cast<float>(run.rng().normal());
  return v;
}

}  // namespace

void add_row_cases(CaseTable& table) {
  // 1, odd sizes, the ViT-tiny residual stream (4160×192), and 4·16384 + 7 for the thread-count case.
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1031}, int64_t{4 * 16384 + 7}, int64_t{4160 * 192}})
    table.add("rows", "add_inplace", shape_label("n", n), [n](OpRun& run) {
      const Buffer dst = run.accumulator("dst", run.normal(n), {n});
      const Buffer src = run.input("src", run.normal(n), {n});
      run.backend().add_inplace(dst.f32(), src.f32(), n);
      run.expect_close(dst, ref::add(dst.host(), src.host()), kOneRounding);
    }).thread_invariant = n == 4 * 16384 + 7;

  // Bias gradients (ld = C) from 1 row to ViT-tiny's 4160, R not a multiple of the 32-row blocks,
  // and the cls-token gradient (the cls rows of a (64, 65, 192) buffer: ld = 65·192).
  const ColumnSumCase sums[] = {{1, 1, 1}, {33, 7, 7}, {100, 5, 9}, {65, 192, 192}, {4160, 192, 192}, {64, 192, 65 * 192}};
  for (const ColumnSumCase& c : sums)
    table.add("rows", "column_sums_add", shape_label("R", c.R, "C", c.C, "ld", c.ld), [c](OpRun& run) {
      const Buffer src = run.input("src", strided_rows(run, c.R, c.C, c.ld), {static_cast<int64_t>(
                                                                              c.R > 0 ? (c.R - 1) * c.ld + c.C : 0)});
      const Buffer dst = run.accumulator("dst", run.normal(c.C), {c.C});
      run.backend().column_sums_add(dst.f32(), src.f32(), c.R, c.C, c.ld);
      run.expect_close(dst, ref::column_sums_add(dst.host(), src.host(), c.R, c.C, c.ld), float_sum_tolerance(c.R));
    }).thread_invariant = c.R == 4160;

  const int64_t transposes[][2] = {{1, 1}, {7, 13}, {192, 576}};
  for (const auto& rc : transposes) {
    const int64_t R = rc[0], C = rc[1];
    table.add("rows", "transpose_add", shape_label("R", R, "C", C), [R, C](OpRun& run) {
      const Buffer dst = run.accumulator("dst", run.normal(C * R), {C, R});
      const Buffer src = run.input("src", run.normal(R * C), {R, C});
      run.backend().transpose_add(dst.f32(), src.f32(), R, C);
      run.expect_close(dst, ref::transpose_add(dst.host(), src.host(), R, C), kOneRounding);
    }).thread_invariant = R == 192;
  }

  // The cls row of every sample: ld > D, the values between the rows must be kept.
  const int64_t broadcasts[][3] = {{1, 1, 1}, {5, 7, 21}, {64, 192, 65 * 192}};
  for (const auto& cdl : broadcasts) {
    const int64_t count = cdl[0], D = cdl[1], ld = cdl[2];
    table.add("rows", "broadcast_row", shape_label("count", count, "D", D, "ld", ld), [count, D, ld](OpRun& run) {
      const Buffer dst = run.accumulator("dst", run.normal(count * ld), {count, ld});
      const Buffer row = run.input("row", run.normal(D), {D});
      run.backend().broadcast_row(dst.f32(), ld, row.f32(), count, D);
      run.expect_close(dst, ref::broadcast_row(dst.host(), ld, row.host(), count, D), kExact);
    });
  }

  // Drop path's per-sample factors (0, 1/keep, and arbitrary ones), out of place (NaN-filled output)
  // and in place; n odd (the scalar CUDA path), a multiple of 4, and a tiny classifier's
  // (65·192) rows at batch 64 across threads (the thread-count case).
  const int64_t scaled[][2] = {{1, 1}, {3, 7}, {5, 12}, {64, 65 * 192}};
  for (const auto& rn : scaled) {
    const int64_t R = rn[0], n = rn[1];
    auto factors = [R](OpRun& run) {
      Floats s = run.normal(R);
      if (R > 1) s[0] = 0.0f;
      if (R > 2) s[1] = 1.0f / 0.9f;
      return s;
    };
    table.add("rows", "scale_rows", shape_label("R", R, "n", n), [R, n, factors](OpRun& run) {
      const Buffer src = run.input("src", run.normal(R * n), {R, n});
      const Buffer scale = run.input("scale", factors(run), {R});
      const Buffer dst = run.output("dst", {R, n});
      run.backend().scale_rows(dst.f32(), src.f32(), scale.f32(), R, n);
      run.expect_close(dst, ref::scale_rows(src.host(), scale.host(), R, n), kOneRounding);
    }).thread_invariant = R == 64;
    table.add("rows", "scale_rows", shape_label("R", R, "n", n) + " in place", [R, n, factors](OpRun& run) {
      const Buffer x = run.accumulator("x", run.normal(R * n), {R, n});
      const Buffer scale = run.input("scale", factors(run), {R});
      run.backend().scale_rows(x.f32(), x.f32(), scale.f32(), R, n);
      run.expect_close(x, ref::scale_rows(x.host(), scale.host(), R, n), kOneRounding);
    });
  }

  // The first non-finite element: none (−1, also for n = 0), one NaN, +Inf first, −Inf last, several
  // (the smallest index wins, whichever thread saw it first), and a ViT-tiny batch of 64 images
  // with its bad pixel near the end of a late thread's range (the thread-count case).
  struct Bad {
    int64_t n;
    std::vector<std::pair<int64_t, float>> bad;
  };
  const float inf = std::numeric_limits<float>::infinity();
  const Bad scans[] = {{0, {}}, {1, {}}, {1031, {}}, {1031, {{500, kNaN}}}, {1031, {{0, inf}}}, {1031, {{1030, -inf}}},
                       {4 * 16384 + 7, {{60000, kNaN}, {20000, inf}, {40000, kNaN}}}, {64 * 3 * 32 * 32, {{64 * 3 * 32 * 32 - 5, kNaN}}}};
  for (const Bad& b : scans) {
    std::string label = shape_label("n", b.n) + " bad=";
    for (const auto& [i, v] : b.bad) label += std::to_string(i) + (std::isnan(v) ? "nan," : v > 0 ? "+inf," : "-inf,");
    table.add("rows", "first_nonfinite", label, [b](OpRun& run) {
      Floats x = run.normal(b.n);
      int64_t want = -1;
      for (const auto& [i, v] : b.bad) {
        x[static_cast<size_t>(i)] = v;
        want = want < 0 ? i : std::min(want, i);
      }
      const Buffer in = run.input("x", x, {b.n});
      const Buffer index = run.output("index", {1}, ElementType::I32);
      run.backend().first_nonfinite(index.i32(), in.f32(), b.n);
      run.expect_equal(index, {static_cast<int32_t>(want)});
    }).thread_invariant = b.n == 4 * 16384 + 7;
  }
}

}  // namespace cmae::op_tests
