// Multi-head self-attention core (ops/attention.h): the instance of one compile target (cpu/target.h)
// and, in the avx2 build, the hand-over to the AVX-512 path. The algorithm is attention_impl.h, on
// the target's 8-lane traits; attention_avx512.cc instantiates it with 16-lane vectors.
#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"
#include "core/threads.h"
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

void cls_attention(float* out, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  const int64_t hd = D / H, ld = 3 * D;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));  // timm's head_dim ** -0.5
  // One (b, h) row per item: N·hd multiply-adds each, so rows are spread one at a time.
  parallel_for(B * H, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / H, h = r % H;
      const float* q = qkv + b * N * ld + h * hd;  // the cls token's query
      const auto score = [&](int64_t j) {
        const float* k = qkv + (b * N + j) * ld + D + h * hd;
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s = std::fmaf(q[d], k[d], s);
        return s * scale;
      };
      float* row = out + r * (N - 1);  // the patch keys' scores, then their probabilities
      const float cls = score(0);
      float top = cls;
      for (int64_t j = 1; j < N; ++j) top = std::max(top, row[j - 1] = score(j));
      double sum = std::exp(static_cast<double>(cls - top));
      for (int64_t j = 1; j < N; ++j) sum += std::exp(static_cast<double>(row[j - 1] - top));
      for (int64_t j = 1; j < N; ++j) row[j - 1] = static_cast<float>(std::exp(static_cast<double>(row[j - 1] - top)) / sum);
    }
  });
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
