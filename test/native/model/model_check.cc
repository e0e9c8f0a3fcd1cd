// cmae_model_check: the whole model on every non-CPU backend this build has, against the CPU
// backend, and (--bench) the training step timed there. Built by CMake with the native tests, no
// Node needed (what scripts/gpu-check.sh runs on a GPU machine; npm test runs the checks on the
// emulated CUDA backend).
//
//   cmae_model_check                     the checks (report.h protocol: one JSON line per case)
//   cmae_model_check --bench [--peak-tflops fp32=67,tf32=400,bf16=790] [--steps 10]
//                                        step timings on each non-CPU backend (the CPU too with
//                                        --bench-cpu): one JSON line per configuration
//   cmae_model_check --print-presets     the presets below as JSON (test/native/model.test.ts
//                                        checks them against src/models/config.ts, their owner)
//   cmae_model_check --print-flops       the FLOP count below per preset (checked against
//                                        bench/flops.mjs, the same count for npm run bench)
//
// A check: a model on the backend and one on the CPU from the same seed (bit-identical initial
// parameters), then `steps` × (loss_and_grad on the same images, targets and mask noise; AdamW;
// EMA), comparing every loss, the first step's gradients and the final parameters.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "model/cmae_model.h"
#include "model/optimizer.h"
#include "report.h"
#if defined(CMAE_WITH_CUDA) || defined(CMAE_WITH_CUDA_EMULATION)
#include "cuda/cuda_api.h"
#endif

