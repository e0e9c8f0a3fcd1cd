// Export table of cmae.node (sharp's sharp.cc style): only registration lives here.
#include <napi.h>

#include "collective_wrap.h"
#include "common.h"
#include "devices.h"
#include "info.h"
#include "kernels.h"
#include "model_wrap.h"
#include "tensor_wrap.h"

namespace cmae::napi {

static Napi::Value SetErrorClasses(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw MakeJsError(info.Env(), cmae::ErrorKind::Value, "error classes must be an object");
  GetAddonData(info.Env()).error_classes = Napi::Persistent(info[0].As<Napi::Object>());
  return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  RegisterCudaProvider();
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);

  Napi::Function tensor_class = TensorWrap::Init(env);
  data->tensor_constructor = Napi::Persistent(tensor_class);
  exports.Set("NativeTensor", tensor_class);
  CMAE_EXPORT(exports, "setErrorClasses", SetErrorClasses);
  RegisterTensorFactories(env, exports);
  RegisterInfo(env, exports);
  RegisterModel(env, exports);
  RegisterOptimizer(env, exports);
  RegisterCollective(env, exports);

  Napi::Object kernels = Napi::Object::New(env);
  RegisterActivationKernels(env, kernels);
  RegisterLinearKernels(env, kernels);
  RegisterNormKernels(env, kernels);
  RegisterAttentionKernels(env, kernels);
  RegisterPatchKernels(env, kernels);
  RegisterLossKernels(env, kernels);
  RegisterOptimKernels(env, kernels);
  RegisterRngKernels(env, kernels);
  RegisterDataKernels(env, kernels);
  exports.Set("kernels", kernels);
  return exports;
}

}  // namespace cmae::napi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return cmae::napi::Init(env, exports); }
NODE_API_MODULE(cmae_addon, InitAddon)
