// Cases of ops/patch.h: patchify/unpatchify in both layouts, patchify_visible (a masking's ids,
// every patch, repeated unsorted ids), group masking (ties, NaN noise, no kept group, every group
// kept), the Philox masking noise, and the token gathers, position additions and unshuffles
// around the encoder and decoder (null position embeddings, no prefix, repeated ids).
#include <cmath>
#include <limits>

#include "core/rng.h"
#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

// Sums of a few float32 values (repeated ids add up): a rounding per term, possibly cancelling.
constexpr Tolerance kFewTermSums{1e-7, 0x1p-22};
// dmask_token: a double sum of many rows, rounded once or twice when added to the float value.
constexpr Tolerance kMaskTokenSum{1e-6, 0x1p-22};

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- patchify -----------------------------------------------------------------------------------

struct ImageShape {
  int64_t B, C, Hh, W, p;
};

const char* layout_name(PatchLayout layout) { return layout == PatchLayout::PixelsLast ? "pixels-last" : "channels-first"; }

std::string label(const ImageShape& s, PatchLayout layout) {
  return shape_label("B", s.B, "C", s.C, "H", s.Hh, "W", s.W, "p", s.p) + " " + layout_name(layout);
}

void run_patchify(OpRun& run, const ImageShape& s, PatchLayout layout, bool inverse) {
  const auto [B, C, Hh, W, p] = s;
  const int64_t L = (Hh / p) * (W / p), P = p * p * C;
  const Shape images_shape{B, C, Hh, W}, patches_shape{B, L, P};
  if (!inverse) {
    const Buffer images = run.input("images", run.normal(B * C * Hh * W), images_shape);
    const Buffer patches = run.output("patches", patches_shape);
    run.backend().patchify(patches.f32(), images.f32(), B, C, Hh, W, p, layout);
    run.expect_close(patches, ref::patchify(images.host(), B, C, Hh, W, p, layout), kExact);
  } else {
    const Buffer patches = run.input("patches", run.normal(B * L * P), patches_shape);
    const Buffer images = run.output("images", images_shape);
    run.backend().unpatchify(images.f32(), patches.f32(), B, C, Hh, W, p, layout);
    run.expect_close(images, ref::unpatchify(patches.host(), B, C, Hh, W, p, layout), kExact);
  }
}

// patchify_visible: ids of a random masking (ascending, K of L), every patch in order (the
// momentum branch's identity ids), or ids drawn independently (repeated, unsorted).
enum class PatchIds { Masking, Identity, Repeated };

struct VisiblePatchCase {
  ImageShape s;
  PatchLayout layout;
  PatchIds ids;
};

std::string label(const VisiblePatchCase& c) {
  return label(c.s, c.layout) + (c.ids == PatchIds::Identity ? " every patch" : c.ids == PatchIds::Repeated ? " repeated ids" : "");
}

