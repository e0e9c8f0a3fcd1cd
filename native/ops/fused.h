// Fused / vectorised element-wise passes used by the model's hot loops (the ViT blocks), so that
// activations make fewer trips through memory. CPU only for now (a CUDA twin would use the same
// names and arguments plus a trailing stream). Outputs are overwritten (=) unless said otherwise.
//
// Determinism: every output element is computed by exactly one thread with the same instruction
// sequence wherever it sits (tails run the same vector code on a padded copy), so results are
// bit-identical for any thread count. GELU has an AVX2 and an AVX-512 variant (fused_avx512.cc,
// dispatched on current_isa()): same formulas, results equal to rounding, not bit-identical.
#pragma once
#include <cstdint>

namespace cmae::cpu {


// Residual add fused with the LayerNorm that follows it (pre-norm ViT blocks):
//   sum = a + b (=), out = LayerNorm(sum) with mean, rstd saved — the per-row arithmetic of
//   layernorm_forward (norm.h): corrected two-pass variance, biased, rstd = 1/sqrt(var + eps).
// sum may alias a or b; out must not alias a, b or sum. a, b, sum, out: (R, C); weight, bias: (C); mean, rstd: (R).
void residual_layernorm_forward(float* sum, float* out, float* mean, float* rstd, const float* a, const float* b,
                                const float* weight, const float* bias, int64_t R, int64_t C, float eps);

}  // namespace cmae::cpu
