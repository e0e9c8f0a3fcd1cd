// Which backend serves a device, and the names of the settings backends share. The CPU backend
// always exists; CUDA backends come from the provider the program registered (backend.h).
#include <atomic>

#include "backend/backend.h"

namespace cmae {

namespace {
std::atomic<const CudaProvider*> g_cuda_provider{nullptr};
}

void set_cuda_provider(const CudaProvider* provider) { g_cuda_provider.store(provider); }

const CudaProvider* cuda_provider() { return g_cuda_provider.load(); }

Backend& backend_for(Device device, int index) {
  if (device == Device::CPU) {
    CMAE_CHECK(index == 0, Device, "there is one cpu device, 'cpu'; asked for cpu:", index);
    return cpu_backend();
  }
  const CudaProvider* provider = cuda_provider();
  CMAE_CHECK(provider != nullptr, Device,
             "device 'cuda' is not available in this build of cmae: it was built without nvcc or with CMAE_CUDA=OFF (see cmae.info())");
  return provider->backend(index);
}

const char* matmul_precision_name(MatmulPrecision precision) {
  switch (precision) {
    case MatmulPrecision::FP32: return "fp32";
    case MatmulPrecision::BF16: return "bf16";
    case MatmulPrecision::TF32: return "tf32";
  }
  return "fp32";
}

MatmulPrecision parse_matmul_precision(const std::string& name) {
  if (name == "fp32") return MatmulPrecision::FP32;
  if (name == "bf16") return MatmulPrecision::BF16;
  if (name == "tf32") return MatmulPrecision::TF32;
  fail(ErrorKind::Value, "unknown matmul precision '", name, "' (expected 'fp32', 'bf16' or 'tf32')");
}

}  // namespace cmae
