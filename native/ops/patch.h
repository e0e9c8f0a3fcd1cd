// Patches, masking and the token shuffles around the encoder and decoder (spec §1.1, §1.2, §1.4,
// §1.5, §2.2). Outputs are overwritten (=) unless a comment says accumulated (+=). No output may
// alias an input. Ops do not validate: ids are assumed in range (the bindings and the model check).
#pragma once
#include <cstdint>

namespace cmae {

enum class PatchLayout : int {
  PixelsLast = 0,     // (py, px, c), c fastest: MAE's patchify, used for reconstruction targets (spec §1.1)
  ChannelsFirst = 1,  // (c, py, px): the flattened order of the patch-embedding conv weight [D, C, p, p]
};

struct PatchOps {
  // images (B, C, Hh, W) NCHW → patches (B, L, P), L = (Hh/p)·(W/p) row-major over the patch grid,
  // P = p·p·C. Hh % p == 0 and W % p == 0.
  virtual void patchify(float* patches, const float* images, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p,
                        PatchLayout layout) = 0;
  // The exact inverse (also the backward of patchify: dimages = unpatchify(dpatches)).
  virtual void unpatchify(float* images, const float* patches, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t p,
                          PatchLayout layout) = 0;
  // Patchify of the listed patches only: patches (B, K, P)[b, k] = patch ids[b, k] of images
  // (B, C, Hh, W), in the order of ids (B, K) (random_masking's ids_keep: the visible patches,
  // ascending; any ids in [0, L) work, repeated or unsorted). The same values as
  // patchify + gather_visible_forward(prefix 0, pos null), without reading the other patches.
  // Hh % p == 0 and W % p == 0.
  virtual void patchify_visible(float* patches, const float* images, const int32_t* ids, int64_t B, int64_t C, int64_t Hh,
                                int64_t W, int64_t p, int64_t K, PatchLayout layout) = 0;

  // Group masking (spec §1.2 for group = 1, §2.2 for group = 2). The patch grid (grid_h, grid_w) is
  // split into (grid_h/group)·(grid_w/group) groups of group×group patches; G = number of groups.
  // noise: (B, G). The keep_groups groups with the smallest noise are kept (ties: lower group index
  // first; NaN noise sorts after every number). K = keep_groups·group² visible patches,
  // L = grid_h·grid_w. Outputs:
  //   ids_keep (B, K): kept patch indices in ASCENDING patch index order;
  //   ids_restore (B, L): position of patch l in the sequence [kept patches ascending, then masked
  //                       patches ascending], so ids_restore[l] < K  ⇔  patch l is visible;
  //   mask (B, L): 0 = visible, 1 = masked.
  // (MAE lists visible tokens in shuffled order; we list them in spatial order. Attention is
  // permutation-equivariant and the decoder unshuffles with ids_restore, so losses and gradients
  // are identical.)
  virtual void random_masking(int32_t* ids_keep, int32_t* ids_restore, float* mask, const float* noise, int64_t B, int64_t grid_h,
                              int64_t grid_w, int64_t group, int64_t keep_groups) = 0;
  // noise (B, G)[b, g] = uniform01(seed, stream, b·G + g) (core/rng.h), so masks are reproducible
  // from (seed, step) and identical on every backend.
  virtual void masking_noise(float* noise, int64_t B, int64_t G, uint64_t seed, uint64_t stream) = 0;

  // Fused gather of visible tokens + position embedding (encoder input):
  // out (B, prefix + K, D): rows [prefix, prefix+K) are written:
  //   out[b, prefix+k] = tokens[b, ids_keep[b,k]] + pos[ids_keep[b,k]]   (pos (L, D) may be null).
  // Rows [0, prefix) are not touched (the model writes the cls token there). tokens (B, L, D);
  // ids_keep (B, K) in [0, L).
  virtual void gather_visible_forward(float* out, const float* tokens, const float* pos, const int32_t* ids_keep, int64_t B,
                                      int64_t L, int64_t K, int64_t D, int64_t prefix) = 0;
  // The position half of gather_visible_forward, for tokens that already are the visible ones:
  // out (B, prefix + K, D): rows [prefix, prefix+K) are written:
  //   out[b, prefix+k] = tokens[b, k] + pos[ids[b,k]]   (pos (L, D) may be null: a copy).
  // Rows [0, prefix) are not touched. tokens (B, K, D); ids (B, K) in [0, L), read only when pos
  // is set. gather_visible_forward = this op on the gathered rows, bit for bit (one float add).
  virtual void add_positions(float* out, const float* tokens, const float* pos, const int32_t* ids, int64_t B, int64_t L,
                             int64_t K, int64_t D, int64_t prefix) = 0;
  // dtokens (B, L, D) (=): dout rows scattered back to their patch, zeros for masked patches.
  // dout (B, prefix + K, D) (its prefix rows are ignored). Repeated ids add up (the exact adjoint).
  virtual void gather_visible_backward(float* dtokens, const float* dout, const int32_t* ids_keep, int64_t B, int64_t L,
                                       int64_t K, int64_t D, int64_t prefix) = 0;

  // Decoder input (spec §1.5): mask-token insertion + unshuffle + position embedding, fused.
  // inp (B, prefix + K, D): rows [prefix, prefix+K) are the visible tokens (ids_keep order);
  // out (B, prefix + L, D): rows [prefix, prefix+L) written:
  //   out[b, prefix+l] = (ids_restore[b,l] < K ? inp[b, prefix+ids_restore[b,l]] : mask_token) + pos[l]
  // (pos (L, D) may be null). Prefix rows of out = inp prefix rows + pos_prefix (pos_prefix
  // (prefix, D) may be null): the cls row is copied (+ its pos row). mask_token (D); ids_restore
  // (B, L) in [0, L) (values >= K select the mask token).
  virtual void unshuffle_forward(float* out, const float* inp, const float* mask_token, const float* pos, const float* pos_prefix,
                                 const int32_t* ids_restore, int64_t B, int64_t L, int64_t K, int64_t D, int64_t prefix) = 0;
  // dinp (B, prefix+K, D) (=) (prefix rows = dout prefix rows); dmask_token (D) accumulated (+=)
  // over all masked rows with a summation order independent of the thread count (per column, in
  // double, b-major then l ascending). dout (B, prefix + L, D). A visible row selected by several l
  // (not a permutation) receives their sum.
  virtual void unshuffle_backward(float* dinp, float* dmask_token, const float* dout, const int32_t* ids_restore, int64_t B,
                                  int64_t L, int64_t K, int64_t D, int64_t prefix) = 0;

 protected:
  ~PatchOps() = default;
};

}  // namespace cmae
