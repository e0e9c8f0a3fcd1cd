// The CUDA runtime calls a backend's host code needs, in one small wrapper with two modes, chosen
// like compat.cuh's: under nvcc the real runtime, with every failure thrown as
// cmae::Error(ErrorKind::Device) naming the call and cudaGetErrorString; under the SIMT emulator
// host operations on host memory ("device" memory is host memory there, and launches run
// synchronously, so streams are tokens and copies complete before they return).
//
// Copies take any direction: under nvcc the runtime tells host from device pointers (unified
// addressing, cudaMemcpyDefault). They are queued on `stream`; a copy to pageable host memory
// returns once the data is there, a copy from it once the host buffer may be reused.
#pragma once
#include <cstddef>
#include <string>

#include "common/limits.h"
#include "core/errors.h"

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#endif

CMAE_CUDA_NAMESPACE_BEGIN

#if defined(__CUDACC__)
using Stream = cudaStream_t;
#else
struct EmulatedStream {};
using Stream = EmulatedStream*;  // nullptr is the default stream, as with cudaStream_t
#endif

struct DeviceProperties {
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  std::size_t global_memory_bytes = 0;
  std::size_t max_shared_bytes_per_block = 0;  // with the opt-in launch.cuh makes
};

#if defined(__CUDACC__)

inline void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) fail(ErrorKind::Device, call, " failed: ", cudaGetErrorString(status));
}

// 0 where there is no driver or no device (never throws: the CPU backend still works there).
inline int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error the failed query leaves
    return 0;
  }
  return count;
}

inline DeviceProperties device_properties(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  DeviceProperties out;
  out.name = p.name;
  out.major = p.major;
  out.minor = p.minor;
  out.multiprocessors = p.multiProcessorCount;
  out.global_memory_bytes = p.totalGlobalMem;
  out.max_shared_bytes_per_block = p.sharedMemPerBlockOptin;
  return out;
}

inline void set_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }

inline void* device_alloc(std::size_t bytes) {
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();
    std::size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    fail(ErrorKind::Device, "cudaMalloc of ", bytes, " bytes failed: ", cudaGetErrorString(status), " (", free_bytes, " of ", total_bytes,
         " bytes free)");
  }
  return ptr;
}

inline void device_free(void* ptr) noexcept { cudaFree(ptr); }

inline void copy(void* dst, const void* src, std::size_t bytes, Stream stream) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync");
}

// `rows` rows of `width` bytes whose starts are dst_pitch / src_pitch bytes apart.
inline void copy_2d(void* dst, std::size_t dst_pitch, const void* src, std::size_t src_pitch, std::size_t width, std::size_t rows,
                    Stream stream) {
  check(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDefault, stream), "cudaMemcpy2DAsync");
}

inline void fill_bytes(void* dst, int byte, std::size_t bytes, Stream stream) {
  check(cudaMemsetAsync(dst, byte, bytes, stream), "cudaMemsetAsync");
}

inline void fill_bytes_2d(void* dst, std::size_t pitch, int byte, std::size_t width, std::size_t rows, Stream stream) {
  check(cudaMemset2DAsync(dst, pitch, byte, width, rows, stream), "cudaMemset2DAsync");
}

inline Stream stream_create() {
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return stream;
}

inline void stream_destroy(Stream stream) noexcept { cudaStreamDestroy(stream); }

inline void stream_synchronize(Stream stream) { check(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }

// A point in a stream's work for timing (launch.cuh KernelTimer): a CUDA event recorded there.
using TimeMark = cudaEvent_t;
inline TimeMark time_mark(Stream stream) {
  cudaEvent_t event = nullptr;
  check(cudaEventCreate(&event), "cudaEventCreate");
  check(cudaEventRecord(event, stream), "cudaEventRecord");
  return event;
}
// Seconds between two marks, once `to` has been reached (waits for it); frees both.
inline double seconds_between(TimeMark from, TimeMark to) {
  check(cudaEventSynchronize(to), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, from, to), "cudaEventElapsedTime");
  cudaEventDestroy(from);
  cudaEventDestroy(to);
  return static_cast<double>(ms) * 1e-3;
}

#else  // the SIMT emulator

inline int device_count() { return 1; }

inline DeviceProperties device_properties(int device) {
  CMAE_CHECK(device == 0, Device, "the SIMT emulator has one device, 0; asked for ", device);
  DeviceProperties out;
  out.name = "cmae SIMT emulator";
  out.major = 9;  // what it checks launches against (common/limits.h)
  out.minor = 0;
  out.multiprocessors = 1;
  out.max_shared_bytes_per_block = kMaxSharedBytesPerBlock;
  // Its "device" memory is the host's.
  out.global_memory_bytes = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::size_t>(sysconf(_SC_PAGE_SIZE));
  return out;
}

inline void set_device(int device) { device_properties(device); }

// 256-byte aligned like cudaMalloc, so kernels' vectorised loads behave alike.
inline void* device_alloc(std::size_t bytes) {
  constexpr std::size_t kAlignment = 256;
  void* ptr = std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment + (bytes == 0 ? kAlignment : 0));
  if (ptr == nullptr) fail(ErrorKind::Device, "emulated device allocation of ", bytes, " bytes failed");
  return ptr;
}

inline void device_free(void* ptr) noexcept { std::free(ptr); }

inline void copy(void* dst, const void* src, std::size_t bytes, Stream) {
  if (bytes > 0) std::memmove(dst, src, bytes);
}

inline void copy_2d(void* dst, std::size_t dst_pitch, const void* src, std::size_t src_pitch, std::size_t width, std::size_t rows, Stream) {
  // cudaMemcpy2D refuses these too (cudaErrorInvalidPitchValue).
  CMAE_CHECK(width <= dst_pitch && width <= src_pitch, Device, "copy_2d: width ", width, " exceeds a pitch (", dst_pitch, ", ", src_pitch, ")");
  for (std::size_t r = 0; r < rows; ++r)
    std::memmove(static_cast<char*>(dst) + r * dst_pitch, static_cast<const char*>(src) + r * src_pitch, width);
}

inline void fill_bytes(void* dst, int byte, std::size_t bytes, Stream) {
  if (bytes > 0) std::memset(dst, byte, bytes);
}

inline void fill_bytes_2d(void* dst, std::size_t pitch, int byte, std::size_t width, std::size_t rows, Stream) {
  CMAE_CHECK(width <= pitch, Device, "fill_bytes_2d: width ", width, " exceeds the pitch ", pitch);
  for (std::size_t r = 0; r < rows; ++r) std::memset(static_cast<char*>(dst) + r * pitch, byte, width);
}

inline Stream stream_create() { return new EmulatedStream; }

inline void stream_destroy(Stream stream) noexcept { delete stream; }

inline void stream_synchronize(Stream) {}

// Launches complete before they return: the host clock times them.
using TimeMark = std::chrono::steady_clock::time_point;
inline TimeMark time_mark(Stream) { return std::chrono::steady_clock::now(); }
inline double seconds_between(TimeMark from, TimeMark to) { return std::chrono::duration<double>(to - from).count(); }

#endif

CMAE_CUDA_NAMESPACE_END
