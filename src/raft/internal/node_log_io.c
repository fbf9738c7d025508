/* libraft's raft_io on the node log (node_log.h): a group's entries, term, vote and snapshots
 * go to its loop's one log instead of raft_uv's files of its own. Appends and snapshots wait
 * for the next flush, which a uv_prepare handle starts once per loop turn (one write and one
 * fdatasync for every group's records of the turn) on libuv's thread pool; their callbacks run
 * once it is durable. A term or a vote is durable before set_term/set_vote return, as raft
 * requires and raft_uv does. A failed flush (a full disk) is tried again every second, and
 * what waits on it waits: the group stalls and does not stop (src/raft/README.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/internal/node.h"
#include "raft/internal/node_log.h"

enum { RETRY_MS = 1000 };

/* A request of a group's that waits for the log: an append or a snapshot put until its records
 * are durable, a snapshot get until the loop's next turn. */
typedef struct waiter {
  das_raft_node* node;
  int kind;
  uint64_t lsn;
  void* req;
  union {
    raft_io_append_cb append;
    raft_io_snapshot_put_cb put;
    raft_io_snapshot_get_cb get;
  } cb;
  struct raft_snapshot* snapshot; /* a get's */
  struct waiter* next;
} waiter;

struct das_raft_log {
  uv_loop_t* loop;
  das_nlog* store;
  uv_prepare_t prepare; /* starts a flush each turn when records wait */
  uv_check_t check;     /* runs the callbacks of what is durable */
  uv_timer_t retry;     /* a failed flush is tried again */
  uv_work_t work;
  int work_busy;         /* queued, its after-callback not run yet */
  das_nlog_flush* flush; /* begun and not ended */
  int retry_armed;
  int closing;
  int handles_open;
  das_raft_log_closed_cb closed_cb;
  void* closed_arg;
  /* The write on the pool: `writing` until it is done, then its outcome. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int writing;
  int status;
  char errmsg[DAS_NLOG_ERRMSG];
  waiter* head;
  waiter* tail;
  uint64_t fired;    /* the durable position fire() last looked at */
  unsigned gets;     /* WAIT_GET waiters queued (answered at the next turn, durable or not) */
  uint64_t failures; /* in a row; the first is logged */
};

/* ---- flushes ---- */

static void start_flush(das_raft_log* log);

static void retry_cb(uv_timer_t* timer) {
  das_raft_log* log = timer->data;
  log->retry_armed = 0;
  start_flush(log);
}

static void work_cb(uv_work_t* work) {
  das_raft_log* log = work->data;
  char errmsg[DAS_NLOG_ERRMSG] = {0};
  const int status = das_nlog_flush_write(log->flush, errmsg);
  pthread_mutex_lock(&log->mu);
  log->status = status;
  memcpy(log->errmsg, errmsg, sizeof errmsg);
  log->writing = 0;
  pthread_cond_broadcast(&log->cv);
  pthread_mutex_unlock(&log->mu);
}

/* Ends the flush whose write is done (on the pool, or on this thread). */
static void end_flush(das_raft_log* log) {
  if (log->flush == NULL) return;
  das_nlog_flush_end(log->store, log->flush, log->status);
  log->flush = NULL;
  if (log->status == 0) {
    if (log->failures > 0) fprintf(stderr, "raft: the node log is written again\n");
    log->failures = 0;
    return;
  }
  if (log->failures++ == 0) {
    fprintf(stderr, "raft: the node log cannot be written (tried again every %d ms): %s\n",
            RETRY_MS, log->errmsg);
  }
  if (!log->retry_armed && !log->closing) {
    log->retry_armed = 1;
    uv_timer_start(&log->retry, retry_cb, RETRY_MS, 0);
  }
}

static void fire(das_raft_log* log);
static void maybe_closed(das_raft_log* log);

static void after_work_cb(uv_work_t* work, int status) {
  (void)status;
  das_raft_log* log = work->data;
  log->work_busy = 0;
  end_flush(log);
  fire(log);
  if (log->closing) {
    maybe_closed(log);
  } else if (!log->retry_armed) {
    start_flush(log);
  }
}

static void start_flush(das_raft_log* log) {
  if (log->work_busy || log->retry_armed || log->closing) return;
  log->flush = das_nlog_flush_begin(log->store);
  if (log->flush == NULL) return;
  log->work_busy = 1;
  log->writing = 1;
  log->work.data = log;
  if (uv_queue_work(log->loop, &log->work, work_cb, after_work_cb) != 0) {
    log->work_busy = 0;
    log->writing = 0;
    log->status = -EIO;
    snprintf(log->errmsg, sizeof log->errmsg, "uv_queue_work failed");
    end_flush(log);
  }
}

/* Everything recorded so far durable, on this thread: a write in flight first ends. */
int das_raft_log_sync(das_raft_log* log, char* errmsg) {
  pthread_mutex_lock(&log->mu);
  while (log->writing) pthread_cond_wait(&log->cv, &log->mu);
  pthread_mutex_unlock(&log->mu);
  end_flush(log);
  const int rv = das_nlog_sync(log->store, errmsg);
  if (rv != 0 && log->failures++ == 0) {
    fprintf(stderr, "raft: the node log cannot be written: %s\n", errmsg);
  }
  return rv;
}

static void prepare_cb(uv_prepare_t* prepare) { start_flush(prepare->data); }

/* ---- waiters ---- */

static void push(das_raft_log* log, waiter* w) {
  w->next = NULL;
  if (log->tail != NULL) {
    log->tail->next = w;
  } else {
    log->head = w;
  }
  log->tail = w;
}

