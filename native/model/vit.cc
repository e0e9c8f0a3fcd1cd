#include "vit.h"

#ifdef CMAE_PROFILE
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#endif

namespace cmae::model {

#ifdef CMAE_PROFILE
namespace prof {
namespace {
struct Totals {
  std::mutex mu;
  std::map<std::string, std::pair<double, long>> t;
};
Totals& totals() {
  static Totals t;
  return t;
}
// Prints and clears the totals (called every CMAE_PROFILE_EVERY whole steps, default 8).
void dump_locked(Totals& tt) {
  std::vector<std::pair<std::string, std::pair<double, long>>> v(tt.t.begin(), tt.t.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::fprintf(stderr, "[cmae profile] scope                         total ms   calls   ms/call\n");
  for (const auto& e : v)
    std::fprintf(stderr, "[cmae profile] %-28s %10.1f %7ld %9.3f\n", e.first.c_str(), e.second.first * 1e3, e.second.second,
                 e.second.first * 1e3 / static_cast<double>(e.second.second));
  tt.t.clear();
}
}  // namespace
void add(const char* name, double seconds) {
  Totals& t = totals();
  std::lock_guard<std::mutex> lock(t.mu);
  auto& e = t.t[name];
  e.first += seconds;
  e.second += 1;
  static const long every = std::getenv("CMAE_PROFILE_EVERY") ? std::atol(std::getenv("CMAE_PROFILE_EVERY")) : 8;
  if (std::string(name) == "M.STEP" && every > 0 && e.second % every == 0) dump_locked(t);
}
}  // namespace prof
#endif

LinearRef add_linear(ParameterTable& table, const std::string& prefix, int64_t in, int64_t out, ParamRole role, bool bias,
                     InitKind weight_init, InitKind bias_init) {
  LinearRef ref;
  ref.in = in;
  ref.out = out;
  const bool trainable = role == ParamRole::Trainable;
  ref.weight = table.add(prefix + ".weight", {out, in}, role, trainable ? weight_init : InitKind::Copy, true, in, out);
  if (bias) ref.bias = table.add(prefix + ".bias", {out}, role, trainable ? bias_init : InitKind::Copy, false, in, out);
  return ref;
}

NormRef add_norm(ParameterTable& table, const std::string& prefix, int64_t dim, ParamRole role) {
  NormRef ref;
  ref.dim = dim;
  const bool trainable = role == ParamRole::Trainable;
  ref.weight = table.add(prefix + ".weight", {dim}, role, trainable ? InitKind::Ones : InitKind::Copy);
  ref.bias = table.add(prefix + ".bias", {dim}, role, trainable ? InitKind::Zeros : InitKind::Copy);
  return ref;
}

void linear_fwd(Backend& backend, float* out, const float* inp, const float* params, const LinearRef& l, int64_t R) {
  backend.linear_forward(out, inp, params + l.weight, l.bias >= 0 ? params + l.bias : nullptr, R, l.in, l.out);
}

void linear_bwd(Backend& backend, float* dinp, float* grads, const float* dout, const float* inp, const float* params,
                const LinearRef& l, int64_t R) {
  backend.linear_backward(dinp, grads + l.weight, l.bias >= 0 ? grads + l.bias : nullptr, dout, inp, params + l.weight, R, l.in,
                          l.out);
}

TransformerStack::TransformerStack(ParameterTable& table, const std::string& prefix, int64_t dim, int64_t heads,
                                   int64_t depth, int64_t mlp_ratio, ParamRole role)
    : dim_(dim), heads_(heads), hidden_(dim * mlp_ratio) {
  CMAE_CHECK(dim % heads == 0, Value, prefix, ": width ", dim, " is not divisible by ", heads, " heads");
  for (int64_t i = 0; i < depth; ++i) {
    const std::string p = prefix + "." + std::to_string(i);
    block_begin_.push_back(table.total());
    Block b;
    b.norm1 = add_norm(table, p + ".norm1", dim, role);
    b.qkv = add_linear(table, p + ".attn.qkv", dim, 3 * dim, role);
    b.proj = add_linear(table, p + ".attn.proj", dim, dim, role);
    b.norm2 = add_norm(table, p + ".norm2", dim, role);
    b.fc1 = add_linear(table, p + ".mlp.fc1", dim, hidden_, role);
    b.fc2 = add_linear(table, p + ".mlp.fc2", hidden_, dim, role);
    blocks_.push_back(b);
  }
  param_end_ = table.total();
  block_begin_.push_back(param_end_);  // (param_begin(depth) = param_end())
}

void TransformerStack::layout(Bump& bump, Backend& backend, int64_t B, int64_t N, bool save_all, bool recompute) {
  CMAE_CHECK(save_all || !recompute, Internal, "recomputed activations are for a stack laid out for backward");
  backend_ = &backend;
  B_ = B;
  N_ = N;
  save_all_ = save_all;
  recompute_ = recompute;
  att_per_sample_ = backend.attention_saved_floats(1, N, heads_);
  const int64_t D = dim_;
  const int64_t sets = save_all && !recompute ? depth() : (depth() > 0 ? 1 : 0);
  acts_.assign(static_cast<size_t>(sets), Acts{});
  // GELU(h) is not kept per layer for backward: fc2 consumes it at once in the forward, and the
  // backward recomputes it from h (the same vectorised GELU as the GEMM epilogue's, so the same
  // bits) into this one buffer just before fc2's weight gradient. One R x 4D buffer instead of one
  // per layer: 0.1 GB of a tiny model's training workspace at batch 64 (then 0.54 GB), for an
  // element-wise pass per layer (under 1 % of a step).
  gelu_ = save_all && depth() > 0 ? bump.take_samples(N * hidden_, B) : nullptr;
  // Nor are the LayerNorm outputs: each is consumed by the product right after it, and the
  // backward recomputes it from the saved input and statistics (the same row function, so the same
  // bits) just before that product's weight gradient. Every LayerNorm of the stack writes this one
  // R x D buffer: 2 x depth - 1 buffers fewer (19 MB of a tiny encoder at batch 64) for two
  // LayerNorm passes per block in the backward.
  ln_ = save_all && depth() > 0 ? bump.take_samples(N * D, B) : nullptr;
  for (Acts& a : acts_) {
    a.ln1 = save_all ? ln_ : bump.take_samples(N * D, B);
    a.ln1_mean = bump.take_samples(N, B);
    a.ln1_rstd = bump.take_samples(N, B);
    a.qkv = bump.take_samples(N * 3 * D, B);
    a.att = bump.take_samples(att_per_sample_, B);
    a.atty = bump.take_samples(N * D, B);
    a.x1 = bump.take_samples(N * D, B);
    a.ln2 = save_all ? ln_ : bump.take_samples(N * D, B);
    a.ln2_mean = bump.take_samples(N, B);
    a.ln2_rstd = bump.take_samples(N, B);
    a.h = bump.take_samples(N * hidden_, B);
    // Inference keeps no activations for backward: GELU runs in place (one 4·R·D buffer less to
    // stream through memory).
    a.g = save_all ? gelu_ : a.h;
    a.out = recompute ? nullptr : bump.take_samples(N * D, B);  // (recompute: each block's own, below)
  }
  outs_.assign(static_cast<size_t>(depth()), nullptr);
  for (int64_t i = 0; i < depth(); ++i) outs_[static_cast<size_t>(i)] = recompute ? bump.take_samples(N * D, B) : acts_of(i).out;
  if (save_all) {
    d_hidden_ = bump.take_samples(N * hidden_, B);
    d_qkv_ = bump.take_samples(N * 3 * D, B);
    d_atty_ = bump.take_samples(N * D, B);
    d_ln_ = bump.take_samples(N * D, B);
  }
}

const float* TransformerStack::forward(const float* params, const float* x, int64_t b0, int64_t nb,
                                       const std::function<void(int64_t, const float*)>& after_block) {
  if (depth() == 0) return x;
  if (nb < 0) nb = B_ - b0;
  CMAE_CHECK(b0 >= 0 && b0 + nb <= B_, Internal, "stack forward: samples [", b0, ", ", b0 + nb, ") outside the batch of ", B_);
  Backend& be = *backend_;
  const int64_t D = dim_, R = nb * N_, r0 = b0 * N_;
  const int64_t att0 = b0 * att_per_sample_;
  // Row r0 of each (·, width) buffer.
  auto rows = [r0](float* base, int64_t width) { return base + r0 * width; };
  const float* inp = x + r0 * D;
  {
    const Block& b = blocks_[0];
    Acts& a = acts_of(0);
    CMAE_PROF("f.ln");
    be.layernorm_forward(rows(a.ln1, D), a.ln1_mean + r0, a.ln1_rstd + r0, inp, params + b.norm1.weight, params + b.norm1.bias, R, D,
                         kLayerNormEps);
  }
  for (int64_t i = 0; i < depth(); ++i) {
    const Block& b = blocks_[i];
    Acts& a = acts_of(i);
    float* ln1 = rows(a.ln1, D);
    float* qkv = rows(a.qkv, 3 * D);
    float* atty = rows(a.atty, D);
    float* x1 = rows(a.x1, D);
    float* ln2 = rows(a.ln2, D);
    float* h = rows(a.h, hidden_);
    float* g = rows(a.g, hidden_);
    float* out = rows(outs_[static_cast<size_t>(i)], D);
    // ln1 (LayerNorm of inp) was written by the previous block's fused residual pass (or above).
    { CMAE_PROF("f.qkv"); linear_fwd(be, qkv, ln1, params, b.qkv, R); }
    { CMAE_PROF("f.attn"); be.attention_forward(atty, a.att + att0, qkv, nb, N_, D, heads_); }
    { CMAE_PROF("f.proj"); linear_fwd(be, x1, atty, params, b.proj, R); }
    if (branch_scales_) be.scale_rows(x1, x1, branch_scale(i, 0, b0), nb, N_ * D);
    // x1 = inp + proj(...), ln2 = LayerNorm(x1): one pass.
    { CMAE_PROF("f.res_ln"); be.residual_layernorm_forward(x1, ln2, a.ln2_mean + r0, a.ln2_rstd + r0, x1, inp, params + b.norm2.weight,
                                                          params + b.norm2.bias, R, D, kLayerNormEps); }
    {
      // h = fc1(ln2) and g = GELU(h) in one pass (GELU in the GEMM epilogue); inference keeps only g.
      CMAE_PROF("f.fc1_gelu");
      be.linear_gelu_forward(save_all_ ? h : nullptr, g, ln2, params + b.fc1.weight, params + b.fc1.bias, R, b.fc1.in, b.fc1.out);
    }
    // In inference mode out may be this block's input buffer: inp is fully consumed by now.
    { CMAE_PROF("f.fc2"); linear_fwd(be, out, g, params, b.fc2, R); }
    if (branch_scales_) be.scale_rows(out, out, branch_scale(i, 1, b0), nb, N_ * D);
    if (i + 1 < depth()) {
      // out = x1 + fc2(...), and the next block's ln1 = LayerNorm(out): one pass.
      const Block& next = blocks_[i + 1];
      Acts& na = acts_of(i + 1);
      CMAE_PROF("f.res_ln");
      be.residual_layernorm_forward(out, rows(na.ln1, D), na.ln1_mean + r0, na.ln1_rstd + r0, out, x1, params + next.norm1.weight,
                                    params + next.norm1.bias, R, D, kLayerNormEps);
    } else {
      CMAE_PROF("f.resid");
      be.add_inplace(out, x1, R * D);
    }
    if (after_block) after_block(i, outs_[static_cast<size_t>(i)]);
    inp = out;
  }
  return outs_.back();
}

void TransformerStack::recompute_block(int64_t i, Acts& a, const float* params, const float* inp, int64_t b0, int64_t nb) {
  Backend& be = *backend_;
  const Block& b = blocks_[i];
  const int64_t D = dim_, R = nb * N_, r0 = b0 * N_;
  auto rows = [r0](float* base, int64_t width) { return base + r0 * width; };
  inp += r0 * D;
  float* x1 = rows(a.x1, D);
  CMAE_PROF("b.recompute");
  be.layernorm_forward(rows(a.ln1, D), a.ln1_mean + r0, a.ln1_rstd + r0, inp, params + b.norm1.weight, params + b.norm1.bias, R, D,
                       kLayerNormEps);
  linear_fwd(be, rows(a.qkv, 3 * D), rows(a.ln1, D), params, b.qkv, R);
  be.attention_forward(rows(a.atty, D), a.att + b0 * att_per_sample_, rows(a.qkv, 3 * D), nb, N_, D, heads_);
  linear_fwd(be, x1, rows(a.atty, D), params, b.proj, R);
  if (branch_scales_) be.scale_rows(x1, x1, branch_scale(i, 0, b0), nb, N_ * D);
  be.residual_layernorm_forward(x1, rows(a.ln2, D), a.ln2_mean + r0, a.ln2_rstd + r0, x1, inp, params + b.norm2.weight,
                                params + b.norm2.bias, R, D, kLayerNormEps);
  be.linear_gelu_forward(rows(a.h, hidden_), rows(a.g, hidden_), rows(a.ln2, D), params + b.fc1.weight, params + b.fc1.bias, R, b.fc1.in,
                         b.fc1.out);
}

void TransformerStack::backward(float* grads, float* dres, const float* params, const float* x, int64_t b0, int64_t nb,
                                const std::function<void(int64_t)>& after_block) {
  CMAE_CHECK(save_all_, Internal, "backward through a stack laid out for inference");
  if (nb < 0) nb = B_ - b0;
  CMAE_CHECK(b0 >= 0 && b0 + nb <= B_, Internal, "stack backward: samples [", b0, ", ", b0 + nb, ") outside the batch of ", B_);
  Backend& be = *backend_;
  const int64_t D = dim_, R = nb * N_, r0 = b0 * N_;
  const int64_t att0 = b0 * att_per_sample_;
  dres += r0 * D;
  float* d_hidden = d_hidden_ + r0 * hidden_;
  float* d_qkv = d_qkv_ + r0 * 3 * D;
  float* d_atty = d_atty_ + r0 * D;
  float* d_ln = d_ln_ + r0 * D;
  for (int64_t i = depth() - 1; i >= 0; --i) {
    const Block& b = blocks_[i];
    Acts& a = acts_of(i);
    const float* block_input = i == 0 ? x : outs_[static_cast<size_t>(i - 1)];
    if (recompute_) recompute_block(i, a, params, block_input, b0, nb);
    const float* inp = block_input + r0 * D;
    float* ln = ln_ + r0 * D;  // ln2, then ln1, recomputed
    const float* qkv = a.qkv + r0 * 3 * D;
    const float* atty = a.atty + r0 * D;
    const float* x1 = a.x1 + r0 * D;
    const float* h = a.h + r0 * hidden_;
    float* g = gelu_ + r0 * hidden_;
    { CMAE_PROF("b.gelu_recompute"); be.gelu_forward(g, h, R * hidden_); }
    {
      // MLP branch: dres is the grad of out = x1 + s·fc2(gelu(fc1(ln2(x1)))) (s: drop path's factor,
      // 1 without it; the branch's gradient s·dres goes through d_atty, free until the attention's).
      // d_hidden = (dres · W2) ⊙ GELU'(h) in one pass (derivative in the GEMM epilogue).
      CMAE_PROF("b.fc2_gelu");
      const float* d_branch = dres;
      if (branch_scales_) {
        be.scale_rows(d_atty, dres, branch_scale(i, 1, b0), nb, N_ * D);
        d_branch = d_atty;
      }
      be.gelu_linear_backward(d_hidden, grads + b.fc2.weight, grads + b.fc2.bias, d_branch, g, h, params + b.fc2.weight, R, b.fc2.in,
                              b.fc2.out);
    }
    { CMAE_PROF("b.ln_recompute"); be.layernorm_forward(ln, a.ln2_mean + r0, a.ln2_rstd + r0, x1, params + b.norm2.weight,
                                                        params + b.norm2.bias, R, D, kLayerNormEps); }
    { CMAE_PROF("b.fc1"); linear_bwd(be, d_ln, grads, d_hidden, ln, params, b.fc1, R); }
    { CMAE_PROF("b.ln"); be.layernorm_backward(dres, grads + b.norm2.weight, grads + b.norm2.bias, d_ln, x1, params + b.norm2.weight,
                                               a.ln2_mean + r0, a.ln2_rstd + r0, R, D, /*accumulate_dinp=*/true); }
    // Attention branch: dres is now the grad of x1 = x + s·proj(attn(qkv(ln1(x)))) (s·dres through
    // d_ln, free until the qkv product's input gradient).
    {
      CMAE_PROF("b.proj");
      const float* d_branch = dres;
      if (branch_scales_) {
        be.scale_rows(d_ln, dres, branch_scale(i, 0, b0), nb, N_ * D);
        d_branch = d_ln;
      }
      linear_bwd(be, d_atty, grads, d_branch, atty, params, b.proj, R);
    }
    { CMAE_PROF("b.attn"); be.attention_backward(d_qkv, d_atty, qkv, a.att + att0, nb, N_, D, heads_); }
    { CMAE_PROF("b.ln_recompute"); be.layernorm_forward(ln, a.ln1_mean + r0, a.ln1_rstd + r0, inp, params + b.norm1.weight,
                                                        params + b.norm1.bias, R, D, kLayerNormEps); }
    { CMAE_PROF("b.qkv"); linear_bwd(be, d_ln, grads, d_qkv, ln, params, b.qkv, R); }
    { CMAE_PROF("b.ln"); be.layernorm_backward(dres, grads + b.norm1.weight, grads + b.norm1.bias, d_ln, inp, params + b.norm1.weight,
                                               a.ln1_mean + r0, a.ln1_rstd + r0, R, D, /*accumulate_dinp=*/true); }
    if (after_block) after_block(i);
  }
}

}  // namespace cmae::model
