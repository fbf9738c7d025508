// Replicated shards (docs/architecture.md) through the real binaries: the default two workers
// with the control node as witness, and three workers. Every kill is SIGKILL or SIGSTOP; every
// answer after it must be complete and exact once it says it is complete, and writes to every
// shard must go on.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "das/v1/internal.pb.h"
#include "support/api.h"
#include "support/cluster.h"
#include "support/replicated.h"

namespace das::it {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kShards = 16;  // the binary's default

class ReplicationTest : public ClusterTest {
 protected:
  testing::AssertionResult WriteEveryShard(const std::string& round, double value,
                                           Expected& expected) {
    return it::WriteEveryShard(port(), kShards, round, value, expected);
  }
  testing::AssertionResult ExpectCompleteAndExact(const Expected& expected, uint32_t total_nodes) {
    return it::ExpectCompleteAndExact(port(), expected, total_nodes);
  }

  v1::HealthResponse Health() {
    Result<HttpResponse> r = HttpGet(port(), "/health");
    v1::HealthResponse health;
    EXPECT_TRUE(r.ok() && health.ParseFromString(r->body)) << r.status().ToString();
    return health;
  }

  // Polls until every worker's /health reports `rows` over its replicas (each worker holds a
  // replica of every shard here): a restarted replica catches up from the log.
  testing::AssertionResult EveryWorkerHolds(uint64_t rows) {
    const auto deadline = Clock::now() + kRecoveryBound;
    std::string last;
    while (Clock::now() < deadline) {
      const v1::HealthResponse health = Health();
      bool all = health.workers_size() == cluster_.num_workers();
      for (const v1::WorkerStatus& w : health.workers()) all = all && w.rows() == rows;
      if (all) return testing::AssertionSuccess();
      last = health.ShortDebugString().substr(0, 600);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return testing::AssertionFailure() << "not every worker holds " << rows << " rows: " << last;
  }

  // Polls /analytics until responding_nodes is `n`: a worker no shard's read needed counts as
  // responding while its health answers (the control node checks every second).
  testing::AssertionResult EventuallyResponding(uint32_t n) {
    const auto deadline = Clock::now() + kRecoveryBound;
    std::string last;
    while (Clock::now() < deadline) {
      Result<Analytics> a = GetAnalytics(port());
      if (a.ok() && a->body.responding_nodes() == n) return testing::AssertionSuccess();
      last = a.ok() ? a->body.ShortDebugString() : a.status().ToString();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return testing::AssertionFailure() << "responding_nodes never " << n << ": " << last;
  }
};

TEST_F(ReplicationTest, HealthListsEveryShardWithItsReplicasAndLeadersSpreadEvenly) {
  ASSERT_TRUE(cluster_.Start());
  // The balancer hands every shard to its preferred worker (s mod 2) once it is caught up.
  const auto deadline = Clock::now() + kRecoveryBound;
  std::map<std::string, int> leaders;
  v1::HealthResponse health;
  while (Clock::now() < deadline) {
    health = Health();
    leaders.clear();
    for (const v1::ShardStatus& shard : health.shards()) ++leaders[shard.leader()];
    if (leaders["worker-1"] == 8 && leaders["worker-2"] == 8) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(leaders["worker-1"], 8) << health.ShortDebugString();
  EXPECT_EQ(leaders["worker-2"], 8) << health.ShortDebugString();
  EXPECT_EQ(health.status(), "ok");
  EXPECT_EQ(health.replication_factor(), 3u);
  ASSERT_EQ(health.shards_size(), kShards);
  for (int s = 0; s < kShards; ++s) {
    const v1::ShardStatus& shard = health.shards(s);
    EXPECT_EQ(shard.shard(), static_cast<uint32_t>(s));
    EXPECT_EQ(shard.first_slot(), static_cast<uint32_t>(s * 256));
    EXPECT_EQ(shard.end_slot(), static_cast<uint32_t>((s + 1) * 256));
    EXPECT_TRUE(shard.healthy());
    EXPECT_GE(shard.term(), 1u);
    ASSERT_EQ(shard.replicas_size(), 3);
    EXPECT_EQ(shard.replicas(0).node(), "worker-" + std::to_string(s % 2 + 1));
    EXPECT_EQ(shard.replicas(1).node(), "worker-" + std::to_string((s + 1) % 2 + 1));
    EXPECT_EQ(shard.replicas(2).node(), "witness");
    for (const v1::ReplicaStatus& replica : shard.replicas()) EXPECT_TRUE(replica.live());
  }
}

// Two workers and the witness: any one of the three killed, every answer complete and exact,
// every shard takes writes; the restarted worker catches up, the restarted control node
// reloads its witness logs and topology from its data dir.
TEST_F(ReplicationTest, TwoWorkersWithWitnessSurviveTheKillOfEachNode) {
  ASSERT_TRUE(cluster_.Start());
  Expected expected;
  ASSERT_TRUE(WriteEveryShard("before", 1.0, expected));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));

  for (int victim = 0; victim < 2; ++victim) {
    ASSERT_TRUE(cluster_.KillWorker(victim));
    ASSERT_TRUE(
        WriteEveryShard("without" + std::to_string(victim), 100.0 * (victim + 1), expected));
    ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
    EXPECT_TRUE(EventuallyResponding(1));
    ASSERT_TRUE(cluster_.RestartWorker(victim));
    ASSERT_TRUE(cluster_.WaitClusterOk());
    EXPECT_TRUE(EveryWorkerHolds(expected.count()));
    EXPECT_TRUE(EventuallyResponding(2));
  }

  ASSERT_TRUE(cluster_.KillControl());
  ASSERT_TRUE(cluster_.RestartControl());
  ASSERT_TRUE(cluster_.WaitClusterOk());
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
  ASSERT_TRUE(WriteEveryShard("after-control", 1000.0, expected));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
}

// Three workers: each one killed in turn (each leads some shards and follows in others).
TEST_F(ReplicationTest, ThreeWorkersSurviveTheKillOfAnyWorkerAndCatchUp) {
  ClusterOptions options;
  options.workers = 3;
  ASSERT_TRUE(cluster_.Start(options));
  Expected expected;
  ASSERT_TRUE(WriteEveryShard("three", 1.0, expected));
  for (int victim = 0; victim < 3; ++victim) {
    ASSERT_TRUE(cluster_.KillWorker(victim));
    ASSERT_TRUE(
        WriteEveryShard("three-without" + std::to_string(victim), 10.0 * (victim + 1), expected));
    ASSERT_TRUE(ExpectCompleteAndExact(expected, 3));
    ASSERT_TRUE(cluster_.RestartWorker(victim));
    ASSERT_TRUE(cluster_.WaitClusterOk());
  }
  EXPECT_TRUE(EveryWorkerHolds(expected.count()));
}

// A worker's replicas per shard, from its internal health (protobuf).
std::map<uint32_t, internal::v1::ReplicaHealth> ReplicasOf(int worker_port) {
  std::map<uint32_t, internal::v1::ReplicaHealth> out;
  Result<HttpResponse> r = HttpGet(worker_port, "/internal/v1/health");
  internal::v1::WorkerHealthResponse health;
  EXPECT_TRUE(r.ok() && r->status == 200 && health.ParseFromString(r->body))
      << (r.ok() ? r->body.substr(0, 300) : r.status().ToString());
  for (const internal::v1::ReplicaHealth& replica : health.replicas())
    out[replica.shard()] = replica;
  return out;
}

// A worker away while its shards' logs moved past what the leaders keep (each snapshot drops
// all but 16 entries here) cannot catch up from the log: its replicas fetch a copy of another
// data replica's DuckDB data out of band, install it and follow the log from there. Every copy
// is counted, the copied replicas hold what the others hold, apply what comes after, and serve
// complete, exact answers once they lead.
TEST_F(ReplicationTest, ReplicaBehindTheLeadersLogCatchesUpFromACopy) {
  ClusterOptions options;
  options.workers = 3;
  options.worker_flags = {"--raft-snapshot-threshold", "16", "--raft-snapshot-trailing", "16"};
  ASSERT_TRUE(cluster_.Start(options));
  Expected expected;
  ASSERT_TRUE(WriteEveryShard("copy-before", 1.0, expected));
  // Worker 3's last log index, per shard, at most: its commit index, plus the entries it
  // appended whose commit it had not heard of yet when it was killed (the last write's, a read
  // barrier's), a few at most; kSlack more.
  constexpr uint64_t kSlack = 16;
  std::map<uint32_t, uint64_t> last_of_3;
  for (const auto& [shard, replica] : ReplicasOf(cluster_.worker_port(2))) {
    last_of_3[shard] = replica.commit_index() + kSlack;
  }
  ASSERT_EQ(last_of_3.size(), static_cast<size_t>(kShards));
  ASSERT_TRUE(cluster_.KillWorker(2));
  // One entry per shard per batch, until both other replicas of every shard took a snapshot
  // more than 16 entries (the trailing log) past worker 3's end: then no leader holds the
  // entries it lacks. Snapshots wait for the store, so on a loaded machine this takes more
  // batches; the bound is for liveness only.
  const std::vector<std::string> keys = KeyPerShard(kShards, "copy");
  auto truncated_past_3 = [&] {
    for (int w = 0; w < 2; ++w) {
      for (const auto& [shard, replica] : ReplicasOf(cluster_.worker_port(w))) {
        if (replica.snapshot_index() <= last_of_3[shard] + 16 + 1) return false;
      }
    }
    return true;
  };
  for (int round = 0; round < 5000 && (round < 64 || !truncated_past_3()); ++round) {
    std::vector<TestRow> rows;
    for (int s = 0; s < kShards; ++s) rows.push_back({keys[s], round * 100.0 + s});
    ASSERT_TRUE(BatchOk(port(), rows, "", rows.size()));
    expected.Add(rows);
  }
  ASSERT_TRUE(truncated_past_3()) << "the logs were never truncated past worker 3";
  // Keys worker 3 only ever sees in its copies.
  ASSERT_TRUE(WriteEveryShard("copy-during", 5.0, expected));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 3));

