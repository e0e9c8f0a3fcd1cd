// norm ops of the CUDA backend (ops/norm.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, float eps) {
  fail(ErrorKind::Device, "layernorm_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::residual_layernorm_forward(float* sum, float* out, float* mean, float* rstd, const float* a, const float* b, const float* weight, const float* bias, int64_t R, int64_t C, float eps) {
  fail(ErrorKind::Device, "residual_layernorm_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C, bool accumulate_dinp) {
  fail(ErrorKind::Device, "layernorm_backward is not implemented on the CUDA backend yet");
}

void CudaBackend::batchnorm_forward(float* out, float* mean, float* rstd, float* running_mean, float* running_var, const float* inp, const float* weight, const float* bias, int64_t B, int64_t C, float eps, float momentum) {
  fail(ErrorKind::Device, "batchnorm_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::batchnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C) {
  fail(ErrorKind::Device, "batchnorm_backward is not implemented on the CUDA backend yet");
}

void CudaBackend::batchnorm_inference(float* out, const float* inp, const float* running_mean, const float* running_var, const float* weight, const float* bias, int64_t B, int64_t C, float eps) {
  fail(ErrorKind::Device, "batchnorm_inference is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
