// Kernels of the loss family (ops/loss.h): the fused forward + backward of the norm-pix MSE and
// of CMAE's InfoNCE. Every reduction is in double and in an order fixed by the shape; the scalar
// loss is written by a last single-block pass (activation.cuh's sum_kernel) into device memory.
//
// normpix_mse_forward_backward, three launches:
//   1. sum_kernel: Σ mask (double) into scratch[0] (the gradient's scale needs it before any row);
//   2. normpix_rows_kernel: a warp per patch row, 8 rows per 256-thread block. A masked row reads
//      its target for the mean and the unbiased variance (two warp_sums), then pred and target
//      again for the squared error (a third), writing dpred on the way; L1 holds the row (P·4
//      bytes) between the passes, so DRAM sees each array once. A visible row reads nothing and
//      writes zeros. The block's 8 row losses are added in warp order into partials[block];
//   3. sum_kernel: Σ partials / Σ mask into *loss (0 when nothing is masked).
// infonce_forward_backward, two launches:
//   1. infonce_rows_kernel: a block of 256 threads per query row i (B x B logits, one row per
//      block). q_i is staged in shared memory; thread t computes logit_ij for j = t, t + 256, ...
//      as a dot product over E in double, together with ||k_j|| (so k's norms need no pass of
//      their own), reading k_j's row (L1/L2-resident: k is B·E·4 bytes). Then the row's max,
//      Σ exp and cross-entropy (block_max, block_sum), the softmax gradient coefficients
//      c_ij = scale·dloss/B·(p_ij − δ_ij)/(||k_j||·τ) in shared memory, dq̂_i = Σ_j c_ij k_j by a
//      thread per feature e (j in order, k read coalesced), and F.normalize's backward through
//      one more block_sum. row_loss[i] goes to scratch;
//   2. sum_kernel: scale · Σ row_loss / B into *loss.
//   Dynamic shared memory per block: 16·B + 12·E bytes (B = E = 256: 7 KiB); the 227 KiB of sm_90
//   hold B up to ~14 K at E = 256 (163 KiB of sm_80: ~10 K). Beyond that the launch fails with
//   ErrorKind::Device naming the kernel, never silently.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/compat.cuh"
#include "common/reduce.cuh"
#include "kernels/activation.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace kernels {

// ---- normalised-pixel MSE -----------------------------------------------------------------------

// partials[blockIdx.x] = Σ over the block's 8 rows r of mask[r]·mean_P((pred − target_n)²), and
// dpred (if not null) = mask[r]·2·dloss·(pred − target_n)/(P·Σ mask) (0 on visible rows, and
// everywhere when Σ mask = 0). W = 4 needs P % 4 == 0 and 16-byte aligned pred, target, dpred.
template <int W>
__global__ void __launch_bounds__(kStreamThreads)
    normpix_rows_kernel(double* partials, float* dpred, const float* pred, const float* target, const float* mask,
                        const double* mask_sum_ptr, int64_t R, int64_t P, bool norm_pix, float eps, float dloss) {
  CMAE_SHARED(double, warp_loss, kRowsPerBlock);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t r = warp_row(R);
  const double mask_sum = *mask_sum_ptr;
  double row_loss = 0.0;
  if (r >= 0) {  // warp-uniform, as are the branches below: the warp_sums see whole warps
    const float w = mask[r];
    float* dp = dpred ? dpred + r * P : nullptr;
    if (w == 0.0f || mask_sum == 0.0) {
      if (dp) {
        for (int64_t i = lane * W; i < P; i += 32 * W) store_vec<W>(dp + i, FloatVec<W>::splat(0.0f));
      }
    } else {
      const float* p = pred + r * P;
      const float* t = target + r * P;
      double mean = 0.0, rstd = 1.0;
      if (norm_pix) {
        double sum = 0.0;
        for (int64_t i = lane * W; i < P; i += 32 * W) {
          const FloatVec<W> tv = load_vec<W>(t + i);
          CMAE_UNROLL
          for (int k = 0; k < W; ++k) sum += tv.v[k];
        }
        mean = warp_sum(sum) / static_cast<double>(P);
        double ss = 0.0;
        for (int64_t i = lane * W; i < P; i += 32 * W) {
          const FloatVec<W> tv = load_vec<W>(t + i);
          CMAE_UNROLL
          for (int k = 0; k < W; ++k) {
            const double c = tv.v[k] - mean;
            ss += c * c;
          }
        }
        const double var = warp_sum(ss) / static_cast<double>(P - 1);
        rstd = 1.0 / sqrt(var + static_cast<double>(eps));
      }
      const double g = 2.0 * static_cast<double>(dloss) / (static_cast<double>(P) * mask_sum) * w;
      double sq = 0.0;
      for (int64_t i = lane * W; i < P; i += 32 * W) {
        const FloatVec<W> pv = load_vec<W>(p + i), tv = load_vec<W>(t + i);
        FloatVec<W> gv;
        CMAE_UNROLL
        for (int k = 0; k < W; ++k) {
          const double diff = pv.v[k] - (tv.v[k] - mean) * rstd;
          gv.v[k] = static_cast<float>(g * diff);
          sq += diff * diff;
        }
        if (dp) store_vec<W>(dp + i, gv);
      }
      row_loss = w * (warp_sum(sq) / static_cast<double>(P));
    }
  }
  if (lane == 0) warp_loss[warp] = row_loss;
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (unsigned k = 0; k < kRowsPerBlock; ++k) sum += warp_loss[k];
    partials[blockIdx.x] = sum;
  }
}

