#include <cuda_runtime.h>

#include "cuda_runtime_probe.h"

namespace cmae::cuda {

int device_count(std::string* status) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    *status = std::string("no CUDA device (") + cudaGetErrorString(err) + ")";
    return 0;
  }
  *status = count == 1 ? "1 device" : std::to_string(count) + " devices";
  return count;
}

}  // namespace cmae::cuda
