// The cluster map follows a shard group's own configuration: the voters its leader reports win
// over the map's, except on the shard a move is changing.
#include "cluster/group_config.h"

#include <gtest/gtest.h>

#include <vector>

#include "rpc/topology.h"

namespace das::cluster {
namespace {

using internal::v1::ControlState;
using internal::v1::GroupMember;

constexpr uint64_t kW = rpc::kWitnessNodeId;

// Workers 1..4 and the witness; shards 0 and 1, each on workers 1 and 2 and the witness.
ControlState State() {
  ControlState state;
  internal::v1::Topology& topology = *state.mutable_topology();
  topology.set_epoch(5);
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{4}, kW}) {
    topology.add_nodes()->set_node_id(id);
  }
  for (uint32_t shard : {0u, 1u}) {
    internal::v1::ShardPlacement& p = *topology.add_placements();
    p.set_shard(shard);
    for (uint64_t v : {uint64_t{1}, uint64_t{2}, kW}) p.add_voters(v);
    p.set_preferred_leader(1);
  }
  return state;
}

// Led by `leader`, which reports `voters` as its group's voters (and 9 as a standby).
ShardView Reported(uint64_t leader, const std::vector<uint64_t>& voters) {
  ShardView view;
  view.leader = leader;
  internal::v1::ReplicaHealth& report = view.reports[leader];
  for (uint64_t v : voters) {
    GroupMember& m = *report.add_members();
    m.set_node_id(v);
    m.set_role(GroupMember::VOTER);
  }
  GroupMember& standby = *report.add_members();
  standby.set_node_id(3);
  standby.set_role(GroupMember::STANDBY);
  return view;
}

std::vector<uint64_t> Voters(const ControlState& state, int shard) {
  const auto& voters = state.topology().placements(shard).voters();
  return {voters.begin(), voters.end()};
}

TEST(GroupConfigTest, TheMapTakesTheVotersTheGroupReports) {
  ControlState state = State();
  state.mutable_topology()->mutable_placements(0)->add_joining(4);
  const std::vector<ShardView> views = {Reported(1, {2, 4, kW}), Reported(1, {1, 2, kW})};
  const std::vector<std::string> whys = FollowGroupConfigurations(state, views);
  ASSERT_EQ(whys.size(), 1u);
  EXPECT_NE(whys[0].find("shard 0"), std::string::npos) << whys[0];
  // Those the map had that the group keeps, in the map's order, then the group's others; data
  // replicas before the witness.
  EXPECT_EQ(Voters(state, 0), (std::vector<uint64_t>{2, 4, kW}));
  EXPECT_EQ(state.topology().placements(0).joining_size(), 0);
  EXPECT_EQ(Voters(state, 1), (std::vector<uint64_t>{1, 2, kW}));
  EXPECT_EQ(state.topology().epoch(), 6u);
}

TEST(GroupConfigTest, EachChangedShardIsAnEpoch) {
  ControlState state = State();
  const std::vector<ShardView> views = {Reported(2, {1, 2, 3}), Reported(1, {1, 3, kW})};
  EXPECT_EQ(FollowGroupConfigurations(state, views).size(), 2u);
  EXPECT_EQ(Voters(state, 0), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(Voters(state, 1), (std::vector<uint64_t>{1, 3, kW}));
  EXPECT_EQ(state.topology().epoch(), 7u);
}

TEST(GroupConfigTest, TheShardAMoveChangesIsLeftToTheMove) {
  ControlState state = State();
  internal::v1::ReplicaMove& move = *state.mutable_move();
  move.set_kind(internal::v1::ReplicaMove::REPLACE);
  move.set_shard(0);
  move.set_from(2);
  move.set_to(4);
  const std::vector<ShardView> views = {Reported(1, {1, 4, kW}), Reported(1, {1, 2, kW})};
  EXPECT_TRUE(FollowGroupConfigurations(state, views).empty());
  EXPECT_EQ(Voters(state, 0), (std::vector<uint64_t>{1, 2, kW}));
  EXPECT_EQ(state.topology().epoch(), 5u);
}

TEST(GroupConfigTest, NothingChangesWithoutAKnownAnswer) {
  ControlState state = State();
  ShardView leaderless = Reported(1, {1, 4, kW});
  leaderless.leader = 0;  // no leader this tick
  ShardView silent;       // a leader that reports no members
  silent.leader = 1;
  silent.reports[1] = internal::v1::ReplicaHealth();
  EXPECT_TRUE(FollowGroupConfigurations(state, {leaderless, silent}).empty());
  // A voter the topology does not know (a newer map this one has not seen) is not taken.
  EXPECT_TRUE(FollowGroupConfigurations(state, {Reported(1, {1, 77, kW}), silent}).empty());
  EXPECT_EQ(Voters(state, 0), (std::vector<uint64_t>{1, 2, kW}));
  EXPECT_EQ(state.topology().epoch(), 5u);
}

}  // namespace
}  // namespace das::cluster
