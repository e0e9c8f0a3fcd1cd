// The CPU backend: SIMD kernels (AVX2 + FMA baseline, AVX-512 variants chosen at run time, see
// core/cpu_features.h) on cmae's OpenMP pool (core/threads.h). Each op family's members are
// defined in the cpu/ file of that family (activation.cc, attention.cc, data.cc, linear.cc, loss.cc,
// norm.cc, optim.cc, patch.cc, pool.cc, rows.cc); memory and policy in cpu_backend.cc.
//
// Ops run synchronously on the calling thread (and the pool). Results do not depend on the thread
// count: every output element is produced by one thread with a fixed summation order.
#pragma once
#include "backend/backend.h"

namespace cmae::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }

  // Memory: small blocks from the heap (malloc, aligned by hand: host_allocate says why not
  // aligned_alloc), large ones (>= kMapThreshold) mapped from and returned to the OS with
  // mmap/munmap where the platform has them (native/README.md, principle 6). glibc keeps a freed
  // large block's size on the heap from then on (its mmap threshold rises to the largest block
  // freed, up to 32 MiB), and freed heap memory below the top stays in the process: create/dispose
  // cycles of a nano model grew by its 11 MB arena per cycle (50 MB -> 2.3 GB in 200 cycles).
  // Mapped blocks leave on munmap, whatever glibc's state.
  // Why 256 KiB: every arena, workspace and batch-sized tensor is above it (a nano model's
  // smallest arena is 6.6 MB; a batch of 64 32x32 views is 0.25 MB per channel), so those all
  // return to the OS, while the many small tensors of kernels and tests stay on the heap, where a
  // mapping (two syscalls, fresh zeroed pages every time) would cost more than the block. Above it
  // the page rounding wastes under 1.6 %, and the mmap/munmap pair (microseconds) is small next
  // to writing the block once. Allocations happen per model, per workspace plan and per batch,
  // never inside a training step (principle 2).
  static constexpr size_t kMapThreshold = size_t{1} << 18;
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) noexcept override;
  MemoryUse memory_use() const override;
  void fill_zero(void* dst, size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) override;
  void zero_2d(void* dst, size_t pitch, size_t width, size_t rows) override;
  void synchronize() override {}

  int batch_parts() const override { return 2; }
  // 512: ~8 samples of a 65-token sequence; GEMMs of ~500 rows still run at full speed here.
  // CMAE_CHUNK_ROWS overrides it (tests run the golden models in several chunks per part).
  int64_t chunk_rows() const override;
  // With exactly 2 compute threads (and not already inside a parallel region) the two parts run
  // side by side, one OpenMP thread each: every kernel inside then runs single-threaded
  // (parallel_for sees the enclosing region). Otherwise one after the other on the full pool.
  // CMAE_SERIAL_BRANCHES=1 forces the sequential order (for measuring).
  void run_parts(int parts, const std::function<void(int part)>& fn) override;

  // activation.cc
  void gelu_forward(float* out, const float* inp, int64_t n) override;
  void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) override;
  void relu_forward(float* out, const float* inp, int64_t n) override;
  void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) override;

  // attention.cc
  AttentionSaved attention_saved_kind() const override { return AttentionSaved::Probabilities; }
  void attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) override;
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N, int64_t D,
                          int64_t H) override;

  // data.cc (the pipeline is data/augment.cc)
  void make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H, int64_t W,
                  int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                  uint64_t stream) override;

  // linear.cc (the GEMM driver is gemm.cc)
  void set_matmul_precision(MatmulPrecision precision) override;
  MatmulPrecision matmul_precision() const override;
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

  // loss.cc
  void normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask,
                                    int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss) override;
  void ntxent_forward_backward(float* loss, float* dz, const float* z, int64_t R, int64_t E, float tau, float scale,
                               float dloss) override;
  void softmax_cross_entropy_forward_backward(float* loss, float* dlogits, const float* logits, const float* targets, int64_t B,
                                              int64_t C, float dloss) override;
  void infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau,
                                float scale, float dloss) override;

  // norm.cc
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

  // optim.cc
  void adamw_step(float* params, float* m, float* v, const float* grads, const float* decay_mask, int64_t n, const AdamWStep& step,
                  const float* grad_scale) override;
  void ema_update(float* target, const float* online, int64_t n, float momentum) override;
  void global_norm(double* norm, const float* grads, int64_t n) override;
  void clip_coefficient(float* scale, const double* norm, double max_norm) override;
  void scale_inplace(float* x, int64_t n, float s) override;

  // patch.cc
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

  // pool.cc
  void mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) override;
  void mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) override;
  void l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) override;
  void l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D,
                             float eps) override;

  // rows.cc
  void add_inplace(float* dst, const float* src, int64_t n) override;
  void column_sums_add(float* dst, const float* src, int64_t R, int64_t C, int64_t ld) override;
  void transpose_add(float* dst, const float* src, int64_t R, int64_t C) override;
  void broadcast_row(float* dst, int64_t ld, const float* row, int64_t count, int64_t D) override;
  void scale_rows(float* dst, const float* src, const float* scale, int64_t R, int64_t n) override;
  void first_nonfinite(int32_t* index, const float* x, int64_t n) override;
};

}  // namespace cmae::cpu
