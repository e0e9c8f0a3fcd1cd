// Element-wise activations. Contract shared by cmae::cpu and cmae::cuda (same names, same
// arguments; CUDA adds a trailing stream). Forward overwrites `out` (=); backward overwrites `dinp`
// (=). `out` may alias `inp` in forward; `dinp` may alias `dout` in backward.
#pragma once
#include <cstdint>

namespace cmae::cpu {

// out[i] = GELU(inp[i]), exact erf form, vectorised (AVX2/AVX-512) to within 1e-7 abs + 3e-7 rel of
// the float64 value. Implemented in cpu/fused.cc, which shares its vector exp/erf with the fused
// kernels; math.h gelu() is the scalar form for the CUDA backend. inp, out: (n)
void gelu_forward(float* out, const float* inp, int64_t n);
// dinp[i] = dout[i] * GELU'(inp[i]). inp is the forward input.
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n);

// out[i] = max(inp[i], 0)
void relu_forward(float* out, const float* inp, int64_t n);
// dinp[i] = dout[i] if out[i] > 0 else 0. Uses the forward *output* (so the input may be overwritten).
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n);

}  // namespace cmae::cpu