namespace cmae::model_check {
namespace {

using model::AdamW;
using model::AdamWHyper;
using model::CmaeModel;
using model::LossResult;
using model::Mode;
using model::ModelConfig;
using testing::fail_case;

// ---- presets (their owner is src/models/config.ts; --print-presets lets a test compare) ---------

ModelConfig preset(const std::string& name, Mode mode) {
  ModelConfig c;
  c.mode = mode;
  c.mlp_ratio = 4;
  // The methods' defaults (src/models/config.ts): CMAE's 65 % in 2×2 groups, MAE's 75 % per patch
  // (spec §5, and MaskDistill's), the two-view contrastive methods' whole views (SimCLR's τ 0.2).
  const bool per_patch = mode == Mode::MAE || mode == Mode::MASKDISTILL;
  c.mask_ratio = mode == Mode::CMAE ? 0.65 : per_patch ? 0.75 : 0.0;
  c.mask_group = per_patch ? 1 : 2;
  c.tau = mode == Mode::SIMCLR ? 0.2 : 0.07;
  c.dense_weight = mode == Mode::DENSECL ? 0.5 : 0.0;  // DenseCL's λ
  c.ct_weight = 1;
  c.rc_weight = 1;
  c.norm_pix_loss = true;
  c.bn_eps = 1e-6;
  c.bn_momentum = 0.1;
  struct Sizes {
    int64_t image, channels, patch, dim, depth, heads, dec, dec_depth, dec_heads, fdec, fdec_depth, fdec_heads, hidden, proj;
  };
  static const std::map<std::string, Sizes> sizes = {
      {"micro", {16, 3, 4, 32, 2, 2, 24, 1, 2, 24, 1, 2, 64, 16}},
      {"tiny", {32, 3, 4, 192, 12, 3, 128, 4, 4, 128, 2, 4, 512, 128}},
      {"small", {224, 3, 16, 384, 12, 6, 256, 4, 8, 256, 2, 8, 1536, 256}},
      {"base", {224, 3, 16, 768, 12, 12, 512, 8, 16, 512, 2, 16, 1536, 256}},
  };
  const auto it = sizes.find(name);
  if (it == sizes.end()) fail_case("unknown preset '", name, "'");
  const Sizes& s = it->second;
  c.image_size = s.image, c.channels = s.channels, c.patch_size = s.patch;
  c.dim = s.dim, c.depth = s.depth, c.heads = s.heads;
  c.decoder_dim = s.dec, c.decoder_depth = s.dec_depth, c.decoder_heads = s.dec_heads;
  c.feature_decoder_dim = s.fdec, c.feature_decoder_depth = s.fdec_depth, c.feature_decoder_heads = s.fdec_heads;
  c.projector_hidden = s.hidden, c.projector_dim = s.proj;
  return c;
}

// ---- model FLOPs of one training step (2 per multiply-add; GEMMs and attention products) --------
// The same count as bench/flops.mjs (test/native/model.test.ts compares them): forward, input
// gradient and weight gradient of every Linear the step trains, forward only for the momentum
// branch; attention QKᵀ and AV, ×3 with their backward.
double train_step_flops(const ModelConfig& c, int64_t B) {
  const double L = static_cast<double>(c.num_patches()), K = static_cast<double>(c.num_visible());
  const double P = static_cast<double>(c.patch_dim()), D = static_cast<double>(c.dim), b = static_cast<double>(B);
  double f = 0;
  // rows R, in, out; trained: forward + dinp + dweight (dinp skipped for the patch embedding)
  const auto lin = [&](double R, double in, double out, bool trained, bool dinp = true) {
    const double fwd = 2 * R * in * out;
    f += trained ? fwd + fwd + (dinp ? fwd : 0) : fwd;
  };
  const auto stack = [&](double R, double N, double width, int64_t depth, bool trained) {
    const double Hd = width * static_cast<double>(c.mlp_ratio);
    for (int64_t i = 0; i < depth; ++i) {
      lin(R, width, 3 * width, trained);
      lin(R, width, width, trained);
      lin(R, width, Hd, trained);
      lin(R, Hd, width, trained);
      const double attention = 2 * 2 * b * N * N * width;
      f += trained ? 3 * attention : attention;
    }
  };
  lin(b * K, P, D, true, false);  // the online patch embedding sees the visible patches only
  stack(b * (1 + K), 1 + K, D, c.depth, true);
  const auto decoder = [&](double width, int64_t depth, double out) {
    lin(b * (1 + K), D, width, true);
    stack(b * (1 + L), 1 + L, width, depth, true);
    lin(b * L, width, out, true);
  };
  decoder(static_cast<double>(c.decoder_dim), c.decoder_depth, P);
  if (c.mode == Mode::CMAE) {
    const double H = static_cast<double>(c.projector_hidden), E = static_cast<double>(c.projector_dim);
    decoder(static_cast<double>(c.feature_decoder_dim), c.feature_decoder_depth, D);
    lin(b, D, H, true), lin(b, H, E, true), lin(b, E, H, true), lin(b, H, E, true);  // projector, predictor
    lin(b * L, P, D, false);                                                         // momentum branch
    stack(b * (1 + L), 1 + L, D, c.depth, false);
    lin(b, D, H, false), lin(b, H, E, false);
  }
  return f;
}

// ---- inputs -------------------------------------------------------------------------------------

// splitmix64 → uniform [-1, 1) and [0, 1): the check's data (independent of core/rng.h).
std::vector<float> host_values(int64_t n, uint64_t seed, bool unit_interval) {
  std::vector<float> out(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& v : out) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const double u = static_cast<double>(z >> 11) * 0x1p-53;
    v = static_cast<float>(unit_interval ? u : 2 * u - 1);
  }
  return out;
}

Tensor upload(const std::vector<float>& values, const Shape& shape, Backend& backend) {
  Tensor t = Tensor::empty(shape, DType::F32, backend);
  backend.copy_from_host(t.f32(), values.data(), t.bytes());
  return t;
}

std::vector<float> download(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  t.backend().copy_to_host(out.data(), t.f32(), t.bytes());
  return out;
}

struct Batch {
  Tensor images, targets, noise;
};

Batch make_batch(const ModelConfig& c, int64_t B, uint64_t seed, Backend& backend) {
  const Shape shape{B, c.channels, c.image_size, c.image_size};
  const int64_t n = B * c.channels * c.image_size * c.image_size;
  return {upload(host_values(n, seed, false), shape, backend), upload(host_values(n, seed + 1, false), shape, backend),
          upload(host_values(c.views() * B * c.num_groups(), seed + 2, true), {c.views() * B, c.num_groups()}, backend)};
}

// ---- the check ----------------------------------------------------------------------------------

double max_abs(const std::vector<float>& v, int64_t begin, int64_t end) {
  double m = 0;
  for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(static_cast<double>(v[static_cast<size_t>(i)])));
  return m;
}