  ASSERT_TRUE(cluster_.RestartWorker(2));  // until its replicas are live and caught up
  const std::map<uint32_t, internal::v1::ReplicaHealth> copied =
      ReplicasOf(cluster_.worker_port(2));
  ASSERT_EQ(copied.size(), static_cast<size_t>(kShards));
  uint64_t served = 0;
  for (int w = 0; w < 2; ++w) {
    for (const auto& [shard, replica] : ReplicasOf(cluster_.worker_port(w))) {
      served += replica.copies_served();
    }
  }
  for (const auto& [shard, replica] : copied) {
    EXPECT_GE(replica.copies_installed(), 1u) << "shard " << shard << " caught up from the log";
  }
  EXPECT_GE(served, static_cast<uint64_t>(kShards));

  ASSERT_TRUE(WriteEveryShard("copy-after", 10000.0, expected));
  EXPECT_TRUE(EveryWorkerHolds(expected.count()));
  // Shard by shard, the copied replica holds the rows the others hold.
  const std::map<uint32_t, internal::v1::ReplicaHealth> first = ReplicasOf(cluster_.worker_port(0));
  for (const auto& [shard, replica] : ReplicasOf(cluster_.worker_port(2))) {
    EXPECT_EQ(replica.rows(), first.at(shard).rows()) << "shard " << shard;
  }
  // Without worker 1, worker 3's copies lead some shards (the balancer hands each shard to its
  // preferred worker, shard s to worker s mod 3 + 1): answers stay exact, and retries of the
  // keys it only knows from its copies are duplicates, never stored again.
  ASSERT_TRUE(cluster_.KillWorker(0));
  ASSERT_TRUE(WriteEveryShard("copy-without-1", 20000.0, expected));
  ASSERT_TRUE(cluster_.PollControlHealth(
      kRecoveryBound,
      [](const v1::HealthResponse& health) {
        for (const v1::ShardStatus& shard : health.shards()) {
          if (shard.leader() == "worker-3") return true;
        }
        return false;
      },
      "worker 3 leading a shard"));
  Expected retried;
  ASSERT_TRUE(WriteEveryShard("copy-during", 5.0, retried));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 3));
}

