#include "threads.h"

#include <atomic>
#include <cstdlib>
#include <thread>

namespace cmae {

namespace {
std::atomic<int> g_num_threads{0};  // 0 = not yet chosen
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

int default_num_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

int num_threads() {
  if (!openmp_enabled()) return 1;
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = default_num_threads();
    g_num_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : default_num_threads(), std::memory_order_relaxed); }

}  // namespace cmae
