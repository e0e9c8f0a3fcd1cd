// Float64 references (see reference.h). Straight loops over the definitions: clarity over speed,
// except that inner loops run over contiguous memory so the ViT-sized cases stay fast.
#include "reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace cmae::op_tests::ref {

namespace {
size_t at(int64_t i) { return static_cast<size_t>(i); }
double value_or(const Floats* v, int64_t i, double fallback) { return v ? static_cast<double>((*v)[at(i)]) : fallback; }
Doubles l2_normalize_vjp(const Doubles& dout, const Floats& x, int64_t R, int64_t D, double eps);
}  // namespace

Doubles to_doubles(const Floats& x) { return Doubles(x.begin(), x.end()); }

Floats to_floats(const Doubles& x) {
  Floats out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>(x[i]);
  return out;
}

Doubles plus(const Floats& a, const Doubles& b) {
  Doubles out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = static_cast<double>(a[i]) + b[i];
  return out;
}

// ---- activation ---------------------------------------------------------------------------------

double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

double gelu_grad(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

Doubles gelu(const Floats& x) {
  Doubles out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = gelu(static_cast<double>(x[i]));
  return out;
}

Doubles gelu_backward(const Floats& dout, const Floats& inp) {
  Doubles out(inp.size());
  for (size_t i = 0; i < inp.size(); ++i) out[i] = static_cast<double>(dout[i]) * gelu_grad(static_cast<double>(inp[i]));
  return out;
}

Doubles relu(const Floats& x) {
  Doubles out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] > 0 ? static_cast<double>(x[i]) : 0.0;
  return out;
}

Doubles relu_backward(const Floats& dout, const Floats& out) {
  Doubles d(out.size());
  for (size_t i = 0; i < out.size(); ++i) d[i] = out[i] > 0 ? static_cast<double>(dout[i]) : 0.0;
  return d;
}

// ---- attention ----------------------------------------------------------------------------------

namespace {

// One (b, h) pair: q, k, v as (N, hd) row-major doubles, split from qkv (timm's reshape(B, N, 3, H, hd)).
struct Head {
  Doubles q, k, v;
};

Head split_head(const Floats& qkv, int64_t b, int64_t h, int64_t N, int64_t D, int64_t H) {
  const int64_t hd = D / H;
  Head head{Doubles(at(N * hd)), Doubles(at(N * hd)), Doubles(at(N * hd))};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < hd; ++d) {
      const int64_t src = (b * N + n) * 3 * D + h * hd + d;
      head.q[at(n * hd + d)] = qkv[at(src)];
      head.k[at(n * hd + d)] = qkv[at(src + D)];
      head.v[at(n * hd + d)] = qkv[at(src + 2 * D)];
    }
  return head;
}

// P (N, N) = softmax_j(q_i·k_j·hd^-0.5), probabilities below e^-80 of the row's largest set to 0;
// gap (if given) = each score minus its row's largest.
Doubles probabilities(const Head& head, int64_t N, int64_t hd, double* gap = nullptr, double* lse = nullptr) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  Doubles P(at(N * N));
  for (int64_t i = 0; i < N; ++i) {
    double* row = &P[at(i * N)];
    double max = -INFINITY;
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t d = 0; d < hd; ++d) s += head.q[at(i * hd + d)] * head.k[at(j * hd + d)];
      row[j] = s * scale;
      max = std::max(max, row[j]);
    }
    double sum = 0, unflushed = 0;
    for (int64_t j = 0; j < N; ++j) {
      if (gap) gap[i * N + j] = row[j] - max;
      unflushed += std::exp(row[j] - max);
      row[j] = row[j] - max < -80.0 ? 0.0 : std::exp(row[j] - max);
      sum += row[j];
    }
    if (lse) lse[i] = max + std::log(unflushed);
    for (int64_t j = 0; j < N; ++j) row[j] /= sum;
  }
  return P;
}

}  // namespace

Attention attention_forward(const Floats& qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  const int64_t hd = D / H;
  Attention r{Doubles(at(B * N * D)), Doubles(at(B * H * N * N)), Doubles(at(B * H * N * N)), Doubles(at(B * H * N))};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const Head head = split_head(qkv, b, h, N, D, H);
      const Doubles P = probabilities(head, N, hd, &r.score_gap[at((b * H + h) * N * N)], &r.lse[at((b * H + h) * N)]);
      std::copy(P.begin(), P.end(), r.att.begin() + (b * H + h) * N * N);
      for (int64_t i = 0; i < N; ++i)
        for (int64_t d = 0; d < hd; ++d) {
          double s = 0;
          for (int64_t j = 0; j < N; ++j) s += P[at(i * N + j)] * head.v[at(j * hd + d)];
          r.out[at((b * N + i) * D + h * hd + d)] = s;
        }
    }
  return r;
}

