// Devices as the JS side names them ('cpu', 'cuda', 'cuda:N'), and which CUDA build this addon
// carries: the nvcc one (CMAE_WITH_CUDA), the SIMT emulator's (CMAE_CUDA_EMULATED_ADDON, a test
// build of the addon), or none.
#pragma once
#include <napi.h>

#include <string>

#include "backend/backend.h"

namespace cmae::napi {

// Registers this addon's CUDA provider, if it has one (backend.h set_cuda_provider). Once, at load.
void RegisterCudaProvider();

struct DeviceSpec {
  cmae::Device device = cmae::Device::CPU;
  int index = 0;
};
// 'cpu' | 'cuda' | 'cuda:N'; throws ErrorKind::Device naming what came.
DeviceSpec ParseDeviceSpec(const std::string& spec);
// The JS name of a backend's device: 'cpu', 'cuda:0'.
std::string DeviceName(const cmae::Backend& backend);
// backend_for(ParseDeviceSpec(spec)), made current on the calling thread.
cmae::Backend& BackendForSpec(const std::string& spec);

// info().cuda: { compiled, build, status, devices: [{ index, name, computeCapability, multiprocessors, memoryBytes }] }.
Napi::Object CudaInfo(Napi::Env env);

}  // namespace cmae::napi
