// NativeAdamW: the JS handle of a model::AdamW (model/optimizer.h), tied to one NativeModel. A step
// is queued as that model's one call in flight (model_wrap.h), so it can never race a training step.
#include <memory>

#include "common.h"
#include "model/optimizer.h"
#include "model_wrap.h"

namespace cmae::napi {

namespace {

class AdamWWrap : public Napi::ObjectWrap<AdamWWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeAdamW",
                       {
                           InstanceMethod<&AdamWWrap::Guard<&AdamWWrap::Step>>("step"),
                           InstanceMethod<&AdamWWrap::Guard<&AdamWWrap::Read>>("read"),
                           InstanceMethod<&AdamWWrap::Guard<&AdamWWrap::ReadAsync>>("readAsync"),
                           InstanceMethod<&AdamWWrap::Guard<&AdamWWrap::Write>>("write"),
                           InstanceMethod<&AdamWWrap::Guard<&AdamWWrap::Dispose>>("dispose"),
                       });
  }

  // new NativeAdamW(nativeModel, {lr, beta1, beta2, eps, weightDecay, maxGradNorm, layerDecay}): zero moments
  // for the model's trainable arena, in its backend; the options are checked here.
  explicit AdamWWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AdamWWrap>(info) {
    TranslateErrors(info.Env(), [&] {
      model_wrap_ = ModelWrap::FromValue(info.Env(), info[0]);
      CMAE_CHECK(model_wrap_ != nullptr, Value, "model must be a NativeModel");
      CMAE_CHECK(info[1].IsObject(), Value, "options must be an object");
      Napi::Object o = info[1].As<Napi::Object>();
      cmae::model::AdamWHyper h;
      h.lr = NumberProperty(o, "options", "lr");
      h.beta1 = NumberProperty(o, "options", "beta1");
      h.beta2 = NumberProperty(o, "options", "beta2");
      h.eps = NumberProperty(o, "options", "eps");
      h.weight_decay = NumberProperty(o, "options", "weightDecay");
      h.max_grad_norm = NumberProperty(o, "options", "maxGradNorm");
      h.layer_decay = NumberProperty(o, "options", "layerDecay");
      model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
      optimizer_ = std::make_shared<cmae::model::AdamW>(model_wrap_->model(), h);
      reported_ = optimizer_->bytes();
      Napi::MemoryManagement::AdjustExternalMemory(info.Env(), reported_);
      return info.Env().Undefined();
    });
  }

  // Collected without dispose(): the moments go with it, and so does what they reported. Public:
  // node-addon-api detects the override by taking its address (a private one is silently skipped).
  void Finalize(Napi::BasicEnv env) override { Release(env); }

 private:
  template <Napi::Value (AdamWWrap::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guard(const Napi::CallbackInfo& info) {
    return TranslateErrors(info.Env(), [&] { return (this->*Method)(info); });
  }

  cmae::model::AdamW& optimizer() const {
    CMAE_CHECK(optimizer_ != nullptr, Disposed, "optimizer was disposed and can no longer be used");
    return *optimizer_;
  }

  // step(lr, stepNumber) → Promise<gradient norm before clipping>
  Napi::Value Step(const Napi::CallbackInfo& info) {
    optimizer();
    const double lr = NumberArg(info, 0, "lr");
    const int64_t step = IntArg(info, 1, "step");
    cmae::model::AdamW::validate_step(lr, step);  // on the JS thread: rejects before anything is queued
    auto optimizer_ref = optimizer_;
    cmae::model::CmaeModel* model = &model_wrap_->model();
    auto norm = std::make_shared<double>(0.0);
    return model_wrap_->Queue(
        info.Env(), [=]() { *norm = optimizer_ref->step(*model, lr, step); },
        [norm](Napi::Env e) { return Napi::Number::New(e, *norm); }, Value());
  }

  const cmae::Tensor& Moment(const std::string& which) const {
    if (which == "expAvg") return optimizer().exp_avg();
    if (which == "expAvgSq") return optimizer().exp_avg_sq();
    cmae::fail(cmae::ErrorKind::Value, "unknown optimizer state '", which, "' (expected 'expAvg' or 'expAvgSq')");
  }

  // read('expAvg' | 'expAvgSq') → Float32Array (a host copy)
  Napi::Value Read(const Napi::CallbackInfo& info) {
    model_wrap_->CheckIdle();
    const cmae::Tensor& t = Moment(StringArg(info, 0, "which"));
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(t.numel()));
    t.backend().copy_to_host(out.Data(), t.f32(), t.bytes());
    return out;
  }

  // readAsync('expAvg' | 'expAvgSq') → Promise<Float32Array>: the same copy, made off the event loop.
  Napi::Value ReadAsync(const Napi::CallbackInfo& info) {
    return model_wrap_->QueueHostCopy(info.Env(), Moment(StringArg(info, 0, "which")));
  }

  // write('expAvg' | 'expAvgSq', values: Float32Array of the trainable count)
  Napi::Value Write(const Napi::CallbackInfo& info) {
    model_wrap_->CheckIdle();
    const cmae::Tensor& t = Moment(StringArg(info, 0, "which"));
    CMAE_CHECK(info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array, DType,
               "values must be a Float32Array");
    Napi::Float32Array values = info[1].As<Napi::Float32Array>();
    CMAE_CHECK(static_cast<int64_t>(values.ElementLength()) == t.numel(), Shape, "values must have ", t.numel(), " elements, got ",
               values.ElementLength());
    t.backend().copy_from_host(t.f32(), values.Data(), t.bytes());
    return info.Env().Undefined();
  }

  // Frees the moments now (idempotent). A BusyError while the model runs a call (it may be this
  // optimizer's step); after the model's own dispose() no call can run, and the optimizer must
  // still be freeable: the order of the two disposes is the caller's.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (!optimizer_) return info.Env().Undefined();
    if (!model_wrap_->disposed()) model_wrap_->CheckIdle();
    Release(info.Env());
    return info.Env().Undefined();
  }

  void Release(Napi::BasicEnv env) {
    optimizer_.reset();
    if (reported_ != 0) Napi::MemoryManagement::AdjustExternalMemory(env, -reported_);
    reported_ = 0;
  }

  ModelWrap* model_wrap_ = nullptr;
  Napi::ObjectReference model_ref_;  // the model outlives its optimizer
  std::shared_ptr<cmae::model::AdamW> optimizer_;
  int64_t reported_ = 0;
};

}  // namespace

void RegisterOptimizer(Napi::Env env, Napi::Object exports) { exports.Set("NativeAdamW", AdamWWrap::Init(env)); }

}  // namespace cmae::napi
