// The SIMT emulator's scheduler (see emu.h for the model): fibres for the threads of one block,
// the block barrier, the rendezvous of warp collectives, the block's shared memory, cp.async
// queues, and the diagnosis of barriers and collectives that can never complete.
#include <algorithm>
#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/limits.h"
#include "core/errors.h"
#include "emu/emu.h"

namespace cmae::emu {
namespace {

namespace ctx = boost::context;

// 64 KiB is ample for kernel frames (collectives compute on the scheduler's stack); the guard
// page below each stack turns an overflow into a fault instead of silent corruption.
constexpr std::size_t kStackBytes = 64 * 1024;
constexpr std::uint32_t kSharedPoison = 0x7FC00000u;  // a quiet NaN as float
constexpr std::size_t kSharedAlignment = 16;          // what cp.async.16 and ldmatrix rows need

// ---- process-wide schedule ---------------------------------------------------------------------
struct ScheduleSetting {
  Schedule schedule = Schedule::Forward;
  std::uint64_t seed = 1;
};
std::mutex schedule_mutex;
ScheduleSetting schedule_setting;

ScheduleSetting current_schedule() {
  std::lock_guard<std::mutex> lock(schedule_mutex);
  return schedule_setting;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string hex_mask(unsigned mask) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", mask);
  return buf;
}

// "0-31, 40, 42-44" (at most a few runs: enough to see the pattern).
std::string format_ranges(const std::vector<unsigned>& sorted) {
  std::string out;
  int runs = 0;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (runs == 6) return out + ", ...";
    if (runs++ > 0) out += ", ";
    out += std::to_string(sorted[i]);
    if (j > i) out += "-" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return out;
}

std::string format_lanes(unsigned lanes) {
  std::vector<unsigned> list;
  for (unsigned l = 0; l < 32; ++l)
    if (lanes >> l & 1u) list.push_back(l);
  return (list.size() == 1 ? "lane " : "lanes ") + format_ranges(list);
}

// ---- stacks ------------------------------------------------------------------------------------
// Guarded stacks cost an mmap and an mprotect each, so they are kept for reuse by every later
// block and launch of this OS thread (at most one per thread of the largest block).
class StackPool {
 public:
  StackPool() { free_.reserve(cuda::kMaxThreadsPerBlock); }
  ~StackPool() {
    for (auto& stack : free_) allocator_.deallocate(stack);
  }
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  ctx::stack_context take() {
    if (free_.empty()) return allocator_.allocate();
    const ctx::stack_context stack = free_.back();
    free_.pop_back();
    return stack;
  }
  // Never reallocates: no more stacks exist than the capacity reserved above.
  void give_back(const ctx::stack_context& stack) noexcept { free_.push_back(stack); }

 private:
  ctx::protected_fixedsize_stack allocator_{kStackBytes};
  std::vector<ctx::stack_context> free_;
};

// The stack allocator boost.context's fiber takes: borrows from the pool.
struct PooledStack {
  StackPool* pool;
  ctx::stack_context allocate() { return pool->take(); }
  void deallocate(ctx::stack_context& stack) noexcept { pool->give_back(stack); }
};

// ---- shared memory -----------------------------------------------------------------------------
// One arena per OS thread, of the largest size a block may have. A block's dynamic shared memory
// comes first, then one slice per shared declaration in the order the block first executes them.
class SharedArena {
 public:
  SharedArena() : words_(new std::uint32_t[cuda::kMaxSharedBytesPerBlock / 4]) {
    std::fill_n(words_.get(), cuda::kMaxSharedBytesPerBlock / 4, kSharedPoison);
  }

  // Beyond dirty_bytes_ the arena still holds poison, so only what the last block was handed is
  // refilled (a grid of small blocks does not memset 227 KiB per block).
  void begin_block(std::size_t dynamic_bytes) {
    std::fill_n(words_.get(), (dirty_bytes_ + 3) / 4, kSharedPoison);
    sites_.clear();
    static_bytes_ = 0;
    end_ = round_up(dynamic_bytes, kSharedAlignment);
    dirty_bytes_ = end_;
  }

  void* dynamic() { return words_.get(); }

