#include <cmath>

#include "common.h"
#include "kernels.h"
#include "ops/optim.h"

namespace cmae::napi {

static void ExpectF32(const cmae::Tensor& t, const char* name) {
  t.expect_dtype(cmae::DType::F32, name);
  t.expect_device(cmae::Device::CPU, name);
}

// Checks shared by the arena bindings: float32 CPU tensors with identical shapes.
static void ExpectSameF32(const cmae::Tensor& a, const char* a_name, const cmae::Tensor& b, const char* b_name) {
  ExpectF32(a, a_name);
  ExpectF32(b, b_name);
  b.expect_shape(a.shape(), b_name);
}

// A finite number in [lo, hi] (hi_open: [lo, hi)); the message names the argument and the range.
static double RangeArg(const Napi::CallbackInfo& info, size_t index, const char* name, double lo, double hi,
                       bool hi_open = false) {
  const double v = NumberArg(info, index, name);
  const bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
  CMAE_CHECK(ok, Value, name, " must be in [", lo, ", ", hi, hi_open ? ")" : "]", ", got ", v);
  return v;
}

static double NonNegativeArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = NumberArg(info, index, name);
  CMAE_CHECK(std::isfinite(v) && v >= 0.0, Value, name, " must be a non-negative finite number, got ", v);
  return v;
}

// adamwStep(params, m, v, grads, decayMask | null, lr, beta1, beta2, eps, weightDecay, stepNumber, gradScale)
// Updates params, m and v in place (torch.optim.AdamW semantics, spec §1.8 / §2.10).
static Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  const cmae::Tensor& params = TensorArg(info, 0, "params");
  const cmae::Tensor& m = TensorArg(info, 1, "m");
  const cmae::Tensor& v = TensorArg(info, 2, "v");
  const cmae::Tensor& grads = TensorArg(info, 3, "grads");
  const cmae::Tensor* decay_mask = OptionalTensorArg(info, 4, "decayMask");
  ExpectF32(params, "params");
  ExpectSameF32(params, "params", m, "m");
  ExpectSameF32(params, "params", v, "v");
  ExpectSameF32(params, "params", grads, "grads");
  if (decay_mask) ExpectSameF32(params, "params", *decay_mask, "decayMask");
  CMAE_CHECK(params.numel() == 0 || (params.f32() != m.f32() && params.f32() != v.f32() && m.f32() != v.f32()), Value,
             "params, m and v must be distinct tensors");

  const double lr = NonNegativeArg(info, 5, "lr");
  const double beta1 = RangeArg(info, 6, "beta1", 0.0, 1.0, /*hi_open=*/true);
  const double beta2 = RangeArg(info, 7, "beta2", 0.0, 1.0, /*hi_open=*/true);
  const double eps = NonNegativeArg(info, 8, "eps");
  const double weight_decay = NonNegativeArg(info, 9, "weightDecay");
  const int64_t step_number = IntArg(info, 10, "stepNumber");
  CMAE_CHECK(step_number >= 1, Value, "stepNumber must be an integer >= 1 (the first step is 1), got ", step_number);
  const double grad_scale = NonNegativeArg(info, 11, "gradScale");

  cmae::AdamWStep step;
  step.lr = static_cast<float>(lr);
  step.beta1 = static_cast<float>(beta1);
  step.beta2 = static_cast<float>(beta2);
  step.eps = static_cast<float>(eps);
  step.weight_decay = static_cast<float>(weight_decay);
  // Bias corrections in double: 1 − β^t loses most of its digits in float when β^t ≈ 1.
  step.bias_correction1 = static_cast<float>(1.0 - std::pow(beta1, static_cast<double>(step_number)));
  step.bias_correction2 = static_cast<float>(1.0 - std::pow(beta2, static_cast<double>(step_number)));
  cmae::cpu::adamw_step(params.f32(), m.f32(), v.f32(), grads.f32(), decay_mask ? decay_mask->f32() : nullptr,
                        params.numel(), step, static_cast<float>(grad_scale));
  return info.Env().Undefined();
}

// emaUpdate(target, online, momentum): target ← momentum·target + (1 − momentum)·online.
static Napi::Value EmaUpdate(const Napi::CallbackInfo& info) {
  const cmae::Tensor& target = TensorArg(info, 0, "target");
  const cmae::Tensor& online = TensorArg(info, 1, "online");
  ExpectSameF32(target, "target", online, "online");
  const double momentum = RangeArg(info, 2, "momentum", 0.0, 1.0);
  cmae::cpu::ema_update(target.f32(), online.f32(), target.numel(), static_cast<float>(momentum));
  return info.Env().Undefined();
}

// globalNorm(grads) → sqrt(Σ grads²)
static Napi::Value GlobalNorm(const Napi::CallbackInfo& info) {
  const cmae::Tensor& grads = TensorArg(info, 0, "grads");
  ExpectF32(grads, "grads");
  return Napi::Number::New(info.Env(), cmae::cpu::global_norm(grads.f32(), grads.numel()));
}

// scaleInplace(x, s): x *= s.
static Napi::Value ScaleInplace(const Napi::CallbackInfo& info) {
  const cmae::Tensor& x = TensorArg(info, 0, "x");
  ExpectF32(x, "x");
  const double s = NumberArg(info, 1, "s");
  CMAE_CHECK(std::isfinite(s), Value, "s must be finite, got ", s);
  cmae::cpu::scale_inplace(x.f32(), x.numel(), static_cast<float>(s));
  return info.Env().Undefined();
}

void RegisterOptimKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "adamwStep", AdamwStep);
  CMAE_EXPORT(kernels, "emaUpdate", EmaUpdate);
  CMAE_EXPORT(kernels, "globalNorm", GlobalNorm);
  CMAE_EXPORT(kernels, "scaleInplace", ScaleInplace);
}

}  // namespace cmae::napi
