// A shard replicated on three replicas, each a real Store (DuckDB on disk) behind a real Raft
// group (libraft over loopback TCP): writes proposed at the leader are answered with their
// outcomes once applied, every replica ends with the same rows, a key is deduplicated through
// the log, and a replica restarted from its files replays nothing twice and catches up.
#include "replica/shard_replica.h"

#include <stdlib.h>

#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "../raft/support.h"
#include "common/fingerprint.h"
#include "das/v1/internal.pb.h"
#include "raft/group.h"
#include "rpc/snapshot_manifest.h"

namespace das::replica {
namespace {

using raft::Peer;
using Code = storage::SubBatchOutcome::Code;
using Outcomes = std::vector<storage::SubBatchOutcome>;
constexpr int kReplicas = 3;

// A sub-batch as the control node sends it.
internal::v1::SubBatch Rows(const std::string& prefix, std::vector<double> values,
                            std::string key = "") {
  internal::v1::SubBatch batch;
  Fingerprinter fingerprint;
  for (size_t i = 0; i < values.size(); ++i) {
    internal::v1::RowWire* row = batch.add_rows();
    row->set_partition_key(prefix + "-" + std::to_string(i));
    row->set_value(values[i]);
    fingerprint.Add(row->partition_key(), values[i]);
  }
  if (!key.empty()) batch.set_batch_fingerprint(fingerprint.Finish());
  batch.set_idempotency_key(std::move(key));
  return batch;
}

class ShardReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = raft::MakeTempDir("das-replica-test");
    peers_ = raft::LoopbackPeers(kReplicas);
    replicas_.resize(kReplicas);
    for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(StartReplica(i));
  }

  void TearDown() override {
    for (int i = 0; i < kReplicas; ++i) StopReplica(i);
    std::filesystem::remove_all(dir_);
  }

  // The stores' pause between two rounds (StartReplica).
  std::chrono::milliseconds commit_interval_{0};

  struct Replica {
    std::unique_ptr<raft::Loop> loop;
    std::unique_ptr<storage::Store> store;
    std::unique_ptr<ShardReplica> machine;
    std::unique_ptr<raft::Group> group;
  };