// Compares one arena parameter by parameter: |got − want| <= atol(param) + rtol·|want|.
template <typename Atol>
void compare_arena(const char* what, const model::ParameterTable& table, const std::vector<float>& got, const std::vector<float>& want,
                   int64_t count, double rtol, Atol atol) {
  for (const model::ParamInfo& p : table.entries()) {
    if (p.offset + p.numel > count) continue;
    const double a = atol(p);
    for (int64_t i = p.offset; i < p.offset + p.numel; ++i) {
      const double g = got[static_cast<size_t>(i)], w = want[static_cast<size_t>(i)];
      if (!(std::fabs(g - w) <= a + rtol * std::fabs(w)))
        fail_case(what, " ", p.name, "[", i - p.offset, "] = ", g, ", the CPU's ", w, " (allowed ", a + rtol * std::fabs(w), ")");
    }
  }
}

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::CMAE: return "cmae";
    case Mode::MAE: return "mae";
    case Mode::MOCOV3: return "mocov3";
    case Mode::MASKDISTILL: return "maskdistill";
    case Mode::SIMCLR: return "simclr";
    case Mode::DENSECL: return "densecl";
    case Mode::CLASSIFIER: return "classifier";
  }
  return "?";
}

struct CheckCase {
  std::string preset;
  Mode mode;
  int64_t batch;
  int steps;
  double loss_rtol;  // fp32 products on both sides: only the order of float32 sums differs
  double throw_ratio = 0;  // > 0: AMT's throwing, at mask ratio 0.5
};

std::string run_check(Backend& backend, const CheckCase& k) {
  ModelConfig c = preset(k.preset, k.mode);
  if (k.throw_ratio > 0) c.mask_ratio = 0.5, c.throw_ratio = k.throw_ratio;
  const uint64_t seed = 11;
  Backend& cpu = cpu_backend();
  const MatmulPrecision saved = backend.matmul_precision(), saved_cpu = cpu.matmul_precision();
  backend.set_matmul_precision(MatmulPrecision::FP32);
  cpu.set_matmul_precision(MatmulPrecision::FP32);
  struct Restore {
    Backend &b, &cpu;
    MatmulPrecision p, pc;
    ~Restore() { b.set_matmul_precision(p), cpu.set_matmul_precision(pc); }
  } restore{backend, cpu, saved, saved_cpu};
  backend.make_current();

  CmaeModel on_cpu(c, seed, cpu), on_device(c, seed, backend);
  const std::vector<float> init_cpu = download(on_cpu.params()), init_device = download(on_device.params());
  if (std::memcmp(init_cpu.data(), init_device.data(), init_cpu.size() * sizeof(float)) != 0)
    fail_case("initial parameters differ from the CPU's (the Philox init must be bit-identical)");
  const AdamWHyper hyper{1e-3, 0.9, 0.95, 1e-8, 0.05, 0};
  AdamW opt_cpu(on_cpu, hyper), opt_device(on_device, hyper);
  std::ostringstream summary;
  double worst_loss = 0;
  for (int step = 0; step < k.steps; ++step) {
    const Batch host = make_batch(c, k.batch, 100 + static_cast<uint64_t>(step), cpu);
    const Batch dev = make_batch(c, k.batch, 100 + static_cast<uint64_t>(step), backend);
    const LossResult a = on_cpu.loss_and_grad(host.images, &host.targets, &host.noise, {});
    const LossResult b = on_device.loss_and_grad(dev.images, &dev.targets, &dev.noise, {});
    for (const auto& [name, x, y] : {std::tuple{"loss", a.total, b.total}, std::tuple{"reconstruction", a.reconstruction, b.reconstruction},
                                     std::tuple{"contrastive", a.contrastive, b.contrastive}, std::tuple{"dense", a.dense, b.dense}}) {
      const double rel = std::fabs(y - x) / std::max(std::fabs(x), 1e-30);
      worst_loss = std::max(worst_loss, x == 0 && y == 0 ? 0.0 : rel);
      if (!(rel <= k.loss_rtol || (x == 0 && y == 0)))
        fail_case("step ", step + 1, " ", name, " ", y, ", the CPU's ", x, ": relative difference ", rel, " > ", k.loss_rtol);
    }
    if (step == 0) {
      const std::vector<float> g_cpu = download(on_cpu.grads()), g_dev = download(on_device.grads());
      const double scale = max_abs(g_cpu, 0, static_cast<int64_t>(g_cpu.size()));
      compare_arena("gradient", on_cpu.table(), g_dev, g_cpu, static_cast<int64_t>(g_cpu.size()), 1e-3, [&](const model::ParamInfo& p) {
        return 1e-5 * scale + 1e-3 * max_abs(g_cpu, p.offset, p.offset + p.numel);
      });
    }
    opt_cpu.step(on_cpu, hyper.lr, step + 1);
    opt_device.step(on_device, hyper.lr, step + 1);
    if (c.has_momentum()) on_cpu.update_momentum(0.99), on_device.update_momentum(0.99);
  }
  // AdamW normalises each update: elements whose gradient is float32 round-off may move ±lr per
  // step on either side, so parameters are compared to 3·lr per step plus 1e-4 relative.
  const std::vector<float> p_cpu = download(on_cpu.params()), p_dev = download(on_device.params());
  compare_arena("parameter", on_cpu.table(), p_dev, p_cpu, static_cast<int64_t>(p_cpu.size()), 1e-4,
                [&](const model::ParamInfo&) { return 3 * hyper.lr * k.steps; });
  summary << k.steps << " steps on " << backend.name() << ": worst loss difference " << worst_loss
          << " relative; step-1 gradients and final parameters within tolerance";
  return summary.str();
}

