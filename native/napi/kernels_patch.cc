// Bindings of ops/patch.h; the fixed sin-cos table is the model's init code (model/pos_embed.h).
#include <cstdint>
#include <limits>
#include <string>

#include "common.h"
#include "kernels.h"
#include "model/pos_embed.h"

namespace cmae::napi {

// ---- checks shared by the patch bindings --------------------------------------------------------

// A (D) vector; [1, 1, D] (PyTorch's parameter shape for MAE's mask_token) is accepted too.
static void ExpectVector(const cmae::Tensor& t, const char* name, int64_t D) {
  t.expect_dtype(cmae::DType::F32, name);
  CMAE_CHECK(t.dim() >= 1 && t.size(-1) == D && t.numel() == D, Shape, name, " must have shape [", D,
             "] (or [1, 1, ", D, "]), got ", cmae::shape_string(t.shape()));
}

static cmae::PatchLayout LayoutArg(const Napi::CallbackInfo& info, size_t index) {
  const std::string layout = StringArg(info, index, "layout");
  if (layout == "pixels-last") return cmae::PatchLayout::PixelsLast;
  if (layout == "channels-first") return cmae::PatchLayout::ChannelsFirst;
  cmae::fail(cmae::ErrorKind::Value, "layout must be 'pixels-last' or 'channels-first', got '", layout, "'");
}

// Images (B, C, Hh, W) whose height and width are multiples of p.
static void ExpectImages(const cmae::Tensor& images, const char* name, int64_t p) {
  ExpectRank(images, name, cmae::DType::F32, 4, "(B, C, H, W)");
  const int64_t Hh = images.size(2), W = images.size(3);
  CMAE_CHECK(Hh % p == 0 && W % p == 0, Value, name, " height and width must be multiples of the patch size p = ", p,
             ", got ", Hh, "x", W);
}

static cmae::Shape PatchesShape(const cmae::Tensor& images, int64_t p) {
  const int64_t B = images.size(0), C = images.size(1), Hh = images.size(2), W = images.size(3);
  return {B, (Hh / p) * (W / p), p * p * C};
}

// ---- bindings -----------------------------------------------------------------------------------

// patchify(patches, images, p, layout): images (B, C, Hh, W) → patches (B, L, p·p·C), and its exact
// inverse unpatchify(images, patches, p, layout); the image shape comes from `images` in both.
template <bool kPatchify>
static Napi::Value PatchCopy(const Napi::CallbackInfo& info) {
  const cmae::Tensor& patches = TensorArg(info, kPatchify ? 0 : 1, "patches");
  const cmae::Tensor& images = TensorArg(info, kPatchify ? 1 : 0, "images");
  const int64_t p = PositiveIntArg(info, 2, "p");
  const cmae::PatchLayout layout = LayoutArg(info, 3);
  ExpectImages(images, "images", p);
  ExpectShape(patches, "patches", cmae::DType::F32, PatchesShape(images, p));
  cmae::Backend& backend = BackendOf({{&images, "images"}, {&patches, "patches"}});
  const int64_t B = images.size(0), C = images.size(1), Hh = images.size(2), W = images.size(3);
  if (kPatchify) {
    backend.patchify(patches.f32(), images.f32(), B, C, Hh, W, p, layout);
  } else {
    backend.unpatchify(images.f32(), patches.f32(), B, C, Hh, W, p, layout);
  }
  return info.Env().Undefined();
}

// patchifyVisible(patches, images, ids, p, layout): patches (B, K, p·p·C) = the patches ids (B, K)
// of images (B, C, Hh, W), in the order of ids.
static Napi::Value PatchifyVisible(const Napi::CallbackInfo& info) {
  const cmae::Tensor& patches = TensorArg(info, 0, "patches");
  const cmae::Tensor& images = TensorArg(info, 1, "images");
  const cmae::Tensor& ids = TensorArg(info, 2, "ids");
  const int64_t p = PositiveIntArg(info, 3, "p");
  const cmae::PatchLayout layout = LayoutArg(info, 4);
  ExpectImages(images, "images", p);
  const cmae::Shape all = PatchesShape(images, p);  // (B, L, P)
  const int64_t B = all[0], L = all[1], P = all[2];
  ExpectRank(ids, "ids", cmae::DType::I32, 2, "(B, K)");
  const int64_t K = ids.size(1);
  ExpectShape(ids, "ids", cmae::DType::I32, {B, K});
  ExpectShape(patches, "patches", cmae::DType::F32, {B, K, P});
  ExpectIdsInRange(ids, "ids", L, "L");
  BackendOf({{&images, "images"}, {&patches, "patches"}, {&ids, "ids"}})
      .patchify_visible(patches.f32(), images.f32(), ids.i32(), B, images.size(1), images.size(2), images.size(3), p, K, layout);
  return info.Env().Undefined();
}

// randomMasking(idsKeep, idsRestore, mask, noise, gridH, gridW, group, keepGroups)
static Napi::Value RandomMasking(const Napi::CallbackInfo& info) {
  const cmae::Tensor& ids_keep = TensorArg(info, 0, "idsKeep");
  const cmae::Tensor& ids_restore = TensorArg(info, 1, "idsRestore");
  const cmae::Tensor& mask = TensorArg(info, 2, "mask");
  const cmae::Tensor& noise = TensorArg(info, 3, "noise");
  const int64_t grid_h = PositiveIntArg(info, 4, "gridH");
  const int64_t grid_w = PositiveIntArg(info, 5, "gridW");
  const int64_t group = PositiveIntArg(info, 6, "group");
  const int64_t keep_groups = IntArg(info, 7, "keepGroups");
  CMAE_CHECK(grid_h % group == 0 && grid_w % group == 0, Value, "the patch grid ", grid_h, "x", grid_w,
             " must be divisible by group = ", group);
  const int64_t L = grid_h * grid_w, G = (grid_h / group) * (grid_w / group);
  CMAE_CHECK(L <= std::numeric_limits<int32_t>::max(), Value, "the patch grid ", grid_h, "x", grid_w, " has too many patches for int32 ids");
  CMAE_CHECK(keep_groups >= 0 && keep_groups <= G, Value, "keepGroups must be in [0, G] = [0, ", G, "], got ", keep_groups);
  ExpectRank(noise, "noise", cmae::DType::F32, 2, "(B, G)");
  const int64_t B = noise.size(0), K = keep_groups * group * group;
  ExpectShape(noise, "noise", cmae::DType::F32, {B, G});
  ExpectShape(ids_keep, "idsKeep", cmae::DType::I32, {B, K});
  ExpectShape(ids_restore, "idsRestore", cmae::DType::I32, {B, L});
  ExpectShape(mask, "mask", cmae::DType::F32, {B, L});
  BackendOf({{&noise, "noise"}, {&ids_keep, "idsKeep"}, {&ids_restore, "idsRestore"}, {&mask, "mask"}})
      .random_masking(ids_keep.i32(), ids_restore.i32(), mask.f32(), noise.f32(), B, grid_h, grid_w, group, keep_groups);
  return info.Env().Undefined();
}

// maskingNoise(noise, seed, stream): noise (B, G)[b, g] = uniform01(seed, stream, b·G + g).
static Napi::Value MaskingNoise(const Napi::CallbackInfo& info) {
  const cmae::Tensor& noise = TensorArg(info, 0, "noise");
  const int64_t seed = NonNegativeIntArg(info, 1, "seed");
  const int64_t stream = NonNegativeIntArg(info, 2, "stream");
  ExpectRank(noise, "noise", cmae::DType::F32, 2, "(B, G)");
  noise.backend().masking_noise(noise.f32(), noise.size(0), noise.size(1), static_cast<uint64_t>(seed), static_cast<uint64_t>(stream));
  return info.Env().Undefined();
}

// gatherVisibleForward(out, tokens, pos | null, idsKeep, prefix)
static Napi::Value GatherVisibleForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& tokens = TensorArg(info, 1, "tokens");
  const cmae::Tensor* pos = OptionalTensorArg(info, 2, "pos");
  const cmae::Tensor& ids_keep = TensorArg(info, 3, "idsKeep");
  const int64_t prefix = NonNegativeIntArg(info, 4, "prefix");
  ExpectRank(tokens, "tokens", cmae::DType::F32, 3, "(B, L, D)");
  const int64_t B = tokens.size(0), L = tokens.size(1), D = tokens.size(2);
  ExpectRank(ids_keep, "idsKeep", cmae::DType::I32, 2, "(B, K)");
  const int64_t K = ids_keep.size(1);
  ExpectShape(ids_keep, "idsKeep", cmae::DType::I32, {B, K});
  ExpectShape(out, "out", cmae::DType::F32, {B, prefix + K, D});
  if (pos) ExpectShape(*pos, "pos", cmae::DType::F32, {L, D});
  ExpectIdsInRange(ids_keep, "idsKeep", L, "L");
  BackendOf({{&tokens, "tokens"}, {&out, "out"}, {pos, "pos"}, {&ids_keep, "idsKeep"}})
      .gather_visible_forward(out.f32(), tokens.f32(), pos ? pos->f32() : nullptr, ids_keep.i32(), B, L, K, D, prefix);
  return info.Env().Undefined();
}

