// The CUDA backend's memory primitives, execution policy and construction, and the entry points
// of each build (cuda_backend.h).
#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

CudaBackend::CudaBackend(int index) : index_(index) {
  make_current();
  properties_ = device_properties(index);
  stream_ = stream_create();
  // PyTorch's default "high" precision on GPUs with tensor cores (compute capability >= 8.0).
  precision_ = properties_.major >= 8 ? MatmulPrecision::TF32 : MatmulPrecision::FP32;
}

CudaBackend::~CudaBackend() {
  make_current();
  if (timer_) active_kernel_timer() = nullptr;
  if (scratch_) device_free(scratch_);
  stream_destroy(stream_);
}

void CudaBackend::make_current() {
  // The runtime's current device is per host thread; remember which one this thread has set.
  thread_local int current = -1;
  if (current == index_) return;
  set_device(index_);
  current = index_;
}

void* CudaBackend::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    make_current();
    const size_t grown = std::max({bytes, 2 * scratch_bytes_, size_t{64} << 10});
    if (scratch_) {
      stream_synchronize(stream_);
      device_free(scratch_);
    }
    scratch_ = nullptr;  // consistent if the allocation throws
    scratch_bytes_ = 0;
    scratch_ = device_alloc(grown);
    scratch_bytes_ = grown;
  }
  return scratch_;
}

std::string CudaBackend::name() const {
  return CMAE_CUDA_EMULATED ? std::string("cuda (emulated)") : "cuda:" + std::to_string(index_) + " (" + properties_.name + ")";
}

void* CudaBackend::allocate(size_t bytes) {
  make_current();
  return device_alloc(bytes == 0 ? 1 : bytes);
}

void CudaBackend::deallocate(void* ptr, size_t) noexcept {
  if (!ptr) return;
  try {
    make_current();
  } catch (...) {
    // cudaFree finds the device from the pointer; the current device only matters for new work.
  }
  device_free(ptr);
}

void CudaBackend::fill_zero(void* dst, size_t bytes) {
  make_current();
  fill_bytes(dst, 0, bytes, stream_);
}

void CudaBackend::copy_from_host(void* dst, const void* host_src, size_t bytes) {
  make_current();
  // The host buffer may be reused as soon as this returns.
  cmae::cuda::copy(dst, host_src, bytes, stream_);
  stream_synchronize(stream_);
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  make_current();
  cmae::cuda::copy(host_dst, src, bytes, stream_);
  stream_synchronize(stream_);
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  make_current();
  cmae::cuda::copy(dst, src, bytes, stream_);
}

void CudaBackend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) {
  make_current();
  if (rows > 0 && width > 0) cmae::cuda::copy_2d(dst, dst_pitch, src, src_pitch, width, rows, stream_);
}

void CudaBackend::zero_2d(void* dst, size_t pitch, size_t width, size_t rows) {
  make_current();
  if (rows > 0 && width > 0) fill_bytes_2d(dst, pitch, 0, width, rows, stream_);
}

void CudaBackend::set_kernel_timing(bool on) {
  if (on && !timer_) {
    CMAE_CHECK(active_kernel_timer() == nullptr, Value, "kernel timing is already on for another CUDA backend");
    timer_ = std::make_unique<KernelTimer>();
    active_kernel_timer() = timer_.get();
  } else if (!on && timer_) {
    make_current();
    timer_->take();  // the marks are freed once their work is done
    active_kernel_timer() = nullptr;
    timer_.reset();
  }
}

std::vector<KernelTime> CudaBackend::take_kernel_times() {
  make_current();
  return timer_ ? timer_->take() : std::vector<KernelTime>{};
}

void CudaBackend::synchronize() {
  make_current();
  stream_synchronize(stream_);
}

void CudaBackend::set_matmul_precision(MatmulPrecision precision) {
  CMAE_CHECK(precision == MatmulPrecision::FP32 || properties_.major >= 8, Value, matmul_precision_name(precision),
             " matmuls need tensor cores of compute capability >= 8.0; ", properties_.name, " has ", properties_.major, ".",
             properties_.minor);
  precision_ = precision;
}

MatmulPrecision CudaBackend::matmul_precision() const { return precision_; }

void CudaBackend::run_parts(int parts, const std::function<void(int)>& fn) {
  for (int part = 0; part < parts; ++part) fn(part);
}

namespace {

CudaDeviceInfo describe_device(const DeviceProperties& p) {
  CudaDeviceInfo info;
  info.name = p.name;
  info.major = p.major;
  info.minor = p.minor;
  info.multiprocessors = p.multiprocessors;
  info.memory_bytes = p.global_memory_bytes;
  return info;
}

}  // namespace

CMAE_CUDA_NAMESPACE_END

namespace cmae {

#if CMAE_CUDA_EMULATED

Backend& cuda_emulated_backend() {
  // Never destroyed: tensors may be released by finalizers during process exit.
  static cuda::CudaBackend* backend = new cuda::CudaBackend(0);
  return *backend;
}

const CudaProvider& cuda_emulated_provider() {
  static const CudaProvider provider{
      "emulated",
      [](std::string* status) {
        if (status) *status = "1 device (the SIMT emulator: kernels run on the host)";
        return 1;
      },
      [](int index) -> Backend& {
        CMAE_CHECK(index == 0, Device, "device 'cuda:", index, "' does not exist (the SIMT emulator has one device, cuda:0)");
        return cuda_emulated_backend();
      },
      [](int index) { return cuda::describe_device(static_cast<cuda::CudaBackend&>(cuda_emulated_provider().backend(index)).properties()); }};
  return provider;
}

#else

int cuda_device_count(std::string* status) {
  const int count = cuda::device_count();
  if (status) *status = count == 0 ? "no CUDA device (no driver, or no GPU visible)" : count == 1 ? "1 device" : std::to_string(count) + " devices";
  return count;
}

Backend& cuda_device_backend(int index) {
  static std::mutex mutex;
  static std::vector<cuda::CudaBackend*> backends;  // never destroyed (see cuda_emulated_backend)
  std::lock_guard<std::mutex> lock(mutex);
  std::string status;
  const int count = cuda_device_count(&status);
  CMAE_CHECK(count > 0, Device, "device 'cuda' is not available: ", status);
  CMAE_CHECK(index >= 0 && index < count, Device, "device 'cuda:", index, "' does not exist (", status, ")");
  if (backends.empty()) backends.assign(static_cast<size_t>(count), nullptr);
  if (!backends[static_cast<size_t>(index)]) backends[static_cast<size_t>(index)] = new cuda::CudaBackend(index);
  return *backends[static_cast<size_t>(index)];
}

const CudaProvider& cuda_gpu_provider() {
  static const CudaProvider provider{"gpu", &cuda_device_count, &cuda_device_backend, [](int index) {
                                       std::string status;
                                       const int count = cuda_device_count(&status);
                                       CMAE_CHECK(index >= 0 && index < count, Device, "device 'cuda:", index, "' does not exist (", status, ")");
                                       return cuda::describe_device(cuda::device_properties(index));
                                     }};
  return provider;
}

#endif

}  // namespace cmae
