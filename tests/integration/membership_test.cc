// Elastic membership (docs/operations.md, "Membership") through the real binaries: workers join a
// running cluster (--join) and receive their share, are decommissioned and leave, come back as new
// members after losing their data; the control node is killed in the middle of a move. Every
// answer that says it is complete must be exact, before, during and after each move.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "das/v1/internal.pb.h"

#include "support/api.h"
#include "support/cluster.h"
#include "support/replicated.h"

namespace das::it {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kShards = 8;
// A move's stages take a few of the rebalancer's ticks each; a loaded 2-core machine is slow.
constexpr auto kRebalanceBound = std::chrono::seconds(240);

ClusterOptions Shards(ClusterOptions options = {}) {
  options.shards = kShards;
  return options;
}

// Keyed batches written in the background until stopped, each retried with its key until 200
// (a retry never stores twice), so every acknowledged row is known. Analytics are read between
// batches: a complete answer must never count more rows than were sent, nor fewer than were
// acknowledged before it was asked.
class Writer {
 public:
  // Adds what is acknowledged to `acknowledged`, which nobody else touches until Stop().
  Writer(int port, Expected& acknowledged) : port_(port), acknowledged_(acknowledged) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Writer() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // REQUIRES: stopped.
  int batches() const { return batches_; }
  const std::string& error() const { return error_; }

