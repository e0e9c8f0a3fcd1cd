// Warp-level tensor-core operations (sm_80+), the portable building blocks of cmae's GEMM kernels:
// mma.sync for TF32 (m16n8k8) and BF16 (m16n8k16) with float32 accumulators, ldmatrix to load
// their fragments from shared memory, and the conversions that make their inputs. Under nvcc each
// is one PTX instruction. Under the SIMT emulator each is a warp collective: all 32 lanes hand in
// their fragment registers, the emulator assembles the matrices by the PTX ISA's fragment layouts
// (written out below), computes in float32, and hands every lane its registers back; a lane that
// has exited, or a partial warp, is an error (.aligned: the whole warp must execute it).
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8 / mma.m16n8k16"), with
//   groupID = laneid >> 2,  threadID_in_group = laneid % 4   (g and t below)
// and two 16-bit elements per 32-bit register, the lower-indexed element in the low half:
//
// m16n8k8 .tf32 (A 16x8 row-major, B 8x8 column-major, C/D 16x8 float):
//   A: a0 = A[g][t]     a1 = A[g+8][t]     a2 = A[g][t+4]     a3 = A[g+8][t+4]
//   B: b0 = B[t][g]     b1 = B[t+4][g]
//   C: c0 = C[g][2t]    c1 = C[g][2t+1]    c2 = C[g+8][2t]    c3 = C[g+8][2t+1]   (D alike)
// m16n8k16 .bf16 (A 16x16, B 16x8, C/D 16x8 float); register i holds elements 2i and 2i+1:
//   A: a0,a1 = A[g][2t], A[g][2t+1]        a2,a3 = A[g+8][2t], A[g+8][2t+1]
//      a4,a5 = A[g][2t+8], A[g][2t+9]      a6,a7 = A[g+8][2t+8], A[g+8][2t+9]
//   B: b0,b1 = B[2t][g], B[2t+1][g]        b2,b3 = B[2t+8][g], B[2t+9][g]
//   C: as for m16n8k8.
// ldmatrix.sync.aligned.m8n8.{x2,x4}{,.trans}.shared.b16 loads 2 or 4 8x8 matrices of 16-bit
// elements: lane 8i + r gives the address of row r of matrix i (16 contiguous bytes, 16-byte
// aligned; .x2 reads the addresses of lanes 0-15 only), and lane l receives in register i
//   M_i[g][2t], M_i[g][2t+1]          (row g, where g = l >> 2, t = l % 4)
//   M_i[2t][g], M_i[2t+1][g]          with .trans (the matrix read column-wise).
// So ldmatrix.x4 with lane l pointing at row l % 16, column 8 * (l / 16) of a row-major 16x16 tile
// yields exactly m16n8k16's A registers, and ldmatrix.x2.trans over a row-major 16x8 (k x n) tile
// its B registers.
#pragma once
#include <cstdint>

#include "common/compat.cuh"

#if CMAE_CUDA_EMULATED
#include <stdexcept>
#include <string>
#endif

CMAE_CUDA_NAMESPACE_BEGIN

#if CMAE_CUDA_EMULATED

namespace detail {

inline float tf32_value(std::uint32_t reg) { return emu::detail::bit_cast<float>(reg & 0xFFFFE000u); }  // 19 bits count
inline float bf16_value(std::uint32_t reg, int half) { return emu::detail::bit_cast<float>((reg >> (16 * half) & 0xFFFFu) << 16); }

inline void require_whole_warp(const emu::WarpCall& call) {
  if (call.participants != 0xFFFFFFFFu)
    throw std::runtime_error("needs all 32 lanes of the warp, but " + std::to_string(__builtin_popcount(~call.participants)) +
                             " have exited or do not exist");
}

// What each lane hands an emulated mma.
struct MmaOperands {
  const std::uint32_t* a;
  const std::uint32_t* b;
  const float* c;
  float* d;
};

// D = A * B + C over a 16 x 8 tile, accumulated in float32 in k order; the gather takes the A and
// B elements each lane holds (per the layouts above) into row-major arrays.
template <int K, typename GatherA, typename GatherB>
inline void complete_mma(emu::WarpCall& call, GatherA gather_a, GatherB gather_b) {
  require_whole_warp(call);
  float a[16][K], b[K][8], c[16][8];
  for (unsigned lane = 0; lane < 32; ++lane) {
    const auto& ops = *static_cast<const MmaOperands*>(call.lane[lane]->data);
    const unsigned g = lane >> 2, t = lane % 4;
    gather_a(a, ops.a, g, t);
    gather_b(b, ops.b, g, t);
    c[g][2 * t] = ops.c[0];
    c[g][2 * t + 1] = ops.c[1];
    c[g + 8][2 * t] = ops.c[2];
    c[g + 8][2 * t + 1] = ops.c[3];
  }
  // Every lane's inputs are gathered before any output is written: d may alias c.
  for (unsigned lane = 0; lane < 32; ++lane) {
    const auto& ops = *static_cast<const MmaOperands*>(call.lane[lane]->data);
    const unsigned g = lane >> 2, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const unsigned row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
      float acc = c[row][col];
      for (int k = 0; k < K; ++k) acc += a[row][k] * b[k][col];
      ops.d[i] = acc;
    }
  }
}

