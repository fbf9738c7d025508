#include "raft/group.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/log.h"
#include "raft/internal/raft_c.h"

namespace das::raft {

// Also what the state machine's callbacks get (their `ctx`).
struct Group::State {
  GroupOptions options;
  StateMachine* machine = nullptr;
  das_raft_node* node = nullptr;  // owned by libraft until closed; loop thread only
};

namespace {

// The log context of what a group's callbacks write: its shard, and its term once it is open.
LogContext ContextOf(const Group::State& state) {
  std::optional<uint64_t> term;
  if (state.node != nullptr) term = das_raft_term(state.node);
  return LogContext(static_cast<uint32_t>(state.options.group_id), term);
}

void ApplyEntry(void* ctx, uint64_t index, const void* data, size_t len) {
  const auto* state = static_cast<Group::State*>(ctx);
  const LogContext log = ContextOf(*state);
  state->machine->Apply(index, std::string_view(static_cast<const char*>(data), len));
}

void ReplayEntry(void* ctx, uint64_t log_start, uint64_t index, const void* data, size_t len) {
  const auto* state = static_cast<Group::State*>(ctx);
  const LogContext log = ContextOf(*state);
  state->machine->Replay(log_start, index, std::string_view(static_cast<const char*>(data), len));
}

int SnapshotState(void* ctx, uint64_t index, uint64_t kept_from, void** data, size_t* len) {
  const auto* state = static_cast<Group::State*>(ctx);
  const LogContext log = ContextOf(*state);
  Result<std::string> taken = state->machine->Snapshot(index, kept_from);
  if (!taken.ok()) return 1;
  const std::string& snapshot = *taken;
  *data = std::malloc(snapshot.size() > 0 ? snapshot.size() : 1);
  if (*data == nullptr) return 1;
  std::memcpy(*data, snapshot.data(), snapshot.size());
  *len = snapshot.size();
  return 0;
}

int RestoreState(void* ctx, const void* data, size_t len) {
  const auto* state = static_cast<Group::State*>(ctx);
  const LogContext log = ContextOf(*state);
  Status restored = state->machine->Restore(std::string_view(static_cast<const char*>(data), len));
  return restored.ok() ? 0 : 1;
}

void LeaderChanged(void* ctx, uint64_t leader_id) {
  const auto* state = static_cast<Group::State*>(ctx);
  const LogContext log = ContextOf(*state);
  if (leader_id == state->options.id) {
    spdlog::info("raft group {}: this replica (node {}) leads", state->options.group_id, leader_id);
  } else {
    spdlog::info("raft group {}: node {} leads", state->options.group_id, leader_id);
  }
}

// The error of a libraft call or completion, with the leader hint for kNotLeader.
Status ToStatus(das_raft_node* node, int rv) {
  if (rv == DAS_RAFT_NOT_LEADER) {
    das_raft_info info;
    das_raft_get_info(node, &info);
    return NotLeader("this replica is not the leader",
                     info.leader_id == 0 ? "" : std::to_string(info.leader_id));
  }
  return Unavailable(std::string("raft: ") + das_raft_strerror(rv));
}

// A callback in flight through the C API: owned by the C side until it fires once.
struct IndexPending {
  das_raft_node* node;
  IndexCallback done;
};

void IndexDone(void* arg, int status, uint64_t index) {
  std::unique_ptr<IndexPending> pending(static_cast<IndexPending*>(arg));
  if (status == 0) {
    pending->done(index);
  } else {
    pending->done(ToStatus(pending->node, status));
  }
}

struct TransferPending {
  std::function<void(Status)> done;
};

struct ChangePending {
  das_raft_node* node;
  std::function<void(Status)> done;
};

// The error of a membership change: another one in progress, or as ToStatus.
Status ChangeStatus(das_raft_node* node, int rv) {
  if (das_raft_is_cantchange(rv)) {
    return Unavailable("another membership change of this group is in progress");
  }
  return ToStatus(node, rv);
}

void ChangeDone(void* arg, int status, uint64_t) {
  std::unique_ptr<ChangePending> pending(static_cast<ChangePending*>(arg));
  pending->done(status == 0 ? Status::Ok() : ChangeStatus(pending->node, status));
}

void TransferDone(void* arg, int status, uint64_t) {
  std::unique_ptr<TransferPending> pending(static_cast<TransferPending*>(arg));
  pending->done(status == 0 ? Status::Ok() : Unavailable("leadership did not move"));
}

// Opens `state`'s node (state->node once open); its callbacks get `state`.
Status OpenNode(Loop& loop, Group::State& state) {
  const GroupOptions& o = state.options;
  std::vector<das_raft_server> servers;
  for (const Peer& p : o.voters) servers.push_back(das_raft_server{p.id, p.address.c_str()});
  const das_raft_options c_options{
      o.hub != nullptr ? static_cast<das_raft_hub*>(o.hub->handle()) : nullptr,
      static_cast<das_raft_log*>(loop.node_log()),
      o.group_id,
      o.id,
      o.address.c_str(),
      o.data_dir.c_str(),
      o.election_timeout_ms,
      o.heartbeat_timeout_ms,
      o.snapshot_threshold,
      o.snapshot_trailing,
      o.segment_size,
      static_cast<das_raft_log_budget*>(loop.log_budget())};
  const das_raft_fsm fsm{&state,        &ApplyEntry,  &SnapshotState,
                         &RestoreState, &ReplayEntry, &LeaderChanged};
  char errmsg[256] = {0};
  int rv = 0;
  loop.RunSync([&] {
    das_raft_node* node = nullptr;
    rv = das_raft_open(static_cast<uv_loop_t*>(loop.uv_loop()), &c_options, &fsm, servers.data(),
                       servers.size(), &node, errmsg, sizeof errmsg);
    if (rv == 0) state.node = node;
  });
  if (rv != 0) {
    return Unavailable("raft group " + std::to_string(o.id) + " at " + o.address +
                       " cannot start: " + errmsg);
  }
  return Status::Ok();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kUnavailable:
      return "unavailable";
    case Role::kFollower:
      return "follower";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "unknown";
}

Group::Group(Loop& loop, std::unique_ptr<State> state) : loop_(loop), state_(std::move(state)) {}

Group::~Group() { Close(); }

Result<std::unique_ptr<Group>> Group::Open(Loop& loop, GroupOptions options,
                                           StateMachine& machine) {
  std::error_code error;
  std::filesystem::create_directories(options.data_dir, error);
  if (error) return Unavailable("cannot create " + options.data_dir + ": " + error.message());
  auto state = std::make_unique<State>();
  state->options = std::move(options);
  state->machine = &machine;
  RETURN_IF_ERROR(OpenNode(loop, *state));
  return std::unique_ptr<Group>(new Group(loop, std::move(state)));
}

namespace {

// Posts `fn` to the loop, or answers `done` kShuttingDown when the loop is stopping (the posted
// closure, and with it `done`, would be dropped).
template <typename Done, typename Fn>
void PostOr(Loop& loop, std::shared_ptr<Done> done, Fn fn) {
  if (!loop.Post([done, fn = std::move(fn)]() mutable { fn(*done); })) {
    (*done)(ShuttingDown("the raft loop is stopping"));
  }
}

}  // namespace

void Group::Propose(std::string entry, IndexCallback done) {
  PostOr(
      loop_, std::make_shared<IndexCallback>(std::move(done)),
      [state = state_.get(), entry = std::move(entry)](IndexCallback& done) mutable {
        if (state->node == nullptr) return done(ShuttingDown("the raft group is closed"));
        auto pending = std::make_unique<IndexPending>(IndexPending{state->node, std::move(done)});
        const int rv =
            das_raft_propose(state->node, entry.data(), entry.size(), &IndexDone, pending.get());
        if (rv != 0) return pending->done(ToStatus(state->node, rv));
        (void)pending.release();  // IndexDone owns it now
      });
}

void Group::Barrier(IndexCallback done) {
  PostOr(
      loop_, std::make_shared<IndexCallback>(std::move(done)),
      [state = state_.get()](IndexCallback& done) {
        if (state->node == nullptr) return done(ShuttingDown("the raft group is closed"));
        auto pending = std::make_unique<IndexPending>(IndexPending{state->node, std::move(done)});
        const int rv = das_raft_barrier(state->node, &IndexDone, pending.get());
        if (rv != 0) return pending->done(ToStatus(state->node, rv));
        (void)pending.release();
      });
}

void Group::Transfer(uint64_t id, std::function<void(Status)> done) {
  PostOr(loop_, std::make_shared<std::function<void(Status)>>(std::move(done)),
         [state = state_.get(), id](std::function<void(Status)>& done) {
           if (state->node == nullptr) return done(ShuttingDown("the raft group is closed"));
           auto pending = std::make_unique<TransferPending>(TransferPending{std::move(done)});
           const int rv = das_raft_transfer(state->node, id, &TransferDone, pending.get());
           if (rv != 0) return pending->done(ToStatus(state->node, rv));
           (void)pending.release();
         });
}

namespace {

// Posts a membership change to the loop: `start(node, pending)` is the das_raft_* call, which
// hands `pending` to ChangeDone on success.
template <typename Start>
void PostChange(Loop& loop, Group::State* state, std::function<void(Status)> done, Start start) {
  PostOr(
      loop, std::make_shared<std::function<void(Status)>>(std::move(done)),
      [state, start = std::move(start)](std::function<void(Status)>& done) {
        if (state->node == nullptr) return done(ShuttingDown("the raft group is closed"));
        auto pending = std::make_unique<ChangePending>(ChangePending{state->node, std::move(done)});
        const int rv = start(state->node, pending.get());
        if (rv != 0) return pending->done(ChangeStatus(state->node, rv));
        (void)pending.release();  // ChangeDone owns it now
      });
}

}  // namespace

void Group::AddSpare(uint64_t id, std::string address, std::function<void(Status)> done) {
  PostChange(loop_, state_.get(), std::move(done),
             [id, address = std::move(address)](das_raft_node* node, ChangePending* pending) {
               return das_raft_add(node, id, address.c_str(), &ChangeDone, pending);
             });
}

void Group::Assign(uint64_t id, MemberRole role, std::function<void(Status)> done) {
  const int c_role = role == MemberRole::kVoter     ? DAS_RAFT_ROLE_VOTER
                     : role == MemberRole::kStandby ? DAS_RAFT_ROLE_STANDBY
                                                    : DAS_RAFT_ROLE_SPARE;
  PostChange(loop_, state_.get(), std::move(done),
             [id, c_role](das_raft_node* node, ChangePending* pending) {
               return das_raft_assign(node, id, c_role, &ChangeDone, pending);
             });
}

void Group::Remove(uint64_t id, std::function<void(Status)> done) {
  PostChange(loop_, state_.get(), std::move(done),
             [id](das_raft_node* node, ChangePending* pending) {
               return das_raft_remove(node, id, &ChangeDone, pending);
             });
}

namespace {

// Read on the loop thread.
std::vector<Member> ReadMembers(das_raft_node* node) {
  std::vector<Member> out;
  if (node == nullptr) return out;
  std::vector<das_raft_member> members(16);
  size_t n = das_raft_members(node, members.data(), members.size());
  if (n > members.size()) {
    members.resize(n);
    n = das_raft_members(node, members.data(), members.size());
  }
  for (size_t i = 0; i < n && i < members.size(); ++i) {
    const MemberRole role = members[i].role == DAS_RAFT_ROLE_VOTER     ? MemberRole::kVoter
                            : members[i].role == DAS_RAFT_ROLE_STANDBY ? MemberRole::kStandby
                                                                       : MemberRole::kSpare;
    out.push_back(Member{members[i].id, members[i].address, role});
  }
  return out;
}

// Read on the loop thread.
GroupInfo ReadInfo(das_raft_node* node) {
  GroupInfo info;
  if (node == nullptr) return info;
  das_raft_info c_info{};
  das_raft_get_info(node, &c_info);
  info.role = static_cast<Role>(c_info.state);
  info.term = c_info.term;
  info.commit_index = c_info.commit_index;
  info.applied_index = c_info.last_applied;
  info.last_index = c_info.last_index;
  info.leader_id = c_info.leader_id;
  info.leader_address = c_info.leader_address;
  info.leader_changes = c_info.leader_changes;
  info.snapshots_taken = c_info.snapshots_taken;
  info.snapshots_restored = c_info.snapshots_restored;
  return info;
}

}  // namespace

std::vector<Member> Group::Members() {
  std::vector<Member> out;
  loop_.RunSync([&] { out = ReadMembers(state_->node); });
  return out;
}

GroupInfo Group::Info() {
  GroupInfo info;
  loop_.RunSync([&] { info = ReadInfo(state_->node); });
  return info;
}

void Group::Describe(std::function<void(GroupInfo, std::vector<Member>)> done) {
  auto shared =
      std::make_shared<std::function<void(GroupInfo, std::vector<Member>)>>(std::move(done));
  const bool posted =
      loop_.Post([this, shared] { (*shared)(ReadInfo(state_->node), ReadMembers(state_->node)); });
  if (!posted) (*shared)(GroupInfo{}, {});
}

void DescribeAll(std::vector<std::pair<Group*, std::shared_ptr<const void>>> groups,
                 std::function<void(std::vector<GroupDescription>)> done) {
  if (groups.empty()) return done({});
  struct Gathered {
    std::vector<GroupDescription> out;
    std::atomic<size_t> left{0};
    std::function<void(std::vector<GroupDescription>)> done;
  };
  auto gathered = std::make_shared<Gathered>();
  gathered->out.resize(groups.size());
  gathered->left = groups.size();
  gathered->done = std::move(done);
  for (size_t i = 0; i < groups.size(); ++i) {
    groups[i].first->Describe([gathered, i, owner = std::move(groups[i].second)](
                                  GroupInfo info, std::vector<Member> members) {
      gathered->out[i] = GroupDescription{std::move(info), std::move(members)};
      if (gathered->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        gathered->done(std::move(gathered->out));
      }
    });
  }
}

void Group::Close() {
  if (closed_) return;
  closed_ = true;
  std::promise<void> closed;
  bool closing = false;
  loop_.RunSync([&] {
    if (state_->node == nullptr) return;
    das_raft_node* node = std::exchange(state_->node, nullptr);
    closing = true;
    das_raft_close(
        node, [](void* arg) { static_cast<std::promise<void>*>(arg)->set_value(); }, &closed);
  });
  if (closing) closed.get_future().get();
}

}  // namespace das::raft