// addPositions(out, tokens, pos | null, ids, prefix): tokens (B, K, D), ids (B, K), pos (L, D),
// out (B, prefix + K, D). Without pos the ids are not read (their values are not checked).
static Napi::Value AddPositions(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& tokens = TensorArg(info, 1, "tokens");
  const cmae::Tensor* pos = OptionalTensorArg(info, 2, "pos");
  const cmae::Tensor& ids = TensorArg(info, 3, "ids");
  const int64_t prefix = NonNegativeIntArg(info, 4, "prefix");
  ExpectRank(tokens, "tokens", cmae::DType::F32, 3, "(B, K, D)");
  const int64_t B = tokens.size(0), K = tokens.size(1), D = tokens.size(2);
  ExpectShape(ids, "ids", cmae::DType::I32, {B, K});
  ExpectShape(out, "out", cmae::DType::F32, {B, prefix + K, D});
  int64_t L = 0;
  if (pos) {
    ExpectRank(*pos, "pos", cmae::DType::F32, 2, "(L, D)");
    L = pos->size(0);
    ExpectShape(*pos, "pos", cmae::DType::F32, {L, D});
    ExpectIdsInRange(ids, "ids", L, "L");
  }
  BackendOf({{&tokens, "tokens"}, {&out, "out"}, {pos, "pos"}, {&ids, "ids"}})
      .add_positions(out.f32(), tokens.f32(), pos ? pos->f32() : nullptr, ids.i32(), B, L, K, D, prefix);
  return info.Env().Undefined();
}