Doubles cls_attention(const Floats& qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  const int64_t hd = D / H;
  Doubles out(at(B * H * (N - 1)));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const Doubles P = probabilities(split_head(qkv, b, h, N, D, H), N, hd);
      std::copy(P.begin() + 1, P.begin() + N, out.begin() + (b * H + h) * (N - 1));  // row 0 (the cls query), keys 1..N−1
    }
  return out;
}

// out_i = Σ_j P_ij v_j, P = softmax(S), S = scale·q·kᵀ:
//   dv_j = Σ_i P_ij dO_i,  dP_ij = dO_i·v_j,  dS_ij = P_ij (dP_ij − Σ_l P_il dP_il),
//   dq_i = scale Σ_j dS_ij k_j,  dk_j = scale Σ_i dS_ij q_i.
Doubles attention_backward(const Floats& dout, const Floats& qkv, int64_t B, int64_t N, int64_t D, int64_t H) {
  const int64_t hd = D / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  Doubles dqkv(at(B * N * 3 * D));
  Doubles dO(at(N * hd)), dP(at(N * N)), dS(at(N * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const Head head = split_head(qkv, b, h, N, D, H);
      const Doubles P = probabilities(head, N, hd);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < hd; ++d) dO[at(n * hd + d)] = dout[at((b * N + n) * D + h * hd + d)];
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t d = 0; d < hd; ++d) s += dO[at(i * hd + d)] * head.v[at(j * hd + d)];
          dP[at(i * N + j)] = s;
        }
      for (int64_t i = 0; i < N; ++i) {
        double dot = 0;
        for (int64_t l = 0; l < N; ++l) dot += P[at(i * N + l)] * dP[at(i * N + l)];
        for (int64_t j = 0; j < N; ++j) dS[at(i * N + j)] = P[at(i * N + j)] * (dP[at(i * N + j)] - dot);
      }
      auto grad = [&](int part, int64_t n, int64_t d) -> double& { return dqkv[at((b * N + n) * 3 * D + part * D + h * hd + d)]; };
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < hd; ++d) {
          double dq = 0, dk = 0, dv = 0;
          for (int64_t m = 0; m < N; ++m) {
            dq += dS[at(n * N + m)] * head.k[at(m * hd + d)];
            dk += dS[at(m * N + n)] * head.q[at(m * hd + d)];
            dv += P[at(m * N + n)] * dO[at(m * hd + d)];
          }
          grad(0, n, d) = dq * scale;
          grad(1, n, d) = dk * scale;
          grad(2, n, d) = dv;
        }
    }
  return dqkv;
}

// ---- linear -------------------------------------------------------------------------------------

Doubles sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const Floats& A, int64_t lda,
              const Floats& B, int64_t ldb, double beta, const Floats& C0, int64_t ldc) {
  // alpha == 0 or K == 0: C = beta·C without reading A or B (they may hold NaN).
  const bool product = alpha != 0.0 && K > 0;
  // op(B) as a dense [K, N] first, so the inner loop runs over contiguous j.
  Doubles opb(product ? at(K * N) : 0);
  if (product)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) opb[at(k * N + j)] = trans_b ? B[at(j * ldb + k)] : B[at(k * ldb + j)];
  Doubles C(C0.begin(), C0.end());
  Doubles row(at(N));
  for (int64_t i = 0; i < M; ++i) {
    std::fill(row.begin(), row.end(), 0.0);
    if (product)
      for (int64_t k = 0; k < K; ++k) {
        const double a = trans_a ? A[at(k * lda + i)] : A[at(i * lda + k)];
        for (int64_t j = 0; j < N; ++j) row[at(j)] += a * opb[at(k * N + j)];
      }
    for (int64_t j = 0; j < N; ++j) {
      double& c = C[at(i * ldc + j)];
      c = alpha * row[at(j)] + (beta == 0.0 ? 0.0 : beta * c);
    }
  }
  return C;
}

Doubles linear_forward(const Floats& inp, const Floats& weight, const Floats* bias, int64_t R, int64_t C, int64_t OC) {
  Doubles w = to_doubles(weight);
  Doubles out(at(R * OC));
  Doubles x(at(C));
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t c = 0; c < C; ++c) x[at(c)] = inp[at(r * C + c)];
    for (int64_t o = 0; o < OC; ++o) {
      const double* wo = &w[at(o * C)];
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += x[at(c)] * wo[c];
      out[at(r * OC + o)] = s + value_or(bias, o, 0.0);
    }
  }
  return out;
}

LinearGrads linear_backward(const Floats& dout, const Floats& inp, const Floats& weight, int64_t R, int64_t C, int64_t OC) {
  LinearGrads g{Doubles(at(R * C)), Doubles(at(OC * C)), Doubles(at(OC))};
  const Doubles w = to_doubles(weight);
  const Doubles x = to_doubles(inp);
  for (int64_t r = 0; r < R; ++r) {
    double* dx = &g.dinp[at(r * C)];
    const double* xr = &x[at(r * C)];
    for (int64_t o = 0; o < OC; ++o) {
      const double dy = dout[at(r * OC + o)];
      g.dbias[at(o)] += dy;
      const double* wo = &w[at(o * C)];
      double* dw = &g.dweight[at(o * C)];
      for (int64_t c = 0; c < C; ++c) {
        dx[c] += dy * wo[c];
        dw[c] += dy * xr[c];
      }
    }
  }
  return g;
}

