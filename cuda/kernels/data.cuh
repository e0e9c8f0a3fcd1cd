// Kernels of the data family (ops/data.h): make_views, the batched two-view augmentation, as eight
// launches over the whole batch. The draws and every per-pixel formula are data/augment_math.h's
// (the CPU pipeline, data/augment.cc, calls the same functions), and each kernel keeps the CPU's
// order of operations per output element, so the backends agree on everything but a few ulps of
// float contraction (see ops/data.h). Intermediate images live in the backend's scratch (cuda/data.cu
// lays it out): the resampling passes in uint8 (they hold 8-bit levels exactly, as PIL's passes do),
// the colour-augmented target before its blur in float32.
//
//  1. draw_views_kernel: a thread per sample: draw_sample (crop box, flip, dy/dx, jitter order and
//     factors, grayscale, blur σ), the blur radius and the sum of its Gaussian (one thread, in the
//     CPU's order), the source offset; shifts (dy, dx) written. (Its 104 bytes of local memory are
//     the draws: the jitter order is shuffled by drawn positions; B threads once per call.)
//  2. view_weights_kernel: a thread per (sample, tap set), grid-stride: the resampling taps of each
//     master column (x) and row (y) of each sample (resample_taps), and each blur weight.
//  3. resample_rows_kernel (PIL's horizontal pass): a block per (group of 8 crop rows, sample),
//     threads over the M·C outputs (x, c) of a row: Σ_k w[k]·src in k order (fmaf, the CPU's
//     contraction), rounded to a level, written flipped if the sample is; rows (B, H, M, C) uint8.
//     Consecutive threads read neighbouring source bytes and write consecutive bytes.
//  4. resample_columns_kernel (vertical pass): a block per (group of 8 master rows, sample),
//     threads over a master row's M·C bytes, each summing its column of the rows buffer in k order
//     (coalesced byte loads, rows shared by neighbouring master rows stay in L1/L2); master
//     (B, M, M, C) uint8 levels.
//  5. contrast_means_kernel<C> (only when contrast can apply): a block per sample whose jitter
//     includes contrast; each thread takes pixels t, t + 256, ... of the target window, applies the
//     jitter ops that precede contrast, and adds the luma (C = 3) or value in double; block_sum's
//     fixed tree gives the mean, and thread 0 stores the contrast offset (1 − f)·mean. (The CPU sums
//     the same float lumas in pixel order: the double sums agree to ~1e-16 relative, so the float
//     means nearly always have the same bits.)
//  6. write_views_kernel<C>: a thread per output pixel (x fastest, a grid row per sample): the online
//     pixel normalised into its C planes; the target pixel read at (dy, dx), through the jitter ops
//     in the sample's order, grayscale, then normalised into the target, or kept in float (planar
//     (B, C, S, S)) when the sample is blurred.
//  7./8. blur_pass_kernel<false>, then <true> (only when blur can apply): a thread per (x, y) of a
//     (sample, channel) plane of a blurred sample (other samples' blocks skip the plane):
//     Σ_k w[k]·v[reflect(i + k − r)] in k order, the horizontal pass into a float buffer, the
//     vertical one clamped and normalised into the target. The weights of a sample are read by
//     every thread of the block at the same address (a broadcast).
// Every sum has a fixed order, so results repeat bit for bit.
#pragma once
#include <cstdint>

