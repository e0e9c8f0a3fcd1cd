// Kernels of the normalisation layers (ops/norm.h): LayerNorm over the last dim (alone and fused
// with the residual add before it), its backward, and BatchNorm1d over the batch (training
// forward, backward, inference). The row arithmetic is cpu/norm.cc's: the corrected two-pass
// variance, rstd = 1/sqrt(var + eps), the same products in the same order per element.
//
// Also what patch.cuh shares: add_vec, and add_chunk_sums, the second pass of every two-pass
// column reduction of both families (its partials live in the backend's scratch).
//
// Designs (the launches and the expected bounds are in cuda/norm.cu):
//  - layernorm_forward_rows: a warp per row, 8 rows per 256-thread block. Lane l owns the columns
//    (q·32 + l)·W + [0, W) of each 32·W·kPacks-column segment (W = 4: 16-byte loads, coalesced
//    512 bytes per warp and pack); rows up to one segment (C <= 1024) stay in registers, so the
//    row is read once and written once; longer rows are re-read per pass (L1/L2). Each lane sums
//    its columns in order, then warp_sum's fixed butterfly: one order for any launch.
//  - layernorm_backward_chunks: a block per chunk of 64 rows, a warp per row (rows interleaved
//    over the 8 warps). dinp as the forward's row pattern (Σdn, Σdn·n by warp_sum); the lanes
//    also sum dy·n and dy for their columns over the warp's rows, in the warp's own slice of
//    shared memory; at the end the 8 slices are added in warp order into the chunk's partial row
//    (dweight then dbias). add_chunk_sums then adds the chunks in chunk order (no atomics). Rows
//    longer than one segment (C > 1024, or C > 256 without 16-byte access) get their partials
//    from layernorm_param_partials instead, a thread per column summing the chunk's rows in order.
//  - batchnorm_*: a block of 32 channels × 8 row lanes: row lane y sums rows y, y+8, ... of its
//    channel (coalesced 128-byte rows), then the 8 lane sums are added in y order (column_sums),
//    the same in every thread. Forward: mean, then the corrected variance about it, then the
//    normalised rows (the block re-reads its B×32 slab from L1). Inference: element-wise, the
//    per-channel scale computed once per thread.
// Every kernel here is a template (on its block shape where nothing else varies): patch.cu includes
// this header too, and templates, unlike plain __global__ functions, may be defined in several
// translation units.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/compat.cuh"
#include "common/reduce.cuh"

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {

// x += y, element by element.
template <int W>
__device__ __forceinline__ void add_vec(FloatVec<W>& x, const FloatVec<W>& y) {
  CMAE_UNROLL
  for (int k = 0; k < W; ++k) x.v[k] += y.v[k];
}

// The corrected two-pass statistics of n values from Σd and Σd² about a first mean m (d = x − m;
// Σd, zero in exact arithmetic, is the rounding error of m; removing it keeps the variance accurate
// when |mean| >> std): returns the biased variance and corrects m in place (cpu/norm.cc's formulas).
__device__ __forceinline__ float corrected_variance(float& m, float dsum, float sq, float inv_n) {
  const float var = fmaxf((sq - dsum * dsum * inv_n) * inv_n, 0.0f);
  m += dsum * inv_n;
  return var;
}

// ---- two-pass column reductions ------------------------------------------------------------------

// Second pass of every two-pass column reduction: dst[j] += Σ_k partials[k·ld + j] over the
// `chunks` partial rows, summed in double in chunk order (row lane y of the 32 × 32 block sums a
// contiguous range of chunks, then the 32 range sums are added in y order), rounded to float once.
// Grid: ceil(n / 32) blocks of (32, 32).
constexpr int kChunkSumLanes = 32;

template <typename Partial>
__global__ void __launch_bounds__(kChunkSumLanes * 32)
    add_chunk_sums(float* dst, const Partial* partials, int64_t chunks, int64_t n, int64_t ld) {
  using Row = double[33];  // padded: column reads of the final sum hit distinct banks
  CMAE_SHARED(Row, range_sums, kChunkSumLanes);
  const int x = static_cast<int>(threadIdx.x), y = static_cast<int>(threadIdx.y);
  const int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + x;
  const int64_t per_lane = ceil_div(chunks, kChunkSumLanes);
  const int64_t k0 = y * per_lane;
  const int64_t k1 = k0 + per_lane < chunks ? k0 + per_lane : chunks;
  double sum = 0.0;
  if (j < n)
    for (int64_t k = k0; k < k1; ++k) sum += static_cast<double>(partials[k * ld + j]);
  range_sums[y][x] = sum;
  __syncthreads();
  if (y == 0 && j < n) {
    double total = 0.0;
    for (int i = 0; i < kChunkSumLanes; ++i) total += range_sums[i][x];
    dst[j] += static_cast<float>(total);
  }
}

// ---- LayerNorm -----------------------------------------------------------------------------------

constexpr int kLayerNormWarps = 8;                       // warps (rows at a time) per block
constexpr int kLayerNormThreads = kLayerNormWarps * 32;  // 256
constexpr int kLayerNormChunkRows = 64;                  // backward: rows per block and partial
constexpr int kLayerNormRowsPerWarp = kLayerNormChunkRows / kLayerNormWarps;
// The longest row held in registers (kPacks·W floats per lane); longer rows are re-read per pass.
constexpr int kLayerNormMaxCachedColumns = 1024;

// Calls f(q, c) for every pack of the calling lane's columns of a row of C: pack q of each
// 32·W·kPacks-column segment starts at column c = segment start + (q·32 + lane)·W. In column order
// per lane; q is a constant after unrolling, so per-pack arrays indexed by it stay in registers.
template <int W, int kPacks, typename F>
__device__ __forceinline__ void for_each_lane_pack(int C, int lane, F&& f) {
  for (int s0 = 0; s0 < C; s0 += 32 * W * kPacks) {
    CMAE_UNROLL
    for (int q = 0; q < kPacks; ++q) {
      const int c = s0 + (q * 32 + lane) * W;
      if (c < C) f(q, c);
    }
  }
}

// x = a (+ b, written to sum): out = (x − mean)·rstd·weight + bias per row, mean and rstd saved.
// b and sum are null for the plain LayerNorm. out may alias a; sum may alias a or b (each element
// is read and then written by the lane that owns it, and no lane reads another's columns).
template <int W, int kPacks>
__global__ void __launch_bounds__(kLayerNormThreads)
    layernorm_forward_rows(float* out, float* sum, float* mean, float* rstd, const float* a, const float* b,
                           const float* __restrict__ weight, const float* __restrict__ bias, int64_t R, int C, float eps) {
  using Pack = FloatVec<W>;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kLayerNormWarps + threadIdx.x / 32;
  if (r >= R) return;  // the whole warp: r is the warp's
  const int64_t base = r * C;
  const float* x_row = (b ? sum : a) + base;  // the row's values once pass 1 has run
  const bool cached = C <= 32 * W * kPacks;   // one segment: the row stays in x
  const float inv_c = 1.0f / static_cast<float>(C);
  Pack x[kPacks] = {};
  const auto row_pack = [&](int q, int c) { return cached ? x[q] : load_vec<W>(x_row + c); };

  // Pass 1: x (the residual sum written out), and its sum.
  float lane_sum = 0.0f;
  for_each_lane_pack<W, kPacks>(C, lane, [&](int q, int c) {
    Pack v = load_vec<W>(a + base + c);
    if (b) {
      add_vec(v, load_vec<W>(b + base + c));
      store_vec<W>(sum + base + c, v);
    }
    CMAE_UNROLL
    for (int j = 0; j < W; ++j) lane_sum += v.v[j];
    x[q] = v;
  });
  float m = warp_sum(lane_sum) * inv_c;

  // Pass 2: the variance about m, corrected by Σd.
  float dsum = 0.0f, sq = 0.0f;
  for_each_lane_pack<W, kPacks>(C, lane, [&](int q, int c) {
    const Pack v = row_pack(q, c);
    CMAE_UNROLL
    for (int j = 0; j < W; ++j) {
      const float d = v.v[j] - m;
      dsum += d;
      sq += d * d;
    }
  });
  dsum = warp_sum(dsum);
  sq = warp_sum(sq);
  const float var = corrected_variance(m, dsum, sq, inv_c);
  const float s = 1.0f / sqrtf(var + eps);
  if (lane == 0) {
    mean[r] = m;
    rstd[r] = s;
  }

  // Pass 3: normalise.
  for_each_lane_pack<W, kPacks>(C, lane, [&](int q, int c) {
    const Pack v = row_pack(q, c), w = load_vec<W>(weight + c), bb = load_vec<W>(bias + c);
    Pack y;
    CMAE_UNROLL
    for (int j = 0; j < W; ++j) y.v[j] = (v.v[j] - m) * s * w.v[j] + bb.v[j];
    store_vec<W>(out + base + c, y);
  });
}

// dinp (= or +=) for the rows of chunk blockIdx.x and, when the rows fit one segment
// (C <= 32·W·kPacks), the chunk's partial sums over rows: partials[chunk·2C + c] = Σ dy·n,
// [chunk·2C + C + c] = Σ dy. dx = rstd·(dn − mean(dn) − n·mean(dn·n)), n = (x − mean)·rstd,
// dn = weight·dy. Each warp sums its rows into its own 2C floats of dynamic shared memory
// (layernorm_backward_shared_bytes): a lane updates only its own columns, so no barrier is needed
// until the warps' sums are added, in warp order, into the chunk's partial. (In registers these
// sums would double the kernel's registers and halve its occupancy: two blocks per SM need <= 128.)
template <int W, int kPacks>
__global__ void __launch_bounds__(kLayerNormThreads, 2)
    layernorm_backward_chunks(float* __restrict__ dinp, float* __restrict__ partials, const float* __restrict__ dout,
                              const float* __restrict__ inp, const float* __restrict__ weight, const float* __restrict__ mean,
                              const float* __restrict__ rstd, int64_t R, int C, bool accumulate_dinp) {
  using Pack = FloatVec<W>;
  CMAE_DYNAMIC_SHARED(float, warp_sums);
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  // One segment: n and dn stay in registers, and this kernel sums the partials.
  const bool cached = C <= 32 * W * kPacks;
  const float inv_c = 1.0f / static_cast<float>(C);
  const int64_t chunk = blockIdx.x;
  float* const sum_w = warp_sums + warp * 2 * C;  // Σ dy·n over this warp's rows, then Σ dy
  float* const sum_b = sum_w + C;
  if (cached)
    for_each_lane_pack<W, kPacks>(C, lane, [&](int, int c) {
      store_vec<W>(sum_w + c, Pack{});
      store_vec<W>(sum_b + c, Pack{});
    });

  Pack n_of[kPacks] = {}, dn_of[kPacks] = {};  // the row's n and dn, by pack
  for (int i = 0; i < kLayerNormRowsPerWarp; ++i) {
    const int64_t r = chunk * kLayerNormChunkRows + i * kLayerNormWarps + warp;
    if (r >= R) break;  // the whole warp
    const int64_t base = r * C;
    const float m = mean[r], s = rstd[r];
    // n and dn of pack q (at column c) into n_of[q], dn_of[q]; returns dy.
    const auto load_pack = [&](int q, int c) {
      const Pack x = load_vec<W>(inp + base + c), dy = load_vec<W>(dout + base + c), w = load_vec<W>(weight + c);
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) {
        n_of[q].v[j] = (x.v[j] - m) * s;
        dn_of[q].v[j] = w.v[j] * dy.v[j];
      }
      return dy;
    };
    float sum_dn = 0.0f, sum_dn_n = 0.0f;
    for_each_lane_pack<W, kPacks>(C, lane, [&](int q, int c) {
      const Pack dy = load_pack(q, c);
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) {
        sum_dn += dn_of[q].v[j];
        sum_dn_n += dn_of[q].v[j] * n_of[q].v[j];
      }
      if (cached) {
        Pack pw = load_vec<W>(sum_w + c), pb = load_vec<W>(sum_b + c);
        CMAE_UNROLL
        for (int j = 0; j < W; ++j) {
          pw.v[j] += dy.v[j] * n_of[q].v[j];
          pb.v[j] += dy.v[j];
        }
        store_vec<W>(sum_w + c, pw);
        store_vec<W>(sum_b + c, pb);
      }
    });
    const float mean_dn = warp_sum(sum_dn) * inv_c;
    const float mean_dn_n = warp_sum(sum_dn_n) * inv_c;
    for_each_lane_pack<W, kPacks>(C, lane, [&](int q, int c) {
      if (!cached) load_pack(q, c);
      Pack g;
      CMAE_UNROLL
      for (int j = 0; j < W; ++j) g.v[j] = (dn_of[q].v[j] - mean_dn - n_of[q].v[j] * mean_dn_n) * s;
      if (accumulate_dinp) {
        Pack old = load_vec<W>(dinp + base + c);
        add_vec(old, g);
        g = old;
      }
      store_vec<W>(dinp + base + c, g);
    });
  }
  if (!cached) return;  // the whole block: C decides

  // The chunk's partial: the warps' sums added in warp order.
  __syncthreads();
  float* const p = partials + chunk * 2 * C;
  for (int c = static_cast<int>(threadIdx.x); c < 2 * C; c += kLayerNormThreads) {
    float total = warp_sums[c];
    for (int w = 1; w < kLayerNormWarps; ++w) total += warp_sums[w * 2 * C + c];
    p[c] = total;
  }
}

