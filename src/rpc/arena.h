// The arena options for messages decoded from `encoded_bytes` of protobuf (a client batch, a
// shard-writes request, a raft entry): blocks that grow with the message, so that decoding
// thousands of rows takes a few allocations instead of several per row, freed whole.
// Thread-safety: a free function without shared state.
#pragma once

#include <algorithm>
#include <cstddef>

#include <google/protobuf/arena.h>

namespace das::rpc {

inline google::protobuf::ArenaOptions DecodeArena(size_t encoded_bytes) {
  // A decoded row takes two to three times its encoded bytes (its message and its key).
  constexpr size_t kMinBlock = 4 << 10;
  constexpr size_t kMaxBlock = 4 << 20;
  google::protobuf::ArenaOptions options;
  options.start_block_size = std::clamp(encoded_bytes * 2, kMinBlock, kMaxBlock);
  options.max_block_size = kMaxBlock;
  return options;
}

}  // namespace das::rpc
