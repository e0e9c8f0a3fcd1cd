// Bindings of ops/norm.h.
#include "common.h"
#include "kernels.h"

namespace cmae::napi {

static float* OptionalF32(const cmae::Tensor* t) { return t ? t->f32() : nullptr; }

// Same as ExpectShape, for an optional argument (nullptr passes).
static void ExpectOptionalShape(const cmae::Tensor* t, const char* name, const cmae::Shape& shape) {
  if (t) ExpectShape(*t, name, cmae::DType::F32, shape);
}

// LayerNorm input `inp` (..., C): returns {R, C} with R the product of the leading dims.
struct RowsCols {
  int64_t R;
  int64_t C;
  cmae::Shape leading;
};

static RowsCols LayerNormDims(const cmae::Tensor& inp, const char* name = "inp") {
  inp.expect_dtype(cmae::DType::F32, name);
  CMAE_CHECK(inp.dim() >= 1, Shape, name, " must have at least one dimension (..., C), got ", cmae::shape_string(inp.shape()));
  const int64_t C = inp.size(-1);
  CMAE_CHECK(C >= 1, Shape, name, " must have a non-empty last dimension (C >= 1), got ", cmae::shape_string(inp.shape()));
  cmae::Shape leading(inp.shape().begin(), inp.shape().end() - 1);
  return {inp.numel() / C, C, leading};
}

// Per-row statistics (mean, rstd) of a LayerNorm: the leading dims of inp, or flat (R).
static void ExpectRowStats(const cmae::Tensor& t, const RowsCols& d, const char* name) {
  t.expect_dtype(cmae::DType::F32, name);
  if (t.shape() == d.leading || t.shape() == cmae::Shape{d.R}) return;
  cmae::fail(cmae::ErrorKind::Shape, name, " must have shape ", cmae::shape_string(d.leading), " (the leading dims of inp) or [", d.R,
             "], got ", cmae::shape_string(t.shape()));
}

// BatchNorm input `inp` (B, C).
static void ExpectBatch(const cmae::Tensor& inp) {
  inp.expect_dtype(cmae::DType::F32, "inp");
  CMAE_CHECK(inp.dim() == 2, Shape, "inp must have shape (B, C), got ", cmae::shape_string(inp.shape()));
}

// The tensors every LayerNorm forward writes and reads besides its input rows: out (the input's
// shape), mean and rstd (one per row), weight and bias (C); eps >= 0.
static void ExpectLayerNormOutputs(const cmae::Tensor& out, const cmae::Tensor& mean, const cmae::Tensor& rstd, const cmae::Tensor& weight,
                                   const cmae::Tensor& bias, const cmae::Shape& shape, const RowsCols& d, double eps) {
  ExpectShape(out, "out", cmae::DType::F32, shape);
  ExpectRowStats(mean, d, "mean");
  ExpectRowStats(rstd, d, "rstd");
  ExpectShape(weight, "weight", cmae::DType::F32, {d.C});
  ExpectShape(bias, "bias", cmae::DType::F32, {d.C});
  CMAE_CHECK(eps >= 0, Value, "eps must be >= 0, got ", eps);
}

// layernormForward(out, mean, rstd, inp, weight, bias, eps)
static Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& mean = TensorArg(info, 1, "mean");
  const cmae::Tensor& rstd = TensorArg(info, 2, "rstd");
  const cmae::Tensor& inp = TensorArg(info, 3, "inp");
  const cmae::Tensor& weight = TensorArg(info, 4, "weight");
  const cmae::Tensor& bias = TensorArg(info, 5, "bias");
  const double eps = NumberArg(info, 6, "eps");
  const RowsCols d = LayerNormDims(inp);
  ExpectLayerNormOutputs(out, mean, rstd, weight, bias, inp.shape(), d, eps);
  BackendOf({{&inp, "inp"}, {&out, "out"}, {&mean, "mean"}, {&rstd, "rstd"}, {&weight, "weight"}, {&bias, "bias"}})
      .layernorm_forward(out.f32(), mean.f32(), rstd.f32(), inp.f32(), weight.f32(), bias.f32(), d.R, d.C, static_cast<float>(eps));
  return info.Env().Undefined();
}

// layernormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, accumulate)
static Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dweight = TensorArg(info, 1, "dweight");
  const cmae::Tensor& dbias = TensorArg(info, 2, "dbias");
  const cmae::Tensor& dout = TensorArg(info, 3, "dout");
  const cmae::Tensor& inp = TensorArg(info, 4, "inp");
  const cmae::Tensor& weight = TensorArg(info, 5, "weight");
  const cmae::Tensor& mean = TensorArg(info, 6, "mean");
  const cmae::Tensor& rstd = TensorArg(info, 7, "rstd");
  const bool accumulate = BoolArg(info, 8, "accumulate");
  const RowsCols d = LayerNormDims(inp);
  ExpectShape(dinp, "dinp", cmae::DType::F32, inp.shape());
  ExpectShape(dweight, "dweight", cmae::DType::F32, {d.C});
  ExpectShape(dbias, "dbias", cmae::DType::F32, {d.C});
  ExpectShape(dout, "dout", cmae::DType::F32, inp.shape());
  ExpectShape(weight, "weight", cmae::DType::F32, {d.C});
  ExpectRowStats(mean, d, "mean");
  ExpectRowStats(rstd, d, "rstd");
  BackendOf({{&inp, "inp"}, {&dinp, "dinp"}, {&dweight, "dweight"}, {&dbias, "dbias"}, {&dout, "dout"}, {&weight, "weight"},
             {&mean, "mean"}, {&rstd, "rstd"}})
      .layernorm_backward(dinp.f32(), dweight.f32(), dbias.f32(), dout.f32(), inp.f32(), weight.f32(), mean.f32(), rstd.f32(), d.R,
                          d.C, accumulate);
  return info.Env().Undefined();
}

// batchnormForward(out, mean, rstd, runningMean|null, runningVar|null, inp, weight|null, bias|null, eps, momentum)
static Napi::Value BatchnormForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& mean = TensorArg(info, 1, "mean");
  const cmae::Tensor& rstd = TensorArg(info, 2, "rstd");
  const cmae::Tensor* running_mean = OptionalTensorArg(info, 3, "runningMean");
  const cmae::Tensor* running_var = OptionalTensorArg(info, 4, "runningVar");
  const cmae::Tensor& inp = TensorArg(info, 5, "inp");
  const cmae::Tensor* weight = OptionalTensorArg(info, 6, "weight");
  const cmae::Tensor* bias = OptionalTensorArg(info, 7, "bias");
  const double eps = NumberArg(info, 8, "eps");
  const double momentum = NumberArg(info, 9, "momentum");
  ExpectBatch(inp);
  const int64_t B = inp.size(0);
  const int64_t C = inp.size(1);
  // As torch.nn.BatchNorm1d: the batch variance of one sample is meaningless in training mode.
  CMAE_CHECK(B >= 2, Shape, "inp must have more than 1 row per channel in training mode (B >= 2), got ",
             cmae::shape_string(inp.shape()));
  ExpectShape(out, "out", cmae::DType::F32, inp.shape());
  ExpectShape(mean, "mean", cmae::DType::F32, {C});
  ExpectShape(rstd, "rstd", cmae::DType::F32, {C});
  ExpectOptionalShape(running_mean, "runningMean", {C});
  ExpectOptionalShape(running_var, "runningVar", {C});
  ExpectOptionalShape(weight, "weight", {C});
  ExpectOptionalShape(bias, "bias", {C});
  CMAE_CHECK(eps >= 0, Value, "eps must be >= 0, got ", eps);
  BackendOf({{&inp, "inp"}, {&out, "out"}, {&mean, "mean"}, {&rstd, "rstd"}, {running_mean, "runningMean"},
             {running_var, "runningVar"}, {weight, "weight"}, {bias, "bias"}})
      .batchnorm_forward(out.f32(), mean.f32(), rstd.f32(), OptionalF32(running_mean), OptionalF32(running_var), inp.f32(),
                         OptionalF32(weight), OptionalF32(bias), B, C, static_cast<float>(eps), static_cast<float>(momentum));
  return info.Env().Undefined();
}

