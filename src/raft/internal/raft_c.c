/* The one translation unit that includes raft.h (see raft_c.h). */
#include "raft/internal/raft_c.h"

#include "raft/internal/transport.h"

#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  /* raft_uv's start and the tick callback libraft gave it; see start_io. */
  int (*uv_start)(struct raft_io*, unsigned, raft_io_tick_cb, raft_io_recv_cb);
  raft_io_tick_cb tick;
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
};

static void release_transport(das_raft_node* node) {
  if (node->on_hub) {
    das_hub_transport_release(&node->transport);
  } else {
    raft_uv_tcp_close(&node->transport);
  }
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
static das_raft_node* node_of_io(struct raft_io* io) {
  return (das_raft_node*)((char*)io - offsetof(das_raft_node, io));
}

static void send_now(das_raft_node* node) { raft_set_heartbeat_timeout(&node->raft, 0); }

static void send_paced(das_raft_node* node) {
  raft_set_heartbeat_timeout(&node->raft, node->heartbeat_ms);
}

static void tick_io(struct raft_io* io) {
  das_raft_node* node = node_of_io(io);
  send_now(node);
  node->tick(io);
  send_paced(node);
}

static int start_io(struct raft_io* io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv) {
  das_raft_node* node = node_of_io(io);
  node->tick = tick;
  return node->uv_start(io, msecs, tick_io, recv);
}

/* One proposal, barrier or transfer in flight; freed by its callback. */
typedef struct request {
  union {
    struct raft_apply apply;
    struct raft_barrier barrier;
    struct raft_transfer transfer;
    struct raft_change change;
  } u;
  das_raft_node* node;
  das_raft_done_cb cb;
  void* arg;
} request;

/* libraft's disk backend takes only entries whose length is a multiple of 8 (else
 * RAFT_INVALID), so an entry is framed: the payload's length as a little-endian uint64, the
 * payload, zero padding to the next multiple of 8. */
enum { kFrameHeader = 8 };

static size_t frame_len(size_t payload) { return (kFrameHeader + payload + 7) / 8 * 8; }

static void frame(void* out, const void* payload, size_t len) {
  unsigned char* p = out;
  for (int i = 0; i < kFrameHeader; ++i) p[i] = (unsigned char)((uint64_t)len >> (8 * i));
  if (len > 0) memcpy(p + kFrameHeader, payload, len);
  memset(p + kFrameHeader + len, 0, frame_len(len) - kFrameHeader - len);
}

/* The payload's length, or -1 when the frame is malformed. */
static int64_t unframe(const struct raft_buffer* buf) {
  if (buf->len < kFrameHeader) return -1;
  const unsigned char* p = buf->base;
  uint64_t len = 0;
  for (int i = 0; i < kFrameHeader; ++i) len |= (uint64_t)p[i] << (8 * i);
  if (len > buf->len - kFrameHeader) return -1;
  return (int64_t)len;
}

static int fsm_apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result) {
  das_raft_node* node = fsm->data;
  *result = NULL;
  const int64_t len = unframe(buf);
  if (len < 0) {
    /* Every replica sees the same bytes and skips them alike; refusing would block the log. */
    fprintf(stderr, "raft: entry %llu is not a frame of ours; skipped\n",
            (unsigned long long)(raft_last_applied(&node->raft) + 1));
    return 0;
  }
  /* Inside apply, the entry's index is the one after the last applied. */
  node->user.apply(node->user.ctx, raft_last_applied(&node->raft) + 1,
                   (const unsigned char*)buf->base + kFrameHeader, (size_t)len);
  return 0;
}

static int fsm_snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs) {
  das_raft_node* node = fsm->data;
  void* data = NULL;
  size_t len = 0;
  int rv = node->user.snapshot(node->user.ctx, &data, &len);
  if (rv != 0) return RAFT_IOERR;
  *bufs = raft_malloc(sizeof **bufs);
  if (*bufs == NULL) {
    free(data);
    return RAFT_NOMEM;
  }
  (*bufs)[0].base = raft_malloc(len > 0 ? len : 1);
  if ((*bufs)[0].base == NULL) {
    free(data);
    raft_free(*bufs);
    return RAFT_NOMEM;
  }
  if (len > 0) memcpy((*bufs)[0].base, data, len);
  (*bufs)[0].len = len;
  *n_bufs = 1;
  free(data);
  ++node->snapshots_taken;
  return 0;
}

