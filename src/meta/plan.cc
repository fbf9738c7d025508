#include "meta/plan.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

namespace das::meta {
namespace {

bool Contains(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// What the planner needs to know of the cluster, computed once per call.
class Facts {
 public:
  explicit Facts(const ClusterView& view) : view_(view), target_(TargetOf(view)) {
    for (const WorkerView& w : view.workers) {
      state_[w.id] = w.state;
      if (w.state == WorkerState::kActive) {
        active_.push_back(w.id);
        load_[w.id] = 0;
        leads_[w.id] = 0;
      }
    }
    std::sort(active_.begin(), active_.end());
    for (const ShardReplicas& s : view.shards) {
      for (uint64_t v : s.voters) {
        if (load_.count(v)) ++load_[v];
      }
      if (leads_.count(s.leader)) ++leads_[s.leader];
    }
  }

  const Target& target() const { return target_; }
  const std::vector<uint64_t>& active() const { return active_; }
  bool IsWitness(uint64_t id) const { return id != 0 && id == view_.witness_id; }
  bool IsActive(uint64_t id) const { return load_.count(id) > 0; }
  size_t Load(uint64_t id) const { return load_.at(id); }
  size_t Leads(uint64_t id) const { return leads_.at(id); }

  // A data voter on a worker that is not active (dead, draining or unknown).
  bool Doomed(uint64_t id) const { return !IsWitness(id) && !IsActive(id); }

  // The active worker without a replica of `shard` that holds the fewest (then lowest id).
  std::optional<uint64_t> LeastLoadedOutside(const ShardReplicas& shard) const {
    std::optional<uint64_t> best;
    for (uint64_t w : active_) {
      if (Contains(shard.voters, w)) continue;
      if (!best || Load(w) < Load(*best)) best = w;
    }
    return best;
  }

  size_t DataVoters(const ShardReplicas& shard) const {
    return static_cast<size_t>(std::count_if(shard.voters.begin(), shard.voters.end(),
                                             [this](uint64_t v) { return !IsWitness(v); }));
  }
  bool HasWitness(const ShardReplicas& shard) const {
    return std::any_of(shard.voters.begin(), shard.voters.end(),
                       [this](uint64_t v) { return IsWitness(v); });
  }

 private:
  const ClusterView& view_;
  const Target target_;
  std::map<uint64_t, WorkerState> state_;
  std::vector<uint64_t> active_;      // sorted
  std::map<uint64_t, size_t> load_;   // active workers: shards they hold a voter of
  std::map<uint64_t, size_t> leads_;  // active workers: shards they lead
};

std::string Name(const Facts& facts, uint64_t id) {
  return facts.IsWitness(id) ? "the witness" : "worker " + std::to_string(id);
}

// 1. A shard with fewer voters than the target gets one (the shards with the fewest first).
std::optional<Move> AddMissing(const ClusterView& view, const Facts& facts) {
  const size_t wanted = facts.target().data_replicas + (facts.target().witness ? 1 : 0);
  std::vector<const ShardReplicas*> short_of;
  for (const ShardReplicas& s : view.shards) {
    if (s.voters.size() < wanted) short_of.push_back(&s);
  }
  std::stable_sort(short_of.begin(), short_of.end(),
                   [](const ShardReplicas* a, const ShardReplicas* b) {
                     return a->voters.size() < b->voters.size();
                   });
  for (const ShardReplicas* s : short_of) {
    if (facts.DataVoters(*s) < facts.target().data_replicas) {
      if (std::optional<uint64_t> to = facts.LeastLoadedOutside(*s)) {
        return Move{Move::Kind::kAdd, s->shard, 0, *to, "shard has too few replicas"};
      }
    }
    if (facts.target().witness && !facts.HasWitness(*s)) {
      return Move{Move::Kind::kAdd, s->shard, 0, view.witness_id,
                  "shard has too few voters: the witness makes up the quorum"};
    }
  }
  return std::nullopt;
}

// 2. A replica on a dead or draining worker moves to an active one, or (when there is none
// free and the target has a witness) to the witness.
std::optional<Move> MoveDoomed(const ClusterView& view, const Facts& facts) {
  for (const ShardReplicas& s : view.shards) {
    for (uint64_t v : s.voters) {
      if (!facts.Doomed(v)) continue;
      if (std::optional<uint64_t> to = facts.LeastLoadedOutside(s)) {
        return Move{Move::Kind::kReplace, s.shard, v, *to,
                    "worker " + std::to_string(v) + " is dead or draining"};
      }
      if (facts.target().witness && !facts.HasWitness(s)) {
        return Move{Move::Kind::kReplace, s.shard, v, view.witness_id,
                    "worker " + std::to_string(v) +
                        " is dead or draining and no worker is free: the witness takes its vote"};
      }
    }
  }
  return std::nullopt;
}

// 3. The witness gives way to a data replica once the target has none.
std::optional<Move> ReplaceWitness(const ClusterView& view, const Facts& facts) {
  if (facts.target().witness) return std::nullopt;
  for (const ShardReplicas& s : view.shards) {
    if (!facts.HasWitness(s)) continue;
    if (facts.DataVoters(s) >= facts.target().data_replicas) continue;  // rule 4 removes it
    if (std::optional<uint64_t> to = facts.LeastLoadedOutside(s)) {
      return Move{Move::Kind::kReplace, s.shard, view.witness_id, *to,
                  "a data replica takes the witness's place"};
    }
  }
  return std::nullopt;
}

// 4. A shard with more voters than the target loses one: the witness when the target has none,
// else the replica on the most loaded worker (not the leader when another will do).
std::optional<Move> RemoveExtra(const ClusterView& view, const Facts& facts) {
  for (const ShardReplicas& s : view.shards) {
    if (facts.HasWitness(s) && !facts.target().witness &&
        facts.DataVoters(s) >= facts.target().data_replicas) {
      return Move{Move::Kind::kRemove, s.shard, view.witness_id, 0,
                  "the shard has its data replicas: the witness leaves"};
    }
    if (facts.DataVoters(s) <= facts.target().data_replicas) continue;
    std::optional<uint64_t> from;
    for (uint64_t v : s.voters) {
      if (facts.IsWitness(v) || !facts.IsActive(v)) continue;
      const auto better = [&](uint64_t a, uint64_t b) {  // a is a better pick than b
        if ((a == s.leader) != (b == s.leader)) return b == s.leader;
        return facts.Load(a) > facts.Load(b);
      };
      if (!from || better(v, *from)) from = v;
    }
    if (from) return Move{Move::Kind::kRemove, s.shard, *from, 0, "shard has one replica too many"};
  }
  return std::nullopt;
}

// 5. Replica counts per active worker within one of each other.
std::optional<Move> Balance(const ClusterView& view, const Facts& facts) {
  if (facts.active().size() < 2) return std::nullopt;
  uint64_t most = facts.active().front();
  uint64_t least = facts.active().front();
  for (uint64_t w : facts.active()) {
    if (facts.Load(w) > facts.Load(most)) most = w;
    if (facts.Load(w) < facts.Load(least)) least = w;
  }
  if (facts.Load(most) <= facts.Load(least) + 1) return std::nullopt;
  const ShardReplicas* pick = nullptr;
  for (const ShardReplicas& s : view.shards) {
    if (!Contains(s.voters, most) || Contains(s.voters, least)) continue;
    // A shard `most` does not lead moves without a leadership transfer.
    if (!pick || (pick->leader == most && s.leader != most)) pick = &s;
  }
  if (pick == nullptr) return std::nullopt;
  return Move{Move::Kind::kReplace, pick->shard, most, least,
              "worker " + std::to_string(most) + " holds " + std::to_string(facts.Load(most)) +
                  " replicas, worker " + std::to_string(least) + " " +
                  std::to_string(facts.Load(least))};
}

// 6. Leaders on active data replicas, and spread: a shard's leader leads at most one shard more
// than another of its voters.
std::optional<Move> SpreadLeaders(const ClusterView& view, const Facts& facts) {
  for (const ShardReplicas& s : view.shards) {
    if (s.leader == 0) continue;
    const bool misplaced = !facts.IsActive(s.leader);
    std::optional<uint64_t> to;
    for (uint64_t v : s.voters) {
      if (v == s.leader || !facts.IsActive(v)) continue;
      if (!to || facts.Leads(v) < facts.Leads(*to)) to = v;
    }
    if (!to) continue;
    if (!misplaced && facts.Leads(s.leader) < facts.Leads(*to) + 2) continue;
    return Move{Move::Kind::kTransfer, s.shard, s.leader, *to,
                misplaced ? Name(facts, s.leader) + " leads but keeps no data"
                          : "worker " + std::to_string(s.leader) + " leads " +
                                std::to_string(facts.Leads(s.leader)) + " shards, worker " +
                                std::to_string(*to) + " " + std::to_string(facts.Leads(*to))};
  }
  return std::nullopt;
}

uint64_t FirstDataVoter(const ClusterView& view, const ShardReplicas& shard) {
  uint64_t best = 0;
  for (uint64_t v : shard.voters) {
    if (v == view.witness_id) continue;
    if (best == 0 || v < best) best = v;
  }
  return best;
}

}  // namespace

bool operator==(const Move& a, const Move& b) {
  return a.kind == b.kind && a.shard == b.shard && a.from == b.from && a.to == b.to;
}

Target TargetOf(const ClusterView& view) {
  const auto active = static_cast<uint32_t>(
      std::count_if(view.workers.begin(), view.workers.end(),
                    [](const WorkerView& w) { return w.state == WorkerState::kActive; }));
  const uint32_t r = view.replication_factor;
  if (active >= r) return {r, false};
  if (r > 1 && active == r - 1 && view.witness_id != 0) return {r - 1, true};
  return {active, false};
}

std::optional<Move> NextMove(const ClusterView& view) {
  const Facts facts(view);
  for (auto rule :
       {&AddMissing, &MoveDoomed, &ReplaceWitness, &RemoveExtra, &Balance, &SpreadLeaders}) {
    if (std::optional<Move> move = rule(view, facts)) return move;
  }
  return std::nullopt;
}

ClusterView Apply(ClusterView view, const Move& move) {
  for (ShardReplicas& s : view.shards) {
    if (s.shard != move.shard) continue;
    auto remove = [&](uint64_t id) {
      s.voters.erase(std::remove(s.voters.begin(), s.voters.end(), id), s.voters.end());
      if (s.leader == id) s.leader = FirstDataVoter(view, s);
    };
    switch (move.kind) {
      case Move::Kind::kReplace:
        s.voters.push_back(move.to);
        remove(move.from);
        break;
      case Move::Kind::kAdd:
        s.voters.push_back(move.to);
        break;
      case Move::Kind::kRemove:
        remove(move.from);
        break;
      case Move::Kind::kTransfer:
        s.leader = move.to;
        break;
    }
  }
  return view;
}

}  // namespace das::meta
