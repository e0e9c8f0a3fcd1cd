// Cases of ops/loss.h: the norm-pix MSE of the pixel decoder and CMAE's InfoNCE, forward and
// backward fused (the scalar loss stays in backend memory; the gradient pointer may be null).
#include <cmath>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

// The loss is accumulated in double (contract), then rounded: float32 per-element work before it.
constexpr Tolerance kNormPixLoss{0.0, 1e-6};
constexpr Tolerance kNormPixGrad{1e-9, 1e-5};
// test/ops/loss.test.ts's bounds: logits of |q̂·k̂|/τ <= 14 and B-term softmax sums.
constexpr Tolerance kInfoNceLoss{1e-6, 1e-5};
constexpr Tolerance kInfoNceGrad{1e-7, 1e-4};

// Double accumulation of float32 inputs; the gradient's softmax·Σt − t rounded once to float32.
constexpr Tolerance kCrossEntropyLoss{1e-6, 1e-6};
constexpr Tolerance kCrossEntropyGrad{1e-9, 1e-6};

constexpr float kNormPixEps = 1e-6f;  // the model's norm-pix eps

struct NormPixCase {
  int64_t B, L, P;
  bool norm_pix = true;
  bool with_grad = true;
  double masked_share = 0.75;   // 0: nothing masked (loss = 0, dpred = 0)
  bool constant_patch = false;  // target patch (0, 0) constant: a zero variance, eps alone in the sqrt
  float dloss = 1.0f;
};

std::string label(const NormPixCase& c) {
  std::string l = shape_label("B", c.B, "L", c.L, "P", c.P);
  l += c.norm_pix ? " norm_pix" : " raw";
  if (!c.with_grad) l += " dpred=null";
  if (c.masked_share == 0.0) l += " nothing masked";
  if (c.constant_patch) l += " constant patch";
  if (c.dloss != 1.0f) l += " " + shape_label("dloss", c.dloss);
  return l;
}

void run_normpix(OpRun& run, const NormPixCase& c) {
  const auto [B, L, P, norm_pix, with_grad, masked_share, constant_patch, dloss] = c;
  Floats target = run.normal(B * L * P, 0.8, 0.3);
  if (constant_patch)
    for (int64_t i = 0; i < P; ++i) target[static_cast<size_t>(i)] = 0.5f;
  Floats mask(static_cast<size_t>(B * L));
  for (float& m : mask) m = run.rng().uniform() < masked_share ? 1.0f : 0.0f;
  const Buffer pred_b = run.input("pred", run.normal(B * L * P), {B, L, P});
  const Buffer target_b = run.input("target", target, {B, L, P});
  const Buffer mask_b = run.input("mask", mask, {B, L});
  const Buffer loss = run.output("loss", {1});
  const Buffer dpred = run.output("dpred", {with_grad ? B * L * P : 0});
  run.backend().normpix_mse_forward_backward(loss.f32(), with_grad ? dpred.f32() : nullptr, pred_b.f32(), target_b.f32(),
                                             mask_b.f32(), B, L, P, norm_pix, kNormPixEps, dloss);
  const ref::LossAndGrad want = ref::normpix_mse(pred_b.host(), target, mask, B, L, P, norm_pix, kNormPixEps, dloss);
  run.expect_close(loss, {want.loss}, kNormPixLoss);
  if (with_grad) run.expect_close(dpred, want.grad, kNormPixGrad);  // exact zeros on visible patches included
}

struct InfoNceCase {
  int64_t B, E;
  bool with_grad = true;
  float dloss = 0.5f;
};

std::string label(const InfoNceCase& c) {
  std::string l = shape_label("B", c.B, "E", c.E);
  if (!c.with_grad) l += " dq=null";
  if (c.dloss != 0.5f) l += " " + shape_label("dloss", c.dloss);
  return l;
}

