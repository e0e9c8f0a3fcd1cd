// The entry points of the CUDA backend for the rest of cmae, in plain C++ (no CUDA header, no
// emulator): include this ("cuda/cuda_api.h"), not cuda_backend.h, outside cuda/.
#pragma once
#include <string>

#include "backend/backend.h"

namespace cmae {

// The backend of CUDA device `index` (created on first use, kept for the process). Defined by the
// nvcc build (cmae_cuda); throws ErrorKind::Device when there is no such device, with the reason.
Backend& cuda_device_backend(int index);
// Number of CUDA devices; `status` says which, or why there are none. Never throws. (nvcc build)
int cuda_device_count(std::string* status);
// The emulated CUDA backend (the SIMT emulator: kernels run on the host, memory is host memory).
// Defined by the emulated build (cmae_cuda_emu), which only test programs link.
Backend& cuda_emulated_backend();

// Each build as a CudaProvider (backend/backend.h), for set_cuda_provider.
const CudaProvider& cuda_gpu_provider();        // nvcc build
const CudaProvider& cuda_emulated_provider();   // emulated build

}  // namespace cmae