 private:
  void Run() {
    for (int b = 0; !stop_ && b < 100000; ++b) {
      std::vector<TestRow> rows;
      for (int i = 0; i < 20; ++i) rows.push_back({"w-" + std::to_string(b * 20 + i), 1.0 * i});
      const std::string key = "writer-" + std::to_string(b);
      const auto deadline = Clock::now() + kRecoveryBound;
      for (;;) {
        Result<HttpResponse> r = PostBatch(port_, rows, key);
        if (r.ok() && r->status == 200) break;
        if (Clock::now() > deadline) {
          error_ = "batch " + std::to_string(b) + " never acknowledged: " +
                   (r.ok() ? std::to_string(r->status) + " " + r->body.substr(0, 200)
                           : r.status().ToString());
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      const uint64_t before = acknowledged_.count() + rows.size();
      acknowledged_.Add(rows);
      ++batches_;
      // Between batches: a complete answer counts every acknowledged row and nothing else.
      Result<Analytics> a = GetAnalytics(port_);
      if (a.ok() && a->http_status == 200 && !a->body.is_partial() && a->body.count() != before) {
        error_ = "a complete answer counted " + std::to_string(a->body.count()) + " rows, not " +
                 std::to_string(before) + ": " + a->body.ShortDebugString();
        return;
      }
    }
  }

  const int port_;
  std::atomic<bool> stop_{false};
  Expected& acknowledged_;
  int batches_ = 0;
  std::string error_;
  std::thread thread_;
};

class MembershipTest : public ClusterTest {
 protected:
  v1::HealthResponse Health() {
    Result<HttpResponse> r = HttpGet(port(), "/health");
    v1::HealthResponse health;
    EXPECT_TRUE(r.ok() && health.ParseFromString(r->body)) << r.status().ToString();
    return health;
  }

  // POST /admin/workers/<id>/decommission (202), then waits until the worker left: /health "ok"
  // with `workers_left` workers and the rebalancer balanced.
  testing::AssertionResult Decommission(uint64_t id, int workers_left) {
    Result<HttpResponse> drained =
        HttpPost(port(), "/admin/workers/" + std::to_string(id) + "/decommission", "", kJson);
    if (!drained.ok() || drained->status != 202) {
      return testing::AssertionFailure()
             << "decommission of worker " << id << ": "
             << (drained.ok() ? std::to_string(drained->status) + " " + drained->body
                              : drained.status().ToString());
    }
    return cluster_.PollControlHealth(
        kRebalanceBound,
        [workers_left](const v1::HealthResponse& health) {
          return health.status() == "ok" && health.workers_size() == workers_left &&
                 health.rebalance().balanced();
        },
        "worker " + std::to_string(id) + " leaving");
  }

  // How many shard replicas (voters) each node holds, by name.
  static std::map<std::string, int> VotersPerNode(const v1::HealthResponse& health) {
    std::map<std::string, int> out;
    for (const v1::ShardStatus& shard : health.shards()) {
      for (const v1::ReplicaStatus& replica : shard.replicas()) ++out[replica.node()];
    }
    return out;
  }

  // Every shard on `data` distinct workers and no witness.
  static testing::AssertionResult Placed(const v1::HealthResponse& health, int data, bool witness) {
    for (const v1::ShardStatus& shard : health.shards()) {
      std::set<std::string> nodes;
      int workers = 0;
      bool has_witness = false;
      for (const v1::ReplicaStatus& replica : shard.replicas()) {
        nodes.insert(replica.node());
        if (replica.node() == "witness") {
          has_witness = true;
        } else {
          ++workers;
        }
      }
      if (workers != data || has_witness != witness ||
          nodes.size() != static_cast<size_t>(shard.replicas_size())) {
        return testing::AssertionFailure()
               << "shard " << shard.shard() << " is placed on " << shard.ShortDebugString();
      }
    }
    return testing::AssertionSuccess();
  }

  Expected expected_;
};

// The main path: a third worker joins a loaded two-worker cluster (worker, worker, witness per
// shard), takes the witness's place in every shard and its share of leaders, while inserts and
// analytics go on; then each original worker is killed in turn and answers stay complete and
// exact.
TEST_F(MembershipTest, AThirdWorkerJoinsALoadedClusterAndEachOriginalCanThenDie) {
  // Logs compacted early, so that every new replica must start from a copy of another's data
  // (its leader's log no longer reaches back to the shard's first entry).
  ClusterOptions options = Shards();
  options.worker_flags = {"--raft-snapshot-threshold", "16", "--raft-snapshot-trailing", "16"};
  ASSERT_TRUE(cluster_.Start(options));
  for (int round = 0; round < 40; ++round) {
    ASSERT_TRUE(WriteEveryShard(port(), kShards, "before-" + std::to_string(round), 1, expected_));
  }
  {
    Writer writer(port(), expected_);
    int third = 0;
    ASSERT_TRUE(cluster_.AddWorker(&third));
    EXPECT_EQ(cluster_.worker_id(third), 3u);
    ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
    writer.Stop();
    ASSERT_EQ(writer.error(), "");
    EXPECT_GT(writer.batches(), 0);
  }
  // The rebalancer's plan is done once every preferred leader is named; the balancer hands each
  // shard over at its next tick: wait for the leaders to be spread.
  v1::HealthResponse health;
  auto spread = [](const v1::HealthResponse& h) {
    std::map<std::string, int> leaders;
    for (const v1::ShardStatus& shard : h.shards()) ++leaders[shard.leader()];
    if (leaders.size() != 3 || leaders.count("")) return false;
    for (const auto& [leader, n] : leaders) {
      if (n > kShards / 3 + 1) return false;
    }
    return true;
  };
  EXPECT_TRUE(cluster_.PollControlHealth(
      kRebalanceBound,
      [&](const v1::HealthResponse& h) {
        health = h;
        return spread(h);
      },
      "the leaders spread over the three workers"));
  EXPECT_TRUE(Placed(health, 3, false));
  const std::map<std::string, int> voters = VotersPerNode(health);
  for (const char* node : {"worker-1", "worker-2", "worker-3"}) {
    EXPECT_EQ(voters.count(node) ? voters.at(node) : 0, kShards) << node;
  }
  EXPECT_EQ(voters.count("witness"), 0u);
  std::map<std::string, int> leaders;
  for (const v1::ShardStatus& shard : health.shards()) ++leaders[shard.leader()];
  EXPECT_EQ(leaders.size(), 3u) << health.ShortDebugString();
  for (const auto& [leader, n] : leaders) EXPECT_LE(n, kShards / 3 + 1) << leader;
  EXPECT_GE(health.rebalance().moves_done(), static_cast<uint64_t>(kShards));
  // Every shard's new replica on worker 3 started from a copy of another's data.
  EXPECT_GT(health.rebalance().bytes_copied(), 0u) << health.rebalance().ShortDebugString();
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));