void run_infonce(OpRun& run, const InfoNceCase& c) {
  const auto [B, E, with_grad, dloss] = c;
  const float tau = 0.07f, scale = 2.0f * tau;  // CMAE's τ and its 2τ scale
  const Floats q = run.normal(B * E);
  // Targets correlated with their queries (k = q + noise), so the loss is neither ~log B nor ~0.
  Floats k = run.normal(B * E);
  for (size_t i = 0; i < k.size(); ++i) k[i] = q[i] + 0.8f * k[i];
  const Buffer q_b = run.input("q", q, {B, E});
  const Buffer k_b = run.input("k", k, {B, E});
  const Buffer loss = run.output("loss", {1});
  const Buffer dq = run.output("dq", {with_grad ? B * E : 0});
  run.backend().infonce_forward_backward(loss.f32(), with_grad ? dq.f32() : nullptr, q_b.f32(), k_b.f32(), B, E, tau, scale, dloss);
  const ref::LossAndGrad want = ref::infonce(q, k, B, E, tau, scale, dloss);
  run.expect_close(loss, {want.loss}, kInfoNceLoss);
  if (with_grad) run.expect_close(dq, want.grad, kInfoNceGrad);
}

struct DenseInfoNceCase {
  int64_t B, Lq, Lk, E;
  bool with_grad = true;
  float dloss = 0.5f;
  bool zero_query = false;  // query row 0 all zeros: q̂ = q/eps, the clamped branch of F.normalize
};

std::string label(const DenseInfoNceCase& c) {
  std::string l = shape_label("B", c.B, "Lq", c.Lq, "Lk", c.Lk, "E", c.E);
  if (!c.with_grad) l += " dq=null";
  if (c.dloss != 0.5f) l += " " + shape_label("dloss", c.dloss);
  if (c.zero_query) l += " zero query row";
  return l;
}

void run_dense_infonce(OpRun& run, const DenseInfoNceCase& c) {
  const auto [B, Lq, Lk, E, with_grad, dloss, zero_query] = c;
  const float tau = 0.2f, scale = 2.0f * tau;  // DenseCL's τ and our 2τ scale
  const Floats k = run.normal(B * Lk * E);
  Ints match(static_cast<size_t>(B * Lq));
  for (int32_t& m : match) m = static_cast<int32_t>(run.rng().below(Lk));
  // Queries correlated with their positives (q = k[b, match] + noise), so the loss is neither
  // ~log B nor ~0 and the positive's and the negatives' terms both shape dq.
  Floats q = run.normal(B * Lq * E);
  for (int64_t r = 0; r < B * Lq; ++r)
    for (int64_t e = 0; e < E; ++e) {
      float& v = q[static_cast<size_t>(r * E + e)];
      v = zero_query && r == 0 ? 0.0f : k[static_cast<size_t>(((r / Lq) * Lk + match[static_cast<size_t>(r)]) * E + e)] + 0.8f * v;
    }
  const Buffer q_b = run.input("q", q, {B, Lq, E});
  const Buffer k_b = run.input("k", k, {B, Lk, E});
  const Buffer match_b = run.input_i32("match", match, {B, Lq});
  const Buffer loss = run.output("loss", {1});
  const Buffer dq = run.output("dq", {with_grad ? B * Lq * E : 0});
  run.backend().dense_infonce_forward_backward(loss.f32(), with_grad ? dq.f32() : nullptr, q_b.f32(), k_b.f32(), match_b.i32(), B, Lq,
                                               Lk, E, tau, scale, dloss);
  const ref::LossAndGrad want = ref::dense_infonce(ref::to_doubles(q), ref::to_doubles(k), match, B, Lq, Lk, E, tau, scale, dloss);
  run.expect_close(loss, {want.loss}, kInfoNceLoss);
  if (with_grad) run.expect_close(dq, want.grad, kInfoNceGrad);
}

struct NtXentCase {
  int64_t R, E;
  bool with_grad = true;
  float dloss = 0.5f;
};

std::string label(const NtXentCase& c) {
  std::string l = shape_label("R", c.R, "E", c.E);
  if (!c.with_grad) l += " dz=null";
  if (c.dloss != 0.5f) l += " " + shape_label("dloss", c.dloss);
  return l;
}

