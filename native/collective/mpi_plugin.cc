// cmae_mpi.so: the collective engine plugin over MPI (collective_abi.h). Built only where CMake
// finds an MPI (Debian's Open MPI: libopenmpi-dev); the addon dlopens it for `--distributed`.
//
// Why not MPI_Allreduce: MPI leaves the order of a reduction to the implementation (and it may
// differ between ranks and message sizes), while cmae promises that W ranks give the same bits as
// one process summing its W batch parts in order. So the sum is a reduce-scatter by all-to-all
// (rank s receives every rank's slice s and adds them in rank order) followed by an all-gather of
// the summed slices: as bandwidth-efficient as a ring (each rank sends and receives 2·(W−1)/W of
// the buffer) and deterministic.
//
// Why a rendezvous before each collective: a blocking MPI call whose peer died or hangs never
// returns. Each collective starts with a tiny non-blocking exchange of sequence numbers, polled
// against the deadline, so a missing rank is named; the data exchange is then polled too.
//
// Device buffers (CUDA ranks): where NCCL and the CUDA driver can be loaded at run time
// (nccl_api.h; CMAE_NCCL_LIBRARY and CMAE_CUDA_DRIVER_LIBRARY name other files, "none" turns it
// off), the plugin also exchanges device memory with NCCL's point-to-point send/receive on the
// caller's stream, the communicator bootstrapped over MPI (rank 0's unique id broadcast). MPI stays
// the host channel (the trainer's control messages) and the rendezvous that names a missing rank.
// Send/receive rather than ncclAllReduce: the sum's order stays cmae's (core/collective.cc).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "collective_abi.h"
#include "nccl_api.h"

namespace {

constexpr int kTagArrive = 0x6d61;  // the rendezvous messages' tag

struct Context {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, world = 1;
  uint64_t seq = 0;  // collectives called so far: every rank's must agree
  // The rendezvous' buffers live here, not on the stack: after a timeout, messages may still come.
  unsigned long long arrive_mine = 0;
  std::vector<unsigned long long> arrive_theirs;
  std::vector<float> scratch;
  std::string failed;  // the first failure: the job's collectives are unusable after one
  cmae::nccl::Api nccl;  // ok() when the device exchanges are offered
  cmae::nccl::Comm nccl_comm = nullptr;  // made at the first device exchange
};

void set_err(char* err, size_t len, const std::string& msg) {
  if (!err || len == 0) return;
  const size_t n = std::min(len - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<size_t>(len));
}

using Clock = std::chrono::steady_clock;

// Polls `requests` until all completed or the deadline passed, backing off from spinning to 1 ms
// sleeps so that a waiting rank leaves its core to a rank computing on the same machine. Returns
// false on timeout, with done[i] telling which completed.
bool wait_all(std::vector<MPI_Request>& requests, Clock::time_point deadline, std::vector<int>& done) {
  done.assign(requests.size(), 0);
  int spins = 0;
  for (;;) {
    bool all = true;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (done[i]) continue;
      int flag = 0;
      MPI_Test(&requests[i], &flag, MPI_STATUS_IGNORE);
      if (flag) done[i] = 1; else all = false;
    }
    if (all) return true;
    if (Clock::now() >= deadline) return false;
    if (++spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(spins > 5000 ? 1000 : 50));
  }
}

std::string seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", s);
  return text;
}

Clock::time_point deadline_after(double timeout_s) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, timeout_s) * 1e6));
}

