#!/usr/bin/env python3
"""Fits the erfcx polynomial used by the vectorised GELU (native/cpu/fused.cc, normal_cdf_exp) and
checks the float32 evaluation of GELU and GELU' against float64 on [-16, 16].

    erfc(t) = e^{-t^2} * erfcx(t),  erfcx(t) = s * Q(s),  s = 1 / (1 + 0.3 t),  t = |x| / sqrt(2)

Q is a degree-8 Chebyshev least-squares fit (relative weights) in u = s * UA + UB, which maps
s in [1/(1 + 0.3 * 4.5), 1] onto [-1, 1]; the printed coefficients are Q/2 in powers of u, highest
first, as the C++ Horner loops take them. Needs numpy and mpmath (Debian: python3-numpy,
python3-mpmath); not used by the build or the tests.
"""
import math

import mpmath
import numpy as np

P, T_MAX, DEGREE = 0.3, 4.5, 8
mpmath.mp.dps = 30


def erfcx(t):
    return float(mpmath.exp(t * t) * mpmath.erfc(t))


ts = np.linspace(0, T_MAX, 6001)
ys = np.array([erfcx(t) for t in ts])
s = 1 / (1 + P * ts)
f = ys / s
lo, hi = 1 / (1 + P * T_MAX), 1.0
mid, half = (lo + hi) / 2, (hi - lo) / 2
u = (s - mid) / half
cheb = np.polynomial.chebyshev.chebfit(u, f, DEGREE, w=1 / f)
fit_error = np.max(np.abs(np.polynomial.chebyshev.chebval(u, cheb) / f - 1))
mono = np.polynomial.chebyshev.cheb2poly(cheb) * 0.5  # Q/2, lowest power first
UA, UB = 1 / half, -mid / half
print(f"UA = {UA!r}, UB = {UB!r}; relative fit error of Q: {fit_error:.2e}")
print("Q/2, highest power first:", ", ".join(f"{c:.10e}f" for c in mono[::-1]))

# float32 evaluation, operation by operation as in the kernel (exp taken as correctly rounded).
f32 = np.float32
x = np.linspace(-16, 16, 400001).astype(f32)
e = np.exp((x * (x * f32(-0.5))).astype(np.float64)).astype(f32)
t = (np.abs(x) * f32(1 / math.sqrt(2))).astype(f32)
e = np.where(t <= f32(T_MAX), e, f32(0))
sv = (f32(1) / (f32(1) + f32(P) * np.minimum(t, f32(T_MAX)))).astype(f32)
uv = (sv * f32(UA) + f32(UB)).astype(f32)
q = np.full_like(x, f32(mono[-1]))
for c in mono[-2::-1]:
    q = (q * uv + f32(c)).astype(f32)
half_erfc = (e * (sv * q)).astype(f32)
phi = np.where(x > 0, f32(1) - half_erfc, half_erfc).astype(f32)
gelu = (x * phi).astype(f32)
grad = (phi + x * (e * f32(1 / math.sqrt(2 * math.pi)))).astype(f32)

xd = x.astype(np.float64)
phi_ref = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in xd])
gelu_ref = xd * phi_ref
grad_ref = phi_ref + xd * np.exp(-xd * xd / 2) / math.sqrt(2 * math.pi)
# The tolerances of test/ops/fused.test.ts ('GELU is accurate over the whole range').
print("GELU  error / (1e-7 + 3e-7 |ref|):", np.max(np.abs(gelu - gelu_ref) / (1e-7 + 3e-7 * np.abs(gelu_ref))))
print("GELU' error / (2e-7 + 1e-6 |ref|):", np.max(np.abs(grad - grad_ref) / (2e-7 + 1e-6 * np.abs(grad_ref))))
