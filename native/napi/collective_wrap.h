// NativeCollective (collective_wrap.cc): a joined data-parallel job, handed to models
// (NativeModel.setCollective) and used by the trainer for its start-up agreement.
#pragma once
#include <napi.h>

#include <memory>

#include "core/collective.h"

namespace cmae::napi {

class CollectiveWrap : public Napi::ObjectWrap<CollectiveWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  // The CollectiveWrap behind a JS value, or nullptr when it is not a NativeCollective.
  static CollectiveWrap* FromValue(Napi::Env env, Napi::Value value);
  explicit CollectiveWrap(const Napi::CallbackInfo& info);
  // The job; a DisposedError after finalize().
  const std::shared_ptr<Collective>& collective() const;
  void set_collective(std::shared_ptr<Collective> c) { collective_ = std::move(c); }

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value WorldSize(const Napi::CallbackInfo& info);
  Napi::Value Engine(const Napi::CallbackInfo& info);
  Napi::Value AllgatherBytes(const Napi::CallbackInfo& info);
  Napi::Value AbortJob(const Napi::CallbackInfo& info);
  Napi::Value Finalize(const Napi::CallbackInfo& info);

  std::shared_ptr<Collective> collective_;  // set by openCollective once joined; null after finalize
};

// Exports NativeCollective and openCollective.
void RegisterCollective(Napi::Env env, Napi::Object exports);

}  // namespace cmae::napi