inline void complete_mma_m16n8k8_tf32(emu::WarpCall& call) {
  complete_mma<8>(
      call,
      [](float (&a)[16][8], const std::uint32_t* r, unsigned g, unsigned t) {
        a[g][t] = tf32_value(r[0]);
        a[g + 8][t] = tf32_value(r[1]);
        a[g][t + 4] = tf32_value(r[2]);
        a[g + 8][t + 4] = tf32_value(r[3]);
      },
      [](float (&b)[8][8], const std::uint32_t* r, unsigned g, unsigned t) {
        b[t][g] = tf32_value(r[0]);
        b[t + 4][g] = tf32_value(r[1]);
      });
}

inline void complete_mma_m16n8k16_bf16(emu::WarpCall& call) {
  complete_mma<16>(
      call,
      [](float (&a)[16][16], const std::uint32_t* r, unsigned g, unsigned t) {
        for (int i = 0; i < 8; ++i) {
          const unsigned row = g + ((i / 2) % 2 == 1 ? 8 : 0), col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
          a[row][col] = bf16_value(r[i / 2], i & 1);
        }
      },
      [](float (&b)[16][8], const std::uint32_t* r, unsigned g, unsigned t) {
        for (int i = 0; i < 4; ++i) b[2 * t + (i & 1) + (i >= 2 ? 8 : 0)][g] = bf16_value(r[i / 2], i & 1);
      });
}

template <int Count, bool Transpose>
inline void complete_ldmatrix(emu::WarpCall& call) {
  require_whole_warp(call);
  const unsigned char* rows[Count][8];
  for (int i = 0; i < Count; ++i) {
    for (int r = 0; r < 8; ++r) {
      const void* row = call.lane[8 * i + r]->data;
      if (!emu::is_shared(row, 16) || reinterpret_cast<std::uintptr_t>(row) % 16 != 0)
        throw std::runtime_error("lane " + std::to_string(8 * i + r) + " gives a row address that is not 16-byte aligned shared memory");
      rows[i][r] = static_cast<const unsigned char*>(row);
    }
  }
  const auto element = [&rows](int matrix, unsigned row, unsigned col) {
    std::uint16_t e;
    std::memcpy(&e, rows[matrix][row] + 2 * col, 2);
    return std::uint32_t{e};
  };
  for (unsigned lane = 0; lane < 32; ++lane) {
    auto* out = static_cast<std::uint32_t*>(call.lane[lane]->out);
    const unsigned g = lane >> 2, t = lane % 4;
    for (int i = 0; i < Count; ++i)
      out[i] = Transpose ? element(i, 2 * t, g) | element(i, 2 * t + 1, g) << 16 : element(i, g, 2 * t) | element(i, g, 2 * t + 1) << 16;
  }
}

