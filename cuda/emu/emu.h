// The SIMT emulator: runs CUDA kernel source, compiled by g++, on the CPU, so that every kernel of
// cmae is tested in CI on machines without a GPU. Kernel code never includes this header itself:
// it includes cuda/common/compat.cuh, which under nvcc is CUDA and under g++ maps CUDA's keywords,
// built-in variables and intrinsics onto the functions below.
//
// Model. A launch runs its grid one block at a time on the calling OS thread. Each CUDA thread of
// the block is a fibre (boost.context) on its own guarded 64 KiB stack, and fibres switch only
// cooperatively: a fibre runs until it reaches __syncthreads, a warp collective (shuffle, vote,
// reduction, __syncwarp, mma, ldmatrix) or its end. When every runnable fibre has stopped, the
// scheduler releases what can be released: the block barrier once every thread that has not
// exited waits at it; a warp collective once every lane named in its mask that has not exited
// waits at the same collective with the same mask (the PTX rule for *.sync instructions). Released
// fibres are resumed in the order of the process-wide Schedule (Forward, Reverse or a seeded
// Shuffle), because a missing barrier only shows under some orders.
//
// Misuse that is undefined on the GPU (a divergent barrier, a mask without the calling lane,
// mismatched collectives, a shuffle reading a lane that exited, a deadlock) aborts the launch: the
// fibres are unwound (their destructors run) and cmae::Error(ErrorKind::Internal) is thrown with
// the kernel's name, the block and what happened. The next launch starts clean.
//
// Several OS threads may launch at once: each has its own scheduler, stacks and shared memory.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cmae::emu {

// CUDA's built-in vector types, as the built-in variables need them.
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return {x, y, z}; }
};

struct BlockCoordinates {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

// What kernel code reads of the CUDA thread it runs as (compat.cuh's threadIdx, blockIdx, ...).
struct ThreadCoordinates {
  uint3 thread_idx;
  const BlockCoordinates* block;
};

// The fibre this OS thread is running now (null outside kernels). One pointer per OS thread, set
// by that thread's scheduler at every switch, so reading threadIdx costs a TLS load; a
// thread_local per CUDA thread would not work, since all fibres of an OS thread share its TLS.
inline thread_local ThreadCoordinates* active_thread = nullptr;

[[noreturn]] void used_outside_kernel(const char* what);

inline const ThreadCoordinates& current_thread() {
  if (__builtin_expect(active_thread == nullptr, 0)) used_outside_kernel("threadIdx, blockIdx, blockDim or gridDim");
  return *active_thread;
}

// ---- launching -----------------------------------------------------------------------------------
struct LaunchConfig {
  const char* kernel_name;
  dim3 grid;
  dim3 block;
  std::size_t dynamic_shared_bytes;
};
// Runs body(context) as every thread of every block; throws cmae::Error (Internal) when the kernel
// misuses a barrier or collective or throws. The launch helper (cuda/common/launch.cuh) has
// already checked the configuration.
using ThreadBody = void (*)(const void* context);
void run_grid(const LaunchConfig& config, ThreadBody body, const void* context);

// ---- schedule orders -----------------------------------------------------------------------------
// The order in which the scheduler resumes the fibres it releases (thread 0 first, last first, or
// a permutation drawn afresh at every release from the seed and the block index, so a failing
// order reproduces), and in which it runs the blocks of a grid. Process-wide.
enum class Schedule { Forward, Reverse, Shuffle };
const char* schedule_name(Schedule schedule);

// Sets the schedule for the launches made while it lives (on any OS thread), then restores the
// previous one. Scopes nest; set them from one thread.
class ScheduleScope {
 public:
  explicit ScheduleScope(Schedule schedule, std::uint64_t seed = 1);
  ~ScheduleScope();
  ScheduleScope(const ScheduleScope&) = delete;
  ScheduleScope& operator=(const ScheduleScope&) = delete;

