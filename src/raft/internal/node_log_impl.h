/* The node log's state as its two C files share it (node_log.c: the records and their effect
 * in memory; node_log_file.c: the segments, replay and flushes). Private to them. */
#ifndef DAS_RAFT_INTERNAL_NODE_LOG_IMPL_H_
#define DAS_RAFT_INTERNAL_NODE_LOG_IMPL_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "raft/internal/node_log.h"

enum {
  KIND_ENTRIES = 1,
  KIND_TRUNCATE = 2,
  KIND_TERM = 3,
  KIND_VOTE = 4,
  KIND_SNAPSHOT = 5,
  KIND_STATE = 6,
  KIND_DROP = 7,
};
enum { HEADER = 8, BODY_HEAD = 16, ENTRY_HEAD = 16, PATH_MAX_LEN = 4096 };
enum { SPARE_MAX = 2 * 1024 * 1024 };

/* Where an entry's bytes are in the log's stream. */
typedef struct entry_pos {
  uint64_t term;
  uint64_t lsn;
  uint32_t len;
  uint8_t type;
} entry_pos;

typedef struct group {
  uint64_t id;
  int known;
  uint64_t term, vote;
  uint64_t snap_index, snap_term;
  void* snap;
  size_t snap_len;
  uint64_t first;
  entry_pos* e;
  size_t n, cap;
} group;

typedef struct segment {
  uint64_t seq;
  uint64_t start, end; /* its bytes in the stream: [start, end) */
  uint64_t head_end;   /* the end of the STATE records at its head */
  int fd;              /* -1 until the flush that creates it */
} segment;

struct das_nlog {
  char dir[PATH_MAX_LEN];
  size_t segment_bytes;
  group* groups;
  size_t n_groups, cap_groups;
  segment* segs;
  size_t n_segs, cap_segs;
  unsigned char* pend; /* the stream's bytes from pend_lsn on, not flushed yet */
  size_t pend_len, pend_cap;
  uint64_t pend_lsn;
  uint64_t durable;
  char** deletes; /* segment files to delete at the next flush */
  size_t n_deletes;
  int flushing;
  /* The bytes of the flush being written, [flight_lsn, pend_lsn): read from here meanwhile. */
  const unsigned char* flight;
  uint64_t flight_lsn;
  int in_head; /* writing a new segment's head: no other segment is started */
  /* A flushed buffer (of at most SPARE_MAX bytes) kept for the next records: no new pages
   * per flush. */
  unsigned char* spare;
  size_t spare_cap;
};

uint32_t das_nlog_crc32c(const unsigned char* p, size_t n);

static inline void put32(unsigned char* p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put64(unsigned char* p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t get32(const unsigned char* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline uint64_t get64(const unsigned char* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static inline size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* The buffers of records waiting for a flush: mapped pages of their own, not the heap's, so
 * that the megabytes a flush may hold go back to the system once written (glibc keeps freed
 * heap memory, and a process's memory would grow by the largest flush). 0 or -ENOMEM. */
int nlog_buf_reserve(unsigned char** buf, size_t* cap, size_t need);
void nlog_buf_free(unsigned char* buf, size_t cap);

/* Groups (node_log.c). */
group* nlog_find_group(das_nlog* log, uint64_t id);
group* nlog_get_group(das_nlog* log, uint64_t id);
void nlog_forget(group* g);
/* Applies the record `body` (BODY_HEAD bytes and the kind's fields) at stream position
 * `lsn` to the groups; 0, or -EINVAL for a malformed one, -ENOMEM. */
int nlog_apply(das_nlog* log, const unsigned char* body, size_t len, uint64_t lsn);

/* Segments (node_log_file.c). */
segment* nlog_last_seg(das_nlog* log);
segment* nlog_seg_of(das_nlog* log, uint64_t lsn);
/* Room for a record of `len` bytes at the stream's end: a new segment (with its head) when the
 * current one has no room for it. 0 or -errno. */
int nlog_make_room(das_nlog* log, size_t len);
/* The stream's bytes [lsn, lsn + len) into `out`, from the buffers or the segment files. */
int nlog_read_bytes(das_nlog* log, uint64_t lsn, void* out, size_t len);
/* Emits a STATE record of `g` (at a segment's head, or an import). 0 on failure. */
uint64_t nlog_emit_state(das_nlog* log, const group* g);
/* Emits an ENTRIES record of `g`'s kept entries as they are (read back): a rewrite. */
uint64_t nlog_rewrite_entries(das_nlog* log, group* g);

#endif /* DAS_RAFT_INTERNAL_NODE_LOG_IMPL_H_ */
