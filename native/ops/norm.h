// Normalisation layers: LayerNorm over the last dim (the ViT blocks) and BatchNorm1d over the batch
// (the projection/prediction heads). Contract shared by cmae::cpu and cmae::cuda (same names, same
// arguments; CUDA adds a trailing stream). PyTorch semantics throughout: biased variance for the
// normalisation, rstd = 1/sqrt(var + eps) saved for backward.
//
// Determinism: every reduction over rows (dweight/dbias of layernorm_backward, the per-channel
// statistics and sums of batchnorm) sums in an order fixed by the row indices alone (blocks of
// 32 rows, then the blocks in index order), so results are bit-identical for any thread count.
// Scratch: layernorm_backward and batchnorm_inference reuse a thread-local buffer of the calling
// thread (grown on first use, no allocation once warm). Nothing else allocates.
#pragma once
#include <cstdint>

namespace cmae::cpu {

// LayerNorm over the last dim (PyTorch semantics, biased variance): out = (x-mean)*rstd*weight + bias.
// inp, out: (R, C); weight, bias: (C); mean, rstd: (R) saved for backward (rstd = 1/sqrt(var + eps)).
// `out` may alias `inp`.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t R, int64_t C, float eps);
// dinp (R,C): overwritten (=) when accumulate_dinp is false, added to (+=) when true (the residual
// stream case). dweight, dbias (C): accumulated (+=); the sums over rows do not depend on the thread
// count. dout, inp: (R, C); weight: (C); mean, rstd: (R) from layernorm_forward.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C,
                        bool accumulate_dinp);

// BatchNorm1d in training mode over (B, C): batch mean and biased variance per channel for
// normalisation; running_mean/running_var (C, may be null) updated in place as PyTorch does:
// r = (1-momentum)*r + momentum*stat, with the UNBIASED variance (B/(B-1)) for running_var (B >= 2;
// the bindings reject B < 2 as PyTorch does). weight/bias (C) may be null (affine=False: identity
// scale/shift). inp, out: (B, C); mean, rstd (C) saved for backward. `out` may alias `inp`.
void batchnorm_forward(float* out, float* mean, float* rstd, float* running_mean, float* running_var,
                       const float* inp, const float* weight, const float* bias, int64_t B, int64_t C,
                       float eps, float momentum);
// dinp (B,C) =; dweight, dbias (C) += (may be null when affine=False). dout, inp: (B, C);
// weight (C) may be null (identity); mean, rstd (C) from batchnorm_forward.
void batchnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C);
// Inference mode: out = (x - running_mean)/sqrt(running_var + eps)*weight + bias (weight/bias (C)
// may be null). inp, out: (B, C); running_mean, running_var: (C). `out` may alias `inp`.
void batchnorm_inference(float* out, const float* inp, const float* running_mean, const float* running_var,
                         const float* weight, const float* bias, int64_t B, int64_t C, float eps);

}  // namespace cmae::cpu
