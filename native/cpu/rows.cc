// Row and reduction helpers (ops/rows.h).
#include <algorithm>
#include <atomic>

#include "core/threads.h"
#include "cpu/target.h"
#include "cpu/reduce.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

void add_inplace(float* dst, const float* src, int64_t n) {
  parallel_for(n, kMinElementsPerThread, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
  });
}

void column_sums_add(float* dst, const float* src, int64_t R, int64_t C, int64_t ld) {
  // Threads take column ranges; each column is summed by one thread in the order of reduce.h.
  const int64_t min_cols = std::max<int64_t>(16, kMinElementsPerThread / std::max<int64_t>(R, 1));
  parallel_for(C, min_cols, [&](int64_t c_begin, int64_t c_end) {
    float s1[kChannelTile];
    float unused[kChannelTile];
    for (int64_t c0 = c_begin; c0 < c_end; c0 += kChannelTile) {
      const int64_t w = std::min(kChannelTile, c_end - c0);
      blocked_row_sums(s1, unused, R, w, [&](int64_t r, float* b1, float*) {
        const float* row = src + r * ld + c0;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) b1[j] += row[j];
      });
      for (int64_t j = 0; j < w; ++j) dst[c0 + j] += s1[j];
    }
  });
}

void transpose_add(float* dst, const float* src, int64_t R, int64_t C) {
  // Threads take rows of dst (columns of src).
  parallel_for(C, std::max<int64_t>(1, kMinElementsPerThread / std::max<int64_t>(R, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* d = dst + c * R;
      for (int64_t r = 0; r < R; ++r) d[r] += src[r * C + c];
    }
  });
}

void broadcast_row(float* dst, int64_t ld, const float* row, int64_t count, int64_t D) {
  for (int64_t i = 0; i < count; ++i) std::copy(row, row + D, dst + i * ld);
}

void scale_rows(float* dst, const float* src, const float* scale, int64_t R, int64_t n) {
  // Threads take element ranges of the whole (R, n) block, each walking the rows its range meets.
  parallel_for(R * n, kMinElementsPerThread, [&](int64_t i0, int64_t i1) {
    for (int64_t r = i0 / n; r * n < i1; ++r) {
      const float s = scale[r];
      const int64_t begin = std::max(i0, r * n), end = std::min(i1, (r + 1) * n);
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) dst[i] = s * src[i];
    }
  });
}

void first_nonfinite(int32_t* index, const float* x, int64_t n) {
  // Each thread scans its range up to its first bad element; the smallest wins. x − x is 0 for a
  // finite x and NaN for NaN and ±Inf: one vectorisable test per element.
  std::atomic<int64_t> first{n};
  parallel_for(n, kMinElementsPerThread, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1 && i < first.load(std::memory_order_relaxed); ++i) {
      if (!(x[i] - x[i] == 0.0f)) {
        int64_t seen = first.load(std::memory_order_relaxed);
        while (i < seen && !first.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
        }
        return;
      }
    }
  });
  const int64_t f = first.load();
  *index = f == n ? -1 : static_cast<int32_t>(f);
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
