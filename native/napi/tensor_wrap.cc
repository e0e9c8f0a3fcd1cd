#include "tensor_wrap.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "common.h"
#include "devices.h"

namespace cmae::napi {

template <Napi::Value (TensorWrap::*Method)(const Napi::CallbackInfo&)>
Napi::Value TensorWrap::Guard(const Napi::CallbackInfo& info) {
  return TranslateErrors(info.Env(), [&] { return (this->*Method)(info); });
}

Napi::Function TensorWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::Shape>>("shape"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::DType>>("dtype"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::Device>>("device"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::Disposed>>("disposed"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::ToArray>>("toArray"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::View>>("view"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::CopyFrom>>("copyFrom"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::To>>("to"),
                         InstanceMethod<&TensorWrap::Guard<&TensorWrap::Dispose>>("dispose"),
                     });
}

Napi::Object TensorWrap::NewInstance(Napi::Env env, const cmae::Tensor& tensor) {
  auto* copy = new cmae::Tensor(tensor);
  Napi::External<cmae::Tensor> external = Napi::External<cmae::Tensor>::New(env, copy);
  Napi::Object object = GetAddonData(env).tensor_constructor.New({external});
  delete copy;  // the constructor copied it
  return object;
}

TensorWrap* TensorWrap::FromValue(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object object = value.As<Napi::Object>();
  if (!object.InstanceOf(GetAddonData(env).tensor_constructor.Value())) return nullptr;
  return Napi::ObjectWrap<TensorWrap>::Unwrap(object);
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw MakeJsError(info.Env(), cmae::ErrorKind::Value,
                      "NativeTensor cannot be constructed directly; use Tensor.from() or Tensor.empty()");
  }
  tensor_ = *info[0].As<Napi::External<cmae::Tensor>>().Data();
  reported_bytes_ = static_cast<int64_t>(tensor_.bytes());
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), reported_bytes_);
}

void TensorWrap::Finalize(Napi::BasicEnv env) { Release(env); }

const cmae::Tensor& TensorWrap::tensor(const char* name) const {
  if (!tensor_.defined()) {
    throw MakeJsError(Env(), cmae::ErrorKind::Disposed, std::string(name) + " was disposed and can no longer be used");
  }
  return tensor_;
}

void TensorWrap::Release(Napi::BasicEnv env) {
  if (!tensor_.defined()) return;
  Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
  reported_bytes_ = 0;
  tensor_ = cmae::Tensor();
}

Napi::Value TensorWrap::Shape(const Napi::CallbackInfo& info) {
  const cmae::Tensor& t = tensor("tensor");
  Napi::Array shape = Napi::Array::New(info.Env(), t.shape().size());
  for (size_t i = 0; i < t.shape().size(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(t.shape()[i])));
  return shape;
}

Napi::Value TensorWrap::DType(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cmae::dtype_name(tensor("tensor").dtype()));
}

Napi::Value TensorWrap::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DeviceName(tensor("tensor").backend()));
}

// to(device) → a new tensor holding a copy on that device.
Napi::Value TensorWrap::To(const Napi::CallbackInfo& info) {
  const cmae::Tensor& t = tensor("tensor");
  return WrapTensor(info.Env(), t.to(BackendForSpec(StringArg(info, 0, "device"))));
}

Napi::Value TensorWrap::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.defined());
}

static Napi::Value NewTypedArray(Napi::Env env, cmae::DType dtype, Napi::ArrayBuffer buffer, size_t length) {
  if (dtype == cmae::DType::F32) return Napi::Float32Array::New(env, length, buffer, 0);
  return Napi::Int32Array::New(env, length, buffer, 0);
}

Napi::Value TensorWrap::ToArray(const Napi::CallbackInfo& info) {
  const cmae::Tensor& t = tensor("tensor");
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(info.Env(), t.bytes());
  if (t.bytes() > 0) t.backend().copy_to_host(buffer.Data(), t.storage()->data(), t.bytes());
  return NewTypedArray(info.Env(), t.dtype(), buffer, static_cast<size_t>(t.numel()));
}

Napi::Value TensorWrap::View(const Napi::CallbackInfo& info) {
  const cmae::Tensor& t = tensor("tensor");
  Napi::Env env = info.Env();
  CMAE_CHECK(t.device() == cmae::Device::CPU, Device, "a zero-copy view needs a cpu tensor, this one is on ",
             cmae::device_name(t.device()), "; use toArray() for a copy");
  // The view owns a reference to the storage, so it stays valid after dispose() or GC of the
  // tensor handle. V8 counts an external ArrayBuffer's bytes as external memory by itself (until
  // the buffer is collected), so the view reports nothing more. Runtimes that forbid external
  // buffers (Electron's memory cage) get an error that says to use toArray() instead.
  auto* hold = new std::shared_ptr<cmae::Storage>(t.storage());
  napi_value buffer_value;
  napi_status status = napi_create_external_arraybuffer(
      env, t.storage()->data(), t.bytes(),
      [](napi_env, void*, void* hint) { delete static_cast<std::shared_ptr<cmae::Storage>*>(hint); }, hold,
      &buffer_value);
  if (status != napi_ok) {
    delete hold;
    throw MakeJsError(env, cmae::ErrorKind::Device,
                      "this runtime does not allow zero-copy views of native memory; use toArray() for a copy");
  }
  return NewTypedArray(env, t.dtype(), Napi::ArrayBuffer(env, buffer_value), static_cast<size_t>(t.numel()));
}

