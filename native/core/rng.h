// Counter-based randomness (native/README.md, principle 4): Philox-4x32-10 (Salmon et al., SC'11, the
// generator behind curand and PyTorch's CUDA RNG). A draw is a pure function of (seed, stream,
// index), so masks, crops and init are identical on CPU and CUDA, for any thread count, and a
// resumed run redraws exactly what the uninterrupted run would have drawn.
//
// Conventions: `seed` is the user's seed; `stream` names what the numbers are for (a RngStream
// value mixed with e.g. the step number: make_stream(RngStream::Mask, step)); `index` is the
// element (e.g. sample·L + patch). Each (seed, stream, index) gives 4 independent 32-bit words.
#pragma once
#include <cmath>
#include <cstdint>
#include "host_device.h"

namespace cmae {

struct Philox4 {
  uint32_t v[4];
};

CMAE_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

// Philox-4x32 with 10 rounds. Counter = (index lo, index hi, stream lo, stream hi), key = seed.
CMAE_HD Philox4 philox4x32(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t c0 = static_cast<uint32_t>(index), c1 = static_cast<uint32_t>(index >> 32);
  uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  Philox4 out;
  out.v[0] = c0; out.v[1] = c1; out.v[2] = c2; out.v[3] = c3;
  return out;
}

// 24 random bits → float in [0, 1) (exactly representable, never 1.0).
CMAE_HD float uint_to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

// One uniform [0,1) float for (seed, stream, index): word 0 of the Philox block.
CMAE_HD float uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  return uint_to_unit_float(philox4x32(seed, stream, index).v[0]);
}

// Standard normal from words 0 and 1 (Box–Muller); uses 1 − u so log() never sees 0.
CMAE_HD float normal01(uint64_t seed, uint64_t stream, uint64_t index) {
  const Philox4 r = philox4x32(seed, stream, index);
  const float u1 = 1.0f - uint_to_unit_float(r.v[0]);
  const float u2 = uint_to_unit_float(r.v[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

// What a stream of numbers is for. The high 16 bits of a stream id hold the purpose, the low 48
// bits a sub-counter such as the training step, so purposes never collide.
enum class RngStream : uint64_t {
  Test = 1,
  Init = 2,
  Mask = 3,
  Augment = 4,
  Shuffle = 5,
  DropPath = 6,
};

CMAE_HD uint64_t make_stream(RngStream purpose, uint64_t counter) {
  return (static_cast<uint64_t>(purpose) << 48) | (counter & 0xFFFFFFFFFFFFull);
}

}  // namespace cmae
