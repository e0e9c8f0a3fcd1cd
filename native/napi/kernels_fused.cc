// Bindings of native/ops/fused.h (the model's fused/vectorised passes), for tests and the bench.
#include "common.h"
#include "kernels.h"
#include "ops/fused.h"

namespace cmae::napi {

static void ExpectF32Cpu(const cmae::Tensor& t, const char* name) {
  t.expect_dtype(cmae::DType::F32, name);
  t.expect_device(cmae::Device::CPU, name);
}

// residualLayernormForward(sum, out, mean, rstd, a, b, weight, bias, eps): a, b (..., C)
static Napi::Value ResidualLayernormForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& sum = TensorArg(info, 0, "sum");
  const cmae::Tensor& out = TensorArg(info, 1, "out");
  const cmae::Tensor& mean = TensorArg(info, 2, "mean");
  const cmae::Tensor& rstd = TensorArg(info, 3, "rstd");
  const cmae::Tensor& a = TensorArg(info, 4, "a");
  const cmae::Tensor& b = TensorArg(info, 5, "b");
  const cmae::Tensor& weight = TensorArg(info, 6, "weight");
  const cmae::Tensor& bias = TensorArg(info, 7, "bias");
  const double eps = NumberArg(info, 8, "eps");
  for (const auto* t : {&sum, &out, &mean, &rstd, &a, &b, &weight, &bias}) ExpectF32Cpu(*t, "tensor");
  CMAE_CHECK(!a.shape().empty() && a.shape().back() > 0, Shape, "a must have shape (..., C) with C >= 1");
  const int64_t C = a.shape().back();
  const int64_t R = a.numel() / C;
  b.expect_shape(a.shape(), "b");
  sum.expect_shape(a.shape(), "sum");
  out.expect_shape(a.shape(), "out");
  CMAE_CHECK(mean.numel() == R && rstd.numel() == R, Shape, "mean and rstd must have ", R, " elements");
  weight.expect_shape({C}, "weight");
  bias.expect_shape({C}, "bias");
  CMAE_CHECK(eps >= 0, Value, "eps must be >= 0, got ", eps);
  CMAE_CHECK(out.f32() != a.f32() && out.f32() != b.f32() && out.f32() != sum.f32(), Value, "out must not alias a, b or sum");
  cmae::cpu::residual_layernorm_forward(sum.f32(), out.f32(), mean.f32(), rstd.f32(), a.f32(), b.f32(), weight.f32(), bias.f32(),
                                        R, C, static_cast<float>(eps));
  return info.Env().Undefined();
}

void RegisterFusedKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "residualLayernormForward", ResidualLayernormForward);
}

}  // namespace cmae::napi
