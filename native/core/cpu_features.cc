#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "errors.h"

namespace cmae {

namespace {
std::atomic<int> g_isa{-1};

// CMAE_MAX_ISA caps what the detection below reports, as if the CPU had less (like oneDNN's
// ONEDNN_MAX_CPU_ISA): "avx2" hides AVX-512 and its BF16, "avx512" hides BF16 only. One machine
// can then run, and test, what a lesser CPU runs; the tests report what it hides as skipped.
// Any other value caps nothing.
enum Level : int { kAvx2 = 0, kAvx512 = 1, kAvx512Bf16 = 2 };
int max_level() {
  static const int level = [] {
    const char* env = std::getenv("CMAE_MAX_ISA");
    if (env && std::strcmp(env, "avx2") == 0) return kAvx2;
    if (env && std::strcmp(env, "avx512") == 0) return kAvx512;
    return kAvx512Bf16;
  }();
  return level;
}
}  // namespace

const char* isa_name(Isa isa) { return isa == Isa::AVX512 ? "avx512" : "avx2"; }

bool cpu_supports(Isa isa) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::AVX2) return avx2;
  return max_level() >= kAvx512 && avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

bool cpu_supports_avx512_bf16() {
  __builtin_cpu_init();
  return max_level() >= kAvx512Bf16 && cpu_supports(Isa::AVX512) && __builtin_cpu_supports("avx512bf16");
}

Isa best_supported_isa() { return cpu_supports(Isa::AVX512) ? Isa::AVX512 : Isa::AVX2; }

Isa parse_isa(const char* name) {
  if (std::strcmp(name, "avx2") == 0) return Isa::AVX2;
  if (std::strcmp(name, "avx512") == 0) return Isa::AVX512;
  fail(ErrorKind::Value, "unknown ISA '", name, "' (expected 'avx2' or 'avx512')");
}

Isa current_isa() {
  int isa = g_isa.load(std::memory_order_relaxed);
  if (isa < 0) {
    Isa chosen = best_supported_isa();
    if (const char* env = std::getenv("CMAE_ISA")) {
      // An env var asking for a path the CPU lacks falls back to what it has rather than crash.
      if (std::strcmp(env, "avx2") == 0) chosen = Isa::AVX2;
    }
    isa = static_cast<int>(chosen);
    g_isa.store(isa, std::memory_order_relaxed);
  }
  return static_cast<Isa>(isa);
}

void set_isa(Isa isa) {
  CMAE_CHECK(cpu_supports(isa), Value, "this CPU does not support the ", isa_name(isa), " path");
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace cmae
