// The backends under test (see harness.h, "Backends under test"). Each line here makes every case
// of the table run on one more backend.
#include <memory>

#include "core/cpu_features.h"
#include "core/threads.h"
#include "harness.h"

namespace cmae::op_tests {

namespace {

// The CPU backend with one SIMD path and one matmul precision. Settings are process-wide, so setup
// saves what was there and restore puts it back.
void register_cpu(Isa isa, MatmulPrecision precision, bool matmul_cases_only) {
  struct Saved {
    Isa isa = Isa::AVX2;
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
  register_backend_under_test(std::move(b));
}

}  // namespace

void register_backends() {
  for (Isa isa : {Isa::AVX2, Isa::AVX512})
    if (cpu_supports(isa)) register_cpu(isa, MatmulPrecision::FP32, /*matmul_cases_only=*/false);
  if (cpu_supports_avx512_bf16()) register_cpu(Isa::AVX512, MatmulPrecision::BF16, /*matmul_cases_only=*/true);

  // The CUDA backend (cuda/cuda_api.h) and its emulation register here once their ops exist (they
  // throw "not implemented" today), one line each; setup selects FP32 products (a GPU's default is
  // TF32), and a TF32 variant is a second line with .matmul_precision = TF32 and
  // .matmul_cases_only = true. With a device present:
  //   #ifdef CMAE_WITH_CUDA
  //   if (cuda_device_count(nullptr) > 0) register_backend_under_test({"cuda", ...setup: cuda_device_backend(0)...});
  //   #endif
  //   #ifdef CMAE_WITH_CUDA_EMULATION
  //   register_backend_under_test({"cuda-emulated", ...setup: cuda_emulated_backend()...});
  //   #endif
}

}  // namespace cmae::op_tests