inline const emu::CollectiveOp kMmaTf32{"mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", complete_mma_m16n8k8_tf32};
inline const emu::CollectiveOp kMmaBf16{"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", complete_mma_m16n8k16_bf16};
inline const emu::CollectiveOp kLdmatrixX2{"ldmatrix.sync.aligned.m8n8.x2.shared.b16", complete_ldmatrix<2, false>};
inline const emu::CollectiveOp kLdmatrixX4{"ldmatrix.sync.aligned.m8n8.x4.shared.b16", complete_ldmatrix<4, false>};
inline const emu::CollectiveOp kLdmatrixX2Trans{"ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16", complete_ldmatrix<2, true>};
inline const emu::CollectiveOp kLdmatrixX4Trans{"ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16", complete_ldmatrix<4, true>};

inline void mma(const emu::CollectiveOp& op, float* d, const std::uint32_t* a, const std::uint32_t* b, const float* c) {
  const MmaOperands operands{a, b, c, d};
  emu::LaneInput in;
  in.data = &operands;
  emu::warp_collective(op, 0xFFFFFFFFu, in);
}

inline void ldmatrix(const emu::CollectiveOp& op, std::uint32_t* registers, const void* shared_row) {
  emu::LaneInput in;
  in.data = shared_row;
  in.out = registers;
  emu::warp_collective(op, 0xFFFFFFFFu, in);
}

}  // namespace detail

// cvt.rna.tf32.f32: round to the nearest TF32 (10 mantissa bits), ties away from zero; the result
// is a .b32 with the low 13 bits clear. NaN stays NaN, infinities stay.
inline std::uint32_t to_tf32(float x) {
  const std::uint32_t bits = emu::detail::bit_cast<std::uint32_t>(x);
  if ((bits & 0x7F800000u) == 0x7F800000u) return (bits & 0x7FFFFFu) != 0 ? (bits & 0xFFFFE000u) | 0x400000u : bits;
  return (bits + 0x1000u) & 0xFFFFE000u;  // sign-magnitude: adding half an ulp rounds |x| away on ties
}

// cvt.rn.bf16x2.f32: two floats to bf16, round to nearest even, `lo` in bits 0-15; NaN -> quiet NaN.
inline std::uint32_t pack_bf16x2(float lo, float hi) {
  const auto to_bf16 = [](float x) {
    const std::uint32_t bits = emu::detail::bit_cast<std::uint32_t>(x);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (bits >> 16) | 0x40u;
    return (bits + 0x7FFFu + (bits >> 16 & 1u)) >> 16;
  };
  return to_bf16(lo) | to_bf16(hi) << 16;
}

inline void mma_m16n8k8_tf32(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4]) {
  detail::mma(detail::kMmaTf32, d, a, b, c);
}
inline void mma_m16n8k16_bf16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4]) {
  detail::mma(detail::kMmaBf16, d, a, b, c);
}
inline void ldmatrix_x2(std::uint32_t (&r)[2], const void* shared_row) { detail::ldmatrix(detail::kLdmatrixX2, r, shared_row); }
inline void ldmatrix_x4(std::uint32_t (&r)[4], const void* shared_row) { detail::ldmatrix(detail::kLdmatrixX4, r, shared_row); }
inline void ldmatrix_x2_trans(std::uint32_t (&r)[2], const void* shared_row) { detail::ldmatrix(detail::kLdmatrixX2Trans, r, shared_row); }
inline void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* shared_row) { detail::ldmatrix(detail::kLdmatrixX4Trans, r, shared_row); }

#else  // nvcc: one instruction each (sm_80+; older targets trap, and cmae only runs these kernels on sm_80+)

__device__ __forceinline__ std::uint32_t to_tf32(float x) {
  std::uint32_t r = 0;
#if __CUDA_ARCH__ >= 800
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#else
  __trap();
#endif
  return r;
}

// cvt.rn.bf16x2.f32 d, a, b puts a in the upper half: hi goes first.
__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  std::uint32_t r = 0;
#if __CUDA_ARCH__ >= 800
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
  __trap();
#endif
  return r;
}

__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4]) {
#if __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
  __trap();
#endif
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2], const float (&c)[4]) {
#if __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
  __trap();
#endif
}

__device__ __forceinline__ void ldmatrix_x2(std::uint32_t (&r)[2], const void* shared_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(shared_address(shared_row)));
}
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* shared_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(shared_row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(std::uint32_t (&r)[2], const void* shared_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(shared_address(shared_row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* shared_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(shared_row)));
}

#endif

CMAE_CUDA_NAMESPACE_END
