// The CPU backend's memory primitives, execution policy and matmul precision, the forwarding of
// every kernel op to the compile target of the path in use, and the backend registry's CPU entry.
#include "cpu/cpu_backend.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>

#include "core/cpu_features.h"
#include "core/threads.h"
#include "cpu/scratch.h"

// Large blocks are mapped from the OS where the platform has anonymous mappings (POSIX); anywhere
// else every block comes from the heap (the small-block path of host_allocate) and the build still
// compiles. CMAE_NO_MMAP forces that fallback (to compile and try it on Linux).
#if !defined(CMAE_NO_MMAP) && defined(__has_include)
#if __has_include(<sys/mman.h>)
#include <sys/mman.h>
#if defined(MAP_ANONYMOUS)
#define CMAE_CPU_MMAP 1
#endif
#endif
#endif

namespace cmae::cpu {

namespace {

std::atomic<size_t> g_allocated{0};  // bytes held through CpuBackend::allocate
std::atomic<size_t> g_scratch{0};    // bytes held by the scratch buffers of every thread
std::atomic<int> g_matmul_precision{static_cast<int>(MatmulPrecision::FP32)};

// Whether a block of `bytes` is (or was) mapped: allocation and release must agree, and both are
// given the size asked for (Storage keeps it).
bool mapped(size_t bytes) {
#if defined(CMAE_CPU_MMAP)
  return bytes >= CpuBackend::kMapThreshold;
#else
  (void)bytes;
  return false;
#endif
}

// `bytes` bytes, 64-byte aligned (page aligned when mapped). Never null: a failure is the typed
// out-of-memory error, naming the bytes asked for (a DeviceError in JS).
void* host_allocate(size_t bytes) {
#if defined(CMAE_CPU_MMAP)
  if (mapped(bytes)) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail(ErrorKind::Device, "out of memory: cannot allocate ", bytes, " bytes on the cpu");
    return p;
  }
#endif
  // Small blocks: plain malloc of a little more, aligned by hand, the block's start kept in the
  // word before the aligned pointer. Not aligned_alloc: glibc's memalign carves the aligned block
  // out of a larger chunk and keeps the cut-off ends apart, so the freed chunk is smaller than
  // what the next memalign of the same size asks for and is never reused. A loader handing out
  // 49 KB batches grew by ~100 KB per batch that way (until exit). A malloc of one size is
  // reused by the next of that size.
  constexpr size_t kExtra = kTensorAlignment + sizeof(void*);
  if (bytes > SIZE_MAX - kExtra) fail(ErrorKind::Device, "out of memory: cannot allocate ", bytes, " bytes on the cpu");
  void* raw = std::malloc(bytes + kExtra);
  if (!raw) fail(ErrorKind::Device, "out of memory: cannot allocate ", bytes, " bytes on the cpu");
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw) + sizeof(void*);
  void** aligned = reinterpret_cast<void**>((start + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment);
  aligned[-1] = raw;
  return aligned;
}

void host_release(void* ptr, [[maybe_unused]] size_t bytes) noexcept {
  if (!ptr) return;
#if defined(CMAE_CPU_MMAP)
  if (mapped(bytes)) {
    munmap(ptr, bytes);  // cannot fail for a whole mapping made by host_allocate
    return;
  }
#endif
  std::free(static_cast<void**>(ptr)[-1]);
}

}  // namespace

void* CpuBackend::allocate(size_t bytes) {
  void* p = host_allocate(bytes);
  g_allocated.fetch_add(bytes, std::memory_order_relaxed);
  return p;
}

void CpuBackend::deallocate(void* ptr, size_t bytes) noexcept {
  if (!ptr) return;
  host_release(ptr, bytes);
  g_allocated.fetch_sub(bytes, std::memory_order_relaxed);
}

Backend::MemoryUse CpuBackend::memory_use() const {
  return {g_allocated.load(std::memory_order_relaxed), g_scratch.load(std::memory_order_relaxed)};
}

void CpuBackend::fill_zero(void* dst, size_t bytes) {
  if (bytes > 0) std::memset(dst, 0, bytes);
}

void CpuBackend::copy_from_host(void* dst, const void* host_src, size_t bytes) { copy(dst, host_src, bytes); }

void CpuBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) { copy(host_dst, src, bytes); }

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
}

void CpuBackend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows) {
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  // Rows are independent: split them over the pool when there is enough to copy.
  const int64_t min_rows = width >= (size_t{1} << 16) ? 1 : static_cast<int64_t>((size_t{1} << 16) / (width + 1));
  parallel_for(static_cast<int64_t>(rows), min_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(d + r * dst_pitch, s + r * src_pitch, width);
  });
}

