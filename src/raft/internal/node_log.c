/* The node log's records and their effect on the groups in memory (node_log.h). Every record
 * written goes through the same nlog_apply as one replayed at open. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "raft/internal/node_log_impl.h"

static uint32_t crc_table[256];
static int crc_ready;

uint32_t das_nlog_crc32c(const unsigned char* p, size_t n) {
  if (!crc_ready) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      crc_table[i] = c;
    }
    crc_ready = 1;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

int nlog_buf_reserve(unsigned char** buf, size_t* cap, size_t need) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 64 * 1024;
  while (n < need) n *= 2;
  void* p = *buf == NULL ? mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                         : mremap(*buf, *cap, n, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) return -ENOMEM;
  *buf = p;
  *cap = n;
  return 0;
}

void nlog_buf_free(unsigned char* buf, size_t cap) {
  if (buf != NULL) munmap(buf, cap);
}

/* ---- groups ---- */

group* nlog_find_group(das_nlog* log, uint64_t id) {
  for (size_t i = 0; i < log->n_groups; ++i) {
    if (log->groups[i].id == id) return &log->groups[i];
  }
  return NULL;
}

group* nlog_get_group(das_nlog* log, uint64_t id) {
  group* g = nlog_find_group(log, id);
  if (g != NULL) return g;
  if (log->n_groups == log->cap_groups) {
    size_t cap = log->cap_groups ? log->cap_groups * 2 : 16;
    group* more = realloc(log->groups, cap * sizeof *more);
    if (more == NULL) return NULL;
    log->groups = more;
    log->cap_groups = cap;
  }
  g = &log->groups[log->n_groups++];
  memset(g, 0, sizeof *g);
  g->id = id;
  g->first = 1;
  return g;
}

void nlog_forget(group* g) {
  free(g->snap);
  free(g->e);
  const uint64_t id = g->id;
  memset(g, 0, sizeof *g);
  g->id = id;
  g->first = 1;
}

static int reserve_entries(group* g, size_t n) {
  if (n <= g->cap) return 0;
  size_t cap = g->cap ? g->cap : 64;
  while (cap < n) cap *= 2;
  entry_pos* more = realloc(g->e, cap * sizeof *more);
  if (more == NULL) return -ENOMEM;
  g->e = more;
  g->cap = cap;
  return 0;
}

/* Keeps the entries with index in [from, to] only; from is the first index kept after. */
static void keep_range(group* g, uint64_t from, uint64_t to) {
  if (g->n > 0 && to < g->first + g->n - 1) {
    g->n = to >= g->first ? (size_t)(to - g->first + 1) : 0;
  }
  if (g->n > 0 && from > g->first) {
    const uint64_t drop = from - g->first;
    if (drop >= g->n) {
      g->n = 0;
    } else {
      memmove(g->e, g->e + drop, (size_t)(g->n - drop) * sizeof *g->e);
      g->n -= (size_t)drop;
    }
  }
  if (g->n == 0 || from > g->first) g->first = from;
}

static int set_snapshot(group* g, uint64_t index, uint64_t term, const void* blob, size_t len) {
  void* copy = NULL;
  if (len > 0) {
    copy = malloc(len);
    if (copy == NULL) return -ENOMEM;
    memcpy(copy, blob, len);
  }
  free(g->snap);
  g->snap = copy;
  g->snap_len = len;
  g->snap_index = index;
  g->snap_term = term;
  return 0;
}

/* ---- applying a record ---- */

