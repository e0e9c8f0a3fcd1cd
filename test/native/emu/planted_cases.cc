// A planted bug in a product kernel must be caught: cuda/kernels/rows.cuh's transpose_add_kernel
// (a 32x32 tile through shared memory, written by rows and read by columns) next to a copy of it
// with its one __syncthreads removed. Run the way the op harness runs every kernel (under the
// forward, reverse and shuffled schedules, against a host reference, every element), the real
// kernel passes under all three and the copy fails under at least one: so a missing barrier in any
// kernel of the backend cannot pass CI unnoticed.
#include <cmath>
#include <string>
#include <vector>

#include "common/launch.cuh"
#include "emu/emu.h"
#include "emu_test.h"
#include "kernels/rows.cuh"

CMAE_CUDA_NAMESPACE_BEGIN
namespace planted {

// transpose_add_kernel line for line, minus its __syncthreads().
__global__ void transpose_add_without_barrier(float* dst, const float* src, int64_t R, int64_t C, int64_t tiles_c) {
  using TileRow = float[kernels::kTransposeTile + 1];
  CMAE_SHARED(TileRow, tile, kernels::kTransposeTile);
  const int64_t tile_r = blockIdx.x / tiles_c, tile_c = blockIdx.x - tile_r * tiles_c;
  const int64_t r0 = tile_r * kernels::kTransposeTile, c0 = tile_c * kernels::kTransposeTile;
  const int tx = threadIdx.x % kernels::kTransposeTile, ty = threadIdx.x / kernels::kTransposeTile;
  const int rows_per_pass = blockDim.x / kernels::kTransposeTile;
  for (int k = ty; k < kernels::kTransposeTile; k += rows_per_pass) {
    const int64_t r = r0 + k, c = c0 + tx;
    if (r < R && c < C) tile[k][tx] = src[r * C + c];
  }
  for (int k = ty; k < kernels::kTransposeTile; k += rows_per_pass) {
    const int64_t c = c0 + k, r = r0 + tx;
    if (c < C && r < R) dst[c * R + r] += tile[tx][k];
  }
}

}  // namespace planted
CMAE_CUDA_NAMESPACE_END

namespace cmae::emu_tests {

namespace {

using Kernel = void (*)(float*, const float*, int64_t, int64_t, int64_t);

// The schedules under which `kernel` computes dst (C, R) += srcᵀ wrongly (empty: right under all).
std::vector<std::string> failing_schedules(Kernel kernel, const char* name) {
  const int64_t R = 70, C = 45, tile = cuda::kernels::kTransposeTile;
  const int64_t tiles_c = (C + tile - 1) / tile, tiles = (R + tile - 1) / tile * tiles_c;
  const std::vector<float> src = eighths(static_cast<size_t>(R * C), 3);
  const std::vector<float> dst0 = eighths(static_cast<size_t>(R * C), 4);
  std::vector<std::string> failing;
  emu::for_each_schedule([&](emu::Schedule schedule) {
    std::vector<float> dst = dst0;
    cuda::launch(name, kernel, dim3(static_cast<unsigned>(tiles)), dim3(cuda::kernels::kStreamThreads), 0, nullptr, dst.data(), src.data(), R,
                 C, tiles_c);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < R; ++r) {
        const float want = dst0[c * R + r] + src[r * C + c];  // eighths: exact in float
        if (!(dst[c * R + r] == want)) {
          failing.push_back(emu::schedule_name(schedule));
          return;
        }
      }
  });
  return failing;
}

std::string planted_missing_barrier() {
  const std::vector<std::string> real = failing_schedules(cuda::kernels::transpose_add_kernel, "transpose_add_kernel");
  CMAE_TEST_CHECK(real.empty(), "the real transpose_add_kernel is wrong under the ", real.front(), " schedule");
  const std::vector<std::string> planted = failing_schedules(cuda::planted::transpose_add_without_barrier, "transpose_add_without_barrier");
  CMAE_TEST_CHECK(!planted.empty(), "transpose_add_kernel without its __syncthreads passed under every schedule: the bug went unnoticed");
  std::string which;
  for (const std::string& s : planted) which += (which.empty() ? "" : ", ") + s;
  return "the real kernel is right under every schedule; without its barrier it is wrong under " + which;
}

}  // namespace

void add_planted_cases(testing::Suite& suite) {
  suite.add("planted/transpose_add_kernel without __syncthreads is caught", planted_missing_barrier);
}

}  // namespace cmae::emu_tests
