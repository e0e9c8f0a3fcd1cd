// NativeModel: the JS handle of a CmaeModel (model/cmae_model.h). Heavy calls (lossAndGrad, encode,
// momentum updates, optimizer steps) run on a libuv worker thread and return Promises; the compute
// itself uses the model's backend. One call at a time per model: a second call while one runs is a
// BusyError (serialising is the caller's choice, made explicit in TypeScript), never a data race.
// This file owns that rule (the busy flag) and the model's disposed state.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>

#include "model/cmae_model.h"

namespace cmae::napi {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  // The ModelWrap behind a JS value, or nullptr when it is not a NativeModel.
  static ModelWrap* FromValue(Napi::Env env, Napi::Value value);

  explicit ModelWrap(const Napi::CallbackInfo& info);
  // A model collected without dispose(): what it reported to the JS engine is taken back (the
  // model itself is freed by the destructor that follows).
  void Finalize(Napi::BasicEnv env) override;

  // The model; a DisposedError once dispose() ran.
  model::CmaeModel& model() const;
  // A BusyError while a queued call runs (and a DisposedError after dispose()).
  void CheckIdle() const;
  bool disposed() const { return model_ == nullptr; }
  // Queues `work` on a libuv worker as this model's one call in flight (BusyError if another
  // runs). The returned Promise resolves with result(env) (undefined when null) or rejects with
  // the typed error `work` threw. `keep_alive` objects (and this model) stay referenced until the
  // call settles.
  Napi::Value Queue(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
                    Napi::Object keep_alive = Napi::Object());
  // A Promise of a host copy of `t` (one of this model's or its optimizer's arenas) as a
  // Float32Array, copied on a worker as one queued call: a base model's parameters take 0.4-2.6 s
  // to copy, which must not pause the event loop. The array is allocated here (its pages are
  // touched by the copy), and `t` stays referenced until the call settles.
  Napi::Value QueueHostCopy(Napi::Env env, const cmae::Tensor& t);
  // An (out, images) job (encode, predict): both staged on the model's backend (CPU tensors are
  // uploaded and `out` downloaded by the worker), fn run on them.
  Napi::Value QueueImagesToOutput(Napi::Env env, const cmae::Tensor& out, const cmae::Tensor& images,
                                  std::function<void(model::CmaeModel&, const cmae::Tensor&, const cmae::Tensor&)> fn);

 private:
  friend class ModelTask;
  template <Napi::Value (ModelWrap::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guard(const Napi::CallbackInfo& info);

  Napi::Value Table(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value ReadArena(const Napi::CallbackInfo& info);
  Napi::Value ReadArenaAsync(const Napi::CallbackInfo& info);
  Napi::Value WriteArena(const Napi::CallbackInfo& info);
  Napi::Value LossAndGrad(const Napi::CallbackInfo& info);
  Napi::Value Encode(const Napi::CallbackInfo& info);
  Napi::Value ClsAttention(const Napi::CallbackInfo& info);
  Napi::Value ClassifierLossAndGrad(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);
  Napi::Value UpdateMomentum(const Napi::CallbackInfo& info);
  Napi::Value ResetMomentum(const Napi::CallbackInfo& info);
  Napi::Value SetMaskCounter(const Napi::CallbackInfo& info);
  Napi::Value SetCollective(const Napi::CallbackInfo& info);
  Napi::Value SetRecomputeActivations(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // Brings the JS engine's external-memory count in line with what the model holds now (after
  // each call: a first step plans a workspace; after dispose: nothing).
  void ReportMemory(Napi::BasicEnv env);

  std::shared_ptr<model::CmaeModel> model_;
  std::atomic<bool> busy_{false};
  int64_t reported_ = 0;
};

// Exports NativeModel.
void RegisterModel(Napi::Env env, Napi::Object exports);
// Exports NativeAdamW (optimizer_wrap.cc).
void RegisterOptimizer(Napi::Env env, Napi::Object exports);

}  // namespace cmae::napi