  void StartReplica(int i) {
    Replica& r = replicas_[i];
    const std::string base = dir_ + "/replica-" + std::to_string(i + 1);
    storage::StoreOptions store_options;
    store_options.data_dir = base + "/data";
    store_options.min_commit_interval = commit_interval_;
    Result<std::unique_ptr<storage::Store>> store = storage::Store::Open(store_options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    r.store = std::move(store).value();
    r.machine = std::make_unique<ShardReplica>(7, *r.store);
    Result<std::unique_ptr<raft::Loop>> loop = raft::Loop::Start("replica");
    ASSERT_TRUE(loop.ok());
    r.loop = std::move(loop).value();
    raft::GroupOptions options;
    options.id = peers_[i].id;
    options.address = peers_[i].address;
    options.data_dir = base + "/raft";
    options.voters = peers_;
    options.election_timeout_ms = 1000;
    options.heartbeat_timeout_ms = 100;
    Result<std::unique_ptr<raft::Group>> group = raft::Group::Open(*r.loop, options, *r.machine);
    ASSERT_TRUE(group.ok()) << group.status().ToString();
    r.group = std::move(group).value();
    r.machine->Attach(r.group.get());
  }

  // Group first (no more Apply), then the store (finishes what Apply queued), then the loop.
  void StopReplica(int i) {
    Replica& r = replicas_[i];
    if (r.group) r.group->Close();
    if (r.store) r.store->Stop();
    if (r.loop) r.loop->Stop();
    r = Replica{};
  }

  int WaitForLeader() {
    std::vector<raft::Group*> groups;
    for (Replica& r : replicas_) groups.push_back(r.group.get());
    return raft::WaitForLeader(groups);
  }

  Result<Outcomes> Propose(int i, const std::vector<internal::v1::SubBatch>& batches,
                           uint64_t request_id = 0, int64_t ingest_us = 0) {
    std::vector<const internal::v1::SubBatch*> sent;
    for (const internal::v1::SubBatch& batch : batches) sent.push_back(&batch);
    std::promise<Result<Outcomes>> done;
    replicas_[i].machine->Propose(request_id, ingest_us, sent,
                                  [&done](Result<Outcomes> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  Result<storage::Aggregate> Read(int i) {
    std::promise<Result<storage::Aggregate>> done;
    replicas_[i].machine->Read(
        [&done](Result<storage::Aggregate> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  // Waits until replica i's store counts `rows` rows (its running aggregate), bounded.
  storage::Aggregate WaitForRows(int i, uint64_t rows) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    storage::Aggregate last;
    while (std::chrono::steady_clock::now() < until) {
      std::promise<Result<storage::Aggregate>> done;
      replicas_[i].store->ComputeAggregate(
          [&done](Result<storage::Aggregate> a) { done.set_value(std::move(a)); });
      Result<storage::Aggregate> a = done.get_future().get();
      if (a.ok()) last = *a;
      if (last.count >= rows) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "replica " << i + 1 << " has " << last.count << " rows, not " << rows;
    return last;
  }

  // Proposes `n` writes of two rows (1 and 2) at the current leader; expects each applied.
  void WriteMany(const std::string& prefix, int n) {
    for (int k = 0; k < n; ++k) {
      Result<Outcomes> r = Propose(WaitForLeader(), {Rows(prefix + std::to_string(k), {1, 2})});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_EQ(r->size(), 1u);
      EXPECT_EQ((*r)[0].code, Code::kOk);
      EXPECT_EQ((*r)[0].rows_written, 2u);
    }
  }

  std::string dir_;
  std::vector<Peer> peers_;
  std::vector<Replica> replicas_;
};

TEST_F(ShardReplicaTest, EveryReplicaStoresEveryCommittedWriteOnce) {
  ASSERT_NO_FATAL_FAILURE(WriteMany("w", 20));
  const int leader = WaitForLeader();
  // An idempotency key is decided in the replicated state machine: the retry is a duplicate.
  Result<Outcomes> first = Propose(leader, {Rows("keyed", {5}, "K")});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ((*first)[0].code, Code::kOk);
  Result<Outcomes> retry = Propose(leader, {Rows("keyed", {5}, "K")});
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ((*retry)[0].code, Code::kDuplicate);
  EXPECT_EQ((*retry)[0].rows_written, 1u);
  for (int i = 0; i < kReplicas; ++i) {
    const storage::Aggregate a = WaitForRows(i, 41);
    EXPECT_EQ(a.count, 41u) << "replica " << i + 1;
    EXPECT_EQ(a.sum.Value(), 65.0) << "replica " << i + 1;
  }
}

// The ingest time comes with the write (the control node's cluster time), not from the leader's
// clock: every replica stores it, raised by 1 us where it would not increase.
TEST_F(ShardReplicaTest, TheProposersIngestTimeStampsTheEntryOnEveryReplica) {
  const int leader = WaitForLeader();
  constexpr int64_t kLongAgo = 1'700'000'000'000'000;  // November 2023: far from any clock here
  Result<Outcomes> first = Propose(leader, {Rows("stamped", {1})}, 0, kLongAgo);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<Outcomes> same = Propose(leader, {Rows("again", {2})}, 0, kLongAgo);
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  for (int i = 0; i < kReplicas; ++i) {
    WaitForRows(i, 2);
    EXPECT_EQ(replicas_[i].store->newest_ingest_us(), kLongAgo + 1) << "replica " << i + 1;
  }
}

// A key look-up (check_only) goes through the log as a look-up: it stores nothing, not even
// the key, so the real write after it is stored.
TEST_F(ShardReplicaTest, ACheckOnlyEntryStoresNothing) {
  const int leader = WaitForLeader();
  internal::v1::SubBatch check = Rows("checked", {3}, "CK");
  check.set_check_only(true);
  Result<Outcomes> looked = Propose(leader, {check});
  ASSERT_TRUE(looked.ok()) << looked.status().ToString();
  EXPECT_EQ((*looked)[0].code, Code::kOk);
  EXPECT_EQ((*looked)[0].rows_written, 0u);
  Result<Outcomes> written = Propose(leader, {Rows("checked", {3}, "CK")});
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ((*written)[0].code, Code::kOk);
  EXPECT_EQ((*written)[0].rows_written, 1u);
  for (int i = 0; i < kReplicas; ++i) EXPECT_EQ(WaitForRows(i, 1).count, 1u);
}

TEST_F(ShardReplicaTest, AFollowerRefusesWritesNamingTheLeader) {
  const int leader = WaitForLeader();
  const int follower = (leader + 1) % kReplicas;
  Result<Outcomes> refused = Propose(follower, {Rows("x", {1})});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kNotLeader);
  EXPECT_EQ(refused.status().detail(), std::to_string(peers_[leader].id));
}

// A read at the leader follows a barrier and waits until the store applied what preceded it:
// every acknowledged write is counted, by every one of many concurrent reads.
TEST_F(ShardReplicaTest, ReadsAtTheLeaderCountEveryAcknowledgedWrite) {
  ASSERT_NO_FATAL_FAILURE(WriteMany("r", 5));
  const int leader = WaitForLeader();
  constexpr int kReads = 16;
  std::vector<std::promise<Result<storage::Aggregate>>> done(kReads);
  for (int k = 0; k < kReads; ++k) {
    replicas_[leader].machine->Read(
        [&done, k](Result<storage::Aggregate> r) { done[k].set_value(std::move(r)); });
  }
  for (int k = 0; k < kReads; ++k) {
    Result<storage::Aggregate> a = done[k].get_future().get();
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->count, 10u);
    EXPECT_EQ(a->sum.Value(), 15.0);
  }
  Result<Outcomes> more = Propose(leader, {Rows("r-more", {0.25})});
  ASSERT_TRUE(more.ok());
  Result<storage::Aggregate> after = Read(leader);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->count, 11u);
  EXPECT_EQ(after->sum.Value(), 15.25);
}

TEST_F(ShardReplicaTest, AFollowerRefusesReadsNamingTheLeader) {
  const int leader = WaitForLeader();
  const int follower = (leader + 1) % kReplicas;
  Result<storage::Aggregate> refused = Read(follower);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kNotLeader);
  EXPECT_EQ(refused.status().detail(), std::to_string(peers_[leader].id));
}

// The control node retries a request whose answer it lost, with the same id: the retry is
// answered with the first outcome and nothing is stored twice, on any replica.
// A keyed entry is decided in the order of the log and answered at commit, before any store
// applied it: the stores here pause ten minutes between rounds, which nothing in the test cuts
// short until the end. The same key is then a duplicate (same rows) or a conflict (others),
// also while its first entry waits for its store; every replica then stores it once.
TEST_F(ShardReplicaTest, KeyedEntriesAreDecidedAndAnsweredAtCommit) {
  for (int i = 0; i < kReplicas; ++i) StopReplica(i);
  commit_interval_ = std::chrono::minutes(10);
  for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(StartReplica(i));
  ASSERT_NO_FATAL_FAILURE(WriteMany("before", 1));  // the stores' first round: at once
  for (int i = 0; i < kReplicas; ++i) WaitForRows(i, 2);
  const int leader = WaitForLeader();
  const uint64_t applied = replicas_[leader].store->applied_index();

  Result<Outcomes> first = Propose(leader, {Rows("k", {1, 2, 3}, "batch-key")});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ((*first)[0].code, Code::kOk);
  EXPECT_EQ((*first)[0].rows_written, 3u);
  Result<Outcomes> again = Propose(leader, {Rows("k", {1, 2, 3}, "batch-key")});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)[0].code, Code::kDuplicate);
  EXPECT_EQ((*again)[0].rows_written, 3u);
  Result<Outcomes> other = Propose(leader, {Rows("k", {9}, "batch-key")});
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ((*other)[0].code, Code::kKeyConflict);
  Result<Outcomes> check = Propose(leader, {Rows("k", {}, "unseen-key")});
  ASSERT_TRUE(check.ok());
  EXPECT_EQ((*check)[0].code, Code::kOk);
  // Answered while no store has applied any of them.
  EXPECT_EQ(replicas_[leader].store->applied_index(), applied);

  // Every store waits no more once told what is waited for, a follower's also when it has not
  // received the entries yet.
  const uint64_t last = replicas_[leader].group->Info().applied_index;
  for (int i = 0; i < kReplicas; ++i) replicas_[i].store->Expedite(last);
  for (int i = 0; i < kReplicas; ++i) {
    const storage::Aggregate aggregate = WaitForRows(i, 5);
    EXPECT_EQ(aggregate.count, 5u);
    EXPECT_EQ(aggregate.sum.Value(), 9.0);
    EXPECT_EQ(replicas_[i].store->FindKey("batch-key").value_or(storage::KeyRecord{}).fingerprint,
              Rows("k", {1, 2, 3}, "batch-key").batch_fingerprint());
  }
}

TEST_F(ShardReplicaTest, ARetriedRequestIdIsStoredOnceOnEveryReplica) {
  const int leader = WaitForLeader();
  Result<Outcomes> first = Propose(leader, {Rows("retried", {1, 2, 3})}, 4242);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ((*first)[0].rows_written, 3u);
  Result<Outcomes> retry = Propose(leader, {Rows("retried", {1, 2, 3})}, 4242);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ((*retry)[0].code, Code::kOk);
  EXPECT_EQ((*retry)[0].rows_written, 3u);
  Result<Outcomes> marker = Propose(leader, {Rows("marker", {10})}, 4243);
  ASSERT_TRUE(marker.ok());
  for (int i = 0; i < kReplicas; ++i) {
    const storage::Aggregate a = WaitForRows(i, 4);
    EXPECT_EQ(a.count, 4u) << "replica " << i + 1;
    EXPECT_EQ(a.sum.Value(), 16.0) << "replica " << i + 1;
  }
}

// The leader dies; writes go on through a new one; the old leader restarts from its files: it
// replays its log, skips what its store already holds, and ends equal to the others.
TEST_F(ShardReplicaTest, ARestartedReplicaReplaysNothingTwiceAndCatchesUp) {
  ASSERT_NO_FATAL_FAILURE(WriteMany("before", 10));
  const int old_leader = WaitForLeader();
  ASSERT_EQ(WaitForRows(old_leader, 20).count, 20u);
  StopReplica(old_leader);
  ASSERT_NO_FATAL_FAILURE(WriteMany("after", 10));
  ASSERT_NO_FATAL_FAILURE(StartReplica(old_leader));
  for (int i = 0; i < kReplicas; ++i) {
    const storage::Aggregate a = WaitForRows(i, 40);
    EXPECT_EQ(a.count, 40u) << "replica " << i + 1;
    EXPECT_EQ(a.sum.Value(), 60.0) << "replica " << i + 1;
  }
  // Nothing more arrives later: the replay stored nothing twice.
  Result<Outcomes> marker = Propose(WaitForLeader(), {Rows("marker", {0.5})});
  ASSERT_TRUE(marker.ok()) << marker.status().ToString();
  for (int i = 0; i < kReplicas; ++i) {
    const storage::Aggregate a = WaitForRows(i, 41);
    EXPECT_EQ(a.count, 41u) << "replica " << i + 1;
    EXPECT_EQ(a.sum.Value(), 60.5) << "replica " << i + 1;
  }
}

// A snapshot never waits for the store (the raft loop it runs on serves every group): while the
// store lags the raft log by fewer entries than the log keeps, it names the last entry handed
// to the store at once (a restart replays the rest from the log); further behind, it refuses
// at once and asks the store to commit.
TEST_F(ShardReplicaTest, ASnapshotNeverWaitsForTheStore) {
  for (int i = 0; i < kReplicas; ++i) StopReplica(i);
  commit_interval_ = std::chrono::milliseconds(60000);  // the store commits a round, then pauses
  for (int i = 0; i < kReplicas; ++i) ASSERT_NO_FATAL_FAILURE(StartReplica(i));
  // A read at the leader makes its store commit a round now (whenever its first round came);
  // the next waits out the pause, so nothing written after the read is stored.
  ASSERT_NO_FATAL_FAILURE(WriteMany("first", 1));
  const int at = WaitForLeader();
  ASSERT_TRUE(Read(at).ok());
  const uint64_t applied = replicas_[at].store->applied_index();
  ASSERT_NO_FATAL_FAILURE(WriteMany("lag", 5));  // answered at commit, not by the store
  ASSERT_EQ(WaitForLeader(), at);
  ASSERT_EQ(replicas_[at].store->applied_index(), applied) << "the store waits out its pause";
  ShardReplica& leader = *replicas_[at].machine;

  Result<std::string> kept = leader.Snapshot(100, 1);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  Result<rpc::SnapshotManifest> manifest = rpc::DecodeManifest(*kept);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(manifest->shard, 7u);
  EXPECT_GE(manifest->index, applied + 5) << "five writes handed to the store, none stored";
  EXPECT_EQ(leader.snapshot_index(), manifest->index);

  Result<std::string> refused = leader.Snapshot(100, manifest->index);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  // Once the store holds every entry (a read at the leader waits for that, without waiting out
  // the store's pause), the same snapshot is taken.
  ASSERT_TRUE(Read(at).ok());
  EXPECT_GE(replicas_[at].store->applied_index(), manifest->index);
  EXPECT_TRUE(leader.Snapshot(100, manifest->index).ok());
}

}  // namespace
}  // namespace das::replica