#include "common/compat.cuh"
#include "common/reduce.cuh"
#include "data/augment_math.h"

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {

// What the kernels of one make_views call know about sample b (scratch memory, written by
// draw_views_kernel; contrast_offset by contrast_means_kernel).
struct ViewSample {
  data::SampleDraws draws;
  int64_t source;       // offset of the sample's source image: indices[b]·H·W·C
  int32_t blur_radius;  // when draws.blur
  double blur_total;    // Σ of the unnormalised Gaussian (data::blur_total)
  float contrast_offset;
};

constexpr unsigned kDrawThreads = 128;
constexpr unsigned kResampleThreads = 256;
constexpr int kResampleRowsPerBlock = 8;
constexpr unsigned kContrastThreads = 256;
constexpr unsigned kPixelThreads = 256;

// A stored 8-bit level in [0, 1], rounded as the CPU rounds it before storing its master: an
// explicitly rounded product, so nvcc cannot fuse it with the normalisation that follows.
__device__ __forceinline__ float unit_level(uint8_t level) { return __fmul_rn(static_cast<float>(level), 1.0f / 255.0f); }

// (v − mean[c]) / std[c] as the CPU writes it: a subtraction, then a product with 1 / std.
__device__ __forceinline__ float normalise(float v, const AugmentParams& p, int c) { return (v - p.mean[c]) * (1.0f / p.std[c]); }

// ---- 1. draws --------------------------------------------------------------------------------------

// blur_radius_max: the radius the blur weights are laid out for (cuda/data.cu bounds every radius
// the draws can give by it; the clamp only keeps memory safe).
__global__ void __launch_bounds__(kDrawThreads)
    draw_views_kernel(ViewSample* samples, int32_t* shifts, const int32_t* indices, int64_t B, int64_t H, int64_t W, int64_t C,
                      AugmentParams p, uint64_t seed, uint64_t stream, int32_t blur_radius_max) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  ViewSample s{};
  s.draws = data::draw_sample(seed, stream, b, H, W, C, p);
  s.source = static_cast<int64_t>(indices[b]) * H * W * C;
  if (s.draws.blur) {
    const int64_t r = data::blur_radius(s.draws.sigma);
    s.blur_radius = static_cast<int32_t>(r < blur_radius_max ? r : blur_radius_max);
    s.blur_total = data::blur_total(s.draws.sigma, s.blur_radius);
  }
  samples[b] = s;
  if (shifts) {
    shifts[2 * b] = static_cast<int32_t>(s.draws.dy);
    shifts[2 * b + 1] = static_cast<int32_t>(s.draws.dx);
  }
}

// ---- 2. taps and blur weights ----------------------------------------------------------------------

// Per sample: M x tap sets (kx floats each, (start, count) pairs in taps_x), M y tap sets, then kb
// blur weights (kb = 0 when no sample can be blurred).
__global__ void __launch_bounds__(kStreamThreads)
    view_weights_kernel(float* weights_x, int32_t* taps_x, float* weights_y, int32_t* taps_y, float* blur_weights,
                        const ViewSample* samples, int64_t B, int M, int kx, int ky, int kb, bool bicubic) {
  const int64_t per_sample = 2 * static_cast<int64_t>(M) + kb;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < B * per_sample;
       item += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = item / per_sample;
    const int j = static_cast<int>(item - b * per_sample);
    const ViewSample& s = samples[b];
    if (j < 2 * M) {
      const bool along_x = j < M;
      const int xx = along_x ? j : j - M;
      const int64_t in_size = along_x ? s.draws.crop.w : s.draws.crop.h;
      const int64_t set = b * M + xx;
      int64_t start = 0;
      const int64_t count = data::resample_taps(along_x ? weights_x + set * kx : weights_y + set * ky, &start,
                                                data::resample_axis(in_size, M, bicubic), xx, in_size);
      int32_t* taps = (along_x ? taps_x : taps_y) + 2 * set;
      taps[0] = static_cast<int32_t>(start);
      taps[1] = static_cast<int32_t>(count);
    } else {
      const int k = j - 2 * M;  // weight of offset k − r
      if (s.draws.blur && k <= 2 * s.blur_radius)
        blur_weights[b * kb + k] = data::blur_weight(k - s.blur_radius, s.draws.sigma, s.blur_total);
    }
  }
}

// ---- 3./4. PIL's two resampling passes -------------------------------------------------------------

