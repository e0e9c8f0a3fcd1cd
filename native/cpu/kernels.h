// The CPU backend's ops, listed once: CMAE_CPU_OPS(X) calls X(name, (parameters), (arguments)) for
// every op that CpuBackend implements with kernels. The kernel sources (every cpu/*.cc but
// cpu_backend.cc and the *_avx512.cc files) define each op as a free function of the namespace of
// the target they are compiled for (cpu/target.h): cmae::cpu::portable always, cmae::cpu::avx2
// on x86-64 (the same sources with AVX2 + FMA). CpuBackend (cpu_backend.h) declares the ops from
// this list and cpu_backend.cc forwards each one to the target of current_isa().
//
// Adding an op (after its contract in ops/<family>.h): its line here and its definition in the
// kernel source of its family; nothing else in the CPU backend. The arguments are the parameter
// names in order: two swapped ones of one type would still compile, and only the op cases of the
// harness (test/native/ops), which run every op through this forwarding, would catch it.
#pragma once
#include <cstdint>

#include "backend/backend.h"

// clang-format off
#define CMAE_CPU_OPS(X) \
  X(gelu_forward, (float* out, const float* inp, int64_t n), (out, inp, n)) \
  X(gelu_backward, (float* dinp, const float* dout, const float* inp, int64_t n), (dinp, dout, inp, n)) \
  X(relu_forward, (float* out, const float* inp, int64_t n), (out, inp, n)) \
  X(relu_backward, (float* dinp, const float* dout, const float* out, int64_t n), (dinp, dout, out, n)) \
  X(attention_forward, (float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H), (out, saved, qkv, B, N, D, H)) \
  X(attention_backward, (float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N, int64_t D, int64_t H), (dqkv, dout, qkv, saved, B, N, D, H)) \
  X(cls_attention, (float* out, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H), (out, qkv, B, N, D, H)) \
  X(make_views, (float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H, int64_t W, int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed, uint64_t stream), (online, target, shifts, sources, N_total, H, W, C, indices, B, params, seed, stream)) \
  X(sgemm, (bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc), (trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) \
  X(linear_forward, (float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, int64_t OC), (out, inp, weight, bias, R, C, OC)) \
  X(linear_gelu_forward, (float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, int64_t OC), (pre, out, inp, weight, bias, R, C, OC)) \
  X(gelu_linear_backward, (float* dpre, float* dweight, float* dbias, const float* dout, const float* act, const float* pre, const float* weight, int64_t R, int64_t C, int64_t OC), (dpre, dweight, dbias, dout, act, pre, weight, R, C, OC)) \
  X(linear_backward, (float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t R, int64_t C, int64_t OC), (dinp, dweight, dbias, dout, inp, weight, R, C, OC)) \
  X(normpix_mse_forward_backward, (float* loss, float* dpred, const float* pred, const float* target, const float* mask, int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss), (loss, dpred, pred, target, mask, B, L, P, norm_pix, eps, dloss)) \
  X(ntxent_forward_backward, (float* loss, float* dz, const float* z, int64_t R, int64_t E, float tau, float scale, float dloss), (loss, dz, z, R, E, tau, scale, dloss)) \
  X(dense_infonce_forward_backward, (float* loss, float* dq, const float* q, const float* k, const int32_t* match, int64_t B, int64_t Lq, int64_t Lk, int64_t E, float tau, float scale, float dloss), (loss, dq, q, k, match, B, Lq, Lk, E, tau, scale, dloss)) \
  X(softmax_cross_entropy_forward_backward, (float* loss, float* dlogits, const float* logits, const float* targets, int64_t B, int64_t C, float dloss), (loss, dlogits, logits, targets, B, C, dloss)) \
  X(infonce_forward_backward, (float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau, float scale, float dloss), (loss, dq, q, k, B, E, tau, scale, dloss)) \
  X(layernorm_forward, (float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, float eps), (out, mean, rstd, inp, weight, bias, R, C, eps)) \
  X(residual_layernorm_forward, (float* sum, float* out, float* mean, float* rstd, const float* a, const float* b, const float* weight, const float* bias, int64_t R, int64_t C, float eps), (sum, out, mean, rstd, a, b, weight, bias, R, C, eps)) \
  X(layernorm_backward, (float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C, bool accumulate_dinp), (dinp, dweight, dbias, dout, inp, weight, mean, rstd, R, C, accumulate_dinp)) \
  X(batchnorm_forward, (float* out, float* mean, float* rstd, float* running_mean, float* running_var, const float* inp, const float* weight, const float* bias, int64_t B, int64_t C, float eps, float momentum), (out, mean, rstd, running_mean, running_var, inp, weight, bias, B, C, eps, momentum)) \
  X(batchnorm_backward, (float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C), (dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, C)) \
  X(batchnorm_inference, (float* out, const float* inp, const float* running_mean, const float* running_var, const float* weight, const float* bias, int64_t B, int64_t C, float eps), (out, inp, running_mean, running_var, weight, bias, B, C, eps)) \
  X(adamw_step, (float* params, float* m, float* v, const float* grads, const float* decay_mask, int64_t n, const AdamWStep& step, const float* grad_scale), (params, m, v, grads, decay_mask, n, step, grad_scale)) \
  X(ema_update, (float* target, const float* online, int64_t n, float momentum), (target, online, n, momentum)) \
  X(global_norm, (double* norm, const float* grads, int64_t n), (norm, grads, n)) \
  X(clip_coefficient, (float* scale, const double* norm, double max_norm), (scale, norm, max_norm)) \
  X(scale_inplace, (float* x, int64_t n, float s), (x, n, s)) \
  X(patchify, (float* patches, const float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout), (patches, images, B, C, Hh, W, p, layout)) \
  X(unpatchify, (float* images, const float* patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout), (images, patches, B, C, Hh, W, p, layout)) \
  X(patchify_visible, (float* patches, const float* images, const int32_t* ids, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, int64_t K, PatchLayout layout), (patches, images, ids, B, C, Hh, W, p, K, layout)) \
  X(random_masking, (int32_t* ids_keep, int32_t* ids_restore, float* mask, const float* noise, int64_t B, int64_t grid_h, int64_t grid_w, int64_t group, int64_t keep_groups), (ids_keep, ids_restore, mask, noise, B, grid_h, grid_w, group, keep_groups)) \
  X(masking_noise, (float* noise, int64_t B, int64_t G, uint64_t seed, uint64_t stream), (noise, B, G, seed, stream)) \
  X(gather_visible_forward, (float* out, const float* tokens, const float* pos, const int32_t* ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix), (out, tokens, pos, ids_keep, B, L, K, D, prefix)) \
  X(add_positions, (float* out, const float* tokens, const float* pos, const int32_t* ids, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix), (out, tokens, pos, ids, B, L, K, D, prefix)) \
  X(gather_visible_backward, (float* dtokens, const float* dout, const int32_t* ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix), (dtokens, dout, ids_keep, B, L, K, D, prefix)) \
  X(unshuffle_forward, (float* out, const float* inp, const float* mask_token, const float* pos, const float* pos_prefix, const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix), (out, inp, mask_token, pos, pos_prefix, ids_restore, B, L, K, D, prefix)) \
  X(unshuffle_backward, (float* dinp, float* dmask_token, const float* dout, const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix), (dinp, dmask_token, dout, ids_restore, B, L, K, D, prefix)) \
  X(mean_pool_forward, (float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start), (out, inp, B, N, D, start)) \
  X(mean_pool_backward, (float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start), (dinp, dout, B, N, D, start)) \
  X(l2_normalize_forward, (float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps), (out, norm, inp, R, D, eps)) \
  X(match_tokens, (int32_t* match, const float* a, int64_t a_stride, const float* k, int64_t k_stride, int64_t B, int64_t La, int64_t Lk, int64_t D), (match, a, a_stride, k, k_stride, B, La, Lk, D)) \
  X(l2_normalize_backward, (float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D, float eps), (dinp, dout, inp, norm, R, D, eps)) \
  X(add_inplace, (float* dst, const float* src, int64_t n), (dst, src, n)) \
  X(column_sums_add, (float* dst, const float* src, int64_t R, int64_t C, int64_t ld), (dst, src, R, C, ld)) \
  X(transpose_add, (float* dst, const float* src, int64_t R, int64_t C), (dst, src, R, C)) \
  X(broadcast_row, (float* dst, int64_t ld, const float* row, int64_t count, int64_t D), (dst, ld, row, count, D)) \
  X(scale_rows, (float* dst, const float* src, const float* scale, int64_t R, int64_t n), (dst, src, scale, R, n)) \
  X(first_nonfinite, (int32_t* index, const float* x, int64_t n), (index, x, n))
// clang-format on

namespace cmae::cpu {

#define CMAE_CPU_DECLARE_KERNEL(name, params, args) void name params;
namespace portable {
CMAE_CPU_OPS(CMAE_CPU_DECLARE_KERNEL)
}  // namespace portable
#if defined(__x86_64__) || defined(_M_X64)
#define CMAE_CPU_HAS_AVX2_TARGET 1
namespace avx2 {
CMAE_CPU_OPS(CMAE_CPU_DECLARE_KERNEL)
}  // namespace avx2
#endif
#undef CMAE_CPU_DECLARE_KERNEL

}  // namespace cmae::cpu
