// Launch limits every CUDA kernel of cmae is held to, on the GPU and in the SIMT emulator alike
// (cuda/emu): the launch helper (launch.cuh) checks them in both modes, so that a launch the GPU
// would refuse also fails in CI. The numbers are those of compute capability 9.0 (H100, H200);
// smaller GPUs allow less shared memory, which their driver reports when the launch asks for it.
// Plain C++, no CUDA header, so that the emulator can include it.
//
// It also defines how cuda/ code opens its namespace. The same source is compiled twice, by nvcc
// for the GPU and by g++ for the emulator, and both builds may be linked into one program (the op
// harness, a test build of the addon), so everything is spelled cmae::cuda::X in source but lives
// in an inline namespace per build (cmae::cuda::gpu / cmae::cuda::emulated): the two definitions
// of each inline function and class never meet at link time.
#pragma once
#include <cstddef>

#if defined(__CUDACC__)
#define CMAE_CUDA_BUILD gpu
#else
#define CMAE_CUDA_BUILD emulated
#endif
#define CMAE_CUDA_NAMESPACE_BEGIN \
  namespace cmae {                \
  namespace cuda {                \
  inline namespace CMAE_CUDA_BUILD {
#define CMAE_CUDA_NAMESPACE_END \
  }                             \
  }                             \
  }

CMAE_CUDA_NAMESPACE_BEGIN

constexpr unsigned kWarpSize = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDimZ = 64;
constexpr unsigned kMaxGridDimX = 2147483647u;  // 2^31 - 1
constexpr unsigned kMaxGridDimYZ = 65535;
// Statically declared __shared__ arrays of one kernel may total 48 KiB (nvcc refuses more).
constexpr std::size_t kMaxStaticSharedBytes = 48 * 1024;
// Static plus dynamic shared memory of one block, once the kernel has opted in (launch.cuh does):
// 227 KiB on sm_90 (the SM has 228 KiB; 1 KiB per block is reserved by the system; sm_80 allows
// 163 KiB).
constexpr std::size_t kMaxSharedBytesPerBlock = 227 * 1024;

CMAE_CUDA_NAMESPACE_END
