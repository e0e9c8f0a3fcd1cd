// Kernels of patches, masking and the token shuffles (ops/patch.h). add_vec and the second pass
// of the dmask_token reduction (add_chunk_sums) come from norm.cuh.
//
// Designs (the launches and the expected bounds are in cuda/patch.cu):
//  - patch_copy: a block per row of patches (b, h), its threads over the P = p·p·C elements of a
//    patch, each element copied for every patch of the row: patch-side accesses are contiguous,
//    image-side ones are runs of p pixels (channels-first) or C interleaved planes of such runs
//    (pixels-last). One kernel for both directions.
//  - patch_gather (patchify_visible): patch_copy's element loop over a run of 8 listed patches
//    (b, k) per block instead of a row of the grid: the ids give each patch's corner pixel, and
//    only those patches are read.
//  - random_masking_samples: a block per sample. The sample's G noise values go to shared memory;
//    each thread ranks its groups by counting the groups that sort before them (numbers
//    ascending, then NaN, ties by index: a strict total order, so ranks are a permutation and
//    rank < keep_groups is exactly the kept set). Then the patches in tiles of 256: a ballot
//    and the per-warp counts give each visible patch its place among the kept ones, so ids_keep
//    comes out ascending, and ids_restore follows as kept place or K + masked place.
//  - masking_noise_fill: a thread per element, grid-stride: core/rng.h's uniform01, bit for bit
//    what the CPU draws.
//  - the row ops (gather_visible_*, add_positions, unshuffle_*): a warp per destination row, 8 per block, lanes
//    over the D columns in 16-byte packs where alignment allows. The backward ops gather: the
//    warp reads 32 ids at a time, ballots those equal to its row and adds the selected source
//    rows in ascending id position (the same order as the CPU, no atomics, and a plain copy when
//    an id appears once).
//  - mask_token_partials: a block per chunk of 128 (b, l) rows × 128 columns, a thread per column
//    summing the masked rows of its chunk in row order in double; add_chunk_sums<double> then adds
//    the chunks in order into dmask_token.
#pragma once
#include <cstdint>

