#include "common.h"
#include "kernels.h"

namespace cmae::napi {

void RegisterAttentionKernels(Napi::Env env, Napi::Object kernels) {}

}  // namespace cmae::napi
