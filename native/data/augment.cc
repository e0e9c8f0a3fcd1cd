#include "data/augment.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/errors.h"
#include "core/rng.h"
#include "core/threads.h"

namespace cmae::data {
namespace {

// Philox counter layout: sample b uses indices b·16 + block; each block gives 4 words. Every draw
// has a fixed slot, so turning one option off never changes what the others draw.
constexpr uint64_t kBlocksPerSample = 16;
constexpr uint64_t kCropAttempt0 = 0;  // blocks 0..9: (area, log-ratio, top, left) per attempt
constexpr uint64_t kGeometry = 10;     // (flip, dy, dx, jitter applied)
constexpr uint64_t kJitter = 11;       // (brightness, contrast, saturation, hue)
constexpr uint64_t kOrder = 12;        // (permutation ×3, grayscale applied)
constexpr uint64_t kBlur = 13;         // (blur applied, σ, -, -)

constexpr float kLumaR = 0.299f, kLumaG = 0.587f, kLumaB = 0.114f;

struct SampleRng {
  uint64_t seed, stream, base;
  Philox4 block(uint64_t k) const { return philox4x32(seed, stream, base + k); }
};

inline double unit(uint32_t w) { return static_cast<double>(w) * (1.0 / 4294967296.0); }

// Uniform integer in [lo, hi] (inclusive, like Python's randint).
inline int64_t randint(double u, int64_t lo, int64_t hi) {
  const int64_t n = hi - lo + 1;
  int64_t k = static_cast<int64_t>(u * static_cast<double>(n));
  if (k >= n) k = n - 1;
  return lo + k;
}

inline float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

struct Crop {
  int64_t top, left, h, w;
};

// torchvision RandomResizedCrop.get_params (Python round() = round half to even = nearbyint).
Crop random_resized_crop(const SampleRng& rng, int64_t H, int64_t W, const AugmentParams& p) {
  const double area = static_cast<double>(H) * static_cast<double>(W);
  const double log_lo = std::log(p.ratio_min), log_hi = std::log(p.ratio_max);
  for (uint64_t attempt = 0; attempt < 10; ++attempt) {
    const Philox4 r = rng.block(kCropAttempt0 + attempt);
    const double target_area = area * (p.scale_min + (p.scale_max - p.scale_min) * unit(r.v[0]));
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * unit(r.v[1]));
    const int64_t w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect)));
    const int64_t h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (0 < w && w <= W && 0 < h && h <= H) {
      return {randint(unit(r.v[2]), 0, H - h), randint(unit(r.v[3]), 0, W - w), h, w};
    }
  }
  const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
  int64_t w = W, h = H;
  if (in_ratio < p.ratio_min) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / p.ratio_min));
  } else if (in_ratio > p.ratio_max) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * p.ratio_max));
  }
  h = std::clamp<int64_t>(h, 1, H);
  w = std::clamp<int64_t>(w, 1, W);
  return {(H - h) / 2, (W - w) / 2, h, w};
}

// PIL's resampling filters (Imaging/Resample.c).
inline double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
inline double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Convolution taps of PIL's precompute_coeffs for resizing `in_size` samples to `out_size`
// (support widened by the scale when downsampling = antialiasing).
struct Taps {
  std::vector<int64_t> start, count;
  std::vector<float> weight;  // out_size × ksize
  int64_t ksize = 0;