LinearGrads gelu_linear_backward(const Floats& dout, const Floats& act, const Floats& pre, const Floats& weight, int64_t R,
                                 int64_t C, int64_t OC) {
  LinearGrads g = linear_backward(dout, act, weight, R, C, OC);
  for (size_t i = 0; i < g.dinp.size(); ++i) g.dinp[i] *= gelu_grad(static_cast<double>(pre[i]));
  return g;
}

// ---- loss ---------------------------------------------------------------------------------------

LossAndGrad normpix_mse(const Floats& pred, const Floats& target, const Floats& mask, int64_t B, int64_t L, int64_t P,
                        bool norm_pix, double eps, double dloss) {
  const int64_t rows = B * L;
  Doubles t(at(rows * P));
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, ss = 0;
    for (int64_t i = 0; i < P; ++i) mean += target[at(r * P + i)];
    mean /= static_cast<double>(P);
    for (int64_t i = 0; i < P; ++i) ss += (target[at(r * P + i)] - mean) * (target[at(r * P + i)] - mean);
    const double std_unbiased = std::sqrt(ss / static_cast<double>(P - 1) + eps);
    for (int64_t i = 0; i < P; ++i) {
      const double x = target[at(r * P + i)];
      t[at(r * P + i)] = norm_pix ? (x - mean) / std_unbiased : x;
    }
  }
  double num = 0, den = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t i = 0; i < P; ++i) s += (pred[at(r * P + i)] - t[at(r * P + i)]) * (pred[at(r * P + i)] - t[at(r * P + i)]);
    num += mask[at(r)] * (s / static_cast<double>(P));
    den += mask[at(r)];
  }
  LossAndGrad result{den == 0 ? 0.0 : num / den, Doubles(at(rows * P))};
  if (den == 0) return result;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < P; ++i)
      result.grad[at(r * P + i)] =
          dloss * mask[at(r)] * 2.0 * (pred[at(r * P + i)] - t[at(r * P + i)]) / (static_cast<double>(P) * den);
  return result;
}

LossAndGrad infonce(const Floats& q, const Floats& k, int64_t B, int64_t E, double tau, double scale, double dloss) {
  constexpr double kNormalizeEps = 1e-12;  // F.normalize's default
  const L2Normalize qn = l2_normalize(q, B, E, kNormalizeEps);
  const L2Normalize kn = l2_normalize(k, B, E, kNormalizeEps);
  Doubles logits(at(B * B));
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j) {
      double s = 0;
      for (int64_t e = 0; e < E; ++e) s += qn.out[at(i * E + e)] * kn.out[at(j * E + e)];
      logits[at(i * B + j)] = s / tau;
    }
  double total = 0;
  Doubles dqn(at(B * E));
  for (int64_t i = 0; i < B; ++i) {
    const double* row = &logits[at(i * B)];
    const double max = *std::max_element(row, row + B);
    double sum = 0;
    for (int64_t j = 0; j < B; ++j) sum += std::exp(row[j] - max);
    total += max + std::log(sum) - row[i];
    // d(scale·mean_i CE_i)/d logit_ij = scale/B · (p_ij − [i == j]); logit_ij = q̂_i·k̂_j/τ.
    for (int64_t j = 0; j < B; ++j) {
      const double dlogit = dloss * scale / static_cast<double>(B) * (std::exp(row[j] - max) / sum - (i == j ? 1.0 : 0.0));
      for (int64_t e = 0; e < E; ++e) dqn[at(i * E + e)] += dlogit * kn.out[at(j * E + e)] / tau;
    }
  }
  return {scale * total / static_cast<double>(B), l2_normalize_vjp(dqn, q, B, E, kNormalizeEps)};
}

