// Bindings of ops/linear.h.
#include "common.h"
#include "kernels.h"

namespace cmae::napi {

// sgemm(C, A, B, transA, transB, alpha, beta): C = alpha·op(A)·op(B) + beta·C, all 2-D row-major.
// op(A) is A [M,K] or, with transA, Aᵀ of A [K,M]; op(B) is B [K,N] or, with transB, Bᵀ of B [N,K].
static Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  const cmae::Tensor& c = TensorArg(info, 0, "C");
  const cmae::Tensor& a = TensorArg(info, 1, "A");
  const cmae::Tensor& b = TensorArg(info, 2, "B");
  const bool trans_a = BoolArg(info, 3, "transA");
  const bool trans_b = BoolArg(info, 4, "transB");
  const float alpha = static_cast<float>(NumberArg(info, 5, "alpha"));
  const float beta = static_cast<float>(NumberArg(info, 6, "beta"));
  c.expect_dtype(cmae::DType::F32, "C");
  a.expect_dtype(cmae::DType::F32, "A");
  b.expect_dtype(cmae::DType::F32, "B");
  ExpectRank(a, "A", cmae::DType::F32, 2, trans_a ? "[K, M] (transA)" : "[M, K]");
  ExpectRank(b, "B", cmae::DType::F32, 2, trans_b ? "[N, K] (transB)" : "[K, N]");
  ExpectRank(c, "C", cmae::DType::F32, 2, "[M, N]");
  const int64_t M = trans_a ? a.size(1) : a.size(0);
  const int64_t K = trans_a ? a.size(0) : a.size(1);
  const int64_t KB = trans_b ? b.size(1) : b.size(0);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  CMAE_CHECK(K == KB, Shape, "sgemm: inner dimensions differ: op(A) is [", M, ", ", K, "] (A ", cmae::shape_string(a.shape()),
             trans_a ? ", transA" : "", ") but op(B) is [", KB, ", ", N, "] (B ", cmae::shape_string(b.shape()),
             trans_b ? ", transB" : "", ")");
  c.expect_shape({M, N}, "C");
  CMAE_CHECK(c.storage() != a.storage() && c.storage() != b.storage(), Value, "C must not share memory with A or B");
  BackendOf({{&a, "A"}, {&b, "B"}, {&c, "C"}}).sgemm(trans_a, trans_b, M, N, K, alpha, a.f32(), a.size(1), b.f32(), b.size(1), beta, c.f32(), N);
  return info.Env().Undefined();
}

// Checks inp [..., C] against weight [OC, C] (and bias [OC]); returns {R, C, OC}.
struct LinearDims {
  int64_t R, C, OC;
};

static LinearDims CheckLinear(const cmae::Tensor& inp, const cmae::Tensor& weight, const cmae::Tensor* bias, const char* bias_name) {
  inp.expect_dtype(cmae::DType::F32, "inp");
  weight.expect_dtype(cmae::DType::F32, "weight");
  ExpectRank(weight, "weight", cmae::DType::F32, 2, "[OC, C]");
  CMAE_CHECK(inp.dim() >= 1, Shape, "inp must have at least 1 dimension [..., C], got ", cmae::shape_string(inp.shape()));
  const int64_t C = inp.size(-1);
  const int64_t OC = weight.size(0);
  CMAE_CHECK(weight.size(1) == C, Shape, "weight must have shape [OC, C] with C = ", C, " (the last dim of inp ",
             cmae::shape_string(inp.shape()), "), got ", cmae::shape_string(weight.shape()));
  if (bias) {
    bias->expect_dtype(cmae::DType::F32, bias_name);
    bias->expect_shape({OC}, bias_name);
  }
  int64_t R = 1;
  for (int64_t i = 0; i + 1 < inp.dim(); ++i) R *= inp.size(i);
  return {R, C, OC};
}

// inp.shape with the last dim replaced by `last`.
static cmae::Shape WithLast(const cmae::Shape& shape, int64_t last) {
  cmae::Shape s = shape;
  s.back() = last;
  return s;
}

// linearForward(out, inp, weight, bias|null): out[..., OC] = inp[..., C] · weightᵀ + bias.
static Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  const cmae::Tensor& weight = TensorArg(info, 2, "weight");
  const cmae::Tensor* bias = OptionalTensorArg(info, 3, "bias");
  const LinearDims d = CheckLinear(inp, weight, bias, "bias");
  out.expect_dtype(cmae::DType::F32, "out");
  out.expect_shape(WithLast(inp.shape(), d.OC), "out");
  CMAE_CHECK(out.storage() != inp.storage() && out.storage() != weight.storage(), Value,
             "out must not share memory with inp or weight");
  BackendOf({{&inp, "inp"}, {&out, "out"}, {&weight, "weight"}, {bias, "bias"}})
      .linear_forward(out.f32(), inp.f32(), weight.f32(), bias ? bias->f32() : nullptr, d.R, d.C, d.OC);
  return info.Env().Undefined();
}

