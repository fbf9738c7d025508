// A control node run in process (control/node.h) over two worker nodes, also in process, on
// free ports and temporary directories: the wiring the binaries use, served over real HTTP.
#include "control/node.h"

#include <chrono>
#include <csignal>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "../temp_dir.h"
#include "support/http_client.h"
#include "support/process.h"
#include "worker/node.h"

namespace das::control {
namespace {

class ControlNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint32_t id = 1; id <= 2; ++id) {
      worker::WorkerNodeOptions options;
      options.id = id;
      options.store.data_dir = dir_.path() + "/worker-" + std::to_string(id);
      options.store.disk_reserve_bytes = 1 << 20;
      options.raft_port = static_cast<uint16_t>(it::FreePort());  // its health names it
      Result<std::unique_ptr<worker::WorkerNode>> node = worker::WorkerNode::Open(options);
      ASSERT_TRUE(node.ok()) << node.status().ToString();
      (*node)->Start();
      workers_.push_back(std::move(node).value());
    }
  }

  // The cluster of the two workers with --replication-factor 1, on a free port.
  ControlNodeOptions Options() const {
    ControlNodeOptions options;
    for (const auto& worker : workers_) {
      options.service.workers.push_back(WorkerAddress{"127.0.0.1", worker->port()});
    }
    options.service.replication.replication_factor = 1;
    options.service.replication.data_dir = dir_.path() + "/control";
    options.server.port = 0;
    return options;
  }

  std::unique_ptr<ControlNode> StartNode(ControlNodeOptions options) {
    // The node's own word that it serves (every shard had a leader), not a poll of /health.
    auto serving = std::make_shared<std::promise<void>>();
    std::future<void> served = serving->get_future();
    options.service.serving = [serving] { serving->set_value(); };
    Result<std::unique_ptr<ControlNode>> node = ControlNode::Create(std::move(options));
    EXPECT_TRUE(node.ok()) << node.status().ToString();
    if (!node.ok()) return nullptr;
    Status listening = (*node)->Listen();
    EXPECT_TRUE(listening.ok()) << listening.ToString();
    if (!listening.ok()) return nullptr;
    (*node)->Start();
    // Bounded: the shards form in about a second.
    if (served.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      ADD_FAILURE() << "the control node never said it serves";
      return nullptr;
    }
    Result<it::HttpResponse> health = it::HttpGet((*node)->port(), "/health");
    EXPECT_TRUE(health.ok() && health->status == 200);
    return std::move(node).value();
  }

  void WriteFile(const std::string& path, const std::string& text) const {
    std::ofstream(path, std::ios::trunc) << text;
  }

  TempDir dir_{"das_control_node_test"};
  std::vector<std::unique_ptr<worker::WorkerNode>> workers_;
};

it::HttpResponse Post(int port, const std::string& target, const std::string& json,
                      const std::string& token = "") {
  it::HttpRequest request;
  request.method = "POST";
  request.target = target;
  request.headers = {{"Content-Type", "application/json"}};
  if (!token.empty()) request.headers.emplace_back("Authorization", "Bearer " + token);
  request.body = json;
  Result<it::HttpResponse> response = it::HttpDo(port, request);
  EXPECT_TRUE(response.ok()) << response.status().ToString();
  return response.ok() ? *response : it::HttpResponse{};
}

constexpr const char* kBatch =
    R"({"rows":[{"partition_key":"a","value":1},{"partition_key":"b","value":2},)"
    R"({"partition_key":"c","value":4}]})";

TEST_F(ControlNodeTest, ServesTheApiOverItsWorkers) {
  std::unique_ptr<ControlNode> node = StartNode(Options());
  ASSERT_NE(node, nullptr);
  ASSERT_NE(node->port(), 0);
  it::HttpResponse written = Post(node->port(), "/insert/batch", kBatch);
  ASSERT_EQ(written.status, 200) << written.body;
  Result<it::HttpResponse> analytics = it::HttpGet(node->port(), "/analytics?format=json");
  ASSERT_TRUE(analytics.ok()) << analytics.status().ToString();
  EXPECT_EQ(analytics->status, 200) << analytics->body;
  EXPECT_NE(analytics->body.find("\"count\":\"3\""), std::string::npos) << analytics->body;
  EXPECT_NE(analytics->body.find("\"sum\":7"), std::string::npos) << analytics->body;
  Result<it::HttpResponse> metrics = it::HttpGet(node->port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("das_http_requests_total"), std::string::npos);
  node->Stop();
  node->Stop();  // twice is fine
}

// SIGHUP reads the token file again: a token added to it is accepted afterwards, without a
// restart; the one taken out is refused.
TEST_F(ControlNodeTest, ReadsItsTokenFileAgainOnSighup) {
  const std::string tokens = dir_.path() + "/tokens";
  WriteFile(tokens, "first-token-0123456789 alice write\n");
  ControlNodeOptions options = Options();
  options.auth_tokens_file = tokens;
  std::promise<Status> reread;
  options.tokens_reread = [&reread](const Status& status) { reread.set_value(status); };
  std::unique_ptr<ControlNode> node = StartNode(options);
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(Post(node->port(), "/insert/batch", kBatch, "first-token-0123456789").status, 200);
  EXPECT_EQ(Post(node->port(), "/insert/batch", kBatch, "second-token-0123456789").status, 401);

  WriteFile(tokens, "second-token-0123456789 bob write\n");
  ASSERT_EQ(std::raise(SIGHUP), 0);
  // The signal is handled on the node's threads: once it says the file was read, the new
  // tokens are in use.
  const Status outcome = reread.get_future().get();
  EXPECT_TRUE(outcome.ok()) << outcome.ToString();
  EXPECT_EQ(Post(node->port(), "/insert/batch", kBatch, "second-token-0123456789").status, 200);
  EXPECT_EQ(Post(node->port(), "/insert/batch", kBatch, "first-token-0123456789").status, 401);
}

// What the binary's exit code follows: Create fails on the configuration (2), Listen with
// kInvalidArgument on a TLS file (2), with another code on the port (1).
TEST_F(ControlNodeTest, SaysWhichStepFailed) {
  ControlNodeOptions bad_tokens = Options();
  bad_tokens.auth_tokens_file = dir_.path() + "/no-such-file";
  EXPECT_FALSE(ControlNode::Create(bad_tokens).ok());

  ControlNodeOptions bad_tls = Options();
  bad_tls.server.tls_cert_file = dir_.path() + "/no-such-cert.pem";
  bad_tls.server.tls_key_file = dir_.path() + "/no-such-key.pem";
  Result<std::unique_ptr<ControlNode>> tls = ControlNode::Create(bad_tls);
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  EXPECT_EQ((*tls)->Listen().code(), StatusCode::kInvalidArgument);

  std::unique_ptr<ControlNode> first = StartNode(Options());
  ASSERT_NE(first, nullptr);
  ControlNodeOptions taken = Options();
  taken.server.port = first->port();
  Result<std::unique_ptr<ControlNode>> second = ControlNode::Create(taken);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  const Status listening = (*second)->Listen();
  EXPECT_FALSE(listening.ok());
  EXPECT_NE(listening.code(), StatusCode::kInvalidArgument) << listening.ToString();
}

}  // namespace
}  // namespace das::control