  void* slice(const SharedSite& site, std::size_t bytes, std::size_t alignment) {
    for (const auto& s : sites_)
      if (s.site == &site) return base() + s.offset;
    const std::size_t offset = round_up(end_, std::max(alignment, kSharedAlignment));
    static_bytes_ += bytes;
    if (static_bytes_ > cuda::kMaxStaticSharedBytes)
      throw std::runtime_error("shared array '" + std::string(site.name) + "' brings the static shared memory to " +
                               std::to_string(static_bytes_) + " bytes, over the limit of " +
                               std::to_string(cuda::kMaxStaticSharedBytes));
    if (offset + bytes > cuda::kMaxSharedBytesPerBlock)
      throw std::runtime_error("shared array '" + std::string(site.name) + "' brings the block's static + dynamic shared memory to " +
                               std::to_string(offset + bytes) + " bytes, over the limit of " +
                               std::to_string(cuda::kMaxSharedBytesPerBlock));
    sites_.push_back({&site, offset});
    end_ = offset + bytes;
    dirty_bytes_ = std::max(dirty_bytes_, end_);
    return base() + offset;
  }

  bool contains(const void* ptr, std::size_t bytes) const {
    const auto* p = static_cast<const unsigned char*>(ptr);
    return p >= base() && p + bytes <= base() + end_;
  }

 private:
  static std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
  unsigned char* base() const { return reinterpret_cast<unsigned char*>(words_.get()); }

  struct Placed {
    const SharedSite* site;
    std::size_t offset;
  };
  std::unique_ptr<std::uint32_t[]> words_;
  std::vector<Placed> sites_;
  std::size_t static_bytes_ = 0;
  std::size_t end_ = 0;
  std::size_t dirty_bytes_ = 0;
};

// ---- fibres ------------------------------------------------------------------------------------
enum class Wait : std::uint8_t { Running, Barrier, Collective, Exited };

struct AsyncCopy {
  void* dst;
  const void* src;
  std::size_t bytes;
};

struct Fibre : ThreadCoordinates {
  unsigned linear = 0;  // x + y * blockDim.x + z * blockDim.x * blockDim.y; lane = linear % 32
  Wait wait = Wait::Running;
  BarrierKind barrier_kind = BarrierKind::Plain;
  int predicate = 0;
  const CollectiveOp* op = nullptr;
  unsigned mask = 0;
  LaneInput input;
  std::uint32_t result = 0;
  ctx::fiber scheduler;  // where suspend() returns to
  std::exception_ptr error;
  std::vector<AsyncCopy> async_copies;      // issued, not yet performed
  std::vector<std::size_t> async_group_ends;  // async_copies.size() at each commit

  // Performs the copies of every committed group but the newest `keep`.
  void complete_async_copies(std::size_t keep) {
    if (async_group_ends.size() <= keep) return;
    const std::size_t done = async_group_ends[async_group_ends.size() - keep - 1];
    for (std::size_t i = 0; i < done; ++i) std::memcpy(async_copies[i].dst, async_copies[i].src, async_copies[i].bytes);
    async_copies.erase(async_copies.begin(), async_copies.begin() + static_cast<std::ptrdiff_t>(done));
    async_group_ends.erase(async_group_ends.begin(), async_group_ends.end() - static_cast<std::ptrdiff_t>(keep));
    for (auto& end : async_group_ends) end -= done;
  }
  // At exit the hardware still completes what the thread issued.
  void complete_all_async_copies() {
    for (const auto& c : async_copies) std::memcpy(c.dst, c.src, c.bytes);
    async_copies.clear();
    async_group_ends.clear();
  }
};

Fibre& calling_fibre(const char* what) {
  if (active_thread == nullptr) used_outside_kernel(what);
  return *static_cast<Fibre*>(active_thread);
}

void suspend(Fibre& self) { self.scheduler = std::move(self.scheduler).resume(); }

const char* barrier_name(BarrierKind kind) {
  switch (kind) {
    case BarrierKind::Plain: return "__syncthreads";
    case BarrierKind::Count: return "__syncthreads_count";
    case BarrierKind::And: return "__syncthreads_and";
    case BarrierKind::Or: return "__syncthreads_or";
  }
  return "?";
}

// ---- the scheduler of one OS thread --------------------------------------------------------------
class BlockScheduler {
 public:
  BlockScheduler() : threads_(cuda::kMaxThreadsPerBlock), fibres_(cuda::kMaxThreadsPerBlock) {
    runnable_.reserve(cuda::kMaxThreadsPerBlock);
  }

