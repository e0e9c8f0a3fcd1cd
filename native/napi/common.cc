#include "common.h"

#include <cmath>
#include <mutex>
#include <new>

#include "tensor_wrap.h"

namespace cmae::napi {

AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

static const char* ErrorClassName(cmae::ErrorKind kind) {
  switch (kind) {
    case cmae::ErrorKind::Shape: return "ShapeError";
    case cmae::ErrorKind::DType: return "DTypeError";
    case cmae::ErrorKind::Device: return "DeviceError";
    case cmae::ErrorKind::Value: return "ValueError";
    case cmae::ErrorKind::Format: return "FormatError";
    case cmae::ErrorKind::IO: return "IOError";
    case cmae::ErrorKind::Disposed: return "DisposedError";
    case cmae::ErrorKind::Busy: return "BusyError";
    case cmae::ErrorKind::Aborted: return "AbortError";
    case cmae::ErrorKind::Distributed: return "DistributedError";
    case cmae::ErrorKind::Internal: return "CmaeError";
  }
  return "CmaeError";
}

Napi::Error MakeJsError(Napi::Env env, cmae::ErrorKind kind, const std::string& message) {
  AddonData& data = GetAddonData(env);
  const char* class_name = ErrorClassName(kind);
  if (!data.error_classes.IsEmpty()) {
    Napi::Value ctor = data.error_classes.Value().Get(class_name);
    if (ctor.IsFunction()) {
      Napi::Object error = ctor.As<Napi::Function>().New({Napi::String::New(env, message)});
      return Napi::Error(env, error);
    }
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("name", Napi::String::New(env, class_name));
  return error;
}

ErrorInfo CurrentError() {
  try {
    throw;
  } catch (const cmae::Error& e) {
    return {e.kind(), e.what()};
  } catch (const std::bad_alloc&) {
    return {cmae::ErrorKind::Device, "out of memory (host)"};
  } catch (const std::exception& e) {
    return {cmae::ErrorKind::Internal, e.what()};
  } catch (...) {
    return {cmae::ErrorKind::Internal, "unknown native error"};
  }
}

static void ThrowArg(const Napi::CallbackInfo& info, cmae::ErrorKind kind, const std::string& message) {
  throw MakeJsError(info.Env(), kind, message);
}

const cmae::Tensor& TensorArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const cmae::Tensor* tensor = OptionalTensorArg(info, index, name);
  if (!tensor) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be a Tensor, got nothing");
  return *tensor;
}

const cmae::Tensor* OptionalTensorArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (value.IsUndefined() || value.IsNull()) return nullptr;
  TensorWrap* wrap = TensorWrap::FromValue(info.Env(), value);
  if (!wrap) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be a Tensor");
  return &wrap->tensor(name);
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = NumberArg(info, index, name);
  if (std::floor(v) != v || std::fabs(v) > 9.0e15) {
    ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be an integer, got " + std::to_string(v));
  }
  return static_cast<int64_t>(v);
}

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsNumber()) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be a number");
  const double v = value.As<Napi::Number>().DoubleValue();
  if (std::isnan(v)) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must not be NaN");
  return v;
}

double FiniteArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = NumberArg(info, index, name);
  CMAE_CHECK(std::isfinite(v), Value, name, " must be finite, got ", v);
  return v;
}

double PositiveArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = NumberArg(info, index, name);
  CMAE_CHECK(std::isfinite(v) && v > 0.0, Value, name, " must be a positive finite number, got ", v);
  return v;
}

double NonNegativeArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = NumberArg(info, index, name);
  CMAE_CHECK(std::isfinite(v) && v >= 0.0, Value, name, " must be a non-negative finite number, got ", v);
  return v;
}

double RangeArg(const Napi::CallbackInfo& info, size_t index, const char* name, double lo, double hi, bool hi_open) {
  const double v = NumberArg(info, index, name);
  const bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
  CMAE_CHECK(ok, Value, name, " must be in [", lo, ", ", hi, hi_open ? ")" : "]", ", got ", v);
  return v;
}

int64_t PositiveIntArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const int64_t v = IntArg(info, index, name);
  CMAE_CHECK(v >= 1, Value, name, " must be a positive integer, got ", v);
  return v;
}

int64_t NonNegativeIntArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const int64_t v = IntArg(info, index, name);
  CMAE_CHECK(v >= 0, Value, name, " must be a non-negative integer, got ", v);
  return v;
}

