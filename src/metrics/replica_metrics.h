// The metrics of shard replicas (a worker's, or the witness's on the control node), read from
// their ReplicaHealth at scrape time: per shard, raft's term, role, commit and applied index,
// leader changes and snapshots, and the replica's store (stored index, rows, the
// copies it installed and served). Names in the README's Metrics section. The writer queues of
// the stores are the worker's to report (das_store_queue_depth: it may keep an older build's
// unreplicated store too).
#pragma once

#include <vector>

#include "das/v1/internal.pb.h"
#include "metrics/registry.h"

namespace das::metrics {

// `data` false: the replicas keep no data (the witness's): only their raft families.
std::vector<ScrapedFamily> ReplicaFamilies(const std::vector<internal::v1::ReplicaHealth>& replicas,
                                           bool data = true);

}  // namespace das::metrics