static int apply_entries(group* g, const unsigned char* p, size_t len, uint64_t lsn) {
  if (len < 16) return -EINVAL;
  const uint64_t first = get64(p);
  const uint64_t n = get64(p + 8);
  if (n > len / ENTRY_HEAD) return -EINVAL;
  if (g->n == 0 || first < g->first || first > g->first + g->n) {
    g->n = 0;
    g->first = first;
  } else {
    g->n = (size_t)(first - g->first);
  }
  if (reserve_entries(g, g->n + (size_t)n) != 0) return -ENOMEM;
  size_t off = 16;
  for (uint64_t i = 0; i < n; ++i) {
    if (off + ENTRY_HEAD > len) return -EINVAL;
    entry_pos* e = &g->e[g->n];
    e->term = get64(p + off);
    e->len = get32(p + off + 8);
    e->type = p[off + 12];
    off += ENTRY_HEAD;
    if (e->len > len - off) return -EINVAL;
    e->lsn = lsn + off;
    off += pad8(e->len);
    ++g->n;
  }
  return 0;
}

static int apply_snapshot(group* g, const unsigned char* p, size_t len) {
  if (len < 32) return -EINVAL;
  const uint64_t index = get64(p), term = get64(p + 8), trailing = get64(p + 16);
  const uint64_t blob = get64(p + 24);
  if (blob > len - 32) return -EINVAL;
  if (set_snapshot(g, index, term, p + 32, (size_t)blob) != 0) return -ENOMEM;
  if (trailing == 0) {
    g->n = 0;
    g->first = index + 1;
  } else if (index >= trailing && index - trailing + 1 > g->first) {
    keep_range(g, index - trailing + 1, UINT64_MAX);
  }
  return 0;
}

static int apply_state(group* g, const unsigned char* p, size_t len) {
  if (len < 56) return -EINVAL;
  g->term = get64(p);
  g->vote = get64(p + 8);
  const uint64_t first = get64(p + 16), last = get64(p + 24);
  const uint64_t blob = get64(p + 48);
  if (blob > len - 56) return -EINVAL;
  if (set_snapshot(g, get64(p + 32), get64(p + 40), p + 56, (size_t)blob) != 0) return -ENOMEM;
  keep_range(g, first, last);
  return 0;
}

int nlog_apply(das_nlog* log, const unsigned char* body, size_t len, uint64_t lsn) {
  if (len < BODY_HEAD) return -EINVAL;
  const uint32_t kind = get32(body);
  group* g = nlog_get_group(log, get64(body + 8));
  if (g == NULL) return -ENOMEM;
  const unsigned char* p = body + BODY_HEAD;
  const size_t n = len - BODY_HEAD;
  if (kind == KIND_DROP) {
    nlog_forget(g);
    return 0;
  }
  g->known = 1;
  switch (kind) {
    case KIND_ENTRIES:
      return apply_entries(g, p, n, lsn + HEADER + BODY_HEAD);
    case KIND_TRUNCATE:
      if (n < 8) return -EINVAL;
      if (get64(p) <= g->first) {
        g->n = 0;
        g->first = get64(p);
      } else if (get64(p) < g->first + g->n) {
        g->n = (size_t)(get64(p) - g->first);
      }
      return 0;
    case KIND_TERM:
      if (n < 8) return -EINVAL;
      g->term = get64(p);
      g->vote = 0;
      return 0;
    case KIND_VOTE:
      if (n < 8) return -EINVAL;
      g->vote = get64(p);
      return 0;
    case KIND_SNAPSHOT:
      return apply_snapshot(g, p, n);
    case KIND_STATE:
      return apply_state(g, p, n);
    default:
      return -EINVAL;
  }
}

/* ---- writing a record ---- */

/* The body of a new record of `body_len` bytes at the stream's end, zeroed, its head filled;
 * NULL when out of memory. */
static unsigned char* emit_begin(das_nlog* log, uint32_t kind, uint64_t group_id, size_t body_len) {
  const size_t total = HEADER + pad8(body_len);
  if (nlog_make_room(log, total) != 0) return NULL;
  if (log->pend == NULL && log->spare != NULL) {
    log->pend = log->spare;
    log->pend_cap = log->spare_cap;
    log->spare = NULL;
  }
  if (nlog_buf_reserve(&log->pend, &log->pend_cap, log->pend_len + total) != 0) return NULL;
  unsigned char* rec = log->pend + log->pend_len;
  memset(rec, 0, total);
  put32(rec + 4, (uint32_t)body_len);
  put32(rec + HEADER, kind);
  put64(rec + HEADER + 8, group_id);
  return rec + HEADER;
}

