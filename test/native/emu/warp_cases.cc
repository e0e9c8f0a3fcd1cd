// Warp-intrinsic cases of cmae_emu_tests: each shuffle, vote and reduction against its definition
// in the CUDA C++ Programming Guide (written here independently of the emulator's PTX formulas),
// with widths below 32, partial masks, exited lanes, and chains of collectives.
#include <algorithm>
#include <cstring>

#include "common/launch.cuh"
#include "emu_test.h"
#include "kernels/warp_kernels.cuh"

namespace cmae::emu_tests {
namespace {

constexpr int kThreads = 64;  // two warps, so that no collective leaks across warps

// The lane each lane reads, by the Programming Guide's definition of each shuffle.
unsigned guide_source_lane(int kind, unsigned lane, int arg, int width) {
  const unsigned w = static_cast<unsigned>(width), segment = lane / w * w, in_segment = lane % w;
  switch (kind) {
    case kShuffleIndex:  // srcLane modulo width, within the caller's segment
      return segment + static_cast<unsigned>(((arg % width) + width) % width);
    case kShuffleUp:  // the lower delta lanes of a segment keep their value
      return in_segment >= static_cast<unsigned>(arg) ? lane - arg : lane;
    case kShuffleDown:  // the upper delta lanes keep theirs
      return in_segment + arg < w ? lane + arg : lane;
    default: {  // later segments are out of reach: the caller's own value
      const unsigned source = lane ^ static_cast<unsigned>(arg);
      return source >= segment + w ? lane : source;
    }
  }
}

std::string shuffles_match_definition() {
  std::vector<float> vf(kThreads);
  std::vector<int> vi(kThreads);
  std::vector<unsigned> vu(kThreads);
  std::vector<double> vd(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    vf[t] = 1.5f * t - 20.0f;
    vi[t] = t * t - 100;
    vu[t] = 0x80000000u + 12345u * t;
    vd[t] = 1e10 * t + 0.125;  // both 32-bit halves differ between lanes
  }
  const int args[4][6] = {{0, 5, 31, 37, -1, 12}, {0, 1, 3, 8, 16, 31}, {0, 1, 3, 8, 16, 31}, {0, 1, 2, 5, 16, 31}};
  int probes = 0;
  under_all_schedules([&] {
    probes = 0;
    for (int kind = 0; kind < 4; ++kind)
      for (const int width : {32, 16, 8, 4, 2, 1})
        for (const int arg : args[kind]) {
          std::vector<float> of(kThreads);
          std::vector<int> oi(kThreads);
          std::vector<unsigned> ou(kThreads);
          std::vector<double> od(kThreads);
          CMAE_LAUNCH(shuffle_probe, 1, kThreads, 0, nullptr, kind, arg, width, vf.data(), vi.data(), vu.data(), vd.data(), of.data(),
                      oi.data(), ou.data(), od.data());
          for (unsigned t = 0; t < kThreads; ++t) {
            const unsigned source = t / 32 * 32 + guide_source_lane(kind, t % 32, arg, width);
            CMAE_TEST_CHECK(of[t] == vf[source] && oi[t] == vi[source] && ou[t] == vu[source] && od[t] == vd[source], "shuffle kind ", kind,
                      " arg ", arg, " width ", width, ": thread ", t, " got float ", of[t], " (expected thread ", source, "'s)");
          }
          ++probes;
        }
  });
  return std::to_string(probes) + " shuffle configurations (idx/up/down/xor x widths 32..1 x arguments) of float, int, unsigned and " +
         "double match the Programming Guide in both warps under every schedule";
}

std::string per_lane_sources() {
  std::vector<int> values(kThreads), out(kThreads);
  for (int t = 0; t < kThreads; ++t) values[t] = 1000 + t;
  under_all_schedules([&] {
    CMAE_LAUNCH(shuffle_per_lane_source, 1, kThreads, 0, nullptr, values.data(), out.data());
    for (unsigned t = 0; t < kThreads; ++t) CMAE_TEST_CHECK(out[t] == values[t / 32 * 32 + (t % 32 * 7 + 3) % 32], "thread ", t);
  });
  return "a shuffle whose source lane differs per lane";
}

std::string partial_masks() {
  std::vector<int> values(kThreads), out(4 * kThreads);
  for (int t = 0; t < kThreads; ++t) values[t] = (t * 37) % 101 - 30 + (t == 40 ? 2000 : 0);
  under_all_schedules([&] {
    CMAE_LAUNCH(partial_mask_collectives, 1, kThreads, 0, nullptr, values.data(), out.data());
    for (unsigned t = 0; t < kThreads; ++t) {
      const unsigned lane = t % 32, base = t / 32 * 32, half = lane < 16 ? base : base + 16;
      const int* v = &values[half];  // the caller's half warp
      unsigned ballot = 0;
      int sum = 0, max = v[0];
      bool all_positive = true, any_large = false;
      for (unsigned l = 0; l < 16; ++l) {
        if (v[l] % 3 == 0 && (lane < 16 || l >= 8)) ballot |= 1u << (l + (lane < 16 ? 0 : 16));
        sum += v[l];
        max = std::max(max, v[l]);
        all_positive = all_positive && v[l] > 0;
        any_large = any_large || v[l] > 1000;
      }
      const int* o = &out[4 * t];
      if (lane < 16) {
        CMAE_TEST_CHECK(o[0] == values[base + (lane ^ 1)], "xor in the lower half, thread ", t);
        CMAE_TEST_CHECK(o[1] == static_cast<int>(ballot) && o[2] == sum && o[3] == (all_positive ? 1 : 0), "lower half votes, thread ", t);
      } else {
        CMAE_TEST_CHECK(o[0] == values[lane % 16 + 2 < 16 ? t + 2 : t], "down in the upper half, thread ", t);
        CMAE_TEST_CHECK(o[1] == (lane >= 24 ? static_cast<int>(ballot) : -1), "ballot of lanes 24-31, thread ", t, ": ", o[1]);
        CMAE_TEST_CHECK(o[2] == max && o[3] == (any_large ? 1 : 0), "upper half reductions, thread ", t);
      }
    }
  });
  return "half warps with their own masks complete independently, also while lanes of a mask are still at another collective";
}

std::string votes_after_exit_case() {
  std::vector<int> values(kThreads);
  std::vector<unsigned> out(2 * kThreads, 0xDEADu);
  for (int t = 0; t < kThreads; ++t) values[t] = t * 5 % 13;
  under_all_schedules([&] {
    CMAE_LAUNCH(votes_after_exit, 1, kThreads, 0, nullptr, values.data(), out.data());
    for (unsigned t = 0; t < kThreads; ++t) {
      if (t % 32 >= 24) continue;
      unsigned ballot = 0;
      for (unsigned l = 0; l < 24; ++l)
        if (values[t / 32 * 32 + l] % 2 == 0) ballot |= 1u << l;
      CMAE_TEST_CHECK(out[2 * t] == ballot && out[2 * t + 1] == 1u, "thread ", t, ": ballot ", out[2 * t], " vs ", ballot);
    }
  });
  return "a full-mask ballot and __all_sync after lanes 24-31 exited count the live lanes only";
}

std::string votes_and_reductions_case() {
  std::vector<int> values(kThreads), out(9 * kThreads);
  for (int t = 0; t < kThreads; ++t) values[t] = (t * 29) % 97 - 48 + (t >= 32 ? 100 : 0);
  under_all_schedules([&] {
    CMAE_LAUNCH(votes_and_reductions, 1, kThreads, 0, nullptr, values.data(), out.data());
    for (unsigned t = 0; t < kThreads; ++t) {
      const int* v = &values[t / 32 * 32];
      unsigned ballot = 0, usum = 0, umin = ~0u, umax = 0;
      int all = 1, any = 0, sum = 0, min = v[0], max = v[0];
      for (unsigned l = 0; l < 32; ++l) {
        const unsigned u = static_cast<unsigned>(v[l]);
        if (v[l] > 0) ballot |= 1u << l;
        all &= v[l] > -1000;
        any |= v[l] > 90;
        sum += v[l];
        min = std::min(min, v[l]);
        max = std::max(max, v[l]);
        usum += u;
        umin = std::min(umin, u);
        umax = std::max(umax, u);
      }
      const int expected[9] = {static_cast<int>(ballot), all, any, sum, min, max, static_cast<int>(usum), static_cast<int>(umin),
                               static_cast<int>(umax)};
      for (int k = 0; k < 9; ++k) CMAE_TEST_CHECK(out[9 * t + k] == expected[k], "thread ", t, " result ", k, ": ", out[9 * t + k]);
    }
  });
  return "__ballot/__all/__any_sync and __reduce_add/min/max_sync (int and unsigned, negatives included) match their definitions";
}

std::string syncthreads_predicates_case() {
  const int block_size = 100;
  under_all_schedules([] {
    for (int pattern = 0; pattern < 3; ++pattern) {
      std::vector<int> predicates(block_size), out(3 * block_size);
      for (int t = 0; t < block_size; ++t) predicates[t] = pattern == 0 ? 7 : pattern == 1 ? (t % 3 == 0 ? -1 : 0) : 0;
      CMAE_LAUNCH(syncthreads_predicates, 1, block_size, 0, nullptr, predicates.data(), out.data());
      const int count = static_cast<int>(std::count_if(predicates.begin(), predicates.end(), [](int p) { return p != 0; }));
      for (int t = 0; t < block_size; ++t)
        CMAE_TEST_CHECK(out[3 * t] == count && out[3 * t + 1] == (count == block_size) && out[3 * t + 2] == (count > 0), "pattern ", pattern,
                  " thread ", t);
    }
  });
  return "__syncthreads_count/_and/_or over 100 threads for all-true, mixed and all-false predicates";
}

std::string chained_collectives() {
  const int rounds = 64;
  std::vector<unsigned> values(kThreads), out(kThreads);
  for (int t = 0; t < kThreads; ++t) values[t] = 0x9E3779B9u * (t + 1);
  std::vector<unsigned> expected = values;
  for (int warp = 0; warp < kThreads / 32; ++warp) {
    unsigned* v = &expected[32 * warp];
    for (int r = 0; r < rounds; ++r) {
      unsigned next[32], ballot = 0;
      for (unsigned l = 0; l < 32; ++l) {
        const unsigned source = (l + r) % 32;
        next[l] = v[source] * 3u + source;
        if (next[l] & 1u) ballot |= 1u << l;
      }
      for (unsigned l = 0; l < 32; ++l) v[l] = next[l] ^ ballot;
    }
  }
  under_all_schedules([&] {
    CMAE_LAUNCH(chained_shuffles, 1, kThreads, 0, nullptr, values.data(), out.data(), rounds);
    for (int t = 0; t < kThreads; ++t) CMAE_TEST_CHECK(out[t] == expected[t], "thread ", t);
  });
  return "64 rounds of a shuffle feeding a ballot feeding the next shuffle: no stale values between collectives";
}

}  // namespace

void add_warp_cases(testing::Suite& suite) {
  suite.add("emu/shuffles_match_definition", shuffles_match_definition);
  suite.add("emu/shuffle_per_lane_sources", per_lane_sources);
  suite.add("emu/partial_masks", partial_masks);
  suite.add("emu/votes_after_lanes_exit", votes_after_exit_case);
  suite.add("emu/votes_and_reductions", votes_and_reductions_case);
  suite.add("emu/syncthreads_count_and_or", syncthreads_predicates_case);
  suite.add("emu/chained_collectives", chained_collectives);
}

}  // namespace cmae::emu_tests