// A hung leader (SIGSTOP): its shards elect new leaders, writes and complete reads go on; once
// it runs again it follows and catches up.
TEST_F(ReplicationTest, StoppedLeaderIsReplacedAndCatchesUpWhenContinued) {
  ASSERT_TRUE(cluster_.Start());
  Expected expected;
  ASSERT_TRUE(WriteEveryShard("stop-before", 1.0, expected));
  ASSERT_TRUE(cluster_.StopWorker(0));
  ASSERT_TRUE(WriteEveryShard("stopped", 50.0, expected));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
  ASSERT_TRUE(cluster_.ContinueWorker(0));
  ASSERT_TRUE(cluster_.WaitClusterOk());
  EXPECT_TRUE(EveryWorkerHolds(expected.count()));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
}

// Rounds of kills in a churn test: DAS_CHURN_ROUNDS (bench/soak.sh runs many), else 3.
int ChurnRounds() {
  const char* rounds = std::getenv("DAS_CHURN_ROUNDS");
  return rounds != nullptr && std::atoi(rounds) > 0 ? std::atoi(rounds) : 3;
}

// Six writers send keyed batches, each retried until 200, while nodes are killed (SIGKILL) and
// restarted at random (the workers, and with `kill_control` the control node, which is the
// witness of a two-worker cluster); afterwards every acknowledged row is there exactly once, on
// every worker.
class ReplicationChurnTest : public ReplicationTest {
 protected:
  void Churn(int workers, bool kill_control, ClusterOptions options = {});
};

