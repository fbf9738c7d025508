// A worker node run in process (worker/node.h): the wiring the binary uses, on a free port and
// a temporary directory, served over real HTTP; given a topology of one shard that it alone
// holds, what it stored is there after a restart.
#include "worker/node.h"

#include <memory>
#include <string>

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

// Gives the worker its topology (the control node's part). At a restart the worker opens the
// topology it kept behind its running server; the same one sent again returns once either has
// opened the replica (ReplicaHost::LoadSaved, Adopt), so nothing here waits on the clock.
void Adopt(int port, uint16_t raft_port) {
  Result<it::HttpResponse> adopted = it::HttpPost(
      port, "/internal/v1/topology", OneShardTopology(kWorker, raft_port, 9).SerializeAsString(),
      "application/x-protobuf");
  ASSERT_TRUE(adopted.ok()) << adopted.status().ToString();
  ASSERT_EQ(adopted->status, 200) << adopted->body;
}

// The rows shard 0 holds, after a read at its leader (a shard's only voter leads as soon as
// its replica opened: libraft elects it at start), which waits for everything committed.
uint64_t Rows(int port) {
  const internal::v1::WorkerHealthResponse before = Health(port);
  EXPECT_EQ(before.replicas_size(), 1);
  if (before.replicas_size() != 1) return 0;
  EXPECT_EQ(before.replicas(0).role(), "leader");
  internal::v1::ShardQuery read;
  read.set_shard(0);
  Result<it::HttpResponse> aggregate =
      it::HttpPost(port, "/internal/v1/query", read.SerializeAsString(), "application/x-protobuf");
  EXPECT_TRUE(aggregate.ok() && aggregate->status == 200);
  return Health(port).rows();
}

TEST(WorkerNodeTest, RunsInProcessAndKeepsWhatItStoredAcrossARestart) {
  TempDir dir;
  const uint16_t raft_port = static_cast<uint16_t>(test::FreePort());
  std::unique_ptr<WorkerNode> node = StartNode(dir, raft_port);
  ASSERT_NE(node, nullptr);
  const int port = node->port();
  ASSERT_NE(port, 0);
  ASSERT_NO_FATAL_FAILURE(Adopt(port, raft_port));
  EXPECT_EQ(Rows(port), 0u);
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
  EXPECT_EQ(Rows(port), 3u);
  Result<it::HttpResponse> metrics = it::HttpGet(port, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("das_store_commit_duration_seconds"), std::string::npos);
  node->Stop();
  node.reset();

  node = StartNode(dir, raft_port);  // the topology it kept opens the replica again
  ASSERT_NE(node, nullptr);
  ASSERT_NO_FATAL_FAILURE(Adopt(node->port(), raft_port));
  EXPECT_EQ(Rows(node->port()), 3u);
}

}  // namespace
}  // namespace das::worker
