// Bindings of ops/activation.h. The worked example of a kernel binding: read the arguments (outputs
// first), check them, pick the backend of their device, call the op.
#include "common.h"
#include "kernels.h"

namespace cmae::napi {

// An element-wise op's tensors: float32 with the shape of the first.
static cmae::Backend& ElementwiseBackend(std::initializer_list<NamedTensor> tensors) {
  const NamedTensor& first = *tensors.begin();
  for (const NamedTensor& t : tensors) ExpectShape(*t.first, t.second, cmae::DType::F32, first.first->shape());
  return BackendOf(tensors);
}

// geluForward(out, inp)
static Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  ElementwiseBackend({{&inp, "inp"}, {&out, "out"}}).gelu_forward(out.f32(), inp.f32(), inp.numel());
  return info.Env().Undefined();
}

// geluBackward(dinp, dout, inp)
static Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& inp = TensorArg(info, 2, "inp");
  ElementwiseBackend({{&inp, "inp"}, {&dout, "dout"}, {&dinp, "dinp"}}).gelu_backward(dinp.f32(), dout.f32(), inp.f32(), inp.numel());
  return info.Env().Undefined();
}

// reluForward(out, inp)
static Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  ElementwiseBackend({{&inp, "inp"}, {&out, "out"}}).relu_forward(out.f32(), inp.f32(), inp.numel());
  return info.Env().Undefined();
}

// reluBackward(dinp, dout, out)
static Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& out = TensorArg(info, 2, "out");
  ElementwiseBackend({{&out, "out"}, {&dout, "dout"}, {&dinp, "dinp"}}).relu_backward(dinp.f32(), dout.f32(), out.f32(), out.numel());
  return info.Env().Undefined();
}

void RegisterActivationKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "geluForward", GeluForward);
  CMAE_EXPORT(kernels, "geluBackward", GeluBackward);
  CMAE_EXPORT(kernels, "reluForward", ReluForward);
  CMAE_EXPORT(kernels, "reluBackward", ReluBackward);
}

}  // namespace cmae::napi
