// Multi-head self-attention core of a timm ViT block: what sits between the fused qkv Linear and
// the output projection (no dropout, no mask). Forward overwrites `out` and `saved` (=); backward
// overwrites `dqkv` (=). No pointer may alias another.
#pragma once
#include <cstdint>

namespace cmae {

// What attention_forward saves for attention_backward, the backend's choice:
//   Probabilities: att (B, H, N, N), att[b,h,i,j] = softmax_j(q_i·k_j · hd^-0.5) (the CPU);
//   LogSumExp:     L (B, H, N), L[b,h,i] = m_i + log Σ_j e^(s_ij − m_i), s_ij = q_i·k_j · hd^-0.5, m_i =
//                  max_j s_ij, from which backward recomputes the probabilities (FlashAttention;
//                  the CUDA backend).
enum class AttentionSaved : int { Probabilities = 0, LogSumExp = 1 };

struct AttentionOps {
  virtual AttentionSaved attention_saved_kind() const = 0;
  // Floats of the saved state for B samples of N tokens and H heads: B·H·N·N or B·H·N.
  int64_t attention_saved_floats(int64_t B, int64_t N, int64_t H) const {
    return attention_saved_kind() == AttentionSaved::Probabilities ? B * H * N * N : B * H * N;
  }

  // qkv: (B, N, 3D), the output of timm's fused qkv Linear. Layout = timm's reshape(B, N, 3, H, hd):
  //   q[b,h,n,:] = qkv[b, n, 0*D + h*hd : 0*D + (h+1)*hd], k at offset 1*D, v at offset 2*D; hd = D/H.
  // out: (B, N, D) = softmax(q·kᵀ·hd^-0.5) @ v with heads concatenated: out[b, n, h*hd:(h+1)*hd]
  //   (timm's transpose(1,2).reshape).
  // saved: attention_saved_floats(B, N, H) floats, of attention_saved_kind().
  // The softmax subtracts the row max; probabilities below e^-80 times the row's largest are flushed
  // to exactly 0 (they would be < 2e-35 and only feed denormals into the products).
  // CPU: work is split over the B·H (b, h) pairs, each computed by one thread with a fixed
  // summation order, so the results do not depend on the thread count.
  virtual void attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) = 0;
  // dqkv (B, N, 3D) (=). dout: (B, N, D) gradient of `out`; qkv and saved as given to / written by
  // attention_forward.
  virtual void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N,
                                  int64_t D, int64_t H) = 0;
  // The cls query's attention over the patch keys, per head (AMT's masking map): out (B, H, N − 1),
  //   out[b, h, j − 1] = softmax_j(q_0·k_j · hd^-0.5) for j in [1, N),
  // the softmax over all N keys (the cls key included, as the block computes it; no flush rule).
  // qkv as attention_forward's, token 0 the cls token; N ≥ 2. Each (b, h) row is computed with a
  // fixed summation order (scores as one fmaf chain over d, the exp sum in double), so results do
  // not depend on the thread count.
  virtual void cls_attention(float* out, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) = 0;

 protected:
  ~AttentionOps() = default;
};

}  // namespace cmae
