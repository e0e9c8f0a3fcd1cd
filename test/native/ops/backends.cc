// The backends under test (see harness.h, "Backends under test"). Each line here makes every case
// of the table run on one more backend.
#include <cstdlib>
#include <memory>
#include <string>

#include "core/cpu_features.h"
#include "core/threads.h"
#include "harness.h"
#if defined(CMAE_WITH_CUDA) || defined(CMAE_WITH_CUDA_EMULATION)
#include "cuda/cuda_api.h"
#endif
#ifdef CMAE_WITH_CUDA_EMULATION
#include "emu/emu.h"
#endif

namespace cmae::op_tests {

namespace {

// The CPU backend with one SIMD path and one matmul precision. Settings are process-wide, so setup
// saves what was there and restore puts it back.
// `unavailable`: the CPU feature this machine lacks for it (its cases are then reported skipped).
void register_cpu(Isa isa, MatmulPrecision precision, bool matmul_cases_only, std::string unavailable) {
  struct Saved {
    Isa isa = Isa::Portable;
    MatmulPrecision precision = MatmulPrecision::FP32;
  };
  auto saved = std::make_shared<Saved>();
  std::string name = std::string("cpu-") + isa_name(isa);
  if (precision != MatmulPrecision::FP32) name += std::string("-") + matmul_precision_name(precision);
  BackendUnderTest b;
  b.name = name;
  b.setup = [saved, isa, precision]() -> Backend& {
    Backend& cpu = cpu_backend();
    saved->isa = current_isa();
    saved->precision = cpu.matmul_precision();
    set_isa(isa);
    cpu.set_matmul_precision(precision);
    return cpu;
  };
  b.restore = [saved] {
    set_isa(saved->isa);
    cpu_backend().set_matmul_precision(saved->precision);
  };
  b.matmul_precision = precision;
  b.matmul_cases_only = matmul_cases_only;
  // 3 on a 2-core machine still splits the work differently from 2 (and oversubscribes).
  b.thread_counts = {1, 2, 3};
  b.set_threads = [](int n) { set_num_threads(n); };
  b.unavailable = std::move(unavailable);
  register_backend_under_test(std::move(b));
}

#if defined(__x86_64__) || defined(_M_X64)
// Why the CPU cannot run a path ("" when it can); CMAE_MAX_ISA may hide what it has (core/cpu_features.h).
std::string missing(bool supported, const char* feature) {
  if (supported) return "";
  const char* cap = std::getenv("CMAE_MAX_ISA");
  return std::string(feature) + " is missing on this CPU" + (cap ? std::string(" or hidden by CMAE_MAX_ISA=") + cap : std::string());
}
#endif

// A CUDA backend at one matmul precision (set in setup, restored after). `variant` names it.
void register_cuda(const std::string& name, std::function<Backend&()> backend, MatmulPrecision precision, bool matmul_cases_only,
                   std::function<void()> enter = nullptr, std::function<void()> leave = nullptr) {
  auto saved = std::make_shared<MatmulPrecision>(MatmulPrecision::FP32);
  BackendUnderTest b;
  b.name = name;
  b.setup = [saved, backend, precision, enter]() -> Backend& {
    Backend& cuda = backend();
    *saved = cuda.matmul_precision();
    cuda.set_matmul_precision(precision);
    if (enter) enter();
    return cuda;
  };
  b.restore = [saved, backend, leave] {
    if (leave) leave();
    backend().set_matmul_precision(*saved);
  };
  b.matmul_precision = precision;
  b.matmul_cases_only = matmul_cases_only;
  register_backend_under_test(std::move(b));
}

#ifdef CMAE_WITH_CUDA_EMULATION
// The emulated CUDA backend under one schedule order of the SIMT emulator: a missing barrier or
// warp synchronisation shows only under some orders, so every case runs under three.
void register_cuda_emulated(emu::Schedule schedule, MatmulPrecision precision, bool matmul_cases_only) {
  auto scope = std::make_shared<std::unique_ptr<emu::ScheduleScope>>();
  std::string name = std::string("cuda-emu-") + emu::schedule_name(schedule);
  if (precision != MatmulPrecision::FP32) name += std::string("-") + matmul_precision_name(precision);
  register_cuda(
      name, [] () -> Backend& { return cuda_emulated_backend(); }, precision, matmul_cases_only,
      [scope, schedule] { *scope = std::make_unique<emu::ScheduleScope>(schedule, /*seed=*/7); }, [scope] { scope->reset(); });
}
#endif

}  // namespace

void register_backends() {
  // Every CPU path of this architecture is registered; those this CPU lacks report their cases as
  // skipped. The portable path runs everywhere (on x86-64 forced by set_isa, as CMAE_ISA=portable).
  register_cpu(Isa::Portable, MatmulPrecision::FP32, /*matmul_cases_only=*/false, "");
#if defined(__x86_64__) || defined(_M_X64)
  register_cpu(Isa::AVX2, MatmulPrecision::FP32, /*matmul_cases_only=*/false, missing(cpu_supports(Isa::AVX2), "AVX2 + FMA"));
  register_cpu(Isa::AVX512, MatmulPrecision::FP32, /*matmul_cases_only=*/false,
               missing(cpu_supports(Isa::AVX512), "AVX-512 (F, BW, DQ, VL)"));
  register_cpu(Isa::AVX512, MatmulPrecision::BF16, /*matmul_cases_only=*/true, missing(cpu_supports_avx512_bf16(), "AVX512_BF16"));
#endif

  // The CUDA backend (cuda/cuda_api.h): FP32 products, plus its tensor-core precisions on the
  // matmul cases. A GPU's default is TF32, so setup selects each precision explicitly.
#ifdef CMAE_WITH_CUDA
  if (cuda_device_count(nullptr) > 0) {
    const auto gpu = []() -> Backend& { return cuda_device_backend(0); };
    register_cuda("cuda", gpu, MatmulPrecision::FP32, /*matmul_cases_only=*/false);
    register_cuda("cuda-tf32", gpu, MatmulPrecision::TF32, /*matmul_cases_only=*/true);
    register_cuda("cuda-bf16", gpu, MatmulPrecision::BF16, /*matmul_cases_only=*/true);
  }
#endif
  // The same kernel source on the SIMT emulator, under each schedule order.
#ifdef CMAE_WITH_CUDA_EMULATION
  for (emu::Schedule schedule : {emu::Schedule::Forward, emu::Schedule::Reverse, emu::Schedule::Shuffle})
    register_cuda_emulated(schedule, MatmulPrecision::FP32, /*matmul_cases_only=*/false);
  register_cuda_emulated(emu::Schedule::Forward, MatmulPrecision::TF32, /*matmul_cases_only=*/true);
  register_cuda_emulated(emu::Schedule::Forward, MatmulPrecision::BF16, /*matmul_cases_only=*/true);
#endif
}

}  // namespace cmae::op_tests
