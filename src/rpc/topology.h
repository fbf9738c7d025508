// The cluster topology on the wire (das.internal.v1.Topology, docs/architecture.md): helpers
// that the control node (which computes it) and the workers (which keep it) share.
// Thread-safety: plain functions over immutable messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "das/v1/internal.pb.h"

namespace das::rpc {

// The raft id of the control node's witness; worker ids are 32-bit, so it never collides.
inline constexpr uint64_t kWitnessNodeId = uint64_t{1} << 32;
// The longest raft address a node may have (the raft transport's handshake carries it).
inline constexpr size_t kMaxRaftAddressBytes = 255;

// "worker-<id>", or "witness".
std::string NodeName(uint64_t node_id);

// How a worker whose disk is full says so in /health: "disk full: 3 MiB free, below
// --disk-reserve-mb 24".
std::string DiskFullMessage(uint64_t free_bytes, uint64_t reserve_bytes);

// Checks what every consumer relies on: shards 1.., placements 0..shards-1 in order, covering
// the slots contiguously, voters distinct and named in `nodes`. kInvalidArgument naming why.
Status ValidateTopology(const internal::v1::Topology& topology, uint32_t slots);

// A replica a node should hold (docs/operations.md, "Membership"): it bootstraps its group with
// `bootstrap` (the shard's founders) when it is one of them and is not being added; else
// `bootstrap` is empty and the replica joins (it waits until the leader adds it).
struct ReplicaPlan {
  uint32_t shard = 0;
  std::vector<uint64_t> bootstrap;
};
// The replicas `node_id` holds in `topology`: every shard whose voters or joining nodes name it.
std::vector<ReplicaPlan> ReplicasOf(const internal::v1::Topology& topology, uint64_t node_id);

// What a node changes to hold exactly its replicas of `topology` when it holds the replicas of
// `held` now: the witness's and a worker's replica host's adoption of a topology alike.
struct ReplicaChanges {
  std::vector<ReplicaPlan> open;  // ReplicasOf's plans of the shards not held
  std::vector<uint32_t> close;    // shards held that the node no longer has
  std::set<uint32_t> wanted;      // every shard the node has in `topology`
};
ReplicaChanges ChangesOf(const internal::v1::Topology& topology, uint64_t node_id,
                         const std::vector<uint32_t>& held);

// The node ids of `placement`'s data replicas (voters other than the witness), in order.
std::vector<uint64_t> DataVoters(const internal::v1::ShardPlacement& placement);

// Adds a group's configuration to `health` (ReplicaHealth.members). `Member` is raft::Member
// (id, role with kVoter, kStandby, kSpare), named as a template so that rpc needs no raft.
template <typename Member>
void AddMembers(const std::vector<Member>& members, internal::v1::ReplicaHealth& health) {
  using Role = decltype(Member::role);
  for (const Member& member : members) {
    internal::v1::GroupMember& m = *health.add_members();
    m.set_node_id(member.id);
    m.set_role(member.role == Role::kVoter     ? internal::v1::GroupMember::VOTER
               : member.role == Role::kStandby ? internal::v1::GroupMember::STANDBY
                                               : internal::v1::GroupMember::SPARE);
  }
}

// Adds what a raft group says of itself (raft::GroupDescription's info and members) to
// `health`. A template for the same reason; the role's name is raft's RoleName, found by ADL.
template <typename Info, typename Member>
void DescribeGroup(const Info& info, const std::vector<Member>& members,
                   internal::v1::ReplicaHealth& health) {
  health.set_role(std::string(RoleName(info.role)));
  health.set_term(info.term);
  health.set_commit_index(info.commit_index);
  health.set_applied_index(info.applied_index);
  health.set_leader_id(info.leader_id);
  health.set_leader_changes(info.leader_changes);
  health.set_snapshots_taken(info.snapshots_taken);
  health.set_snapshots_restored(info.snapshots_restored);
  AddMembers(members, health);
}

// nullptr when no node has `node_id`.
const internal::v1::NodeAddress* FindNode(const internal::v1::Topology& topology, uint64_t node_id);
// Every node's (raft id, raft address) now: what raft::Hub::SetPeers dials, since a group's
// configuration keeps the address a member had when it was added.
std::vector<std::pair<uint64_t, std::string>> RaftPeers(const internal::v1::Topology& topology);

}  // namespace das::rpc
