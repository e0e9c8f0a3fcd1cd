#include "devices.h"

#include <cstdlib>

#if defined(CMAE_CUDA_EMULATED_ADDON) || defined(CMAE_WITH_CUDA)
#include "cuda/cuda_api.h"
#endif

namespace cmae::napi {

void RegisterCudaProvider() {
#if defined(CMAE_CUDA_EMULATED_ADDON)
  cmae::set_cuda_provider(&cmae::cuda_emulated_provider());
#elif defined(CMAE_WITH_CUDA)
  cmae::set_cuda_provider(&cmae::cuda_gpu_provider());
#endif
}

DeviceSpec ParseDeviceSpec(const std::string& spec) {
  if (spec == "cpu") return {cmae::Device::CPU, 0};
  if (spec == "cuda") return {cmae::Device::CUDA, 0};
  if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5 && spec.size() <= 8) {
    char* end = nullptr;
    const long index = std::strtol(spec.c_str() + 5, &end, 10);
    if (*end == '\0' && index >= 0 && spec[5] != '+' && spec[5] != '-') return {cmae::Device::CUDA, static_cast<int>(index)};
  }
  cmae::fail(cmae::ErrorKind::Device, "unknown device '", spec, "' (expected 'cpu', 'cuda' or 'cuda:N')");
}

std::string DeviceName(const cmae::Backend& backend) {
  if (backend.device() == cmae::Device::CPU) return "cpu";
  // A CUDA backend's name is "cuda:N (...)" or "cuda (emulated)": the emulator is cuda:0.
  const std::string name = backend.name();
  const size_t end = name.find(' ');
  const std::string head = name.substr(0, end);
  return head == "cuda" ? "cuda:0" : head;
}

cmae::Backend& BackendForSpec(const std::string& spec) {
  const DeviceSpec d = ParseDeviceSpec(spec);
  cmae::Backend& backend = cmae::backend_for(d.device, d.index);
  backend.make_current();
  return backend;
}

Napi::Object CudaInfo(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  const cmae::CudaProvider* provider = cmae::cuda_provider();
  out.Set("compiled", provider != nullptr);
  out.Set("build", provider ? Napi::Value(Napi::String::New(env, provider->build)) : env.Null());
  Napi::Array devices = Napi::Array::New(env);
  if (!provider) {
    out.Set("status", "not compiled (built without nvcc or with CMAE_CUDA=OFF)");
  } else {
    std::string status;
    const int count = provider->device_count(&status);
    out.Set("status", status);
    for (int i = 0; i < count; ++i) {
      const cmae::CudaDeviceInfo d = provider->describe(i);
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", i);
      o.Set("name", d.name);
      o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
      o.Set("multiprocessors", d.multiprocessors);
      o.Set("memoryBytes", static_cast<double>(d.memory_bytes));
      devices.Set(static_cast<uint32_t>(i), o);
    }
  }
  out.Set("devices", devices);
  return out;
}

}  // namespace cmae::napi
