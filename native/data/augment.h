// Batched two-view augmentation for CMAE pre-training (method-spec §2.1, "pixel shifting"), at any
// view size S. One call turns B source images into the online view and the pixel-shifted,
// colour-augmented target view of each, normalised, in NCHW float32.
//
// Per sample b (all draws keyed by (seed, stream, b): reproducible, independent of thread count
// and of which other samples are in the batch):
//  1. master: RandomResizedCrop of the source to M×M (torchvision's get_params: area fraction
//     U(scale_min, scale_max), log-uniform aspect ratio in [ratio_min, ratio_max], 10 attempts, then
//     the centre-crop fallback), resampled with PIL's separable convolution resampler (bicubic
//     a = −0.5 by default as in the spec, or bilinear; antialiased when downsampling, like PIL),
//     kept in float (no intermediate rounding to uint8) and clamped to [0, 1].
//     M = S + R by default (params.master_size overrides it; the spec's 256 = 224 + 31 + 1 is
//     master_size = S + R + 1). random_crop = false: the whole image resized to M×M.
//  2. horizontal flip with flip_p, applied to the master, so shared by both views.
//  3. online view = master[0:S, 0:S].
//  4. target view = master[dy:dy+S, dx:dx+S], dy, dx uniform integers in {0..R}, then (target only)
//     colour jitter with jitter_p (brightness, contrast, saturation, hue in a random order; factors
//     U[max(0, 1−v), 1+v], hue shift U[−hue, hue]; torchvision's float-tensor formulas; saturation
//     and hue only for C = 3), grayscale with grayscale_p (C = 3 only; luma 0.299/0.587/0.114, kept
//     3-channel), Gaussian blur with blur_p: σ ~ U(blur_sigma_min, blur_sigma_max) drawn at the
//     reference size 224 and scaled by S / blur_reference_size so that it blurs the same fraction
//     of the image at small sizes (blur_reference_size = 0 disables the scaling); separable kernel
//     of radius ceil(3σ), reflect padding.
//  5. both views normalised: (v − mean[c]) / std[c] with v in [0, 1].
// two_views = false (MAE mode, evaluation): only the online view, the master is S×S (so a random
// crop goes straight to S×S), no shift, no colour ops; shifts get (0, 0).
//
// Allocation: each thread keeps thread-local scratch buffers that grow to the largest size seen (an
// allocation failure inside the parallel region is carried out of it by parallel_for).
#pragma once
#include <cstdint>

namespace cmae::data {

struct AugmentParams {
  int64_t out_size = 32;     // S: size of each view
  int64_t shift_range = 7;   // R: target offset dy, dx ∈ {0..R}
  int64_t master_size = 0;   // M; 0 = S + R. Must be ≥ S + R. Ignored when two_views is false.
  bool bicubic = true;       // resampling filter of the master: bicubic (spec, PIL) or bilinear
  double scale_min = 0.2, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double flip_p = 0.5;
  double jitter_p = 0.8, brightness = 0.4, contrast = 0.4, saturation = 0.4, hue = 0.1;
  double grayscale_p = 0.2;
  double blur_p = 0.5, blur_sigma_min = 0.1, blur_sigma_max = 2.0;
  double blur_reference_size = 224.0;  // σ is multiplied by S / this (0: use σ as drawn)
  float mean[3] = {0.0f, 0.0f, 0.0f};  // in 0..1 pixel units
  float std[3] = {1.0f, 1.0f, 1.0f};
  bool random_crop = true;  // false: master = the whole image resized
  bool two_views = true;    // false: only the online view
};

// Throws cmae::Error (Value/Shape) naming what is wrong. make_views calls it first.
void validate_views_args(const float* online, const float* target, int64_t N_total, int64_t H, int64_t W, int64_t C,
                         const int32_t* indices, int64_t B, const AugmentParams& params);

// online, target: (B, C, S, S) float32 NCHW (target may be null only when two_views is false);
// shifts: (B, 2) int32 receives (dy, dx) per sample (may be null); sources: (N_total, H, W, C)
// uint8 HWC; indices: (B) which source images to use (repeats allowed).
// parallel = true splits samples over the compute pool (parallel_for); false runs every sample on
// the calling thread (the async binding uses that so it does not compete with a training step).
void make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H,
                int64_t W, int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                uint64_t stream, bool parallel = true);

// Per-channel mean and population standard deviation (ddof 0) of sources (N, H, W, C) uint8, in
// 0..1 units; mean, std: (C). Exact integer accumulation, so the result is thread-count independent.
void compute_mean_std(double* mean, double* std, const uint8_t* sources, int64_t N, int64_t H, int64_t W, int64_t C);

}  // namespace cmae::data
