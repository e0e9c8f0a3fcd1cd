// The harness: comparison, seeded data, buffers of the backend under test, and the expansion of the
// case table into Suite cases (see harness.h).
#include "harness.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace cmae::op_tests {

// ---- comparison ---------------------------------------------------------------------------------

std::string index_string(int64_t flat, const Shape& shape) {
  if (shape.empty() || shape_numel(shape) <= flat) return "[" + std::to_string(flat) + "]";
  Shape index(shape.size());
  for (size_t axis = shape.size(); axis-- > 0;) {
    index[axis] = flat % shape[axis];
    flat /= shape[axis];
  }
  return shape_string(index);
}

namespace {

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

std::string short_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", x);
  return buf;
}

constexpr int kMismatchesShown = 5;

template <typename T>
Comparison compare_values(const std::string& name, const T* got, const double* want, int64_t n, const Shape& shape, Tolerance tol) {
  int64_t bad = 0, max_at = -1;
  double max_err = 0, worst_share = 0, sq_err = 0, sq_want = 0;
  std::ostringstream shown;
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]);
    const double w = want[i];
    bool ok;
    double err = 0, allowed = 0;
    if (std::isnan(w)) {
      ok = std::isnan(g);
    } else if (std::isinf(w)) {
      ok = g == w;
    } else {
      err = std::fabs(g - w);  // NaN or inf when g is
      allowed = tol.atol + tol.rtol * std::fabs(w);
      ok = err <= allowed;
      if (std::isfinite(err)) {
        sq_err += err * err;
        sq_want += w * w;
        if (err > max_err) {
          max_err = err;
          max_at = i;
        }
        const double share = allowed > 0 ? err / allowed : (err > 0 ? std::numeric_limits<double>::infinity() : 0.0);
        if (share > worst_share) worst_share = share;
      }
    }
    if (!ok) {
      if (bad < kMismatchesShown)
        shown << "\n    " << name << index_string(i, shape) << " got " << number(g) << " want " << number(w) << " (err "
              << short_number(std::fabs(g - w)) << ", allowed " << short_number(allowed) << ")";
      ++bad;
    }
  }
  const double nmse = sq_want > 0 ? sq_err / sq_want : sq_err;
  std::ostringstream os;
  os << name << ": ";
  if (bad > 0) {
    os << bad << " of " << n << " elements outside atol " << short_number(tol.atol) << " + rtol " << short_number(tol.rtol)
       << "·|want|; max err " << short_number(max_err);
    if (max_at >= 0) os << " at " << index_string(max_at, shape);
    os << ", NMSE " << short_number(nmse) << shown.str();
    return {false, os.str()};
  }
  if (n == 0) os << "empty";
  else if (max_err == 0) os << "exact";
  else os << "max err " << short_number(max_err) << " (" << short_number(worst_share) << " of allowed), NMSE " << short_number(nmse);
  return {true, os.str()};
}

}  // namespace

Comparison compare(const std::string& name, const float* got, const double* want, int64_t n, const Shape& shape, Tolerance tol) {
  return compare_values(name, got, want, n, shape, tol);
}

Comparison compare(const std::string& name, const double* got, const double* want, int64_t n, const Shape& shape, Tolerance tol) {
  return compare_values(name, got, want, n, shape, tol);
}

Comparison compare_equal(const std::string& name, const int32_t* got, const int32_t* want, int64_t n, const Shape& shape) {
  int64_t bad = 0;
  std::ostringstream shown;
  for (int64_t i = 0; i < n; ++i) {
    if (got[i] == want[i]) continue;
    if (bad < kMismatchesShown) shown << "\n    " << name << index_string(i, shape) << " got " << got[i] << " want " << want[i];
    ++bad;
  }
  std::ostringstream os;
  os << name << ": ";
  if (bad > 0) {
    os << bad << " of " << n << " elements differ" << shown.str();
    return {false, os.str()};
  }
  os << (n == 0 ? "empty" : "exact");
  return {true, os.str()};
}

// ---- seeded host data ---------------------------------------------------------------------------

uint64_t HostRng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double HostRng::uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }

// Marsaglia's polar method: two normals per accepted pair, no trigonometry.
double HostRng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u, v, s;
  do {
    u = 2.0 * uniform() - 1.0;
    v = 2.0 * uniform() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double factor = std::sqrt(-2.0 * std::log(s) / s);
  spare_ = v * factor;
  has_spare_ = true;
  return u * factor;
}

int64_t HostRng::below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }

// ---- backends under test ------------------------------------------------------------------------

namespace {
std::vector<BackendUnderTest>& registry() {
  static std::vector<BackendUnderTest> backends;
  return backends;
}
}  // namespace