// Every rank tells every other that it reached collective #seq (`what`), and waits for theirs.
bool rendezvous(Context& c, double timeout_s, const char* what, char* err, size_t err_len) {
  const uint64_t seq = c.seq++;
  if (c.world == 1) return true;
  c.arrive_theirs.assign(static_cast<size_t>(c.world), 0);
  c.arrive_mine = seq;
  std::vector<unsigned long long>& theirs = c.arrive_theirs;
  std::vector<MPI_Request> sends, recvs;
  std::vector<int> peers;
  for (int r = 0; r < c.world; ++r) {
    if (r == c.rank) continue;
    MPI_Request s, q;
    MPI_Irecv(&theirs[static_cast<size_t>(r)], 1, MPI_UNSIGNED_LONG_LONG, r, kTagArrive, c.comm, &q);
    MPI_Isend(&c.arrive_mine, 1, MPI_UNSIGNED_LONG_LONG, r, kTagArrive, c.comm, &s);
    recvs.push_back(q);
    sends.push_back(s);
    peers.push_back(r);
  }
  std::vector<int> done;
  const bool ok = wait_all(recvs, deadline_after(timeout_s), done);
  if (!ok) {
    std::string missing;
    for (size_t i = 0; i < peers.size(); ++i)
      if (!done[i]) missing += (missing.empty() ? "" : ", ") + std::to_string(peers[i]);
    set_err(err, err_len,
            "rank " + missing + " did not reach the " + what + " (collective #" + std::to_string(seq) + ") within " +
                seconds(timeout_s) + " s: it died, hangs, or is slower than the distributed timeout (rank " +
                std::to_string(c.rank) + " waited)");
    return false;
  }
  std::vector<int> sent;
  wait_all(sends, deadline_after(timeout_s), sent);
  for (size_t i = 0; i < peers.size(); ++i) {
    if (theirs[static_cast<size_t>(peers[i])] != seq) {
      set_err(err, err_len,
              std::string("ranks out of step at the ") + what + ": rank " + std::to_string(peers[i]) + " is at collective #" +
                  std::to_string(theirs[static_cast<size_t>(peers[i])]) + ", rank " + std::to_string(c.rank) + " at #" +
                  std::to_string(seq) + " (different code or configuration on the ranks?)");
      return false;
    }
  }
  return true;
}

bool finish(Context& c, std::vector<MPI_Request>& requests, double timeout_s, const char* what, char* err, size_t err_len) {
  std::vector<int> done;
  if (wait_all(requests, deadline_after(timeout_s), done)) return true;
  set_err(err, err_len,
          std::string("the ") + what + " did not complete within " + seconds(timeout_s) + " s on rank " + std::to_string(c.rank) +
              " (a rank died or hangs)");
  return false;
}

int allgather_impl(void* ctx, void* buffer, const int64_t* counts, const int64_t* displs, double timeout_s, const char* what, char* err,
              size_t err_len) {
  Context& c = *static_cast<Context*>(ctx);
  if (!rendezvous(c, timeout_s, what, err, err_len)) return 1;
  if (c.world == 1) return 0;
  std::vector<int> cnt(static_cast<size_t>(c.world)), dsp(static_cast<size_t>(c.world));
  for (int r = 0; r < c.world; ++r) {
    if (counts[r] < 0 || counts[r] > INT32_MAX || displs[r] < 0 || displs[r] > INT32_MAX) {
      set_err(err, err_len, std::string(what) + ": a segment beyond 2 GiB (MPI counts are int)");
      return 1;
    }
    cnt[static_cast<size_t>(r)] = static_cast<int>(counts[r]);
    dsp[static_cast<size_t>(r)] = static_cast<int>(displs[r]);
  }
  std::vector<MPI_Request> req(1);
  const int rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, cnt.data(), dsp.data(), MPI_BYTE, c.comm, &req[0]);
  if (rc != MPI_SUCCESS) {
    set_err(err, err_len, std::string(what) + ": " + mpi_error(rc));
    return 1;
  }
  return finish(c, req, timeout_s, what, err, err_len) ? 0 : 1;
}

