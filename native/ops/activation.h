// Element-wise activations. Forward overwrites `out` (=); backward overwrites `dinp` (=). `out` may
// alias `inp` in forward; `dinp` may alias `dout` in backward. n: element count.
#pragma once
#include <cstdint>

namespace cmae {

struct ActivationOps {
  // out[i] = GELU(inp[i]), exact erf form (core/math.h gelu; spec §1.3). CPU: vectorised to within
  // 1e-7 abs + 3e-7 rel of the float64 value.
  virtual void gelu_forward(float* out, const float* inp, int64_t n) = 0;
  // dinp[i] = dout[i] · GELU'(inp[i]); inp is the forward input.
  virtual void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) = 0;

  // out[i] = max(inp[i], 0)
  virtual void relu_forward(float* out, const float* inp, int64_t n) = 0;
  // dinp[i] = dout[i] if out[i] > 0 else 0. Uses the forward *output* (so the input may be overwritten).
  virtual void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) = 0;

 protected:
  ~ActivationOps() = default;
};

}  // namespace cmae
