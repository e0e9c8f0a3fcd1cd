// Cases of ops/norm.h: LayerNorm (alone, fused with the residual add before it, backward = and +=)
// and BatchNorm1d (training forward with running statistics, backward, inference), with the null
// affine parameters and running statistics and the in-place variants the contracts allow.
#include <algorithm>
#include <cmath>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

// test/ops/norm.test.ts's bounds (float32 rows of C terms against float64).
constexpr Tolerance kOut{2e-5, 1e-5};
constexpr Tolerance kMean{1e-6, 1e-6};
constexpr Tolerance kRstd{0.0, 2e-6};
constexpr Tolerance kDinp{2e-5, 1e-4};
constexpr Tolerance kRunning{1e-6, 2e-6};
constexpr Tolerance kInference{1e-6, 1e-6};

constexpr float kLayerNormEps = 1e-6f;  // timm's ViT
constexpr float kBatchNormEps = 1e-5f;  // PyTorch's default
constexpr float kMomentum = 0.1f;

struct Shape2 {
  int64_t R, C;
};
std::string label(Shape2 s, const std::string& variant = "") {
  const std::string l = shape_label("R", s.R, "C", s.C);
  return variant.empty() ? l : l + " " + variant;
}

// LayerNorm/BatchNorm parameters near their init (1 and 0) but not equal to it.
Floats norm_weight(OpRun& run, int64_t C) { return run.normal(C, 0.2, 1.0); }
Floats norm_bias(OpRun& run, int64_t C) { return run.normal(C, 0.2); }

// The buffers of a normalisation forward over x (rows, C): affine parameters, the input (the
// output too when in place), NaN-filled outputs and `stats` saved means and rstds.
struct NormForward {
  Buffer weight, bias, inp, out, mean, rstd;
};
NormForward norm_forward_buffers(OpRun& run, const Floats& x, int64_t rows, int64_t C, int64_t stats, bool in_place) {
  const Buffer weight = run.input("weight", norm_weight(run, C), {C});
  const Buffer bias = run.input("bias", norm_bias(run, C), {C});
  const Buffer inp = in_place ? run.accumulator("inp=out", x, {rows, C}) : run.input("inp", x, {rows, C});
  const Buffer out = in_place ? inp : run.output("out", {rows, C});
  return {weight, bias, inp, out, run.output("mean", {stats}), run.output("rstd", {stats})};
}

// ---- LayerNorm ----------------------------------------------------------------------------------

enum class Input { Normal, LargeMean };

void run_layernorm_forward(OpRun& run, Shape2 s, Input input, bool in_place) {
  const auto [R, C] = s;
  // |mean| >> std: 300 + 0.05·N(0, 1), the case a one-pass variance gets wrong.
  const Floats x = input == Input::LargeMean ? run.normal(R * C, 0.05, 300.0) : run.normal(R * C, 1.5, 0.2);
  const auto [weight, bias, inp, out, mean, rstd] = norm_forward_buffers(run, x, R, C, R, in_place);
  run.backend().layernorm_forward(out.f32(), mean.f32(), rstd.f32(), inp.f32(), weight.f32(), bias.f32(), R, C, kLayerNormEps);
  const ref::Norm want = ref::layernorm(x, weight.host(), bias.host(), R, C, kLayerNormEps);
  // A float32 mean of values ~300 is off by up to half an ulp (1.5e-5, 3e-4 of a standard
  // deviation): out cannot be better than that.
  run.expect_close(out, want.out, input == Input::LargeMean ? Tolerance{6e-4, 0.0} : kOut);
  run.expect_close(mean, want.mean, kMean);
  run.expect_close(rstd, want.rstd, kRstd);
}

enum class SumAlias { None, A, B };

