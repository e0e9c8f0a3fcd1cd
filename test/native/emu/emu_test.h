// Shared helpers of cmae_emu_tests, the tests of the SIMT emulator itself (cuda/emu): each
// *_cases.cc registers its cases in the Suite of main.cc (protocol: test/native/report.h).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"
#include "report.h"

namespace cmae::emu_tests {

using testing::fail_case;

// Runs fn under each schedule order; a failure says which.
void under_all_schedules(const std::function<void()>& fn);

// `launch` must throw cmae::Error of `kind` whose message holds every fragment; returns the message.
std::string expect_error(const std::function<void()>& launch, ErrorKind kind, std::initializer_list<std::string> fragments);

// After an aborted launch the emulator must work as before: a block reduction, checked.
void check_next_launch_works();

// Deterministic test data: multiples of 1/8 in [-4, 4], so sums of up to 2^17 of them are exact
// in float32 whatever the order.
std::vector<float> eighths(std::size_t n, std::uint32_t seed);

bool is_shared_poison(float x);  // the NaN pattern shared memory starts with

double milliseconds_since(std::chrono::steady_clock::time_point start);

void add_block_cases(testing::Suite& suite);
void add_warp_cases(testing::Suite& suite);
void add_error_cases(testing::Suite& suite);
void add_planted_cases(testing::Suite& suite);  // planted_cases.cc: a product kernel's missing barrier
void add_mma_cases(testing::Suite& suite);
void add_runtime_cases(testing::Suite& suite);

}  // namespace cmae::emu_tests