 private:
  Schedule previous_schedule_;
  std::uint64_t previous_seed_;
};

// Calls fn(schedule) under each of the three orders.
template <typename Fn>
void for_each_schedule(Fn&& fn, std::uint64_t seed = 1) {
  for (Schedule schedule : {Schedule::Forward, Schedule::Reverse, Schedule::Shuffle}) {
    ScheduleScope scope(schedule, seed);
    fn(schedule);
  }
}

// Fibre switches made by this OS thread's scheduler so far (two per resume), for cost reports.
std::uint64_t fibre_switches();

// ---- block barrier -------------------------------------------------------------------------------
enum class BarrierKind : std::uint8_t { Plain, Count, And, Or };
// __syncthreads and its _count/_and/_or forms: returns the reduced predicate (0 for Plain).
int sync_threads(BarrierKind kind, int predicate);

// ---- warp collectives ----------------------------------------------------------------------------
// What one lane hands a collective: a 32-bit value and argument, or pointers to its operands and
// results (mma, ldmatrix); all valid until the collective has completed.
struct LaneInput {
  std::uint32_t value = 0;
  std::int32_t arg = 0;
  std::int32_t width = 32;
  const void* data = nullptr;
  void* out = nullptr;
};
// A collective ready to complete, as its completion function sees it.
struct WarpCall {
  unsigned mask;          // the mask every participant passed
  unsigned participants;  // the lanes of mask that take part (the others exited or do not exist)
  unsigned exited;        // lanes of the warp that have exited
  unsigned absent;        // lanes the block does not have (a partial last warp)
  const LaneInput* lane[32];
  std::uint32_t result[32];  // set by the completion for each participant
};
// One kind of collective: lanes meet only at the same CollectiveOp (compared by address).
// complete() computes every participant's result; it throws std::runtime_error on misuse (e.g. a
// shuffle reading a lane outside the participants), which aborts the launch.
struct CollectiveOp {
  const char* name;
  void (*complete)(WarpCall& call);
};
// Blocks the calling lane until the collective completes; returns its result[lane].
std::uint32_t warp_collective(const CollectiveOp& op, unsigned mask, const LaneInput& input);

// The warp intrinsics, by their PTX semantics (shfl.sync, vote.sync, redux.sync, bar.warp.sync).
enum class ShuffleMode { Index, Up, Down, Xor };
std::uint32_t shuffle(ShuffleMode mode, unsigned mask, std::uint32_t value, int lane_arg, int width);
enum class VoteMode { All, Any, Ballot };
unsigned vote(VoteMode mode, unsigned mask, bool predicate);
enum class ReduceMode { Add, MinSigned, MaxSigned, MinUnsigned, MaxUnsigned };
std::uint32_t reduce(ReduceMode mode, unsigned mask, std::uint32_t value);
void sync_warp(unsigned mask);

// ---- shared memory -------------------------------------------------------------------------------
// One per textual shared declaration (CMAE_SHARED makes a function-local static), so a declaration
// inside a loop or a helper called twice names one array, as __shared__ does.
struct SharedSite {
  const char* name;
};
// The block's slice for `site`, handed out at its first execution in the block. Every block's
// shared memory starts as NaN (0x7FC00000 words), so a read before any write shows.
void* static_shared(const SharedSite& site, std::size_t bytes, std::size_t alignment);
template <typename T, std::size_t N>
T (&static_shared_array(const SharedSite& site))[N] {
  return *static_cast<T(*)[N]>(static_shared(site, sizeof(T[N]), alignof(T)));
}
// The launch's dynamic shared memory (extern __shared__), 16-byte aligned.
void* dynamic_shared();
// Whether [ptr, ptr + bytes) lies in the shared memory the current block has been handed.
bool is_shared(const void* ptr, std::size_t bytes);

// ---- cp.async ------------------------------------------------------------------------------------
// Queued per thread and performed when cp_async_wait() covers their group (or the thread exits),
// never earlier: a kernel that reads the destination before waiting reads NaN.
void cp_async(void* shared_dst, const void* global_src, std::size_t bytes);
void cp_async_commit();
void cp_async_wait(int pending_groups);

}  // namespace cmae::emu