void run_residual_layernorm(OpRun& run, Shape2 s, SumAlias alias) {
  const auto [R, C] = s;
  const Floats a = run.normal(R * C), b = run.normal(R * C, 0.5, 0.1);
  const Buffer weight = run.input("weight", norm_weight(run, C), {C});
  const Buffer bias = run.input("bias", norm_bias(run, C), {C});
  const Buffer a_b = alias == SumAlias::A ? run.accumulator("a=sum", a, {R, C}) : run.input("a", a, {R, C});
  const Buffer b_b = alias == SumAlias::B ? run.accumulator("b=sum", b, {R, C}) : run.input("b", b, {R, C});
  const Buffer sum = alias == SumAlias::A ? a_b : alias == SumAlias::B ? b_b : run.output("sum", {R, C});
  const Buffer out = run.output("out", {R, C});
  const Buffer mean = run.output("mean", {R});
  const Buffer rstd = run.output("rstd", {R});
  run.backend().residual_layernorm_forward(sum.f32(), out.f32(), mean.f32(), rstd.f32(), a_b.f32(), b_b.f32(), weight.f32(),
                                           bias.f32(), R, C, kLayerNormEps);
  // out is the LayerNorm of the float32 sum (the values the next block reads back).
  Floats float_sum(a.size());
  for (size_t i = 0; i < a.size(); ++i) float_sum[i] = a[i] + b[i];
  const ref::Norm want = ref::layernorm(float_sum, weight.host(), bias.host(), R, C, kLayerNormEps);
  run.expect_close(sum, ref::add(a, b), kOneRounding);
  run.expect_close(out, want.out, kOut);
  run.expect_close(mean, want.mean, kMean);
  run.expect_close(rstd, want.rstd, kRstd);
}

void run_layernorm_backward(OpRun& run, Shape2 s, bool accumulate_dinp) {
  const auto [R, C] = s;
  const Floats x = run.normal(R * C, 1.5, 0.2);
  const Buffer inp = run.input("inp", x, {R, C});
  const Buffer weight = run.input("weight", norm_weight(run, C), {C});
  const Buffer dout = run.input("dout", run.normal(R * C), {R, C});
  // The saved statistics as a forward would leave them: the float64 ones rounded.
  const ref::Norm stats = ref::layernorm(x, weight.host(), Floats(static_cast<size_t>(C)), R, C, kLayerNormEps);
  const Buffer mean = run.input("mean", ref::to_floats(stats.mean), {R});
  const Buffer rstd = run.input("rstd", ref::to_floats(stats.rstd), {R});
  const Buffer dinp = accumulate_dinp ? run.accumulator("dinp", run.normal(R * C), {R, C}) : run.output("dinp", {R, C});
  const Buffer dweight = run.accumulator("dweight", run.normal(C), {C});
  const Buffer dbias = run.accumulator("dbias", run.normal(C), {C});
  run.backend().layernorm_backward(dinp.f32(), dweight.f32(), dbias.f32(), dout.f32(), inp.f32(), weight.f32(), mean.f32(),
                                   rstd.f32(), R, C, accumulate_dinp);
  const ref::NormGrads want = ref::layernorm_backward(dout.host(), x, weight.host(), R, C, kLayerNormEps);
  // rstd amplifies the rounding of dout·weight: with C = 1 (variance 0) it is 1/sqrt(eps) = 1000,
  // and dinp, analytically 0, is the rounding error of dout·weight times 1000.
  double max_rstd = 1.0;
  for (double r : stats.rstd) max_rstd = std::max(max_rstd, r);
  run.expect_close(dinp, accumulate_dinp ? ref::plus(dinp.host(), want.dinp) : want.dinp, {kDinp.atol * max_rstd, kDinp.rtol});
  run.expect_close(dweight, ref::plus(dweight.host(), want.dweight), float_sum_tolerance(R));
  run.expect_close(dbias, ref::plus(dbias.host(), want.dbias), float_sum_tolerance(R));
}

// ---- BatchNorm1d --------------------------------------------------------------------------------

struct BatchNormCase {
  int64_t B, C;
  bool affine = true;
  bool running = true;
  bool in_place = false;
};

std::string label(const BatchNormCase& c) {
  std::string l = shape_label("B", c.B, "C", c.C);
  if (!c.affine) l += " weight,bias=null";
  if (!c.running) l += " running=null";
  if (c.in_place) l += " in place";
  return l;
}

