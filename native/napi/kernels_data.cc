// Bindings of the data family (ops/data.h; the host pipeline is native/data/augment.h):
//   makeViews(online, target|null, shifts|null, sources: Uint8Array, [N, H, W, C], indices: Int32Array,
//             params: object, seed, stream)                 synchronous: DataOps::make_views of the
//                                                           backend of the output tensors (the CPU's
//                                                           runs on the compute pool)
//   makeViewsAsync(same arguments) → Promise<void>          CPU tensors: libuv worker, one thread
//   computeMeanStd(sources: Uint8Array, [N, H, W, C]) → { mean: number[], std: number[] }
//   augmentDraws(B, [H, W, C], params, seed, stream) → SampleDraws[] what makeViews draws for each
//                                                           batch position (data/augment_math.h
//                                                           draw_sample), for known-answer tests
// params uses the camelCase names of AugmentParams (outSize, shiftRange, masterSize, bicubic,
// scaleMin, scaleMax, ratioMin, ratioMax, flipP, jitterP, brightness, contrast, saturation, hue,
// grayscaleP, blurP, blurSigmaMin, blurSigmaMax, blurReferenceSize, mean, std, randomCrop,
// twoViews); a missing key keeps the C++ default.
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "data/augment.h"
#include "data/augment_math.h"
#include "kernels.h"

namespace cmae::napi {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

std::string Key(const char* key) { return std::string("params.") + key; }

bool HasField(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return !(v.IsUndefined() || v.IsNull());
}

double NumberField(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) cmae::fail(cmae::ErrorKind::Value, Key(key), " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d)) cmae::fail(cmae::ErrorKind::Value, Key(key), " must not be NaN");
  return d;
}

int64_t IntField(const Napi::Object& o, const char* key, int64_t fallback) {
  const double d = NumberField(o, key, static_cast<double>(fallback));
  if (std::floor(d) != d || std::fabs(d) > kMaxSafeInteger) cmae::fail(cmae::ErrorKind::Value, Key(key), " must be an integer, got ", d);
  return static_cast<int64_t>(d);
}

bool BoolField(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) cmae::fail(cmae::ErrorKind::Value, Key(key), " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// mean / std: an array (or typed array) of 1 or C numbers; 1 is broadcast over the channels.
void ChannelField(const Napi::Object& o, const char* key, float* out, int64_t C) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return;
  if (!(v.IsArray() || v.IsTypedArray())) cmae::fail(cmae::ErrorKind::Value, Key(key), " must be an array of numbers");
  Napi::Object arr = v.As<Napi::Object>();
  const int64_t n = static_cast<int64_t>(arr.Get("length").As<Napi::Number>().Int64Value());
  if (n != 1 && n != C) cmae::fail(cmae::ErrorKind::Shape, Key(key), " must have 1 or ", C, " entries (one per channel), got ", n);
  for (int64_t c = 0; c < C; ++c) {
    Napi::Value e = arr.Get(static_cast<uint32_t>(n == 1 ? 0 : c));
    if (!e.IsNumber()) cmae::fail(cmae::ErrorKind::Value, Key(key), "[", c, "] must be a number");
    out[c] = static_cast<float>(e.As<Napi::Number>().DoubleValue());
  }
}

cmae::AugmentParams ReadParams(Napi::Value value, int64_t C) {
  if (!value.IsObject()) cmae::fail(cmae::ErrorKind::Value, "params must be an object");
  Napi::Object o = value.As<Napi::Object>();
  cmae::AugmentParams p;
  if (!HasField(o, "outSize")) cmae::fail(cmae::ErrorKind::Value, "params.outSize is required");
  p.out_size = IntField(o, "outSize", p.out_size);
  p.shift_range = IntField(o, "shiftRange", p.shift_range);
  p.master_size = IntField(o, "masterSize", p.master_size);
  p.bicubic = BoolField(o, "bicubic", p.bicubic);
  p.scale_min = NumberField(o, "scaleMin", p.scale_min);
  p.scale_max = NumberField(o, "scaleMax", p.scale_max);
  p.ratio_min = NumberField(o, "ratioMin", p.ratio_min);
  p.ratio_max = NumberField(o, "ratioMax", p.ratio_max);
  p.flip_p = NumberField(o, "flipP", p.flip_p);
  p.jitter_p = NumberField(o, "jitterP", p.jitter_p);
  p.brightness = NumberField(o, "brightness", p.brightness);
  p.contrast = NumberField(o, "contrast", p.contrast);
  p.saturation = NumberField(o, "saturation", p.saturation);
  p.hue = NumberField(o, "hue", p.hue);
  p.grayscale_p = NumberField(o, "grayscaleP", p.grayscale_p);
  p.blur_p = NumberField(o, "blurP", p.blur_p);
  p.blur_sigma_min = NumberField(o, "blurSigmaMin", p.blur_sigma_min);
  p.blur_sigma_max = NumberField(o, "blurSigmaMax", p.blur_sigma_max);
  p.blur_reference_size = NumberField(o, "blurReferenceSize", p.blur_reference_size);
  ChannelField(o, "mean", p.mean, C);
  ChannelField(o, "std", p.std, C);
  p.random_crop = BoolField(o, "randomCrop", p.random_crop);
  p.two_views = BoolField(o, "twoViews", p.two_views);
  return p;
}

struct SourceDims {
  int64_t N, H, W, C;
};

Napi::Uint8Array SourcesArg(const Napi::CallbackInfo& info, size_t index) {
  Napi::Value v = info[index];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    cmae::fail(cmae::ErrorKind::DType, "sources must be a Uint8Array of (N, H, W, C) pixels");
  }
  return v.As<Napi::Uint8Array>();
}