  void build(int64_t in_size, int64_t out_size, bool bicubic) {
    const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = (bicubic ? 2.0 : 1.0) * filterscale;
    const double ss = 1.0 / filterscale;
    ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
    start.assign(out_size, 0);
    count.assign(out_size, 0);
    weight.assign(static_cast<size_t>(out_size * ksize), 0.0f);
    std::vector<double> k(static_cast<size_t>(ksize));
    for (int64_t xx = 0; xx < out_size; ++xx) {
      const double center = (static_cast<double>(xx) + 0.5) * scale;
      int64_t xmin = static_cast<int64_t>(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      int64_t xmax = static_cast<int64_t>(center + support + 0.5);
      if (xmax > in_size) xmax = in_size;
      int64_t n = xmax - xmin;
      if (n > ksize) n = ksize;
      double total = 0.0;
      for (int64_t x = 0; x < n; ++x) {
        const double arg = (static_cast<double>(x + xmin) - center + 0.5) * ss;
        k[x] = bicubic ? bicubic_filter(arg) : bilinear_filter(arg);
        total += k[x];
      }
      for (int64_t x = 0; x < n; ++x) weight[xx * ksize + x] = static_cast<float>(total != 0.0 ? k[x] / total : 0.0);
      start[xx] = xmin;
      count[xx] = n;
    }
  }
};

// Per-thread scratch, grown to the largest size seen and reused.
struct Scratch {
  Taps tx, ty;
  std::vector<float> rows, master, view, blur;
  std::vector<float> kernel;
};

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

template <typename T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Rounds to the nearest 8-bit level and clamps, as PIL stores each resampling pass in uint8.
// Why it matters: without it, bicubic ringing leaves tiny non-zero values in flat regions, and the
// norm-pix loss (per-patch standardisation) blows that noise up into unit-variance targets.
inline float to_uint8_level(float v) { return v <= 0.0f ? 0.0f : (v >= 255.0f ? 255.0f : std::floor(v + 0.5f)); }

// The crop box (top, left, h, w) of image `src` (H, W, C uint8) resampled to master (M, M, C) in
// [0, 1] on 8-bit levels (PIL's resize), mirrored horizontally when `flip`.
void resample_master(float* master, const uint8_t* src, int64_t W, int64_t C, const Crop& crop, int64_t M, bool flip,
                     bool bicubic, Scratch& s) {
  s.tx.build(crop.w, M, bicubic);
  s.ty.build(crop.h, M, bicubic);
  // Horizontal pass over the crop's rows: rows (h, M, C), still in 0..255.
  float* rows = grow(s.rows, static_cast<size_t>(crop.h * M * C));
  for (int64_t y = 0; y < crop.h; ++y) {
    const uint8_t* line = src + ((crop.top + y) * W + crop.left) * C;
    float* out = rows + y * M * C;
    for (int64_t xx = 0; xx < M; ++xx) {
      const float* w = s.tx.weight.data() + xx * s.tx.ksize;
      const uint8_t* p = line + s.tx.start[xx] * C;
      const int64_t n = s.tx.count[xx];
      const int64_t ox = flip ? M - 1 - xx : xx;
      for (int64_t c = 0; c < C; ++c) {
        float acc = 0.0f;
        for (int64_t k = 0; k < n; ++k) acc += w[k] * static_cast<float>(p[k * C + c]);
        out[ox * C + c] = to_uint8_level(acc);
      }
    }
  }
  // Vertical pass: master (M, M, C) in [0, 1].
  const int64_t row_len = M * C;
  for (int64_t yy = 0; yy < M; ++yy) {
    const float* w = s.ty.weight.data() + yy * s.ty.ksize;
    const float* base = rows + s.ty.start[yy] * row_len;
    const int64_t n = s.ty.count[yy];
    float* out = master + yy * row_len;
    for (int64_t i = 0; i < row_len; ++i) out[i] = 0.0f;
    for (int64_t k = 0; k < n; ++k) {
      const float wk = w[k];
      const float* r = base + k * row_len;
      for (int64_t i = 0; i < row_len; ++i) out[i] += wk * r[i];
    }
    for (int64_t i = 0; i < row_len; ++i) out[i] = to_uint8_level(out[i]) * (1.0f / 255.0f);
  }
}

// ---- colour ops on an (n pixels, C) HWC buffer in [0, 1] (torchvision's float-tensor formulas) ---
void adjust_brightness(float* v, int64_t count, float f) {
  for (int64_t i = 0; i < count; ++i) v[i] = clamp01(v[i] * f);
}

void adjust_contrast(float* v, int64_t n, int64_t C, float f) {
  double sum = 0.0;
  if (C == 3) {
    for (int64_t i = 0; i < n; ++i) sum += kLumaR * v[3 * i] + kLumaG * v[3 * i + 1] + kLumaB * v[3 * i + 2];
  } else {
    for (int64_t i = 0; i < n; ++i) sum += v[i];
  }
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float offset = (1.0f - f) * mean;
  for (int64_t i = 0; i < n * C; ++i) v[i] = clamp01(f * v[i] + offset);
}

void adjust_saturation(float* v, int64_t n, float f) {  // C = 3
  for (int64_t i = 0; i < n; ++i) {
    float* p = v + 3 * i;
    const float g = (1.0f - f) * (kLumaR * p[0] + kLumaG * p[1] + kLumaB * p[2]);
    p[0] = clamp01(f * p[0] + g);
    p[1] = clamp01(f * p[1] + g);
    p[2] = clamp01(f * p[2] + g);
  }
}

void adjust_hue(float* v, int64_t n, float shift) {  // C = 3; torchvision _rgb2hsv / _hsv2rgb
  for (int64_t i = 0; i < n; ++i) {
    float* p = v + 3 * i;
    const float r = p[0], g = p[1], b = p[2];
    const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
    const float cr = maxc - minc;
    // torchvision divides by 1 instead of 0 for grey pixels, where every difference is 0 anyway.
    const float inv = cr > 0.0f ? 1.0f / cr : 0.0f;
    const float s = cr > 0.0f ? cr / maxc : 0.0f;
    float h;
    if (maxc == r) h = (g - b) * inv;               // bc − gc
    else if (maxc == g) h = 2.0f + (b - r) * inv;   // 2 + rc − bc
    else h = 4.0f + (r - g) * inv;                  // 4 + gc − rc
    h = h / 6.0f + 1.0f;
    h -= std::floor(h);
    h += shift;
    h -= std::floor(h);
    const float val = maxc;
    const float h6 = h * 6.0f;
    float fi = std::floor(h6);
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
}

void to_grayscale(float* v, int64_t n) {  // C = 3, kept 3-channel
  for (int64_t i = 0; i < n; ++i) {
    float* p = v + 3 * i;
    const float l = kLumaR * p[0] + kLumaG * p[1] + kLumaB * p[2];
    p[0] = p[1] = p[2] = l;
  }
}

// Mirror index without repeating the edge (torch 'reflect'), valid for any offset.
inline int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// Separable Gaussian blur of an (S, S, C) image in place, radius ceil(3σ), reflect padding.
// Each pass runs over whole padded rows (contiguous, vectorisable inner loops).
void gaussian_blur(float* img, int64_t S, int64_t C, double sigma, Scratch& s) {
  const int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3.0 * sigma)));
  const int64_t taps = 2 * radius + 1;
  float* kernel = grow(s.kernel, static_cast<size_t>(taps));
  double total = 0.0;
  for (int64_t k = -radius; k <= radius; ++k) {
    const double z = static_cast<double>(k) / sigma;
    total += std::exp(-0.5 * z * z);
  }
  for (int64_t k = -radius; k <= radius; ++k) {
    const double z = static_cast<double>(k) / sigma;
    kernel[k + radius] = static_cast<float>(std::exp(-0.5 * z * z) / total);
  }
  const int64_t row = S * C;
  float* tmp = grow(s.blur, static_cast<size_t>(S * row + (S + 2 * radius) * C));
  float* pad = tmp + S * row;
  for (int64_t y = 0; y < S; ++y) {  // horizontal: img → tmp
    const float* in = img + y * row;
    for (int64_t i = 0; i < S + 2 * radius; ++i) {
      const float* p = in + reflect(i - radius, S) * C;
      for (int64_t c = 0; c < C; ++c) pad[i * C + c] = p[c];
    }
    float* out = tmp + y * row;
    for (int64_t j = 0; j < row; ++j) out[j] = 0.0f;
    for (int64_t k = 0; k < taps; ++k) {
      const float w = kernel[k];
      const float* src = pad + k * C;
      for (int64_t j = 0; j < row; ++j) out[j] += w * src[j];
    }
  }
  for (int64_t y = 0; y < S; ++y) {  // vertical: tmp → img
    float* out = img + y * row;
    for (int64_t j = 0; j < row; ++j) out[j] = 0.0f;
    for (int64_t k = 0; k < taps; ++k) {
      const float w = kernel[k];
      const float* src = tmp + reflect(y + k - radius, S) * row;
      for (int64_t j = 0; j < row; ++j) out[j] += w * src[j];
    }
    for (int64_t j = 0; j < row; ++j) out[j] = clamp01(out[j]);
  }
}