void run_batchnorm_forward(OpRun& run, const BatchNormCase& c) {
  const auto [B, C, affine, running, in_place] = c;
  const Floats x = run.normal(B * C, 1.5, 0.2);
  const auto [weight, bias, inp, out, mean, rstd] = norm_forward_buffers(run, x, B, C, C, in_place);
  const Buffer running_mean = run.accumulator("running_mean", run.normal(running ? C : 0, 0.1), {running ? C : 0});
  const Buffer running_var = run.accumulator("running_var", run.uniform(running ? C : 0, 0.5, 1.5), {running ? C : 0});
  run.backend().batchnorm_forward(out.f32(), mean.f32(), rstd.f32(), running ? running_mean.f32() : nullptr,
                                  running ? running_var.f32() : nullptr, inp.f32(), affine ? weight.f32() : nullptr,
                                  affine ? bias.f32() : nullptr, B, C, kBatchNormEps, kMomentum);
  const ref::Norm want = ref::batchnorm(x, affine ? &weight.host() : nullptr, affine ? &bias.host() : nullptr, B, C, kBatchNormEps);
  run.expect_close(out, want.out, kOut);
  run.expect_close(mean, want.mean, kMean);
  run.expect_close(rstd, want.rstd, kRstd);
  if (running) {
    // PyTorch folds the UNBIASED batch variance into running_var.
    run.expect_close(running_mean, ref::running_update(running_mean.host(), want.mean, kMomentum), kRunning);
    run.expect_close(running_var, ref::running_update(running_var.host(), want.var_unbiased, kMomentum), kRunning);
  }
}

void run_batchnorm_backward(OpRun& run, const BatchNormCase& c) {
  const auto [B, C, affine, running, in_place] = c;
  const Floats x = run.normal(B * C, 1.5, 0.2);
  const Buffer inp = run.input("inp", x, {B, C});
  const Buffer weight = run.input("weight", norm_weight(run, C), {C});
  const Buffer dout = run.input("dout", run.normal(B * C), {B, C});
  const ref::Norm stats = ref::batchnorm(x, nullptr, nullptr, B, C, kBatchNormEps);
  const Buffer mean = run.input("mean", ref::to_floats(stats.mean), {C});
  const Buffer rstd = run.input("rstd", ref::to_floats(stats.rstd), {C});
  const Buffer dinp = run.output("dinp", {B, C});
  const Buffer dweight = run.accumulator("dweight", run.normal(affine ? C : 0), {affine ? C : 0});
  const Buffer dbias = run.accumulator("dbias", run.normal(affine ? C : 0), {affine ? C : 0});
  run.backend().batchnorm_backward(dinp.f32(), affine ? dweight.f32() : nullptr, affine ? dbias.f32() : nullptr, dout.f32(), inp.f32(),
                                   affine ? weight.f32() : nullptr, mean.f32(), rstd.f32(), B, C);
  const ref::NormGrads want = ref::batchnorm_backward(dout.host(), x, affine ? &weight.host() : nullptr, B, C, kBatchNormEps);
  run.expect_close(dinp, want.dinp, kDinp);
  if (affine) {
    run.expect_close(dweight, ref::plus(dweight.host(), want.dweight), float_sum_tolerance(B));
    run.expect_close(dbias, ref::plus(dbias.host(), want.dbias), float_sum_tolerance(B));
  }
}

void run_batchnorm_inference(OpRun& run, const BatchNormCase& c) {
  const auto [B, C, affine, running, in_place] = c;
  const Floats x = run.normal(B * C, 1.5, 0.2);
  const Buffer weight = run.input("weight", norm_weight(run, C), {C});
  const Buffer bias = run.input("bias", norm_bias(run, C), {C});
  const Buffer running_mean = run.input("running_mean", run.normal(C, 0.3), {C});
  const Buffer running_var = run.input("running_var", run.uniform(C, 0.2, 3.0), {C});
  const Buffer inp = in_place ? run.accumulator("inp=out", x, {B, C}) : run.input("inp", x, {B, C});
  const Buffer out = in_place ? inp : run.output("out", {B, C});
  run.backend().batchnorm_inference(out.f32(), inp.f32(), running_mean.f32(), running_var.f32(), affine ? weight.f32() : nullptr,
                                    affine ? bias.f32() : nullptr, B, C, kBatchNormEps);
  run.expect_close(out,
                   ref::batchnorm_inference(x, running_mean.host(), running_var.host(), affine ? &weight.host() : nullptr,
                                            affine ? &bias.host() : nullptr, B, C, kBatchNormEps),
                   kInference);
}

}  // namespace