void run_patchify_visible(OpRun& run, const VisiblePatchCase& c) {
  const auto [B, C, Hh, W, p] = c.s;
  const int64_t L = (Hh / p) * (W / p), P = p * p * C;
  int64_t K = L;
  Ints ids(static_cast<size_t>(B * L));
  for (int64_t i = 0; i < B * L; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(i % L);
  if (c.ids == PatchIds::Masking) {
    K = (L + 2) / 3;  // ~65 % masked, at least one kept
    ids = ref::random_masking(run.uniform(B * L, 0.0, 1.0), B, 1, L, 1, K).ids_keep;
  } else if (c.ids == PatchIds::Repeated) {
    K = L + 2;
    ids.resize(static_cast<size_t>(B * K));
    for (int32_t& i : ids) i = static_cast<int32_t>(run.rng().below(L));
  }
  const Buffer images = run.input("images", run.normal(B * C * Hh * W), {B, C, Hh, W});
  const Buffer ids_buffer = run.input_i32("ids", ids, {B, K});
  const Buffer patches = run.output("patches", {B, K, P});
  run.backend().patchify_visible(patches.f32(), images.f32(), ids_buffer.i32(), B, C, Hh, W, p, K, c.layout);
  run.expect_close(patches, ref::patchify_visible(images.host(), ids, B, C, Hh, W, p, K, c.layout), kExact);
}

// ---- masking ------------------------------------------------------------------------------------

enum class Noise { Uniform, Ties, WithNaN };

struct MaskCase {
  int64_t B, grid_h, grid_w, group, keep_groups;
  Noise noise = Noise::Uniform;
};

std::string label(const MaskCase& c) {
  std::string l = shape_label("B", c.B, "grid", std::to_string(c.grid_h) + "x" + std::to_string(c.grid_w), "group", c.group, "keep",
                              c.keep_groups);
  return l + (c.noise == Noise::Ties ? " tied noise" : c.noise == Noise::WithNaN ? " NaN noise" : "");
}

Floats mask_noise(OpRun& run, int64_t n, Noise kind) {
  Floats noise = run.uniform(n, 0.0, 1.0);
  for (float& x : noise) {
    if (kind == Noise::Ties) x = std::floor(x * 3.0f) / 3.0f;  // 3 levels: most groups tie with others
    if (kind == Noise::WithNaN && run.rng().uniform() < 0.3) x = kNaN;
  }
  return noise;
}

void run_masking(OpRun& run, const MaskCase& c) {
  const auto [B, grid_h, grid_w, group, keep_groups, kind] = c;
  const int64_t G = (grid_h / group) * (grid_w / group), L = grid_h * grid_w, K = keep_groups * group * group;
  const Buffer noise = run.input("noise", mask_noise(run, B * G, kind), {B, G});
  const Buffer ids_keep = run.output("ids_keep", {B, K}, ElementType::I32);
  const Buffer ids_restore = run.output("ids_restore", {B, L}, ElementType::I32);
  const Buffer mask = run.output("mask", {B, L});
  run.backend().random_masking(ids_keep.i32(), ids_restore.i32(), mask.f32(), noise.f32(), B, grid_h, grid_w, group, keep_groups);
  const ref::Masking want = ref::random_masking(noise.host(), B, grid_h, grid_w, group, keep_groups);
  run.expect_equal(ids_keep, want.ids_keep);
  run.expect_equal(ids_restore, want.ids_restore);
  run.expect_close(mask, want.mask, kExact);
}

// ---- token gathers ------------------------------------------------------------------------------

struct TokenCase {
  int64_t B, L, K, D, prefix;
  bool with_pos = true;
  bool with_pos_prefix = true;  // unshuffle_forward only
  bool repeated_ids = false;    // ids drawn with repeats (not a masking's permutation)
};

std::string label(const TokenCase& c) {
  std::string l = shape_label("B", c.B, "L", c.L, "K", c.K, "D", c.D, "prefix", c.prefix);
  if (!c.with_pos) l += " pos=null";
  if (!c.with_pos_prefix) l += " pos_prefix=null";
  if (c.repeated_ids) l += " repeated ids";
  return l;
}

// ids_keep (B, K) and ids_restore (B, L) of a random per-patch masking (K of L kept), or ids drawn
// independently in [0, L) (repeats, and ids_restore values >= K anywhere).
struct Ids {
  Ints keep, restore;
};
Ids make_ids(OpRun& run, const TokenCase& c) {
  if (c.repeated_ids) {
    Ids ids{Ints(static_cast<size_t>(c.B * c.K)), Ints(static_cast<size_t>(c.B * c.L))};
    for (int32_t& i : ids.keep) i = static_cast<int32_t>(run.rng().below(c.L));
    for (int32_t& i : ids.restore) i = static_cast<int32_t>(run.rng().below(c.L));
    return ids;
  }
  const ref::Masking m = ref::random_masking(run.uniform(c.B * c.L, 0.0, 1.0), c.B, 1, c.L, 1, c.K);
  return {m.ids_keep, m.ids_restore};
}

// (B, rows, D) values: `body` in rows [prefix, rows), `head` in rows [0, prefix).
Floats rows_with_prefix(OpRun& run, int64_t B, int64_t rows, int64_t D, int64_t prefix, float body, bool random_head) {
  Floats v(static_cast<size_t>(B * rows * D), body);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < prefix * D; ++i)
      v[static_cast<size_t>(b * rows * D + i)] = random_head ? static_cast<float>(run.rng().normal()) : kNaN;
  return v;
}

