/*
 * The RocksDB store's record decoding. Each input is a set of records (chunks, fz.h): a column family byte, a
 * key length byte, the key, and the value, written as they are into a real RocksDB store (any column family but
 * the store's own metadata), so keys and values can be anything a damaged or foreign database could hold. Then
 * every read the store offers runs over them: the instance, payload, history (whole and ranged), inbox, entity
 * and child reads of every id the keys name, both query indexes page by page, entity queries and counts, the
 * timer, activity and inbox scans a partition's recovery makes, and the transaction layer's cached reads the
 * engine uses (store/txn.c, store/cache.c). The records are deleted after each input.
 *
 * Invariants, besides no crash, leak or undefined behaviour: each read answers with a status (a record that does
 * not decode is SC_ECORRUPT, never a success with garbage), and reads are bounded.
 */
#include "fz.h"

#include "common/arena.h"
#include "store/rocksdb/rocks.h"
#include "store/txn.h"

#include <stdlib.h>
#include <string.h>

#define MAX_IDS 8

struct ids {
  char *v[MAX_IDS];
  size_t n;
};

static void add_id(struct ids *ids, const uint8_t *k, size_t n)
{
  const uint8_t *z = memchr(k, 0, n);
  if (z)
    n = (size_t)(z - k);
  if (n == 0 || n > SC_MAX_ID || ids->n == MAX_IDS)
    return;
  for (size_t i = 0; i < ids->n; i++)
    if (strlen(ids->v[i]) == n && memcmp(ids->v[i], k, n) == 0)
      return;
  char *s = malloc(n + 1);
  memcpy(s, k, n);
  s[n] = 0;
  ids->v[ids->n++] = s;
}

static void check_rc(const char *what, int rc)
{
  /* Reads of damaged records may fail, but only with a status a caller handles. */
  if (rc != SC_OK && rc != SC_ENOTFOUND && rc != SC_ECORRUPT && rc != SC_EIO && rc != SC_EINVAL)
    fz_fail("%s answered %d", what, rc);
}

static int on_timer(const struct sc_timer_row *row, void *ctx)
{
  (void)row, (void)ctx;
  return SC_OK;
}

static int on_child(const char *iid, void *ctx)
{
  struct ids *found = ctx;
  add_id(found, (const uint8_t *)iid, strlen(iid));
  return SC_OK;
}

struct actq_ctx {
  struct sc_store *st;
  size_t n;
};

static int on_actq(uint64_t seq, void *ctx)
{
  struct actq_ctx *c = ctx;
  if (c->n++ > 64)
    return SC_OK;
  struct sc_arena a;
  sc_arena_init(&a);
  StoredActivity *act = NULL;
  check_rc("actq_get", c->st->ops->actq_get(c->st, seq, &a, &act));
  sc_arena_free(&a);
  return SC_OK;
}

static void read_instance(struct sc_store *st, struct sc_txn *t, const char *iid, struct ids *children)
{
  struct sc_arena a;
  sc_arena_init(&a);
  StoredInstance *rec = NULL;
  check_rc("get_instance", sc_store_get_instance(st, iid, &a, &rec));
  for (int kind = 0; kind <= SC_PAYLOAD_HISTORY_GEN; kind++) {
    char *data = NULL;
    size_t len = 0;
    check_rc("get_payload", st->ops->get_payload(st, iid, kind, &a, &data, &len));
  }
  HistoryEvent **ev = NULL;
  size_t n = 0;
  check_rc("history", sc_store_history(st, iid, &a, &ev, &n));
  struct sc_history_slice slice;
  check_rc("history_range", st->ops->history_range(st, iid, 0, 100, 1 << 20, &a, &slice));
  check_rc("history_range", st->ops->history_range(st, iid, 1, 2, 16, &a, &slice));
  struct sc_inbox_msg *in = NULL;
  check_rc("inbox", sc_store_inbox(st, iid, &a, &in, &n));
  check_rc("children", st->ops->children(st, iid, on_child, children));
  StoredEntity *ent = NULL;
  check_rc("txn_get_entity", sc_txn_get_entity(t, iid, &a, &ent));
  /* The engine's way in: the transaction layer and its cache. */
  check_rc("txn_get_instance", sc_txn_get_instance(t, iid, &a, &rec));
  check_rc("txn_history_load", sc_txn_history_load(t, iid, &a, &ev, &n));
  check_rc("txn_inbox_load", sc_txn_inbox_load(t, iid, &a, &in, &n));
  size_t count, bytes;
  check_rc("txn_inbox_stats", sc_txn_inbox_stats(t, iid, 100, &count, &bytes));
  sc_arena_free(&a);
}