// Kernel timing (Backend::set_kernel_timing) on one micro step: every launch is counted under
// its kernel's name with a non-negative time, and switching it off stops the record.
std::string check_kernel_timing(Backend& backend) {
  backend.make_current();
  const ModelConfig c = preset("micro", Mode::CMAE);
  CmaeModel m(c, 3, backend);
  const Batch batch = make_batch(c, 4, 9, backend);
  m.loss_and_grad(batch.images, &batch.targets, &batch.noise, {});  // planning happens outside the timed step
  backend.set_kernel_timing(true);
  m.loss_and_grad(batch.images, &batch.targets, &batch.noise, {});
  const std::vector<KernelTime> times = backend.take_kernel_times();
  backend.set_kernel_timing(false);
  int64_t launches = 0;
  for (const KernelTime& k : times) {
    if (k.name.empty() || k.launches <= 0 || !(k.seconds >= 0)) fail_case("a bad entry: '", k.name, "' ", k.launches, " launches, ", k.seconds, " s");
    launches += k.launches;
  }
  if (times.size() < 10) fail_case("only ", times.size(), " distinct kernels timed in a CMAE step");
  for (size_t i = 1; i < times.size(); ++i)
    if (times[i].seconds > times[i - 1].seconds) fail_case("not sorted by time at ", times[i].name);
  m.loss_and_grad(batch.images, &batch.targets, &batch.noise, {});
  if (!backend.take_kernel_times().empty()) fail_case("launches were still timed after set_kernel_timing(false)");
  return std::to_string(times.size()) + " kernels, " + std::to_string(launches) + " launches; the largest: " + times[0].name;
}

// ---- the bench ----------------------------------------------------------------------------------

constexpr size_t kTopKernels = 15;  // kernels listed per benchmarked configuration

struct Peaks {
  std::map<std::string, double> tflops{{"fp32", 67}, {"tf32", 400}, {"bf16", 790}};  // H200 figures, dense
};