// sum_kernel's finishes of normpix_mse_forward_backward.
struct WriteDouble {
  double* out;
  __device__ __forceinline__ void operator()(double total) const { *out = total; }
};
struct WriteNormPixLoss {
  float* loss;
  const double* mask_sum;
  __device__ __forceinline__ void operator()(double total) const {
    *loss = *mask_sum == 0.0 ? 0.0f : static_cast<float>(total / *mask_sum);
  }
};

// ---- InfoNCE ------------------------------------------------------------------------------------

constexpr unsigned kInfoNceThreads = 256;
constexpr double kNormalizeEps = 1e-12;  // F.normalize's default

// The last step of InfoNCE's and NT-Xent's row gradients, for the row x (staged in shared memory,
// norm ||x||, x_inv = 1/max(||x||, eps)) of a block: dx̂_e = Σ_j coef_j·rows[j·E + e] (j in order)
// into dxhat (E, shared), then through x̂ = x/max(||x||, eps): o = (dx̂ − x̂·(x̂·dx̂)) / ||x||, or
// dx̂/eps below eps (the clamp is constant there). coef must be published (a barrier) before.
__device__ __forceinline__ void normalized_row_gradient(float* o, double* dxhat, const double* coef, const float* rows, int64_t n, int64_t E,
                                                        const float* x, double x_norm, double x_inv, double* scratch) {
  double local_proj = 0.0;
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
    double acc = 0.0;
    for (int64_t j = 0; j < n; ++j) acc = fma(coef[j], static_cast<double>(rows[j * E + e]), acc);
    dxhat[e] = acc;
    local_proj += x[e] * x_inv * acc;
  }
  const double proj = block_sum(local_proj, scratch);
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x)
    o[e] = x_norm >= kNormalizeEps ? static_cast<float>((dxhat[e] - x[e] * x_inv * proj) * x_inv) : static_cast<float>(dxhat[e] * x_inv);
}

// The row steps InfoNCE and NT-Xent share (one block per row): stage_row copies x_i into shared
// memory and returns ||x_i|| (every thread); dot_and_norm gives one thread z_j·row and ||z_j||².
template <int W>
__device__ __forceinline__ double stage_row(float* row, const float* zi, int64_t E, double* scratch) {
  double zz = 0.0;
  for (int64_t e = threadIdx.x * W; e < E; e += blockDim.x * W) {
    const FloatVec<W> v = load_vec<W>(zi + e);
    store_vec<W>(row + e, v);
    CMAE_UNROLL
    for (int c = 0; c < W; ++c) zz += static_cast<double>(v.v[c]) * v.v[c];
  }
  return sqrt(block_sum(zz, scratch));  // its barriers also publish the row
}

