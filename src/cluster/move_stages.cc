#include "cluster/move_stages.h"

#include <iterator>
#include <vector>

#include "cluster/membership.h"
#include "cluster/topology_plan.h"
#include "rpc/topology.h"

namespace das::cluster {
namespace {

using internal::v1::ControlState;
using internal::v1::GroupMember;
using internal::v1::MembershipRequest;
using internal::v1::ReplicaMove;
using internal::v1::ShardPlacement;

bool IsData(uint64_t node) { return node != 0 && node != rpc::kWitnessNodeId; }

bool CaughtUpIn(const ShardView& view, uint64_t node) {
  auto it = view.reports.find(node);
  return it != view.reports.end() && CaughtUp(it->second, view.commit_index);
}

MoveStep Effect(MoveEffect effect) {
  MoveStep step;
  step.effect = effect;
  return step;
}

// A membership change at the shard's leader; it waits while no data replica leads.
MoveStep AtLeader(const ShardView& view, uint32_t shard, MembershipRequest::Op op, uint64_t node,
                  MoveEffect effect) {
  if (!IsData(view.leader)) return Effect(MoveEffect::kNone);
  MoveStep step = Effect(effect);
  step.io = MoveIo::kMembership;
  step.membership.set_shard(shard);
  step.membership.set_op(op);
  step.membership.set_node_id(node);
  return step;
}

MoveStep Assign(const ShardView& view, uint32_t shard, uint64_t node, GroupMember::Role role,
                MoveEffect effect) {
  MoveStep step = AtLeader(view, shard, MembershipRequest::ASSIGN, node, effect);
  step.membership.set_role(role);
  return step;
}

const ShardPlacement& PlacementOf(const ControlState& state, uint32_t shard) {
  return state.topology().placements(static_cast<int>(shard));
}

ShardPlacement& PlacementOf(ControlState& state, uint32_t shard) {
  return *state.mutable_topology()->mutable_placements(static_cast<int>(shard));
}

// A voter that left the cluster at `to`'s raft address is a worker that lost its data and came
// back under a new id at the same address: it is removed first (it is dead, so this leaves the
// shard no less able to commit than it was). A live member at that address (members that came
// back in another order) stays: `to` is added under a name of its own ("<address>#<id>"), which
// libraft never finds taken. 0: none.
uint64_t StaleVoterAt(const ControlState& state, uint32_t shard, uint64_t to) {
  const internal::v1::NodeAddress* mine = rpc::FindNode(state.topology(), to);
  uint64_t stale = 0;
  for (uint64_t voter : PlacementOf(state, shard).voters()) {
    const internal::v1::NodeAddress* node = rpc::FindNode(state.topology(), voter);
    if (voter != to && mine != nullptr && node != nullptr && Contains(state.departed(), voter) &&
        node->raft_address() == mine->raft_address()) {
      stale = voter;
    }
  }
  return stale;
}

// `to` must hold the epoch that names it before it is added.
MoveStep AddSpare(const ControlState& state, const ShardView& view) {
  const ReplicaMove& move = state.move();
  const uint64_t stale = StaleVoterAt(state, move.shard(), move.to());
  MoveStep step = stale != 0 ? AtLeader(view, move.shard(), MembershipRequest::REMOVE, stale,
                                        MoveEffect::kStaleRemoved)
                             : AtLeader(view, move.shard(), MembershipRequest::ADD_SPARE, move.to(),
                                        MoveEffect::kSpareAdded);
  if (step.io == MoveIo::kMembership) step.hold_epoch = move.to();
  return step;
}

// Leadership off `from`: to the new replica when it holds data and is caught up, else to
// another caught-up data replica; none caught up, it waits.
MoveStep LeadOff(const ControlState& state, const ShardView& view) {
  const ReplicaMove& move = state.move();
  if (view.leader != move.from()) return Effect(MoveEffect::kLeaderOff);
  uint64_t target = 0;
  for (uint64_t node : rpc::DataVoters(PlacementOf(state, move.shard()))) {
    if (node == move.from() || !CaughtUpIn(view, node)) continue;
    if (target == 0 || node == move.to()) target = node;
  }
  MoveStep step;
  if (target == 0) return step;
  step.io = MoveIo::kTransfer;
  step.transfer_to = target;
  return step;
}

MoveStep ForStage(const ControlState& state, const ShardView& view) {
  const ReplicaMove& move = state.move();
  switch (move.stage()) {
    case kAnnounce:
      return Effect(MoveEffect::kAnnounced);
    case kAddSpare:
      return AddSpare(state, view);
    case kStandby:
      return Assign(view, move.shard(), move.to(), GroupMember::STANDBY, MoveEffect::kStandby);
    case kCatchUp:
      return Effect(CaughtUpIn(view, move.to()) ? MoveEffect::kCaughtUp : MoveEffect::kNone);
    case kVoter:
      return Assign(view, move.shard(), move.to(), GroupMember::VOTER, MoveEffect::kVoted);
    case kLeadOff:
      return LeadOff(state, view);
    case kRemoveOld:
      return AtLeader(view, move.shard(), MembershipRequest::REMOVE, move.from(),
                      MoveEffect::kOldRemoved);
    default:
      return Effect(MoveEffect::kDropped);
  }
}

std::string ShardPrefix(uint32_t shard) { return "shard " + std::to_string(shard) + ": "; }

void Prefer(ShardPlacement& placement, uint64_t to) {
  std::vector<uint64_t> voters = {to};
  for (uint64_t v : placement.voters()) {
    if (v != to) voters.push_back(v);
  }
  *placement.mutable_voters() = {voters.begin(), voters.end()};
  placement.set_preferred_leader(to);
}

void RemoveReplica(ShardPlacement& placement, uint64_t from) {
  Erase(*placement.mutable_voters(), from);
  Erase(*placement.mutable_joining(), from);
  if (placement.preferred_leader() == from && !rpc::DataVoters(placement).empty()) {
    placement.set_preferred_leader(rpc::DataVoters(placement).front());
  }
}

// The placement's change of `effect` and its epoch's reason; "" when the placement stays.
std::string ChangePlacement(MoveEffect effect, const ReplicaMove& move, uint64_t member,
                            ShardPlacement& placement) {
  const std::string to = rpc::NodeName(move.to());
  switch (effect) {
    case MoveEffect::kPreferred:
      Prefer(placement, move.to());
      return to + " preferred leader";
    case MoveEffect::kRolledBack:
      Erase(*placement.mutable_joining(), move.to());
      return "the move to " + to + " is rolled back (it went away)";
    case MoveEffect::kAnnounced:
      if (!Contains(placement.joining(), move.to()) && !Contains(placement.voters(), move.to())) {
        placement.add_joining(move.to());
      }
      return to + " joins";
    case MoveEffect::kStaleRemoved:
      Erase(*placement.mutable_voters(), member);
      return rpc::NodeName(member) + " removed first: " + to + " took its address";
    case MoveEffect::kVoted:
      Erase(*placement.mutable_joining(), move.to());
      AddVoter(placement, move.to());
      return to + " votes";
    case MoveEffect::kOldRemoved:
      RemoveReplica(placement, move.from());
      return rpc::NodeName(move.from()) + " removed";
    default:
      return "";
  }
}

// The stage `effect` leads to, and whether it may follow at once; kNone when the move ends.
struct Next {
  uint32_t stage = 0;
  bool at_once = false;
  bool ends = false;
};

Next NextOf(MoveEffect effect, const ReplicaMove& move) {
  switch (effect) {
    case MoveEffect::kAnnounced:
      return {kAddSpare, true, false};
    case MoveEffect::kSpareAdded:
      return {kStandby, true, false};
    case MoveEffect::kStandby:
      return {kCatchUp, false, false};  // its store's progress shows in the next tick's health
    case MoveEffect::kCaughtUp:
      return {kVoter, true, false};
    case MoveEffect::kVoted:
      return {kLeadOff, true, move.kind() == ReplicaMove::ADD};
    case MoveEffect::kLeaderOff:
      return {kRemoveOld, true, false};
    case MoveEffect::kStaleRemoved:
      return {move.stage(), false, false};  // the next tick adds `to`
    default:
      return {move.stage(), true, true};  // preferred, rolled back, old kept, old removed
  }
}

}  // namespace

std::string_view StageName(uint32_t stage) {
  static constexpr std::string_view kNames[] = {"announce", "add spare", "standby",   "catch up",
                                                "voter",    "lead off",  "remove old"};
  return stage < std::size(kNames) ? kNames[stage] : "?";
}

std::string DescribeMove(const ReplicaMove& move) {
  std::string out = ShardPrefix(move.shard());
  if (move.from() != 0) out += rpc::NodeName(move.from());
  out += " -> ";
  if (move.to() != 0) out += rpc::NodeName(move.to());
  out.append(" (").append(StageName(move.stage())).append("): ").append(move.why());
  return out;
}

void AddVoter(ShardPlacement& placement, uint64_t id) {
  if (Contains(placement.voters(), id)) return;
  std::vector<uint64_t> voters = rpc::DataVoters(placement);
  const bool witness = Contains(placement.voters(), rpc::kWitnessNodeId);
  if (id != rpc::kWitnessNodeId) voters.push_back(id);
  if (witness || id == rpc::kWitnessNodeId) voters.push_back(rpc::kWitnessNodeId);
  *placement.mutable_voters() = {voters.begin(), voters.end()};
}

MoveStep PlanMoveStep(const ControlState& state, const ShardView& view, bool to_gone) {
  const ReplicaMove& move = state.move();
  if (move.kind() == ReplicaMove::NONE) return {};
  if (move.kind() == ReplicaMove::TRANSFER) {
    const ShardPlacement& p = PlacementOf(state, move.shard());
    const bool already = !p.voters().empty() && p.voters(0) == move.to();
    return Effect(already ? MoveEffect::kAlreadyPreferred : MoveEffect::kPreferred);
  }
  if (move.stage() < kVoter && IsData(move.to()) && to_gone) {
    return AtLeader(view, move.shard(), MembershipRequest::REMOVE, move.to(),
                    MoveEffect::kRolledBack);
  }
  // The old replica goes only while the new one is a caught-up voter: removing it otherwise
  // would leave the shard a replica short (or, with the new one dead, unable to commit).
  if ((move.stage() == kLeadOff || move.stage() == kRemoveOld) && IsData(move.to())) {
    if (to_gone) return Effect(MoveEffect::kOldKept);
    if (!CaughtUpIn(view, move.to())) return Effect(MoveEffect::kNone);
  }
  return ForStage(state, view);
}

MoveResult ApplyMoveStep(ControlState& state, const MoveStep& step) {
  MoveResult result;
  if (step.effect == MoveEffect::kNone) return result;
  if (step.effect == MoveEffect::kAlreadyPreferred || step.effect == MoveEffect::kDropped) {
    state.clear_move();
    result.dropped = true;
    return result;
  }
  ReplicaMove& move = *state.mutable_move();
  const std::string why = ChangePlacement(step.effect, move, step.membership.node_id(),
                                          PlacementOf(state, move.shard()));
  if (!why.empty()) {
    internal::v1::Topology& topology = *state.mutable_topology();
    topology.set_epoch(topology.epoch() + 1);
    result.epoch_why = ShardPrefix(move.shard()) + why;
  }
  const Next next = NextOf(step.effect, move);
  result.advanced = next.at_once;
  if (next.ends) {
    state.clear_move();
    result.finished = true;
  } else {
    move.set_stage(next.stage);
  }
  return result;
}

}  // namespace das::cluster
