// Model configuration: every size is free (spec §2 presets live in TypeScript, src/models/presets.ts).
#pragma once
#include <cstdint>
#include <string>

namespace cmae::model {

enum class Mode : int { CMAE = 0, MAE = 1 };

struct ModelConfig {
  Mode mode = Mode::CMAE;
  int64_t image_size = 32, channels = 3, patch_size = 4;
  // online (and momentum) encoder
  int64_t dim = 192, depth = 12, heads = 3, mlp_ratio = 4;
  // pixel decoder (spec §1.5)
  int64_t decoder_dim = 128, decoder_depth = 4, decoder_heads = 4;
  // feature decoder (spec §2.5): output width = dim so online and target features meet in one projector
  int64_t feature_decoder_dim = 128, feature_decoder_depth = 2, feature_decoder_heads = 4;
  // projector D→hidden→proj_dim and predictor proj_dim→hidden→proj_dim (spec §2.6)
  int64_t projector_hidden = 512, projector_dim = 128;
  // masking (spec §2.2): group 1 = MAE per-patch, 2 = CMAE 2×2 groups
  double mask_ratio = 0.65;
  int64_t mask_group = 2;
  // losses (spec §2.7, §2.8)
  double tau = 0.07, ct_weight = 1.0, rc_weight = 1.0;
  bool norm_pix_loss = true;
  double bn_eps = 1e-6, bn_momentum = 0.1;

  int64_t grid() const { return image_size / patch_size; }
  int64_t num_patches() const { return grid() * grid(); }
  int64_t patch_dim() const { return patch_size * patch_size * channels; }
  int64_t num_groups() const { return (grid() / mask_group) * (grid() / mask_group); }
  // Python int(G·(1 − r)), as the reference code computes it.
  int64_t keep_groups() const { return static_cast<int64_t>(static_cast<double>(num_groups()) * (1.0 - mask_ratio)); }
  int64_t num_visible() const { return keep_groups() * mask_group * mask_group; }

  // Throws ValueError naming the field when the configuration is inconsistent.
  void validate() const;
};

}  // namespace cmae::model
