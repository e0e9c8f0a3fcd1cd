// What a kernel source is compiled for. CMake (and binding.gyp) compile every kernel source
// (cpu/kernels.h says which) once per target, defining one of:
//   CMAE_CPU_TARGET_PORTABLE  no ISA flags: the compiler's own vectorisation for what it targets;
//   CMAE_CPU_TARGET_AVX2      -mavx2 -mfma -mf16c (x86-64 only).
// CMAE_CPU_TARGET is then the namespace the source defines its ops in (cmae::cpu::portable or
// cmae::cpu::avx2) and Vec, found unqualified inside it, that target's 8-lane vector traits
// (cpu/vec_portable.h or cpu/vec_avx2.h). Include only from kernel sources.
#pragma once

#if defined(CMAE_CPU_TARGET_AVX2)
#define CMAE_CPU_TARGET avx2
#include "cpu/vec_avx2.h"
#elif defined(CMAE_CPU_TARGET_PORTABLE)
#define CMAE_CPU_TARGET portable
#include "cpu/vec_portable.h"
#else
#error "a kernel source compiled without CMAE_CPU_TARGET_PORTABLE or CMAE_CPU_TARGET_AVX2 (see cpu/target.h)"
#endif

#include "cpu/kernels.h"