void register_backend_under_test(BackendUnderTest backend) { registry().push_back(std::move(backend)); }
const std::vector<BackendUnderTest>& backends_under_test() { return registry(); }

// ---- device buffers -----------------------------------------------------------------------------

namespace {
// Bytes after every output and accumulator, filled with kGuardByte: a kernel that writes past the
// end of its output (a SIMD tail) changes them.
constexpr size_t kGuardBytes = 64;
constexpr unsigned char kGuardByte = 0xA5;

size_t element_size(ElementType type) { return type == ElementType::F64 ? 8 : 4; }
const char* type_name(ElementType type) {
  return type == ElementType::F32 ? "float32" : type == ElementType::F64 ? "float64" : "int32";
}
}  // namespace

struct Buffer::State {
  std::string name;
  Shape shape;
  int64_t numel = 0;
  ElementType type = ElementType::F32;
  BufferRole role = BufferRole::Input;
  Tensor tensor;
  Floats host;
  Ints host_i32;
  Doubles host_f64;
  bool checked = false;

  size_t bytes() const { return static_cast<size_t>(numel) * element_size(type); }
  size_t guard() const { return role == BufferRole::Input ? 0 : kGuardBytes; }
  void* data() const { return tensor.data<void>(); }
  const void* host_bytes() const {
    return type == ElementType::F32 ? static_cast<const void*>(host.data())
                                    : type == ElementType::I32 ? static_cast<const void*>(host_i32.data()) : host_f64.data();
  }
};

namespace {
void expect_type(const Buffer::State& s, ElementType type) {
  if (s.type != type) fail_case("case error: buffer ", s.name, " is ", type_name(s.type), ", used as ", type_name(type));
}
}  // namespace

float* Buffer::f32() const {
  expect_type(*state_, ElementType::F32);
  return static_cast<float*>(state_->data());
}
double* Buffer::f64() const {
  expect_type(*state_, ElementType::F64);
  return static_cast<double*>(state_->data());
}
int32_t* Buffer::i32() const {
  expect_type(*state_, ElementType::I32);
  return static_cast<int32_t*>(state_->data());
}
const Floats& Buffer::host() const {
  expect_type(*state_, ElementType::F32);
  return state_->host;
}
const std::string& Buffer::name() const { return state_->name; }

// ---- OpRun --------------------------------------------------------------------------------------

OpRun::OpRun(const BackendUnderTest& under_test, Backend& backend, uint64_t seed)
    : under_test_(under_test), backend_(backend), rng_(seed) {}

OpRun::~OpRun() = default;

Floats OpRun::normal(int64_t n, double scale, double mean) {
  Floats v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(mean + scale * rng_.normal());
  return v;
}

Floats OpRun::uniform(int64_t n, double lo, double hi) {
  Floats v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(lo + (hi - lo) * rng_.uniform());
  return v;
}

Buffer OpRun::make(const std::string& name, const Shape& shape, ElementType type, BufferRole role, const void* initial) {
  auto s = std::make_shared<Buffer::State>();
  s->name = name;
  s->shape = shape;
  s->numel = shape_numel(shape);
  s->type = type;
  s->role = role;
  // A float32 tensor for float64 data too (as the bindings do for the global norm), 4-byte units.
  const int64_t units = static_cast<int64_t>((s->bytes() + s->guard()) / 4);
  s->tensor = Tensor::empty({units}, type == ElementType::I32 ? DType::I32 : DType::F32, backend_);
  std::vector<unsigned char> bytes(s->bytes() + s->guard(), kGuardByte);
  if (initial != nullptr) {
    std::memcpy(bytes.data(), initial, s->bytes());
  } else if (type == ElementType::F64) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int64_t i = 0; i < s->numel; ++i) std::memcpy(bytes.data() + 8 * i, &nan, 8);
  } else {
    // float32 NaN; for int32 outputs the same bits read 2143289344, never a valid index.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t i = 0; i < s->numel; ++i) std::memcpy(bytes.data() + 4 * i, &nan, 4);
  }
  if (!bytes.empty()) backend_.copy_from_host(s->data(), bytes.data(), bytes.size());
  Buffer buffer(s);
  buffers_.push_back(buffer);
  return buffer;
}

namespace {
// The element type of a host vector, and where a buffer keeps its host copy.
ElementType type_of(const Floats&) { return ElementType::F32; }
ElementType type_of(const Ints&) { return ElementType::I32; }
ElementType type_of(const Doubles&) { return ElementType::F64; }
Floats& host_copy(Buffer::State& s, const Floats&) { return s.host; }
Ints& host_copy(Buffer::State& s, const Ints&) { return s.host_i32; }
Doubles& host_copy(Buffer::State& s, const Doubles&) { return s.host_f64; }
}  // namespace

