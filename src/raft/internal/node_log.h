/* The node's raft log: one append-only log in one directory for every raft group of a loop,
 * so that a loop turn's entries of all its groups cost one write and one fdatasync instead of
 * one per group (src/raft/README.md, "One log per node"). Plain C, no libraft, no libuv: the
 * records are bytes; node_log_io.c puts libraft's raft_io on it.
 *
 * Records (little-endian, 8-byte aligned): crc32c (u32) over the body, the body's length (u32),
 * then the body: kind (u32), reserved (u32), group id (u64), and the kind's fields:
 *   ENTRIES  first index (u64), count (u64), then per entry: term (u64), length (u32), type
 *            (u8), 3 zero bytes, the bytes, zero padding to 8. Replayed as libraft appends: the
 *            group's entries from the first index on are replaced.
 *   TRUNCATE index (u64): the entries from it on are dropped.
 *   TERM     term (u64); the vote is reset (a new term has no vote yet).
 *   VOTE     the server voted for (u64).
 *   SNAPSHOT index, term, trailing (u64 each), the blob's length (u64), the blob: the group's
 *            latest snapshot (its meaning is the caller's); entries up to index - trailing are
 *            dropped (trailing 0: every entry, the next being index + 1: an installed one).
 *   STATE    term, vote, first index kept, last index kept (u64 each), a SNAPSHOT's fields
 *            without trailing: a group's whole state but its entries, written at the head of
 *            every new segment so that older segments hold nothing but entries.
 *   DROP     the group is forgotten (its replica left this node).
 *
 * Segments are files "seg-<20 digits>.log" of a fixed size, preallocated when created (a write
 * into one needs no new block: a full disk stops the log at a segment's end, not in a write),
 * written in order. Replay reads them all at open and stops at the first record that does not
 * check out in the last one (the tail of a write a crash cut short), which is then cut off. A
 * segment is deleted, oldest first, once none of its entries is kept by its group: a group's
 * entries below its first kept index are gone by its snapshots. A group that writes nothing
 * would keep the oldest segment (and so every later one) forever, so when a segment is started
 * the kept entries of idle groups in the oldest one are written again at the head.
 *
 * Thread-safety: one thread at a time (the loop's); das_nlog_flush_write alone may run on
 * another thread while the loop does anything but another flush, das_nlog_sync or das_nlog_close.
 */
#ifndef DAS_RAFT_INTERNAL_NODE_LOG_H_
#define DAS_RAFT_INTERNAL_NODE_LOG_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct das_nlog das_nlog;
struct das_nlog_entry;

enum {
  DAS_NLOG_DEFAULT_SEGMENT = 8 * 1024 * 1024,
  DAS_NLOG_ERRMSG = 256,
};

/* Opens (creating `dir` if missing, and its first segment) and replays the log. 0, or -errno
 * with `errmsg` saying what failed. `segment_bytes`: 0 for the default. */
int das_nlog_open(const char* dir, size_t segment_bytes, das_nlog** out, char* errmsg);
/* REQUIRES: no flush running. Frees the log (what is not flushed is lost). */
void das_nlog_close(das_nlog* log);

/* A group's state. */
typedef struct das_nlog_group {
  int known; /* the log holds records of it (since its last DROP) */
  uint64_t term;
  uint64_t vote;
  uint64_t snapshot_index; /* 0: no snapshot */
  uint64_t snapshot_term;
  const void* snapshot; /* its blob, valid until the group's next record */
  size_t snapshot_len;
  uint64_t first_index; /* of the entries kept; the next one is first_index + n_entries */
  uint64_t n_entries;
} das_nlog_group;

void das_nlog_get(const das_nlog* log, uint64_t group, das_nlog_group* out);
/* Entry `index` of `group` (first_index <= index < first_index + n_entries): its term, type and
 * length (data NULL); das_nlog_read copies its bytes into `out` (`len` of them). 0, -ENOENT for
 * an entry the log does not keep, or -errno. */
int das_nlog_entry_info(das_nlog* log, uint64_t group, uint64_t index, struct das_nlog_entry* info);
int das_nlog_read(das_nlog* log, uint64_t group, uint64_t index, void* out);

/* Records (see above). Each takes effect in memory at once and is written by the next flush;
 * each returns the log's position after it (a flush that reached it made it durable), or 0
 * when out of memory. */
typedef struct das_nlog_entry {
  uint64_t term;
  uint8_t type;
  const void* data;
  size_t len;
} das_nlog_entry;
uint64_t das_nlog_entries(das_nlog* log, uint64_t group, uint64_t first_index,
                          const das_nlog_entry* entries, size_t n);
uint64_t das_nlog_truncate(das_nlog* log, uint64_t group, uint64_t index);
uint64_t das_nlog_term(das_nlog* log, uint64_t group, uint64_t term);
uint64_t das_nlog_vote(das_nlog* log, uint64_t group, uint64_t vote);
uint64_t das_nlog_snapshot(das_nlog* log, uint64_t group, uint64_t index, uint64_t term,
                           uint64_t trailing, const void* blob, size_t len);
/* A group's whole state at once (an import of a log kept the old way): term, vote, snapshot
 * (blob NULL: none) and its entries from first_index. */
uint64_t das_nlog_import(das_nlog* log, uint64_t group, const das_nlog_group* state,
                         const das_nlog_entry* entries, size_t n);
uint64_t das_nlog_drop(das_nlog* log, uint64_t group);

/* The position every record up to which is durable. */
uint64_t das_nlog_durable(const das_nlog* log);
/* Whether records wait to be flushed. */
int das_nlog_pending(const das_nlog* log);

/* A flush in three steps, so that the write can run on another thread: begin takes what is
 * pending (NULL: nothing), write writes and syncs it (0 or -errno), end keeps its outcome (on
 * failure the records stay pending, to be written again by the next flush). */
typedef struct das_nlog_flush das_nlog_flush;
das_nlog_flush* das_nlog_flush_begin(das_nlog* log);
int das_nlog_flush_write(das_nlog_flush* flush, char* errmsg);
void das_nlog_flush_end(das_nlog* log, das_nlog_flush* flush, int status);
/* All three at once, on this thread. REQUIRES: no flush running. 0 or -errno. */
int das_nlog_sync(das_nlog* log, char* errmsg);

/* How many segments the log has. */
size_t das_nlog_segments(const das_nlog* log);

#ifdef __cplusplus
}
#endif

#endif /* DAS_RAFT_INTERNAL_NODE_LOG_H_ */
