// The stages of a replica move as a state machine, run without sockets: each test plays the
// executor (does what a step asks, or not) and checks the steps and the saved state after them.
#include "cluster/move_stages.h"

#include <gtest/gtest.h>

#include <vector>

#include "rpc/topology.h"

namespace das::cluster {
namespace {

using internal::v1::ControlState;
using internal::v1::GroupMember;
using internal::v1::MembershipRequest;
using internal::v1::ReplicaMove;

constexpr uint64_t kW = rpc::kWitnessNodeId;
constexpr uint64_t kCommit = 500;

// Workers 1, 2 and 3 and the witness; shard 0 on workers 1 and 2 and the witness, 1 preferred.
ControlState State(ReplicaMove::Kind kind, uint64_t from, uint64_t to, uint32_t stage) {
  ControlState state;
  internal::v1::Topology& topology = *state.mutable_topology();
  topology.set_epoch(7);
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, uint64_t{3}, kW}) {
    internal::v1::NodeAddress& node = *topology.add_nodes();
    node.set_node_id(id);
    node.set_raft_address("10.0.0." + std::to_string(id % 100) + ":7000");
  }
  internal::v1::ShardPlacement& p = *topology.add_placements();
  p.set_shard(0);
  for (uint64_t v : {uint64_t{1}, uint64_t{2}, kW}) p.add_voters(v);
  p.set_preferred_leader(1);
  ReplicaMove& move = *state.mutable_move();
  move.set_kind(kind);
  move.set_from(from);
  move.set_to(to);
  move.set_stage(stage);
  return state;
}

// Led by `leader`; the nodes in `caught_up` report the commit index, the others nothing.
ShardView View(uint64_t leader, const std::vector<uint64_t>& caught_up) {
  ShardView view;
  view.leader = leader;
  view.commit_index = kCommit;
  for (uint64_t node : caught_up) {
    internal::v1::ReplicaHealth report;
    report.set_applied_index(kCommit);
    report.set_stored_index(kCommit);
    view.reports[node] = report;
  }
  return view;
}

std::vector<uint64_t> Ids(const google::protobuf::RepeatedField<uint64_t>& ids) {
  return {ids.begin(), ids.end()};
}

const internal::v1::ShardPlacement& Shard0(const ControlState& state) {
  return state.topology().placements(0);
}

void ExpectMembership(const MoveStep& step, MembershipRequest::Op op, uint64_t node) {
  ASSERT_EQ(step.io, MoveIo::kMembership);
  EXPECT_EQ(step.membership.shard(), 0u);
  EXPECT_EQ(step.membership.op(), op);
  EXPECT_EQ(step.membership.node_id(), node);
}

TEST(MoveStagesTest, AReplaceRunsThroughEveryStageToItsEnd) {
  ControlState state = State(ReplicaMove::REPLACE, 2, 3, kAnnounce);
  const ShardView before = View(1, {1, 2});
  const ShardView after = View(1, {1, 2, 3});

  MoveStep step = PlanMoveStep(state, before, false);
  EXPECT_EQ(step.io, MoveIo::kNone);
  MoveResult result = ApplyMoveStep(state, step);
  EXPECT_TRUE(result.advanced);
  EXPECT_EQ(result.epoch_why, "shard 0: worker-3 joins");
  EXPECT_EQ(state.topology().epoch(), 8u);
  EXPECT_EQ(Ids(Shard0(state).joining()), std::vector<uint64_t>{3});

  step = PlanMoveStep(state, before, false);
  ExpectMembership(step, MembershipRequest::ADD_SPARE, 3);
  EXPECT_EQ(step.hold_epoch, 3u);  // worker 3 knows the epoch that names it first
  EXPECT_TRUE(ApplyMoveStep(state, step).advanced);
  EXPECT_EQ(state.move().stage(), kStandby);

  step = PlanMoveStep(state, before, false);
  ExpectMembership(step, MembershipRequest::ASSIGN, 3);
  EXPECT_EQ(step.membership.role(), GroupMember::STANDBY);
  EXPECT_FALSE(ApplyMoveStep(state, step).advanced);  // its store's progress: a later tick
  EXPECT_EQ(state.move().stage(), kCatchUp);

  // Not caught up yet: nothing to do, nothing changes.
  step = PlanMoveStep(state, before, false);
  EXPECT_EQ(step.effect, MoveEffect::kNone);
  EXPECT_FALSE(ApplyMoveStep(state, step).advanced);
  EXPECT_EQ(state.move().stage(), kCatchUp);
  EXPECT_TRUE(ApplyMoveStep(state, PlanMoveStep(state, after, false)).advanced);
  EXPECT_EQ(state.move().stage(), kVoter);

  step = PlanMoveStep(state, after, false);
  ExpectMembership(step, MembershipRequest::ASSIGN, 3);
  EXPECT_EQ(step.membership.role(), GroupMember::VOTER);
  result = ApplyMoveStep(state, step);
  EXPECT_EQ(result.epoch_why, "shard 0: worker-3 votes");
  EXPECT_EQ(Ids(Shard0(state).voters()), (std::vector<uint64_t>{1, 2, 3, kW}));
  EXPECT_TRUE(Shard0(state).joining().empty());
  EXPECT_EQ(state.move().stage(), kLeadOff);

  // Worker 2 does not lead: straight on to its removal.
  EXPECT_TRUE(ApplyMoveStep(state, PlanMoveStep(state, after, false)).advanced);
  EXPECT_EQ(state.move().stage(), kRemoveOld);
  step = PlanMoveStep(state, after, false);
  ExpectMembership(step, MembershipRequest::REMOVE, 2);
  result = ApplyMoveStep(state, step);
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(result.epoch_why, "shard 0: worker-2 removed");
  EXPECT_EQ(Ids(Shard0(state).voters()), (std::vector<uint64_t>{1, 3, kW}));
  EXPECT_EQ(state.move().kind(), ReplicaMove::NONE);
  EXPECT_EQ(state.topology().epoch(), 10u);
}

