// Error cases of cmae_emu_tests: planted bugs the emulator must report with cmae::Error naming the
// kernel, the block and what happened (never a hang or an abort), each followed by a launch that
// must work; bad launch configurations (ErrorKind::Device in both modes); fibres unwound on abort.
#include "common/async_copy.cuh"
#include "common/launch.cuh"
#include "emu_test.h"
#include "kernels/error_kernels.cuh"

namespace cmae::emu_tests {
namespace {

// Kernels for the emulator alone: nvcc would refuse the first at compile time, and the others
// misuse what only the emulator checks for.
__global__ void static_shared_over_48k(float* out) {
  CMAE_SHARED(float, too_big, 13000);
  too_big[threadIdx.x] = 1.0f;
  out[threadIdx.x] = too_big[threadIdx.x];
}

__global__ void cp_async_to_global(const float* src, float* dst) { cuda::cp_async_16(&dst[4 * threadIdx.x], &src[4 * threadIdx.x]); }

__global__ void launches_from_a_kernel(float* out) { CMAE_LAUNCH(planted_divergent_syncthreads, 1, 32, 0, nullptr, out); }

__global__ void launch_probe(float* out) { out[threadIdx.x] = 2.0f; }

// Counts destructor runs, so that a test sees the fibres of an aborted launch unwound.
struct CountsDestruction {
  int* counter;
  ~CountsDestruction() { ++*counter; }
};
__global__ void deadlock_holding_an_object(int* destroyed) {
  const CountsDestruction guard{destroyed};
  if (threadIdx.x % 32 == 0) __syncthreads();
  else __syncwarp();
}

// Runs the planted kernel under every schedule, expecting the emulator's error with `fragments`
// (the kernel's name is always among them), then a working launch.
std::string expect_planted(const std::function<void()>& launch, std::initializer_list<std::string> fragments) {
  std::string message;
  under_all_schedules([&] {
    message = expect_error(launch, ErrorKind::Internal, fragments);
    check_next_launch_works();
  });
  return message;
}

std::vector<float> scratch(512);

std::string lane_outside_mask() {
  return expect_planted([] { CMAE_LAUNCH(planted_lane_outside_mask, 1, 32, 0, nullptr, scratch.data()); },
                        {"kernel 'planted_lane_outside_mask' block (0,0,0)", "thread 20 (lane 20 of warp 0)",
                         "__shfl_xor_sync called with mask 0x0000ffff, which does not contain the calling lane 20"});
}

std::string read_from_exited_lane() {
  return expect_planted([] { CMAE_LAUNCH(planted_read_from_exited_lane, 1, 32, 0, nullptr, scratch.data()); },
                        {"kernel 'planted_read_from_exited_lane'", "__shfl_down_sync (mask 0xffffffff) in warp 0",
                         "lane 8 reads lane 16, which has exited"});
}

std::string divergent_syncthreads() {
  return expect_planted([] { CMAE_LAUNCH(planted_divergent_syncthreads, 1, 64, 0, nullptr, scratch.data()); },
                        {"kernel 'planted_divergent_syncthreads'", "divergent __syncthreads: threads 0-31 wait at it",
                         "threads 32-63 exited without reaching it"});
}

std::string deadlock() {
  return expect_planted([] { CMAE_LAUNCH(planted_deadlock, 1, 64, 0, nullptr, scratch.data()); },
                        {"kernel 'planted_deadlock'", "deadlock: every live thread is blocked", "threads 0, 32 wait at __syncthreads",
                         "lanes 1-31 of warp 0 wait at __syncwarp (mask 0xffffffff) for lane 0, at the block barrier"});
}

std::string mismatched_collectives() {
  return expect_planted([] { CMAE_LAUNCH(planted_mismatched_collectives, 1, 32, 0, nullptr, scratch.data()); },
                        {"kernel 'planted_mismatched_collectives'", "mismatched warp collectives in warp 0", "__shfl_xor_sync (mask 0xffffffff)",
                         "at __ballot_sync (mask 0xffffffff)"});
}

std::string error_names_block() {
  return expect_planted([] { CMAE_LAUNCH(planted_divergence_in_block_3, 6, 64, 0, nullptr, scratch.data()); },
                        {"kernel 'planted_divergence_in_block_3' block (3,0,0)", "divergent __syncthreads"});
}

std::string shared_memory_limits() {
  expect_planted(
      [] { CMAE_LAUNCH(large_static_shared, 1, 64, 200 * 1024, nullptr, scratch.data()); },
      {"kernel 'large_static_shared'", "shared array 'big' brings the block's static + dynamic shared memory to", "over the limit of 232448"});
  expect_planted([] { CMAE_LAUNCH(static_shared_over_48k, 1, 32, 0, nullptr, scratch.data()); },
                 {"shared array 'too_big' brings the static shared memory to 52000 bytes, over the limit of 49152"});
  CMAE_LAUNCH(large_static_shared, 1, 64, 100 * 1024, nullptr, scratch.data());  // 140 KiB in all: allowed
  CMAE_TEST_CHECK(scratch[0] == 1.0f, "the allowed launch did not run");
  return "40 KiB static + 200 KiB dynamic and 52000 bytes of static shared memory are refused; 40 + 100 KiB runs";
}

std::string mma_partial_warp() {
  return expect_planted([] { CMAE_LAUNCH(mma_in_partial_warp, 1, 48, 0, nullptr, scratch.data()); },
                        {"kernel 'mma_in_partial_warp'", "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", "in warp 1",
                         "needs all 32 lanes of the warp"});
}

std::string bad_shared_addresses() {
  static std::vector<std::uint32_t> words(256), out(32);
  expect_planted([] { CMAE_LAUNCH(ldmatrix_from_global, 1, 32, 0, nullptr, words.data(), out.data()); },
                 {"kernel 'ldmatrix_from_global'", "ldmatrix.sync.aligned.m8n8.x4.shared.b16", "not 16-byte aligned shared memory"});
  expect_planted([] { CMAE_LAUNCH(cp_async_to_global, 1, 32, 0, nullptr, scratch.data(), scratch.data() + 128); },
                 {"kernel 'cp_async_to_global'", "cp.async destination is not in the shared memory of the block"});
  return "ldmatrix from global memory and cp.async into global memory are refused";
}

std::string outside_kernels() {
  expect_error([] { __syncthreads(); }, ErrorKind::Internal, {"__syncthreads used outside an emulated kernel"});
  expect_error([] { static_cast<void>(threadIdx.x); }, ErrorKind::Internal, {"threadIdx, blockIdx, blockDim or gridDim used outside"});
  expect_error([] { __shfl_sync(0xffffffffu, 1, 0); }, ErrorKind::Internal, {"__shfl_sync used outside"});
  expect_planted([] { CMAE_LAUNCH(launches_from_a_kernel, 1, 32, 0, nullptr, scratch.data()); },
                 {"kernel 'launches_from_a_kernel'", "kernel 'planted_divergent_syncthreads' launched from inside an emulated kernel"});
  return "barriers, collectives and built-in variables outside kernels, and launches from inside one, are refused";
}

std::string unwinds_fibres() {
  under_all_schedules([] {
    int destroyed = 0;
    expect_error([&] { CMAE_LAUNCH(deadlock_holding_an_object, 1, 64, 0, nullptr, &destroyed); }, ErrorKind::Internal, {"deadlock"});
    CMAE_TEST_CHECK(destroyed == 64, "the aborted launch ran ", destroyed, " of 64 destructors");
    check_next_launch_works();
  });
  return "an aborted launch unwinds every fibre (all 64 destructors ran) and the next launch works";
}

std::string bad_launch_configurations() {
  const auto launch = [](dim3 grid, dim3 block, std::size_t shared) {
    CMAE_LAUNCH(launch_probe, grid, block, shared, nullptr, scratch.data());
  };
  const std::string prefix = "kernel 'launch_probe': launch with grid";
  expect_error([&] { launch(1, 1025, 0); }, ErrorKind::Device, {prefix, "a block has at most 1024 threads"});
  expect_error([&] { launch(1, dim3(32, 32, 2), 0); }, ErrorKind::Device, {"block (32,32,2)", "at most 1024 threads"});
  expect_error([&] { launch(1, dim3(0, 1, 1), 0); }, ErrorKind::Device, {"every block dimension must be at least 1"});
  expect_error([&] { launch(1, dim3(1, 1, 65), 0); }, ErrorKind::Device, {"blockDim.z is at most 64"});
  expect_error([&] { launch(dim3(4, 0, 1), 32, 0); }, ErrorKind::Device, {"every grid dimension must be at least 1"});
  expect_error([&] { launch(dim3(1, 65536, 1), 32, 0); }, ErrorKind::Device, {"the grid is at most (2^31-1, 65535, 65535)"});
  expect_error([&] { launch(1, 32, 228 * 1024); }, ErrorKind::Device, {"233472 bytes of dynamic shared memory", "at most 227 KiB"});
  launch(1, 32, 227 * 1024);
  CMAE_TEST_CHECK(scratch[31] == 2.0f, "the launch with 227 KiB of dynamic shared memory did not run");
  return "bad block/grid shapes and too much dynamic shared memory are refused as Device errors naming the kernel";
}

}  // namespace

void add_error_cases(testing::Suite& suite) {
  suite.add("emu/error_lane_outside_mask", lane_outside_mask);
  suite.add("emu/error_shuffle_reads_exited_lane", read_from_exited_lane);
  suite.add("emu/error_divergent_syncthreads", divergent_syncthreads);
  suite.add("emu/error_deadlock", deadlock);
  suite.add("emu/error_mismatched_collectives", mismatched_collectives);
  suite.add("emu/error_names_the_block", error_names_block);
  suite.add("emu/error_shared_memory_limits", shared_memory_limits);
  suite.add("emu/error_mma_in_partial_warp", mma_partial_warp);
  suite.add("emu/error_addresses_outside_shared_memory", bad_shared_addresses);
  suite.add("emu/error_outside_kernels_and_nested_launch", outside_kernels);
  suite.add("emu/error_unwinds_fibres", unwinds_fibres);
  suite.add("emu/launch_configuration_checks", bad_launch_configurations);
}

}  // namespace cmae::emu_tests