// (S, S, C) window of a (·, M, C) HWC buffer at (dy, dx), normalised, into one NCHW sample.
void write_view(float* out, const float* src, int64_t M, int64_t dy, int64_t dx, int64_t S, int64_t C,
                const AugmentParams& p) {
  for (int64_t c = 0; c < C; ++c) {
    const float mean = p.mean[c], inv_std = 1.0f / p.std[c];
    float* plane = out + c * S * S;
    for (int64_t y = 0; y < S; ++y) {
      const float* row = src + ((dy + y) * M + dx) * C + c;
      for (int64_t x = 0; x < S; ++x) plane[y * S + x] = (row[x * C] - mean) * inv_std;
    }
  }
}

int64_t master_size_of(const AugmentParams& p) {
  if (!p.two_views) return p.out_size;
  return p.master_size > 0 ? p.master_size : p.out_size + p.shift_range;
}

void one_sample(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t H, int64_t W, int64_t C,
                int32_t index, int64_t b, const AugmentParams& p, uint64_t seed, uint64_t stream) {
  Scratch& s = thread_scratch();
  const SampleRng rng{seed, stream, static_cast<uint64_t>(b) * kBlocksPerSample};
  const int64_t S = p.out_size, M = master_size_of(p), R = p.two_views ? p.shift_range : 0;
  const Crop crop = p.random_crop ? random_resized_crop(rng, H, W, p) : Crop{0, 0, H, W};
  const Philox4 g = rng.block(kGeometry);
  const bool flip = unit(g.v[0]) < p.flip_p;
  float* master = grow(s.master, static_cast<size_t>(M * M * C));
  resample_master(master, sources + static_cast<int64_t>(index) * H * W * C, W, C, crop, M, flip, p.bicubic, s);

  const int64_t view_numel = C * S * S;
  write_view(online + b * view_numel, master, M, 0, 0, S, C, p);
  int64_t dy = 0, dx = 0;
  if (p.two_views) {
    dy = randint(unit(g.v[1]), 0, R);
    dx = randint(unit(g.v[2]), 0, R);
    const int64_t n = S * S;
    float* view = grow(s.view, static_cast<size_t>(n * C));
    for (int64_t y = 0; y < S; ++y) {
      std::copy(master + ((dy + y) * M + dx) * C, master + ((dy + y) * M + dx + S) * C, view + y * S * C);
    }
    if (unit(g.v[3]) < p.jitter_p) {
      const Philox4 f = rng.block(kJitter);
      const Philox4 o = rng.block(kOrder);
      int order[4] = {0, 1, 2, 3};
      for (int i = 3; i >= 1; --i) std::swap(order[i], order[randint(unit(o.v[3 - i]), 0, i)]);
      auto factor = [](double u, double v) {
        const double lo = std::max(0.0, 1.0 - v);
        return static_cast<float>(lo + (1.0 + v - lo) * u);
      };
      for (int op : order) {
        switch (op) {
          case 0:
            if (p.brightness > 0) adjust_brightness(view, n * C, factor(unit(f.v[0]), p.brightness));
            break;
          case 1:
            if (p.contrast > 0) adjust_contrast(view, n, C, factor(unit(f.v[1]), p.contrast));
            break;
          case 2:
            if (p.saturation > 0 && C == 3) adjust_saturation(view, n, factor(unit(f.v[2]), p.saturation));
            break;
          default:
            if (p.hue > 0 && C == 3) adjust_hue(view, n, static_cast<float>(-p.hue + 2.0 * p.hue * unit(f.v[3])));
            break;
        }
      }
    }
    if (C == 3 && unit(rng.block(kOrder).v[3]) < p.grayscale_p) to_grayscale(view, n);
    const Philox4 bl = rng.block(kBlur);
    if (unit(bl.v[0]) < p.blur_p) {
      double sigma = p.blur_sigma_min + (p.blur_sigma_max - p.blur_sigma_min) * unit(bl.v[1]);
      if (p.blur_reference_size > 0) sigma *= static_cast<double>(S) / p.blur_reference_size;
      gaussian_blur(view, S, C, sigma, s);
    }
    write_view(target + b * view_numel, view, S, 0, 0, S, C, p);
  }
  if (shifts) {
    shifts[2 * b] = static_cast<int32_t>(dy);
    shifts[2 * b + 1] = static_cast<int32_t>(dx);
  }
}

