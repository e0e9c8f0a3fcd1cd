// The fixed-order sum over rows that every CPU reduction across rows uses (bias and norm-weight
// gradients, BatchNorm statistics, the cls-token gradient): rows are summed in blocks of kRowBlock
// consecutive rows, a partial per block, then the blocks in row order. Both sizes are constants,
// never derived from the thread count, so every sum depends on the shape alone; threads split
// channels, never rows.
#pragma once
#include <algorithm>
#include <cstdint>

namespace cmae::cpu {

constexpr int64_t kRowBlock = 32;
// Channels summed together (the width of the partial-sum arrays on the stack).
constexpr int64_t kChannelTile = 64;

// s1[j], s2[j] (j < w <= kChannelTile) = Σ_{r < R} of what add_row(r, b1, b2) adds into b1[j],
// b2[j], in the blocked order above. add_row adds one row's terms (b2 may be ignored).
template <typename AddRow>
void blocked_row_sums(float* s1, float* s2, int64_t R, int64_t w, AddRow&& add_row) {
  float b1[kChannelTile];
  float b2[kChannelTile];
  for (int64_t j = 0; j < w; ++j) s1[j] = s2[j] = 0.0f;
  for (int64_t r0 = 0; r0 < R; r0 += kRowBlock) {
    const int64_t r1 = std::min(r0 + kRowBlock, R);
    for (int64_t j = 0; j < w; ++j) b1[j] = b2[j] = 0.0f;
    for (int64_t r = r0; r < r1; ++r) add_row(r, b1, b2);
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) {
      s1[j] += b1[j];
      s2[j] += b2[j];
    }
  }
}

}  // namespace cmae::cpu