LossAndGrad dense_infonce(const Doubles& q, const Doubles& k, const Ints& match, int64_t B, int64_t Lq, int64_t Lk, int64_t E,
                          double tau, double scale, double dloss) {
  constexpr double kNormalizeEps = 1e-12;
  const auto normalized = [&](const double* row) {
    double s = 0;
    for (int64_t e = 0; e < E; ++e) s += row[e] * row[e];
    const double n = std::max(std::sqrt(s), kNormalizeEps);
    Doubles out(at(E));
    for (int64_t e = 0; e < E; ++e) out[at(e)] = row[e] / n;
    return out;
  };
  std::vector<Doubles> negatives;  // n̂_m = normalize(mean_j k[m, j, :])
  for (int64_t m = 0; m < B; ++m) {
    Doubles mean(at(E));
    for (int64_t j = 0; j < Lk; ++j)
      for (int64_t e = 0; e < E; ++e) mean[at(e)] += k[at((m * Lk + j) * E + e)] / static_cast<double>(Lk);
    negatives.push_back(normalized(mean.data()));
  }
  const int64_t R = B * Lq;
  double total = 0;
  Doubles dq(at(R * E));
  for (int64_t r = 0; r < R; ++r) {
    const int64_t b = r / Lq;
    const double* qr = &q[at(r * E)];
    const Doubles qn = normalized(qr);
    // Candidate 0 is the positive, then the other samples' pooled keys.
    std::vector<Doubles> candidates{normalized(&k[at((b * Lk + match[at(r)]) * E)])};
    for (int64_t m = 0; m < B; ++m)
      if (m != b) candidates.push_back(negatives[at(m)]);
    Doubles logits;
    for (const Doubles& c : candidates) logits.push_back(std::inner_product(qn.begin(), qn.end(), c.begin(), 0.0) / tau);
    const double max = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (double l : logits) sum += std::exp(l - max);
    total += max + std::log(sum) - logits[0];
    // d(scale·mean_r CE_r)/d logit_c = scale/R · (p_c − [c = 0]); logit_c = q̂·ĉ/τ.
    Doubles dqn(at(E));
    for (size_t c = 0; c < candidates.size(); ++c) {
      const double dlogit = dloss * scale / static_cast<double>(R) * (std::exp(logits[c] - max) / sum - (c == 0 ? 1.0 : 0.0));
      for (int64_t e = 0; e < E; ++e) dqn[at(e)] += dlogit * candidates[c][at(e)] / tau;
    }
    // Through q̂ = q / max(||q||, eps): (dq̂ − q̂(q̂·dq̂))/||q||, or dq̂/eps when clamped.
    double s = 0;
    for (int64_t e = 0; e < E; ++e) s += qr[e] * qr[e];
    const double n = std::sqrt(s);
    const double proj = n >= kNormalizeEps ? std::inner_product(qn.begin(), qn.end(), dqn.begin(), 0.0) : 0.0;
    for (int64_t e = 0; e < E; ++e) dq[at(r * E + e)] = (dqn[at(e)] - qn[at(e)] * proj) / std::max(n, kNormalizeEps);
  }
  return {R > 0 ? scale * total / static_cast<double>(R) : 0.0, dq};
}

LossAndGrad ntxent(const Floats& z, int64_t R, int64_t E, double tau, double scale, double dloss) {
  constexpr double kNormalizeEps = 1e-12;
  const L2Normalize zn = l2_normalize(z, R, E, kNormalizeEps);
  const auto dot = [&](int64_t i, int64_t j) {
    double s = 0;
    for (int64_t e = 0; e < E; ++e) s += zn.out[at(i * E + e)] * zn.out[at(j * E + e)];
    return s / tau;
  };
  double total = 0;
  Doubles dzn(at(R * E));
  for (int64_t i = 0; i < R; ++i) {
    const int64_t pos = (i + R / 2) % R;
    Doubles row(at(R));
    double max = -INFINITY;
    for (int64_t j = 0; j < R; ++j)
      if (j != i) max = std::max(max, row[at(j)] = dot(i, j));
    double sum = 0;
    for (int64_t j = 0; j < R; ++j)
      if (j != i) sum += std::exp(row[at(j)] - max);
    total += max + std::log(sum) - row[at(pos)];
    // logit_ij = ẑ_i·ẑ_j/τ: its gradient reaches both ẑ_i and ẑ_j.
    for (int64_t j = 0; j < R; ++j) {
      if (j == i) continue;
      const double dlogit = dloss * scale / static_cast<double>(R) * (std::exp(row[at(j)] - max) / sum - (j == pos ? 1.0 : 0.0));
      for (int64_t e = 0; e < E; ++e) {
        dzn[at(i * E + e)] += dlogit * zn.out[at(j * E + e)] / tau;
        dzn[at(j * E + e)] += dlogit * zn.out[at(i * E + e)] / tau;
      }
    }
  }
  return {scale * total / static_cast<double>(R), l2_normalize_vjp(dzn, z, R, E, kNormalizeEps)};
}

LossAndGrad softmax_cross_entropy(const Floats& logits, const Floats& targets, int64_t B, int64_t C, double dloss) {
  double total = 0;
  Doubles grad(at(B * C));
  for (int64_t b = 0; b < B; ++b) {
    double max = -INFINITY, sum = 0;
    for (int64_t c = 0; c < C; ++c) max = std::max(max, static_cast<double>(logits[at(b * C + c)]));
    for (int64_t c = 0; c < C; ++c) sum += std::exp(logits[at(b * C + c)] - max);
    const double lse = max + std::log(sum);
    // d(−Σ_k t_k (l_k − lse))/d l_c = −t_c + (Σ_k t_k)·p_c
    for (int64_t k = 0; k < C; ++k) {
      const double t = targets[at(b * C + k)];
      total -= t * (logits[at(b * C + k)] - lse);
      for (int64_t c = 0; c < C; ++c) {
        const double p = std::exp(logits[at(b * C + c)] - lse);
        grad[at(b * C + c)] += dloss / static_cast<double>(B) * t * ((c == k ? -1.0 : 0.0) + p);
      }
    }
  }
  return {total / static_cast<double>(B), grad};
}