SourceDims DimsArg(const Napi::CallbackInfo& info, size_t index, const Napi::Uint8Array& sources) {
  const cmae::Shape dims = ShapeArg(info, index, "dims");
  if (dims.size() != 4) cmae::fail(cmae::ErrorKind::Shape, "dims must be [N, H, W, C], got ", cmae::shape_string(dims));
  const SourceDims d{dims[0], dims[1], dims[2], dims[3]};
  const double expected = static_cast<double>(d.N) * d.H * d.W * d.C;
  if (expected != static_cast<double>(sources.ElementLength())) {
    cmae::fail(cmae::ErrorKind::Shape, "sources has ", sources.ElementLength(), " bytes but dims ", cmae::shape_string(dims),
               " need ", static_cast<int64_t>(expected));
  }
  return d;
}

uint64_t SeedArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const int64_t v = IntArg(info, index, name);
  if (v < 0 || static_cast<double>(v) > kMaxSafeInteger) cmae::fail(cmae::ErrorKind::Value, name, " must be a non-negative safe integer, got ", v);
  return static_cast<uint64_t>(v);
}

// Everything makeViews needs, read and checked on the JS thread.
struct ViewsCall {
  cmae::Tensor online, target, shifts;  // target/shifts undefined when not given
  const uint8_t* sources = nullptr;     // host memory (the Uint8Array)
  SourceDims dims{};
  std::vector<int32_t> indices;
  cmae::AugmentParams params;
  uint64_t seed = 0, stream = 0;

  int64_t batch() const { return static_cast<int64_t>(indices.size()); }
  float* target_or_null() const { return target.defined() ? target.f32() : nullptr; }
  int32_t* shifts_or_null() const { return shifts.defined() ? shifts.i32() : nullptr; }

  // On the calling thread only, for CPU tensors: makeViewsAsync's worker (one thread, so it runs
  // beside a training step without competing for the compute pool) calls the host pipeline
  // directly rather than the CPU backend's op, which is parallel.
  void run_on_this_thread() const {
    cmae::data::make_views(online.f32(), target_or_null(), shifts_or_null(), sources, dims.N, dims.H, dims.W, dims.C,
                           indices.data(), batch(), params, seed, stream, /*parallel=*/false);
  }

