#ifndef SC_STORE_H
#define SC_STORE_H

/*
 * The store: durable state in domain terms. The engine (one thread) owns the single write transaction;
 * reads marked `txn` see that transaction's uncommitted writes, other reads see committed state only and
 * may be called from any thread. RocksDB (store_rocksdb.c) is the embedded backend; the table of functions
 * is what a second backend implements.
 */

#include "common/arena.h"
#include "common/status.h"
#include "orchestrator_service.pb-c.h"
#include "taskhubd_store.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef Taskhubd__Store__StoredInstance StoredInstance;
typedef Taskhubd__Store__StoredMsg StoredMsg;
typedef Taskhubd__Store__StoredTimer StoredTimer;
typedef Taskhubd__Store__StoredActivity StoredActivity;

struct sc_store;

enum sc_query_index { SC_Q_CREATED = 0, SC_Q_COMPLETED = 1 };

struct sc_query {
  enum sc_query_index index;   /* SC_Q_CREATED: QueryInstances; SC_Q_COMPLETED: terminal, by completion */
  const int *statuses;         /* any of; none = all */
  size_t n_statuses;
  bool has_from, has_to;       /* [from, to) on the index's time */
  int64_t from_us, to_us;
  const char *prefix;          /* instance id prefix, NULL or "" for none */
  size_t page_size;
  /* Entries examined (matching or not) before the page ends early; 0: SC_QUERY_DEFAULT_SCAN. A page cut short
   * by it may hold fewer rows, or none, and still carries a cursor, which resumes after the last entry
   * examined. So one page costs a bounded amount of work however selective the filter is. */
  size_t max_scan;
  const unsigned char *cursor; /* from the previous page, or NULL */
  size_t cursor_len;
};

#define SC_QUERY_DEFAULT_SCAN 5000

struct sc_query_row {
  char *iid;
  StoredInstance *rec;
};

/*
 * A page of query results. next_cursor is NULL only when nothing follows; otherwise it is strictly greater, in
 * the query's order, than the cursor the page was asked with, so a cursor never repeats.
 */
struct sc_query_page {
  struct sc_query_row *rows;
  size_t n;
  unsigned char *next_cursor; /* NULL on the last page */
  size_t next_cursor_len;
};

/* A slice of an instance's committed history and its record, read in one consistent view. */
struct sc_history_slice {
  StoredInstance *rec;
  /* Identifies the history as a whole: it changes whenever the history is replaced (continue-as-new, rewind;
   * history_clear) and never while it only grows. With the record's execution id and created time it tells
   * a reader whether two slices belong to the same history. */
  uint64_t generation;
  HistoryEvent **events;
  size_t n;
  size_t bytes; /* encoded size of the events */
};

struct sc_inbox_msg {
  int band;
  uint64_t seq;
  StoredMsg *msg;
};

struct sc_timer_row {
  int64_t due_us;
  uint64_t seq;
  StoredTimer *timer;
};

typedef int (*sc_timer_fn)(const struct sc_timer_row *row, void *ctx);
typedef int (*sc_child_fn)(const char *child_iid, void *ctx);
typedef int (*sc_seq_fn)(uint64_t seq, void *ctx);

struct sc_store_ops {
  void (*close)(struct sc_store *s);

  /* The write transaction. */
  void (*txn_reset)(struct sc_store *s);
  size_t (*txn_size)(struct sc_store *s); /* operations buffered */
  int (*txn_commit)(struct sc_store *s, bool sync, struct sc_err *err);
  void (*txn_savepoint)(struct sc_store *s);
  void (*txn_rollback)(struct sc_store *s);
  uint64_t (*next_seq)(struct sc_store *s); /* persisted with the transaction */

  /* Instances. get returns SC_ENOTFOUND when absent; results are allocated from |a|. */
  int (*get_instance)(struct sc_store *s, bool txn, const char *iid,
                      struct sc_arena *a, StoredInstance **out);
  /* Writes |rec| and moves its index entries from |old| (NULL when new). */
  int (*put_instance)(struct sc_store *s, const char *iid,
                      const StoredInstance *rec, const StoredInstance *old);
  /* Deletes the record, payloads, history, inbox and index entries of |iid|. */
  int (*delete_instance)(struct sc_store *s, const char *iid,
                         const StoredInstance *old);

  int (*get_payload)(struct sc_store *s, bool txn, const char *iid, int kind,
                     struct sc_arena *a, char **data, size_t *len);
  /* data == NULL deletes. */
  int (*put_payload)(struct sc_store *s, const char *iid, int kind,
                     const char *data, size_t len);