TEST(MoveStagesTest, AnAddEndsOnceTheNewReplicaVotes) {
  ControlState state = State(ReplicaMove::ADD, 0, 3, kVoter);
  const MoveResult result = ApplyMoveStep(state, PlanMoveStep(state, View(1, {1, 2, 3}), false));
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(Ids(Shard0(state).voters()), (std::vector<uint64_t>{1, 2, 3, kW}));
}

TEST(MoveStagesTest, LeadershipGoesOffTheOldReplicaToACaughtUpOne) {
  // The new replica is preferred when it is caught up.
  ControlState state = State(ReplicaMove::REPLACE, 1, 3, kLeadOff);
  state.mutable_topology()->mutable_placements(0)->add_voters(3);
  MoveStep step = PlanMoveStep(state, View(1, {1, 2, 3}), false);
  ASSERT_EQ(step.io, MoveIo::kTransfer);
  EXPECT_EQ(step.transfer_to, 3u);
  // The transfer shows in a later tick's health: the stage stays.
  EXPECT_FALSE(ApplyMoveStep(state, step).advanced);
  EXPECT_EQ(state.move().stage(), kLeadOff);
  // A removal has no new replica: any caught-up data replica takes over.
  ControlState removal = State(ReplicaMove::REMOVE, 1, 0, kLeadOff);
  step = PlanMoveStep(removal, View(1, {1, 2}), false);
  ASSERT_EQ(step.io, MoveIo::kTransfer);
  EXPECT_EQ(step.transfer_to, 2u);
  // Nobody caught up: it waits.
  EXPECT_EQ(PlanMoveStep(removal, View(1, {1}), false).io, MoveIo::kNone);
}

TEST(MoveStagesTest, TheOldReplicaStaysUntilTheNewOneIsCaughtUp) {
  ControlState state = State(ReplicaMove::REPLACE, 2, 3, kRemoveOld);
  EXPECT_EQ(PlanMoveStep(state, View(1, {1, 2}), false).effect, MoveEffect::kNone);
  ExpectMembership(PlanMoveStep(state, View(1, {1, 2, 3}), false), MembershipRequest::REMOVE, 2);
}

TEST(MoveStagesTest, ANewReplicaThatWentAwayBeforeItVotesIsRolledBack) {
  ControlState state = State(ReplicaMove::REPLACE, 2, 3, kStandby);
  state.mutable_topology()->mutable_placements(0)->add_joining(3);
  const MoveStep step = PlanMoveStep(state, View(1, {1, 2}), true);
  ExpectMembership(step, MembershipRequest::REMOVE, 3);
  const MoveResult result = ApplyMoveStep(state, step);
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(result.epoch_why, "shard 0: the move to worker-3 is rolled back (it went away)");
  EXPECT_TRUE(Shard0(state).joining().empty());
  EXPECT_EQ(Ids(Shard0(state).voters()), (std::vector<uint64_t>{1, 2, kW}));
}

