// The CPU backend: SIMD kernels on cmae's OpenMP pool (core/threads.h), on the path current_isa()
// names (core/cpu_features.h): each op family's kernels are in the cpu/ file of that family
// (activation.cc, attention.cc, data.cc, gemm.cc + linear.cc, loss.cc, norm.cc, optim.cc, patch.cc,
// pool.cc, rows.cc), compiled once per target (cpu/kernels.h, cpu/target.h); memory, policy and
// the forwarding of each op to its target in cpu_backend.cc.
//
// Ops run synchronously on the calling thread (and the pool). Results do not depend on the thread
// count: every output element is produced by one thread with a fixed summation order.
#pragma once
#include "backend/backend.h"
#include "cpu/kernels.h"

namespace cmae::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }

  // Memory: small blocks from the heap (malloc, aligned by hand: host_allocate says why not
  // aligned_alloc), large ones (>= kMapThreshold) mapped from and returned to the OS with
  // mmap/munmap where the platform has them (native/README.md, principle 6). glibc keeps a freed
  // large block's size on the heap from then on (its mmap threshold rises to the largest block
  // freed, up to 32 MiB), and freed heap memory below the top stays in the process: create/dispose
  // cycles of a nano model grew by its 11 MB arena per cycle (50 MB -> 2.3 GB in 200 cycles).
  // Mapped blocks leave on munmap, whatever glibc's state.
  // Why 256 KiB: every arena, workspace and batch-sized tensor is above it (a nano model's
  // smallest arena is 6.6 MB; a batch of 64 32x32 views is 0.25 MB per channel), so those all
  // return to the OS, while the many small tensors of kernels and tests stay on the heap, where a
  // mapping (two syscalls, fresh zeroed pages every time) would cost more than the block. Above it
  // the page rounding wastes under 1.6 %, and the mmap/munmap pair (microseconds) is small next
  // to writing the block once. Allocations happen per model, per workspace plan and per batch,
  // never inside a training step (principle 2).
  static constexpr size_t kMapThreshold = size_t{1} << 18;
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) noexcept override;
  MemoryUse memory_use() const override;
  void fill_zero(void* dst, size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) override;
  void zero_2d(void* dst, size_t pitch, size_t width, size_t rows) override;
  void synchronize() override {}

  int batch_parts() const override { return 2; }
  // 512: ~8 samples of a 65-token sequence; GEMMs of ~500 rows still run at full speed here.
  // CMAE_CHUNK_ROWS overrides it (tests run the golden models in several chunks per part).
  int64_t chunk_rows() const override;
  // With exactly 2 compute threads (and not already inside a parallel region) the two parts run
  // side by side, one OpenMP thread each: every kernel inside then runs single-threaded
  // (parallel_for sees the enclosing region). Otherwise one after the other on the full pool.
  // CMAE_SERIAL_BRANCHES=1 forces the sequential order (for measuring).
  void run_parts(int parts, const std::function<void(int part)>& fn) override;

  // Every kernel op (cpu/kernels.h), forwarded to the compile target of current_isa().
#define CMAE_CPU_DECLARE_OP(name, params, args) void name params override;
  CMAE_CPU_OPS(CMAE_CPU_DECLARE_OP)
#undef CMAE_CPU_DECLARE_OP

  AttentionSaved attention_saved_kind() const override { return AttentionSaved::Probabilities; }
  // Process-wide, like PyTorch's set_float32_matmul_precision; BF16 runs on the avx512 path only.
  void set_matmul_precision(MatmulPrecision precision) override;
  MatmulPrecision matmul_precision() const override;
};

}  // namespace cmae::cpu