  void run_grid(const LaunchConfig& config, ThreadBody body, const void* context) {
    config_ = config;
    body_ = body;
    context_ = context;
    setting_ = current_schedule();
    block_.block_dim = config.block;
    block_.grid_dim = config.grid;
    threads_per_block_ = config.block.x * config.block.y * config.block.z;
    const std::uint64_t blocks = std::uint64_t{config.grid.x} * config.grid.y * config.grid.z;
    // Blocks run in schedule order too (Shuffle: a stride coprime to the block count), since a
    // kernel must not depend on the order blocks run in.
    std::uint64_t start = 0, stride = 1;
    if (setting_.schedule == Schedule::Reverse) {
      start = blocks - 1;
      stride = blocks - 1;  // -1 modulo blocks
    } else if (setting_.schedule == Schedule::Shuffle && blocks > 1) {
      std::mt19937_64 rng(splitmix64(setting_.seed));
      start = rng() % blocks;
      do stride = 1 + rng() % (blocks - 1);
      while (std::gcd(stride, blocks) != 1);
    }
    for (std::uint64_t i = 0; i < blocks; ++i) {
      const auto linear = static_cast<std::uint64_t>((start + static_cast<unsigned __int128>(i) * stride) % blocks);
      block_.block_idx = {static_cast<unsigned>(linear % config.grid.x), static_cast<unsigned>(linear / config.grid.x % config.grid.y),
                          static_cast<unsigned>(linear / (std::uint64_t{config.grid.x} * config.grid.y))};
      run_block(linear);
    }
  }

  std::uint64_t switches() const { return switches_; }
  SharedArena& arena() { return arena_; }

 private:
  void run_block(std::uint64_t linear_block) {
    rng_.seed(splitmix64(setting_.seed ^ splitmix64(linear_block)));
    arena_.begin_block(config_.dynamic_shared_bytes);
    const unsigned n = threads_per_block_;
    const dim3 dim = config_.block;
    std::exception_ptr failure;
    try {
      for (unsigned t = 0; t < n; ++t) {
        Fibre& f = threads_[t];
        f.thread_idx = {t % dim.x, t / dim.x % dim.y, t / (dim.x * dim.y)};
        f.block = &block_;
        f.linear = t;
        f.wait = Wait::Running;
        f.error = nullptr;
        f.async_copies.clear();
        f.async_group_ends.clear();
        fibres_[t] = ctx::fiber(std::allocator_arg, PooledStack{&stacks_},
                                [this, t](ctx::fiber&& back) { return thread_main(t, std::move(back)); });
      }
      live_ = n;
      runnable_.resize(n);
      std::iota(runnable_.begin(), runnable_.end(), 0u);
      order_runnable();
      for (;;) {
        for (const unsigned t : runnable_) resume(t);
        if (live_ == 0) break;
        release();
      }
    } catch (...) {
      failure = std::current_exception();
    }
    // Unwinding outside the catch block keeps the fibres' exception handling apart from ours.
    if (failure) {
      unwind_fibres();
      std::rethrow_exception(failure);
    }
  }

  ctx::fiber thread_main(unsigned t, ctx::fiber&& back) {
    Fibre& self = threads_[t];
    self.scheduler = std::move(back);
    try {
      body_(context_);
      self.complete_all_async_copies();
    } catch (const ctx::detail::forced_unwind&) {
      throw;  // an aborted launch unwinding this fibre: boost.context finishes it
    } catch (...) {
      self.error = std::current_exception();
    }
    self.wait = Wait::Exited;
    return std::move(self.scheduler);
  }

  void resume(unsigned t) {
    Fibre& f = threads_[t];
    active_thread = &f;
    fibres_[t] = std::move(fibres_[t]).resume();
    active_thread = nullptr;
    switches_ += 2;
    if (f.wait != Wait::Exited) return;
    --live_;
    if (f.error) {
      std::string what;
      try {
        std::rethrow_exception(f.error);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "an exception that is not a std::exception";
      }
      fail(thread_label(t) + ": " + what);
    }
  }

  // Destroying a suspended fibre unwinds its stack (boost.context's forced unwind), running the
  // kernel's destructors; threadIdx stays valid for them.
  void unwind_fibres() {
    for (unsigned t = 0; t < threads_per_block_; ++t) {
      if (!fibres_[t]) continue;
      active_thread = &threads_[t];
      fibres_[t] = ctx::fiber();
    }
    active_thread = nullptr;
  }

