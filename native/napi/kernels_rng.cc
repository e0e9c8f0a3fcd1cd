#include "common.h"
#include "core/rng.h"
#include "kernels.h"

namespace cmae::napi {

// philoxUniform(out, seed, stream, offset): out[i] = uniform01(seed, stream, offset + i).
// Exposed so the TypeScript side (and tests) can reproduce exactly what native code draws.
static Napi::Value PhiloxUniform(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  out.expect_dtype(cmae::DType::F32, "out");
  const int64_t seed = IntArg(info, 1, "seed");
  const int64_t stream = IntArg(info, 2, "stream");
  const int64_t offset = IntArg(info, 3, "offset");
  float* o = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) {
    o[i] = cmae::uniform01(static_cast<uint64_t>(seed), static_cast<uint64_t>(stream), static_cast<uint64_t>(offset + i));
  }
  return info.Env().Undefined();
}

// philoxWords(seed, stream, index) → [w0, w1, w2, w3] (for known-answer tests of the generator).
static Napi::Value PhiloxWords(const Napi::CallbackInfo& info) {
  const cmae::Philox4 r = cmae::philox4x32(static_cast<uint64_t>(IntArg(info, 0, "seed")),
                                           static_cast<uint64_t>(IntArg(info, 1, "stream")),
                                           static_cast<uint64_t>(IntArg(info, 2, "index")));
  Napi::Array out = Napi::Array::New(info.Env(), 4);
  for (uint32_t i = 0; i < 4; ++i) out.Set(i, Napi::Number::New(info.Env(), r.v[i]));
  return out;
}

void RegisterRngKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "philoxUniform", PhiloxUniform);
  CMAE_EXPORT(kernels, "philoxWords", PhiloxWords);
}

}  // namespace cmae::napi