template <int W>
__device__ __forceinline__ void dot_and_norm(double& dot, double& zz, const float* zj, const float* row, int64_t E) {
  dot = 0.0, zz = 0.0;
  for (int64_t e = 0; e < E; e += W) {
    const FloatVec<W> a = load_vec<W>(zj + e), b = load_vec<W>(row + e);
    CMAE_UNROLL
    for (int c = 0; c < W; ++c) {
      dot += static_cast<double>(b.v[c]) * a.v[c];
      zz += static_cast<double>(a.v[c]) * a.v[c];
    }
  }
}

// Offset of the staged q row in infonce_rows_kernel's dynamic shared memory, in doubles: after
// logits (B), k coefficients (B) and dq̂ (E), rounded up to 16 bytes for 128-bit reads.
__host__ __device__ __forceinline__ int64_t infonce_q_offset(int64_t B, int64_t E) { return (2 * B + E + 1) / 2 * 2; }

inline std::size_t infonce_shared_bytes(int64_t B, int64_t E) {
  return static_cast<std::size_t>(infonce_q_offset(B, E)) * sizeof(double) + static_cast<std::size_t>(E) * sizeof(float);
}

// Row i = blockIdx.x of InfoNCE: row_loss[i] = CE(logits_i, i) and, if dq is not null,
// dq_i = d(scale · mean_i CE_i · dloss)/dq_i. W = 4 needs E % 4 == 0 and 16-byte aligned q, k.
template <int W>
__global__ void __launch_bounds__(kInfoNceThreads) infonce_rows_kernel(double* row_loss, float* dq, const float* q, const float* k,
                                                                       int64_t B, int64_t E, float tau, float scale, float dloss) {
  CMAE_DYNAMIC_SHARED(double, shared);
  CMAE_SHARED(double, scratch, 32);
  CMAE_SHARED(double, diag_logit, 1);
  double* const logits = shared;      // (B): logit_ij, then exp(logit_ij − max), then c_ij
  double* const k_coef = shared + B;  // (B): 1 / (max(||k_j||, eps) · τ)
  double* const dqhat = shared + 2 * B;  // (E): d loss / d q̂_i
  float* const q_row = reinterpret_cast<float*>(shared + infonce_q_offset(B, E));  // (E): q_i
  const int64_t i = blockIdx.x;
  const unsigned tid = threadIdx.x;

  // q_i into shared memory, and ||q_i||.
  const double nq = stage_row<W>(q_row, q + i * E, E, scratch);  // its barriers also publish q_row
  const double q_inv = 1.0 / (nq > kNormalizeEps ? nq : kNormalizeEps);

  // logit_ij = (q_i·k_j) / (max(||q_i||, eps) · max(||k_j||, eps) · τ).
  double local_max = -INFINITY;
  for (int64_t j = tid; j < B; j += blockDim.x) {
    double dot, kk;
    dot_and_norm<W>(dot, kk, k + j * E, q_row, E);
    const double nk = sqrt(kk);
    const double coef = 1.0 / ((nk > kNormalizeEps ? nk : kNormalizeEps) * static_cast<double>(tau));
    const double s = dot * q_inv * coef;
    logits[j] = s;
    k_coef[j] = coef;
    if (j == i) *diag_logit = s;
    local_max = fmax(local_max, s);
  }
  const double row_max = block_max(local_max, scratch);
  double local_sum = 0.0;
  for (int64_t j = tid; j < B; j += blockDim.x) {
    const double p = exp(logits[j] - row_max);
    logits[j] = p;
    local_sum += p;
  }
  const double sum = block_sum(local_sum, scratch);  // its barriers also publish *diag_logit
  if (tid == 0) row_loss[i] = row_max + log(sum) - *diag_logit;
  if (dq == nullptr) return;

  // c_ij = d loss / d logit_ij · d logit_ij / d q̂_i's scale: scale·dloss/B · (p_ij − δ_ij) · k_coef_j.
  const double grad_coef = static_cast<double>(scale) * static_cast<double>(dloss) / static_cast<double>(B);
  const double inv_sum = 1.0 / sum;
  for (int64_t j = tid; j < B; j += blockDim.x)
    logits[j] = grad_coef * (logits[j] * inv_sum - (j == i ? 1.0 : 0.0)) * k_coef[j];
  __syncthreads();

  normalized_row_gradient(dq + i * E, dqhat, logits, k, B, E, q_row, nq, q_inv, scratch);
}

