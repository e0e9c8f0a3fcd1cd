#include "model_wrap.h"

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "collective_wrap.h"
#include "common.h"
#include "devices.h"
#include "tensor_wrap.h"

namespace cmae::napi {

using cmae::model::CmaeModel;
using cmae::model::ModelConfig;

namespace {

// A complete configuration from JS (src/models/config.ts resolves presets and defaults; every key is
// required here, so no default lives in two places).
ModelConfig ParseConfig(Napi::Object o) {
  ModelConfig c;
  Napi::Value mode = o.Get("mode");
  const std::string m = mode.IsString() ? mode.As<Napi::String>().Utf8Value() : "";
  if (m == "cmae") c.mode = cmae::model::Mode::CMAE;
  else if (m == "mae") c.mode = cmae::model::Mode::MAE;
  else if (m == "mocov3") c.mode = cmae::model::Mode::MOCOV3;
  else if (m == "maskdistill") c.mode = cmae::model::Mode::MASKDISTILL;
  else if (m == "simclr") c.mode = cmae::model::Mode::SIMCLR;
  else if (m == "densecl") c.mode = cmae::model::Mode::DENSECL;
  else if (m == "classifier") c.mode = cmae::model::Mode::CLASSIFIER;
  else cmae::fail(cmae::ErrorKind::Value, "config.mode must be 'cmae', 'mae', 'mocov3', 'maskdistill', 'simclr', 'densecl' or 'classifier'");
  struct IntField {
    const char* key;
    int64_t ModelConfig::*field;
  };
  static const IntField ints[] = {
      {"imageSize", &ModelConfig::image_size},
      {"channels", &ModelConfig::channels},
      {"patchSize", &ModelConfig::patch_size},
      {"dim", &ModelConfig::dim},
      {"depth", &ModelConfig::depth},
      {"heads", &ModelConfig::heads},
      {"mlpRatio", &ModelConfig::mlp_ratio},
      {"decoderDim", &ModelConfig::decoder_dim},
      {"decoderDepth", &ModelConfig::decoder_depth},
      {"decoderHeads", &ModelConfig::decoder_heads},
      {"featureDecoderDim", &ModelConfig::feature_decoder_dim},
      {"featureDecoderDepth", &ModelConfig::feature_decoder_depth},
      {"featureDecoderHeads", &ModelConfig::feature_decoder_heads},
      {"projectorHidden", &ModelConfig::projector_hidden},
      {"projectorDim", &ModelConfig::projector_dim},
      {"maskGroup", &ModelConfig::mask_group},
  };
  struct NumberField {
    const char* key;
    double ModelConfig::*field;
  };
  static const NumberField numbers[] = {
      {"maskRatio", &ModelConfig::mask_ratio}, {"tau", &ModelConfig::tau},     {"ctWeight", &ModelConfig::ct_weight},
      {"rcWeight", &ModelConfig::rc_weight},   {"bnEps", &ModelConfig::bn_eps}, {"bnMomentum", &ModelConfig::bn_momentum},
  };
  for (const IntField& f : ints) c.*f.field = IntProperty(o, "config", f.key);
  for (const NumberField& f : numbers) c.*f.field = NumberProperty(o, "config", f.key);
  Napi::Value norm_pix = o.Get("normPixLoss");
  CMAE_CHECK(norm_pix.IsBoolean(), Value, "config.normPixLoss must be a boolean");
  c.norm_pix_loss = norm_pix.As<Napi::Boolean>().Value();
  if (c.mode == cmae::model::Mode::CLASSIFIER) {  // the classifier's two fields exist in its configs only
    c.num_classes = IntProperty(o, "config", "numClasses");
    Napi::Value global_pool = o.Get("globalPool");
    CMAE_CHECK(global_pool.IsBoolean(), Value, "config.globalPool must be a boolean");
    c.global_pool = global_pool.As<Napi::Boolean>().Value();
  }
  if (c.mode == cmae::model::Mode::DENSECL) c.dense_weight = NumberProperty(o, "config", "denseWeight");  // DenseCL's configs only
  // Optional (checkpoints from before AMT's throwing lack it): 0 throws nothing.
  if (o.Has("throwRatio") && !o.Get("throwRatio").IsUndefined()) c.throw_ratio = NumberProperty(o, "config", "throwRatio");
  return c;
}

// Tensors from the CPU are welcome whatever the model's device: a job copies them to the model's
// backend on its worker thread, so the event loop never waits for a host-to-device transfer. A
// tensor on another device is left as it is for the model to reject with a DeviceError.
cmae::Tensor OnBackend(const cmae::Tensor& t, cmae::Backend& backend) {
  if (!t.defined() || &t.backend() == &backend || t.device() != cmae::Device::CPU) return t;
  return t.to(backend);
}

// An output the caller gave on the CPU, for a model on a device: a device tensor of its shape and
// dtype for the model to write, copied back by DownloadInto once the model is done.
cmae::Tensor OutputOnBackend(const cmae::Tensor& t, cmae::Backend& backend) {
  if (!t.defined() || &t.backend() == &backend || t.device() != cmae::Device::CPU) return t;
  return cmae::Tensor::empty(t.shape(), t.dtype(), backend);
}

void DownloadInto(const cmae::Tensor& out, const cmae::Tensor& staged) {
  if (staged.storage() == out.storage()) return;
  staged.backend().copy_to_host(out.data<unsigned char>(), staged.data<unsigned char>(), out.bytes());
}

// The arena a name denotes: 'params' | 'grads'.
const cmae::Tensor& ArenaByName(const CmaeModel& m, const std::string& which) {
  if (which == "params") return m.params();
  if (which == "grads") return m.grads();
  cmae::fail(cmae::ErrorKind::Value, "unknown arena '", which, "' (expected 'params' or 'grads')");
}

}  // namespace

// A Promise-returning job on a libuv worker: `work` runs off the event loop and may throw; `result`
// builds the resolved value on the JS thread.
class ModelTask : public Napi::AsyncWorker {
 public:
  ModelTask(Napi::Env env, ModelWrap* wrap, Napi::Object keep_alive, std::function<void()> work,
            std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "cmae.model"),
        deferred_(Napi::Promise::Deferred::New(env)),
        wrap_(wrap),
        work_(std::move(work)),
        result_(std::move(result)) {
    model_ref_ = Napi::Persistent(wrap->Value());  // keeps the model handle alive while the job runs
    if (!keep_alive.IsEmpty()) keep_alive_ = Napi::Persistent(keep_alive);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      cmae::Backend& backend = wrap_->model().backend();
      // The device's turn for the whole job (Backend::exclusive_use; a worker may wait for it).
      std::unique_lock<std::mutex> turn;
      if (std::mutex* use = backend.exclusive_use()) turn = std::unique_lock<std::mutex>(*use);
      backend.make_current();  // this worker thread may not have the device yet
      work_();
    } catch (...) {
      error_ = CurrentError();
      SetError(error_.message);
    }
  }
  void OnOK() override {
    Settle();
    try {
      deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error&) override {
    Settle();
    deferred_.Reject(MakeJsError(Env(), error_.kind, error_.message).Value());
  }

 private:
  void Settle() {
    wrap_->busy_.store(false);
    wrap_->ReportMemory(Env());
  }

  Napi::Promise::Deferred deferred_;
  ModelWrap* wrap_;
  Napi::ObjectReference model_ref_, keep_alive_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  ErrorInfo error_;
};

Napi::Function ModelWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::Table>>("parameterTable"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::Info>>("info"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::ReadArena>>("readArena"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::ReadArenaAsync>>("readArenaAsync"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::WriteArena>>("writeArena"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::LossAndGrad>>("lossAndGrad"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::Encode>>("encode"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::ClsAttention>>("clsAttention"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::ClassifierLossAndGrad>>("classifierLossAndGrad"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::Predict>>("predict"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::UpdateMomentum>>("updateMomentum"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::ResetMomentum>>("resetMomentum"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::SetMaskCounter>>("setMaskCounter"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::SetCollective>>("setCollective"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::SetRecomputeActivations>>("setRecomputeActivations"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::Disposed>>("disposed"),
                         InstanceMethod<&ModelWrap::Guard<&ModelWrap::Dispose>>("dispose"),
                     });
}

ModelWrap* ModelWrap::FromValue(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object object = value.As<Napi::Object>();
  if (!object.InstanceOf(GetAddonData(env).model_constructor.Value())) return nullptr;
  return Napi::ObjectWrap<ModelWrap>::Unwrap(object);
}

// new NativeModel(config, seed, device)
ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  TranslateErrors(info.Env(), [&] {
    CMAE_CHECK(info[0].IsObject(), Value, "model config must be an object");
    const ModelConfig config = ParseConfig(info[0].As<Napi::Object>());
    const int64_t seed = NonNegativeIntArg(info, 1, "seed");
    cmae::Backend& backend = BackendForSpec(StringArg(info, 2, "device"));
    model_ = std::make_shared<CmaeModel>(config, static_cast<uint64_t>(seed), backend);
    ReportMemory(info.Env());
    return info.Env().Undefined();
  });
}

template <Napi::Value (ModelWrap::*Method)(const Napi::CallbackInfo&)>
Napi::Value ModelWrap::Guard(const Napi::CallbackInfo& info) {
  return TranslateErrors(info.Env(), [&] { return (this->*Method)(info); });
}

CmaeModel& ModelWrap::model() const {
  CMAE_CHECK(model_ != nullptr, Disposed, "model was disposed and can no longer be used");
  return *model_;
}

void ModelWrap::CheckIdle() const {
  model();
  CMAE_CHECK(!busy_.load(), Busy, "model is busy with another call; await the previous promise first");
}

Napi::Value ModelWrap::Queue(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
                             Napi::Object keep_alive) {
  model();
  bool expected = false;
  CMAE_CHECK(busy_.compare_exchange_strong(expected, true), Busy, "model is busy with another call; await the previous promise first");
  auto* task = new ModelTask(env, this, keep_alive, std::move(work), std::move(result));
  Napi::Promise promise = task->Promise();
  task->Queue();
  return promise;
}

void ModelWrap::Finalize(Napi::BasicEnv env) {
  model_.reset();
  ReportMemory(env);
}

void ModelWrap::ReportMemory(Napi::BasicEnv env) {
  const int64_t now = model_ ? model_->memory_bytes() : 0;
  if (now != reported_) Napi::MemoryManagement::AdjustExternalMemory(env, now - reported_);
  reported_ = now;
}

// [{name, shape, offset, numel, role, weightDecay}] of a parameter table.
static Napi::Array TableToJs(Napi::Env env, const cmae::model::ParameterTable& table) {
  const auto& entries = table.entries();
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

// parameterTable() → [{name, shape, offset, numel, role, weightDecay}]
Napi::Value ModelWrap::Table(const Napi::CallbackInfo& info) { return TableToJs(info.Env(), model().table()); }

// planParameters(config) → the parameterTable() a model of config would have; allocates nothing.
static Napi::Value PlanParameters(const Napi::CallbackInfo& info) {
  CMAE_CHECK(info.Length() >= 1 && info[0].IsObject(), Value, "model config must be an object");
  return TableToJs(info.Env(), CmaeModel::plan_parameters(ParseConfig(info[0].As<Napi::Object>())));
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CmaeModel& m = model();
  const ModelConfig& c = m.config();
  Napi::Object o = Napi::Object::New(env);
  o.Set("numPatches", static_cast<double>(c.num_patches()));
  o.Set("numGroups", static_cast<double>(c.num_groups()));
  o.Set("numVisible", static_cast<double>(c.num_visible()));
  o.Set("patchDim", static_cast<double>(c.patch_dim()));
  o.Set("trainableCount", static_cast<double>(m.table().trainable_count()));
  o.Set("totalCount", static_cast<double>(m.table().total()));
  o.Set("maskCounter", static_cast<double>(m.mask_counter()));
  o.Set("recomputeActivations", m.recompute_activations());
  o.Set("memoryBytes", static_cast<double>(m.memory_bytes()));
  o.Set("device", DeviceName(m.backend()));
  return o;
}

// readArena('params' | 'grads') → Float32Array: a host copy of the whole arena (from any device).
static Napi::Value ReadArenaInto(Napi::Env env, const cmae::Tensor& arena) {
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(arena.numel()));
  arena.backend().copy_to_host(out.Data(), arena.f32(), arena.bytes());
  return out;
}

Napi::Value ModelWrap::ReadArena(const Napi::CallbackInfo& info) {
  CheckIdle();
  return ReadArenaInto(info.Env(), ArenaByName(model(), StringArg(info, 0, "which")));
}

// readArenaAsync('params' | 'grads') → Promise<Float32Array>: the same copy, made off the event loop.
Napi::Value ModelWrap::ReadArenaAsync(const Napi::CallbackInfo& info) {
  return QueueHostCopy(info.Env(), ArenaByName(model(), StringArg(info, 0, "which")));
}

Napi::Value ModelWrap::QueueHostCopy(Napi::Env env, const cmae::Tensor& t) {
  CheckIdle();
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(t.numel()));
  float* dst = out.Data();
  const cmae::Tensor source = t;  // a handle sharing the storage: alive until the call settles
  auto result = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return Queue(
      env, [source, dst]() { source.backend().copy_to_host(dst, source.f32(), source.bytes()); },
      [result](Napi::Env) -> Napi::Value { return result->Value(); }, out);
}

// writeArena('params', values: Float32Array, offset): arena[offset, offset + values.length) = values.
Napi::Value ModelWrap::WriteArena(const Napi::CallbackInfo& info) {
  CheckIdle();
  const std::string which = StringArg(info, 0, "which");
  CMAE_CHECK(which == "params", Value, "only the 'params' arena can be written, got '", which, "'");
  const cmae::Tensor& arena = model().params();
  CMAE_CHECK(info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array, DType,
             "values must be a Float32Array");
  Napi::Float32Array values = info[1].As<Napi::Float32Array>();
  const int64_t offset = NonNegativeIntArg(info, 2, "offset");
  const int64_t count = static_cast<int64_t>(values.ElementLength());
  CMAE_CHECK(offset <= arena.numel() && count <= arena.numel() - offset, Shape, "values [", offset, ", ", offset + count,
             ") do not fit the ", arena.numel(), "-element params arena");
  arena.backend().copy_from_host(arena.f32() + offset, values.Data(), sizeof(float) * static_cast<size_t>(count));
  return info.Env().Undefined();
}

// lossAndGrad(images, targetImages | null, maskNoise | null, outputs | undefined)
//   → Promise<{loss, reconstruction, contrastive, dense (DenseCL only)}>
Napi::Value ModelWrap::LossAndGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  model();
  // Copies of the tensor handles (shared storage): the memory stays alive until the call settles.
  const cmae::Tensor images = TensorArg(info, 0, "images");
  const cmae::Tensor* target_ptr = OptionalTensorArg(info, 1, "targetImages");
  const cmae::Tensor* noise_ptr = OptionalTensorArg(info, 2, "maskNoise");
  auto target = std::make_shared<cmae::Tensor>(target_ptr ? *target_ptr : cmae::Tensor());
  auto noise = std::make_shared<cmae::Tensor>(noise_ptr ? *noise_ptr : cmae::Tensor());
  // Optional outputs for inspection/tests: pred, mask, idsRestore, q, zT.
  auto outputs = std::make_shared<std::vector<cmae::Tensor>>(5);
  if (!info[3].IsUndefined() && !info[3].IsNull()) {
    CMAE_CHECK(info[3].IsObject(), Value, "outputs must be an object of Tensors");
    Napi::Object o = info[3].As<Napi::Object>();
    const char* keys[5] = {"pred", "mask", "idsRestore", "q", "zT"};
    for (size_t i = 0; i < 5; ++i) {
      Napi::Value v = o.Get(keys[i]);
      if (v.IsUndefined() || v.IsNull()) continue;
      TensorWrap* w = TensorWrap::FromValue(env, v);
      CMAE_CHECK(w != nullptr, Value, "outputs.", keys[i], " must be a Tensor");
      (*outputs)[i] = w->tensor(keys[i]);
    }
  }
  auto model_ref = model_;
  auto result = std::make_shared<cmae::model::LossResult>();
  const bool dense = model().config().has_dense_projector();
  return Queue(
      env,
      [=]() {
        auto opt = [](const cmae::Tensor& t) { return t.defined() ? &t : nullptr; };
        cmae::Backend& backend = model_ref->backend();
        std::vector<cmae::Tensor> staged_outputs(outputs->size());
        for (size_t i = 0; i < outputs->size(); ++i) staged_outputs[i] = OutputOnBackend((*outputs)[i], backend);
        CmaeModel::Outputs outs;
        outs.pred = opt(staged_outputs[0]);
        outs.mask = opt(staged_outputs[1]);
        outs.ids_restore = opt(staged_outputs[2]);
        outs.q = opt(staged_outputs[3]);
        outs.z_t = opt(staged_outputs[4]);
        const cmae::Tensor staged_images = OnBackend(images, backend);
        const cmae::Tensor staged_target = OnBackend(*target, backend), staged_noise = OnBackend(*noise, backend);
        *result = model_ref->loss_and_grad(staged_images, opt(staged_target), opt(staged_noise), outs);
        for (size_t i = 0; i < outputs->size(); ++i) DownloadInto((*outputs)[i], staged_outputs[i]);
      },
      [result, dense](Napi::Env e) {
        Napi::Object o = Napi::Object::New(e);
        o.Set("loss", result->total);
        o.Set("reconstruction", result->reconstruction);
        o.Set("contrastive", result->contrastive);
        if (dense) o.Set("dense", result->dense);
        return o;
      });
}

// encode(out [N, blocks·dim], images, pool 'cls' | 'mean' | 'avg', branch 'online' | 'momentum', blocks) → Promise<void>
// CPU tensors are welcome for a model on a device: the job uploads the images and downloads the
// features on its worker thread.
Napi::Value ModelWrap::Encode(const Napi::CallbackInfo& info) {
  model();
  const cmae::Tensor out = TensorArg(info, 0, "out");
  const cmae::Tensor images = TensorArg(info, 1, "images");
  const cmae::model::Pool pool = cmae::model::parse_pool(StringArg(info, 2, "pool"));
  const cmae::model::Branch branch = cmae::model::parse_branch(StringArg(info, 3, "branch"));
  const int64_t blocks = PositiveIntArg(info, 4, "blocks");
  return QueueImagesToOutput(info.Env(), out, images,
                             [pool, branch, blocks](CmaeModel& m, const cmae::Tensor& staged_out, const cmae::Tensor& staged_images) {
                               m.encode(staged_out, staged_images, pool, branch, blocks);
                             });
}

// clsAttention(out [N, heads, L], images, branch 'online' | 'momentum') → Promise<void>, as encode.
Napi::Value ModelWrap::ClsAttention(const Napi::CallbackInfo& info) {
  model();
  const cmae::Tensor out = TensorArg(info, 0, "out");
  const cmae::Tensor images = TensorArg(info, 1, "images");
  const cmae::model::Branch branch = cmae::model::parse_branch(StringArg(info, 2, "branch"));
  return QueueImagesToOutput(info.Env(), out, images, [branch](CmaeModel& m, const cmae::Tensor& staged_out, const cmae::Tensor& staged_images) {
    m.cls_attention(staged_out, staged_images, branch);
  });
}

Napi::Value ModelWrap::QueueImagesToOutput(Napi::Env env, const cmae::Tensor& out, const cmae::Tensor& images,
                                           std::function<void(CmaeModel&, const cmae::Tensor&, const cmae::Tensor&)> fn) {
  auto model_ref = model_;
  return Queue(
      env,
      [model_ref, out, images, fn]() {
        cmae::Backend& backend = model_ref->backend();
        const cmae::Tensor staged_out = OutputOnBackend(out, backend);
        fn(*model_ref, staged_out, OnBackend(images, backend));
        DownloadInto(out, staged_out);
      },
      nullptr);
}

// classifierLossAndGrad(images, targets, logits | null, dropPath, step) → Promise<loss>: a classifier
// model's step (dropPath in [0, 1), checked by the model; step: the drop-path draws' counter).
Napi::Value ModelWrap::ClassifierLossAndGrad(const Napi::CallbackInfo& info) {
  model();
  const cmae::Tensor images = TensorArg(info, 0, "images");
  const cmae::Tensor targets = TensorArg(info, 1, "targets");
  const cmae::Tensor* logits_ptr = OptionalTensorArg(info, 2, "logits");
  const cmae::Tensor logits = logits_ptr ? *logits_ptr : cmae::Tensor();
  const double drop_path = NumberArg(info, 3, "dropPath");
  const auto step = static_cast<uint64_t>(NonNegativeIntArg(info, 4, "step"));
  auto model_ref = model_;
  auto loss = std::make_shared<double>(0.0);
  return Queue(
      info.Env(),
      [=]() {
        cmae::Backend& backend = model_ref->backend();
        const cmae::Tensor staged_logits = OutputOnBackend(logits, backend);
        *loss = model_ref->classifier_loss_and_grad(OnBackend(images, backend), OnBackend(targets, backend),
                                                    staged_logits.defined() ? &staged_logits : nullptr, drop_path, step);
        if (logits.defined()) DownloadInto(logits, staged_logits);
      },
      [loss](Napi::Env e) { return Napi::Number::New(e, *loss); });
}

// predict(out [N, numClasses], images) → Promise<void>: a classifier model's logits.
Napi::Value ModelWrap::Predict(const Napi::CallbackInfo& info) {
  model();
  const cmae::Tensor out = TensorArg(info, 0, "out");
  const cmae::Tensor images = TensorArg(info, 1, "images");
  return QueueImagesToOutput(info.Env(), out, images, [](CmaeModel& m, const cmae::Tensor& staged_out, const cmae::Tensor& staged_images) {
    m.predict(staged_out, staged_images);
  });
}

// updateMomentum(m) → Promise<void>
Napi::Value ModelWrap::UpdateMomentum(const Napi::CallbackInfo& info) {
  model();
  const double momentum = NumberArg(info, 0, "momentum");
  auto model_ref = model_;
  return Queue(info.Env(), [=]() { model_ref->update_momentum(momentum); }, nullptr);
}

Napi::Value ModelWrap::ResetMomentum(const Napi::CallbackInfo& info) {
  CheckIdle();
  model().reset_momentum();
  return info.Env().Undefined();
}

Napi::Value ModelWrap::SetMaskCounter(const Napi::CallbackInfo& info) {
  CheckIdle();
  model().set_mask_counter(static_cast<uint64_t>(NonNegativeIntArg(info, 0, "counter")));
  return info.Env().Undefined();
}

// setRecomputeActivations(on): activation recomputation for the training step (its workspace is
// planned anew at the next step, and freed now).
Napi::Value ModelWrap::SetRecomputeActivations(const Napi::CallbackInfo& info) {
  CheckIdle();
  model().set_recompute_activations(BoolArg(info, 0, "recomputeActivations"));
  ReportMemory(info.Env());
  return info.Env().Undefined();
}

// setCollective(collective | null): trains data-parallel in that job from the next step on
// (CmaeModel::set_collective), or alone again.
Napi::Value ModelWrap::SetCollective(const Napi::CallbackInfo& info) {
  CheckIdle();
  if (info[0].IsNull() || info[0].IsUndefined()) {
    model().set_collective(nullptr);
  } else {
    CollectiveWrap* wrap = CollectiveWrap::FromValue(info.Env(), info[0]);
    CMAE_CHECK(wrap != nullptr, Value, "collective must be a NativeCollective (from openCollective) or null");
    model().set_collective(wrap->collective());
  }
  ReportMemory(info.Env());
  return info.Env().Undefined();
}

Napi::Value ModelWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), model_ == nullptr); }

// dispose(): frees the model's memory now (idempotent). A BusyError while a call runs.
Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  if (!model_) return info.Env().Undefined();
  CheckIdle();
  model_.reset();
  ReportMemory(info.Env());
  return info.Env().Undefined();
}

void RegisterModel(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor = ModelWrap::Init(env);
  GetAddonData(env).model_constructor = Napi::Persistent(constructor);
  exports.Set("NativeModel", constructor);
  CMAE_EXPORT(exports, "planParameters", PlanParameters);
}

}  // namespace cmae::napi
