// libFuzzer target: a checkpoint's config, as the loader checks it before allocating anything
// (CMAE.load → planParameters → ModelConfig::validate + the parameter table). Any config must end
// in a cmae::Error of a user kind, or in a table whose sizes are consistent and whose arenas can be
// allocated without overflow; never an Internal error, a crash or undefined behaviour.
#include <cstdint>

#include "core/errors.h"
#include "fuzz.h"
#include "model/cmae_model.h"

using cmae::fuzz::finding;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const cmae::model::ModelConfig config = cmae::fuzz::fuzz_config(in, false);
  cmae::model::ParameterTable table;
  try {
    table = cmae::model::CmaeModel::plan_parameters(config);
  } catch (const cmae::Error& e) {
    if (e.kind() == cmae::ErrorKind::Internal) finding(e.what());
    return 0;
  }
  int64_t end = 0;
  for (const auto& p : table.entries()) {
    int64_t numel = 1;
    for (int64_t d : p.shape) {
      if (d <= 0) finding("a parameter with an empty or negative dimension");
      if (__builtin_mul_overflow(numel, d, &numel)) finding("a parameter's element count overflows");
    }
    if (numel != p.numel) finding("numel is not the product of the shape");
    if (p.offset != end) finding("parameters are not laid out back to back");
    end += p.numel;
  }
  if (end != table.total()) finding("the arena's total is not the sum of its parameters");
  if (!(table.trainable_count() <= table.momentum_end() && table.momentum_end() <= table.total())) finding("segments out of order");
  // The model allocates the arena, its gradients, AdamW's two moments and the batch-part gradients
  // in bytes: all must be representable (validate()'s bounds promise products below 2^63).
  int64_t bytes = 0;
  if (__builtin_mul_overflow(table.total(), int64_t{4} * 8, &bytes)) finding("the arenas' byte size overflows");
  return 0;
}
