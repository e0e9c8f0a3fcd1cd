// rows ops of the CUDA backend (ops/rows.h). Not written yet: each op says so.
#include "cuda_backend.h"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::add_inplace(float* dst, const float* src, int64_t n) {
  fail(ErrorKind::Device, "add_inplace is not implemented on the CUDA backend yet");
}

void CudaBackend::column_sums_add(float* dst, const float* src, int64_t R, int64_t C, int64_t ld) {
  fail(ErrorKind::Device, "column_sums_add is not implemented on the CUDA backend yet");
}

void CudaBackend::transpose_add(float* dst, const float* src, int64_t R, int64_t C) {
  fail(ErrorKind::Device, "transpose_add is not implemented on the CUDA backend yet");
}

void CudaBackend::broadcast_row(float* dst, int64_t ld, const float* row, int64_t count, int64_t D) {
  fail(ErrorKind::Device, "broadcast_row is not implemented on the CUDA backend yet");
}

CMAE_CUDA_NAMESPACE_END
