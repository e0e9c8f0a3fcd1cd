// optim ops of the CUDA backend (ops/optim.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::adamw_step(float* params, float* m, float* v, const float* grads, const float* decay_mask, int64_t n, const AdamWStep& step, const float* grad_scale) {
  fail(ErrorKind::Device, "adamw_step is not implemented on the CUDA backend yet");
}

void CudaBackend::ema_update(float* target, const float* online, int64_t n, float momentum) {
  fail(ErrorKind::Device, "ema_update is not implemented on the CUDA backend yet");
}

void CudaBackend::global_norm(double* norm, const float* grads, int64_t n) {
  fail(ErrorKind::Device, "global_norm is not implemented on the CUDA backend yet");
}

void CudaBackend::clip_coefficient(float* scale, const double* norm, double max_norm) {
  fail(ErrorKind::Device, "clip_coefficient is not implemented on the CUDA backend yet");
}

void CudaBackend::scale_inplace(float* x, int64_t n, float s) {
  fail(ErrorKind::Device, "scale_inplace is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
