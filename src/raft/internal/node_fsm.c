/* The node's libraft state machine (node.h): each entry unframed and handed to the user's
 * state machine, its size counted against the log budget; snapshots and restores passed on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/internal/node.h"

size_t das_frame_len(size_t payload) { return (DAS_FRAME_HEADER + payload + 7) / 8 * 8; }

void das_frame(void* out, const void* payload, size_t len) {
  unsigned char* p = out;
  for (int i = 0; i < DAS_FRAME_HEADER; ++i) p[i] = (unsigned char)((uint64_t)len >> (8 * i));
  if (len > 0) memcpy(p + DAS_FRAME_HEADER, payload, len);
  memset(p + DAS_FRAME_HEADER + len, 0, das_frame_len(len) - DAS_FRAME_HEADER - len);
}

int64_t das_unframe(const struct raft_buffer* buf) {
  if (buf->len < DAS_FRAME_HEADER) return -1;
  const unsigned char* p = buf->base;
  uint64_t len = 0;
  for (int i = 0; i < DAS_FRAME_HEADER; ++i) len |= (uint64_t)p[i] << (8 * i);
  if (len > buf->len - DAS_FRAME_HEADER) return -1;
  return (int64_t)len;
}

/* What an entry costs kept in the log: its frame, and libraft's entry and buffer around it. */
enum { kEntryOverhead = 64 };

/* Sets the snapshot limits the node's share of its log budget allows after an entry of
 * `frame_bytes` was applied. libraft reads them when it decides on, and takes, a snapshot. */
static void account(das_raft_node* node, size_t frame_bytes) {
  das_raft_log_budget* budget = node->budget;
  if (budget == NULL || budget->bytes == 0 || node->window.sizes == NULL) return;
  const uint64_t share = budget->bytes / (budget->groups > 0 ? budget->groups : 1);
  const das_log_limits limits = das_log_window_applied(&node->window, frame_bytes + kEntryOverhead,
                                                       share > 0 ? share : 1, node->max_threshold);
  node->trailing = limits.trailing;
  raft_set_snapshot_trailing(&node->raft, limits.trailing);
  raft_set_snapshot_threshold(&node->raft, limits.threshold);
}

static int fsm_apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result) {
  das_raft_node* node = fsm->data;
  *result = NULL;
  const int64_t len = das_unframe(buf);
  if (len < 0) {
    /* Every replica sees the same bytes and skips them alike; refusing would block the log. */
    fprintf(stderr, "raft: entry %llu is not a frame of ours; skipped\n",
            (unsigned long long)(raft_last_applied(&node->raft) + 1));
    return 0;
  }
  /* Inside apply, the entry's index is the one after the last applied. */
  node->user.apply(node->user.ctx, raft_last_applied(&node->raft) + 1,
                   (const unsigned char*)buf->base + DAS_FRAME_HEADER, (size_t)len);
  account(node, buf->len);
  return 0;
}

static int fsm_snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs) {
  das_raft_node* node = fsm->data;
  void* data = NULL;
  size_t len = 0;
  /* libraft takes the snapshot at the last applied entry, and its log then keeps `trailing`
   * entries up to it (0.22.1 legacy.c takeSnapshot, uv_segment.c uvSegmentKeepTrailing). */
  const uint64_t index = raft_last_applied(&node->raft);
  const uint64_t kept_from = index > node->trailing ? index - node->trailing + 1 : 1;
  int rv = node->user.snapshot(node->user.ctx, index, kept_from, &data, &len);
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
  das_log_window_snapshot_taken(&node->window);
  if (node->budget != NULL && node->budget->bytes > 0) {
    raft_set_snapshot_threshold(&node->raft, node->max_threshold);
  }
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

void das_node_init_fsm(das_raft_node* node) {
  node->fsm.version = 1;
  node->fsm.data = node;
  node->fsm.apply = fsm_apply;
  node->fsm.snapshot = fsm_snapshot;
  node->fsm.restore = fsm_restore;
}
