// Multi-head self-attention core of a timm ViT block: what sits between the fused qkv Linear and
// the output projection (no dropout, no mask). Contract shared by cmae::cpu and cmae::cuda (same
// names, same arguments; CUDA adds a trailing stream). Forward overwrites `out` and `att` (=);
// backward overwrites `dqkv` (=). No pointer may alias another.
//
// Work is split over the B·H (b, h) pairs, each computed by one thread with a fixed summation order,
// so the results do not depend on the thread count. Scratch (K^T/V copies, one score block; in
// backward N·round_up(N) floats of dscores) is thread-local and reused: no allocation once warm.
#pragma once
#include <cstdint>

namespace cmae::cpu {

// qkv: (B, N, 3D), the output of timm's fused qkv Linear. Layout = timm's reshape(B, N, 3, H, hd):
//   q[b,h,n,:] = qkv[b, n, 0*D + h*hd : 0*D + (h+1)*hd], k at offset 1*D, v at offset 2*D; hd = D/H.
// att: (B, H, N, N) softmax probabilities, saved for backward: att[b,h,i,j] = softmax_j(q_i·k_j * hd^-0.5).
// out: (B, N, D) = (att @ v) with heads concatenated: out[b, n, h*hd:(h+1)*hd] (timm's transpose(1,2).reshape).
// The softmax subtracts the row max; probabilities below e^-80 times the row's largest are flushed to
// exactly 0 (they would be < 2e-35 and only feed denormals into the products).
void attention_forward(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H);
// dqkv (B, N, 3D): overwritten (=). Uses the saved att; no other scratch visible to the caller.
// dout: (B, N, D) gradient of `out`; qkv and att as given to / returned by attention_forward.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N, int64_t D, int64_t H);

}  // namespace cmae::cpu