double NumberProperty(Napi::Object object, const char* object_name, const char* key) {
  Napi::Value v = object.Get(key);
  CMAE_CHECK(!v.IsUndefined(), Value, object_name, ".", key, " is missing");
  CMAE_CHECK(v.IsNumber(), Value, object_name, ".", key, " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  CMAE_CHECK(!std::isnan(d), Value, object_name, ".", key, " must not be NaN");
  return d;
}

int64_t IntProperty(Napi::Object object, const char* object_name, const char* key) {
  const double d = NumberProperty(object, object_name, key);
  CMAE_CHECK(std::floor(d) == d && std::fabs(d) <= 9.0e15, Value, object_name, ".", key, " must be an integer, got ", d);
  return static_cast<int64_t>(d);
}

bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsBoolean()) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsString()) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

cmae::Shape ShapeArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsArray()) ThrowArg(info, cmae::ErrorKind::Shape, std::string(name) + " must be an array of dimensions");
  Napi::Array array = value.As<Napi::Array>();
  cmae::Shape shape;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value d = array.Get(i);
    const double v = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1.0;
    if (!(v >= 0) || std::floor(v) != v || v > 9.0e15) {
      ThrowArg(info, cmae::ErrorKind::Shape,
               std::string(name) + "[" + std::to_string(i) + "] must be a non-negative integer");
    }
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

void ExpectShape(const cmae::Tensor& t, const char* name, cmae::DType dtype, const cmae::Shape& shape) {
  t.expect_dtype(dtype, name);
  t.expect_shape(shape, name);
}

void ExpectRank(const cmae::Tensor& t, const char* name, cmae::DType dtype, int64_t rank, const char* layout) {
  t.expect_dtype(dtype, name);
  CMAE_CHECK(t.dim() == rank, Shape, name, " must be ", rank, "-D ", layout, ", got ", cmae::shape_string(t.shape()));
}

void ExpectIdsInRange(const cmae::Tensor& ids, const char* name, int64_t limit, const char* limit_name) {
  std::vector<int32_t> host;
  const int32_t* v = ids.i32();
  if (ids.device() != cmae::Device::CPU) {
    host.resize(static_cast<size_t>(ids.numel()));
    ids.backend().copy_to_host(host.data(), v, ids.bytes());
    v = host.data();
  }
  const int64_t n = ids.dim() >= 2 ? ids.size(-1) : ids.numel();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    CMAE_CHECK(v[i] >= 0 && v[i] < limit, Value, name, "[", i / n, ", ", i % n, "] = ", v[i], " is out of range [0, ", limit_name,
               ") = [0, ", limit, ")");
  }
}

namespace {
// What TakeExclusiveUse took for the synchronous binding running on this thread.
thread_local std::unique_lock<std::mutex> t_binding_use;
}  // namespace

void TakeExclusiveUse(cmae::Backend& backend) {
  std::mutex* use = backend.exclusive_use();
  if (!use || t_binding_use.mutex() == use) return;
  std::unique_lock<std::mutex> lock(*use, std::try_to_lock);
  CMAE_CHECK(lock.owns_lock(), Busy, backend.name(),
             " is running a model or optimizer job; call kernels on its tensors (or change its settings) once that job has finished");
  t_binding_use = std::move(lock);
}

void EndBindingCall() {
  if (t_binding_use.owns_lock()) t_binding_use.unlock();
  t_binding_use = std::unique_lock<std::mutex>();
}

cmae::Backend& SharedBackend(std::initializer_list<NamedTensor> tensors) {
  const NamedTensor* first = nullptr;
  for (const NamedTensor& t : tensors) {
    if (!t.first) continue;
    if (!first) {
      first = &t;
      continue;
    }
    CMAE_CHECK(&t.first->backend() == &first->first->backend(), Device, t.second, " is on ", t.first->backend().name(), " but ",
               first->second, " is on ", first->first->backend().name(), ": every tensor of a call must be on one device");
  }
  return first ? first->first->backend() : cmae::cpu_backend();
}

cmae::Backend& BackendOf(std::initializer_list<NamedTensor> tensors) {
  cmae::Backend& backend = SharedBackend(tensors);
  backend.make_current();
  TakeExclusiveUse(backend);
  return backend;
}

Napi::Object WrapTensor(Napi::Env env, const cmae::Tensor& tensor) { return TensorWrap::NewInstance(env, tensor); }

}  // namespace cmae::napi
