// LeaderTarget: leadership goes back to the preferred data replica once it is caught up, and
// off a leader whose store is behind to a data replica that is caught up; nowhere else.
#include "cluster/leader_balance.h"

#include <gtest/gtest.h>

#include "rpc/topology.h"

namespace das::cluster {
namespace {

constexpr uint64_t kCommit = 1000;

// A view of one shard with data replicas 1 (preferred), 2 and 3; `applied` per node (absent:
// unreachable), led by `leader`.
ShardView View(uint64_t leader, std::map<uint64_t, uint64_t> applied) {
  ShardView view;
  view.leader = leader;
  view.commit_index = kCommit;
  for (const auto& [node, index] : applied) {
    internal::v1::ReplicaHealth report;
    report.set_applied_index(index);
    report.set_stored_index(index);
    report.set_role(node == leader ? "leader" : "follower");
    view.reports[node] = report;
  }
  return view;
}

const std::vector<uint64_t> kData = {1, 2, 3};

TEST(LeaderTargetTest, BackToThePreferredReplicaOnceItIsCaughtUp) {
  EXPECT_EQ(LeaderTarget(View(2, {{1, kCommit}, {2, kCommit}}), kData), 1u);
  EXPECT_EQ(LeaderTarget(View(1, {{1, kCommit}, {2, kCommit}}), kData), std::nullopt);
  // The preferred one is behind (or unreachable) and the leader is fine: it stays.
  EXPECT_EQ(LeaderTarget(View(2, {{1, 10}, {2, kCommit}}), kData), std::nullopt);
  EXPECT_EQ(LeaderTarget(View(2, {{2, kCommit}}), kData), std::nullopt);
}

TEST(LeaderTargetTest, OffALeaderThatIsBehindToAReplicaThatIsNot) {
  EXPECT_EQ(LeaderTarget(View(2, {{1, 10}, {2, 10}, {3, kCommit}}), kData), 3u);
  // Nobody caught up: nowhere better to go.
  EXPECT_EQ(LeaderTarget(View(2, {{1, 10}, {2, 10}, {3, 10}}), kData), std::nullopt);
}

TEST(LeaderTargetTest, NotWhileTheWitnessLeadsOrNobodyDoes) {
  EXPECT_EQ(LeaderTarget(View(rpc::kWitnessNodeId, {{1, kCommit}}), kData), std::nullopt);
  EXPECT_EQ(LeaderTarget(View(0, {{1, kCommit}}), kData), std::nullopt);
  EXPECT_EQ(LeaderTarget(View(2, {{1, kCommit}}), {}), std::nullopt);
}

TEST(LeaderTargetTest, AReplicaWhoseDiskIsFullIsNotCaughtUp) {
  ShardView view = View(2, {{1, kCommit}, {2, kCommit}});
  view.reports[1].set_disk_full(true);
  EXPECT_EQ(LeaderTarget(view, kData), std::nullopt);
}

}  // namespace
}  // namespace das::cluster