void run_gather_forward(OpRun& run, const TokenCase& c) {
  const auto [B, L, K, D, prefix, with_pos, with_pos_prefix, repeated] = c;
  const Ids ids = make_ids(run, c);
  const Buffer tokens = run.input("tokens", run.normal(B * L * D), {B, L, D});
  const Buffer pos = run.input("pos", run.normal(L * D), {L, D});
  const Buffer ids_keep = run.input_i32("ids_keep", ids.keep, {B, K});
  // The prefix rows (the cls token the model writes) must not be touched; the others are NaN.
  const Buffer out = run.accumulator("out", rows_with_prefix(run, B, prefix + K, D, prefix, kNaN, true), {B, prefix + K, D});
  run.backend().gather_visible_forward(out.f32(), tokens.f32(), with_pos ? pos.f32() : nullptr, ids_keep.i32(), B, L, K, D, prefix);
  const Floats* pos_values = with_pos ? &pos.host() : nullptr;
  run.expect_close(out, ref::gather_visible_forward(out.host(), tokens.host(), pos_values, ids.keep, B, L, K, D, prefix), kOneRounding);
}

void run_add_positions(OpRun& run, const TokenCase& c) {
  const auto [B, L, K, D, prefix, with_pos, with_pos_prefix, repeated] = c;
  const Ids ids = make_ids(run, c);
  const Buffer tokens = run.input("tokens", run.normal(B * K * D), {B, K, D});
  const Buffer pos = run.input("pos", run.normal(L * D), {L, D});
  const Buffer ids_buffer = run.input_i32("ids", ids.keep, {B, K});
  // The prefix rows must not be touched; the others are NaN. Without pos, ids are not read: null.
  const Buffer out = run.accumulator("out", rows_with_prefix(run, B, prefix + K, D, prefix, kNaN, true), {B, prefix + K, D});
  run.backend().add_positions(out.f32(), tokens.f32(), with_pos ? pos.f32() : nullptr, with_pos ? ids_buffer.i32() : nullptr, B, L, K,
                              D, prefix);
  run.expect_close(out, ref::add_positions(out.host(), tokens.host(), with_pos ? &pos.host() : nullptr, ids.keep, B, K, D, prefix),
                   kOneRounding);
}

void run_gather_backward(OpRun& run, const TokenCase& c) {
  const auto [B, L, K, D, prefix, with_pos, with_pos_prefix, repeated] = c;
  const Ids ids = make_ids(run, c);
  const Buffer ids_keep = run.input_i32("ids_keep", ids.keep, {B, K});
  // dout's prefix rows are ignored: NaN there must not leak into dtokens.
  Floats dout_values = rows_with_prefix(run, B, prefix + K, D, prefix, 0.0f, false);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = prefix * D; i < (prefix + K) * D; ++i)
      dout_values[static_cast<size_t>(b * (prefix + K) * D + i)] = static_cast<float>(run.rng().normal());
  const Buffer dout = run.input("dout", dout_values, {B, prefix + K, D});
  const Buffer dtokens = run.output("dtokens", {B, L, D});
  run.backend().gather_visible_backward(dtokens.f32(), dout.f32(), ids_keep.i32(), B, L, K, D, prefix);
  run.expect_close(dtokens, ref::gather_visible_backward(dout_values, ids.keep, B, L, K, D, prefix),
                   repeated ? kFewTermSums : kExact);
}