  // Each original worker in turn: killed, the answers stay complete and exact and every shard
  // takes writes; back, it catches up.
  for (int i : {0, 1}) {
    ASSERT_TRUE(cluster_.KillWorker(i));
    ASSERT_TRUE(WriteEveryShard(port(), kShards, "without-" + std::to_string(i), 10, expected_));
    ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));
    ASSERT_TRUE(cluster_.RestartWorker(i));
  }
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));
}

// A cluster that starts with no --workers forms once two workers joined (each join signed
// with the cluster secret); a worker that joins again (a restart: the same id, kept in its
// data directory) changes nothing.
TEST_F(MembershipTest, WorkersJoinAnEmptyControlNodeAndAJoinAgainChangesNothing) {
  const std::string secret = cluster_.dir() + "/cluster-secret";
  {
    std::ofstream file(secret);
    file << "a secret every node of this test shares\n";
  }
  ClusterOptions options = Shards();
  options.join = true;
  options.control_flags = {"--cluster-secret-file", secret};
  options.worker_flags = {"--cluster-secret-file", secret};
  ASSERT_TRUE(cluster_.Start(options));
  // A join that does not prove the secret is refused (401) and changes nothing.
  internal::v1::JoinRequest join;
  join.set_http_address("127.0.0.1:1");
  join.set_raft_port(2);
  Result<HttpResponse> unsigned_join =
      HttpPost(port(), "/internal/v1/join", join.SerializeAsString(), kProtobuf);
  ASSERT_TRUE(unsigned_join.ok());
  EXPECT_EQ(unsigned_join->status, 401) << unsigned_join->body;
  EXPECT_EQ(cluster_.worker_id(0) + cluster_.worker_id(1), 3u);  // ids 1 and 2
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "first", 1, expected_));
  const v1::HealthResponse before = Health();
  EXPECT_TRUE(Placed(before, 2, true));
  ASSERT_TRUE(cluster_.RestartWorker(0));
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  const v1::HealthResponse after = Health();
  EXPECT_EQ(after.rebalance().epoch(), before.rebalance().epoch());
  EXPECT_EQ(after.workers_size(), 2);
  EXPECT_EQ(after.rebalance().moves_done(), 0u);
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "second", 100, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
}

// POST /admin/workers/<id>/decommission under load: everything moves off the worker (the
// witness comes back: two workers remain), then it leaves and stops being counted.
TEST_F(MembershipTest, ADecommissionedWorkerIsDrainedUnderLoadAndLeaves) {
  ClusterOptions options = Shards();
  options.workers = 3;
  ASSERT_TRUE(cluster_.Start(options));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "before", 1, expected_));
  Result<HttpResponse> refused = HttpPost(port(), "/admin/workers/9/decommission", "", kJson);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 404) << refused->body;
  {
    Writer writer(port(), expected_);
    ASSERT_TRUE(Decommission(3, 2));
    writer.Stop();
    ASSERT_EQ(writer.error(), "");
  }
  const v1::HealthResponse health = Health();
  EXPECT_TRUE(Placed(health, 2, true));
  EXPECT_EQ(VotersPerNode(health).count("worker-3"), 0u);
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  // Draining a second one would leave a single worker for replication factor 3.
  Result<HttpResponse> too_few = HttpPost(port(), "/admin/workers/2/decommission", "", kJson);
  ASSERT_TRUE(too_few.ok());
  EXPECT_EQ(too_few->status, 409) << too_few->body;
  // The drained worker is stopped by its operator; nothing misses it.
  ASSERT_TRUE(cluster_.KillWorker(2));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "after", 50, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
}