void ReplicationChurnTest::Churn(int workers, bool kill_control, ClusterOptions options) {
  Cluster& cluster = cluster_;
  options.workers = workers;
  ASSERT_TRUE(cluster.Start(options));
  constexpr int kWriters = 6;
  constexpr int kRowsPerBatch = 4;
  auto value = [](int w, int b, int r) { return 0.25 * (w * 100000 + b * kRowsPerBatch + r + 1); };
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> acked{0};              // batches acknowledged, over all writers
  std::vector<int> batches(kWriters, 0);  // acknowledged, per writer
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int b = 0; !stop.load() || b < 5; ++b) {
        std::vector<TestRow> rows;
        for (int r = 0; r < kRowsPerBatch; ++r) {
          rows.push_back(
              {"churn-" + std::to_string(w) + "-" + std::to_string(b * 7 + r), value(w, b, r)});
        }
        const std::string key = "churn-" + std::to_string(w) + "-" + std::to_string(b);
        const auto deadline = Clock::now() + std::chrono::seconds(60);
        for (;;) {
          Result<HttpResponse> r = PostBatch(cluster.control_port(), rows, key);
          if (r.ok() && r->status == 200) break;
          if (Clock::now() > deadline) {
            ++failures;
            return;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        batches[w] = b + 1;
        ++acked;
      }
    });
  }
  // Orders the kills by events, not by the clock: each waits for this many more acknowledged
  // batches (bounded, in case no write gets through at all).
  auto writes_progress = [&](int more) {
    const int target = acked.load() + more;
    const auto until = Clock::now() + kRecoveryBound;
    while (acked.load() < target && failures.load() == 0 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return acked.load() >= target;
  };
  std::mt19937 random(7);
  const int kinds = workers + (kill_control ? 1 : 0);
  for (int round = 0; round < ChurnRounds(); ++round) {
    const int victim = static_cast<int>(random() % kinds);
    EXPECT_TRUE(writes_progress(kWriters)) << "no writes before the kill of round " << round;
    if (victim == workers) {
      EXPECT_TRUE(cluster.KillControl());
      EXPECT_TRUE(cluster.RestartControl());
    } else {
      EXPECT_TRUE(cluster.KillWorker(victim));
      // Writes go on with the worker down (the other replicas hold every shard's majority).
      EXPECT_TRUE(writes_progress(kWriters)) << "no writes with worker " << victim << " down";
      // Back and caught up before the next kill: one node down at a time, the loss the
      // cluster claims to survive.
      EXPECT_TRUE(cluster.RestartWorker(victim));
    }
  }
  stop = true;
  for (std::thread& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  Expected expected;
  for (int w = 0; w < kWriters; ++w) {
    for (int b = 0; b < batches[w]; ++b) {
      for (int r = 0; r < kRowsPerBatch; ++r) expected.Add(value(w, b, r));
    }
  }
  std::cout << expected.count() << " rows acknowledged in " << ChurnRounds() << " rounds\n";
  ASSERT_TRUE(cluster.WaitClusterOk());
  ASSERT_TRUE(ExpectCompleteAndExact(expected, static_cast<uint32_t>(workers)));
  EXPECT_TRUE(EveryWorkerHolds(expected.count()));
}

TEST_F(ReplicationChurnTest, KilledWorkersLoseAndDuplicateNoAcknowledgedRow) {
  ASSERT_NO_FATAL_FAILURE(Churn(3, false));
}

TEST_F(ReplicationChurnTest, KilledWorkersAndWitnessLoseAndDuplicateNoAcknowledgedRow) {
  ASSERT_NO_FATAL_FAILURE(Churn(2, true));
}

// The same with logs kept as short as they can be (a snapshot every 16 entries, 16 kept, on
// the workers; the witness's 1 MiB over its 16 groups): snapshots name entries their stores have
// not committed yet, so a worker killed -9 finds its store behind its snapshot, and catches up
// from what its log kept (replayed at start) or from a copy.
TEST_F(ReplicationChurnTest, KilledNodesWithShortLogsLoseAndDuplicateNoAcknowledgedRow) {
  ClusterOptions options;
  options.worker_flags = {
      "--raft-snapshot-threshold",    "16", "--raft-snapshot-trailing", "16", "--raft-log-mb", "1",
      "--replica-commit-interval-ms", "50"};
  options.control_flags = {"--raft-log-mb", "1"};
  ASSERT_NO_FATAL_FAILURE(Churn(2, true, options));
}

// A network partition cuts off a worker that leads shards (a proxy in front of every raft port
// drops its traffic both ways): the majority elects new leaders and goes on, complete and
// exact; the cut-off worker answers no read (it cannot confirm it leads, so it would be stale);
// healed, it catches up.
TEST_F(ReplicationTest, APartitionedLeaderServesNoStaleReadAndTheMajorityGoesOn) {
  ClusterOptions options;
  options.workers = 3;
  options.raft_proxies = true;
  ASSERT_TRUE(cluster_.Start(options));
  // Worker 1 is shard 0's preferred leader; wait until it leads it.
  const auto deadline = Clock::now() + kRecoveryBound;
  while (Clock::now() < deadline && Health().shards(0).leader() != "worker-1") {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(Health().shards(0).leader(), "worker-1");
  Expected expected;
  ASSERT_TRUE(WriteEveryShard("partition-before", 1.0, expected));

  cluster_.raft_proxy(0).Isolate();
  cluster_.raft_proxy(1).DropFrom(1);
  cluster_.raft_proxy(2).DropFrom(1);
  ASSERT_TRUE(WriteEveryShard("partitioned", 100.0, expected));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 3));

  internal::v1::ShardQuery read;
  read.set_shard(0);
  Result<HttpResponse> stale =
      HttpPost(cluster_.worker_port(0), "/internal/v1/query", read.SerializeAsString(), kProtobuf,
               std::chrono::seconds(5));
  if (stale.ok() && stale->status == 200) {
    internal::v1::ShardQueryResponse body;
    ASSERT_TRUE(body.ParseFromString(stale->body));
    ADD_FAILURE() << "the cut-off worker served a read of shard 0: " << body.ShortDebugString();
  }

  for (int i = 0; i < 3; ++i) cluster_.raft_proxy(i).Heal();
  ASSERT_TRUE(cluster_.WaitClusterOk());
  EXPECT_TRUE(EveryWorkerHolds(expected.count()));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 3));
}

