#include "cmae_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "core/rng.h"
#include "core/threads.h"
#include "ops/activation.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/patch.h"

namespace cmae::model {

namespace {

// out (B, L, C) = in (B, 1+L, C) without the cls row of each sample.
void drop_prefix_row(float* out, const float* in, int64_t B, int64_t L, int64_t C) {
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) std::memcpy(out + b * L * C, in + (b * (L + 1) + 1) * C, sizeof(float) * L * C);
  });
}

// din (B, 1+L, C) = dout (B, L, C) with a zero gradient for each cls row (=).
void drop_prefix_row_backward(float* din, const float* dout, int64_t B, int64_t L, int64_t C) {
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      std::memset(din + b * (L + 1) * C, 0, sizeof(float) * C);
      std::memcpy(din + (b * (L + 1) + 1) * C, dout + b * L * C, sizeof(float) * L * C);
    }
  });
}

void add_inplace(float* dst, const float* src, int64_t n) {
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
  });
}

// Runs a() and b(), which touch disjoint memory, concurrently when exactly 2 compute threads are
// configured: one OpenMP thread each, every kernel inside then runs single-threaded (parallel_for
// and the GEMM driver detect the enclosing region), so the two cores stay busy without a barrier
// per kernel. Results are bit-identical to running them one after the other (every kernel's
// result is independent of its thread count). CMAE_SERIAL_BRANCHES=1 disables it (for measuring).
// Exceptions are carried out of the region and rethrown.
template <typename A, typename Bf>
void run_concurrently(A&& a, Bf&& b) {
  static const bool serial = [] {
    const char* env = std::getenv("CMAE_SERIAL_BRANCHES");
    return env != nullptr && env[0] != '\0' && env[0] != '0';
  }();
  bool concurrent = !serial && num_threads() == 2;
#ifdef _OPENMP
  concurrent = concurrent && !omp_in_parallel();
#else
  concurrent = false;
#endif
  if (!concurrent) {
    a();
    b();
    return;
  }
  std::exception_ptr errors[2];
#pragma omp parallel num_threads(2)
  {
    const int team = team_size_in_region();
    const int index = thread_index_in_region();
    if (index == 0) {
      try {
        a();
      } catch (...) {
        errors[0] = std::current_exception();
      }
    }
    if (index == 1 || team == 1) {
      try {
        b();
      } catch (...) {
        errors[1] = std::current_exception();
      }
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

// Writes the cls row of each sample: x[b, 0, :] = cls_token + pos[0] (pos row 0 is all zeros, spec §1.3).
void write_cls_rows(float* x, const float* cls_token, int64_t B, int64_t N, int64_t D) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(x + b * N * D, cls_token, sizeof(float) * D);
}

}  // namespace

CmaeModel::CmaeModel(const ModelConfig& config, uint64_t seed) : config_(config), seed_(seed) {
  config_.validate();
  register_parameters();
  params_ = Tensor::zeros({table_.total()});
  grads_ = Tensor::zeros({table_.trainable_count()});
  grads_half_ = Tensor::zeros({table_.trainable_count()});
  decay_mask_ = Tensor::zeros({table_.trainable_count()});
  for (const ParamInfo& p : table_.entries()) {
    if (p.role != ParamRole::Trainable || !p.weight_decay) continue;
    std::fill(decay_mask_.f32() + p.offset, decay_mask_.f32() + p.offset + p.numel, 1.0f);
  }
  initialise();
}

CmaeModel::Head CmaeModel::add_head(const std::string& prefix, int64_t in, ParamRole role) {
  Head head;
  const int64_t hidden = config_.projector_hidden, out = config_.projector_dim;
  // Projector/predictor Linear layers keep PyTorch's default init (spec §2.6).
  head.fc1 = add_linear(table_, prefix + ".fc1", in, hidden, role, true, InitKind::TorchDefaultLinearWeight, InitKind::FanInUniform);
  head.bn = add_norm(table_, prefix + ".bn", hidden, role);
  head.fc2 = add_linear(table_, prefix + ".fc2", hidden, out, role, false, InitKind::TorchDefaultLinearWeight);
  return head;
}

CmaeModel::Decoder CmaeModel::add_decoder(const std::string& prefix, const std::string& token_name,
                                          int64_t dim, int64_t depth, int64_t heads,
                                          int64_t out_dim) {
  Decoder dec;
  dec.dim = dim;
  dec.embed = add_linear(table_, prefix + "_embed", config_.dim, dim, ParamRole::Trainable);
  dec.mask_token = table_.add(token_name, {1, 1, dim}, ParamRole::Trainable, InitKind::Normal002);
  dec.stack = TransformerStack(table_, prefix + "_blocks", dim, heads, depth, config_.mlp_ratio, ParamRole::Trainable);
  dec.norm = add_norm(table_, prefix + "_norm", dim, ParamRole::Trainable);
  dec.pred = add_linear(table_, prefix + "_pred", dim, out_dim, ParamRole::Trainable);
  return dec;
}

void CmaeModel::register_parameters() {
  const ModelConfig& c = config_;
  const bool cmae = c.mode == Mode::CMAE;
  const int64_t P = c.patch_dim(), L = c.num_patches();
  auto add_encoder = [&](const std::string& prefix, ParamRole role) {
    Encoder enc;
    const bool trainable = role == ParamRole::Trainable;
    // The conv weight [D, C, p, p] viewed as a Linear [D, C·p·p]: xavier on that 2-D view (spec §1.7).
    enc.patch_weight = table_.add(prefix + "patch_embed.proj.weight", {c.dim, c.channels, c.patch_size, c.patch_size}, role,
                                  trainable ? InitKind::XavierUniform : InitKind::Copy, true, P, c.dim);
    enc.patch_bias = table_.add(prefix + "patch_embed.proj.bias", {c.dim}, role, trainable ? InitKind::FanInUniform : InitKind::Copy,
                                false, P, c.dim);
    enc.patch = LinearRef{enc.patch_weight, enc.patch_bias, P, c.dim};
    enc.cls_token = table_.add(prefix + "cls_token", {1, 1, c.dim}, role, trainable ? InitKind::Normal002 : InitKind::Copy);
    enc.stack = TransformerStack(table_, prefix + "blocks", c.dim, c.heads, c.depth, c.mlp_ratio, role);
    return enc;
  };

  // Trainable segment; the EMA source (encoder minus final norm, then projector) comes first.
  encoder_ = add_encoder("", ParamRole::Trainable);
  if (cmae) projector_ = add_head("projector", c.dim, ParamRole::Trainable);
  table_.mark_ema_source_end();
  final_norm_ = add_norm(table_, "norm", c.dim, ParamRole::Trainable);
  pixel_decoder_ = add_decoder("decoder", "mask_token", c.decoder_dim, c.decoder_depth, c.decoder_heads, P);
  if (cmae) {
    feature_decoder_ = add_decoder("feature_decoder", "feature_mask_token", c.feature_decoder_dim,
                                   c.feature_decoder_depth, c.feature_decoder_heads, c.dim);
    predictor_ = add_head("predictor", c.projector_dim, ParamRole::Trainable);
    // Momentum segment: same order as the EMA source, so the EMA is one flat lerp.
    momentum_encoder_ = add_encoder("momentum_encoder.", ParamRole::Momentum);
    momentum_projector_ = add_head("momentum_projector", c.dim, ParamRole::Momentum);
    CMAE_CHECK(table_.momentum_end() - table_.momentum_begin() == table_.ema_source_end(), Internal,
               "momentum branch layout does not mirror its online twin");
  }
  // Buffers: fixed sin-cos position embeddings (cls row zeros) and BatchNorm running statistics.
  pos_embed_ = table_.add("pos_embed", {1, 1 + L, c.dim}, ParamRole::Buffer, InitKind::Fixed);
  pixel_decoder_.pos_embed = table_.add("decoder_pos_embed", {1, 1 + L, c.decoder_dim}, ParamRole::Buffer, InitKind::Fixed);
  if (cmae) {
    feature_decoder_.pos_embed =
        table_.add("feature_decoder_pos_embed", {1, 1 + L, c.feature_decoder_dim}, ParamRole::Buffer, InitKind::Fixed);
    for (auto* head : {&projector_, &predictor_, &momentum_projector_}) {
      const std::string prefix = head == &projector_ ? "projector" : head == &predictor_ ? "predictor" : "momentum_projector";
      head->running_mean = table_.add(prefix + ".bn.running_mean", {c.projector_hidden}, ParamRole::Buffer, InitKind::Zeros);
      head->running_var = table_.add(prefix + ".bn.running_var", {c.projector_hidden}, ParamRole::Buffer, InitKind::Ones);
    }
  }
}

void CmaeModel::initialise() {
  float* p = params();
  const auto& entries = table_.entries();
  for (size_t index = 0; index < entries.size(); ++index) {
    const ParamInfo& info = entries[index];
    float* dst = p + info.offset;
    const uint64_t stream = make_stream(RngStream::Init, index);
    switch (info.init) {
      case InitKind::XavierUniform:
      case InitKind::TorchDefaultLinearWeight:
      case InitKind::FanInUniform: {
        const double bound = info.init == InitKind::XavierUniform ? std::sqrt(6.0 / static_cast<double>(info.fan_in + info.fan_out))
                                                                  : 1.0 / std::sqrt(static_cast<double>(info.fan_in));
        for (int64_t i = 0; i < info.numel; ++i) {
          dst[i] = static_cast<float>((2.0 * uniform01(seed_, stream, static_cast<uint64_t>(i)) - 1.0) * bound);
        }
        break;
      }
      case InitKind::Normal002:
        for (int64_t i = 0; i < info.numel; ++i) dst[i] = 0.02f * normal01(seed_, stream, static_cast<uint64_t>(i));
        break;
      case InitKind::Zeros:
        std::fill(dst, dst + info.numel, 0.0f);
        break;
      case InitKind::Ones:
        std::fill(dst, dst + info.numel, 1.0f);
        break;
      case InitKind::Copy:
      case InitKind::Fixed:
        break;  // below
    }
  }
  // Fixed sin-cos embeddings, cls row 0 = zeros (spec §1.4).
  const int64_t L = config_.num_patches(), grid = config_.grid();
  auto fill_pos = [&](int64_t offset, int64_t dim) {
    std::fill(p + offset, p + offset + dim, 0.0f);
    cpu::sincos_pos_embed_2d(p + offset + dim, grid, grid, dim);
    (void)L;
  };
  fill_pos(pos_embed_, config_.dim);
  fill_pos(pixel_decoder_.pos_embed, config_.decoder_dim);
  if (config_.mode == Mode::CMAE) fill_pos(feature_decoder_.pos_embed, config_.feature_decoder_dim);
  reset_momentum();
}

void CmaeModel::reset_momentum() {
  if (config_.mode != Mode::CMAE) return;
  std::memcpy(params() + table_.momentum_begin(), params(), sizeof(float) * table_.ema_source_end());
}

void CmaeModel::update_momentum(float momentum) {
  CMAE_CHECK(momentum >= 0.0f && momentum <= 1.0f, Value, "momentum must be in [0, 1], got ", momentum);
  if (config_.mode != Mode::CMAE) return;
  cpu::ema_update(params() + table_.momentum_begin(), params(), table_.ema_source_end(), momentum);
}

// ---- workspaces -----------------------------------------------------------------------------------

void CmaeModel::plan_training(int64_t B) {
  if (train_batch_ == B) return;
  const ModelConfig& c = config_;
  const bool cmae = c.mode == Mode::CMAE;
  const int64_t L = c.num_patches(), K = c.num_visible(), P = c.patch_dim(), D = c.dim, G = c.num_groups();
  const int64_t E = c.projector_dim, Hd = c.projector_hidden;
  train_momentum_stack_ = momentum_encoder_.stack;
  auto decoder_layout = [&](Bump& bump, Decoder& dec, DecoderActs& a, int64_t out_dim) {
    const int64_t Dd = dec.dim;
    a.embed = bump.take(B * (1 + K) * Dd);
    a.x0 = bump.take(B * (1 + L) * Dd);
    dec.stack.layout(bump, B, 1 + L, true);
    a.ln = bump.take(B * (1 + L) * Dd);
    a.ln_mean = bump.take(B * (1 + L));
    a.ln_rstd = bump.take(B * (1 + L));
    a.ln_body = bump.take(B * L * Dd);
    a.pred = bump.take(B * L * out_dim);
    a.d_ln_body = bump.take(B * L * Dd);
    a.d_ln = bump.take(B * (1 + L) * Dd);
    a.d_x0 = bump.take(B * (1 + L) * Dd);
    a.d_embed = bump.take(B * (1 + K) * Dd);
  };
  auto head_layout = [&](Bump& bump, HeadActs& a) {
    a.h = bump.take(B * Hd);
    a.bn = bump.take(B * Hd);
    a.bn_mean = bump.take(Hd);
    a.bn_rstd = bump.take(Hd);
    a.relu = bump.take(B * Hd);
    a.out = bump.take(B * E);
  };
  train_memory_ = plan_workspace([&](Bump& bump) {
    TrainActs& t = t_;
    t.patches = bump.take(B * L * P);
    t.tokens = bump.take(B * L * D);
    t.noise = bump.take(B * G);
    t.mask = bump.take(B * L);
    t.ids_keep = bump.take_i32(B * K);
    t.ids_restore = bump.take_i32(B * L);
    t.ids_all = bump.take_i32(B * L);
    t.x0 = bump.take(B * (1 + K) * D);
    encoder_.stack.layout(bump, B, 1 + K, true);
    t.latent = bump.take(B * (1 + K) * D);
    t.latent_mean = bump.take(B * (1 + K));
    t.latent_rstd = bump.take(B * (1 + K));
    t.target_pix = bump.take(B * L * P);
    t.dpred = bump.take(B * L * P);
    t.d_latent = bump.take(B * (1 + K) * D);
    t.d_latent_feature = bump.take(B * (1 + K) * D);
    t.d_visible = bump.take(B * K * D);
    t.patches_visible = bump.take(B * K * P);
    t.d_patch_weight_t = bump.take(P * D);
    t.d_patch_weight_t_half = bump.take(P * D);
    decoder_layout(bump, pixel_decoder_, t.pixel, P);
    if (cmae) {
      decoder_layout(bump, feature_decoder_, t.feature, D);
      t.feature_pooled = bump.take(B * D);
      t.d_feature_pooled = bump.take(B * D);
      t.d_feature_body = bump.take(B * L * D);
      head_layout(bump, t.projector);
      head_layout(bump, t.predictor);
      head_layout(bump, t.momentum_projector);
      t.t_patches = bump.take(B * L * P);
      t.t_tokens = bump.take(B * L * D);
      t.t_x0 = bump.take(B * (1 + L) * D);
      train_momentum_stack_.layout(bump, B, 1 + L, false);
      t.t_pooled = bump.take(B * D);
      t.dq = bump.take(B * E);
      t.d_z = bump.take(B * E);
      t.d_head_hidden = bump.take(B * Hd);
    }
  });
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) t_.ids_all[b * L + l] = static_cast<int32_t>(l);
  train_batch_ = B;
}

