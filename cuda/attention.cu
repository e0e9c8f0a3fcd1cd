// attention ops of the CUDA backend (ops/attention.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

int64_t CudaBackend::attention_saved_floats(int64_t B, int64_t N, int64_t H) const {
  fail(ErrorKind::Device, "attention_saved_floats is not implemented on the CUDA backend yet");
}

void CudaBackend::attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  fail(ErrorKind::Device, "attention_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N, int64_t D, int64_t H) {
  fail(ErrorKind::Device, "attention_backward is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
