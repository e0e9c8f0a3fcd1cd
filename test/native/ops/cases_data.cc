// Cases of ops/data.h: make_views over view sizes (S = 8, 16, 32, 224), odd source and master
// sizes, up- and downsampling crops, C = 1 and 3, every option on and off (two views or one, random
// crop or not, bicubic or bilinear, jitter / grayscale / blur probabilities 0 and 1, strong factors
// that hit the clamps, a blur radius wider than the view), repeated and unordered indices, and a
// null shifts output.
//
// The reference is the CPU backend's result, not a float64 model: the full pipeline's float64
// reference is TypeScript's (test/data/reference.ts checks the CPU against PIL's algorithm in
// test/data/augment.test.ts), and writing it again here would test nothing new. So every backend is
// compared with the CPU backend (which, compared with itself, is trivially exact):
//   - shifts (the draws) must match exactly;
//   - every view element must be within kCloseUlps units of 2^-24 in [0, 1] pixel units (before the
//     normalisation's 1/std; plus a few ulps of the result): the colour ops and the blur round a
//     few times per op, where compilers differ in contracting a·b + c into an FMA (g++ without
//     -mfma for the emulator, nvcc and the CPU's -mfma with), and the jitter factors (up to ~3 in
//     the strong case) amplify that;
//   - except that such a difference can move a resampling sum across a uint8 rounding boundary
//     and change a master pixel by one level (1/255): elements off by more than kCloseUlps are
//     counted, must stay within kMaxLevels levels (a level, amplified by the jitter factors; the
//     blur spreads it over its neighbours in smaller amounts), and their share must stay under
//     kMaxOffShare (at S = 224 a wrong row or column per sample would be 0.45 %).
// Measured under the emulator: the views match exactly (the resampling and blur sums are explicit
// fmaf on both sides: data/augment.cc, cuda/kernels/data.cuh), none off.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/rng.h"
#include "harness.h"

