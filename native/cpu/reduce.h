// The fixed-order sums of the CPU kernels, so that every result depends on the shape alone, never
// on the thread count:
//  - blocked_row_sums, every reduction across rows (bias and norm-weight gradients, BatchNorm
//    statistics, the cls-token gradient): rows summed in blocks of kRowBlock consecutive rows, a
//    partial per block, then the blocks in row order; threads split channels, never rows;
//  - lane_sum, every double-precision sum along a row (losses, norms, dot products).
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

// Σ_{i<n} term(i) in double with four interleaved accumulators (lane = i mod 4, combined as
// (a0 + a1) + (a2 + a3), then the tail in order): a fixed order that breaks the add latency chain.
template <typename Term>
inline double lane_sum(int64_t n, Term&& term) {
  double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += term(i);
    a1 += term(i + 1);
    a2 += term(i + 2);
    a3 += term(i + 3);
  }
  double s = (a0 + a1) + (a2 + a3);
  for (; i < n; ++i) s += term(i);
  return s;
}

inline double dot_f64(const float* a, const float* b, int64_t n) {
  return lane_sum(n, [&](int64_t i) { return static_cast<double>(a[i]) * b[i]; });
}

inline double sum_squares(const float* x, int64_t n) { return dot_f64(x, x, n); }

}  // namespace cmae::cpu
