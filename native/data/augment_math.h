// What every backend computes identically for make_views (ops/data.h): the per-sample draws, PIL's
// resampling filters and taps, the 8-bit rounding of each resampling pass, the colour operations
// per pixel, the Gaussian blur kernel and reflect padding. CMAE_HD inline functions (see
// core/host_device.h), compiled by g++ for the CPU (data/augment.cc) and by nvcc for the CUDA
// kernels (cuda/kernels/data.cuh), so there is one definition of each formula and each draw.
//
// Philox counter layout (kept exactly: changing it changes every draw): sample b uses counter
// indices b·16 + block; each block gives 4 32-bit words. Every draw has a fixed slot, so turning
// one option off never changes what the others draw.
//   blocks 0..9   (area, log-ratio, top, left) of crop attempt 0..9
//   block 10      (flip, dy, dx, jitter applied)
//   block 11      (brightness, contrast, saturation, hue) factors
//   block 12      (order swap 3, order swap 2, order swap 1, grayscale applied)
//   block 13      (blur applied, σ, -, -)
//
// Host and device call the global C math functions (::log, ::exp, ::sqrt, ::nearbyint, ::floorf,
// ...), which nvcc provides in device code; every lo + span·u of the draws is an explicit ::fma
// (one rounding), so the draws are the same bits whether or not a build contracts a·b + c (nvcc
// does, g++ does only for an FMA target, and the plain x86-64 build of this code has none); std::min/max/swap are not device functions, so they
// are spelled out, with std::min/max's exact semantics.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/host_device.h"
#include "core/rng.h"
#include "ops/data.h"

