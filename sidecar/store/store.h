#ifndef SC_STORE_H
#define SC_STORE_H

/*
 * A store backend: committed state, read from any thread, and atomic change sets, applied by the engine's one
 * thread. The engine never talks to a backend directly: it works through a transaction (txn.h), which keeps
 * what the transaction wrote (so the engine reads its own writes), the hot-instance cache, save points, and
 * turns the transaction into one change set at commit. A backend therefore needs no transactions of its own:
 * RocksDB writes a change set as one WriteBatch; a database applies it in one transaction.
 *
 * What a backend may rely on:
 *  - One writer. apply, wipe and seq_start are called from one thread, one at a time; reads may run
 *    concurrently with them on any thread.
 *  - Instance ids hold no NUL or control byte and are at most SC_MAX_ID bytes; names and payloads are valid
 *    UTF-8 (the limits layer checks everything from outside).
 *  - Changes come in the order the engine made them and must be applied in that order: a history cleared and
 *    appended to in one change set ends with the appended events only.
 *  - Event i of a history is stored under index i, without gaps; appends come in index order.
 *  - A change set's sequence numbers (inbox, timers, activities, history generations) come from seq_start and
 *    only grow; apply persists the next one (`next_seq`) with the change set.
 * What a backend must guarantee:
 *  - apply is all or nothing, and durable when it returns SC_OK with |sync| set.
 *  - Reads see only applied change sets, each whole; a read that returns several things (a query page, a history
 *    slice with its record) sees them as of one moment.
 *  - Errors are sc_status codes: SC_ENOTFOUND for a missing thing, SC_ECORRUPT for a record that does not
 *    decode, SC_EIO for the backend failing; messages go to the log.
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
typedef Taskhubd__Store__StoredEntity StoredEntity;

/* Longest instance id a backend must store (--max-id-length is capped at this). */
#define SC_MAX_ID 1024

enum sc_payload_kind { SC_PAYLOAD_INPUT = 1, SC_PAYLOAD_OUTPUT = 2, SC_PAYLOAD_CUSTOM_STATUS = 3 };

/* Inbox bands: band 0 (ExecutionStarted, carried-over events) is read before band 1 (everything else). */
enum { SC_BAND_START = 0, SC_BAND_NORMAL = 1 };

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
  /* Walk the index backwards: newest first by time, or ids in reverse order under a prefix. The cursor is still
   * the last entry returned (or examined); the next page holds the entries strictly before it. */
  bool descending;
};

#define SC_QUERY_DEFAULT_SCAN 5000
/*
 * Query cursors have one shape for every backend, so that the transport can cut a page short and tokens stay
 * valid when a task hub moves between stores: for prefix queries the instance id of the last entry; for index
 * queries that entry's time (8 bytes: microseconds, big-endian, sign bit flipped, so byte order is time order)
 * followed by its instance id.
 */
#define SC_CURSOR_MAX (2 * SC_MAX_ID + 32)

static inline void sc_cursor_put_time(unsigned char out[8], int64_t us)
{
  uint64_t v = (uint64_t)us ^ (1ULL << 63);
  for (int i = 7; i >= 0; i--, v >>= 8)
    out[i] = (unsigned char)v;
}

static inline int64_t sc_cursor_get_time(const unsigned char in[8])
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | in[i];
  return (int64_t)(v ^ (1ULL << 63));
}

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
   * SC_CH_HISTORY_CLEAR) and never while it only grows. With the record's execution id and created time it
   * tells a reader whether two slices belong to the same history. */
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

/* Encoded records as the backend holds them: what the transaction layer caches without decoding twice. */
struct sc_blob {
  uint8_t *b;
  size_t len;
};

struct sc_inbox_blob {
  int band;
  uint64_t seq;
  struct sc_blob msg; /* a packed StoredMsg */
};

struct sc_timer_row {
  int64_t due_us;
  uint64_t seq;
  StoredTimer *timer;
};

typedef int (*sc_timer_fn)(const struct sc_timer_row *row, void *ctx);
typedef int (*sc_child_fn)(const char *child_iid, void *ctx);
typedef int (*sc_seq_fn)(uint64_t seq, void *ctx);

/* ------------------------------------------------------------------ partitions */