/* Seals the record and applies it: the log's position after it, 0 on failure. */
static uint64_t emit_end(das_nlog* log, unsigned char* body, size_t body_len) {
  unsigned char* rec = body - HEADER;
  put32(rec, das_nlog_crc32c(body, body_len));
  const size_t total = HEADER + pad8(body_len);
  segment* s = nlog_last_seg(log);
  const uint64_t lsn = s->end;
  log->pend_len += total;
  s->end += total;
  if (nlog_apply(log, body, body_len, lsn) != 0) return 0;
  return s->end;
}

uint64_t das_nlog_entries(das_nlog* log, uint64_t group_id, uint64_t first_index,
                          const das_nlog_entry* entries, size_t n) {
  size_t body_len = BODY_HEAD + 16;
  for (size_t i = 0; i < n; ++i) body_len += ENTRY_HEAD + pad8(entries[i].len);
  unsigned char* body = emit_begin(log, KIND_ENTRIES, group_id, body_len);
  if (body == NULL) return 0;
  unsigned char* p = body + BODY_HEAD;
  put64(p, first_index);
  put64(p + 8, n);
  size_t off = 16;
  for (size_t i = 0; i < n; ++i) {
    put64(p + off, entries[i].term);
    put32(p + off + 8, (uint32_t)entries[i].len);
    p[off + 12] = entries[i].type;
    off += ENTRY_HEAD;
    if (entries[i].len > 0) memcpy(p + off, entries[i].data, entries[i].len);
    off += pad8(entries[i].len);
  }
  return emit_end(log, body, body_len);
}

static uint64_t emit_u64(das_nlog* log, uint32_t kind, uint64_t group_id, uint64_t value) {
  unsigned char* body = emit_begin(log, kind, group_id, BODY_HEAD + 8);
  if (body == NULL) return 0;
  put64(body + BODY_HEAD, value);
  return emit_end(log, body, BODY_HEAD + 8);
}

uint64_t das_nlog_truncate(das_nlog* log, uint64_t group_id, uint64_t index) {
  return emit_u64(log, KIND_TRUNCATE, group_id, index);
}

uint64_t das_nlog_term(das_nlog* log, uint64_t group_id, uint64_t term) {
  return emit_u64(log, KIND_TERM, group_id, term);
}

uint64_t das_nlog_vote(das_nlog* log, uint64_t group_id, uint64_t vote) {
  return emit_u64(log, KIND_VOTE, group_id, vote);
}

uint64_t das_nlog_drop(das_nlog* log, uint64_t group_id) {
  unsigned char* body = emit_begin(log, KIND_DROP, group_id, BODY_HEAD);
  if (body == NULL) return 0;
  return emit_end(log, body, BODY_HEAD);
}

uint64_t das_nlog_snapshot(das_nlog* log, uint64_t group_id, uint64_t index, uint64_t term,
                           uint64_t trailing, const void* blob, size_t len) {
  const size_t body_len = BODY_HEAD + 32 + len;
  unsigned char* body = emit_begin(log, KIND_SNAPSHOT, group_id, body_len);
  if (body == NULL) return 0;
  unsigned char* p = body + BODY_HEAD;
  put64(p, index);
  put64(p + 8, term);
  put64(p + 16, trailing);
  put64(p + 24, len);
  if (len > 0) memcpy(p + 32, blob, len);
  return emit_end(log, body, body_len);
}

static uint64_t emit_state(das_nlog* log, uint64_t group_id, const das_nlog_group* s) {
  const size_t body_len = BODY_HEAD + 56 + s->snapshot_len;
  unsigned char* body = emit_begin(log, KIND_STATE, group_id, body_len);
  if (body == NULL) return 0;
  unsigned char* p = body + BODY_HEAD;
  put64(p, s->term);
  put64(p + 8, s->vote);
  put64(p + 16, s->first_index);
  put64(p + 24, s->first_index + s->n_entries - 1);
  put64(p + 32, s->snapshot_index);
  put64(p + 40, s->snapshot_term);
  put64(p + 48, s->snapshot_len);
  if (s->snapshot_len > 0) memcpy(p + 56, s->snapshot, s->snapshot_len);
  return emit_end(log, body, body_len);
}