  // After a round every live fibre is blocked: release what can go on, or diagnose why nothing can.
  // The released fibres are exactly those back in Running; collected in thread order, then ordered.
  void release() {
    unsigned at_barrier = 0, exited = 0;
    for (unsigned t = 0; t < threads_per_block_; ++t) {
      at_barrier += threads_[t].wait == Wait::Barrier;
      exited += threads_[t].wait == Wait::Exited;
    }
    if (at_barrier > 0 && exited > 0) {
      const std::vector<unsigned> waiting = threads_in(Wait::Barrier);
      fail("divergent " + std::string(barrier_name(threads_[waiting[0]].barrier_kind)) + ": threads " + format_ranges(waiting) +
           " wait at it, but threads " + format_ranges(threads_in(Wait::Exited)) + " exited without reaching it");
    }
    if (at_barrier == live_) release_barrier();
    else if (!release_warp_collectives()) fail(describe_stuck(threads_in(Wait::Barrier)));
    runnable_.clear();
    for (unsigned t = 0; t < threads_per_block_; ++t)
      if (threads_[t].wait == Wait::Running) runnable_.push_back(t);
    order_runnable();
  }

  std::vector<unsigned> threads_in(Wait state) const {
    std::vector<unsigned> list;
    for (unsigned t = 0; t < threads_per_block_; ++t)
      if (threads_[t].wait == state) list.push_back(t);
    return list;
  }

  // Every thread waits at the barrier (none has exited).
  void release_barrier() {
    const BarrierKind kind = threads_[0].barrier_kind;
    int count = 0;
    for (unsigned t = 0; t < threads_per_block_; ++t) {
      if (threads_[t].barrier_kind != kind)
        fail("mismatched block barriers: " + thread_label(0) + " waits at " + barrier_name(kind) + " but " + thread_label(t) + " at " +
             barrier_name(threads_[t].barrier_kind));
      count += threads_[t].predicate != 0;
    }
    const int result = kind == BarrierKind::Count ? count
                       : kind == BarrierKind::And ? (count == static_cast<int>(threads_per_block_))
                       : kind == BarrierKind::Or  ? (count > 0)
                                                  : 0;
    for (unsigned t = 0; t < threads_per_block_; ++t) {
      threads_[t].result = static_cast<std::uint32_t>(result);
      threads_[t].wait = Wait::Running;
    }
  }

  // Lanes of `warp` in each state, as bit masks.
  struct WarpState {
    unsigned absent = 0, exited = 0, at_barrier = 0, at_collective = 0;
  };
  WarpState warp_state(unsigned warp) const {
    WarpState s;
    for (unsigned lane = 0; lane < 32; ++lane) {
      const unsigned t = warp * 32 + lane;
      if (t >= threads_per_block_) s.absent |= 1u << lane;
      else if (threads_[t].wait == Wait::Exited) s.exited |= 1u << lane;
      else if (threads_[t].wait == Wait::Barrier) s.at_barrier |= 1u << lane;
      else if (threads_[t].wait == Wait::Collective) s.at_collective |= 1u << lane;
    }
    return s;
  }

  // A collective completes once every participant waits at it with the same mask. A participant
  // at another collective may still come (its own collective may complete first), so a mismatch
  // is only an error once nothing can move (describe_stuck).
  bool release_warp_collectives() {
    bool released = false;
    const unsigned warps = (threads_per_block_ + 31) / 32;
    for (unsigned warp = 0; warp < warps; ++warp) {
      const WarpState state = warp_state(warp);
      unsigned handled = 0;
      for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(state.at_collective >> lane & 1u) || (handled >> lane & 1u)) continue;
        const Fibre& lead = threads_[warp * 32 + lane];
        const unsigned participants = lead.mask & ~state.exited & ~state.absent;
        // A blocked group settles only its lead: a lane it waits for may complete with another.
        if ((participants & state.at_barrier) != 0 || !all_wait_at(warp, participants, lead)) {
          handled |= 1u << lane;
          continue;
        }
        complete_collective(warp, lead, participants, state);
        handled |= participants;
        released = true;
      }
    }
    return released;
  }

  bool all_wait_at(unsigned warp, unsigned lanes, const Fibre& lead) const {
    for (unsigned lane = 0; lane < 32; ++lane) {
      if (!(lanes >> lane & 1u)) continue;
      const Fibre& f = threads_[warp * 32 + lane];
      if (f.wait != Wait::Collective || f.op != lead.op || f.mask != lead.mask) return false;
    }
    return true;
  }

