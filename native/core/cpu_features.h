// Run-time choice of the SIMD path. The library is compiled for x86-64 with AVX2+FMA; kernels that
// have an AVX-512 variant compile it in a separate translation unit (-mavx512f ...) and call it only
// when the CPU has AVX-512 and the user has not forced the lower path (CMAE_ISA=avx2).
#pragma once

namespace cmae {

enum class Isa : int { AVX2 = 0, AVX512 = 1 };

const char* isa_name(Isa isa);
// What the CPU has, capped by the CMAE_MAX_ISA env var ("avx2" | "avx512": report no more than that).
bool cpu_supports(Isa isa);
Isa best_supported_isa();
// The ISA in use: CMAE_ISA env var ("avx2" | "avx512") at first use, else the best supported.
Isa current_isa();
// Forces a path (tests run every kernel on both). Throws ErrorKind::Value if the CPU lacks it.
void set_isa(Isa isa);
Isa parse_isa(const char* name);  // throws ErrorKind::Value
// AVX-512 BF16 (vdpbf16ps, with the AVX-512 set above): the opt-in bf16 matmul path (linear.h).
bool cpu_supports_avx512_bf16();

}  // namespace cmae
