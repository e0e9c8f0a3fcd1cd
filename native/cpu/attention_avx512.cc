// Multi-head self-attention core (ops/attention.h), AVX-512 path: attention_impl.h on the 16-lane
// traits of cpu/vec_avx512.h (24 accumulators per micro-tile), and the two entry points that
// instantiate it. Compiled with -mavx512f/bw/dq/vl and only called after current_isa() said the
// CPU has them.
#include "cpu/attention_impl.h"
#include "cpu/vec_avx512.h"

namespace cmae::cpu {
namespace avx512_impl {
namespace {  // internal linkage for every instantiation (attention_impl.h, "Linkage")

// attention_impl.h's traits: AVX-512 vectors and the micro-tile shape.
struct Vec : avx512::Vec {
  static constexpr int kMaxCV = 4;          // vectors of C columns per micro-tile
  static constexpr int kAccumulators = 24;  // accumulator registers per micro-tile (of 32 zmm)
};

}  // namespace
}  // namespace avx512_impl

void attention_forward_avx512(float* out, float* att, const float* qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  attention_impl::forward<avx512_impl::Vec>(out, att, qkv, B, N, D, H);
}

void attention_backward_avx512(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t N,
                               int64_t D, int64_t H) {
  attention_impl::backward<avx512_impl::Vec>(dqkv, dout, qkv, att, B, N, D, H);
}

}  // namespace cmae::cpu