void CmaeModel::plan_inference(int64_t B) {
  if (infer_batch_ == B) return;
  const int64_t L = config_.num_patches(), P = config_.patch_dim(), D = config_.dim;
  infer_stack_online_ = encoder_.stack;
  if (config_.mode == Mode::CMAE) infer_stack_momentum_ = momentum_encoder_.stack;
  infer_memory_ = plan_workspace([&](Bump& bump) {
    i_.patches = bump.take(B * L * P);
    i_.tokens = bump.take(B * L * D);
    i_.x0 = bump.take(B * (1 + L) * D);
    i_.ln = bump.take(B * (1 + L) * D);
    i_.ln_mean = bump.take(B * (1 + L));
    i_.ln_rstd = bump.take(B * (1 + L));
    i_.ids_all = bump.take_i32(B * L);
    infer_stack_online_.layout(bump, B, 1 + L, false);
    if (config_.mode == Mode::CMAE) infer_stack_momentum_.layout(bump, B, 1 + L, false);
  });
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) i_.ids_all[b * L + l] = static_cast<int32_t>(l);
  infer_batch_ = B;
}

// ---- pieces -----------------------------------------------------------------------------------------

void CmaeModel::embed_tokens(float* tokens, float* patches, const float* images, const Encoder& enc, int64_t b0, int64_t nb) const {
  const ModelConfig& c = config_;
  const int64_t L = c.num_patches(), image = c.channels * c.image_size * c.image_size;
  cpu::patchify(patches + b0 * L * c.patch_dim(), images + b0 * image, nb, c.channels, c.image_size, c.image_size, c.patch_size,
                cpu::PatchLayout::ChannelsFirst);
  linear_fwd(tokens + b0 * L * c.dim, patches + b0 * L * c.patch_dim(), params(), enc.patch, nb * L);
}

