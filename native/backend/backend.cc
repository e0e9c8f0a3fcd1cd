// Which backend serves a device, and the names of the settings backends share. The CPU backend
// always exists; a CUDA backend exists when the build compiled cuda/ (CMAE_WITH_CUDA) and a device
// is present.
#include "backend/backend.h"

#ifdef CMAE_WITH_CUDA
#include "cuda/cuda_api.h"
#endif

namespace cmae {

Backend& backend_for(Device device) {
  if (device == Device::CPU) return cpu_backend();
#ifdef CMAE_WITH_CUDA
  return cuda_device_backend(0);
#else
  fail(ErrorKind::Device,
       "device 'cuda' is not available in this build of cmae: it was built without nvcc or with CMAE_CUDA=OFF (see cmae.info())");
#endif
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
