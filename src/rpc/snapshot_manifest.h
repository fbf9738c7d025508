// The snapshot of a shard's raft group, as every voter of it writes one and any other may
// restore it: the shard and the index of the last write entry its state covers (16 bytes,
// little-endian). Rows are never in it: a data replica that restores a manifest its store does
// not cover fetches a copy of another data replica's rows at that index or later
// (replica/shard_replica.h). The witness writes the same manifest, so that a worker its
// snapshot reaches fetches a copy as well.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace das::rpc {

struct SnapshotManifest {
  uint64_t shard = 0;
  uint64_t index = 0;  // the last write entry the state holds
};

std::string EncodeManifest(const SnapshotManifest& manifest);
// kMalformed when `bytes` is not a manifest.
Result<SnapshotManifest> DecodeManifest(std::string_view bytes);

}  // namespace das::rpc
