// Row and reduction helpers around the model's layers: the small steps between the big ops
// (residual adds, cls-token rows, bias sums, a transposed gradient) that used to be host loops in
// the model. Dimension letters as elsewhere; `ld` is a row stride in floats.
#pragma once
#include <cstdint>

namespace cmae {

struct RowOps {
  // dst[i] += src[i] over n elements.
  virtual void add_inplace(float* dst, const float* src, int64_t n) = 0;

  // dst[c] += Σ_r src[r·ld + c] over rows r < R, for c < C (ld >= C): bias gradients (ld = C) and
  // the cls-token gradient (the cls rows of a (B, N, D) buffer: ld = N·D). Rows are summed in fixed
  // blocks of 32 (a partial sum per block, then the blocks in row order), so the sum depends on the
  // shape alone, never on the thread count.
  virtual void column_sums_add(float* dst, const float* src, int64_t R, int64_t C, int64_t ld) = 0;

  // dst (C, R) += srcᵀ, src (R, C): dst[c·R + r] += src[r·C + c].
  virtual void transpose_add(float* dst, const float* src, int64_t R, int64_t C) = 0;

  // dst[i·ld + d] = row[d] for i < count, d < D: the cls row of every sample.
  virtual void broadcast_row(float* dst, int64_t ld, const float* row, int64_t count, int64_t D) = 0;

  // dst[r·n + i] = scale[r] · src[r·n + i] for r < R, i < n (=); dst may alias src; scale (R) in this
  // backend's memory. Drop path's per-sample factor on a residual branch (0, or 1/keep_prob).
  virtual void scale_rows(float* dst, const float* src, const float* scale, int64_t R, int64_t n) = 0;

  // index (1, =): the smallest i < n with x[i] NaN or ±Inf, or −1 when every element is finite; the
  // cheap scan that lets the model refuse non-finite images with the first bad index. n < 2³¹.
  virtual void first_nonfinite(int32_t* index, const float* x, int64_t n) = 0;

 protected:
  ~RowOps() = default;
};

}  // namespace cmae