// copyFrom(typedArray): overwrite the contents from a TypedArray of the same dtype and length.
Napi::Value TensorWrap::CopyFrom(const Napi::CallbackInfo& info) {
  const cmae::Tensor& t = tensor("tensor");
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw MakeJsError(env, cmae::ErrorKind::Value, "source must be a Float32Array or Int32Array");
  Napi::TypedArray source = info[0].As<Napi::TypedArray>();
  const napi_typedarray_type want = t.dtype() == cmae::DType::F32 ? napi_float32_array : napi_int32_array;
  if (source.TypedArrayType() != want) {
    throw MakeJsError(env, cmae::ErrorKind::DType,
                      std::string("source must be a ") + (t.dtype() == cmae::DType::F32 ? "Float32Array" : "Int32Array") +
                          " for a " + cmae::dtype_name(t.dtype()) + " tensor");
  }
  if (static_cast<int64_t>(source.ElementLength()) != t.numel()) {
    throw MakeJsError(env, cmae::ErrorKind::Shape,
                      "source has " + std::to_string(source.ElementLength()) + " elements, tensor of shape " +
                          cmae::shape_string(t.shape()) + " needs " + std::to_string(t.numel()));
  }
  const uint8_t* bytes = static_cast<const uint8_t*>(source.ArrayBuffer().Data()) + source.ByteOffset();
  if (t.bytes() > 0) t.backend().copy_from_host(t.storage()->data(), bytes, t.bytes());
  return env.Undefined();
}

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  Release(info.Env());
  return info.Env().Undefined();
}

// ---- factories ----------------------------------------------------------------------------------

// The backend of an optional device argument ('cpu' when undefined).
static cmae::Backend& DeviceOption(const Napi::CallbackInfo& info, size_t index) {
  return info[index].IsUndefined() || info[index].IsNull() ? cmae::cpu_backend() : BackendForSpec(StringArg(info, index, "device"));
}

static Napi::Value TensorFromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw MakeJsError(env, cmae::ErrorKind::Value, "data must be a Float32Array or Int32Array");
  Napi::TypedArray source = info[0].As<Napi::TypedArray>();
  cmae::DType dtype;
  if (source.TypedArrayType() == napi_float32_array) {
    dtype = cmae::DType::F32;
  } else if (source.TypedArrayType() == napi_int32_array) {
    dtype = cmae::DType::I32;
  } else {
    throw MakeJsError(env, cmae::ErrorKind::DType, "data must be a Float32Array (float32) or Int32Array (int32)");
  }
  const cmae::Shape shape = ShapeArg(info, 1, "shape");
  const int64_t numel = cmae::shape_numel(shape);
  if (numel != static_cast<int64_t>(source.ElementLength())) {
    throw MakeJsError(env, cmae::ErrorKind::Shape,
                      "data has " + std::to_string(source.ElementLength()) + " elements but shape " +
                          cmae::shape_string(shape) + " needs " + std::to_string(numel));
  }
  cmae::Backend& backend = DeviceOption(info, 2);
  cmae::Tensor t = cmae::Tensor::empty(shape, dtype, backend);
  const uint8_t* bytes = static_cast<const uint8_t*>(source.ArrayBuffer().Data()) + source.ByteOffset();
  if (t.bytes() > 0) backend.copy_from_host(t.storage()->data(), bytes, t.bytes());
  return WrapTensor(env, t);
}

static Napi::Value TensorEmpty(const Napi::CallbackInfo& info) {
  const cmae::Shape shape = ShapeArg(info, 0, "shape");
  const cmae::DType dtype = cmae::parse_dtype(StringArg(info, 1, "dtype"));
  return WrapTensor(info.Env(), cmae::Tensor::empty(shape, dtype, DeviceOption(info, 2)));
}

static Napi::Value TensorFull(const Napi::CallbackInfo& info) {
  const cmae::Shape shape = ShapeArg(info, 0, "shape");
  const cmae::DType dtype = cmae::parse_dtype(StringArg(info, 1, "dtype"));
  const double value = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0.0;  // NaN allowed
  cmae::Backend& backend = DeviceOption(info, 3);
  // Filled on the host, then uploaded (a device backend has no fill kernel for arbitrary values).
  cmae::Tensor host = cmae::Tensor::empty(shape, dtype);
  if (dtype == cmae::DType::F32) {
    std::fill(host.data<float>(), host.data<float>() + host.numel(), static_cast<float>(value));
  } else {
    std::fill(host.data<int32_t>(), host.data<int32_t>() + host.numel(), static_cast<int32_t>(value));
  }
  return WrapTensor(info.Env(), backend.device() == cmae::Device::CPU ? host : host.to(backend));
}

void RegisterTensorFactories(Napi::Env env, Napi::Object exports) {
  CMAE_EXPORT(exports, "tensorFromArray", TensorFromArray);
  CMAE_EXPORT(exports, "tensorEmpty", TensorEmpty);
  CMAE_EXPORT(exports, "tensorFull", TensorFull);
}

}  // namespace cmae::napi
