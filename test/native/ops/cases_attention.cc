// Cases of ops/attention.h: the attention core of a timm ViT block, forward (out and, where the
// backend saves the probabilities, saved) and backward (dqkv from the backend's own saved state).
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
};

// One token (softmax = 1), head dims 3, 4, 6 (no SIMD width), the ViT-tiny block (N = 65 tokens
// with the cls token, D = 192, H = 3) and a D = 128, H = 4 one; scale 6 makes scores spread over
// ±100, so the e^-80 flush rule zeroes some probabilities.
const AttentionShape kShapes[] = {
    {1, 1, 4, 1, 1.0, kUnitScale},    {2, 5, 12, 3, 1.0, kUnitScale},   {1, 7, 6, 2, 1.0, kUnitScale},
    {3, 17, 24, 4, 1.0, kUnitScale},  {2, 65, 192, 3, 1.0, kUnitScale}, {1, 65, 128, 4, 1.0, kUnitScale},
    {1, 33, 64, 2, 6.0, kLargeScores},
};

std::string label(const AttentionShape& s) {
  std::string l = shape_label("B", s.B, "N", s.N, "D", s.D, "H", s.H);
  return s.scale == 1.0 ? l : l + " qkv x" + std::to_string(static_cast<int>(s.scale));
}

// Runs the forward; checks out, and saved against the probabilities when the backend saves them
// (the CPU's B·H·N·N floats). Any other saved state is opaque: only its guard is checked here,
// and attention_backward checks its use.
Buffer forward(OpRun& run, const AttentionShape& s, const Buffer& qkv, bool check_out) {
  const auto [B, N, D, H, scale, tol] = s;
  const int64_t saved_floats = run.backend().attention_saved_floats(B, N, H);
  const Buffer out = run.output("out", {B, N, D});
  const Buffer saved = run.output("saved", {saved_floats});
  run.backend().attention_forward(out.f32(), saved.f32(), qkv.f32(), B, N, D, H);
  if (!check_out) {  // attention_backward's case: the forward only provides saved
    run.download(out);
    run.download(saved);
    return saved;
  }
  const ref::Attention want = ref::attention_forward(qkv.host(), B, N, D, H);
  run.expect_close(out, want.out, tol.out);
  if (saved_floats != B * H * N * N) {  // not the probabilities: opaque, its guard only
    run.download(saved);
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
      const Buffer qkv = run.input("qkv", run.normal(s.B * s.N * 3 * s.D, s.scale), {s.B, s.N, 3 * s.D});
      forward(run, s, qkv, /*check_out=*/true);
    }).thread_invariant = vit;
    table.add("attention", "attention_backward", label(s), [s](OpRun& run) {
      const auto [B, N, D, H, scale, tol] = s;
      const Buffer qkv = run.input("qkv", run.normal(B * N * 3 * D, scale), {B, N, 3 * D});
      const Buffer saved = forward(run, s, qkv, /*check_out=*/false);
      const Buffer dout = run.input("dout", run.normal(B * N * D), {B, N, D});
      const Buffer dqkv = run.output("dqkv", {B, N, 3 * D});
      run.backend().attention_backward(dqkv.f32(), dout.f32(), qkv.f32(), saved.f32(), B, N, D, H);
      run.expect_close(dqkv, ref::attention_backward(dout.host(), qkv.host(), B, N, D, H), tol.dqkv);
    }).thread_invariant = vit;
  }

  // The count itself: what forward may write and backward reads. The CPU saves the probabilities;
  // another backend may save less (FlashAttention: the row log-sum-exp), never a negative count.
  table.add("attention", "attention_saved_floats", "B,N,H in {1,2,64}x{1,65,197}x{1,3,12}", [](OpRun& run) {
    for (int64_t B : {1, 2, 64})
      for (int64_t N : {1, 65, 197})
        for (int64_t H : {1, 3, 12}) {
          const int64_t floats = run.backend().attention_saved_floats(B, N, H);
          CMAE_TEST_CHECK(floats >= 0, "B=", B, " N=", N, " H=", H, ": ", floats);
          if (run.backend().device() == Device::CPU)
            CMAE_TEST_CHECK(floats == B * H * N * N, "the CPU saves att (B, H, N, N): B=", B, " N=", N, " H=", H, ": ", floats);
        }
  });
}

}  // namespace cmae::op_tests
