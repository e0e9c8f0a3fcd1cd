// libcmae_fake_nccl.so (tests only): the NCCL entry points cmae_mpi.so calls (native/collective/
// nccl_api.h) and the CUDA driver's cuStreamQuery, over MPI on host memory. With the emulated CUDA
// backend, whose device memory is host memory, the plugin's device path (NCCL bootstrap, grouped
// send/receive, polling the stream against the timeout, abort) then runs in CI, where there is
// neither a GPU nor NCCL. Like NCCL, a group's transfers are asynchronous: ncclGroupEnd posts them,
// cuStreamQuery reports CUDA_ERROR_NOT_READY until they have completed.
//
// Test hooks: CMAE_FAKE_NCCL_STALL_AFTER=k makes every group after the k-th never complete (a peer
// that hangs inside NCCL); at ncclCommDestroy each rank prints "fake-nccl: rank R sent B bytes in
// S sends" to stderr, so a test sees that the device path carried the exchanges.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "collective/nccl_api.h"

namespace {

namespace nccl = cmae::nccl;

struct Transfer {
  bool send;
  void* buffer;
  size_t bytes;
  int peer;
};

struct FakeComm {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  long long sent_bytes = 0, sends = 0;
};

int g_group_depth = 0;
FakeComm* g_group_comm = nullptr;
std::vector<Transfer> g_queued;          // inside ncclGroupStart/End
std::vector<MPI_Request> g_pending;      // posted, not yet seen complete
long long g_groups = 0;
bool g_stalled = false;

constexpr nccl::Result kInvalidArgument = 4;  // ncclInvalidArgument
constexpr nccl::Result kInternalError = 3;    // ncclInternalError

long long stall_after() {
  const char* v = std::getenv("CMAE_FAKE_NCCL_STALL_AFTER");
  return v && *v ? std::atoll(v) : -1;
}

nccl::Result post(FakeComm* c, const Transfer& t) {
  MPI_Request r;
  const int count = static_cast<int>(t.bytes);
  const int rc = t.send ? MPI_Isend(t.buffer, count, MPI_BYTE, t.peer, 77, c->comm, &r)
                        : MPI_Irecv(t.buffer, count, MPI_BYTE, t.peer, 77, c->comm, &r);
  if (rc != MPI_SUCCESS) return kInternalError;
  g_pending.push_back(r);
  if (t.send) {
    c->sent_bytes += static_cast<long long>(t.bytes);
    ++c->sends;
  }
  return nccl::kSuccess;
}

nccl::Result enqueue(FakeComm* c, const Transfer& t) {
  if (!c || t.bytes > static_cast<size_t>(INT32_MAX)) return kInvalidArgument;
  if (g_group_depth > 0) {
    if (g_group_comm && g_group_comm != c) return kInvalidArgument;
    g_group_comm = c;
    g_queued.push_back(t);
    return nccl::kSuccess;
  }
  return post(c, t);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) nccl::Result ncclGetVersion(int* version) {
  *version = 21800;  // reports itself as 2.18.0
  return nccl::kSuccess;
}

__attribute__((visibility("default"))) nccl::Result ncclGetUniqueId(nccl::UniqueId* id) {
  std::memset(id, 0, sizeof *id);
  std::snprintf(id->internal, sizeof id->internal, "fake-nccl-id pid %d", static_cast<int>(getpid()));
  return nccl::kSuccess;
}

// Checks what NCCL would rely on: every rank passes rank 0's id, its own rank and the job's size.
__attribute__((visibility("default"))) nccl::Result ncclCommInitRank(nccl::Comm* out, int nranks, nccl::UniqueId id, int rank) {
  auto* c = new FakeComm();
  MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
  int world = 0;
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &world);
  std::vector<char> ids(sizeof id * static_cast<size_t>(world));
  MPI_Allgather(&id, sizeof id, MPI_BYTE, ids.data(), sizeof id, MPI_BYTE, c->comm);
  bool same = std::strncmp(id.internal, "fake-nccl-id", 12) == 0;
  for (int r = 0; r < world; ++r) same = same && std::memcmp(ids.data() + r * sizeof id, &id, sizeof id) == 0;
  if (!same || nranks != world || rank != c->rank) {
    std::fprintf(stderr, "fake-nccl: ncclCommInitRank(nranks %d, rank %d) on MPI rank %d of %d with %s unique id\n", nranks, rank, c->rank,
                 world, same ? "the same" : "a different");
    MPI_Comm_free(&c->comm);
    delete c;
    return kInvalidArgument;
  }
  *out = reinterpret_cast<nccl::Comm>(c);
  return nccl::kSuccess;
}

