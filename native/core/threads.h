// One compute thread pool for the CPU backend: OpenMP, sized by set_num_threads().
// Why a global count instead of omp_set_num_threads(): that ICV is per calling thread, and our
// kernels run on libuv worker threads, so every parallel region passes its thread count explicitly.
// Work is split statically (contiguous chunks by thread index), so results do not depend on
// timing; kernels that reduce keep their summation order independent of the thread count unless
// their header says otherwise.
#pragma once
#include <cstdint>
#include <exception>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cmae {

int num_threads();            // configured compute thread count (>= 1)
void set_num_threads(int n);  // n <= 0 restores the default
int default_num_threads();    // OMP_NUM_THREADS if set, else the hardware concurrency
bool openmp_enabled();

// Threads a parallel region started here would get: num_threads(), or 1 inside an enclosing
// parallel region (cmae never nests teams: the CPU backend's run_parts already uses both cores).
// The one place that decides it; parallel_for and the GEMM driver both ask.
inline int available_threads() {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;
#endif
  return num_threads();
}

inline int thread_index_in_region() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Nesting depth of parallel regions around the caller (0 outside any).
inline int parallel_level() {
#ifdef _OPENMP
  return omp_get_level();
#else
  return 0;
#endif
}

inline int team_size_in_region() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Elements of work below which a chunk is not worth a thread (the fork/join costs more).
constexpr int64_t kMinElementsPerThread = int64_t{1} << 14;

// The smallest number of items worth a thread, for items of `item_elements` elements each: the
// min_chunk of parallel_for for row-wise kernels.
inline int64_t min_items(int64_t item_elements) {
  return item_elements >= kMinElementsPerThread ? 1 : kMinElementsPerThread / (item_elements > 1 ? item_elements : 1);
}

// Runs fn(begin, end) over [0, n) split into contiguous chunks, one per thread. Runs inline on
// the calling thread when the work is too small to split (min_chunk = smallest chunk worth a
// thread) or only one thread is available. An exception thrown by fn is carried out of the
// parallel region and rethrown here (one escaping an OpenMP region would terminate the process);
// kernels still take their scratch before the region (cpu/scratch.h), so that in practice nothing
// inside throws.
template <typename Fn>
void parallel_for(int64_t n, int64_t min_chunk, Fn&& fn) {
  if (n <= 0) return;
  int threads = available_threads();
  if (min_chunk < 1) min_chunk = 1;
  const int64_t max_useful = (n + min_chunk - 1) / min_chunk;
  if (max_useful < threads) threads = static_cast<int>(max_useful);
  if (threads <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    // Chunks by the team actually running (OpenMP may give fewer threads than asked).
    const int64_t team = team_size_in_region();
    const int64_t t = thread_index_in_region();
    const int64_t chunk = (n + team - 1) / team;
    const int64_t begin = t * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    if (begin < end) {
      try {
        fn(begin, end);
      } catch (...) {
#pragma omp critical(cmae_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace cmae
