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

#define CMAE_COLLECTIVE_ABI_VERSION 1u

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
} cmae_collective;

// The plugin's one export, "cmae_collective_open": joins the job (MPI_Init) and fills *out.
typedef int (*cmae_collective_open_fn)(cmae_collective* out, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif
