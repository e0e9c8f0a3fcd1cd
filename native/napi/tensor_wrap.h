// JS handle of a native tensor. Holds a cmae::Tensor (shared storage); dispose() drops it early,
// the finalizer drops it otherwise. Views handed to JS keep the storage alive on their own.
// External-memory accounting (so V8 collects sooner when handles hold much native memory): a
// handle reports its tensor's bytes from creation to dispose() or its finalizer, exactly once. A
// view is an external ArrayBuffer, whose bytes V8 counts by itself for as long as it lives.
#pragma once
#include <napi.h>

#include "core/tensor.h"

namespace cmae::napi {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, const cmae::Tensor& tensor);
  // nullptr when value is not a TensorWrap.
  static TensorWrap* FromValue(Napi::Env env, Napi::Value value);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  // A handle collected without dispose(): what it reported to the JS engine is taken back here
  // (the storage itself is released by the destructor that follows).
  void Finalize(Napi::BasicEnv env) override;

  // The tensor, or a DisposedError naming `name` when dispose() was called.
  const cmae::Tensor& tensor(const char* name) const;

 private:
  // Runs a method through the error translation of common.h.
  template <Napi::Value (TensorWrap::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guard(const Napi::CallbackInfo& info);

  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  void Release(Napi::BasicEnv env);

  cmae::Tensor tensor_;
  int64_t reported_bytes_ = 0;  // external memory reported to V8, taken back exactly once (Release)
};

// Factory bindings: tensorFromArray(typedArray, shape, device?), tensorEmpty(shape, dtype, device?),
// tensorFull(shape, dtype, value, device?) (device 'cpu' when omitted).
void RegisterTensorFactories(Napi::Env env, Napi::Object exports);

}  // namespace cmae::napi