void CmaeModel::decoder_forward(Decoder& dec, DecoderActs& a, const float* latent, const int32_t* ids_restore, int64_t b0,
                                int64_t nb) {
  const int64_t L = config_.num_patches(), K = config_.num_visible(), Dd = dec.dim;
  const int64_t body = b0 * L, rows = b0 * (1 + L), lat = b0 * (1 + K);
  const float* p = params();
  linear_fwd(a.embed + lat * Dd, latent + lat * config_.dim, p, dec.embed, nb * (1 + K));
  // mask tokens + unshuffle + decoder position embedding (cls row gets pos row 0 = zeros).
  cpu::unshuffle_forward(a.x0 + rows * Dd, a.embed + lat * Dd, p + dec.mask_token, p + dec.pos_embed + Dd, p + dec.pos_embed,
                         ids_restore + body, nb, L, K, Dd, 1);
  const float* y = dec.stack.forward(p, a.x0, b0, nb);
  cpu::layernorm_forward(a.ln + rows * Dd, a.ln_mean + rows, a.ln_rstd + rows, y + rows * Dd, p + dec.norm.weight, p + dec.norm.bias,
                         nb * (1 + L), Dd, kLayerNormEps);
  drop_prefix_row(a.ln_body + body * Dd, a.ln + rows * Dd, nb, L, Dd);
  linear_fwd(a.pred + body * dec.pred.out, a.ln_body + body * Dd, p, dec.pred, nb * L);
}

