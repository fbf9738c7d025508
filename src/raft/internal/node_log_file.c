/* The node log's segments: open and replay, new segments, flushes, deletion (node_log.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft/internal/node_log_impl.h"

struct piece {
  uint64_t seq;
  int fd;
  int created;
  uint64_t offset;  /* in the segment's file */
  size_t from, len; /* in the flush's bytes */
};

struct das_nlog_flush {
  unsigned char* buf;
  size_t cap;
  size_t len;
  uint64_t lsn;
  struct piece* pieces;
  size_t n_pieces;
  char** deletes;
  size_t n_deletes;
  /* The oldest segments that go once this flush is durable (decided at its beginning, by the
   * state its records leave). */
  size_t n_drop;
  char dir[PATH_MAX_LEN];
  size_t segment_bytes;
};

static void set_err(char* errmsg, const char* what, const char* path, int err) {
  if (errmsg != NULL)
    snprintf(errmsg, DAS_NLOG_ERRMSG, "%.40s %.160s: %.48s", what, path, strerror(err));
}

static void segment_path(const char* dir, uint64_t seq, char* out) {
  snprintf(out, PATH_MAX_LEN, "%.4000s/seg-%020" PRIu64 ".log", dir, seq);
}

segment* nlog_last_seg(das_nlog* log) { return &log->segs[log->n_segs - 1]; }

segment* nlog_seg_of(das_nlog* log, uint64_t lsn) {
  size_t lo = 0, hi = log->n_segs;
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    if (log->segs[mid].start <= lsn) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return &log->segs[lo];
}

static segment* add_seg(das_nlog* log, uint64_t seq, uint64_t start) {
  if (log->n_segs == log->cap_segs) {
    const size_t cap = log->cap_segs ? log->cap_segs * 2 : 8;
    segment* more = realloc(log->segs, cap * sizeof *more);
    if (more == NULL) return NULL;
    log->segs = more;
    log->cap_segs = cap;
  }
  segment* s = &log->segs[log->n_segs++];
  memset(s, 0, sizeof *s);
  s->seq = seq;
  s->start = s->end = s->head_end = start;
  s->fd = -1;
  return s;
}

int nlog_read_bytes(das_nlog* log, uint64_t lsn, void* out, size_t len) {
  if (len == 0) return 0;
  if (lsn >= log->pend_lsn) {
    memcpy(out, log->pend + (lsn - log->pend_lsn), len);
    return 0;
  }
  if (log->flight != NULL && lsn >= log->flight_lsn) {
    memcpy(out, log->flight + (lsn - log->flight_lsn), len);
    return 0;
  }
  const segment* s = nlog_seg_of(log, lsn);
  if (s->fd < 0) return -EIO;
  const ssize_t got = pread(s->fd, out, len, (off_t)(lsn - s->start));
  if (got < 0) return -errno;
  return (size_t)got == len ? 0 : -EIO;
}

/* ---- a new segment ---- */

/* A group that writes nothing keeps its entries where they are; the oldest segment's idle
 * groups (every kept entry durable) have theirs written again at the new head. */
static int rewrite_idle(das_nlog* log) {
  if (log->n_segs < 3) return 0;
  const segment* oldest = &log->segs[0];
  for (size_t i = 0; i < log->n_groups; ++i) {
    group* g = &log->groups[i];
    if (!g->known || g->n == 0 || g->e[0].lsn >= oldest->end) continue;
    if (g->e[g->n - 1].lsn + g->e[g->n - 1].len > log->durable) continue; /* it is writing */
    if (nlog_rewrite_entries(log, g) == 0) return -ENOMEM;
  }
  return 0;
}

int nlog_make_room(das_nlog* log, size_t len) {
  segment* s = nlog_last_seg(log);
  if (log->in_head || s->end == s->start || s->end - s->start + len <= log->segment_bytes) {
    return 0;
  }
  if (add_seg(log, s->seq + 1, s->end) == NULL) return -ENOMEM;
  log->in_head = 1;
  int rv = 0;
  for (size_t i = 0; i < log->n_groups && rv == 0; ++i) {
    if (log->groups[i].known && nlog_emit_state(log, &log->groups[i]) == 0) rv = -ENOMEM;
  }
  if (rv == 0) rv = rewrite_idle(log);
  /* The head (states, entries written forward) supersedes every older segment once durable. */
  nlog_last_seg(log)->head_end = nlog_last_seg(log)->end;
  log->in_head = 0;
  return rv;
}

