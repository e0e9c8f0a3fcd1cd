// cmae_op_tests: every op of every backend against float64 references (in the spirit of ggml's
// tests/test-backend-ops.cpp). Output protocol: test/native/report.h (one JSON line per case).
//
// ---- Layout ------------------------------------------------------------------------------------
//   harness.h/.cc       this header: the registry of backends under test, the case table, OpRun
//                       (seeded host inputs, NaN-filled device outputs, every-element comparison)
//   reference.h/.cc     float64 references of every op, written from the ops/*.h contracts and
//                       PyTorch semantics (never ported from a kernel)
//   backends.cc         which backends run: the CPU once per SIMD path, plus its BF16 matmuls
//   cases_<family>.cc   the cases of ops/<family>.h (add_<family>_cases)
//   cases_backend.cc    the memory primitives and run_parts of every backend
//   cases_host.cc       core/math.h and core/rng.h: the per-element math every backend compiles
//                       (nvcc too), checked once on the host
//   main.cc             builds the table and expands it into the Suite
//
// ---- The case table ----------------------------------------------------------------------------
// Every cases_<family>.cc appends OpCases to one CaseTable; main runs every OpCase on every backend
// under test, as the case "<backend>/<family>/<op>/<shape>" (e.g. "cpu-avx2/linear/sgemm/NT
// M=65 N=192 K=128"). Host cases are "host/<header>/<what>".
//
// Adding an op case, in cases_<family>.cc:
//   table.add("activation", "gelu_forward", "n=17", [](OpRun& run) {
//     const int64_t n = 17;
//     Buffer x = run.input("inp", run.normal(n), {n});  // seeded host data, uploaded
//     Buffer out = run.output("out", {n});              // NaN-filled (+ a guard checked after)
//     run.backend().gelu_forward(out.f32(), x.f32(), n);
//     run.expect_close(out, ref::gelu(x.host()), kGelu);  // every element, float64 reference
//   });
// Use run.accumulator(...) for outputs the op adds into (+=) or updates in place: they start from
// the given (random) values; a zero-element buffer stands for a null pointer. The run fails when
// an output is never checked, when an input was modified, or when the guard after an output was
// written. Flags, set on what add() returns:
//   .matmul = true            the result depends on the matmul precision: the case also runs on
//                             precision variants (cpu-avx512-bf16), tolerance from
//                             run.matmul_precision()
//   .thread_invariant = true  the contract promises results independent of the thread count: the
//                             case also runs under each thread count of the backend, bit for bit
//                             (one moderate case per op, large enough to be split)
//
// ---- Backends under test -----------------------------------------------------------------------
// A backend registers in register_backends() (backends.cc) with one line, and then runs every case
// of the table (every op case, the memory primitives and run_parts), named "<its name>/...":
//   #ifdef CMAE_WITH_CUDA_EMULATION
//   register_backend_under_test({"cuda-emulated", []() -> Backend& {
//     Backend& b = cuda_emulated_backend();  // cuda/cuda_api.h
//     b.set_matmul_precision(MatmulPrecision::FP32);
//     return b;
//   }});
//   #endif
// setup is called before every case (select the settings there: the case checks that
// matmul_precision() is the BackendUnderTest's) and restore, if given, after it.
//
// ---- Running -----------------------------------------------------------------------------------
//   build-tests/test/native/cmae_op_tests                         every case
//   cmae_op_tests --list                                          the names only
//   cmae_op_tests --filter cpu-avx2/                              one backend
//   cmae_op_tests --filter /linear/sgemm/                         one op on every backend
//   cmae_op_tests --filter cpu-avx512/norm/layernorm_backward/    one op on one backend
//   cmae_op_tests --filter threads=                               the thread-count determinism cases
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "report.h"