#include "common/compat.cuh"
#include "common/reduce.cuh"
#include "core/rng.h"
#include "kernels/norm.cuh"

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {

// ---- patchify / unpatchify -----------------------------------------------------------------------

constexpr int kPatchThreads = 256;

// Offset of element e of a patch vector from the patch's first pixel (channel 0, top-left) in
// images of Hh×W pixels per channel: e = (c, py, px) channels-first, (py, px, c) pixels-last.
__device__ __forceinline__ int64_t patch_element_offset(int e, int C, int Hh, int W, int p, bool channels_first) {
  int c, py, px;
  if (channels_first) {
    px = e % p;
    py = (e / p) % p;
    c = e / (p * p);
  } else {
    c = e % C;
    px = (e / C) % p;
    py = e / (C * p);
  }
  return (static_cast<int64_t>(c) * Hh + py) * W + px;
}

// kToPatches: images → patches (patchify), else patches → images (unpatchify, its exact inverse).
// Grid: B·(H/p) blocks, one per row of patches (b, h); any block size. A thread decodes each of
// its patch elements e = (c, py, px) once and copies it for every patch w of the row (so the
// integer divisions cost little per element); at each w the warp's patch-side accesses are
// contiguous.
template <bool kToPatches>
__global__ void __launch_bounds__(kPatchThreads)
    patch_copy(float* __restrict__ patches, float* __restrict__ images, int C, int Hh, int W, int p, bool channels_first) {
  const int grid_h = Hh / p, grid_w = W / p, P = p * p * C;
  const int64_t b = blockIdx.x / grid_h;
  const int h = static_cast<int>(blockIdx.x % grid_h);
  float* const row_patches = patches + (b * grid_h + h) * grid_w * P;  // patch (b, h, 0)
  float* const row_pixels = images + (b * C * Hh + h * p) * W;          // patch (b, h, 0)'s first pixel
  for (int e = static_cast<int>(threadIdx.x); e < P; e += static_cast<int>(blockDim.x)) {
    float* const pixel = row_pixels + patch_element_offset(e, C, Hh, W, p, channels_first);  // in patch w: + w·p
    float* const element = row_patches + e;                                                  // in patch w: + w·P
    for (int w = 0; w < grid_w; ++w) {
      if (kToPatches) element[static_cast<int64_t>(w) * P] = pixel[w * p];
      else pixel[w * p] = element[static_cast<int64_t>(w) * P];
    }
  }
}

// Listed patches per block of patch_gather.
constexpr int kGatherPatches = 8;

// patchify_visible: patches[r] = patch ids[r] of sample r / K, for the rows r = (b, k) < rows.
// Grid: ceil(rows / kGatherPatches) blocks, a run of kGatherPatches consecutive rows each; any
// block size. As in patch_copy, a thread decodes each of its elements once and copies it for the
// block's patches (kGatherPatches independent loads in flight); patch-side stores are contiguous.
__global__ void __launch_bounds__(kPatchThreads)
    patch_gather(float* __restrict__ patches, const float* __restrict__ images, const int32_t* __restrict__ ids, int64_t rows,
                 int K, int C, int Hh, int W, int p, bool channels_first) {
  const int grid_w = W / p, P = p * p * C;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kGatherPatches;
  const int n = rows - r0 < kGatherPatches ? static_cast<int>(rows - r0) : kGatherPatches;
  int64_t corner[kGatherPatches];  // each patch's first pixel (channel 0, top-left)
  CMAE_UNROLL
  for (int j = 0; j < kGatherPatches; ++j) {
    corner[j] = 0;
    if (j < n) {
      const int64_t r = r0 + j, b = r / K;
      const int l = ids[r];
      corner[j] = (b * C * Hh + (l / grid_w) * p) * W + (l % grid_w) * p;
    }
  }
  float* const block_patches = patches + r0 * P;
  for (int e = static_cast<int>(threadIdx.x); e < P; e += static_cast<int>(blockDim.x)) {
    const int64_t offset = patch_element_offset(e, C, Hh, W, p, channels_first);
    CMAE_UNROLL
    for (int j = 0; j < kGatherPatches; ++j)
      if (j < n) block_patches[static_cast<int64_t>(j) * P + e] = images[corner[j] + offset];
  }
}

// ---- masking -------------------------------------------------------------------------------------

constexpr int kMaskingThreads = 256;

__device__ __forceinline__ bool is_nan(float x) { return (__float_as_uint(x) & 0x7fffffffu) > 0x7f800000u; }

// The order of random_masking: numbers ascending, then NaN; ties by group index.
__device__ __forceinline__ bool sorts_before(float a, int ia, float b, int ib) {
  const bool a_nan = is_nan(a), b_nan = is_nan(b);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a != b) return a < b;
  return ia < ib;
}

// Grid: B blocks of kMaskingThreads; dynamic shared memory 5·G bytes (the keys, the kept flags).
__global__ void __launch_bounds__(kMaskingThreads)
    random_masking_samples(int32_t* __restrict__ ids_keep, int32_t* __restrict__ ids_restore, float* __restrict__ mask,
                           const float* __restrict__ noise, int grid_w, int group, int G, int L, int keep_groups, int K) {
  CMAE_DYNAMIC_SHARED(float, keys);
  unsigned char* const kept = reinterpret_cast<unsigned char*>(keys + G);
  CMAE_SHARED(int, warp_visible, kMaskingThreads / 32);
  const int64_t b = blockIdx.x;
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;

  for (int g = tid; g < G; g += kMaskingThreads) keys[g] = noise[b * G + g];
  __syncthreads();
  for (int g = tid; g < G; g += kMaskingThreads) {
    const float key = keys[g];
    int rank = 0;
    for (int h = 0; h < G; ++h) rank += sorts_before(keys[h], h, key, g) ? 1 : 0;
    kept[g] = rank < keep_groups ? 1 : 0;
  }
  __syncthreads();

  const int groups_per_row = grid_w / group;
  int32_t* const keep = ids_keep + b * K;
  int32_t* const restore = ids_restore + b * L;
  float* const m = mask + b * L;
  int visible_before_tile = 0;
  for (int l0 = 0; l0 < L; l0 += kMaskingThreads) {  // the same trip count in every thread
    const int l = l0 + tid;
    bool visible = false;
    if (l < L) visible = kept[(l / grid_w / group) * groups_per_row + (l % grid_w) / group] != 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, visible);
    if (lane == 0) warp_visible[warp] = __popc(ballot);
    __syncthreads();
    int visible_before = visible_before_tile + __popc(ballot & ((1u << lane) - 1u));
    int tile_visible = 0;
    for (int w = 0; w < kMaskingThreads / 32; ++w) {
      const int count = warp_visible[w];
      if (w < warp) visible_before += count;
      tile_visible += count;
    }
    __syncthreads();  // warp_visible is rewritten by the next tile
    if (l < L) {
      if (visible) keep[visible_before] = l;
      restore[l] = visible ? visible_before : K + (l - visible_before);
      m[l] = visible ? 0.0f : 1.0f;
    }
    visible_before_tile += tile_visible;
  }
}