static void call(waiter* w, int status) {
  switch (w->kind) {
    case WAIT_APPEND:
      w->cb.append(w->req, status);
      break;
    case WAIT_PUT:
      w->cb.put(w->req, status);
      break;
    default:
      w->cb.get(w->req, status == 0 ? w->snapshot : NULL, status);
      break;
  }
  free(w);
}

/* Takes the waiters `done` says are done out of the queue, in order (their callbacks may queue
 * new waiters: they run after the queue is whole again). */
static waiter* take(das_raft_log* log, int (*done)(const waiter*, const void*), const void* arg) {
  waiter* taken = NULL;
  waiter** taken_tail = &taken;
  waiter** link = &log->head;
  log->tail = NULL;
  while (*link != NULL) {
    waiter* w = *link;
    if (!done(w, arg)) {
      log->tail = w;
      link = &w->next;
      continue;
    }
    *link = w->next;
    w->next = NULL;
    if (w->kind == WAIT_GET) --log->gets;
    *taken_tail = w;
    taken_tail = &w->next;
  }
  return taken;
}

static int durable(const waiter* w, const void* arg) {
  return w->kind == WAIT_GET || w->lsn <= *(const uint64_t*)arg;
}

/* Runs the callbacks of the waiters that are done, in order. */
static void fire(das_raft_log* log) {
  const uint64_t at = das_nlog_durable(log->store);
  if (at == log->fired && log->gets == 0) return; /* each loop turn: nothing new is done */
  log->fired = at;
  waiter* w = take(log, durable, &at);
  while (w != NULL) {
    waiter* next = w->next;
    call(w, 0);
    w = next;
  }
}

static void check_cb(uv_check_t* check) { fire(check->data); }

/* A closing group's waiters are answered RAFT_CANCELED (what they wrote is written anyway). */
static int of_node(const waiter* w, const void* node) { return w->node == node; }

void das_raft_log_cancel(das_raft_log* log, das_raft_node* node) {
  waiter* w = take(log, of_node, node);
  while (w != NULL) {
    waiter* next = w->next;
    if (w->kind == WAIT_GET) das_node_free_snapshot(w->snapshot);
    call(w, RAFT_CANCELED);
    w = next;
  }
}

int das_raft_log_wait(das_raft_node* node, int kind, uint64_t lsn, void* req, void (*cb)(void),
                      struct raft_snapshot* snapshot) {
  waiter* w = calloc(1, sizeof *w);
  if (w == NULL) return RAFT_NOMEM;
  w->node = node;
  w->kind = kind;
  w->lsn = lsn;
  w->req = req;
  w->snapshot = snapshot;
  if (kind == WAIT_APPEND) w->cb.append = (raft_io_append_cb)cb;
  if (kind == WAIT_PUT) w->cb.put = (raft_io_snapshot_put_cb)cb;
  if (kind == WAIT_GET) {
    w->cb.get = (raft_io_snapshot_get_cb)cb;
    ++node->log->gets;
  }
  push(node->log, w);
  return 0;
}

das_nlog* das_raft_log_store(das_raft_log* log) { return log->store; }

/* ---- the log's life ---- */

int das_raft_log_open(uv_loop_t* loop, const char* dir, size_t segment_bytes, das_raft_log** out,
                      char* errmsg, size_t errmsg_len) {
  das_raft_log* log = calloc(1, sizeof *log);
  if (log == NULL) return -ENOMEM;
  char why[DAS_NLOG_ERRMSG] = {0};
  const int rv = das_nlog_open(dir, segment_bytes, &log->store, why);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "%s", why);
    free(log);
    return rv;
  }
  log->loop = loop;
  pthread_mutex_init(&log->mu, NULL);
  pthread_cond_init(&log->cv, NULL);
  uv_prepare_init(loop, &log->prepare);
  uv_check_init(loop, &log->check);
  uv_timer_init(loop, &log->retry);
  log->prepare.data = log->check.data = log->retry.data = log;
  log->handles_open = 3;
  uv_prepare_start(&log->prepare, prepare_cb);
  uv_check_start(&log->check, check_cb);
  *out = log;
  return 0;
}

int das_raft_log_drop(das_raft_log* log, uint64_t group_id, char* errmsg, size_t errmsg_len) {
  if (das_nlog_drop(log->store, group_id) == 0) return -ENOMEM;
  char why[DAS_NLOG_ERRMSG] = {0};
  const int rv = das_raft_log_sync(log, why);
  if (rv != 0) snprintf(errmsg, errmsg_len, "%s", why);
  return rv;
}

static void handle_closed(uv_handle_t* handle) {
  das_raft_log* log = handle->data;
  --log->handles_open;
  maybe_closed(log);
}

/* The last of the handles and the flush in flight frees the log. */
static void maybe_closed(das_raft_log* log) {
  if (log->handles_open > 0 || log->work_busy) return;
  char errmsg[DAS_NLOG_ERRMSG] = {0};
  if (das_nlog_sync(log->store, errmsg) != 0) {
    fprintf(stderr, "raft: the node log's last records are not written: %s\n", errmsg);
  }
  das_nlog_close(log->store);
  pthread_mutex_destroy(&log->mu);
  pthread_cond_destroy(&log->cv);
  das_raft_log_closed_cb cb = log->closed_cb;
  void* arg = log->closed_arg;
  free(log);
  if (cb != NULL) cb(arg);
}

void das_raft_log_close(das_raft_log* log, das_raft_log_closed_cb cb, void* arg) {
  log->closing = 1;
  log->closed_cb = cb;
  log->closed_arg = arg;
  uv_timer_stop(&log->retry);
  log->retry_armed = 0;
  uv_close((uv_handle_t*)&log->prepare, handle_closed);
  uv_close((uv_handle_t*)&log->check, handle_closed);
  uv_close((uv_handle_t*)&log->retry, handle_closed);
}