static int fsm_restore(struct raft_fsm* fsm, struct raft_buffer* buf) {
  das_raft_node* node = fsm->data;
  int rv = node->user.restore(node->user.ctx, buf->base, buf->len);
  if (rv != 0) return RAFT_MALFORMED;
  raft_free(buf->base); /* restore owns the buffer once it succeeded */
  ++node->snapshots_restored;
  return 0;
}

static int init_fsm(das_raft_node* node) {
  node->fsm.version = 1;
  node->fsm.data = node;
  node->fsm.apply = fsm_apply;
  node->fsm.snapshot = fsm_snapshot;
  node->fsm.restore = fsm_restore;
  return 0;
}

static int bootstrap(das_raft_node* node, const das_raft_server* servers, size_t n) {
  /* No first voters: a replica that joins an existing group, which its leader adds. */
  if (n == 0) return 0;
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  int rv = 0;
  for (size_t i = 0; i < n && rv == 0; ++i) {
    rv = raft_configuration_add(&conf, servers[i].id, servers[i].address, RAFT_VOTER);
  }
  if (rv == 0) rv = raft_bootstrap(&node->raft, &conf);
  raft_configuration_close(&conf);
  return rv == RAFT_CANTBOOTSTRAP ? 0 : rv; /* already bootstrapped: its log says who is in */
}

static void tune(das_raft_node* node, const das_raft_options* o) {
  raft_set_election_timeout(&node->raft, o->election_timeout_ms);
  raft_set_heartbeat_timeout(&node->raft, o->heartbeat_timeout_ms);
  raft_set_pre_vote(&node->raft, true);
  raft_set_snapshot_threshold(&node->raft, o->snapshot_threshold);
  raft_set_snapshot_trailing(&node->raft, o->snapshot_trailing);
  /* The leader refuses proposals (RAFT_NOSPACE) when a majority reports less free log space
   * than this, in KiB; its default of 4 MiB assumes 8 MiB segments, so a smaller segment size
   * would refuse every proposal. One open segment is the threshold. */
  if (o->segment_size > 0) {
    size_t kib = o->segment_size / 1024;
    raft_set_capacity_threshold(&node->raft, (unsigned short)(kib > 65535 ? 65535 : kib));
  }
}

static void watch_leader(uv_check_t* check) {
  das_raft_node* node = check->data;
  raft_id leader = 0;
  const char* address = NULL;
  raft_leader(&node->raft, &leader, &address);
  if (leader != 0 && leader != node->leader_seen) {
    ++node->leader_changes;
    node->leader_seen = leader;
    if (node->user.leader_changed != NULL) node->user.leader_changed(node->user.ctx, leader);
  }
}

int das_raft_open(uv_loop_t* loop, const das_raft_options* o, const das_raft_fsm* fsm,
                  const das_raft_server* servers, size_t n_servers, das_raft_node** out,
                  char* errmsg, size_t errmsg_len) {
  das_raft_node* node = calloc(1, sizeof *node);
  if (node == NULL) return RAFT_NOMEM;
  node->loop = loop;
  node->user = *fsm;
  snprintf(node->address, sizeof node->address, "%s", o->address);
  node->transport.version = 1;
  node->on_hub = o->hub != NULL;
  int rv = node->on_hub ? das_hub_transport_init(o->hub, o->group_id, &node->transport)
                        : raft_uv_tcp_init(&node->transport, loop);
  if (rv != 0) goto err;
  rv = raft_uv_init(&node->io, loop, o->dir, &node->transport);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "%s", node->io.errmsg);
    goto err_transport;
  }
  if (o->segment_size > 0) raft_uv_set_segment_size(&node->io, o->segment_size);
  node->uv_start = node->io.start;
  node->io.start = start_io;
  init_fsm(node);
  rv = raft_init(&node->raft, &node->io, &node->fsm, o->id, node->address);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "%s", raft_errmsg(&node->raft));
    goto err_io;
  }
  node->raft.data = node;
  tune(node, o);
  node->heartbeat_ms = node->raft.heartbeat_timeout; /* as tune left it */
  rv = bootstrap(node, servers, n_servers);
  if (rv == 0) rv = raft_start(&node->raft);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "%s", raft_errmsg(&node->raft));
    /* raft_init succeeded: the instance must be closed through raft_close. */
    das_raft_close(node, NULL, NULL);
    return rv;
  }
  uv_check_init(loop, &node->check);
  node->check.data = node;
  node->check_open = 1;
  uv_check_start(&node->check, watch_leader);
  *out = node;
  return 0;
