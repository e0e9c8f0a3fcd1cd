#include "common.h"
#include "kernels.h"
#include "ops/activation.h"

namespace cmae::napi {

// Checks shared by the element-wise bindings: float32 CPU tensors with identical shapes.
static void ExpectSameF32(const cmae::Tensor& a, const char* a_name, const cmae::Tensor& b, const char* b_name) {
  a.expect_dtype(cmae::DType::F32, a_name);
  b.expect_dtype(cmae::DType::F32, b_name);
  a.expect_device(cmae::Device::CPU, a_name);
  b.expect_device(cmae::Device::CPU, b_name);
  b.expect_shape(a.shape(), b_name);
}

// geluForward(out, inp)
static Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  ExpectSameF32(inp, "inp", out, "out");
  cmae::cpu::gelu_forward(out.f32(), inp.f32(), inp.numel());
  return info.Env().Undefined();
}

// geluBackward(dinp, dout, inp)
static Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& inp = TensorArg(info, 2, "inp");
  ExpectSameF32(inp, "inp", dout, "dout");
  ExpectSameF32(inp, "inp", dinp, "dinp");
  cmae::cpu::gelu_backward(dinp.f32(), dout.f32(), inp.f32(), inp.numel());
  return info.Env().Undefined();
}

// reluForward(out, inp)
static Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  ExpectSameF32(inp, "inp", out, "out");
  cmae::cpu::relu_forward(out.f32(), inp.f32(), inp.numel());
  return info.Env().Undefined();
}

// reluBackward(dinp, dout, out)
static Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& out = TensorArg(info, 2, "out");
  ExpectSameF32(out, "out", dout, "dout");
  ExpectSameF32(out, "out", dinp, "dinp");
  cmae::cpu::relu_backward(dinp.f32(), dout.f32(), out.f32(), out.numel());
  return info.Env().Undefined();
}

void RegisterActivationKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "geluForward", GeluForward);
  CMAE_EXPORT(kernels, "geluBackward", GeluBackward);
  CMAE_EXPORT(kernels, "reluForward", ReluForward);
  CMAE_EXPORT(kernels, "reluBackward", ReluBackward);
}

}  // namespace cmae::napi
