// Normalisation layers (ops/norm.h): LayerNorm (alone and fused with the residual add before it)
// and BatchNorm1d. One row routine computes every LayerNorm row; reductions over rows follow
// reduce.h.
#include <algorithm>
#include <cmath>

#include "core/threads.h"
#include "cpu/target.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

namespace {

// One LayerNorm row, the arithmetic of every LayerNorm here: y = (x − m)·s·weight + bias with the
// corrected two-pass variance (Σd, the rounding error of m, is zero in exact arithmetic; removing
// it keeps the variance accurate when |mean| >> std). With `b`, x = a + b is formed first (the
// fused residual add, written to x_out); otherwise x = a. A function of its own (not inline in a
// parallel_for lambda) so that GCC vectorises the reductions.
void layernorm_row(float* y, float* x_out, const float* a, const float* b, const float* weight, const float* bias,
                   float* mean, float* rstd, int64_t C, float eps) {
  const float inv_c = 1.0f / static_cast<float>(C);
  float sum = 0.0f;
  const float* x = a;
  if (b) {
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) {
      const float v = a[c] + b[c];
      x_out[c] = v;
      sum += v;
    }
    x = x_out;
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) sum += a[c];
  }
  float m = sum * inv_c;
  float dsum = 0.0f;
  float sq = 0.0f;
#pragma omp simd reduction(+ : dsum, sq)
  for (int64_t c = 0; c < C; ++c) {
    const float d = x[c] - m;
    dsum += d;
    sq += d * d;
  }
  const float var = std::max((sq - dsum * dsum * inv_c) * inv_c, 0.0f);
  m += dsum * inv_c;
  const float s = 1.0f / std::sqrt(var + eps);
  *mean = m;
  *rstd = s;
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - m) * s * weight[c] + bias[c];
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t R, int64_t C, float eps) {
  parallel_for(R, min_items(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      layernorm_row(out + r * C, nullptr, inp + r * C, nullptr, weight, bias, mean + r, rstd + r, C, eps);
  });
}

void residual_layernorm_forward(float* sum, float* out, float* mean, float* rstd, const float* a, const float* b,
                                const float* weight, const float* bias, int64_t R, int64_t C, float eps) {
  parallel_for(R, min_items(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      layernorm_row(out + r * C, sum + r * C, a + r * C, b + r * C, weight, bias, mean + r, rstd + r, C, eps);
  });
}

namespace {

// One block of rows [r0, r1) of layernorm_backward: dinp for those rows, and the block's sums over
// rows of dout·n (into pw) and dout (into pb). A function of its own (not inline in the
// parallel_for lambda) so that GCC vectorises the reductions: through the lambda's by-reference
// captures the row loops stayed scalar.
template <bool kAccumulate>
void layernorm_backward_rows(float* dinp, float* pw, float* pb, const float* dout, const float* inp,
                             const float* weight, const float* mean, const float* rstd, int64_t r0, int64_t r1,
                             int64_t C) {
  const float inv_c = 1.0f / static_cast<float>(C);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) pw[c] = pb[c] = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const float* dy = dout + r * C;
    const float* x = inp + r * C;
    float* dx = dinp + r * C;
    const float m = mean[r];
    const float s = rstd[r];
    // dx = s·(dn − mean(dn) − n·mean(dn·n)) with n = (x − m)·s, dn = weight·dy.
    float sum_dn = 0.0f;
    float sum_dn_n = 0.0f;
#pragma omp simd reduction(+ : sum_dn, sum_dn_n)
    for (int64_t c = 0; c < C; ++c) {
      const float n = (x[c] - m) * s;
      const float dn = weight[c] * dy[c];
      sum_dn += dn;
      sum_dn_n += dn * n;
    }
    const float mean_dn = sum_dn * inv_c;
    const float mean_dn_n = sum_dn_n * inv_c;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float n = (x[c] - m) * s;
      const float g = (weight[c] * dy[c] - mean_dn - n * mean_dn_n) * s;
      if (kAccumulate) {
        dx[c] += g;
      } else {
        dx[c] = g;
      }
      pw[c] += dy[c] * n;
      pb[c] += dy[c];
    }
  }
}

}  // namespace

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C,
                        bool accumulate_dinp) {
  const int64_t nblocks = (R + kRowBlock - 1) / kRowBlock;
  // Per block of rows: the block's contribution to dweight (C floats), then to dbias (C floats).
  const int64_t stride = 2 * C;
  float* partial = scratch<float>(ScratchSlot::Reduction, static_cast<size_t>(nblocks * stride));
  parallel_for(nblocks, min_items(kRowBlock * C), [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      float* pw = partial + blk * stride;
      const int64_t r0 = blk * kRowBlock;
      const int64_t r1 = std::min(r0 + kRowBlock, R);
      if (accumulate_dinp) {
        layernorm_backward_rows<true>(dinp, pw, pw + C, dout, inp, weight, mean, rstd, r0, r1, C);
      } else {
        layernorm_backward_rows<false>(dinp, pw, pw + C, dout, inp, weight, mean, rstd, r0, r1, C);
      }
    }
  });
  // The block partials are rows of `partial`: their column sums, in block order.
  column_sums_add(dweight, partial, nblocks, C, stride);
  column_sums_add(dbias, partial + C, nblocks, C, stride);
}

