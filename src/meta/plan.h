// The cluster map as data, and the rebalancer's plan (docs/operations.md, "Membership"): where
// every shard's replicas live, and the next single step that brings the cluster closer to its
// target: every shard at its replication factor on distinct workers, the witness only where two
// workers are all there is, replicas and leaders spread evenly, nothing left on a worker being
// drained or dead for too long.
//
// Pure logic, no I/O: the control node feeds it what the shard groups' own configurations say
// (the durable truth) and which workers are members, and carries out the step it returns (a
// replica move goes spare -> data copied -> standby -> voter -> leadership moved off the old
// replica if it led -> old replica removed; the executor does those stages, the plan only names
// the move). One move at a time, so a shard never has fewer voters than before a move started.
// Deterministic: ties are broken by shard and node id.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace das::meta {

// One shard as its raft group's configuration says.
struct ShardReplicas {
  uint32_t shard = 0;
  std::vector<uint64_t> voters;  // node ids: workers, or the witness
  uint64_t leader = 0;           // 0: none known
};

enum class WorkerState {
  kActive,    // takes replicas
  kDraining,  // decommissioned: everything moves off it, then it leaves
  kDead,      // down longer than --dead-worker-after-s: its replicas are recreated elsewhere
};

struct WorkerView {
  uint64_t id = 0;
  WorkerState state = WorkerState::kActive;
};

struct ClusterView {
  uint32_t replication_factor = 3;
  uint64_t witness_id = 0;  // the control node's raft id (it may hold voters, never data)
  std::vector<WorkerView> workers;
  std::vector<ShardReplicas> shards;
};

struct Move {
  enum class Kind {
    kReplace,   // a new replica on `to`, then the one on `from` removed
    kAdd,       // a new replica on `to` (the shard has too few)
    kRemove,    // the replica on `from` removed (the shard has one too many)
    kTransfer,  // leadership of the shard to `to` (no replica changes)
  };
  Kind kind = Kind::kReplace;
  uint32_t shard = 0;
  uint64_t from = 0;  // 0: none
  uint64_t to = 0;    // 0: none
  std::string why;    // for logs and /health
};

bool operator==(const Move& a, const Move& b);

// The number of voters every shard should have on data replicas, and whether the witness makes
// up the rest: R on at least R active workers; R - 1 workers and the witness when exactly R - 1
// are active (two workers, R = 3); else as many workers as there are (too few: the shards stay
// under-replicated, and nothing is moved until workers join).
struct Target {
  uint32_t data_replicas = 0;
  bool witness = false;
};
Target TargetOf(const ClusterView& view);

// The next step, or nullopt when the cluster is where it should be (or nothing can be done
// now: no room for a replica). In order: a shard with too few voters gets one; a replica on a
// dead or draining worker moves to an active one; the witness gives way to a data replica (or
// comes back where a shard has too few and the target has it); a shard with too many loses one;
// then replica counts per worker are evened out (to within one); then leaders (never the
// witness or an inactive worker, and a leader leads at most one shard more than each of the
// shard's other voters).
std::optional<Move> NextMove(const ClusterView& view);

// `view` after `move` completed (what the shard groups' configurations would then say). A
// replaced or removed leader hands leadership to the lowest-id remaining data voter.
ClusterView Apply(ClusterView view, const Move& move);

}  // namespace das::meta
