#include "common.h"
#include "kernels.h"

namespace cmae::napi {

void RegisterPatchKernels(Napi::Env env, Napi::Object kernels) {}

}  // namespace cmae::napi
