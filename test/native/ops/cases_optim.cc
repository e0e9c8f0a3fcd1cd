// Cases of ops/optim.h: AdamW over a flat arena (decay mask, gradient scale from backend memory),
// the momentum-encoder EMA, and the global-norm clipping helpers.
#include <cmath>
#include <limits>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

// AdamW's update is lr-sized: params carry ~1 ulp of |p| plus the update's float32 rounding; m can
// cancel across steps, so its error is relative to the gradients (~0.1) (test/ops/optim.test.ts).
constexpr Tolerance kParams{1e-6, 1e-6};
constexpr Tolerance kFirstMoment{1e-8, 1e-5};
constexpr Tolerance kSecondMoment{1e-12, 1e-5};
// m·t + (1 − m)·o: three float32 roundings of values ~|t|.
constexpr Tolerance kEma{1e-7, 3e-7};
// A double sum of n exact squares, blocked: relative rounding ~n·2^-53.
constexpr Tolerance kGlobalNorm{0.0, 1e-12};

const int64_t kSizes[] = {1, 7, 1001, 70001};
constexpr int64_t kLargeSize = 300007;  // the thread-count cases: 5 chunks of 65536

// One step of torch.optim.AdamW(lr 1e-2, betas (0.9, 0.95), eps 1e-8, weight_decay 0.05) at step t,
// bias corrections computed in double as the bindings do.
AdamWStep adamw_step_at(int t) {
  const double beta1 = 0.9, beta2 = 0.95;
  AdamWStep s;
  s.lr = 1e-2f;
  s.beta1 = static_cast<float>(beta1);
  s.beta2 = static_cast<float>(beta2);
  s.eps = 1e-8f;
  s.weight_decay = 0.05f;
  s.bias_correction1 = static_cast<float>(1.0 - std::pow(beta1, t));
  s.bias_correction2 = static_cast<float>(1.0 - std::pow(beta2, t));
  return s;
}

// A 0/1 decay mask in runs (like the biases between weight matrices), both values present.
Floats decay_mask(OpRun& run, int64_t n) {
  Floats mask(static_cast<size_t>(n));
  float value = 1.0f;
  for (float& m : mask) {
    if (run.rng().uniform() < 0.05) value = 1.0f - value;
    m = value;
  }
  mask[0] = 1.0f;
  if (n > 1) mask.back() = 0.0f;
  return mask;
}

struct AdamWCase {
  int64_t n;
  int step = 3;
  bool with_mask = true;
  bool with_scale = true;
};

std::string label(const AdamWCase& c) {
  std::string l = shape_label("n", c.n, "step", c.step);
  if (!c.with_mask) l += " decay_mask=null";
  if (!c.with_scale) l += " grad_scale=null";
  return l;
}

void run_adamw(OpRun& run, const AdamWCase& c) {
  const int64_t n = c.n;
  const AdamWStep step = adamw_step_at(c.step);
  const float grad_scale = 0.7f;
  // Mid-training state: moments of earlier steps, v >= 0.
  const Buffer params = run.accumulator("params", run.normal(n), {n});
  const Buffer m = run.accumulator("m", run.normal(n, 0.01), {n});
  const Buffer v = run.accumulator("v", run.uniform(n, 0.0, 1e-4), {n});
  const Buffer grads = run.input("grads", run.normal(n, 0.1), {n});
  const Buffer mask = run.input("decay_mask", decay_mask(run, n), {n});
  const Buffer scale = run.input("grad_scale", {grad_scale}, {1});
  run.backend().adamw_step(params.f32(), m.f32(), v.f32(), grads.f32(), c.with_mask ? mask.f32() : nullptr, n, step,
                           c.with_scale ? scale.f32() : nullptr);
  const ref::AdamW want = ref::adamw(params.host(), m.host(), v.host(), grads.host(), c.with_mask ? &mask.host() : nullptr, step,
                                     c.with_scale ? grad_scale : 1.0);
  run.expect_close(params, want.params, kParams);
  run.expect_close(m, want.m, kFirstMoment);
  run.expect_close(v, want.v, kSecondMoment);
}

