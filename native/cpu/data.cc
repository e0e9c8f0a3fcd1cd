// The data ops (ops/data.h) of the CPU backend: the host pipeline of data/augment.cc, samples split
// over the compute pool (each sample is produced by one thread, so results do not depend on the
// thread count).
#include "cpu/target.h"
#include "data/augment.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

void make_views(float* online, float* target, int32_t* shifts, const uint8_t* sources, int64_t N_total, int64_t H,
                int64_t W, int64_t C, const int32_t* indices, int64_t B, const AugmentParams& params, uint64_t seed,
                uint64_t stream) {
  data::make_views(online, target, shifts, sources, N_total, H, W, C, indices, B, params, seed, stream, /*parallel=*/true);
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
