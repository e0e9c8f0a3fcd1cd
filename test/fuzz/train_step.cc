// libFuzzer target: a model of any small configuration the loader accepts (what a checkpoint can
// ask for: a head width of 1, a 1×1 patch grid, every patch visible, a mask group as wide as the
// grid, ...), run through a training step, the EMA and encode on fuzzer-chosen pixels. Any input
// must end in a cmae::Error of a user kind or in results whose every element was written; never an
// Internal error, a crash, an out-of-bounds access (ASan) or undefined behaviour (UBSan).
#include <cmath>
#include <cstdint>
#include <limits>

#include "backend/backend.h"
#include "core/errors.h"
#include "fuzz.h"
#include "model/cmae_model.h"

namespace {

cmae::Tensor images(FuzzedDataProvider& in, int64_t batch, const cmae::model::ModelConfig& c) {
  cmae::Tensor t = cmae::Tensor::empty({batch, c.channels, c.image_size, c.image_size});
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); i++) p[i] = in.ConsumeFloatingPointInRange<float>(-3.0f, 3.0f);
  return t;
}

}  // namespace

using cmae::fuzz::finding;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const cmae::model::ModelConfig config = cmae::fuzz::fuzz_config(in, true);
  try {
    config.validate();
  } catch (const cmae::Error&) {
    return 0;  // the other target covers refusals
  }
  // Small enough for milliseconds: validate() allows far larger models than a fuzzing run can build.
  if (config.image_size > 16 || config.depth > 2 || config.decoder_depth > 2 || config.feature_decoder_depth > 2 ||
      config.mlp_ratio > 4 || config.dim > 32 || config.decoder_dim > 32 || config.feature_decoder_dim > 32 ||
      config.projector_hidden > 32 || config.projector_dim > 32)
    return 0;
  const int64_t batch = in.ConsumeIntegralInRange<int64_t>(1, 4);
  try {
    cmae::model::CmaeModel model(config, in.ConsumeIntegral<uint32_t>(), cmae::cpu_backend());
    const cmae::Tensor x = images(in, batch, config), target = images(in, batch, config);
    model.loss_and_grad(x, &target, nullptr, {});
    model.update_momentum(in.ConsumeProbability<double>());
    cmae::Tensor out = cmae::Tensor::empty({batch, config.dim});
    for (auto pool : {cmae::model::Pool::Cls, cmae::model::Pool::Mean}) {
      for (int64_t i = 0; i < out.numel(); i++) out.f32()[i] = std::numeric_limits<float>::quiet_NaN();
      model.encode(out, x, pool, cmae::model::Branch::Online);
      // Finite pixels through LayerNorms of freshly initialised weights: every feature is finite,
      // so a NaN is an element nobody wrote.
      for (int64_t i = 0; i < out.numel(); i++)
        if (!std::isfinite(out.f32()[i])) finding("encode left a feature unwritten or not finite");
    }
  } catch (const cmae::Error& e) {
    if (e.kind() == cmae::ErrorKind::Internal) finding(e.what());
  }
  return 0;
}