void CmaeModel::decoder_backward(Decoder& dec, DecoderActs& a, float* g, float* d_latent, const float* d_out, const float* latent,
                                 const int32_t* ids_restore, int64_t b0, int64_t nb) {
  const int64_t L = config_.num_patches(), K = config_.num_visible(), Dd = dec.dim;
  const int64_t out_dim = dec.pred.out;
  const float* p = params();
  // Row offsets of the first sample: (B, L, ·) body rows, (B, 1+L, ·) decoder rows, (B, 1+K, ·) latent rows.
  const int64_t body = b0 * L, rows = b0 * (1 + L), lat = b0 * (1 + K);
  linear_bwd(a.d_ln_body + body * Dd, g, d_out + body * out_dim, a.ln_body + body * Dd, p, dec.pred, nb * L);
  drop_prefix_row_backward(a.d_ln + rows * Dd, a.d_ln_body + body * Dd, nb, L, Dd);
  // d_x0 carries the residual-stream gradient down through the stack (in place).
  cpu::layernorm_backward(a.d_x0 + rows * Dd, g + dec.norm.weight, g + dec.norm.bias, a.d_ln + rows * Dd,
                          dec.stack.output() + rows * Dd, p + dec.norm.weight, a.ln_mean + rows, a.ln_rstd + rows, nb * (1 + L), Dd,
                          /*accumulate_dinp=*/false);
  dec.stack.backward(g, a.d_x0, p, a.x0, b0, nb);
  cpu::unshuffle_backward(a.d_embed + lat * Dd, g + dec.mask_token, a.d_x0 + rows * Dd, ids_restore + body, nb, L, K, Dd, 1);
  linear_bwd(d_latent + lat * config_.dim, g, a.d_embed + lat * Dd, latent + lat * config_.dim, p, dec.embed, nb * (1 + K));
}

