#include "optimizer.h"

#include <cfloat>
#include <cmath>

namespace cmae::model {

void AdamWHyper::validate() const {
  AdamW::validate_step(lr, 1);
  CMAE_CHECK(beta1 >= 0 && beta1 < 1, Value, "beta1 must be in [0, 1), got ", beta1);
  CMAE_CHECK(beta2 >= 0 && beta2 < 1, Value, "beta2 must be in [0, 1), got ", beta2);
  CMAE_CHECK(std::isfinite(eps) && eps > 0, Value, "eps must be a positive finite number, got ", eps);
  CMAE_CHECK(std::isfinite(weight_decay) && weight_decay >= 0 && weight_decay <= FLT_MAX, Value,
             "weightDecay must be a non-negative number a float32 can hold, got ", weight_decay);
  CMAE_CHECK(std::isfinite(max_grad_norm) && max_grad_norm >= 0, Value, "maxGradNorm must be a non-negative finite number, got ",
             max_grad_norm);
  CMAE_CHECK(layer_decay > 0 && layer_decay <= 1, Value, "layerDecay must be in (0, 1], got ", layer_decay);
}

int64_t layer_id(const std::string& name, int64_t depth) {
  if (name == "cls_token" || name == "pos_embed" || name.rfind("patch_embed.", 0) == 0) return 0;
  if (name.rfind("blocks.", 0) == 0) return std::stoll(name.substr(7)) + 1;  // "blocks.{i}.…"
  return depth + 1;
}

void AdamW::validate_step(double lr, int64_t step) {
  // The kernels take float32 hyper-parameters: 1e39 would become an infinite step.
  CMAE_CHECK(std::isfinite(lr) && lr >= 0 && lr <= FLT_MAX, Value, "lr must be a non-negative number a float32 can hold, got ", lr);
  CMAE_CHECK(step >= 1, Value, "step must be an integer >= 1 (the first step is 1), got ", step);
}

AdamW::AdamW(const CmaeModel& model, const AdamWHyper& hyper) : hyper_(hyper) {
  hyper_.validate();
  Backend& backend = model.backend();
  const int64_t n = model.table().trainable_count();
  m_ = Tensor::zeros({n}, DType::F32, backend);
  v_ = Tensor::zeros({n}, DType::F32, backend);
  scalars_ = Tensor::zeros({4}, DType::F32, backend);
  const int64_t depth = model.config().depth;
  for (const ParamInfo& info : model.table().entries()) {
    if (info.role != ParamRole::Trainable) continue;
    const double scale = std::pow(hyper_.layer_decay, static_cast<double>(depth + 1 - layer_id(info.name, depth)));
    const Group* last = groups_.empty() ? nullptr : &groups_.back();
    if (last && last->lr_scale == scale && last->decayed == info.weight_decay && last->begin + last->count == info.offset) {
      groups_.back().count += info.numel;
    } else {
      groups_.push_back({info.offset, info.numel, scale, info.weight_decay});
    }
  }
}

double AdamW::step(CmaeModel& model, double lr, int64_t step) {
  validate_step(lr, step);
  const AdamWHyper& h = hyper_;
  Backend& backend = model.backend();
  const int64_t n = model.table().trainable_count();
  CMAE_CHECK(n == m_.numel() && &backend == &m_.backend(), Value, "this optimizer was made for another model");
  AdamWStep s;
  s.beta1 = static_cast<float>(h.beta1);
  s.beta2 = static_cast<float>(h.beta2);
  s.eps = static_cast<float>(h.eps);
  s.weight_decay = static_cast<float>(h.weight_decay);
  s.bias_correction1 = static_cast<float>(1.0 - std::pow(h.beta1, static_cast<double>(step)));
  s.bias_correction2 = static_cast<float>(1.0 - std::pow(h.beta2, static_cast<double>(step)));
  double* norm = reinterpret_cast<double*>(scalars_.f32());
  float* coefficient = scalars_.f32() + 2;
  const float* grads = model.grads().f32();
  backend.global_norm(norm, grads, n);
  // The norm is read before the update: a non-finite one (an overflow or NaN in the backward)
  // skips it, leaving parameters and moments as they are. On a device this is one host round trip
  // between two kernels, where the step already read the norm at its end.
  double host_norm = 0.0;
  backend.copy_to_host(&host_norm, norm, sizeof(double));
  if (!std::isfinite(host_norm)) return host_norm;
  if (h.max_grad_norm > 0) backend.clip_coefficient(coefficient, norm, h.max_grad_norm);
  // One fused pass per run of equal learning rate and decay. A run without decay takes weight
  // decay 0: lr·0·p is the same zero that lr·wd·mask·p gave with a 0 mask (and stays 0 where
  // lr·wd overflows a float, where inf·0 was NaN).
  const float weight_decay = s.weight_decay;
  for (const Group& group : groups_) {
    const int64_t b = group.begin;
    s.lr = static_cast<float>(lr * group.lr_scale);
    s.weight_decay = group.decayed ? weight_decay : 0.0f;
    backend.adamw_step(model.params().f32() + b, m_.f32() + b, v_.f32() + b, grads + b, nullptr, group.count, s,
                       h.max_grad_norm > 0 ? coefficient : nullptr);
  }
  return host_norm;
}

}  // namespace cmae::model