// linearBackward(dinp|null, dweight, dbias|null, dout, inp, weight): dinp = dout·weight (=),
// dweight += doutᵀ·inp, dbias += Σ rows of dout.
static Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor* dinp = OptionalTensorArg(info, 0, "dinp");
  const cmae::Tensor& dweight = TensorArg(info, 1, "dweight");
  const cmae::Tensor* dbias = OptionalTensorArg(info, 2, "dbias");
  const cmae::Tensor& dout = TensorArg(info, 3, "dout");
  const cmae::Tensor& inp = TensorArg(info, 4, "inp");
  const cmae::Tensor& weight = TensorArg(info, 5, "weight");
  const LinearDims d = CheckLinear(inp, weight, dbias, "dbias");
  dout.expect_dtype(cmae::DType::F32, "dout");
  dout.expect_shape(WithLast(inp.shape(), d.OC), "dout");
  dweight.expect_dtype(cmae::DType::F32, "dweight");
  dweight.expect_shape(weight.shape(), "dweight");
  CMAE_CHECK(dweight.storage() != dout.storage() && dweight.storage() != inp.storage(), Value,
             "dweight must not share memory with dout or inp");
  if (dinp) {
    dinp->expect_dtype(cmae::DType::F32, "dinp");
    dinp->expect_shape(inp.shape(), "dinp");
    CMAE_CHECK(dinp->storage() != dout.storage() && dinp->storage() != weight.storage(), Value,
               "dinp must not share memory with dout or weight");
  }
  BackendOf({{&inp, "inp"}, {dinp, "dinp"}, {&dweight, "dweight"}, {dbias, "dbias"}, {&dout, "dout"}, {&weight, "weight"}})
      .linear_backward(dinp ? dinp->f32() : nullptr, dweight.f32(), dbias ? dbias->f32() : nullptr, dout.f32(), inp.f32(), weight.f32(),
                       d.R, d.C, d.OC);
  return info.Env().Undefined();
}

// linearGeluForward(pre|null, out, inp, weight, bias|null): pre = inp·weightᵀ + bias, out = GELU(pre),
// GELU applied in the GEMM epilogue. pre null: only out is written.
static Napi::Value LinearGeluForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor* pre = OptionalTensorArg(info, 0, "pre");
  const cmae::Tensor& out = TensorArg(info, 1, "out");
  const cmae::Tensor& inp = TensorArg(info, 2, "inp");
  const cmae::Tensor& weight = TensorArg(info, 3, "weight");
  const cmae::Tensor* bias = OptionalTensorArg(info, 4, "bias");
  const LinearDims d = CheckLinear(inp, weight, bias, "bias");
  out.expect_dtype(cmae::DType::F32, "out");
  out.expect_shape(WithLast(inp.shape(), d.OC), "out");
  CMAE_CHECK(out.storage() != inp.storage() && out.storage() != weight.storage(), Value,
             "out must not share memory with inp or weight");
  if (pre) {
    pre->expect_dtype(cmae::DType::F32, "pre");
    pre->expect_shape(WithLast(inp.shape(), d.OC), "pre");
    CMAE_CHECK(pre->storage() != inp.storage() && pre->storage() != weight.storage() && pre->storage() != out.storage(), Value,
               "pre must not share memory with inp, weight or out");
  }
  BackendOf({{&inp, "inp"}, {pre, "pre"}, {&out, "out"}, {&weight, "weight"}, {bias, "bias"}})
      .linear_gelu_forward(pre ? pre->f32() : nullptr, out.f32(), inp.f32(), weight.f32(), bias ? bias->f32() : nullptr, d.R, d.C, d.OC);
  return info.Env().Undefined();
}

// geluLinearBackward(dpre, dweight, dbias|null, dout, act, pre, weight): backward of
// out = Linear(GELU(pre)): dpre = (dout·weight) ⊙ GELU'(pre) (=), dweight += doutᵀ·act, dbias += Σ dout.
static Napi::Value GeluLinearBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dpre = TensorArg(info, 0, "dpre");
  const cmae::Tensor& dweight = TensorArg(info, 1, "dweight");
  const cmae::Tensor* dbias = OptionalTensorArg(info, 2, "dbias");
  const cmae::Tensor& dout = TensorArg(info, 3, "dout");
  const cmae::Tensor& act = TensorArg(info, 4, "act");
  const cmae::Tensor& pre = TensorArg(info, 5, "pre");
  const cmae::Tensor& weight = TensorArg(info, 6, "weight");
  const LinearDims d = CheckLinear(act, weight, dbias, "dbias");
  dout.expect_dtype(cmae::DType::F32, "dout");
  dout.expect_shape(WithLast(act.shape(), d.OC), "dout");
  pre.expect_dtype(cmae::DType::F32, "pre");
  pre.expect_shape(act.shape(), "pre");
  dpre.expect_dtype(cmae::DType::F32, "dpre");
  dpre.expect_shape(act.shape(), "dpre");
  dweight.expect_dtype(cmae::DType::F32, "dweight");
  dweight.expect_shape(weight.shape(), "dweight");
  CMAE_CHECK(dpre.storage() != dout.storage() && dpre.storage() != weight.storage() && dpre.storage() != pre.storage() &&
                 dpre.storage() != act.storage(),
             Value, "dpre must not share memory with dout, act, pre or weight");
  CMAE_CHECK(dweight.storage() != dout.storage() && dweight.storage() != act.storage(), Value,
             "dweight must not share memory with dout or act");
  BackendOf({{&act, "act"}, {&dpre, "dpre"}, {&dweight, "dweight"}, {dbias, "dbias"}, {&dout, "dout"}, {&pre, "pre"}, {&weight, "weight"}})
      .gelu_linear_backward(dpre.f32(), dweight.f32(), dbias ? dbias->f32() : nullptr, dout.f32(), act.f32(), pre.f32(), weight.f32(), d.R,
                            d.C, d.OC);
  return info.Env().Undefined();
}

void RegisterLinearKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "sgemm", Sgemm);
  CMAE_EXPORT(kernels, "linearForward", LinearForward);
  CMAE_EXPORT(kernels, "linearBackward", LinearBackward);
  CMAE_EXPORT(kernels, "linearGeluForward", LinearGeluForward);
  CMAE_EXPORT(kernels, "geluLinearBackward", GeluLinearBackward);
}

}  // namespace cmae::napi
