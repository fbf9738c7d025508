// The worker's node id, kept in its data directory (<data-dir>/node_id, docs/operations.md,
// "Membership"): the first start writes it; every later start must name the same id, so that a
// worker never opens another worker's rows, raft logs and replicas as its own (they would be served
// under the wrong id, and raft would see one node twice).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace das::worker {

// Claims `data_dir` (created if missing) for worker `id`: OK when the directory names `id` or
// no id yet (then `id` is written durably); kInvalidArgument, saying whose it is, when it names
// another; kUnavailable when the file cannot be read or written.
Status ClaimNodeId(const std::string& data_dir, uint64_t id);

// The id `data_dir` keeps (0: none yet, or no such directory); kUnavailable when the file
// cannot be read or holds no id.
Result<uint64_t> KeptNodeId(const std::string& data_dir);

}  // namespace das::worker