void CmaeModel::head_forward(const Head& head, HeadActs& a, const float* inp, int64_t B, bool update_running_stats) {
  const float* p = params();
  const int64_t Hd = config_.projector_hidden;
  linear_fwd(a.h, inp, p, head.fc1, B);
  cpu::batchnorm_forward(a.bn, a.bn_mean, a.bn_rstd, update_running_stats ? params() + head.running_mean : nullptr,
                         update_running_stats ? params() + head.running_var : nullptr, a.h, p + head.bn.weight, p + head.bn.bias, B,
                         Hd, static_cast<float>(config_.bn_eps), static_cast<float>(config_.bn_momentum));
  cpu::relu_forward(a.relu, a.bn, B * Hd);
  linear_fwd(a.out, a.relu, p, head.fc2, B);
}

void CmaeModel::head_backward(const Head& head, HeadActs& a, float* d_inp, const float* d_out, const float* inp, float* d_hidden,
                              int64_t B) {
  const float* p = params();
  float* g = grads();
  const int64_t Hd = config_.projector_hidden;
  linear_bwd(d_hidden, g, d_out, a.relu, p, head.fc2, B);
  cpu::relu_backward(d_hidden, d_hidden, a.relu, B * Hd);
  // BatchNorm backward needs a separate output buffer from its dout: reuse a.relu (no longer needed).
  cpu::batchnorm_backward(a.relu, g + head.bn.weight, g + head.bn.bias, d_hidden, a.h, p + head.bn.weight, a.bn_mean, a.bn_rstd, B,
                          Hd);
  linear_bwd(d_inp, g, a.relu, inp, p, head.fc1, B);
}