// batchnormBackward(dinp, dweight|null, dbias|null, dout, inp, weight|null, mean, rstd)
static Napi::Value BatchnormBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor* dweight = OptionalTensorArg(info, 1, "dweight");
  const cmae::Tensor* dbias = OptionalTensorArg(info, 2, "dbias");
  const cmae::Tensor& dout = TensorArg(info, 3, "dout");
  const cmae::Tensor& inp = TensorArg(info, 4, "inp");
  const cmae::Tensor* weight = OptionalTensorArg(info, 5, "weight");
  const cmae::Tensor& mean = TensorArg(info, 6, "mean");
  const cmae::Tensor& rstd = TensorArg(info, 7, "rstd");
  ExpectBatch(inp);
  const int64_t C = inp.size(1);
  ExpectShape(dinp, "dinp", cmae::DType::F32, inp.shape());
  ExpectOptionalShape(dweight, "dweight", {C});
  ExpectOptionalShape(dbias, "dbias", {C});
  ExpectShape(dout, "dout", cmae::DType::F32, inp.shape());
  ExpectOptionalShape(weight, "weight", {C});
  ExpectShape(mean, "mean", cmae::DType::F32, {C});
  ExpectShape(rstd, "rstd", cmae::DType::F32, {C});
  BackendOf({{&inp, "inp"}, {&dinp, "dinp"}, {dweight, "dweight"}, {dbias, "dbias"}, {&dout, "dout"}, {weight, "weight"},
             {&mean, "mean"}, {&rstd, "rstd"}})
      .batchnorm_backward(dinp.f32(), OptionalF32(dweight), OptionalF32(dbias), dout.f32(), inp.f32(), OptionalF32(weight), mean.f32(),
                          rstd.f32(), inp.size(0), C);
  return info.Env().Undefined();
}

// batchnormInference(out, inp, runningMean, runningVar, weight|null, bias|null, eps)
static Napi::Value BatchnormInference(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  const cmae::Tensor& running_mean = TensorArg(info, 2, "runningMean");
  const cmae::Tensor& running_var = TensorArg(info, 3, "runningVar");
  const cmae::Tensor* weight = OptionalTensorArg(info, 4, "weight");
  const cmae::Tensor* bias = OptionalTensorArg(info, 5, "bias");
  const double eps = NumberArg(info, 6, "eps");
  ExpectBatch(inp);
  const int64_t C = inp.size(1);
  ExpectShape(out, "out", cmae::DType::F32, inp.shape());
  ExpectShape(running_mean, "runningMean", cmae::DType::F32, {C});
  ExpectShape(running_var, "runningVar", cmae::DType::F32, {C});
  ExpectOptionalShape(weight, "weight", {C});
  ExpectOptionalShape(bias, "bias", {C});
  CMAE_CHECK(eps >= 0, Value, "eps must be >= 0, got ", eps);
  BackendOf({{&inp, "inp"}, {&out, "out"}, {&running_mean, "runningMean"}, {&running_var, "runningVar"}, {weight, "weight"},
             {bias, "bias"}})
      .batchnorm_inference(out.f32(), inp.f32(), running_mean.f32(), running_var.f32(), OptionalF32(weight), OptionalF32(bias),
                           inp.size(0), C, static_cast<float>(eps));
  return info.Env().Undefined();
}

// residualLayernormForward(sum, out, mean, rstd, a, b, weight, bias, eps): sum = a + b,
// out = LayerNorm(sum); a, b (..., C).
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
  const RowsCols d = LayerNormDims(a, "a");
  ExpectShape(b, "b", cmae::DType::F32, a.shape());
  ExpectShape(sum, "sum", cmae::DType::F32, a.shape());
  ExpectLayerNormOutputs(out, mean, rstd, weight, bias, a.shape(), d, eps);
  CMAE_CHECK(out.storage() != a.storage() && out.storage() != b.storage() && out.storage() != sum.storage(), Value,
             "out must not alias a, b or sum");
  BackendOf({{&a, "a"}, {&b, "b"}, {&sum, "sum"}, {&out, "out"}, {&mean, "mean"}, {&rstd, "rstd"}, {&weight, "weight"}, {&bias, "bias"}})
      .residual_layernorm_forward(sum.f32(), out.f32(), mean.f32(), rstd.f32(), a.f32(), b.f32(), weight.f32(), bias.f32(), d.R, d.C,
                                  static_cast<float>(eps));
  return info.Env().Undefined();
}

void RegisterNormKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "residualLayernormForward", ResidualLayernormForward);
  CMAE_EXPORT(kernels, "layernormForward", LayernormForward);
  CMAE_EXPORT(kernels, "layernormBackward", LayernormBackward);
  CMAE_EXPORT(kernels, "batchnormForward", BatchnormForward);
  CMAE_EXPORT(kernels, "batchnormBackward", BatchnormBackward);
  CMAE_EXPORT(kernels, "batchnormInference", BatchnormInference);
}

}  // namespace cmae::napi
