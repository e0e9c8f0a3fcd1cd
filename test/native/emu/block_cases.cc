// Block-level cases of cmae_emu_tests: barriers and shared memory (reductions, planted missing
// barriers), coordinates, shared-memory identity and NaN start, dynamic shared memory, atomics,
// schedule orders, several OS threads, and the emulator's costs.
#include <algorithm>
#include <climits>
#include <cmath>
#include <numeric>
#include <set>
#include <thread>

#include "common/launch.cuh"
#include "emu_test.h"
#include "kernels/block_kernels.cuh"

namespace cmae::emu_tests {
namespace {

using emu::Schedule;

// Sum of in[i] over the indices block b of a block_sum_tree launch owns.
double tree_block_sum(const std::vector<float>& in, int n, int block_size, int b) {
  double sum = 0;
  for (int i = b * block_size; i < std::min(n, (b + 1) * block_size); ++i) sum += in[i];
  return sum;
}

std::string block_sum_tree_sizes() {
  under_all_schedules([] {
    for (const int block_size : {1, 7, 33, 100, 256, 1000, 1024}) {
      for (const int blocks : {1, 3}) {
        const int n = block_size * blocks - (block_size > 5 ? 5 : 0);  // a partial last block
        const std::vector<float> in = eighths(n, block_size);
        std::vector<float> out(blocks);
        CMAE_LAUNCH(block_sum_tree, blocks, block_size, 0, nullptr, in.data(), out.data(), n);
        for (int b = 0; b < blocks; ++b) {
          const double expected = tree_block_sum(in, n, block_size, b);
          CMAE_TEST_CHECK(out[b] == expected, "block size ", block_size, ", block ", b, ": ", out[b], " vs ", expected);
        }
      }
    }
  });
  return "block sizes 1, 7, 33, 100, 256, 1000, 1024 x 1 and 3 blocks match the host sums under every schedule";
}

std::string block_sum_warp_shuffles() {
  under_all_schedules([] {
    for (const int block_size : {32, 96, 256, 1024}) {
      const int blocks = 4, n = 10007;
      const std::vector<float> in = eighths(n, 7 + block_size);
      std::vector<float> out(blocks);
      CMAE_LAUNCH(block_sum_warps, blocks, block_size, 0, nullptr, in.data(), out.data(), n);
      for (int b = 0; b < blocks; ++b) {
        double expected = 0;  // grid-stride ownership: i belongs to block (i mod (blocks * block_size)) / block_size
        for (int i = 0; i < n; ++i)
          if (i % (blocks * block_size) / block_size == b) expected += in[i];
        CMAE_TEST_CHECK(out[b] == expected, "block size ", block_size, ", block ", b, ": ", out[b], " vs ", expected);
      }
    }
  });
  return "warp shuffles + warp 0's final reduction match the host for block sizes 32, 96, 256, 1024 under every schedule";
}

// The schedules under which `run` (a launch and its check) returns false.
std::string schedules_failing(const std::function<bool()>& run) {
  std::string failing;
  emu::for_each_schedule([&](Schedule schedule) {
    if (!run()) failing += (failing.empty() ? "" : ", ") + std::string(emu::schedule_name(schedule));
  });
  return failing;
}

bool block_sum_matches(void (*kernel)(const float*, float*, int)) {
  const int block_size = 256, blocks = 2, n = 512;
  const std::vector<float> in = eighths(n, 5);
  std::vector<float> out(blocks);
  cuda::launch("block_sum", kernel, blocks, block_size, 0, nullptr, in.data(), out.data(), n);
  for (int b = 0; b < blocks; ++b)
    if (out[b] != tree_block_sum(in, n, block_size, b)) return false;
  return true;
}

std::string planted_missing_syncthreads() {
  const std::string correct = schedules_failing([] { return block_sum_matches(block_sum_tree); });
  const std::string broken = schedules_failing([] { return block_sum_matches(block_sum_tree_missing_barrier); });
  CMAE_TEST_CHECK(correct.empty(), "the correct reduction failed under ", correct);
  CMAE_TEST_CHECK(!broken.empty(), "the reduction without its first __syncthreads passed under every schedule");
  return "the reduction missing a __syncthreads fails under " + broken + " (the correct one under none)";
}

bool rotation_matches(void (*kernel)(const float*, float*)) {
  const int block_size = 96, blocks = 2;
  const std::vector<float> in = eighths(block_size * blocks, 11);
  std::vector<float> out(in.size());
  cuda::launch("warp_rotate", kernel, blocks, block_size, 0, nullptr, in.data(), out.data());
  for (std::size_t t = 0; t < in.size(); ++t)
    if (out[t] != in[t / 32 * 32 + (t + 1) % 32]) return false;
  return true;
}

std::string planted_missing_syncwarp() {
  const std::string correct = schedules_failing([] { return rotation_matches(warp_rotate_shared); });
  const std::string broken = schedules_failing([] { return rotation_matches(warp_rotate_shared_missing_syncwarp); });
  CMAE_TEST_CHECK(correct.empty(), "the rotation with __syncwarp failed under ", correct);
  CMAE_TEST_CHECK(!broken.empty(), "the rotation without __syncwarp passed under every schedule");
  return "warp-synchronous code without __syncwarp fails under " + broken + " (with it, under none)";
}

std::string coordinates_3d() {
  under_all_schedules([] {
    const dim3 grid(3, 2, 2), block(8, 4, 2);
    const unsigned threads = 8 * 4 * 2, blocks = 3 * 2 * 2;
    std::vector<unsigned> out(12 * threads * blocks, ~0u);
    CMAE_LAUNCH(record_coordinates, grid, block, 0, nullptr, out.data());
    for (unsigned bz = 0; bz < 2; ++bz)
      for (unsigned by = 0; by < 2; ++by)
        for (unsigned bx = 0; bx < 3; ++bx)
          for (unsigned tz = 0; tz < 2; ++tz)
            for (unsigned ty = 0; ty < 4; ++ty)
              for (unsigned tx = 0; tx < 8; ++tx) {
                const unsigned b = bx + 3 * (by + 2 * bz), t = tx + 8 * (ty + 4 * tz);
                const unsigned expected[12] = {tx, ty, tz, bx, by, bz, 8, 4, 2, 3, 2, 2};
                for (int k = 0; k < 12; ++k)
                  CMAE_TEST_CHECK(out[12 * (b * threads + t) + k] == expected[k], "block ", b, " thread ", t, " field ", k);
              }
  });
  return "threadIdx, blockIdx, blockDim, gridDim of a (3,2,2) x (8,4,2) launch are right in every thread";
}

std::string shared_memory_starts_nan() {
  under_all_schedules([] {
    const int blocks = 4, block_size = 256;
    for (int launch = 0; launch < 2; ++launch) {
      std::vector<float> first_reads(blocks * block_size, 0.0f);
      CMAE_LAUNCH(shared_before_write, blocks, block_size, 0, nullptr, first_reads.data());
      for (std::size_t i = 0; i < first_reads.size(); ++i)
        CMAE_TEST_CHECK(is_shared_poison(first_reads[i]), "thread ", i, " of launch ", launch, " read ", first_reads[i], " before any write");
    }
  });
  return "every block of two launches reads NaN (0x7FC00000) before writing: no block sees another's values";
}

std::string shared_declarations() {
  under_all_schedules([] {
    const int blocks = 2, block_size = 64;
    std::vector<unsigned long long> out(4 * blocks * block_size);
    CMAE_LAUNCH(shared_addresses, blocks, block_size, 0, nullptr, out.data());
    for (int b = 0; b < blocks; ++b) {
      const unsigned long long* first_thread = &out[4 * b * block_size];
      for (int t = 0; t < block_size; ++t)
        for (int k = 0; k < 4; ++k)
          CMAE_TEST_CHECK(out[4 * (b * block_size + t) + k] == first_thread[k], "block ", b, " thread ", t, " sees array ", k, " elsewhere");
      const std::set<unsigned long long> distinct(first_thread, first_thread + 4);
      CMAE_TEST_CHECK(distinct.size() == 4 && !distinct.count(0), "the four shared arrays must be distinct (0 marks a declaration that moved)");
    }
  });
  return "all threads of a block see each array at one address; a declaration in a loop or a helper called twice is one array";
}

std::string dynamic_shared_memory() {
  under_all_schedules([] {
    const int blocks = 2, block_size = 256, per_thread = 64;  // 64 KiB: beyond the 48 KiB of static shared memory
    const std::vector<float> in = eighths(blocks * block_size * per_thread, 3);
    std::vector<float> out(in.size()), first_read(blocks * block_size);
    const std::size_t bytes = sizeof(float) * block_size * per_thread;
    CMAE_LAUNCH(dynamic_shared_reverse, blocks, block_size, bytes, nullptr, in.data(), out.data(), first_read.data(), per_thread);
    for (int b = 0; b < blocks; ++b)
      for (int t = 0; t < block_size; ++t) {
        CMAE_TEST_CHECK(is_shared_poison(first_read[b * block_size + t]), "dynamic shared memory did not start as NaN");
        for (int k = 0; k < per_thread; ++k) {
          const float expected = in[(b * block_size + (block_size - 1 - t)) * per_thread + k];
          CMAE_TEST_CHECK(out[(b * block_size + t) * per_thread + k] == expected, "block ", b, " thread ", t, " element ", k);
        }
      }
  });
  return "64 KiB of dynamic shared memory beside a static array: NaN at first, shared by the block, static array intact";
}

std::string atomics() {
  under_all_schedules([] {
    const int blocks = 4, block_size = 256, n = blocks * block_size;
    float float_sum = 0;
    double double_sum = 0;
    int int_sum = 0, int_max = INT_MIN, int_min = INT_MAX, exchange_slot = -1;
    unsigned unsigned_sum = 0, cas_counter = 0;
    std::vector<int> exchanged(n);
    std::vector<float> block_sums(blocks);
    CMAE_LAUNCH(atomics_everywhere, blocks, block_size, 0, nullptr, &float_sum, &double_sum, &int_sum, &unsigned_sum, &int_max, &int_min,
                &cas_counter, &exchange_slot, exchanged.data(), block_sums.data());
    double expected_float = 0, expected_double = 0;
    int expected_max = INT_MIN, expected_min = INT_MAX;
    for (int i = 0; i < n; ++i) {
      expected_float += 0.25 * (i % 7);
      expected_double += 0.5 * i;
      expected_max = std::max(expected_max, (i * 7919) % 10007 - 5000);
      expected_min = std::min(expected_min, (i * 7919) % 10007 - 5000);
    }
    CMAE_TEST_CHECK(float_sum == expected_float, float_sum, " vs ", expected_float);
    CMAE_TEST_CHECK(double_sum == expected_double, double_sum, " vs ", expected_double);
    CMAE_TEST_CHECK(int_sum == n * (n - 1) / 2, int_sum);
    CMAE_TEST_CHECK(unsigned_sum == 3u * n, unsigned_sum);
    CMAE_TEST_CHECK(int_max == expected_max && int_min == expected_min, int_max, " ", int_min);
    CMAE_TEST_CHECK(cas_counter == static_cast<unsigned>(n), "CAS increments lost: ", cas_counter);
    std::vector<int> values = exchanged;
    values.push_back(exchange_slot);
    std::sort(values.begin(), values.end());
    for (int i = 0; i <= n; ++i) CMAE_TEST_CHECK(values[i] == i - 1, "atomicExch lost or duplicated ", i - 1);
    for (int b = 0; b < blocks; ++b) CMAE_TEST_CHECK(block_sums[b] == block_size, "shared atomicAdd of block ", b, ": ", block_sums[b]);
  });
  return "float/double/int/unsigned atomicAdd, atomicMax/Min, a contended atomicCAS loop and atomicExch from 4 x 256 threads";
}

struct ArrivalOrders {
  std::vector<unsigned> before, after;
};
ArrivalOrders arrival_orders(Schedule schedule, std::uint64_t seed) {
  emu::ScheduleScope scope(schedule, seed);
  const int blocks = 3, block_size = 64;
  ArrivalOrders orders{std::vector<unsigned>(blocks * block_size), std::vector<unsigned>(blocks * block_size)};
  unsigned counters[2] = {0, 0};
  CMAE_LAUNCH(record_arrival_order, blocks, block_size, 0, nullptr, counters, orders.before.data(), orders.after.data());
  return orders;
}

std::string schedule_orders() {
  const unsigned n = 3 * 64;
  const ArrivalOrders forward = arrival_orders(Schedule::Forward, 1), reverse = arrival_orders(Schedule::Reverse, 1);
  for (unsigned k = 0; k < n; ++k) {
    CMAE_TEST_CHECK(forward.before[k] == k && forward.after[k] == k, "forward order at ", k, ": ", forward.before[k]);
    CMAE_TEST_CHECK(reverse.before[k] == n - 1 - k && reverse.after[k] == n - 1 - k, "reverse order at ", k, ": ", reverse.before[k]);
  }
  const ArrivalOrders shuffled = arrival_orders(Schedule::Shuffle, 7), again = arrival_orders(Schedule::Shuffle, 7),
                      other_seed = arrival_orders(Schedule::Shuffle, 8);
  std::vector<unsigned> sorted = shuffled.before;
  std::sort(sorted.begin(), sorted.end());
  for (unsigned k = 0; k < n; ++k) CMAE_TEST_CHECK(sorted[k] == k, "the shuffled order is not a permutation");
  CMAE_TEST_CHECK(shuffled.before != forward.before && shuffled.before != reverse.before, "shuffle gave a sorted order");
  CMAE_TEST_CHECK(shuffled.before != shuffled.after, "shuffle did not draw a new order at the barrier");
  CMAE_TEST_CHECK(shuffled.before == again.before && shuffled.after == again.after, "the same seed gave another order");
  CMAE_TEST_CHECK(shuffled.before != other_seed.before, "another seed gave the same order");
  return "forward runs blocks and threads in index order, reverse backwards, shuffle a seeded permutation redrawn at each release";
}

std::string concurrent_os_threads() {
  std::string failures[2];
  const auto worker = [&failures](int id) {
    try {
      for (int launch = 0; launch < 20; ++launch) {
        const int block_size = 64 + 32 * id, blocks = 3, n = block_size * blocks;
        const std::vector<float> in = eighths(n, 100 * id + launch);
        std::vector<float> out(blocks);
        CMAE_LAUNCH(block_sum_warps, blocks, block_size, 0, nullptr, in.data(), out.data(), n);
        for (int b = 0; b < blocks; ++b) CMAE_TEST_CHECK(out[b] == tree_block_sum(in, n, block_size, b), "thread ", id, " launch ", launch);
      }
    } catch (const std::exception& e) {
      failures[id] = e.what();
    }
  };
  std::thread first(worker, 0), second(worker, 1);
  first.join();
  second.join();
  CMAE_TEST_CHECK(failures[0].empty() && failures[1].empty(), failures[0], failures[1]);
  return "two OS threads launching 20 reductions each at once, each with its own scheduler, get their own results";
}

std::string big_grid_cost() {
  emu::ScheduleScope scope(Schedule::Forward);
  const int blocks = 4096, block_size = 256, n = blocks * block_size;
  const std::vector<float> in = eighths(n, 1);
  std::vector<float> out(blocks);
  CMAE_LAUNCH(block_sum_warps, 16, block_size, 0, nullptr, in.data(), out.data(), n);  // warm: stacks pooled, pages touched
  const std::uint64_t switches_before = emu::fibre_switches();
  const auto start = std::chrono::steady_clock::now();
  CMAE_LAUNCH(block_sum_warps, blocks, block_size, 0, nullptr, in.data(), out.data(), n);
  const double ms = milliseconds_since(start);
  const std::uint64_t switches = emu::fibre_switches() - switches_before;
  for (int b = 0; b < blocks; ++b) CMAE_TEST_CHECK(out[b] == tree_block_sum(in, n, block_size, b), "block ", b);
  CMAE_TEST_CHECK(ms < 10000, "4096 x 256 threads took ", ms, " ms");
  std::ostringstream os;
  os.precision(3);
  os << "4096 blocks x 256 threads (block_sum_warps): " << ms << " ms, " << 1000 * ms / blocks << " us per block, " << switches
     << " fibre switches, " << 1e6 * ms / static_cast<double>(switches) << " ns per switch including the kernel";
  return os.str();
}

std::string fibre_switch_cost() {
  emu::ScheduleScope scope(Schedule::Forward);
  const int block_size = 1024, iterations = 200;
  int out = 0;
  CMAE_LAUNCH(barrier_loop, 1, block_size, 0, nullptr, 1, &out);  // warm: stacks pooled, pages touched
  const std::uint64_t switches_before = emu::fibre_switches();
  const auto start = std::chrono::steady_clock::now();
  CMAE_LAUNCH(barrier_loop, 1, block_size, 0, nullptr, iterations, &out);
  const double ms = milliseconds_since(start);
  const std::uint64_t switches = emu::fibre_switches() - switches_before;
  CMAE_TEST_CHECK(out == iterations, out);
  CMAE_TEST_CHECK(switches == 2ull * block_size * (iterations + 1), "switches counted: ", switches);
  std::ostringstream os;
  os.precision(3);
  os << "1024 threads x " << iterations << " __syncthreads: " << ms << " ms, " << 1e6 * ms / static_cast<double>(switches)
     << " ns per fibre switch (a barrier releases in " << 1000 * ms / iterations << " us)";
  return os.str();
}

}  // namespace

void check_next_launch_works() {
  const std::vector<float> in = eighths(300, 99);
  std::vector<float> out(2);
  CMAE_LAUNCH(block_sum_tree, 2, 150, 0, nullptr, in.data(), out.data(), 300);
  for (int b = 0; b < 2; ++b)
    CMAE_TEST_CHECK(out[b] == tree_block_sum(in, 300, 150, b), "the launch after an error summed block ", b, " to ", out[b]);
}

void add_block_cases(testing::Suite& suite) {
  suite.add("emu/block_sum_shared_tree", block_sum_tree_sizes);
  suite.add("emu/block_sum_warp_shuffles", block_sum_warp_shuffles);
  suite.add("emu/planted_missing_syncthreads_detected", planted_missing_syncthreads);
  suite.add("emu/planted_missing_syncwarp_detected", planted_missing_syncwarp);
  suite.add("emu/coordinates_3d", coordinates_3d);
  suite.add("emu/shared_memory_starts_nan_per_block", shared_memory_starts_nan);
  suite.add("emu/shared_declarations_one_array_per_block", shared_declarations);
  suite.add("emu/dynamic_shared_memory", dynamic_shared_memory);
  suite.add("emu/atomics", atomics);
  suite.add("emu/schedule_orders", schedule_orders);
  suite.add("emu/concurrent_os_threads", concurrent_os_threads);
  suite.add("emu/big_grid_4096x256", big_grid_cost);
  suite.add("emu/fibre_switch_cost", fibre_switch_cost);
}

}  // namespace cmae::emu_tests
