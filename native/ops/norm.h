// Normalisation layers: LayerNorm over the last dim (the ViT blocks, alone or fused with the
// residual add before it) and BatchNorm1d over the batch (the projection/prediction heads).
// PyTorch semantics throughout: biased variance for the normalisation, rstd = 1/sqrt(var + eps)
// saved for backward; the variance is a corrected two-pass one (accurate when |mean| >> std).
//
// Determinism (CPU): every reduction over rows (dweight/dbias of layernorm_backward, the
// per-channel statistics and sums of batchnorm) sums in an order fixed by the row indices alone
// (blocks of 32 rows, then the blocks in index order), so results are bit-identical for any thread
// count.
#pragma once
#include <cstdint>

namespace cmae {

struct NormOps {
  // out = (x − mean)·rstd·weight + bias over the last dim. inp, out: (R, C); weight, bias: (C);
  // mean, rstd: (R) saved for backward. `out` may alias `inp`.
  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                                 int64_t R, int64_t C, float eps) = 0;
  // Residual add fused with the LayerNorm that follows it (pre-norm ViT blocks): sum = a + b (=),
  // out = LayerNorm(sum) with mean, rstd saved, the same row arithmetic as layernorm_forward.
  // sum may alias a or b; out must not alias a, b or sum. a, b, sum, out: (R, C); weight, bias: (C);
  // mean, rstd: (R).
  virtual void residual_layernorm_forward(float* sum, float* out, float* mean, float* rstd, const float* a, const float* b,
                                          const float* weight, const float* bias, int64_t R, int64_t C, float eps) = 0;
  // dinp (R,C): overwritten (=) when accumulate_dinp is false, added to (+=) when true (the residual
  // stream). dweight, dbias (C): accumulated (+=). dout, inp: (R, C); weight: (C); mean, rstd: (R)
  // from layernorm_forward.
  virtual void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                  const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C,
                                  bool accumulate_dinp) = 0;

  // BatchNorm1d in training mode over (B, C): batch mean and biased variance per channel for the
  // normalisation; running_mean/running_var (C, may be null) updated in place as PyTorch does:
  // r = (1−momentum)·r + momentum·stat, with the UNBIASED variance (B/(B−1)) for running_var
  // (B >= 2). weight/bias (C) may be null (affine=False). inp, out: (B, C); mean, rstd (C) saved
  // for backward. `out` may alias `inp`.
  virtual void batchnorm_forward(float* out, float* mean, float* rstd, float* running_mean, float* running_var, const float* inp,
                                 const float* weight, const float* bias, int64_t B, int64_t C, float eps, float momentum) = 0;
  // dinp (B,C) =; dweight, dbias (C) += (may be null when affine=False). dout, inp: (B, C);
  // weight (C) may be null (identity); mean, rstd (C) from batchnorm_forward.
  virtual void batchnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                  const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C) = 0;
  // Inference mode: out = (x − running_mean)/sqrt(running_var + eps)·weight + bias (weight/bias (C)
  // may be null). inp, out: (B, C); running_mean, running_var: (C). `out` may alias `inp`.
  virtual void batchnorm_inference(float* out, const float* inp, const float* running_mean, const float* running_var,
                                   const float* weight, const float* bias, int64_t B, int64_t C, float eps) = 0;

 protected:
  ~NormOps() = default;
};

}  // namespace cmae
