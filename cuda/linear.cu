// linear ops of the CUDA backend (ops/linear.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  fail(ErrorKind::Device, "sgemm is not implemented on the CUDA backend yet");
}

void CudaBackend::linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, int64_t OC) {
  fail(ErrorKind::Device, "linear_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::linear_gelu_forward(float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C, int64_t OC) {
  fail(ErrorKind::Device, "linear_gelu_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::gelu_linear_backward(float* dpre, float* dweight, float* dbias, const float* dout, const float* act, const float* pre, const float* weight, int64_t R, int64_t C, int64_t OC) {
  fail(ErrorKind::Device, "gelu_linear_backward is not implemented on the CUDA backend yet");
}

void CudaBackend::linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t R, int64_t C, int64_t OC) {
  fail(ErrorKind::Device, "linear_backward is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