  // Every participant's result is computed here, from inputs that none of them can change while it
  // waits, and handed over before any of them resumes: no lane can meet a value left over from an
  // earlier collective, so no generation counters are needed.
  void complete_collective(unsigned warp, const Fibre& lead, unsigned participants, const WarpState& state) {
    WarpCall call{};
    call.mask = lead.mask;
    call.participants = participants;
    call.exited = state.exited;
    call.absent = state.absent;
    for (unsigned lane = 0; lane < 32; ++lane)
      if (participants >> lane & 1u) call.lane[lane] = &threads_[warp * 32 + lane].input;
    const CollectiveOp& op = *lead.op;
    try {
      op.complete(call);
    } catch (const std::exception& e) {
      fail(std::string(op.name) + " (mask " + hex_mask(lead.mask) + ") in warp " + std::to_string(warp) + ": " + e.what());
    }
    for (unsigned lane = 0; lane < 32; ++lane) {
      if (!(participants >> lane & 1u)) continue;
      Fibre& f = threads_[warp * 32 + lane];
      f.result = call.result[lane];
      f.wait = Wait::Running;
    }
  }

  // Nothing can be released: name a pair of lanes whose collectives do not match, or else say who
  // waits for whom.
  std::string describe_stuck(const std::vector<unsigned>& at_barrier) const {
    const unsigned warps = (threads_per_block_ + 31) / 32;
    for (unsigned warp = 0; warp < warps; ++warp) {
      const WarpState state = warp_state(warp);
      for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(state.at_collective >> lane & 1u)) continue;
        const Fibre& lead = threads_[warp * 32 + lane];
        for (unsigned other = 0; other < 32; ++other) {
          const Fibre& f = threads_[warp * 32 + other];
          if ((lead.mask >> other & 1u) && (state.at_collective >> other & 1u) && (f.op != lead.op || f.mask != lead.mask))
            return "mismatched warp collectives in warp " + std::to_string(warp) + ": lane " + std::to_string(lane) + " waits at " +
                   lead.op->name + " (mask " + hex_mask(lead.mask) + "), but lane " + std::to_string(other) + ", which that mask names, at " +
                   f.op->name + " (mask " + hex_mask(f.mask) + ")";
        }
      }
    }
    std::string what = "deadlock: every live thread is blocked and none can be released";
    if (!at_barrier.empty())
      what += " (a divergent " + std::string(barrier_name(threads_[at_barrier[0]].barrier_kind)) + "): threads " + format_ranges(at_barrier) +
              " wait at " + barrier_name(threads_[at_barrier[0]].barrier_kind);
    for (unsigned warp = 0; warp < warps; ++warp) {
      const WarpState state = warp_state(warp);
      unsigned described = 0;
      for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(state.at_collective >> lane & 1u) || (described >> lane & 1u)) continue;
        const Fibre& lead = threads_[warp * 32 + lane];
        const unsigned group = lead.mask & state.at_collective;
        described |= group;
        what += "; " + format_lanes(group) + " of warp " + std::to_string(warp) + " wait at " + lead.op->name + " (mask " +
                hex_mask(lead.mask) + ")";
        if (lead.mask & state.at_barrier) what += " for " + format_lanes(lead.mask & state.at_barrier) + ", at the block barrier";
      }
    }
    return what;
  }

  [[noreturn]] void fail(const std::string& what) const {
    const uint3 b = block_.block_idx;
    std::string where = "kernel '" + std::string(config_.kernel_name) + "' block (" + std::to_string(b.x) + "," + std::to_string(b.y) +
                        "," + std::to_string(b.z) + ") [schedule " + schedule_name(setting_.schedule);
    if (setting_.schedule == Schedule::Shuffle) where += ", seed " + std::to_string(setting_.seed);
    throw Error(ErrorKind::Internal, where + "]: " + what);
  }

  std::string thread_label(unsigned t) const {
    std::string label = "thread " + std::to_string(t);
    if (config_.block.y > 1 || config_.block.z > 1) {
      const uint3 i = threads_[t].thread_idx;
      label += " (" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ")";
    }
    return label + " (lane " + std::to_string(t % 32) + " of warp " + std::to_string(t / 32) + ")";
  }

  void order_runnable() {
    if (setting_.schedule == Schedule::Reverse) std::reverse(runnable_.begin(), runnable_.end());
    else if (setting_.schedule == Schedule::Shuffle) std::shuffle(runnable_.begin(), runnable_.end(), rng_);
  }

  LaunchConfig config_{};
  ThreadBody body_ = nullptr;
  const void* context_ = nullptr;
  ScheduleSetting setting_;
  BlockCoordinates block_{};
  unsigned threads_per_block_ = 0;
  unsigned live_ = 0;
  // Declared before fibres_ so that it is destroyed after them: a fibre gives its stack back.
  StackPool stacks_;
  std::vector<Fibre> threads_;
  std::vector<ctx::fiber> fibres_;
  std::vector<unsigned> runnable_;
  std::mt19937_64 rng_;
  SharedArena arena_;
  std::uint64_t switches_ = 0;
};

