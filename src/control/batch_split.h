// A client batch cut into the parts bound for each destination (a worker, or a replicated
// shard) without copying a row: the parts are made on the batch's arena and take its rows.
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "das/v1/internal.pb.h"

namespace das::control {

// An arena for one client batch of `body_bytes` encoded bytes: its blocks grow with the batch,
// so a 10,000-row batch takes a few allocations instead of several per row.
std::shared_ptr<google::protobuf::Arena> BatchArena(size_t body_bytes);

// Moves every row of `batch` into the part of its destination, `destinations[i]` for row i,
// keeping their order; `batch` is left without rows. With an idempotency key every part
// carries the key and `fingerprint`, and each destination of `keyed_without_rows` gets a part
// even when no row goes there. The parts are made on the batch's arena.
// REQUIRES: destinations.size() == batch.rows_size(); `batch` is on an arena; `fingerprint` is
// BatchFingerprint(batch) when the batch has a key.
std::map<uint32_t, internal::v1::SubBatch*> SplitBatch(
    internal::v1::InsertBatchWire& batch, uint64_t fingerprint,
    const std::vector<uint32_t>& destinations, const std::vector<uint32_t>& keyed_without_rows);

}  // namespace das::control
