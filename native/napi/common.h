// Shared plumbing for the Node-API bindings (the only place napi.h is included).
//  - CMAE_EXPORT(exports, "name", Fn): registers a binding whose C++ exceptions become typed JS
//    errors (cmae::Error kind → ShapeError/DTypeError/... classes handed over by src/errors.ts).
//  - Arg readers (TensorArg, IntArg, ...) check the JS argument and name it in the message.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/tensor.h"

namespace cmae::napi {

// Per-environment state (no statics: the addon is context-aware and works in worker threads).
struct AddonData {
  Napi::FunctionReference tensor_constructor;
  Napi::ObjectReference error_classes;  // { ShapeError: class, ... } from src/errors.ts
};

AddonData& GetAddonData(Napi::Env env);

// The JS Error object for a native failure, of the class that matches its kind.
Napi::Error MakeJsError(Napi::Env env, cmae::ErrorKind kind, const std::string& message);

using BindingFn = Napi::Value (*)(const Napi::CallbackInfo&);

template <BindingFn Fn>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return Fn(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const cmae::Error& e) {
    throw MakeJsError(info.Env(), e.kind(), e.what());
  } catch (const std::bad_alloc&) {
    throw MakeJsError(info.Env(), cmae::ErrorKind::Internal, "out of memory");
  } catch (const std::exception& e) {
    throw MakeJsError(info.Env(), cmae::ErrorKind::Internal, e.what());
  }
}

#define CMAE_EXPORT(exports, name, fn) \
  (exports).Set(name, Napi::Function::New((exports).Env(), ::cmae::napi::Guarded<fn>, name))

// ---- argument readers: each throws a typed JS error naming the argument -----------------------
const cmae::Tensor& TensorArg(const Napi::CallbackInfo& info, size_t index, const char* name);
// nullptr when the argument is undefined or null.
const cmae::Tensor* OptionalTensorArg(const Napi::CallbackInfo& info, size_t index, const char* name);
int64_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name);
double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name);
bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
cmae::Shape ShapeArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// Wraps a native tensor in a new JS Tensor handle (shares the storage).
Napi::Object WrapTensor(Napi::Env env, const cmae::Tensor& tensor);

}  // namespace cmae::napi