void batchnorm_forward(float* out, float* mean, float* rstd, float* running_mean, float* running_var, const float* inp,
                       const float* weight, const float* bias, int64_t B, int64_t C, float eps, float momentum) {
  const int64_t ntiles = (C + kChannelTile - 1) / kChannelTile;
  const float inv_b = 1.0f / static_cast<float>(B);
  const float unbias = static_cast<float>(B) / static_cast<float>(B - 1);  // B >= 2 (bindings check)
  parallel_for(ntiles, min_items(B * kChannelTile), [&](int64_t t0, int64_t t1) {
    float s1[kChannelTile];
    float s2[kChannelTile];
    float m[kChannelTile];
    float scale[kChannelTile];
    float shift[kChannelTile];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c0 = t * kChannelTile;
      const int64_t w = std::min(kChannelTile, C - c0);
      const float* x0 = inp + c0;
      // Pass 1: the mean.
      blocked_row_sums(s1, s2, B, w, [&](int64_t r, float* b1, float*) {
        const float* x = x0 + r * C;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) b1[j] += x[j];
      });
      for (int64_t j = 0; j < w; ++j) m[j] = s1[j] * inv_b;
      // Pass 2: the variance about it, corrected as in layernorm_forward.
      blocked_row_sums(s1, s2, B, w, [&](int64_t r, float* b1, float* b2) {
        const float* x = x0 + r * C;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) {
          const float d = x[j] - m[j];
          b1[j] += d;
          b2[j] += d * d;
        }
      });
      for (int64_t j = 0; j < w; ++j) {
        const int64_t c = c0 + j;
        const float var = std::max((s2[j] - s1[j] * s1[j] * inv_b) * inv_b, 0.0f);
        m[j] += s1[j] * inv_b;
        const float s = 1.0f / std::sqrt(var + eps);
        mean[c] = m[j];
        rstd[c] = s;
        if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * m[j];
        if (running_var) running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (var * unbias);
        scale[j] = weight ? s * weight[c] : s;
        shift[j] = bias ? bias[c] : 0.0f;
      }
      // Pass 3: normalise.
      for (int64_t r = 0; r < B; ++r) {
        const float* x = x0 + r * C;
        float* y = out + r * C + c0;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) y[j] = (x[j] - m[j]) * scale[j] + shift[j];
      }
    }
  });
}

void batchnorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t B, int64_t C) {
  const int64_t ntiles = (C + kChannelTile - 1) / kChannelTile;
  const float inv_b = 1.0f / static_cast<float>(B);
  parallel_for(ntiles, min_items(B * kChannelTile), [&](int64_t t0, int64_t t1) {
    float s1[kChannelTile];
    float s2[kChannelTile];
    float k[kChannelTile];
    float a[kChannelTile];
    float g[kChannelTile];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c0 = t * kChannelTile;
      const int64_t w = std::min(kChannelTile, C - c0);
      const float* m = mean + c0;
      const float* s = rstd + c0;
      // Σ dy and Σ dy·n per channel, n = (x − mean)·rstd.
      blocked_row_sums(s1, s2, B, w, [&](int64_t r, float* b1, float* b2) {
        const float* x = inp + r * C + c0;
        const float* dy = dout + r * C + c0;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) {
          b1[j] += dy[j];
          b2[j] += dy[j] * ((x[j] - m[j]) * s[j]);
        }
      });
      for (int64_t j = 0; j < w; ++j) {
        const int64_t c = c0 + j;
        if (dbias) dbias[c] += s1[j];
        if (dweight) dweight[c] += s2[j];
        // dx = weight·rstd·(dy − mean(dy) − n·mean(dy·n))
        k[j] = weight ? weight[c] * s[j] : s[j];
        a[j] = s1[j] * inv_b;
        g[j] = s2[j] * inv_b;
      }
      for (int64_t r = 0; r < B; ++r) {
        const float* x = inp + r * C + c0;
        const float* dy = dout + r * C + c0;
        float* dx = dinp + r * C + c0;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) dx[j] = k[j] * (dy[j] - a[j] - (x[j] - m[j]) * s[j] * g[j]);
      }
    }
  });
}

void batchnorm_inference(float* out, const float* inp, const float* running_mean, const float* running_var,
                         const float* weight, const float* bias, int64_t B, int64_t C, float eps) {
  // Per-channel scale and shift once (C floats each), then one element-wise pass over the rows.
  float* scale = scratch<float>(ScratchSlot::Reduction, static_cast<size_t>(2 * C));
  float* shift = scale + C;
  for (int64_t c = 0; c < C; ++c) {
    const float s = 1.0f / std::sqrt(running_var[c] + eps);
    scale[c] = weight ? s * weight[c] : s;
    shift[c] = bias ? bias[c] : 0.0f;
  }
  parallel_for(B, min_items(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = inp + r * C;
      float* y = out + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - running_mean[c]) * scale[c] + shift[c];
    }
  });
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
