// Cases of ops/linear.h: sgemm in every transpose combination (padded leading dimensions, alpha,
// beta, K = 0, empty products) and the Linear layers with their fused GELU epilogues. Every case
// is a .matmul case: it also runs at the reduced precisions of a backend (cpu-avx512-bf16), with
// the tolerance of that precision.
#include <cmath>
#include <limits>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

// Tolerance of a K-term product of N(0, scale²)-sized operand products (unit operands: scale 1),
// allowing ~6 standard deviations of the rounding error (deterministic seeds; a kernel with a
// different summation order must pass too):
//   FP32: a float32 sum of K terms (float_sum_tolerance).
//   BF16: each operand rounded to 8 significant bits (u = 2^-8, std u/sqrt(3)), the products summed
//         in float32: error std ~0.0032·sqrt(K)·scale.
//   TF32: operands rounded to 11 significant bits (u = 2^-11): std ~4e-4·sqrt(K)·scale.
Tolerance product_tolerance(MatmulPrecision precision, int64_t K, double scale = 1.0) {
  const double k = static_cast<double>(K > 1 ? K : 1);
  switch (precision) {
    case MatmulPrecision::BF16: return {2e-2 * std::sqrt(k) * scale, 8e-3};
    case MatmulPrecision::TF32: return {2.5e-3 * std::sqrt(k) * scale, 1e-3};
    case MatmulPrecision::FP32: break;
  }
  return float_sum_tolerance(K, scale);
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- sgemm --------------------------------------------------------------------------------------

struct GemmCase {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad = 0;           // extra columns of every leading dimension: NaN in A and B, kept in C
  bool nan_operands = false;  // A and B all NaN (alpha == 0: they must not be read)
};

std::string label(const GemmCase& g) {
  std::string l = std::string(g.trans_a ? "T" : "N") + (g.trans_b ? "T" : "N") + " " + shape_label("M", g.M, "N", g.N, "K", g.K);
  if (g.alpha != 1.0f || g.beta != 0.0f) l += " " + shape_label("alpha", g.alpha, "beta", g.beta);
  if (g.pad > 0) l += " " + shape_label("ld+", g.pad);
  if (g.nan_operands) l += " NaN A,B";
  return l;
}

// rows × ld values, N(0, 1) in the first `cols` columns and `pad_value` after.
Floats padded(OpRun& run, int64_t rows, int64_t cols, int64_t ld, float pad_value) {
  Floats v(static_cast<size_t>(rows * ld), pad_value);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[static_cast<size_t>(r * ld + c)] = static_cast<float>(run.rng().normal());
  return v;
}

void run_sgemm(OpRun& run, const GemmCase& g) {
  // Stored shapes: op(A) = A is [M, K], Aᵀ is stored [K, M]; the same for B with [K, N].
  const int64_t a_rows = g.trans_a ? g.K : g.M, a_cols = g.trans_a ? g.M : g.K, lda = a_cols + g.pad;
  const int64_t b_rows = g.trans_b ? g.N : g.K, b_cols = g.trans_b ? g.K : g.N, ldb = b_cols + g.pad;
  const int64_t ldc = g.N + g.pad;
  Floats a = padded(run, a_rows, a_cols, lda, kNaN);
  Floats b = padded(run, b_rows, b_cols, ldb, kNaN);
  if (g.nan_operands) a.assign(a.size(), kNaN), b.assign(b.size(), kNaN);
  const Buffer A = run.input("A", a, {a_rows, lda});
  const Buffer B = run.input("B", b, {b_rows, ldb});
  // beta == 0 must not read C: NaN everywhere (pad included, which must stay NaN); else random.
  const Buffer C = g.beta == 0.0f ? run.output("C", {g.M, ldc}) : run.accumulator("C", run.normal(g.M * ldc), {g.M, ldc});
  const Floats c0 = g.beta == 0.0f ? Floats(static_cast<size_t>(g.M * ldc), kNaN) : C.host();
  run.backend().sgemm(g.trans_a, g.trans_b, g.M, g.N, g.K, g.alpha, A.f32(), lda, B.f32(), ldb, g.beta, C.f32(), ldc);
  const Doubles want = ref::sgemm(g.trans_a, g.trans_b, g.M, g.N, g.K, g.alpha, a, lda, b, ldb, g.beta, c0, ldc);
  const Tolerance t = product_tolerance(run.matmul_precision(), g.K, std::fabs(g.alpha));
  run.expect_close(C, want, {t.atol + 2e-7 * std::fabs(g.beta), t.rtol});
}

// ---- Linear layers ------------------------------------------------------------------------------

struct LinearShape {
  int64_t R, C, OC;
};

// 1, odd sizes, the ViT-tiny projections (65 tokens · batch, D = 192 → 3D / 4D) and D = 128.
const LinearShape kForwardShapes[] = {{1, 1, 1}, {7, 5, 3}, {65, 128, 33}, {130, 192, 576}, {4160, 192, 192}};
const LinearShape kBackwardShapes[] = {{1, 1, 1}, {7, 5, 3}, {65, 128, 33}, {130, 192, 576}, {520, 768, 192}};
// The thread-count cases: 260 rows of a qkv projection, about 30 chunks of the GEMM driver.
constexpr LinearShape kThreadShape{260, 192, 576};
constexpr LinearShape kVariantShape{65, 128, 33};  // where the null pointers are tried

struct ForwardCase {
  LinearShape s;
  bool with_bias = true;
  bool with_pre = true;  // linear_gelu_forward only
};

std::string label(const LinearShape& s, bool with_bias = true, bool with_pre = true) {
  std::string l = shape_label("R", s.R, "C", s.C, "OC", s.OC);
  if (!with_bias) l += " bias=null";
  if (!with_pre) l += " pre=null";
  return l;
}

void run_linear_forward(OpRun& run, const ForwardCase& c) {
  const auto [R, C, OC] = c.s;
  const Buffer inp = run.input("inp", run.normal(R * C), {R, C});
  const Buffer weight = run.input("weight", run.normal(OC * C), {OC, C});
  const Buffer bias = run.input("bias", run.normal(OC), {OC});
  const Buffer out = run.output("out", {R, OC});
  const Floats* bias_values = c.with_bias ? &bias.host() : nullptr;
  run.backend().linear_forward(out.f32(), inp.f32(), weight.f32(), c.with_bias ? bias.f32() : nullptr, R, C, OC);
  run.expect_close(out, ref::linear_forward(inp.host(), weight.host(), bias_values, R, C, OC),
                   product_tolerance(run.matmul_precision(), C));
}

void run_linear_gelu_forward(OpRun& run, const ForwardCase& c) {
  const auto [R, C, OC] = c.s;
  // Weights of scale 1/sqrt(C) keep pre ~N(0, 2), where GELU is neither the identity nor 0.
  const double weight_scale = 1.0 / std::sqrt(static_cast<double>(C));
  const Buffer inp = run.input("inp", run.normal(R * C), {R, C});
  const Buffer weight = run.input("weight", run.normal(OC * C, weight_scale), {OC, C});
  const Buffer bias = run.input("bias", run.normal(OC), {OC});
  const Buffer out = run.output("out", {R, OC});
  const Buffer pre = run.output("pre", {c.with_pre ? R * OC : 0});
  const Floats* bias_values = c.with_bias ? &bias.host() : nullptr;
  run.backend().linear_gelu_forward(c.with_pre ? pre.f32() : nullptr, out.f32(), inp.f32(), weight.f32(),
                                    c.with_bias ? bias.f32() : nullptr, R, C, OC);
  const Doubles want_pre = ref::linear_forward(inp.host(), weight.host(), bias_values, R, C, OC);
  const Tolerance t = product_tolerance(run.matmul_precision(), C, weight_scale);
  if (c.with_pre) run.expect_close(pre, want_pre, t);
  Doubles want_out(want_pre.size());
  for (size_t i = 0; i < want_pre.size(); ++i) want_out[i] = ref::gelu(want_pre[i]);
  // GELU' <= 1.13 carries pre's error into out, plus GELU's own rounding.
  run.expect_close(out, want_out, {1.13 * t.atol + 1e-7, t.rtol + 3e-7});
}

struct BackwardCase {
  LinearShape s;
  bool gelu;  // gelu_linear_backward: the gradients of Linear(GELU(pre)), act = GELU(pre)
  bool with_dinp = true;
  bool with_dbias = true;
};

std::string label(const BackwardCase& c) {
  std::string l = shape_label("R", c.s.R, "C", c.s.C, "OC", c.s.OC);
  if (!c.with_dinp) l += " dinp=null";
  if (!c.with_dbias) l += " dbias=null";
  return l;
}

void run_linear_backward(OpRun& run, const BackwardCase& c) {
  const auto [R, C, OC] = c.s;
  const Buffer dout = run.input("dout", run.normal(R * OC), {R, OC});
  const Floats pre_values = run.normal(R * C);
  const Buffer pre = run.input("pre", pre_values, {R, C});
  const Buffer act = run.input("act", c.gelu ? ref::to_floats(ref::gelu(pre_values)) : run.normal(R * C), {R, C});
  const Buffer weight = run.input("weight", run.normal(OC * C), {OC, C});
  const Buffer dinp = run.output(c.gelu ? "dpre" : "dinp", {c.with_dinp ? R * C : 0});
  const Buffer dweight = run.accumulator("dweight", run.normal(OC * C), {OC, C});
  const Buffer dbias = run.accumulator("dbias", run.normal(c.with_dbias ? OC : 0), {c.with_dbias ? OC : 0});
  float* dbias_ptr = c.with_dbias ? dbias.f32() : nullptr;
  ref::LinearGrads want;
  if (c.gelu) {
    run.backend().gelu_linear_backward(dinp.f32(), dweight.f32(), dbias_ptr, dout.f32(), act.f32(), pre.f32(), weight.f32(), R, C, OC);
    want = ref::gelu_linear_backward(dout.host(), act.host(), pre.host(), weight.host(), R, C, OC);
  } else {
    run.backend().linear_backward(c.with_dinp ? dinp.f32() : nullptr, dweight.f32(), dbias_ptr, dout.f32(), act.f32(), weight.f32(),
                                  R, C, OC);
    want = ref::linear_backward(dout.host(), act.host(), weight.host(), R, C, OC);
  }
  const MatmulPrecision precision = run.matmul_precision();
  if (c.with_dinp) run.expect_close(dinp, want.dinp, product_tolerance(precision, OC));
  // += from random initial values (|dweight0| ~ 1 adds one rounding of its own).
  const Tolerance tw = product_tolerance(precision, R);
  run.expect_close(dweight, ref::plus(dweight.host(), want.dweight), {tw.atol + 2e-7, tw.rtol});
  // dbias sums R rows in float32 at every matmul precision (rows.h column_sums_add).
  if (c.with_dbias) run.expect_close(dbias, ref::plus(dbias.host(), want.dbias), float_sum_tolerance(R));
}

}  // namespace