// rows (B, H, M, C): row y < crop.h of sample b = the crop's row y resampled to M columns (levels),
// mirrored when the sample is flipped. Grid (ceil(H / 8), min(B, 65535)); blocks loop over samples.
__global__ void __launch_bounds__(kResampleThreads)
    resample_rows_kernel(uint8_t* rows, const uint8_t* sources, const ViewSample* samples, const float* weights_x,
                         const int32_t* taps_x, int64_t B, int64_t H, int64_t W, int C, int M, int kx) {
  const int row_len = M * C;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const ViewSample& s = samples[b];
    const data::Crop crop = s.draws.crop;
    const bool flip = s.draws.flip;
    const int y0 = static_cast<int>(blockIdx.x) * kResampleRowsPerBlock;
    for (int y = y0; y < y0 + kResampleRowsPerBlock && y < crop.h; ++y) {
      const uint8_t* line = sources + s.source + ((crop.top + y) * W + crop.left) * C;
      uint8_t* out = rows + (b * H + y) * row_len;
      for (int i = static_cast<int>(threadIdx.x); i < row_len; i += static_cast<int>(blockDim.x)) {
        const int xx = i / C, c = i - xx * C;
        const int64_t set = b * M + xx;
        const float* w = weights_x + set * kx;
        const uint8_t* p = line + static_cast<int64_t>(taps_x[2 * set]) * C + c;
        const int n = taps_x[2 * set + 1];
        float acc = 0.0f;
        for (int k = 0; k < n; ++k) acc = fmaf(w[k], static_cast<float>(p[k * C]), acc);
        const int ox = flip ? M - 1 - xx : xx;
        out[ox * C + c] = static_cast<uint8_t>(data::to_uint8_level(acc));
      }
    }
  }
}

// master (B, M, M, C) levels: the vertical pass over rows. Grid (ceil(M / 8), min(B, 65535)).
__global__ void __launch_bounds__(kResampleThreads)
    resample_columns_kernel(uint8_t* master, const uint8_t* rows, const float* weights_y, const int32_t* taps_y, int64_t B,
                            int64_t H, int C, int M, int ky) {
  const int row_len = M * C;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int yy0 = static_cast<int>(blockIdx.x) * kResampleRowsPerBlock;
    for (int yy = yy0; yy < yy0 + kResampleRowsPerBlock && yy < M; ++yy) {
      const int64_t set = b * M + yy;
      const float* w = weights_y + set * ky;
      const uint8_t* base = rows + (b * H + taps_y[2 * set]) * row_len;
      const int n = taps_y[2 * set + 1];
      uint8_t* out = master + set * row_len;
      for (int i = static_cast<int>(threadIdx.x); i < row_len; i += static_cast<int>(blockDim.x)) {
        float acc = 0.0f;
        for (int k = 0; k < n; ++k) acc = fmaf(w[k], static_cast<float>(base[static_cast<int64_t>(k) * row_len + i]), acc);
        out[i] = static_cast<uint8_t>(data::to_uint8_level(acc));
      }
    }
  }
}

// ---- 5./6. colour ----------------------------------------------------------------------------------

// The target pixel at (y, x) of sample b's window, in [0, 1].
template <int C>
__device__ __forceinline__ void load_target_pixel(float (&v)[C], const uint8_t* master, const ViewSample& s, int64_t b, int M,
                                                  int y, int x) {
  const uint8_t* px = master + ((b * M + s.draws.dy + y) * M + s.draws.dx + x) * C;
  CMAE_UNROLL
  for (int c = 0; c < C; ++c) v[c] = unit_level(px[c]);
}

// The sample's colour-jitter ops on one pixel, in its order, skipping inactive ones; with
// kBeforeContrast, only the ops that precede contrast (what contrast's mean is taken over).
template <bool kBeforeContrast, int C>
__device__ __forceinline__ void apply_jitter(float (&v)[C], const ViewSample& s, const AugmentParams& p) {
  CMAE_UNROLL
  for (int i = 0; i < 4; ++i) {
    const int op = s.draws.order[i];
    if (kBeforeContrast && op == data::kContrast) return;
    if (!data::colour_op_active(op, p, C)) continue;
    if (op == data::kBrightness) {
      const float f = s.draws.factor[data::kBrightness];
      CMAE_UNROLL
      for (int c = 0; c < C; ++c) v[c] = data::brightness_pixel(v[c], f);
    } else if (op == data::kContrast) {
      const float f = s.draws.factor[data::kContrast], offset = s.contrast_offset;
      CMAE_UNROLL
      for (int c = 0; c < C; ++c) v[c] = data::contrast_pixel(v[c], f, offset);
    } else if constexpr (C == 3) {  // saturation and hue are active only for C = 3
      if (op == data::kSaturation) data::saturation_pixel(v, s.draws.factor[data::kSaturation]);
      else data::hue_pixel(v, s.draws.factor[data::kHue]);
    }
  }
}

