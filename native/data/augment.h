// The host implementation of the batched two-view augmentation (the contract is ops/data.h's
// DataOps::make_views; the draws and per-pixel formulas it shares with the other backends are
// data/augment_math.h), the argument check every caller runs first, and the dataset statistics.
//
// Allocation: each thread keeps thread-local scratch buffers that grow to the largest size seen (an
// allocation failure inside the parallel region is carried out of it by parallel_for).
#pragma once
#include <cstdint>

#include "ops/data.h"

namespace cmae::data {

// Throws cmae::Error (Value/Shape) naming what is wrong: the one check of make_views' arguments,
// which the bindings run before calling any backend (ops do not validate).
void validate_views_args(const float* online, const float* target, int64_t N_total, int64_t H, int64_t W, int64_t C,
                         const int32_t* indices, int64_t B, const AugmentParams& params);

// DataOps::make_views on host memory (ops/data.h), for arguments validate_views_args accepted.
// parallel = true splits samples over the compute pool (parallel_for: the CPU backend's op);
// false runs every sample on the calling thread (the async binding uses that so it does not
// compete with a training step).
void make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H,
                int64_t W, int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                uint64_t stream, bool parallel = true);

// Per-channel mean and population standard deviation (ddof 0) of sources (N, H, W, C) uint8, in
// 0..1 units; mean, std: (C). Exact integer accumulation, so the result is thread-count independent.
void compute_mean_std(double* mean, double* std, const uint8_t* sources, int64_t N, int64_t H, int64_t W, int64_t C);

}  // namespace cmae::data
