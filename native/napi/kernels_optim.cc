// Bindings of ops/optim.h: the arena passes on plain tensors (the model's optimizer is
// optimizer_wrap.cc).
#include <cmath>

#include "common.h"
#include "kernels.h"

namespace cmae::napi {

// adamwStep(params, m, v, grads, decayMask | null, lr, beta1, beta2, eps, weightDecay, stepNumber, gradScale)
// Updates params, m and v in place (torch.optim.AdamW semantics, spec §1.8 / §2.10).
static Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  const cmae::Tensor& params = TensorArg(info, 0, "params");
  const cmae::Tensor& m = TensorArg(info, 1, "m");
  const cmae::Tensor& v = TensorArg(info, 2, "v");
  const cmae::Tensor& grads = TensorArg(info, 3, "grads");
  const cmae::Tensor* decay_mask = OptionalTensorArg(info, 4, "decayMask");
  params.expect_dtype(cmae::DType::F32, "params");
  for (const NamedTensor& t : {NamedTensor{&m, "m"}, NamedTensor{&v, "v"}, NamedTensor{&grads, "grads"}, NamedTensor{decay_mask, "decayMask"}}) {
    if (t.first) ExpectShape(*t.first, t.second, cmae::DType::F32, params.shape());
  }
  CMAE_CHECK(params.numel() == 0 || (params.storage() != m.storage() && params.storage() != v.storage() && m.storage() != v.storage()),
             Value, "params, m and v must be distinct tensors");
  cmae::Backend& backend = BackendOf({{&params, "params"}, {&m, "m"}, {&v, "v"}, {&grads, "grads"}, {decay_mask, "decayMask"}});

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
  // The op reads the scale from backend memory (where a clipping pass would have written it).
  const cmae::Tensor scale = cmae::Tensor::empty({1}, cmae::DType::F32, backend);
  const float host_scale = static_cast<float>(grad_scale);
  backend.copy_from_host(scale.f32(), &host_scale, sizeof(float));
  backend.adamw_step(params.f32(), m.f32(), v.f32(), grads.f32(), decay_mask ? decay_mask->f32() : nullptr, params.numel(), step,
                     scale.f32());
  return info.Env().Undefined();
}

// emaUpdate(target, online, momentum): target ← momentum·target + (1 − momentum)·online.
static Napi::Value EmaUpdate(const Napi::CallbackInfo& info) {
  const cmae::Tensor& target = TensorArg(info, 0, "target");
  const cmae::Tensor& online = TensorArg(info, 1, "online");
  target.expect_dtype(cmae::DType::F32, "target");
  ExpectShape(online, "online", cmae::DType::F32, target.shape());
  const double momentum = RangeArg(info, 2, "momentum", 0.0, 1.0);
  BackendOf({{&target, "target"}, {&online, "online"}}).ema_update(target.f32(), online.f32(), target.numel(), static_cast<float>(momentum));
  return info.Env().Undefined();
}

// The global L2 norm of `grads`, computed in its backend and read back.
static double NormOf(const cmae::Tensor& grads) {
  cmae::Backend& backend = grads.backend();
  const cmae::Tensor norm = cmae::Tensor::empty({2}, cmae::DType::F32, backend);  // one double
  double value = 0.0;
  backend.global_norm(reinterpret_cast<double*>(norm.f32()), grads.f32(), grads.numel());
  backend.copy_to_host(&value, norm.f32(), sizeof(double));
  return value;
}

// globalNorm(grads) → sqrt(Σ grads²)
static Napi::Value GlobalNorm(const Napi::CallbackInfo& info) {
  const cmae::Tensor& grads = TensorArg(info, 0, "grads");
  grads.expect_dtype(cmae::DType::F32, "grads");
  return Napi::Number::New(info.Env(), NormOf(grads));
}

// clipGradNorm(grads, maxNorm) → the norm before clipping; grads *= clip_coefficient(norm, maxNorm)
// (core/math.h: torch.nn.utils.clip_grad_norm_ semantics).
static Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  const cmae::Tensor& grads = TensorArg(info, 0, "grads");
  grads.expect_dtype(cmae::DType::F32, "grads");
  const double max_norm = PositiveArg(info, 1, "maxNorm");
  const double norm = NormOf(grads);
  const float coefficient = cmae::clip_coefficient(norm, max_norm);
  if (coefficient < 1.0f) grads.backend().scale_inplace(grads.f32(), grads.numel(), coefficient);
  return Napi::Number::New(info.Env(), norm);
}

// scaleInplace(x, s): x *= s.
static Napi::Value ScaleInplace(const Napi::CallbackInfo& info) {
  const cmae::Tensor& x = TensorArg(info, 0, "x");
  x.expect_dtype(cmae::DType::F32, "x");
  const double s = FiniteArg(info, 1, "s");
  x.backend().scale_inplace(x.f32(), x.numel(), static_cast<float>(s));
  return info.Env().Undefined();
}

void RegisterOptimKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "adamwStep", AdamwStep);
  CMAE_EXPORT(kernels, "emaUpdate", EmaUpdate);
  CMAE_EXPORT(kernels, "globalNorm", GlobalNorm);
  CMAE_EXPORT(kernels, "clipGradNorm", ClipGradNorm);
  CMAE_EXPORT(kernels, "scaleInplace", ScaleInplace);
}

}  // namespace cmae::napi