TEST(MoveStagesTest, ANewReplicaThatWentAwayAfterItVotedKeepsTheOldOne) {
  ControlState state = State(ReplicaMove::REPLACE, 2, 3, kRemoveOld);
  state.mutable_topology()->mutable_placements(0)->add_voters(3);
  const MoveStep step = PlanMoveStep(state, View(1, {1, 2}), true);
  EXPECT_EQ(step.effect, MoveEffect::kOldKept);
  EXPECT_EQ(step.io, MoveIo::kNone);
  const MoveResult result = ApplyMoveStep(state, step);
  EXPECT_TRUE(result.finished);
  EXPECT_TRUE(result.epoch_why.empty());
  EXPECT_EQ(Ids(Shard0(state).voters()), (std::vector<uint64_t>{1, 2, kW, 3}));
}

TEST(MoveStagesTest, ADepartedVoterAtTheNewReplicasAddressIsRemovedFirst) {
  // Worker 4 lost its data and came back as worker 3 at its raft address.
  ControlState state = State(ReplicaMove::REPLACE, 2, 3, kAddSpare);
  internal::v1::NodeAddress& old = *state.mutable_topology()->add_nodes();
  old.set_node_id(4);
  old.set_raft_address("10.0.0.3:7000");
  state.add_departed(4);
  state.mutable_topology()->mutable_placements(0)->add_voters(4);
  MoveStep step = PlanMoveStep(state, View(1, {1, 2}), false);
  ExpectMembership(step, MembershipRequest::REMOVE, 4);
  EXPECT_EQ(step.hold_epoch, 3u);
  const MoveResult result = ApplyMoveStep(state, step);
  EXPECT_FALSE(result.advanced);  // the next tick adds worker 3
  EXPECT_EQ(result.epoch_why, "shard 0: worker-4 removed first: worker-3 took its address");
  EXPECT_EQ(state.move().stage(), kAddSpare);
  ExpectMembership(PlanMoveStep(state, View(1, {1, 2}), false), MembershipRequest::ADD_SPARE, 3);
}

TEST(MoveStagesTest, NoMembershipChangeWhileNoDataReplicaLeads) {
  const ControlState state = State(ReplicaMove::REPLACE, 2, 3, kAddSpare);
  EXPECT_EQ(PlanMoveStep(state, View(kW, {1, 2}), false).effect, MoveEffect::kNone);
  EXPECT_EQ(PlanMoveStep(state, View(0, {1, 2}), false).effect, MoveEffect::kNone);
}

TEST(MoveStagesTest, ATransferMakesItsTargetThePreferredLeader) {
  ControlState state = State(ReplicaMove::TRANSFER, 1, 2, 0);
  MoveResult result = ApplyMoveStep(state, PlanMoveStep(state, View(1, {1, 2}), false));
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(result.epoch_why, "shard 0: worker-2 preferred leader");
  EXPECT_EQ(Ids(Shard0(state).voters()), (std::vector<uint64_t>{2, 1, kW}));
  EXPECT_EQ(Shard0(state).preferred_leader(), 2u);
  // To the preferred leader already: dropped, not counted, no new epoch.
  ControlState again = State(ReplicaMove::TRANSFER, 2, 1, 0);
  result = ApplyMoveStep(again, PlanMoveStep(again, View(1, {1, 2}), false));
  EXPECT_TRUE(result.dropped);
  EXPECT_FALSE(result.finished);
  EXPECT_EQ(again.topology().epoch(), 7u);
  EXPECT_EQ(again.move().kind(), ReplicaMove::NONE);
}

TEST(MoveStagesTest, AStageThisBuildDoesNotKnowIsDropped) {
  ControlState state = State(ReplicaMove::REPLACE, 2, 3, 42);
  const MoveResult result = ApplyMoveStep(state, PlanMoveStep(state, View(1, {1, 2}), false));
  EXPECT_TRUE(result.dropped);
  EXPECT_EQ(state.move().kind(), ReplicaMove::NONE);
  EXPECT_EQ(DescribeMove(State(ReplicaMove::REPLACE, 2, 3, 42).move()),
            "shard 0: worker-2 -> worker-3 (?): ");
}

}  // namespace
}  // namespace das::cluster
