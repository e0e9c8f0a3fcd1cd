#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "errors.h"

// The x86 paths and their detection (cpuid through the compiler's builtins) exist only on x86-64;
// elsewhere the portable path is all there is.
#if defined(__x86_64__) || defined(_M_X64)
#define CMAE_CPU_X86 1
#endif

namespace cmae {

namespace {
std::atomic<int> g_isa{-1};

// CMAE_MAX_ISA caps what the detection below reports, as if the CPU had less (like oneDNN's
// ONEDNN_MAX_CPU_ISA): "portable" hides AVX2 and everything above, "avx2" hides AVX-512 and its
// BF16, "avx512" hides BF16 only. One machine can then run, and test, what a lesser CPU runs; the
// tests report what it hides as skipped. Any other value caps nothing.
enum Level : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };
int max_level() {
  static const int level = [] {
    const char* env = std::getenv("CMAE_MAX_ISA");
    if (env && std::strcmp(env, "portable") == 0) return kPortable;
    if (env && std::strcmp(env, "avx2") == 0) return kAvx2;
    if (env && std::strcmp(env, "avx512") == 0) return kAvx512;
    return kAvx512Bf16;
  }();
  return level;
}

#if defined(CMAE_CPU_X86)
bool has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool has_avx512() {
  return has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
bool has_avx512_bf16() { return has_avx512() && __builtin_cpu_supports("avx512bf16"); }
#else
bool has_avx2_fma() { return false; }
bool has_avx512() { return false; }
bool has_avx512_bf16() { return false; }
#endif
}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Portable: return "portable";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
  }
  return "portable";
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::Portable: return true;
    case Isa::AVX2: return max_level() >= kAvx2 && has_avx2_fma();
    case Isa::AVX512: return max_level() >= kAvx512 && has_avx512();
  }
  return false;
}

bool cpu_supports_avx512_bf16() { return max_level() >= kAvx512Bf16 && has_avx512_bf16(); }

Isa best_supported_isa() {
  if (cpu_supports(Isa::AVX512)) return Isa::AVX512;
  if (cpu_supports(Isa::AVX2)) return Isa::AVX2;
  return Isa::Portable;
}

Isa parse_isa(const char* name) {
  if (std::strcmp(name, "portable") == 0) return Isa::Portable;
  if (std::strcmp(name, "avx2") == 0) return Isa::AVX2;
  if (std::strcmp(name, "avx512") == 0) return Isa::AVX512;
  fail(ErrorKind::Value, "unknown ISA '", name, "' (expected 'portable', 'avx2' or 'avx512')");
}

Isa current_isa() {
  int isa = g_isa.load(std::memory_order_relaxed);
  if (isa < 0) {
    Isa chosen = best_supported_isa();
    if (const char* env = std::getenv("CMAE_ISA")) {
      // An env var asking for a path the CPU lacks falls back to what it has rather than crash;
      // one asking for less than the CPU has is taken.
      if (std::strcmp(env, "portable") == 0) chosen = Isa::Portable;
      if (std::strcmp(env, "avx2") == 0 && cpu_supports(Isa::AVX2)) chosen = Isa::AVX2;
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
