// Shared plumbing for the Node-API bindings (the only place napi.h is included).
//  - Error translation, once: a C++ failure becomes the typed JS error of its kind (cmae::Error
//    kind → ShapeError/DTypeError/... classes handed over by src/errors.ts; std::bad_alloc →
//    DeviceError "out of memory"; anything else → CmaeError). CMAE_EXPORT registers a binding
//    through it; instance methods and async workers use CurrentError / TranslateErrors.
//  - Argument readers (TensorArg, IntArg, ...) and tensor checks (ExpectShape, ExpectRank, ...),
//    one set for every binding: each names the argument, what was expected and what came.
//  - BackendOf: the backend of the device a call's tensors share (a DeviceError when they differ),
//    made current on the calling thread and taken for the binding's exclusive use where the
//    backend asks for it (Backend::exclusive_use: a BusyError while a model job runs there).
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/errors.h"
#include "core/tensor.h"

namespace cmae::napi {

// Per-environment state (no statics: the addon is context-aware and works in worker threads).
struct AddonData {
  Napi::FunctionReference tensor_constructor;
  Napi::FunctionReference model_constructor;
  Napi::FunctionReference collective_constructor;
  Napi::ObjectReference error_classes;  // { ShapeError: class, ... } from src/errors.ts
};

AddonData& GetAddonData(Napi::Env env);

// The JS Error object for a native failure, of the class that matches its kind.
Napi::Error MakeJsError(Napi::Env env, cmae::ErrorKind kind, const std::string& message);

// The kind and message of the exception being handled: call only inside a catch block.
struct ErrorInfo {
  cmae::ErrorKind kind = cmae::ErrorKind::Internal;
  std::string message;
};
ErrorInfo CurrentError();

// Runs body(); a C++ exception becomes the matching JS error (Napi::Error passes through).
template <typename Body>
Napi::Value TranslateErrors(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    const ErrorInfo e = CurrentError();
    throw MakeJsError(env, e.kind, e.message);
  }
}

using BindingFn = Napi::Value (*)(const Napi::CallbackInfo&);

// Releases what TakeExclusiveUse took for the binding that is returning on this thread.
void EndBindingCall();

template <BindingFn Fn>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  struct End {
    ~End() { EndBindingCall(); }
  } end;
  return TranslateErrors(info.Env(), [&] { return Fn(info); });
}

#define CMAE_EXPORT(exports, name, fn) \
  (exports).Set(name, Napi::Function::New((exports).Env(), ::cmae::napi::Guarded<fn>, name))

// ---- argument readers: each throws a typed error naming the argument ---------------------------
const cmae::Tensor& TensorArg(const Napi::CallbackInfo& info, size_t index, const char* name);
// nullptr when the argument is undefined or null.
const cmae::Tensor* OptionalTensorArg(const Napi::CallbackInfo& info, size_t index, const char* name);
double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name);  // any number but NaN
double FiniteArg(const Napi::CallbackInfo& info, size_t index, const char* name);
double PositiveArg(const Napi::CallbackInfo& info, size_t index, const char* name);     // finite, > 0
double NonNegativeArg(const Napi::CallbackInfo& info, size_t index, const char* name);  // finite, >= 0
// A finite number in [lo, hi] (hi_open: [lo, hi)).
double RangeArg(const Napi::CallbackInfo& info, size_t index, const char* name, double lo, double hi, bool hi_open = false);
int64_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name);
int64_t PositiveIntArg(const Napi::CallbackInfo& info, size_t index, const char* name);
int64_t NonNegativeIntArg(const Napi::CallbackInfo& info, size_t index, const char* name);
bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
cmae::Shape ShapeArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// A required property of an options object (`object_name.key` in messages).
double NumberProperty(Napi::Object object, const char* object_name, const char* key);
int64_t IntProperty(Napi::Object object, const char* object_name, const char* key);

// ---- tensor checks -----------------------------------------------------------------------------
// dtype and exact shape.
void ExpectShape(const cmae::Tensor& t, const char* name, cmae::DType dtype, const cmae::Shape& shape);
// dtype and rank; `layout` describes the expected dims, e.g. "(B, N, D)".
void ExpectRank(const cmae::Tensor& t, const char* name, cmae::DType dtype, int64_t rank, const char* layout);
// Every id of an int32 tensor in [0, limit): a bad id is an error, never a wild access. Reads the
// ids on the host (copied from the device when they live elsewhere).
void ExpectIdsInRange(const cmae::Tensor& ids, const char* name, int64_t limit, const char* limit_name);

// The backend of the device every given tensor is on (null entries are skipped), made current on
// the calling thread and taken with TakeExclusiveUse; a DeviceError naming two that differ.
using NamedTensor = std::pair<const cmae::Tensor*, const char*>;
cmae::Backend& BackendOf(std::initializer_list<NamedTensor> tensors);
// The same check alone (no make_current, no exclusive use): for calls that run on a worker.
cmae::Backend& SharedBackend(std::initializer_list<NamedTensor> tensors);

// For a synchronous binding (CMAE_EXPORT) about to run ops on or change the state of `backend`:
// takes its exclusive use (Backend::exclusive_use) until the binding returns, without waiting:
// a BusyError while a model or optimizer job holds it. Nothing where the backend needs no turns.
void TakeExclusiveUse(cmae::Backend& backend);

// Wraps a native tensor in a new JS Tensor handle (shares the storage).
Napi::Object WrapTensor(Napi::Env env, const cmae::Tensor& tensor);

}  // namespace cmae::napi