/*
 * A task hub's instances are spread over partitions by a stable hash of their id (FNV-1a modulo the partition
 * count, fixed when the task hub was created), so an instance never changes partition. A partition has one
 * owner replica at a time, whose engine is its only writer. RocksDB has one partition, always owned.
 */
static inline int sc_part_of(const char *iid, int partitions)
{
  if (partitions <= 1)
    return 0; /* RocksDB: asked on every dispatch, nothing to hash */
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)iid; *p; p++)
    h = (h ^ *p) * 16777619u;
  return (int)(h % (uint32_t)partitions);
}

/* QueryEntities and CleanEntityStorage: entity records whose id starts with |prefix| (NULL: any), strictly after
 * |after| (NULL: from the start), last modified within [from_us, to_us) when has_from/has_to; with
 * !include_transient, only those with state. At most page_size rows and max_scan records examined: a page may
 * end early, with next_after set, so a query never scans the whole table in one call. */
struct sc_entity_query {
  const char *prefix;
  const char *after;
  bool has_from, has_to;
  int64_t from_us, to_us;
  bool include_transient;
  size_t page_size;
  size_t max_scan; /* 0: page_size * 100 */
};

struct sc_entity_row {
  char *id;
  struct sc_blob rec;   /* a packed StoredEntity */
  uint32_t backlog;     /* messages in its queue */
};

struct sc_entity_page {
  struct sc_entity_row *rows;
  size_t n;
  char *next_after; /* NULL: nothing follows */
};

/* Entity ids are "@name@key"; orchestration instance ids may not start with '@'. */
static inline bool sc_is_entity_id(const char *id)
{
  return id && id[0] == '@';
}

/* The most partitions a task hub can have. */
#define SC_MAX_PARTITIONS 1024

/*
 * What a store with several replicas tells the engine, from threads of its own; each callback only posts to the
 * engine. gained: this replica now owns |part| (the engine loads its work before anything else touches it).
 * release: the replicas' share changed and |part| should go to another; the engine stops using it and calls
 * ops->release. incoming: a Forward for an owned partition (|id| to mark done in the commit that applies it).
 * reply: the answer to a Forward this replica sent. changed: instances whose status changed somewhere (NULL:
 * any may have, e.g. after notifications were lost): waiters re-read them.
 */
struct sc_store_events {
  void *ctx;
  void (*gained)(void *ctx, int part);
  void (*release)(void *ctx, int part);
  void (*incoming)(void *ctx, int part, uint64_t id, const uint8_t *body, size_t len);
  void (*reply)(void *ctx, uint64_t id, const uint8_t *body, size_t len);
  void (*changed)(void *ctx, const char *iids); /* newline-separated, or NULL for all */
};

/* ------------------------------------------------------------------ change sets */

enum sc_change_kind {
  SC_CH_PUT_INSTANCE,    /* iid, rec (+ val: rec packed), old (NULL: new): index entries move from old to rec */
  SC_CH_DELETE_INSTANCE, /* iid, old: its record, payloads, history (old->history_count events), inbox (keys, when
                          * known) and index entries */
  SC_CH_PUT_PAYLOAD,     /* iid, kind, val (NULL: delete the payload) */
  SC_CH_HISTORY_APPEND,  /* iid, index, val: a packed HistoryEvent */
  SC_CH_HISTORY_CLEAR,   /* iid, seq: the history's new generation; index: events it held, or UINT32_MAX unknown */
  SC_CH_INBOX_PUT,       /* iid, band, seq, val: a packed StoredMsg */
  SC_CH_INBOX_DELETE,    /* iid, band, seq */
  SC_CH_INBOX_CLEAR,     /* iid; keys: the messages it held, when known */
  SC_CH_TIMER_PUT,       /* iid, due_us, seq, val: a packed StoredTimer (iid: the instance it belongs to) */
  SC_CH_TIMER_DELETE,    /* iid, due_us, seq */
  SC_CH_ACTQ_PUT,        /* iid, seq, val: a packed StoredActivity */
  SC_CH_ACTQ_DELETE,     /* iid, seq */
  SC_CH_PUT_ENTITY,      /* iid: an entity id, val: a packed StoredEntity (NULL: delete the record) */
  /* Between partitions (a store with one partition never sees these): */
  SC_CH_FORWARD,         /* band: the target partition, seq: a fresh sequence number (the row's id), val: a
                          * packed Forward for that partition's owner */
  SC_CH_FORWARD_DONE,    /* band: the partition, seq: the id of a Forward its owner applied in this change set */
  SC_CH_REPLY,           /* iid: the replica that forwarded, seq: its reply id, val: a packed ForwardReply */
};