int allreduce_impl(void* ctx, float* out, const float* in, int64_t n, int64_t bucket, double timeout_s, const char* what, char* err,
                      size_t err_len) {
  Context& c = *static_cast<Context*>(ctx);
  if (!rendezvous(c, timeout_s, what, err, err_len)) return 1;
  if (out != in) std::memcpy(out, in, sizeof(float) * static_cast<size_t>(n));
  if (c.world == 1 || n == 0) return 0;
  const int W = c.world;
  if (bucket <= 0 || bucket > n) bucket = n;
  bucket = std::min<int64_t>(bucket, static_cast<int64_t>(INT32_MAX / 2));
  // Every rank's copy of this rank's slice: W slices of at most ⌈bucket / W⌉ floats.
  c.scratch.resize(static_cast<size_t>(W) * static_cast<size_t>((bucket + W - 1) / W));
  std::vector<int> send_cnt(W), send_dsp(W), recv_cnt(W), recv_dsp(W);
  for (int64_t o = 0; o < n; o += bucket) {
    const int64_t m = std::min(bucket, n - o);
    float* b = out + o;
    // slice s of the bucket: [m·s/W, m·(s+1)/W)
    auto lo = [&](int s) { return static_cast<int>(m * s / W); };
    const int mine0 = lo(c.rank), mine = lo(c.rank + 1) - mine0;
    for (int s = 0; s < W; ++s) {
      send_cnt[s] = lo(s + 1) - lo(s);
      send_dsp[s] = lo(s);
      recv_cnt[s] = mine;
      recv_dsp[s] = s * mine;
    }
    std::vector<MPI_Request> req(1);
    int rc = MPI_Ialltoallv(b, send_cnt.data(), send_dsp.data(), MPI_FLOAT, c.scratch.data(), recv_cnt.data(), recv_dsp.data(), MPI_FLOAT,
                            c.comm, &req[0]);
    if (rc != MPI_SUCCESS) return set_err(err, err_len, std::string(what) + ": " + mpi_error(rc)), 1;
    if (!finish(c, req, timeout_s, what, err, err_len)) return 1;
    // rank order: ((in_0 + in_1) + in_2) + …, as one process adds its batch parts
    float* dst = b + mine0;
    const float* s0 = c.scratch.data();
    for (int i = 0; i < mine; ++i) dst[i] = s0[i];
    for (int s = 1; s < W; ++s) {
      const float* src = c.scratch.data() + static_cast<size_t>(s) * static_cast<size_t>(mine);
      for (int i = 0; i < mine; ++i) dst[i] += src[i];
    }
    rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, send_cnt.data(), send_dsp.data(), MPI_FLOAT, c.comm, &req[0]);
    if (rc != MPI_SUCCESS) return set_err(err, err_len, std::string(what) + ": " + mpi_error(rc)), 1;
    if (!finish(c, req, timeout_s, what, err, err_len)) return 1;
  }
  return 0;
}


// ---- device buffers over NCCL ------------------------------------------------------------------

namespace nccl = cmae::nccl;

std::string nccl_error(const Context& c, nccl::Result r) {
  const char* text = c.nccl.get_error_string ? c.nccl.get_error_string(r) : nullptr;
  return "NCCL error " + std::to_string(r) + (text ? std::string(" (") + text + ")" : std::string());
}

void abort_nccl(Context& c) {
  if (c.nccl_comm) c.nccl.comm_abort(c.nccl_comm);  // NCCL's way to unblock its queued kernels
  c.nccl_comm = nullptr;
}

// The communicator, made at the first device exchange (NCCL binds it to the calling thread's
// current device): rank 0's unique id reaches the others over MPI.
bool ensure_nccl(Context& c, double timeout_s, const char* what, char* err, size_t err_len) {
  if (c.nccl_comm) return true;
  nccl::UniqueId id{};
  if (c.rank == 0) {
    const nccl::Result r = c.nccl.get_unique_id(&id);
    if (r != nccl::kSuccess) return set_err(err, err_len, std::string(what) + ": ncclGetUniqueId: " + nccl_error(c, r)), false;
  }
  std::vector<MPI_Request> req(1);
  MPI_Ibcast(&id, sizeof id, MPI_BYTE, 0, c.comm, &req[0]);
  if (!finish(c, req, timeout_s, "broadcast of NCCL's unique id", err, err_len)) return false;
  const nccl::Result r = c.nccl.comm_init_rank(&c.nccl_comm, c.world, id, c.rank);
  if (r != nccl::kSuccess) {
    c.nccl_comm = nullptr;
    return set_err(err, err_len, std::string(what) + ": ncclCommInitRank on rank " + std::to_string(c.rank) + ": " + nccl_error(c, r)),
           false;
  }
  return true;
}

