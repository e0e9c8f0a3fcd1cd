// linear ops of the CUDA backend (ops/linear.h): sgemm and the Linear layers, all on one GEMM
// (kernels/linear.cuh) whose epilogue applies alpha/beta, the bias, GELU or GELU':
//   sgemm                 C = alpha·op(A)·op(B) + beta·C (alpha == 0 runs it as K = 0: A, B unread)
//   linear_forward        NT (inp · weightᵀ), + bias in the epilogue
//   linear_gelu_forward   the same product and bias (same bits), pre and GELU(pre) stored together
//   gelu_linear_backward  NN (dout · weight) ⊙ GELU'(pre) in the epilogue, then linear_backward's
//                         dweight and dbias
//   linear_backward       NN dinp; TN dweight += doutᵀ·inp (epilogue beta = 1); dbias by the rows
//                         family's column_sums_add (its fixed row blocks, as ops/linear.h asks)
// Precision (precision_): FP32 -> gemm_simt; TF32 -> gemm_tf32; BF16 -> gemm_bf16 (the last two
// only reachable from compute capability 8.0: set_matmul_precision refuses them below).
// The plan of a product (plan_gemm: tile shape, K slices) depends on its shape alone; see there.
//
// Expected bounds, base preset at batch 256 on an H100/H200 (every product of a training step
// that is a matmul; counts per step; online encoder 12800 rows = 256 x 50 tokens, momentum encoder
// and decoders 50432 = 256 x 197, patch rows 50176 = 256 x 196). plan: L(arge 128x128 tiles) or
// S(mall 64x64), /s = K split into s slices. MB: operands and result once in float32 (+ the
// dweight read, + the split partials written and read), "HBM" its time at 4.3 TB/s; then the
// time at peak (400 TF32 / 790 BF16 TFLOP/s) and the time expected of these kernels, max(HBM,
// FLOPs at 160 TF32 / 315 BF16 TFLOP/s). All in microseconds.
//
//   product              op        M x N x K   plan  n  GFLOP    MB   HBM  @peak  @peak expect expect
//                                                                            TF32   BF16   TF32   BF16
//   enc qkv fwd           NT   12800x2304x768    L  12   45.3   164    38    113     57    283    144
//   enc proj fwd          NT    12800x768x768    L  12   15.1    81    19     38     19     94     48
//   enc fc1 fwd (+GELU)   NT   12800x3072x768    L  12   60.4   206    48    151     76    377    192
//   enc fc2 fwd           NT   12800x768x3072    L  12   60.4   206    48    151     76    377    192
//   enc qkv dinp          NN   12800x768x2304    L  12   45.3   164    38    113     57    283    144
//   enc qkv dweight       TN   2304x768x12800  L/3  12   45.3   214    50    113     57    283    144
//   enc proj dinp         NN    12800x768x768    L  12   15.1    81    19     38     19     94     48
//   enc proj dweight      TN    768x768x12800  L/8  12   15.1   121    28     38     19     94     48
//   enc fc1 dinp          NN   12800x768x3072    L  12   60.4   206    48    151     76    377    192
//   enc fc1 dweight       TN   3072x768x12800    L  12   60.4   215    50    151     76    377    192
//   enc fc2 dpre (GELU')  NN   12800x3072x768    L  12   60.4   206    48    151     76    377    192
//   enc fc2 dweight       TN   768x3072x12800    L  12   60.4   215    50    151     76    377    192
//   momentum qkv fwd      NT   50432x2304x768    L  12  178.5   627   146    446    226   1115    567
//   momentum fc1/fc2 fwd  NT   50432x3072x768    L  24  238.0   784   182    595    301   1487    755
//   momentum proj fwd     NT    50432x768x768    L  12   59.5   312    73    149     75    372    189
//   patch embed fwd       NT    50176x768x768    L   2   59.2   311    72    148     75    370    188
//   patch dWt (sgemm)     TN    768x768x12544  L/8   1   14.8   117    27     37     19     92     47
//   dec embed fwd         NT    12800x512x768    L   2   10.1    67    16     25     13     63     32
//   dec qkv fwd           NT   50432x1536x512    L  10   79.3   416    97    198    100    496    252
//   dec proj fwd          NT    50432x512x512    L  10   26.4   208    48     66     33    165     84
//   dec fc1 fwd           NT   50432x2048x512    L  10  105.8   521   121    264    134    661    336
//   dec fc2 fwd           NT   50432x512x2048    L  10  105.8   521   121    264    134    661    336
//   dec qkv dweight       TN   1536x512x50432  L/6  10   79.3   457   106    198    100    496    252
//   dec proj dweight      TN    512x512x50432 L/16  10   26.4   242    56     66     33    165     84
//   dec fc1/fc2 dweight   TN   2048x512x50432  L/5  20  105.8   567   132    264    134    661    336
//   dec pred fwd          NT    50176x768x512    L   2   39.5   258    60     99     50    247    125
//   dec qkv dinp          NN   50432x512x1536    L  10   79.3   416    97    198    100    496    252
//   dec fc1 dinp          NN   50432x512x2048    L  10  105.8   521   121    264    134    661    336
//   dec fc2 dpre (GELU')  NN   50432x2048x512    L  10  105.8   521   121    264    134    661    336
//   dec proj dinp         NN    50432x512x512    L  10   26.4   208    48     66     33    165     84
//   projector fc1 fwd     NT     256x1536x768  L/3   2    0.6    17     4      2      1      4      4
//   Sum: ~24.8 TFLOP a step; ~62 ms at peak TF32 (31 ms BF16); expected ~155 ms TF32, ~79 ms BF16.
//   FP32 (SIMT, ~60 TFLOP/s peak): expect ~40 TFLOP/s, ~620 ms.
//
// Why ~40 % of peak with tensor cores: mma.sync is the Ampere-style warp-level path. On Hopper it
// issues at about half the rate of wgmma (warp-group MMA from shared memory, which is what the
// 400/790 figures assume; measured mma.sync-only loops stop near 50-60 % of the dense peak), and
// its operands must pass through registers (ldmatrix / shared loads, plus cvt.rna for TF32),
// which costs issue slots and shared bandwidth that wgmma avoids. A kernel of this shape (one
// block of 8 warps per SM for large tiles, no warp specialisation, no TMA) reaches 70-80 % of that
// mma.sync ceiling on large shapes: ~160 TF32 / ~315 BF16 TFLOP/s, i.e. 35-45 % of the peaks.
// BF16 also pays for its fp32 operands (it reads 4 bytes per element from HBM and rounds in
// registers: 50432x512x512 products are then bandwidth-bound). The split-K products (weight
// gradients with few output tiles) add the partials' traffic shown in MB. The next steps past
// this design are wgmma + TMA (sm_90a only, not emulated) or the cuBLASLt path.
#include <cstdint>

