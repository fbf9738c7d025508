/* A group's raft_io on the node log (node.h, das_node_use_log): load, bootstrap, recover,
 * term, vote, append, truncate and snapshots go to the loop's node log under the group's id;
 * raft_uv keeps the transport, the ticks, the clock and its own close. A group whose state is
 * still in raft_uv's files (an older build's) is imported first, then those files go. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raft/internal/node.h"
#include "raft/internal/node_log.h"

static das_raft_node* node_of_io(struct raft_io* io) {
  return (das_raft_node*)((char*)io - offsetof(das_raft_node, io));
}

static das_nlog* store_of(das_raft_node* node) { return das_raft_log_store(node->log); }

/* ---- snapshots as blobs: index, term, configuration index, the configuration's length and
 * bytes (raft_configuration_encode), the data's length and bytes (u64s little-endian) ---- */

static void put_u64(unsigned char* p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const unsigned char* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static int encode_snapshot(const struct raft_snapshot* s, unsigned char** out, size_t* len) {
  struct raft_buffer conf = {0};
  int rv = raft_configuration_encode(&s->configuration, &conf);
  if (rv != 0) return rv;
  size_t data = 0;
  for (unsigned i = 0; i < s->n_bufs; ++i) data += s->bufs[i].len;
  *len = 40 + conf.len + data;
  *out = malloc(*len);
  if (*out == NULL) {
    raft_free(conf.base);
    return RAFT_NOMEM;
  }
  put_u64(*out, s->index);
  put_u64(*out + 8, s->term);
  put_u64(*out + 16, s->configuration_index);
  put_u64(*out + 24, conf.len);
  memcpy(*out + 32, conf.base, conf.len);
  put_u64(*out + 32 + conf.len, data);
  size_t off = 40 + conf.len;
  for (unsigned i = 0; i < s->n_bufs; ++i) {
    memcpy(*out + off, s->bufs[i].base, s->bufs[i].len);
    off += s->bufs[i].len;
  }
  raft_free(conf.base);
  return 0;
}

void das_node_free_snapshot(struct raft_snapshot* s) {
  if (s == NULL) return;
  raft_configuration_close(&s->configuration);
  for (unsigned i = 0; i < s->n_bufs; ++i) raft_free(s->bufs[i].base);
  raft_free(s->bufs);
  raft_free(s);
}

static int decode_snapshot(const unsigned char* blob, size_t len, struct raft_snapshot** out) {
  if (len < 40) return RAFT_CORRUPT;
  const uint64_t conf_len = get_u64(blob + 24);
  if (conf_len > len - 40 || get_u64(blob + 32 + conf_len) != len - 40 - conf_len) {
    return RAFT_CORRUPT;
  }
  const size_t data = (size_t)(len - 40 - conf_len);
  struct raft_snapshot* s = raft_calloc(1, sizeof *s);
  if (s == NULL) return RAFT_NOMEM;
  raft_configuration_init(&s->configuration);
  s->bufs = raft_malloc(sizeof *s->bufs);
  if (s->bufs != NULL) s->bufs[0].base = raft_malloc(data > 0 ? data : 1);
  if (s->bufs == NULL || s->bufs[0].base == NULL) {
    if (s->bufs != NULL) raft_free(s->bufs);
    raft_free(s);
    return RAFT_NOMEM;
  }
  s->n_bufs = 1;
  s->bufs[0].len = data;
  memcpy(s->bufs[0].base, blob + 40 + conf_len, data);
  s->index = get_u64(blob);
  s->term = get_u64(blob + 8);
  s->configuration_index = get_u64(blob + 16);
  struct raft_buffer conf = {(void*)(blob + 32), (size_t)conf_len};
  const int rv = raft_configuration_decode(&conf, &s->configuration);
  if (rv != 0) {
    das_node_free_snapshot(s);
    return rv;
  }
  *out = s;
  return 0;
}

/* ---- raft_io ---- */

static int sync_log(struct raft_io* io) {
  das_raft_node* node = node_of_io(io);
  char errmsg[DAS_NLOG_ERRMSG] = {0};
  if (das_raft_log_sync(node->log, errmsg) == 0) return 0;
  snprintf(io->errmsg, sizeof io->errmsg, "node log: %.200s", errmsg);
  return RAFT_IOERR;
}

static int load_entries(das_raft_node* node, const das_nlog_group* g, struct raft_entry** out) {
  *out = NULL;
  if (g->n_entries == 0) return 0;
  struct raft_entry* entries = raft_calloc((size_t)g->n_entries, sizeof *entries);
  if (entries == NULL) return RAFT_NOMEM;
  for (uint64_t i = 0; i < g->n_entries; ++i) {
    das_nlog_entry info;
    const uint64_t index = g->first_index + i;
    int rv = das_nlog_entry_info(store_of(node), node->log_group, index, &info);
    void* data = rv == 0 ? raft_malloc(info.len > 0 ? info.len : 1) : NULL;
    if (rv == 0 && data == NULL) rv = RAFT_NOMEM;
    if (rv == 0 && das_nlog_read(store_of(node), node->log_group, index, data) != 0) {
      rv = RAFT_IOERR;
    }
    if (rv != 0) {
      raft_free(data);
      for (uint64_t k = 0; k < i; ++k) raft_free(entries[k].buf.base);
      raft_free(entries);
      return rv == RAFT_NOMEM ? rv : RAFT_IOERR;
    }
    entries[i].term = info.term;
    entries[i].type = (enum raft_entry_type)info.type;
    entries[i].buf.base = data;
    entries[i].buf.len = info.len;
    entries[i].batch = NULL;
  }
  *out = entries;
  return 0;
}

static int log_load(struct raft_io* io, raft_term* term, raft_id* voted_for,
                    struct raft_snapshot** snapshot, raft_index* start_index,
                    struct raft_entry* entries[], size_t* n_entries) {
  das_raft_node* node = node_of_io(io);
  das_nlog_group g;
  das_nlog_get(store_of(node), node->log_group, &g);
  *term = g.term;
  *voted_for = g.vote;
  *snapshot = NULL;
  if (g.snapshot_len > 0) {
    const int rv = decode_snapshot(g.snapshot, g.snapshot_len, snapshot);
    if (rv != 0) return rv;
  }
  const int rv = load_entries(node, &g, entries);
  if (rv != 0) {
    das_node_free_snapshot(*snapshot);
    *snapshot = NULL;
    snprintf(io->errmsg, sizeof io->errmsg, "node log: cannot read group %llu's entries",
             (unsigned long long)node->log_group);
    return rv;
  }
  *start_index = g.first_index;
  *n_entries = (size_t)g.n_entries;
  node->next_index = g.first_index + g.n_entries;
  return 0;
}

/* One configuration entry at `index` in `term`. */
static int append_configuration(das_raft_node* node, raft_index index, raft_term term,
                                const struct raft_configuration* conf) {
  struct raft_buffer buf = {0};
  int rv = raft_configuration_encode(conf, &buf);
  if (rv != 0) return rv;
  const das_nlog_entry entry = {term, RAFT_CHANGE, buf.base, buf.len};
  if (das_nlog_entries(store_of(node), node->log_group, index, &entry, 1) == 0) rv = RAFT_NOMEM;
  raft_free(buf.base);
  if (rv == 0) node->next_index = index + 1;
  return rv;
}

static int log_bootstrap(struct raft_io* io, const struct raft_configuration* conf) {
  das_raft_node* node = node_of_io(io);
  das_nlog_group g;
  das_nlog_get(store_of(node), node->log_group, &g);
  if (g.term > 0 || g.n_entries > 0 || g.snapshot_len > 0) return RAFT_CANTBOOTSTRAP;
  if (das_nlog_term(store_of(node), node->log_group, 1) == 0) return RAFT_NOMEM;
  const int rv = append_configuration(node, 1, 1, conf);
  return rv != 0 ? rv : sync_log(io);
}

static int log_recover(struct raft_io* io, const struct raft_configuration* conf) {
  das_raft_node* node = node_of_io(io);
  das_nlog_group g;
  das_nlog_get(store_of(node), node->log_group, &g);
  const int rv = append_configuration(node, g.first_index + g.n_entries, g.term, conf);
  return rv != 0 ? rv : sync_log(io);
}

static int log_set_term(struct raft_io* io, raft_term term) {
  das_raft_node* node = node_of_io(io);
  if (das_nlog_term(store_of(node), node->log_group, term) == 0) return RAFT_NOMEM;
  return sync_log(io);
}

static int log_set_vote(struct raft_io* io, raft_id server_id) {
  das_raft_node* node = node_of_io(io);
  if (das_nlog_vote(store_of(node), node->log_group, server_id) == 0) return RAFT_NOMEM;
  return sync_log(io);
}

static int log_append(struct raft_io* io, struct raft_io_append* req,
                      const struct raft_entry entries[], unsigned n, raft_io_append_cb cb) {
  das_raft_node* node = node_of_io(io);
  das_nlog_entry* records = malloc((n > 0 ? n : 1) * sizeof *records);
  if (records == NULL) return RAFT_NOMEM;
  for (unsigned i = 0; i < n; ++i) {
    records[i].term = entries[i].term;
    records[i].type = (uint8_t)entries[i].type;
    records[i].data = entries[i].buf.base;
    records[i].len = entries[i].buf.len;
  }
  const uint64_t lsn =
      das_nlog_entries(store_of(node), node->log_group, node->next_index, records, n);
  free(records);
  if (lsn == 0) return RAFT_NOMEM;
  node->next_index += n;
  return das_raft_log_wait(node, WAIT_APPEND, lsn, req, (void (*)(void))cb, NULL);
}

static int log_truncate(struct raft_io* io, raft_index index) {
  das_raft_node* node = node_of_io(io);
  if (index >= node->next_index) return 0; /* libraft truncates before every append */
  if (das_nlog_truncate(store_of(node), node->log_group, index) == 0) return RAFT_NOMEM;
  node->next_index = index;
  return 0;
}

static int log_snapshot_put(struct raft_io* io, unsigned trailing, struct raft_io_snapshot_put* req,
                            const struct raft_snapshot* snapshot, raft_io_snapshot_put_cb cb) {
  das_raft_node* node = node_of_io(io);
  unsigned char* blob = NULL;
  size_t len = 0;
  const int rv = encode_snapshot(snapshot, &blob, &len);
  if (rv != 0) return rv;
  const uint64_t lsn = das_nlog_snapshot(store_of(node), node->log_group, snapshot->index,
                                         snapshot->term, trailing, blob, len);
  free(blob);
  if (lsn == 0) return RAFT_NOMEM;
  if (trailing == 0) node->next_index = snapshot->index + 1; /* installed: no entry kept */
  return das_raft_log_wait(node, WAIT_PUT, lsn, req, (void (*)(void))cb, NULL);
}

static int log_snapshot_get(struct raft_io* io, struct raft_io_snapshot_get* req,
                            raft_io_snapshot_get_cb cb) {
  das_raft_node* node = node_of_io(io);
  das_nlog_group g;
  das_nlog_get(store_of(node), node->log_group, &g);
  if (g.snapshot_len == 0) return RAFT_NOTFOUND;
  struct raft_snapshot* snapshot = NULL;
  int rv = decode_snapshot(g.snapshot, g.snapshot_len, &snapshot);
  if (rv == 0) rv = das_raft_log_wait(node, WAIT_GET, 0, req, (void (*)(void))cb, snapshot);
  if (rv != 0) das_node_free_snapshot(snapshot);
  return rv;
}

static void log_close(struct raft_io* io, raft_io_close_cb cb) {
  das_raft_node* node = node_of_io(io);
  das_raft_log_cancel(node->log, node);
  node->uv_close(io, cb);
}

/* ---- an older build's files ---- */

static void free_loaded(struct raft_snapshot* snapshot, struct raft_entry* entries, size_t n) {
  das_node_free_snapshot(snapshot);
  void* batch = NULL;
  for (size_t i = 0; i < n; ++i) {
    if (entries[i].batch == NULL) {
      raft_free(entries[i].buf.base);
    } else if (entries[i].batch != batch) {
      batch = entries[i].batch;
      raft_free(batch);
    }
  }
  if (entries != NULL) raft_free(entries);
}

/* The group's state as raft_uv kept it in `dir`, into the node log (durably). */
static int import_uv(das_raft_node* node, char* errmsg, size_t errmsg_len) {
  raft_term term = 0;
  raft_id vote = 0;
  struct raft_snapshot* snapshot = NULL;
  raft_index start = 1;
  struct raft_entry* entries = NULL;
  size_t n = 0;
  int rv = node->uv_load(&node->io, &term, &vote, &snapshot, &start, &entries, &n);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "import the raft log kept the old way: %s", node->io.errmsg);
    return rv;
  }
  if (term == 0 && snapshot == NULL && n == 0) return 0;
  das_nlog_group state = {0};
  state.term = term;
  state.vote = vote;
  state.first_index = start;
  unsigned char* blob = NULL;
  size_t blob_len = 0;
  das_nlog_entry* records = calloc(n > 0 ? n : 1, sizeof *records);
  if (records == NULL) rv = RAFT_NOMEM;
  if (rv == 0 && snapshot != NULL) {
    rv = encode_snapshot(snapshot, &blob, &blob_len);
    state.snapshot_index = snapshot->index;
    state.snapshot_term = snapshot->term;
    state.snapshot = blob;
    state.snapshot_len = blob_len;
  }
  for (size_t i = 0; rv == 0 && i < n; ++i) {
    records[i] = (das_nlog_entry){entries[i].term, (uint8_t)entries[i].type, entries[i].buf.base,
                                  entries[i].buf.len};
  }
  if (rv == 0 && das_nlog_import(store_of(node), node->log_group, &state, records, n) == 0) {
    rv = RAFT_NOMEM;
  }
  if (rv == 0 && sync_log(&node->io) != 0) {
    snprintf(errmsg, errmsg_len, "import the raft log kept the old way: %s", node->io.errmsg);
    rv = RAFT_IOERR;
  }
  free(records);
  free(blob);
  free_loaded(snapshot, entries, n);
  return rv;
}