void run_ntxent(OpRun& run, const NtXentCase& c) {
  const auto [R, E, with_grad, dloss] = c;
  const float tau = 0.1f, scale = 2.0f * tau;
  // The second view's rows = the first's + noise, so that positives stand out but not by much.
  Floats z = run.normal(R * E);
  for (int64_t i = R / 2; i < R; ++i)
    for (int64_t e = 0; e < E; ++e) z[static_cast<size_t>(i * E + e)] = z[static_cast<size_t>((i - R / 2) * E + e)] + 0.8f * z[static_cast<size_t>(i * E + e)];
  const Buffer z_b = run.input("z", z, {R, E});
  const Buffer loss = run.output("loss", {1});
  const Buffer dz = run.output("dz", {with_grad ? R * E : 0});
  run.backend().ntxent_forward_backward(loss.f32(), with_grad ? dz.f32() : nullptr, z_b.f32(), R, E, tau, scale, dloss);
  const ref::LossAndGrad want = ref::ntxent(z, R, E, tau, scale, dloss);
  run.expect_close(loss, {want.loss}, kInfoNceLoss);
  if (with_grad) run.expect_close(dz, want.grad, kInfoNceGrad);
}

struct CrossEntropyCase {
  int64_t B, C;
  double smoothing = 0.1;  // the soft targets: (1 − ε)·one-hot + ε/C, blended with a second label when mixed
  bool mixed = false;
  bool with_grad = true;
  float dloss = 1.0f;
  float logit_scale = 3.0f;
};

std::string label(const CrossEntropyCase& c) {
  std::string l = shape_label("B", c.B, "C", c.C) + " " + shape_label("smoothing", c.smoothing);
  if (c.mixed) l += " mixed";
  if (!c.with_grad) l += " dlogits=null";
  if (c.dloss != 1.0f) l += " " + shape_label("dloss", c.dloss);
  if (c.logit_scale != 3.0f) l += " " + shape_label("logit_scale", c.logit_scale);
  return l;
}

void run_cross_entropy(OpRun& run, const CrossEntropyCase& c) {
  const auto [B, C, smoothing, mixed, with_grad, dloss, logit_scale] = c;
  Floats logits = run.normal(B * C, logit_scale);
  Floats targets(static_cast<size_t>(B * C), static_cast<float>(smoothing / static_cast<double>(C)));
  for (int64_t b = 0; b < B; ++b) {
    const double lam = mixed ? run.rng().uniform() : 1.0;
    const auto label_of = [&] { return std::min<int64_t>(C - 1, static_cast<int64_t>(run.rng().uniform() * static_cast<double>(C))); };
    targets[static_cast<size_t>(b * C + label_of())] += static_cast<float>(lam * (1.0 - smoothing));
    if (mixed) targets[static_cast<size_t>(b * C + label_of())] += static_cast<float>((1.0 - lam) * (1.0 - smoothing));
  }
  const Buffer logits_b = run.input("logits", logits, {B, C});
  const Buffer targets_b = run.input("targets", targets, {B, C});
  const Buffer loss = run.output("loss", {1});
  const Buffer dlogits = run.output("dlogits", {with_grad ? B * C : 0});
  run.backend().softmax_cross_entropy_forward_backward(loss.f32(), with_grad ? dlogits.f32() : nullptr, logits_b.f32(), targets_b.f32(),
                                                       B, C, dloss);
  const ref::LossAndGrad want = ref::softmax_cross_entropy(logits, targets, B, C, dloss);
  run.expect_close(loss, {want.loss}, kCrossEntropyLoss);
  if (with_grad) run.expect_close(dlogits, want.grad, kCrossEntropyGrad);
}

}  // namespace

