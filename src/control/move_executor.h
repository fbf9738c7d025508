// MoveExecutor: the rebalancer's I/O. Each tick it takes the move under way, or the next one
// the record plans (ClusterRecord::CurrentOrNextMove), and carries it on as far as it can go
// now: the step cluster::PlanMoveStep names (a membership change at the shard's leader, a
// leadership transfer, the new replica first holding the current epoch), then the record keeps
// what cluster::ApplyMoveStep makes of it. A step that fails is tried again at a later tick;
// every stage is kept in cluster.pb, so a restarted control node finishes the move.
// Moves start only while every shard has a data leader and every member holds the epoch.
// Thread-safety: from the replication loop's coroutines only, one call at a time.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "cluster/shard_view.h"
#include "control/cluster_record.h"
#include "control/leader_balancer.h"
#include "control/shard_leader.h"
#include "control/topology_pusher.h"
#include "control/witness_keeper.h"
#include "control/worker_directory.h"

namespace das::control {

class MoveExecutor {
 public:
  // Everything given is shared and outlives this.
  struct Parts {
    ClusterRecord& record;
    const WorkerDirectory& directory;
    const std::vector<std::unique_ptr<ShardLeader>>& leaders;
    TopologyPusher& pusher;
    WitnessKeeper& witness;
    LeaderBalancer& balancer;
    const std::atomic<bool>& stopping;
  };
  explicit MoveExecutor(Parts parts) : parts_(parts) {}

  // Carries the current move on as far as it can go with `views` (this tick's, one per shard),
  // or plans the next one.
  boost::asio::awaitable<void> Rebalance(const std::vector<cluster::ShardView>& views);

 private:
  // One step of the move under way: true when it advanced (the next may follow at once).
  boost::asio::awaitable<bool> Step(const std::vector<cluster::ShardView>& views);
  // The step's I/O: true once done (nothing to do is done).
  boost::asio::awaitable<bool> CarryOut(const ClusterRecord::PlannedStep& planned,
                                        const cluster::ShardView& view);
  // One membership change at the shard's leader; true once done.
  boost::asio::awaitable<bool> AtLeader(const cluster::ShardView& view,
                                        internal::v1::MembershipRequest request);
  // `to` holds the topology's current epoch (pushed to it; the witness: given it here).
  boost::asio::awaitable<bool> HoldsItsEpoch(uint64_t to);

  Parts parts_;
};

}  // namespace das::control
