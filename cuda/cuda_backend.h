// The CUDA backend: every op of native/ops/*.h as CUDA kernels, queued in call order on the
// backend's own stream (so callers see sequential semantics and never wait until they copy a
// result to the host). The kernel bodies live in cuda/kernels/<family>.cuh and the launches in
// cuda/<family>.cu, file for file like native/cpu/. The same sources are compiled by nvcc for the
// GPU (library cmae_cuda) and by g++ for the SIMT emulator (cmae_cuda_emu, test builds only), in
// the inline namespaces cmae::cuda::gpu / cmae::cuda::emulated (common/limits.h), so both can be
// linked into one program; each build's backend is reached through cuda_api.h.
//
// Determinism: every reduction has a fixed order (no floating-point atomics on results), so a run
// on one GPU repeats bit for bit and resumes exactly.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "common/compat.cuh"
#include "common/launch.cuh"
#include "common/runtime.h"
#include "cuda_api.h"

CMAE_CUDA_NAMESPACE_BEGIN

class CudaBackend final : public Backend {
 public:
  // Device `index` of this build (the emulator has one, 0). Creates the backend's stream.
  explicit CudaBackend(int index);
  ~CudaBackend() override;

  Device device() const override { return Device::CUDA; }
  std::string name() const override;
  const DeviceProperties& properties() const { return properties_; }
  Stream stream() const { return stream_; }
  // Device memory for the partial results between the passes of one op (two-pass reductions,
  // split-K slices): at least `bytes`, valid until the op's next call of scratch (ops on the
  // stream run in queue order, so an op uses it freely between its own launches; nothing survives
  // to the next op). Growing waits for the stream once (the old buffer may still be in use), then
  // allocates with headroom: steady state never allocates or waits.
  void* scratch(size_t bytes);

