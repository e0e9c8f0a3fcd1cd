// The backend: one object per device that owns that device's memory and runs every op the model
// needs. The model (native/model) holds a Backend and calls nothing else, so a new device plugs in
// by implementing this class (see native/README.md, "Adding a backend").
//
// The contract of each op family lives once, in its ops/<family>.h interface (shapes, saved values,
// = vs +=, aliasing); Backend composes them with the memory primitives below and the execution
// policy of the model's per-sample phases. Arguments are raw pointers into this backend's memory
// (never another device's) plus dimensions, in llm.c order: outputs, saved values, inputs,
// parameters, dimensions. A backend is also its execution context: a CUDA backend owns a stream and
// every op is queued on it in call order, so callers see sequential semantics; results that feed
// later ops (a loss, a norm) stay in backend memory until the host asks for them.
//
// Ops do not validate their arguments: the bindings (native/napi) and the model check shapes,
// dtypes and devices once, before calling. Ops never allocate per call in steady state.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/data.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/patch.h"
#include "ops/pool.h"
#include "ops/rows.h"

namespace cmae {

// One kernel's share of a profiled run (Backend::take_kernel_times).
struct KernelTime {
  std::string name;
  int64_t launches = 0;
  double seconds = 0;  // device time, summed over its launches
};

class Backend : public ActivationOps,
                public AttentionOps,
                public DataOps,
                public LinearOps,
                public LossOps,
                public NormOps,
                public OptimOps,
                public PatchOps,
                public PoolOps,
                public RowOps {
 public:
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  // Human-readable: "cpu", "cuda:0 (NVIDIA H200)", "cuda (emulated)".
  virtual std::string name() const = 0;

  // ---- memory ------------------------------------------------------------------------------------
  // At least kTensorAlignment-aligned; never null (throws ErrorKind::Device naming the bytes asked
  // for and, where known, free). bytes may be 0.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) noexcept = 0;
  // What this backend's memory holds now, for diagnostics (nativeMemory() in JS, the memory tests,
  // bench/memory.mjs): bytes taken through allocate() and not yet given back (tensors, arenas,
  // workspaces), and working memory its kernels keep between calls (cpu/scratch.h). Zeros where a
  // backend does not count.
  struct MemoryUse {
    size_t allocated = 0;
    size_t scratch = 0;
  };
  virtual MemoryUse memory_use() const { return {}; }
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  // Between host memory and this backend's memory, and within this backend's memory. Host-side
  // copies return when the host buffer may be reused (copy_to_host: when the data is there).
  virtual void copy_from_host(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // `rows` rows of `width` bytes, row starts dst_pitch / src_pitch bytes apart (cudaMemcpy2D).
  virtual void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) = 0;
  // Zeroes `rows` rows of `width` bytes, row starts `pitch` bytes apart.
  virtual void zero_2d(void* dst, size_t pitch, size_t width, size_t rows) = 0;
  // Waits until every queued op has finished (a no-op where ops run synchronously).
  virtual void synchronize() = 0;
  // Makes this backend's device the calling thread's current one, where a device runtime keeps such
  // state per host thread (CUDA does). The bindings call it before every call that reaches ops on a
  // thread (kernels on the JS thread, model and optimizer jobs on libuv workers); the memory
  // primitives above call it themselves, since memory may be freed from any thread. Cheap when
  // already current. A no-op on the CPU.
  virtual void make_current() {}
  // Non-null where this backend's ops must not run from two host threads at once. The CPU's may
  // (per-thread scratch, an OpenMP team per caller): null. A CUDA backend's share one stream and
  // one scratch buffer (and under the emulator its kernels run on the calling thread), so callers
  // take turns: model and optimizer jobs hold the mutex for their whole run on their worker, and
  // kernel bindings on the JS thread only try it (BusyError rather than a blocked event loop).
  virtual std::mutex* exclusive_use() { return nullptr; }
  // The queue this backend's ops run on, for an engine that queues work after them (NCCL's device
  // exchanges, collective/collective_abi.h): a CUDA backend's cudaStream_t; null elsewhere.
  virtual void* native_stream() { return nullptr; }

  // ---- profiling -----------------------------------------------------------------------------------
  // While on, a backend with kernels of its own (CUDA) times each launch on the device (events
  // around it); take_kernel_times() waits for the queued work and returns the totals per kernel
  // since the last take, largest first. The CPU has no kernels to time: nothing.
  virtual void set_kernel_timing(bool on) {}
  virtual std::vector<KernelTime> take_kernel_times() { return {}; }

  // ---- execution policy of the model's per-sample phases ------------------------------------------
  // The model cuts a batch into batch_parts() fixed parts by sample index (never by thread count,
  // so results do not depend on it), gives each part its own gradient arena (added together at the
  // end), and runs the parts through run_parts. The CPU uses 2 parts, run side by side with one
  // thread each on 2 cores (no barrier per kernel, measured 1.6x over 2-thread kernels on the
  // small ViT products) and one after the other otherwise; a GPU uses 1 part (the whole batch).
  virtual int batch_parts() const = 0;
  // Calls fn(0), ..., fn(parts - 1); the calls touch disjoint memory and may run concurrently.
  // An exception thrown by fn is rethrown here once every part has stopped.
  virtual void run_parts(int parts, const std::function<void(int part)>& fn) = 0;
  // Within a part, the model runs its full-sequence passes (the pixel decoder's forward, loss and
  // backward; the momentum branch; the feature decoder, whose forward is run again in the backward
  // for every chunk but the last) in chunks of about this many token rows, so that their activations
  // are laid out for one chunk per part instead of the whole batch: a tiny model's training
  // workspace at batch 64 is 0.20 GB instead of 0.46 GB. 0 = the whole part at once, nothing run
  // twice (a GPU: fewer, larger launches).
  virtual int64_t chunk_rows() const { return 0; }
};

// Where CUDA backends come from in this program: the nvcc build of cuda/ (the addon where nvcc was
// found), or its SIMT-emulator build (test programs). A program registers one at start-up
// (napi/addon.cc, the op harness); core code never names either build.
struct CudaDeviceInfo {
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  size_t memory_bytes = 0;
};
struct CudaProvider {
  const char* build;                                  // "gpu" | "emulated"
  int (*device_count)(std::string* status);           // never throws; status says which, or why none
  Backend& (*backend)(int index);                     // throws ErrorKind::Device when there is no such device
  CudaDeviceInfo (*describe)(int index);              // throws ErrorKind::Device likewise
};
void set_cuda_provider(const CudaProvider* provider);
const CudaProvider* cuda_provider();  // null when no CUDA backend is compiled in

// The backend of device `index` of `device` (the CPU backend always exists, index 0). Throws
// ErrorKind::Device when no backend for it is compiled in or available, with the reason.
Backend& backend_for(Device device, int index = 0);
// The CPU backend (native/cpu).
Backend& cpu_backend();

}  // namespace cmae
