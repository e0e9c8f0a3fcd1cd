// The CMAE model (spec §2) with explicit forward and backward, and its MAE special case (§1).
//
//   online:   images → patch embed → +pos → group masking → encoder (+final LN) → latent
//             latent → pixel decoder → norm-pix MSE on masked patches            (L_rc)
//             latent → feature decoder → mean → projector → predictor → q
//   momentum: target images (whole, pixel-shifted) → EMA encoder (no final LN) → mean of patch
//             tokens → EMA projector → z_t
//   L = rc_weight·L_rc + ct_weight·2τ·InfoNCE(q, z_t)                            (L_ct)
//
// Parameters live in one arena (parameters.h); activations in a workspace planned per batch size.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "config.h"
#include "parameters.h"
#include "vit.h"

namespace cmae::model {

struct LossResult {
  double total = 0, reconstruction = 0, contrastive = 0;
};

enum class Pool : int { Cls = 0, Mean = 1 };
enum class Branch : int { Online = 0, Momentum = 1 };

class CmaeModel {
 public:
  CmaeModel(const ModelConfig& config, uint64_t seed);

  const ModelConfig& config() const { return config_; }
  const ParameterTable& table() const { return table_; }
  float* params() const { return params_.f32(); }
  float* grads() const { return grads_.f32(); }
  const Tensor& params_tensor() const { return params_; }
  const Tensor& grads_tensor() const { return grads_; }
  // 1 where AdamW applies weight decay, 0 elsewhere; over the trainable prefix.
  const Tensor& decay_mask() const { return decay_mask_; }
  // Bytes of the model's fixed arenas (parameters, the two gradient arenas, the decay mask), for
  // the JS engine's external-memory accounting; workspaces come on top, planned per batch size.
  int64_t arena_bytes() const {
    return static_cast<int64_t>(params_.bytes() + grads_.bytes() + grads_half_.bytes() + decay_mask_.bytes());
  }
  uint64_t seed() const { return seed_; }
  // Number of masks drawn from the seeded RNG so far (saved in checkpoints so a resumed run
  // draws exactly the masks the uninterrupted run would have drawn).
  uint64_t mask_counter() const { return mask_counter_; }
  void set_mask_counter(uint64_t counter) { mask_counter_ = counter; }

  // Forward + backward on one batch. images, target_images: (B, C, H, W); target_images is
  // ignored in MAE mode (may be null). mask_noise (B, num_groups) or null to draw from the RNG.
  // Gradients are overwritten (zero-grad included). Optional outputs for tests, each may be null:
  // pred (B, L, P), mask (B, L), ids_restore (B, L), q and z_t (B, projector_dim).
  struct Outputs {
    float* pred = nullptr;
    float* mask = nullptr;
    int32_t* ids_restore = nullptr;
    float* q = nullptr;
    float* z_t = nullptr;
  };
  LossResult loss_and_grad(const float* images, const float* target_images, const float* mask_noise, int64_t B,
                           const Outputs& outputs);

  // Features of unmasked images: (B, dim). Online = with the final LayerNorm (what downstream uses);
  // momentum = the EMA encoder as it runs in training (no final norm).
  void encode(float* out, const float* images, int64_t B, Pool pool, Branch branch);

  // θ_momentum ← m·θ_momentum + (1−m)·θ_online over the encoder (minus its final norm) and projector.
  void update_momentum(float momentum);
  // Re-copies the online weights into the momentum branch (used after loading online-only weights).
  void reset_momentum();

