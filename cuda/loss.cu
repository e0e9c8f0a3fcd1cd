// loss ops of the CUDA backend (ops/loss.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::normpix_mse_forward_backward(float* loss, float* dpred, const float* pred, const float* target, const float* mask, int64_t B, int64_t L, int64_t P, bool norm_pix, float eps, float dloss) {
  fail(ErrorKind::Device, "normpix_mse_forward_backward is not implemented on the CUDA backend yet");
}

void CudaBackend::infonce_forward_backward(float* loss, float* dq, const float* q, const float* k, int64_t B, int64_t E, float tau, float scale, float dloss) {
  fail(ErrorKind::Device, "infonce_forward_backward is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
