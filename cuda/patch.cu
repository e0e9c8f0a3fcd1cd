// patch ops of the CUDA backend (ops/patch.h): argument checks, launch geometry and launches; the
// kernels and their design are in kernels/patch.cuh. Scratch: the dmask_token chunk partials of
// unshuffle_backward live in the backend's scratch (CudaBackend::scratch), used only within the op.
//
// Expected bound per call, base preset at batch 256 on an H100/H200 (4.3 TB/s; all memory or
// latency bound). 224 px RGB images, p = 16: L = 196 patches of P = 768; 75 % masking: K = 49
// visible (CMAE: 17 of 49 groups of 2×2 → K = 68); encoder D = 768, pixel decoder D = 512, one cls
// row (prefix = 1).
//   kernel (shape)                                    DRAM bytes                       time
//   patch_copy (patchify / unpatchify)  256×3×224×224 read + write 154 MB: 308 MB       72 us
//   patch_gather            256 × 68 listed patches   read + write 53.5 MB: 107 MB     25 us
//     (patchify_visible)    of 768 (CMAE's visible)   (MAE's 49: 77 MB, 18 us; the momentum
//                                                     branch's 196: 308 MB, 72 us)
//   random_masking_samples  B = 256, G = 49 or 196    0.6 MB; G² compares per sample:   ~5 us
//                                                     196² = 38 k per block, 256 blocks
//   masking_noise_fill      256 × 196                 0.2 MB, 50 k Philox blocks:       ~2 us (launch)
//   visible_rows_plus_positions                       pos (0.6 MB) stays in L2:
//     <·, true> (gather_visible_forward)  256 × 49    read 38.5 MB, write 38.5 MB         18 us
//     <·, false> (add_positions)  256 × 68 rows       read 53.5 MB, write 53.5 MB         25 us
//                           (momentum: 256 × 196)     (read + write 308 MB)              (72 us)
//   gather_visible_backward_rows  256 × 196 rows      write 154 MB, read 38.5 MB        45 us
//   unshuffle_forward_rows  256 × 197 rows of 512     write 103 MB, read 26 MB           30 us
//   unshuffle_backward_rows 256 × 50 rows of 512      read 26 MB (visible dout rows),     12 us
//                                                     write 26 MB
//   mask_token_partials     256·196 rows × 512        read 77 MB (masked dout rows),      18 us
//                                                     392 × 512 doubles written (1.6 MB)
//   add_chunk_sums<double>  512 columns, 392 chunks   3.2 MB read: launch bound          ~3 us
#include <climits>
#include <type_traits>

#include "cuda_backend.h"
#include "kernels/patch.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace {

void check_int(int64_t value, const char* what, const char* op) {
  CMAE_CHECK(value <= INT_MAX, Shape, op, ": ", what, " = ", value, " is more than the CUDA kernels index (2^31 - 1)");
}

// Blocks of kTokenRowWarps destination rows, a warp each.
dim3 token_row_grid(int64_t rows) { return dim3(static_cast<unsigned>(ceil_div(rows, kernels::kTokenRowWarps))); }

// The token ops' sizes as the kernels take them (row offsets are 64-bit there).
struct TokenDims {
  int L, K, D, prefix;
};
TokenDims token_dims(int64_t L, int64_t K, int64_t D, int64_t prefix, const char* op) {
  check_int(prefix + L + K, "prefix + L + K", op);
  check_int(D, "D", op);
  return {static_cast<int>(L), static_cast<int>(K), static_cast<int>(D), static_cast<int>(prefix)};
}

// Threads of a block that walks the P elements of a patch: whole warps, at most kPatchThreads.
dim3 patch_threads(int64_t P) {
  const int64_t threads = ceil_div(P, 32) * 32;
  return dim3(static_cast<unsigned>(threads < kernels::kPatchThreads ? threads : kernels::kPatchThreads));
}

