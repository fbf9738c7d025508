// Helpers of the raft tests: a state machine that records what it applies, and free ports.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "../../free_port.h"
#include "raft/group.h"

namespace das::raft {

using namespace std::chrono_literals;

// Records every applied entry, the snapshots asked of it and what a start replayed; other
// threads wait for an applied count.
class Recorder final : public StateMachine {
 public:
  struct SnapshotAsked {
    uint64_t index = 0;
    uint64_t kept_from = 0;
  };
  struct Replayed {
    uint64_t log_start = 0;
    uint64_t index = 0;
    std::string entry;
  };

  void Apply(uint64_t index, std::string_view entry) override {
    std::lock_guard lock(mu_);
    entries_.emplace_back(index, std::string(entry));
    changed_.notify_all();
  }
  // Not empty: with an empty one, libraft 0.22.1 was seen never to take a second snapshot (the
  // first, it seems, never finishes storing).
  Result<std::string> Snapshot(uint64_t index, uint64_t kept_from) override {
    std::lock_guard lock(mu_);
    snapshots_.push_back({index, kept_from});
    return "recorder " + std::to_string(index);
  }
  Status Restore(std::string_view snapshot) override {
    std::lock_guard lock(mu_);
    restored_.emplace_back(snapshot);
    replays_before_restore_ = replays_.size();
    return Status::Ok();
  }
  void Replay(uint64_t log_start, uint64_t index, std::string_view entry) override {
    std::lock_guard lock(mu_);
    replays_.push_back({log_start, index, std::string(entry)});
  }

  bool WaitApplied(size_t n, std::chrono::seconds timeout = 30s) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, timeout, [&] { return entries_.size() >= n; });
  }
  std::vector<std::pair<uint64_t, std::string>> entries() {
    std::lock_guard lock(mu_);
    return entries_;
  }
  // The entries applied, in order, a repeat of the entry before dropped (a proposal that failed
  // yet committed, then its retry).
  std::vector<std::string> Payloads() {
    std::lock_guard lock(mu_);
    return PayloadsLocked();
  }
  // Waits until `n` distinct entries (Payloads) were applied. The count is taken under the
  // lock each time an entry arrives, so none slips between a look and the wait.
  bool WaitPayloads(size_t n, std::chrono::seconds timeout = 30s) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, timeout, [&] { return PayloadsLocked().size() >= n; });
  }
  std::vector<SnapshotAsked> snapshots() {
    std::lock_guard lock(mu_);
    return snapshots_;
  }
  std::vector<Replayed> replays() {
    std::lock_guard lock(mu_);
    return replays_;
  }
  std::vector<std::string> restored() {
    std::lock_guard lock(mu_);
    return restored_;
  }
  size_t replays_before_restore() {
    std::lock_guard lock(mu_);
    return replays_before_restore_;
  }

 private:
  std::vector<std::string> PayloadsLocked() const {
    std::vector<std::string> out;
    for (const auto& [index, entry] : entries_) {
      if (out.empty() || out.back() != entry) out.push_back(entry);
    }
    return out;
  }

  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::pair<uint64_t, std::string>> entries_;  // GUARDED_BY(mu_)
  std::vector<SnapshotAsked> snapshots_;                   // GUARDED_BY(mu_)
  std::vector<Replayed> replays_;                          // GUARDED_BY(mu_)
  std::vector<std::string> restored_;                      // GUARDED_BY(mu_)
  size_t replays_before_restore_ = 0;                      // GUARDED_BY(mu_)
};

// A port on 127.0.0.1 for a replica or a hub (test::FreePort: never the same one twice).
inline uint16_t FreePort() { return static_cast<uint16_t>(test::FreePort()); }

// The index in `replicas` (null: not running) of the leader, once one leads and every running
// replica knows a leader; -1 (and a test failure) after `timeout`. libraft 0.22 has no callback
// on leadership change, so this asks each replica's Info() until the event happened; the bound
// only ends a test that would otherwise hang.
inline int WaitForLeader(const std::vector<Group*>& replicas, std::chrono::seconds timeout = 30s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    int leader = -1;
    bool agreed = true;
    for (size_t i = 0; i < replicas.size(); ++i) {
      if (replicas[i] == nullptr) continue;
      const GroupInfo info = replicas[i]->Info();
      if (info.role == Role::kLeader) leader = static_cast<int>(i);
      agreed = agreed && info.leader_id != 0;
    }
    if (leader >= 0 && agreed) return leader;
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << "no leader within " << timeout.count() << " s";
  return -1;
}

// A fresh directory under /tmp ("<prefix>-XXXXXX"); empty on failure (the test then fails).
inline std::string MakeTempDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return {};
  }
  return pattern;
}

// `n` replicas with ids 1..n on free loopback ports.
inline std::vector<Peer> LoopbackPeers(int n) {
  std::vector<Peer> peers;
  for (int i = 0; i < n; ++i) {
    peers.push_back(Peer{static_cast<uint64_t>(i + 1), "127.0.0.1:" + std::to_string(FreePort())});
  }
  return peers;
}

}  // namespace das::raft
