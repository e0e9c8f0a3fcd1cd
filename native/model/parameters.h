// ParameterTable: every tensor of a model as a named, shaped slice of ONE flat float arena
// (native/README.md, principle 2). Gradients and optimizer moments are arenas of the same layout (over the
// trainable prefix), so zero-grad, AdamW, global-norm and the EMA are single passes over flat memory.
//
// Arena layout, in this order (each segment contiguous):
//   [trainable]  online parameters that receive gradients; within it, the EMA source
//                (online encoder without its final norm, then the projector) comes first,
//   [momentum]   EMA copies, same order as the EMA source, so θ_t ← m·θ_t + (1−m)·θ_o is one lerp,
//   [buffers]    fixed sin-cos position embeddings and BatchNorm running statistics.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace cmae::model {

enum class ParamRole : int { Trainable = 0, Momentum = 1, Buffer = 2 };

// How a parameter is initialised (spec §1.7; projector/predictor Linear layers keep PyTorch's default).
enum class InitKind : int {
  XavierUniform,  // U(±sqrt(6/(fan_in+fan_out))): every ViT/decoder Linear and the patch-embed weight
  TorchDefaultLinearWeight,  // kaiming_uniform(a=√5) = U(±1/sqrt(fan_in)): projector/predictor Linear weights
  FanInUniform,   // U(±1/sqrt(fan_in)): patch-embed conv bias, projector/predictor Linear biases
  Normal002,      // N(0, 0.02²): cls and mask tokens
  HeadNormal,     // N(0, (2e-5)²): the classifier head's weight (MAE's trunc_normal_(std=2e-5), whose ±2 bounds never bind)
  Zeros,
  Ones,
  Copy,           // momentum branch: copied from its online twin at init
  Fixed,          // computed (sin-cos position embeddings)
};

struct ParamInfo {
  std::string name;  // timm/MAE state-dict name
  Shape shape;
  int64_t offset = 0;  // in floats, into the arena
  int64_t numel = 0;
  ParamRole role = ParamRole::Trainable;
  InitKind init = InitKind::Zeros;
  int64_t fan_in = 0, fan_out = 0;
  bool weight_decay = false;  // AdamW decays it (Linear/conv weights only; see cmae_model.cc)
};

class ParameterTable {
 public:
  // Appends a parameter; returns its offset. Roles must be added in segment order.
  int64_t add(const std::string& name, const Shape& shape, ParamRole role, InitKind init, bool weight_decay = false,
              int64_t fan_in = 0, int64_t fan_out = 0);
  const std::vector<ParamInfo>& entries() const { return entries_; }
  const ParamInfo& get(const std::string& name) const;  // throws Value if unknown
  const ParamInfo* find(const std::string& name) const;
  int64_t total() const { return total_; }
  int64_t trainable_count() const { return trainable_end_; }
  int64_t momentum_begin() const { return trainable_end_; }
  int64_t momentum_end() const { return momentum_end_; }

  // Marks the end of the EMA source span inside the trainable segment (its start is 0).
  void mark_ema_source_end() { ema_source_end_ = total_; }
  int64_t ema_source_end() const { return ema_source_end_; }

 private:
  std::vector<ParamInfo> entries_;
  std::unordered_map<std::string, size_t> index_;
  int64_t total_ = 0;
  int64_t trainable_end_ = 0;
  int64_t momentum_end_ = 0;
  int64_t ema_source_end_ = 0;
  ParamRole last_role_ = ParamRole::Trainable;
};

}  // namespace cmae::model
