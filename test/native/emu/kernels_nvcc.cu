// The kernels of cmae_emu_tests compiled by nvcc (test/native/CMakeLists.txt: sm_80 and sm_90,
// compile only): the same source the emulator runs, so that code which only g++ accepts fails the
// build. The launch below instantiates launch.cuh's and runtime.h's CUDA paths as well.
#include "common/launch.cuh"
#include "kernels/block_kernels.cuh"
#include "kernels/error_kernels.cuh"
#include "kernels/mma_kernels.cuh"
#include "kernels/warp_kernels.cuh"

namespace cmae::emu_tests {

void launch_block_sum_on_gpu(const float* in, float* out, int n, cuda::Stream stream) {
  CMAE_LAUNCH(block_sum_tree, (n + 1023) / 1024, 1024, 0, stream, in, out, n);
}

}  // namespace cmae::emu_tests
