#pragma once
#include <napi.h>

namespace cmae::napi {
// info(), setNumThreads(n), getNumThreads(), setIsa(name), getIsa().
void RegisterInfo(Napi::Env env, Napi::Object exports);
}  // namespace cmae::napi
