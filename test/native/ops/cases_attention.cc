// Cases of ops/attention.h: the attention core of a timm ViT block, forward (out and the saved
// state of the backend's kind: probabilities or row log-sum-exp) and backward (dqkv from the
// backend's own saved state).
#include <cmath>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

struct AttentionTolerance {
  Tolerance probabilities, out, dqkv;
};
// N(0, 1) qkv: float32 scores and softmax against float64 (as test/ops/attention.test.ts).
constexpr AttentionTolerance kUnitScale{{2e-7, 1e-5}, {1e-6, 1e-5}, {2e-6, 1e-5}};
// qkv x6: scores of std 36 reach ±150, where one float32 rounding is ~1e-5 absolute; that moves
// each probability by ~1e-5 relative, times |v| ~ 6 in out and |q|·|k|·|v| ~ 200 in dqkv.
constexpr AttentionTolerance kLargeScores{{1e-6, 1e-4}, {2e-4, 1e-4}, {3e-3, 1e-4}};

struct AttentionShape {
  int64_t B, N, D, H;
  double scale;  // of the N(0, 1) qkv values; large scales push scores far below the row max
  AttentionTolerance tol;
  int64_t offset = 0;  // floats before qkv, dout and dqkv in their buffers: misaligned rows
};

// One token (softmax = 1), head dims 3, 4, 6 (no SIMD width), the ViT-tiny block (N = 65 tokens
// with the cls token, D = 192, H = 3) and a D = 128, H = 4 one; scale 6 makes scores spread over
// ±100, so the e^-80 flush rule zeroes some probabilities.
// Also the base decoder's length (N = 197) with hd = 128, an hd of 80, and a misaligned case (rows
// that start one float off a 16-byte boundary).
const AttentionShape kShapes[] = {
    {1, 1, 4, 1, 1.0, kUnitScale},    {2, 5, 12, 3, 1.0, kUnitScale},   {1, 7, 6, 2, 1.0, kUnitScale},
    {3, 17, 24, 4, 1.0, kUnitScale},  {2, 65, 192, 3, 1.0, kUnitScale}, {1, 65, 128, 4, 1.0, kUnitScale},
    {1, 33, 64, 2, 6.0, kLargeScores}, {1, 197, 256, 2, 1.0, kUnitScale}, {1, 45, 80, 1, 1.0, kUnitScale},
    {2, 17, 64, 2, 1.0, kUnitScale, /*offset=*/1},
};

std::string label(const AttentionShape& s) {
  std::string l = shape_label("B", s.B, "N", s.N, "D", s.D, "H", s.H);
  if (s.scale != 1.0) l += " qkv x" + std::to_string(static_cast<int>(s.scale));
  if (s.offset != 0) l += " offset " + std::to_string(s.offset);
  return l;
}

// The values after the first `offset` (what an op given buffer + offset sees).
Floats without_prefix(const Floats& values, int64_t offset) { return Floats(values.begin() + offset, values.end()); }
// The reference of a whole buffer whose first `offset` elements the op must leave NaN.
Doubles after_nan_prefix(const Doubles& want, int64_t offset) {
  Doubles full(static_cast<size_t>(offset), std::nan(""));
  full.insert(full.end(), want.begin(), want.end());
  return full;
}

// Tolerance of the saved row log-sum-exp: the float32 score and log rounding (|L| ~ the largest score).
constexpr Tolerance kLogSumExp{1e-6, 2.4e-7};

// Runs the forward on qkv (at qkv_at, `offset` floats into its buffer); checks out and saved: the
// probabilities with the flush rule, or the row log-sum-exp, as the backend says it saves.
Buffer forward(OpRun& run, const AttentionShape& s, const Buffer& qkv, const float* qkv_at, bool check_out) {
  const auto [B, N, D, H, scale, tol, offset] = s;
  const AttentionSaved kind = run.backend().attention_saved_kind();
  const int64_t saved_floats = run.backend().attention_saved_floats(B, N, H);
  const Buffer out = run.output("out", {offset + B * N * D});
  const Buffer saved = run.output("saved", {saved_floats});
  run.backend().attention_forward(out.f32() + offset, saved.f32(), qkv_at, B, N, D, H);
  if (!check_out) {  // attention_backward's case: the forward only provides saved
    run.download(out);
    run.download(saved);
    return saved;
  }
  const ref::Attention want = ref::attention_forward(without_prefix(qkv.host(), offset), B, N, D, H);
  run.expect_close(out, after_nan_prefix(want.out, offset), tol.out);
  if (kind == AttentionSaved::LogSumExp) {
    run.expect_close(saved, want.lse, kLogSumExp);
    return saved;
  }
  run.expect_close(saved, want.att, tol.probabilities);
  // The flush rule exactly, away from its threshold (a score's float32 rounding is far below 5):
  // gaps below −85 give exactly 0, gaps above −75 a positive probability (e^-75 is a normal float).
  const Floats att = run.download(saved);
  int64_t flushed = 0;
  for (size_t i = 0; i < att.size(); ++i) {
    const double gap = want.score_gap[i];
    if (gap < -85.0) {
      CMAE_TEST_CHECK(att[i] == 0.0f, "saved", index_string(static_cast<int64_t>(i), {B, H, N, N}), " = ", att[i], " with a score ", gap,
               " below the row's largest: must be flushed to 0");
      ++flushed;
    } else if (gap > -75.0) {
      CMAE_TEST_CHECK(att[i] > 0.0f, "saved", index_string(static_cast<int64_t>(i), {B, H, N, N}), " = ", att[i], " with a score ", gap,
               " below the row's largest: must not be flushed");
    }
  }
  if (scale > 1.0) CMAE_TEST_CHECK(flushed > 0, "case error: no score falls below the flush threshold");
  return saved;
}

}  // namespace

