#include "cuda_probe.h"

#ifdef CMAE_WITH_CUDA
#include "cuda/cuda_api.h"
#endif

namespace cmae::napi {

CudaProbe probe_cuda() {
  CudaProbe probe;
#ifdef CMAE_WITH_CUDA
  probe.compiled = true;
  probe.device_count = cmae::cuda_device_count(&probe.status);
#else
  probe.status = "not compiled (built without nvcc or with CMAE_CUDA=OFF)";
#endif
  return probe;
}

}  // namespace cmae::napi