/* ---- open and replay ---- */

static int create_segment(const char* dir, uint64_t seq, size_t bytes, int* fd, char* errmsg) {
  char path[PATH_MAX_LEN];
  segment_path(dir, seq, path);
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (*fd < 0) {
    set_err(errmsg, "create", path, errno);
    return -errno;
  }
  (void)posix_fallocate(*fd, 0, (off_t)bytes); /* without it, writes may meet a full disk */
  const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    const int err = errno;
    if (dfd >= 0) close(dfd);
    set_err(errmsg, "sync", dir, err);
    return -err;
  }
  close(dfd);
  return 0;
}

static int compare_u64(const void* a, const void* b) {
  const uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

/* The sequence numbers of the segments in `dir`, sorted. */
static int list_segments(const char* dir, uint64_t** out, size_t* n, char* errmsg) {
  DIR* d = opendir(dir);
  if (d == NULL) {
    set_err(errmsg, "open", dir, errno);
    return -errno;
  }
  size_t cap = 16;
  *n = 0;
  *out = malloc(cap * sizeof **out);
  struct dirent* entry;
  while (*out != NULL && (entry = readdir(d)) != NULL) {
    uint64_t seq = 0;
    char tail[8] = {0};
    if (sscanf(entry->d_name, "seg-%20" SCNu64 "%7s", &seq, tail) != 2 || strcmp(tail, ".log")) {
      continue;
    }
    if (*n == cap) {
      cap *= 2;
      uint64_t* more = realloc(*out, cap * sizeof *more);
      if (more == NULL) break;
      *out = more;
    }
    (*out)[(*n)++] = seq;
  }
  closedir(d);
  if (*out == NULL) return -ENOMEM;
  qsort(*out, *n, sizeof **out, compare_u64);
  return 0;
}

/* Replays one segment's records; its valid length into `*valid`. */
static int replay_segment(das_nlog* log, segment* s, const unsigned char* data, size_t size,
                          size_t* valid) {
  size_t off = 0;
  while (off + HEADER <= size) {
    const uint32_t crc = get32(data + off), len = get32(data + off + 4);
    if (len < BODY_HEAD || off + HEADER + len > size) break;
    if (das_nlog_crc32c(data + off + HEADER, len) != crc) break;
    s->end = s->start + off;
    const int rv = nlog_apply(log, data + off + HEADER, len, s->start + off);
    if (rv != 0) return rv;
    off += HEADER + pad8(len);
  }
  s->end = s->start + off;
  *valid = off;
  return 0;
}

static int read_file(int fd, unsigned char** data, size_t* size) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  *size = (size_t)st.st_size;
  *data = malloc(*size > 0 ? *size : 1);
  if (*data == NULL) return -ENOMEM;
  size_t done = 0;
  while (done < *size) {
    const ssize_t got = pread(fd, *data + done, *size - done, (off_t)done);
    if (got <= 0) return got < 0 ? -errno : -EIO;
    done += (size_t)got;
  }
  return 0;
}

/* Whether `data` holds nothing but zeros from `from` on. */
static int zeros_from(const unsigned char* data, size_t size, size_t from) {
  for (size_t i = from; i < size; ++i) {
    if (data[i] != 0) return 0;
  }
  return 1;
}

static int replay(das_nlog* log, const uint64_t* seqs, size_t n, char* errmsg) {
  uint64_t start = 0;
  for (size_t i = 0; i < n; ++i) {
    char path[PATH_MAX_LEN];
    segment_path(log->dir, seqs[i], path);
    segment* s = add_seg(log, seqs[i], start);
    if (s == NULL) return -ENOMEM;
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
      set_err(errmsg, "open", path, errno);
      return -errno;
    }
    unsigned char* data = NULL;
    size_t size = 0, valid = 0;
    int rv = read_file(s->fd, &data, &size);
    if (rv == 0) rv = replay_segment(log, s, data, size, &valid);
    /* Only the last segment may end in a write a crash cut short: a flush syncs a segment
     * before it writes the next. */
    if (rv == 0 && i + 1 < n && !zeros_from(data, size, valid)) rv = -EIO;
    free(data);
    if (rv != 0) {
      set_err(errmsg, "replay (corrupt or unreadable)", path, -rv);
      return rv;
    }
    if (i + 1 == n && valid < size && ftruncate(s->fd, (off_t)valid) == 0 &&
        valid < log->segment_bytes) {
      /* The cut-short tail went; the room after it is zeros again (best effort: writes
       * extend the file otherwise). */
      (void)posix_fallocate(s->fd, 0, (off_t)log->segment_bytes);
    }
    start = s->end;
  }
  return 0;
}