void CpuBackend::zero_2d(void* dst, size_t pitch, size_t width, size_t rows) {
  auto* d = static_cast<char*>(dst);
  for (size_t r = 0; r < rows; ++r) std::memset(d + r * pitch, 0, width);
}

int64_t CpuBackend::chunk_rows() const {
  static const int64_t rows = [] {
    const char* env = std::getenv("CMAE_CHUNK_ROWS");
    const long long given = env != nullptr ? std::atoll(env) : 0;
    return given > 0 ? static_cast<int64_t>(given) : int64_t{512};
  }();
  return rows;
}

void CpuBackend::run_parts(int parts, const std::function<void(int)>& fn) {
  static const bool serial = [] {
    const char* env = std::getenv("CMAE_SERIAL_BRANCHES");
    return env != nullptr && env[0] != '\0' && env[0] != '0';
  }();
  const bool side_by_side = parts == 2 && !serial && available_threads() == 2;
  if (!side_by_side) {
    for (int part = 0; part < parts; ++part) fn(part);
    return;
  }
  std::array<std::exception_ptr, 2> errors;
#pragma omp parallel num_threads(2)
  {
    // A team of one (OpenMP refused the second thread) runs both parts in turn.
    for (int part = thread_index_in_region(); part < 2; part += team_size_in_region()) {
      try {
        fn(part);
      } catch (...) {
        errors[part] = std::current_exception();
      }
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

void CpuBackend::set_matmul_precision(MatmulPrecision precision) {
  CMAE_CHECK(precision != MatmulPrecision::TF32, Value, "the cpu backend has no tf32 matmuls (expected 'fp32' or 'bf16')");
  CMAE_CHECK(precision != MatmulPrecision::BF16 || cpu_supports_avx512_bf16(), Value,
             "bf16 matmuls need a CPU with AVX512_BF16 (vdpbf16ps); this one has not");
  g_matmul_precision.store(static_cast<int>(precision), std::memory_order_relaxed);
}

MatmulPrecision CpuBackend::matmul_precision() const {
  return static_cast<MatmulPrecision>(g_matmul_precision.load(std::memory_order_relaxed));
}

// Each op runs the kernels of the target that serves current_isa(): the avx2 build for the avx2
// and avx512 paths (its kernels call their AVX-512 variants themselves), the portable build for
// the portable path. Read at every call, so set_isa() applies to the next op.
#if defined(CMAE_CPU_HAS_AVX2_TARGET)
#define CMAE_CPU_FORWARD_OP(name, params, args) \
  void CpuBackend::name params {                \
    if (current_isa() == Isa::Portable) {       \
      portable::name args;                      \
    } else {                                    \
      avx2::name args;                          \
    }                                           \
  }
#else
#define CMAE_CPU_FORWARD_OP(name, params, args) \
  void CpuBackend::name params { portable::name args; }
#endif
CMAE_CPU_OPS(CMAE_CPU_FORWARD_OP)
#undef CMAE_CPU_FORWARD_OP

void* scratch_bytes(ScratchSlot slot, size_t bytes) {
  // Through the same allocator as tensors: a GEMM packing buffer or an attention block of a large
  // model is megabytes, and a thread's buffers are given back when the thread ends (libuv and
  // OpenMP threads live as long as the process, so in practice at exit).
  struct Buffer {
    void* data = nullptr;
    size_t capacity = 0;
    void release() noexcept {
      host_release(data, capacity);
      g_scratch.fetch_sub(capacity, std::memory_order_relaxed);
      data = nullptr;
      capacity = 0;
    }
    ~Buffer() { release(); }
  };
  thread_local std::array<Buffer, static_cast<size_t>(ScratchSlot::kCount)> buffers;
  Buffer& b = buffers[static_cast<size_t>(slot)];
  if (bytes > b.capacity) {
    b.release();
    const size_t rounded = (bytes + 63) / 64 * 64;
    b.data = host_allocate(rounded);
    b.capacity = rounded;
    g_scratch.fetch_add(rounded, std::memory_order_relaxed);
  }
  return b.data;
}

}  // namespace cmae::cpu

namespace cmae {

Backend& cpu_backend() {
  // Never destroyed: tensors may be released by finalizers during process exit.
  static cpu::CpuBackend* backend = new cpu::CpuBackend();
  return *backend;
}

}  // namespace cmae
