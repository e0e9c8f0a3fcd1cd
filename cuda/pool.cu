// pool ops of the CUDA backend (ops/pool.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::mean_pool_forward(float* out, const float* inp, int64_t B, int64_t N, int64_t D, int64_t start) {
  fail(ErrorKind::Device, "mean_pool_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::mean_pool_backward(float* dinp, const float* dout, int64_t B, int64_t N, int64_t D, int64_t start) {
  fail(ErrorKind::Device, "mean_pool_backward is not implemented on the CUDA backend yet");
}

void CudaBackend::l2_normalize_forward(float* out, float* norm, const float* inp, int64_t R, int64_t D, float eps) {
  fail(ErrorKind::Device, "l2_normalize_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::l2_normalize_backward(float* dinp, const float* dout, const float* inp, const float* norm, int64_t R, int64_t D, float eps) {
  fail(ErrorKind::Device, "l2_normalize_backward is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
