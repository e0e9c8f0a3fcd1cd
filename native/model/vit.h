// ViT building blocks with explicit forward and backward (llm.c style): timm's pre-norm Block
// (spec §1.3) stacked, over parameters that live in a ParameterTable arena.
//   y = x + proj(attn(qkv(LN1(x))));  out = y + fc2(GELU(fc1(LN2(y))))
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "parameters.h"
#include "workspace.h"

// Per-phase timing for performance work only: build with -DCMAE_PROFILE (e.g.
// `npx cmake-js compile --out build-prof --CDCMAKE_CXX_FLAGS=-DCMAE_PROFILE`); totals per scope are
// printed to stderr at exit. In normal builds CMAE_PROF(...) expands to nothing.
#ifdef CMAE_PROFILE
#include <chrono>
namespace cmae::model::prof {
void add(const char* name, double seconds);
struct Scope {
  const char* name;
  std::chrono::steady_clock::time_point t0;
  explicit Scope(const char* n) : name(n), t0(std::chrono::steady_clock::now()) {}
  ~Scope() { add(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()); }
};
}  // namespace cmae::model::prof
#define CMAE_PROF_CAT2(a, b) a##b
#define CMAE_PROF_CAT(a, b) CMAE_PROF_CAT2(a, b)
#define CMAE_PROF(name) ::cmae::model::prof::Scope CMAE_PROF_CAT(cmae_prof_scope_, __LINE__)(name)
#else
#define CMAE_PROF(name) ((void)0)
#endif

namespace cmae::model {

// Offsets of one Linear layer's tensors in the arena (bias = -1 when the layer has none).
struct LinearRef {
  int64_t weight = -1, bias = -1;
  int64_t in = 0, out = 0;
};

// Offsets of a LayerNorm/BatchNorm affine pair in the arena.
struct NormRef {
  int64_t weight = -1, bias = -1;
  int64_t dim = 0;
};

// Registers a Linear layer `prefix.weight` [out, in] and `prefix.bias` [out].
LinearRef add_linear(ParameterTable& table, const std::string& prefix, int64_t in, int64_t out, ParamRole role,
                     bool bias = true, InitKind weight_init = InitKind::XavierUniform, InitKind bias_init = InitKind::Zeros);
// Registers a LayerNorm/BatchNorm affine pair `prefix.weight`, `prefix.bias` (ones / zeros).
NormRef add_norm(ParameterTable& table, const std::string& prefix, int64_t dim, ParamRole role);

// Forward/backward of a Linear over R rows with its parameters in `params` (the arena) and its
// gradients accumulated into `grads` (a gradient arena of the same layout).
void linear_fwd(Backend& backend, float* out, const float* inp, const float* params, const LinearRef& l, int64_t R);
// dinp may be null; parameter gradients accumulate.
void linear_bwd(Backend& backend, float* dinp, float* grads, const float* dout, const float* inp, const float* params,
                const LinearRef& l, int64_t R);

class TransformerStack {
 public:
  TransformerStack() = default;
  // Registers `prefix.{i}.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2` for i < depth.
  TransformerStack(ParameterTable& table, const std::string& prefix, int64_t dim, int64_t heads, int64_t depth,
                   int64_t mlp_ratio, ParamRole role);

  // Lays out activations in `backend`'s memory for a (B, N) input. save_all keeps every layer's
  // activations for backward; otherwise all layers share one set (inference, momentum branch).
  // recompute (with save_all; activation checkpointing): keep only each block's output, one set of
  // activations for all blocks, and have the backward run each block's forward again from its
  // input just before its backward — the same kernels on the same inputs, so the same gradients,
  // for about 10× less saved memory per block and one more forward of the stack per step.
  void layout(Bump& bump, Backend& backend, int64_t B, int64_t N, bool save_all, bool recompute = false);