BlockScheduler& this_thread_scheduler() {
  thread_local BlockScheduler scheduler;
  return scheduler;
}

}  // namespace

// ---- the API of emu.h ------------------------------------------------------------------------------
void used_outside_kernel(const char* what) {
  throw Error(ErrorKind::Internal, std::string(what) + " used outside an emulated kernel (only code launched through cmae::cuda::launch may)");
}

void run_grid(const LaunchConfig& config, ThreadBody body, const void* context) {
  if (active_thread != nullptr)
    throw Error(ErrorKind::Internal, "kernel '" + std::string(config.kernel_name) +
                                         "' launched from inside an emulated kernel (dynamic parallelism is not emulated)");
  this_thread_scheduler().run_grid(config, body, context);
}

const char* schedule_name(Schedule schedule) {
  switch (schedule) {
    case Schedule::Forward: return "forward";
    case Schedule::Reverse: return "reverse";
    case Schedule::Shuffle: return "shuffle";
  }
  return "?";
}

ScheduleScope::ScheduleScope(Schedule schedule, std::uint64_t seed) {
  std::lock_guard<std::mutex> lock(schedule_mutex);
  previous_schedule_ = schedule_setting.schedule;
  previous_seed_ = schedule_setting.seed;
  schedule_setting = {schedule, seed};
}

ScheduleScope::~ScheduleScope() {
  std::lock_guard<std::mutex> lock(schedule_mutex);
  schedule_setting = {previous_schedule_, previous_seed_};
}

std::uint64_t fibre_switches() { return this_thread_scheduler().switches(); }

int sync_threads(BarrierKind kind, int predicate) {
  Fibre& self = calling_fibre(barrier_name(kind));
  self.wait = Wait::Barrier;
  self.barrier_kind = kind;
  self.predicate = predicate;
  suspend(self);
  return static_cast<int>(self.result);
}

std::uint32_t warp_collective(const CollectiveOp& op, unsigned mask, const LaneInput& input) {
  Fibre& self = calling_fibre(op.name);
  const unsigned lane = self.linear % 32;
  if (!(mask >> lane & 1u))
    throw std::runtime_error(std::string(op.name) + " called with mask " + hex_mask(mask) + ", which does not contain the calling lane " +
                             std::to_string(lane));
  self.wait = Wait::Collective;
  self.op = &op;
  self.mask = mask;
  self.input = input;
  suspend(self);
  return self.result;
}

void* static_shared(const SharedSite& site, std::size_t bytes, std::size_t alignment) {
  calling_fibre("a shared array");
  return this_thread_scheduler().arena().slice(site, bytes, alignment);
}

void* dynamic_shared() {
  calling_fibre("dynamic shared memory");
  return this_thread_scheduler().arena().dynamic();
}

bool is_shared(const void* ptr, std::size_t bytes) { return this_thread_scheduler().arena().contains(ptr, bytes); }

void cp_async(void* shared_dst, const void* global_src, std::size_t bytes) {
  Fibre& self = calling_fibre("cp.async");
  const auto misaligned = [bytes](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % bytes != 0; };
  if (!is_shared(shared_dst, bytes))
    throw std::runtime_error("cp.async destination is not in the shared memory of the block");
  if (is_shared(global_src, 1)) throw std::runtime_error("cp.async source is in shared memory (it must be global)");
  if (misaligned(shared_dst) || misaligned(global_src))
    throw std::runtime_error("cp.async of " + std::to_string(bytes) + " bytes with an address not aligned to " + std::to_string(bytes));
  self.async_copies.push_back({shared_dst, global_src, bytes});
}

void cp_async_commit() {
  Fibre& self = calling_fibre("cp.async.commit_group");
  self.async_group_ends.push_back(self.async_copies.size());
}

void cp_async_wait(int pending_groups) {
  Fibre& self = calling_fibre("cp.async.wait_group");
  self.complete_async_copies(static_cast<std::size_t>(std::max(pending_groups, 0)));
}

}  // namespace cmae::emu
