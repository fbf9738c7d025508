/* The node's hooks on raft_uv's I/O (node.h): ticks and proposals that reach followers at
 * once, InstallSnapshot messages held back while a snapshot is written, and the replay of what
 * the log kept up to its snapshot at start. */
#include <stddef.h>

#include "raft/internal/node.h"

static das_raft_node* node_of_io(struct raft_io* io) {
  return (das_raft_node*)((char*)io - offsetof(das_raft_node, io));
}

/* When a follower gets a message (0.22.1 src/progress.c progressShouldReplicate, src/timeout.c
 * checkContactQuorum). The leader ticks every heartbeat timeout; at a tick it sends a heartbeat
 * only to a follower it sent nothing for a heartbeat timeout, and moves a follower it heard
 * nothing from since the previous tick from pipeline mode to probe mode, where a new entry waits
 * until a heartbeat timeout after the last message. So a follower sent an entry just before a
 * tick got no heartbeat at it, a lull until the next tick demoted it, and the first write after
 * the lull waited up to a tick for its commit: 50 ms at p90 of single inserts one at a time.
 * The timeout is a plain setting read only there: it is 0 during a tick (every follower gets a
 * heartbeat, so one that answers stays in pipeline mode) and during a proposal (a follower in
 * probe mode gets the new entry at once), and the configured value otherwise, so an answer
 * that arrives while a follower is up to date sends it nothing. */

void das_node_send_now(das_raft_node* node) { raft_set_heartbeat_timeout(&node->raft, 0); }

void das_node_send_paced(das_raft_node* node) {
  raft_set_heartbeat_timeout(&node->raft, node->heartbeat_ms);
}

static void tick_io(struct raft_io* io) {
  das_raft_node* node = node_of_io(io);
  das_node_send_now(node);
  node->tick(io);
  das_node_send_paced(node);
}

/* libraft 0.22.1 crashes when an InstallSnapshot arrives while the node is writing a snapshot
 * of its own: the install rewinds raft's index of the log at once and is put on hold, so when
 * the node's snapshot is written its index is no longer in the log (legacy.c takeSnapshotCb ->
 * trail.c TrailSnapshot: an assertion, a bad read in a build without them), and the install on
 * hold is then started from the pointer it has just cleared. Such a message is dropped here, as
 * a lost one would be: the leader sends it again. Found with the short logs of a log budget. */
static void recv_io(struct raft_io* io, struct raft_message* message) {
  das_raft_node* node = node_of_io(io);
  if (message->type == RAFT_INSTALL_SNAPSHOT && node->raft.legacy.snapshot_taking) {
    raft_configuration_close(&message->install_snapshot.conf);
    raft_free(message->install_snapshot.data.base);
    return;
  }
  node->recv(io, message);
}

static int start_io(struct raft_io* io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv) {
  das_raft_node* node = node_of_io(io);
  node->tick = tick;
  node->recv = recv;
  return node->uv_start(io, msecs, tick_io, recv_io);
}

/* raft_uv's load, then the replay (raft_c.h, das_raft_fsm): libraft restores the snapshot and
 * applies only what follows it, so the entries the log kept up to the snapshot's index are
 * handed to the state machine here, before its restore. */
static int load_io(struct raft_io* io, raft_term* term, raft_id* voted_for,
                   struct raft_snapshot** snapshot, raft_index* start_index,
                   struct raft_entry* entries[], size_t* n_entries) {
  das_raft_node* node = node_of_io(io);
  int rv = node->uv_load(io, term, voted_for, snapshot, start_index, entries, n_entries);
  if (rv != 0 || *snapshot == NULL || node->user.replay == NULL) return rv;
  for (size_t i = 0; i < *n_entries; ++i) {
    const struct raft_entry* entry = &(*entries)[i];
    const uint64_t index = *start_index + i;
    if (index > (*snapshot)->index) break;
    if (entry->type != RAFT_COMMAND) continue;
    const int64_t len = das_unframe(&entry->buf);
    if (len < 0) continue; /* skipped when it was applied, too */
    node->user.replay(node->user.ctx, *start_index, index,
                      (const unsigned char*)entry->buf.base + DAS_FRAME_HEADER, (size_t)len);
  }
  return 0;
}

void das_node_hook_io(das_raft_node* node) {
  node->uv_start = node->io.start;
  node->io.start = start_io;
  node->uv_load = node->io.load;
  node->io.load = load_io;
}