// ---- norm ---------------------------------------------------------------------------------------

Norm layernorm(const Floats& x, const Floats& weight, const Floats& bias, int64_t R, int64_t C, double eps) {
  Norm n{Doubles(at(R * C)), Doubles(at(R)), Doubles(at(R)), {}};
  for (int64_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[at(r * C + c)];
    mean /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c) var += (x[at(r * C + c)] - mean) * (x[at(r * C + c)] - mean);
    var /= static_cast<double>(C);
    const double rstd = 1.0 / std::sqrt(var + eps);
    n.mean[at(r)] = mean;
    n.rstd[at(r)] = rstd;
    for (int64_t c = 0; c < C; ++c) n.out[at(r * C + c)] = (x[at(r * C + c)] - mean) * rstd * weight[at(c)] + bias[at(c)];
  }
  return n;
}

// x̂ = (x − μ)·rstd, g = dout·w: dx = rstd·(g − mean_c g − x̂·mean_c(g·x̂)), dw = Σ_r dout·x̂, db = Σ_r dout.
NormGrads layernorm_backward(const Floats& dout, const Floats& x, const Floats& weight, int64_t R, int64_t C, double eps) {
  const Norm stats = layernorm(x, weight, Floats(at(C), 0.0f), R, C, eps);
  NormGrads g{Doubles(at(R * C)), Doubles(at(C)), Doubles(at(C))};
  Doubles xhat(at(C));
  for (int64_t r = 0; r < R; ++r) {
    double g_mean = 0, gx_mean = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double dy = dout[at(r * C + c)];
      xhat[at(c)] = (x[at(r * C + c)] - stats.mean[at(r)]) * stats.rstd[at(r)];
      g_mean += dy * weight[at(c)];
      gx_mean += dy * weight[at(c)] * xhat[at(c)];
      g.dweight[at(c)] += dy * xhat[at(c)];
      g.dbias[at(c)] += dy;
    }
    g_mean /= static_cast<double>(C);
    gx_mean /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c)
      g.dinp[at(r * C + c)] =
          stats.rstd[at(r)] * (static_cast<double>(dout[at(r * C + c)]) * weight[at(c)] - g_mean - xhat[at(c)] * gx_mean);
  }
  return g;
}

Norm batchnorm(const Floats& x, const Floats* weight, const Floats* bias, int64_t B, int64_t C, double eps) {
  Norm n{Doubles(at(B * C)), Doubles(at(C)), Doubles(at(C)), Doubles(at(C))};
  for (int64_t c = 0; c < C; ++c) {
    double mean = 0, ss = 0;
    for (int64_t r = 0; r < B; ++r) mean += x[at(r * C + c)];
    mean /= static_cast<double>(B);
    for (int64_t r = 0; r < B; ++r) ss += (x[at(r * C + c)] - mean) * (x[at(r * C + c)] - mean);
    const double rstd = 1.0 / std::sqrt(ss / static_cast<double>(B) + eps);
    n.mean[at(c)] = mean;
    n.rstd[at(c)] = rstd;
    n.var_unbiased[at(c)] = ss / static_cast<double>(B - 1);
    for (int64_t r = 0; r < B; ++r)
      n.out[at(r * C + c)] = (x[at(r * C + c)] - mean) * rstd * value_or(weight, c, 1.0) + value_or(bias, c, 0.0);
  }
  return n;
}

// The LayerNorm formulas with rows and channels swapped.
NormGrads batchnorm_backward(const Floats& dout, const Floats& x, const Floats* weight, int64_t B, int64_t C, double eps) {
  const Norm stats = batchnorm(x, nullptr, nullptr, B, C, eps);
  NormGrads g{Doubles(at(B * C)), Doubles(at(C)), Doubles(at(C))};
  for (int64_t c = 0; c < C; ++c) {
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t r = 0; r < B; ++r) {
      sum_dy += dout[at(r * C + c)];
      sum_dy_xhat += dout[at(r * C + c)] * (x[at(r * C + c)] - stats.mean[at(c)]) * stats.rstd[at(c)];
    }
    g.dweight[at(c)] = sum_dy_xhat;
    g.dbias[at(c)] = sum_dy;
    const double w = value_or(weight, c, 1.0);
    for (int64_t r = 0; r < B; ++r) {
      const double xhat = (x[at(r * C + c)] - stats.mean[at(c)]) * stats.rstd[at(c)];
      g.dinp[at(r * C + c)] = w * stats.rstd[at(c)] *
                              (dout[at(r * C + c)] - sum_dy / static_cast<double>(B) - xhat * sum_dy_xhat / static_cast<double>(B));
    }
  }
  return g;
}

