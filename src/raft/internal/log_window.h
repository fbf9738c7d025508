/* The sizes of the entries a group applied lately, and what its share of the node's log budget
 * (das_raft_log_budget, raft_c.h) then allows: how many entries the log keeps after a snapshot
 * and when the next snapshot is due. Plain C, no libraft: raft_c.c feeds it each applied entry
 * and hands its answers to raft_set_snapshot_trailing / _threshold. */
#ifndef DAS_RAFT_INTERNAL_LOG_WINDOW_H_
#define DAS_RAFT_INTERNAL_LOG_WINDOW_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fewer entries than this are never the only ones kept: a follower a few entries behind
 * catches up from the log, and a store that lags its raft log by a few entries can still take
 * a snapshot (replica/shard_replica.h). The bound in bytes is then at most this many entries. */
enum { DAS_LOG_MIN_TRAILING = 16 };

typedef struct das_log_window {
  uint32_t* sizes; /* a ring of the latest applied entries' sizes, oldest at `head` */
  size_t capacity; /* the most entries ever kept (the group's snapshot_trailing) */
  size_t head;
  size_t count;
  uint64_t bytes;         /* the sum of the sizes in the ring */
  uint64_t since_bytes;   /* applied since the last snapshot */
  uint64_t since_entries; /* applied since the last snapshot */
} das_log_window;

/* What the share allows now. */
typedef struct das_log_limits {
  unsigned trailing;  /* entries kept after a snapshot */
  unsigned threshold; /* entries after which a snapshot is due */
} das_log_limits;

/* 0, or -1 when out of memory. `max_trailing` >= 1. */
int das_log_window_init(das_log_window* w, unsigned max_trailing);
void das_log_window_free(das_log_window* w);
/* An entry of `size` bytes was applied; `share` is the group's part of the budget in bytes
 * (> 0). Returns the limits to set, never above `max_trailing` and `max_threshold`. */
das_log_limits das_log_window_applied(das_log_window* w, uint64_t size, uint64_t share,
                                      unsigned max_threshold);
/* A snapshot was taken: the next is due half the share later. */
void das_log_window_snapshot_taken(das_log_window* w);

#ifdef __cplusplus
}
#endif

#endif /* DAS_RAFT_INTERNAL_LOG_WINDOW_H_ */
