/* Our C API over libraft (raft_c.h); with node_io.c and node_fsm.c, the only files that include
 * raft.h (through node.h). */
#include "raft/internal/raft_c.h"

#include "raft/internal/node.h"
#include "raft/internal/transport.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void release_transport(das_raft_node* node) {
  if (node->on_hub) {
    das_hub_transport_release(&node->transport);
  } else {
    raft_uv_tcp_close(&node->transport);
  }
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
  raft_term term; /* a barrier's: the term it was asked in */
} request;

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
  node->max_threshold = o->snapshot_threshold;
  node->trailing = o->snapshot_trailing;
  /* The leader refuses proposals (RAFT_NOSPACE) when a majority reports less free log space
   * than this, in KiB; its default of 4 MiB assumes 8 MiB segments, so a smaller segment size
   * would refuse every proposal. One open segment is the threshold. */
  if (o->log != NULL) {
    /* raft_uv's capacity counts its own prepared segments, which the node log does not use: a
     * full disk stalls the node log's flushes instead (node_log_io.c). */
    raft_set_capacity_threshold(&node->raft, 0);
  } else if (o->segment_size > 0) {
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
  if (o->budget != NULL) {
    if (das_log_window_init(&node->window, o->snapshot_trailing) != 0) {
      free(node);
      return RAFT_NOMEM;
    }
    node->budget = o->budget;
  }
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
  /* With the node log raft_uv writes no entry: its prepared segments need be no bigger than
   * a few blocks. */
  if (o->log != NULL) {
    raft_uv_set_segment_size(&node->io, 16 * 1024);
  } else if (o->segment_size > 0) {
    raft_uv_set_segment_size(&node->io, o->segment_size);
  }
  das_node_hook_io(node);
  das_node_init_fsm(node);
  rv = raft_init(&node->raft, &node->io, &node->fsm, o->id, node->address);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "%s", raft_errmsg(&node->raft));
    goto err_io;
  }
  node->raft.data = node;
  tune(node, o);
  if (o->log != NULL) {
    node->log = o->log;
    node->log_group = o->group_id;
    rv = das_node_use_log(node, o->dir, errmsg, errmsg_len);
    if (rv != 0) {
      das_raft_close(node, NULL, NULL);
      return rv;
    }
  }
  node->heartbeat_ms = node->raft.heartbeat_timeout; /* as tune left it */
  rv = bootstrap(node, servers, n_servers);
  if (rv == 0) rv = raft_start(&node->raft);
  if (rv != 0) {
    /* The code's name, then raft's message or else its I/O's: never an empty reason. */
    const char* why = raft_errmsg(&node->raft);
    if (why == NULL || why[0] == '\0') why = node->io.errmsg;
    snprintf(errmsg, errmsg_len, "%s%s%s", raft_strerror(rv), why[0] != '\0' ? ": " : "", why);
    /* raft_init succeeded: the instance must be closed through raft_close. */
    das_raft_close(node, NULL, NULL);
    return rv;
  }
  uv_check_init(loop, &node->check);
  node->check.data = node;
  node->check_open = 1;
  uv_check_start(&node->check, watch_leader);
  if (node->budget != NULL) ++node->budget->groups;
  node->counted = 1;
  *out = node;
  return 0;
err_io:
  raft_uv_close(&node->io);
err_transport:
  release_transport(node);
err:
  if (errmsg_len > 0 && errmsg[0] == '\0') snprintf(errmsg, errmsg_len, "%s", raft_strerror(rv));
  das_log_window_free(&node->window);
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
  buf.len = das_frame_len(len);
  buf.base = raft_malloc(buf.len);
  if (buf.base == NULL) {
    free(req);
    return RAFT_NOMEM;
  }
  das_frame(buf.base, data, len);
  req->u.apply.data = req;
  /* One buffer per entry: 0.22.1 silently drops every buffer after the first. */
  das_node_send_now(node);
  int rv = raft_apply(&node->raft, &req->u.apply, &buf, 1, apply_done);
  das_node_send_paced(node);
  if (rv != 0) {
    raft_free(buf.base);
    free(req);
    return rv == RAFT_NOTLEADER ? DAS_RAFT_NOT_LEADER : rv;
  }
  return 0;
}

static void barrier_done(struct raft_barrier* barrier, int status) {
  request* req = barrier->data;
  das_raft_node* node = req->node;
  uint64_t index = status == 0 ? raft_last_applied(&node->raft) : 0;
  /* An entry of this leader's term is applied: everything committed before the term is too. */
  if (status == 0 && raft_state(&node->raft) == RAFT_LEADER &&
      raft_current_term(&node->raft) == req->term) {
    node->barrier_term = req->term;
  }
  req->cb(req->arg, status, index);
  free(req);
}

/* Whether this node is the only voter of the latest configuration (committed or not). */
static int sole_voter(const das_raft_node* node) {
  const struct raft_configuration* conf = &node->raft.configuration;
  int voters = 0;
  int self = 0;
  for (unsigned i = 0; i < conf->n; ++i) {
    if (conf->servers[i].role != RAFT_VOTER) continue;
    ++voters;
    if (conf->servers[i].id == node->raft.id) self = 1;
  }
  return voters == 1 && self;
}

int das_raft_barrier(das_raft_node* node, das_raft_done_cb cb, void* arg) {
  if (raft_state(&node->raft) != RAFT_LEADER) return DAS_RAFT_NOT_LEADER;
  /* The only voter, once a barrier of its term completed, is its read point: no other node
   * can lead or commit, and every entry it committed (every write acknowledged) is applied, so
   * its last applied index vouches for them without a log entry and its fsync. */
  if (sole_voter(node) && node->barrier_term == raft_current_term(&node->raft)) {
    cb(arg, 0, raft_last_applied(&node->raft));
    return 0;
  }
  request* req = new_request(node, cb, arg);
  if (req == NULL) return RAFT_NOMEM;
  req->term = raft_current_term(&node->raft);
  req->u.barrier.data = req;
  das_node_send_now(node);
  int rv = raft_barrier(&node->raft, &req->u.barrier, barrier_done);
  das_node_send_paced(node);
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
  das_log_window_free(&node->window);
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
  if (node->counted && node->budget != NULL) --node->budget->groups; /* its share goes back */
  node->counted = 0;
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
