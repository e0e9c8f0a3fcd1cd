// Activation ops of the CUDA backend (ops/activation.h): each one element-wise map
// (kernels/activation.cuh), 128-bit accesses when the pointers allow, the per-element math of
// core/math.h (gelu, gelu_grad). No reduction, so nothing depends on the launch.
//
// Expected bound, base preset (ViT-B/16, batch 256), H100/H200 at 4.3 TB/s (memory-bound; the
// erff/expf of GELU are ~30 FP32 instructions per element, far below the 60 TFLOP/s):
//   op              typical call                              bytes moved          time
//   gelu_forward    encoder MLP hidden 12800 x 3072 (39.3 M)  8 B/elt:  315 MB      73 us
//                   pixel decoder hidden 50432 x 2048 (103 M) 8 B/elt:  826 MB     192 us
//   gelu_backward   encoder MLP hidden (39.3 M)               12 B/elt: 472 MB     110 us
//   relu_forward    projector hidden 256 x 1536 (393 K)       8 B/elt:  3.1 MB   ~1 us (launch-bound, ~3 us)
//   relu_backward   projector hidden (393 K)                  12 B/elt: 4.7 MB   ~1 us (launch-bound, ~3 us)
// (The model fuses the MLP GELUs into linear_gelu_forward / gelu_linear_backward; these ops serve
// the bindings and unfused paths.)
#include "cuda_backend.h"
#include "kernels/activation.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

void CudaBackend::gelu_forward(float* out, const float* inp, int64_t n) {
  kernels::launch_map("gelu_forward", kernels::GeluForward{}, out, inp, n, properties_.multiprocessors, stream_);
}

void CudaBackend::gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  kernels::launch_map("gelu_backward", kernels::GeluBackward{}, dinp, dout, inp, n, properties_.multiprocessors, stream_);
}

void CudaBackend::relu_forward(float* out, const float* inp, int64_t n) {
  kernels::launch_map("relu_forward", kernels::ReluForward{}, out, inp, n, properties_.multiprocessors, stream_);
}

void CudaBackend::relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  kernels::launch_map("relu_backward", kernels::ReluBackward{}, dinp, dout, out, n, properties_.multiprocessors, stream_);
}

CMAE_CUDA_NAMESPACE_END