#include "common/reduce.cuh"
#include "cuda_backend.h"
#include "kernels/linear.cuh"

CMAE_CUDA_NAMESPACE_BEGIN

namespace {

using kernels::GemmArgs;
using kernels::GemmEpilogue;
using kernels::GemmOperand;
using kernels::GemmTiles;

// How a product is cut up: a function of its shape alone, so that a product runs the same
// kernels, with the same summation, on every GPU and in the emulator (and linear_forward and
// linear_gelu_forward, or the two backward forms, agree bit for bit).
//   - Large tiles once they make at least one block per SM of an H100/H200 (132).
//   - Fewer large tiles with a long K (the weight gradients: M·N = OC·C, K = B·tokens): split K
//     into slices of at least kMinSplitK so that about two waves of blocks run, each slice's sums
//     to scratch, then gemm_split_sum adds the slices in order (deterministic) and runs the
//     epilogue.
//   - Otherwise small tiles (4x the blocks of large ones).
constexpr int kLargeTile = kernels::MmaConfig<GemmTiles::Large>::BM;
static_assert(kernels::MmaConfig<GemmTiles::Large>::BN == kLargeTile && kernels::SimtConfig<GemmTiles::Large>::BM == kLargeTile &&
                  kernels::SimtConfig<GemmTiles::Large>::BN == kLargeTile,
              "one large tile shape");
constexpr int64_t kLargeTileMinBlocks = 132;
constexpr int64_t kSplitTargetBlocks = 2 * kLargeTileMinBlocks;
constexpr int64_t kMinSplitK = 256;
constexpr int64_t kMaxSplits = 16;
constexpr int kSplitSumThreads = 256;
// Dimensions stay well inside int (the kernels index tiles with int; rows · ld is 64-bit).
constexpr int64_t kMaxDimension = int64_t{1} << 30;

struct GemmPlan {
  GemmTiles tiles;
  int64_t splits;
  int64_t k_split;  // K per slice: a multiple of every kernel's k-step
};

GemmPlan plan_gemm(int64_t M, int64_t N, int64_t K) {
  const int64_t large_blocks = ceil_div(M, kLargeTile) * ceil_div(N, kLargeTile);
  if (large_blocks >= kLargeTileMinBlocks) return {GemmTiles::Large, 1, K};
  if (K < 2 * kMinSplitK) return {GemmTiles::Small, 1, K};
  int64_t splits = ceil_div(kSplitTargetBlocks, large_blocks);
  if (splits > K / kMinSplitK) splits = K / kMinSplitK;
  if (splits > kMaxSplits) splits = kMaxSplits;
  const int64_t k_split = ceil_div(ceil_div(K, splits), kernels::kMmaBK) * kernels::kMmaBK;
  static_assert(kernels::kMmaBK % kernels::kSimtBK == 0, "slices of whole k-steps for every kernel");
  return {GemmTiles::Large, ceil_div(K, k_split), k_split};
}

GemmOperand operand(const float* data, int64_t ld, int64_t rows, int64_t cols) {
  return {data, ld, static_cast<int>(rows), static_cast<int>(cols), aligned16(data) && ld % 4 == 0};
}

// The epilogue of a Linear layer or sgemm (value = alpha·acc + beta·out + bias, then GELU terms);
// gemm() fills in the extent.
GemmEpilogue epilogue(float* out, int64_t ld, float alpha = 1.0f, float beta = 0.0f, const float* bias = nullptr,
                      const float* gelu_grad_of = nullptr, float* gelu_out = nullptr) {
  return GemmEpilogue{out, ld, alpha, beta, bias, gelu_grad_of, gelu_out, /*rows=*/0, /*cols=*/0, /*vec=*/false, /*slice_stride=*/0};
}

void set_extent(GemmEpilogue& e, int64_t M, int64_t N) {
  e.rows = static_cast<int>(M);
  e.cols = static_cast<int>(N);
  e.vec = e.ld % 4 == 0 && all_aligned16(e.out, e.bias, e.gelu_grad_of, e.gelu_out);
}

template <GemmTiles Tiles, bool TransA, bool TransB>
void launch_gemm(MatmulPrecision precision, GemmArgs args, int64_t splits, Stream stream) {
  constexpr int BM = kernels::SimtConfig<Tiles>::BM, BN = kernels::SimtConfig<Tiles>::BN;
  static_assert(BM == kernels::MmaConfig<Tiles>::BM && BN == kernels::MmaConfig<Tiles>::BN, "one tile shape per size");
  args.tiles_m = static_cast<int>(ceil_div(args.epilogue.rows, BM));
  args.tiles_n = static_cast<int>(ceil_div(args.epilogue.cols, BN));
  const int64_t blocks = int64_t{args.tiles_m} * args.tiles_n;
  CMAE_CHECK(blocks <= kMaxGridDimX, Value, "matrix product of ", args.epilogue.rows, " x ", args.epilogue.cols,
             " outputs needs more blocks than a grid holds");
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(splits));
  if (precision == MatmulPrecision::FP32) {
    using C = kernels::SimtConfig<Tiles>;
    CMAE_LAUNCH((kernels::gemm_simt<BM, BN, C::TM, C::TN, TransA, TransB>), grid, dim3((BM / C::TM) * (BN / C::TN)), 0, stream, args);
    return;
  }
  using C = kernels::MmaConfig<Tiles>;
  using Shape = kernels::MmaShape<BM, BN, C::WarpsM, C::WarpsN, TransA, TransB>;
  if (precision == MatmulPrecision::TF32) {
    CMAE_LAUNCH((kernels::gemm_tf32<BM, BN, C::WarpsM, C::WarpsN, C::Tf32Stages, TransA, TransB>), grid, dim3(Shape::kThreads),
                Shape::tf32_shared_bytes(C::Tf32Stages), stream, args);
  } else {
    CMAE_LAUNCH((kernels::gemm_bf16<BM, BN, C::WarpsM, C::WarpsN, TransA, TransB>), grid, dim3(Shape::kThreads),
                Shape::kBf16SharedBytes, stream, args);
  }
}