/* raft_uv's files in `dir` (segments, snapshots, metadata, prepared segments): the node log
 * holds what they held. */
static void remove_uv_files(const char* dir) {
  DIR* d = opendir(dir);
  if (d == NULL) return;
  struct dirent* entry;
  while ((entry = readdir(d)) != NULL) {
    if (entry->d_type == DT_REG) unlinkat(dirfd(d), entry->d_name, 0);
  }
  closedir(d);
}

int das_node_use_log(das_raft_node* node, const char* dir, char* errmsg, size_t errmsg_len) {
  das_nlog_group g;
  das_nlog_get(store_of(node), node->log_group, &g);
  if (!g.known) {
    const int rv = import_uv(node, errmsg, errmsg_len);
    if (rv != 0) return rv;
  }
  remove_uv_files(dir);
  node->uv_load = log_load; /* under load_io's replay (node_io.c) */
  node->io.bootstrap = log_bootstrap;
  node->io.recover = log_recover;
  node->io.set_term = log_set_term;
  node->io.set_vote = log_set_vote;
  node->io.append = log_append;
  node->io.truncate = log_truncate;
  node->io.snapshot_put = log_snapshot_put;
  node->io.snapshot_get = log_snapshot_get;
  node->uv_close = node->io.close;
  node->io.close = log_close;
  return 0;
}
