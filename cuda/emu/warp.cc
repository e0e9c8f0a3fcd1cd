// The warp intrinsics of the SIMT emulator (emu.h), each a CollectiveOp whose completion follows
// the PTX ISA's definition of the instruction nvcc emits for it: shfl.sync (__shfl*_sync),
// vote.sync (__all/__any/__ballot_sync), redux.sync (__reduce_*_sync) and bar.warp.sync
// (__syncwarp). Lanes named in the mask that have exited do not take part; reading a value from a
// lane that does not take part (exited, absent, or outside the mask) is undefined on the GPU and
// an error here.
#include <stdexcept>
#include <string>

#include "emu/emu.h"

namespace cmae::emu {
namespace {

std::string lane_text(unsigned lane) { return "lane " + std::to_string(lane); }

// Why lane `source` cannot be read in `call`.
std::string not_participating(const WarpCall& call, unsigned source) {
  if (call.absent >> source & 1u) return lane_text(source) + ", which the block does not have";
  if (call.exited >> source & 1u) return lane_text(source) + ", which has exited";
  return lane_text(source) + ", which is not in the mask";
}

// shfl.sync.mode.b32 d, a, b, c: CUDA passes c = ((32 - width) << 8) | clamp, with clamp 0 for
// up and 31 otherwise. With segmask = 32 - width, the source lane j and whether it is in range:
//   minLane = lane & segmask;  maxLane = minLane | (clamp & ~segmask)
//   up:   j = lane - b, valid if j >= maxLane     down: j = lane + b, valid if j <= maxLane
//   bfly: j = lane ^ b, valid if j <= maxLane     idx:  j = minLane | (b & ~segmask), valid if j <= maxLane
// An invalid j reads the lane's own value. Only b's low 5 bits count.
template <ShuffleMode Mode>
void complete_shuffle(WarpCall& call) {
  for (unsigned lane = 0; lane < 32; ++lane) {
    if (!(call.participants >> lane & 1u)) continue;
    const LaneInput& in = *call.lane[lane];
    const int width = in.width;
    if (width < 1 || width > 32 || (width & (width - 1)) != 0)
      throw std::runtime_error(lane_text(lane) + " passes width " + std::to_string(width) + " (a power of two from 1 to 32)");
    const int segmask = 32 - width;
    const int b = in.arg & 31;
    const int l = static_cast<int>(lane);
    const int min_lane = l & segmask;
    const int max_lane = min_lane | ((Mode == ShuffleMode::Up ? 0 : 31) & ~segmask);
    const int j = Mode == ShuffleMode::Up     ? l - b
                  : Mode == ShuffleMode::Down ? l + b
                  : Mode == ShuffleMode::Xor  ? l ^ b
                                              : min_lane | (b & ~segmask);
    const bool valid = Mode == ShuffleMode::Up ? j >= max_lane : j <= max_lane;
    const unsigned source = valid ? static_cast<unsigned>(j) : lane;
    if (!(call.participants >> source & 1u)) throw std::runtime_error(lane_text(lane) + " reads " + not_participating(call, source));
    call.result[lane] = call.lane[source]->value;
  }
}

template <VoteMode Mode>
void complete_vote(WarpCall& call) {
  unsigned ballot = 0;
  for (unsigned lane = 0; lane < 32; ++lane)
    if ((call.participants >> lane & 1u) && call.lane[lane]->value != 0) ballot |= 1u << lane;
  const unsigned result = Mode == VoteMode::Ballot ? ballot : Mode == VoteMode::All ? ballot == call.participants : ballot != 0;
  for (unsigned lane = 0; lane < 32; ++lane) call.result[lane] = result;
}

template <ReduceMode Mode>
void complete_reduce(WarpCall& call) {
  bool first = true;
  std::uint32_t acc = 0;
  for (unsigned lane = 0; lane < 32; ++lane) {
    if (!(call.participants >> lane & 1u)) continue;
    const std::uint32_t v = call.lane[lane]->value;
    const auto s = static_cast<std::int32_t>(v), a = static_cast<std::int32_t>(acc);
    if (first) acc = v;
    else if (Mode == ReduceMode::Add) acc += v;  // wraps, as redux.sync.add does
    else if (Mode == ReduceMode::MinSigned) acc = static_cast<std::uint32_t>(s < a ? s : a);
    else if (Mode == ReduceMode::MaxSigned) acc = static_cast<std::uint32_t>(s > a ? s : a);
    else if (Mode == ReduceMode::MinUnsigned) acc = v < acc ? v : acc;
    else acc = v > acc ? v : acc;
    first = false;
  }
  for (unsigned lane = 0; lane < 32; ++lane) call.result[lane] = acc;
}

void complete_nothing(WarpCall&) {}

const CollectiveOp kShuffleIndex{"__shfl_sync", complete_shuffle<ShuffleMode::Index>};
const CollectiveOp kShuffleUp{"__shfl_up_sync", complete_shuffle<ShuffleMode::Up>};
const CollectiveOp kShuffleDown{"__shfl_down_sync", complete_shuffle<ShuffleMode::Down>};
const CollectiveOp kShuffleXor{"__shfl_xor_sync", complete_shuffle<ShuffleMode::Xor>};
const CollectiveOp kVoteAll{"__all_sync", complete_vote<VoteMode::All>};
const CollectiveOp kVoteAny{"__any_sync", complete_vote<VoteMode::Any>};
const CollectiveOp kBallot{"__ballot_sync", complete_vote<VoteMode::Ballot>};
const CollectiveOp kReduceAdd{"__reduce_add_sync", complete_reduce<ReduceMode::Add>};
const CollectiveOp kReduceMinSigned{"__reduce_min_sync(int)", complete_reduce<ReduceMode::MinSigned>};
const CollectiveOp kReduceMaxSigned{"__reduce_max_sync(int)", complete_reduce<ReduceMode::MaxSigned>};
const CollectiveOp kReduceMinUnsigned{"__reduce_min_sync(unsigned)", complete_reduce<ReduceMode::MinUnsigned>};
const CollectiveOp kReduceMaxUnsigned{"__reduce_max_sync(unsigned)", complete_reduce<ReduceMode::MaxUnsigned>};
const CollectiveOp kSyncWarp{"__syncwarp", complete_nothing};

}  // namespace

std::uint32_t shuffle(ShuffleMode mode, unsigned mask, std::uint32_t value, int lane_arg, int width) {
  const CollectiveOp& op = mode == ShuffleMode::Index ? kShuffleIndex
                           : mode == ShuffleMode::Up  ? kShuffleUp
                           : mode == ShuffleMode::Down ? kShuffleDown
                                                       : kShuffleXor;
  LaneInput in;
  in.value = value;
  in.arg = lane_arg;
  in.width = width;
  return warp_collective(op, mask, in);
}

unsigned vote(VoteMode mode, unsigned mask, bool predicate) {
  const CollectiveOp& op = mode == VoteMode::All ? kVoteAll : mode == VoteMode::Any ? kVoteAny : kBallot;
  LaneInput in;
  in.value = predicate ? 1u : 0u;
  return warp_collective(op, mask, in);
}

std::uint32_t reduce(ReduceMode mode, unsigned mask, std::uint32_t value) {
  const CollectiveOp& op = mode == ReduceMode::Add           ? kReduceAdd
                           : mode == ReduceMode::MinSigned   ? kReduceMinSigned
                           : mode == ReduceMode::MaxSigned   ? kReduceMaxSigned
                           : mode == ReduceMode::MinUnsigned ? kReduceMinUnsigned
                                                             : kReduceMaxUnsigned;
  LaneInput in;
  in.value = value;
  return warp_collective(op, mask, in);
}

void sync_warp(unsigned mask) { warp_collective(kSyncWarp, mask, LaneInput{}); }

}  // namespace cmae::emu
