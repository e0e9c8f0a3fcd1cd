// CMAE_HD marks per-element math shared by the CPU backend and the CUDA kernels (design.md
// principle 3): one definition, compiled by g++ and by nvcc, so CPU tests cover the CUDA math.
#pragma once
#if defined(__CUDACC__)
#define CMAE_HD __host__ __device__ __forceinline__
#else
#define CMAE_HD inline
#endif