// samples[b].contrast_offset for every sample whose jitter applies an active contrast. Grid (B).
template <int C>
__global__ void __launch_bounds__(kContrastThreads)
    contrast_means_kernel(ViewSample* samples, const uint8_t* master, AugmentParams p, int S, int M) {
  CMAE_SHARED(double, partial, 32);
  const int64_t b = blockIdx.x;
  const ViewSample s = samples[b];  // a register copy: its fields are read with constant indices
  if (!s.draws.jitter || !data::colour_op_active(data::kContrast, p, C)) return;  // block-uniform
  const int n = S * S;
  double sum = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) {
    float v[C];
    load_target_pixel<C>(v, master, s, b, M, i / S, i % S);
    apply_jitter<true>(v, s, p);
    if constexpr (C == 3) sum += data::luma(v[0], v[1], v[2]);
    else sum += v[0];
  }
  sum = block_sum(sum, partial);
  if (threadIdx.x == 0)
    samples[b].contrast_offset = data::contrast_offset(s.draws.factor[data::kContrast], static_cast<float>(sum / static_cast<double>(n)));
}

// online, target (B, C, S, S); preblur (B, C, S, S) receives blurred samples' targets before the
// blur. Grid (ceil(S² / 256), min(B, 65535)).
template <int C>
__global__ void __launch_bounds__(kPixelThreads)
    write_views_kernel(float* online, float* target, float* preblur, const uint8_t* master, const ViewSample* samples,
                       AugmentParams p, int64_t B, int S, int M) {
  const int pixel = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (pixel >= S * S) return;
  const int y = pixel / S, x = pixel - y * S;
  const int64_t plane = static_cast<int64_t>(S) * S;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const uint8_t* px = master + ((b * M + y) * M + x) * C;
    CMAE_UNROLL
    for (int c = 0; c < C; ++c) online[(b * C + c) * plane + pixel] = normalise(unit_level(px[c]), p, c);
    if (!p.two_views) continue;
    const ViewSample s = samples[b];  // a register copy: its fields are read with constant indices
    float v[C];
    load_target_pixel<C>(v, master, s, b, M, y, x);
    if (s.draws.jitter) apply_jitter<false>(v, s, p);
    if constexpr (C == 3) {
      if (s.draws.grayscale) data::grayscale_pixel(v);
    }
    CMAE_UNROLL
    for (int c = 0; c < C; ++c) {
      const int64_t at = (b * C + c) * plane + pixel;
      if (s.draws.blur) preblur[at] = v[c];
      else target[at] = normalise(v[c], p, c);
    }
  }
}

// ---- 7./8. Gaussian blur ---------------------------------------------------------------------------

// kVertical = false: out = the horizontal pass of in; true: the vertical pass, clamped to [0, 1]
// and normalised. in, out: (B, C, S, S); only blurred samples are touched. Grid
// (ceil(S² / 256), min(B·C, 65535)); blocks loop over (sample, channel) planes.
template <bool kVertical>
__global__ void __launch_bounds__(kPixelThreads)
    blur_pass_kernel(float* out, const float* in, const ViewSample* samples, const float* blur_weights, AugmentParams p,
                     int64_t B, int C, int S, int kb) {
  const int pixel = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (pixel >= S * S) return;
  const int y = pixel / S, x = pixel - y * S;
  const int64_t plane_size = static_cast<int64_t>(S) * S;
  for (int64_t plane = blockIdx.y; plane < B * C; plane += gridDim.y) {
    const int64_t b = plane / C;
    const ViewSample& s = samples[b];
    if (!s.draws.blur) continue;
    const int r = s.blur_radius;
    const float* w = blur_weights + b * kb;
    const float* src = in + plane * plane_size;
    float acc = 0.0f;
    for (int k = 0; k <= 2 * r; ++k) {
      const float v = kVertical ? src[data::reflect(y + k - r, S) * S + x] : src[y * S + data::reflect(x + k - r, S)];
      acc = fmaf(w[k], v, acc);
    }
    out[plane * plane_size + pixel] = kVertical ? normalise(data::clamp01(acc), p, static_cast<int>(plane - b * C)) : acc;
  }
}

}  // namespace kernels
CMAE_CUDA_NAMESPACE_END