void add_attention_cases(CaseTable& table) {
  for (const AttentionShape& s : kShapes) {
    const bool vit = s.N == 65 && s.D == 192;
    table.add("attention", "attention_forward", label(s), [s](OpRun& run) {
      const Buffer qkv = run.input("qkv", run.normal(s.offset + s.B * s.N * 3 * s.D, s.scale), {s.offset + s.B * s.N * 3 * s.D});
      forward(run, s, qkv, qkv.f32() + s.offset, /*check_out=*/true);
    }).thread_invariant = vit;
    table.add("attention", "attention_backward", label(s), [s](OpRun& run) {
      const auto [B, N, D, H, scale, tol, offset] = s;
      const Buffer qkv = run.input("qkv", run.normal(offset + B * N * 3 * D, scale), {offset + B * N * 3 * D});
      const Buffer saved = forward(run, s, qkv, qkv.f32() + offset, /*check_out=*/false);
      const Buffer dout = run.input("dout", run.normal(offset + B * N * D), {offset + B * N * D});
      const Buffer dqkv = run.output("dqkv", {offset + B * N * 3 * D});
      run.backend().attention_backward(dqkv.f32() + offset, dout.f32() + offset, qkv.f32() + offset, saved.f32(), B, N, D, H);
      const Doubles want = ref::attention_backward(without_prefix(dout.host(), offset), without_prefix(qkv.host(), offset), B, N, D, H);
      run.expect_close(dqkv, after_nan_prefix(want, offset), tol.dqkv);
    }).thread_invariant = vit;
  }

  // cls_attention: the cls query's probabilities over the patch keys, every element against float64
  // (the flush rule of the reference's probabilities is below the tolerance: e^-80 relative).
  for (const AttentionShape& s : kShapes) {
    if (s.N < 2) continue;  // needs a cls token and a patch
    table.add("attention", "cls_attention", label(s), [s](OpRun& run) {
      const auto [B, N, D, H, scale, tol, offset] = s;
      const Buffer qkv = run.input("qkv", run.normal(offset + B * N * 3 * D, scale), {offset + B * N * 3 * D});
      const Buffer out = run.output("out", {offset + B * H * (N - 1)});
      run.backend().cls_attention(out.f32() + offset, qkv.f32() + offset, B, N, D, H);
      run.expect_close(out, after_nan_prefix(ref::cls_attention(without_prefix(qkv.host(), offset), B, N, D, H), offset), tol.probabilities);
    }).thread_invariant = s.N == 65 && s.D == 192;
  }
  // B·H = 130 rows of N = 5: more rows than one thread's share, a row per item.
  table.add("attention", "cls_attention", "B=26 N=5 D=20 H=5", [](OpRun& run) {
    const int64_t B = 26, N = 5, D = 20, H = 5;
    const Buffer qkv = run.input("qkv", run.normal(B * N * 3 * D), {B * N * 3 * D});
    const Buffer out = run.output("out", {B * H * (N - 1)});
    run.backend().cls_attention(out.f32(), qkv.f32(), B, N, D, H);
    run.expect_close(out, ref::cls_attention(qkv.host(), B, N, D, H), kUnitScale.probabilities);
  }).thread_invariant = true;

  // The count itself: what forward may write and backward reads. The CPU saves the probabilities;
  // another backend may save less (FlashAttention: the row log-sum-exp), never a negative count.
  table.add("attention", "attention_saved_floats", "B,N,H in {1,2,64}x{1,65,197}x{1,3,12}", [](OpRun& run) {
    for (int64_t B : {1, 2, 64})
      for (int64_t N : {1, 65, 197})
        for (int64_t H : {1, 3, 12}) {
          const int64_t floats = run.backend().attention_saved_floats(B, N, H);
          CMAE_TEST_CHECK(floats >= 0, "B=", B, " N=", N, " H=", H, ": ", floats);
          const bool probabilities = run.backend().attention_saved_kind() == AttentionSaved::Probabilities;
          CMAE_TEST_CHECK(floats == (probabilities ? B * H * N * N : B * H * N), "B=", B, " N=", N, " H=", H, ": ", floats);
          if (run.backend().device() == Device::CPU) CMAE_TEST_CHECK(probabilities, "the CPU saves the probabilities");
        }
  });
}

}  // namespace cmae::op_tests
