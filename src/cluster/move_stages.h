// The stages of a replica move as a pure state machine. The rebalancer (meta/plan.h) picks a
// move; the saved state (internal::v1::ControlState.move) holds it and the stage it reached.
// Each tick the control node asks PlanMoveStep what the stage needs (a membership change at
// the shard's leader, a leadership transfer, the new replica holding the current epoch, or
// nothing but a change of the saved state), does that I/O, and once it succeeded applies the
// step with ApplyMoveStep: the placements, the stage, the epoch and the end of the move change
// here and nowhere else. No I/O, no clock, no locks.
//
// A move's life (ReplicaMove.kind):
//   REPLACE  announce `to` as joining, add it as a spare, make it a standby (libraft catches
//            it up), wait for its store, make it a voter, take leadership off `from`, remove
//            `from`;
//   ADD      the same up to the voter;   REMOVE  from leadership off `from` on;
//   TRANSFER `to` becomes the shard's preferred leader (the balancer hands leadership over).
// A new replica that went away before it votes is removed again (the move is rolled back); one
// that went away after it voted ends the move with the old replica kept.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cluster/shard_view.h"
#include "das/v1/internal.pb.h"

namespace das::cluster {

// ReplicaMove.stage.
enum MoveStage : uint32_t {
  kAnnounce = 0,  // `to` named as joining in a new epoch
  kAddSpare = 1,  // once `to` holds that epoch
  kStandby = 2,   // libraft brings it up to date
  kCatchUp = 3,   // its store caught up (a copy installed, the log applied)
  kVoter = 4,
  kLeadOff = 5,    // leadership off `from`
  kRemoveOld = 6,  // `from` removed
};

// "shard 3: worker-1 -> worker-2 (standby): why", for logs and /health.
std::string DescribeMove(const internal::v1::ReplicaMove& move);
std::string_view StageName(uint32_t stage);

// Adds `id` to `placement`'s voters: data replicas before the witness.
void AddVoter(internal::v1::ShardPlacement& placement, uint64_t id);

// What the state becomes once a step's I/O is done.
enum class MoveEffect {
  kNone,              // nothing (wait for a later tick, or a transfer the health will show)
  kPreferred,         // TRANSFER: `to` first among the voters, the preferred leader
  kAlreadyPreferred,  // TRANSFER to the preferred leader already: the move is dropped
  kRolledBack,        // `to` went away before it voted and is removed from the shard
  kOldKept,           // `to` went away after it voted: the move ends, `from` stays
  kAnnounced,         // `to` joining
  kStaleRemoved,      // a departed voter at `to`'s raft address removed first
  kSpareAdded,
  kStandby,
  kCaughtUp,
  kVoted,
  kLeaderOff,  // `from` does not lead: on to its removal
  kOldRemoved,
  kDropped,  // a stage this build does not know
};

// The one I/O a step needs before its effect.
enum class MoveIo {
  kNone,        // the effect at once
  kMembership,  // `membership` at the shard's leader
  kTransfer,    // the shard's leadership from `from` (its leader) to `transfer_to`
};

struct MoveStep {
  MoveIo io = MoveIo::kNone;
  MoveEffect effect = MoveEffect::kNone;
  internal::v1::MembershipRequest membership;  // kMembership
  uint64_t transfer_to = 0;                    // kTransfer
  // The node that must hold the topology's current epoch before the I/O (a spare is added
  // only once its worker knows the epoch that names it): 0 none.
  uint64_t hold_epoch = 0;
};

// The next step of `state`'s move (kind NONE: an effect kNone), from its shard's `view` of this
// tick and whether the move's new replica went away (dead, drained, left).
MoveStep PlanMoveStep(const internal::v1::ControlState& state, const ShardView& view, bool to_gone);

struct MoveResult {
  bool advanced = false;  // the next stage may follow at once, in this tick
  bool finished = false;  // the move is done (and cleared): count it
  bool dropped = false;   // the move was cleared without being done
  // Non-empty: the topology's epoch was raised, for this reason (to log, save, and tell the
  // shards' leaders their replicas).
  std::string epoch_why;
};

// Applies `step`'s effect to `state` (its I/O done): placements, epoch, stage, the move's end.
MoveResult ApplyMoveStep(internal::v1::ControlState& state, const MoveStep& step);

}  // namespace das::cluster