bool in_unit(double v) { return v >= 0.0 && v <= 1.0; }

}  // namespace

void validate_views_args(const float* online, const float* target, int64_t N_total, int64_t H, int64_t W, int64_t C,
                         const int32_t* indices, int64_t B, const AugmentParams& p) {
  CMAE_CHECK(C == 1 || C == 3, Shape, "sources must have 1 or 3 channels, got C = ", C);
  CMAE_CHECK(H > 0 && W > 0, Shape, "source images must be at least 1x1, got H = ", H, ", W = ", W);
  CMAE_CHECK(N_total >= 0, Shape, "number of source images must be >= 0, got ", N_total);
  CMAE_CHECK(B >= 0, Shape, "batch size must be >= 0, got ", B);
  CMAE_CHECK(p.out_size > 0, Value, "outSize must be > 0, got ", p.out_size);
  CMAE_CHECK(p.shift_range >= 0, Value, "shiftRange must be >= 0, got ", p.shift_range);
  CMAE_CHECK(p.out_size <= 16384 && p.shift_range <= 16384, Value, "outSize and shiftRange must be <= 16384");
  CMAE_CHECK(p.master_size == 0 || p.master_size >= p.out_size + p.shift_range, Value,
             "masterSize must be 0 (= outSize + shiftRange) or >= outSize + shiftRange = ", p.out_size + p.shift_range,
             ", got ", p.master_size);
  CMAE_CHECK(p.master_size <= 32768, Value, "masterSize must be <= 32768, got ", p.master_size);
  CMAE_CHECK(p.scale_min > 0.0 && p.scale_min <= p.scale_max, Value, "scale range must satisfy 0 < scaleMin <= scaleMax, got [",
             p.scale_min, ", ", p.scale_max, "]");
  CMAE_CHECK(p.ratio_min > 0.0 && p.ratio_min <= p.ratio_max && std::isfinite(p.ratio_max), Value,
             "aspect-ratio range must satisfy 0 < ratioMin <= ratioMax, got [", p.ratio_min, ", ", p.ratio_max, "]");
  CMAE_CHECK(in_unit(p.flip_p), Value, "flipP must be in [0, 1], got ", p.flip_p);
  CMAE_CHECK(in_unit(p.jitter_p), Value, "jitterP must be in [0, 1], got ", p.jitter_p);
  CMAE_CHECK(in_unit(p.grayscale_p), Value, "grayscaleP must be in [0, 1], got ", p.grayscale_p);
  CMAE_CHECK(in_unit(p.blur_p), Value, "blurP must be in [0, 1], got ", p.blur_p);
  CMAE_CHECK(p.brightness >= 0.0 && std::isfinite(p.brightness), Value, "brightness must be >= 0, got ", p.brightness);
  CMAE_CHECK(p.contrast >= 0.0 && std::isfinite(p.contrast), Value, "contrast must be >= 0, got ", p.contrast);
  CMAE_CHECK(p.saturation >= 0.0 && std::isfinite(p.saturation), Value, "saturation must be >= 0, got ", p.saturation);
  CMAE_CHECK(p.hue >= 0.0 && p.hue <= 0.5, Value, "hue must be in [0, 0.5], got ", p.hue);
  CMAE_CHECK(p.blur_sigma_min > 0.0 && p.blur_sigma_min <= p.blur_sigma_max && p.blur_sigma_max <= 1000.0, Value,
             "blur sigma range must satisfy 0 < blurSigmaMin <= blurSigmaMax <= 1000, got [", p.blur_sigma_min, ", ",
             p.blur_sigma_max, "]");
  CMAE_CHECK(p.blur_reference_size >= 0.0 && std::isfinite(p.blur_reference_size), Value,
             "blurReferenceSize must be >= 0, got ", p.blur_reference_size);
  for (int64_t c = 0; c < C; ++c) {
    CMAE_CHECK(std::isfinite(p.mean[c]), Value, "mean[", c, "] must be finite, got ", p.mean[c]);
    CMAE_CHECK(std::isfinite(p.std[c]) && p.std[c] > 0.0f, Value, "std[", c, "] must be finite and > 0, got ", p.std[c]);
  }
  if (B == 0) return;
  CMAE_CHECK(online != nullptr, Value, "online output is missing");
  CMAE_CHECK(!p.two_views || target != nullptr, Value, "target output is required when twoViews is true");
  CMAE_CHECK(indices != nullptr, Value, "indices are missing");
  for (int64_t b = 0; b < B; ++b) {
    CMAE_CHECK(indices[b] >= 0 && indices[b] < N_total, Value, "indices[", b, "] = ", indices[b],
               " is out of range for ", N_total, " source images");
  }
}

