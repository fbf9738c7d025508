// The cluster's saved state (<data-dir>/cluster.pb) as a start finds it, checked against the
// flags: a data directory that keeps another cluster is refused before anything runs.
#pragma once

#include <vector>

#include "common/status.h"
#include "control/cluster_map.h"
#include "control/cluster_record.h"
#include "das/v1/internal.pb.h"

namespace das::control {

struct LoadedState {
  internal::v1::ControlState state;
  bool formed = false;  // a topology with placements and a cluster id
};

// The state kept at options.state_path, or, with none there, the topology planned from
// `workers` (--workers; empty: none yet, the cluster forms from joins). kInvalidArgument when
// the kept state has other --shards or --replication-factor, does not hold a listed worker at
// its address, or has its witness elsewhere; kInternal when it does not decode.
Result<LoadedState> LoadClusterState(const RecordOptions& options,
                                     const std::vector<WorkerInfo>& workers);

}  // namespace das::control
