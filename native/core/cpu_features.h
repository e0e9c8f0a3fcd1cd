// Run-time choice of the SIMD path. The CPU kernels exist in up to three variants:
//   portable  plain C++ the compiler vectorises for whatever it targets (SSE2 on a generic x86-64,
//             NEON on aarch64); the only path on a CPU that is not x86;
//   avx2      the same kernel sources compiled with AVX2 + FMA (x86-64 only);
//   avx512    the kernels with an AVX-512 variant (*_avx512.cc), over the avx2 build of the rest.
// Everything else (model, data pipeline, bindings) is compiled for the plain target, so a CPU
// without AVX2 runs the library on the portable path (native/README.md, "CPU paths").
#pragma once

namespace cmae {

// Ordered: each path needs what the one before it needs, and more.
enum class Isa : int { Portable = 0, AVX2 = 1, AVX512 = 2 };

const char* isa_name(Isa isa);
// What the CPU has, capped by the CMAE_MAX_ISA env var ("portable" | "avx2" | "avx512": report no
// more than that).
bool cpu_supports(Isa isa);
Isa best_supported_isa();
// The ISA in use: CMAE_ISA env var ("portable" | "avx2" | "avx512") at first use, else the best
// supported.
Isa current_isa();
// Forces a path (tests run every kernel on each). Throws ErrorKind::Value if the CPU lacks it.
void set_isa(Isa isa);
Isa parse_isa(const char* name);  // throws ErrorKind::Value
// AVX-512 BF16 (vdpbf16ps, with the AVX-512 set above): the opt-in bf16 matmul path (linear.h).
bool cpu_supports_avx512_bf16();

}  // namespace cmae
