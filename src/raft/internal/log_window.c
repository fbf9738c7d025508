#include "raft/internal/log_window.h"

#include <stdlib.h>

int das_log_window_init(das_log_window* w, unsigned max_trailing) {
  *w = (das_log_window){0};
  w->capacity = max_trailing > 0 ? max_trailing : 1;
  w->sizes = calloc(w->capacity, sizeof *w->sizes);
  return w->sizes == NULL ? -1 : 0;
}

void das_log_window_free(das_log_window* w) {
  free(w->sizes);
  w->sizes = NULL;
}

static void drop_oldest(das_log_window* w) {
  w->bytes -= w->sizes[w->head];
  w->head = (w->head + 1) % w->capacity;
  --w->count;
}

static unsigned clamp(uint64_t n, unsigned low, unsigned high) {
  if (low > high) low = high;
  if (n < low) return low;
  return n > high ? high : (unsigned)n;
}

das_log_limits das_log_window_applied(das_log_window* w, uint64_t size, uint64_t share,
                                      unsigned max_threshold) {
  const uint64_t keep_bytes = share - share / 2;
  const uint64_t due_bytes = share / 2 > 0 ? share / 2 : 1;
  const uint32_t s = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
  if (w->count == w->capacity) drop_oldest(w);
  w->sizes[(w->head + w->count) % w->capacity] = s;
  ++w->count;
  w->bytes += s;
  while (w->count > 1 && w->bytes > keep_bytes) drop_oldest(w);
  /* Entries older than the ring (applied before this group opened, or at the start) are
   * counted at the ring's average size. */
  uint64_t trailing = w->count;
  const uint64_t average = w->bytes / w->count > 0 ? w->bytes / w->count : 1;
  if (w->bytes < keep_bytes) trailing += (keep_bytes - w->bytes) / average;
  w->since_bytes += s;
  ++w->since_entries;
  das_log_limits limits;
  limits.trailing = clamp(trailing, DAS_LOG_MIN_TRAILING, (unsigned)w->capacity);
  limits.threshold =
      w->since_bytes >= due_bytes ? clamp(w->since_entries, 1, max_threshold) : max_threshold;
  return limits;
}

void das_log_window_snapshot_taken(das_log_window* w) {
  w->since_bytes = 0;
  w->since_entries = 0;
}