// A key reused with other rows is refused whole through the key's home shard, also after every
// node restarted; the first batch's retry is still a 200 that stores nothing.
TEST_F(ReplicationTest, ReusedKeyIsRefusedThroughTheLogAcrossRestarts) {
  ASSERT_TRUE(cluster_.Start());
  const std::vector<std::string> keys = KeyPerShard(kShards, "reuse");
  const std::vector<TestRow> first = {{keys[0], 1.0}, {keys[5], 2.0}};
  ASSERT_TRUE(BatchOk(port(), first, "R1", 2));
  Expected expected;
  expected.Add(first);
  auto refused = [&](const std::vector<TestRow>& rows) {
    v1::ErrorResponse error;
    EXPECT_TRUE(IsError(PostBatch(port(), rows, "R1"), 422, Encoding::kProtobuf, &error));
    EXPECT_EQ(error.rows_written(), 0u);
  };
  refused({{keys[9], 3.0}, {keys[12], 4.0}});
  refused({{keys[0], 1.0}});
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.RestartWorker(1));
  ASSERT_TRUE(cluster_.RestartControl());
  ASSERT_TRUE(cluster_.WaitClusterOk());
  refused({{keys[3], 3.0}});
  ASSERT_TRUE(BatchOk(port(), first, "R1", 2));
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
}

