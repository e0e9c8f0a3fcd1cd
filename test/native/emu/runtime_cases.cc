// The runtime wrapper (cuda/common/runtime.h) in its emulated form: what a backend's host code
// calls, with the same results and errors it has on the GPU.
#include <cstring>
#include <numeric>

#include "common/runtime.h"
#include "emu_test.h"

namespace cmae::emu_tests {
namespace {

std::string runtime_wrapper() {
  CMAE_TEST_CHECK(cuda::device_count() == 1, cuda::device_count());
  const cuda::DeviceProperties properties = cuda::device_properties(0);
  CMAE_TEST_CHECK(properties.major == 9 && properties.max_shared_bytes_per_block == 227 * 1024, properties.name);
  expect_error([] { cuda::device_properties(1); }, ErrorKind::Device, {"one device"});

  cuda::Stream stream = cuda::stream_create();
  CMAE_TEST_CHECK(stream != nullptr, "stream_create gave the default stream");
  std::vector<int> host(64);
  std::iota(host.begin(), host.end(), 0);
  auto* device = static_cast<int*>(cuda::device_alloc(host.size() * sizeof(int)));
  auto* other = static_cast<int*>(cuda::device_alloc(host.size() * sizeof(int)));
  CMAE_TEST_CHECK(reinterpret_cast<std::uintptr_t>(device) % 256 == 0, "allocations are 256-byte aligned like cudaMalloc's");
  cuda::copy(device, host.data(), host.size() * sizeof(int), stream);
  cuda::copy(other, device, host.size() * sizeof(int), stream);
  // Rows 1-2 of an 8-int-wide matrix, 3 ints each, from pitch 32 into pitch 16 bytes.
  std::vector<int> packed(8, -1);
  cuda::copy_2d(packed.data(), 4 * sizeof(int), other + 8 + 2, 8 * sizeof(int), 3 * sizeof(int), 2, stream);
  cuda::fill_bytes(other, 0, 8 * sizeof(int), stream);
  cuda::fill_bytes_2d(other + 16, 8 * sizeof(int), 0xFF, 2 * sizeof(int), 2, stream);
  std::vector<int> back(host.size());
  cuda::copy(back.data(), other, back.size() * sizeof(int), stream);
  cuda::stream_synchronize(stream);
  const std::vector<int> expected_packed = {10, 11, 12, -1, 18, 19, 20, -1};
  CMAE_TEST_CHECK(packed == expected_packed, "copy_2d");
  for (int i = 0; i < 64; ++i) {
    const bool zeroed = i < 8, filled = (i >= 16 && i < 18) || (i >= 24 && i < 26);
    CMAE_TEST_CHECK(back[i] == (zeroed ? 0 : filled ? -1 : i), "element ", i, " is ", back[i]);
  }
  expect_error([&] { cuda::copy_2d(packed.data(), 8, host.data(), 16, 12, 1, stream); }, ErrorKind::Device, {"exceeds a pitch"});
  cuda::device_free(device);
  cuda::device_free(other);
  cuda::device_free(cuda::device_alloc(0));
  cuda::stream_destroy(stream);
  return "device count/properties, aligned allocation, copies in any direction, 2-D copy, fills, streams";
}

}  // namespace

void add_runtime_cases(testing::Suite& suite) { suite.add("emu/runtime_wrapper", runtime_wrapper); }

}  // namespace cmae::emu_tests
