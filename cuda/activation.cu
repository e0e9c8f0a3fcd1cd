// activation ops of the CUDA backend (ops/activation.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::gelu_forward(float* out, const float* inp, int64_t n) {
  fail(ErrorKind::Device, "gelu_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  fail(ErrorKind::Device, "gelu_backward is not implemented on the CUDA backend yet");
}

void CudaBackend::relu_forward(float* out, const float* inp, int64_t n) {
  fail(ErrorKind::Device, "relu_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  fail(ErrorKind::Device, "relu_backward is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
