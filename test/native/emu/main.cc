// cmae_emu_tests: the SIMT emulator's own tests (scheduling, barriers, warp intrinsics, shared
// memory, atomics, cp.async, tensor-core fragments, error reports, costs), one JSON line per case.
#include <cmath>
#include <cstring>

#include "emu/emu.h"
#include "emu_test.h"

namespace cmae::emu_tests {

void under_all_schedules(const std::function<void()>& fn) {
  emu::for_each_schedule([&](emu::Schedule schedule) {
    try {
      fn();
    } catch (const std::exception& e) {
      fail_case("[schedule ", emu::schedule_name(schedule), "] ", e.what());
    }
  });
}

std::string expect_error(const std::function<void()>& launch, ErrorKind kind, std::initializer_list<std::string> fragments) {
  try {
    launch();
  } catch (const Error& e) {
    const std::string message = e.what();
    CMAE_TEST_CHECK(e.kind() == kind, "wrong error kind ", static_cast<int>(e.kind()), ": ", message);
    for (const auto& fragment : fragments) CMAE_TEST_CHECK(message.find(fragment) != std::string::npos, "'", fragment, "' missing from: ", message);
    return message;
  }
  fail_case("expected an error containing '", *fragments.begin(), "', but the launch succeeded");
}

std::vector<float> eighths(std::size_t n, std::uint32_t seed) {
  std::vector<float> v(n);
  std::uint32_t state = seed * 2654435761u + 1;
  for (auto& x : v) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<float>(static_cast<int>(state >> 26) - 32) / 8.0f;
  }
  return v;
}

bool is_shared_poison(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return bits == 0x7FC00000u;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace cmae::emu_tests

int main(int argc, char** argv) {
  cmae::testing::Suite suite;
  cmae::emu_tests::add_block_cases(suite);
  cmae::emu_tests::add_warp_cases(suite);
  cmae::emu_tests::add_mma_cases(suite);
  cmae::emu_tests::add_error_cases(suite);
  cmae::emu_tests::add_planted_cases(suite);
  cmae::emu_tests::add_runtime_cases(suite);
  return suite.run(argc, argv);
}