// patchify (kToPatches) and unpatchify: one launch shape.
template <bool kToPatches>
void launch_patch_copy(Stream stream, float* patches, float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p,
                       PatchLayout layout) {
  const int64_t L = (Hh / p) * (W / p), P = p * p * C;
  if (B * L == 0 || P == 0) return;
  check_int(P, "the patch size p·p·C", "patchify");
  check_int(Hh * W, "the image size H·W", "patchify");
  CMAE_LAUNCH(kernels::patch_copy<kToPatches>, dim3(static_cast<unsigned>(B * (Hh / p))), patch_threads(P), 0, stream, patches, images,
              static_cast<int>(C), static_cast<int>(Hh), static_cast<int>(W), static_cast<int>(p), layout == PatchLayout::ChannelsFirst);
}

}  // namespace

void CudaBackend::patchify(float* patches, const float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p,
                           PatchLayout layout) {
  launch_patch_copy<true>(stream_, patches, const_cast<float*>(images), B, C, Hh, W, p, layout);
}

void CudaBackend::unpatchify(float* images, const float* patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p,
                             PatchLayout layout) {
  launch_patch_copy<false>(stream_, const_cast<float*>(patches), images, B, C, Hh, W, p, layout);
}

void CudaBackend::patchify_visible(float* patches, const float* images, const int32_t* ids, int64_t B, int64_t C, int64_t Hh,
                                   int64_t W, int64_t p, int64_t K, PatchLayout layout) {
  const int64_t P = p * p * C;
  if (B * K == 0 || P == 0) return;
  check_int(P, "the patch size p·p·C", "patchify_visible");
  check_int(Hh * W, "the image size H·W", "patchify_visible");
  check_int(K, "the listed patches per sample K", "patchify_visible");
  CMAE_LAUNCH(kernels::patch_gather, dim3(static_cast<unsigned>(ceil_div(B * K, kernels::kGatherPatches))), patch_threads(P), 0, stream_,
              patches, images, ids, B * K, static_cast<int>(K), static_cast<int>(C), static_cast<int>(Hh), static_cast<int>(W),
              static_cast<int>(p), layout == PatchLayout::ChannelsFirst);
}

void CudaBackend::random_masking(int32_t* ids_keep, int32_t* ids_restore, float* mask, const float* noise, int64_t B, int64_t grid_h,
                                 int64_t grid_w, int64_t group, int64_t keep_groups) {
  const int64_t G = (grid_h / group) * (grid_w / group), L = grid_h * grid_w, K = keep_groups * group * group;
  if (B == 0 || L == 0) return;
  const size_t shared_bytes = static_cast<size_t>(G) * (sizeof(float) + 1);  // the keys, then the kept flags
  CMAE_CHECK(shared_bytes <= properties_.max_shared_bytes_per_block, Shape, "random_masking: ", G,
             " groups per sample need more shared memory (", shared_bytes, " bytes) than a block of ", properties_.name, " has");
  check_int(L, "the patches per sample L", "random_masking");
  CMAE_LAUNCH(kernels::random_masking_samples, dim3(static_cast<unsigned>(B)), kernels::kMaskingThreads, shared_bytes, stream_,
              ids_keep, ids_restore, mask, noise, static_cast<int>(grid_w), static_cast<int>(group), static_cast<int>(G),
              static_cast<int>(L), static_cast<int>(keep_groups), static_cast<int>(K));
}

void CudaBackend::masking_noise(float* noise, int64_t B, int64_t G, uint64_t seed, uint64_t stream) {
  const int64_t n = B * G;
  if (n == 0) return;
  CMAE_LAUNCH(kernels::masking_noise_fill, stream_blocks(n, 256, properties_.multiprocessors), 256, 0, stream_, noise, n, seed, stream);
}

void CudaBackend::gather_visible_forward(float* out, const float* tokens, const float* pos, const int32_t* ids_keep, int64_t B,
                                         int64_t L, int64_t K, int64_t D, int64_t prefix) {
  if (B * K == 0 || D == 0) return;
  const TokenDims t = token_dims(L, K, D, prefix, "gather_visible_forward");
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(out, tokens, pos), [&](auto width) {
    CMAE_LAUNCH((kernels::visible_rows_plus_positions<decltype(width)::value, true>), token_row_grid(B * K), kernels::kTokenRowThreads,
                0, stream_, out, tokens, pos, ids_keep, B, t.L, t.K, t.D, t.prefix);
  });
}

