// The C ABI between cmae and a collective engine plugin (native/collective/mpi_plugin.cc builds
// cmae_mpi.so over MPI). A plugin is a shared library loaded with dlopen at run time, never linked
// into cmae.node: the addon builds and loads on machines without MPI, and a user's cluster MPI
// (any implementation with the same plugin rebuilt against it) slots in without rebuilding cmae.
// Plain C types only, so that the two sides need not share a compiler or C++ standard library.
//
// Every collective is over all ranks of the job, called by every rank in the same order (the
// model's step calls them at fixed points). Each returns 0 on success; otherwise it writes a
// message into err (at most err_len bytes, NUL-terminated) and returns non-zero. timeout_s bounds
// how long a rank waits for the others: a rank that died or hangs is named in the message instead
// of stalling the job (issue 16's fault rule).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CMAE_COLLECTIVE_ABI_VERSION 2u

typedef struct cmae_collective {
  uint32_t abi_version;  // CMAE_COLLECTIVE_ABI_VERSION
  int32_t rank;
  int32_t world_size;
  char engine[128];  // e.g. "Open MPI v4.1.4"
  void* ctx;
  // In-place all-gather of byte segments: rank r's segment is buffer[displs[r], displs[r] + counts[r])
  // on entry; on return every rank's buffer holds every segment. counts/displs have world_size entries.
  int (*allgather)(void* ctx, void* buffer, const int64_t* counts, const int64_t* displs, double timeout_s, const char* what,
                   char* err, size_t err_len);
  // out[i] = Σ_r in_r[i] over the ranks in rank order (0, 1, 2, …), the same bits on every rank,
  // in buckets of bucket_floats elements (0: one bucket). out may equal in.
  int (*allreduce_sum_f32)(void* ctx, float* out, const float* in, int64_t n, int64_t bucket_floats, double timeout_s,
                           const char* what, char* err, size_t err_len);
  // Ends the whole job now (every rank), exit status `code`.
  void (*abort_job)(void* ctx, int code);
  // Leaves the job cleanly (after the last collective); frees ctx.
  void (*finalize)(void* ctx);

  // ---- version 2: exchanges of device memory; NULL where the engine has none (MPI alone) --------
  // Buffers are device pointers of the calling thread's current CUDA device. Each exchange is queued
  // on `stream` (a cudaStream_t; NULL: the legacy default stream) after the work queued there
  // before it, and has completed when the call returns (it waits up to timeout_s). Sizes in bytes.
  char device_engine[64];  // e.g. "NCCL 2.23.4"; empty when the pointers below are NULL
  // As allgather, on a device buffer.
  int (*device_allgather)(void* ctx, void* buffer, const int64_t* counts, const int64_t* displs, void* stream, double timeout_s,
                          const char* what, char* err, size_t err_len);
  // All-to-all: bytes send[send_displs[s], + send_counts[s]) go to rank s, and rank r's arrive in
  // recv[recv_displs[r], + recv_counts[r]) (recv and send do not overlap). A rank-ordered sum is
  // composed from this, the backend's adds and device_allgather (core/collective.cc).
  int (*device_alltoallv)(void* ctx, void* recv, const int64_t* recv_counts, const int64_t* recv_displs, const void* send,
                          const int64_t* send_counts, const int64_t* send_displs, void* stream, double timeout_s, const char* what,
                          char* err, size_t err_len);
} cmae_collective;

// The plugin's one export, "cmae_collective_open": joins the job (MPI_Init) and fills *out.
typedef int (*cmae_collective_open_fn)(cmae_collective* out, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif
