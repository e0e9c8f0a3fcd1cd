// Multi-head self-attention core (ops/attention.h): the instance of one compile target (cpu/target.h)
// and, in the avx2 build, the hand-over to the AVX-512 path. The algorithm is attention_impl.h, on
// the target's 8-lane traits; attention_avx512.cc instantiates it with 16-lane vectors.
#include "core/cpu_features.h"
#include "cpu/attention_impl.h"
#include "cpu/target.h"

namespace cmae::cpu::CMAE_CPU_TARGET {
namespace {  // internal linkage for every instantiation (attention_impl.h, "Linkage")

// attention_impl.h's traits: this target's 8-lane vectors and the micro-tile shape.
struct AttentionVec : Vec {
  static constexpr int kMaxCV = 3;          // vectors of C columns per micro-tile
  static constexpr int kAccumulators = 12;  // accumulator registers per micro-tile (of 16 ymm)
};

}  // namespace

// `saved` holds the softmax probabilities att (B, H, N, N) (AttentionSaved::Probabilities).
void attention_forward(float* out, float* saved, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
#if defined(CMAE_CPU_TARGET_AVX2)
  if (current_isa() == Isa::AVX512) return attention_forward_avx512(out, saved, qkv, B, N, D, H);
#endif
  attention_impl::forward<AttentionVec>(out, saved, qkv, B, N, D, H);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* saved, int64_t B, int64_t N, int64_t D,
                        int64_t H) {
#if defined(CMAE_CPU_TARGET_AVX2)
  if (current_isa() == Isa::AVX512) return attention_backward_avx512(dqkv, dout, qkv, saved, B, N, D, H);
#endif
  attention_impl::backward<AttentionVec>(dqkv, dout, qkv, saved, B, N, D, H);
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