struct sc_inbox_key {
  int band;
  uint64_t seq;
};

struct sc_change {
  enum sc_change_kind kind;
  const char *iid;
  int band;         /* inbox band, or payload kind */
  uint32_t index;   /* history index */
  uint64_t seq;
  int64_t due_us;
  const uint8_t *val;
  size_t len;
  /* Txn-owned decoded copies. A record's history_count is the number of events its history holds (the engine
   * keeps it so), which a backend may use to delete them. */
  const StoredInstance *rec, *old;
  const StoredEntity *ent; /* SC_CH_PUT_ENTITY with a value: the record, decoded */
  /* Clearing an inbox (SC_CH_INBOX_CLEAR, SC_CH_DELETE_INSTANCE): when keys_known, exactly the messages it holds
   * at that point (a backend may delete them one by one); otherwise the backend deletes whatever is there. */
  bool keys_known;
  const struct sc_inbox_key *keys;
  size_t nkeys;
};

struct sc_changes {
  const struct sc_change *v;
  size_t n;
  uint64_t next_seq; /* persisted with the change set: the next seq_start */
};

struct sc_store_ops {
  void (*close)(struct sc_store *s);

  /* ---- committed state; results allocated from |a|; any thread ---- */

  /* The packed record; SC_ENOTFOUND when absent (sc_store_get_instance decodes it). */
  int (*get_instance)(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob *out);
  /* SC_ENOTFOUND when absent; *data is NUL-terminated. */
  int (*get_payload)(struct sc_store *s, const char *iid, int kind, struct sc_arena *a, char **data, size_t *len);
  /* The whole history as packed events, event i at index i (empty when there is none). */
  int (*history_load)(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob **out, size_t *n);
  /*
   * For readers that must not hold a whole history (StreamInstanceHistory): events |from|, |from|+1, ... in
   * order, at most |max_events| of them and, after the first, no more than |max_bytes| of encoded events (a
   * larger first event comes alone), together with the instance record and the history's generation as of the
   * same moment. Fewer than |max_events| come only at the end of the history or when the next event would pass
   * |max_bytes|. SC_ENOTFOUND when the instance does not exist.
   */
  int (*history_range)(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
                       struct sc_arena *a, struct sc_history_slice *out);
  /* The inbox in key order (band, then seq), packed. */
  int (*inbox_load)(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_blob **out, size_t *n);
  int (*timer_get)(struct sc_store *s, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out);
  int (*actq_get)(struct sc_store *s, uint64_t seq, struct sc_arena *a, StoredActivity **out);
  /* The instances whose record names |parent| as parent. */
  int (*children)(struct sc_store *s, const char *parent, sc_child_fn fn, void *ctx);
  /* Scans when a partition is taken (|part|, or -1 for all): its timers in due order (rows live until the
   * callback returns), its queued activities in order, its instances with inbox messages. */
  int (*timer_scan)(struct sc_store *s, int part, sc_timer_fn fn, void *ctx);
  int (*actq_scan)(struct sc_store *s, int part, sc_seq_fn fn, void *ctx);
  int (*inbox_scan_instances)(struct sc_store *s, int part, sc_child_fn fn, void *ctx);
  /* A page of results, consistent within the page. The work per page is bounded by page_size and max_scan. */
  int (*query)(struct sc_store *s, const struct sc_query *q, struct sc_arena *a, struct sc_query_page *out,
               struct sc_err *err);

  /* ---- entities ---- */

  /* The packed StoredEntity of entity |id|, its bytes allocated from |a|; SC_ENOTFOUND when it has no record. */
  int (*get_entity)(struct sc_store *s, const char *id, struct sc_arena *a, struct sc_blob *out);
  /* A page of entity records in id order, each with the messages waiting in its queue. */
  int (*query_entities)(struct sc_store *s, const struct sc_entity_query *q, struct sc_arena *a,
                        struct sc_entity_page *out, struct sc_err *err);

  /* Entity records with state, without (transient), and the operations queued for entities: for metrics. */
  int (*count_entities)(struct sc_store *s, uint64_t *with_state, uint64_t *transient, uint64_t *queued,
                        struct sc_err *err);