// ---- NT-Xent ------------------------------------------------------------------------------------
// Two passes, one block per row each: ntxent_rows_kernel gives each row's log-sum-exp over its
// candidates, its loss and 1/max(||z_i||, eps); ntxent_grad_kernel then needs every row's
// log-sum-exp, since row k's gradient gathers column k of every other row's softmax.

constexpr unsigned kNtXentThreads = 256;

// Dynamic shared memory of both passes: (R) doubles (logits or coefficients), (E) doubles (the
// gradient pass's dẑ_k), then the staged row (E floats), 16-byte aligned.
__host__ __device__ __forceinline__ int64_t ntxent_row_offset(int64_t R, int64_t E) { return (R + E + 1) / 2 * 2; }
inline std::size_t ntxent_shared_bytes(int64_t R, int64_t E) {
  return static_cast<std::size_t>(ntxent_row_offset(R, E)) * sizeof(double) + static_cast<std::size_t>(E) * sizeof(float);
}

template <int W>
__global__ void __launch_bounds__(kNtXentThreads) ntxent_rows_kernel(double* lse, double* row_loss, double* inv, const float* z, int64_t R,
                                                                     int64_t E, float tau) {
  CMAE_DYNAMIC_SHARED(double, shared);
  CMAE_SHARED(double, scratch, 32);
  CMAE_SHARED(double, positive_logit, 1);
  double* const logits = shared;  // (R): s_ij
  float* const row = reinterpret_cast<float*>(shared + ntxent_row_offset(R, E));
  const int64_t i = blockIdx.x, positive = i < R / 2 ? i + R / 2 : i - R / 2;
  const unsigned tid = threadIdx.x;
  const double ni = stage_row<W>(row, z + i * E, E, scratch);
  const double i_inv = 1.0 / (ni > kNormalizeEps ? ni : kNormalizeEps);
  double local_max = -INFINITY;
  for (int64_t j = tid; j < R; j += blockDim.x) {
    double dot, zz;
    dot_and_norm<W>(dot, zz, z + j * E, row, E);
    const double nj = sqrt(zz);
    const double s = dot * i_inv / ((nj > kNormalizeEps ? nj : kNormalizeEps) * static_cast<double>(tau));
    logits[j] = s;
    if (j == positive) *positive_logit = s;
    if (j != i) local_max = fmax(local_max, s);
  }
  const double row_max = block_max(local_max, scratch);
  double local_sum = 0.0;
  for (int64_t j = tid; j < R; j += blockDim.x)
    if (j != i) local_sum += exp(logits[j] - row_max);
  const double sum = block_sum(local_sum, scratch);  // its barriers also publish *positive_logit
  if (tid == 0) {
    lse[i] = row_max + log(sum);
    row_loss[i] = lse[i] - *positive_logit;
    inv[i] = i_inv;
  }
}

// Row k: dz_k = dloss · d loss/d z_k, from lse and inv of every row (ntxent_rows_kernel).
template <int W>
__global__ void __launch_bounds__(kNtXentThreads) ntxent_grad_kernel(float* dz, const double* lse, const double* inv, const float* z,
                                                                     int64_t R, int64_t E, float tau, float scale, float dloss) {
  CMAE_DYNAMIC_SHARED(double, shared);
  CMAE_SHARED(double, scratch, 32);
  double* const coef = shared;       // (R): c_j / ||z_j||, the weight of z_j in dẑ_k
  double* const dzhat = shared + R;  // (E): d loss / d ẑ_k
  float* const row = reinterpret_cast<float*>(shared + ntxent_row_offset(R, E));
  const int64_t k = blockIdx.x, positive = k < R / 2 ? k + R / 2 : k - R / 2;
  const unsigned tid = threadIdx.x;
  const double nk = stage_row<W>(row, z + k * E, E, scratch);
  const double k_inv = inv[k];
  const double grad_coef = static_cast<double>(scale) * static_cast<double>(dloss) / (static_cast<double>(tau) * static_cast<double>(R));
  // c_j = P_kj + P_jk − 2·[j = p(k)] (s is symmetric, so P_jk = exp(s_kj − lse_j)).
  for (int64_t j = tid; j < R; j += blockDim.x) {
    double dot, zz;
    dot_and_norm<W>(dot, zz, z + j * E, row, E);
    const double s = dot * k_inv * inv[j] / static_cast<double>(tau);
    coef[j] = j == k ? 0.0 : grad_coef * (exp(s - lse[k]) + exp(s - lse[j]) - (j == positive ? 2.0 : 0.0)) * inv[j];
  }
  __syncthreads();
  normalized_row_gradient(dz + k * E, dzhat, coef, z, R, E, row, nk, k_inv, scratch);
}