void CmaeModel::backward_samples(float* g, float* d_patch_weight_t, int64_t b0, int64_t nb, const float* enc_out) {
  const ModelConfig& c = config_;
  const bool cmae = c.mode == Mode::CMAE;
  TrainActs& t = t_;
  const int64_t L = c.num_patches(), K = c.num_visible(), P = c.patch_dim(), D = c.dim;
  const int64_t lat = b0 * (1 + K);  // first latent row of the range
  const float* p = params();
  if (nb <= 0) return;
  if (cmae) {
    cpu::mean_pool_backward(t.d_feature_body + b0 * L * D, t.d_feature_pooled + b0 * D, nb, L, D, 0);
    { CMAE_PROF("M.featdec_bwd"); decoder_backward(feature_decoder_, t.feature, g, t.d_latent_feature, t.d_feature_body, t.latent, t.ids_restore, b0, nb); }
    add_inplace(t.d_latent + lat * D, t.d_latent_feature + lat * D, nb * (1 + K) * D);
  }
  // Final norm backward writes the encoder-output gradient into d_latent_feature (free now).
  float* d_enc = t.d_latent_feature;
  cpu::layernorm_backward(d_enc + lat * D, g + final_norm_.weight, g + final_norm_.bias, t.d_latent + lat * D, enc_out + lat * D,
                          p + final_norm_.weight, t.latent_mean + lat, t.latent_rstd + lat, nb * (1 + K), D, /*accumulate_dinp=*/false);
  { CMAE_PROF("M.enc_bwd"); encoder_.stack.backward(g, d_enc, p, t.x0, b0, nb); }
  // cls token: sum of its row gradients; visible tokens scatter back to their patches.
  float* d_cls = g + encoder_.cls_token;
  for (int64_t b = b0; b < b0 + nb; ++b)
    for (int64_t d = 0; d < D; ++d) d_cls[d] += d_enc[b * (1 + K) * D + d];
  {
    // Patch embedding: its weight and bias gradients are sums over token rows, and the rows of the
    // masked patches are zero, so sum over the visible rows only (not all L with 65 % zeros, and no
    // scatter). The weight gradient is formed transposed, dWᵀ (P, D) = patches_visᵀ · d_vis: a TN
    // product with 192-wide rather than 48-wide output rows (2× faster in our GEMM), then added
    // transposed into the [D, P] gradient.
    CMAE_PROF("M.patch_bwd");
    float* d_visible = t.d_visible + b0 * K * D;
    float* patches_visible = t.patches_visible + b0 * K * P;
    drop_prefix_row(d_visible, d_enc + lat * D, nb, K, D);
    cpu::gather_visible_forward(patches_visible, t.patches + b0 * L * P, nullptr, t.ids_keep + b0 * K, nb, L, K, P, 0);
    cpu::sgemm(true, false, P, D, nb * K, 1.0f, patches_visible, P, d_visible, D, 0.0f, d_patch_weight_t, D);
    float* dw = g + encoder_.patch.weight;
    float* db = g + encoder_.patch.bias;
    const float* dwt = d_patch_weight_t;
    const float* dv = d_visible;
    const int64_t rows = nb * K;
    parallel_for(D, 16, [&](int64_t d0, int64_t d1) {
      for (int64_t d = d0; d < d1; ++d) {
        for (int64_t q = 0; q < P; ++q) dw[d * P + q] += dwt[q * D + d];
      }
      // bias: column sums in row order (each column summed by one thread, so independent of the
      // thread count), rows outer so the loads are contiguous.
      float sums[256];
      for (int64_t c0 = d0; c0 < d1; c0 += 256) {
        const int64_t w = std::min<int64_t>(256, d1 - c0);
        for (int64_t j = 0; j < w; ++j) sums[j] = 0.0f;
        for (int64_t r = 0; r < rows; ++r) {
          const float* row = dv + r * D + c0;
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) sums[j] += row[j];
        }
        for (int64_t j = 0; j < w; ++j) db[c0 + j] += sums[j];
      }
    });
  }
}

// ---- training step ---------------------------------------------------------------------------------

