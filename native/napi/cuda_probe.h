#pragma once
#include <string>

namespace cmae::napi {
struct CudaProbe {
  bool compiled = false;
  int device_count = 0;
  std::string status;  // human-readable: "not compiled", "no CUDA device", "2 devices", driver errors
};
CudaProbe probe_cuda();
}  // namespace cmae::napi
