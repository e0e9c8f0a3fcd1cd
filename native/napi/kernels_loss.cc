// Bindings of ops/loss.h.
#include "common.h"
#include "kernels.h"

namespace cmae::napi {

// One float of a fused loss, written by the op in the backend's memory and read back for JS.
static Napi::Value ReadLoss(Napi::Env env, const cmae::Tensor& loss) {
  float value = 0.0f;
  loss.backend().copy_to_host(&value, loss.f32(), sizeof(float));
  return Napi::Number::New(env, value);
}

// start must leave at least one token to average: 0 <= start < N.
static int64_t StartArg(const Napi::CallbackInfo& info, size_t index, int64_t tokens) {
  const int64_t start = IntArg(info, index, "start");
  CMAE_CHECK(start >= 0 && start < tokens, Value, "start must be in [0, N) = [0, ", tokens, "), got ", start);
  return start;
}

// meanPoolForward(out, inp, start): out (B, D) = mean of inp (B, N, D) over tokens [start, N).
static Napi::Value MeanPoolForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  ExpectRank(inp, "inp", cmae::DType::F32, 3, "(B, N, D)");
  const int64_t B = inp.size(0), N = inp.size(1), D = inp.size(2);
  const int64_t start = StartArg(info, 2, N);
  ExpectShape(out, "out", cmae::DType::F32, {B, D});
  BackendOf({{&inp, "inp"}, {&out, "out"}}).mean_pool_forward(out.f32(), inp.f32(), B, N, D, start);
  return info.Env().Undefined();
}

// meanPoolBackward(dinp, dout, start): dinp (B, N, D), dout (B, D).
static Napi::Value MeanPoolBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  ExpectRank(dinp, "dinp", cmae::DType::F32, 3, "(B, N, D)");
  const int64_t B = dinp.size(0), N = dinp.size(1), D = dinp.size(2);
  const int64_t start = StartArg(info, 2, N);
  ExpectShape(dout, "dout", cmae::DType::F32, {B, D});
  BackendOf({{&dinp, "dinp"}, {&dout, "dout"}}).mean_pool_backward(dinp.f32(), dout.f32(), B, N, D, start);
  return info.Env().Undefined();
}

// l2NormalizeForward(out, norm, inp, eps): out (R, D) = inp / max(||inp row||, eps), norm (R).
static Napi::Value L2NormalizeForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& norm = TensorArg(info, 1, "norm");
  const cmae::Tensor& inp = TensorArg(info, 2, "inp");
  ExpectRank(inp, "inp", cmae::DType::F32, 2, "(R, D)");
  const int64_t R = inp.size(0), D = inp.size(1);
  ExpectShape(out, "out", cmae::DType::F32, inp.shape());
  ExpectShape(norm, "norm", cmae::DType::F32, {R});
  const double eps = PositiveArg(info, 3, "eps");
  BackendOf({{&inp, "inp"}, {&out, "out"}, {&norm, "norm"}}).l2_normalize_forward(out.f32(), norm.f32(), inp.f32(), R, D, static_cast<float>(eps));
  return info.Env().Undefined();
}

// l2NormalizeBackward(dinp, dout, inp, norm, eps)
static Napi::Value L2NormalizeBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& inp = TensorArg(info, 2, "inp");
  const cmae::Tensor& norm = TensorArg(info, 3, "norm");
  ExpectRank(inp, "inp", cmae::DType::F32, 2, "(R, D)");
  const int64_t R = inp.size(0), D = inp.size(1);
  ExpectShape(dout, "dout", cmae::DType::F32, inp.shape());
  ExpectShape(dinp, "dinp", cmae::DType::F32, inp.shape());
  ExpectShape(norm, "norm", cmae::DType::F32, {R});
  const double eps = PositiveArg(info, 4, "eps");
  BackendOf({{&inp, "inp"}, {&dinp, "dinp"}, {&dout, "dout"}, {&norm, "norm"}})
      .l2_normalize_backward(dinp.f32(), dout.f32(), inp.f32(), norm.f32(), R, D, static_cast<float>(eps));
  return info.Env().Undefined();
}

// normpixMseForwardBackward(dpred | null, pred, target, mask, normPix, eps, dloss) → loss
static Napi::Value NormpixMseForwardBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor* dpred = OptionalTensorArg(info, 0, "dpred");
  const cmae::Tensor& pred = TensorArg(info, 1, "pred");
  const cmae::Tensor& target = TensorArg(info, 2, "target");
  const cmae::Tensor& mask = TensorArg(info, 3, "mask");
  ExpectRank(pred, "pred", cmae::DType::F32, 3, "(B, L, P)");
  const int64_t B = pred.size(0), L = pred.size(1), P = pred.size(2);
  ExpectShape(target, "target", cmae::DType::F32, pred.shape());
  ExpectShape(mask, "mask", cmae::DType::F32, {B, L});
  if (dpred) ExpectShape(*dpred, "dpred", cmae::DType::F32, pred.shape());
  const bool norm_pix = BoolArg(info, 4, "normPix");
  const double eps = PositiveArg(info, 5, "eps");
  const double dloss = FiniteArg(info, 6, "dloss");
  CMAE_CHECK(!norm_pix || P >= 2, Value, "normPix needs at least 2 values per patch (unbiased variance), got P = ", P);
  cmae::Backend& backend = BackendOf({{&pred, "pred"}, {&target, "target"}, {&mask, "mask"}, {dpred, "dpred"}});
  const cmae::Tensor loss = cmae::Tensor::empty({1}, cmae::DType::F32, backend);
  backend.normpix_mse_forward_backward(loss.f32(), dpred ? dpred->f32() : nullptr, pred.f32(), target.f32(), mask.f32(), B, L, P,
                                       norm_pix, static_cast<float>(eps), static_cast<float>(dloss));
  return ReadLoss(info.Env(), loss);
}

