// Patches, masking and the token shuffles (ops/patch.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "core/threads.h"
#include "cpu/target.h"
#include "cpu/scratch.h"

namespace cmae::cpu::CMAE_CPU_TARGET {

// One patch (b, h, w) ↔ its patch vector: the image side is read/written p contiguous pixels at
// a time; Forward = true copies image → patch. images_b is sample b's first pixel.
template <bool Forward>
static void copy_patch(float* patch, float* images_b, int64_t h, int64_t w, int64_t C, int64_t Hh, int64_t W, int64_t p,
                       PatchLayout layout) {
  if (layout == PatchLayout::ChannelsFirst) {
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t py = 0; py < p; ++py) {
        float* pixels = images_b + (c * Hh + h * p + py) * W + w * p;
        float* q = patch + (c * p + py) * p;
        if (Forward) std::memcpy(q, pixels, sizeof(float) * p);
        else std::memcpy(pixels, q, sizeof(float) * p);
      }
    }
  } else {
    // (py, px, c): the patch side is walked contiguously, the C image planes in step.
    for (int64_t py = 0; py < p; ++py) {
      float* pixels = images_b + (h * p + py) * W + w * p;  // channel 0; plane stride Hh*W
      float* q = patch + py * p * C;
      for (int64_t px = 0; px < p; ++px) {
        for (int64_t c = 0; c < C; ++c) {
          if (Forward) q[px * C + c] = pixels[c * Hh * W + px];
          else pixels[c * Hh * W + px] = q[px * C + c];
        }
      }
    }
  }
}

// patchify and unpatchify: one task per row of patches (b, h).
template <bool Forward>
static void patch_copy(float* patches, float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout) {
  const int64_t hg = Hh / p, wg = W / p, L = hg * wg, P = p * p * C;
  parallel_for(B * hg, min_items(W * p * C), [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / hg, h = bh % hg;
      for (int64_t w = 0; w < wg; ++w)
        copy_patch<Forward>(patches + (b * L + h * wg + w) * P, images + b * C * Hh * W, h, w, C, Hh, W, p, layout);
    }
  });
}

void patchify(float* patches, const float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout) {
  patch_copy<true>(patches, const_cast<float*>(images), B, C, Hh, W, p, layout);
}

void unpatchify(float* images, const float* patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout) {
  patch_copy<false>(const_cast<float*>(patches), images, B, C, Hh, W, p, layout);
}

void patchify_visible(float* patches, const float* images, const int32_t* ids, int64_t B, int64_t C, int64_t Hh,
                      int64_t W, int64_t p, int64_t K, PatchLayout layout) {
  const int64_t wg = W / p, P = p * p * C;
  // One task per listed patch (b, k): only those patches of the images are read.
  parallel_for(B * K, min_items(P), [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / K, l = ids[bk];
      copy_patch<true>(patches + bk * P, const_cast<float*>(images) + b * C * Hh * W, l / wg, l % wg, C, Hh, W, p, layout);
    }
  });
}

void random_masking(int32_t* ids_keep, int32_t* ids_restore, float* mask, const float* noise, int64_t B, int64_t grid_h,
                    int64_t grid_w, int64_t group, int64_t keep_groups) {
  const int64_t gw = grid_w / group, G = (grid_h / group) * gw, L = grid_h * grid_w;
  const int64_t K = keep_groups * group * group;
  const PerThreadScratch<int32_t> orders(ScratchSlot::Masking, static_cast<size_t>(G));
  // A few samples per thread: each sample is a sort of G floats plus two passes over L.
  parallel_for(B, 4, [&](int64_t begin, int64_t end) {
    int32_t* order = orders.thread_slice();
    for (int64_t b = begin; b < end; ++b) {
      const float* nz = noise + b * G;
      for (int64_t g = 0; g < G; ++g) order[g] = static_cast<int32_t>(g);
      // Strict total order: numbers ascending, then NaN; ties by group index.
      auto less = [nz](int32_t a, int32_t c) {
        const bool na = std::isnan(nz[a]), nc = std::isnan(nz[c]);
        if (na != nc) return nc;
        if (!na && nz[a] != nz[c]) return nz[a] < nz[c];
        return a < c;
      };
      if (keep_groups > 0 && keep_groups < G) std::nth_element(order, order + (keep_groups - 1), order + G, less);
      // The first keep_groups entries are now the kept groups (in any order): flag them via mask.
      float* m = mask + b * L;
      std::fill(m, m + L, 1.0f);
      for (int64_t i = 0; i < keep_groups; ++i) {
        const int64_t g = order[i], r0 = (g / gw) * group, c0 = (g % gw) * group;
        for (int64_t r = r0; r < r0 + group; ++r)
          for (int64_t c = c0; c < c0 + group; ++c) m[r * grid_w + c] = 0.0f;
      }
      int32_t* keep = ids_keep + b * K;
      int32_t* restore = ids_restore + b * L;
      int32_t next_kept = 0, next_masked = static_cast<int32_t>(K);
      for (int64_t l = 0; l < L; ++l) {
        if (m[l] == 0.0f) {
          keep[next_kept] = static_cast<int32_t>(l);
          restore[l] = next_kept++;
        } else {
          restore[l] = next_masked++;
        }
      }
    }
  });
}