// gatherVisibleBackward(dtokens, dout, idsKeep, prefix): dtokens (B, L, D), dout (B, prefix + K, D).
static Napi::Value GatherVisibleBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dtokens = TensorArg(info, 0, "dtokens");
  const cmae::Tensor& dout = TensorArg(info, 1, "dout");
  const cmae::Tensor& ids_keep = TensorArg(info, 2, "idsKeep");
  const int64_t prefix = NonNegativeIntArg(info, 3, "prefix");
  ExpectRank(dtokens, "dtokens", cmae::DType::F32, 3, "(B, L, D)");
  const int64_t B = dtokens.size(0), L = dtokens.size(1), D = dtokens.size(2);
  ExpectRank(ids_keep, "idsKeep", cmae::DType::I32, 2, "(B, K)");
  const int64_t K = ids_keep.size(1);
  ExpectShape(ids_keep, "idsKeep", cmae::DType::I32, {B, K});
  ExpectShape(dout, "dout", cmae::DType::F32, {B, prefix + K, D});
  ExpectIdsInRange(ids_keep, "idsKeep", L, "L");
  BackendOf({{&dtokens, "dtokens"}, {&dout, "dout"}, {&ids_keep, "idsKeep"}})
      .gather_visible_backward(dtokens.f32(), dout.f32(), ids_keep.i32(), B, L, K, D, prefix);
  return info.Env().Undefined();
}

// Visible-token count K = rows of a (B, prefix + K, D) tensor minus the prefix.
static int64_t VisibleCount(const cmae::Tensor& t, const char* name, int64_t prefix) {
  const int64_t K = t.size(1) - prefix;
  CMAE_CHECK(K >= 0, Shape, name, " must have at least prefix = ", prefix, " rows, got ", cmae::shape_string(t.shape()));
  return K;
}

// unshuffleForward(out, inp, maskToken, pos | null, posPrefix | null, idsRestore, prefix)
static Napi::Value UnshuffleForward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const cmae::Tensor& inp = TensorArg(info, 1, "inp");
  const cmae::Tensor& mask_token = TensorArg(info, 2, "maskToken");
  const cmae::Tensor* pos = OptionalTensorArg(info, 3, "pos");
  const cmae::Tensor* pos_prefix = OptionalTensorArg(info, 4, "posPrefix");
  const cmae::Tensor& ids_restore = TensorArg(info, 5, "idsRestore");
  const int64_t prefix = NonNegativeIntArg(info, 6, "prefix");
  ExpectRank(inp, "inp", cmae::DType::F32, 3, "(B, prefix + K, D)");
  const int64_t B = inp.size(0), D = inp.size(2), K = VisibleCount(inp, "inp", prefix);
  ExpectRank(ids_restore, "idsRestore", cmae::DType::I32, 2, "(B, L)");
  const int64_t L = ids_restore.size(1);
  ExpectShape(ids_restore, "idsRestore", cmae::DType::I32, {B, L});
  CMAE_CHECK(K <= L, Shape, "inp has K = ", K, " visible rows, more than the L = ", L, " patches of idsRestore");
  ExpectVector(mask_token, "maskToken", D);
  ExpectShape(out, "out", cmae::DType::F32, {B, prefix + L, D});
  if (pos) ExpectShape(*pos, "pos", cmae::DType::F32, {L, D});
  if (pos_prefix) ExpectShape(*pos_prefix, "posPrefix", cmae::DType::F32, {prefix, D});
  ExpectIdsInRange(ids_restore, "idsRestore", L, "L");
  BackendOf({{&inp, "inp"}, {&out, "out"}, {&mask_token, "maskToken"}, {pos, "pos"}, {pos_prefix, "posPrefix"}, {&ids_restore, "idsRestore"}})
      .unshuffle_forward(out.f32(), inp.f32(), mask_token.f32(), pos ? pos->f32() : nullptr, pos_prefix ? pos_prefix->f32() : nullptr,
                         ids_restore.i32(), B, L, K, D, prefix);
  return info.Env().Undefined();
}

