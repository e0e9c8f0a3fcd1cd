// Host-side query of the CUDA runtime, compiled into cmae_cuda. Never throws: a machine without a
// driver or device reports 0 devices and the reason.
#pragma once
#include <string>

namespace cmae::cuda {
int device_count(std::string* status);
}