// Sends and receives as one NCCL group on `stream`, then waits for the stream, polling it and the
// communicator's asynchronous error against the deadline (a peer that died leaves NCCL's kernels
// waiting forever: on timeout the communicator is aborted and the job's collectives are done).
template <typename Queue>
bool run_group(Context& c, void* stream, double timeout_s, const char* what, char* err, size_t err_len, Queue&& queue) {
  nccl::Result r = c.nccl.group_start();
  if (r == nccl::kSuccess) r = queue();
  const nccl::Result end = c.nccl.group_end();
  if (r == nccl::kSuccess) r = end;
  if (r != nccl::kSuccess && r != nccl::kInProgress) {
    abort_nccl(c);
    return set_err(err, err_len, std::string(what) + " on rank " + std::to_string(c.rank) + ": " + nccl_error(c, r)), false;
  }
  const Clock::time_point deadline = deadline_after(timeout_s);
  for (int spins = 0;; ++spins) {
    const nccl::DriverResult q = c.nccl.stream_query(stream);
    if (q == nccl::kDriverSuccess) return true;
    nccl::Result async = nccl::kSuccess;
    c.nccl.comm_get_async_error(c.nccl_comm, &async);
    std::string why;
    if (q != nccl::kDriverNotReady) why = "CUDA error " + std::to_string(q) + " on the stream";
    else if (async != nccl::kSuccess && async != nccl::kInProgress) why = nccl_error(c, async);
    else if (Clock::now() >= deadline) why = "did not complete within " + seconds(timeout_s) + " s (a rank died or hangs)";
    if (!why.empty()) {
      abort_nccl(c);
      return set_err(err, err_len, std::string("the ") + what + " (NCCL) on rank " + std::to_string(c.rank) + ": " + why), false;
    }
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(spins > 5000 ? 1000 : 50));
  }
}

int device_allgather_impl(void* ctx, void* buffer, const int64_t* counts, const int64_t* displs, void* stream, double timeout_s,
                          const char* what, char* err, size_t err_len) {
  Context& c = *static_cast<Context*>(ctx);
  if (!rendezvous(c, timeout_s, what, err, err_len)) return 1;
  if (c.world == 1) return 0;
  if (!ensure_nccl(c, timeout_s, what, err, err_len)) return 1;
  auto* bytes = static_cast<char*>(buffer);
  const int me = c.rank;
  // NCCL has no all-gather of uneven segments: every rank sends its own to each other rank.
  const bool ok = run_group(c, stream, timeout_s, what, err, err_len, [&] {
    for (int r = 0; r < c.world; ++r) {
      if (r == me) continue;
      nccl::Result x = nccl::kSuccess;
      if (counts[me] > 0) x = c.nccl.send(bytes + displs[me], static_cast<size_t>(counts[me]), nccl::kInt8, r, c.nccl_comm, stream);
      if (x == nccl::kSuccess && counts[r] > 0) x = c.nccl.recv(bytes + displs[r], static_cast<size_t>(counts[r]), nccl::kInt8, r, c.nccl_comm, stream);
      if (x != nccl::kSuccess) return x;
    }
    return nccl::kSuccess;
  });
  return ok ? 0 : 1;
}

int device_alltoallv_impl(void* ctx, void* recv, const int64_t* recv_counts, const int64_t* recv_displs, const void* send,
                          const int64_t* send_counts, const int64_t* send_displs, void* stream, double timeout_s, const char* what,
                          char* err, size_t err_len) {
  Context& c = *static_cast<Context*>(ctx);
  if (!rendezvous(c, timeout_s, what, err, err_len)) return 1;
  if (!ensure_nccl(c, timeout_s, what, err, err_len)) return 1;
  auto* in = static_cast<const char*>(send);
  auto* out = static_cast<char*>(recv);
  // (with itself too: NCCL pairs a rank's send and receive to itself inside one group)
  const bool ok = run_group(c, stream, timeout_s, what, err, err_len, [&] {
    for (int r = 0; r < c.world; ++r) {
      nccl::Result x = nccl::kSuccess;
      if (send_counts[r] > 0) x = c.nccl.send(in + send_displs[r], static_cast<size_t>(send_counts[r]), nccl::kInt8, r, c.nccl_comm, stream);
      if (x == nccl::kSuccess && recv_counts[r] > 0)
        x = c.nccl.recv(out + recv_displs[r], static_cast<size_t>(recv_counts[r]), nccl::kInt8, r, c.nccl_comm, stream);
      if (x != nccl::kSuccess) return x;
    }
    return nccl::kSuccess;
  });
  return ok ? 0 : 1;
}

// After a failure (a timeout: messages of the failed exchange may still arrive) nothing more is
// exchanged: the caller ends the job.
template <typename F>
int guarded(Context& c, const char* what, char* err, size_t err_len, F&& body) {
  if (!c.failed.empty()) return set_err(err, err_len, std::string(what) + ": the job's collectives failed before: " + c.failed), 1;
  const int rc = body();
  if (rc != 0) c.failed = err ? err : "error";
  return rc;
}

