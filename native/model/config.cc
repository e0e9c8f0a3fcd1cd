#include "config.h"

#include <cfloat>
#include <cmath>

#include "core/errors.h"

namespace cmae::model {

void ModelConfig::validate() const {
  // Every size in (0, bound]: the bounds are far above any real model (ViT-H has dim 1280, depth
  // 32; a 16384-px image) and keep every product of sizes below 2^63, so a hostile configuration is
  // refused here and never overflows the arithmetic that sizes buffers.
  auto bounded = [](int64_t v, int64_t bound, const char* name) {
    CMAE_CHECK(v > 0 && v <= bound, Value, "config.", name, " must be in [1, ", bound, "], got ", v);
  };
  auto positive = [&](int64_t v, const char* name) { bounded(v, int64_t{1} << 16, name); };
  bounded(image_size, 16384, "imageSize");
  positive(patch_size, "patchSize");
  positive(dim, "dim");
  bounded(depth, 1024, "depth");
  positive(heads, "heads");
  bounded(mlp_ratio, 64, "mlpRatio");
  positive(mask_group, "maskGroup");
  CMAE_CHECK(channels == 1 || channels == 3, Value, "config.channels must be 1 or 3, got ", channels);
  CMAE_CHECK(image_size % patch_size == 0, Value, "config.imageSize ", image_size, " is not divisible by patchSize ", patch_size);
  CMAE_CHECK(grid() % mask_group == 0, Value, "the ", grid(), "x", grid(), " patch grid is not divisible by maskGroup ", mask_group);
  CMAE_CHECK(dim % heads == 0, Value, "config.dim ", dim, " is not divisible by heads ", heads);
  CMAE_CHECK(dim % 4 == 0, Value, "sin-cos position embeddings need widths divisible by 4 (dim ", dim, ")");
  CMAE_CHECK(mask_ratio >= 0.0 && mask_ratio < 1.0, Value, "config.maskRatio must be in [0, 1), got ", mask_ratio);
  CMAE_CHECK(throw_ratio >= 0.0 && throw_ratio < 1.0, Value, "config.throwRatio must be in [0, 1), got ", throw_ratio);
  CMAE_CHECK(throw_ratio == 0.0 || has_pixel_decoder(), Value,
             "config.throwRatio must be 0 for a mode without a reconstruction (it is for cmae, mae and maskdistill), got ", throw_ratio);
  if (throw_ratio > 0.0) {
    CMAE_CHECK(keep_groups() >= 1, Value, "config.maskRatio ", mask_ratio, " with throwRatio ", throw_ratio, " keeps no patch group visible");
  } else {
    CMAE_CHECK(keep_groups() >= 1, Value, "config.maskRatio ", mask_ratio, " keeps no patch group visible");
  }
  // The kernels take these as float32: a weight of 1e39 would become an infinite loss gradient.
  const auto float32 = [](double v, double lo, const char* name) {
    CMAE_CHECK(std::isfinite(v) && v >= lo && v <= FLT_MAX, Value, "config.", name, " must be a number in [", lo,
               ", FLT_MAX] (float32), got ", v);
  };
  float32(ct_weight, 0.0, "ctWeight");
  float32(rc_weight, 0.0, "rcWeight");
  float32(bn_eps, 0.0, "bnEps");
  CMAE_CHECK(bn_momentum >= 0.0 && bn_momentum <= 1.0, Value, "config.bnMomentum must be in [0, 1], got ", bn_momentum);
  if (is_classifier()) {
    bounded(num_classes, int64_t{1} << 20, "numClasses");
    // The classifier sees every patch: a mask ratio would silently drop patches from its input.
    CMAE_CHECK(mask_ratio == 0.0, Value, "config.maskRatio must be 0 for a classifier (it sees every patch), got ", mask_ratio);
  }
  if (has_dense_projector()) {
    CMAE_CHECK(dense_weight >= 0.0 && dense_weight <= 1.0, Value, "config.denseWeight must be in [0, 1], got ", dense_weight);
  }
  if (has_pixel_decoder()) {
    positive(decoder_dim, "decoderDim");
    bounded(decoder_depth, 1024, "decoderDepth");
    positive(decoder_heads, "decoderHeads");
    CMAE_CHECK(decoder_dim % decoder_heads == 0 && decoder_dim % 4 == 0, Value, "config.decoderDim ", decoder_dim,
               " must be divisible by decoderHeads and by 4");
  }
  if (has_feature_decoder()) {
    positive(feature_decoder_dim, "featureDecoderDim");
    bounded(feature_decoder_depth, 1024, "featureDecoderDepth");
    positive(feature_decoder_heads, "featureDecoderHeads");
    CMAE_CHECK(feature_decoder_dim % feature_decoder_heads == 0 && feature_decoder_dim % 4 == 0, Value,
               "config.featureDecoderDim ", feature_decoder_dim, " must be divisible by featureDecoderHeads and by 4");
  }
  if (has_projector()) {
    positive(projector_hidden, "projectorHidden");
    positive(projector_dim, "projectorDim");
    CMAE_CHECK(tau > 0 && tau <= FLT_MAX, Value, "config.tau must be a positive number a float32 can hold, got ", tau);
  }
}

}  // namespace cmae::model
