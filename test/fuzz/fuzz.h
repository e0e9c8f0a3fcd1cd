// What the libFuzzer targets share. fuzz_config: a ModelConfig from fuzzer bytes, as a checkpoint's metadata.config can carry it: what
// native/napi's ParseConfig accepts from JSON (any mode name maps to one of the five; integers up
// to 9e15 in magnitude; any non-NaN double, infinities included: JSON.parse("1e999") is Infinity).
// `small` keeps every size tiny so that a model of it can be built and run in milliseconds.
#pragma once
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "model/config.h"

namespace cmae::fuzz {

// A broken invariant: abort, so that libFuzzer keeps the input as a finding.
[[noreturn]] inline void finding(const char* what) {
  std::fprintf(stderr, "finding: %s\n", what);
  std::abort();
}

inline int64_t fuzz_int(FuzzedDataProvider& in, bool small) {
  if (small) return in.ConsumeIntegralInRange<int64_t>(0, 40);
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: return in.ConsumeIntegralInRange<int64_t>(-2, 70000);
    case 1: return in.ConsumeIntegralInRange<int64_t>(0, 64) << in.ConsumeIntegralInRange<int>(0, 46);
    default: return in.ConsumeIntegralInRange<int64_t>(-9'000'000'000'000'000, 9'000'000'000'000'000);
  }
}

inline double fuzz_number(FuzzedDataProvider& in, bool small) {
  switch (in.ConsumeIntegralInRange<int>(0, small ? 1 : 3)) {
    case 0: return in.ConsumeProbability<double>();
    case 1: return in.ConsumeFloatingPointInRange<double>(-2.0, 4.0);
    case 2: return in.ConsumeBool() ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
    default: {
      const double d = in.ConsumeFloatingPoint<double>();
      return std::isnan(d) ? 0.0 : d;  // NumberProperty refuses NaN before the config exists
    }
  }
}

inline model::ModelConfig fuzz_config(FuzzedDataProvider& in, bool small) {
  model::ModelConfig c;
  c.mode = static_cast<model::Mode>(in.ConsumeIntegralInRange<int>(0, 4));
  for (int64_t* field : {&c.image_size, &c.channels, &c.patch_size, &c.dim, &c.depth, &c.heads, &c.mlp_ratio, &c.decoder_dim,
                         &c.decoder_depth, &c.decoder_heads, &c.feature_decoder_dim, &c.feature_decoder_depth,
                         &c.feature_decoder_heads, &c.projector_hidden, &c.projector_dim, &c.mask_group})
    *field = fuzz_int(in, small);
  for (double* field : {&c.mask_ratio, &c.tau, &c.ct_weight, &c.rc_weight, &c.bn_eps, &c.bn_momentum}) *field = fuzz_number(in, small);
  c.norm_pix_loss = in.ConsumeBool();
  return c;
}

}  // namespace cmae::fuzz