int das_nlog_open(const char* dir, size_t segment_bytes, das_nlog** out, char* errmsg) {
  das_nlog* log = calloc(1, sizeof *log);
  if (log == NULL) return -ENOMEM;
  snprintf(log->dir, sizeof log->dir, "%s", dir);
  log->segment_bytes = segment_bytes ? segment_bytes : DAS_NLOG_DEFAULT_SEGMENT;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    set_err(errmsg, "create", dir, errno);
    free(log);
    return -errno;
  }
  uint64_t* seqs = NULL;
  size_t n = 0;
  int rv = list_segments(dir, &seqs, &n, errmsg);
  if (rv == 0) rv = replay(log, seqs, n, errmsg);
  free(seqs);
  if (rv == 0 && log->n_segs == 0) {
    segment* s = add_seg(log, 1, 0);
    rv = s == NULL ? -ENOMEM : create_segment(dir, 1, log->segment_bytes, &s->fd, errmsg);
  }
  if (rv != 0) {
    das_nlog_close(log);
    return rv;
  }
  log->durable = log->pend_lsn = nlog_last_seg(log)->end;
  *out = log;
  return 0;
}

void das_nlog_close(das_nlog* log) {
  for (size_t i = 0; i < log->n_segs; ++i) {
    if (log->segs[i].fd >= 0) close(log->segs[i].fd);
  }
  for (size_t i = 0; i < log->n_groups; ++i) nlog_forget(&log->groups[i]);
  for (size_t i = 0; i < log->n_deletes; ++i) free(log->deletes[i]);
  free(log->deletes);
  free(log->groups);
  free(log->segs);
  nlog_buf_free(log->pend, log->pend_cap);
  nlog_buf_free(log->spare, log->spare_cap);
  free(log);
}

/* ---- flushes ---- */

/* How many of the oldest segments may go once everything recorded so far is durable (at
 * `end`): none of their entries is kept by its group, and the next segment's head (the groups'
 * states, entries written forward) is in it. Records written later only keep fewer entries. */
static size_t unused_prefix(const das_nlog* log, uint64_t end) {
  size_t n = 0;
  while (n + 1 < log->n_segs && log->segs[n + 1].head_end <= end) {
    const segment* s = &log->segs[n];
    for (size_t i = 0; i < log->n_groups; ++i) {
      const group* g = &log->groups[i];
      if (g->known && g->n > 0 && g->e[0].lsn < s->end) return n;
    }
    ++n;
  }
  return n;
}

/* The `n` oldest segments go: closed now, their files deleted by the next flush. */
static void drop_segments(das_nlog* log, size_t n) {
  for (; n > 0 && log->n_segs > 1; --n) {
    segment* s = &log->segs[0];
    char** more = realloc(log->deletes, (log->n_deletes + 1) * sizeof *more);
    char* path = malloc(PATH_MAX_LEN);
    if (more == NULL || path == NULL) {
      if (more != NULL) log->deletes = more;
      free(path);
      return;
    }
    log->deletes = more;
    segment_path(log->dir, s->seq, path);
    log->deletes[log->n_deletes++] = path;
    if (s->fd >= 0) close(s->fd);
    memmove(log->segs, log->segs + 1, (log->n_segs - 1) * sizeof *log->segs);
    --log->n_segs;
  }
}

uint64_t das_nlog_durable(const das_nlog* log) { return log->durable; }
int das_nlog_pending(const das_nlog* log) { return log->pend_len > 0 || log->n_deletes > 0; }