err_io:
  raft_uv_close(&node->io);
err_transport:
  release_transport(node);
err:
  if (errmsg_len > 0 && errmsg[0] == '\0') snprintf(errmsg, errmsg_len, "%s", raft_strerror(rv));
  free(node);
  return rv;
}

static request* new_request(das_raft_node* node, das_raft_done_cb cb, void* arg) {
  request* req = calloc(1, sizeof *req);
  if (req == NULL) return NULL;
  req->node = node;
  req->cb = cb;
  req->arg = arg;
  return req;
}

static void apply_done(struct raft_apply* apply, int status, void* result) {
  (void)result;
  request* req = apply->data;
  /* On success the last applied index is this entry's. */
  uint64_t index = status == 0 ? raft_last_applied(&req->node->raft) : 0;
  req->cb(req->arg, status, index);
  free(req);
}

int das_raft_propose(das_raft_node* node, const void* data, size_t len, das_raft_done_cb cb,
                     void* arg) {
  if (raft_state(&node->raft) != RAFT_LEADER) return DAS_RAFT_NOT_LEADER;
  request* req = new_request(node, cb, arg);
  if (req == NULL) return RAFT_NOMEM;
  struct raft_buffer buf;
  buf.len = frame_len(len);
  buf.base = raft_malloc(buf.len);
  if (buf.base == NULL) {
    free(req);
    return RAFT_NOMEM;
  }
  frame(buf.base, data, len);
  req->u.apply.data = req;
  /* One buffer per entry: 0.22.1 silently drops every buffer after the first. */
  send_now(node);
  int rv = raft_apply(&node->raft, &req->u.apply, &buf, 1, apply_done);
  send_paced(node);
  if (rv != 0) {
    raft_free(buf.base);
    free(req);
    return rv == RAFT_NOTLEADER ? DAS_RAFT_NOT_LEADER : rv;
  }
  return 0;
}

static void barrier_done(struct raft_barrier* barrier, int status) {
  request* req = barrier->data;
  uint64_t index = status == 0 ? raft_last_applied(&req->node->raft) : 0;
  req->cb(req->arg, status, index);
  free(req);
}

int das_raft_barrier(das_raft_node* node, das_raft_done_cb cb, void* arg) {
  if (raft_state(&node->raft) != RAFT_LEADER) return DAS_RAFT_NOT_LEADER;
  request* req = new_request(node, cb, arg);
  if (req == NULL) return RAFT_NOMEM;
  req->u.barrier.data = req;
  send_now(node);
  int rv = raft_barrier(&node->raft, &req->u.barrier, barrier_done);
  send_paced(node);
  if (rv != 0) {
    free(req);
    return rv == RAFT_NOTLEADER ? DAS_RAFT_NOT_LEADER : rv;
  }
  return 0;
}

static void transfer_done(struct raft_transfer* transfer) {
  request* req = transfer->data;
  raft_id leader = 0;
  const char* address = NULL;
  raft_leader(&req->node->raft, &leader, &address);
  req->cb(req->arg, leader == req->u.transfer.id ? 0 : RAFT_NOTLEADER, 0);
  free(req);
}

int das_raft_transfer(das_raft_node* node, uint64_t id, das_raft_done_cb cb, void* arg) {
  if (raft_state(&node->raft) != RAFT_LEADER) return DAS_RAFT_NOT_LEADER;
  request* req = new_request(node, cb, arg);
  if (req == NULL) return RAFT_NOMEM;
  req->u.transfer.data = req;
  int rv = raft_transfer(&node->raft, &req->u.transfer, id, transfer_done);
  if (rv != 0) free(req);
  return rv == RAFT_NOTLEADER ? DAS_RAFT_NOT_LEADER : rv;
}

void das_raft_get_info(das_raft_node* node, das_raft_info* info) {
  memset(info, 0, sizeof *info);
  info->state = (int)raft_state(&node->raft);
  info->term = raft_current_term(&node->raft);
  info->commit_index = raft_commit_index(&node->raft);
  info->last_applied = raft_last_applied(&node->raft);
  info->last_index = raft_last_index(&node->raft);
  raft_id leader = 0;
  const char* address = NULL;
  raft_leader(&node->raft, &leader, &address);
  info->leader_id = leader;
  if (address != NULL) snprintf(info->leader_address, sizeof info->leader_address, "%s", address);
  info->leader_changes = node->leader_changes;
  info->snapshots_taken = node->snapshots_taken;
  info->snapshots_restored = node->snapshots_restored;
}