namespace cmae::op_tests {

namespace {

constexpr double kUlp = 0x1p-24;   // of a pixel value in [0, 1)
constexpr double kCloseUlps = 64;  // colour ops and blur sums: a few roundings, amplified by the factors
constexpr double kLevel = 1.0 / 255.0;
constexpr double kMaxLevels = 8;        // a one-level master difference after the jitter gains
constexpr double kMaxOffShare = 0.002;  // elements allowed off by such a difference

struct ViewsCase {
  std::string label;
  int64_t N, H, W, C, B;
  AugmentParams params;
  bool with_shifts = true;
};

AugmentParams base_params(int64_t S, int64_t R, int64_t C) {
  AugmentParams p;
  p.out_size = S;
  p.shift_range = R;
  for (int64_t c = 0; c < C; ++c) {
    p.mean[c] = 0.45f + 0.03f * static_cast<float>(c);
    p.std[c] = 0.22f + 0.02f * static_cast<float>(c);
  }
  return p;
}

// Probabilities of the target-only options.
AugmentParams with_colour(AugmentParams p, double jitter, double grayscale, double blur) {
  p.jitter_p = jitter;
  p.grayscale_p = grayscale;
  p.blur_p = blur;
  return p;
}

std::vector<ViewsCase> views_cases() {
  std::vector<ViewsCase> cases;
  const auto add = [&](std::string label, int64_t N, int64_t H, int64_t W, int64_t C, int64_t B, AugmentParams p) {
    cases.push_back({std::move(label), N, H, W, C, B, p});
  };
  for (int64_t C : {int64_t{1}, int64_t{3}}) {
    const std::string c = " C=" + std::to_string(C);
    add("S=8 R=3 all on" + c, 5, 13, 11, C, 7, with_colour(base_params(8, 3, C), 1, 1, 1));
    add("S=8 R=3 all off" + c, 5, 13, 11, C, 7, with_colour(base_params(8, 3, C), 0, 0, 0));
    AugmentParams mixed = base_params(16, 5, C);  // the default probabilities: a mix per sample
    mixed.master_size = 16 + 5 + 2;
    add("S=16 R=5 M=23 default probabilities" + c, 4, 37, 29, C, 12, mixed);
    AugmentParams bilinear = with_colour(base_params(32, 7, C), 1, 0, 1);
    bilinear.bicubic = false;
    add("S=32 R=7 bilinear downsampled" + c, 3, 97, 83, C, 5, bilinear);
    AugmentParams whole = with_colour(base_params(16, 4, C), 1, 1, 0);
    whole.random_crop = false;
    whole.flip_p = 1;
    add("S=16 R=4 whole image flipped, from 5x7" + c, 2, 5, 7, C, 3, whole);
    AugmentParams one_view = base_params(16, 7, C);
    one_view.two_views = false;
    add("S=16 one view" + c, 3, 21, 19, C, 5, one_view);
  }
  // Factors that hit every clamp, and hue's full range.
  AugmentParams strong = with_colour(base_params(16, 3, 3), 1, 0, 0);
  strong.brightness = 1.5;
  strong.contrast = 2.0;
  strong.saturation = 1.5;
  strong.hue = 0.5;
  strong.ratio_min = 0.3;
  strong.ratio_max = 3.0;
  strong.scale_min = 0.05;
  add("S=16 R=3 strong jitter, wide ratios", 3, 31, 45, 3, 9, strong);
  // σ drawn as is (no scaling to the view): a radius of up to 3·6 = 18 > S, reflect wraps around.
  AugmentParams wide_blur = with_colour(base_params(8, 2, 3), 0, 0, 1);
  wide_blur.blur_reference_size = 0;
  wide_blur.blur_sigma_min = 1.0;
  wide_blur.blur_sigma_max = 6.0;
  add("S=8 R=2 blur radius > S", 2, 15, 15, 3, 4, wide_blur);
  // A single-pixel view, no shifts output.
  AugmentParams tiny = with_colour(base_params(1, 2, 3), 1, 1, 1);
  cases.push_back({"S=1 R=2 all on, no shifts", 2, 9, 6, 3, 3, tiny, false});
  // The spec's views: 224 px, R = 31, master 256, default probabilities.
  AugmentParams spec = base_params(224, 31, 3);
  spec.master_size = 256;
  spec.jitter_p = 1;
  spec.blur_p = 1;
  add("S=224 R=31 M=256 spec", 2, 251, 237, 3, 2, spec);
  return cases;
}

// Smooth structure, noise, saturated patches (flat regions, where bicubic ringing must round away),
// per channel different.
std::vector<uint8_t> source_pixels(OpRun& run, int64_t N, int64_t H, int64_t W, int64_t C) {
  std::vector<uint8_t> px(static_cast<size_t>(N * H * W * C));
  for (int64_t n = 0; n < N; ++n) {
    const double fx = 0.1 + 0.5 * run.rng().uniform(), fy = 0.1 + 0.5 * run.rng().uniform();
    for (int64_t y = 0; y < H; ++y) {
      for (int64_t x = 0; x < W; ++x) {
        const bool patch = (x / 4 + y / 3 + n) % 5 == 0;
        for (int64_t c = 0; c < C; ++c) {
          double v = 128 + 100 * std::sin(fx * x + 1.3 * c) * std::cos(fy * y + 0.7 * n) + 25 * run.rng().normal();
          if (patch) v = (x + c) % 2 == 0 ? 255 : 0;
          px[static_cast<size_t>(((n * H + y) * W + x) * C + c)] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
        }
      }
    }
  }
  return px;
}

// The bytes as int32 words (the harness's buffers hold 4-byte elements).
Ints packed(const std::vector<uint8_t>& bytes) {
  Ints words((bytes.size() + 3) / 4, 0);
  if (!bytes.empty()) std::memcpy(words.data(), bytes.data(), bytes.size());
  return words;
}

// got vs the CPU's want (see the file comment); a summary, or fails the case.
std::string compare_views(const std::string& name, const Floats& got, const Floats& want, const AugmentParams& p, int64_t C,
                          int64_t S) {
  const int64_t n = static_cast<int64_t>(want.size()), plane = S * S;
  int64_t off = 0, exact = 0;
  double worst_close_ulps = 0, worst_off_levels = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = (i / plane) % C;
    const double inv_std = 1.0 / p.std[c];
    const double g = got[static_cast<size_t>(i)], w = want[static_cast<size_t>(i)];
    const double err = std::fabs(g - w);
    if (!(err <= 1e30)) fail_case(name, index_string(i, {n / (C * plane), C, S, S}), " got ", g, " want ", w);
    const double pixel_err = err / inv_std;  // in [0, 1] pixel units
    const double close = kCloseUlps * kUlp + 4 * kUlp * std::fabs(w) / inv_std;
    if (err == 0) ++exact;
    if (pixel_err <= close) {
      worst_close_ulps = std::max(worst_close_ulps, pixel_err / kUlp);
      continue;
    }
    ++off;
    worst_off_levels = std::max(worst_off_levels, pixel_err / kLevel);
    if (pixel_err > kMaxLevels * kLevel + close)
      fail_case(name, index_string(i, {n / (C * plane), C, S, S}), " got ", g, " want ", w, ": ", pixel_err / kLevel,
                " levels off, more than ", kMaxLevels);
  }
  std::ostringstream os;
  os << name << ": " << (exact == n ? "exact" : std::to_string(exact) + " of " + std::to_string(n) + " exact");
  if (worst_close_ulps > 0) os << ", the rest within " << worst_close_ulps << " ulps";
  if (off > 0) os << ", " << off << " off by up to " << worst_off_levels << " levels";
  if (static_cast<double>(off) > kMaxOffShare * static_cast<double>(n))
    fail_case(os.str(), ": more than ", kMaxOffShare * 100, " % of the elements off");
  return os.str();
}

void run_views(OpRun& run, const ViewsCase& vc) {
  const auto& [label, N, H, W, C, B, p, with_shifts] = vc;
  const int64_t S = p.out_size;
  const std::vector<uint8_t> pixels = source_pixels(run, N, H, W, C);
  // Repeated, unordered indices that use every source.
  Ints ids(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) ids[static_cast<size_t>(b)] = static_cast<int32_t>((b * 3 + 1) % N);
  const Ints words = packed(pixels);
  const Buffer sources = run.input_i32("sources", words, {static_cast<int64_t>(words.size())});
  const Buffer indices = run.input_i32("indices", ids, {B});
  const Shape view_shape{B, C, S, S};
  const Buffer online = run.output("online", view_shape);
  const Buffer target = run.output("target", p.two_views ? view_shape : Shape{0});
  const Buffer shifts = run.output("shifts", with_shifts ? Shape{B, 2} : Shape{0}, ElementType::I32);
  const uint64_t seed = 1234567, stream = make_stream(RngStream::Augment, static_cast<uint64_t>(B));
  run.backend().make_views(online.f32(), p.two_views ? target.f32() : nullptr, with_shifts ? shifts.i32() : nullptr,
                           reinterpret_cast<const uint8_t*>(sources.i32()), N, H, W, C, indices.i32(), B, p, seed, stream);

  // The CPU backend's result on host copies of the same inputs.
  Floats want_online(static_cast<size_t>(B * C * S * S)), want_target(p.two_views ? want_online.size() : 0);
  Ints want_shifts(static_cast<size_t>(2 * B));
  cpu_backend().make_views(want_online.data(), p.two_views ? want_target.data() : nullptr, want_shifts.data(), pixels.data(), N, H,
                           W, C, ids.data(), B, p, seed, stream);

  if (with_shifts) run.expect_equal(shifts, want_shifts);
  run.note(compare_views("online", run.download(online), want_online, p, C, S));
  if (p.two_views) run.note(compare_views("target", run.download(target), want_target, p, C, S));
}

}  // namespace

void add_data_cases(CaseTable& table) {
  static const std::vector<ViewsCase> cases = views_cases();
  for (const ViewsCase& c : cases) {
    OpCase& added = table.add("data", "make_views", c.label, [&c](OpRun& run) { run_views(run, c); });
    // The CPU splits samples over threads: results must not depend on how.
    if (c.label.rfind("S=16 R=5 M=23", 0) == 0 && c.C == 3) added.thread_invariant = true;
  }
}

}  // namespace cmae::op_tests