void run_unshuffle_forward(OpRun& run, const TokenCase& c) {
  const auto [B, L, K, D, prefix, with_pos, with_pos_prefix, repeated] = c;
  const Ids ids = make_ids(run, c);
  const Buffer inp = run.input("inp", run.normal(B * (prefix + K) * D), {B, prefix + K, D});
  const Buffer mask_token = run.input("mask_token", run.normal(D), {D});
  const Buffer pos = run.input("pos", run.normal(L * D), {L, D});
  const Buffer pos_prefix = run.input("pos_prefix", run.normal(prefix * D), {prefix, D});
  const Buffer ids_restore = run.input_i32("ids_restore", ids.restore, {B, L});
  const Buffer out = run.output("out", {B, prefix + L, D});
  run.backend().unshuffle_forward(out.f32(), inp.f32(), mask_token.f32(), with_pos ? pos.f32() : nullptr,
                                  with_pos_prefix ? pos_prefix.f32() : nullptr, ids_restore.i32(), B, L, K, D, prefix);
  run.expect_close(out,
                   ref::unshuffle_forward(inp.host(), mask_token.host(), with_pos ? &pos.host() : nullptr,
                                          with_pos_prefix ? &pos_prefix.host() : nullptr, ids.restore, B, L, K, D, prefix),
                   kOneRounding);
}

void run_unshuffle_backward(OpRun& run, const TokenCase& c) {
  const auto [B, L, K, D, prefix, with_pos, with_pos_prefix, repeated] = c;
  const Ids ids = make_ids(run, c);
  const Buffer dout = run.input("dout", run.normal(B * (prefix + L) * D), {B, prefix + L, D});
  const Buffer ids_restore = run.input_i32("ids_restore", ids.restore, {B, L});
  const Buffer dinp = run.output("dinp", {B, prefix + K, D});
  const Buffer dmask_token = run.accumulator("dmask_token", run.normal(D), {D});
  run.backend().unshuffle_backward(dinp.f32(), dmask_token.f32(), dout.f32(), ids_restore.i32(), B, L, K, D, prefix);
  const ref::UnshuffleGrads want = ref::unshuffle_backward(dout.host(), ids.restore, B, L, K, D, prefix);
  // A masking's ids_restore is a permutation: every visible row receives exactly one dout row.
  run.expect_close(dinp, want.dinp, repeated ? kFewTermSums : kExact);
  run.expect_close(dmask_token, ref::plus(dmask_token.host(), want.dmask_token), kMaskTokenSum);
}

}  // namespace

