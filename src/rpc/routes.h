// The internal API's routes, named once: the worker service registers them, the worker client
// calls them; nothing else spells an internal path.
#pragma once

namespace das::rpc {

inline constexpr char kHealthPath[] = "/internal/v1/health";  // GET WorkerHealthResponse
inline constexpr char kClockPath[] = "/internal/v1/clock";    // GET ClockResponse
// Shards (docs/architecture.md).
inline constexpr char kWritePath[] = "/internal/v1/write";  // POST WriteRequest (with a shard)
inline constexpr char kQueryPath[] = "/internal/v1/query";  // POST ShardQuery (with a shard)
inline constexpr char kTopologyPath[] = "/internal/v1/topology";         // POST TopologyRequest
inline constexpr char kTransferPath[] = "/internal/v1/shard/transfer";   // POST TransferRequest
inline constexpr char kShardWritesPath[] = "/internal/v1/shard/writes";  // POST ShardWritesRequest
inline constexpr char kCopyPath[] = "/internal/v1/shard/copy";           // POST CopyRequest
inline constexpr char kCopyChunkPath[] = "/internal/v1/shard/copy/chunk";  // POST CopyChunkRequest
// The import of an older build's unreplicated store into shards (control/legacy_import.h).
inline constexpr char kLegacyRowsPath[] = "/internal/v1/legacy/rows";  // POST LegacyPageRequest
inline constexpr char kLegacyKeysPath[] = "/internal/v1/legacy/keys";  // POST LegacyPageRequest
inline constexpr char kLegacyDonePath[] = "/internal/v1/legacy/done";  // POST LegacyDoneRequest
// Membership (docs/operations.md, "Membership").
inline constexpr char kMembershipPath[] =
    "/internal/v1/shard/membership";                      // POST MembershipRequest
inline constexpr char kJoinPath[] = "/internal/v1/join";  // POST JoinRequest, at the control node
// The detail of a join's kNotFound refusal when the id asked for left the cluster (any other
// kNotFound: no such route, a control node that takes no joins).
inline constexpr char kDepartedDetail[] = "departed";

}  // namespace das::rpc
