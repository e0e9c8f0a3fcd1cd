// The data ops of the CUDA backend (ops/data.h): make_views' scratch layout, launch geometry and
// launches; the kernels and their design are in kernels/data.cuh. Everything between the launches
// lives in the backend's scratch (CudaBackend::scratch), carved here into 256-byte aligned regions:
//   samples        B ViewSample (draws, blur radius and sum, contrast offset)
//   taps x, y      B·M·kx and B·M·ky float weights, B·M (start, count) int32 pairs each
//   blur weights   B·kb floats (when blur_p > 0)
//   rows | blur    the horizontal pass, B·H·M·C uint8; later reused for the blur's horizontal pass,
//                  B·C·S·S floats (the larger of the two)
//   master         B·M·M·C uint8
//   preblur        B·C·S·S floats (when blur_p > 0)
// kx, ky, kb are the most taps any crop or σ can need (the widest crop, the largest σ), so the
// layout depends on the arguments only.
//
// Expected bound per call, the spec's views at batch 256 on an H100/H200 (4.3 TB/s): S = 224,
// R = 31, M = 256, C = 3, default jitter/grayscale/blur probabilities, from 256×256 sources (a crop
// covers ~60 % of the source on average, upsampled: 5 bicubic taps). Memory bound throughout; the
// arithmetic (~1 G FMAs for resampling and blur, ~50 flops per pixel of colour ops) is < 20 us.
//   kernel                       DRAM bytes                                          time
//   draw_views_kernel            256 samples × ~160 B                                 launch (~3 us)
//   view_weights_kernel          taps 256·256·(5 + 5)·4 B + pairs: ~3.6 MB written     ~2 us
//   resample_rows_kernel         crops read 30 MB, rows written 39 MB                 16 us
//   resample_columns_kernel      rows read 39 MB, master written 50 MB                21 us
//   contrast_means_kernel<3>     80 % of the windows, 31 MB read (mostly L2)           7 us
//   write_views_kernel<3>        master windows read 77 MB, online + target (or its   90 us
//                                pre-blur copy) written 308 MB
//   blur_pass_kernel<false>      half the targets: 77 MB read, 77 MB written          36 us
//   blur_pass_kernel<true>       77 MB read, 77 MB written (into target)              36 us
//   total                        ~890 MB                                            ~210 us
// (The floor is writing the two views, 308 MB = 72 us.) Scratch for this shape: ~0.36 GB (the two
// float blur buffers, 154 MB each, dominate; kept while the backend lives, like all its scratch).
#include <algorithm>
#include <climits>
#include <type_traits>

#include "cuda_backend.h"
#include "kernels/data.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace {

// Offsets of 256-byte aligned regions in one scratch buffer.
class ScratchLayout {
 public:
  // A region of `count` T; its offset.
  template <typename T>
  size_t add(int64_t count) {
    offset_ = (offset_ + kAlignment - 1) / kAlignment * kAlignment;
    const size_t at = offset_;
    offset_ += static_cast<size_t>(count) * sizeof(T);
    return at;
  }
  size_t bytes() const { return offset_; }

 private:
  static constexpr size_t kAlignment = 256;
  size_t offset_ = 0;
};

void check_int(int64_t value, const char* what) {
  CMAE_CHECK(value <= INT_MAX, Shape, "make_views: ", what, " = ", value, " is more than the CUDA kernels index (2^31 - 1)");
}

unsigned threads_for(int64_t items, unsigned most) {
  const int64_t warps = ceil_div(items > 0 ? items : 1, 32) * 32;
  return static_cast<unsigned>(warps < most ? warps : most);
}

unsigned grid_y(int64_t count) { return static_cast<unsigned>(std::min<int64_t>(count, kMaxGridDimYZ)); }

}  // namespace

