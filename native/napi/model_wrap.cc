// JS handle of a CmaeModel. Heavy calls (lossAndGrad, encode, optimizer step, EMA) run on a libuv
// worker thread and return Promises; the compute itself uses cmae's OpenMP pool. One call at a time
// per model: a second call while one runs is a BusyError (serialising is the caller's choice, made
// explicit in TypeScript), never a data race.
#include <atomic>
#include <cmath>
#include <functional>
#include <memory>

#include "common.h"
#include "model_wrap.h"
#include "tensor_wrap.h"
#include "core/math.h"
#include "model/cmae_model.h"
#include "ops/optim.h"

namespace cmae::napi {

namespace {

using cmae::model::CmaeModel;
using cmae::model::ModelConfig;

int64_t ConfigInt(Napi::Object config, const char* key, int64_t fallback) {
  Napi::Value v = config.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw cmae::Error(cmae::ErrorKind::Value, std::string("config.") + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) {
    throw cmae::Error(cmae::ErrorKind::Value, std::string("config.") + key + " must be an integer");
  }
  return static_cast<int64_t>(d);
}

double ConfigNumber(Napi::Object config, const char* key, double fallback) {
  Napi::Value v = config.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw cmae::Error(cmae::ErrorKind::Value, std::string("config.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

ModelConfig ParseConfig(Napi::Object o) {
  ModelConfig c;
  Napi::Value mode = o.Get("mode");
  if (!mode.IsUndefined()) {
    const std::string m = mode.IsString() ? mode.As<Napi::String>().Utf8Value() : "";
    if (m == "cmae") c.mode = cmae::model::Mode::CMAE;
    else if (m == "mae") c.mode = cmae::model::Mode::MAE;
    else throw cmae::Error(cmae::ErrorKind::Value, "config.mode must be 'cmae' or 'mae'");
  }
  c.image_size = ConfigInt(o, "imageSize", c.image_size);
  c.channels = ConfigInt(o, "channels", c.channels);
  c.patch_size = ConfigInt(o, "patchSize", c.patch_size);
  c.dim = ConfigInt(o, "dim", c.dim);
  c.depth = ConfigInt(o, "depth", c.depth);
  c.heads = ConfigInt(o, "heads", c.heads);
  c.mlp_ratio = ConfigInt(o, "mlpRatio", c.mlp_ratio);
  c.decoder_dim = ConfigInt(o, "decoderDim", c.decoder_dim);
  c.decoder_depth = ConfigInt(o, "decoderDepth", c.decoder_depth);
  c.decoder_heads = ConfigInt(o, "decoderHeads", c.decoder_heads);
  c.feature_decoder_dim = ConfigInt(o, "featureDecoderDim", c.feature_decoder_dim);
  c.feature_decoder_depth = ConfigInt(o, "featureDecoderDepth", c.feature_decoder_depth);
  c.feature_decoder_heads = ConfigInt(o, "featureDecoderHeads", c.feature_decoder_heads);
  c.projector_hidden = ConfigInt(o, "projectorHidden", c.projector_hidden);
  c.projector_dim = ConfigInt(o, "projectorDim", c.projector_dim);
  c.mask_ratio = ConfigNumber(o, "maskRatio", c.mask_ratio);
  c.mask_group = ConfigInt(o, "maskGroup", c.mask_group);
  c.tau = ConfigNumber(o, "tau", c.tau);
  c.ct_weight = ConfigNumber(o, "ctWeight", c.ct_weight);
  c.rc_weight = ConfigNumber(o, "rcWeight", c.rc_weight);
  Napi::Value norm_pix = o.Get("normPixLoss");
  if (!norm_pix.IsUndefined()) c.norm_pix_loss = norm_pix.ToBoolean().Value();
  c.bn_eps = ConfigNumber(o, "bnEps", c.bn_eps);
  c.bn_momentum = ConfigNumber(o, "bnMomentum", c.bn_momentum);
  return c;
}

// A Promise-returning job on a libuv worker. `work` runs off the event loop and may throw
// cmae::Error; `result` builds the resolved value on the JS thread.
class ModelTask : public Napi::AsyncWorker {
 public:
  ModelTask(Napi::Env env, Napi::Object owner, std::atomic<bool>* busy, std::function<void()> work,
            std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "cmae.model"),
        deferred_(Napi::Promise::Deferred::New(env)),
        busy_(busy),
        work_(std::move(work)),
        result_(std::move(result)) {
    owner_ = Napi::Persistent(owner);  // keeps the model handle alive while the job runs
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const cmae::Error& e) {
      kind_ = e.kind();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      kind_ = cmae::ErrorKind::Internal;
      SetError("out of memory");
    } catch (const std::exception& e) {
      kind_ = cmae::ErrorKind::Internal;
      SetError(e.what());
    }
  }
  void OnOK() override {
    busy_->store(false);
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& error) override {
    busy_->store(false);
    Napi::HandleScope scope(Env());
    deferred_.Reject(MakeJsError(Env(), kind_, error.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference owner_;
  std::atomic<bool>* busy_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  cmae::ErrorKind kind_ = cmae::ErrorKind::Internal;
};

}  // namespace

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::Table>>("parameterTable"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::Arena>>("arena"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::Info>>("info"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::LossAndGrad>>("lossAndGrad"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::Encode>>("encode"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::UpdateMomentum>>("updateMomentum"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::ResetMomentum>>("resetMomentum"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::AdamwStep>>("adamwStep"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::SetMaskCounter>>("setMaskCounter"),
                           InstanceMethod<&ModelWrap::Guard<&ModelWrap::Dispose>>("dispose"),
                       });
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    try {
      if (!info[0].IsObject()) throw cmae::Error(cmae::ErrorKind::Value, "model config must be an object");
      const ModelConfig config = ParseConfig(info[0].As<Napi::Object>());
      const double seed = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0.0;
      model_ = std::make_shared<CmaeModel>(config, static_cast<uint64_t>(seed));
      reported_ = model_->arena_bytes();
      Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
    } catch (const cmae::Error& e) {
      throw MakeJsError(env, e.kind(), e.what());
    }
  }

 private:
  // Turns cmae::Error thrown inside a method into the matching typed JS error.
  template <Napi::Value (ModelWrap::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guard(const Napi::CallbackInfo& info) {
    try {
      return (this->*Method)(info);
    } catch (const Napi::Error&) {
      throw;
    } catch (const cmae::Error& e) {
      throw MakeJsError(info.Env(), e.kind(), e.what());
    } catch (const std::exception& e) {
      throw MakeJsError(info.Env(), cmae::ErrorKind::Internal, e.what());
    }
  }

  CmaeModel& model(Napi::Env env) {
    if (!model_) throw MakeJsError(env, cmae::ErrorKind::Disposed, "model was disposed and can no longer be used");
    return *model_;
  }
  void ClaimOrThrow(Napi::Env env) {
    model(env);
    bool expected = false;
    if (!busy_.compare_exchange_strong(expected, true)) {
      throw MakeJsError(env, cmae::ErrorKind::Busy,
                        "model is busy with another call; await the previous promise first");
    }
  }
  void CheckIdle(Napi::Env env) {
    model(env);
    if (busy_.load()) throw MakeJsError(env, cmae::ErrorKind::Busy, "model is busy with another call; await the previous promise first");
  }
  Napi::Value Queue(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result) {
    auto* task = new ModelTask(env, Value(), &busy_, std::move(work), std::move(result));
    Napi::Promise promise = task->Promise();
    task->Queue();
    return promise;
  }

  // parameterTable() → [{name, shape, offset, numel, role, weightDecay}]
  Napi::Value Table(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& entries = model(env).table().entries();
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", e.name);
      Napi::Array shape = Napi::Array::New(env, e.shape.size());
      for (size_t j = 0; j < e.shape.size(); ++j) shape.Set(static_cast<uint32_t>(j), static_cast<double>(e.shape[j]));
      o.Set("shape", shape);
      o.Set("offset", static_cast<double>(e.offset));
      o.Set("numel", static_cast<double>(e.numel));
      o.Set("role", e.role == cmae::model::ParamRole::Trainable ? "trainable" : e.role == cmae::model::ParamRole::Momentum ? "momentum" : "buffer");
      o.Set("weightDecay", e.weight_decay && e.role == cmae::model::ParamRole::Trainable);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  // arena(which) → NativeTensor sharing the model's memory: 'params' | 'grads' | 'decayMask'.
  Napi::Value Arena(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CmaeModel& m = model(env);
    const std::string which = StringArg(info, 0, "which");
    if (which == "params") return WrapTensor(env, m.params_tensor());
    if (which == "grads") return WrapTensor(env, m.grads_tensor());
    if (which == "decayMask") return WrapTensor(env, m.decay_mask());
    throw MakeJsError(env, cmae::ErrorKind::Value, "unknown arena '" + which + "'");
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CmaeModel& m = model(env);
    const ModelConfig& c = m.config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("numPatches", static_cast<double>(c.num_patches()));
    o.Set("numGroups", static_cast<double>(c.num_groups()));
    o.Set("numVisible", static_cast<double>(c.num_visible()));
    o.Set("patchDim", static_cast<double>(c.patch_dim()));
    o.Set("trainableCount", static_cast<double>(m.table().trainable_count()));
    o.Set("totalCount", static_cast<double>(m.table().total()));
    o.Set("maskCounter", static_cast<double>(m.mask_counter()));
    return o;
  }

  // lossAndGrad(images, targetImages|null, maskNoise|null, outputs|undefined) → Promise<{total, reconstruction, contrastive}>
  Napi::Value LossAndGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CmaeModel& m = model(env);
    const ModelConfig& c = m.config();
    const cmae::Tensor images = TensorArg(info, 0, "images");
    const cmae::Tensor* target_ptr = OptionalTensorArg(info, 1, "targetImages");
    const cmae::Tensor* noise_ptr = OptionalTensorArg(info, 2, "maskNoise");
    images.expect_dtype(cmae::DType::F32, "images");
    CMAE_CHECK(images.dim() == 4, Shape, "images must have shape [N, ", c.channels, ", ", c.image_size, ", ", c.image_size, "], got ",
               cmae::shape_string(images.shape()));
    const int64_t B = images.size(0);
    images.expect_shape({B, c.channels, c.image_size, c.image_size}, "images");
    cmae::Tensor target, noise;
    if (target_ptr) {
      target = *target_ptr;
      target.expect_dtype(cmae::DType::F32, "targetImages");
      target.expect_shape(images.shape(), "targetImages");
    }
    if (noise_ptr) {
      noise = *noise_ptr;
      noise.expect_dtype(cmae::DType::F32, "maskNoise");
      noise.expect_shape({B, c.num_groups()}, "maskNoise");
    }
    // Optional outputs for inspection/tests.
    cmae::Tensor pred, mask, ids_restore, q, z_t;
    if (info[3].IsObject()) {
      Napi::Object o = info[3].As<Napi::Object>();
      auto take = [&](const char* key, cmae::Tensor& dst, cmae::Shape shape, cmae::DType dtype) {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined() || v.IsNull()) return;
        TensorWrap* w = TensorWrap::FromValue(env, v);
        if (!w) throw MakeJsError(env, cmae::ErrorKind::Value, std::string("outputs.") + key + " must be a Tensor");
        dst = w->tensor(key);
        dst.expect_dtype(dtype, key);
        dst.expect_shape(shape, key);
      };
      const int64_t L = c.num_patches(), E = c.projector_dim;
      take("pred", pred, {B, L, c.patch_dim()}, cmae::DType::F32);
      take("mask", mask, {B, L}, cmae::DType::F32);
      take("idsRestore", ids_restore, {B, L}, cmae::DType::I32);
      take("q", q, {B, E}, cmae::DType::F32);
      take("zT", z_t, {B, E}, cmae::DType::F32);
    }
    ClaimOrThrow(env);
    auto model_ref = model_;
    auto result = std::make_shared<cmae::model::LossResult>();
    return Queue(
        env,
        [=]() {
          CmaeModel::Outputs outs;
          outs.pred = pred.defined() ? pred.f32() : nullptr;
          outs.mask = mask.defined() ? mask.f32() : nullptr;
          outs.ids_restore = ids_restore.defined() ? ids_restore.i32() : nullptr;
          outs.q = q.defined() ? q.f32() : nullptr;
          outs.z_t = z_t.defined() ? z_t.f32() : nullptr;
          *result = model_ref->loss_and_grad(images.f32(), target.defined() ? target.f32() : nullptr,
                                             noise.defined() ? noise.f32() : nullptr, B, outs);
        },
        [result](Napi::Env e) {
          Napi::Object o = Napi::Object::New(e);
          o.Set("loss", result->total);
          o.Set("reconstruction", result->reconstruction);
          o.Set("contrastive", result->contrastive);
          return o;
        });
  }

  // encode(out [N, dim], images, pool 'cls'|'mean', branch 'online'|'momentum') → Promise<void>
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CmaeModel& m = model(env);
    const ModelConfig& c = m.config();
    const cmae::Tensor out = TensorArg(info, 0, "out");
    const cmae::Tensor images = TensorArg(info, 1, "images");
    const std::string pool = StringArg(info, 2, "pool");
    const std::string branch = StringArg(info, 3, "branch");
    images.expect_dtype(cmae::DType::F32, "images");
    CMAE_CHECK(images.dim() == 4, Shape, "images must have shape [N, ", c.channels, ", ", c.image_size, ", ", c.image_size, "], got ",
               cmae::shape_string(images.shape()));
    const int64_t B = images.size(0);
    images.expect_shape({B, c.channels, c.image_size, c.image_size}, "images");
    out.expect_dtype(cmae::DType::F32, "out");
    out.expect_shape({B, c.dim}, "out");
    CMAE_CHECK(pool == "cls" || pool == "mean", Value, "pool must be 'cls' or 'mean', got '", pool, "'");
    CMAE_CHECK(branch == "online" || branch == "momentum", Value, "branch must be 'online' or 'momentum', got '", branch, "'");
    CMAE_CHECK(branch == "online" || c.mode == cmae::model::Mode::CMAE, Value, "a model in MAE mode has no momentum branch");
    CMAE_CHECK(B >= 1, Shape, "images must hold at least one image");
    ClaimOrThrow(env);
    auto model_ref = model_;
    const auto p = pool == "cls" ? cmae::model::Pool::Cls : cmae::model::Pool::Mean;
    const auto br = branch == "online" ? cmae::model::Branch::Online : cmae::model::Branch::Momentum;
    return Queue(env, [=]() { model_ref->encode(out.f32(), images.f32(), B, p, br); }, nullptr);
  }

  Napi::Value UpdateMomentum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const double momentum = NumberArg(info, 0, "momentum");
    CMAE_CHECK(momentum >= 0.0 && momentum <= 1.0, Value, "momentum must be in [0, 1], got ", momentum);
    ClaimOrThrow(env);
    auto model_ref = model_;
    return Queue(env, [=]() { model_ref->update_momentum(static_cast<float>(momentum)); }, nullptr);
  }

  Napi::Value ResetMomentum(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env());
    model_->reset_momentum();
    return info.Env().Undefined();
  }

  // adamwStep(m, v, {lr, beta1, beta2, eps, weightDecay, step, maxGradNorm}) → Promise<gradNorm>
  // One fused pass over the trainable arena; the global gradient norm is computed first (and used
  // for clipping when maxGradNorm > 0).
  Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CmaeModel& mdl = model(env);
    const cmae::Tensor m = TensorArg(info, 0, "m");
    const cmae::Tensor v = TensorArg(info, 1, "v");
    const int64_t n = mdl.table().trainable_count();
    m.expect_dtype(cmae::DType::F32, "m");
    v.expect_dtype(cmae::DType::F32, "v");
    m.expect_shape({n}, "m");
    v.expect_shape({n}, "v");
    if (!info[2].IsObject()) throw MakeJsError(env, cmae::ErrorKind::Value, "options must be an object");
    Napi::Object o = info[2].As<Napi::Object>();
    const double lr = ConfigNumber(o, "lr", -1), beta1 = ConfigNumber(o, "beta1", 0.9), beta2 = ConfigNumber(o, "beta2", 0.95);
    const double eps = ConfigNumber(o, "eps", 1e-8), wd = ConfigNumber(o, "weightDecay", 0.05);
    const double step = ConfigNumber(o, "step", 0), max_norm = ConfigNumber(o, "maxGradNorm", 0);
    CMAE_CHECK(lr >= 0 && std::isfinite(lr), Value, "lr must be a non-negative number, got ", lr);
    CMAE_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, Value, "betas must be in [0, 1)");
    CMAE_CHECK(step >= 1 && step == static_cast<double>(static_cast<int64_t>(step)), Value, "step must be an integer >= 1, got ", step);
    CMAE_CHECK(eps > 0 && wd >= 0 && max_norm >= 0, Value, "eps must be positive, weightDecay and maxGradNorm non-negative");
    ClaimOrThrow(env);
    auto model_ref = model_;
    auto norm = std::make_shared<double>(0.0);
    return Queue(
        env,
        [=]() {
          cmae::AdamWStep s;
          s.lr = static_cast<float>(lr);
          s.beta1 = static_cast<float>(beta1);
          s.beta2 = static_cast<float>(beta2);
          s.eps = static_cast<float>(eps);
          s.weight_decay = static_cast<float>(wd);
          s.bias_correction1 = static_cast<float>(1.0 - std::pow(beta1, step));
          s.bias_correction2 = static_cast<float>(1.0 - std::pow(beta2, step));
          *norm = cmae::cpu::global_norm(model_ref->grads(), n);
          float scale = 1.0f;
          if (max_norm > 0 && *norm > max_norm) scale = static_cast<float>(max_norm / (*norm + 1e-6));
          cmae::cpu::adamw_step(model_ref->params(), m.f32(), v.f32(), model_ref->grads(), model_ref->decay_mask().f32(), n, s, scale);
        },
        [norm](Napi::Env e) { return Napi::Number::New(e, *norm); });
  }

  Napi::Value SetMaskCounter(const Napi::CallbackInfo& info) {
    CheckIdle(info.Env());
    const int64_t counter = IntArg(info, 0, "counter");
    CMAE_CHECK(counter >= 0, Value, "counter must be non-negative");
    model_->set_mask_counter(static_cast<uint64_t>(counter));
    return info.Env().Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return env.Undefined();
    CheckIdle(env);
    Napi::MemoryManagement::AdjustExternalMemory(env, -reported_);
    reported_ = 0;
    model_.reset();
    return env.Undefined();
  }

  std::shared_ptr<CmaeModel> model_;
  std::atomic<bool> busy_{false};
  int64_t reported_ = 0;
};

void RegisterModel(Napi::Env env, Napi::Object exports) { exports.Set("NativeModel", ModelWrap::Init(env)); }

}  // namespace cmae::napi
