#include "common.h"
#include "kernels.h"
#include "ops/attention.h"

namespace cmae::napi {

static void ExpectF32Shape(const cmae::Tensor& t, const cmae::Shape& shape, const char* name) {
  t.expect_dtype(cmae::DType::F32, name);
  t.expect_device(cmae::Device::CPU, name);
  t.expect_shape(shape, name);
}

// Dimensions of one attention call, read from qkv (B, N, 3D) and the head count.
struct AttentionDims {
  int64_t B;
  int64_t N;
  int64_t D;
  int64_t H;
};

static AttentionDims AttentionArgs(const cmae::Tensor& qkv, int64_t heads) {
  qkv.expect_dtype(cmae::DType::F32, "qkv");
  qkv.expect_device(cmae::Device::CPU, "qkv");
  CMAE_CHECK(heads >= 1, Value, "heads must be >= 1, got ", heads);
  CMAE_CHECK(qkv.dim() == 3 && qkv.size(2) >= 3 && qkv.size(2) % 3 == 0, Shape,
             "qkv must have shape (B, N, 3D) with D >= 1, got ", cmae::shape_string(qkv.shape()));
  const int64_t D = qkv.size(2) / 3;
  CMAE_CHECK(D % heads == 0, Shape, "qkv has D = ", D, " channels per q/k/v (shape ", cmae::shape_string(qkv.shape()),
             "), not divisible by heads = ", heads);
  return {qkv.size(0), qkv.size(1), D, heads};
}

// attentionForward(out, att, qkv, heads)
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& att = TensorArg(info, 1, "att");
  const cmae::Tensor& qkv = TensorArg(info, 2, "qkv");
  const AttentionDims d = AttentionArgs(qkv, IntArg(info, 3, "heads"));
  ExpectF32Shape(out, {d.B, d.N, d.D}, "out");
  ExpectF32Shape(att, {d.B, d.H, d.N, d.N}, "att");
  cmae::cpu::attention_forward(out.f32(), att.f32(), qkv.f32(), d.B, d.N, d.D, d.H);
  return info.Env().Undefined();
}

// attentionBackward(dqkv, dout, qkv, att, heads)
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dqkv = TensorArg(info, 0, "dqkv");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& qkv = TensorArg(info, 2, "qkv");
  const cmae::Tensor& att = TensorArg(info, 3, "att");
  const AttentionDims d = AttentionArgs(qkv, IntArg(info, 4, "heads"));
  ExpectF32Shape(dqkv, qkv.shape(), "dqkv");
  ExpectF32Shape(dout, {d.B, d.N, d.D}, "dout");
  ExpectF32Shape(att, {d.B, d.H, d.N, d.N}, "att");
  cmae::cpu::attention_backward(dqkv.f32(), dout.f32(), qkv.f32(), att.f32(), d.B, d.N, d.D, d.H);
  return info.Env().Undefined();
}

void RegisterAttentionKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "attentionForward", AttentionForward);
  CMAE_EXPORT(kernels, "attentionBackward", AttentionBackward);
}

}  // namespace cmae::napi