LossResult CmaeModel::loss_and_grad(const float* images, const float* target_images, const float* mask_noise, int64_t B,
                                    const Outputs& outputs) {
  const ModelConfig& c = config_;
  const bool cmae = c.mode == Mode::CMAE;
  CMAE_CHECK(B >= 1, Shape, "batch size must be at least 1");
  CMAE_CHECK(!cmae || B >= 2, Shape, "CMAE needs a batch of at least 2 images (BatchNorm statistics and InfoNCE negatives)");
  CMAE_CHECK(!cmae || target_images != nullptr, Value, "CMAE mode needs targetImages (the pixel-shifted view)");
  plan_training(B);
  CMAE_PROF("M.STEP");
  TrainActs& t = t_;
  const int64_t L = c.num_patches(), K = c.num_visible(), P = c.patch_dim(), D = c.dim, G = c.num_groups();
  const int64_t grid = c.grid();
  float* p = params();
  float* g = grads();
  { CMAE_PROF("M.zero_grad"); std::memset(g, 0, sizeof(float) * table_.trainable_count()); }

  LossResult result;
  if (mask_noise) {
    std::memcpy(t.noise, mask_noise, sizeof(float) * B * G);
  } else {
    cpu::masking_noise(t.noise, B, G, seed_, make_stream(RngStream::Mask, mask_counter_++));
  }
  cpu::random_masking(t.ids_keep, t.ids_restore, t.mask, t.noise, B, grid, grid, c.mask_group, c.keep_groups());
  // Stack outputs (the stacks' workspaces; the whole batch's buffers).
  const float* enc_out = encoder_.stack.depth() > 0 ? encoder_.stack.output() : t.x0;
  const float* t_out = cmae ? (train_momentum_stack_.depth() > 0 ? train_momentum_stack_.output() : t.t_x0) : nullptr;

  // The step runs in three parts: the forward of every branch, by sample; the losses and the
  // projection heads, which couple the batch (norm-pix over all masked patches, BatchNorm,
  // InfoNCE), on the whole batch; the backward, by sample. The per-sample parts cut the batch in
  // two fixed halves, run side by side on 2 threads (one thread each: no barrier per kernel, and a
  // thread's kernels are as fast as alone) and in turn otherwise, with a second gradient arena for
  // the second half, added into the first at the end. Fixed halves, so results do not depend on
  // the thread count. (Before: the momentum branch beside the online path, then the backward on
  // 2-thread kernels, which scale ~1.65x on these 1344-row products; 353 -> 325-343 ms per step.)
  const int64_t half = B / 2;

  // ---- forward of samples [b0, b0 + nb)
  auto forward_samples = [&](int64_t b0, int64_t nb) {
    if (nb <= 0) return;
    const int64_t vis = b0 * (1 + K);  // first row of the sample range in (B, 1+K, ·) buffers
    // online encoder on the visible patches
    { CMAE_PROF("M.embed"); embed_tokens(t.tokens, t.patches, images, encoder_, b0, nb); }
    write_cls_rows(t.x0 + vis * D, p + encoder_.cls_token, nb, 1 + K, D);
    cpu::gather_visible_forward(t.x0 + vis * D, t.tokens + b0 * L * D, p + pos_embed_ + D, t.ids_keep + b0 * K, nb, L, K, D, 1);
    { CMAE_PROF("M.enc_fwd"); encoder_.stack.forward(p, t.x0, b0, nb); }
    cpu::layernorm_forward(t.latent + vis * D, t.latent_mean + vis, t.latent_rstd + vis, enc_out + vis * D, p + final_norm_.weight,
                           p + final_norm_.bias, nb * (1 + K), D, kLayerNormEps);
    { CMAE_PROF("M.pixdec_fwd"); decoder_forward(pixel_decoder_, t.pixel, t.latent, t.ids_restore, b0, nb); }
    if (!cmae) return;
    { CMAE_PROF("M.featdec_fwd"); decoder_forward(feature_decoder_, t.feature, t.latent, t.ids_restore, b0, nb); }
    cpu::mean_pool_forward(t.feature_pooled + b0 * D, t.feature.pred + b0 * L * D, nb, L, D, 0);
    // momentum branch (no gradients): whole target view, no final norm, mean of patch tokens
    const int64_t all = b0 * (1 + L);
    embed_tokens(t.t_tokens, t.t_patches, target_images, momentum_encoder_, b0, nb);
    write_cls_rows(t.t_x0 + all * D, p + momentum_encoder_.cls_token, nb, 1 + L, D);
    cpu::gather_visible_forward(t.t_x0 + all * D, t.t_tokens + b0 * L * D, p + pos_embed_ + D, t.ids_all + b0 * L, nb, L, L, D, 1);
    { CMAE_PROF("M.mom_fwd"); train_momentum_stack_.forward(p, t.t_x0, b0, nb); }
    cpu::mean_pool_forward(t.t_pooled + b0 * D, t_out + all * D, nb, 1 + L, D, 1);
  };
  {
    CMAE_PROF("M.halves_fwd");
    run_concurrently([&] { forward_samples(0, half); }, [&] { forward_samples(half, B - half); });
  }

  // ---- losses and heads, whole batch
  cpu::patchify(t.target_pix, images, B, c.channels, c.image_size, c.image_size, c.patch_size, cpu::PatchLayout::PixelsLast);
  result.reconstruction = cpu::normpix_mse_forward_backward(t.dpred, t.pixel.pred, t.target_pix, t.mask, B, L, P, c.norm_pix_loss,
                                                            1e-6f, static_cast<float>(c.rc_weight));
  if (cmae) {
    head_forward(projector_, t.projector, t.feature_pooled, B, true);
    head_forward(predictor_, t.predictor, t.projector.out, B, true);
    head_forward(momentum_projector_, t.momentum_projector, t.t_pooled, B, true);
    const float scale = static_cast<float>(2.0 * c.tau);  // MoCo v3's 2τ gradient-scale normalisation (spec §2.7)
    result.contrastive = cpu::infonce_forward_backward(t.dq, t.predictor.out, t.momentum_projector.out, B, c.projector_dim,
                                                       static_cast<float>(c.tau), scale, static_cast<float>(c.ct_weight));
    head_backward(predictor_, t.predictor, t.d_z, t.dq, t.projector.out, t.d_head_hidden, B);
    head_backward(projector_, t.projector, t.d_feature_pooled, t.d_z, t.feature_pooled, t.d_head_hidden, B);
  }
  result.total = c.rc_weight * result.reconstruction + (cmae ? c.ct_weight * result.contrastive : 0.0);

  // ---- backward of samples [b0, b0 + nb), into the gradient arena gh
  auto backward_half = [&](int64_t b0, int64_t nb, float* gh, float* d_patch_weight_t) {
    if (nb <= 0) return;
    { CMAE_PROF("M.pixdec_bwd"); decoder_backward(pixel_decoder_, t.pixel, gh, t.d_latent, t.dpred, t.latent, t.ids_restore, b0, nb); }
    backward_samples(gh, d_patch_weight_t, b0, nb, enc_out);
  };
  float* g_half = grads_half_.f32();
  {
    CMAE_PROF("M.halves_bwd");
    run_concurrently([&] { backward_half(0, half, g, t.d_patch_weight_t); },
                     [&] { backward_half(half, B - half, g_half, t.d_patch_weight_t_half); });
  }
  {
    CMAE_PROF("M.merge_grads");
    parallel_for(table_.trainable_count(), 1 << 16, [&](int64_t i0, int64_t i1) {
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) {
        g[i] += g_half[i];
        g_half[i] = 0.0f;
      }
    });
  }

  if (outputs.pred) std::memcpy(outputs.pred, t.pixel.pred, sizeof(float) * B * L * P);
  if (outputs.mask) std::memcpy(outputs.mask, t.mask, sizeof(float) * B * L);
  if (outputs.ids_restore) std::memcpy(outputs.ids_restore, t.ids_restore, sizeof(int32_t) * B * L);
  if (cmae && outputs.q) std::memcpy(outputs.q, t.predictor.out, sizeof(float) * B * c.projector_dim);
  if (cmae && outputs.z_t) std::memcpy(outputs.z_t, t.momentum_projector.out, sizeof(float) * B * c.projector_dim);
  return result;
}

