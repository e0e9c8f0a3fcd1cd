// norm ops of the CUDA backend (ops/norm.h): argument checks, launch geometry and launches; the
// kernels and their design are in kernels/norm.cuh. Scratch: the chunk partials of
// layernorm_backward live in the backend's scratch (CudaBackend::scratch), used only within the op.
//
// Expected bound per call, base preset at batch 256 on an H100/H200 (4.3 TB/s; every kernel here is
// memory bound: a few flops per byte). Rows: online encoder 256·50 = 12,800 × 768; EMA teacher
// encoder 256·197 = 50,432 × 768 (forward only); pixel and feature decoders 50,432 × 512.
//   kernel (shape)                                DRAM bytes (row tensors moved)           time
//   layernorm_forward_rows   enc 12,800 × 768     read x, write y: 78.6 MB                 18 us
//                            dec 50,432 × 512     207 MB                                   48 us
//                            teacher 50,432×768   310 MB                                   72 us
//     residual (a + b → sum, y) enc/dec/teacher   4 tensors: 157 / 413 / 620 MB             37 / 96 / 144 us
//   layernorm_backward_chunks enc, dinp = / +=    3 / 4 tensors: 118 / 157 MB               27 / 37 us
//                            dec, dinp = / +=     310 / 413 MB                              72 / 96 us
//     its chunk partials     enc: 200 × 1536 floats written, read back: 2.5 MB             < 1 us
//   add_chunk_sums (×2)      768 or 512 columns   < 1 MB: launch bound                      ~2 us each
//   batchnorm_forward_channels 256 × 1536 (head)  3.1 MB (0.7 us), but 48 blocks of 3
//                            dependent 32-row passes: latency bound                        ~5 us
//   batchnorm_backward_channels 256 × 1536        4.7 MB (1.1 us): latency bound           ~5 us
//   batchnorm_inference_rows 256 × 1536           3.1 MB: launch bound                      ~2 us
// Occupancy (ptxas, sm_90): forward 96 registers at C = 768 (2 blocks of 256 per SM), backward 98
// registers and 48 KiB of shared memory at C = 768 (2 blocks per SM, enforced by launch bounds).
#include <climits>
#include <type_traits>

#include "cuda_backend.h"
#include "kernels/norm.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace {

// Calls launch(W, kPacks) (std::integral_constant values): with 16-byte access (W = 4), the
// smallest register row of 256, 512, 768 or 1024 columns that holds C (1024, re-read per pass,
// beyond); without (odd C or offsets: W = 1, not the model's shapes), rows of 256 columns.
template <typename Launch>
void with_row_shape(int64_t C, bool vec4, Launch&& launch) {
  using std::integral_constant;
  if (!vec4) return launch(integral_constant<int, 1>{}, integral_constant<int, 256 / 32>{});
  constexpr int W = 4;
  const integral_constant<int, W> width;
  if (C <= 256) launch(width, integral_constant<int, 256 / 32 / W>{});
  else if (C <= 512) launch(width, integral_constant<int, 512 / 32 / W>{});
  else if (C <= 768) launch(width, integral_constant<int, 768 / 32 / W>{});
  else launch(width, integral_constant<int, kernels::kLayerNormMaxCachedColumns / 32 / W>{});
}

void check_columns(int64_t C, const char* op) {
  CMAE_CHECK(C <= INT_MAX, Shape, op, ": rows of ", C, " columns are more than the CUDA kernels index (2^31 - 1)");
}

}  // namespace

void CudaBackend::layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                                    int64_t R, int64_t C, float eps) {
  residual_layernorm_forward(nullptr, out, mean, rstd, inp, nullptr, weight, bias, R, C, eps);
}

// layernorm_forward is this op with b = sum = null (the kernel's plain row).
void CudaBackend::residual_layernorm_forward(float* sum, float* out, float* mean, float* rstd, const float* a, const float* b,
                                             const float* weight, const float* bias, int64_t R, int64_t C, float eps) {
  if (R == 0 || C == 0) return;
  check_columns(C, "layernorm_forward");
  const bool vec4 = C % 4 == 0 && all_aligned16(out, sum, a, b, weight, bias);
  const dim3 grid(static_cast<unsigned>(ceil_div(R, kernels::kLayerNormWarps)));
  with_row_shape(C, vec4, [&](auto width, auto packs) {
    constexpr int W = decltype(width)::value, kPacks = decltype(packs)::value;
    CMAE_LAUNCH((kernels::layernorm_forward_rows<W, kPacks>), grid, kernels::kLayerNormThreads, 0, stream_, out, sum, mean, rstd, a,
                b, weight, bias, R, static_cast<int>(C), eps);
  });
}