// A worker whose data directory was emptied is a new worker: it joins under a new id, the old
// one's replicas are replaced (never trusted), and the cluster returns to full replication.
TEST_F(MembershipTest, AWorkerRestartedEmptyComesBackAsANewMember) {
  ClusterOptions options = Shards();
  options.join = true;
  ASSERT_TRUE(cluster_.Start(options));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "before", 1, expected_));
  const uint64_t old_id = cluster_.worker_id(1);
  ASSERT_TRUE(cluster_.ReplaceWorker(1));
  EXPECT_EQ(cluster_.worker_id(1), 3u);
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  const v1::HealthResponse health = Health();
  EXPECT_TRUE(Placed(health, 2, true));
  const std::map<std::string, int> voters = VotersPerNode(health);
  EXPECT_EQ(voters.count("worker-" + std::to_string(old_id)), 0u);
  EXPECT_EQ(voters.at("worker-3"), kShards);
  EXPECT_EQ(health.workers_size(), 2);
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "after", 100, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
  // Every row is on the new worker too: with the other one killed, the answer is complete.
  ASSERT_TRUE(cluster_.KillWorker(0));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
}

// A worker that comes back at another address (as a recreated container does) is the same
// member: it keeps its replicas (no move), the map and every node learn its new address, and
// its peers dial it there although the shard groups' configurations keep the old one. With the
// other worker then killed, it and the witness hold every shard alone.
TEST_F(MembershipTest, AWorkerBackAtANewAddressIsTheSameMemberAndItsPeersReachIt) {
  ASSERT_TRUE(cluster_.Start(Shards()));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "before", 1, expected_));
  const v1::HealthResponse before = Health();
  ASSERT_TRUE(cluster_.MoveWorker(0));
  EXPECT_EQ(cluster_.worker_id(0), 1u);
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "moved", 10, expected_));
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  const v1::HealthResponse after = Health();
  EXPECT_GT(after.rebalance().epoch(), before.rebalance().epoch());
  EXPECT_EQ(after.rebalance().moves_done(), 0u);
  EXPECT_TRUE(Placed(after, 2, true));
  const std::string address = "127.0.0.1:" + std::to_string(cluster_.worker_port(0));
  bool listed = false;
  for (const v1::WorkerStatus& worker : after.workers()) {
    if (worker.worker_id() == 1) listed = worker.address() == address && worker.healthy();
  }
  EXPECT_TRUE(listed) << "worker 1 is not listed healthy at " << address << ": "
                      << after.ShortDebugString();
  ASSERT_TRUE(cluster_.KillWorker(1));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "alone", 100, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));
}

// The workers of a scaled service share one data pool (docker-compose --scale: containers have
// no volume of their own): each claims a directory and is the worker whose id it keeps, so
// workers restarted in another order (each now at the address another had) are the same
// members, and nothing moves. A directory whose worker left the cluster (decommissioned) is
// moved aside, and the process that claims it next joins as a new worker.
TEST_F(MembershipTest, WorkersSharingADataPoolAreTheWorkersTheirDirectoriesKeep) {
  ClusterOptions options = Shards();
  options.join = true;
  options.data_pool = true;
  ASSERT_TRUE(cluster_.Start(options));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "first", 1, expected_));
  EXPECT_NE(cluster_.worker_data_dir(0), cluster_.worker_data_dir(1));
  const uint64_t first_id = cluster_.worker_id(0);
  ASSERT_TRUE(cluster_.KillWorker(0));
  ASSERT_TRUE(cluster_.KillWorker(1));
  ASSERT_TRUE(cluster_.RestartWorker(1, false));  // claims the directory worker 0 had
  ASSERT_TRUE(cluster_.RestartWorker(0));
  EXPECT_EQ(cluster_.worker_id(1), first_id);
  EXPECT_EQ(cluster_.worker_id(0) + cluster_.worker_id(1), 3u);  // ids 1 and 2, kept
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  EXPECT_EQ(Health().rebalance().moves_done(), 0u);
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "swapped", 10, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 2));

  int third = 0;
  ASSERT_TRUE(cluster_.AddWorker(&third));
  EXPECT_EQ(cluster_.worker_id(third), 3u);
  const std::string third_dir = cluster_.worker_data_dir(third);
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  ASSERT_TRUE(Decommission(3, 2));
  // Its container removed, a new one claims the directory: worker 3 left, so this is a new
  // worker, and worker 3's data is kept aside.
  ASSERT_TRUE(cluster_.KillWorker(third));
  ASSERT_TRUE(cluster_.RestartWorker(third, false));
  EXPECT_EQ(cluster_.worker_id(third), 4u);
  EXPECT_EQ(cluster_.worker_data_dir(third), third_dir);
  EXPECT_TRUE(std::filesystem::exists(third_dir + ".left-3/node_id"));
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  const v1::HealthResponse health = Health();
  EXPECT_TRUE(Placed(health, 3, false));
  EXPECT_EQ(health.workers_size(), 3);
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "third", 100, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));
}