namespace cmae::op_tests {

using Floats = std::vector<float>;
using Doubles = std::vector<double>;
using Ints = std::vector<int32_t>;

using testing::fail_case;

// ---- comparison ---------------------------------------------------------------------------------

// |got − want| <= atol + rtol·|want| for every element; a NaN want needs a NaN, an infinite want
// the same infinity.
struct Tolerance {
  double atol;
  double rtol;
};
constexpr Tolerance kExact{0.0, 0.0};
// One float32 rounding of a value exact in double: |fl(x) − x| <= 2^-24·|x| (a factor 2 of margin
// for the double arithmetic of the check itself).
constexpr Tolerance kOneRounding{0.0, 0x1p-23};
// A float32 sum of `terms` values of magnitude `scale` (random signs), in any order (a chain,
// blocks, a tree): 6 standard deviations of a sequential chain's rounding, whose running sum is
// ~sqrt(k)·scale: 6·2^-24·terms/sqrt(6)·scale; plus 1e-5 relative for large results.
inline Tolerance float_sum_tolerance(int64_t terms, double scale = 1.0) {
  return {1.5e-7 * static_cast<double>(terms > 1 ? terms : 1) * scale, 1e-5};
}

struct Comparison {
  bool ok = true;
  std::string summary;  // max error, its share of the allowed error, NMSE; or the first mismatches
};
// Compares n elements of `got` (float or double) with `want`; shape gives the indices printed.
Comparison compare(const std::string& name, const float* got, const double* want, int64_t n, const Shape& shape, Tolerance tol);
Comparison compare(const std::string& name, const double* got, const double* want, int64_t n, const Shape& shape, Tolerance tol);
Comparison compare_equal(const std::string& name, const int32_t* got, const int32_t* want, int64_t n, const Shape& shape);
std::string index_string(int64_t flat, const Shape& shape);  // "[3, 17]"

// ---- seeded host data ---------------------------------------------------------------------------

// splitmix64: independent of core/rng.h, which is under test.
class HostRng {
 public:
  explicit HostRng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next();
  double uniform();  // [0, 1)
  double normal();   // N(0, 1)
  int64_t below(int64_t n);  // [0, n)

 private:
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// ---- backends under test ------------------------------------------------------------------------

struct BackendUnderTest {
  std::string name;                  // first part of every case name: "cpu-avx2"
  std::function<Backend&()> setup;   // selects the settings, returns the backend; before every case
  std::function<void()> restore;     // undoes setup's settings (may be empty); after every case
  // The precision setup selects: matmul cases take their tolerance from it.
  MatmulPrecision matmul_precision = MatmulPrecision::FP32;
  // A variant of a backend already registered that differs only in its matmul precision runs only
  // the .matmul cases.
  bool matmul_cases_only = false;
  // Backends with a compute thread count (the CPU): the .thread_invariant cases also run under each
  // of these counts and must give bit-identical outputs; run_parts runs under each too.
  std::vector<int> thread_counts;
  std::function<void(int)> set_threads;  // set_threads(0) restores the default
  // Non-empty: this machine cannot run the backend (the CPU feature it lacks); its cases are
  // listed and reported as skipped with this reason, never run.
  std::string unavailable;
};

void register_backend_under_test(BackendUnderTest backend);
const std::vector<BackendUnderTest>& backends_under_test();
void register_backends();  // backends.cc

// ---- device buffers -----------------------------------------------------------------------------

enum class ElementType { F32, F64, I32 };
// Inputs must come back unchanged; outputs start as NaN; accumulators start from given values.
// Outputs and accumulators must be checked, and get a guard region.
enum class BufferRole { Input, Output, Accumulator };

// One named buffer of the backend under test: a Tensor (+ a guard region after the elements, for
// outputs) and the host copy of what was uploaded into it.
class Buffer {
 public:
  float* f32() const;
  double* f64() const;
  int32_t* i32() const;
  const Floats& host() const;  // the values uploaded (inputs, accumulators' initial values)
  const std::string& name() const;

  struct State;
  explicit Buffer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  const std::shared_ptr<State>& state() const { return state_; }

 private:
  std::shared_ptr<State> state_;
};

// One run of one case on one backend: data, buffers and checks. The harness creates it, runs the
// case body and then finish() (unchecked outputs, modified inputs, failed checks → the case fails).
class OpRun {
 public:
  OpRun(const BackendUnderTest& under_test, Backend& backend, uint64_t seed);
  ~OpRun();
  OpRun(const OpRun&) = delete;
  OpRun& operator=(const OpRun&) = delete;

  Backend& backend() { return backend_; }
  const BackendUnderTest& under_test() const { return under_test_; }
  MatmulPrecision matmul_precision() const { return under_test_.matmul_precision; }
  HostRng& rng() { return rng_; }

