#include "parameters.h"

namespace cmae::model {

int64_t ParameterTable::add(const std::string& name, const Shape& shape, ParamRole role, InitKind init, bool weight_decay,
                            int64_t fan_in, int64_t fan_out) {
  CMAE_CHECK(index_.find(name) == index_.end(), Internal, "duplicate parameter name ", name);
  CMAE_CHECK(static_cast<int>(role) >= static_cast<int>(last_role_), Internal, "parameter ", name, " added out of segment order");
  last_role_ = role;
  ParamInfo info;
  info.name = name;
  info.shape = shape;
  info.offset = total_;
  info.numel = shape_numel(shape);
  info.role = role;
  info.init = init;
  info.weight_decay = weight_decay;
  info.fan_in = fan_in;
  info.fan_out = fan_out;
  index_[name] = entries_.size();
  entries_.push_back(info);
  total_ += info.numel;
  if (role == ParamRole::Trainable) trainable_end_ = total_;
  if (role != ParamRole::Buffer) momentum_end_ = total_;
  return info.offset;
}

const ParamInfo* ParameterTable::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const ParamInfo& ParameterTable::get(const std::string& name) const {
  const ParamInfo* info = find(name);
  CMAE_CHECK(info != nullptr, Value, "unknown parameter '", name, "'");
  return *info;
}

}  // namespace cmae::model
