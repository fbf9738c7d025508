/* A C API of our own over libraft 0.22.1: its header does not compile as C++ (types defined
 * inside sizeof in static asserts), so only raft_c.c and its node_*.c include raft.h (through
 * node.h), and the C++ side of
 * src/raft calls these functions. Every function runs on the node's libuv loop thread, and every
 * callback is called there. Nothing outside src/raft includes this file. */
#ifndef DAS_RAFT_INTERNAL_RAFT_C_H_
#define DAS_RAFT_INTERNAL_RAFT_C_H_

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct das_raft_node das_raft_node;

/* One TCP listener for every group of a node (see transport.h). */
typedef struct das_raft_hub das_raft_hub;
typedef void (*das_raft_hub_closed_cb)(void* arg);
/* A connection refused (in its handshake, either way): `peer` is "ip:port", `line` says why. */
typedef void (*das_raft_hub_log_cb)(void* arg, const char* peer, const char* line);
/* Listens on `address` (host:port, an IP literal). A handshake, either way, that does not
 * complete within `handshake_timeout_ms` is given up. Both sides of every handshake prove
 * `secret` (the cluster secret; secret_len 0: none, and then only nodes without one are
 * accepted); refusals go to `log_cb` (may be NULL). Returns 0 or a libuv error (message in
 * `errmsg`). */
int das_raft_hub_open(uv_loop_t* loop, const char* address, unsigned handshake_timeout_ms,
                      const void* secret, size_t secret_len, das_raft_hub_log_cb log_cb,
                      void* log_arg, das_raft_hub** out, char* errmsg, size_t errmsg_len);
/* Replaces the hub's book of where its peers are now: a connect to raft id ids[i] dials
 * addresses[i] (host:port) instead of the address the group's configuration has for it (the one
 * it had when it was added; a node that came back elsewhere keeps its id). Ids not in the book
 * are dialed at their configured address. 0, UV_ENOMEM, or UV_EINVAL (an address too long: the
 * book is unchanged). */
int das_raft_hub_set_peers(das_raft_hub* hub, const uint64_t* ids, const char* const* addresses,
                           size_t count);
/* REQUIRES: every group on the hub is closed. `cb` once its memory is released. */
void das_raft_hub_close(das_raft_hub* hub, das_raft_hub_closed_cb cb, void* arg);

/* The state machine, called on the loop thread. `apply` gets each committed entry once, in
 * log order, with its index; `snapshot` returns the state at `index` (the last applied entry)
 * in one malloc'ed buffer (ownership passes to the caller of snapshot), and the log then keeps
 * the entries from `kept_from` on; `restore` replaces the state (the buffer stays ours).
 * `replay`, at start and before `restore`, gets each command entry the log kept up to the
 * snapshot's index (`log_start`: the first index the log holds), which raft itself never
 * applies again: a state machine whose durable state lags its snapshot applies them there. */
typedef struct das_raft_fsm {
  void* ctx;
  void (*apply)(void* ctx, uint64_t index, const void* data, size_t len);
  int (*snapshot)(void* ctx, uint64_t index, uint64_t kept_from, void** data, size_t* len);
  int (*restore)(void* ctx, const void* data, size_t len);
  void (*replay)(void* ctx, uint64_t log_start, uint64_t index, const void* data, size_t len);
  /* The leader this node knows became `leader_id` (another node, or itself; never 0). May be
   * NULL. */
  void (*leader_changed)(void* ctx, uint64_t leader_id);
} das_raft_fsm;

/* The bytes of applied entries a node's groups keep in memory and on disk, shared evenly
 * among the groups open with it. Each group counts the size of the entries it applies: it
 * keeps after a snapshot as many of the latest as fit in half its share (at
 * least 16 entries, at most its snapshot_trailing), and takes a snapshot once the entries
 * applied since the last one fill the other half (or snapshot_threshold entries came first).
 * Owned by the caller, used on the loop thread only; outlives the groups opened with it. */
typedef struct das_raft_log_budget {
  uint64_t bytes;  /* 0: no bound in bytes, the entry counts alone */
  unsigned groups; /* open groups that share it (das_raft_open and das_raft_close keep it) */
} das_raft_log_budget;

/* The node log (node_log.h) of a loop, as the raft log of every group opened with it: a loop
 * turn's entries of all of them cost one write and one fdatasync (node_log_io.c). Opened and
 * used on the loop thread only. */
typedef struct das_raft_log das_raft_log;
typedef void (*das_raft_log_closed_cb)(void* arg);
/* Opens the node log in `dir` (created if missing; segments of `segment_bytes`, 0: 8 MiB) and
 * replays it. 0, or an error (a negative errno) with `errmsg`. */
int das_raft_log_open(uv_loop_t* loop, const char* dir, size_t segment_bytes, das_raft_log** out,
                      char* errmsg, size_t errmsg_len);
/* Forgets a group whose replica left this node, durably before it returns (0), or -errno. */
int das_raft_log_drop(das_raft_log* log, uint64_t group_id, char* errmsg, size_t errmsg_len);
/* REQUIRES: every group opened with it is closed. Writes what waits, then frees the log; `cb`
 * (may be NULL) once its handles are closed. */