// The control node killed in the middle of a move: the restarted one reads the move from its
// data directory and finishes it; nothing is lost or stored twice.
TEST_F(MembershipTest, AControlNodeKilledInTheMiddleOfAMoveFinishesIt) {
  ASSERT_TRUE(cluster_.Start(Shards()));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "before", 1, expected_));
  int third = 0;
  ASSERT_TRUE(cluster_.AddWorker(&third));
  ASSERT_TRUE(cluster_.PollControlHealth(
      kRebalanceBound,
      [](const v1::HealthResponse& health) {
        return health.rebalance().moves_done() >= 2 && !health.rebalance().current_move().empty();
      },
      "a move under way after two done"));
  ASSERT_TRUE(cluster_.KillControl());
  ASSERT_TRUE(cluster_.RestartControl());
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  EXPECT_TRUE(Placed(Health(), 3, false));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "after", 100, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));
}

// A worker down longer than --dead-worker-after-s has its replicas recreated: with two
// workers left, the witness comes back in every shard it was in. Back, the worker is given
// replicas again (its old ones were removed; it joins each shard afresh).
TEST_F(MembershipTest, ADeadWorkersReplicasAreRecreatedAndItIsGivenNewOnesWhenBack) {
  ClusterOptions options = Shards();
  options.workers = 3;
  options.control_flags = {"--dead-worker-after-s", "2"};
  ASSERT_TRUE(cluster_.Start(options));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "before", 1, expected_));
  ASSERT_TRUE(cluster_.KillWorker(2));
  ASSERT_TRUE(cluster_.PollControlHealth(
      kRebalanceBound,
      [](const v1::HealthResponse& health) {
        bool dead = false;
        for (const v1::WorkerStatus& w : health.workers()) {
          dead = dead || (w.worker_id() == 3 && w.state() == "dead");
        }
        return dead && health.rebalance().balanced() && Placed(health, 2, true);
      },
      "worker 3's replicas recreated"));
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "without", 10, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));
  ASSERT_TRUE(cluster_.RestartWorker(2, /*wait_ok=*/false));
  ASSERT_TRUE(cluster_.WaitRebalanced(kRebalanceBound));
  const v1::HealthResponse health = Health();
  EXPECT_TRUE(Placed(health, 3, false));
  EXPECT_EQ(VotersPerNode(health).at("worker-3"), kShards);
  ASSERT_TRUE(WriteEveryShard(port(), kShards, "after", 100, expected_));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));
  // Every row is on worker 3 again: with worker 1 killed, the answer is still complete.
  ASSERT_TRUE(cluster_.KillWorker(0));
  ASSERT_TRUE(ExpectCompleteAndExact(port(), expected_, 3));
}

}  // namespace
}  // namespace das::it
