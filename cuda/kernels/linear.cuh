// The linear family's kernels (ops/linear.h): one GEMM, C = op(A)·op(B) finished by an epilogue
// (alpha·acc + beta·C, bias, GELU, GELU'), at three precisions, each in two tile shapes and for
// all four transpose combinations (template parameters, so every inner loop is branch-free):
//
//   linear_simt.cuh  FP32 on CUDA cores (gemm_simt): register-tiled, shared-memory double
//                    buffering; every GPU, the only path on sm_75.
//   linear_mma.cuh   TF32 (gemm_tf32: mma.sync.m16n8k8, 3-4 stage cp.async pipeline) and BF16
//                    (gemm_bf16: mma.sync.m16n8k16, operands rounded to bf16 as they are staged)
//                    on tensor cores, sm_80+.
//   linear_common.cuh  what they share: operands, edge fetches, the epilogue, block_work, the
//                    register-staged main loop, gemm_split_sum.
//
// Every kernel takes one GemmArgs and runs a grid of tiles_m·tiles_n blocks of its tile shape by
// `splits` K slices (block_work). Each output element of a slice is owned by one thread and summed
// over the slice in k order; a split product's slices go to scratch partials that gemm_split_sum
// adds in slice order before the epilogue. No atomics: results repeat bit for bit. The host side
// (the plan of each product, the launches) is cuda/linear.cu.
#pragma once
#include "kernels/linear_common.cuh"
#include "kernels/linear_mma.cuh"
#include "kernels/linear_simt.cuh"

CMAE_CUDA_NAMESPACE_BEGIN
namespace kernels {

// The two tile shapes of each precision (cuda/linear.cu's plan_gemm picks one): Large for products
// with a wave of large tiles or a long K to split, Small (4x the blocks) for the rest.
enum class GemmTiles { Large, Small };

// FP32 SIMT: BM x BN per block, TM x TN per thread, 256 threads either way.
template <GemmTiles Tiles>
struct SimtConfig {
  static constexpr int BM = 128, BN = 128, TM = 8, TN = 8;
};
template <>
struct SimtConfig<GemmTiles::Small> {
  static constexpr int BM = 64, BN = 64, TM = 4, TN = 4;
};

// Tensor cores: BM x BN per block, WarpsM x WarpsN warps (64 x 32 and 32 x 32 warp tiles), the
// TF32 pipeline depth. Large: one 8-warp block per SM (MI·NI·4 = 64 accumulators, the fragments
// of a whole k-step unrolled and the staging addresses need ~170 registers; capping them at 128
// for two blocks spills), which leaves room for 4 stages (144 KiB). Small: three 4-warp blocks
// per SM, 3 stages (54 KiB each).
template <GemmTiles Tiles>
struct MmaConfig {
  static constexpr int BM = 128, BN = 128, WarpsM = 2, WarpsN = 4, Tf32Stages = 4;
};
template <>
struct MmaConfig<GemmTiles::Small> {
  static constexpr int BM = 64, BN = 64, WarpsM = 2, WarpsN = 2, Tf32Stages = 3;
};

}  // namespace kernels
CMAE_CUDA_NAMESPACE_END
