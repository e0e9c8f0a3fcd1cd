// attention ops of the CUDA backend (ops/attention.h): argument checks, launch geometry and the
// four kernels of cuda/kernels/attention.cuh (design there). `saved` is the row log-sum-exp L,
// (B, H, N) (with N = 1 the probability 1 itself, as the CPU's att); the backward recomputes the
// probabilities from it, in three deterministic kernels.
//
// Geometry: 128 threads per block, one block per (b, h, band of 64 rows), the bands of a head in
// consecutive blocks (1-D grid, B·H·ceil(N/64) blocks: 3072 for the encoder, 16384 for the decoder
// at batch 256). Dynamic shared memory, ld = 32·ceil(hd/32) + 4 floats per token row, and the
// blocks per SM that it and the registers (sm_90 ptxas) allow:
//                 shared bytes          hd 32            hd 64            hd 128
//   forward       (128·ld + 2560)·4     28 KiB, 4/SM     44 KiB, 4/SM     76 KiB, 2/SM
//   row_dots       192·ld·4             27 KiB, 4/SM     51 KiB, 4/SM     99 KiB, 2/SM
//   key_grads     (192·ld + 5120)·4     47 KiB, 4/SM     71 KiB, 3/SM    119 KiB, 1/SM
//   query_grads   (192·ld + 2560)·4     37 KiB, 4/SM     61 KiB, 3/SM    109 KiB, 2/SM
//
// Expected bound per call, base preset at batch 256 on an H100/H200 (~60 FP32 TFLOP/s, 4.3 TB/s).
// FLOPs as executed: rows padded to 16 (a warp's band; idle warps skip), columns to 32 (a tile),
// value products to 32·ceil(hd/32) columns; exps not counted. Bytes: q, k, v (and dO) read once,
// results written once (a head's k/v rows are re-read by each of its bands, from L2); the 4-byte L
// and D accesses cost a 32-byte sector each.
//   encoder, N = 50, D = 768, H = 12 (hd 64): useful 4·N²·hd·B·H = 2.0 GFLOP
//     forward       3.2 GFLOP  54 µs | 158 MB 37 µs  -> compute, ~54 µs
//     row_dots      3.2 GFLOP  54 µs | 163 MB 38 µs  -> compute, ~54 µs
//     key_grads     6.4 GFLOP 107 µs | 241 MB 56 µs  -> compute, ~107 µs
//     query_grads   4.8 GFLOP  81 µs | 202 MB 47 µs  -> compute, ~81 µs
//   pixel / feature decoder, N = 197, D = 512, H = 16 (hd 32): useful 20.4 GFLOP
//     forward      24.4 GFLOP 407 µs | 416 MB  97 µs -> compute, ~0.41 ms
//     row_dots     24.4 GFLOP 407 µs | 442 MB 103 µs -> compute, ~0.41 ms
//     key_grads    48.9 GFLOP 814 µs | 649 MB 151 µs -> compute, ~0.81 ms
//     query_grads  36.6 GFLOP 611 µs | 545 MB 127 µs -> compute, ~0.61 ms
// So a decoder block's attention costs ~0.4 ms forward and ~1.8 ms backward at FP32 peak (expect
// ~1.5x that for SIMT code); the tensor-core note in the kernel header says what would cut it.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda_backend.h"
#include "kernels/attention.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace {

namespace attn = kernels::attention;

// Checks the arguments and computes the kernels' Shape; chunks = ceil(hd / 32), the template
// argument of the kernels with hd-wide results.
attn::Shape attention_shape(int64_t B, int64_t N, int64_t D, int64_t H, bool pointers_aligned, int* chunks) {
  CMAE_CHECK(B >= 0 && N >= 0 && H > 0 && D > 0 && D % H == 0, Shape, "attention: B=", B, " N=", N, " D=", D, " H=", H,
             ": D must be a positive multiple of H");
  const int64_t hd = D / H;
  CMAE_CHECK(hd <= attn::kChunkStep * attn::kMaxChunks, Shape, "attention: head dim ", hd, " (D=", D, ", H=", H,
             ") exceeds the CUDA kernels' ", attn::kChunkStep * attn::kMaxChunks);
  CMAE_CHECK(N < (int64_t{1} << 30) && 3 * D < (int64_t{1} << 30), Shape, "attention: N=", N, " D=", D, " too large");
  const int64_t blocks = B * H * ceil_div(N, attn::kTileRows);
  CMAE_CHECK(blocks <= kMaxGridDimX, Shape, "attention: B·H·ceil(N/64) = ", blocks, " blocks exceed the grid");
  *chunks = static_cast<int>(ceil_div(hd, attn::kChunkStep));
  attn::Shape s;
  s.N = static_cast<int>(N);
  s.H = static_cast<int>(H);
  s.hd = static_cast<int>(hd);
  s.ld = attn::kChunkStep * *chunks + 4;
  s.D = D;
  s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));  // timm's head_dim ** -0.5
  s.vector = hd % 4 == 0 && pointers_aligned;
  return s;
}