  // x (B, N, D) → returns the output of the last block (B, N, D), inside this stack's workspace.
  // Only samples [b0, b0 + nb) (nb < 0: all); x and the returned buffer are the whole batch's.
  // Two disjoint sample ranges may run at the same time (rows of the same workspace).
  // after_block(i, out), when given, runs once block i's output (B, N, D; the whole batch's buffer,
  // these samples' rows written) is complete, before the next block runs: encode()'s features of
  // the last blocks. It reads out; it must not write the stack's buffers.
  const float* forward(const float* params, const float* x, int64_t b0 = 0, int64_t nb = -1,
                       const std::function<void(int64_t, const float*)>& after_block = {});
  // dres (B, N, D): in = grad of the stack output, out = grad of the stack input (updated in place).
  // x is the same input given to forward. Parameter gradients accumulate into grads.
  // Only samples [b0, b0 + nb) (nb < 0: all): dres and x are still the whole batch's buffers. Two
  // disjoint sample ranges may run at the same time (into different gradient arenas): each uses
  // its own rows of the activations and of the backward scratch.
  // after_block(i), when given, runs once block i's parameter gradients are complete (blocks
  // depth − 1 down to 0): the data-parallel step starts their all-reduce then.
  void backward(float* grads, float* dres, const float* params, const float* x, int64_t b0 = 0, int64_t nb = -1,
                const std::function<void(int64_t)>& after_block = {});
  // Where the stack's parameters lie in the arena: block i's from param_begin(i), all of them
  // before param_end() (depth 0: both where the stack was registered).
  int64_t param_begin(int64_t i) const { return block_begin_[static_cast<size_t>(i)]; }
  int64_t param_end() const { return param_end_; }

  // Drop path (stochastic depth, timm's DropPath) for the forwards and backwards that follow:
  // scales (depth, 2, B) in backend memory hold each sample's factor (0 or 1/keep_prob) on block i's
  // attention branch (row 2i) and MLP branch (row 2i + 1); null (the default) = no drop path. The
  // caller owns the buffer and clears it when the step is done.
  void set_branch_scales(const float* scales) { branch_scales_ = scales; }

  int64_t depth() const { return static_cast<int64_t>(blocks_.size()); }
  // The last forward's output (B, N, D) (valid until the next forward). Requires depth ≥ 1.
  const float* output() const { return outs_.back(); }
  // The last forward's qkv of its last block (B, N, 3D) (valid until the next forward; an inference
  // layout shares one set of activations, so it is the last block's). Requires depth ≥ 1.
  const float* last_qkv() const { return acts_.back().qkv; }
  int64_t dim() const { return dim_; }

 private:
  // One timm Block: y = x + proj(attn(qkv(norm1(x)))); out = y + fc2(GELU(fc1(norm2(y)))).
  struct Block {
    NormRef norm1;
    LinearRef qkv, proj;
    NormRef norm2;
    LinearRef fc1, fc2;
  };
  struct Acts {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *x1, *ln2, *ln2_mean, *ln2_rstd, *h, *g, *out;
  };
  std::vector<Block> blocks_;
  std::vector<int64_t> block_begin_;
  int64_t param_end_ = 0;
  int64_t dim_ = 0, heads_ = 0, hidden_ = 0;
  int64_t B_ = 0, N_ = 0;
  int64_t att_per_sample_ = 0;  // floats of the attention's saved state per sample
  bool save_all_ = false, recompute_ = false;
  Backend* backend_ = nullptr;  // set by layout()
  std::vector<Acts> acts_;
  std::vector<float*> outs_;  // block i's output: acts_[i].out, or (recompute) a buffer of its own
  // The activations block i's forward writes (its own set with save_all, else the shared one).
  Acts& acts_of(int64_t i) { return acts_[save_all_ && !recompute_ ? static_cast<size_t>(i) : 0]; }
  // recompute: block i's forward again, for samples [b0, b0 + nb) from its input inp (the whole
  // batch's buffer), into a, as far as its backward reads (ln1 statistics, qkv, attention, x1, ln2
  // statistics, h): the forward's kernels in the forward's order, so the same bits.
  void recompute_block(int64_t i, Acts& a, const float* params, const float* inp, int64_t b0, int64_t nb);
  float *d_hidden_ = nullptr, *d_qkv_ = nullptr, *d_atty_ = nullptr, *d_ln_ = nullptr;
  float* gelu_ = nullptr;  // save_all: every layer's GELU(h), one layer at a time (layout() says why)
  float* ln_ = nullptr;    // save_all: every LayerNorm output of the stack, one at a time (likewise)
  const float* branch_scales_ = nullptr;
  // Sample b0's factor on block i's branch (0 attention, 1 MLP).
  const float* branch_scale(int64_t i, int branch, int64_t b0) const { return branch_scales_ + (2 * i + branch) * B_ + b0; }
};

constexpr float kLayerNormEps = 1e-6f;  // spec §1.3: eps 1e-6 everywhere

}  // namespace cmae::model