void make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H,
                int64_t W, int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                uint64_t stream, bool parallel) {
  validate_views_args(online, target, N_total, H, W, C, indices, B, params);
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      one_sample(online, target, shifts, sources, H, W, C, indices[b], b, params, seed, stream);
    }
  };
  if (parallel) {
    parallel_for(B, 2, run);
  } else {
    run(0, B);
  }
}

void compute_mean_std(double* mean, double* std, const uint8_t* sources, int64_t N, int64_t H, int64_t W, int64_t C) {
  CMAE_CHECK(C >= 1 && C <= 4, Shape, "channels must be 1..4, got ", C);
  CMAE_CHECK(N > 0 && H > 0 && W > 0, Shape, "need at least one non-empty image, got N = ", N, ", H = ", H, ", W = ", W);
  std::atomic<uint64_t> sum[4], sumsq[4];
  for (int c = 0; c < 4; ++c) {
    sum[c].store(0);
    sumsq[c].store(0);
  }
  const int64_t pixels = N * H * W;
  // Integer sums are exact, so neither the split nor the order of the atomic adds changes them.
  parallel_for(pixels, 1 << 16, [&](int64_t begin, int64_t end) {
    uint64_t s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t* px = sources + i * C;
      for (int64_t c = 0; c < C; ++c) {
        const uint64_t v = px[c];
        s[c] += v;
        q[c] += v * v;
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      sum[c].fetch_add(s[c]);
      sumsq[c].fetch_add(q[c]);
    }
  });
  const unsigned __int128 n = static_cast<unsigned __int128>(pixels);
  for (int64_t c = 0; c < C; ++c) {
    const unsigned __int128 s = sum[c].load(), q = sumsq[c].load();
    const unsigned __int128 num = n * q - s * s;  // n² · variance (in 0..255 units), >= 0
    mean[c] = static_cast<double>(s) / static_cast<double>(pixels) / 255.0;
    std[c] = std::sqrt(static_cast<double>(num) / (static_cast<double>(pixels) * static_cast<double>(pixels))) / 255.0;
  }
}

}  // namespace cmae::data