// ---- inference ---------------------------------------------------------------------------------------

void CmaeModel::encode(float* out, const float* images, int64_t B, Pool pool, Branch branch) {
  const ModelConfig& c = config_;
  CMAE_CHECK(branch == Branch::Online || c.mode == Mode::CMAE, Value, "a model in MAE mode has no momentum branch");
  plan_inference(B);
  const int64_t L = c.num_patches(), D = c.dim;
  const Encoder& enc = branch == Branch::Online ? encoder_ : momentum_encoder_;
  TransformerStack& stack = branch == Branch::Online ? infer_stack_online_ : infer_stack_momentum_;
  const float* p = params();
  const float* y = stack.depth() > 0 ? stack.output() : i_.x0;
  const float* feats = branch == Branch::Online ? i_.ln : y;
  // Per sample throughout: two fixed halves side by side on 2 threads, as in loss_and_grad.
  auto encode_samples = [&](int64_t b0, int64_t nb) {
    if (nb <= 0) return;
    const int64_t r0 = b0 * (1 + L);
    embed_tokens(i_.tokens, i_.patches, images, enc, b0, nb);
    write_cls_rows(i_.x0 + r0 * D, p + enc.cls_token, nb, 1 + L, D);
    cpu::gather_visible_forward(i_.x0 + r0 * D, i_.tokens + b0 * L * D, p + pos_embed_ + D, i_.ids_all + b0 * L, nb, L, L, D, 1);
    { CMAE_PROF("M.infer_fwd"); stack.forward(p, i_.x0, b0, nb); }
    if (branch == Branch::Online) {
      cpu::layernorm_forward(i_.ln + r0 * D, i_.ln_mean + r0, i_.ln_rstd + r0, y + r0 * D, p + final_norm_.weight,
                             p + final_norm_.bias, nb * (1 + L), D, kLayerNormEps);
    }
    if (pool == Pool::Cls) {
      for (int64_t b = b0; b < b0 + nb; ++b) std::memcpy(out + b * D, feats + b * (1 + L) * D, sizeof(float) * D);
    } else {
      cpu::mean_pool_forward(out + b0 * D, feats + r0 * D, nb, 1 + L, D, 1);
    }
  };
  const int64_t half = B / 2;
  run_concurrently([&] { encode_samples(0, half); }, [&] { encode_samples(half, B - half); });
}

}  // namespace cmae::model
