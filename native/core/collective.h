// Collective: the model's view of a data-parallel job (issue 16): its rank, the number of ranks,
// and the two exchanges a step needs, over an engine plugin loaded at run time (collective/collective_abi.h;
// collective/mpi_plugin.cc is the MPI one). Errors (a rank that died or hangs, a plugin that is not
// there) are ErrorKind::Distributed with the engine's message.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "collective/collective_abi.h"
#include "core/tensor.h"

namespace cmae {

class Backend;

class Collective {
 public:
  // Loads the plugin at `plugin_path` (dlopen, its MPI made global for MPI's own components) and
  // joins the job. timeout_s: how long a rank waits for the others at any exchange.
  static std::shared_ptr<Collective> open(const std::string& plugin_path, double timeout_s, int64_t bucket_floats);
  ~Collective();
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int rank() const { return api_.rank; }
  int world_size() const { return api_.world_size; }
  // "Open MPI v4.1.4", with " + NCCL 2.23.4 (device buffers)" where the engine exchanges device memory.
  std::string engine() const;
  double timeout_s() const { return timeout_s_; }
  int64_t bucket_floats() const { return bucket_floats_; }

  // In place: rank r's bytes [displs[r], displs[r] + counts[r]) of buffer, from every rank to every rank.
  void allgather(void* buffer, const std::vector<int64_t>& counts, const std::vector<int64_t>& displs, const char* what);
  // out = Σ_r in_r in rank order, in buckets of bucket_floats() (out may be in).
  void allreduce_sum(float* out, const float* in, int64_t n, const char* what);

  // The same two on buffers in `backend`'s device memory, queued on its stream, where the engine
  // exchanges device memory (NCCL); has_device_exchanges() says whether it does. The sum is the
  // one above, composed: per bucket an all-to-all of slices, the backend adding each slice's W
  // copies in rank order (the same float adds as the host sum: the same bits), an all-gather.
  bool has_device_exchanges() const { return api_.device_allgather && api_.device_alltoallv; }
  void device_allgather(Backend& backend, void* buffer, const std::vector<int64_t>& counts, const std::vector<int64_t>& displs,
                        const char* what);
  void device_allreduce_sum(Backend& backend, float* out, const float* in, int64_t n, const char* what);
  // Ends every rank of the job now with exit status `code`.
  [[noreturn]] void abort_job(int code);
  // Leaves the job (MPI_Finalize); later exchanges throw. Idempotent.
  void finalize();

 private:
  Collective() = default;
  cmae_collective api_{};
  void* library_ = nullptr;
  double timeout_s_ = 0;
  int64_t bucket_floats_ = 0;
  bool finalized_ = false;
  Tensor device_slices_;  // device_allreduce_sum's receive buffer: W slices of a bucket
};

// The gradient all-reduce overlapped with the backward pass (PyTorch DDP's buckets): a backward
// completes an arena's gradients from its end towards its start (the model's layout: decoders and
// heads above the encoder's blocks, the last block above the first), so the arena is cut into
// buckets of collective.bucket_floats() from the top, and a thread of its own sums each across the
// ranks (Collective::allreduce_sum, rank order: the same bits as one sum after the backward) as
// soon as release() says the gradients from its start up are complete. MPI sees one caller at a
// time: the compute thread makes no exchange between start and finish().
class OverlappedSum {
 public:
  // out[i] = Σ_r in_r[i] for i < n, bucket by bucket (out may be in).
  OverlappedSum(Collective& collective, float* out, const float* in, int64_t n, const char* what);
  ~OverlappedSum();  // finishes (errors swallowed: call finish() to see them)
  // The gradients at offsets >= offset are complete (offsets only decrease).
  void release(int64_t offset);
  // release(0), waits for the last bucket; rethrows the first exchange error.
  void finish();

 private:
  void run();
  Collective& collective_;
  float* out_;
  const float* in_;
  const int64_t n_;
  const char* what_;
  std::mutex mutex_;
  std::condition_variable released_;
  int64_t watermark_;
  std::exception_ptr error_;
  std::thread thread_;
  bool finished_ = false;
};

}  // namespace cmae
