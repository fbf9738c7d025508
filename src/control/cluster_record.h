// ClusterRecord: what the control node knows of its replicated cluster, and every change to
// it. The saved part (internal::v1::ControlState in <data-dir>/cluster.pb: the topology and its
// epoch, the epoch each worker adopted, the move under way and its stage, the draining and
// departed workers) is written durably before a change is acted on; the rest is learnt again
// after a restart (when each worker last answered, the rebalancer's progress). The rules are
// src/cluster's and meta/plan.h's pure functions; this keeps their results, under one lock,
// with no socket: the I/O (health, pushes, transfers, membership changes) is its callers'
// (topology_pusher, move_executor, leader_balancer, replication.cc).
// Thread-safety: every method may be called from any thread. `placements_changed` runs under
// the record's lock and must not call it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/move_stages.h"
#include "cluster/shard_view.h"
#include "common/mutex.h"
#include "common/status.h"
#include "control/worker_directory.h"
#include "das/v1/das.pb.h"
#include "das/v1/internal.pb.h"
#include "meta/plan.h"

namespace das::control {

struct RecordOptions {
  uint32_t replication_factor = 3;
  uint32_t shards = 16;
  std::string state_path;       // <data-dir>/cluster.pb
  std::string witness_address;  // host:port peers reach the witness at
  // A worker that has not answered for this long is dead (--dead-worker-after-s).
  std::chrono::seconds dead_worker_after{300};
};

class ClusterRecord {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using PlacementsChanged = std::function<void(const internal::v1::Topology&)>;

  // `state` as loaded (LoadClusterState); `formed`: its workers' raft addresses are known.
  // Every member the topology names joins `directory` (not owned, outlives this) and counts as
  // seen now: a restarted control node gives each worker its dead_worker_after.
  ClusterRecord(RecordOptions options, internal::v1::ControlState state, bool formed,
                WorkerDirectory& directory, PlacementsChanged placements_changed,
                Clock clock = std::chrono::steady_clock::now);
  ClusterRecord(const ClusterRecord&) = delete;
  ClusterRecord& operator=(const ClusterRecord&) = delete;

  internal::v1::Topology topology() const;
  uint64_t epoch() const;
  bool formed() const;
  // Forms the cluster once it can: from --workers once every worker's health named its raft
  // port, or from the first MinWorkers(R) workers that joined. True once formed (now or before).
  bool Form(const cluster::HealthMap& health);
  // Formed, no move under way or planned, and every member holds the current epoch.
  bool Settled() const;

  // Whether worker `id`, whose health just said `health`, should be sent the topology: it has
  // not adopted the current epoch, or says it holds an older one (a restored backup). Not a
  // worker that adopted another cluster's topology before (its data directory was replaced),
  // nor one that adopted once and is unreachable now.
  bool NeedsTopology(uint64_t id, const Result<internal::v1::WorkerHealthResponse>& health) const;
  // Worker `id` took the topology of `epoch` (kept when newer than what it held).
  void NoteAdopted(uint64_t id, uint64_t epoch);

  // The workers whose check answered are alive and seen now; with `failures_count`, those that
  // did not are not alive (for responding_nodes) until they answer again.
  void NoteAlive(const cluster::HealthMap& health, bool failures_count);
  meta::WorkerState StateOf(uint64_t id) const;
  // "active", "draining" or "dead", for /health.
  std::string WorkerStateName(uint64_t id) const;
  // responding_nodes of a read (Replication::RespondingWorkers).
  uint32_t RespondingWorkers(const std::set<uint64_t>& answered,
                             const std::set<uint64_t>& failed) const;

  // The map follows the groups' own configurations where no move is under way
  // (cluster::FollowGroupConfigurations).
  void FollowGroups(const std::vector<cluster::ShardView>& views);

  // The move under way, or else the next one meta/plan.h plans (drained workers leave first),
  // kept; nullopt when the cluster is balanced (or the plan could not be kept).
  std::optional<internal::v1::ReplicaMove> CurrentOrNextMove();
  // The shard the move under way changes, if any.
  std::optional<uint32_t> MovingShard() const;
  // What the move under way needs now (cluster::PlanMoveStep), from this tick's views.
  struct PlannedStep {
    internal::v1::ReplicaMove move;
    cluster::MoveStep step;
  };
  PlannedStep PlanStep(const std::vector<cluster::ShardView>& views) const;
  // Keeps `planned` once its I/O succeeded (cluster::ApplyMoveStep).
  struct KeptStep {
    bool advanced = false;   // the next step may follow at once
    bool preferred = false;  // the shard has a new preferred leader: hand leadership over now
  };
  KeptStep KeepStep(const PlannedStep& planned);
  // The bytes the move's new replica fetched so far, as its worker reports them.
  void NoteMoveBytes(const cluster::HealthMap& health);

  // POST /internal/v1/join and /admin/workers/<id>/decommission (Replication).
  Result<internal::v1::JoinResponse> Join(const internal::v1::JoinRequest& request);
  Status Decommission(uint64_t worker_id);

  // The rebalancer's part of /health; returns the topology it describes.
  internal::v1::Topology DescribeRebalance(das::v1::Rebalance& rebalance) const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  meta::WorkerState StateOfLocked(uint64_t id, TimePoint now) const REQUIRES(mu_);
  bool GoneLocked(uint64_t id) const REQUIRES(mu_);
  meta::ClusterView ViewLocked() const REQUIRES(mu_);
  std::string PlanInputsLocked() const REQUIRES(mu_);
  bool FormFromWorkersLocked(const cluster::HealthMap& health) REQUIRES(mu_);
  bool FormFromJoinsLocked() REQUIRES(mu_);
  void RetireDrainedLocked() REQUIRES(mu_);
  void EpochRaisedLocked(std::string_view why) REQUIRES(mu_);
  Status SaveLocked() REQUIRES(mu_);
  void SaveOrLogLocked() REQUIRES(mu_);

  const RecordOptions options_;
  WorkerDirectory& directory_;
  const PlacementsChanged placements_changed_;
  const Clock clock_;

  mutable Mutex mu_;
  internal::v1::ControlState state_ GUARDED_BY(mu_);
  bool formed_ GUARDED_BY(mu_) = false;
  // Whether each worker's latest health check answered, for responding_nodes.
  std::map<uint64_t, bool> alive_ GUARDED_BY(mu_);
  // When each worker last answered a health check (or joined).
  std::map<uint64_t, TimePoint> last_seen_ GUARDED_BY(mu_);
  uint32_t moves_pending_ GUARDED_BY(mu_) = 0;  // planned after the current one
  uint64_t moves_done_ GUARDED_BY(mu_) = 0;
  // Bytes the current move's new replica fetched so far, as its worker last reported them.
  uint64_t move_bytes_ GUARDED_BY(mu_) = 0;
  // PlanInputsLocked() of the last plan that found nothing to do.
  std::string balanced_ GUARDED_BY(mu_);
};

}  // namespace das::control
