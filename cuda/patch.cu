// patch ops of the CUDA backend (ops/patch.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::patchify(float* patches, const float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout) {
  fail(ErrorKind::Device, "patchify is not implemented on the CUDA backend yet");
}

void CudaBackend::unpatchify(float* images, const float* patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout) {
  fail(ErrorKind::Device, "unpatchify is not implemented on the CUDA backend yet");
}

void CudaBackend::random_masking(int32_t* ids_keep, int32_t* ids_restore, float* mask, const float* noise, int64_t B, int64_t grid_h, int64_t grid_w, int64_t group, int64_t keep_groups) {
  fail(ErrorKind::Device, "random_masking is not implemented on the CUDA backend yet");
}

void CudaBackend::masking_noise(float* noise, int64_t B, int64_t G, uint64_t seed, uint64_t stream) {
  fail(ErrorKind::Device, "masking_noise is not implemented on the CUDA backend yet");
}

void CudaBackend::gather_visible_forward(float* out, const float* tokens, const float* pos, const int32_t* ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  fail(ErrorKind::Device, "gather_visible_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::gather_visible_backward(float* dtokens, const float* dout, const int32_t* ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  fail(ErrorKind::Device, "gather_visible_backward is not implemented on the CUDA backend yet");
}

void CudaBackend::unshuffle_forward(float* out, const float* inp, const float* mask_token, const float* pos, const float* pos_prefix, const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  fail(ErrorKind::Device, "unshuffle_forward is not implemented on the CUDA backend yet");
}

void CudaBackend::unshuffle_backward(float* dinp, float* dmask_token, const float* dout, const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  fail(ErrorKind::Device, "unshuffle_backward is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