Doubles batchnorm_inference(const Floats& x, const Floats& running_mean, const Floats& running_var, const Floats* weight,
                            const Floats* bias, int64_t B, int64_t C, double eps) {
  Doubles out(at(B * C));
  for (int64_t r = 0; r < B; ++r)
    for (int64_t c = 0; c < C; ++c)
      out[at(r * C + c)] = (static_cast<double>(x[at(r * C + c)]) - running_mean[at(c)]) / std::sqrt(running_var[at(c)] + eps) *
                               value_or(weight, c, 1.0) +
                           value_or(bias, c, 0.0);
  return out;
}

Doubles running_update(const Floats& running, const Doubles& stat, double momentum) {
  Doubles out(running.size());
  for (size_t i = 0; i < running.size(); ++i) out[i] = (1.0 - momentum) * running[i] + momentum * stat[i];
  return out;
}

// ---- optim --------------------------------------------------------------------------------------

// torch/optim/adamw.py, _single_tensor_adamw: param.mul_(1 − lr·wd); exp_avg.lerp_(grad, 1 − β1);
// exp_avg_sq.mul_(β2).addcmul_(grad, grad, 1 − β2); denom = sqrt(exp_avg_sq)/sqrt(bc2) + eps;
// param.addcdiv_(exp_avg, denom, −lr/bc1).
AdamW adamw(const Floats& params, const Floats& m, const Floats& v, const Floats& grads, const Floats* decay_mask,
            const AdamWStep& step, double grad_scale) {
  const double lr = step.lr, beta1 = step.beta1, beta2 = step.beta2, eps = step.eps, wd = step.weight_decay;
  const double bc1 = step.bias_correction1, bc2 = step.bias_correction2;
  AdamW r{to_doubles(params), to_doubles(m), to_doubles(v)};
  for (size_t i = 0; i < params.size(); ++i) {
    const double g = grad_scale * grads[i];
    r.params[i] *= 1.0 - lr * wd * value_or(decay_mask, static_cast<int64_t>(i), 1.0);
    r.m[i] += (g - r.m[i]) * (1.0 - beta1);
    r.v[i] = r.v[i] * beta2 + (1.0 - beta2) * g * g;
    const double denom = std::sqrt(r.v[i]) / std::sqrt(bc2) + eps;
    r.params[i] -= lr / bc1 * r.m[i] / denom;
  }
  return r;
}

Doubles ema(const Floats& target, const Floats& online, double momentum) {
  Doubles out(target.size());
  for (size_t i = 0; i < target.size(); ++i) out[i] = momentum * target[i] + (1.0 - momentum) * online[i];
  return out;
}

double global_norm(const Floats& grads) {
  double s = 0;
  for (float g : grads) s += static_cast<double>(g) * g;
  return std::sqrt(s);
}

double clip_coefficient(double norm, double max_norm) { return std::min(1.0, max_norm / (norm + 1e-6)); }

// ---- patch --------------------------------------------------------------------------------------

namespace {
// Offset of pixel (c, py, px) inside a patch of P = p·p·C values.
int64_t pixel_in_patch(PatchLayout layout, int64_t C, int64_t p, int64_t c, int64_t py, int64_t px) {
  return layout == PatchLayout::PixelsLast ? (py * p + px) * C + c : (c * p + py) * p + px;
}

// Calls fn(image index, patch index) for every pixel: MAE's reshape(B, C, h, p, w, p) + einsum.
template <typename Fn>
void for_each_pixel(int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout, Fn&& fn) {
  const int64_t gw = W / p, L = (Hh / p) * gw, P = p * p * C;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < Hh; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t l = (y / p) * gw + x / p;
          fn(((b * C + c) * Hh + y) * W + x, (b * L + l) * P + pixel_in_patch(layout, C, p, c, y % p, x % p));
        }
}
}  // namespace

Doubles patchify(const Floats& images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout) {
  Doubles out(images.size());
  for_each_pixel(B, C, Hh, W, p, layout, [&](int64_t image, int64_t patch) { out[at(patch)] = images[at(image)]; });
  return out;
}

Doubles unpatchify(const Floats& patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, PatchLayout layout) {
  Doubles out(patches.size());
  for_each_pixel(B, C, Hh, W, p, layout, [&](int64_t image, int64_t patch) { out[at(image)] = patches[at(patch)]; });
  return out;
}

Doubles patchify_visible(const Floats& images, const Ints& ids, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p, int64_t K,
                         PatchLayout layout) {
  const Doubles all = patchify(images, B, C, Hh, W, p, layout);
  const int64_t L = (Hh / p) * (W / p), P = p * p * C;
  Doubles out(at(B * K * P));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t l = ids[at(b * K + k)];
      for (int64_t e = 0; e < P; ++e) out[at((b * K + k) * P + e)] = all[at((b * L + l) * P + e)];
    }
  return out;
}