  // Seeded host data (float32).
  Floats normal(int64_t n, double scale = 1.0, double mean = 0.0);
  Floats uniform(int64_t n, double lo, double hi);

  // Inputs: uploaded; must hold the same bits when the case ends.
  Buffer input(const std::string& name, const Floats& values, const Shape& shape);
  Buffer input_i32(const std::string& name, const Ints& values, const Shape& shape);
  Buffer input_f64(const std::string& name, const Doubles& values, const Shape& shape);
  // Outputs the op overwrites: filled with NaN first.
  Buffer output(const std::string& name, const Shape& shape, ElementType type = ElementType::F32);
  // Outputs that start from `initial`: += accumulators, in-place updates, aliased in/out, rows an
  // op must not touch.
  Buffer accumulator(const std::string& name, const Floats& initial, const Shape& shape);

  // Copies the buffer back (after synchronize) and checks its guard; marks it checked (for an
  // output whose values a case checks by itself, or that a null pointer must leave unwritten).
  Floats download(const Buffer& buffer);

  // Every element against the float64 reference.
  void expect_close(const Buffer& buffer, const Doubles& want, Tolerance tol);
  void expect_equal(const Buffer& buffer, const Ints& want);
  // A line for the case's summary (what a property check established).
  void note(const std::string& text) { summaries_.push_back(text); }
  // Throws with every failure; returns the summary of every check.
  std::string finish();
  // The bytes of every checked output, in check order (for the thread-count comparison).
  const std::vector<std::pair<std::string, std::vector<unsigned char>>>& checked_bytes() const { return checked_bytes_; }

 private:
  Buffer make(const std::string& name, const Shape& shape, ElementType type, BufferRole role, const void* initial);
  template <typename T>
  Buffer upload(const std::string& name, const std::vector<T>& values, const Shape& shape, BufferRole role);
  template <typename T>
  std::vector<T> download_values(const Buffer& buffer);

  const BackendUnderTest& under_test_;
  Backend& backend_;
  HostRng rng_;
  std::vector<Buffer> buffers_;
  std::vector<std::string> failures_;
  std::vector<std::string> summaries_;
  std::vector<std::pair<std::string, std::vector<unsigned char>>> checked_bytes_;
};

// ---- the case table -----------------------------------------------------------------------------

struct OpCase {
  std::string family;  // ops/<family>.h, or "backend" (memory primitives, run_parts)
  std::string op;      // the member function under test
  std::string shape;   // what tells this case from the others of the op: "M=65 N=192 K=128"
  uint64_t seed;       // of its host data: a hash of the name, so adding a case changes no other
  std::function<void(OpRun&)> body;
  bool matmul = false;            // also runs on matmul precision variants
  bool thread_invariant = false;  // also runs under every thread count of the backend
};

class CaseTable {
 public:
  // Returns the case, for its flags: table.add(...).thread_invariant = true;
  OpCase& add(std::string family, std::string op, std::string shape, std::function<void(OpRun&)> body);
  const std::vector<OpCase>& cases() const { return cases_; }

 private:
  std::vector<OpCase> cases_;
};

void add_activation_cases(CaseTable& table);
void add_attention_cases(CaseTable& table);
void add_data_cases(CaseTable& table);
void add_linear_cases(CaseTable& table);
void add_loss_cases(CaseTable& table);
void add_norm_cases(CaseTable& table);
void add_optim_cases(CaseTable& table);
void add_patch_cases(CaseTable& table);
void add_pool_cases(CaseTable& table);
void add_row_cases(CaseTable& table);
void add_backend_cases(CaseTable& table);
void add_host_cases(testing::Suite& suite);

// Every case of the table on every backend under test (and the thread-count variants).
void add_table_to_suite(const CaseTable& table, testing::Suite& suite);

// "R=4160 C=192"-style labels: shape_label("R", 4160, "C", 192).
inline void append_label(std::ostringstream&) {}
template <typename V, typename... Rest>
void append_label(std::ostringstream& os, const char* key, V value, const Rest&... rest) {
  if (os.tellp() > 0) os << ' ';
  os << key << '=' << value;
  append_label(os, rest...);
}
template <typename... Parts>
std::string shape_label(const Parts&... parts) {
  std::ostringstream os;
  append_label(os, parts...);
  return os.str();
}

}  // namespace cmae::op_tests