void add_patch_cases(CaseTable& table) {
  // RGB and grey, non-square images, a 3×3 patch (P = 27), one patch per image, ViT-tiny on
  // 32×32 (p = 4) and p = 16; the last one, 224×224 ViT-B/16, is the thread-count case.
  const ImageShape images[] = {{2, 3, 8, 8, 4},   {1, 1, 6, 4, 2},    {2, 2, 6, 9, 3},     {1, 1, 5, 5, 5},
                               {4, 3, 32, 32, 4}, {2, 3, 32, 48, 16}, {4, 3, 224, 224, 16}};
  for (const ImageShape& s : images)
    for (PatchLayout layout : {PatchLayout::PixelsLast, PatchLayout::ChannelsFirst}) {
      const bool big = s.Hh == 224 && layout == PatchLayout::PixelsLast;
      table.add("patch", "patchify", label(s, layout), [s, layout](OpRun& run) {
        run_patchify(run, s, layout, false);
      }).thread_invariant = big;
      table.add("patch", "unpatchify", label(s, layout), [s, layout](OpRun& run) {
        run_patchify(run, s, layout, true);
      }).thread_invariant = big;
    }

  // patchify_visible on the same shapes, each layout: a masking's ascending ids, every patch (the
  // momentum branch), repeated unsorted ids; ViT-B/16 channels-first with a masking's ids is the
  // thread-count case.
  for (const ImageShape& s : images)
    for (PatchLayout layout : {PatchLayout::PixelsLast, PatchLayout::ChannelsFirst})
      for (PatchIds ids : {PatchIds::Masking, PatchIds::Identity, PatchIds::Repeated}) {
        const VisiblePatchCase c{s, layout, ids};
        table.add("patch", "patchify_visible", label(c), [c](OpRun& run) {
          run_patchify_visible(run, c);
        }).thread_invariant = s.Hh == 224 && layout == PatchLayout::ChannelsFirst && ids == PatchIds::Masking;
      }

  // Spec §5 counts (CMAE: 17 of 49 groups of 2×2; MAE: 49 of 196), odd grids, no kept group,
  // every group kept, tied and NaN noise (ties: lower group index first; NaN after every number).
  const MaskCase masks[] = {
      {4, 14, 14, 2, 17}, {4, 14, 14, 1, 49}, {3, 4, 6, 2, 2}, {2, 3, 5, 1, 7}, {2, 4, 4, 2, 0},
      {2, 4, 4, 2, 4},    {8, 8, 8, 2, 5},    {4, 14, 14, 2, 17, Noise::Ties}, {3, 5, 7, 1, 12, Noise::Ties},
      {4, 14, 14, 2, 17, Noise::WithNaN},      {3, 5, 7, 1, 30, Noise::WithNaN},
  };
  for (const MaskCase& c : masks) table.add("patch", "random_masking", label(c), [c](OpRun& run) { run_masking(run, c); });

  // noise[b, g] = uniform01(seed, stream, b·G + g), bit for bit: masks are identical on every backend.
  struct NoiseCase {
    int64_t B, G;
    uint64_t seed, stream;
  };
  const NoiseCase noises[] = {{1, 1, 0, 0}, {4, 49, 42, make_stream(RngStream::Mask, 7)}, {3, 17, 0x0123456789ABCDEFull, ~0ull},
                              {64, 196, 1, make_stream(RngStream::Mask, 123456)}};
  for (const NoiseCase& c : noises)
    table.add("patch", "masking_noise", shape_label("B", c.B, "G", c.G, "seed", c.seed, "stream", c.stream), [c](OpRun& run) {
      const Buffer noise = run.output("noise", {c.B, c.G});
      run.backend().masking_noise(noise.f32(), c.B, c.G, c.seed, c.stream);
      Doubles want(static_cast<size_t>(c.B * c.G));
      for (int64_t i = 0; i < c.B * c.G; ++i) want[static_cast<size_t>(i)] = uniform01(c.seed, c.stream, static_cast<uint64_t>(i));
      run.expect_close(noise, want, kExact);
    }).thread_invariant = c.B == 64;

  // One sample of one token, odd sizes with a 2-row prefix, the micro model, ViT-tiny (64
  // patches, 16 kept, D = 192) and ViT-B/16's 196 patches with D = 128; null embeddings, no
  // prefix, repeated ids; (8, 196, 64, 192) is the thread-count case.
  const TokenCase tokens[] = {
      {1, 1, 1, 1, 0},  {3, 7, 3, 5, 2},  {2, 16, 4, 32, 1},       {4, 64, 16, 192, 1},      {2, 196, 49, 128, 1},
      {8, 196, 64, 192, 1}, {2, 16, 4, 32, 1, false}, {2, 16, 4, 32, 1, true, false}, {3, 7, 3, 5, 0},
      {3, 7, 4, 5, 1, true, true, true},
  };
  for (const TokenCase& c : tokens) {
    const bool big = c.B == 8;
    if (c.with_pos_prefix) {  // gather_visible has no pos_prefix
      table.add("patch", "gather_visible_forward", label(c), [c](OpRun& run) { run_gather_forward(run, c); }).thread_invariant = big;
      table.add("patch", "add_positions", label(c), [c](OpRun& run) { run_add_positions(run, c); }).thread_invariant = big;
      if (c.with_pos)
        table.add("patch", "gather_visible_backward", label(c), [c](OpRun& run) {
          run_gather_backward(run, c);
        }).thread_invariant = big;
    }
    table.add("patch", "unshuffle_forward", label(c), [c](OpRun& run) { run_unshuffle_forward(run, c); }).thread_invariant = big;
    if (c.with_pos && c.with_pos_prefix)  // backward takes no embeddings
      table.add("patch", "unshuffle_backward", label(c), [c](OpRun& run) { run_unshuffle_backward(run, c); }).thread_invariant = big;
  }
}

}  // namespace cmae::op_tests