  // The backend every output is on (a DeviceError naming two that differ).
  cmae::Backend& outputs_backend() const {
    return SharedBackend({{&online, "online"}, {target.defined() ? &target : nullptr, "target"},
                          {shifts.defined() ? &shifts : nullptr, "shifts"}});
  }

  // makeViews: DataOps::make_views of the outputs' backend, on the calling thread.
  void run_on_backend() const {
    cmae::Backend& backend = BackendOf({{&online, "online"}, {target.defined() ? &target : nullptr, "target"},
                                        {shifts.defined() ? &shifts : nullptr, "shifts"}});
    if (backend.device() == cmae::Device::CPU) {
      backend.make_views(online.f32(), target_or_null(), shifts_or_null(), sources, dims.N, dims.H, dims.W, dims.C,
                         indices.data(), batch(), params, seed, stream);
    } else {
      run_on_device(backend);
    }
  }

  // A device backend's make_views on the batch's own images: they are gathered on the host (B
  // images, not the whole source), uploaded with the local indices 0..B-1 (the draws depend on
  // the sample's place b, not on its index, so the views are the same), and waited for before
  // the uploads are freed. The caller holds the device (make_current, exclusive use).
  void run_on_device(cmae::Backend& backend) const {
    const int64_t B = batch();
    if (B == 0) return;
    const size_t image_bytes = static_cast<size_t>(dims.H * dims.W * dims.C), bytes = image_bytes * static_cast<size_t>(B);
    std::vector<uint8_t> gathered(bytes);
    std::vector<int32_t> local(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(gathered.data() + static_cast<size_t>(b) * image_bytes, sources + static_cast<size_t>(indices[b]) * image_bytes, image_bytes);
      local[static_cast<size_t>(b)] = static_cast<int32_t>(b);
    }
    // No uint8 dtype: the bytes travel in an int32 tensor of ceil(bytes / 4) elements.
    const cmae::Tensor device_sources = cmae::Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, cmae::DType::I32, backend);
    const cmae::Tensor device_indices = cmae::Tensor::empty({B}, cmae::DType::I32, backend);
    backend.copy_from_host(device_sources.data<void>(), gathered.data(), bytes);
    backend.copy_from_host(device_indices.i32(), local.data(), static_cast<size_t>(B) * sizeof(int32_t));
    backend.make_views(online.f32(), target_or_null(), shifts_or_null(), device_sources.data<uint8_t>(), B, dims.H, dims.W, dims.C,
                       device_indices.i32(), B, params, seed, stream);
    backend.synchronize();
  }
};