// POST /internal/v1/shard/writes, the control node's merged shard writes to one worker, sent
// by hand: each write has the outcome it would have alone (a led shard's rows stored, a shard
// led elsewhere NOT_LEADER with its leader, a write without a shard refused, an invalid row
// refusing only its own sub-batch); a retry with the same request ids stores nothing again;
// a request over the limit or undecodable is refused whole and changes nothing.
TEST_F(ReplicationTest, MergedShardWritesHaveEachTheirOwnOutcome) {
  ASSERT_TRUE(cluster_.Start());
  // Wait until worker 1 leads some shard and worker 2 another.
  int led = -1;
  int elsewhere = -1;
  const auto deadline = Clock::now() + kRecoveryBound;
  while (Clock::now() < deadline && (led < 0 || elsewhere < 0)) {
    led = elsewhere = -1;
    const v1::HealthResponse health = Health();
    for (const v1::ShardStatus& shard : health.shards()) {
      if (shard.leader() == "worker-1" && led < 0) led = static_cast<int>(shard.shard());
      if (shard.leader() == "worker-2" && elsewhere < 0)
        elsewhere = static_cast<int>(shard.shard());
    }
    if (led < 0 || elsewhere < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(led, 0);
  ASSERT_GE(elsewhere, 0);
  const std::vector<std::string> keys = KeyPerShard(kShards, "merged");
  auto add_batch = [](internal::v1::WriteRequest& write, std::vector<TestRow> rows) {
    internal::v1::SubBatch* batch = write.add_batches();
    for (const TestRow& row : rows) {
      internal::v1::RowWire* wire = batch->add_rows();
      wire->set_partition_key(row.key);
      wire->set_value(row.value);
    }
  };
  internal::v1::ShardWritesRequest request;
  internal::v1::WriteRequest* stored = request.add_writes();
  stored->set_shard(static_cast<uint32_t>(led));
  stored->set_request_id(0x5eed000000000001);
  add_batch(*stored, {{keys[led], 1.5}, {keys[led], 2.5}});
  internal::v1::WriteRequest* not_led = request.add_writes();
  not_led->set_shard(static_cast<uint32_t>(elsewhere));
  not_led->set_request_id(0x5eed000000000002);
  add_batch(*not_led, {{keys[elsewhere], 100.0}});
  internal::v1::WriteRequest* no_shard = request.add_writes();
  no_shard->set_request_id(0x5eed000000000003);
  add_batch(*no_shard, {{keys[led], 1000.0}});
  internal::v1::WriteRequest* mixed = request.add_writes();
  mixed->set_shard(static_cast<uint32_t>(led));
  mixed->set_request_id(0x5eed000000000004);
  add_batch(*mixed, {{keys[led], 4.0}});
  add_batch(*mixed, {{keys[led], 10000.0}, {"", 1.0}});
  request.set_timeout_ms(5000);

  auto send = [&](const internal::v1::ShardWritesRequest& body) {
    internal::v1::ShardWritesResponse response;
    Result<HttpResponse> r = HttpPost(cluster_.worker_port(0), "/internal/v1/shard/writes",
                                      body.SerializeAsString(), kProtobuf);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) {
      EXPECT_EQ(r->status, 200) << r->body;
      EXPECT_TRUE(response.ParseFromString(r->body));
    }
    return response;
  };
  using internal::v1::ErrorStatus;
  using internal::v1::SubBatchResult;
  for (int attempt = 0; attempt < 2; ++attempt) {  // the second: a retry, answered the same
    SCOPED_TRACE(attempt == 0 ? "first" : "retry");
    const internal::v1::ShardWritesResponse response = send(request);
    ASSERT_EQ(response.outcomes_size(), 4) << response.ShortDebugString();
    const internal::v1::ShardWriteOutcome& ok = response.outcomes(0);
    ASSERT_FALSE(ok.has_error()) << ok.ShortDebugString();
    ASSERT_EQ(ok.response().results_size(), 1);
    EXPECT_EQ(ok.response().results(0).code(), SubBatchResult::OK);
    EXPECT_EQ(ok.response().results(0).rows_written(), 2u);
    const internal::v1::ShardWriteOutcome& redirected = response.outcomes(1);
    ASSERT_TRUE(redirected.has_error()) << redirected.ShortDebugString();
    EXPECT_EQ(redirected.error().code(), ErrorStatus::NOT_LEADER);
    EXPECT_FALSE(redirected.error().detail().empty()) << "no leader hint";
    const internal::v1::ShardWriteOutcome& refused = response.outcomes(2);
    ASSERT_TRUE(refused.has_error()) << refused.ShortDebugString();
    EXPECT_EQ(refused.error().code(), ErrorStatus::INVALID_ARGUMENT);
    const internal::v1::ShardWriteOutcome& partly = response.outcomes(3);
    ASSERT_FALSE(partly.has_error()) << partly.ShortDebugString();
    ASSERT_EQ(partly.response().results_size(), 2);
    EXPECT_EQ(partly.response().results(0).code(), SubBatchResult::OK);
    EXPECT_EQ(partly.response().results(0).rows_written(), 1u);
    EXPECT_EQ(partly.response().results(1).code(), SubBatchResult::INVALID_ARGUMENT);
    EXPECT_EQ(partly.response().results(1).rows_written(), 0u);
  }

  internal::v1::ShardWritesRequest too_many;
  for (int i = 0; i < 1025; ++i) {
    internal::v1::WriteRequest* write = too_many.add_writes();
    write->set_shard(static_cast<uint32_t>(led));
    write->set_request_id(0x5eed000000010000 + static_cast<uint64_t>(i));
    add_batch(*write, {{keys[led], 7.0}});
  }
  for (const std::string& body : {too_many.SerializeAsString(), std::string("\xff\xff\xff")}) {
    Result<HttpResponse> r =
        HttpPost(cluster_.worker_port(0), "/internal/v1/shard/writes", body, kProtobuf);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_GE(r->status, 400);
    ErrorStatus error;
    ASSERT_TRUE(error.ParseFromString(r->body));
    EXPECT_TRUE(error.code() == ErrorStatus::INVALID_ARGUMENT ||
                error.code() == ErrorStatus::MALFORMED)
        << error.ShortDebugString();
  }

  Expected expected;
  expected.Add({{keys[led], 1.5}, {keys[led], 2.5}, {keys[led], 4.0}});
  ASSERT_TRUE(ExpectCompleteAndExact(expected, 2));
}

}  // namespace
}  // namespace das::it
