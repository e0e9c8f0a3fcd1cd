// Model configuration: every size is free. The presets and every default live in one place, the
// TypeScript layer (src/models/config.ts), which always passes a complete configuration; here the
// fields start at zero and validate() says which one is unusable.
#pragma once
#include <cstdint>
#include <string>

namespace cmae::model {

// The pre-training method. CMAE (spec §2) and MAE (§1) as the paper has them; MOCOV3 is MoCo v3's
// symmetric contrastive learning (two views, momentum encoder + predictor, no decoder) composed
// from the same kernels, with masked views as FLIP has them when mask_ratio > 0; MASKDISTILL is
// MAE whose decoder predicts a teacher's normalised patch features instead of pixels, the teacher
// being the momentum encoder (an EMA of the online one, or frozen after loading a checkpoint);
// SIMCLR encodes two views online and contrasts their projections with NT-Xent over 2B samples;
// DENSECL is MoCo v3 plus a dense head: each online patch token's projection is pulled towards the
// momentum projection of its most similar token in the other view (dense InfoNCE, DenseCL).
// CLASSIFIER is no pre-training method: the fine-tuned model, the encoder on every patch (no
// masking), a pooled and normalised feature and a linear head under softmax cross-entropy.
enum class Mode : int { CMAE = 0, MAE = 1, MOCOV3 = 2, MASKDISTILL = 3, SIMCLR = 4, CLASSIFIER = 5, DENSECL = 6 };

struct ModelConfig {
  Mode mode = Mode::CMAE;
  int64_t image_size = 0, channels = 0, patch_size = 0;
  // online (and momentum) encoder
  int64_t dim = 0, depth = 0, heads = 0, mlp_ratio = 0;
  // pixel decoder (spec §1.5)
  int64_t decoder_dim = 0, decoder_depth = 0, decoder_heads = 0;
  // feature decoder (spec §2.5): output width = dim so online and target features meet in one projector
  int64_t feature_decoder_dim = 0, feature_decoder_depth = 0, feature_decoder_heads = 0;
  // projector D→hidden→proj_dim and predictor proj_dim→hidden→proj_dim (spec §2.6)
  int64_t projector_hidden = 0, projector_dim = 0;
  // masking (spec §2.2): group 1 = MAE per-patch, 2 = CMAE 2×2 groups
  double mask_ratio = 0;
  int64_t mask_group = 0;
  // AMT's throwing (the masked-reconstruction methods): a fraction of the groups that are neither
  // visible nor reconstructed. Of each sample's groups ranked by noise (ascending), the first
  // keep_groups() are visible, the next thrown_groups() thrown, the rest masked: mask_ratio stays
  // the reconstructed share and the visible one becomes 1 − mask_ratio − throw_ratio, as AMT's.
  double throw_ratio = 0;
  // losses (spec §2.7, §2.8)
  double tau = 0, ct_weight = 0, rc_weight = 0;
  bool norm_pix_loss = false;
  double bn_eps = 0, bn_momentum = 0;
  // classifier (Mode::CLASSIFIER only): the head's classes, and the pooling MAE's fine-tuning
  // calls global_pool: true = the mean of the patch tokens → fc_norm, false = the cls token → norm.
  int64_t num_classes = 0;
  bool global_pool = false;
  // DenseCL only: λ of L = ct_weight·((1 − λ)·L_global + λ·L_dense) (its paper's 0.5).
  double dense_weight = 0;

  // What each method builds: the momentum encoder (CMAE, MoCo v3, MaskDistill, DenseCL); the online
  // projector and a contrastive loss (CMAE, MoCo v3, SimCLR, DenseCL); the predictor and momentum
  // projector of InfoNCE against the momentum branch (CMAE, MoCo v3, DenseCL); the pixel decoder
  // (CMAE, MAE, MaskDistill, whose decoder predicts features); the feature decoder (CMAE only);
  // the dense projectors, online and momentum (DenseCL only).
  bool has_momentum() const { return mode == Mode::CMAE || mode == Mode::MOCOV3 || mode == Mode::MASKDISTILL || mode == Mode::DENSECL; }
  bool has_projector() const { return mode == Mode::CMAE || mode == Mode::MOCOV3 || mode == Mode::SIMCLR || mode == Mode::DENSECL; }
  bool has_predictor() const { return mode == Mode::CMAE || mode == Mode::MOCOV3 || mode == Mode::DENSECL; }
  bool has_dense_projector() const { return mode == Mode::DENSECL; }
  bool has_pixel_decoder() const { return mode == Mode::CMAE || mode == Mode::MAE || mode == Mode::MASKDISTILL; }
  // Width of the pixel decoder's prediction per patch: pixels, or MaskDistill's teacher features.
  int64_t decoder_out_dim() const { return mode == Mode::MASKDISTILL ? dim : patch_dim(); }
  bool has_feature_decoder() const { return mode == Mode::CMAE; }
  bool is_classifier() const { return mode == Mode::CLASSIFIER; }
  // Online samples per image of a batch: MoCo v3 (and SimCLR, DenseCL) encode both views online
  // (their losses are symmetric).
  int64_t views() const { return mode == Mode::MOCOV3 || mode == Mode::SIMCLR || mode == Mode::DENSECL ? 2 : 1; }

  int64_t grid() const { return image_size / patch_size; }
  int64_t num_patches() const { return grid() * grid(); }
  int64_t image_numel() const { return channels * image_size * image_size; }
  int64_t patch_dim() const { return patch_size * patch_size * channels; }
  int64_t num_groups() const { return (grid() / mask_group) * (grid() / mask_group); }
  // Python int(G·(1 − r)), as the reference code computes it (r = mask_ratio + throw_ratio).
  int64_t keep_groups() const { return static_cast<int64_t>(static_cast<double>(num_groups()) * (1.0 - mask_ratio - throw_ratio)); }
  // The groups not reconstructed (visible or thrown), int(G·(1 − mask_ratio)), and the thrown ones.
  int64_t unmasked_groups() const { return static_cast<int64_t>(static_cast<double>(num_groups()) * (1.0 - mask_ratio)); }
  int64_t thrown_groups() const { return unmasked_groups() - keep_groups(); }
  int64_t num_visible() const { return keep_groups() * mask_group * mask_group; }

  // Throws ValueError naming the field when the configuration is inconsistent.
  void validate() const;
};

}  // namespace cmae::model