// The outputs may be on any one device (checked by outputs_backend).
ViewsCall ReadViewsCall(const Napi::CallbackInfo& info, Napi::Uint8Array* sources_out) {
  ViewsCall call;
  const cmae::Tensor& online = TensorArg(info, 0, "online");
  const cmae::Tensor* target = OptionalTensorArg(info, 1, "target");
  const cmae::Tensor* shifts = OptionalTensorArg(info, 2, "shifts");
  Napi::Uint8Array sources = SourcesArg(info, 3);
  call.dims = DimsArg(info, 4, sources);
  Napi::Value idx = info[5];
  if (!idx.IsTypedArray() || idx.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    cmae::fail(cmae::ErrorKind::DType, "indices must be an Int32Array");
  }
  Napi::Int32Array indices = idx.As<Napi::Int32Array>();
  call.indices.assign(indices.Data(), indices.Data() + indices.ElementLength());
  call.params = ReadParams(info[6], call.dims.C);
  call.seed = SeedArg(info, 7, "seed");
  call.stream = SeedArg(info, 8, "stream");

  const int64_t B = static_cast<int64_t>(call.indices.size());
  const int64_t C = call.dims.C, S = call.params.out_size;
  if (C != 1 && C != 3) cmae::fail(cmae::ErrorKind::Shape, "sources must have 1 or 3 channels, got C = ", C);
  if (S <= 0) cmae::fail(cmae::ErrorKind::Value, "params.outSize must be > 0, got ", S);
  const cmae::Shape view_shape{B, C, S, S};
  online.expect_dtype(cmae::DType::F32, "online");
  online.expect_shape(view_shape, "online");
  if (call.params.two_views && !target) cmae::fail(cmae::ErrorKind::Value, "target must be a Tensor when params.twoViews is true");
  if (!call.params.two_views && target) cmae::fail(cmae::ErrorKind::Value, "target must be null when params.twoViews is false");
  if (target) {
    target->expect_dtype(cmae::DType::F32, "target");
    target->expect_shape(view_shape, "target");
    call.target = *target;
  }
  if (shifts) {
    shifts->expect_dtype(cmae::DType::I32, "shifts");
    shifts->expect_shape({B, 2}, "shifts");
    call.shifts = *shifts;
  }
  call.online = online;
  call.sources = sources.Data();
  // Argument errors surface here, on the calling thread, for both variants (ops do not validate).
  cmae::data::validate_views_args(call.online.f32(), call.target_or_null(), call.dims.N, call.dims.H, call.dims.W, C,
                                  call.indices.data(), B, call.params);
  if (sources_out) *sources_out = sources;
  return call;
}

Napi::Value MakeViews(const Napi::CallbackInfo& info) {
  const ViewsCall call = ReadViewsCall(info, nullptr);
  call.run_on_backend();
  return info.Env().Undefined();
}

// Runs one makeViews on a libuv worker: CPU outputs with a single thread (no OpenMP region), so
// that augmentation of the next batch overlaps a training step without competing for its
// threads; device outputs through the device's make_views, in the device's turn (a training job
// there finishes first).
// Holds a reference to the source Uint8Array and copies of the output tensors (shared storage),
// so all memory stays alive until the promise settles, whatever JS does meanwhile.
class MakeViewsWorker : public Napi::AsyncWorker {
 public:
  MakeViewsWorker(Napi::Env env, ViewsCall call, Napi::Uint8Array sources)
      : Napi::AsyncWorker(env, "cmae.makeViewsAsync"),
        deferred_(Napi::Promise::Deferred::New(env)),
        call_(std::move(call)),
        sources_ref_(Napi::Persistent(sources)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      cmae::Backend& backend = call_.outputs_backend();
      if (backend.device() == cmae::Device::CPU) {
        call_.run_on_this_thread();
        return;
      }
      std::unique_lock<std::mutex> turn;
      if (std::mutex* use = backend.exclusive_use()) turn = std::unique_lock<std::mutex>(*use);
      backend.make_current();
      call_.run_on_device(backend);
    } catch (...) {
      const ErrorInfo e = CurrentError();
      Fail(e.kind, e.message);
    }
  }

  void OnOK() override {
    if (failed_) {
      deferred_.Reject(MakeJsError(Env(), kind_, message_).Value());
    } else {
      deferred_.Resolve(Env().Undefined());
    }
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  void Fail(cmae::ErrorKind kind, const std::string& message) {
    failed_ = true;
    kind_ = kind;
    message_ = message;
  }

  Napi::Promise::Deferred deferred_;
  ViewsCall call_;
  Napi::Reference<Napi::Uint8Array> sources_ref_;
  bool failed_ = false;
  cmae::ErrorKind kind_ = cmae::ErrorKind::Internal;
  std::string message_;
};

