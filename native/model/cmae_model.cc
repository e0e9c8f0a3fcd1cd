#include "cmae_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "pos_embed.h"

namespace cmae::model {

Pool parse_pool(const std::string& name) {
  if (name == "cls") return Pool::Cls;
  if (name == "mean") return Pool::Mean;
  if (name == "avg") return Pool::Avg;
  fail(ErrorKind::Value, "pool must be 'cls', 'mean' or 'avg', got '", name, "'");
}

Branch parse_branch(const std::string& name) {
  if (name == "online") return Branch::Online;
  if (name == "momentum") return Branch::Momentum;
  fail(ErrorKind::Value, "branch must be 'online' or 'momentum', got '", name, "'");
}

namespace {

// Checks a tensor argument: dtype, exact shape, and that it lives on the model's backend.
void expect_tensor(const Tensor& t, const char* name, DType dtype, const Shape& shape, const Backend& backend) {
  t.expect_dtype(dtype, name);
  t.expect_shape(shape, name);
  t.expect_backend(backend, name);
}

}  // namespace

CmaeModel::CmaeModel(const ModelConfig& config, uint64_t seed, Backend& backend) : config_(config), seed_(seed), backend_(backend) {
  config_.validate();
  register_parameters();
  const int64_t n = table_.trainable_count();
  params_ = Tensor::empty({table_.total()}, DType::F32, backend_);
  grads_ = Tensor::zeros({n}, DType::F32, backend_);
  set_parts(backend_.batch_parts(), 0, backend_.batch_parts());
  if (table_.total() > running_stats_begin_) running_stats_backup_ = Tensor::empty({table_.total() - running_stats_begin_}, DType::F32, backend_);
  initialise();
}

CmaeModel::CmaeModel(const ModelConfig& config, Backend& backend, PlanOnly) : config_(config), seed_(0), backend_(backend) {
  config_.validate();
  register_parameters();
}

ParameterTable CmaeModel::plan_parameters(const ModelConfig& config) {
  // Registration touches no backend memory: the CPU backend is only the reference the class holds.
  const CmaeModel plan(config, cpu_backend(), PlanOnly{});
  return plan.table_;
}

void CmaeModel::set_parts(int parts, int part_begin, int part_end) {
  // An arena for each of this rank's parts but its first, which writes grads_ (the heads'
  // gradients and, at the end, the sum go there too). A rank of one part needs no other arena:
  // W ranks of base hold 1 gradient arena each, not W.
  const int arenas = part_end - part_begin - 1;
  part_grads_ = Tensor();
  part_grads_ = Tensor::zeros({arenas * table_.trainable_count()}, DType::F32, backend_);
  parts_ = parts;
  part_begin_ = part_begin;
  part_end_ = part_end;
  train_batch_ = 0;  // the plan's chunk slots and loss slots are per part
}

void CmaeModel::set_collective(std::shared_ptr<Collective> collective) {
  const int local = backend_.batch_parts();
  if (!collective || collective->world_size() == 1) {
    collective_ = std::move(collective);
    set_parts(local, 0, local);
    return;
  }
  CMAE_CHECK(!config_.is_classifier(), Value, "distributed training is for the pre-training methods; a classifier fine-tunes in one process");
  const int W = collective->world_size(), per_rank = (local + W - 1) / W;
  collective_ = std::move(collective);
  set_parts(W * per_rank, collective_->rank() * per_rank, (collective_->rank() + 1) * per_rank);
}

void CmaeModel::set_recompute_activations(bool on) {
  if (on == recompute_activations_) return;
  recompute_activations_ = on;
  // The next step plans its workspace anew, at its new size (a smaller one is not kept larger).
  workspace_ = Tensor();
  train_batch_ = 0;
  infer_batch_ = 0;
}

float* CmaeModel::part_grads(int part) const {
  CMAE_CHECK(part >= part_begin_ && part < part_end_, Internal, "batch part ", part, " is not this rank's (", part_begin_, " to ", part_end_, ")");
  if (part == part_begin_) return grads_.f32();
  return part_grads_.f32() + static_cast<int64_t>(part - part_begin_ - 1) * table_.trainable_count();
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

CmaeModel::DenseHead CmaeModel::add_dense_head(const std::string& prefix, ParamRole role) {
  // PyTorch's default Linear init, as the other heads (DenseCL's convolutions use their own).
  const int64_t hidden = config_.projector_hidden, out = config_.projector_dim;
  DenseHead head;
  head.fc1 = add_linear(table_, prefix + ".fc1", config_.dim, hidden, role, true, InitKind::TorchDefaultLinearWeight, InitKind::FanInUniform);
  head.fc2 = add_linear(table_, prefix + ".fc2", hidden, out, role, true, InitKind::TorchDefaultLinearWeight, InitKind::FanInUniform);
  return head;
}

CmaeModel::Decoder CmaeModel::add_decoder(const std::string& prefix, const std::string& token_name, int64_t dim, int64_t depth,
                                          int64_t heads, int64_t out_dim) {
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
  const int64_t P = c.patch_dim(), L = c.num_patches();
  auto add_encoder = [&](const std::string& prefix, ParamRole role) {
    Encoder enc;
    const bool trainable = role == ParamRole::Trainable;
    // The conv weight [D, C, p, p] viewed as a Linear [D, C·p·p]: xavier on that 2-D view (spec §1.7).
    enc.patch.weight = table_.add(prefix + "patch_embed.proj.weight", {c.dim, c.channels, c.patch_size, c.patch_size}, role,
                                  trainable ? InitKind::XavierUniform : InitKind::Copy, true, P, c.dim);
    enc.patch.bias = table_.add(prefix + "patch_embed.proj.bias", {c.dim}, role, trainable ? InitKind::FanInUniform : InitKind::Copy,
                                false, P, c.dim);
    enc.patch.in = P;
    enc.patch.out = c.dim;
    enc.cls_token = table_.add(prefix + "cls_token", {1, 1, c.dim}, role, trainable ? InitKind::Normal002 : InitKind::Copy);
    enc.stack = TransformerStack(table_, prefix + "blocks", c.dim, c.heads, c.depth, c.mlp_ratio, role);
    return enc;
  };

  // Trainable segment; the EMA source (encoder minus final norm, then the projector where the
  // method has heads) comes first.
  // MoCo v3 keeps the final norm for encode() (what downstream uses) though its loss does not pass
  // through it: both of its branches pool the encoder's un-normalised patch tokens, as CMAE's
  // momentum branch does, so that the EMA stays one flat lerp over mirrored layouts.
  encoder_ = add_encoder("", ParamRole::Trainable);
  if (c.has_projector()) projector_ = add_head("projector", c.dim, ParamRole::Trainable);
  if (c.has_dense_projector()) dense_projector_ = add_dense_head("dense_projector", ParamRole::Trainable);
  table_.mark_ema_source_end();
  // MAE's fine-tuning with global_pool replaces the encoder's norm by fc_norm after the pooling.
  final_norm_ = add_norm(table_, c.is_classifier() && c.global_pool ? "fc_norm" : "norm", c.dim, ParamRole::Trainable);
  if (c.is_classifier()) head_ = add_linear(table_, "head", c.dim, c.num_classes, ParamRole::Trainable, true, InitKind::HeadNormal);
  if (c.has_pixel_decoder()) {
    pixel_decoder_ = add_decoder("decoder", "mask_token", c.decoder_dim, c.decoder_depth, c.decoder_heads, c.decoder_out_dim());
  }
  if (c.has_feature_decoder()) {
    feature_decoder_ = add_decoder("feature_decoder", "feature_mask_token", c.feature_decoder_dim, c.feature_decoder_depth,
                                   c.feature_decoder_heads, c.dim);
  }
  if (c.has_predictor()) predictor_ = add_head("predictor", c.projector_dim, ParamRole::Trainable);
  if (c.has_momentum()) {
    // Momentum segment: same order as the EMA source, so the EMA is one flat lerp.
    momentum_encoder_ = add_encoder("momentum_encoder.", ParamRole::Momentum);
    if (c.has_predictor()) momentum_projector_ = add_head("momentum_projector", c.dim, ParamRole::Momentum);
    if (c.has_dense_projector()) momentum_dense_projector_ = add_dense_head("momentum_dense_projector", ParamRole::Momentum);
    CMAE_CHECK(table_.momentum_end() - table_.momentum_begin() == table_.ema_source_end(), Internal,
               "momentum branch layout does not mirror its online twin");
  }
  // Buffers: fixed sin-cos position embeddings (cls row zeros) and BatchNorm running statistics.
  pos_embed_ = table_.add("pos_embed", {1, 1 + L, c.dim}, ParamRole::Buffer, InitKind::Fixed);
  if (c.has_pixel_decoder()) {
    pixel_decoder_.pos_embed = table_.add("decoder_pos_embed", {1, 1 + L, c.decoder_dim}, ParamRole::Buffer, InitKind::Fixed);
  }
  if (c.has_feature_decoder()) {
    feature_decoder_.pos_embed =
        table_.add("feature_decoder_pos_embed", {1, 1 + L, c.feature_decoder_dim}, ParamRole::Buffer, InitKind::Fixed);
  }
  // The BatchNorm running statistics come last, as one block (running_stats_begin_ to the end): a
  // step whose loss is not finite puts them back as they were (loss_and_grad).
  running_stats_begin_ = table_.total();
  for (auto* head : {&projector_, &predictor_, &momentum_projector_}) {
    if (head == &projector_ ? !c.has_projector() : !c.has_predictor()) continue;
    const std::string prefix = head == &projector_ ? "projector" : head == &predictor_ ? "predictor" : "momentum_projector";
    head->running_mean = table_.add(prefix + ".bn.running_mean", {c.projector_hidden}, ParamRole::Buffer, InitKind::Zeros);
    head->running_var = table_.add(prefix + ".bn.running_var", {c.projector_hidden}, ParamRole::Buffer, InitKind::Ones);
  }
}

void CmaeModel::initialise() {
  // Drawn on the host (Philox keyed by (seed, parameter index, element), so every backend starts
  // from the same numbers), then uploaded once.
  std::vector<float> host(static_cast<size_t>(table_.total()), 0.0f);
  float* p = host.data();
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
      case InitKind::HeadNormal: {
        const float std = info.init == InitKind::Normal002 ? 0.02f : 2e-5f;
        for (int64_t i = 0; i < info.numel; ++i) dst[i] = std * normal01(seed_, stream, static_cast<uint64_t>(i));
        break;
      }
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
  // Fixed sin-cos embeddings; the cls row 0 stays zeros (spec §1.4).
  const int64_t grid = config_.grid();
  sincos_pos_embed_2d(p + pos_embed_ + config_.dim, grid, grid, config_.dim);
  if (config_.has_pixel_decoder()) {
    sincos_pos_embed_2d(p + pixel_decoder_.pos_embed + config_.decoder_dim, grid, grid, config_.decoder_dim);
  }
  if (config_.has_feature_decoder()) {
    sincos_pos_embed_2d(p + feature_decoder_.pos_embed + config_.feature_decoder_dim, grid, grid, config_.feature_decoder_dim);
  }
  backend_.copy_from_host(params_.f32(), host.data(), sizeof(float) * host.size());
  reset_momentum();
}

void CmaeModel::reset_momentum() {
  if (!config_.has_momentum()) return;
  backend_.copy(p() + table_.momentum_begin(), p(), sizeof(float) * table_.ema_source_end());
}

void CmaeModel::update_momentum(double momentum) {
  CMAE_CHECK(momentum >= 0.0 && momentum <= 1.0, Value, "momentum must be in [0, 1], got ", momentum);
  if (!config_.has_momentum()) return;
  backend_.ema_update(p() + table_.momentum_begin(), p(), table_.ema_source_end(), static_cast<float>(momentum));
}

// ---- workspaces -----------------------------------------------------------------------------------

float* CmaeModel::workspace_for(int64_t floats, int64_t& other_batch) {
  if (!workspace_.defined() || workspace_.numel() < floats) {
    // Never both at once: the peak is the larger plan, not the sum.
    workspace_ = Tensor();
    other_batch = 0;
    workspace_ = Tensor::empty({floats}, DType::F32, backend_);
  }
  return workspace_.f32();
}

// Identity ids (B, L): row b is 0..L-1 (the momentum branch and encode see every patch in order).
static Tensor identity_ids(Backend& backend, int64_t B, int64_t L) {
  Tensor ids = Tensor::empty({B * L}, DType::I32, backend);
  std::vector<int32_t> host(static_cast<size_t>(B * L));
  for (int64_t i = 0; i < B * L; ++i) host[i] = static_cast<int32_t>(i % L);
  backend.copy_from_host(ids.i32(), host.data(), sizeof(int32_t) * host.size());
  return ids;
}

void CmaeModel::plan_training(int64_t B) {
  if (train_batch_ == B) return;
  train_batch_ = 0;  // until planned (an allocation failure below leaves no stale plan)
  const ModelConfig& c = config_;
  const int64_t L = c.num_patches(), K = c.num_visible(), P = c.patch_dim(), D = c.dim, G = c.num_groups();
  const int64_t E = c.projector_dim, Hd = c.projector_hidden, V = c.views();
  const int64_t N = V * B;  // online (and momentum) samples: MoCo v3 encodes both views in one pass
  train_momentum_stack_ = momentum_encoder_.stack;
  // The pixel decoder's chunks (Backend::chunk_rows): as few as keep each under the row target,
  // near-equal; its activations then hold one chunk per part (decoder batch parts · chunk_).
  const int parts = parts_;
  const int64_t per_part = (N + parts - 1) / parts, rows_target = backend_.chunk_rows();
  const int64_t chunks = rows_target > 0 ? std::max<int64_t>(1, (per_part * (1 + L) + rows_target - 1) / rows_target) : 1;
  chunk_ = (per_part + chunks - 1) / chunks;
  chunks_ = (per_part + chunk_ - 1) / chunk_;
  const int64_t chunk_batch = parts == 1 ? N : parts * chunk_;
  auto decoder_layout = [&](Bump& bump, Decoder& dec, DecoderActs& a, int64_t out_dim, int64_t batch) {
    const int64_t Dd = dec.dim;
    a.embed = bump.take_samples((1 + K) * Dd, batch);
    a.x0 = bump.take_samples((1 + L) * Dd, batch);
    dec.stack.layout(bump, backend_, batch, 1 + L, true);
    a.ln = bump.take_samples((1 + L) * Dd, batch);
    a.ln_mean = bump.take_samples(1 + L, batch);
    a.ln_rstd = bump.take_samples(1 + L, batch);
    a.ln_body = bump.take_samples(L * Dd, batch);
    a.pred = bump.take_samples(L * out_dim, batch);
    a.d_ln_body = bump.take_samples(L * Dd, batch);
    a.d_ln = bump.take_samples((1 + L) * Dd, batch);
    a.d_x0 = bump.take_samples((1 + L) * Dd, batch);
    a.d_embed = bump.take_samples((1 + K) * Dd, batch);
  };
  // The chunked passes' slots (chunk_ per part, the part's index × chunk_ first): this rank's parts'.
  const int64_t first_slot = part_begin_ * chunk_, own_slots = parts == 1 ? chunk_batch : (part_end_ - part_begin_) * chunk_;
  // N rows; BatchNorm statistics per view (head_view).
  auto head_layout = [&](Bump& bump, HeadActs& a) {
    a.h = bump.take(N * Hd);
    a.bn = bump.take(N * Hd);
    a.bn_mean = bump.take(V * Hd);
    a.bn_rstd = bump.take(V * Hd);
    a.relu = bump.take(N * Hd);
    a.out = bump.take(N * E);
  };
  if (c.has_momentum() || c.is_classifier()) {
    train_ids_ = Tensor();
    train_ids_ = identity_ids(backend_, std::max(N, chunk_batch), L);  // the momentum chunks' slots may reach past N
  }
  // This rank's samples (all of them in one process): only their rows of the per-sample
  // activations are planned (Bump::take_samples); what the whole-batch stage reads of every sample
  // (pooled features, heads, the masking of all samples) is planned for the batch.
  const int64_t first_sample = N * part_begin_ / parts, own_samples = N * part_end_ / parts - first_sample;
  plan_workspace([&](int64_t floats) { return workspace_for(floats, infer_batch_); }, [&](Bump& bump) {
    TrainActs& t = t_;
    bump.set_window(first_sample, own_samples);
    t.patches_visible = bump.take_samples(K * P, N);
    t.tokens = bump.take_samples(K * D, N);
    t.x0 = bump.take_samples((1 + K) * D, N);
    encoder_.stack.layout(bump, backend_, N, 1 + K, true, recompute_activations_);
    t.d_latent_feature = bump.take_samples((1 + K) * D, N);
    t.d_visible = bump.take_samples(K * D, N);
    if (c.has_pixel_decoder()) {
      t.latent = bump.take_samples((1 + K) * D, B);
      t.latent_mean = bump.take_samples(1 + K, B);
      t.latent_rstd = bump.take_samples(1 + K, B);
      t.target_pix = bump.take_samples(L * c.decoder_out_dim(), B);
      t.dpred = bump.take_samples(L * c.decoder_out_dim(), B);
      t.d_latent = bump.take_samples((1 + K) * D, B);
    }
    if (c.has_feature_decoder()) t.d_feature_body = bump.take_samples(L * D, B);
    if (c.has_dense_projector()) {
      t.dense_in = bump.take_samples(K * D, N);
      t.dense_h = bump.take_samples(K * Hd, N);
      t.d_dense_h = bump.take_samples(K * Hd, N);
      t.d_dense_in = bump.take_samples(K * D, N);
      t.d_dense_enc = bump.take_samples((1 + K) * D, N);
      t.m_tokens = bump.take_samples(L * D, N);
    }
    bump.clear_window();
    t.noise = bump.take(N * G);
    t.mask = bump.take(N * L);
    t.loss_mask = t.mask;
    if (c.thrown_groups() > 0) {
      t.loss_mask = bump.take(N * L);
      t.unthrown_ids_keep = bump.take_i32(N * c.unmasked_groups() * c.mask_group * c.mask_group);
      t.unthrown_ids_restore = bump.take_i32(N * L);
    }
    t.ids_keep = bump.take_i32(N * K);
    t.ids_restore = bump.take_i32(N * L);
    t.d_patch_weight_t = bump.take(parts * P * D);
    t.losses = bump.take(1 + V);
    t.chunk_losses = bump.take(parts * chunks_);
    if (c.is_classifier()) {
      const int64_t Cn = c.num_classes;
      t.ids_all = train_ids_.i32();
      t.pooled = bump.take(B * D);
      t.feat = bump.take(B * D);
      t.feat_mean = bump.take(B);
      t.feat_rstd = bump.take(B);
      t.logits = bump.take(B * Cn);
      t.d_logits = bump.take(B * Cn);
      t.d_feat = bump.take(B * D);
      t.d_pooled = bump.take(B * D);
      t.drop_scales = bump.take(2 * c.depth * B);
    }
    bump.set_window(first_slot, own_slots);
    if (c.has_pixel_decoder()) decoder_layout(bump, pixel_decoder_, t.pixel, c.decoder_out_dim(), chunk_batch);
    if (c.has_feature_decoder()) decoder_layout(bump, feature_decoder_, t.feature, D, chunk_batch);
    if (c.has_momentum()) {
      t.ids_all = train_ids_.i32();
      // one chunk per part, like the pixel decoder's (the same 1 + L tokens)
      t.t_patches = bump.take_samples(L * P, chunk_batch);
      t.t_tokens = bump.take_samples(L * D, chunk_batch);
      t.t_x0 = bump.take_samples((1 + L) * D, chunk_batch);
      train_momentum_stack_.layout(bump, backend_, chunk_batch, 1 + L, false);
    }
    if (c.has_dense_projector()) t.m_dense_h = bump.take_samples(L * Hd, chunk_batch);
    bump.clear_window();
    if (c.has_projector()) {
      t.feature_pooled = bump.take(N * D);
      t.d_feature_pooled = bump.take(N * D);
      head_layout(bump, t.projector);
      t.d_z = bump.take(N * E);
      t.d_head_hidden = bump.take(N * Hd);  // SimCLR's head runs on all N rows at once
    }
    if (c.has_predictor()) {
      head_layout(bump, t.predictor);
      head_layout(bump, t.momentum_projector);
      t.t_pooled = bump.take(N * D);
      t.dq = bump.take(N * E);
    }
    if (c.has_dense_projector()) {
      t.dense_q = bump.take(N * K * E);  // (all samples: gathered across ranks, read by the dense InfoNCE)
      t.dense_dq = bump.take(N * K * E);
      t.dense_k = bump.take(N * L * E);
      t.dense_losses = bump.take(V);
      t.match = bump.take_i32(N * K);
    }
  });
  train_batch_ = B;
}

CmaeModel::HeadActs CmaeModel::head_view(const HeadActs& a, int64_t view, int64_t B) const {
  const int64_t Hd = config_.projector_hidden, E = config_.projector_dim, r = view * B;
  return {a.h + r * Hd, a.bn + r * Hd, a.bn_mean + view * Hd, a.bn_rstd + view * Hd, a.relu + r * Hd, a.out + r * E};
}

void CmaeModel::plan_inference(int64_t B) {
  if (infer_batch_ == B) return;
  infer_batch_ = 0;  // until planned
  const int64_t L = config_.num_patches(), P = config_.patch_dim(), D = config_.dim;
  infer_stack_online_ = encoder_.stack;
  if (config_.has_momentum()) infer_stack_momentum_ = momentum_encoder_.stack;
  infer_ids_ = Tensor();
  infer_ids_ = identity_ids(backend_, B, L);
  plan_workspace([&](int64_t floats) { return workspace_for(floats, train_batch_); }, [&](Bump& bump) {
    i_.patches = bump.take(B * L * P);
    i_.tokens = bump.take(B * L * D);
    i_.x0 = bump.take(B * (1 + L) * D);
    i_.ln = bump.take(B * (1 + L) * D);
    i_.ln_mean = bump.take(B * (1 + L));
    i_.ln_rstd = bump.take(B * (1 + L));
    i_.ids_all = infer_ids_.i32();
    infer_stack_online_.layout(bump, backend_, B, 1 + L, false);
    if (config_.has_momentum()) infer_stack_momentum_.layout(bump, backend_, B, 1 + L, false);
    i_.pooled = bump.take(B * D);  // (encode's staging of one block's features; the classifier's pooled features)
    if (config_.is_classifier()) {
      i_.feat = bump.take(B * D);
      i_.feat_mean = bump.take(B);
      i_.feat_rstd = bump.take(B);
    }
  });
  infer_batch_ = B;
}

void CmaeModel::expect_finite(const Tensor& t, const char* name) {
  if (!finite_check_.defined()) finite_check_ = Tensor::empty({1}, DType::I32, backend_);
  constexpr int64_t kChunk = int64_t{1} << 30;  // first_nonfinite takes n < 2^31
  for (int64_t start = 0; start < t.numel(); start += kChunk) {
    backend_.first_nonfinite(finite_check_.i32(), t.f32() + start, std::min(kChunk, t.numel() - start));
    int32_t at = -1;
    backend_.copy_to_host(&at, finite_check_.i32(), sizeof(int32_t));
    if (at < 0) continue;
    const int64_t flat = start + at;
    float value = 0.0f;
    backend_.copy_to_host(&value, t.f32() + flat, sizeof(float));
    std::string where;
    for (int64_t d = t.dim() - 1, rest = flat; d >= 0; --d) {
      where = std::to_string(rest % t.size(d)) + (where.empty() ? "" : ", ") + where;
      rest /= t.size(d);
    }
    fail(ErrorKind::Value, name, " must hold finite values: ", name, "[", where, "] is ", std::isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf",
         " (the first of them, flat index ", flat, ")");
  }
}

int64_t CmaeModel::check_images(const Tensor& images, const char* name) {
  const ModelConfig& c = config_;
  images.expect_dtype(DType::F32, name);
  CMAE_CHECK(images.dim() == 4 && images.size(0) >= 1, Shape, name, " must have shape [N, ", c.channels, ", ", c.image_size, ", ",
             c.image_size, "] with N >= 1, got ", shape_string(images.shape()));
  images.expect_shape({images.size(0), c.channels, c.image_size, c.image_size}, name);
  images.expect_backend(backend_, name);
  expect_finite(images, name);
  return images.size(0);
}

// ---- pieces -----------------------------------------------------------------------------------------

void CmaeModel::embed_tokens(float* x0, float* tokens, float* patches, const float* images, const int32_t* ids, int64_t K,
                             const Encoder& enc, int64_t b0, int64_t nb) {
  const ModelConfig& c = config_;
  const int64_t L = c.num_patches(), P = c.patch_dim(), D = c.dim;
  // Only the listed patches are read and embedded (channels-first: the conv weight's order).
  backend_.patchify_visible(patches + b0 * K * P, images, ids + b0 * K, nb, c.channels, c.image_size, c.image_size,
                            c.patch_size, K, PatchLayout::ChannelsFirst);
  linear_fwd(backend_, tokens + b0 * K * D, patches + b0 * K * P, p(), enc.patch, nb * K);
  // The cls row (cls token + pos row 0, which is zero), then the tokens + their position embeddings.
  float* x = x0 + b0 * (1 + K) * D;
  backend_.broadcast_row(x, (1 + K) * D, p() + enc.cls_token, nb, D);
  backend_.add_positions(x, tokens + b0 * K * D, p() + pos_embed_ + D, ids + b0 * K, nb, L, K, D, 1);
}

void CmaeModel::decoder_forward(Decoder& dec, DecoderActs& a, const float* latent, const int32_t* ids_restore, int64_t b0,
                                int64_t nb, int64_t w0) {
  const int64_t L = config_.num_patches(), K = config_.num_visible(), Dd = dec.dim;
  // Rows of sample w0 in the decoder's activations; the latent and ids rows of sample b0.
  const int64_t body = w0 * L, rows = w0 * (1 + L), lat = w0 * (1 + K);
  linear_fwd(backend_, a.embed + lat * Dd, latent + b0 * (1 + K) * config_.dim, p(), dec.embed, nb * (1 + K));
  // mask tokens + unshuffle + decoder position embedding (cls row gets pos row 0 = zeros).
  backend_.unshuffle_forward(a.x0 + rows * Dd, a.embed + lat * Dd, p() + dec.mask_token, p() + dec.pos_embed + Dd, p() + dec.pos_embed,
                             ids_restore + b0 * L, nb, L, K, Dd, 1);
  const float* y = dec.stack.forward(p(), a.x0, w0, nb);
  backend_.layernorm_forward(a.ln + rows * Dd, a.ln_mean + rows, a.ln_rstd + rows, y + rows * Dd, p() + dec.norm.weight,
                             p() + dec.norm.bias, nb * (1 + L), Dd, kLayerNormEps);
  // The prediction head sees the patch rows only (each sample's cls row dropped).
  const size_t row = sizeof(float) * Dd;
  backend_.copy_2d(a.ln_body + body * Dd, L * row, a.ln + (rows + 1) * Dd, (1 + L) * row, L * row, static_cast<size_t>(nb));
  linear_fwd(backend_, a.pred + body * dec.pred.out, a.ln_body + body * Dd, p(), dec.pred, nb * L);
}

void CmaeModel::decoder_backward(Decoder& dec, DecoderActs& a, float* g, float* d_latent, const float* d_out, const float* latent,
                                 const int32_t* ids_restore, int64_t b0, int64_t nb, int64_t w0) {
  const int64_t L = config_.num_patches(), K = config_.num_visible(), Dd = dec.dim;
  const int64_t out_dim = dec.pred.out;
  // Row offsets of sample w0 in the decoder's activations: (·, L, ·) body rows, (·, 1+L, ·) decoder
  // rows, (·, 1+K, ·) embedded latent rows; d_out, ids, latent and d_latent from sample b0.
  const int64_t body = w0 * L, rows = w0 * (1 + L), lat = w0 * (1 + K);
  linear_bwd(backend_, a.d_ln_body + body * Dd, g, d_out + b0 * L * out_dim, a.ln_body + body * Dd, p(), dec.pred, nb * L);
  // Back through the dropped cls rows: zero gradient there, the body rows' gradient elsewhere.
  const size_t row = sizeof(float) * Dd;
  backend_.zero_2d(a.d_ln + rows * Dd, (1 + L) * row, row, static_cast<size_t>(nb));
  backend_.copy_2d(a.d_ln + (rows + 1) * Dd, (1 + L) * row, a.d_ln_body + body * Dd, L * row, L * row, static_cast<size_t>(nb));
  // d_x0 carries the residual-stream gradient down through the stack (in place).
  backend_.layernorm_backward(a.d_x0 + rows * Dd, g + dec.norm.weight, g + dec.norm.bias, a.d_ln + rows * Dd,
                              dec.stack.output() + rows * Dd, p() + dec.norm.weight, a.ln_mean + rows, a.ln_rstd + rows, nb * (1 + L),
                              Dd, /*accumulate_dinp=*/false);
  dec.stack.backward(g, a.d_x0, p(), a.x0, w0, nb);
  backend_.unshuffle_backward(a.d_embed + lat * Dd, g + dec.mask_token, a.d_x0 + rows * Dd, ids_restore + b0 * L, nb, L, K, Dd, 1);
  const int64_t lat_b = b0 * (1 + K) * config_.dim;
  linear_bwd(backend_, d_latent + lat_b, g, a.d_embed + lat * Dd, latent + lat_b, p(), dec.embed, nb * (1 + K));
}

void CmaeModel::head_forward(const Head& head, HeadActs& a, const float* inp, int64_t B, bool update_running_stats) {
  const int64_t Hd = config_.projector_hidden;
  linear_fwd(backend_, a.h, inp, p(), head.fc1, B);
  backend_.batchnorm_forward(a.bn, a.bn_mean, a.bn_rstd, update_running_stats ? p() + head.running_mean : nullptr,
                             update_running_stats ? p() + head.running_var : nullptr, a.h, p() + head.bn.weight, p() + head.bn.bias, B,
                             Hd, static_cast<float>(config_.bn_eps), static_cast<float>(config_.bn_momentum));
  backend_.relu_forward(a.relu, a.bn, B * Hd);
  linear_fwd(backend_, a.out, a.relu, p(), head.fc2, B);
}

void CmaeModel::head_backward(const Head& head, HeadActs& a, float* d_inp, const float* d_out, const float* inp, float* d_hidden,
                              int64_t B) {
  float* g = grads_.f32();
  const int64_t Hd = config_.projector_hidden;
  linear_bwd(backend_, d_hidden, g, d_out, a.relu, p(), head.fc2, B);
  backend_.relu_backward(d_hidden, d_hidden, a.relu, B * Hd);
  // BatchNorm backward needs a separate output buffer from its dout: reuse a.relu (no longer needed).
  backend_.batchnorm_backward(a.relu, g + head.bn.weight, g + head.bn.bias, d_hidden, a.h, p() + head.bn.weight, a.bn_mean,
                              a.bn_rstd, B, Hd);
  linear_bwd(backend_, d_inp, g, a.relu, inp, p(), head.fc1, B);
}

void CmaeModel::for_each_view(int64_t B, int64_t b0, int64_t nb, const std::function<void(int64_t, int64_t, int64_t)>& fn) const {
  for (int64_t v = 0; v < config_.views(); ++v) {
    const int64_t s0 = std::max(b0, v * B), s1 = std::min(b0 + nb, (v + 1) * B);
    if (s1 > s0) fn(v, s0, s1 - s0);
  }
}

void CmaeModel::for_each_chunk(int64_t b0, int64_t nb, const std::function<void(int64_t, int64_t, int64_t)>& fn) const {
  const int64_t chunks = (nb + chunk_ - 1) / chunk_;
  for (int64_t j = 0; j < chunks; ++j) {
    const int64_t s0 = b0 + nb * j / chunks, s1 = b0 + nb * (j + 1) / chunks;
    fn(j, s0, s1 - s0);
  }
}

double CmaeModel::reconstruction_loss(int64_t N) const {
  const int parts = parts_;
  std::vector<float> chunk(static_cast<size_t>(parts * chunks_));
  backend_.copy_to_host(chunk.data(), t_.chunk_losses, sizeof(float) * chunk.size());
  double loss = 0.0;
  for (int part = 0; part < parts; ++part) {
    const int64_t b0 = N * part / parts, nb = N * (part + 1) / parts - b0;
    if (nb <= 0) continue;
    for_each_chunk(b0, nb, [&](int64_t j, int64_t, int64_t n) {
      loss += static_cast<double>(chunk[static_cast<size_t>(part * chunks_ + j)]) * static_cast<double>(n) / static_cast<double>(N);
    });
  }
  return loss;
}

void CmaeModel::forward_samples(const float* images, const float* target_images, int64_t B, int64_t b0, int64_t nb, int part,
                                float* g) {
  if (nb <= 0) return;
  const ModelConfig& c = config_;
  TrainActs& t = t_;
  const int64_t L = c.num_patches(), K = c.num_visible(), D = c.dim, image = c.image_numel(), N = c.views() * B;
  const int64_t vis = b0 * (1 + K);  // first row of the sample range in (N, 1+K, ·) buffers
  const float* enc_out = encoder_.stack.depth() > 0 ? encoder_.stack.output() : t.x0;
  // Online sample s of view v is image s − v·B of that view; the momentum branch sees the other
  // view (CMAE: the target; MoCo v3: the other of the two, so that rows meet their positives),
  // except MaskDistill's teacher, which sees the student's own image whole.
  const float* online_view[2] = {images, target_images};
  const float* momentum_view[2] = {c.mode == Mode::MASKDISTILL ? images : target_images, images};
  if (c.has_momentum()) {
    // momentum branch first (no gradients; MaskDistill's reconstruction targets are its output):
    // whole view, no final norm; CMAE and MoCo v3 pool its patch tokens, MaskDistill takes them as
    // they are
    // Chunk by chunk through this part's slot of its activations (w0): only the pooled features
    // (MaskDistill: the targets) outlive a chunk.
    const int64_t w0 = part * chunk_, slot = w0 * (1 + L);
    const float* t_out = train_momentum_stack_.depth() > 0 ? train_momentum_stack_.output() : t.t_x0;
    for_each_view(B, b0, nb, [&](int64_t v, int64_t v0, int64_t vn) {
      for_each_chunk(v0, vn, [&](int64_t, int64_t s0, int64_t n) {
        embed_tokens(t.t_x0, t.t_tokens, t.t_patches, momentum_view[v] + (s0 - v * B) * image, t.ids_all, L, momentum_encoder_, w0, n);
        { CMAE_PROF("M.mom_fwd"); train_momentum_stack_.forward(p(), t.t_x0, w0, n); }
        if (c.has_predictor()) backend_.mean_pool_forward(t.t_pooled + s0 * D, t_out + slot * D, n, 1 + L, D, 1);
        if (c.has_dense_projector()) {
          // DenseCL: the momentum patch tokens outlive the chunk (the online tokens are matched
          // against them), and their dense projections are the dense keys.
          const int64_t Hd = c.projector_hidden, E = c.projector_dim;
          const size_t row = sizeof(float) * D;
          backend_.copy_2d(t.m_tokens + s0 * L * D, L * row, t_out + (slot + 1) * D, (1 + L) * row, L * row, static_cast<size_t>(n));
          float* hidden = t.m_dense_h + w0 * L * Hd;
          linear_fwd(backend_, hidden, t.m_tokens + s0 * L * D, p(), momentum_dense_projector_.fc1, n * L);
          backend_.relu_forward(hidden, hidden, n * L * Hd);
          linear_fwd(backend_, t.dense_k + s0 * L * E, hidden, p(), momentum_dense_projector_.fc2, n * L);
        }
        if (c.mode == Mode::MASKDISTILL) {
          // The teacher's patch tokens (its cls rows dropped) as the targets, standardised per token
          // by the norm-pix loss (normPixLoss). Where we differ from MaskDistill: its teacher is a
          // CLIP model whose features pass a LayerNorm without affine (biased variance) and it uses
          // a smooth-L1 loss; here the norm-pix loss's unbiased standardisation and its MSE.
          const size_t row = sizeof(float) * D;
          backend_.copy_2d(t.target_pix + s0 * L * D, L * row, t_out + (slot + 1) * D, (1 + L) * row, L * row, static_cast<size_t>(n));
        }
      });
    });
  }
  // online encoder on the visible patches only (they are the only ones patchified and embedded;
  // patches_visible is kept for the patch embedding's weight gradient)
  {
    CMAE_PROF("M.embed");
    for_each_view(B, b0, nb, [&](int64_t v, int64_t s0, int64_t n) {
      embed_tokens(t.x0, t.tokens, t.patches_visible, online_view[v] + (s0 - v * B) * image, t.ids_keep, K, encoder_, s0, n);
    });
  }
  { CMAE_PROF("M.enc_fwd"); encoder_.stack.forward(p(), t.x0, b0, nb); }
  if (c.has_dense_projector()) {
    // DenseCL: each visible token's match among the momentum tokens of the same row (the other
    // view), by cosine of the backbone features; then the online dense projections.
    const int64_t Hd = c.projector_hidden, E = c.projector_dim;
    const size_t row = sizeof(float) * D;
    backend_.match_tokens(t.match + b0 * K, enc_out + (vis + 1) * D, (1 + K) * D, t.m_tokens + b0 * L * D, L * D, nb, K, L, D);
    backend_.copy_2d(t.dense_in + b0 * K * D, K * row, enc_out + (vis + 1) * D, (1 + K) * row, K * row, static_cast<size_t>(nb));
    float* hidden = t.dense_h + b0 * K * Hd;
    linear_fwd(backend_, hidden, t.dense_in + b0 * K * D, p(), dense_projector_.fc1, nb * K);
    backend_.relu_forward(hidden, hidden, nb * K * Hd);  // in place: the backward needs only the ReLU's output
    linear_fwd(backend_, t.dense_q + b0 * K * E, hidden, p(), dense_projector_.fc2, nb * K);
  }
  if (c.has_pixel_decoder()) {
    backend_.layernorm_forward(t.latent + vis * D, t.latent_mean + vis, t.latent_rstd + vis, enc_out + vis * D,
                               p() + final_norm_.weight, p() + final_norm_.bias, nb * (1 + K), D, kLayerNormEps);
    // The pixel decoder's whole pass, chunk by chunk into this part's slot of its activations: the
    // loss of a chunk is the mean over its masked patches, so its gradient is scaled by its share
    // n / N of the batch's (every sample masks the same number of patches) and the batch's loss is
    // put together from the chunks' (reconstruction_loss). One chunk (a GPU) scales by exactly 1.
    CMAE_PROF("M.pixdec");
    const int64_t out = c.decoder_out_dim(), w0 = part * chunk_;
    for_each_chunk(b0, nb, [&](int64_t j, int64_t s0, int64_t n) {
      decoder_forward(pixel_decoder_, t.pixel, t.latent, t.ids_restore, s0, n, w0);
      if (c.mode != Mode::MASKDISTILL) {
        backend_.patchify(t.target_pix + s0 * L * out, images + s0 * image, n, c.channels, c.image_size, c.image_size, c.patch_size,
                          PatchLayout::PixelsLast);
      }
      const float* pred = t.pixel.pred + w0 * L * out;
      backend_.normpix_mse_forward_backward(t.chunk_losses + part * chunks_ + j, t.dpred + s0 * L * out, pred,
                                            t.target_pix + s0 * L * out, t.loss_mask + s0 * L, n, L, out, c.norm_pix_loss, 1e-6f,
                                            static_cast<float>(c.rc_weight * static_cast<double>(n) / static_cast<double>(N)));
      if (pred_out_) backend_.copy(pred_out_->f32() + s0 * L * out, pred, sizeof(float) * n * L * out);
      decoder_backward(pixel_decoder_, t.pixel, g, t.d_latent, t.dpred, t.latent, t.ids_restore, s0, n, w0);
    });
  }
  if (c.has_feature_decoder()) {
    // By chunks too (the heads need every sample's pooled features before any backward): only the
    // pooled features outlive a chunk, and backward_samples recomputes the forward of every chunk
    // but the last.
    CMAE_PROF("M.featdec_fwd");
    const int64_t w0 = part * chunk_;
    for_each_chunk(b0, nb, [&](int64_t, int64_t s0, int64_t n) {
      decoder_forward(feature_decoder_, t.feature, t.latent, t.ids_restore, s0, n, w0);
      backend_.mean_pool_forward(t.feature_pooled + s0 * D, t.feature.pred + w0 * L * D, n, L, D, 0);
    });
  } else if (c.has_projector()) {
    // MoCo v3, SimCLR: the mean of the online encoder's patch tokens (without the final norm).
    backend_.mean_pool_forward(t.feature_pooled + b0 * D, enc_out + vis * D, nb, 1 + K, D, 1);
  }
}

void CmaeModel::backward_samples(float* g, float* d_patch_weight_t, int64_t b0, int64_t nb, int part) {
  if (nb <= 0) return;
  const ModelConfig& c = config_;
  TrainActs& t = t_;
  const int64_t L = c.num_patches(), K = c.num_visible(), D = c.dim;
  const int64_t lat = b0 * (1 + K);  // first latent row of the range
  const float* enc_out = encoder_.stack.depth() > 0 ? encoder_.stack.output() : t.x0;
  // d_enc: the gradient at the encoder's output (N, 1+K, D).
  float* d_enc = t.d_latent_feature;
  if (c.has_pixel_decoder()) {
    // t.d_latent holds the pixel decoder's gradient already (forward_samples ran its whole pass).
    if (c.has_feature_decoder()) {
      // The chunks from the last back: its activations are still there from the forward; each
      // earlier one's forward runs again (the same kernels on the same inputs: the same bits).
      CMAE_PROF("M.featdec_bwd");
      const int64_t w0 = part * chunk_, chunks = (nb + chunk_ - 1) / chunk_;
      std::vector<std::array<int64_t, 2>> pieces;
      for_each_chunk(b0, nb, [&](int64_t, int64_t s0, int64_t n) { pieces.push_back({s0, n}); });
      for (int64_t j = chunks - 1; j >= 0; --j) {
        const int64_t s0 = pieces[static_cast<size_t>(j)][0], n = pieces[static_cast<size_t>(j)][1];
        if (j + 1 < chunks) decoder_forward(feature_decoder_, t.feature, t.latent, t.ids_restore, s0, n, w0);
        backend_.mean_pool_backward(t.d_feature_body + s0 * L * D, t.d_feature_pooled + s0 * D, n, L, D, 0);
        decoder_backward(feature_decoder_, t.feature, g, t.d_latent_feature, t.d_feature_body, t.latent, t.ids_restore, s0, n, w0);
      }
      backend_.add_inplace(t.d_latent + lat * D, t.d_latent_feature + lat * D, nb * (1 + K) * D);
    }
    // Final norm backward writes the encoder-output gradient into d_latent_feature (free now).
    backend_.layernorm_backward(d_enc + lat * D, g + final_norm_.weight, g + final_norm_.bias, t.d_latent + lat * D, enc_out + lat * D,
                                p() + final_norm_.weight, t.latent_mean + lat, t.latent_rstd + lat, nb * (1 + K), D,
                                /*accumulate_dinp=*/false);
  } else {
    // MoCo v3: back through the mean of the patch tokens (the cls rows get zeros).
    backend_.mean_pool_backward(d_enc + lat * D, t.d_feature_pooled + b0 * D, nb, 1 + K, D, 1);
    // DenseCL: plus the dense head's gradient at the same tokens, its backward by sample like the
    // encoder's (into this part's arena: with ranks, each runs only its own samples' tokens).
    if (c.has_dense_projector()) {
      const int64_t Hd = c.projector_hidden, E = c.projector_dim, q0 = b0 * K, rows = nb * K;
      linear_bwd(backend_, t.d_dense_h + q0 * Hd, g, t.dense_dq + q0 * E, t.dense_h + q0 * Hd, p(), dense_projector_.fc2, rows);
      backend_.relu_backward(t.d_dense_h + q0 * Hd, t.d_dense_h + q0 * Hd, t.dense_h + q0 * Hd, rows * Hd);
      linear_bwd(backend_, t.d_dense_in + q0 * D, g, t.d_dense_h + q0 * Hd, t.dense_in + q0 * D, p(), dense_projector_.fc1, rows);
      const size_t row = sizeof(float) * D;
      backend_.zero_2d(t.d_dense_enc + lat * D, (1 + K) * row, row, static_cast<size_t>(nb));
      backend_.copy_2d(t.d_dense_enc + (lat + 1) * D, (1 + K) * row, t.d_dense_in + q0 * D, K * row, K * row, static_cast<size_t>(nb));
      backend_.add_inplace(d_enc + lat * D, t.d_dense_enc + lat * D, nb * (1 + K) * D);
    }
  }
  encoder_backward(g, d_enc, d_patch_weight_t, b0, nb);
}

void CmaeModel::encoder_backward(float* g, float* d_enc, float* d_patch_weight_t, int64_t b0, int64_t nb) {
  TrainActs& t = t_;
  const int64_t K = config_.num_visible(), P = config_.patch_dim(), D = config_.dim;
  const int64_t lat = b0 * (1 + K);  // first latent row of the range
  {
    CMAE_PROF("M.enc_bwd");
    // Above the blocks (decoders, heads, final norm) every gradient is complete now; each block's
    // after its backward; the embeddings below them at the end of the step (grads_complete_).
    if (grads_complete_) grads_complete_(encoder_.stack.param_end());
    std::function<void(int64_t)> after_block;
    if (grads_complete_) after_block = [&](int64_t i) { grads_complete_(encoder_.stack.param_begin(i)); };
    encoder_.stack.backward(g, d_enc, p(), t.x0, b0, nb, after_block);
  }
  // cls token: the sum of its rows' gradients.
  backend_.column_sums_add(g + encoder_.cls_token, d_enc + lat * D, nb, D, (1 + K) * D);
  {
    // Patch embedding: its weight and bias gradients are sums over the rows it embedded, the
    // visible patches the forward patchified (patches_visible). The weight gradient is formed
    // transposed, dWᵀ (P, D) = patches_visᵀ · d_vis: a TN product with 192-wide rather than
    // 48-wide output rows (2× faster in the CPU GEMM), then added transposed into the [D, P]
    // gradient.
    CMAE_PROF("M.patch_bwd");
    float* d_visible = t.d_visible + b0 * K * D;
    const size_t row = sizeof(float) * D;
    backend_.copy_2d(d_visible, K * row, d_enc + (lat + 1) * D, (1 + K) * row, K * row, static_cast<size_t>(nb));
    backend_.sgemm(true, false, P, D, nb * K, 1.0f, t.patches_visible + b0 * K * P, P, d_visible, D, 0.0f, d_patch_weight_t, D);
    backend_.transpose_add(g + encoder_.patch.weight, d_patch_weight_t, P, D);
    backend_.column_sums_add(g + encoder_.patch.bias, d_visible, nb * K, D, D);
  }
}

// ---- training step ---------------------------------------------------------------------------------

LossResult CmaeModel::loss_and_grad(const Tensor& images, const Tensor* target_images, const Tensor* mask_noise,
                                    const Outputs& outputs) {
  const ModelConfig& c = config_;
  CMAE_CHECK(!c.is_classifier(), Value, "a classifier model trains on labels (classifierLossAndGrad), not with a pre-training loss");
  const bool two_views = c.has_projector();  // CMAE, MoCo v3 and SimCLR take a second view; MAE and MaskDistill do not
  const int64_t B = check_images(images, "images");
  const int64_t L = c.num_patches(), G = c.num_groups(), E = c.projector_dim, V = c.views(), N = V * B;
  const int64_t out_dim = c.decoder_out_dim();
  if (two_views) {
    const char* method = c.mode == Mode::CMAE ? "CMAE" : c.mode == Mode::MOCOV3 ? "MoCo v3" : c.mode == Mode::DENSECL ? "DenseCL" : "SimCLR";
    CMAE_CHECK(B >= 2, Shape, method, " needs a batch of at least 2 images (BatchNorm statistics and InfoNCE negatives), got ", B);
    CMAE_CHECK(target_images != nullptr, Value, method,
               c.mode == Mode::CMAE ? " mode needs targetImages (the pixel-shifted view); use mode 'mae' to train without it"
                                    : " needs targetImages (the second augmented view of each image)");
    target_images->expect_dtype(DType::F32, "targetImages");
    target_images->expect_shape(images.shape(), "targetImages");
    target_images->expect_backend(backend_, "targetImages");
    expect_finite(*target_images, "targetImages");
  }
  if (mask_noise) {
    expect_tensor(*mask_noise, "maskNoise", DType::F32, {N, G}, backend_);
    expect_finite(*mask_noise, "maskNoise");
  }
  if (outputs.pred) {
    CMAE_CHECK(c.has_pixel_decoder(), Value, "outputs.pred: a mocov3 model has no pixel decoder");  // its only mode without one
    expect_tensor(*outputs.pred, "outputs.pred", DType::F32, {B, L, out_dim}, backend_);
  }
  if (outputs.mask) expect_tensor(*outputs.mask, "outputs.mask", DType::F32, {N, L}, backend_);
  if (outputs.ids_restore) expect_tensor(*outputs.ids_restore, "outputs.idsRestore", DType::I32, {N, L}, backend_);
  if (two_views && outputs.q) expect_tensor(*outputs.q, "outputs.q", DType::F32, {N, E}, backend_);
  if (two_views && outputs.z_t) {
    CMAE_CHECK(c.has_predictor(), Value, "outputs.zT: a simclr model has no momentum branch");
    expect_tensor(*outputs.z_t, "outputs.zT", DType::F32, {N, E}, backend_);
  }

  const bool distributed = collective_ && collective_->world_size() > 1;
  CMAE_CHECK(!(distributed && outputs.pred), Value, "outputs.pred: in distributed training a rank predicts only its own samples");
  plan_training(B);
  pred_out_ = outputs.pred;
  CMAE_PROF("M.STEP");
  TrainActs& t = t_;
  const int parts = parts_;
  { CMAE_PROF("M.zero_grad"); backend_.fill_zero(grads_.f32(), grads_.bytes()); backend_.fill_zero(part_grads_.f32(), part_grads_.bytes()); }
  if (running_stats_backup_.defined()) backend_.copy(running_stats_backup_.f32(), p() + running_stats_begin_, running_stats_backup_.bytes());

  if (mask_noise) {
    backend_.copy(t.noise, mask_noise->f32(), sizeof(float) * N * G);
  } else {
    backend_.masking_noise(t.noise, N, G, seed_, make_stream(RngStream::Mask, mask_counter_++));
  }
  backend_.random_masking(t.ids_keep, t.ids_restore, t.mask, t.noise, N, c.grid(), c.grid(), c.mask_group, c.keep_groups());
  if (c.thrown_groups() > 0) {
    // The same ranking (noise, ties by group index) keeping more groups: the visible ones and the
    // next thrown_groups(), so its mask is 1 exactly on the groups to reconstruct.
    backend_.random_masking(t.unthrown_ids_keep, t.unthrown_ids_restore, t.loss_mask, t.noise, N, c.grid(), c.grid(), c.mask_group,
                            c.unmasked_groups());
  }
  const float* target = two_views ? target_images->f32() : nullptr;

  // The step runs in three parts: the forward of every branch, by sample; the losses and the
  // projection heads, which couple the batch (norm-pix over all masked patches, BatchNorm,
  // InfoNCE), on the whole batch; the backward, by sample. The per-sample parts cut the N online
  // samples into the backend's fixed batch parts (Backend::batch_parts: 2 halves on the CPU), each
  // with its own gradient arena, added together at the end; fixed parts, so results do not depend
  // on the thread count.
  auto part_range = [&](int part, int64_t& b0, int64_t& nb) {
    b0 = N * part / parts;
    nb = N * (part + 1) / parts - b0;
  };
  {
    CMAE_PROF("M.halves_fwd");
    backend_.run_parts(part_end_ - part_begin_, [&](int i) {
      int64_t b0, nb;
      const int part = part_begin_ + i;
      part_range(part, b0, nb);
      forward_samples(images.f32(), target, B, b0, nb, part, part_grads(part));
    });
  }
  if (distributed) {
    // What the whole-batch stage reads of other ranks' samples: their rows of the pooled online
    // and momentum features, and their parts' pixel-loss chunks.
    CMAE_PROF("M.gather");
    const int W = collective_->world_size(), per_rank = parts / W;
    // Rank r's segment of `buffer` is [displs[r], displs[r] + counts[r]) bytes. A device model's
    // exchange is the engine's on device memory (NCCL), else staged through host memory both ways.
    auto exchange = [&](void* buffer, const std::vector<int64_t>& counts, const std::vector<int64_t>& displs, const char* what) {
      if (backend_.device() == Device::CPU) return collective_->allgather(buffer, counts, displs, what);
      if (collective_->has_device_exchanges()) return collective_->device_allgather(backend_, buffer, counts, displs, what);
      std::vector<uint8_t> host(static_cast<size_t>(displs.back() + counts.back()));
      backend_.copy_to_host(host.data(), buffer, host.size());
      collective_->allgather(host.data(), counts, displs, what);
      backend_.copy_from_host(buffer, host.data(), host.size());
    };
    // Per-sample rows (row_bytes each): rank r's are its parts' samples.
    auto gather_rows = [&](void* buffer, int64_t row_bytes, const char* what) {
      std::vector<int64_t> counts(static_cast<size_t>(W)), displs(static_cast<size_t>(W));
      for (int r = 0; r < W; ++r) {
        int64_t first, n_first, last, n_last;
        part_range(r * per_rank, first, n_first);
        part_range((r + 1) * per_rank - 1, last, n_last);
        displs[static_cast<size_t>(r)] = first * row_bytes;
        counts[static_cast<size_t>(r)] = (last + n_last - first) * row_bytes;
      }
      exchange(buffer, counts, displs, what);
    };
    // Per-part slots (slot_bytes each): rank r's are its parts'.
    auto gather_part_slots = [&](void* buffer, int64_t slot_bytes, const char* what) {
      std::vector<int64_t> counts(static_cast<size_t>(W), per_rank * slot_bytes), displs(static_cast<size_t>(W));
      for (int r = 0; r < W; ++r) displs[static_cast<size_t>(r)] = r * per_rank * slot_bytes;
      exchange(buffer, counts, displs, what);
    };
    if (c.has_projector()) gather_rows(t.feature_pooled, sizeof(float) * c.dim, "all-gather of the pooled online features");
    if (c.has_predictor()) gather_rows(t.t_pooled, sizeof(float) * c.dim, "all-gather of the momentum features (InfoNCE negatives)");
    if (c.has_pixel_decoder()) gather_part_slots(t.chunk_losses, sizeof(float) * chunks_, "all-gather of the pixel losses");
    if (c.has_dense_projector()) {
      // DenseCL's dense InfoNCE: every query's match and the negatives' pooled dense keys
      const int64_t K = c.num_visible(), E = c.projector_dim;
      gather_rows(t.dense_q, sizeof(float) * K * E, "all-gather of the dense queries");
      gather_rows(t.dense_k, sizeof(float) * L * E, "all-gather of the dense keys");
      gather_rows(t.match, sizeof(int32_t) * K, "all-gather of the token matches");
    }
  }

  // ---- losses and heads, whole batch (the reconstruction loss ran with the pixel decoder)
  if (c.mode == Mode::SIMCLR) {
    // SimCLR: one projector pass over both views (BatchNorm over all 2B rows, as SimCLR's global
    // BN), NT-Xent over the 2B projections (scale 1: SimCLR's plain cross-entropy).
    head_forward(projector_, t.projector, t.feature_pooled, N, true);
    backend_.ntxent_forward_backward(t.losses + 1, t.d_z, t.projector.out, N, E, static_cast<float>(c.tau), 1.0f,
                                     static_cast<float>(c.ct_weight));
    head_backward(projector_, t.projector, t.d_feature_pooled, t.d_z, t.feature_pooled, t.d_head_hidden, N);
  } else if (two_views) {
    const float scale = static_cast<float>(2.0 * c.tau);  // MoCo v3's 2τ gradient-scale normalisation (spec §2.7)
    // DenseCL weighs its global loss by 1 − λ (its dense loss by λ, below).
    const double global_weight = c.has_dense_projector() ? 1.0 - c.dense_weight : 1.0;
    // One InfoNCE per view, each over that view's B samples (MoCo v3: ctr(q1, k2) + ctr(q2, k1));
    // the heads run per view too, so BatchNorm's statistics are per view as in MoCo v3's two
    // forward calls (running statistics updated once per view, view 0 first).
    for (int64_t v = 0; v < V; ++v) {
      const int64_t r = v * B;
      HeadActs proj = head_view(t.projector, v, B), pred = head_view(t.predictor, v, B), mom = head_view(t.momentum_projector, v, B);
      head_forward(projector_, proj, t.feature_pooled + r * c.dim, B, true);
      head_forward(predictor_, pred, proj.out, B, true);
      head_forward(momentum_projector_, mom, t.t_pooled + r * c.dim, B, true);
      backend_.infonce_forward_backward(t.losses + 1 + v, t.dq + r * E, pred.out, mom.out, B, E, static_cast<float>(c.tau), scale,
                                        static_cast<float>(c.ct_weight * global_weight));
      head_backward(predictor_, pred, t.d_z + r * E, t.dq + r * E, proj.out, t.d_head_hidden, B);
      head_backward(projector_, proj, t.d_feature_pooled + r * c.dim, t.d_z + r * E, t.feature_pooled + r * c.dim, t.d_head_hidden, B);
    }
    if (c.has_dense_projector()) {
      // Dense InfoNCE per view (negatives: the view's other images); the online dense projector's
      // backward runs by sample (backward_samples).
      const int64_t K = c.num_visible();
      for (int64_t v = 0; v < V; ++v) {
        const int64_t r = v * B;
        backend_.dense_infonce_forward_backward(t.dense_losses + v, t.dense_dq + r * K * E, t.dense_q + r * K * E, t.dense_k + r * L * E,
                                                t.match + r * K, B, K, L, E, static_cast<float>(c.tau), scale,
                                                static_cast<float>(c.ct_weight * c.dense_weight));
      }
    }
  }

  // ---- backward, by sample, each part into its own gradient arena; then the arenas summed
  // This rank's parts in order into its first (grads_); with ranks, then every rank's sum in rank
  // order into grads_ on each. With one part per rank the sum runs in buckets during the backward,
  // each as soon as its gradients are complete (OverlappedSum). The heads ran on every rank over
  // the whole batch into grads_: their gradients are counted on rank 0 only (zero elsewhere, so
  // that the sum adds +0 to them as one process adds its other parts' untouched arenas).
  if (distributed && part_begin_ != 0) {
    for (const Head* head : {c.has_projector() ? &projector_ : nullptr, c.has_predictor() ? &predictor_ : nullptr}) {
      if (!head) continue;
      const int64_t begin = head->fc1.weight, end = head->fc2.weight + head->fc2.in * head->fc2.out;
      backend_.fill_zero(grads_.f32() + begin, sizeof(float) * static_cast<size_t>(end - begin));
    }
  }
  float* local = part_grads(part_begin_);
  const int64_t n = table_.trainable_count();
  const char* all_reduce = "all-reduce of the gradients";
  std::unique_ptr<OverlappedSum> overlapped;
  // (A device model sums after the backward: on the device where the engine can, else through host memory.)
  if (distributed && part_end_ - part_begin_ == 1 && backend_.device() == Device::CPU) {
    overlapped = std::make_unique<OverlappedSum>(*collective_, grads_.f32(), local, n, all_reduce);
    grads_complete_ = [&](int64_t offset) { overlapped->release(offset); };
  }
  try {
    CMAE_PROF("M.halves_bwd");
    backend_.run_parts(part_end_ - part_begin_, [&](int i) {
      int64_t b0, nb;
      const int part = part_begin_ + i;
      part_range(part, b0, nb);
      backward_samples(part_grads(part), t.d_patch_weight_t + part * c.patch_dim() * c.dim, b0, nb, part);
    });
  } catch (...) {
    grads_complete_ = nullptr;
    throw;  // (~OverlappedSum lets its thread finish the exchanges: every rank makes the same ones)
  }
  grads_complete_ = nullptr;
  {
    CMAE_PROF("M.merge_grads");
    for (int part = part_begin_ + 1; part < part_end_; ++part) backend_.add_inplace(local, part_grads(part), n);
    if (overlapped) {
      CMAE_PROF("M.allreduce_wait");
      overlapped->finish();
    } else if (distributed && backend_.device() == Device::CPU) {
      CMAE_PROF("M.allreduce");
      collective_->allreduce_sum(grads_.f32(), local, n, all_reduce);
    } else if (distributed && collective_->has_device_exchanges()) {
      CMAE_PROF("M.allreduce_device");
      collective_->device_allreduce_sum(backend_, grads_.f32(), local, n, all_reduce);
    } else if (distributed) {
      CMAE_PROF("M.allreduce_staged");
      std::vector<float> host(static_cast<size_t>(n));
      backend_.copy_to_host(host.data(), local, sizeof(float) * host.size());
      collective_->allreduce_sum(host.data(), host.data(), n, all_reduce);
      backend_.copy_from_host(grads_.f32(), host.data(), sizeof(float) * host.size());
    }
  }

  if (outputs.mask) backend_.copy(outputs.mask->f32(), t.mask, sizeof(float) * N * L);
  if (outputs.ids_restore) backend_.copy(outputs.ids_restore->i32(), t.ids_restore, sizeof(int32_t) * N * L);
  if (two_views && outputs.q) backend_.copy(outputs.q->f32(), c.has_predictor() ? t.predictor.out : t.projector.out, sizeof(float) * N * E);
  if (two_views && outputs.z_t) backend_.copy(outputs.z_t->f32(), t.momentum_projector.out, sizeof(float) * N * E);

  // losses: [reconstruction (MaskDistill: of the teacher's features), contrastive of view 0, (of
  // view 1)]; MoCo v3 writes no reconstruction.
  float losses[3] = {0.0f, 0.0f, 0.0f}, dense[2] = {0.0f, 0.0f};
  if (c.has_pixel_decoder()) losses[0] = static_cast<float>(reconstruction_loss(N));
  // One contrastive loss per view for InfoNCE against the momentum branch, one NT-Xent for SimCLR.
  if (two_views) backend_.copy_to_host(losses + 1, t.losses + 1, sizeof(float) * (c.has_predictor() ? V : 1));
  if (c.has_dense_projector()) backend_.copy_to_host(dense, t.dense_losses, sizeof(float) * V);
  const bool finite = std::isfinite(losses[0]) && std::isfinite(losses[1]) && std::isfinite(losses[2]) && std::isfinite(dense[0]) &&
                      std::isfinite(dense[1]);
  if (running_stats_backup_.defined() && !finite) {
    // A non-finite forward would leave NaN in the running statistics (the only state a step's
    // forward writes): they are put back, so that a caller who skips this step keeps a clean model.
    backend_.copy(p() + running_stats_begin_, running_stats_backup_.f32(), running_stats_backup_.bytes());
  }
  LossResult result;
  result.reconstruction = losses[0];
  result.contrastive = static_cast<double>(losses[1]) + static_cast<double>(losses[2]);
  if (c.has_dense_projector()) {
    result.dense = static_cast<double>(dense[0]) + static_cast<double>(dense[1]);
    result.contrastive = (1.0 - c.dense_weight) * result.contrastive + c.dense_weight * result.dense;
  }
  result.total = (c.has_pixel_decoder() ? c.rc_weight * result.reconstruction : 0.0) + (two_views ? c.ct_weight * result.contrastive : 0.0);
  return result;
}

// ---- inference ---------------------------------------------------------------------------------------

void CmaeModel::encode(const Tensor& out, const Tensor& images, Pool pool, Branch branch, int64_t blocks) {
  const ModelConfig& c = config_;
  // Its norm belongs to its pooling (fc_norm follows the mean): predict() is its forward.
  CMAE_CHECK(!c.is_classifier(), Value, "a classifier model has no encode(); predict() gives its logits");
  CMAE_CHECK(branch == Branch::Online || c.has_momentum(), Value, "a ", c.mode == Mode::MAE ? "mae" : "simclr", " model has no momentum branch");
  CMAE_CHECK(pool != Pool::Avg || branch == Branch::Online, Value, "pool 'avg' applies the final norm after pooling; only the online branch has one");
  CMAE_CHECK(blocks >= 1 && blocks <= std::max<int64_t>(1, c.depth), Value, "blocks must be an integer from 1 to the encoder's depth (",
             c.depth, "), got ", blocks);
  const int64_t B = check_images(images, "images");
  const int64_t L = c.num_patches(), D = c.dim, width = blocks * D;
  expect_tensor(out, "out", DType::F32, {B, width}, backend_);
  plan_inference(B);
  const Encoder& enc = branch == Branch::Online ? encoder_ : momentum_encoder_;
  TransformerStack& stack = branch == Branch::Online ? infer_stack_online_ : infer_stack_momentum_;
  const size_t row = sizeof(float) * D;
  // One block's output y (B, 1 + L, D) of samples [b0, b0 + nb), pooled into column block `col`
  // of out (written in place where out is one block wide, through i_.pooled otherwise).
  auto pool_block = [&](const float* y, int64_t col, int64_t b0, int64_t nb) {
    const int64_t r0 = b0 * (1 + L);
    float* direct = blocks == 1 ? out.f32() + b0 * D : i_.pooled + b0 * D;
    if (pool == Pool::Avg) {
      // Pool the raw tokens into this part's first nb rows of the (larger) ln scratch, then norm them.
      backend_.mean_pool_forward(i_.ln + r0 * D, y + r0 * D, nb, 1 + L, D, 1);
      backend_.layernorm_forward(direct, i_.ln_mean + r0, i_.ln_rstd + r0, i_.ln + r0 * D, p() + final_norm_.weight, p() + final_norm_.bias,
                                 nb, D, kLayerNormEps);
    } else {
      if (branch == Branch::Online) {
        backend_.layernorm_forward(i_.ln + r0 * D, i_.ln_mean + r0, i_.ln_rstd + r0, y + r0 * D, p() + final_norm_.weight,
                                   p() + final_norm_.bias, nb * (1 + L), D, kLayerNormEps);
      }
      const float* feats = branch == Branch::Online ? i_.ln : y;
      if (pool == Pool::Cls) {
        backend_.copy_2d(direct, row, feats + r0 * D, (1 + L) * row, row, static_cast<size_t>(nb));
      } else {
        backend_.mean_pool_forward(direct, feats + r0 * D, nb, 1 + L, D, 1);
      }
    }
    if (blocks > 1) backend_.copy_2d(out.f32() + b0 * width + col * D, width * sizeof(float), direct, row, row, static_cast<size_t>(nb));
  };
  // By sample, in the backend's batch parts, as in loss_and_grad.
  const int parts = backend_.batch_parts();
  backend_.run_parts(parts, [&](int part) {
    const int64_t b0 = B * part / parts, nb = B * (part + 1) / parts - b0;
    if (nb <= 0) return;
    embed_tokens(i_.x0, i_.tokens, i_.patches, images.f32() + b0 * c.image_numel(), i_.ids_all, L, enc, b0, nb);
    if (stack.depth() == 0) return pool_block(i_.x0, 0, b0, nb);
    const int64_t first = stack.depth() - blocks;
    CMAE_PROF("M.infer_fwd");
    stack.forward(p(), i_.x0, b0, nb, [&](int64_t i, const float* y) {
      if (i >= first) pool_block(y, i - first, b0, nb);
    });
  });
}

void CmaeModel::cls_attention(const Tensor& out, const Tensor& images, Branch branch) {
  const ModelConfig& c = config_;
  CMAE_CHECK(!c.is_classifier(), Value, "clsAttention: a classifier model has no pre-training branches");
  CMAE_CHECK(branch == Branch::Online || c.has_momentum(), Value, "clsAttention: a ", c.mode == Mode::MAE ? "mae" : "simclr",
             " model has no momentum branch");
  CMAE_CHECK(c.depth >= 1, Value, "clsAttention: an encoder of depth 0 has no attention");
  const int64_t B = check_images(images, "images");
  const int64_t L = c.num_patches(), D = c.dim, H = c.heads;
  expect_tensor(out, "out", DType::F32, {B, H, L}, backend_);
  plan_inference(B);
  const Encoder& enc = branch == Branch::Online ? encoder_ : momentum_encoder_;
  TransformerStack& stack = branch == Branch::Online ? infer_stack_online_ : infer_stack_momentum_;
  const int parts = backend_.batch_parts();
  backend_.run_parts(parts, [&](int part) {
    const int64_t b0 = B * part / parts, nb = B * (part + 1) / parts - b0;
    if (nb <= 0) return;
    embed_tokens(i_.x0, i_.tokens, i_.patches, images.f32() + b0 * c.image_numel(), i_.ids_all, L, enc, b0, nb);
    stack.forward(p(), i_.x0, b0, nb);
    backend_.cls_attention(out.f32() + b0 * H * L, stack.last_qkv() + b0 * (1 + L) * 3 * D, nb, 1 + L, D, H);
  });
}

// ---- classifier ----------------------------------------------------------------------------------

void CmaeModel::classifier_pool(float* pooled, const float* enc_out, int64_t b0, int64_t nb) {
  const int64_t L = config_.num_patches(), D = config_.dim;
  const int64_t rows = b0 * (1 + L);
  if (config_.global_pool) {
    backend_.mean_pool_forward(pooled + b0 * D, enc_out + rows * D, nb, 1 + L, D, 1);
  } else {
    const size_t row = sizeof(float) * D;
    backend_.copy_2d(pooled + b0 * D, row, enc_out + rows * D, (1 + L) * row, row, static_cast<size_t>(nb));
  }
}

void CmaeModel::classifier_pool_backward(float* d_enc, const float* d_pooled, int64_t b0, int64_t nb) {
  const int64_t L = config_.num_patches(), D = config_.dim;
  const int64_t rows = b0 * (1 + L);
  if (config_.global_pool) {
    backend_.mean_pool_backward(d_enc + rows * D, d_pooled + b0 * D, nb, 1 + L, D, 1);  // zeros on the cls rows
  } else {
    const size_t row = sizeof(float) * D;
    backend_.zero_2d(d_enc + rows * D, (1 + L) * row, (1 + L) * row, static_cast<size_t>(nb));
    backend_.copy_2d(d_enc + rows * D, (1 + L) * row, d_pooled + b0 * D, row, row, static_cast<size_t>(nb));
  }
}

void CmaeModel::draw_branch_scales(float* scales, double rate, uint64_t step, int64_t B) {
  const int64_t depth = config_.depth;
  std::vector<float> host(static_cast<size_t>(2 * depth * B));
  const uint64_t stream = make_stream(RngStream::DropPath, step);
  for (int64_t i = 0; i < depth; ++i) {
    // timm: drop_path_rate · linspace(0, 1, depth)[i] (torch.linspace of one point is 0).
    const double block_rate = depth > 1 ? rate * static_cast<double>(i) / static_cast<double>(depth - 1) : 0.0;
    const float keep = static_cast<float>(1.0 - block_rate);
    for (int64_t k = 0; k < 2 * B; ++k) {  // attention branch's samples, then the MLP branch's
      const int64_t at = 2 * i * B + k;
      host[static_cast<size_t>(at)] = uniform01(seed_, stream, static_cast<uint64_t>(at)) < keep ? 1.0f / keep : 0.0f;
    }
  }
  backend_.copy_from_host(scales, host.data(), host.size() * sizeof(float));
}

double CmaeModel::classifier_loss_and_grad(const Tensor& images, const Tensor& targets, const Tensor* logits, double drop_path_rate,
                                           uint64_t step) {
  const ModelConfig& c = config_;
  CMAE_CHECK(c.is_classifier(), Value, "classifierLossAndGrad needs a classifier model, this one is a pre-training model");
  CMAE_CHECK(std::isfinite(drop_path_rate) && drop_path_rate >= 0.0 && drop_path_rate < 1.0, Value,
             "dropPath must be a number in [0, 1), got ", drop_path_rate);
  const int64_t B = check_images(images, "images");
  const int64_t L = c.num_patches(), D = c.dim, Cn = c.num_classes;
  expect_tensor(targets, "targets", DType::F32, {B, Cn}, backend_);
  expect_finite(targets, "targets");
  if (logits) expect_tensor(*logits, "logits", DType::F32, {B, Cn}, backend_);
  plan_training(B);
  TrainActs& t = t_;
  // Drop path for this step only: cleared on every way out (a throwing op included).
  struct ClearScales {
    TransformerStack& stack;
    ~ClearScales() { stack.set_branch_scales(nullptr); }
  } clear_scales{encoder_.stack};
  if (drop_path_rate > 0.0 && c.depth > 0) {
    draw_branch_scales(t.drop_scales, drop_path_rate, step, B);
    encoder_.stack.set_branch_scales(t.drop_scales);
  }
  const int parts = backend_.batch_parts();
  backend_.fill_zero(grads_.f32(), grads_.bytes());
  backend_.fill_zero(part_grads_.f32(), part_grads_.bytes());
  const float* enc_out = encoder_.stack.depth() > 0 ? encoder_.stack.output() : t.x0;
  // Per-sample parts as in loss_and_grad: every patch through the encoder, then the pooling.
  auto part_range = [&](int part, int64_t& b0, int64_t& nb) {
    b0 = B * part / parts;
    nb = B * (part + 1) / parts - b0;
  };
  backend_.run_parts(parts, [&](int part) {
    int64_t b0, nb;
    part_range(part, b0, nb);
    if (nb <= 0) return;
    embed_tokens(t.x0, t.tokens, t.patches_visible, images.f32() + b0 * c.image_numel(), t.ids_all, L, encoder_, b0, nb);
    encoder_.stack.forward(p(), t.x0, b0, nb);
    classifier_pool(t.pooled, enc_out, b0, nb);
  });
  // The norm, the head and the loss on the whole batch (B rows: small), into grads_.
  float* g = grads_.f32();
  backend_.layernorm_forward(t.feat, t.feat_mean, t.feat_rstd, t.pooled, p() + final_norm_.weight, p() + final_norm_.bias, B, D,
                             kLayerNormEps);
  linear_fwd(backend_, t.logits, t.feat, p(), head_, B);
  backend_.softmax_cross_entropy_forward_backward(t.losses, t.d_logits, t.logits, targets.f32(), B, Cn, 1.0f);
  linear_bwd(backend_, t.d_feat, g, t.d_logits, t.feat, p(), head_, B);
  backend_.layernorm_backward(t.d_pooled, g + final_norm_.weight, g + final_norm_.bias, t.d_feat, t.pooled, p() + final_norm_.weight,
                              t.feat_mean, t.feat_rstd, B, D, /*accumulate_dinp=*/false);
  backend_.run_parts(parts, [&](int part) {
    int64_t b0, nb;
    part_range(part, b0, nb);
    if (nb <= 0) return;
    classifier_pool_backward(t.d_latent_feature, t.d_pooled, b0, nb);
    encoder_backward(part_grads(part), t.d_latent_feature, t.d_patch_weight_t + part * c.patch_dim() * D, b0, nb);
  });
  for (int part = 1; part < parts; ++part) backend_.add_inplace(grads_.f32(), part_grads(part), table_.trainable_count());
  if (logits) backend_.copy(logits->f32(), t.logits, sizeof(float) * B * Cn);
  float loss = 0.0f;
  backend_.copy_to_host(&loss, t.losses, sizeof(float));
  return loss;
}

void CmaeModel::predict(const Tensor& out, const Tensor& images) {
  const ModelConfig& c = config_;
  CMAE_CHECK(c.is_classifier(), Value, "predict needs a classifier model, this one is a pre-training model");
  const int64_t B = check_images(images, "images");
  expect_tensor(out, "out", DType::F32, {B, c.num_classes}, backend_);
  plan_inference(B);
  const int64_t L = c.num_patches(), D = c.dim;
  TransformerStack& stack = infer_stack_online_;
  const float* y = stack.depth() > 0 ? stack.output() : i_.x0;
  const int parts = backend_.batch_parts();
  backend_.run_parts(parts, [&](int part) {
    const int64_t b0 = B * part / parts, nb = B * (part + 1) / parts - b0;
    if (nb <= 0) return;
    embed_tokens(i_.x0, i_.tokens, i_.patches, images.f32() + b0 * c.image_numel(), i_.ids_all, L, encoder_, b0, nb);
    stack.forward(p(), i_.x0, b0, nb);
    classifier_pool(i_.pooled, y, b0, nb);
    backend_.layernorm_forward(i_.feat + b0 * D, i_.feat_mean + b0, i_.feat_rstd + b0, i_.pooled + b0 * D, p() + final_norm_.weight,
                               p() + final_norm_.bias, nb, D, kLayerNormEps);
    linear_fwd(backend_, out.f32() + b0 * c.num_classes, i_.feat + b0 * D, p(), head_, nb);
  });
}

}  // namespace cmae::model