unsigned attention_blocks(int64_t B, int64_t H, const attn::Shape& s) {
  return static_cast<unsigned>(B * H * ceil_div(s.N, attn::kTileRows));
}

size_t shared_bytes(int floats) { return static_cast<size_t>(floats) * sizeof(float); }

// Calls launch(std::integral_constant<int, C>) for chunks = C in [1, kMaxChunks].
template <typename Launch>
void with_chunks(int chunks, Launch&& launch) {
  static_assert(attn::kMaxChunks == 4, "one case per chunk count");
  switch (chunks) {
    case 1: launch(std::integral_constant<int, 1>{}); break;
    case 2: launch(std::integral_constant<int, 2>{}); break;
    case 3: launch(std::integral_constant<int, 3>{}); break;
    default: launch(std::integral_constant<int, 4>{}); break;
  }
}

}  // namespace

void CudaBackend::attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  int chunks = 0;
  const attn::Shape s = attention_shape(B, N, D, H, all_aligned16(out, qkv), &chunks);
  if (B == 0 || N == 0) return;
  const dim3 grid(attention_blocks(B, H, s)), block(attn::kThreads);
  with_chunks(chunks, [&](auto c) {
    CMAE_LAUNCH((attn::forward<decltype(c)::value>), grid, block, shared_bytes(attn::forward_shared_floats(s.ld)), stream_, out, saved,
                qkv, s);
  });
}

// Three kernels in stream order: row_dots parks D_i in dqkv's q part, key_grads reads it and
// writes the k and v parts, query_grads reads its rows' D and overwrites them with dQ.
void CudaBackend::attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N,
                                     int64_t D, int64_t H) {
  int chunks = 0;
  const attn::Shape s = attention_shape(B, N, D, H, all_aligned16(dqkv, dout, qkv), &chunks);
  if (B == 0 || N == 0) return;
  const dim3 grid(attention_blocks(B, H, s)), block(attn::kThreads);
  CMAE_LAUNCH(attn::row_dots, grid, block, shared_bytes(attn::row_dots_shared_floats(s.ld)), stream_, dqkv, dout, qkv, saved, s);
  with_chunks(chunks, [&](auto c) {
    CMAE_LAUNCH((attn::key_grads<decltype(c)::value>), grid, block, shared_bytes(attn::key_grads_shared_floats(s.ld)), stream_, dqkv,
                dout, qkv, saved, s);
    CMAE_LAUNCH((attn::query_grads<decltype(c)::value>), grid, block, shared_bytes(attn::query_grads_shared_floats(s.ld)), stream_,
                dqkv, dout, qkv, saved, s);
  });
}

void CudaBackend::cls_attention(float* out, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  CMAE_CHECK(B >= 0 && N >= 2 && H > 0 && D > 0 && D % H == 0, Shape, "cls_attention: B=", B, " N=", N, " D=", D, " H=", H,
             ": needs N >= 2 (the cls token and a patch) and D a positive multiple of H");
  CMAE_CHECK(B * H <= kMaxGridDimX, Shape, "cls_attention: B·H = ", B * H, " blocks exceed the grid");
  if (B == 0) return;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D / H)));
  CMAE_LAUNCH(attn::cls_attention_kernel, static_cast<unsigned>(B * H), attn::kClsThreads, 0, stream_, out, qkv, N, D, H, scale);
}

CMAE_CUDA_NAMESPACE_END