void run_bench(Backend& backend, const std::string& label, const std::vector<std::pair<std::string, int64_t>>& configs, int steps,
               const Peaks& peaks) {
  backend.make_current();
  for (const auto& [name, B] : configs)
    for (Mode mode : {Mode::CMAE, Mode::MAE})
      for (MatmulPrecision precision : {MatmulPrecision::FP32, MatmulPrecision::TF32, MatmulPrecision::BF16}) {
        const std::string prec = matmul_precision_name(precision);
        const std::string what = label + " " + name + " " + mode_name(mode) + " B=" + std::to_string(B) + " " + prec;
        try {
          backend.set_matmul_precision(precision);
          const ModelConfig c = preset(name, mode);
          CmaeModel m(c, 1, backend);
          AdamW opt(m, AdamWHyper{1e-4, 0.9, 0.95, 1e-8, 0.05, 0});
          const Batch batch = make_batch(c, B, 5, backend);
          const auto step = [&](int64_t i) {
            m.loss_and_grad(batch.images, &batch.targets, nullptr, {});  // reads back the two loss scalars
            opt.step(m, 1e-4, i);
            if (mode == Mode::CMAE) m.update_momentum(0.996);
          };
          for (int i = 1; i <= 2; ++i) step(i);  // warm-up: planning, first-touch, caches
          backend.synchronize();
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < steps; ++i) step(3 + i);
          backend.synchronize();
          const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
          const double tflops = train_step_flops(c, B) / seconds / 1e12;
          const double peak = peaks.tflops.count(prec) ? peaks.tflops.at(prec) : 0;
          std::printf("{\"bench\": \"%s\", \"ms_per_step\": %.3f, \"images_per_s\": %.1f, \"model_tflops\": %.2f, \"mfu\": %.4f, \"peak_tflops\": %.0f}\n",
                      testing::json_escape(what).c_str(), seconds * 1e3, static_cast<double>(B) / seconds, tflops,
                      peak > 0 ? tflops / peak : 0.0, peak);
          // One more step with every kernel timed on the device (events around each launch):
          // where the step's time goes, against the bounds each cuda/<family>.cu states.
          backend.set_kernel_timing(true);
          step(3 + steps);
          const std::vector<KernelTime> kernels = backend.take_kernel_times();
          backend.set_kernel_timing(false);
          double total = 0;
          for (const KernelTime& k : kernels) total += k.seconds;
          for (size_t i = 0; i < kernels.size() && i < kTopKernels; ++i)
            std::printf("{\"kernel\": \"%s\", \"in\": \"%s\", \"launches\": %lld, \"ms\": %.3f, \"share\": %.3f}\n",
                        testing::json_escape(kernels[i].name).c_str(), testing::json_escape(what).c_str(),
                        static_cast<long long>(kernels[i].launches), kernels[i].seconds * 1e3, total > 0 ? kernels[i].seconds / total : 0.0);
        } catch (const std::exception& e) {
          std::printf("{\"bench\": \"%s\", \"error\": \"%s\"}\n", testing::json_escape(what).c_str(), testing::json_escape(e.what()).c_str());
        }
        std::fflush(stdout);
      }
}

// ---- backends -----------------------------------------------------------------------------------

struct Device {
  std::string name;
  Backend* backend;
  bool emulated;
};

std::vector<Device> devices() {
  std::vector<Device> out;
#ifdef CMAE_WITH_CUDA
  std::string status;
  for (int i = 0, n = cuda_device_count(&status); i < n; ++i) out.push_back({"cuda:" + std::to_string(i), &cuda_device_backend(i), false});
#endif
#ifdef CMAE_WITH_CUDA_EMULATION
  out.push_back({"cuda-emulated", &cuda_emulated_backend(), true});
#endif
  return out;
}

void print_presets() {
  std::printf("{");
  const char* sep = "";
  for (const char* name : {"micro", "tiny", "small", "base"}) {
    const ModelConfig c = preset(name, Mode::CMAE);
    std::printf(
        "%s\"%s\": {\"imageSize\": %lld, \"channels\": %lld, \"patchSize\": %lld, \"dim\": %lld, \"depth\": %lld, \"heads\": %lld, "
        "\"mlpRatio\": %lld, \"decoderDim\": %lld, \"decoderDepth\": %lld, \"decoderHeads\": %lld, \"featureDecoderDim\": %lld, "
        "\"featureDecoderDepth\": %lld, \"featureDecoderHeads\": %lld, \"projectorHidden\": %lld, \"projectorDim\": %lld, "
        "\"maskRatio\": %g, \"maskGroup\": %lld, \"tau\": %g, \"ctWeight\": %g, \"rcWeight\": %g, \"normPixLoss\": %s, \"bnEps\": %g, "
        "\"bnMomentum\": %g}",
        sep, name, (long long)c.image_size, (long long)c.channels, (long long)c.patch_size, (long long)c.dim, (long long)c.depth,
        (long long)c.heads, (long long)c.mlp_ratio, (long long)c.decoder_dim, (long long)c.decoder_depth, (long long)c.decoder_heads,
        (long long)c.feature_decoder_dim, (long long)c.feature_decoder_depth, (long long)c.feature_decoder_heads,
        (long long)c.projector_hidden, (long long)c.projector_dim, c.mask_ratio, (long long)c.mask_group, c.tau, c.ct_weight,
        c.rc_weight, c.norm_pix_loss ? "true" : "false", c.bn_eps, c.bn_momentum);
    sep = ", ";
  }
  std::printf("}\n");
}