/* The last of the node's closes to complete frees it. */
static void release_node(das_raft_node* node) {
  if (--node->closes_pending > 0) return;
  das_raft_closed_cb cb = node->closed_cb;
  void* arg = node->closed_arg;
  free(node);
  if (cb != NULL) cb(arg);
}

static void change_done(struct raft_change* change, int status) {
  request* req = change->data;
  req->cb(req->arg, status, 0);
  free(req);
}

/* Starts a membership change through `start`; only the leader may, and one at a time. */
static int change(das_raft_node* node, das_raft_done_cb cb, void* arg,
                  int (*start)(das_raft_node*, request*, uint64_t, const char*, int), uint64_t id,
                  const char* address, int role) {
  if (raft_state(&node->raft) != RAFT_LEADER) return DAS_RAFT_NOT_LEADER;
  request* req = new_request(node, cb, arg);
  if (req == NULL) return RAFT_NOMEM;
  req->u.change.data = req;
  int rv = start(node, req, id, address, role);
  if (rv != 0) {
    free(req);
    return rv == RAFT_NOTLEADER ? DAS_RAFT_NOT_LEADER : rv;
  }
  return 0;
}

static int start_add(das_raft_node* node, request* req, uint64_t id, const char* address,
                     int role) {
  (void)role;
  return raft_add(&node->raft, &req->u.change, id, address, change_done);
}

static int start_assign(das_raft_node* node, request* req, uint64_t id, const char* address,
                        int role) {
  (void)address;
  const int raft_role = role == DAS_RAFT_ROLE_VOTER     ? RAFT_VOTER
                        : role == DAS_RAFT_ROLE_STANDBY ? RAFT_STANDBY
                                                        : RAFT_SPARE;
  return raft_assign(&node->raft, &req->u.change, id, raft_role, change_done);
}

static int start_remove(das_raft_node* node, request* req, uint64_t id, const char* address,
                        int role) {
  (void)address;
  (void)role;
  return raft_remove(&node->raft, &req->u.change, id, change_done);
}

int das_raft_add(das_raft_node* node, uint64_t id, const char* address, das_raft_done_cb cb,
                 void* arg) {
  return change(node, cb, arg, start_add, id, address, 0);
}

int das_raft_assign(das_raft_node* node, uint64_t id, int role, das_raft_done_cb cb, void* arg) {
  return change(node, cb, arg, start_assign, id, NULL, role);
}

int das_raft_remove(das_raft_node* node, uint64_t id, das_raft_done_cb cb, void* arg) {
  return change(node, cb, arg, start_remove, id, NULL, 0);
}

size_t das_raft_members(das_raft_node* node, das_raft_member* out, size_t max) {
  const struct raft_configuration* conf = &node->raft.configuration;
  for (unsigned i = 0; i < conf->n && i < max; ++i) {
    const struct raft_server* server = &conf->servers[i];
    out[i].id = server->id;
    snprintf(out[i].address, sizeof out[i].address, "%s",
             server->address != NULL ? server->address : "");
    out[i].role = server->role == RAFT_VOTER     ? DAS_RAFT_ROLE_VOTER
                  : server->role == RAFT_STANDBY ? DAS_RAFT_ROLE_STANDBY
                                                 : DAS_RAFT_ROLE_SPARE;
  }
  return conf->n;
}

uint64_t das_raft_term(das_raft_node* node) { return raft_current_term(&node->raft); }

static void raft_closed(struct raft* raft) {
  das_raft_node* node = raft->data;
  raft_uv_close(&node->io);
  release_transport(node);
  release_node(node);
}

static void check_closed(uv_handle_t* handle) { release_node(handle->data); }

void das_raft_close(das_raft_node* node, das_raft_closed_cb cb, void* arg) {
  node->closed_cb = cb;
  node->closed_arg = arg;
  node->raft.data = node;
  node->closes_pending = 1;
  if (node->check_open) {
    ++node->closes_pending;
    uv_check_stop(&node->check);
    uv_close((uv_handle_t*)&node->check, check_closed);
  }
  raft_close(&node->raft, raft_closed);
}

int das_raft_is_cantchange(int status) { return status == RAFT_CANTCHANGE; }

const char* das_raft_strerror(int status) {
  if (status == DAS_RAFT_NOT_LEADER) return "not the leader";
  return raft_strerror(status);
}