  /* How many instances have each status (index: the OrchestrationStatus number, 0..7), committed. A scan of
   * the status index: for metrics scraped every few seconds, not for every call. */
  int (*count_by_status)(struct sc_store *s, uint64_t counts[8], struct sc_err *err);

  /* ---- the writer ---- */

  /* A sequence number greater than every one used before by any replica; the transaction counts on from it.
   * Asked at start and whenever a partition is taken (its previous owner counted on its own). */
  uint64_t (*seq_start)(struct sc_store *s);
  /* Applies the change set atomically (see the guarantees above); durable on return when |sync|. */
  int (*apply)(struct sc_store *s, const struct sc_changes *ch, bool sync, struct sc_err *err);
  /* Deletes every record (DeleteTaskHub); atomic and synced: after a crash the store is either untouched or
   * empty. The sequence counter is set to |next_seq| (it never goes back). */
  int (*wipe)(struct sc_store *s, uint64_t next_seq, struct sc_err *err);

  /* ---- partitions ---- */

  /* The task hub's partition count (1 for RocksDB). */
  int (*partitions)(struct sc_store *s);
  /* Starts telling |ev| about ownership and messages. A store with one partition calls gained(0) at once. */
  void (*attach)(struct sc_store *s, const struct sc_store_events *ev);
  /* Stops calling ev and hands the partitions back; when it returns, no callback runs or will run, so the
   * engine behind ev may go. Idempotent; close does it too. */
  void (*detach)(struct sc_store *s);
  /* The engine no longer uses |part|: another replica may take it now. Writer thread. */
  void (*release)(struct sc_store *s, int part);
  /* Whether a worker is connected to this replica (replicas with workers get the partitions). */
  void (*set_workers)(struct sc_store *s, bool any);

  /* Whether the store can still make writes durable (RocksDB: its directory is still the one it opened); NULL:
   * nothing to check. Called about once a second. */
  int (*check)(struct sc_store *s, struct sc_err *err);

  /* A numeric property for metrics and tests (e.g. "rocksdb.estimate-num-keys"), or -1. */
  int64_t (*property)(struct sc_store *s, const char *name);
};

struct sc_store {
  const struct sc_store_ops *ops;
};

/* Opens (creating if needed) the RocksDB store in |dir|. Refuses a newer schema with a message in |err|. */
int sc_store_open_rocksdb(const char *dir, struct sc_store **out, struct sc_err *err);
struct sc_pg_options {
  const char *conninfo; /* a URI or conninfo */
  int wait_s;           /* how long to wait for PostgreSQL to accept connections */
  const char *owner;    /* this replica's name among the replicas (unique among them) */
  int64_t lease_ms;     /* partition lease: a stalled replica's partitions move after this */
  bool (*stop)(void);   /* asked while waiting (for the server, for the partitions): true gives up, SC_ECANCELLED */
  bool exclusive;       /* take every partition and wait for them (a tool such as migrate, not a replica) */
};

/* Connects to PostgreSQL, creates or migrates the tables (refusing a newer schema with a message in |err|), and
 * waits until this replica owns the task hub's partitions (a standby waits here). */
int sc_store_open_postgres(const struct sc_pg_options *o, struct sc_store **out, struct sc_err *err);

static inline int sc_store_check(struct sc_store *s, struct sc_err *err)
{
  return s->ops->check ? s->ops->check(s, err) : SC_OK;
}

static inline void sc_store_close(struct sc_store *s)
{
  if (s)
    s->ops->close(s);
}

/* The committed record of |iid|, decoded into |a|; SC_ENOTFOUND when absent. */
int sc_store_get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, StoredInstance **out);
/* The committed history and inbox of |iid|, decoded into |a|. */
int sc_store_history(struct sc_store *s, const char *iid, struct sc_arena *a, HistoryEvent ***out, size_t *n);
int sc_store_inbox(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_msg **out, size_t *n);
/* Decodes a packed record into |a|; SC_ECORRUPT (logged) when it does not decode. */
int sc_store_unpack(const ProtobufCMessageDescriptor *d, const struct sc_blob *b, struct sc_arena *a, void **out);

/* Shorthand for the instance-record helpers shared by the engine and the transport. */
static inline bool sc_status_is_terminal(int st)
{
  return st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED ||
         st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED ||
         st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED ||
         st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CANCELED;
}

#endif