template <GemmTiles Tiles>
void launch_gemm(MatmulPrecision precision, bool trans_a, bool trans_b, const GemmArgs& args, int64_t splits, Stream stream) {
  if (trans_a)
    trans_b ? launch_gemm<Tiles, true, true>(precision, args, splits, stream) : launch_gemm<Tiles, true, false>(precision, args, splits, stream);
  else
    trans_b ? launch_gemm<Tiles, false, true>(precision, args, splits, stream) : launch_gemm<Tiles, false, false>(precision, args, splits, stream);
}

// out[M,N] = epilogue(op(A)[M,K]·op(B)[K,N]) on the backend's stream, at its matmul precision.
// K == 0 runs the epilogue on zeros (A and B are not read).
void gemm(CudaBackend& backend, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, GemmEpilogue epi) {
  CMAE_CHECK(M >= 0 && N >= 0 && K >= 0, Value, "matrix product of negative size (M = ", M, ", N = ", N, ", K = ", K, ")");
  CMAE_CHECK(M < kMaxDimension && N < kMaxDimension && K < kMaxDimension, Value, "matrix product of ", M, " x ", N, " x ", K,
             ": dimensions are limited to 2^30 on the CUDA backend");
  if (M == 0 || N == 0) return;
  const GemmPlan plan = plan_gemm(M, N, K);
  set_extent(epi, M, N);
  GemmArgs args{};
  args.a = trans_a ? operand(A, lda, K, M) : operand(A, lda, M, K);
  args.b = trans_b ? operand(B, ldb, N, K) : operand(B, ldb, K, N);
  args.K = static_cast<int>(K);
  args.k_split = static_cast<int>(plan.k_split);
  args.epilogue = epi;
  const int64_t partial_ld = ceil_div(N, 4) * 4;  // 16-byte rows for gemm_split_sum
  const int64_t slice_stride = M * partial_ld;
  if (plan.splits > 1) {
    args.epilogue = epilogue(static_cast<float*>(backend.scratch(sizeof(float) * plan.splits * slice_stride)),
                             partial_ld);
    set_extent(args.epilogue, M, N);
    args.epilogue.slice_stride = slice_stride;
  }
  if (plan.tiles == GemmTiles::Large)
    launch_gemm<GemmTiles::Large>(backend.matmul_precision(), trans_a, trans_b, args, plan.splits, backend.stream());
  else
    launch_gemm<GemmTiles::Small>(backend.matmul_precision(), trans_a, trans_b, args, plan.splits, backend.stream());
  if (plan.splits > 1) {
    const unsigned blocks = stream_blocks(M * partial_ld / 4, kSplitSumThreads, backend.properties().multiprocessors);
    CMAE_LAUNCH(kernels::gemm_split_sum<kSplitSumThreads>, dim3(blocks), dim3(kSplitSumThreads), 0, backend.stream(), args.epilogue.out,
                static_cast<int>(plan.splits), partial_ld, slice_stride, epi);
  }
}

}  // namespace