template <typename T>
Buffer OpRun::upload(const std::string& name, const std::vector<T>& values, const Shape& shape, BufferRole role) {
  CMAE_TEST_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "case error: ", name, " has ", values.size(), " values for ",
           shape_string(shape));
  Buffer b = make(name, shape, type_of(values), role, values.data());
  host_copy(*b.state(), values) = values;
  return b;
}

Buffer OpRun::input(const std::string& name, const Floats& values, const Shape& shape) {
  return upload(name, values, shape, BufferRole::Input);
}

Buffer OpRun::input_i32(const std::string& name, const Ints& values, const Shape& shape) {
  return upload(name, values, shape, BufferRole::Input);
}

Buffer OpRun::input_f64(const std::string& name, const Doubles& values, const Shape& shape) {
  return upload(name, values, shape, BufferRole::Input);
}

Buffer OpRun::output(const std::string& name, const Shape& shape, ElementType type) {
  return make(name, shape, type, BufferRole::Output, nullptr);
}

Buffer OpRun::accumulator(const std::string& name, const Floats& initial, const Shape& shape) {
  return upload(name, initial, shape, BufferRole::Accumulator);
}

namespace {
// The buffer's elements and guard, copied back.
std::vector<unsigned char> fetch(Backend& backend, const Buffer::State& s, std::vector<std::string>& failures) {
  backend.synchronize();
  std::vector<unsigned char> bytes(s.bytes() + s.guard());
  if (!bytes.empty()) backend.copy_to_host(bytes.data(), s.data(), bytes.size());
  for (size_t i = s.bytes(); i < bytes.size(); ++i) {
    if (bytes[i] != kGuardByte) {
      failures.push_back(s.name + ": written past its end (byte " + std::to_string(i - s.bytes()) + " after the last element)");
      break;
    }
  }
  bytes.resize(s.bytes());
  return bytes;
}
}  // namespace

template <typename T>
std::vector<T> OpRun::download_values(const Buffer& buffer) {
  Buffer::State& s = *buffer.state();
  std::vector<T> values(static_cast<size_t>(s.numel));
  expect_type(s, type_of(values));
  const std::vector<unsigned char> bytes = fetch(backend_, s, failures_);
  if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  s.checked = true;
  checked_bytes_.emplace_back(s.name, bytes);
  return values;
}

Floats OpRun::download(const Buffer& buffer) { return download_values<float>(buffer); }

void OpRun::expect_close(const Buffer& buffer, const Doubles& want, Tolerance tol) {
  const Buffer::State& s = *buffer.state();
  CMAE_TEST_CHECK(static_cast<int64_t>(want.size()) == s.numel, "case error: reference of ", s.name, " has ", want.size(), " values for ",
           s.numel);
  Comparison c;
  if (s.type == ElementType::F64) {
    const Doubles got = download_values<double>(buffer);
    c = compare(s.name, got.data(), want.data(), s.numel, s.shape, tol);
  } else {
    const Floats got = download_values<float>(buffer);
    c = compare(s.name, got.data(), want.data(), s.numel, s.shape, tol);
  }
  (c.ok ? summaries_ : failures_).push_back(c.summary);
}

void OpRun::expect_equal(const Buffer& buffer, const Ints& want) {
  const Buffer::State& s = *buffer.state();
  CMAE_TEST_CHECK(static_cast<int64_t>(want.size()) == s.numel, "case error: reference of ", s.name, " has ", want.size(), " values for ",
           s.numel);
  const Ints got = download_values<int32_t>(buffer);
  const Comparison c = compare_equal(s.name, got.data(), want.data(), s.numel, s.shape);
  (c.ok ? summaries_ : failures_).push_back(c.summary);
}

std::string OpRun::finish() {
  for (const Buffer& b : buffers_) {
    const Buffer::State& s = *b.state();
    if (s.role != BufferRole::Input) {
      // (An empty buffer stands for a null pointer: nothing to check.)
      if (!s.checked && s.numel > 0) failures_.push_back("case error: output " + s.name + " was never checked");
      continue;
    }
    // Inputs are const in every contract: they must come back bit for bit.
    const std::vector<unsigned char> now = fetch(backend_, s, failures_);
    if (!now.empty() && std::memcmp(now.data(), s.host_bytes(), now.size()) != 0) {
      const size_t unit = element_size(s.type);
      size_t i = 0;
      while (std::memcmp(now.data() + i * unit, static_cast<const unsigned char*>(s.host_bytes()) + i * unit, unit) == 0) ++i;
      failures_.push_back("input " + s.name + " was modified (first at " + index_string(static_cast<int64_t>(i), s.shape) + ")");
    }
  }
  std::string joined;
  const std::vector<std::string>& parts = failures_.empty() ? summaries_ : failures_;
  for (const std::string& p : parts) joined += (joined.empty() ? "" : "; ") + p;
  if (!failures_.empty()) throw std::runtime_error(joined);
  return joined;
}

