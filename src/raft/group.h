// Group: one Raft group (one shard's replica on this node) on libraft 0.22.1, behind a small
// C++ interface that shows neither libuv nor raft types: propose an entry and learn its index
// once committed and applied here, a linearizable read point (a barrier), leadership and
// its transfer by name.
//
// The state machine is called on the loop thread, once per committed entry, in log order, with
// the entry's index; it must not block (src/raft/README.md: a slow callback delays heartbeats
// and costs leadership). A node restarted from its data directory replays its log from the last
// snapshot, so Apply sees indexes it may have seen before.
//
// Thread-safety: Propose/Barrier/Transfer/Info may be called from any thread except the loop's
// (they post to it); their callbacks run on the loop thread. Lifecycle: Open() starts the
// replica; Close() stops it and waits; the destructor closes. The Loop outlives the group.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "raft/hub.h"
#include "raft/loop.h"

namespace das::raft {

struct Peer {
  uint64_t id = 0;
  std::string address;  // host:port of its raft transport
};

struct GroupOptions {
  // The node's one raft port, shared by all its groups (null: libraft's stock transport, which
  // listens on `address` for this group alone). Not owned; outlives the group.
  Hub* hub = nullptr;
  uint64_t group_id = 0;  // with a hub: the group's name in the connection handshake
  uint64_t id = 0;
  std::string address;   // this replica's raft address, host:port (with a hub: the hub's)
  std::string data_dir;  // its log and snapshots; created if missing
  // The first voters, used only when data_dir holds no state yet (then it is bootstrapped). Empty:
  // a replica that joins the group, which waits until the group's leader adds it.
  std::vector<Peer> voters;
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  unsigned snapshot_threshold = 1024;
  // Entries kept after a snapshot, so that a briefly absent replica catches up from the log;
  // fewer when the loop's log budget (Loop::SetLogBudget) does not hold that many.
  unsigned snapshot_trailing = 8192;
  // raft_uv's segments, on a loop without a node log (Loop::OpenLog) only: libraft's default of
  // 8 MiB per group is too much.
  size_t segment_size = 1024 * 1024;
};

class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // REQUIRES (for all three): on the loop thread; must not block.
  virtual void Apply(uint64_t index, std::string_view entry) = 0;
  // The state after entry `index` (the last applied). The log then keeps the entries from
  // `kept_from` on: at the next start, Replay hands those up to `index` back before Restore,
  // so a machine whose durable state lags by fewer entries may answer now. A failure skips this
  // snapshot (libraft tries again after the next entry).
  virtual Result<std::string> Snapshot(uint64_t index, uint64_t kept_from) = 0;
  virtual Status Restore(std::string_view snapshot) = 0;
  // At start, before Restore: each entry the log kept up to its snapshot's index, in order
  // (`log_start`: the first index the log holds). Raft never applies those again.
  virtual void Replay(uint64_t log_start, uint64_t index, std::string_view entry) {
    (void)log_start;
    (void)index;
    (void)entry;
  }
};

enum class Role { kUnavailable, kFollower, kCandidate, kLeader };
std::string_view RoleName(Role role);

struct GroupInfo {
  Role role = Role::kUnavailable;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  uint64_t leader_id = 0;  // 0: none known
  std::string leader_address;
  // Since the group opened: the leader it knew became another node (from none: counted);
  // snapshots taken by its state machine; snapshots restored (its own at start, or one its
  // leader sent).
  uint64_t leader_changes = 0;
  uint64_t snapshots_taken = 0;
  uint64_t snapshots_restored = 0;
};

// A server of the group's configuration. A spare gets no log; a standby gets the log but does not
// vote; a voter counts in the quorum.
enum class MemberRole { kSpare, kStandby, kVoter };
struct Member {
  uint64_t id = 0;
  std::string address;
  MemberRole role = MemberRole::kVoter;
};

// The index of a committed entry (or of a barrier), or why not: kNotLeader (detail: the
// leader's raft id in decimal, when known: ids outlive addresses), kUnavailable (leadership lost,
// shutting down, ...).
using IndexCallback = std::function<void(Result<uint64_t>)>;

class Group {
 public:
  // REQUIRES: not on the loop thread. `machine` outlives the group.
  static Result<std::unique_ptr<Group>> Open(Loop& loop, GroupOptions options,
                                             StateMachine& machine);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Proposes one entry; `done` once it is committed and applied on this node.
  void Propose(std::string entry, IndexCallback done);
  // A read point: `done` with an index once this node confirmed it leads and applied every
  // entry committed before the barrier. The group's only voter answers without a log entry
  // once one barrier of its current term completed (no other node can lead or commit).
  void Barrier(IndexCallback done);
  // Hands leadership to replica `id`, by name; `done` says whether it leads now.
  void Transfer(uint64_t id, std::function<void(Status)> done);
  // Membership changes, at the leader only (else kNotLeader) and one at a time (else
  // kUnavailable: another is in progress); `done` once the new configuration is committed. A
  // new server is added as a spare (its replica opened with no voters, so that it waits to be
  // contacted); assigning it standby or voter first brings it up to date with the log (libraft's
  // catch-up rounds); removing the leader itself steps it down once the change commits.
  void AddSpare(uint64_t id, std::string address, std::function<void(Status)> done);
  void Assign(uint64_t id, MemberRole role, std::function<void(Status)> done);
  void Remove(uint64_t id, std::function<void(Status)> done);
  // The latest configuration this replica knows (committed or not). REQUIRES: not on the loop
  // thread.
  std::vector<Member> Members();
  // REQUIRES: not on the loop thread.
  GroupInfo Info();
  // Info() and Members() together without waiting for the loop: `done` runs on the loop thread
  // (or at once on the caller's, with an empty view, once the loop stopped). For answers that
  // must not block a thread that serves requests (a node's health). REQUIRES: the group is
  // not destroyed before `done` ran (hold its owner in `done`).
  void Describe(std::function<void(GroupInfo, std::vector<Member>)> done);
  // Stops the replica and waits until libraft released it. Safe to call more than once.
  // REQUIRES: not on the loop thread.
  void Close();

  struct State;  // defined in group.cc

 private:
  Group(Loop& loop, std::unique_ptr<State> state);
  Loop& loop_;
  std::unique_ptr<State> state_;
  bool closed_ = false;  // Close() ran (it is called by the owner's thread only)
};

// What Group::Describe gives.
struct GroupDescription {
  GroupInfo info;
  std::vector<Member> members;
};
// Describes every group of `groups` (Group::Describe) and calls `done` once with their
// descriptions, in order, on a loop thread (on the caller's when `groups` is empty or the loops
// stopped). The second of each pair (the group's owner) is held until that group answered.
void DescribeAll(std::vector<std::pair<Group*, std::shared_ptr<const void>>> groups,
                 std::function<void(std::vector<GroupDescription>)> done);

}  // namespace das::raft
