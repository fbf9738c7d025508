// A replica that leaves a worker leaves nothing behind: its rows, its directory and its records
// in the worker's one raft log (which a later replica of the same shard would otherwise start
// from). A real node store, a real replica host and its raft loop on a loopback port.
#include "replica/replica_host.h"

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "../../free_port.h"
#include "../temp_dir.h"
#include "common/hash.h"
#include "raft/internal/node_log.h"
#include "rpc/topology.h"
#include "storage/node_store.h"

namespace das::replica {
namespace {

constexpr uint64_t kWorker = 7;
constexpr uint64_t kOther = 8;

// Two shards of half the slots each; shard 1 on `shard1_on`, shard 0 on this worker, each its
// only voter.
internal::v1::TopologyRequest TwoShards(uint64_t epoch, uint64_t shard1_on, uint16_t raft_port) {
  internal::v1::TopologyRequest request;
  request.set_node_id(kWorker);
  internal::v1::Topology& topology = *request.mutable_topology();
  topology.set_cluster_id(42);
  topology.set_shards(2);
  topology.set_replication_factor(1);
  topology.set_epoch(epoch);
  for (uint64_t id : {kWorker, kOther}) {
    internal::v1::NodeAddress& node = *topology.add_nodes();
    node.set_node_id(id);
    node.set_http_address("127.0.0.1:" + std::to_string(id));
    node.set_raft_address("127.0.0.1:" + std::to_string(id == kWorker ? raft_port : 1));
  }
  for (uint32_t shard : {0u, 1u}) {
    const uint64_t on = shard == 0 ? kWorker : shard1_on;
    internal::v1::ShardPlacement& p = *topology.add_placements();
    p.set_shard(shard);
    p.set_first_slot(shard * kSlots / 2);
    p.set_end_slot((shard + 1) * kSlots / 2);
    p.add_voters(on);
    p.add_founders(on);
    p.set_preferred_leader(on);
  }
  return request;
}

// What the worker's raft log (closed) keeps of `shard`'s group.
bool LogKnows(const std::string& dir, uint32_t shard) {
  das_nlog* log = nullptr;
  char error[DAS_NLOG_ERRMSG] = {0};
  EXPECT_EQ(das_nlog_open(dir.c_str(), 0, &log, error), 0) << error;
  if (log == nullptr) return false;
  das_nlog_group group;
  das_nlog_get(log, shard, &group);
  das_nlog_close(log);
  return group.known != 0;
}

TEST(ReplicaHostTest, AReplicaThatLeavesIsForgottenInTheRaftLog) {
  TempDir dir("das-replica-host");
  storage::NodeStoreOptions store_options;
  store_options.data_dir = dir.path();
  Result<std::unique_ptr<storage::NodeStore>> store = storage::NodeStore::Open(store_options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ReplicaHostOptions options;
  options.node_id = kWorker;
  options.data_dir = dir.path();
  options.listen_host = "127.0.0.1";
  options.raft_port = static_cast<uint16_t>(test::FreePort());
  options.store = store->get();
  options.election_timeout_ms = 100;
  options.heartbeat_timeout_ms = 10;
  const std::string log_dir = dir.path() + "/raft-log";

  std::unique_ptr<ReplicaHost> host = ReplicaHost::Create(options);
  ASSERT_TRUE(host->Adopt(TwoShards(1, kWorker, options.raft_port)).ok());
  host->Close();
  ASSERT_TRUE(LogKnows(log_dir, 0));
  ASSERT_TRUE(LogKnows(log_dir, 1));  // each group's configuration, at least

  host = ReplicaHost::Create(options);
  ASSERT_TRUE(host->LoadSaved().ok());
  ASSERT_TRUE(host->Adopt(TwoShards(2, kOther, options.raft_port)).ok());  // shard 1 leaves
  host->Close();
  EXPECT_TRUE(LogKnows(log_dir, 0));
  EXPECT_FALSE(LogKnows(log_dir, 1));
  Result<std::vector<uint32_t>> held = (*store)->Replicas();
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(std::count(held->begin(), held->end(), 1u), 0);
  (*store)->Stop();
}

}  // namespace
}  // namespace das::replica
