#include "data/augment.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "core/cpu_features.h"
#include "core/errors.h"
#include "core/threads.h"
#include "data/augment_math.h"

namespace cmae::data {
namespace {

// Convolution taps of every output sample of one resampling axis (augment_math.h's
// resample_taps), out_size × ksize.
struct Taps {
  std::vector<int64_t> start, count;
  std::vector<float> weight;  // out_size × ksize
  int64_t ksize = 0;

  void build(int64_t in_size, int64_t out_size, bool bicubic) {
    const ResampleAxis axis = resample_axis(in_size, out_size, bicubic);
    ksize = axis.ksize;
    start.assign(out_size, 0);
    count.assign(out_size, 0);
    weight.assign(static_cast<size_t>(out_size * ksize), 0.0f);
    for (int64_t xx = 0; xx < out_size; ++xx) count[xx] = resample_taps(&weight[xx * ksize], &start[xx], axis, xx, in_size);
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

// ---- the multiply-adds of the resampling and blur sums ------------------------------------------
// Each rounded once (fmaf), as the CUDA kernels compute them (cuda/kernels/data.cuh), so the CPU's
// views match theirs bit for bit whatever the compiler contracts. This file is built without ISA
// flags (it runs on every CPU path), where fmaf is a library call per element; on x86-64 a copy of
// each loop compiled for FMA runs instead where the CPU has it (same results, vectorised).
#if defined(__x86_64__) || defined(_M_X64)
#define CMAE_AUGMENT_FMA_COPIES 1
__attribute__((target("avx2,fma"))) float tap_sum_fma(const float* w, const uint8_t* p, int64_t stride, int64_t n) {
  float acc = 0.0f;
  for (int64_t k = 0; k < n; ++k) acc = __builtin_fmaf(w[k], static_cast<float>(p[k * stride]), acc);
  return acc;
}
__attribute__((target("avx2,fma"))) void add_scaled_fma(float* out, float w, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = __builtin_fmaf(w, src[i], out[i]);
}
bool use_fma_copies() {
  static const bool yes = cpu_supports(Isa::AVX2);  // AVX2 + FMA (CMAE_MAX_ISA=portable: the library path)
  return yes;
}
#endif

// Σ_k w[k]·p[k·stride], in k order.
float tap_sum(const float* w, const uint8_t* p, int64_t stride, int64_t n) {
#if defined(CMAE_AUGMENT_FMA_COPIES)
  if (use_fma_copies()) return tap_sum_fma(w, p, stride, n);
#endif
  float acc = 0.0f;
  for (int64_t k = 0; k < n; ++k) acc = std::fmaf(w[k], static_cast<float>(p[k * stride]), acc);
  return acc;
}

// out[i] += w·src[i], i < n.
void add_scaled(float* out, float w, const float* src, int64_t n) {
#if defined(CMAE_AUGMENT_FMA_COPIES)
  if (use_fma_copies()) return add_scaled_fma(out, w, src, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = std::fmaf(w, src[i], out[i]);
}

template <typename T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

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
      for (int64_t c = 0; c < C; ++c) out[ox * C + c] = to_uint8_level(tap_sum(w, p + c, C, n));
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
    for (int64_t k = 0; k < n; ++k) add_scaled(out, w[k], base + k * row_len, row_len);
    for (int64_t i = 0; i < row_len; ++i) out[i] = to_uint8_level(out[i]) * (1.0f / 255.0f);
  }
}

// ---- colour ops on an (n pixels, C) HWC buffer in [0, 1], one pass per op ----------------------
void adjust_brightness(float* v, int64_t count, float f) {
  for (int64_t i = 0; i < count; ++i) v[i] = brightness_pixel(v[i], f);
}

void adjust_contrast(float* v, int64_t n, int64_t C, float f) {
  double sum = 0.0;
  if (C == 3) {
    for (int64_t i = 0; i < n; ++i) sum += luma(v[3 * i], v[3 * i + 1], v[3 * i + 2]);
  } else {
    for (int64_t i = 0; i < n; ++i) sum += v[i];
  }
  const float offset = contrast_offset(f, static_cast<float>(sum / static_cast<double>(n)));
  for (int64_t i = 0; i < n * C; ++i) v[i] = contrast_pixel(v[i], f, offset);
}

void adjust_saturation(float* v, int64_t n, float f) {  // C = 3
  for (int64_t i = 0; i < n; ++i) saturation_pixel(v + 3 * i, f);
}

void adjust_hue(float* v, int64_t n, float shift) {  // C = 3
  for (int64_t i = 0; i < n; ++i) hue_pixel(v + 3 * i, shift);
}

void to_grayscale(float* v, int64_t n) {  // C = 3, kept 3-channel
  for (int64_t i = 0; i < n; ++i) grayscale_pixel(v + 3 * i);
}

// Separable Gaussian blur of an (S, S, C) image in place, radius ceil(3σ), reflect padding.
// Each pass runs over whole padded rows (contiguous, vectorisable inner loops).
void gaussian_blur(float* img, int64_t S, int64_t C, double sigma, Scratch& s) {
  const int64_t radius = blur_radius(sigma);
  const int64_t taps = 2 * radius + 1;
  float* kernel = grow(s.kernel, static_cast<size_t>(taps));
  const double total = blur_total(sigma, radius);
  for (int64_t k = -radius; k <= radius; ++k) kernel[k + radius] = blur_weight(k, sigma, total);
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
    for (int64_t k = 0; k < taps; ++k) add_scaled(out, kernel[k], pad + k * C, row);
  }
  for (int64_t y = 0; y < S; ++y) {  // vertical: tmp → img
    float* out = img + y * row;
    for (int64_t j = 0; j < row; ++j) out[j] = 0.0f;
    for (int64_t k = 0; k < taps; ++k) add_scaled(out, kernel[k], tmp + reflect(y + k - radius, S) * row, row);
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

void one_sample(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t H, int64_t W, int64_t C,
                int32_t index, int64_t b, const AugmentParams& p, uint64_t seed, uint64_t stream) {
  Scratch& s = thread_scratch();
  const SampleDraws d = draw_sample(seed, stream, b, H, W, C, p);
  const int64_t S = p.out_size, M = master_size_of(p);
  float* master = grow(s.master, static_cast<size_t>(M * M * C));
  resample_master(master, sources + static_cast<int64_t>(index) * H * W * C, W, C, d.crop, M, d.flip, p.bicubic, s);

  const int64_t view_numel = C * S * S;
  write_view(online + b * view_numel, master, M, 0, 0, S, C, p);
  if (p.two_views) {
    const int64_t n = S * S;
    float* view = grow(s.view, static_cast<size_t>(n * C));
    for (int64_t y = 0; y < S; ++y) {
      std::copy(master + ((d.dy + y) * M + d.dx) * C, master + ((d.dy + y) * M + d.dx + S) * C, view + y * S * C);
    }
    if (d.jitter) {
      for (int op : d.order) {
        if (!colour_op_active(op, p, C)) continue;
        const float f = d.factor[op];
        switch (op) {
          case kBrightness: adjust_brightness(view, n * C, f); break;
          case kContrast: adjust_contrast(view, n, C, f); break;
          case kSaturation: adjust_saturation(view, n, f); break;
          default: adjust_hue(view, n, f); break;
        }
      }
    }
    if (d.grayscale) to_grayscale(view, n);
    if (d.blur) gaussian_blur(view, S, C, d.sigma, s);
    write_view(target + b * view_numel, view, S, 0, 0, S, C, p);
  }
  if (shifts) {
    shifts[2 * b] = static_cast<int32_t>(d.dy);
    shifts[2 * b + 1] = static_cast<int32_t>(d.dx);
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