Napi::Value MakeViewsAsync(const Napi::CallbackInfo& info) {
  Napi::Uint8Array sources;
  ViewsCall call = ReadViewsCall(info, &sources);
  call.outputs_backend();  // mixed devices: a DeviceError now, on the JS thread
  auto* worker = new MakeViewsWorker(info.Env(), std::move(call), sources);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value ComputeMeanStd(const Napi::CallbackInfo& info) {
  Napi::Uint8Array sources = SourcesArg(info, 0);
  const SourceDims d = DimsArg(info, 1, sources);
  double mean[4], std[4];
  cmae::data::compute_mean_std(mean, std, sources.Data(), d.N, d.H, d.W, d.C);
  Napi::Env env = info.Env();
  Napi::Array m = Napi::Array::New(env, static_cast<size_t>(d.C)), s = Napi::Array::New(env, static_cast<size_t>(d.C));
  for (int64_t c = 0; c < d.C; ++c) {
    m.Set(static_cast<uint32_t>(c), Napi::Number::New(env, mean[c]));
    s.Set(static_cast<uint32_t>(c), Napi::Number::New(env, std[c]));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("mean", m);
  out.Set("std", s);
  return out;
}

// The draws of batch positions 0..B-1 for images of (H, W, C), exactly as make_views takes them.
Napi::Value AugmentDraws(const Napi::CallbackInfo& info) {
  const int64_t B = IntArg(info, 0, "batch");
  if (B < 0 || B > (1 << 20)) cmae::fail(cmae::ErrorKind::Value, "batch must be in [0, 2^20], got ", B);
  const cmae::Shape dims = ShapeArg(info, 1, "dims");
  if (dims.size() != 3) cmae::fail(cmae::ErrorKind::Shape, "dims must be [H, W, C], got ", cmae::shape_string(dims));
  const int64_t H = dims[0], W = dims[1], C = dims[2];
  const cmae::AugmentParams params = ReadParams(info[2], C);
  const uint64_t seed = SeedArg(info, 3, "seed"), stream = SeedArg(info, 4, "stream");
  // The parameter checks of makeViews (a batch of 0 needs no buffers).
  cmae::data::validate_views_args(nullptr, nullptr, 0, H, W, C, nullptr, 0, params);
  Napi::Env env = info.Env();
  const auto numbers = [&](std::initializer_list<double> v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    uint32_t i = 0;
    for (double x : v) a.Set(i++, Napi::Number::New(env, x));
    return a;
  };
  Napi::Array out = Napi::Array::New(env, static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const cmae::data::SampleDraws d = cmae::data::draw_sample(seed, stream, b, H, W, C, params);
    Napi::Object o = Napi::Object::New(env);
    o.Set("crop", numbers({static_cast<double>(d.crop.top), static_cast<double>(d.crop.left), static_cast<double>(d.crop.h),
                        static_cast<double>(d.crop.w)}));
    o.Set("flip", Napi::Boolean::New(env, d.flip));
    o.Set("shift", numbers({static_cast<double>(d.dy), static_cast<double>(d.dx)}));
    o.Set("jitter", Napi::Boolean::New(env, d.jitter));
    o.Set("order", numbers({static_cast<double>(d.order[0]), static_cast<double>(d.order[1]), static_cast<double>(d.order[2]),
                         static_cast<double>(d.order[3])}));
    o.Set("factor", numbers({d.factor[0], d.factor[1], d.factor[2], d.factor[3]}));
    o.Set("grayscale", Napi::Boolean::New(env, d.grayscale));
    o.Set("blur", Napi::Boolean::New(env, d.blur));
    o.Set("sigma", Napi::Number::New(env, d.sigma));
    out.Set(static_cast<uint32_t>(b), o);
  }
  return out;
}

}  // namespace

void RegisterDataKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "makeViews", MakeViews);
  CMAE_EXPORT(kernels, "makeViewsAsync", MakeViewsAsync);
  CMAE_EXPORT(kernels, "computeMeanStd", ComputeMeanStd);
  CMAE_EXPORT(kernels, "augmentDraws", AugmentDraws);
}

}  // namespace cmae::napi