void CudaBackend::make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H,
                             int64_t W, int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                             uint64_t stream) {
  if (B == 0) return;
  const int64_t S = params.out_size, M = data::master_size_of(params);
  const bool may_blur = params.two_views && params.blur_p > 0;
  const bool may_contrast = params.two_views && params.jitter_p > 0 && params.contrast > 0;
  // The widest crop needs the most taps (the support grows with the crop when downsampling).
  const int64_t kx = data::resample_axis(W, M, params.bicubic).ksize, ky = data::resample_axis(H, M, params.bicubic).ksize;
  // Every σ drawn is at most the scaled blur_sigma_max (+1: a rounding margin; the draw kernel
  // clamps to it, which no draw reaches).
  int64_t blur_radius_max = 0, kb = 0;
  if (may_blur) {
    double sigma = params.blur_sigma_max;
    if (params.blur_reference_size > 0) sigma *= static_cast<double>(S) / params.blur_reference_size;
    blur_radius_max = data::blur_radius(sigma) + 1;
    kb = 2 * blur_radius_max + 1;
  }
  check_int(H, "H");
  check_int(W, "W");
  check_int(M * C, "a master row M·C");
  check_int(S * S, "a view plane S·S");
  check_int(std::max({kx, ky, kb}), "the taps per output");
  check_int(B, "B");

  ScratchLayout layout;
  const size_t samples_at = layout.add<kernels::ViewSample>(B);
  const size_t weights_x_at = layout.add<float>(B * M * kx), taps_x_at = layout.add<int32_t>(2 * B * M);
  const size_t weights_y_at = layout.add<float>(B * M * ky), taps_y_at = layout.add<int32_t>(2 * B * M);
  const size_t blur_weights_at = layout.add<float>(B * kb);
  const int64_t rows_bytes = B * H * M * C, blur_bytes = may_blur ? B * C * S * S * 4 : 0;
  const size_t rows_at = layout.add<uint8_t>(std::max(rows_bytes, blur_bytes));  // rows, later the blur's first pass
  const size_t master_at = layout.add<uint8_t>(B * M * M * C);
  const size_t preblur_at = layout.add<float>(may_blur ? B * C * S * S : 0);
  char* base = static_cast<char*>(scratch(layout.bytes()));
  auto* samples = reinterpret_cast<kernels::ViewSample*>(base + samples_at);
  auto* weights_x = reinterpret_cast<float*>(base + weights_x_at);
  auto* taps_x = reinterpret_cast<int32_t*>(base + taps_x_at);
  auto* weights_y = reinterpret_cast<float*>(base + weights_y_at);
  auto* taps_y = reinterpret_cast<int32_t*>(base + taps_y_at);
  auto* blur_weights = reinterpret_cast<float*>(base + blur_weights_at);
  auto* rows = reinterpret_cast<uint8_t*>(base + rows_at);
  auto* blur_tmp = reinterpret_cast<float*>(base + rows_at);
  auto* master = reinterpret_cast<uint8_t*>(base + master_at);
  auto* preblur = reinterpret_cast<float*>(base + preblur_at);
  const int c = static_cast<int>(C), s = static_cast<int>(S), m = static_cast<int>(M);

  CMAE_LAUNCH(kernels::draw_views_kernel, static_cast<unsigned>(ceil_div(B, kernels::kDrawThreads)), kernels::kDrawThreads, 0, stream_,
              samples, shifts, indices, B, H, W, C, params, seed, stream, static_cast<int32_t>(blur_radius_max));
  CMAE_LAUNCH(kernels::view_weights_kernel, stream_blocks(B * (2 * M + kb), kernels::kStreamThreads, properties_.multiprocessors),
              kernels::kStreamThreads, 0, stream_, weights_x, taps_x, weights_y, taps_y, blur_weights,
              static_cast<const kernels::ViewSample*>(samples), B, m, static_cast<int>(kx), static_cast<int>(ky), static_cast<int>(kb),
              params.bicubic);
  const unsigned row_threads = threads_for(M * C, kernels::kResampleThreads);
  CMAE_LAUNCH(kernels::resample_rows_kernel, dim3(static_cast<unsigned>(ceil_div(H, kernels::kResampleRowsPerBlock)), grid_y(B)),
              row_threads, 0, stream_, rows, sources, static_cast<const kernels::ViewSample*>(samples),
              static_cast<const float*>(weights_x), static_cast<const int32_t*>(taps_x), B, H, W, c, m, static_cast<int>(kx));
  CMAE_LAUNCH(kernels::resample_columns_kernel, dim3(static_cast<unsigned>(ceil_div(M, kernels::kResampleRowsPerBlock)), grid_y(B)),
              row_threads, 0, stream_, master, static_cast<const uint8_t*>(rows), static_cast<const float*>(weights_y),
              static_cast<const int32_t*>(taps_y), B, H, c, m, static_cast<int>(ky));

  const dim3 pixel_grid(static_cast<unsigned>(ceil_div(S * S, kernels::kPixelThreads)), grid_y(B));
  const auto colour = [&](auto channels) {
    constexpr int kC = decltype(channels)::value;
    if (may_contrast)
      CMAE_LAUNCH(kernels::contrast_means_kernel<kC>, static_cast<unsigned>(B), kernels::kContrastThreads, 0, stream_, samples,
                  static_cast<const uint8_t*>(master), params, s, m);
    CMAE_LAUNCH(kernels::write_views_kernel<kC>, pixel_grid, kernels::kPixelThreads, 0, stream_, online, target, preblur,
                static_cast<const uint8_t*>(master), static_cast<const kernels::ViewSample*>(samples), params, B, s, m);
  };
  if (C == 3) colour(std::integral_constant<int, 3>{});
  else colour(std::integral_constant<int, 1>{});

  if (may_blur) {
    const dim3 plane_grid(static_cast<unsigned>(ceil_div(S * S, kernels::kPixelThreads)), grid_y(B * C));
    CMAE_LAUNCH(kernels::blur_pass_kernel<false>, plane_grid, kernels::kPixelThreads, 0, stream_, blur_tmp,
                static_cast<const float*>(preblur), static_cast<const kernels::ViewSample*>(samples),
                static_cast<const float*>(blur_weights), params, B, c, s, static_cast<int>(kb));
    CMAE_LAUNCH(kernels::blur_pass_kernel<true>, plane_grid, kernels::kPixelThreads, 0, stream_, target,
                static_cast<const float*>(blur_tmp), static_cast<const kernels::ViewSample*>(samples),
                static_cast<const float*>(blur_weights), params, B, c, s, static_cast<int>(kb));
  }
}

CMAE_CUDA_NAMESPACE_END
