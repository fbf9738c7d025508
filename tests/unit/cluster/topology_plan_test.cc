#include "cluster/topology_plan.h"

#include <set>

#include <gtest/gtest.h>

#include "common/hash.h"
#include "rpc/topology.h"

namespace das::cluster {
namespace {

std::vector<internal::v1::NodeAddress> Workers(int n) {
  std::vector<internal::v1::NodeAddress> workers;
  for (int i = 1; i <= n; ++i) {
    internal::v1::NodeAddress& w = workers.emplace_back();
    w.set_node_id(i);
    w.set_http_address("10.0.0." + std::to_string(i) + ":8081");
    w.set_raft_address("10.0.0." + std::to_string(i) + ":9081");
  }
  return workers;
}

std::vector<uint64_t> Voters(const internal::v1::ShardPlacement& p) {
  return std::vector<uint64_t>(p.voters().begin(), p.voters().end());
}

TEST(TopologyPlanTest, TwoWorkersGetTheWitnessAsThirdVoter) {
  const internal::v1::Topology t = PlanTopology(Workers(2), 3, 16, "10.0.0.9:9080", 5);
  EXPECT_TRUE(rpc::ValidateTopology(t, kSlots).ok());
  EXPECT_EQ(t.cluster_id(), 5u);
  ASSERT_EQ(t.placements_size(), 16);
  ASSERT_NE(rpc::FindNode(t, rpc::kWitnessNodeId), nullptr);
  EXPECT_EQ(rpc::FindNode(t, rpc::kWitnessNodeId)->raft_address(), "10.0.0.9:9080");
  for (uint32_t s = 0; s < 16; ++s) {
    const internal::v1::ShardPlacement& p = t.placements(s);
    EXPECT_EQ(p.first_slot(), s * 256);
    EXPECT_EQ(p.end_slot(), (s + 1) * 256);
    const uint64_t first = s % 2 + 1;
    EXPECT_EQ(Voters(p), (std::vector<uint64_t>{first, 3 - first, rpc::kWitnessNodeId}));
    EXPECT_EQ(p.preferred_leader(), first);  // leaders alternate: spread evenly
  }
}

TEST(TopologyPlanTest, ThreeWorkersNeedNoWitnessAndRotateReplicas) {
  const internal::v1::Topology t = PlanTopology(Workers(3), 3, 5, "unused:1", 1);
  EXPECT_TRUE(rpc::ValidateTopology(t, kSlots).ok());
  // The witness is named (it can come back if the cluster shrinks) but votes in no shard.
  ASSERT_NE(rpc::FindNode(t, rpc::kWitnessNodeId), nullptr);
  EXPECT_TRUE(rpc::ReplicasOf(t, rpc::kWitnessNodeId).empty());
  EXPECT_EQ(Voters(t.placements(0)), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(t.epoch(), 1u);
  // Every shard's founders are its first voters; a founder bootstraps its replica with them.
  EXPECT_EQ(
      std::vector<uint64_t>(t.placements(1).founders().begin(), t.placements(1).founders().end()),
      (std::vector<uint64_t>{2, 3, 1}));
  const std::vector<rpc::ReplicaPlan> of1 = rpc::ReplicasOf(t, 1);
  ASSERT_EQ(of1.size(), 5u);
  EXPECT_EQ(of1[1].bootstrap, (std::vector<uint64_t>{2, 3, 1}));
  EXPECT_EQ(Voters(t.placements(1)), (std::vector<uint64_t>{2, 3, 1}));
  EXPECT_EQ(Voters(t.placements(4)), (std::vector<uint64_t>{2, 3, 1}));
  // Uneven ranges still cover every slot once: 4096 / 5.
  EXPECT_EQ(t.placements(0).end_slot(), 819u);
  EXPECT_EQ(t.placements(4).end_slot(), kSlots);
  const std::vector<uint32_t> shard_of = ShardOfSlot(t);
  EXPECT_EQ(shard_of[0], 0u);
  EXPECT_EQ(shard_of[818], 0u);
  EXPECT_EQ(shard_of[819], 1u);
  EXPECT_EQ(shard_of[kSlots - 1], 4u);
}

TEST(TopologyPlanTest, AJoiningReplicaWaitsToBeAddedEvenOnAFounder) {
  internal::v1::Topology t = PlanTopology(Workers(3), 3, 2, "unused:1", 1);
  internal::v1::NodeAddress* four = t.add_nodes();
  four->set_node_id(4);
  internal::v1::ShardPlacement& p = *t.mutable_placements(0);
  p.add_joining(4);
  p.add_joining(1);  // removed earlier and being added back: its old log is gone
  ASSERT_TRUE(rpc::ValidateTopology(t, kSlots).ok());
  const std::vector<rpc::ReplicaPlan> of4 = rpc::ReplicasOf(t, 4);
  ASSERT_EQ(of4.size(), 1u);
  EXPECT_EQ(of4[0].shard, 0u);
  EXPECT_TRUE(of4[0].bootstrap.empty());
  EXPECT_TRUE(rpc::ReplicasOf(t, 1)[0].bootstrap.empty());
  EXPECT_FALSE(rpc::ReplicasOf(t, 2)[0].bootstrap.empty());
  p.add_joining(9);  // no such node
  EXPECT_FALSE(rpc::ValidateTopology(t, kSlots).ok());
}

// What a node opens and closes to hold exactly its replicas of a topology (the witness's and a
// worker's adoption alike): a joiner is opened without bootstrap voters, a shard it left is closed,
// what it holds and keeps is left alone.
TEST(TopologyPlanTest, ChangesOfOpenWhatIsMissingAndCloseWhatIsGone) {
  internal::v1::Topology t = PlanTopology(Workers(3), 3, 4, "unused:1", 1);
  internal::v1::NodeAddress* four = t.add_nodes();
  four->set_node_id(4);
  t.mutable_placements(2)->add_joining(4);
  const rpc::ReplicaChanges first = rpc::ChangesOf(t, 4, {});
  ASSERT_EQ(first.open.size(), 1u);
  EXPECT_EQ(first.open[0].shard, 2u);
  EXPECT_TRUE(first.open[0].bootstrap.empty());
  EXPECT_TRUE(first.close.empty());
  EXPECT_EQ(first.wanted, (std::set<uint32_t>{2}));
  // Node 4 holds shards 2 and 3 (3 was taken off it since): nothing to open, 3 to close.
  const rpc::ReplicaChanges later = rpc::ChangesOf(t, 4, {3, 2});
  EXPECT_TRUE(later.open.empty());
  EXPECT_EQ(later.close, (std::vector<uint32_t>{3}));
  // A founder that holds nothing yet opens all its shards, bootstrapping each.
  const rpc::ReplicaChanges founder = rpc::ChangesOf(t, 1, {});
  ASSERT_EQ(founder.open.size(), 4u);
  EXPECT_FALSE(founder.open[0].bootstrap.empty());
}

TEST(TopologyPlanTest, FiveWorkersKeepThreeDataReplicasPerShard) {
  const internal::v1::Topology t = PlanTopology(Workers(5), 3, 10, "unused:1", 1);
  for (const internal::v1::ShardPlacement& p : t.placements()) EXPECT_EQ(p.voters_size(), 3);
  EXPECT_EQ(Voters(t.placements(4)), (std::vector<uint64_t>{5, 1, 2}));
}

TEST(TopologyPlanTest, ImpossibleFactorsAreRefusedNamingWhy) {
  EXPECT_TRUE(CheckReplication(1, 16, 1).ok());
  EXPECT_TRUE(CheckReplication(3, 16, 2).ok());
  EXPECT_TRUE(CheckReplication(3, 16, 7).ok());
  const Status one_worker = CheckReplication(3, 16, 1);
  EXPECT_EQ(one_worker.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(one_worker.message(),
            "--replication-factor 3 needs at least 2 workers (1 given): with fewer, a shard "
            "would lose its majority with its first lost node, and the control node is at most "
            "one witness");
  EXPECT_EQ(CheckReplication(2, 16, 2).message(),
            "--replication-factor 2 is even: it survives no more losses than 1; use an odd "
            "factor");
  EXPECT_EQ(CheckReplication(3, 0, 2).message(), "--shards must be 1 to 256, not 0");
  EXPECT_EQ(CheckReplication(3, 257, 2).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(NeedsWitness(3, 2));
  EXPECT_FALSE(NeedsWitness(3, 3));
  EXPECT_FALSE(NeedsWitness(1, 1));
}

TEST(TopologyPlanTest, ValidateRefusesGapsAndUnknownVoters) {
  internal::v1::Topology t = PlanTopology(Workers(3), 3, 4, "unused:1", 1);
  internal::v1::Topology gap = t;
  gap.mutable_placements(1)->set_first_slot(gap.placements(1).first_slot() + 1);
  EXPECT_EQ(rpc::ValidateTopology(gap, kSlots).code(), StatusCode::kInvalidArgument);
  internal::v1::Topology stranger = t;
  stranger.mutable_placements(2)->add_voters(99);
  EXPECT_EQ(rpc::ValidateTopology(stranger, kSlots).message(),
            "topology: shard 2 has a bad voter 99");
}

TEST(TopologyPlanTest, CaughtUpCountsEntriesQueuedBehindTheCommitPauseButNotACopy) {
  internal::v1::ReplicaHealth report;
  report.set_applied_index(1000);
  report.set_stored_index(1000);
  EXPECT_TRUE(CaughtUp(report, 1000));
  EXPECT_TRUE(CaughtUp(report, 1000 + kCaughtUpEntries));
  EXPECT_FALSE(CaughtUp(report, 1001 + kCaughtUpEntries)) << "raft itself is behind";
  // The store commits every few hundred milliseconds: raft handed it the entries, it has them
  // queued.
  report.set_stored_index(500);
  EXPECT_TRUE(CaughtUp(report, 1000));
  EXPECT_FALSE(CaughtUp(report, 1001 + kCaughtUpEntries));
  // The store is replacing its data by a copy: the entries raft handed it wait behind that.
  report.set_restoring(true);
  EXPECT_FALSE(CaughtUp(report, 1000));
  report.set_stored_index(1000 - kCaughtUpEntries);
  EXPECT_TRUE(CaughtUp(report, 1000)) << "the copy is installed up to within a few entries";
}

}  // namespace
}  // namespace das::cluster