// noise[i] = uniform01(seed, stream, i) for i < n. Grid-stride.
__global__ void masking_noise_fill(float* __restrict__ noise, int64_t n, uint64_t seed, uint64_t stream) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    noise[i] = uniform01(seed, stream, static_cast<uint64_t>(i));
}

// ---- token rows: a warp per destination row ------------------------------------------------------

// A warp per destination row, kRowsPerBlock rows per block (common/reduce.cuh warp_row).
constexpr int kTokenRowWarps = kRowsPerBlock;
constexpr int kTokenRowThreads = kStreamThreads;

// dst[0, D) = src (+ add, when not null), by the calling warp.
template <int W>
__device__ __forceinline__ void warp_copy_row(float* dst, const float* src, const float* add, int D, int lane) {
  for (int d = lane * W; d < D; d += 32 * W) {
    FloatVec<W> v = load_vec<W>(src + d);
    if (add) add_vec(v, load_vec<W>(add + d));
    store_vec<W>(dst + d, v);
  }
}

// dst[0, D) = Σ of the rows src + i·D for the i < n with ids[i] == target, added in ascending i
// (the first one copied, so a single match is exact); zeros when there is none. By the calling
// warp (all 32 lanes).
template <int W>
__device__ __forceinline__ void warp_sum_selected_rows(float* dst, const float* src, const int32_t* ids, int n, int32_t target,
                                                       int D, int lane) {
  bool written = false;
  for (int i0 = 0; i0 < n; i0 += 32) {
    const int i = i0 + lane;
    unsigned selected = __ballot_sync(0xffffffffu, i < n && ids[i] == target);
    while (selected != 0) {
      const int k = i0 + __ffs(static_cast<int>(selected)) - 1;
      selected &= selected - 1u;
      const float* row = src + static_cast<int64_t>(k) * D;
      for (int d = lane * W; d < D; d += 32 * W) {
        FloatVec<W> v = load_vec<W>(row + d);
        if (written) add_vec(v, load_vec<W>(dst + d));  // this lane's own earlier store
        store_vec<W>(dst + d, v);
      }
      written = true;
    }
  }
  if (!written)
    for (int d = lane * W; d < D; d += 32 * W) store_vec<W>(dst + d, FloatVec<W>{});
}

// out[b, prefix+k] = token + pos[ids[b,k]] (pos may be null), where the token is
// tokens[b, ids[b,k]] of (B, L, D) tokens (kGather: gather_visible_forward) or tokens[b, k] of
// (B, K, D) tokens (add_positions, which reads ids only when pos is set).
template <int W, bool kGather>
__global__ void __launch_bounds__(kTokenRowThreads)
    visible_rows_plus_positions(float* __restrict__ out, const float* __restrict__ tokens, const float* __restrict__ pos,
                                const int32_t* __restrict__ ids, int64_t B, int L, int K, int D, int prefix) {
  const int64_t row = warp_row(B * K);  // (b, k)
  if (row < 0) return;
  const int64_t b = row / K, k = row % K, id = kGather || pos ? ids[row] : 0;
  warp_copy_row<W>(out + (b * (prefix + K) + prefix + k) * D, tokens + (kGather ? b * L + id : row) * D,
                   pos ? pos + id * D : nullptr, D, static_cast<int>(threadIdx.x % 32));
}

// dtokens[b, l] = Σ_{k: ids_keep[b,k] == l} dout[b, prefix+k] (zeros when none).
template <int W>
__global__ void __launch_bounds__(kTokenRowThreads)
    gather_visible_backward_rows(float* __restrict__ dtokens, const float* __restrict__ dout, const int32_t* __restrict__ ids_keep,
                                 int64_t B, int L, int K, int D, int prefix) {
  const int64_t row = warp_row(B * L);  // (b, l)
  if (row < 0) return;
  const int64_t b = row / L;
  const int l = static_cast<int>(row % L);
  warp_sum_selected_rows<W>(dtokens + row * D, dout + (b * (prefix + K) + prefix) * D, ids_keep + b * K, K, l, D,
                            static_cast<int>(threadIdx.x % 32));
}

