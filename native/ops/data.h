// Data augmentation on the backend: the batched two-view augmentation of CMAE pre-training
// (method-spec §2.1, "pixel shifting"), at any view size S. One call turns B source images into the
// online view and the pixel-shifted, colour-augmented target view of each, normalised, in NCHW
// float32. The per-sample draws and the per-pixel formulas every backend computes live once, in
// data/augment_math.h; the CPU implementation is data/augment.cc.
//
// Per sample b (all draws keyed by (seed, stream, b): reproducible, independent of thread count, of
// the backend and of which other samples are in the batch):
//  1. master: RandomResizedCrop of the source to M×M (torchvision's get_params: area fraction
//     U(scale_min, scale_max), log-uniform aspect ratio in [ratio_min, ratio_max], 10 attempts, then
//     the centre-crop fallback), resampled with PIL's separable convolution resampler (bicubic
//     a = −0.5 by default as in the spec, or bilinear; antialiased when downsampling, like PIL):
//     a horizontal pass, then a vertical one, each rounded to 8-bit levels as PIL stores each pass
//     in uint8; the master is those levels / 255.
//     M = S + R by default (params.master_size overrides it; the spec's 256 = 224 + 31 + 1 is
//     master_size = S + R + 1). random_crop = false: the whole image resized to M×M.
//  2. horizontal flip with flip_p, applied to the master, so shared by both views.
//  3. online view = master[0:S, 0:S].
//  4. target view = master[dy:dy+S, dx:dx+S], dy, dx uniform integers in {0..R}, then (target only)
//     colour jitter with jitter_p (brightness, contrast, saturation, hue in a random order; factors
//     U[max(0, 1−v), 1+v], hue shift U[−hue, hue]; torchvision's float-tensor formulas; saturation
//     and hue only for C = 3; contrast blends with the mean luma of the view as it is at that
//     point), grayscale with grayscale_p (C = 3 only; luma 0.299/0.587/0.114, kept 3-channel),
//     Gaussian blur with blur_p: σ ~ U(blur_sigma_min, blur_sigma_max) drawn at the reference size
//     224 and scaled by S / blur_reference_size so that it blurs the same fraction of the image at
//     small sizes (blur_reference_size = 0 disables the scaling); separable kernel of radius
//     max(1, ceil(3σ)), reflect padding, clamped to [0, 1].
//  5. both views normalised: (v − mean[c]) / std[c] with v in [0, 1].
// two_views = false (MAE mode, evaluation): only the online view, the master is S×S (so a random
// crop goes straight to S×S), no shift, no colour ops; shifts get (0, 0).
//
// Backends agree exactly on the draws (shifts, crop boxes, which ops apply) and on the formulas;
// float results may differ by a few ulps where compilers contract a·b + c differently, and rarely by
// one 8-bit level where such a difference meets a rounding boundary of a resampling pass.
#pragma once
#include <cstdint>

namespace cmae {

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

struct DataOps {
  // online, target: (B, C, S, S) float32 NCHW (=) (target may be null only when two_views is false);
  // shifts: (B, 2) int32 (=) receives (dy, dx) per sample (may be null); sources: (N_total, H, W, C)
  // uint8 HWC; indices: (B) int32, which source image each sample uses (repeats allowed). Every
  // pointer is this backend's memory. The arguments are those data::validate_views_args accepts
  // (the bindings call it; the op does not check): C ∈ {1, 3}, indices in [0, N_total), ...
  // No output aliases an input. B = 0 is a no-op.
  virtual void make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H,
                          int64_t W, int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                          uint64_t stream) = 0;

 protected:
  ~DataOps() = default;
};

}  // namespace cmae