void print_flops() {
  std::printf("{");
  const char* sep = "";
  for (const char* name : {"micro", "tiny", "small", "base"})
    for (Mode mode : {Mode::CMAE, Mode::MAE}) {
      std::printf("%s\"%s %s\": %.0f", sep, name, mode_name(mode), train_step_flops(preset(name, mode), 64) / 64);
      sep = ", ";
    }
  std::printf("}\n");
}

}  // namespace
}  // namespace cmae::model_check

int main(int argc, char** argv) {
  using namespace cmae::model_check;
  bool bench = false, bench_cpu = false;
  int steps = 10;
  Peaks peaks;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--print-presets") return print_presets(), 0;
    if (a == "--print-flops") return print_flops(), 0;
    if (a == "--bench") bench = true;
    if (a == "--bench-cpu") bench = bench_cpu = true;
    if (a == "--steps" && i + 1 < argc) steps = std::max(1, std::atoi(argv[++i]));
    if (a == "--peak-tflops" && i + 1 < argc) {  // fp32=67,tf32=400,bf16=790
      std::stringstream list(argv[++i]);
      std::string item;
      while (std::getline(list, item, ','))
        if (const size_t eq = item.find('='); eq != std::string::npos) peaks.tflops[item.substr(0, eq)] = std::atof(item.c_str() + eq + 1);
    }
  }
  if (bench) {
    // The sizes the method is run at on a GPU; the CPU (--bench-cpu) times tiny only.
    const std::vector<std::pair<std::string, int64_t>> gpu{{"tiny", 64}, {"tiny", 256}, {"base", 64}, {"base", 256}};
    for (const Device& d : devices())
      if (!d.emulated) run_bench(*d.backend, d.name, gpu, steps, peaks);
    if (bench_cpu) run_bench(cmae::cpu_backend(), "cpu", {{"tiny", 64}}, steps, peaks);
    return 0;
  }
  cmae::testing::Suite suite;
  for (const Device& d : devices()) {
    // micro in every method everywhere; tiny where kernels run at GPU speed (the emulator runs every
    // CUDA thread on the host: tiny would take minutes there).
    using cmae::model::Mode;
    const Mode modes[] = {Mode::CMAE, Mode::MAE, Mode::MOCOV3, Mode::MASKDISTILL, Mode::SIMCLR, Mode::DENSECL};
    std::vector<CheckCase> cases;
    for (Mode mode : modes) cases.push_back({"micro", mode, 8, 3, 1e-5});
    cases.push_back({"micro", Mode::MAE, 8, 3, 1e-5, 0.25});  // the second masking pass and its loss mask
    if (!d.emulated) {
      for (Mode mode : modes) cases.push_back({"tiny", mode, 32, 3, 1e-4});
    }
    cmae::Backend* timed = d.backend;
    suite.add(d.name + "/kernel timing of a micro CMAE step", [timed] { return check_kernel_timing(*timed); });
    for (const CheckCase& k : cases) {
      const std::string name = d.name + "/" + k.preset + " " + mode_name(k.mode) + (k.throw_ratio > 0 ? " throwRatio=0.25" : "") +
                               " B=" + std::to_string(k.batch) + " vs cpu";
      cmae::Backend* backend = d.backend;
      suite.add(name, [backend, k] { return run_check(*backend, k); });
    }
  }
  return suite.run(argc, argv);
}
