#include "info.h"

#include "common.h"
#include "core/cpu_features.h"
#include "core/threads.h"
#include "backend/backend.h"
#include "devices.h"

#ifndef CMAE_BUILD_TYPE
#define CMAE_BUILD_TYPE "Release"
#endif
#ifndef CMAE_BUILD_SYSTEM
#define CMAE_BUILD_SYSTEM "unknown"
#endif

namespace cmae::napi {

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("buildType", CMAE_BUILD_TYPE);
  out.Set("buildSystem", CMAE_BUILD_SYSTEM);
  out.Set("compiler", __VERSION__);
  out.Set("napiVersion", NAPI_VERSION);
  out.Set("isa", cmae::isa_name(cmae::current_isa()));
  out.Set("bestIsa", cmae::isa_name(cmae::best_supported_isa()));
  out.Set("matmulPrecision", cmae::matmul_precision_name(cmae::cpu_backend().matmul_precision()));
  out.Set("bf16", cmae::cpu_supports_avx512_bf16());
  out.Set("openmp", cmae::openmp_enabled());
  out.Set("threads", cmae::num_threads());
  out.Set("defaultThreads", cmae::default_num_threads());
  out.Set("cuda", CudaInfo(env));
  return out;
}

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const int64_t n = IntArg(info, 0, "threads");
  CMAE_CHECK(n >= 0 && n <= 1024, Value, "threads must be between 0 (default) and 1024, got ", n);
  cmae::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cmae::num_threads()); }

static Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  cmae::set_isa(cmae::parse_isa(StringArg(info, 0, "isa").c_str()));
  return info.Env().Undefined();
}

static Napi::Value GetIsa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cmae::isa_name(cmae::current_isa()));
}

static Napi::Value SupportedIsas(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (cmae::Isa isa : {cmae::Isa::Portable, cmae::Isa::AVX2, cmae::Isa::AVX512}) {
    if (cmae::cpu_supports(isa)) out.Set(i++, cmae::isa_name(isa));
  }
  return out;
}

// setMatmulPrecision(precision, device = 'cpu'): the matmul precision of a device's backend
// (ops/linear.h MatmulPrecision); getMatmulPrecision(device = 'cpu').
static cmae::Backend& DeviceArg(const Napi::CallbackInfo& info, size_t index) {
  return info[index].IsUndefined() ? cmae::cpu_backend() : BackendForSpec(StringArg(info, index, "device"));
}

static Napi::Value SetMatmulPrecision(const Napi::CallbackInfo& info) {
  const cmae::MatmulPrecision precision = cmae::parse_matmul_precision(StringArg(info, 0, "precision"));
  cmae::Backend& backend = DeviceArg(info, 1);
  TakeExclusiveUse(backend);  // not while a job on that device reads it
  backend.set_matmul_precision(precision);
  return info.Env().Undefined();
}

static Napi::Value GetMatmulPrecision(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cmae::matmul_precision_name(DeviceArg(info, 0).matmul_precision()));
}

// nativeMemory() → { reported, cpuAllocated, cpuScratch }: what cmae has told V8 it holds
// (AdjustExternalMemory's running total, which process.memoryUsage() does not show), and what the
// CPU backend holds (Backend::memory_use). For leak checks and bench/memory.mjs.
static Napi::Value NativeMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cmae::Backend::MemoryUse cpu = cmae::cpu_backend().memory_use();
  Napi::Object out = Napi::Object::New(env);
  out.Set("reported", static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(env, 0)));
  out.Set("cpuAllocated", static_cast<double>(cpu.allocated));
  out.Set("cpuScratch", static_cast<double>(cpu.scratch));
  return out;
}

void RegisterInfo(Napi::Env env, Napi::Object exports) {
  CMAE_EXPORT(exports, "nativeMemory", NativeMemory);
  CMAE_EXPORT(exports, "setMatmulPrecision", SetMatmulPrecision);
  CMAE_EXPORT(exports, "getMatmulPrecision", GetMatmulPrecision);
  CMAE_EXPORT(exports, "info", Info);
  CMAE_EXPORT(exports, "setNumThreads", SetNumThreads);
  CMAE_EXPORT(exports, "getNumThreads", GetNumThreads);
  CMAE_EXPORT(exports, "setIsa", SetIsa);
  CMAE_EXPORT(exports, "getIsa", GetIsa);
  CMAE_EXPORT(exports, "supportedIsas", SupportedIsas);
}

}  // namespace cmae::napi