// Stable argsort of the group noise (NaN after every number), keep the first keep_groups groups;
// then kept patches ascending, masked patches ascending.
Masking random_masking(const Floats& noise, int64_t B, int64_t grid_h, int64_t grid_w, int64_t group, int64_t keep_groups) {
  const int64_t gw = grid_w / group, G = (grid_h / group) * gw, L = grid_h * grid_w, K = keep_groups * group * group;
  Masking m{Ints(at(B * K)), Ints(at(B * L)), Doubles(at(B * L))};
  for (int64_t b = 0; b < B; ++b) {
    const float* n = &noise[at(b * G)];
    std::vector<int64_t> order(at(G));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
      if (std::isnan(n[x])) return false;  // NaN is never before anything
      if (std::isnan(n[y])) return true;
      return n[x] < n[y];
    });
    std::vector<bool> kept_group(at(G), false);
    for (int64_t i = 0; i < keep_groups; ++i) kept_group[at(order[at(i)])] = true;
    std::vector<int32_t> sequence;  // kept patches ascending, then masked ascending
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t l = 0; l < L; ++l) {
        const bool kept = kept_group[at(((l / grid_w) / group) * gw + (l % grid_w) / group)];
        if (kept == (pass == 0)) sequence.push_back(static_cast<int32_t>(l));
      }
    for (int64_t k = 0; k < K; ++k) m.ids_keep[at(b * K + k)] = sequence[at(k)];
    for (int64_t s = 0; s < L; ++s) {
      const int64_t l = sequence[at(s)];
      m.ids_restore[at(b * L + l)] = static_cast<int32_t>(s);
      m.mask[at(b * L + l)] = s < K ? 0.0 : 1.0;
    }
  }
  return m;
}

Doubles gather_visible_forward(const Floats& out_before, const Floats& tokens, const Floats* pos, const Ints& ids_keep, int64_t B,
                               int64_t L, int64_t K, int64_t D, int64_t prefix) {
  Doubles out = to_doubles(out_before);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t l = ids_keep[at(b * K + k)];
      for (int64_t d = 0; d < D; ++d)
        out[at((b * (prefix + K) + prefix + k) * D + d)] =
            static_cast<double>(tokens[at((b * L + l) * D + d)]) + value_or(pos, l * D + d, 0.0);
    }
  return out;
}

Doubles add_positions(const Floats& out_before, const Floats& tokens, const Floats* pos, const Ints& ids, int64_t B, int64_t K,
                      int64_t D, int64_t prefix) {
  Doubles out = to_doubles(out_before);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t d = 0; d < D; ++d)
        out[at((b * (prefix + K) + prefix + k) * D + d)] =
            static_cast<double>(tokens[at((b * K + k) * D + d)]) + (pos ? value_or(pos, ids[at(b * K + k)] * D + d, 0.0) : 0.0);
  return out;
}

Doubles gather_visible_backward(const Floats& dout, const Ints& ids_keep, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  Doubles dtokens(at(B * L * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t l = ids_keep[at(b * K + k)];
      for (int64_t d = 0; d < D; ++d) dtokens[at((b * L + l) * D + d)] += dout[at((b * (prefix + K) + prefix + k) * D + d)];
    }
  return dtokens;
}

Doubles unshuffle_forward(const Floats& inp, const Floats& mask_token, const Floats* pos, const Floats* pos_prefix,
                          const Ints& ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) {
  Doubles out(at(B * (prefix + L) * D));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t n = 0; n < prefix; ++n)
      for (int64_t d = 0; d < D; ++d)
        out[at((b * (prefix + L) + n) * D + d)] =
            static_cast<double>(inp[at((b * (prefix + K) + n) * D + d)]) + value_or(pos_prefix, n * D + d, 0.0);
    for (int64_t l = 0; l < L; ++l) {
      const int64_t r = ids_restore[at(b * L + l)];
      for (int64_t d = 0; d < D; ++d) {
        const double token = r < K ? inp[at((b * (prefix + K) + prefix + r) * D + d)] : mask_token[at(d)];
        out[at((b * (prefix + L) + prefix + l) * D + d)] = token + value_or(pos, l * D + d, 0.0);
      }
    }
  }
  return out;
}

UnshuffleGrads unshuffle_backward(const Floats& dout, const Ints& ids_restore, int64_t B, int64_t L, int64_t K, int64_t D,
                                  int64_t prefix) {
  UnshuffleGrads g{Doubles(at(B * (prefix + K) * D)), Doubles(at(D))};
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t n = 0; n < prefix; ++n)
      for (int64_t d = 0; d < D; ++d) g.dinp[at((b * (prefix + K) + n) * D + d)] = dout[at((b * (prefix + L) + n) * D + d)];
    for (int64_t l = 0; l < L; ++l) {
      const int64_t r = ids_restore[at(b * L + l)];
      for (int64_t d = 0; d < D; ++d) {
        const double dy = dout[at((b * (prefix + L) + prefix + l) * D + d)];
        if (r < K) g.dinp[at((b * (prefix + K) + prefix + r) * D + d)] += dy;
        else g.dmask_token[at(d)] += dy;
      }
    }
  }
  return g;
}

// ---- pool ---------------------------------------------------------------------------------------