void CudaBackend::add_positions(float* out, const float* tokens, const float* pos, const int32_t* ids, int64_t B, int64_t L, int64_t K,
                                int64_t D, int64_t prefix) {
  if (B * K == 0 || D == 0) return;
  const TokenDims t = token_dims(L, K, D, prefix, "add_positions");
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(out, tokens, pos), [&](auto width) {
    CMAE_LAUNCH((kernels::visible_rows_plus_positions<decltype(width)::value, false>), token_row_grid(B * K), kernels::kTokenRowThreads,
                0, stream_, out, tokens, pos, ids, B, t.L, t.K, t.D, t.prefix);
  });
}

void CudaBackend::gather_visible_backward(float* dtokens, const float* dout, const int32_t* ids_keep, int64_t B, int64_t L,
                                          int64_t K, int64_t D, int64_t prefix) {
  if (B * L == 0 || D == 0) return;
  const TokenDims t = token_dims(L, K, D, prefix, "gather_visible_backward");
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(dtokens, dout), [&](auto width) {
    CMAE_LAUNCH(kernels::gather_visible_backward_rows<decltype(width)::value>, token_row_grid(B * L), kernels::kTokenRowThreads, 0,
                stream_, dtokens, dout, ids_keep, B, t.L, t.K, t.D, t.prefix);
  });
}

void CudaBackend::unshuffle_forward(float* out, const float* inp, const float* mask_token, const float* pos, const float* pos_prefix,
                                    const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  if (B * (prefix + L) == 0 || D == 0) return;
  const TokenDims t = token_dims(L, K, D, prefix, "unshuffle_forward");
  kernels::dispatch_width(D % 4 == 0 && all_aligned16(out, inp, mask_token, pos, pos_prefix), [&](auto width) {
    CMAE_LAUNCH(kernels::unshuffle_forward_rows<decltype(width)::value>, token_row_grid(B * (prefix + L)), kernels::kTokenRowThreads, 0,
                stream_, out, inp, mask_token, pos, pos_prefix, ids_restore, B, t.L, t.K, t.D, t.prefix);
  });
}

void CudaBackend::unshuffle_backward(float* dinp, float* dmask_token, const float* dout, const int32_t* ids_restore, int64_t B,
                                     int64_t L, int64_t K, int64_t D, int64_t prefix) {
  if (B == 0 || D == 0) return;
  const TokenDims t = token_dims(L, K, D, prefix, "unshuffle_backward");
  if (prefix + K > 0) {
    kernels::dispatch_width(D % 4 == 0 && all_aligned16(dinp, dout), [&](auto width) {
      CMAE_LAUNCH(kernels::unshuffle_backward_rows<decltype(width)::value>, token_row_grid(B * (prefix + K)), kernels::kTokenRowThreads,
                  0, stream_, dinp, dout, ids_restore, B, t.L, t.K, t.D, t.prefix);
    });
  }
  if (L == 0) return;  // no masked row: dmask_token += 0
  // dmask_token: chunk partials in double, then their sum in chunk order.
  const int64_t chunks = ceil_div(B * L, kernels::kMaskTokenChunkRows);
  double* partials = static_cast<double*>(scratch(static_cast<size_t>(chunks * D) * sizeof(double)));
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(ceil_div(D, kernels::kMaskTokenThreads)));
  CMAE_LAUNCH(kernels::mask_token_partials, grid, kernels::kMaskTokenThreads, 0, stream_, partials, dout, ids_restore, B, t.L, t.K,
              t.D, t.prefix);
  CMAE_LAUNCH(kernels::add_chunk_sums<double>, dim3(static_cast<unsigned>(ceil_div(D, 32))), dim3(32, kernels::kChunkSumLanes), 0,
              stream_, dmask_token, partials, chunks, D, D);
}

CMAE_CUDA_NAMESPACE_END