static void queries(struct sc_store *st)
{
  static const int statuses[] = {ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING,
                                 ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED};
  for (int index = 0; index < 2; index++) {
    struct sc_query qy = {.index = index ? SC_Q_COMPLETED : SC_Q_CREATED, .page_size = 3, .max_scan = 50};
    if (index)
      qy.statuses = statuses, qy.n_statuses = 2, qy.has_from = true, qy.from_us = 0;
    for (int page = 0; page < 4; page++) {
      struct sc_arena a;
      sc_arena_init(&a);
      struct sc_query_page out = {0};
      struct sc_err err = {0};
      int rc = st->ops->query(st, &qy, &a, &out, &err);
      check_rc("query", rc);
      static unsigned char cursor[SC_CURSOR_MAX];
      bool more = rc == SC_OK && out.next_cursor && out.next_cursor_len <= sizeof cursor;
      if (more) {
        memcpy(cursor, out.next_cursor, out.next_cursor_len);
        qy.cursor = cursor;
        qy.cursor_len = out.next_cursor_len;
      }
      sc_arena_free(&a);
      if (!more)
        break;
    }
  }
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_entity_query eq = {.include_transient = true, .page_size = 5};
  struct sc_entity_page ep = {0};
  struct sc_err err = {0};
  check_rc("query_entities", st->ops->query_entities(st, &eq, &a, &ep, &err));
  for (size_t i = 0; i < ep.n; i++) {
    StoredEntity *e = NULL;
    check_rc("entity row", sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &ep.rows[i].rec, &a,
                                           (void **)&e));
  }
  uint64_t with_state, transient, queued, counts[8];
  check_rc("count_entities", st->ops->count_entities(st, &with_state, &transient, &queued, &err));
  check_rc("count_by_status", st->ops->count_by_status(st, counts, &err));
  sc_arena_free(&a);
}

/* Deletes every record written. */
static void clear(struct rstore *r)
{
  for (int cf = SC_CF_INST; cf < SC_CF_COUNT; cf++) {
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->ro, r->cf[cf]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
      size_t kl;
      const char *k = rocksdb_iter_key(it, &kl);
      char *rerr = NULL;
      rocksdb_delete_cf(r->db, r->wo_nosync, r->cf[cf], k, kl, &rerr);
      if (rerr)
        fz_fail("deleting a record: %s", rerr);
    }
    rocksdb_iter_destroy(it);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Deleted records leave tombstones that every later scan steps over, so each input would run slower than the one
 * before: the store is made afresh every STORE_INPUTS inputs instead. */
#define STORE_INPUTS 256

static struct sc_store *st;
static const char *dir;

/* At exit, so that RocksDB's background work is finished before LeakSanitizer looks. */
static void close_store(void)
{
  sc_store_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static unsigned inputs;
  struct sc_err err = {0};
  if (st && ++inputs % STORE_INPUTS == 0) {
    sc_store_close(st);
    st = NULL;
    fz_rmtree(dir);
  }
  if (!st) {
    bool first = !dir;
    if (first)
      dir = fz_tempdir("records");
    if (sc_store_open_rocksdb(dir, &st, &err) != SC_OK)
      fz_fail("opening the store: %s", err.msg);
    /* After the first open, so that it runs before RocksDB's own exit handlers (registered as it first runs) and
     * before fz_tempdir's. */
    if (first)
      atexit(close_store);
  }
  struct rstore *r = RS(st);

  struct ids ids = {0};
  const uint8_t *chunk;
  size_t len;
  while (fz_next_chunk(&data, &size, &chunk, &len)) {
    if (len < 2)
      continue;
    int cf = SC_CF_INST + chunk[0] % (SC_CF_COUNT - SC_CF_INST);
    size_t kl = chunk[1] < len - 2 ? chunk[1] : len - 2;
    const uint8_t *k = chunk + 2, *v = k + kl;
    size_t vl = len - 2 - kl;
    if (cf == SC_CF_INST || cf == SC_CF_PAYLOAD || cf == SC_CF_HIST || cf == SC_CF_INBOX || cf == SC_CF_ENTITY)
      add_id(&ids, k, kl);
    char *rerr = NULL;
    rocksdb_put_cf(r->db, r->wo_nosync, r->cf[cf], (const char *)k, kl, (const char *)v, vl, &rerr);
    if (rerr)
      fz_fail("writing a record: %s", rerr);
  }

  struct sc_txn *t = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct ids children = {0};
  for (size_t i = 0; i < ids.n; i++)
    read_instance(st, t, ids.v[i], &children);
  for (size_t i = 0; i < children.n; i++)
    read_instance(st, t, children.v[i], &ids);
  sc_txn_free(t);
  queries(st);
  check_rc("timer_scan", st->ops->timer_scan(st, -1, on_timer, NULL));
  struct actq_ctx ac = {st, 0};
  check_rc("actq_scan", st->ops->actq_scan(st, -1, on_actq, &ac));
  struct ids inboxes = {0};
  check_rc("inbox_scan_instances", st->ops->inbox_scan_instances(st, -1, on_child, &inboxes));

  for (size_t i = 0; i < ids.n; i++)
    free(ids.v[i]);
  for (size_t i = 0; i < children.n; i++)
    free(children.v[i]);
  for (size_t i = 0; i < inboxes.n; i++)
    free(inboxes.v[i]);
  clear(r);
  return 0;
}