// ---- softmax cross-entropy ------------------------------------------------------------------------
// One block per row b (C is the class count: small, read three times from L1): the row max, then
// Σ exp(l − max), Σ t and Σ t·l in double (block_max, block_sum), row_loss[b] = Σt·lse − Σ t·l, and
// dlogits (if not null) = dloss/B · (exp(l − lse)·Σt − t); then sum_kernel's mean over B.

constexpr unsigned kCrossEntropyThreads = 128;

__global__ void __launch_bounds__(kCrossEntropyThreads)
    softmax_cross_entropy_rows_kernel(double* row_loss, float* dlogits, const float* logits, const float* targets, int64_t B, int64_t C,
                                      float dloss) {
  CMAE_SHARED(double, scratch, 32);
  const int64_t b = blockIdx.x;
  const float* l = logits + b * C;
  const float* t = targets + b * C;
  double local_max = -INFINITY;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) local_max = fmax(local_max, static_cast<double>(l[c]));
  const double row_max = block_max(local_max, scratch);
  double local_exp = 0.0, local_t = 0.0, local_tl = 0.0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    local_exp += exp(static_cast<double>(l[c]) - row_max);
    local_t += t[c];
    local_tl += static_cast<double>(t[c]) * l[c];
  }
  const double lse = row_max + log(block_sum(local_exp, scratch));
  const double t_sum = block_sum(local_t, scratch);
  const double tl_sum = block_sum(local_tl, scratch);
  if (threadIdx.x == 0) row_loss[b] = t_sum * lse - tl_sum;
  if (dlogits == nullptr) return;
  const double grad_coef = static_cast<double>(dloss) / static_cast<double>(B);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    dlogits[b * C + c] = static_cast<float>(grad_coef * (exp(static_cast<double>(l[c]) - lse) * t_sum - t[c]));
}

// sum_kernel's finish of infonce_forward_backward: scale · mean_i CE_i.
struct WriteScaledMean {
  float* loss;
  double scale;
  int64_t count;
  __device__ __forceinline__ void operator()(double total) const { *loss = static_cast<float>(scale * total / static_cast<double>(count)); }
};

// ---- DenseCL's dense InfoNCE ---------------------------------------------------------------------
// dense_infonce_forward_backward, three launches: dense_negatives_kernel (one block per sample m:
// n̂_m = normalize(mean_j k[m, j, :]) into scratch, doubles); dense_infonce_rows_kernel (one block
// per query row r = (b, i): q_r staged in shared memory, the positive's dot and norm by block sums,
// a thread per negative m ≠ b for s_m, block_max / block_sum for the cross-entropy, then dq̂ by a
// thread per feature e (negatives in order) and F.normalize's backward); sum_kernel for the mean.
// Dynamic shared memory per block: 8·(B + E) + 4·E bytes.

constexpr unsigned kDenseThreads = 128;

__global__ void __launch_bounds__(kDenseThreads) dense_negatives_kernel(double* neg, const float* k, int64_t Lk, int64_t E) {
  CMAE_SHARED(double, scratch, 32);
  const int64_t m = blockIdx.x;
  double ss = 0.0;
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
    double s = 0.0;
    for (int64_t j = 0; j < Lk; ++j) s += static_cast<double>(k[(m * Lk + j) * E + e]);
    s /= static_cast<double>(Lk);
    neg[m * E + e] = s;
    ss += s * s;
  }
  const double n = sqrt(block_sum(ss, scratch));
  const double inv = 1.0 / (n > kNormalizeEps ? n : kNormalizeEps);
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) neg[m * E + e] *= inv;  // this thread's own entries
}

