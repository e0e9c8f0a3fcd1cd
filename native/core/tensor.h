// Tensor: a typed, shaped view of one backend's memory. Contiguous, row-major, 64-byte aligned.
// The memory is allocated and freed by the backend of the tensor's device (backend/backend.h), so a
// tensor's data pointer is only dereferenced on the host when device() is CPU; everything else goes
// through the backend (copies, ops). float32 values and int32 indices.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace cmae {

class Backend;

enum class DType : int { F32 = 0, I32 = 1 };
enum class Device : int { CPU = 0, CUDA = 1 };

inline size_t dtype_size(DType dtype) { return dtype == DType::F32 ? 4 : 4; }
const char* dtype_name(DType dtype);
const char* device_name(Device device);
DType parse_dtype(const std::string& name);  // throws ErrorKind::DType

using Shape = std::vector<int64_t>;
// Element count; throws Shape on a negative dimension or when the count (or its bytes at 8 bytes
// an element) would overflow int64.
int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);  // "[2, 3, 4]"

constexpr size_t kTensorAlignment = 64;

// Owns one allocation of a backend. Shared by tensors and by JS ArrayBuffer views (the view's
// finalizer holds a shared_ptr), so memory lives as long as anything can still see it.
class Storage {
 public:
  Storage(size_t bytes, Backend& backend);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Backend& backend() const { return *backend_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Backend* backend_;  // backends live for the whole process
};

class Tensor {
 public:
  Tensor() = default;
  // Allocates uninitialised storage for `shape` on `backend` (throws Shape on negative dims or a
  // byte size that overflows).
  static Tensor empty(const Shape& shape, DType dtype, Backend& backend);
  static Tensor zeros(const Shape& shape, DType dtype, Backend& backend);
  // The same on the CPU backend.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t axis) const;  // negative axes count from the end
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const;
  Backend& backend() const { return storage_->backend(); }
  size_t bytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // The element pointer, in the backend's memory (a host pointer only on the CPU).
  template <typename T>
  T* data() const { return static_cast<T*>(storage_->data()); }
  float* f32() const;    // throws DType unless float32
  int32_t* i32() const;  // throws DType unless int32

  // Same storage, new shape with the same element count (throws Shape otherwise).
  Tensor reshape(const Shape& shape) const;
  // A copy in `backend`'s memory (through host memory when neither side is the CPU). Returns once
  // the copy is complete.
  Tensor to(Backend& backend) const;

  // Checks used by every entry point; `name` appears in the message ("qkv must be ...").
  void expect_shape(const Shape& shape, const char* name) const;
  void expect_dtype(DType dtype, const char* name) const;
  void expect_device(Device device, const char* name) const;
  // The same backend (device kind and index: a cuda:1 tensor is not on cuda:0).
  void expect_backend(const Backend& backend, const char* name) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
};

}  // namespace cmae
