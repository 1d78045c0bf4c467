#ifndef SC_PG_H
#define SC_PG_H

/*
 * Inside the PostgreSQL backend: the handle and the helpers its files share. open.c connects, applies the schema
 * and keeps the connections (one for the writer, a small pool for readers on any thread); read.c serves committed
 * reads, query.c pages through instances, apply.c writes a change set as one transaction, pipelined into one
 * round trip. Every statement is prepared once per connection and exchanges binary values, so ids and payloads
 * are never quoted or escaped. The tables are in schema.c.
 */

#include "store/store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define SC_PG_POOL 4

struct sc_pgconn {
  PGconn *c;
  bool busy;
};

struct pgstore {
  struct sc_store base;
  char *conninfo;
  struct sc_pgconn writer;
  pthread_mutex_t mu; /* the readers' pool */
  pthread_cond_t cv;
  struct sc_pgconn pool[SC_PG_POOL];
  uint64_t next_seq; /* as persisted by the last apply or wipe */

  /* Partition ownership (owner.c). */
  char owner[256];         /* this replica's name in th_partition and th_replica */
  int64_t lease_ms;
  int partitions;
  bool exclusive;          /* a tool holding every partition (migrate), not a replica sharing them */
  bool (*stop)(void);
  _Atomic int64_t epoch[SC_MAX_PARTITIONS];   /* at which each partition is this replica's; 0: not owned */
  atomic_bool releasing[SC_MAX_PARTITIONS];   /* the engine was asked to let it go */
  atomic_bool workers;       /* a worker is connected here: this replica should get a share */
  _Atomic int64_t idle_since_us; /* when the last worker left (0: one is connected, or none ever was) */
  atomic_bool fenced;        /* another replica took a partition of ours: nothing more may be committed */
  atomic_bool stop_lease;
  atomic_uint owned_gen;     /* bumped whenever a partition is taken or a commit fails: the listener hands every
                              * waiting message of the owned partitions to the engine again */
  const struct sc_store_events *ev;
  bool lease_running;
  pthread_t lease_thread;
  pthread_mutex_t lease_mu;
  pthread_cond_t lease_cv;
  PGconn *lease_conn;

  /* Messages between replicas (listen.c). */
  bool listen_running;
  pthread_t listen_thread;
  PGconn *listen_conn;
};

#define PG(s) ((struct pgstore *)(s))

/* The statements every connection prepares, by name. */
enum sc_pg_stmt {
  PS_GET_INSTANCE,
  PS_GET_PAYLOAD,
  PS_HISTORY_LOAD,
  PS_HISTORY_RANGE,
  PS_INBOX_LOAD,
  PS_TIMER_GET,
  PS_ACTQ_GET,
  PS_CHILDREN,
  PS_TIMER_SCAN,
  PS_ACTQ_SCAN,
  PS_INBOX_SCAN,
  PS_PUT_INSTANCE,
  PS_DELETE_INSTANCE,
  PS_ORPHAN_CHILDREN,
  PS_PUT_PAYLOAD,
  PS_DELETE_PAYLOAD,
  PS_HISTORY_APPEND,
  PS_HISTORY_CLEAR,
  PS_INBOX_PUT,
  PS_INBOX_DELETE,
  PS_INBOX_CLEAR,
  PS_TIMER_PUT,
  PS_TIMER_DELETE,
  PS_ACTQ_PUT,
  PS_ACTQ_DELETE,
  PS_SET_SEQ,
  PS_FENCE,
  PS_FORWARD,
  PS_FORWARD_DONE,
  PS_REPLY,
  PS_NOTIFY,
  PS_SEQ_BLOCK,
  PS_GET_ENTITY,
  PS_PUT_ENTITY,
  PS_DELETE_ENTITY,
  PS_FENCE_LOCK,
  PS_COUNT
};

extern const char *const sc_pg_sql[PS_COUNT];

/* The tables, created or migrated in one transaction under an advisory lock. */
int sc_pg_migrate(PGconn *c, uint64_t *next_seq, int *partitions, struct sc_err *err);

/* Binary parameters of one statement. */
#define SC_PG_MAX_PARAMS 12
struct sc_pgparams {
  int n;
  const char *v[SC_PG_MAX_PARAMS];
  int len[SC_PG_MAX_PARAMS];
  int fmt[SC_PG_MAX_PARAMS];
  unsigned char num[SC_PG_MAX_PARAMS][8];
};

void sc_pg_text(struct sc_pgparams *p, const char *s);
void sc_pg_bytes(struct sc_pgparams *p, const void *b, size_t n);
void sc_pg_i64(struct sc_pgparams *p, int64_t v);
void sc_pg_i32(struct sc_pgparams *p, int32_t v);
void sc_pg_bool(struct sc_pgparams *p, bool v);
void sc_pg_null(struct sc_pgparams *p);

