// A worker node run in process (worker/node.h): the wiring the binary uses, on a free port and
// a temporary directory, served over real HTTP; what it stored is there after a restart.
#include "worker/node.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "../temp_dir.h"
#include "das/v1/internal.pb.h"
#include "support/http_client.h"

namespace das::worker {
namespace {

WorkerNodeOptions Options(const TempDir& dir) {
  WorkerNodeOptions options;
  options.id = 3;
  options.port = 0;  // a free one
  options.store.data_dir = dir.path() + "/worker-3";
  options.store.disk_reserve_bytes = 1 << 20;
  return options;
}

std::unique_ptr<WorkerNode> StartNode(const TempDir& dir) {
  Result<std::unique_ptr<WorkerNode>> node = WorkerNode::Open(Options(dir));
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  if (!node.ok()) return nullptr;
  (*node)->Start();
  return std::move(node).value();
}

// The rows the worker's health counts.
uint64_t Rows(int port) {
  Result<it::HttpResponse> health = it::HttpGet(port, "/internal/v1/health");
  EXPECT_TRUE(health.ok()) << health.status().ToString();
  if (!health.ok()) return 0;
  EXPECT_EQ(health->status, 200);
  internal::v1::WorkerHealthResponse parsed;
  EXPECT_TRUE(parsed.ParseFromString(health->body));
  EXPECT_EQ(parsed.worker_id(), 3u);
  return parsed.rows();
}

TEST(WorkerNodeTest, RunsInProcessAndKeepsWhatItStoredAcrossARestart) {
  TempDir dir;
  std::unique_ptr<WorkerNode> node = StartNode(dir);
  ASSERT_NE(node, nullptr);
  const int port = node->port();
  ASSERT_NE(port, 0);
  internal::v1::WriteRequest write;
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

  node = StartNode(dir);
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(Rows(node->port()), 3u);
}

}  // namespace
}  // namespace das::worker