void add_norm_cases(CaseTable& table) {
  // C = 1 (zero variance: out = bias), odd sizes, a D = 128 block, ViT-tiny's 4160×192 rows (64
  // samples × 65 tokens), and 1040×192 for the thread-count cases (a dozen row chunks).
  const Shape2 rows[] = {{1, 1}, {3, 7}, {65, 128}, {1040, 192}, {4160, 192}};
  for (const Shape2 s : rows) {
    const bool vit = s.R == 1040;
    table.add("norm", "layernorm_forward", label(s), [s](OpRun& run) {
      run_layernorm_forward(run, s, Input::Normal, false);
    }).thread_invariant = vit;
    table.add("norm", "residual_layernorm_forward", label(s),
               [s](OpRun& run) { run_residual_layernorm(run, s, SumAlias::None); }).thread_invariant = vit;
    table.add("norm", "layernorm_backward", label(s), [s](OpRun& run) {
      run_layernorm_backward(run, s, false);
    }).thread_invariant = vit;
  }
  table.add("norm", "layernorm_forward", label({5, 33}, "in place"),
             [](OpRun& run) { run_layernorm_forward(run, {5, 33}, Input::Normal, true); });
  table.add("norm", "layernorm_forward", label({16, 192}, "mean 300 std 0.05"),
             [](OpRun& run) { run_layernorm_forward(run, {16, 192}, Input::LargeMean, false); });
  table.add("norm", "residual_layernorm_forward", label({5, 33}, "sum=a"),
             [](OpRun& run) { run_residual_layernorm(run, {5, 33}, SumAlias::A); });
  table.add("norm", "residual_layernorm_forward", label({5, 33}, "sum=b"),
             [](OpRun& run) { run_residual_layernorm(run, {5, 33}, SumAlias::B); });
  table.add("norm", "layernorm_backward", label({65, 128}, "dinp +="),
             [](OpRun& run) { run_layernorm_backward(run, {65, 128}, true); });
  table.add("norm", "layernorm_backward", label({4160, 192}, "dinp +="),
             [](OpRun& run) { run_layernorm_backward(run, {4160, 192}, true); });

  // B = 2 (the smallest with an unbiased variance), odd sizes, a projection head (B = 64 samples,
  // 512 channels) and 1024 channels for the thread-count cases (16 tiles of 64 channels).
  const BatchNormCase batch[] = {{2, 1}, {3, 7}, {4, 16}, {64, 512}, {64, 1024}};
  for (const BatchNormCase& c : batch) {
    const bool big = c.C == 1024;
    table.add("norm", "batchnorm_forward", label(c), [c](OpRun& run) { run_batchnorm_forward(run, c); }).thread_invariant = big;
    table.add("norm", "batchnorm_backward", label(c), [c](OpRun& run) { run_batchnorm_backward(run, c); }).thread_invariant = big;
    table.add("norm", "batchnorm_inference", label(c), [c](OpRun& run) { run_batchnorm_inference(run, c); });
  }
  const BatchNormCase variants[] = {{3, 7, false}, {3, 7, true, false}, {3, 7, false, false}, {4, 16, true, true, true}};
  for (const BatchNormCase& c : variants) {
    table.add("norm", "batchnorm_forward", label(c), [c](OpRun& run) { run_batchnorm_forward(run, c); });
    if (c.running && !c.in_place)  // backward has neither running statistics nor an in-place form
      table.add("norm", "batchnorm_backward", label(c), [c](OpRun& run) { run_batchnorm_backward(run, c); });
  }
  table.add("norm", "batchnorm_inference", label({3, 7, false}), [](OpRun& run) { run_batchnorm_inference(run, {3, 7, false}); });
  table.add("norm", "batchnorm_inference", label({4, 16, true, true, true}),
             [](OpRun& run) { run_batchnorm_inference(run, {4, 16, true, true, true}); });
}

}  // namespace cmae::op_tests