void CudaBackend::layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                     const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C,
                                     bool accumulate_dinp) {
  if (R == 0 || C == 0) return;
  check_columns(C, "layernorm_backward");
  const int64_t chunks = ceil_div(R, kernels::kLayerNormChunkRows);
  float* partials = static_cast<float*>(scratch(static_cast<size_t>(chunks * 2 * C) * sizeof(float)));
  const bool vec4 = C % 4 == 0 && all_aligned16(dinp, dout, inp, weight);
  const int c = static_cast<int>(C);
  with_row_shape(C, vec4, [&](auto width, auto packs) {
    constexpr int W = decltype(width)::value, kPacks = decltype(packs)::value;
    const size_t shared_bytes = kernels::layernorm_backward_shared_bytes(C, 32 * W * kPacks);
    CMAE_LAUNCH((kernels::layernorm_backward_chunks<W, kPacks>), dim3(static_cast<unsigned>(chunks)), kernels::kLayerNormThreads,
                shared_bytes, stream_, dinp, partials, dout, inp, weight, mean, rstd, R, c, accumulate_dinp);
    if (C > 32 * W * kPacks) {  // rows longer than the registers: the kernel left the partials to this one
      constexpr int kThreads = kernels::kParamPartialThreads;
      const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(ceil_div(C, kThreads)));
      CMAE_LAUNCH(kernels::layernorm_param_partials<kThreads>, grid, kThreads, 0, stream_, partials, dout, inp, mean, rstd, R, c);
    }
  });
  const dim3 sum_grid(static_cast<unsigned>(ceil_div(C, 32))), sum_block(32, kernels::kChunkSumLanes);
  CMAE_LAUNCH(kernels::add_chunk_sums<float>, sum_grid, sum_block, 0, stream_, dweight, partials, chunks, C, 2 * C);
  CMAE_LAUNCH(kernels::add_chunk_sums<float>, sum_grid, sum_block, 0, stream_, dbias, partials + C, chunks, C, 2 * C);
}

void CudaBackend::batchnorm_forward(float* out, float* mean, float* rstd, float* running_mean, float* running_var, const float* inp,
                                    const float* weight, const float* bias, int64_t B, int64_t C, float eps, float momentum) {
  if (B == 0 || C == 0) return;
  check_columns(C, "batchnorm_forward");
  const float unbias = static_cast<float>(B) / static_cast<float>(B - 1);  // B >= 2 (bindings check)
  constexpr int kRowLanes = kernels::kBatchNormRowLanes;
  CMAE_LAUNCH(kernels::batchnorm_forward_channels<kRowLanes>, dim3(static_cast<unsigned>(ceil_div(C, 32))), dim3(32, kRowLanes), 0,
              stream_, out, mean, rstd, running_mean, running_var, inp, weight, bias, B, static_cast<int>(C), eps, momentum, unbias);
}

void CudaBackend::batchnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                     const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C) {
  if (B == 0 || C == 0) return;
  check_columns(C, "batchnorm_backward");
  constexpr int kRowLanes = kernels::kBatchNormRowLanes;
  CMAE_LAUNCH(kernels::batchnorm_backward_channels<kRowLanes>, dim3(static_cast<unsigned>(ceil_div(C, 32))), dim3(32, kRowLanes), 0,
              stream_, dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, static_cast<int>(C));
}

void CudaBackend::batchnorm_inference(float* out, const float* inp, const float* running_mean, const float* running_var,
                                      const float* weight, const float* bias, int64_t B, int64_t C, float eps) {
  if (B == 0 || C == 0) return;
  check_columns(C, "batchnorm_inference");
  // Tiles of 8 rows, at most 1024 of them (beyond 8192 rows each thread strides).
  constexpr int kRowLanes = kernels::kBatchNormRowLanes;
  const int64_t row_tiles = ceil_div(B, kRowLanes);
  const dim3 grid(static_cast<unsigned>(ceil_div(C, 32)), static_cast<unsigned>(row_tiles < 1024 ? row_tiles : 1024));
  CMAE_LAUNCH(kernels::batchnorm_inference_rows<kRowLanes>, grid, dim3(32, kRowLanes), 0, stream_, out, inp, running_mean, running_var,
              weight, bias, B, static_cast<int>(C), eps);
}

CMAE_CUDA_NAMESPACE_END
