#pragma once
#include <napi.h>

namespace cmae::napi {
// NativeModel: the CmaeModel handle (native/napi/model_wrap.cc).
void RegisterModel(Napi::Env env, Napi::Object exports);
}  // namespace cmae::napi
