#include "common.h"

#include <cmath>

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
  if (std::floor(v) != v) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be an integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsNumber()) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must be a number");
  const double v = value.As<Napi::Number>().DoubleValue();
  if (std::isnan(v)) ThrowArg(info, cmae::ErrorKind::Value, std::string(name) + " must not be NaN");
  return v;
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

Napi::Object WrapTensor(Napi::Env env, const cmae::Tensor& tensor) { return TensorWrap::NewInstance(env, tensor); }

}  // namespace cmae::napi
