#ifndef SC_ROCKS_H
#define SC_ROCKS_H

/*
 * Inside the RocksDB backend: the handle and the helpers its files share. open.c opens and closes the database,
 * read.c serves committed reads, query.c pages through the indexes, apply.c writes a change set as one
 * WriteBatch. Keys are laid out in keys.h.
 */

#include "keys.h"
#include "store/store.h"

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct rstore {
  struct sc_store base;
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_column_family_handle_t *cf[SC_CF_COUNT];
  rocksdb_column_family_handle_t **all_cf; /* including ones a newer version created */
  int n_all_cf;
  rocksdb_writeoptions_t *wo_sync, *wo_nosync;
  rocksdb_readoptions_t *ro;
  rocksdb_writebatch_t *wb; /* reused by every apply */
  uint64_t next_seq;        /* as persisted by the last apply or wipe */
  char *dir;                /* as opened, with the identity it had then: */
  dev_t dir_dev;            /* a directory removed (or replaced) under us takes every later write with it */
  ino_t dir_ino;
  /* After a failed write RocksDB takes no more writes until it is opened again (reopen.c): |db| is replaced
   * under the write lock, every operation holds the read lock. */
  pthread_rwlock_t lock;
  bool failed;              /* a write failed; the next apply reopens the database first */
  int fail_code;            /* why: SC_ENOSPACE (the disk is full) or SC_EIO */
  bool read_only;           /* reopened read-only (opening read-write failed): reads go on, writes wait */
  int64_t last_reopen_us;   /* monotonic: reopening is tried at most once a second */
};

/* Opens the database in r->dir with r->opts (read-only when asked): every column family present, r->cf and
 * r->all_cf set. A corrupt write-ahead log refuses to open, and the message names the log files. */
int sc_rocks_open_db(struct rstore *r, bool read_only, struct sc_err *err);
/* Closes the database handles (without flushing: the database may be refusing writes). */
void sc_rocks_close_db(struct rstore *r);
/* The operations table: every operation under r->lock (reopen.c). */
extern const struct sc_store_ops sc_rocks_ops;
/* Before a write: a database that refused one is opened again (when the disk seems to have room), so writes
 * resume without a restart. SC_OK when it takes writes. Writer thread. */
int sc_rocks_writable(struct rstore *r, struct sc_err *err);

/* SC_OK while |r|'s directory is the one it opened; SC_EIO with the reason otherwise. */
int sc_rocks_check_dir(struct rstore *r, struct sc_err *err);

#define RS(s) ((struct rstore *)(s))

/* The one place RocksDB error strings become our status (and a log line); frees |rerr|. A corruption is
 * SC_ECORRUPT, a full disk SC_ENOSPACE, anything else SC_EIO. */
int sc_rocks_status(char *rerr, struct sc_err *err, const char *what);

/* Reads one value with |ro|; *val is malloc'd by RocksDB (rocksdb_free) or NULL when absent. */
int sc_rocks_get(struct rstore *r, int cf, const struct sc_key *k, const rocksdb_readoptions_t *ro, char **val,
                 size_t *len);

/* Decodes into |a|; SC_ECORRUPT (logged) when it does not decode. */
int sc_rocks_unpack(const ProtobufCMessageDescriptor *d, const char *v, size_t n, struct sc_arena *a, void **out);

/* An iterator over [lo, hi) of one column family, optionally at a snapshot (hi NULL: to the end). */
struct sc_range {
  rocksdb_iterator_t *it;
  rocksdb_readoptions_t *ro; /* holds the bound, which points into lo or hi */
  struct sc_key lo, hi;
  bool back;
};

void sc_range_open(struct rstore *r, int cf, const rocksdb_snapshot_t *snap, const void *lo, size_t lolen,
                   const void *hi, size_t hilen, struct sc_range *ri);
/* The same range walked backwards: keys at or after |lo| (NULL: all), from the last one strictly before |before|
 * (NULL: from the last key of the column family). */
void sc_range_open_back(struct rstore *r, int cf, const rocksdb_snapshot_t *snap, const void *lo, size_t lolen,
                        const void *before, size_t beforelen, struct sc_range *ri);
static inline bool sc_range_valid(struct sc_range *ri)
{
  return rocksdb_iter_valid(ri->it);
}
/* The next key in the range's direction. */
static inline void sc_range_next(struct sc_range *ri)
{
  if (ri->back)
    rocksdb_iter_prev(ri->it);
  else
    rocksdb_iter_next(ri->it);
}
int sc_range_close(struct sc_range *ri);

/* The operations, by file. */
int sc_rocks_get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob *out);
int sc_rocks_get_payload(struct sc_store *s, const char *iid, int kind, struct sc_arena *a, char **data,
                         size_t *len);
int sc_rocks_history_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob **out, size_t *n);
int sc_rocks_history_range(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
                           struct sc_arena *a, struct sc_history_slice *out);
int sc_rocks_inbox_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_blob **out,
                        size_t *n);
int sc_rocks_timer_get(struct sc_store *s, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out);
int sc_rocks_actq_get(struct sc_store *s, uint64_t seq, struct sc_arena *a, StoredActivity **out);
int sc_rocks_children(struct sc_store *s, const char *parent, sc_child_fn fn, void *ctx);
int sc_rocks_timer_scan(struct sc_store *s, int part, sc_timer_fn fn, void *ctx);
int sc_rocks_actq_scan(struct sc_store *s, int part, sc_seq_fn fn, void *ctx);
int sc_rocks_inbox_scan_instances(struct sc_store *s, int part, sc_child_fn fn, void *ctx);
int sc_rocks_query(struct sc_store *s, const struct sc_query *q, struct sc_arena *a, struct sc_query_page *out,
                   struct sc_err *err);
int sc_rocks_get_entity(struct sc_store *s, const char *id, struct sc_arena *a, struct sc_blob *out);
int sc_rocks_query_entities(struct sc_store *s, const struct sc_entity_query *q, struct sc_arena *a,
                            struct sc_entity_page *out, struct sc_err *err);
int sc_rocks_count_entities(struct sc_store *s, uint64_t *with_state, uint64_t *transient, uint64_t *queued,
                            struct sc_err *err);
int sc_rocks_count_by_status(struct sc_store *s, uint64_t counts[8], struct sc_err *err);
int sc_rocks_apply(struct sc_store *s, const struct sc_changes *ch, bool sync, struct sc_err *err);
/* open.c */
void sc_rocks_rclose(struct sc_store *s);
int sc_rocks_wipe(struct sc_store *s, uint64_t next_seq, struct sc_err *err);
int64_t sc_rocks_property(struct sc_store *s, const char *name);
uint64_t sc_rocks_seq_start(struct sc_store *s);
int sc_rocks_check(struct sc_store *s, struct sc_err *err);

#endif
