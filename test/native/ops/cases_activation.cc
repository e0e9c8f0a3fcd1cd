// Cases of ops/activation.h: GELU and ReLU, forward and backward, out-of-place and in place.
#include <cmath>
#include <limits>

#include "harness.h"
#include "reference.h"

namespace cmae::op_tests {

namespace {

// The contract's own bound for the CPU ("within 1e-7 abs + 3e-7 rel of the float64 value").
constexpr Tolerance kGelu{1e-7, 3e-7};
// dout·GELU'(x): GELU' crosses 0 near x = −0.75, where its float rounding is absolute (~2e-7),
// then multiplied by |dout| (up to ~5 for N(0, 1) draws).
constexpr Tolerance kGeluBackward{1e-6, 1e-6};

// 1, odd sizes that are no multiple of any SIMD width, and a ViT-tiny activation (4160×192 rows).
// The thread-count cases use 4·16384 + 7 elements: enough for 3 threads (16384 per thread at
// least, core/threads.h), a quarter of the ViT size's time.
const int64_t kSizes[] = {1, 7, 17, 1031, 4 * 16384 + 7, 4160 * 192};
constexpr int64_t kThreadSize = 4 * 16384 + 7;

// Values where the float formula is exact or degenerate: PyTorch's GELU(−∞) = −∞·Φ(−∞) = NaN.
Floats special_values() {
  const float inf = std::numeric_limits<float>::infinity();
  return {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(), 1e-30f, -1e-30f, 1e-7f, -1e-7f, 3.0f, -3.0f,
          5.5f, -5.5f, 10.0f, -10.0f, 30.0f, -30.0f, 88.0f, -88.0f, 3e38f, -3e38f, 1.17549435e-38f, -0.7518f};
}

}  // namespace

void add_activation_cases(CaseTable& table) {
  for (int64_t n : kSizes) {
    const std::string label = shape_label("n", n);
    const bool threads = n == kThreadSize;
    // N(0, 2²): covers the tails where erf saturates.
    table.add("activation", "gelu_forward", label, [n](OpRun& run) {
      const Buffer inp = run.input("inp", run.normal(n, 2.0), {n});
      const Buffer out = run.output("out", {n});
      run.backend().gelu_forward(out.f32(), inp.f32(), n);
      run.expect_close(out, ref::gelu(inp.host()), kGelu);
    }).thread_invariant = threads;
    table.add("activation", "gelu_backward", label, [n](OpRun& run) {
      const Buffer dout = run.input("dout", run.normal(n), {n});
      const Buffer inp = run.input("inp", run.normal(n, 2.0), {n});
      const Buffer dinp = run.output("dinp", {n});
      run.backend().gelu_backward(dinp.f32(), dout.f32(), inp.f32(), n);
      run.expect_close(dinp, ref::gelu_backward(dout.host(), inp.host()), kGeluBackward);
    }).thread_invariant = threads;
    table.add("activation", "relu_forward", label, [n](OpRun& run) {
      const Buffer inp = run.input("inp", run.normal(n), {n});
      const Buffer out = run.output("out", {n});
      run.backend().relu_forward(out.f32(), inp.f32(), n);
      run.expect_close(out, ref::relu(inp.host()), kExact);
    }).thread_invariant = threads;
    // `out` as relu_forward leaves it: exact zeros where the input was negative.
    table.add("activation", "relu_backward", label, [n](OpRun& run) {
      const Buffer dout = run.input("dout", run.normal(n), {n});
      const Buffer out = run.input("out", ref::to_floats(ref::relu(run.normal(n))), {n});
      const Buffer dinp = run.output("dinp", {n});
      run.backend().relu_backward(dinp.f32(), dout.f32(), out.f32(), n);
      run.expect_close(dinp, ref::relu_backward(dout.host(), out.host()), kExact);
    }).thread_invariant = threads;
  }

  // The aliasing the contract allows: out = inp (forward), dinp = dout (backward).
  const int64_t n = 1031;
  const std::string in_place = shape_label("n", n) + " in place";
  table.add("activation", "gelu_forward", in_place, [n](OpRun& run) {
    const Buffer x = run.accumulator("inp=out", run.normal(n, 2.0), {n});
    run.backend().gelu_forward(x.f32(), x.f32(), n);
    run.expect_close(x, ref::gelu(x.host()), kGelu);
  });
  table.add("activation", "gelu_backward", in_place, [n](OpRun& run) {
    const Buffer inp = run.input("inp", run.normal(n, 2.0), {n});
    const Buffer d = run.accumulator("dout=dinp", run.normal(n), {n});
    run.backend().gelu_backward(d.f32(), d.f32(), inp.f32(), n);
    run.expect_close(d, ref::gelu_backward(d.host(), inp.host()), kGeluBackward);
  });
  table.add("activation", "relu_forward", in_place, [n](OpRun& run) {
    const Buffer x = run.accumulator("inp=out", run.normal(n), {n});
    run.backend().relu_forward(x.f32(), x.f32(), n);
    run.expect_close(x, ref::relu(x.host()), kExact);
  });
  table.add("activation", "relu_backward", in_place, [n](OpRun& run) {
    const Buffer out = run.input("out", ref::to_floats(ref::relu(run.normal(n))), {n});
    const Buffer d = run.accumulator("dout=dinp", run.normal(n), {n});
    run.backend().relu_backward(d.f32(), d.f32(), out.f32(), n);
    run.expect_close(d, ref::relu_backward(d.host(), out.host()), kExact);
  });

  const Floats special = special_values();
  const int64_t ns = static_cast<int64_t>(special.size());
  table.add("activation", "gelu_forward", "special values", [special, ns](OpRun& run) {
    const Buffer inp = run.input("inp", special, {ns});
    const Buffer out = run.output("out", {ns});
    run.backend().gelu_forward(out.f32(), inp.f32(), ns);
    run.expect_close(out, ref::gelu(special), kGelu);
  });
  table.add("activation", "gelu_backward", "special values", [special, ns](OpRun& run) {
    const Buffer dout = run.input("dout", Floats(special.size(), 1.0f), {ns});
    const Buffer inp = run.input("inp", special, {ns});
    const Buffer dinp = run.output("dinp", {ns});
    run.backend().gelu_backward(dinp.f32(), dout.f32(), inp.f32(), ns);
    run.expect_close(dinp, ref::gelu_backward(dout.host(), special), kGeluBackward);
  });
}

}  // namespace cmae::op_tests