// The dynamic shared memory of layernorm_backward_chunks<W, kPacks> for rows of C columns.
constexpr std::size_t layernorm_backward_shared_bytes(int64_t C, int segment) {
  return C <= segment ? static_cast<std::size_t>(kLayerNormWarps * 2 * C) * sizeof(float) : 0;
}

// The chunk partials of layernorm_backward for rows longer than its register row (C > 1024, or
// > 256 without 16-byte access): a thread per column sums dy·n and dy over the chunk's rows in row
// order. Grid (chunks, ceil(C / kThreads)).
constexpr int kParamPartialThreads = 128;

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    layernorm_param_partials(float* __restrict__ partials, const float* __restrict__ dout, const float* __restrict__ inp,
                             const float* __restrict__ mean, const float* __restrict__ rstd, int64_t R, int C) {
  const int c = static_cast<int>(blockIdx.y) * kThreads + static_cast<int>(threadIdx.x);
  if (c >= C) return;
  const int64_t chunk = blockIdx.x;
  const int64_t r0 = chunk * kLayerNormChunkRows;
  const int64_t r1 = r0 + kLayerNormChunkRows < R ? r0 + kLayerNormChunkRows : R;
  float dw = 0.0f, db = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const float dy = dout[r * C + c];
    dw += dy * ((inp[r * C + c] - mean[r]) * rstd[r]);
    db += dy;
  }
  partials[chunk * 2 * C + c] = dw;
  partials[chunk * 2 * C + C + c] = db;
}