int allgather(void* ctx, void* buffer, const int64_t* counts, const int64_t* displs, double timeout_s, const char* what, char* err,
              size_t err_len) {
  return guarded(*static_cast<Context*>(ctx), what, err, err_len,
                 [&] { return allgather_impl(ctx, buffer, counts, displs, timeout_s, what, err, err_len); });
}

int allreduce_sum_f32(void* ctx, float* out, const float* in, int64_t n, int64_t bucket, double timeout_s, const char* what, char* err,
                      size_t err_len) {
  return guarded(*static_cast<Context*>(ctx), what, err, err_len,
                 [&] { return allreduce_impl(ctx, out, in, n, bucket, timeout_s, what, err, err_len); });
}

int device_allgather(void* ctx, void* buffer, const int64_t* counts, const int64_t* displs, void* stream, double timeout_s,
                     const char* what, char* err, size_t err_len) {
  return guarded(*static_cast<Context*>(ctx), what, err, err_len,
                 [&] { return device_allgather_impl(ctx, buffer, counts, displs, stream, timeout_s, what, err, err_len); });
}

int device_alltoallv(void* ctx, void* recv, const int64_t* recv_counts, const int64_t* recv_displs, const void* send,
                     const int64_t* send_counts, const int64_t* send_displs, void* stream, double timeout_s, const char* what, char* err,
                     size_t err_len) {
  return guarded(*static_cast<Context*>(ctx), what, err, err_len, [&] {
    return device_alltoallv_impl(ctx, recv, recv_counts, recv_displs, send, send_counts, send_displs, stream, timeout_s, what, err,
                                 err_len);
  });
}

void abort_job(void* ctx, int code) {
  Context& c = *static_cast<Context*>(ctx);
  MPI_Abort(c.comm == MPI_COMM_NULL ? MPI_COMM_WORLD : c.comm, code);
}

void finalize(void* ctx) {
  Context* c = static_cast<Context*>(ctx);
  if (c->nccl_comm) c->nccl.comm_destroy(c->nccl_comm);
  if (c->comm != MPI_COMM_NULL) MPI_Comm_free(&c->comm);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  delete c;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int cmae_collective_open(cmae_collective* out, char* err, size_t err_len) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // SERIALIZED: the collectives run on whichever libuv worker runs the step, one at a time.
    int provided = 0;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return set_err(err, err_len, "MPI_Init_thread failed: " + mpi_error(rc)), 1;
    if (provided < MPI_THREAD_SERIALIZED) {
      set_err(err, err_len, "this MPI does not support MPI_THREAD_SERIALIZED (calls from more than one thread)");
      return 1;
    }
  }
  auto* c = new Context();
  // A communicator of our own: a host program's MPI traffic cannot match ours; errors are returned.
  MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
  MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &c->world);
  std::memset(out, 0, sizeof(*out));
  out->abi_version = CMAE_COLLECTIVE_ABI_VERSION;
  out->rank = c->rank;
  out->world_size = c->world;
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  std::string engine(version, static_cast<size_t>(len));
  engine = engine.substr(0, engine.find_first_of(",\n"));
  std::snprintf(out->engine, sizeof(out->engine), "%s", engine.c_str());
  out->ctx = c;
  out->allgather = allgather;
  out->allreduce_sum_f32 = allreduce_sum_f32;
  out->abort_job = abort_job;
  out->finalize = finalize;
  const auto env = [](const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return std::string(v && *v ? v : fallback);
  };
  const std::string nccl_path = env("CMAE_NCCL_LIBRARY", "libnccl.so.2"), driver_path = env("CMAE_CUDA_DRIVER_LIBRARY", "libcuda.so.1");
  if (nccl_path != "none") c->nccl = cmae::nccl::Api::load(nccl_path, driver_path);
  if (nccl_path != "none" && c->nccl.ok()) {
    std::snprintf(out->device_engine, sizeof(out->device_engine), "%s", c->nccl.name().c_str());
    out->device_allgather = device_allgather;
    out->device_alltoallv = device_alltoallv;
  }
  return 0;
}