// ---- the case table → Suite ---------------------------------------------------------------------

OpCase& CaseTable::add(std::string family, std::string op, std::string shape, std::function<void(OpRun&)> body) {
  // FNV-1a of the name: the seed follows the case, whatever is added around it.
  uint64_t seed = 0xcbf29ce484222325ull;
  for (char ch : family + "/" + op + "/" + shape) seed = (seed ^ static_cast<unsigned char>(ch)) * 0x100000001b3ull;
  cases_.push_back({std::move(family), std::move(op), std::move(shape), seed, std::move(body)});
  return cases_.back();
}

namespace {

// Restores the backend's settings when a case ends, however it ends.
struct SettingsScope {
  const BackendUnderTest& under_test;
  Backend& backend;
  explicit SettingsScope(const BackendUnderTest& b) : under_test(b), backend(b.setup()) {}
  ~SettingsScope() {
    if (under_test.set_threads) under_test.set_threads(0);
    if (under_test.restore) under_test.restore();
  }
};

// " [12 ms]": the time of a case (host data and references included), to keep the run short.
std::string elapsed_since(std::chrono::steady_clock::time_point start) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  return " [" + std::to_string(ms) + " ms]";
}

std::string run_case(const BackendUnderTest& under_test, const OpCase& c) {
  const auto start = std::chrono::steady_clock::now();
  SettingsScope scope(under_test);
  OpRun run(under_test, scope.backend, c.seed);
  c.body(run);
  return run.finish() + elapsed_since(start);
}

std::string thread_counts_label(const std::vector<int>& counts) {
  std::string s;
  for (int t : counts) s += (s.empty() ? "" : ",") + std::to_string(t);
  return s;
}

// The case under each thread count: every run against the reference, and every checked output
// bit-identical to the first run's.
std::string run_under_thread_counts(const BackendUnderTest& under_test, const OpCase& c) {
  const auto start = std::chrono::steady_clock::now();
  SettingsScope scope(under_test);
  std::vector<std::pair<std::string, std::vector<unsigned char>>> first;
  std::string summary;
  for (size_t k = 0; k < under_test.thread_counts.size(); ++k) {
    const int threads = under_test.thread_counts[k];
    under_test.set_threads(threads);
    OpRun run(under_test, scope.backend, c.seed);
    try {
      c.body(run);
      summary = run.finish();
    } catch (const std::exception& e) {
      fail_case("with ", threads, " threads: ", e.what());
    }
    if (k == 0) {
      first = run.checked_bytes();
      continue;
    }
    const auto& now = run.checked_bytes();
    CMAE_TEST_CHECK(now.size() == first.size(), "different outputs checked with ", threads, " threads");
    for (size_t i = 0; i < now.size(); ++i) {
      const auto& a = first[i].second;
      const auto& b = now[i].second;
      if (a == b) continue;
      size_t at = 0;
      while (at < a.size() && a[at] == b[at]) ++at;
      fail_case(now[i].first, " with ", threads, " threads differs from ", under_test.thread_counts[0], " thread(s) from byte ", at,
                " on");
    }
  }
  return "bit-identical under " + thread_counts_label(under_test.thread_counts) + " threads; " + summary + elapsed_since(start);
}

}  // namespace

void add_table_to_suite(const CaseTable& table, testing::Suite& suite) {
  for (const BackendUnderTest& under_test : backends_under_test()) {
    for (const OpCase& c : table.cases()) {
      if (under_test.matmul_cases_only && !c.matmul) continue;
      const std::string name = under_test.name + "/" + c.family + "/" + c.op + "/" + c.shape;
      const bool threads = c.thread_invariant && !under_test.thread_counts.empty();
      const std::string threads_name = name + "/threads=" + thread_counts_label(under_test.thread_counts);
      if (!under_test.unavailable.empty()) {
        suite.skip(name, under_test.unavailable);
        if (threads) suite.skip(threads_name, under_test.unavailable);
        continue;
      }
      suite.add(name, [&under_test, &c] { return run_case(under_test, c); });
      if (threads) suite.add(threads_name, [&under_test, &c] { return run_under_thread_counts(under_test, c); });
    }
  }
}

}  // namespace cmae::op_tests