// unshuffleBackward(dinp, dmaskToken, dout, idsRestore, prefix): dmaskToken accumulates (+=).
static Napi::Value UnshuffleBackward(const Napi::CallbackInfo& info) {
  const cmae::Tensor& dinp = TensorArg(info, 0, "dinp");
  const cmae::Tensor& dmask_token = TensorArg(info, 1, "dmaskToken");
  const cmae::Tensor& dout = TensorArg(info, 2, "dout");
  const cmae::Tensor& ids_restore = TensorArg(info, 3, "idsRestore");
  const int64_t prefix = NonNegativeIntArg(info, 4, "prefix");
  ExpectRank(dinp, "dinp", cmae::DType::F32, 3, "(B, prefix + K, D)");
  const int64_t B = dinp.size(0), D = dinp.size(2), K = VisibleCount(dinp, "dinp", prefix);
  ExpectRank(ids_restore, "idsRestore", cmae::DType::I32, 2, "(B, L)");
  const int64_t L = ids_restore.size(1);
  ExpectShape(ids_restore, "idsRestore", cmae::DType::I32, {B, L});
  CMAE_CHECK(K <= L, Shape, "dinp has K = ", K, " visible rows, more than the L = ", L, " patches of idsRestore");
  ExpectVector(dmask_token, "dmaskToken", D);
  ExpectShape(dout, "dout", cmae::DType::F32, {B, prefix + L, D});
  ExpectIdsInRange(ids_restore, "idsRestore", L, "L");
  BackendOf({{&dinp, "dinp"}, {&dmask_token, "dmaskToken"}, {&dout, "dout"}, {&ids_restore, "idsRestore"}})
      .unshuffle_backward(dinp.f32(), dmask_token.f32(), dout.f32(), ids_restore.i32(), B, L, K, D, prefix);
  return info.Env().Undefined();
}

// sincosPosEmbed2d(out, gridH, gridW): out (gridH·gridW, D), D % 4 == 0.
static Napi::Value SincosPosEmbed2d(const Napi::CallbackInfo& info) {
  const cmae::Tensor& out = TensorArg(info, 0, "out");
  const int64_t grid_h = PositiveIntArg(info, 1, "gridH");
  const int64_t grid_w = PositiveIntArg(info, 2, "gridW");
  ExpectRank(out, "out", cmae::DType::F32, 2, "(gridH * gridW, D)");
  const int64_t D = out.size(1);
  CMAE_CHECK(D > 0 && D % 4 == 0, Value, "the embedding width D must be a positive multiple of 4, got ", D);
  ExpectShape(out, "out", cmae::DType::F32, {grid_h * grid_w, D});
  out.expect_device(cmae::Device::CPU, "out");  // a host-side init table
  cmae::model::sincos_pos_embed_2d(out.f32(), grid_h, grid_w, D);
  return info.Env().Undefined();
}

void RegisterPatchKernels(Napi::Env env, Napi::Object kernels) {
  CMAE_EXPORT(kernels, "patchify", PatchCopy<true>);
  CMAE_EXPORT(kernels, "unpatchify", PatchCopy<false>);
  CMAE_EXPORT(kernels, "patchifyVisible", PatchifyVisible);
  CMAE_EXPORT(kernels, "randomMasking", RandomMasking);
  CMAE_EXPORT(kernels, "maskingNoise", MaskingNoise);
  CMAE_EXPORT(kernels, "gatherVisibleForward", GatherVisibleForward);
  CMAE_EXPORT(kernels, "addPositions", AddPositions);
  CMAE_EXPORT(kernels, "gatherVisibleBackward", GatherVisibleBackward);
  CMAE_EXPORT(kernels, "unshuffleForward", UnshuffleForward);
  CMAE_EXPORT(kernels, "unshuffleBackward", UnshuffleBackward);
  CMAE_EXPORT(kernels, "sincosPosEmbed2d", SincosPosEmbed2d);
}

}  // namespace cmae::napi
