// Float64 references of every op of ops/*.h, written from the contracts in those headers and the
// PyTorch definitions (plain loops over the math, independent of the kernels). Inputs are the
// float32 values the backend was given; every intermediate is a double. Gradients are the plain
// (=) values: a case adds the initial values of its += outputs itself.
#pragma once
#include <cstdint>

#include "core/math.h"
#include "harness.h"
#include "ops/patch.h"

namespace cmae::op_tests::ref {

// ---- activation.h --------------------------------------------------------------------------------
double gelu(double x);       // 0.5·x·(1 + erf(x/√2))
double gelu_grad(double x);  // Φ(x) + x·φ(x)
Doubles gelu(const Floats& x);
Doubles gelu_backward(const Floats& dout, const Floats& inp);
Doubles relu(const Floats& x);
Doubles relu_backward(const Floats& dout, const Floats& out);

// ---- attention.h ---------------------------------------------------------------------------------
struct Attention {
  Doubles out;  // (B, N, D)
  Doubles att;  // (B, H, N, N), the flush rule of the contract applied
  Doubles score_gap;  // (B, H, N, N): score − the row's largest score (−80 is the flush threshold)
  Doubles lse;        // (B, H, N): the row log-sum-exp m + log Σ e^(s − m) of the scores
};
Attention attention_forward(const Floats& qkv, int64_t B, int64_t N, int64_t D, int64_t H);
Doubles attention_backward(const Floats& dout, const Floats& qkv, int64_t B, int64_t N, int64_t D, int64_t H);
// The cls query's row of the probabilities over keys 1..N−1: (B, H, N − 1) (ops/attention.h cls_attention).
Doubles cls_attention(const Floats& qkv, int64_t B, int64_t N, int64_t D, int64_t H);

// ---- linear.h ------------------------------------------------------------------------------------
// C (M rows of ldc floats) = alpha·op(A)·op(B) + beta·C0 on columns [0, N); columns [N, ldc) keep C0.
// beta == 0 never reads C0 (it may hold NaN).
Doubles sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const Floats& A, int64_t lda,
              const Floats& B, int64_t ldb, double beta, const Floats& C0, int64_t ldc);
Doubles linear_forward(const Floats& inp, const Floats& weight, const Floats* bias, int64_t R, int64_t C, int64_t OC);
struct LinearGrads {
  Doubles dinp;     // (R, C)
  Doubles dweight;  // (OC, C)
  Doubles dbias;    // (OC)
};
LinearGrads linear_backward(const Floats& dout, const Floats& inp, const Floats& weight, int64_t R, int64_t C, int64_t OC);
// out = Linear(GELU(pre)) with act = GELU(pre) given: dinp is dpre = (dout·weight) ⊙ GELU'(pre).
LinearGrads gelu_linear_backward(const Floats& dout, const Floats& act, const Floats& pre, const Floats& weight, int64_t R,
                                 int64_t C, int64_t OC);

// ---- loss.h --------------------------------------------------------------------------------------
struct LossAndGrad {
  double loss;
  Doubles grad;  // dpred / dq
};
LossAndGrad normpix_mse(const Floats& pred, const Floats& target, const Floats& mask, int64_t B, int64_t L, int64_t P,
                        bool norm_pix, double eps, double dloss);
LossAndGrad infonce(const Floats& q, const Floats& k, int64_t B, int64_t E, double tau, double scale, double dloss);
// NT-Xent over R rows (positive of i: (i + R/2) mod R), the full R×R logits with the diagonal
// excluded, and the gradient accumulated through both uses of each row (anchor and candidate).
LossAndGrad ntxent(const Floats& z, int64_t R, int64_t E, double tau, double scale, double dloss);
// Softmax cross-entropy of (B, C) logits against soft targets: the probabilities formed, then
// −Σ t·log p per row, and the gradient by the chain rule through log p_c = l_c − lse.
LossAndGrad softmax_cross_entropy(const Floats& logits, const Floats& targets, int64_t B, int64_t C, double dloss);
// DenseCL's dense InfoNCE (ops/loss.h) by its definition: every row normalised, the pooled keys of
// the other samples as negatives, dq by the chain rule. Taking doubles so that the case file can
// check the gradient against central finite differences of the loss.
LossAndGrad dense_infonce(const Doubles& q, const Doubles& k, const Ints& match, int64_t B, int64_t Lq, int64_t Lk, int64_t E,
                          double tau, double scale, double dloss);

// ---- norm.h --------------------------------------------------------------------------------------
struct Norm {
  Doubles out;
  Doubles mean;
  Doubles rstd;
  Doubles var_unbiased;  // batchnorm only
};
struct NormGrads {
  Doubles dinp;
  Doubles dweight;
  Doubles dbias;
};
Norm layernorm(const Floats& x, const Floats& weight, const Floats& bias, int64_t R, int64_t C, double eps);
NormGrads layernorm_backward(const Floats& dout, const Floats& x, const Floats& weight, int64_t R, int64_t C, double eps);
// weight/bias null: affine=False.
Norm batchnorm(const Floats& x, const Floats* weight, const Floats* bias, int64_t B, int64_t C, double eps);
NormGrads batchnorm_backward(const Floats& dout, const Floats& x, const Floats* weight, int64_t B, int64_t C, double eps);
Doubles batchnorm_inference(const Floats& x, const Floats& running_mean, const Floats& running_var, const Floats* weight,
                            const Floats* bias, int64_t B, int64_t C, double eps);
