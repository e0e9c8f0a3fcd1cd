#include "tensor.h"

#include <limits>
#include <sstream>
#include <vector>

#include "backend/backend.h"

namespace cmae {

const char* dtype_name(DType dtype) { return dtype == DType::F32 ? "float32" : "int32"; }
const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

DType parse_dtype(const std::string& name) {
  if (name == "float32") return DType::F32;
  if (name == "int32") return DType::I32;
  fail(ErrorKind::DType, "unsupported dtype '", name, "' (expected 'float32' or 'int32')");
}

int64_t shape_numel(const Shape& shape) {
  // Bound the count so that count · 8 bytes still fits: no byte size computed from it overflows.
  constexpr int64_t kMaxElements = std::numeric_limits<int64_t>::max() / 8;
  int64_t n = 1;
  for (int64_t d : shape) {
    CMAE_CHECK(d >= 0, Shape, "shape ", shape_string(shape), " has a negative dimension");
    CMAE_CHECK(d == 0 || n <= kMaxElements / d, Shape, "shape ", shape_string(shape), " has too many elements");
    n *= d;
  }
  return n;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Storage::Storage(size_t bytes, Backend& backend) : bytes_(bytes), backend_(&backend) { data_ = backend.allocate(bytes); }

Storage::~Storage() { backend_->deallocate(data_, bytes_); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Backend& backend) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(t.numel_) * dtype_size(dtype), backend);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Backend& backend) {
  Tensor t = empty(shape, dtype, backend);
  backend.fill_zero(t.storage_->data(), t.bytes());
  return t;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) { return empty(shape, dtype, cpu_backend()); }
Tensor Tensor::zeros(const Shape& shape, DType dtype) { return zeros(shape, dtype, cpu_backend()); }

Device Tensor::device() const { return storage_ ? storage_->backend().device() : Device::CPU; }

int64_t Tensor::size(int64_t axis) const {
  const int64_t d = dim();
  if (axis < 0) axis += d;
  CMAE_CHECK(axis >= 0 && axis < d, Shape, "axis out of range for a tensor of shape ", shape_string(shape_));
  return shape_[axis];
}

float* Tensor::f32() const {
  expect_dtype(DType::F32, "tensor");
  return data<float>();
}

int32_t* Tensor::i32() const {
  expect_dtype(DType::I32, "tensor");
  return data<int32_t>();
}

Tensor Tensor::reshape(const Shape& shape) const {
  CMAE_CHECK(shape_numel(shape) == numel_, Shape, "cannot reshape ", shape_string(shape_), " (", numel_,
             " elements) to ", shape_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::to(Backend& target) const {
  Tensor t = empty(shape_, dtype_, target);
  if (bytes() == 0) return t;
  Backend& source = backend();
  if (source.device() == Device::CPU) {
    target.copy_from_host(t.storage_->data(), storage_->data(), bytes());
  } else if (target.device() == Device::CPU) {
    source.copy_to_host(t.storage_->data(), storage_->data(), bytes());
  } else if (&source == &target) {
    target.copy(t.storage_->data(), storage_->data(), bytes());
    target.synchronize();
  } else {
    std::vector<unsigned char> host(bytes());
    source.copy_to_host(host.data(), storage_->data(), bytes());
    target.copy_from_host(t.storage_->data(), host.data(), bytes());
  }
  return t;
}

void Tensor::expect_shape(const Shape& shape, const char* name) const {
  CMAE_CHECK(shape == shape_, Shape, name, " must have shape ", shape_string(shape), ", got ", shape_string(shape_));
}

void Tensor::expect_dtype(DType dtype, const char* name) const {
  CMAE_CHECK(dtype == dtype_, DType, name, " must be ", dtype_name(dtype), ", got ", dtype_name(dtype_));
}

void Tensor::expect_device(Device device, const char* name) const {
  CMAE_CHECK(device == this->device(), Device, name, " must be on ", device_name(device), ", got ", device_name(this->device()));
}

void Tensor::expect_backend(const Backend& backend, const char* name) const {
  CMAE_CHECK(&backend == &this->backend(), Device, name, " must be on ", backend.name(), ", got ", this->backend().name());
}

}  // namespace cmae
