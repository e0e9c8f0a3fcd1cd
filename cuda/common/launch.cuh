// The one way cmae launches a CUDA kernel (never `<<<>>>` at a call site):
//
//   CMAE_LAUNCH(layernorm_forward, grid, block, shared_bytes, stream, out, in, weight, n);
//   cmae::cuda::launch("layernorm_forward", layernorm_forward, grid, block, shared_bytes, stream, ...);
//
// (a template kernel goes in parentheses: CMAE_LAUNCH((gemm<64, 64>), ...)). Both modes check the
// configuration first against common/limits.h and report a bad one as
// cmae::Error(ErrorKind::Device) naming the kernel, so a launch the GPU would refuse fails the
// same way in CI. Under nvcc the kernel is then queued on `stream` and a launch failure is thrown
// the same way; under the SIMT emulator the grid runs to completion, one block at a time, before
// launch() returns, and misuse of barriers or collectives throws ErrorKind::Internal (emu.h).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/backend.h"

#include "common/compat.cuh"
#include "common/runtime.h"
#include "core/errors.h"

CMAE_CUDA_NAMESPACE_BEGIN

// Per-kernel timing, for profiling only (Backend::set_kernel_timing): while a timer is active,
// every launch is bracketed by two time marks on its stream (CUDA events; host time under the
// emulator), read when the timings are taken. One timer at a time per process and build.
class KernelTimer {
 public:
  void before(Stream stream) { start_ = time_mark(stream); }
  void after(const char* kernel_name, Stream stream) { launches_.push_back({kernel_name, start_, time_mark(stream)}); }
  // Waits for the marked work; totals per kernel name, largest first. Clears the record.
  std::vector<KernelTime> take() {
    std::map<std::string, KernelTime> by_name;
    for (const Launch& l : launches_) {
      KernelTime& t = by_name[l.name];
      t.name = l.name;
      t.launches += 1;
      t.seconds += seconds_between(l.start, l.stop);
    }
    launches_.clear();
    std::vector<KernelTime> out;
    for (auto& entry : by_name) out.push_back(entry.second);
    std::sort(out.begin(), out.end(), [](const KernelTime& a, const KernelTime& b) { return a.seconds > b.seconds; });
    return out;
  }

 private:
  struct Launch {
    const char* name;
    TimeMark start, stop;
  };
  TimeMark start_{};
  std::vector<Launch> launches_;
};

// The active timer (null: launches are not timed).
inline KernelTimer*& active_kernel_timer() {
  static KernelTimer* timer = nullptr;
  return timer;
}

inline void check_launch(const char* kernel_name, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes) {
  const std::uint64_t threads = std::uint64_t{block.x} * block.y * block.z;
  const auto where = [&](const char* problem) {
    fail(ErrorKind::Device, "kernel '", kernel_name, "': launch with grid (", grid.x, ",", grid.y, ",", grid.z, ") and block (", block.x, ",",
         block.y, ",", block.z, "), ", dynamic_shared_bytes, " bytes of dynamic shared memory: ", problem);
  };
  if (block.x == 0 || block.y == 0 || block.z == 0) where("every block dimension must be at least 1");
  if (threads > kMaxThreadsPerBlock) where("a block has at most 1024 threads");
  if (block.z > kMaxBlockDimZ) where("blockDim.z is at most 64");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) where("every grid dimension must be at least 1");
  if (grid.x > kMaxGridDimX || grid.y > kMaxGridDimYZ || grid.z > kMaxGridDimYZ) where("the grid is at most (2^31-1, 65535, 65535)");
  if (dynamic_shared_bytes > kMaxSharedBytesPerBlock) where("a block has at most 227 KiB of shared memory");
}

#if defined(__CUDACC__)

template <typename... Params, typename... Args>
void launch(const char* kernel_name, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_shared_bytes, Stream stream,
            Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "launch: the arguments do not match the kernel's parameters");
  check_launch(kernel_name, grid, block, dynamic_shared_bytes);
  // Beyond 48 KiB a kernel must opt in to dynamic shared memory (the emulator needs no opt-in).
  if (dynamic_shared_bytes > kMaxStaticSharedBytes) {
    const cudaError_t status =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(dynamic_shared_bytes));
    if (status != cudaSuccess)
      fail(ErrorKind::Device, "kernel '", kernel_name, "': cannot have ", dynamic_shared_bytes,
           " bytes of dynamic shared memory: ", cudaGetErrorString(status));
  }
  KernelTimer* const timer = active_kernel_timer();
  if (timer) timer->before(stream);
  kernel<<<grid, block, dynamic_shared_bytes, stream>>>(std::forward<Args>(args)...);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) fail(ErrorKind::Device, "kernel '", kernel_name, "' failed to launch: ", cudaGetErrorString(status));
  if (timer) timer->after(kernel_name, stream);
}

#else  // the SIMT emulator

template <typename... Params, typename... Args>
void launch(const char* kernel_name, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_shared_bytes, Stream stream,
            Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "launch: the arguments do not match the kernel's parameters");
  check_launch(kernel_name, grid, block, dynamic_shared_bytes);
  // Every CUDA thread gets its own copy of the parameters, as on the GPU (std::apply passes the
  // stored values as lvalues, which the by-value parameters copy).
  struct Call {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> params;
  };
  const Call call{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  const auto body = [](const void* context) {
    const Call& c = *static_cast<const Call*>(context);
    std::apply(c.kernel, c.params);
  };
  KernelTimer* const timer = active_kernel_timer();
  if (timer) timer->before(stream);
  emu::run_grid({kernel_name, grid, block, dynamic_shared_bytes}, body, &call);
  if (timer) timer->after(kernel_name, stream);
}

#endif

CMAE_CUDA_NAMESPACE_END

#define CMAE_LAUNCH(kernel, grid, block, dynamic_shared_bytes, stream, ...) \
  ::cmae::cuda::launch(#kernel, kernel, grid, block, dynamic_shared_bytes, stream, ##__VA_ARGS__)
