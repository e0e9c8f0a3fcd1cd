// Bindings of ops/attention.h. `att` is the backend's saved state (attention_saved_kind): the
// probabilities (B, H, N, N) on the CPU, the row log-sum-exp (B, H, N) on CUDA.
#include "common.h"
#include "kernels.h"

namespace cmae::napi {

// Dimensions of one attention call, read from qkv (B, N, 3D) and the head count.
struct AttentionDims {
  int64_t B, N, D, H;
};

static AttentionDims AttentionArgs(const cmae::Tensor& qkv, int64_t heads) {
  qkv.expect_dtype(cmae::DType::F32, "qkv");
  CMAE_CHECK(heads >= 1, Value, "heads must be >= 1, got ", heads);
  CMAE_CHECK(qkv.dim() == 3 && qkv.size(2) >= 3 && qkv.size(2) % 3 == 0, Shape, "qkv must have shape (B, N, 3D) with D >= 1, got ",
             cmae::shape_string(qkv.shape()));
  const int64_t D = qkv.size(2) / 3;
  CMAE_CHECK(D % heads == 0, Shape, "qkv has D = ", D, " channels per q/k/v (shape ", cmae::shape_string(qkv.shape()),
             "), not divisible by heads = ", heads);
  return {qkv.size(0), qkv.size(1), D, heads};
}

static void ExpectSaved(const cmae::Tensor& att, cmae::Backend& backend, const AttentionDims& d) {
  if (backend.attention_saved_kind() == cmae::AttentionSaved::Probabilities) {
    ExpectShape(att, "att", cmae::DType::F32, {d.B, d.H, d.N, d.N});
  } else {
    ExpectShape(att, "att", cmae::DType::F32, {d.B, d.H, d.N});
  }
}

// attentionForward(out, att, qkv, heads)
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& att = TensorArg(info, 1, "att");
  const cmae::Tensor& qkv = TensorArg(info, 2, "qkv");
  const AttentionDims d = AttentionArgs(qkv, IntArg(info, 3, "heads"));
  cmae::Backend& backend = BackendOf({{&qkv, "qkv"}, {&out, "out"}, {&att, "att"}});
  ExpectShape(out, "out", cmae::DType::F32, {d.B, d.N, d.D});
  ExpectSaved(att, backend, d);
  backend.attention_forward(out.f32(), att.f32(), qkv.f32(), d.B, d.N, d.D, d.H);
  return info.Env().Undefined();
}

// attentionBackward(dqkv, dout, qkv, att, heads)
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dqkv = TensorArg(info, 0, "dqkv");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& qkv = TensorArg(info, 2, "qkv");
  const cmae::Tensor& att = TensorArg(info, 3, "att");
  const AttentionDims d = AttentionArgs(qkv, IntArg(info, 4, "heads"));
  cmae::Backend& backend = BackendOf({{&qkv, "qkv"}, {&dqkv, "dqkv"}, {&dout, "dout"}, {&att, "att"}});
  ExpectShape(dqkv, "dqkv", cmae::DType::F32, qkv.shape());
  ExpectShape(dout, "dout", cmae::DType::F32, {d.B, d.N, d.D});
  ExpectSaved(att, backend, d);
  backend.attention_backward(dqkv.f32(), dout.f32(), qkv.f32(), att.f32(), d.B, d.N, d.D, d.H);
  return info.Env().Undefined();
}

void RegisterAttentionKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "attentionForward", AttentionForward);
  CMAE_EXPORT(kernels, "attentionBackward", AttentionBackward);
}

}  // namespace cmae::napi
