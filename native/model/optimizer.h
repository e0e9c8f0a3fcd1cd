// AdamW for a CmaeModel (torch.optim.AdamW semantics, spec §1.8, §2.10): its moments live in the
// model's backend, next to the arenas, and a step is fused passes over the flat trainable arena:
// the global gradient norm, the clipping coefficient (when clipping), the update. The norm and the
// coefficient stay in backend memory between the passes; the host reads the norm once at the end.
// Weight decay applies where the model's decay mask says (Linear/conv weights only).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cmae_model.h"

namespace cmae::model {

// The hyper-parameters of an optimizer (lr is the initial one; each step may pass another).
// Defaults live in the TypeScript AdamW (src/optim/adamw.ts); validate() is the one check of their
// ranges.
struct AdamWHyper {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double max_grad_norm = 0;  // 0 = no clipping
  // Layer-wise learning-rate decay (BEiT, MAE's fine-tuning): parameter p's learning rate is
  // lr·layer_decay^(depth + 1 − layer_id(p)), layer ids as BEiT assigns them (layer_id below).
  // 1 = every parameter at lr.
  double layer_decay = 1;

  // Throws ErrorKind::Value naming the first field out of range.
  void validate() const;
};

// BEiT's layer id of a parameter of a `depth`-block encoder: the embeddings (cls_token, pos_embed,
// patch_embed.*) 0, blocks.{i}.* i + 1, everything after the encoder (norm, fc_norm, head, decoders)
// depth + 1.
int64_t layer_id(const std::string& name, int64_t depth);

class AdamW {
 public:
  // Zero moments for `model`'s trainable arena, in its backend; `hyper` is validated here.
  AdamW(const CmaeModel& model, const AdamWHyper& hyper);

  // One update of model's trainable parameters from its current gradients, at learning rate `lr`,
  // as step number `step` (1-based: the bias corrections use β^step). Returns the global gradient
  // norm before clipping. A non-finite norm skips the update (parameters and moments untouched) and
  // is returned as it is. `model` must be the model the optimizer was made for.
  double step(CmaeModel& model, double lr, int64_t step);

  // Throws ErrorKind::Value unless lr is a non-negative finite number and step >= 1.
  static void validate_step(double lr, int64_t step);
  const AdamWHyper& hyper() const { return hyper_; }

  // First and second moments (exp_avg, exp_avg_sq), shape (trainable count), in the backend.
  const Tensor& exp_avg() const { return m_; }
  const Tensor& exp_avg_sq() const { return v_; }
  int64_t bytes() const { return static_cast<int64_t>(m_.bytes() + v_.bytes() + scalars_.bytes()); }

 private:
  // A run [begin, begin + count) of the trainable arena updated at lr·lr_scale, with weight decay
  // or without. Runs instead of a 0/1 decay mask over the arena: the mask was as large as the
  // gradients (26 MB of a tiny model, 0.34 GB of base) for one bit per parameter tensor.
  struct Group {
    int64_t begin = 0, count = 0;
    double lr_scale = 1;
    bool decayed = true;
  };
  AdamWHyper hyper_;
  std::vector<Group> groups_;  // consecutive parameters of one scale and decay merged; covers the arena
  Tensor m_, v_;
  Tensor scalars_;  // the norm (one double, floats 0-1) and the clipping coefficient (float 2)
};

}  // namespace cmae::model