void das_raft_log_close(das_raft_log* log, das_raft_log_closed_cb cb, void* arg);

typedef struct das_raft_options {
  das_raft_hub* hub; /* NULL: libraft's stock TCP transport, listening on `address` itself */
  /* Set: the group's log, term, vote and snapshots are in this node log under `group_id`
   * (unique on the loop), and `dir` keeps only what raft_uv makes there; a log `dir` holds from
   * an older build is imported into it first, then deleted. NULL: raft_uv's files in `dir`. */
  das_raft_log* log;
  uint64_t group_id; /* with a hub: names the group in the handshake; with a log, in it */
  uint64_t id;
  const char* address; /* host:port this node's raft transport listens on */
  const char* dir;     /* its log and snapshots; created by the caller */
  unsigned election_timeout_ms;
  unsigned heartbeat_timeout_ms;
  unsigned snapshot_threshold;
  unsigned snapshot_trailing;
  size_t segment_size;
  das_raft_log_budget* budget; /* NULL: the entry counts alone */
} das_raft_options;

typedef struct das_raft_server {
  uint64_t id;
  const char* address;
} das_raft_server;

typedef struct das_raft_info {
  int state; /* 0 unavailable, 1 follower, 2 candidate, 3 leader */
  uint64_t term;
  uint64_t commit_index;
  uint64_t last_applied;
  uint64_t last_index;
  uint64_t leader_id; /* 0: unknown */
  char leader_address[256];
  uint64_t leader_changes;     /* since open: the known leader became another node */
  uint64_t snapshots_taken;    /* since open: the state machine's snapshot succeeded */
  uint64_t snapshots_restored; /* since open: a snapshot was restored (at start, or sent) */
} das_raft_info;

/* Completion of a proposal or barrier: status 0 with the entry's index, or a libraft error. */
typedef void (*das_raft_done_cb)(void* arg, int status, uint64_t index);
typedef void (*das_raft_closed_cb)(void* arg);

enum { DAS_RAFT_NOT_LEADER = 1001 };

/* Creates, bootstraps (when `dir` holds no state yet: `servers` are the first voters; none: the
 * node waits for a leader to add it) and starts a node. Returns 0, or an error with a message in
 * `errmsg`. */
int das_raft_open(uv_loop_t* loop, const das_raft_options* options, const das_raft_fsm* fsm,
                  const das_raft_server* servers, size_t n_servers, das_raft_node** out,
                  char* errmsg, size_t errmsg_len);

/* Proposes one entry (copied). DAS_RAFT_NOT_LEADER when this node is not the leader; else 0
 * and `cb` later, or a libraft error now. */
int das_raft_propose(das_raft_node* node, const void* data, size_t len, das_raft_done_cb cb,
                     void* arg);
/* A barrier: `cb` once every entry before it is committed and applied here. The only voter of
 * its group answers at once (before `das_raft_barrier` returns) with its last applied index,
 * once one barrier of its current term completed. */
int das_raft_barrier(das_raft_node* node, das_raft_done_cb cb, void* arg);
/* Hands leadership to `id` (0: libraft picks). `cb` with status 0 when done. */
int das_raft_transfer(das_raft_node* node, uint64_t id, das_raft_done_cb cb, void* arg);

void das_raft_get_info(das_raft_node* node, das_raft_info* info);
/* Membership (only at the leader, one change at a time; src/raft/README.md): add a server
 * as a spare (no log), assign it a role (standby and voter run catch-up rounds first), remove
 * one. `cb` gets 0 once the new configuration is committed, or a libraft error. */
enum { DAS_RAFT_ROLE_STANDBY = 0, DAS_RAFT_ROLE_VOTER = 1, DAS_RAFT_ROLE_SPARE = 2 };
int das_raft_add(das_raft_node* node, uint64_t id, const char* address, das_raft_done_cb cb,
                 void* arg);
int das_raft_assign(das_raft_node* node, uint64_t id, int role, das_raft_done_cb cb, void* arg);
int das_raft_remove(das_raft_node* node, uint64_t id, das_raft_done_cb cb, void* arg);
/* 1 when `status` says another membership change is still in progress. */
int das_raft_is_cantchange(int status);
typedef struct das_raft_member {
  uint64_t id;
  char address[256];
  int role; /* DAS_RAFT_ROLE_* */
} das_raft_member;
/* The node's latest configuration (committed or not): writes up to `max` members to `out`,
 * returns how many there are. */
size_t das_raft_members(das_raft_node* node, das_raft_member* out, size_t max);
/* The node's current term (cheaper than das_raft_get_info). */
uint64_t das_raft_term(das_raft_node* node);

/* Stops the node; `cb` once its memory is released. */
void das_raft_close(das_raft_node* node, das_raft_closed_cb cb, void* arg);

const char* das_raft_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* DAS_RAFT_INTERNAL_RAFT_C_H_ */