Doubles mean_pool(const Floats& inp, int64_t B, int64_t N, int64_t D, int64_t start) {
  Doubles out(at(B * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      double s = 0;
      for (int64_t n = start; n < N; ++n) s += inp[at((b * N + n) * D + d)];
      out[at(b * D + d)] = s / static_cast<double>(N - start);
    }
  return out;
}

Doubles mean_pool_backward(const Floats& dout, int64_t B, int64_t N, int64_t D, int64_t start) {
  Doubles dinp(at(B * N * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = start; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) dinp[at((b * N + n) * D + d)] = dout[at(b * D + d)] / static_cast<double>(N - start);
  return dinp;
}

L2Normalize l2_normalize(const Floats& x, int64_t R, int64_t D, double eps) {
  L2Normalize r{Doubles(at(R * D)), Doubles(at(R))};
  for (int64_t i = 0; i < R; ++i) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += static_cast<double>(x[at(i * D + d)]) * x[at(i * D + d)];
    r.norm[at(i)] = std::sqrt(s);
    const double denom = std::max(r.norm[at(i)], eps);
    for (int64_t d = 0; d < D; ++d) r.out[at(i * D + d)] = x[at(i * D + d)] / denom;
  }
  return r;
}

Ints match_tokens(const Floats& a, int64_t a_stride, const Floats& k, int64_t k_stride, int64_t B, int64_t La, int64_t Lk, int64_t D,
                  Doubles* margin) {
  Ints match(at(B * La));
  if (margin) margin->assign(at(B * La), INFINITY);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < La; ++i) {
      Doubles cosine(at(Lk));  // a_i·k_j/max(||k_j||, eps): a_i's norm cannot change the argmax
      for (int64_t j = 0; j < Lk; ++j) {
        double dot = 0, ss = 0;
        for (int64_t d = 0; d < D; ++d) {
          const double kv = k[at(b * k_stride + j * D + d)];
          dot += static_cast<double>(a[at(b * a_stride + i * D + d)]) * kv;
          ss += kv * kv;
        }
        cosine[at(j)] = dot / std::max(std::sqrt(ss), 1e-12);
      }
      const auto best = std::max_element(cosine.begin(), cosine.end());  // the first of equal maxima
      match[at(b * La + i)] = static_cast<int32_t>(best - cosine.begin());
      if (margin)
        for (double c : cosine)
          if (c != *best) (*margin)[at(b * La + i)] = std::min((*margin)[at(b * La + i)], *best - c);
    }
  return match;
}

namespace {
// y = x / max(n, eps): n >= eps gives dy/dx = (I − x̂x̂ᵀ)/n; below eps the clamp is constant: I/eps.
Doubles l2_normalize_vjp(const Doubles& dout, const Floats& x, int64_t R, int64_t D, double eps) {
  const L2Normalize f = l2_normalize(x, R, D, eps);
  Doubles dinp(at(R * D));
  for (int64_t i = 0; i < R; ++i) {
    const double n = f.norm[at(i)];
    if (n < eps) {
      for (int64_t d = 0; d < D; ++d) dinp[at(i * D + d)] = dout[at(i * D + d)] / eps;
      continue;
    }
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += f.out[at(i * D + d)] * dout[at(i * D + d)];
    for (int64_t d = 0; d < D; ++d) dinp[at(i * D + d)] = (dout[at(i * D + d)] - f.out[at(i * D + d)] * dot) / n;
  }
  return dinp;
}
}  // namespace

Doubles l2_normalize_backward(const Floats& dout, const Floats& x, int64_t R, int64_t D, double eps) {
  return l2_normalize_vjp(to_doubles(dout), x, R, D, eps);
}

// ---- rows ---------------------------------------------------------------------------------------

Doubles add(const Floats& dst, const Floats& src) {
  Doubles out(dst.size());
  for (size_t i = 0; i < dst.size(); ++i) out[i] = static_cast<double>(dst[i]) + src[i];
  return out;
}

Doubles column_sums_add(const Floats& dst, const Floats& src, int64_t R, int64_t C, int64_t ld) {
  Doubles out = to_doubles(dst);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) out[at(c)] += src[at(r * ld + c)];
  return out;
}

Doubles transpose_add(const Floats& dst, const Floats& src, int64_t R, int64_t C) {
  Doubles out = to_doubles(dst);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) out[at(c * R + r)] += src[at(r * C + c)];
  return out;
}

Doubles broadcast_row(const Floats& dst_before, int64_t ld, const Floats& row, int64_t count, int64_t D) {
  Doubles out = to_doubles(dst_before);
  for (int64_t i = 0; i < count; ++i)
    for (int64_t d = 0; d < D; ++d) out[at(i * ld + d)] = row[at(d)];
  return out;
}

Doubles scale_rows(const Floats& src, const Floats& scale, int64_t R, int64_t n) {
  Doubles out(src.size());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < n; ++i) out[at(r * n + i)] = static_cast<double>(scale[at(r)]) * src[at(r * n + i)];
  return out;
}

}  // namespace cmae::op_tests::ref