uint64_t nlog_emit_state(das_nlog* log, const group* g) {
  das_nlog_group s;
  das_nlog_get(log, g->id, &s);
  /* The blob is copied first: the record's effect replaces the group's copy of it. */
  void* blob = NULL;
  if (s.snapshot_len > 0) {
    blob = malloc(s.snapshot_len);
    if (blob == NULL) return 0;
    memcpy(blob, s.snapshot, s.snapshot_len);
    s.snapshot = blob;
  }
  const uint64_t end = emit_state(log, g->id, &s);
  free(blob);
  return end;
}

uint64_t das_nlog_import(das_nlog* log, uint64_t group_id, const das_nlog_group* state,
                         const das_nlog_entry* entries, size_t n) {
  das_nlog_group s = *state;
  s.n_entries = 0;
  uint64_t end = emit_state(log, group_id, &s);
  if (end != 0 && n > 0) end = das_nlog_entries(log, group_id, state->first_index, entries, n);
  return end;
}

uint64_t nlog_rewrite_entries(das_nlog* log, group* g) {
  const uint64_t id = g->id, first = g->first;
  const size_t n = g->n;
  das_nlog_entry* entries = calloc(n, sizeof *entries);
  unsigned char** bufs = calloc(n, sizeof *bufs);
  uint64_t end = 0;
  if (entries == NULL || bufs == NULL) goto out;
  for (size_t i = 0; i < n; ++i) {
    bufs[i] = malloc(g->e[i].len > 0 ? g->e[i].len : 1);
    if (bufs[i] == NULL || nlog_read_bytes(log, g->e[i].lsn, bufs[i], g->e[i].len) != 0) goto out;
    entries[i].term = g->e[i].term;
    entries[i].type = g->e[i].type;
    entries[i].data = bufs[i];
    entries[i].len = g->e[i].len;
  }
  end = das_nlog_entries(log, id, first, entries, n);
out:
  if (bufs != NULL) {
    for (size_t i = 0; i < n; ++i) free(bufs[i]);
  }
  free(bufs);
  free(entries);
  return end;
}

/* ---- reading ---- */

void das_nlog_get(const das_nlog* log, uint64_t group_id, das_nlog_group* out) {
  memset(out, 0, sizeof *out);
  out->first_index = 1;
  const group* g = nlog_find_group((das_nlog*)log, group_id);
  if (g == NULL || !g->known) return;
  out->known = 1;
  out->term = g->term;
  out->vote = g->vote;
  out->snapshot_index = g->snap_index;
  out->snapshot_term = g->snap_term;
  out->snapshot = g->snap;
  out->snapshot_len = g->snap_len;
  out->first_index = g->first;
  out->n_entries = g->n;
}

static const entry_pos* find_entry(das_nlog* log, uint64_t group_id, uint64_t index) {
  group* g = nlog_find_group(log, group_id);
  if (g == NULL || index < g->first || index >= g->first + g->n) return NULL;
  return &g->e[index - g->first];
}

int das_nlog_entry_info(das_nlog* log, uint64_t group_id, uint64_t index, das_nlog_entry* info) {
  const entry_pos* e = find_entry(log, group_id, index);
  if (e == NULL) return -ENOENT;
  info->term = e->term;
  info->type = e->type;
  info->data = NULL;
  info->len = e->len;
  return 0;
}

int das_nlog_read(das_nlog* log, uint64_t group_id, uint64_t index, void* out) {
  const entry_pos* e = find_entry(log, group_id, index);
  if (e == NULL) return -ENOENT;
  return nlog_read_bytes(log, e->lsn, out, e->len);
}