void run_ema(OpRun& run, int64_t n, float momentum) {
  const Buffer target = run.accumulator("target", run.normal(n), {n});
  const Buffer online = run.input("online", run.normal(n), {n});
  run.backend().ema_update(target.f32(), online.f32(), n, momentum);
  // m = 1 keeps target and m = 0 copies online exactly (ema_lerp: 1·t + 0·o, 0·t + 1·o).
  const bool endpoint = momentum == 0.0f || momentum == 1.0f;
  run.expect_close(target, ref::ema(target.host(), online.host(), momentum), endpoint ? kExact : kEma);
}

void run_global_norm(OpRun& run, int64_t n) {
  const Buffer grads = run.input("grads", run.normal(n, 0.01), {n});
  const Buffer norm = run.output("norm", {1}, ElementType::F64);
  run.backend().global_norm(norm.f64(), grads.f32(), n);
  run.expect_close(norm, {ref::global_norm(grads.host())}, kGlobalNorm);
}

}  // namespace

void add_optim_cases(CaseTable& table) {
  for (int64_t n : kSizes) table.add("optim", "adamw_step", label({n}), [n](OpRun& run) { run_adamw(run, {n}); });
  const AdamWCase variants[] = {{1001, 1}, {1001, 100}, {1001, 3, false}, {1001, 3, true, false}};
  for (const AdamWCase& c : variants) table.add("optim", "adamw_step", label(c), [c](OpRun& run) { run_adamw(run, c); });
  table.add("optim", "adamw_step", label({kLargeSize}), [](OpRun& run) { run_adamw(run, {kLargeSize}); }).thread_invariant = true;

  for (int64_t n : kSizes)
    table.add("optim", "ema_update", shape_label("n", n, "m", 0.996), [n](OpRun& run) { run_ema(run, n, 0.996f); });
  for (float m : {0.0f, 1.0f})
    table.add("optim", "ema_update", shape_label("n", 1001, "m", m), [m](OpRun& run) { run_ema(run, 1001, m); });
  table.add("optim", "ema_update", shape_label("n", kLargeSize, "m", 0.996),
             [](OpRun& run) { run_ema(run, kLargeSize, 0.996f); }).thread_invariant = true;

  // Block boundaries of a blocked sum: 1, odd, just past 2^14, several blocks.
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{16385}, int64_t{300001}})
    table.add("optim", "global_norm", shape_label("n", n), [n](OpRun& run) {
      run_global_norm(run, n);
    }).thread_invariant = n == 300001;

  // min(1, max_norm/(norm + 1e-6)): below, at and above max_norm, 0, and an infinite norm.
  table.add("optim", "clip_coefficient", "norm in {0, 0.5, 1, 2, 1e6, inf} max_norm=1", [](OpRun& run) {
    const double max_norm = 1.0;
    for (double norm : {0.0, 0.5, 1.0, 2.0, 1e6, std::numeric_limits<double>::infinity()}) {
      const Buffer norm_b = run.input_f64("norm=" + std::to_string(norm), {norm}, {1});
      const Buffer scale = run.output("scale(norm=" + std::to_string(norm) + ")", {1});
      run.backend().clip_coefficient(scale.f32(), norm_b.f64(), max_norm);
      run.expect_close(scale, {ref::clip_coefficient(norm, max_norm)}, kOneRounding);
    }
  });

  for (int64_t n : kSizes)
    table.add("optim", "scale_inplace", shape_label("n", n, "s", 0.3), [n](OpRun& run) {
      const float s = 0.3f;
      const Buffer x = run.accumulator("x", run.normal(n), {n});
      run.backend().scale_inplace(x.f32(), n, s);
      Doubles want(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] = static_cast<double>(x.host()[static_cast<size_t>(i)]) * s;
      run.expect_close(x, want, kOneRounding);
    });
}

}  // namespace cmae::op_tests