 private:
  struct Head {  // Linear → BatchNorm1d → ReLU → Linear(no bias)   (spec §2.6)
    LinearRef fc1, bn, fc2;
    int64_t running_mean = -1, running_var = -1;
  };
  struct HeadActs {
    float *h, *bn, *bn_mean, *bn_rstd, *relu, *out;
  };
  struct Decoder {  // MAE decoder class (spec §1.5), used for pixels and for features
    LinearRef embed, norm, pred;
    int64_t mask_token = -1, pos_embed = -1;
    int64_t dim = 0;
    TransformerStack stack;
  };
  struct DecoderActs {
    float *embed, *x0, *ln, *ln_mean, *ln_rstd, *ln_body, *pred;
    float *d_ln_body, *d_ln, *d_x0, *d_embed;
  };
  struct Encoder {
    int64_t patch_weight = -1, patch_bias = -1, cls_token = -1;
    LinearRef patch;  // the conv as a Linear over (c, py, px) patch vectors
    TransformerStack stack;
  };

  void register_parameters();
  Head add_head(const std::string& prefix, int64_t in, ParamRole role);
  Decoder add_decoder(const std::string& prefix, const std::string& token_name, int64_t dim,
                      int64_t depth, int64_t heads, int64_t out_dim);
  void initialise();
  void plan_training(int64_t B);
  void plan_inference(int64_t B);

  // Samples [b0, b0 + nb) of the batch; every pointer is the whole batch's buffer.
  void embed_tokens(float* tokens, float* patches, const float* images, const Encoder& enc, int64_t b0, int64_t nb) const;
  void decoder_forward(Decoder& dec, DecoderActs& a, const float* latent, const int32_t* ids_restore, int64_t b0, int64_t nb);
  // Samples [b0, b0 + nb) of the batch (all buffers are the whole batch's); gradients into g.
  void decoder_backward(Decoder& dec, DecoderActs& a, float* g, float* d_latent, const float* d_out, const float* latent,
                        const int32_t* ids_restore, int64_t b0, int64_t nb);
  // The encoder-side backward of samples [b0, b0 + nb) after the losses and heads (see loss_and_grad).
  void backward_samples(float* g, float* d_patch_weight_t, int64_t b0, int64_t nb, const float* enc_out);
  void head_forward(const Head& head, HeadActs& a, const float* inp, int64_t B, bool update_running_stats);
  void head_backward(const Head& head, HeadActs& a, float* d_inp, const float* d_out, const float* inp, float* d_hidden,
                     int64_t B);

  ModelConfig config_;
  uint64_t seed_;
  uint64_t mask_counter_ = 0;
  ParameterTable table_;
  Tensor params_, grads_, decay_mask_;
  // Second gradient arena for the second half of the batch in the backward's sample-parallel part,
  // zero between steps (loss_and_grad adds it into grads_ and clears it).
  Tensor grads_half_;

  Encoder encoder_, momentum_encoder_;
  LinearRef final_norm_;
  int64_t pos_embed_ = -1;
  Decoder pixel_decoder_, feature_decoder_;
  Head projector_, predictor_, momentum_projector_;

  // Training workspace (planned for train_batch_).
  int64_t train_batch_ = 0;
  Tensor train_memory_;
  struct TrainActs {
    float *patches, *tokens, *noise, *mask, *x0, *latent, *latent_mean, *latent_rstd;
    int32_t *ids_keep, *ids_restore, *ids_all;
    float *target_pix, *dpred;
    float *d_latent, *d_latent_feature, *d_visible, *patches_visible, *d_patch_weight_t, *d_patch_weight_t_half;
    float *feature_pooled, *d_feature_pooled, *d_feature_body;
    float *t_patches, *t_tokens, *t_x0, *t_pooled, *dq, *d_z, *d_head_hidden;
    DecoderActs pixel, feature;
    HeadActs projector, predictor, momentum_projector;
  } t_{};
  // Inference workspace (planned for infer_batch_).
  int64_t infer_batch_ = 0;
  Tensor infer_memory_;
  TransformerStack infer_stack_online_, infer_stack_momentum_;
  struct InferActs {
    float *patches, *tokens, *x0, *ln, *ln_mean, *ln_rstd;
    int32_t* ids_all;
  } i_{};
  TransformerStack train_momentum_stack_;
};

}  // namespace cmae::model