/* Partitions and their epochs as two array literals ("{1,5}" and "{7,9}"), for the ownership statements. */
struct sc_pg_parts {
  int n;
  size_t a, b;
  char parts[SC_MAX_PARTITIONS * 6 + 3];
  char eps[SC_MAX_PARTITIONS * 21 + 3];
};
void sc_pg_parts_init(struct sc_pg_parts *l);
void sc_pg_parts_add(struct sc_pg_parts *l, int part, int64_t epoch);
/* The owned partitions (that are not being let go, with |settled|). */
void sc_pg_parts_owned(struct pgstore *s, bool settled, struct sc_pg_parts *l);

/* Binary results. */
int64_t sc_pg_get_i64(const PGresult *r, int row, int col);
int32_t sc_pg_get_i32(const PGresult *r, int row, int col);

/* A reader's connection from the pool (waits for one), and its return. NULL when none can connect. */
struct sc_pgconn *sc_pg_acquire(struct pgstore *s);
void sc_pg_release(struct pgstore *s, struct sc_pgconn *c);

/* Runs a prepared statement, binary in and out; reconnects once when the connection was lost. NULL on failure
 * (logged). The caller PQclear()s the result. */
PGresult *sc_pg_exec(struct sc_pgconn *c, enum sc_pg_stmt st, const struct sc_pgparams *p, const char *what);
/* Partition ownership (owner.c). A tool (exclusive) waits until it holds every partition; a replica's lease
 * thread takes its share, renews it, and asks the engine to let go of what is over its share; stopping hands
 * every partition over. */
int sc_pg_take_all(struct pgstore *s, struct sc_err *err);
void sc_pg_lease_start(struct pgstore *s);
void sc_pg_lease_stop(struct pgstore *s);
void sc_pg_release_part(struct sc_store *st, int part);
void sc_pg_set_workers(struct sc_store *st, bool any);
/* The partition of |iid| in this task hub. */
int sc_pg_part_of(const struct pgstore *s, const char *iid);
/* Messages between replicas (listen.c): a thread LISTENing for forwarded commands, answers and changes. */
void sc_pg_listen_start(struct pgstore *s);
void sc_pg_listen_stop(struct pgstore *s);
/* Partitions were taken: the listener reads their incoming rows now rather than at the next sweep. */
void sc_pg_listen_poke(struct pgstore *s);
/* A new connection whose server notices go to the log. */
PGconn *sc_pg_open(const char *conninfo);
/* Prepares every statement of sc_pg_sql on |c| (after a connect or a reset). */
bool sc_pg_prepare(PGconn *c, struct sc_err *err);
/* Opens |c| (connects and prepares); SC_OK or SC_EIO with the reason in |err|. */
int sc_pg_connect(struct pgstore *s, struct sc_pgconn *c, struct sc_err *err);

/* The operations, by file. */
int sc_pg_get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob *out);
int sc_pg_get_payload(struct sc_store *s, const char *iid, int kind, struct sc_arena *a, char **data, size_t *len);
int sc_pg_history_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob **out, size_t *n);
int sc_pg_history_range(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
                        struct sc_arena *a, struct sc_history_slice *out);
int sc_pg_inbox_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_blob **out,
                     size_t *n);
int sc_pg_timer_get(struct sc_store *s, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out);
int sc_pg_actq_get(struct sc_store *s, uint64_t seq, struct sc_arena *a, StoredActivity **out);
int sc_pg_children(struct sc_store *s, const char *parent, sc_child_fn fn, void *ctx);
int sc_pg_timer_scan(struct sc_store *s, int part, sc_timer_fn fn, void *ctx);
int sc_pg_actq_scan(struct sc_store *s, int part, sc_seq_fn fn, void *ctx);
int sc_pg_inbox_scan_instances(struct sc_store *s, int part, sc_child_fn fn, void *ctx);
int sc_pg_get_entity(struct sc_store *s, const char *id, struct sc_arena *a, struct sc_blob *out);
int sc_pg_query_entities(struct sc_store *s, const struct sc_entity_query *q, struct sc_arena *a,
                         struct sc_entity_page *out, struct sc_err *err);
int sc_pg_count_entities(struct sc_store *s, uint64_t *with_state, uint64_t *transient, uint64_t *queued,
                         struct sc_err *err);
int sc_pg_count_by_status(struct sc_store *s, uint64_t counts[8], struct sc_err *err);
int sc_pg_query(struct sc_store *s, const struct sc_query *q, struct sc_arena *a, struct sc_query_page *out,
                struct sc_err *err);
int sc_pg_apply(struct sc_store *s, const struct sc_changes *ch, bool sync, struct sc_err *err);
int sc_pg_wipe(struct sc_store *s, uint64_t next_seq, struct sc_err *err);

#endif
