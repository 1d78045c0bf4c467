/*
 * The RocksDB backend's operations table, and writes resuming after a failure without a restart.
 *
 * When a write fails (the disk is full, an I/O error), RocksDB stops taking writes until DB::Resume, which the
 * C API of the RocksDB this builds with does not offer, and its automatic recovery does not cover a failed WAL
 * write. Reads keep working. So before the next write the database is closed and opened again, which replays
 * the WAL up to the last write that succeeded (a record torn by the failure is the WAL's tail, which the
 * recovery mode tolerates) and starts a fresh WAL. Opening writes (a new WAL and MANIFEST, the replayed
 * memtables as tables), so it is tried only when the disk has room for that, at most once a second; if opening
 * for writing fails anyway, the database is opened read-only so that reads go on, and the next write tries
 * again. The handle is swapped under a write lock; every operation holds the read lock.
 */
#include "rocks.h"

#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define REOPEN_EVERY_US 1000000
/* Room beyond the WAL's size before reopening is worth trying (a new MANIFEST, OPTIONS, a fresh WAL). */
#define REOPEN_SLACK_BYTES ((uint64_t)1 << 20)

/* What the WAL files hold: replaying them at open writes about as much into tables. */
static uint64_t wal_bytes(const char *dir)
{
  uint64_t total = 0;
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  for (struct dirent *de; (de = readdir(d));) {
    size_t n = strlen(de->d_name);
    if (n <= 4 || strcmp(de->d_name + n - 4, ".log") != 0)
      continue;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (stat(path, &st) == 0)
      total += (uint64_t)st.st_size;
  }
  closedir(d);
  return total;
}

static int still_failed(struct rstore *r, struct sc_err *err, const char *why)
{
  sc_err_set(err, r->fail_code == SC_ENOSPACE ? SC_ENOSPACE : SC_EUNAVAIL,
             "the store takes no writes since one failed%s%s%s; reads go on, and writes resume by themselves "
             "once it can write again", r->fail_code == SC_ENOSPACE ? " (disk full)" : "", why ? ": " : "",
             why ? why : "");
  return err->code;
}

int sc_rocks_writable(struct rstore *r, struct sc_err *err)
{
  if (!r->failed)
    return SC_OK;
  int64_t now = sc_mono_us();
  if (r->last_reopen_us && now - r->last_reopen_us < REOPEN_EVERY_US)
    return still_failed(r, err, NULL);
  r->last_reopen_us = now;
  struct statvfs vfs;
  if (statvfs(r->dir, &vfs) == 0) {
    uint64_t room = (uint64_t)vfs.f_bavail * vfs.f_frsize, need = wal_bytes(r->dir) + REOPEN_SLACK_BYTES;
    if (room < need) {
      char why[96];
      snprintf(why, sizeof why, "%llu bytes free, reopening needs about %llu",
               (unsigned long long)room, (unsigned long long)need);
      return still_failed(r, err, why);
    }
  }
  pthread_rwlock_wrlock(&r->lock);
  sc_rocks_close_db(r);
  struct sc_err oerr = {0};
  int rc = sc_rocks_open_db(r, false, &oerr);
  if (rc == SC_OK) {
    r->failed = r->read_only = false;
    r->fail_code = SC_OK;
    pthread_rwlock_unlock(&r->lock);
    SC_WARN("event=store_reopened dir=%s writes=resumed", SC_Q(r->dir));
    return SC_OK;
  }
  SC_ERROR("event=store_reopen_failed dir=%s error=%s", SC_Q(r->dir), SC_Q(oerr.msg));
  struct sc_err roerr = {0};
  r->read_only = sc_rocks_open_db(r, true, &roerr) == SC_OK;
  if (!r->read_only)
    SC_ERROR("event=store_reopen_failed dir=%s read_only=1 error=%s", SC_Q(r->dir), SC_Q(roerr.msg));
  pthread_rwlock_unlock(&r->lock);
  return still_failed(r, err, oerr.msg);
}

/* ------------------------------------------------------------------ the operations, under the read lock */

/* Opening again failed even read-only: nothing to read from until the next write reopens it. */
#define CLOSED(r) (!(r)->db)
#define CLOSED_RC SC_EUNAVAIL

#define LOCKED(expr)                                                                                            \
  do {                                                                                                          \
    struct rstore *r_ = RS(s);                                                                                  \
    pthread_rwlock_rdlock(&r_->lock);                                                                           \
    int rc_ = CLOSED(r_) ? CLOSED_RC : (expr);                                                                  \
    pthread_rwlock_unlock(&r_->lock);                                                                           \
    return rc_;                                                                                                 \
  } while (0)

static int l_get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob *out)
{
  LOCKED(sc_rocks_get_instance(s, iid, a, out));
}

static int l_get_payload(struct sc_store *s, const char *iid, int kind, struct sc_arena *a, char **data,
                         size_t *len)
{
  LOCKED(sc_rocks_get_payload(s, iid, kind, a, data, len));
}

static int l_history_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob **out, size_t *n)
{
  LOCKED(sc_rocks_history_load(s, iid, a, out, n));
}

