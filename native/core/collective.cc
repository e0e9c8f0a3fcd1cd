#include "collective.h"

#include <dlfcn.h>

#include <algorithm>

#include "backend/backend.h"
#include "errors.h"

namespace cmae {

namespace {
// The MPI library the plugin links, opened RTLD_GLOBAL first: Open MPI loads its transports as
// components that resolve libmpi's symbols globally, which fails when libmpi came in with a
// library that Node dlopened locally (mpi4py's well-known trap).
void open_mpi_globally() {
  for (const char* name : {"libmpi.so.40", "libmpi.so.12", "libmpi.so"}) {
    if (dlopen(name, RTLD_NOW | RTLD_GLOBAL)) return;
  }
}
}  // namespace

std::shared_ptr<Collective> Collective::open(const std::string& plugin_path, double timeout_s, int64_t bucket_floats) {
  CMAE_CHECK(timeout_s > 0, Value, "the distributed timeout must be positive seconds, got ", timeout_s);
  CMAE_CHECK(bucket_floats >= 0, Value, "the gradient bucket size must be >= 0 floats, got ", bucket_floats);
  open_mpi_globally();
  void* library = dlopen(plugin_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!library) {
    const char* why = dlerror();
    fail(ErrorKind::Distributed, "cannot load the collective engine plugin ", plugin_path, ": ", why ? why : "unknown error",
         " (the MPI plugin is built only where CMake found an MPI, e.g. Debian's libopenmpi-dev)");
  }
  auto open_fn = reinterpret_cast<cmae_collective_open_fn>(dlsym(library, "cmae_collective_open"));
  if (!open_fn) {
    dlclose(library);
    fail(ErrorKind::Distributed, plugin_path, " is not a cmae collective plugin (no cmae_collective_open)");
  }
  std::shared_ptr<Collective> c(new Collective());
  c->library_ = library;
  c->timeout_s_ = timeout_s;
  c->bucket_floats_ = bucket_floats;
  char err[1024] = {0};
  if (open_fn(&c->api_, err, sizeof err) != 0) fail(ErrorKind::Distributed, "joining the distributed job failed: ", err);
  if (c->api_.abi_version != CMAE_COLLECTIVE_ABI_VERSION) {
    fail(ErrorKind::Distributed, plugin_path, " speaks collective ABI ", c->api_.abi_version, ", this cmae ", CMAE_COLLECTIVE_ABI_VERSION,
         " (rebuild the plugin with this cmae)");
  }
  return c;
}

Collective::~Collective() { finalize(); }

void Collective::allgather(void* buffer, const std::vector<int64_t>& counts, const std::vector<int64_t>& displs, const char* what) {
  CMAE_CHECK(!finalized_, Distributed, what, ": the distributed job was left (finalize)");
  CMAE_CHECK(counts.size() == static_cast<size_t>(world_size()) && displs.size() == counts.size(), Internal, what,
             ": one segment per rank expected");
  char err[1024] = {0};
  if (api_.allgather(api_.ctx, buffer, counts.data(), displs.data(), timeout_s_, what, err, sizeof err) != 0)
    fail(ErrorKind::Distributed, err);
}

void Collective::allreduce_sum(float* out, const float* in, int64_t n, const char* what) {
  CMAE_CHECK(!finalized_, Distributed, what, ": the distributed job was left (finalize)");
  char err[1024] = {0};
  if (api_.allreduce_sum_f32(api_.ctx, out, in, n, bucket_floats_, timeout_s_, what, err, sizeof err) != 0)
    fail(ErrorKind::Distributed, err);
}

std::string Collective::engine() const {
  const std::string device = has_device_exchanges() ? api_.device_engine : "";
  return std::string(api_.engine) + (device.empty() ? "" : " + " + device + " (device buffers)");
}

void Collective::device_allgather(Backend& backend, void* buffer, const std::vector<int64_t>& counts, const std::vector<int64_t>& displs,
                                  const char* what) {
  CMAE_CHECK(!finalized_, Distributed, what, ": the distributed job was left (finalize)");
  CMAE_CHECK(has_device_exchanges(), Internal, what, ": the collective engine exchanges no device memory");
  CMAE_CHECK(counts.size() == static_cast<size_t>(world_size()) && displs.size() == counts.size(), Internal, what,
             ": one segment per rank expected");
  char err[1024] = {0};
  if (api_.device_allgather(api_.ctx, buffer, counts.data(), displs.data(), backend.native_stream(), timeout_s_, what, err, sizeof err) != 0)
    fail(ErrorKind::Distributed, err);
}

void Collective::device_allreduce_sum(Backend& backend, float* out, const float* in, int64_t n, const char* what) {
  CMAE_CHECK(!finalized_, Distributed, what, ": the distributed job was left (finalize)");
  CMAE_CHECK(has_device_exchanges(), Internal, what, ": the collective engine exchanges no device memory");
  if (out != in) backend.copy(out, in, sizeof(float) * static_cast<size_t>(n));
  const int W = world_size(), me = rank();
  if (W == 1 || n == 0) return;
  const int64_t bucket = bucket_floats_ > 0 && bucket_floats_ < n ? bucket_floats_ : n;
  const int64_t slice_cap = (bucket + W - 1) / W;
  if (!device_slices_.defined() || device_slices_.numel() < W * slice_cap || &device_slices_.backend() != &backend) {
    device_slices_ = Tensor();
    device_slices_ = Tensor::empty({W * slice_cap}, DType::F32, backend);
  }
  float* slices = device_slices_.f32();
  const auto W_ = static_cast<size_t>(W);
  std::vector<int64_t> send_counts(W_), send_displs(W_), recv_counts(W_), recv_displs(W_);
  char err[1024] = {0};
  for (int64_t o = 0; o < n; o += bucket) {
    const int64_t m = std::min(bucket, n - o);
    float* b = out + o;
    // slice s of the bucket: [m·s/W, m·(s+1)/W), as the MPI plugin's host sum cuts it
    auto lo = [&](int s) { return m * s / W; };
    const int64_t mine0 = lo(me), mine = lo(me + 1) - mine0;
    for (int s = 0; s < W; ++s) {
      const auto i = static_cast<size_t>(s);
      send_counts[i] = sizeof(float) * (lo(s + 1) - lo(s));
      send_displs[i] = sizeof(float) * lo(s);
      recv_counts[i] = sizeof(float) * mine;
      recv_displs[i] = sizeof(float) * s * mine;
    }
    if (api_.device_alltoallv(api_.ctx, slices, recv_counts.data(), recv_displs.data(), b, send_counts.data(), send_displs.data(),
                              backend.native_stream(), timeout_s_, what, err, sizeof err) != 0)
      fail(ErrorKind::Distributed, err);
    // rank order: ((in_0 + in_1) + in_2) + …
    backend.copy(b + mine0, slices, sizeof(float) * static_cast<size_t>(mine));
    for (int s = 1; s < W; ++s) backend.add_inplace(b + mine0, slices + s * mine, mine);
    device_allgather(backend, b, send_counts, send_displs, what);
  }
}

void Collective::abort_job(int code) {
  api_.abort_job(api_.ctx, code);
  std::abort();  // MPI_Abort does not return; if an engine's did, still never continue
}

void Collective::finalize() {
  if (finalized_ || !api_.finalize) return;
  finalized_ = true;
  api_.finalize(api_.ctx);
}

OverlappedSum::OverlappedSum(Collective& collective, float* out, const float* in, int64_t n, const char* what)
    : collective_(collective), out_(out), in_(in), n_(n), what_(what), watermark_(n) {
  thread_ = std::thread([this] { run(); });
}

OverlappedSum::~OverlappedSum() {
  try {
    finish();
  } catch (...) {
  }
}

void OverlappedSum::release(int64_t offset) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (offset < watermark_) watermark_ = offset;
  }
  released_.notify_one();
}

void OverlappedSum::run() {
  const int64_t bucket = collective_.bucket_floats() > 0 ? collective_.bucket_floats() : n_;
  try {
    for (int64_t hi = n_; hi > 0;) {
      const int64_t lo = std::max<int64_t>(0, hi - bucket);
      {
        std::unique_lock<std::mutex> lock(mutex_);
        released_.wait(lock, [&] { return watermark_ <= lo; });
      }
      collective_.allreduce_sum(out_ + lo, in_ + lo, hi - lo, what_);
      hi = lo;
    }
  } catch (...) {
    error_ = std::current_exception();
  }
}

void OverlappedSum::finish() {
  if (finished_) return;
  finished_ = true;
  release(0);
  thread_.join();
  if (error_) std::rethrow_exception(error_);
}

}  // namespace cmae
