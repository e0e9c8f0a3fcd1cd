#include "common.h"
#include "kernels.h"

namespace cmae::napi {

void RegisterNormKernels(Napi::Env env, Napi::Object kernels) {}

}  // namespace cmae::napi