void add_linear_cases(CaseTable& table) {
  // Every case of this family depends on the matmul precision.
  auto add = [&](const char* op, const std::string& label, std::function<void(OpRun&)> body) -> OpCase& {
    OpCase& c = table.add("linear", op, label, std::move(body));
    c.matmul = true;
    return c;
  };

  std::vector<GemmCase> gemms;
  // Every transpose combination on 1×1×1, odd sizes, the ViT-tiny attention shapes, and a K that
  // spans several K blocks.
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {17, 33, 65}, {65, 192, 128}, {33, 47, 777}};
  for (const auto& mnk : shapes)
    for (int t = 0; t < 4; ++t) gemms.push_back({(t & 2) != 0, (t & 1) != 0, mnk[0], mnk[1], mnk[2], 1.0f, 0.0f});
  gemms.push_back({false, false, 17, 33, 65, 0.75f, -1.25f});
  gemms.push_back({true, true, 17, 33, 65, 0.75f, -1.25f});
  gemms.push_back({false, true, 65, 192, 128, -0.5f, 1.0f});
  // Padded leading dimensions (NaN between the rows of A and B, kept values between those of C).
  gemms.push_back({false, false, 17, 33, 65, 1.0f, 0.0f, 3});
  gemms.push_back({true, false, 17, 33, 65, 1.0f, 0.5f, 5});
  gemms.push_back({false, true, 65, 192, 128, 1.0f, 0.0f, 7});
  gemms.push_back({true, true, 65, 192, 128, 2.0f, 1.0f, 1});
  // C = beta·C without reading A or B: alpha == 0 (A, B all NaN), K == 0; beta == 0 gives zeros.
  gemms.push_back({false, false, 7, 13, 5, 0.0f, 0.5f, 0, true});
  gemms.push_back({true, true, 7, 13, 5, 0.0f, 0.0f, 0, true});
  gemms.push_back({false, false, 3, 4, 0, 1.0f, 0.5f});
  gemms.push_back({false, true, 3, 4, 0, 1.0f, 0.0f});
  // Enough output tiles for a GPU's large-tile path (>= 132 tiles of 128×128 without a K split),
  // NN and TT, with beta·C and padded rows.
  gemms.push_back({false, false, 1537, 1500, 45, 1.0f, 0.5f, 2});
  gemms.push_back({true, true, 1537, 1500, 40, 1.0f, 0.0f});
  // Empty results: nothing may be written.
  gemms.push_back({false, false, 0, 5, 3, 1.0f, 0.0f});
  gemms.push_back({true, false, 4, 0, 3, 1.0f, 1.0f});
  for (const GemmCase& g : gemms) add("sgemm", label(g), [g](OpRun& run) { run_sgemm(run, g); });
  const GemmCase threads{false, false, 260, 576, 192, 1.0f, 0.0f};
  add("sgemm", label(threads), [threads](OpRun& run) { run_sgemm(run, threads); }).thread_invariant = true;

  std::vector<ForwardCase> forward;
  for (const LinearShape& s : kForwardShapes) forward.push_back({s});
  forward.push_back({kVariantShape, false});
  for (const ForwardCase& c : forward)
    add("linear_forward", label(c.s, c.with_bias), [c](OpRun& run) { run_linear_forward(run, c); });
  add("linear_forward", label(kThreadShape), [](OpRun& run) { run_linear_forward(run, {kThreadShape}); }).thread_invariant = true;

  const ForwardCase fc1[] = {{{1, 1, 1}}, {{7, 13, 9}}, {{130, 192, 768}}, {kVariantShape, true, false}, {kVariantShape, false, true}};
  for (const ForwardCase& c : fc1)
    add("linear_gelu_forward", label(c.s, c.with_bias, c.with_pre), [c](OpRun& run) { run_linear_gelu_forward(run, c); });
  add("linear_gelu_forward", label(kThreadShape), [](OpRun& run) { run_linear_gelu_forward(run, {kThreadShape}); }).thread_invariant =
      true;

  std::vector<BackwardCase> backward;
  for (const LinearShape& s : kBackwardShapes) {
    backward.push_back({s, false});
    backward.push_back({s, true});
  }
  backward.push_back({kVariantShape, false, false, true});
  backward.push_back({kVariantShape, false, true, false});
  backward.push_back({kVariantShape, true, true, false});
  for (const BackwardCase& c : backward)
    add(c.gelu ? "gelu_linear_backward" : "linear_backward", label(c), [c](OpRun& run) { run_linear_backward(run, c); });
  for (bool gelu : {false, true}) {
    const BackwardCase c{kThreadShape, gelu};
    const char* op = gelu ? "gelu_linear_backward" : "linear_backward";
    add(op, label(c), [c](OpRun& run) { run_linear_backward(run, c); }).thread_invariant = true;
  }

  // The precision setting itself: what setup selected is what the backend reports; the CPU has no
  // TF32 and must say so (ErrorKind::Value naming it).
  add("matmul_precision", "as selected", [](OpRun& run) {
    Backend& backend = run.backend();
    CMAE_TEST_CHECK(backend.matmul_precision() == run.matmul_precision(), "backend reports ",
             matmul_precision_name(backend.matmul_precision()), ", the harness selected ", matmul_precision_name(run.matmul_precision()));
    run.note(std::string("matmul precision ") + matmul_precision_name(run.matmul_precision()));
    if (backend.device() != Device::CPU) return;
    try {
      backend.set_matmul_precision(MatmulPrecision::TF32);
    } catch (const Error& e) {
      CMAE_TEST_CHECK(e.kind() == ErrorKind::Value && std::string(e.what()).find("tf32") != std::string::npos, e.what());
      run.note("tf32 refused on the cpu");
      return;
    }
    fail_case("the cpu accepted tf32 matmuls");
  });
}

}  // namespace cmae::op_tests