das_nlog_flush* das_nlog_flush_begin(das_nlog* log) {
  if (log->flushing || !das_nlog_pending(log)) return NULL;
  das_nlog_flush* f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->pieces = calloc(log->n_segs, sizeof *f->pieces);
  if (f->pieces == NULL) {
    free(f);
    return NULL;
  }
  f->buf = log->pend;
  f->cap = log->pend_cap;
  f->len = log->pend_len;
  f->lsn = log->pend_lsn;
  const uint64_t end = f->lsn + f->len;
  for (size_t i = 0; i < log->n_segs && f->len > 0; ++i) {
    const segment* s = &log->segs[i];
    if (s->end <= f->lsn || s->start >= end) continue;
    const uint64_t from = s->start > f->lsn ? s->start : f->lsn;
    const uint64_t to = s->end < end ? s->end : end;
    struct piece* p = &f->pieces[f->n_pieces++];
    p->seq = s->seq;
    p->fd = s->fd;
    p->offset = from - s->start;
    p->from = (size_t)(from - f->lsn);
    p->len = (size_t)(to - from);
  }
  f->deletes = log->deletes;
  f->n_deletes = log->n_deletes;
  f->n_drop = unused_prefix(log, end);
  snprintf(f->dir, sizeof f->dir, "%s", log->dir);
  f->segment_bytes = log->segment_bytes;
  log->deletes = NULL;
  log->n_deletes = 0;
  log->pend = NULL;
  log->pend_len = log->pend_cap = 0;
  log->pend_lsn = end;
  log->flight = f->buf;
  log->flight_lsn = f->lsn;
  log->flushing = 1;
  return f;
}

int das_nlog_flush_write(das_nlog_flush* f, char* errmsg) {
  for (size_t i = 0; i < f->n_pieces; ++i) {
    struct piece* p = &f->pieces[i];
    if (p->fd < 0) {
      const int rv = create_segment(f->dir, p->seq, f->segment_bytes, &p->fd, errmsg);
      if (rv != 0) return rv;
      p->created = 1;
    }
    size_t done = 0;
    while (done < p->len) {
      const ssize_t put =
          pwrite(p->fd, f->buf + p->from + done, p->len - done, (off_t)(p->offset + done));
      if (put < 0) {
        if (errno == EINTR) continue;
        set_err(errmsg, "write", "the node log", errno);
        return -errno;
      }
      done += (size_t)put;
    }
    /* In order: a segment is durable before the next one is written (replay relies on it). */
    if (fdatasync(p->fd) != 0) {
      set_err(errmsg, "sync", "the node log", errno);
      return -errno;
    }
  }
  for (size_t i = 0; i < f->n_deletes; ++i) {
    if (unlink(f->deletes[i]) != 0 && errno != ENOENT) {
      set_err(errmsg, "delete", f->deletes[i], errno);
      return -errno;
    }
  }
  return 0;
}

void das_nlog_flush_end(das_nlog* log, das_nlog_flush* f, int status) {
  log->flushing = 0;
  log->flight = NULL;
  for (size_t i = 0; i < f->n_pieces; ++i) {
    if (!f->pieces[i].created) continue;
    for (size_t k = 0; k < log->n_segs; ++k) {
      if (log->segs[k].seq == f->pieces[i].seq) log->segs[k].fd = f->pieces[i].fd;
    }
  }
  if (status == 0) {
    log->durable = f->lsn + f->len;
    for (size_t i = 0; i < f->n_deletes; ++i) free(f->deletes[i]);
    free(f->deletes);
    if (log->spare == NULL && f->cap <= SPARE_MAX) {
      log->spare = f->buf;
      log->spare_cap = f->cap;
    } else {
      nlog_buf_free(f->buf, f->cap);
    }
    drop_segments(log, f->n_drop);
  } else {
    /* Written again by the next flush, before what came since. */
    unsigned char* both = NULL;
    size_t cap = 0;
    if (nlog_buf_reserve(&both, &cap, f->len + log->pend_len) == 0) {
      memcpy(both, f->buf, f->len);
      if (log->pend_len > 0) memcpy(both + f->len, log->pend, log->pend_len);
      nlog_buf_free(log->pend, log->pend_cap);
      log->pend = both;
      log->pend_cap = cap;
      log->pend_len = f->len + log->pend_len;
      log->pend_lsn = f->lsn;
    }
    nlog_buf_free(f->buf, f->cap);
    char** all = realloc(f->deletes, (f->n_deletes + log->n_deletes + 1) * sizeof *all);
    if (all != NULL) {
      for (size_t i = 0; i < log->n_deletes; ++i) all[f->n_deletes + i] = log->deletes[i];
      free(log->deletes);
      log->deletes = all;
      log->n_deletes += f->n_deletes;
    }
  }
  free(f->pieces);
  free(f);
}

int das_nlog_sync(das_nlog* log, char* errmsg) {
  das_nlog_flush* f = das_nlog_flush_begin(log);
  if (f == NULL) return das_nlog_pending(log) ? -ENOMEM : 0;
  const int rv = das_nlog_flush_write(f, errmsg);
  das_nlog_flush_end(log, f, rv);
  return rv;
}

size_t das_nlog_segments(const das_nlog* log) { return log->n_segs; }
