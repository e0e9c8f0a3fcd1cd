// CMAE_HD marks per-element math that every backend computes (native/README.md, principle 3): one
// definition, compiled by g++ and by nvcc. The CPU backend calls some of it directly (the AdamW
// update, the EMA lerp, the clipping coefficient, Philox); GELU's scalar form is the CUDA kernels'
// (the CPU uses its vectorised twin). The op harness (test/native/ops) checks every one of these
// functions against float64 on the host, so the math a CUDA kernel runs is tested without a GPU.
#pragma once
#if defined(__CUDACC__)
#define CMAE_HD __host__ __device__ __forceinline__
#else
#define CMAE_HD inline
#endif