// infonceForwardBackward(dq | null, q, k, tau, scale, dloss) → loss
static Napi::Value InfonceForwardBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor* dq = OptionalTensorArg(info, 0, "dq");
  const cmae::Tensor& q = TensorArg(info, 1, "q");
  const cmae::Tensor& k = TensorArg(info, 2, "k");
  ExpectRank(q, "q", cmae::DType::F32, 2, "(B, E)");
  const int64_t B = q.size(0), E = q.size(1);
  CMAE_CHECK(B >= 1 && E >= 1, Shape, "q must have at least one row and one column, got ", cmae::shape_string(q.shape()));
  ExpectShape(k, "k", cmae::DType::F32, q.shape());
  if (dq) ExpectShape(*dq, "dq", cmae::DType::F32, q.shape());
  const double tau = PositiveArg(info, 3, "tau");
  const double scale = FiniteArg(info, 4, "scale");
  const double dloss = FiniteArg(info, 5, "dloss");
  cmae::Backend& backend = BackendOf({{&q, "q"}, {&k, "k"}, {dq, "dq"}});
  const cmae::Tensor loss = cmae::Tensor::empty({1}, cmae::DType::F32, backend);
  backend.infonce_forward_backward(loss.f32(), dq ? dq->f32() : nullptr, q.f32(), k.f32(), B, E, static_cast<float>(tau),
                                   static_cast<float>(scale), static_cast<float>(dloss));
  return ReadLoss(info.Env(), loss);
}

// ntxentForwardBackward(dz | null, z, tau, scale, dloss) → loss
static Napi::Value NtxentForwardBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor* dz = OptionalTensorArg(info, 0, "dz");
  const cmae::Tensor& z = TensorArg(info, 1, "z");
  ExpectRank(z, "z", cmae::DType::F32, 2, "(2N, E)");
  const int64_t R = z.size(0), E = z.size(1);
  CMAE_CHECK(R >= 2 && R % 2 == 0 && E >= 1, Shape, "z must have an even number (>= 2) of rows, the two views' N each, and at least one column, got ",
             cmae::shape_string(z.shape()));
  if (dz) ExpectShape(*dz, "dz", cmae::DType::F32, z.shape());
  const double tau = PositiveArg(info, 2, "tau");
  const double scale = FiniteArg(info, 3, "scale");
  const double dloss = FiniteArg(info, 4, "dloss");
  cmae::Backend& backend = BackendOf({{&z, "z"}, {dz, "dz"}});
  const cmae::Tensor loss = cmae::Tensor::empty({1}, cmae::DType::F32, backend);
  backend.ntxent_forward_backward(loss.f32(), dz ? dz->f32() : nullptr, z.f32(), R, E, static_cast<float>(tau), static_cast<float>(scale),
                                  static_cast<float>(dloss));
  return ReadLoss(info.Env(), loss);
}

// softmaxCrossEntropyForwardBackward(dlogits | null, logits, targets, dloss) → loss
static Napi::Value SoftmaxCrossEntropyForwardBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor* dlogits = OptionalTensorArg(info, 0, "dlogits");
  const cmae::Tensor& logits = TensorArg(info, 1, "logits");
  const cmae::Tensor& targets = TensorArg(info, 2, "targets");
  ExpectRank(logits, "logits", cmae::DType::F32, 2, "(B, C)");
  const int64_t B = logits.size(0), C = logits.size(1);
  CMAE_CHECK(B >= 1 && C >= 1, Shape, "logits must have at least one row and one class, got ", cmae::shape_string(logits.shape()));
  ExpectShape(targets, "targets", cmae::DType::F32, logits.shape());
  if (dlogits) ExpectShape(*dlogits, "dlogits", cmae::DType::F32, logits.shape());
  const double dloss = FiniteArg(info, 3, "dloss");
  cmae::Backend& backend = BackendOf({{&logits, "logits"}, {&targets, "targets"}, {dlogits, "dlogits"}});
  const cmae::Tensor loss = cmae::Tensor::empty({1}, cmae::DType::F32, backend);
  backend.softmax_cross_entropy_forward_backward(loss.f32(), dlogits ? dlogits->f32() : nullptr, logits.f32(), targets.f32(), B, C,
                                                 static_cast<float>(dloss));
  return ReadLoss(info.Env(), loss);
}

void RegisterLossKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "meanPoolForward", MeanPoolForward);
  CMAE_EXPORT(kernels, "meanPoolBackward", MeanPoolBackward);
  CMAE_EXPORT(kernels, "l2NormalizeForward", L2NormalizeForward);
  CMAE_EXPORT(kernels, "l2NormalizeBackward", L2NormalizeBackward);
  CMAE_EXPORT(kernels, "normpixMseForwardBackward", NormpixMseForwardBackward);
  CMAE_EXPORT(kernels, "infonceForwardBackward", InfonceForwardBackward);
  CMAE_EXPORT(kernels, "ntxentForwardBackward", NtxentForwardBackward);
  CMAE_EXPORT(kernels, "softmaxCrossEntropyForwardBackward", SoftmaxCrossEntropyForwardBackward);
}

}  // namespace cmae::napi
