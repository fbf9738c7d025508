// A worker node run in process (worker/node.h): the wiring the binary uses, on a free port and
// a temporary directory, served over real HTTP; given a topology of one shard that it alone
// holds, what it stored is there after a restart.
#include "worker/node.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "../../free_port.h"
#include "../temp_dir.h"
#include "das/v1/internal.pb.h"
#include "one_shard.h"
#include "support/http_client.h"

namespace das::worker {
namespace {

constexpr uint64_t kWorker = 3;

WorkerNodeOptions Options(const TempDir& dir, uint16_t raft_port) {
  WorkerNodeOptions options;
  options.id = kWorker;
  options.port = 0;  // a free one
  options.raft_port = raft_port;
  options.election_timeout_ms = 100;
  options.store.data_dir = dir.path() + "/worker-3";
  options.store.disk_reserve_bytes = 1 << 20;
  return options;
}

std::unique_ptr<WorkerNode> StartNode(const TempDir& dir, uint16_t raft_port) {
  Result<std::unique_ptr<WorkerNode>> node = WorkerNode::Open(Options(dir, raft_port));
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  if (!node.ok()) return nullptr;
  (*node)->Start();
  return std::move(node).value();
}

internal::v1::WorkerHealthResponse Health(int port) {
  internal::v1::WorkerHealthResponse parsed;
  Result<it::HttpResponse> health = it::HttpGet(port, "/internal/v1/health");
  EXPECT_TRUE(health.ok()) << health.status().ToString();
  if (!health.ok()) return parsed;
  EXPECT_EQ(health->status, 200);
  EXPECT_TRUE(parsed.ParseFromString(health->body));
  EXPECT_EQ(parsed.worker_id(), kWorker);
  return parsed;
}

// Until the shard's replica leads it (bounded: a minute); then the rows it holds.
uint64_t RowsOnceLeading(int port) {
  for (int i = 0; i < 6000; ++i) {
    internal::v1::WorkerHealthResponse health = Health(port);
    if (health.replicas_size() == 1 && health.replicas(0).role() == "leader") {
      internal::v1::ShardQuery read;  // a read at the leader: everything committed, applied
      read.set_shard(0);
      Result<it::HttpResponse> aggregate = it::HttpPost(
          port, "/internal/v1/query", read.SerializeAsString(), "application/x-protobuf");
      EXPECT_TRUE(aggregate.ok() && aggregate->status == 200);
      return Health(port).rows();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "shard 0 elected no leader";
  return 0;
}

TEST(WorkerNodeTest, RunsInProcessAndKeepsWhatItStoredAcrossARestart) {
  TempDir dir;
  const uint16_t raft_port = static_cast<uint16_t>(test::FreePort());
  std::unique_ptr<WorkerNode> node = StartNode(dir, raft_port);
  ASSERT_NE(node, nullptr);
  const int port = node->port();
  ASSERT_NE(port, 0);
  Result<it::HttpResponse> adopted = it::HttpPost(
      port, "/internal/v1/topology", OneShardTopology(kWorker, raft_port, 9).SerializeAsString(),
      "application/x-protobuf");
  ASSERT_TRUE(adopted.ok() && adopted->status == 200);
  EXPECT_EQ(RowsOnceLeading(port), 0u);
  internal::v1::WriteRequest write;
  write.set_shard(0);
  write.set_request_id(1);
  for (int i = 0; i < 3; ++i) {
    internal::v1::RowWire* row = write.add_batches()->add_rows();
    row->set_partition_key("key-" + std::to_string(i));
    row->set_value(i);
  }
  Result<it::HttpResponse> written =
      it::HttpPost(port, "/internal/v1/write", write.SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_EQ(written->status, 200) << written->body;
  EXPECT_EQ(RowsOnceLeading(port), 3u);
  Result<it::HttpResponse> metrics = it::HttpGet(port, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("das_store_commit_duration_seconds"), std::string::npos);
  node->Stop();
  node.reset();

  node = StartNode(dir, raft_port);  // the topology it kept opens the replica again
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(RowsOnceLeading(node->port()), 3u);
}

}  // namespace
}  // namespace das::worker