namespace cmae::data {

// ---- draws ---------------------------------------------------------------------------------------

constexpr uint64_t kBlocksPerSample = 16;
constexpr uint64_t kCropAttempt0 = 0;  // blocks 0..9
constexpr uint64_t kCropAttempts = 10;
constexpr uint64_t kGeometry = 10;
constexpr uint64_t kJitter = 11;
constexpr uint64_t kOrder = 12;
constexpr uint64_t kBlur = 13;

struct SampleRng {
  uint64_t seed, stream, base;
  CMAE_HD Philox4 block(uint64_t k) const { return philox4x32(seed, stream, base + k); }
};

// A 32-bit word as a double in [0, 1).
CMAE_HD double unit(uint32_t w) { return static_cast<double>(w) * (1.0 / 4294967296.0); }

// Uniform integer in [lo, hi] (inclusive, like Python's randint).
CMAE_HD int64_t randint(double u, int64_t lo, int64_t hi) {
  const int64_t n = hi - lo + 1;
  int64_t k = static_cast<int64_t>(u * static_cast<double>(n));
  if (k >= n) k = n - 1;
  return lo + k;
}

// std::max / std::min's exact results (which operand wins a tie matters for ±0).
CMAE_HD float max_of(float a, float b) { return a < b ? b : a; }
CMAE_HD float min_of(float a, float b) { return b < a ? b : a; }
CMAE_HD float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

struct Crop {
  int64_t top, left, h, w;
};

// torchvision RandomResizedCrop.get_params (Python round() = round half to even = nearbyint).
CMAE_HD Crop random_resized_crop(const SampleRng& rng, int64_t H, int64_t W, const AugmentParams& p) {
  const double area = static_cast<double>(H) * static_cast<double>(W);
  const double log_lo = ::log(p.ratio_min), log_hi = ::log(p.ratio_max);
  for (uint64_t attempt = 0; attempt < kCropAttempts; ++attempt) {
    const Philox4 r = rng.block(kCropAttempt0 + attempt);
    const double target_area = area * ::fma(p.scale_max - p.scale_min, unit(r.v[0]), p.scale_min);
    const double aspect = ::exp(::fma(log_hi - log_lo, unit(r.v[1]), log_lo));
    const int64_t w = static_cast<int64_t>(::nearbyint(::sqrt(target_area * aspect)));
    const int64_t h = static_cast<int64_t>(::nearbyint(::sqrt(target_area / aspect)));
    if (0 < w && w <= W && 0 < h && h <= H) {
      return {randint(unit(r.v[2]), 0, H - h), randint(unit(r.v[3]), 0, W - w), h, w};
    }
  }
  const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
  int64_t w = W, h = H;
  if (in_ratio < p.ratio_min) {
    h = static_cast<int64_t>(::nearbyint(static_cast<double>(w) / p.ratio_min));
  } else if (in_ratio > p.ratio_max) {
    w = static_cast<int64_t>(::nearbyint(static_cast<double>(h) * p.ratio_max));
  }
  h = h < 1 ? 1 : (h > H ? H : h);
  w = w < 1 ? 1 : (w > W ? W : w);
  return {(H - h) / 2, (W - w) / 2, h, w};
}

// M: the side of the master image.
CMAE_HD int64_t master_size_of(const AugmentParams& p) {
  if (!p.two_views) return p.out_size;
  return p.master_size > 0 ? p.master_size : p.out_size + p.shift_range;
}

// The colour-jitter operations, as SampleDraws::order and ::factor name them.
enum ColourOp : int { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };

// Whether a jitter operation does anything (saturation and hue need 3 channels).
CMAE_HD bool colour_op_active(int op, const AugmentParams& p, int64_t C) {
  switch (op) {
    case kBrightness: return p.brightness > 0;
    case kContrast: return p.contrast > 0;
    case kSaturation: return p.saturation > 0 && C == 3;
    default: return p.hue > 0 && C == 3;
  }
}

// Everything sample b draws. Only what its options use is meaningful: dy, dx and the colour fields
// are zero/false when two_views is false; order and factor only when jitter; sigma only when blur.
struct SampleDraws {
  Crop crop;  // in source pixels
  bool flip;
  int64_t dy, dx;
  bool jitter;
  int order[4];     // ColourOp values in the order they apply
  float factor[4];  // by ColourOp: brightness, contrast, saturation factors; hue shift
  bool grayscale;
  bool blur;
  double sigma;  // at the view size (already scaled by S / blur_reference_size)
};

CMAE_HD SampleDraws draw_sample(uint64_t seed, uint64_t stream, int64_t b, int64_t H, int64_t W, int64_t C,
                                const AugmentParams& p) {
  const SampleRng rng{seed, stream, static_cast<uint64_t>(b) * kBlocksPerSample};
  SampleDraws d{};
  d.crop = p.random_crop ? random_resized_crop(rng, H, W, p) : Crop{0, 0, H, W};
  const Philox4 g = rng.block(kGeometry);
  d.flip = unit(g.v[0]) < p.flip_p;
  if (!p.two_views) return d;
  d.dy = randint(unit(g.v[1]), 0, p.shift_range);
  d.dx = randint(unit(g.v[2]), 0, p.shift_range);
  d.jitter = unit(g.v[3]) < p.jitter_p;
  const Philox4 o = rng.block(kOrder);
  if (d.jitter) {
    const Philox4 f = rng.block(kJitter);
    for (int i = 0; i < 4; ++i) d.order[i] = i;
    for (int i = 3; i >= 1; --i) {  // Fisher–Yates
      const int64_t j = randint(unit(o.v[3 - i]), 0, i);
      const int t = d.order[i];
      d.order[i] = d.order[j];
      d.order[j] = t;
    }
    const double strength[3] = {p.brightness, p.contrast, p.saturation};
    for (int k = 0; k < 3; ++k) {  // U[max(0, 1 − v), 1 + v]
      const double v = strength[k];
      const double lo = 0.0 < 1.0 - v ? 1.0 - v : 0.0;
      d.factor[k] = static_cast<float>(::fma(1.0 + v - lo, unit(f.v[k]), lo));
    }
    d.factor[kHue] = static_cast<float>(::fma(2.0 * p.hue, unit(f.v[3]), -p.hue));
  }
  d.grayscale = C == 3 && unit(o.v[3]) < p.grayscale_p;
  const Philox4 bl = rng.block(kBlur);
  d.blur = unit(bl.v[0]) < p.blur_p;
  if (d.blur) {
    double sigma = ::fma(p.blur_sigma_max - p.blur_sigma_min, unit(bl.v[1]), p.blur_sigma_min);
    if (p.blur_reference_size > 0) sigma *= static_cast<double>(p.out_size) / p.blur_reference_size;
    d.sigma = sigma;
  }
  return d;
}

// ---- PIL's resampler (Imaging/Resample.c) ---------------------------------------------------------

CMAE_HD double bilinear_filter(double x) {
  x = ::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
CMAE_HD double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = ::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The geometry of PIL's precompute_coeffs for resizing `in_size` samples to `out_size` (support
// widened by the scale when downsampling = antialiasing).
struct ResampleAxis {
  double scale, support, ss;
  int64_t ksize;  // taps per output sample at most
  bool bicubic;
};

CMAE_HD ResampleAxis resample_axis(int64_t in_size, int64_t out_size, bool bicubic) {
  ResampleAxis a;
  a.scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = a.scale < 1.0 ? 1.0 : a.scale;
  a.support = (bicubic ? 2.0 : 1.0) * filterscale;
  a.ss = 1.0 / filterscale;
  a.ksize = static_cast<int64_t>(::ceil(a.support)) * 2 + 1;
  a.bicubic = bicubic;
  return a;
}

// The taps of output sample xx: writes weight[0, count) (normalised to sum 1) and returns count;
// the first input sample is *start. count <= axis.ksize. The filter is evaluated twice per tap
// (for the sum, then for the weight) instead of being kept, so no per-tap storage is needed.
CMAE_HD int64_t resample_taps(float* weight, int64_t* start, const ResampleAxis& axis, int64_t xx, int64_t in_size) {
  const double center = (static_cast<double>(xx) + 0.5) * axis.scale;
  int64_t xmin = static_cast<int64_t>(center - axis.support + 0.5);
  if (xmin < 0) xmin = 0;
  int64_t xmax = static_cast<int64_t>(center + axis.support + 0.5);
  if (xmax > in_size) xmax = in_size;
  int64_t n = xmax - xmin;
  if (n > axis.ksize) n = axis.ksize;
  const auto filter = [&](int64_t x) {
    const double arg = (static_cast<double>(x + xmin) - center + 0.5) * axis.ss;
    return axis.bicubic ? bicubic_filter(arg) : bilinear_filter(arg);
  };
  double total = 0.0;
  for (int64_t x = 0; x < n; ++x) total += filter(x);
  for (int64_t x = 0; x < n; ++x) weight[x] = static_cast<float>(total != 0.0 ? filter(x) / total : 0.0);
  *start = xmin;
  return n;
}

// Rounds to the nearest 8-bit level and clamps, as PIL stores each resampling pass in uint8.
// Why it matters: without it, bicubic ringing leaves tiny non-zero values in flat regions, and the
// norm-pix loss (per-patch standardisation) blows that noise up into unit-variance targets.
CMAE_HD float to_uint8_level(float v) { return v <= 0.0f ? 0.0f : (v >= 255.0f ? 255.0f : ::floorf(v + 0.5f)); }

// ---- colour operations on one pixel in [0, 1] (torchvision's float-tensor formulas) ---------------

constexpr float kLumaR = 0.299f, kLumaG = 0.587f, kLumaB = 0.114f;

CMAE_HD float luma(float r, float g, float b) { return kLumaR * r + kLumaG * g + kLumaB * b; }

CMAE_HD float brightness_pixel(float v, float f) { return clamp01(v * f); }

// Contrast blends with the mean luma (C = 3) or mean value (C = 1) of the whole view:
// v' = clamp01(f·v + (1 − f)·mean), with the offset computed once per view.
CMAE_HD float contrast_offset(float f, float mean) { return (1.0f - f) * mean; }
CMAE_HD float contrast_pixel(float v, float f, float offset) { return clamp01(f * v + offset); }

CMAE_HD void saturation_pixel(float* p, float f) {  // C = 3
  const float g = (1.0f - f) * luma(p[0], p[1], p[2]);
  p[0] = clamp01(f * p[0] + g);
  p[1] = clamp01(f * p[1] + g);
  p[2] = clamp01(f * p[2] + g);
}

CMAE_HD void hue_pixel(float* p, float shift) {  // C = 3; torchvision _rgb2hsv / _hsv2rgb
  const float r = p[0], g = p[1], b = p[2];
  const float maxc = max_of(r, max_of(g, b)), minc = min_of(r, min_of(g, b));
  const float cr = maxc - minc;
  // torchvision divides by 1 instead of 0 for grey pixels, where every difference is 0 anyway.
  const float inv = cr > 0.0f ? 1.0f / cr : 0.0f;
  const float s = cr > 0.0f ? cr / maxc : 0.0f;
  float h;
  if (maxc == r) h = (g - b) * inv;              // bc − gc
  else if (maxc == g) h = 2.0f + (b - r) * inv;  // 2 + rc − bc
  else h = 4.0f + (r - g) * inv;                 // 4 + gc − rc
  h = h / 6.0f + 1.0f;
  h -= ::floorf(h);
  h += shift;
  h -= ::floorf(h);
  const float val = maxc;
  const float h6 = h * 6.0f;
  const float fi = ::floorf(h6);
  const float fr = h6 - fi;
  int sector = static_cast<int>(fi) % 6;
  if (sector < 0) sector += 6;
  const float pp = clamp01(val * (1.0f - s)), q = clamp01(val * (1.0f - s * fr)), t = clamp01(val * (1.0f - s * (1.0f - fr)));
  switch (sector) {
    case 0: p[0] = val; p[1] = t; p[2] = pp; break;
    case 1: p[0] = q; p[1] = val; p[2] = pp; break;
    case 2: p[0] = pp; p[1] = val; p[2] = t; break;
    case 3: p[0] = pp; p[1] = q; p[2] = val; break;
    case 4: p[0] = t; p[1] = pp; p[2] = val; break;
    default: p[0] = val; p[1] = pp; p[2] = q; break;
  }
}

CMAE_HD void grayscale_pixel(float* p) {  // C = 3, kept 3-channel
  const float l = luma(p[0], p[1], p[2]);
  p[0] = p[1] = p[2] = l;
}

// ---- Gaussian blur ----------------------------------------------------------------------------------

CMAE_HD int64_t blur_radius(double sigma) {
  const int64_t r = static_cast<int64_t>(::ceil(3.0 * sigma));
  return r < 1 ? 1 : r;
}

// Σ_{k=−r..r} exp(−k²/2σ²), summed from −r up; blur_weight(k) = exp(−k²/2σ²) / that, as float.
CMAE_HD double blur_total(double sigma, int64_t radius) {
  double total = 0.0;
  for (int64_t k = -radius; k <= radius; ++k) {
    const double z = static_cast<double>(k) / sigma;
    total += ::exp(-0.5 * z * z);
  }
  return total;
}
CMAE_HD float blur_weight(int64_t k, double sigma, double total) {
  const double z = static_cast<double>(k) / sigma;
  return static_cast<float>(::exp(-0.5 * z * z) / total);
}

// Mirror index without repeating the edge (torch 'reflect'), valid for any offset.
CMAE_HD int64_t reflect(int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;  // the common case, without the division
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

}  // namespace cmae::data