inline std::size_t dense_infonce_shared_bytes(int64_t B, int64_t E) {
  return static_cast<std::size_t>(B + E) * sizeof(double) + static_cast<std::size_t>(E) * sizeof(float);
}

__global__ void __launch_bounds__(kDenseThreads)
    dense_infonce_rows_kernel(double* row_loss, float* dq, const float* q, const float* k, const int32_t* match, const double* neg,
                              int64_t B, int64_t Lq, int64_t Lk, int64_t E, float tau, float scale, float dloss) {
  CMAE_DYNAMIC_SHARED(double, shared);
  CMAE_SHARED(double, scratch, 32);
  double* const coef = shared;       // (B): s_m, then exp(s_m − max), then d loss/d s_m / τ (0 for the own sample)
  double* const dqhat = shared + B;  // (E): d loss / d q̂_r
  float* const q_row = reinterpret_cast<float*>(shared + B + E);  // (E): q_r
  const int64_t r = blockIdx.x, b = r / Lq;
  const unsigned tid = threadIdx.x;
  const double nq = stage_row<1>(q_row, q + r * E, E, scratch);  // its barriers also publish q_row
  const double q_inv = 1.0 / (nq > kNormalizeEps ? nq : kNormalizeEps);
  const float* kp = k + (b * Lk + match[r]) * E;
  double dot = 0.0, kk = 0.0;
  for (int64_t e = tid; e < E; e += blockDim.x) {
    dot += static_cast<double>(q_row[e]) * kp[e];
    kk += static_cast<double>(kp[e]) * kp[e];
  }
  dot = block_sum(dot, scratch);
  kk = block_sum(kk, scratch);
  const double nk = sqrt(kk);
  const double k_inv = 1.0 / (nk > kNormalizeEps ? nk : kNormalizeEps);
  const double inv_tau = 1.0 / static_cast<double>(tau);
  const double pos = dot * q_inv * k_inv * inv_tau;
  double local_max = pos;
  for (int64_t m = tid; m < B; m += blockDim.x) {
    if (m == b) continue;
    double s = 0.0;
    for (int64_t e = 0; e < E; ++e) s += static_cast<double>(q_row[e]) * neg[m * E + e];
    s *= q_inv * inv_tau;
    coef[m] = s;
    local_max = fmax(local_max, s);
  }
  const double row_max = block_max(local_max, scratch);
  double local_sum = 0.0;
  for (int64_t m = tid; m < B; m += blockDim.x) {
    const double p = m == b ? 0.0 : exp(coef[m] - row_max);
    coef[m] = p;
    local_sum += p;
  }
  const double pos_exp = exp(pos - row_max);
  const double sum = block_sum(local_sum, scratch) + pos_exp;
  if (tid == 0) row_loss[r] = row_max + log(sum) - pos;
  if (dq == nullptr) return;

  const double grad_coef = static_cast<double>(scale) * static_cast<double>(dloss) / static_cast<double>(B * Lq);
  const double inv_sum = 1.0 / sum;
  for (int64_t m = tid; m < B; m += blockDim.x) coef[m] = grad_coef * coef[m] * inv_sum * inv_tau;
  __syncthreads();
  const double c_pos = grad_coef * (pos_exp * inv_sum - 1.0) * k_inv * inv_tau;  // d s₊ / d q̂ = k̂₊/τ
  double local_proj = 0.0;
  for (int64_t e = tid; e < E; e += blockDim.x) {
    double g = c_pos * static_cast<double>(kp[e]);
    for (int64_t m = 0; m < B; ++m) g = fma(coef[m], neg[m * E + e], g);  // the own sample's coefficient is 0
    dqhat[e] = g;
    local_proj += static_cast<double>(q_row[e]) * q_inv * g;
  }
  const double proj = block_sum(local_proj, scratch);
  float* o = dq + r * E;
  for (int64_t e = tid; e < E; e += blockDim.x)
    o[e] = nq >= kNormalizeEps ? static_cast<float>((dqhat[e] - q_row[e] * q_inv * proj) * q_inv) : static_cast<float>(dqhat[e] * q_inv);
}

}  // namespace kernels

CMAE_CUDA_NAMESPACE_END