__attribute__((visibility("default"))) nccl::Result ncclCommDestroy(nccl::Comm comm) {
  auto* c = reinterpret_cast<FakeComm*>(comm);
  std::fprintf(stderr, "fake-nccl: rank %d sent %lld bytes in %lld sends\n", c->rank, c->sent_bytes, c->sends);
  MPI_Comm_free(&c->comm);
  delete c;
  return nccl::kSuccess;
}

__attribute__((visibility("default"))) nccl::Result ncclCommAbort(nccl::Comm comm) {
  auto* c = reinterpret_cast<FakeComm*>(comm);
  std::fprintf(stderr, "fake-nccl: rank %d aborted its communicator\n", c->rank);
  g_pending.clear();  // (the requests are abandoned, as NCCL's kernels are killed)
  delete c;           // (its MPI communicator is left to MPI_Finalize)
  return nccl::kSuccess;
}

__attribute__((visibility("default"))) nccl::Result ncclCommGetAsyncError(nccl::Comm, nccl::Result* error) {
  *error = nccl::kSuccess;
  return nccl::kSuccess;
}

__attribute__((visibility("default"))) const char* ncclGetErrorString(nccl::Result r) {
  return r == kInvalidArgument ? "invalid argument (fake)" : "error (fake)";
}

__attribute__((visibility("default"))) nccl::Result ncclGroupStart() {
  ++g_group_depth;
  return nccl::kSuccess;
}

__attribute__((visibility("default"))) nccl::Result ncclGroupEnd() {
  if (g_group_depth == 0) return kInvalidArgument;
  if (--g_group_depth > 0) return nccl::kSuccess;
  std::vector<Transfer> queued;
  queued.swap(g_queued);
  FakeComm* c = g_group_comm;
  g_group_comm = nullptr;
  const long long after = stall_after();
  if (after >= 0 && ++g_groups > after) {
    g_stalled = true;  // posts nothing: the stream never completes
    return nccl::kSuccess;
  }
  // receives first, as NCCL pairs a group's sends and receives without ordering them
  for (const Transfer& t : queued)
    if (!t.send && post(c, t) != nccl::kSuccess) return kInternalError;
  for (const Transfer& t : queued)
    if (t.send && post(c, t) != nccl::kSuccess) return kInternalError;
  return nccl::kSuccess;
}

__attribute__((visibility("default"))) nccl::Result ncclSend(const void* buffer, size_t count, nccl::DataType type, int peer, nccl::Comm comm,
                                                             nccl::Stream) {
  if (type != nccl::kInt8) return kInvalidArgument;
  return enqueue(reinterpret_cast<FakeComm*>(comm), {true, const_cast<void*>(buffer), count, peer});
}

__attribute__((visibility("default"))) nccl::Result ncclRecv(void* buffer, size_t count, nccl::DataType type, int peer, nccl::Comm comm,
                                                             nccl::Stream) {
  if (type != nccl::kInt8) return kInvalidArgument;
  return enqueue(reinterpret_cast<FakeComm*>(comm), {false, buffer, count, peer});
}

// The CUDA driver's: done when every posted transfer has completed (the emulator's kernels ran
// when they were launched, so transfers are all a stream can wait for).
__attribute__((visibility("default"))) nccl::DriverResult cuStreamQuery(nccl::Stream) {
  if (g_stalled) return nccl::kDriverNotReady;
  if (g_pending.empty()) return nccl::kDriverSuccess;
  int done = 0;
  MPI_Testall(static_cast<int>(g_pending.size()), g_pending.data(), &done, MPI_STATUSES_IGNORE);
  if (!done) return nccl::kDriverNotReady;
  g_pending.clear();
  return nccl::kDriverSuccess;
}

}  // extern "C"
