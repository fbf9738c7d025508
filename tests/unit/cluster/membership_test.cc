// A worker's join as the saved state records it: addresses checked, ids given once and never
// again, a new worker at a member's very address replacing it, departed ids refused.
#include "cluster/membership.h"

#include <gtest/gtest.h>

#include "rpc/routes.h"
#include "rpc/topology.h"

namespace das::cluster {
namespace {

using internal::v1::ControlState;
using internal::v1::JoinRequest;

JoinRequest Request(uint64_t id, const std::string& http, uint32_t raft_port) {
  JoinRequest request;
  request.set_node_id(id);
  request.set_http_address(http);
  request.set_raft_port(raft_port);
  return request;
}

// Members 1 and 2 (and the witness), worker 2 draining.
ControlState TwoMembers() {
  ControlState state;
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, rpc::kWitnessNodeId}) {
    internal::v1::NodeAddress* node = state.mutable_topology()->add_nodes();
    node->set_node_id(id);
    node->set_http_address("10.0.0." + std::to_string(id % 100) + ":8081");
    node->set_raft_address("10.0.0." + std::to_string(id % 100) + ":9081");
  }
  state.add_draining(2);
  return state;
}

TEST(CheckJoinTest, TakesReachableHostPortAddressesOnly) {
  Result<JoinAddresses> ok = CheckJoin(Request(0, "10.0.0.9:8081", 9081));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->http, "10.0.0.9:8081");
  EXPECT_EQ(ok->raft, "10.0.0.9:9081");
  for (const JoinRequest& bad :
       {Request(0, "10.0.0.9", 9081), Request(0, ":8081", 9081), Request(0, "10.0.0.9:", 9081),
        Request(0, "10.0.0.9:8081", 0), Request(0, "10.0.0.9:8081", 65536),
        Request(0, "0.0.0.0:8081", 9081), Request(0, "[::]:8081", 9081),
        Request(0, std::string(300, 'h') + ":8081", 9081)}) {
    EXPECT_EQ(CheckJoin(bad).status().code(), StatusCode::kInvalidArgument) << bad.http_address();
  }
}

TEST(JoinTest, ANewWorkerGetsAnIdNeverGivenBefore) {
  ControlState state = TwoMembers();
  state.add_departed(5);
  Result<Joined> joined = Join(state, 0, {"10.0.0.9:8081", "10.0.0.9:9081"});
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  EXPECT_EQ(joined->id, 6u);
  EXPECT_TRUE(joined->added);
  EXPECT_TRUE(joined->changed);
  EXPECT_TRUE(joined->replaced.empty());
  EXPECT_EQ(state.last_worker_id(), 6u);
  EXPECT_EQ(state.topology().nodes_size(), 4);
  // The next one after it, even once it is gone.
  state.add_departed(6);
  EXPECT_EQ(Join(state, 0, {"10.0.0.10:8081", "10.0.0.10:9081"})->id, 7u);
}

TEST(JoinTest, AMemberBackAtItsAddressChangesNothingAndElsewhereMovesIt) {
  ControlState state = TwoMembers();
  Result<Joined> same = Join(state, 1, {"10.0.0.1:8081", "10.0.0.1:9081"});
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->added);
  EXPECT_FALSE(same->changed);
  Result<Joined> moved = Join(state, 1, {"10.0.0.7:8081", "10.0.0.7:9081"});
  ASSERT_TRUE(moved.ok());
  EXPECT_TRUE(moved->changed);
  EXPECT_EQ(rpc::FindNode(state.topology(), 1)->http_address(), "10.0.0.7:8081");
}

TEST(JoinTest, ANewWorkerAtAMembersAddressReplacesIt) {
  ControlState state = TwoMembers();
  Result<Joined> joined = Join(state, 0, {"10.0.0.2:8081", "10.0.0.2:9081"});
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(joined->id, 3u);
  EXPECT_EQ(joined->replaced, std::vector<uint64_t>{2});
  EXPECT_TRUE(Contains(state.departed(), 2));
  EXPECT_FALSE(Contains(state.draining(), 2));
  // A member at another member's address replaces nobody (a shared data pool).
  ControlState pool = TwoMembers();
  Result<Joined> swapped = Join(pool, 1, {"10.0.0.2:8081", "10.0.0.2:9081"});
  ASSERT_TRUE(swapped.ok());
  EXPECT_TRUE(swapped->replaced.empty());
  EXPECT_TRUE(pool.departed().empty());
}

TEST(JoinTest, ADepartedOrOutOfRangeIdIsRefusedAndChangesNothing) {
  ControlState state = TwoMembers();
  state.add_departed(4);
  const std::string before = state.SerializeAsString();
  Result<Joined> departed = Join(state, 4, {"10.0.0.4:8081", "10.0.0.4:9081"});
  EXPECT_EQ(departed.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(departed.status().detail(), rpc::kDepartedDetail);
  EXPECT_EQ(Join(state, rpc::kWitnessNodeId, {"10.0.0.4:8081", "10.0.0.4:9081"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(state.SerializeAsString(), before);
}

TEST(DrainTest, AMemberDrainsOnlyWhileTheOthersCanHoldTheFactor) {
  ControlState state = TwoMembers();
  state.mutable_topology()->set_replication_factor(3);  // two workers and the witness
  Result<bool> refused = Drain(state, 1, 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(),
            "worker 1 cannot be drained: 1 other active workers cannot hold replication "
            "factor 3");
  EXPECT_EQ(state.draining_size(), 1);  // unchanged
  Result<bool> drained = Drain(state, 1, 2);
  ASSERT_TRUE(drained.ok());
  EXPECT_TRUE(*drained);
  EXPECT_TRUE(Contains(state.draining(), 1));
  // Draining already: nothing to do, whatever the others.
  Result<bool> again = Drain(state, 2, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

TEST(FillRaftAddressesTest, OnceEveryWorkerReportedItsRaftPort) {
  internal::v1::Topology topology;
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, rpc::kWitnessNodeId}) {
    internal::v1::NodeAddress* node = topology.add_nodes();
    node->set_node_id(id);
    node->set_http_address("10.0.0." + std::to_string(id % 100) + ":8081");
  }
  topology.mutable_nodes(2)->set_raft_address("10.0.0.1:9000");  // the witness's own
  internal::v1::WorkerHealthResponse one;
  one.set_raft_port(9081);
  std::map<uint64_t, Result<internal::v1::WorkerHealthResponse>> health;
  health.emplace(1, one);
  health.emplace(2, Unavailable("down"));
  const internal::v1::Topology before = topology;
  EXPECT_FALSE(FillRaftAddresses(topology, health));
  EXPECT_EQ(topology.SerializeAsString(), before.SerializeAsString());
  internal::v1::WorkerHealthResponse two;
  two.set_raft_port(9082);
  health.insert_or_assign(2, two);
  EXPECT_TRUE(FillRaftAddresses(topology, health));
  EXPECT_EQ(topology.nodes(0).raft_address(), "10.0.0.1:9081");
  EXPECT_EQ(topology.nodes(1).raft_address(), "10.0.0.2:9082");
  EXPECT_EQ(topology.nodes(2).raft_address(), "10.0.0.1:9000");
}

}  // namespace
}  // namespace das::cluster