static int l_history_range(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
                           struct sc_arena *a, struct sc_history_slice *out)
{
  LOCKED(sc_rocks_history_range(s, iid, from, max_events, max_bytes, a, out));
}

static int l_inbox_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_blob **out,
                        size_t *n)
{
  LOCKED(sc_rocks_inbox_load(s, iid, a, out, n));
}

static int l_timer_get(struct sc_store *s, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out)
{
  LOCKED(sc_rocks_timer_get(s, due_us, seq, a, out));
}

static int l_actq_get(struct sc_store *s, uint64_t seq, struct sc_arena *a, StoredActivity **out)
{
  LOCKED(sc_rocks_actq_get(s, seq, a, out));
}

/* The scans' callbacks may read the store again: a nested read lock (glibc's default rwlock prefers readers,
 * and the only writer is the thread that runs these scans). */
static int l_children(struct sc_store *s, const char *parent, sc_child_fn fn, void *ctx)
{
  LOCKED(sc_rocks_children(s, parent, fn, ctx));
}

static int l_timer_scan(struct sc_store *s, int part, sc_timer_fn fn, void *ctx)
{
  LOCKED(sc_rocks_timer_scan(s, part, fn, ctx));
}

static int l_actq_scan(struct sc_store *s, int part, sc_seq_fn fn, void *ctx)
{
  LOCKED(sc_rocks_actq_scan(s, part, fn, ctx));
}

static int l_inbox_scan_instances(struct sc_store *s, int part, sc_child_fn fn, void *ctx)
{
  LOCKED(sc_rocks_inbox_scan_instances(s, part, fn, ctx));
}

static int l_query(struct sc_store *s, const struct sc_query *q, struct sc_arena *a, struct sc_query_page *out,
                   struct sc_err *err)
{
  LOCKED(sc_rocks_query(s, q, a, out, err));
}

static int l_get_entity(struct sc_store *s, const char *id, struct sc_arena *a, struct sc_blob *out)
{
  LOCKED(sc_rocks_get_entity(s, id, a, out));
}

static int l_query_entities(struct sc_store *s, const struct sc_entity_query *q, struct sc_arena *a,
                            struct sc_entity_page *out, struct sc_err *err)
{
  LOCKED(sc_rocks_query_entities(s, q, a, out, err));
}

static int l_count_entities(struct sc_store *s, uint64_t *with_state, uint64_t *transient, uint64_t *queued,
                            struct sc_err *err)
{
  LOCKED(sc_rocks_count_entities(s, with_state, transient, queued, err));
}

static int l_count_by_status(struct sc_store *s, uint64_t counts[8], struct sc_err *err)
{
  LOCKED(sc_rocks_count_by_status(s, counts, err));
}

static int l_apply(struct sc_store *s, const struct sc_changes *ch, bool sync, struct sc_err *err)
{
  if (sc_rocks_writable(RS(s), err) != SC_OK)
    return err->code;
  LOCKED(sc_rocks_apply(s, ch, sync, err));
}

static int l_wipe(struct sc_store *s, uint64_t next_seq, struct sc_err *err)
{
  if (sc_rocks_writable(RS(s), err) != SC_OK)
    return err->code;
  LOCKED(sc_rocks_wipe(s, next_seq, err));
}

static int64_t l_property(struct sc_store *s, const char *name)
{
  struct rstore *r = RS(s);
  pthread_rwlock_rdlock(&r->lock);
  int64_t v = CLOSED(r) ? -1 : sc_rocks_property(s, name);
  pthread_rwlock_unlock(&r->lock);
  return v;
}

/* One partition, always this process's: the engine owns it from the start. */
static int partitions(struct sc_store *s)
{
  (void)s;
  return 1;
}

static void attach(struct sc_store *s, const struct sc_store_events *ev)
{
  (void)s;
  ev->gained(ev->ctx, 0);
}

static void detach(struct sc_store *s)
{
  (void)s;
}

static void release(struct sc_store *s, int part)
{
  (void)s, (void)part;
}

static void set_workers(struct sc_store *s, bool any)
{
  (void)s, (void)any;
}

const struct sc_store_ops sc_rocks_ops = {
    .close = sc_rocks_rclose,
    .get_instance = l_get_instance,
    .get_payload = l_get_payload,
    .history_load = l_history_load,
    .history_range = l_history_range,
    .inbox_load = l_inbox_load,
    .timer_get = l_timer_get,
    .actq_get = l_actq_get,
    .children = l_children,
    .timer_scan = l_timer_scan,
    .actq_scan = l_actq_scan,
    .inbox_scan_instances = l_inbox_scan_instances,
    .query = l_query,
    .count_by_status = l_count_by_status,
    .get_entity = l_get_entity,
    .count_entities = l_count_entities,
    .query_entities = l_query_entities,
    .seq_start = sc_rocks_seq_start,
    .apply = l_apply,
    .wipe = l_wipe,
    .partitions = partitions,
    .attach = attach,
    .detach = detach,
    .check = sc_rocks_check,
    .release = release,
    .set_workers = set_workers,
    .property = l_property,
};