void masking_noise(float* noise, int64_t B, int64_t G, uint64_t seed, uint64_t stream) {
  // One Philox block (10 rounds) per element: ~1k elements already pay for a thread.
  parallel_for(B * G, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) noise[i] = uniform01(seed, stream, static_cast<uint64_t>(i));
  });
}

// gather_visible_forward (kGather: token row ids[b, k] of (B, L, D) tokens) and add_positions
// (token row k of (B, K, D) tokens): out[b, prefix + k] = that row + pos[ids[b, k]], one float add.
template <bool kGather>
static void visible_rows_plus_positions(float* out, const float* tokens, const float* pos, const int32_t* ids, int64_t B,
                                        int64_t L, int64_t K, int64_t D, int64_t prefix) {
  parallel_for(B * K, min_items(D), [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / K, k = bk % K;
      float* o = out + (b * (prefix + K) + prefix + k) * D;
      const float* t = tokens + (kGather ? b * L + ids[bk] : bk) * D;
      if (pos) {
        const float* e = pos + static_cast<int64_t>(ids[bk]) * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] = t[d] + e[d];
      } else {
        std::memcpy(o, t, sizeof(float) * D);
      }
    }
  });
}

void gather_visible_forward(float* out, const float* tokens, const float* pos, const int32_t* ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  visible_rows_plus_positions<true>(out, tokens, pos, ids_keep, B, L, K, D, prefix);
}

void add_positions(float* out, const float* tokens, const float* pos, const int32_t* ids, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  visible_rows_plus_positions<false>(out, tokens, pos, ids, B, L, K, D, prefix);
}

void gather_visible_backward(float* dtokens, const float* dout, const int32_t* ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  // One sample per task: zero its L rows, then add its K rows in k order (repeated ids add up).
  parallel_for(B, min_items(L * D), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* dt = dtokens + b * L * D;
      std::fill(dt, dt + L * D, 0.0f);
      for (int64_t k = 0; k < K; ++k) {
        float* o = dt + static_cast<int64_t>(ids_keep[b * K + k]) * D;
        const float* g = dout + (b * (prefix + K) + prefix + k) * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] += g[d];
      }
    }
  });
}

void unshuffle_forward(float* out, const float* inp, const float* mask_token, const float* pos, const float* pos_prefix, const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  const int64_t rows = prefix + L;
  parallel_for(B * rows, min_items(D), [&](int64_t begin, int64_t end) {
    for (int64_t bn = begin; bn < end; ++bn) {
      const int64_t b = bn / rows, n = bn % rows;
      float* o = out + bn * D;
      const float* src;
      const float* e;
      if (n < prefix) {
        src = inp + (b * (prefix + K) + n) * D;
        e = pos_prefix ? pos_prefix + n * D : nullptr;
      } else {
        const int64_t l = n - prefix, r = ids_restore[b * L + l];
        src = r < K ? inp + (b * (prefix + K) + prefix + r) * D : mask_token;
        e = pos ? pos + l * D : nullptr;
      }
      if (e) {
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] = src[d] + e[d];
      } else {
        std::memcpy(o, src, sizeof(float) * D);
      }
    }
  });
}

// dmask_token columns per block: a block's double accumulators live on the stack.
constexpr int64_t kMaskTokenBlock = 64;

void unshuffle_backward(float* dinp, float* dmask_token, const float* dout, const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  const int64_t in_rows = prefix + K, out_rows = prefix + L;
  // dinp: one sample per task; prefix rows copied, visible rows zeroed then summed in l order.
  parallel_for(B, min_items(out_rows * D), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* di = dinp + b * in_rows * D;
      const float* g = dout + b * out_rows * D;
      std::memcpy(di, g, sizeof(float) * prefix * D);
      std::fill(di + prefix * D, di + in_rows * D, 0.0f);
      for (int64_t l = 0; l < L; ++l) {
        const int64_t r = ids_restore[b * L + l];
        if (r >= K) continue;
        float* o = di + (prefix + r) * D;
        const float* s = g + (prefix + l) * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] += s[d];
      }
    }
  });
  // dmask_token: split over columns, so every column is summed by one thread in the same order
  // (b-major, l ascending) whatever the thread count; double accumulators keep B·L-long sums exact
  // to float precision.
  const int64_t blocks = (D + kMaskTokenBlock - 1) / kMaskTokenBlock;
  parallel_for(blocks, min_items(B * L * kMaskTokenBlock), [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t d0 = blk * kMaskTokenBlock, width = std::min(kMaskTokenBlock, D - d0);
      double acc[kMaskTokenBlock] = {};
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t l = 0; l < L; ++l) {
          if (ids_restore[b * L + l] < K) continue;
          const float* s = dout + (b * out_rows + prefix + l) * D + d0;
#pragma omp simd
          for (int64_t j = 0; j < width; ++j) acc[j] += s[j];
        }
      }
      for (int64_t j = 0; j < width; ++j) dmask_token[d0 + j] += static_cast<float>(acc[j]);
    }
  });
}

}  // namespace cmae::cpu::CMAE_CPU_TARGET