// out[b, n]: prefix rows inp[b, n] + pos_prefix[n]; then for l = n − prefix the visible row
// inp[b, prefix + ids_restore[b,l]] or the mask token, + pos[l] (either embedding may be null).
template <int W>
__global__ void __launch_bounds__(kTokenRowThreads)
    unshuffle_forward_rows(float* __restrict__ out, const float* __restrict__ inp, const float* __restrict__ mask_token,
                           const float* __restrict__ pos, const float* __restrict__ pos_prefix,
                           const int32_t* __restrict__ ids_restore, int64_t B, int L, int K, int D, int prefix) {
  const int64_t row = warp_row(B * (prefix + L));  // (b, n)
  if (row < 0) return;
  const int64_t b = row / (prefix + L);
  const int n = static_cast<int>(row % (prefix + L));
  const float* src;
  const float* add;
  if (n < prefix) {
    src = inp + (b * (prefix + K) + n) * D;
    add = pos_prefix ? pos_prefix + static_cast<int64_t>(n) * D : nullptr;
  } else {
    const int l = n - prefix, r = ids_restore[b * L + l];
    src = r < K ? inp + (b * (prefix + K) + prefix + r) * D : mask_token;
    add = pos ? pos + static_cast<int64_t>(l) * D : nullptr;
  }
  warp_copy_row<W>(out + row * D, src, add, D, static_cast<int>(threadIdx.x % 32));
}

// dinp[b, n]: prefix rows dout[b, n]; visible row k = Σ_{l: ids_restore[b,l] == k} dout[b, prefix+l].
template <int W>
__global__ void __launch_bounds__(kTokenRowThreads)
    unshuffle_backward_rows(float* __restrict__ dinp, const float* __restrict__ dout, const int32_t* __restrict__ ids_restore,
                            int64_t B, int L, int K, int D, int prefix) {
  const int64_t row = warp_row(B * (prefix + K));  // (b, n)
  if (row < 0) return;
  const int64_t b = row / (prefix + K);
  const int n = static_cast<int>(row % (prefix + K)), lane = static_cast<int>(threadIdx.x % 32);
  const float* dout_b = dout + b * (prefix + L) * D;
  if (n < prefix) warp_copy_row<W>(dinp + row * D, dout_b + static_cast<int64_t>(n) * D, nullptr, D, lane);
  else
    warp_sum_selected_rows<W>(dinp + row * D, dout_b + static_cast<int64_t>(prefix) * D, ids_restore + b * L, L, n - prefix, D, lane);
}

// dmask_token partials: partials[chunk·D + d] = Σ over the masked rows (ids_restore >= K) of the
// chunk's (b, l) rows [chunk·128, +128) (b-major, l ascending) of dout[b, prefix+l, d], in double.
// Grid (chunks, ceil(D / 128)).
constexpr int kMaskTokenChunkRows = 128;
constexpr int kMaskTokenThreads = 128;

__global__ void __launch_bounds__(kMaskTokenThreads)
    mask_token_partials(double* __restrict__ partials, const float* __restrict__ dout, const int32_t* __restrict__ ids_restore,
                        int64_t B, int L, int K, int D, int prefix) {
  const int d = static_cast<int>(blockIdx.y) * kMaskTokenThreads + static_cast<int>(threadIdx.x);
  if (d >= D) return;
  const int64_t chunk = blockIdx.x, i0 = chunk * kMaskTokenChunkRows;
  const int64_t i1 = i0 + kMaskTokenChunkRows < B * L ? i0 + kMaskTokenChunkRows : B * L;
  int64_t b = i0 / L;
  int l = static_cast<int>(i0 % L);
  double sum = 0.0;
  // Branch-free, so that the unrolled rows' loads are all in flight at once: a visible row (or
  // one past the chunk) loads a dummy element (row 0's, an L1 hit) and adds +0.0.
  constexpr int kUnroll = 8;
  for (int64_t i8 = i0; i8 < i1; i8 += kUnroll) {
    CMAE_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i8 + u;
      const int32_t id = ids_restore[i < i1 ? i : i0];
      const bool masked = i < i1 && id >= K;
      const int64_t row = masked ? b * (prefix + L) + prefix + l : 0;
      const double v = static_cast<double>(dout[row * D + d]);
      sum += masked ? v : 0.0;
      l = l + 1 == L ? 0 : l + 1;
      b += l == 0 ? 1 : 0;
    }
  }
  partials[chunk * D + d] = sum;
}

}  // namespace kernels
CMAE_CUDA_NAMESPACE_END