  // Memory: cudaMalloc'ed buffers (256-byte aligned), copies and fills queued on the stream.
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) noexcept override;
  void fill_zero(void* dst, size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) override;
  void zero_2d(void* dst, size_t pitch, size_t width, size_t rows) override;
  void synchronize() override;
  void make_current() override;
  std::mutex* exclusive_use() override { return &exclusive_use_; }
  void* native_stream() override { return static_cast<void*>(stream_); }
  void set_kernel_timing(bool on) override;
  std::vector<KernelTime> take_kernel_times() override;

  // A GPU takes the whole batch at once.
  int batch_parts() const override { return 1; }
  void run_parts(int parts, const std::function<void(int part)>& fn) override;

  // activation.cu
  void gelu_forward(float* out, const float* inp, int64_t n) override;
  void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) override;
  void relu_forward(float* out, const float* inp, int64_t n) override;
  void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) override;

  // attention.cu
  AttentionSaved attention_saved_kind() const override { return AttentionSaved::LogSumExp; }
  void attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) override;
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N, int64_t D,
                          int64_t H) override;
  void cls_attention(float* out, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) override;

  // data.cu
  void make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H, int64_t W,
                  int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                  uint64_t stream) override;

  // The precision of sgemm and linear_* (FP32 SIMT products; TF32 and BF16 on tensor cores, from
  // compute capability 8.0). TF32 by default where it exists, as PyTorch's "high".
  void set_matmul_precision(MatmulPrecision precision) override;
  MatmulPrecision matmul_precision() const override;

  // linear.cu
  void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override;
  void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                      int64_t OC) override;
  void linear_gelu_forward(float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                           int64_t OC) override;
  void gelu_linear_backward(float* dpre, float* dweight, float* dbias, const float* dout, const float* act, const float* pre,
                            const float* weight, int64_t R, int64_t C, int64_t OC) override;
  void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
                       int64_t R, int64_t C, int64_t OC) override;

  // loss.cu
  void normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask,
                                    int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss) override;
  void ntxent_forward_backward(float* loss, float* dz, const float* z, int64_t R, int64_t E, float tau, float scale,
                               float dloss) override;
  void softmax_cross_entropy_forward_backward(float* loss, float* dlogits, const float* logits, const float* targets, int64_t B,
                                              int64_t C, float dloss) override;
  void infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau,
                                float scale, float dloss) override;
  void dense_infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, const int32_t* match, int64_t B,
                                      int64_t Lq, int64_t Lk, int64_t E, float tau, float scale, float dloss) override;

  // norm.cu
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t R,
                         int64_t C, float eps) override;
  void residual_layernorm_forward(float* sum, float* out, float* mean, float* rstd, const float* a, const float* b,
                                  const float* weight, const float* bias, int64_t R, int64_t C, float eps) override;
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
                          const float* mean, const float* rstd, int64_t R, int64_t C, bool accumulate_dinp) override;
  void batchnorm_forward(float* out, float* mean, float* rstd, float* running_mean, float* running_var, const float* inp,
                         const float* weight, const float* bias, int64_t B, int64_t C, float eps, float momentum) override;
  void batchnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
                          const float* mean, const float* rstd, int64_t B, int64_t C) override;
  void batchnorm_inference(float* out, const float* inp, const float* running_mean, const float* running_var, const float* weight,
                           const float* bias, int64_t B, int64_t C, float eps) override;

  // optim.cu
  void adamw_step(float* params, float* m, float* v, const float* grads, const float* decay_mask, int64_t n, const AdamWStep& step,
                  const float* grad_scale) override;
  void ema_update(float* target, const float* online, int64_t n, float momentum) override;
  void global_norm(double* norm, const float* grads, int64_t n) override;
  void clip_coefficient(float* scale, const double* norm, double max_norm) override;
  void scale_inplace(float* x, int64_t n, float s) override;

  // patch.cu
  void patchify(float* patches, const float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p,
                PatchLayout layout) override;
  void unpatchify(float* images, const float* patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p,
                  PatchLayout layout) override;
  void patchify_visible(float* patches, const float* images, const int32_t* ids, int64_t B, int64_t C, int64_t Hh, int64_t W,
                        int64_t p, int64_t K, PatchLayout layout) override;
  void random_masking(int32_t* ids_keep, int32_t* ids_restore, float* mask, const float* noise, int64_t B, int64_t grid_h,
                      int64_t grid_w, int64_t group, int64_t keep_groups) override;
  void masking_noise(float* noise, int64_t B, int64_t G, uint64_t seed, uint64_t stream) override;
  void gather_visible_forward(float* out, const float* tokens, const float* pos, const int32_t* ids_keep, int64_t B, int64_t L,
                              int64_t K, int64_t D, int64_t prefix) override;
  void add_positions(float* out, const float* tokens, const float* pos, const int32_t* ids, int64_t B, int64_t L, int64_t K,
                     int64_t D, int64_t prefix) override;
  void gather_visible_backward(float* dtokens, const float* dout, const int32_t* ids_keep, int64_t B, int64_t L, int64_t K,
                               int64_t D, int64_t prefix) override;
  void unshuffle_forward(float* out, const float* inp, const float* mask_token, const float* pos, const float* pos_prefix,
                         const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) override;
  void unshuffle_backward(float* dinp, float* dmask_token, const float* dout, const int32_t* ids_restore, int64_t B, int64_t L,
                          int64_t K, int64_t D, int64_t prefix) override;

  // pool.cu
  void mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) override;
  void mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) override;
  void l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) override;
  void l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D,
                             float eps) override;
  void match_tokens(int32_t* match, const float* a, int64_t a_stride, const float* k, int64_t k_stride, int64_t B, int64_t La,
                    int64_t Lk, int64_t D) override;

  // rows.cu
  void add_inplace(float* dst, const float* src, int64_t n) override;
  void column_sums_add(float* dst, const float* src, int64_t R, int64_t C, int64_t ld) override;
  void transpose_add(float* dst, const float* src, int64_t R, int64_t C) override;
  void broadcast_row(float* dst, int64_t ld, const float* row, int64_t count, int64_t D) override;
  void scale_rows(float* dst, const float* src, const float* scale, int64_t R, int64_t n) override;
  void first_nonfinite(int32_t* index, const float* x, int64_t n) override;

 private:
  int index_;
  DeviceProperties properties_;
  Stream stream_ = nullptr;
  MatmulPrecision precision_ = MatmulPrecision::FP32;
  std::mutex exclusive_use_;  // see Backend::exclusive_use
  std::unique_ptr<KernelTimer> timer_;  // while kernel timing is on (launch.cuh active_kernel_timer)
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

CMAE_CUDA_NAMESPACE_END