// PyTorch's running-statistics update r ← (1 − momentum)·r + momentum·stat.
Doubles running_update(const Floats& running, const Doubles& stat, double momentum);

// ---- optim.h -------------------------------------------------------------------------------------
struct AdamW {
  Doubles params;
  Doubles m;
  Doubles v;
};
// torch.optim.AdamW's single-tensor step with the hyper-parameters (and bias corrections) of
// `step`; the gradient is grad_scale·grads; decay_mask null = every element decayed.
AdamW adamw(const Floats& params, const Floats& m, const Floats& v, const Floats& grads, const Floats* decay_mask,
            const AdamWStep& step, double grad_scale);
Doubles ema(const Floats& target, const Floats& online, double momentum);
double global_norm(const Floats& grads);
double clip_coefficient(double norm, double max_norm);  // min(1, max_norm/(norm + 1e-6))

// ---- patch.h -------------------------------------------------------------------------------------
Doubles patchify(const Floats& images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout);
Doubles unpatchify(const Floats& patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout);
// (B, K, P): rows ids[b, k] of sample b's patchify.
Doubles patchify_visible(const Floats& images, const Ints& ids, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, int64_t K,
                         PatchLayout layout);
struct Masking {
  Ints ids_keep;     // (B, K)
  Ints ids_restore;  // (B, L)
  Doubles mask;      // (B, L)
};
Masking random_masking(const Floats& noise, int64_t B, int64_t grid_h, int64_t grid_w, int64_t group, int64_t keep_groups);
// Rows [0, prefix) of every sample come from `out_before` (the op must not touch them).
Doubles gather_visible_forward(const Floats& out_before, const Floats& tokens, const Floats* pos, const Ints& ids_keep, int64_t B,
                               int64_t L, int64_t K, int64_t D, int64_t prefix);
// Rows [0, prefix) of every sample come from `out_before`; tokens (B, K, D); ids unused when pos is null.
Doubles add_positions(const Floats& out_before, const Floats& tokens, const Floats* pos, const Ints& ids, int64_t B, int64_t K,
                      int64_t D, int64_t prefix);
Doubles gather_visible_backward(const Floats& dout, const Ints& ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix);
Doubles unshuffle_forward(const Floats& inp, const Floats& mask_token, const Floats* pos, const Floats* pos_prefix,
                          const Ints& ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix);
struct UnshuffleGrads {
  Doubles dinp;         // (B, prefix + K, D)
  Doubles dmask_token;  // (D)
};
UnshuffleGrads unshuffle_backward(const Floats& dout, const Ints& ids_restore, int64_t B, int64_t L, int64_t K, int64_t D,
                                  int64_t prefix);

// ---- pool.h --------------------------------------------------------------------------------------
Doubles mean_pool(const Floats& inp, int64_t B, int64_t N, int64_t D, int64_t start);
Doubles mean_pool_backward(const Floats& dout, int64_t B, int64_t N, int64_t D, int64_t start);
struct L2Normalize {
  Doubles out;
  Doubles norm;
};
L2Normalize l2_normalize(const Floats& x, int64_t R, int64_t D, double eps);
Doubles l2_normalize_backward(const Floats& dout, const Floats& x, int64_t R, int64_t D, double eps);
// DenseCL's matching (ops/pool.h) with the strides of its contract. `margin` (optional): per query
// row, the gap between the best cosine and the best one that differs from it, so a case can tell
// a designed tie (gap 0 between equal rows) from a near-tie the rounding could flip.
Ints match_tokens(const Floats& a, int64_t a_stride, const Floats& k, int64_t k_stride, int64_t B, int64_t La, int64_t Lk, int64_t D,
                  Doubles* margin = nullptr);

// ---- rows.h --------------------------------------------------------------------------------------
Doubles add(const Floats& dst, const Floats& src);
Doubles column_sums_add(const Floats& dst, const Floats& src, int64_t R, int64_t C, int64_t ld);
Doubles transpose_add(const Floats& dst, const Floats& src, int64_t R, int64_t C);
Doubles broadcast_row(const Floats& dst_before, int64_t ld, const Floats& row, int64_t count, int64_t D);
Doubles scale_rows(const Floats& src, const Floats& scale, int64_t R, int64_t n);

// ---- helpers -------------------------------------------------------------------------------------
Doubles to_doubles(const Floats& x);
Floats to_floats(const Doubles& x);  // rounded to nearest
Doubles plus(const Floats& a, const Doubles& b);  // a + b, element-wise (+= outputs)

}  // namespace cmae::op_tests::ref
