// AdamW for a CmaeModel (torch.optim.AdamW semantics, spec §1.8, §2.10): its moments live in the
// model's backend, next to the arenas, and a step is fused passes over the flat trainable arena:
// the global gradient norm, the clipping coefficient (when clipping), the update. The norm and the
// coefficient stay in backend memory between the passes; the host reads the norm once at the end.
// Weight decay applies where the model's decay mask says (Linear/conv weights only).
#pragma once
#include <cstdint>

#include "cmae_model.h"

namespace cmae::model {

// The hyper-parameters of one step. Defaults live in the TypeScript AdamW (src/optim/adamw.ts);
// validate() is the one check of their ranges.
struct AdamWHyper {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double max_grad_norm = 0;  // 0 = no clipping
  int64_t step = 0;          // 1-based: the bias corrections use β^step

  // Throws ErrorKind::Value naming the first field out of range.
  void validate() const;
};

class AdamW {
 public:
  // Zero moments for `model`'s trainable arena, in its backend.
  explicit AdamW(const CmaeModel& model);

  // One update of model's trainable parameters from its current gradients. Returns the global
  // gradient norm before clipping. `model` must be the model the optimizer was made for (same
  // trainable count and backend).
  double step(CmaeModel& model, const AdamWHyper& hyper);

  // First and second moments (exp_avg, exp_avg_sq), shape (trainable count), in the backend.
  const Tensor& exp_avg() const { return m_; }
  const Tensor& exp_avg_sq() const { return v_; }
  int64_t bytes() const { return static_cast<int64_t>(m_.bytes() + v_.bytes() + scalars_.bytes()); }

 private:
  Tensor m_, v_;
  Tensor scalars_;  // the norm (one double, floats 0-1) and the clipping coefficient (float 2)
};

}  // namespace cmae::model
