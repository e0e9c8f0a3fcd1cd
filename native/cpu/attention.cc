// Multi-head self-attention core (ops/attention.h): the AVX2 instance and the ISA dispatch. The
// algorithm is attention_impl.h, on the 8-lane traits of cpu/vec_avx2.h; attention_avx512.cc
// instantiates it with 16-lane vectors.
#include "core/cpu_features.h"
#include "cpu/attention_impl.h"
#include "cpu/cpu_backend.h"
#include "cpu/vec_avx2.h"

namespace cmae::cpu {
namespace avx2_impl {
namespace {  // internal linkage for every instantiation (attention_impl.h, "Linkage")

// attention_impl.h's traits: AVX2 + FMA vectors and the micro-tile shape.
struct Vec : avx2::Vec {
  static constexpr int kMaxCV = 3;          // vectors of C columns per micro-tile
  static constexpr int kAccumulators = 12;  // accumulator registers per micro-tile (of 16 ymm)
};

}  // namespace
}  // namespace avx2_impl

// `saved` holds the softmax probabilities att (B, H, N, N) (AttentionSaved::Probabilities).
void CpuBackend::attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  if (current_isa() == Isa::AVX512) return attention_forward_avx512(out, saved, qkv, B, N, D, H);
  attention_impl::forward<avx2_impl::Vec>(out, saved, qkv, B, N, D, H);
}

void CpuBackend::attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N,
                                    int64_t D, int64_t H) {
  if (current_isa() == Isa::AVX512) return attention_backward_avx512(dqkv, dout, qkv, saved, B, N, D, H);
  attention_impl::backward<avx2_impl::Vec>(dqkv, dout, qkv, saved, B, N, D, H);
}

}  // namespace cmae::cpu