// ---- BatchNorm1d ---------------------------------------------------------------------------------

constexpr int kBatchNormRowLanes = 8;  // blockDim (32 channels, 8 row lanes)

// (Σ1, Σ2) over the block's row lanes of the thread's channel: each lane's sums added in y order,
// returned to every thread of the channel. Every thread of the block calls it (two barriers).
template <int kRowLanes>
__device__ __forceinline__ void column_sums(float& s1, float& s2) {
  using Row = float[32];
  CMAE_SHARED(Row, lane_s1, kRowLanes);
  CMAE_SHARED(Row, lane_s2, kRowLanes);
  const unsigned x = threadIdx.x, y = threadIdx.y;
  lane_s1[y][x] = s1;
  lane_s2[y][x] = s2;
  __syncthreads();
  s1 = lane_s1[0][x];
  s2 = lane_s2[0][x];
  for (int i = 1; i < kRowLanes; ++i) {
    s1 += lane_s1[i][x];
    s2 += lane_s2[i][x];
  }
  __syncthreads();  // the arrays may be reused by the next call
}

// Training mode over (B, C): the batch statistics of the block's 32 channels, the running
// statistics (unbiased variance: unbias = B/(B−1)), and the normalised rows. Null weight/bias
// mean affine=False, null running_* leave them alone. out may alias inp (each element is read,
// then written, by one thread, after every read of the statistics passes).
template <int kRowLanes>
__global__ void __launch_bounds__(32 * kRowLanes)
    batchnorm_forward_channels(float* out, float* mean, float* rstd, float* running_mean, float* running_var, const float* inp,
                               const float* __restrict__ weight, const float* __restrict__ bias, int64_t B, int C, float eps,
                               float momentum, float unbias) {
  const int c = static_cast<int>(blockIdx.x) * 32 + static_cast<int>(threadIdx.x);
  const bool valid = c < C;
  const int y = static_cast<int>(threadIdx.y);
  const float inv_b = 1.0f / static_cast<float>(B);
  // Pass 1: the mean.
  float s1 = 0.0f, s2 = 0.0f;
  if (valid)
    for (int64_t r = y; r < B; r += kRowLanes) s1 += inp[r * C + c];
  column_sums<kRowLanes>(s1, s2);
  float m = s1 * inv_b;
  // Pass 2: the variance about it, corrected as in the LayerNorm.
  s1 = s2 = 0.0f;
  if (valid)
    for (int64_t r = y; r < B; r += kRowLanes) {
      const float d = inp[r * C + c] - m;
      s1 += d;
      s2 += d * d;
    }
  column_sums<kRowLanes>(s1, s2);
  if (!valid) return;  // no barrier follows
  const float var = corrected_variance(m, s1, s2, inv_b);
  const float s = 1.0f / sqrtf(var + eps);
  if (y == 0) {
    mean[c] = m;
    rstd[c] = s;
    if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * m;
    if (running_var) running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (var * unbias);
  }
  // Pass 3: normalise.
  const float scale = weight ? s * weight[c] : s;
  const float shift = bias ? bias[c] : 0.0f;
  for (int64_t r = y; r < B; r += kRowLanes) out[r * C + c] = (inp[r * C + c] - m) * scale + shift;
}

