// Kernels of the emulator's tensor-core and cp.async tests (mma_cases.cc). Each loads fragments by
// the PTX ISA's layouts as a GEMM kernel would (see cuda/common/mma.cuh); all matrices in global
// memory are row-major.
#pragma once
#include "common/async_copy.cuh"
#include "common/compat.cuh"
#include "common/mma.cuh"

namespace cmae::emu_tests {

// The C/D fragment of this lane (rows g, g + 8; columns 2t, 2t + 1) of a row-major 16x8 tile.
__device__ __forceinline__ void load_accumulator(const float* c, float (&f)[4]) {
  const unsigned lane = threadIdx.x % 32, g = lane >> 2, t = lane % 4;
  f[0] = c[g * 8 + 2 * t];
  f[1] = c[g * 8 + 2 * t + 1];
  f[2] = c[(g + 8) * 8 + 2 * t];
  f[3] = c[(g + 8) * 8 + 2 * t + 1];
}
__device__ __forceinline__ void store_accumulator(float* d, const float (&f)[4]) {
  const unsigned lane = threadIdx.x % 32, g = lane >> 2, t = lane % 4;
  d[g * 8 + 2 * t] = f[0];
  d[g * 8 + 2 * t + 1] = f[1];
  d[(g + 8) * 8 + 2 * t] = f[2];
  d[(g + 8) * 8 + 2 * t + 1] = f[3];
}

// One warp: d (16x8) = a (16x8) * b (8x8) + c with mma.m16n8k8 TF32, fragments read from global.
__global__ void mma_tf32_tile(const float* a, const float* b, const float* c, float* d) {
  const unsigned lane = threadIdx.x, g = lane >> 2, t = lane % 4;
  const std::uint32_t fa[4] = {cuda::to_tf32(a[g * 8 + t]), cuda::to_tf32(a[(g + 8) * 8 + t]), cuda::to_tf32(a[g * 8 + t + 4]),
                               cuda::to_tf32(a[(g + 8) * 8 + t + 4])};
  const std::uint32_t fb[2] = {cuda::to_tf32(b[t * 8 + g]), cuda::to_tf32(b[(t + 4) * 8 + g])};
  float fc[4], fd[4];
  load_accumulator(c, fc);
  cuda::mma_m16n8k8_tf32(fd, fa, fb, fc);
  store_accumulator(d, fd);
}

// One warp: d (16x8) = a (16x16) * b (16x8) + c with mma.m16n8k16 BF16, fragments read from
// global and packed by pack_bf16x2; the accumulator is updated in place (d aliases c).
__global__ void mma_bf16_tile(const float* a, const float* b, const float* c, float* d) {
  const unsigned lane = threadIdx.x, g = lane >> 2, t = lane % 4;
  const std::uint32_t fa[4] = {cuda::pack_bf16x2(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]),
                               cuda::pack_bf16x2(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]),
                               cuda::pack_bf16x2(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]),
                               cuda::pack_bf16x2(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9])};
  const std::uint32_t fb[2] = {cuda::pack_bf16x2(b[(2 * t) * 8 + g], b[(2 * t + 1) * 8 + g]),
                               cuda::pack_bf16x2(b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g])};
  float acc[4];
  load_accumulator(c, acc);
  cuda::mma_m16n8k16_bf16(acc, fa, fb, acc);
  store_accumulator(d, acc);
}

// One warp stages a 16x16 tile of 16-bit values in shared memory and loads it with every
// ldmatrix form; out gets 12 registers per lane: x4, x4.trans, x2, x2.trans.
__global__ void ldmatrix_forms(const std::uint32_t* tile_words, std::uint32_t* out) {
  CMAE_SHARED(std::uint32_t, tile, 128);  // 16 rows of 16 halves = 8 words
  const unsigned lane = threadIdx.x;
  for (unsigned w = lane; w < 128; w += 32) tile[w] = tile_words[w];
  __syncwarp();
  // Lane l names row l % 16 of the left (l < 16) or right half of the tile.
  const std::uint32_t* row = &tile[(lane % 16) * 8 + (lane / 16) * 4];
  std::uint32_t x4[4], x4t[4], x2[2], x2t[2];
  cuda::ldmatrix_x4(x4, row);
  cuda::ldmatrix_x4_trans(x4t, row);
  cuda::ldmatrix_x2(x2, row);
  cuda::ldmatrix_x2_trans(x2t, row);
  std::uint32_t* o = out + 12 * lane;
  for (int i = 0; i < 4; ++i) o[i] = x4[i], o[4 + i] = x4t[i];
  for (int i = 0; i < 2; ++i) o[8 + i] = x2[i], o[10 + i] = x2t[i];
}

// The usual GEMM inner step: A (16x16) and B (16x8, k x n) staged in shared memory as bf16,
// fragments by ldmatrix.x4 and ldmatrix.x2.trans, then mma.m16n8k16.
__global__ void mma_bf16_from_shared(const float* a, const float* b, const float* c, float* d) {
  CMAE_SHARED(std::uint32_t, a_tile, 128);  // 16 rows x 8 words
  CMAE_SHARED(std::uint32_t, b_tile, 64);   // 16 rows x 4 words
  const unsigned lane = threadIdx.x;
  for (unsigned w = lane; w < 128; w += 32) a_tile[w] = cuda::pack_bf16x2(a[2 * w], a[2 * w + 1]);
  for (unsigned w = lane; w < 64; w += 32) b_tile[w] = cuda::pack_bf16x2(b[2 * w], b[2 * w + 1]);
  __syncwarp();
  std::uint32_t fa[4], fb[2];
  cuda::ldmatrix_x4(fa, &a_tile[(lane % 16) * 8 + (lane / 16) * 4]);
  cuda::ldmatrix_x2_trans(fb, &b_tile[(lane % 16) * 4]);
  float fc[4], fd[4];
  load_accumulator(c, fc);
  cuda::mma_m16n8k16_bf16(fd, fa, fb, fc);
  store_accumulator(d, fd);
}

// A two-stage cp.async pipeline of one warp, 16 bytes per lane and stage, then the 8- and 4-byte
// forms. seen (512 floats): stage 0 after wait<1>, stage 1 after wait<1> (pending: not waited
// for), stage 1 after wait<0>, then the small copies.
__global__ void cp_async_stages(const float* src, float* seen) {
  CMAE_SHARED(float, stage0, 128);
  CMAE_SHARED(float, stage1, 128);
  CMAE_SHARED(float, small, 96);
  const unsigned t = threadIdx.x;
  cuda::cp_async_16(&stage0[4 * t], &src[4 * t]);
  cuda::cp_async_commit();
  cuda::cp_async_16(&stage1[4 * t], &src[128 + 4 * t]);
  cuda::cp_async_commit();
  cuda::cp_async_wait<1>();
  for (int k = 0; k < 4; ++k) seen[4 * t + k] = stage0[4 * t + k];
  for (int k = 0; k < 4; ++k) seen[128 + 4 * t + k] = stage1[4 * t + k];
  cuda::cp_async_wait<0>();
  for (int k = 0; k < 4; ++k) seen[256 + 4 * t + k] = stage1[4 * t + k];
  cuda::cp_async_8(&small[2 * t], &src[256 + 2 * t]);
  cuda::cp_async_4(&small[64 + t], &src[320 + t]);
  cuda::cp_async_commit();
  cuda::cp_async_wait<0>();
  for (int k = 0; k < 2; ++k) seen[384 + 2 * t + k] = small[2 * t + k];
  seen[448 + t] = small[64 + t];
}

}  // namespace cmae::emu_tests
