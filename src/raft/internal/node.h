/* A node of raft_c.h as its C files share it: the node's state, the framing of entries, and
 * the two sets of hooks raft_c.c installs on libraft (node_io.c: on raft_uv's I/O; node_fsm.c:
 * the state machine). Includes raft.h: for src/raft's C files only. */
#ifndef DAS_RAFT_INTERNAL_NODE_H_
#define DAS_RAFT_INTERNAL_NODE_H_

#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/internal/log_window.h"
#include "raft/internal/raft_c.h"

struct das_raft_node {
  uv_loop_t* loop;
  struct raft_uv_transport transport;
  struct raft_io io;
  struct raft_fsm fsm;
  struct raft raft;
  das_raft_fsm user;
  das_raft_closed_cb closed_cb;
  void* closed_arg;
  int on_hub; /* the transport is the hub's (else libraft's stock TCP one) */
  /* raft_uv's start and the tick and receive callbacks libraft gave it; see start_io. */
  int (*uv_start)(struct raft_io*, unsigned, raft_io_tick_cb, raft_io_recv_cb);
  int (*uv_load)(struct raft_io*, raft_term*, raft_id*, struct raft_snapshot**, raft_index*,
                 struct raft_entry**, size_t*);
  raft_io_tick_cb tick;
  raft_io_recv_cb recv;
  unsigned heartbeat_ms;
  char address[256];
  /* Counters for das_raft_info. The check handle runs after every loop iteration's I/O and
   * counts a change of the known leader (to another node, or from none to one). */
  uv_check_t check;
  int check_open;
  int closes_pending; /* raft_close and the check handle's close, before the node is freed */
  uint64_t leader_seen;
  uint64_t leader_changes;
  uint64_t snapshots_taken;
  uint64_t snapshots_restored;
  /* The log's bound in bytes (raft_c.h, das_raft_log_budget); budget NULL: none. */
  das_raft_log_budget* budget;
  das_log_window window;
  unsigned max_threshold;
  unsigned trailing; /* as last set: what the next snapshot keeps */
  int counted;       /* open, and counted in budget->groups */
  /* The last term in which a barrier completed while this node led (das_raft_barrier). */
  raft_term barrier_term;
  /* The node log holding this group's log (NULL: raft_uv's files), its id there, the index
   * its next appended entry gets, and raft_uv's close (node_log_io.c). */
  das_raft_log* log;
  uint64_t log_group;
  raft_index next_index;
  void (*uv_close)(struct raft_io*, raft_io_close_cb);
};

/* libraft's disk backend takes only entries whose length is a multiple of 8 (else
 * RAFT_INVALID), so an entry is framed: the payload's length as a little-endian uint64, the
 * payload, zero padding to the next multiple of 8. */
enum { DAS_FRAME_HEADER = 8 };
size_t das_frame_len(size_t payload);
void das_frame(void* out, const void* payload, size_t len);
/* The payload's length, or -1 when the frame is malformed. */
int64_t das_unframe(const struct raft_buffer* buf);

/* A follower gets what the leader has for it now (a proposal), or at the heartbeat's pace (see
 * node_io.c). */
void das_node_send_now(das_raft_node* node);
void das_node_send_paced(das_raft_node* node);
/* Replaces raft_uv's start and load with the node's (before raft_start). */
void das_node_hook_io(das_raft_node* node);
/* The node log's requests as node_log_ops.c makes them of node_log_io.c: a waiter (kind
 * WAIT_APPEND or WAIT_PUT until position `lsn` is durable, WAIT_GET at the next turn, with its
 * `snapshot`), a synchronous flush (0 or -errno), a closing group's waiters cancelled. */
enum { WAIT_APPEND = 0, WAIT_PUT = 1, WAIT_GET = 2 };
struct das_nlog;
int das_raft_log_wait(das_raft_node* node, int kind, uint64_t lsn, void* req, void (*cb)(void),
                      struct raft_snapshot* snapshot);
int das_raft_log_sync(das_raft_log* log, char* errmsg);
void das_raft_log_cancel(das_raft_log* log, das_raft_node* node);
struct das_nlog* das_raft_log_store(das_raft_log* log);
/* Frees a snapshot node_log_ops.c made (its configuration, buffers and itself); NULL: nothing. */
void das_node_free_snapshot(struct raft_snapshot* snapshot);
/* With node->log set, before bootstrap: the group's state and log come from the node log
 * (imported from raft_uv's files in `dir` first, when the node log has none of it); raft_uv
 * keeps the transport, the ticks and the clock. 0 or a libraft error with `errmsg`. */
int das_node_use_log(das_raft_node* node, const char* dir, char* errmsg, size_t errmsg_len);
/* Fills node->fsm with the node's state machine callbacks (they call node->user). */
void das_node_init_fsm(das_raft_node* node);

#endif /* DAS_RAFT_INTERNAL_NODE_H_ */