void add_loss_cases(CaseTable& table) {
  // P = 2 (the smallest with an unbiased variance), odd sizes, the micro model (16 patches of
  // 4·4·3), ViT-tiny on 32×32 images (64 of 48) and ViT-B/16 on 224×224 (196 of 768).
  std::vector<NormPixCase> normpix = {
      {1, 1, 2}, {3, 7, 5}, {2, 16, 48}, {8, 64, 48}, {2, 196, 768},
      {3, 7, 5, false}, {8, 64, 48, false},
      {8, 64, 48, true, false}, {2, 16, 48, false, false},
      {2, 16, 48, true, true, 0.0}, {2, 16, 48, true, false, 0.0},
      {2, 16, 48, true, true, 1.0, true},
      {8, 64, 48, true, true, 0.75, false, 0.7f},
  };
  for (const NormPixCase& c : normpix) {
    const bool big = c.P == 768;
    table.add("loss", "normpix_mse_forward_backward", label(c), [c](OpRun& run) { run_normpix(run, c); }).thread_invariant = big;
  }
  // B = 1 (CE of one logit: loss 0), E = 1 (q̂ = ±1), odd sizes and the CMAE projector (256).
  // (256, 256) is the thread-count case: rows are split 64 at a time at least.
  const InfoNceCase infonce[] = {{1, 1}, {2, 1}, {1, 7}, {5, 7}, {8, 128}, {64, 256}, {256, 256}, {8, 128, false}, {5, 7, true, 1.0f}};
  for (const InfoNceCase& c : infonce) {
    const bool big = c.B == 256;
    table.add("loss", "infonce_forward_backward", label(c), [c](OpRun& run) { run_infonce(run, c); }).thread_invariant = big;
  }
  // B = 1 (no negatives: loss 0, gradient 0), E = 1, Lk = 1, odd sizes, fewer queries than keys
  // (the online view's visible tokens against all of the momentum view's), a null gradient, another
  // dloss, a zero query row, the micro model (B 8, 16 tokens, E 32), nano at batch 64 (16 tokens,
  // E 64), and a thread-count case of 1024 rows.
  const DenseInfoNceCase dense[] = {{1, 3, 4, 5},          {2, 1, 1, 1},       {3, 5, 7, 9},          {4, 4, 16, 13},
                                    {3, 5, 7, 9, false},   {3, 5, 7, 9, true, 1.0f}, {3, 5, 7, 9, true, 0.5f, true},
                                    {8, 16, 16, 32},       {64, 16, 16, 64},   {32, 32, 32, 128}};
  for (const DenseInfoNceCase& c : dense) {
    table.add("loss", "dense_infonce_forward_backward", label(c), [c](OpRun& run) { run_dense_infonce(run, c); }).thread_invariant =
        c.E == 128;
  }
  // R = 2 (one candidate per row: loss 0, gradient 0), E = 1, odd sizes, SimCLR's projector width
  // (128 rows of 64: nano at batch 64) and a thread-count case (512 of 256).
  const NtXentCase ntxent[] = {{2, 1}, {2, 5}, {4, 1}, {10, 7}, {128, 64}, {512, 256}, {10, 7, false}, {10, 7, true, 1.0f}};
  for (const NtXentCase& c : ntxent) {
    table.add("loss", "ntxent_forward_backward", label(c), [c](OpRun& run) { run_ntxent(run, c); }).thread_invariant = c.R == 512;
  }
  // One class, two classes, MNIST's 10 (plain labels, smoothed, mixed), ImageNet's 1000, a null
  // gradient, large logits (the log-sum-exp's shift), and a thread-count case.
  const CrossEntropyCase ce[] = {{1, 1, 0.0}, {3, 2, 0.0},  {8, 10, 0.0}, {8, 10, 0.1},          {8, 10, 0.1, true},
                                 {4, 1000},   {5, 7, 0.1, false, false}, {5, 7, 0.2, true, true, 0.5f}, {6, 10, 0.1, false, true, 1.0f, 60.0f},
                                 {512, 100, 0.1, true}};
  for (const CrossEntropyCase& c : ce) {
    table.add("loss", "softmax_cross_entropy_forward_backward", label(c), [c](OpRun& run) { run_cross_entropy(run, c); }).thread_invariant =
        c.B == 512;
  }
}

}  // namespace cmae::op_tests
