#include "metrics/replica_metrics.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace das::metrics {
namespace {

using internal::v1::ReplicaHealth;
using Kind = ScrapedFamily::Kind;

struct Field {
  const char* name;
  const char* help;
  Kind kind;
  bool data;  // a figure of the replica's store (none on the witness)
  std::function<uint64_t(const ReplicaHealth&)> value;
};

const std::vector<Field>& Fields() {
  static const std::vector<Field> fields = {
      {"das_raft_term", "The replica's current raft term", Kind::kGauge, false,
       [](const ReplicaHealth& r) { return r.term(); }},
      {"das_raft_commit_index", "The highest log index the replica knows committed", Kind::kGauge,
       false, [](const ReplicaHealth& r) { return r.commit_index(); }},
      {"das_raft_applied_index", "The highest log index handed to the replica's state machine",
       Kind::kGauge, false, [](const ReplicaHealth& r) { return r.applied_index(); }},
      {"das_replica_stored_index",
       "The highest log index committed in the replica's DuckDB store (the witness: applied)",
       Kind::kGauge, true, [](const ReplicaHealth& r) { return r.stored_index(); }},
      {"das_replica_rows", "Rows in the replica's store", Kind::kGauge, true,
       [](const ReplicaHealth& r) { return r.rows(); }},
      {"das_raft_leader_changes_total",
       "Times the leader this replica knew became another node, since it opened", Kind::kCounter,
       false, [](const ReplicaHealth& r) { return r.leader_changes(); }},
      {"das_raft_snapshots_taken_total",
       "Snapshots (manifests) the replica's state machine took, since it opened", Kind::kCounter,
       false, [](const ReplicaHealth& r) { return r.snapshots_taken(); }},
      {"das_raft_snapshots_restored_total",
       "Snapshots the replica restored (its own at start, or one its leader sent), since it "
       "opened",
       Kind::kCounter, false, [](const ReplicaHealth& r) { return r.snapshots_restored(); }},
      {"das_replica_copies_installed_total",
       "Copies of another replica's data installed here (a catch-up past the leader's log)",
       Kind::kCounter, true, [](const ReplicaHealth& r) { return r.copies_installed(); }},
      {"das_replica_copies_served_total",
       "Copies of this replica's data made for replicas behind the leader's log", Kind::kCounter,
       true, [](const ReplicaHealth& r) { return r.copies_served(); }},
  };
  return fields;
}

constexpr std::array<std::string_view, 4> kRoles = {"leader", "follower", "candidate",
                                                    "unavailable"};

}  // namespace

std::vector<ScrapedFamily> ReplicaFamilies(const std::vector<ReplicaHealth>& replicas, bool data) {
  std::vector<ScrapedFamily> families;
  for (const Field& field : Fields()) {
    if (field.data && !data) continue;
    ScrapedFamily& family = families.emplace_back();
    family.name = field.name;
    family.help = field.help;
    family.kind = field.kind;
    for (const ReplicaHealth& replica : replicas) {
      family.samples.push_back({{{"shard", std::to_string(replica.shard())}},
                                static_cast<double>(field.value(replica))});
    }
  }
  ScrapedFamily& roles = families.emplace_back();
  roles.name = "das_raft_role";
  roles.help = "1 for the replica's raft role, 0 for the others";
  for (const ReplicaHealth& replica : replicas) {
    for (std::string_view role : kRoles) {
      roles.samples.push_back(
          {{{"shard", std::to_string(replica.shard())}, {"role", std::string(role)}},
           replica.role() == role ? 1.0 : 0.0});
    }
  }
  return families;
}

}  // namespace das::metrics