  int (*history_append)(struct sc_store *s, const char *iid, uint32_t index,
                        const HistoryEvent *ev);
  /* Empties the history before it is replaced, and gives it a new generation (see sc_history_slice). */
  int (*history_clear)(struct sc_store *s, const char *iid);
  int (*history_load)(struct sc_store *s, bool txn, const char *iid,
                      struct sc_arena *a, HistoryEvent ***out, size_t *n);
  /*
   * Committed state, for readers that must not hold a whole history (StreamInstanceHistory): events
   * |from|, |from|+1, ... in order, at most |max_events| of them and, after the first, no more than
   * |max_bytes| of encoded events (a larger first event comes alone), together with the instance record and
   * the history's generation as of the same moment. Fewer than |max_events| come only at the end of the
   * history or when the next event would pass |max_bytes|. SC_ENOTFOUND when the instance does not exist.
   * Results are allocated from |a|; any thread.
   */
  int (*history_range)(struct sc_store *s, const char *iid, uint32_t from,
                       size_t max_events, size_t max_bytes,
                       struct sc_arena *a, struct sc_history_slice *out);

  int (*inbox_append)(struct sc_store *s, const char *iid, int band,
                      uint64_t seq, const StoredMsg *m);
  int (*inbox_delete)(struct sc_store *s, const char *iid, int band,
                      uint64_t seq);
  int (*inbox_clear)(struct sc_store *s, const char *iid);
  int (*inbox_load)(struct sc_store *s, bool txn, const char *iid,
                    struct sc_arena *a, struct sc_inbox_msg **out, size_t *n);
  /* How many messages wait in |iid|'s inbox and their stored bytes, as the transaction sees them; counting
   * stops once |max_count| are found. */
  int (*inbox_stats)(struct sc_store *s, const char *iid, size_t max_count, size_t *count, size_t *bytes);

  int (*timer_put)(struct sc_store *s, int64_t due_us, uint64_t seq,
                   const StoredTimer *t);
  int (*timer_delete)(struct sc_store *s, int64_t due_us, uint64_t seq);
  /* Reads one timer as the transaction sees it; SC_ENOTFOUND when absent. */
  int (*timer_get)(struct sc_store *s, int64_t due_us, uint64_t seq,
                   struct sc_arena *a, StoredTimer **out);
  /* Committed timers in due order; the callback's rows live until it returns. Used at start-up. */
  int (*timer_scan)(struct sc_store *s, sc_timer_fn fn, void *ctx);

  int (*children)(struct sc_store *s, bool txn, const char *parent,
                  sc_child_fn fn, void *ctx);

  /* The activity queue. */
  int (*actq_put)(struct sc_store *s, uint64_t seq, const StoredActivity *a);
  int (*actq_delete)(struct sc_store *s, uint64_t seq);
  int (*actq_get)(struct sc_store *s, bool txn, uint64_t seq,
                  struct sc_arena *a, StoredActivity **out);
  /* Start-up scans of committed state: queued activities in order, and every instance with inbox messages. */
  int (*actq_scan)(struct sc_store *s, sc_seq_fn fn, void *ctx);
  int (*inbox_scan_instances)(struct sc_store *s, sc_child_fn fn, void *ctx);

  /* Committed state; a page of results allocated from |a|, consistent within the page. Any thread. The work
   * per page is bounded by page_size and max_scan. */
  int (*query)(struct sc_store *s, const struct sc_query *q,
               struct sc_arena *a, struct sc_query_page *out,
               struct sc_err *err);

  /* Deletes every record (DeleteTaskHub) and discards the transaction; commits on its own, atomically and
   * synced: after a crash the store is either untouched or empty. The sequence counter carries on (it never
   * goes back), so sequence numbers stay unique across the wipe. */
  int (*wipe)(struct sc_store *s, struct sc_err *err);

  /* A numeric property for metrics and tests (e.g. "rocksdb.estimate-num-keys"), or -1. */
  int64_t (*property)(struct sc_store *s, const char *name);
};

struct sc_store {
  const struct sc_store_ops *ops;
};

/* Opens (creating if needed) the RocksDB store in |dir|. Refuses a newer schema with a message in |err|. */
int sc_store_open_rocksdb(const char *dir, struct sc_store **out,
                          struct sc_err *err);
/* Sets the byte budget of a RocksDB store's hot-instance cache (default SC_HOT_DEFAULT_BUDGET). */
void sc_store_rocksdb_cache(struct sc_store *s, size_t bytes);
#define SC_HOT_DEFAULT_BUDGET ((size_t)16 << 20)

static inline void sc_store_close(struct sc_store *s)
{
  if (s)
    s->ops->close(s);
}

/* Shorthand for the instance-record helpers shared by the engine and the transport. */
static inline bool sc_status_is_terminal(int st)
{
  return st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED ||
         st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED ||
         st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED ||
         st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CANCELED;
}

#endif