void CudaBackend::sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                        const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // alpha == 0: C = beta·C, as K == 0 gives it, without reading A or B.
  gemm(*this, trans_a, trans_b, M, N, alpha == 0.0f ? 0 : K, A, lda, B, ldb, epilogue(C, ldc, alpha, beta));
}

void CudaBackend::linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                                 int64_t OC) {
  // out = inp · weightᵀ + bias: NT, M = R, N = OC, K = C.
  gemm(*this, false, true, R, OC, C, inp, C, weight, C, epilogue(out, OC, 1.0f, 0.0f, bias));
}

void CudaBackend::linear_gelu_forward(float* pre, float* out, const float* inp, const float* weight, const float* bias, int64_t R,
                                      int64_t C, int64_t OC) {
  // linear_forward's product and bias (the same bits), GELU in the same epilogue.
  gemm(*this, false, true, R, OC, C, inp, C, weight, C, epilogue(pre, OC, 1.0f, 0.0f, bias, nullptr, out));
}

void CudaBackend::gelu_linear_backward(float* dpre, float* dweight, float* dbias, const float* dout, const float* act, const float* pre,
                                       const float* weight, int64_t R, int64_t C, int64_t OC) {
  // dpre = (dout · weight) ⊙ GELU'(pre): linear_backward's dinp product, GELU' in its epilogue.
  gemm(*this, false, false, R, C, OC, dout, OC, weight, C, epilogue(dpre, C, 1.0f, 0.0f, nullptr, pre));
  linear_backward(nullptr, dweight, dbias, dout, act, weight, R, C, OC);
}

void CudaBackend::linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
                                  int64_t R, int64_t C, int64_t OC) {
  // dinp[R,C] = dout[R,OC] · weight[OC,C]: NN, overwritten.
  if (dinp) gemm(*this, false, false, R, C, OC, dout, OC, weight, C, epilogue(dinp, C));
  if (R == 0) return;  // dweight and dbias gain nothing
  // dweight[OC,C] += doutᵀ · inp: TN with K = R, accumulated by the epilogue (beta = 1).
  gemm(*this, true, false, OC, C, R, dout, OC, inp, C, epilogue(dweight, C, 1.0f, 1.0f));
  if (dbias) column_sums_add(dbias, dout, R, OC, OC);
}

CMAE_CUDA_NAMESPACE_END