// dinp (=) and, when not null, dweight/dbias (+=) of the block's 32 channels.
// dx = weight·rstd·(dy − mean(dy) − n·mean(dy·n)), n = (x − mean)·rstd.
template <int kRowLanes>
__global__ void __launch_bounds__(32 * kRowLanes)
    batchnorm_backward_channels(float* __restrict__ dinp, float* __restrict__ dweight, float* __restrict__ dbias,
                                const float* __restrict__ dout, const float* __restrict__ inp, const float* __restrict__ weight,
                                const float* __restrict__ mean, const float* __restrict__ rstd, int64_t B, int C) {
  const int c = static_cast<int>(blockIdx.x) * 32 + static_cast<int>(threadIdx.x);
  const bool valid = c < C;
  const int y = static_cast<int>(threadIdx.y);
  const float inv_b = 1.0f / static_cast<float>(B);
  const float m = valid ? mean[c] : 0.0f, s = valid ? rstd[c] : 0.0f;
  float s1 = 0.0f, s2 = 0.0f;  // Σ dy, Σ dy·n
  if (valid)
    for (int64_t r = y; r < B; r += kRowLanes) {
      const float dy = dout[r * C + c];
      s1 += dy;
      s2 += dy * ((inp[r * C + c] - m) * s);
    }
  column_sums<kRowLanes>(s1, s2);
  if (!valid) return;
  if (y == 0) {
    if (dbias) dbias[c] += s1;
    if (dweight) dweight[c] += s2;
  }
  const float k = weight ? weight[c] * s : s;
  const float a = s1 * inv_b, g = s2 * inv_b;
  for (int64_t r = y; r < B; r += kRowLanes)
    dinp[r * C + c] = k * (dout[r * C + c] - a - (inp[r * C + c] - m) * s * g);
}

// Inference: out = (x − running_mean)·scale + shift, scale = weight/sqrt(running_var + eps).
// Grid (ceil(C / 32), row tiles); each thread strides over rows. out may alias inp.
template <int kRowLanes>
__global__ void __launch_bounds__(32 * kRowLanes)
    batchnorm_inference_rows(float* out, const float* inp, const float* __restrict__ running_mean,
                             const float* __restrict__ running_var, const float* __restrict__ weight,
                             const float* __restrict__ bias, int64_t B, int C, float eps) {
  const int c = static_cast<int>(blockIdx.x) * 32 + static_cast<int>(threadIdx.x);
  if (c >= C) return;
  const float s = 1.0f / sqrtf(running_var[c] + eps);
  const float scale = weight ? s * weight[c] : s;
  const float shift = bias ? bias[c] : 0.0f;
  const float rm = running_mean[c];
  const int64_t stride = static_cast<int64_t>(gridDim.y) * kRowLanes;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * kRowLanes + threadIdx.y; r < B; r += stride)
    out[r * C + c] = (inp[r * C + c] - rm) * scale + shift;
}

}  // namespace kernels

CMAE_CUDA_NAMESPACE_END
