// Cases of backend/backend.h itself: the memory primitives (allocation alignment, host round trips,
// device copies, pitched 2-D copies and zeroing, fill_zero) and the execution policy (batch_parts,
// run_parts: every part once, exceptions rethrown after every part stopped). Byte patterns are
// written and read back through the backend's own copies; the bytes around each target must stay.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "harness.h"

namespace cmae::op_tests {

namespace {

// One raw allocation of the backend under test.
class DeviceBytes {
 public:
  DeviceBytes(Backend& backend, size_t bytes) : backend_(backend), bytes_(bytes), data_(backend.allocate(bytes)) {}
  ~DeviceBytes() { backend_.deallocate(data_, bytes_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  char* data() const { return static_cast<char*>(data_); }

 private:
  Backend& backend_;
  size_t bytes_;
  void* data_;
};

using Bytes = std::vector<unsigned char>;

Bytes random_bytes(OpRun& run, size_t n) {
  Bytes b(n);
  for (unsigned char& x : b) x = static_cast<unsigned char>(run.rng().next());
  return b;
}

Bytes read_back(Backend& backend, const char* src, size_t n) {
  Bytes b(n);
  backend.synchronize();
  if (n > 0) backend.copy_to_host(b.data(), src, n);
  return b;
}

// The first differing byte, or "" when equal.
std::string first_difference(const Bytes& got, const Bytes& want, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i])
      return what + ": byte " + std::to_string(i) + " is " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
  return "";
}

void expect_bytes(const Bytes& got, const Bytes& want, const std::string& what) {
  const std::string diff = first_difference(got, want, what);
  if (!diff.empty()) fail_case(diff);
}

// Pitched copies and zeroing: `rows` rows of `width` bytes, row starts `pitch` bytes apart.
struct Pitched {
  size_t rows, width, dst_pitch, src_pitch;
};

std::string label(const Pitched& p) {
  return shape_label("rows", p.rows, "width", p.width, "dst_pitch", p.dst_pitch, "src_pitch", p.src_pitch);
}

// A part that runs fn(part) and records it (run_parts cases).
struct PartLog {
  std::vector<std::atomic<int>> starts, ends;
  explicit PartLog(int parts) : starts(static_cast<size_t>(parts)), ends(static_cast<size_t>(parts)) {}
};

void check_run_parts(Backend& backend, int parts, int throwing_part, const std::string& when) {
  PartLog log(parts);
  bool rethrown = false;
  try {
    backend.run_parts(parts, [&](int part) {
      CMAE_TEST_CHECK(part >= 0 && part < parts, when, ": part ", part, " of ", parts);
      log.starts[static_cast<size_t>(part)]++;
      if (part == throwing_part) throw std::runtime_error("part " + std::to_string(part) + " failed on purpose");
      // Long enough that a part running beside the thrower is still busy when it throws.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      log.ends[static_cast<size_t>(part)]++;
    });
  } catch (const std::runtime_error& e) {
    CMAE_TEST_CHECK(throwing_part >= 0, when, ": unexpected exception: ", e.what());
    CMAE_TEST_CHECK(std::string(e.what()) == "part " + std::to_string(throwing_part) + " failed on purpose", when, ": rethrew ", e.what());
    rethrown = true;
  }
  CMAE_TEST_CHECK(throwing_part < 0 || rethrown, when, ": the exception of part ", throwing_part, " was not rethrown");
  for (int part = 0; part < parts; ++part) {
    const int starts = log.starts[static_cast<size_t>(part)], ends = log.ends[static_cast<size_t>(part)];
    if (throwing_part < 0) CMAE_TEST_CHECK(starts == 1 && ends == 1, when, ": part ", part, " ran ", starts, " times");
    else if (part == throwing_part) CMAE_TEST_CHECK(starts == 1, when, ": the throwing part ran ", starts, " times");
    // After an exception, later parts may never start (a sequential backend), but none may run
    // twice or still be running when run_parts returns.
    else CMAE_TEST_CHECK(starts <= 1 && ends == starts, when, ": part ", part, " started ", starts, " times, finished ", ends);
  }
}

}  // namespace

void add_backend_cases(CaseTable& table) {

  table.add("backend", "allocate", "bytes in {0, 1, 63, 4097, 2^18, 2^20+3}", [](OpRun& run) {
    Backend& backend = run.backend();
    for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{4097}, size_t{1} << 18, (size_t{1} << 20) + 3}) {
      DeviceBytes block(backend, bytes);
      CMAE_TEST_CHECK(block.data() != nullptr, bytes, " bytes: null");
      CMAE_TEST_CHECK(reinterpret_cast<uintptr_t>(block.data()) % kTensorAlignment == 0, bytes, " bytes: not ", kTensorAlignment,
               "-byte aligned");
      // Every byte asked for is usable.
      const Bytes pattern = random_bytes(run, bytes);
      if (bytes > 0) backend.copy_from_host(block.data(), pattern.data(), bytes);
      expect_bytes(read_back(backend, block.data(), bytes), pattern, std::to_string(bytes) + " bytes");
    }
    run.note("aligned and usable");
  });

  // Round trips at offsets 0 and 3 inside a larger block: the bytes around must stay.
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{3}, size_t{4096}, (size_t{1} << 20) + 5}) {
    table.add("backend", "copy_from_host+copy_to_host", shape_label("bytes", bytes), [bytes](OpRun& run) {
      Backend& backend = run.backend();
      const size_t margin = 64;
      DeviceBytes block(backend, bytes + 2 * margin);
      for (size_t offset : {size_t{0}, size_t{3}}) {
        Bytes all = random_bytes(run, bytes + 2 * margin);
        backend.copy_from_host(block.data(), all.data(), all.size());
        const Bytes part = random_bytes(run, bytes);
        if (bytes > 0) backend.copy_from_host(block.data() + margin + offset, part.data(), bytes);
        if (bytes > 0) std::memcpy(all.data() + margin + offset, part.data(), bytes);
        expect_bytes(read_back(backend, block.data(), all.size()), all, "offset " + std::to_string(offset));
        Bytes back(bytes);
        if (bytes > 0) backend.copy_to_host(back.data(), block.data() + margin + offset, bytes);
        expect_bytes(back, part, "copy_to_host at offset " + std::to_string(offset));
      }
      run.note("round trip exact");
    });
    table.add("backend", "copy", shape_label("bytes", bytes), [bytes](OpRun& run) {
      Backend& backend = run.backend();
      const size_t margin = 64;
      DeviceBytes src(backend, bytes + margin), dst(backend, bytes + 2 * margin);
      const Bytes source = random_bytes(run, bytes + margin);
      Bytes target = random_bytes(run, bytes + 2 * margin);
      backend.copy_from_host(src.data(), source.data(), source.size());
      backend.copy_from_host(dst.data(), target.data(), target.size());
      // src + 1 → dst + 5: neither aligned.
      backend.copy(dst.data() + 5, src.data() + 1, bytes);
      if (bytes > 0) std::memcpy(target.data() + 5, source.data() + 1, bytes);
      expect_bytes(read_back(backend, dst.data(), target.size()), target, "dst");
      expect_bytes(read_back(backend, src.data(), source.size()), source, "src (unchanged)");
      run.note("exact");
    });
  }

  // Tight and padded pitches, one row, zero width, and ViT-tiny's cls rows (192 floats of every
  // 65·192-float sample).
  const Pitched pitched[] = {{5, 12, 16, 20}, {5, 12, 12, 12}, {1, 7, 7, 7}, {3, 0, 8, 8}, {7, 33, 40, 35}, {64, 768, 65 * 768, 768}};
  for (const Pitched& p : pitched) {
    table.add("backend", "copy_2d", label(p), [p](OpRun& run) {
      Backend& backend = run.backend();
      const size_t src_bytes = p.rows * p.src_pitch, dst_bytes = p.rows * p.dst_pitch + 64;
      DeviceBytes src(backend, src_bytes), dst(backend, dst_bytes);
      const Bytes source = random_bytes(run, src_bytes);
      Bytes target = random_bytes(run, dst_bytes);
      backend.copy_from_host(src.data(), source.data(), src_bytes);
      backend.copy_from_host(dst.data(), target.data(), dst_bytes);
      backend.copy_2d(dst.data(), p.dst_pitch, src.data(), p.src_pitch, p.width, p.rows);
      for (size_t r = 0; r < p.rows; ++r) std::memcpy(target.data() + r * p.dst_pitch, source.data() + r * p.src_pitch, p.width);
      expect_bytes(read_back(backend, dst.data(), dst_bytes), target, "dst (rows and the gaps between them)");
      run.note("exact, gaps kept");
    });
    table.add("backend", "zero_2d", shape_label("rows", p.rows, "width", p.width, "pitch", p.dst_pitch), [p](OpRun& run) {
      Backend& backend = run.backend();
      const size_t bytes = p.rows * p.dst_pitch + 64;
      DeviceBytes dst(backend, bytes);
      Bytes target = random_bytes(run, bytes);
      backend.copy_from_host(dst.data(), target.data(), bytes);
      backend.zero_2d(dst.data(), p.dst_pitch, p.width, p.rows);
      for (size_t r = 0; r < p.rows; ++r) std::memset(target.data() + r * p.dst_pitch, 0, p.width);
      expect_bytes(read_back(backend, dst.data(), bytes), target, "dst (rows and the gaps between them)");
      run.note("exact, gaps kept");
    });
  }

  for (size_t bytes : {size_t{0}, size_t{1}, size_t{13}, size_t{4099}, (size_t{1} << 20) + 1}) {
    table.add("backend", "fill_zero", shape_label("bytes", bytes), [bytes](OpRun& run) {
      Backend& backend = run.backend();
      DeviceBytes block(backend, bytes + 64);
      Bytes target = random_bytes(run, bytes + 64);
      backend.copy_from_host(block.data(), target.data(), target.size());
      // At offset 1: a start that is not aligned.
      if (bytes > 0) backend.fill_zero(block.data() + 1, bytes - 1);
      if (bytes > 0) std::memset(target.data() + 1, 0, bytes - 1);
      expect_bytes(read_back(backend, block.data(), target.size()), target, "block");
      run.note("exact, bytes around kept");
    });
  }

  table.add("backend", "batch_parts", "at least 1", [](OpRun& run) {
    const int parts = run.backend().batch_parts();
    CMAE_TEST_CHECK(parts >= 1, "batch_parts() = ", parts);
    run.note("batch_parts " + std::to_string(parts));
  });

  // Every part exactly once, under every thread count of the backend (the CPU runs 2 parts side by
  // side with exactly 2 threads, one after the other otherwise); an exception in a part comes out
  // of run_parts with its message, once every started part has finished.
  table.add("backend", "run_parts", "parts in {1, 2, 3, batch_parts()}, with and without a throwing part", [](OpRun& run) {
    const BackendUnderTest& under_test = run.under_test();
    std::vector<int> thread_counts = under_test.thread_counts;
    if (thread_counts.empty()) thread_counts.push_back(0);  // the backend's own policy only
    for (int threads : thread_counts) {
      if (under_test.set_threads) under_test.set_threads(threads);
      for (int parts : {1, 2, 3, run.backend().batch_parts()})
        for (int throwing_part = -1; throwing_part < parts; ++throwing_part) {
          const std::string when = shape_label("threads", threads, "parts", parts, "throwing", throwing_part);
          check_run_parts(run.backend(), parts, throwing_part, when);
        }
    }
    run.note("every part once, exceptions rethrown");
  });
}

}  // namespace cmae::op_tests
