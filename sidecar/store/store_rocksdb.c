/*
 * The embedded RocksDB backend. Writes go into one WriteBatchWithIndex, so the engine reads its own
 * uncommitted writes while it builds a batch; commit writes the batch with a synced WAL. Range deletions
 * are done key by key because WriteBatchWithIndex cannot index a DeleteRange. Transaction reads of an
 * instance's record, history and inbox are served from the hot-instance cache (hot.h) when it knows them.
 */
#include "store.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "hot.h"
#include "keys.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

struct rstore {
  struct sc_store base;
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_column_family_handle_t *cf[SC_CF_COUNT];
  rocksdb_column_family_handle_t **all_cf; /* including ones a newer version created */
  int n_all_cf;
  rocksdb_writeoptions_t *wo_sync, *wo_nosync;
  rocksdb_readoptions_t *ro;
  rocksdb_writebatch_wi_t *wb;
  uint64_t next_seq;
  bool seq_dirty;
  unsigned char *scratch;
  size_t scratch_cap;
  struct sc_hot hot;
};


#define RS(s) ((struct rstore *)(s))

static uint64_t next_seq(struct sc_store *s);

/* The one place RocksDB error strings are turned into our status. */
static int rocks_status(char *rerr, struct sc_err *err, const char *what)
{
  if (!rerr)
    return SC_OK;
  SC_ERROR("event=store_error op=%s error=%s", what, SC_Q(rerr));
  if (err)
    sc_err_set(err, SC_EIO, "store %s failed: %s", what, rerr);
  rocksdb_free(rerr);
  return SC_EIO;
}

static const unsigned char *pack(struct rstore *r, const ProtobufCMessage *m,
                                 size_t *len)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  if (n > r->scratch_cap) {
    size_t cap = r->scratch_cap ? r->scratch_cap : 4096;
    while (cap < n)
      cap *= 2;
    unsigned char *p = realloc(r->scratch, cap);
    if (!p)
      sc_panic("out of memory packing a %zu-byte record", n);
    r->scratch = p;
    r->scratch_cap = cap;
  }
  *len = protobuf_c_message_pack(m, r->scratch);
  return r->scratch;
}

static void wb_put(struct rstore *r, int cf, const struct sc_key *k,
                   const void *v, size_t vlen)
{
  rocksdb_writebatch_wi_put_cf(r->wb, r->cf[cf], (const char *)k->b, k->len,
                               v, vlen);
}

/* Writes |m| and returns its packed bytes (valid until the next pack). */
static const unsigned char *wb_put_msg(struct rstore *r, int cf, const struct sc_key *k,
                                       const ProtobufCMessage *m, size_t *len)
{
  const unsigned char *v = pack(r, m, len);
  wb_put(r, cf, k, v, *len);
  return v;
}

static void wb_del(struct rstore *r, int cf, const struct sc_key *k)
{
  rocksdb_writebatch_wi_delete_cf(r->wb, r->cf[cf], (const char *)k->b, k->len);
}

/* Reads one value; *val is malloc'd by RocksDB (free with rocksdb_free) or NULL when absent. */
static int get_raw(struct rstore *r, bool txn, int cf, const struct sc_key *k,
                   const rocksdb_readoptions_t *ro, char **val, size_t *len)
{
  char *rerr = NULL;
  if (txn)
    *val = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
        r->wb, r->db, ro, r->cf[cf], (const char *)k->b, k->len, len, &rerr);
  else
    *val = rocksdb_get_cf(r->db, ro, r->cf[cf], (const char *)k->b, k->len,
                          len, &rerr);
  return rocks_status(rerr, NULL, "get");
}

static int unpack_into(const ProtobufCMessageDescriptor *d, const char *v,
                       size_t n, struct sc_arena *a, void **out)
{
  *out = protobuf_c_message_unpack(d, sc_arena_allocator(a), n,
                                   (const uint8_t *)v);
  if (!*out) {
    SC_ERROR("event=store_corrupt type=%s bytes=%zu", d->name, n);
    return SC_ECORRUPT;
  }
  return SC_OK;
}

/* ------------------------------------------------------------------ iterators */

struct range_it {
  rocksdb_iterator_t *it;
  rocksdb_readoptions_t *ro; /* owns the upper bound */
  struct sc_key hi;
  bool has_hi;
};

static void range_open(struct rstore *r, bool txn, int cf,
                       const rocksdb_snapshot_t *snap, const void *lo,
                       size_t lolen, const void *hi, size_t hilen,
                       struct range_it *ri)
{
  ri->ro = rocksdb_readoptions_create();
  ri->has_hi = hi != NULL;
  if (hi) {
    SC_ASSERT(hilen <= sizeof ri->hi.b);
    memcpy(ri->hi.b, hi, hilen);
    ri->hi.len = hilen;
    rocksdb_readoptions_set_iterate_upper_bound(ri->ro, (const char *)ri->hi.b,
                                                ri->hi.len);
  }
  if (snap)
    rocksdb_readoptions_set_snapshot(ri->ro, snap);
  rocksdb_iterator_t *base = rocksdb_create_iterator_cf(r->db, ri->ro, r->cf[cf]);
  if (txn)
    ri->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(r->wb, base,
                                                                r->cf[cf]);
  else
    ri->it = base;
  rocksdb_iter_seek(ri->it, lo, lolen);
}

/* The batch half of a transaction iterator ignores the upper bound, so every loop checks it here. */
static bool range_valid(struct range_it *ri)
{
  if (!rocksdb_iter_valid(ri->it))
    return false;
  if (!ri->has_hi)
    return true;
  size_t kl;
  const char *k = rocksdb_iter_key(ri->it, &kl);
  size_t m = kl < ri->hi.len ? kl : ri->hi.len;
  int c = memcmp(k, ri->hi.b, m);
  return c < 0 || (c == 0 && kl < ri->hi.len);
}

static int range_close(struct range_it *ri)
{
  char *rerr = NULL;
  rocksdb_iter_get_error(ri->it, &rerr);
  rocksdb_iter_destroy(ri->it);
  rocksdb_readoptions_destroy(ri->ro);
  return rocks_status(rerr, NULL, "iterate");
}

/* Deletes every key in [lo, hi) of |cf|, as seen by the transaction. */
static int delete_range(struct rstore *r, int cf, const struct sc_key *lo,
                        const struct sc_key *hi)
{
  struct range_it ri;
  range_open(r, true, cf, NULL, lo->b, lo->len, hi->b, hi->len, &ri);
  /* Collect first: deleting through the index while iterating it is not allowed. */
  size_t n = 0, cap = 0;
  struct sc_key *keys = NULL;
  for (; range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl;
    const char *k = rocksdb_iter_key(ri.it, &kl);
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      keys = realloc(keys, cap * sizeof *keys);
      if (!keys)
        sc_panic("out of memory deleting a key range");
    }
    SC_ASSERT(kl <= sizeof keys[n].b);
    memcpy(keys[n].b, k, kl);
    keys[n].len = kl;
    n++;
  }
  int rc = range_close(&ri);
  for (size_t i = 0; rc == SC_OK && i < n; i++)
    wb_del(r, cf, &keys[i]);
  free(keys);
  return rc;
}

/* ------------------------------------------------------------------ open/close */

static const struct sc_store_ops rocks_ops;

static void rclose(struct sc_store *s)
{
  struct rstore *r = RS(s);
  if (r->wb)
    rocksdb_writebatch_wi_destroy(r->wb);
  if (r->db && r->n_all_cf) {
    /* Flushed memtables make the next start read SST files instead of replaying the WAL. */
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < SC_CF_COUNT; i++) {
      char *rerr = NULL;
      rocksdb_flush_cf(r->db, fo, r->cf[i], &rerr);
      if (rerr) {
        SC_WARN("event=store_flush_failed cf=%s error=%s", sc_cf_names[i], SC_Q(rerr));
        rocksdb_free(rerr);
      }
    }
    rocksdb_flushoptions_destroy(fo);
  }
  if (r->db) {
    for (int i = 0; i < r->n_all_cf; i++)
      rocksdb_column_family_handle_destroy(r->all_cf[i]);
    rocksdb_close(r->db);
  }
  free(r->all_cf);
  if (r->opts)
    rocksdb_options_destroy(r->opts);
  if (r->wo_sync)
    rocksdb_writeoptions_destroy(r->wo_sync);
  if (r->wo_nosync)
    rocksdb_writeoptions_destroy(r->wo_nosync);
  if (r->ro)
    rocksdb_readoptions_destroy(r->ro);
  free(r->scratch);
  sc_hot_free(&r->hot);
  free(r);
}

static int check_schema(struct rstore *r, const char *dir, struct sc_err *err)
{
  char *rerr = NULL;
  size_t n;
  char *v = rocksdb_get_cf(r->db, r->ro, r->cf[SC_CF_META], "schema", 6, &n, &rerr);
  if (rerr)
    return rocks_status(rerr, err, "read schema");
  unsigned char b[8];
  if (!v) {
    /* A new store: record the schema so later versions know what they are reading. */
    sc_put_be32(b, SC_SCHEMA_VERSION);
    rocksdb_put_cf(r->db, r->wo_sync, r->cf[SC_CF_META], "schema", 6, (const char *)b, 4, &rerr);
    return rocks_status(rerr, err, "write schema");
  }
  if (n != 4) {
    rocksdb_free(v);
    sc_err_set(err, SC_ECORRUPT, "data directory %s has a malformed schema record", dir);
    return SC_ECORRUPT;
  }
  uint32_t ver = sc_get_be32((const unsigned char *)v);
  rocksdb_free(v);
  if (ver > SC_SCHEMA_VERSION) {
    sc_err_set(err, SC_ESTATE,
               "data directory %s holds schema version %u, newer than this taskhubd supports (%u); "
               "refusing to open it: run a newer taskhubd",
               dir, ver, SC_SCHEMA_VERSION);
    return SC_ESTATE;
  }
  v = rocksdb_get_cf(r->db, r->ro, r->cf[SC_CF_META], "seq", 3, &n, &rerr);
  if (rerr)
    return rocks_status(rerr, err, "read sequence");
  if (v && n == 8)
    r->next_seq = sc_get_be64((const unsigned char *)v);
  rocksdb_free(v);
  return SC_OK;
}

int sc_store_open_rocksdb(const char *dir, struct sc_store **out,
                          struct sc_err *err)
{
  struct rstore *r = calloc(1, sizeof *r);
  if (!r)
    sc_panic("out of memory opening the store");
  r->base.ops = &rocks_ops;
  r->next_seq = 1;
  r->opts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(r->opts, 1);
  rocksdb_options_set_create_missing_column_families(r->opts, 1);
  rocksdb_options_increase_parallelism(r->opts, 2);
  rocksdb_options_set_max_background_jobs(r->opts, 2);
  /* Memtables are the sidecar's largest memory user and what a restart replays from the WAL: cap them all
   * together, so RSS stays small with many idle instances and recovery reads little. */
  rocksdb_options_set_write_buffer_size(r->opts, 8u << 20);
  rocksdb_options_set_db_write_buffer_size(r->opts, 32u << 20);
  r->wo_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(r->wo_sync, 1);
  r->wo_nosync = rocksdb_writeoptions_create();
  r->ro = rocksdb_readoptions_create();

  /* Open every column family present, so that a store written by a newer version still opens far
   * enough to read its schema version and refuse it with a clear message. */
  size_t n_existing = 0;
  char *rerr = NULL;
  char **existing = rocksdb_list_column_families(r->opts, dir, &n_existing, &rerr);
  if (rerr) {
    rocksdb_free(rerr); /* a new directory has no column families yet */
    rerr = NULL;
    if (existing)
      rocksdb_list_column_families_destroy(existing, 0);
    existing = NULL;
    n_existing = 0;
  }
  const char *names[64];
  int n = 0;
  for (int i = 0; i < SC_CF_COUNT; i++)
    names[n++] = sc_cf_names[i];
  for (size_t i = 0; i < n_existing && n < 64; i++) {
    bool known = false;
    for (int j = 0; j < SC_CF_COUNT; j++)
      known |= strcmp(existing[i], sc_cf_names[j]) == 0;
    if (!known)
      names[n++] = existing[i];
  }
  const rocksdb_options_t *cf_opts[64];
  for (int i = 0; i < n; i++)
    cf_opts[i] = r->opts;
  r->all_cf = calloc((size_t)n, sizeof *r->all_cf);
  r->db = rocksdb_open_column_families(r->opts, dir, n, names, cf_opts, r->all_cf, &rerr);
  if (existing)
    rocksdb_list_column_families_destroy(existing, n_existing);
  if (rerr) {
    sc_err_set(err, SC_EIO, "cannot open the store in %s: %s", dir, rerr);
    rocksdb_free(rerr);
    r->db = NULL;
    rclose(&r->base);
    return SC_EIO;
  }
  r->n_all_cf = n;
  for (int i = 0; i < SC_CF_COUNT; i++)
    r->cf[i] = r->all_cf[i];
  int rc = check_schema(r, dir, err);
  if (rc != SC_OK) {
    rclose(&r->base);
    return rc;
  }
  r->wb = rocksdb_writebatch_wi_create(0, 1);
  /* The default budget holds the instances of a few thousand orchestrations in flight, while 100,000 idle ones
   * stay within the memory target (docs/performance.md). */
  sc_hot_init(&r->hot, SC_HOT_DEFAULT_BUDGET);
  *out = &r->base;
  return SC_OK;
}

void sc_store_rocksdb_cache(struct sc_store *s, size_t bytes)
{
  RS(s)->hot.budget = bytes;
}

/* ------------------------------------------------------------------ transaction */

static void txn_reset(struct sc_store *s)
{
  /* Writes still in the batch are being discarded: the cache forgets what they changed. */
  sc_hot_end(&RS(s)->hot, rocksdb_writebatch_wi_count(RS(s)->wb) == 0);
  rocksdb_writebatch_wi_clear(RS(s)->wb);
  RS(s)->seq_dirty = false;
}

static size_t txn_size(struct sc_store *s)
{
  return (size_t)rocksdb_writebatch_wi_count(RS(s)->wb);
}

static int txn_commit(struct sc_store *s, bool sync, struct sc_err *err)
{
  struct rstore *r = RS(s);
  if (r->seq_dirty) {
    unsigned char b[8];
    sc_put_be64(b, r->next_seq);
    rocksdb_writebatch_wi_put_cf(r->wb, r->cf[SC_CF_META], "seq", 3, (const char *)b, 8);
  }
  if (rocksdb_writebatch_wi_count(r->wb) == 0) {
    sc_hot_end(&r->hot, true);
    return SC_OK;
  }
  char *rerr = NULL;
  rocksdb_write_writebatch_wi(r->db, sync ? r->wo_sync : r->wo_nosync, r->wb, &rerr);
  int rc = rocks_status(rerr, err, "commit");
  sc_hot_end(&r->hot, rc == SC_OK);
  rocksdb_writebatch_wi_clear(r->wb);
  r->seq_dirty = false;
  return rc;
}

static void txn_savepoint(struct sc_store *s)
{
  rocksdb_writebatch_wi_set_save_point(RS(s)->wb);
  sc_hot_savepoint(&RS(s)->hot);
}

static void txn_rollback(struct sc_store *s)
{
  char *rerr = NULL;
  rocksdb_writebatch_wi_rollback_to_save_point(RS(s)->wb, &rerr);
  if (rerr)
    sc_panic("rollback to a save point failed: %s", rerr);
  sc_hot_rollback(&RS(s)->hot);
}

static uint64_t next_seq(struct sc_store *s)
{
  RS(s)->seq_dirty = true;
  return RS(s)->next_seq++;
}

/* ------------------------------------------------------------------ instances */

static int get_instance(struct sc_store *s, bool txn, const char *iid,
                        struct sc_arena *a, StoredInstance **out)
{
  struct rstore *r = RS(s);
  struct sc_hot_inst *e = txn ? sc_hot_get(&r->hot, iid, false) : NULL;
  if (e && e->rec_known) {
    atomic_fetch_add_explicit(&sc_metrics.cache_hits, 1, memory_order_relaxed);
    if (!e->rec)
      return SC_ENOTFOUND;
    return unpack_into(&taskhubd__store__stored_instance__descriptor, (const char *)e->rec, e->rec_len, a,
                       (void **)out);
  }
  struct sc_key k;
  sc_key_inst(&k, iid);
  char *v;
  size_t n;
  int rc = get_raw(r, txn, SC_CF_INST, &k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (txn) {
    atomic_fetch_add_explicit(&sc_metrics.cache_misses, 1, memory_order_relaxed);
    e = sc_hot_get(&r->hot, iid, true);
    sc_hot_journal(&r->hot, e);
    sc_hot_set_rec(&r->hot, e, v, n);
  }
  if (!v)
    return SC_ENOTFOUND;
  rc = unpack_into(&taskhubd__store__stored_instance__descriptor, v, n, a, (void **)out);
  rocksdb_free(v);
  return rc;
}

static void index_put(struct rstore *r, const char *iid, const StoredInstance *rec)
{
  struct sc_key k;
  unsigned char st = (unsigned char)rec->status;
  sc_key_ix_created(&k, rec->created_us, iid);
  wb_put(r, SC_CF_IX_CREATED, &k, &st, 1);
  sc_key_ix_status(&k, rec->status, rec->created_us, iid);
  wb_put(r, SC_CF_IX_STATUS, &k, "", 0);
  if (sc_status_is_terminal(rec->status)) {
    sc_key_ix_completed(&k, rec->completed_us, iid);
    wb_put(r, SC_CF_IX_COMPLETED, &k, &st, 1);
  }
  if (rec->parent_instance_id && rec->parent_instance_id[0]) {
    sc_key_ix_parent(&k, rec->parent_instance_id, iid);
    wb_put(r, SC_CF_IX_PARENT, &k, "", 0);
  }
}

static void index_del(struct rstore *r, const char *iid, const StoredInstance *old)
{
  struct sc_key k;
  sc_key_ix_created(&k, old->created_us, iid);
  wb_del(r, SC_CF_IX_CREATED, &k);
  sc_key_ix_status(&k, old->status, old->created_us, iid);
  wb_del(r, SC_CF_IX_STATUS, &k);
  if (sc_status_is_terminal(old->status)) {
    sc_key_ix_completed(&k, old->completed_us, iid);
    wb_del(r, SC_CF_IX_COMPLETED, &k);
  }
  if (old->parent_instance_id && old->parent_instance_id[0]) {
    sc_key_ix_parent(&k, old->parent_instance_id, iid);
    wb_del(r, SC_CF_IX_PARENT, &k);
  }
}

static bool index_same(const StoredInstance *a, const StoredInstance *b)
{
  return a->status == b->status && a->created_us == b->created_us &&
         a->completed_us == b->completed_us &&
         strcmp(a->parent_instance_id, b->parent_instance_id) == 0;
}

static int put_instance(struct sc_store *s, const char *iid,
                        const StoredInstance *rec, const StoredInstance *old)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_inst(&k, iid);
  size_t n;
  const unsigned char *v = wb_put_msg(r, SC_CF_INST, &k, &rec->base, &n);
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, true);
  sc_hot_journal(&r->hot, e);
  sc_hot_set_rec(&r->hot, e, v, n);
  if (sc_status_is_terminal(rec->status) && e->hist_known)
    sc_hot_forget_hist(&r->hot, e); /* not dispatched again unless rewound: give the memory back */
  if (old && index_same(old, rec))
    return SC_OK;
  if (old)
    index_del(r, iid, old);
  index_put(r, iid, rec);
  return SC_OK;
}

static int delete_instance(struct sc_store *s, const char *iid,
                           const StoredInstance *old)
{
  struct rstore *r = RS(s);
  struct sc_key k, lo, hi;
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, false);
  if (e) {
    sc_hot_journal(&r->hot, e);
    sc_hot_forget(&r->hot, e);
  }
  sc_key_inst(&k, iid);
  wb_del(r, SC_CF_INST, &k);
  index_del(r, iid, old);
  /* Point deletes where the record says what exists: a range scan through the transaction costs far more,
   * and purge by filter does this for every instance. */
  for (int kind = SC_PAYLOAD_INPUT; kind <= SC_PAYLOAD_HISTORY_GEN; kind++) {
    sc_key_payload(&k, iid, kind);
    wb_del(r, SC_CF_PAYLOAD, &k);
  }
  for (uint32_t i = 0; i < old->history_count; i++) {
    sc_key_hist(&k, iid, i);
    wb_del(r, SC_CF_HIST, &k);
  }
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  int rc = SC_OK;
  /* A finished instance's inbox is empty: its last commit cleared it and nothing is delivered to it since. */
  if (!sc_status_is_terminal(old->status))
    rc = delete_range(r, SC_CF_INBOX, &lo, &hi);
  if (rc == SC_OK && old->has_children)
    rc = delete_range(r, SC_CF_IX_PARENT, &lo, &hi);
  return rc;
}

/* ------------------------------------------------------------------ payloads, history, inbox */

static int get_payload(struct sc_store *s, bool txn, const char *iid, int kind,
                       struct sc_arena *a, char **data, size_t *len)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_payload(&k, iid, kind);
  char *v;
  size_t n;
  int rc = get_raw(r, txn, SC_CF_PAYLOAD, &k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (!v)
    return SC_ENOTFOUND;
  *data = sc_arena_strndup(a, v, n);
  *len = n;
  rocksdb_free(v);
  return SC_OK;
}

static int put_payload(struct sc_store *s, const char *iid, int kind,
                       const char *data, size_t len)
{
  struct sc_key k;
  sc_key_payload(&k, iid, kind);
  if (data)
    wb_put(RS(s), SC_CF_PAYLOAD, &k, data, len);
  else
    wb_del(RS(s), SC_CF_PAYLOAD, &k);
  return SC_OK;
}

static int history_append(struct sc_store *s, const char *iid, uint32_t index,
                          const HistoryEvent *ev)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_hist(&k, iid, index);
  size_t n;
  const unsigned char *v = wb_put_msg(r, SC_CF_HIST, &k, &ev->base, &n);
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, false);
  if (e && e->hist_known) {
    sc_hot_journal(&r->hot, e);
    if (index != e->nev)
      sc_hot_forget_hist(&r->hot, e); /* not the next index: let the store say what the history is */
    else
      sc_hot_hist_append(&r->hot, e, v, n);
  }
  return SC_OK;
}

static int clear_iid(struct sc_store *s, int cf, const char *iid)
{
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  return delete_range(RS(s), cf, &lo, &hi);
}

static int history_clear(struct sc_store *s, const char *iid)
{
  struct rstore *r = RS(s);
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, true);
  int rc = SC_OK;
  /* A new generation, so that a reader streaming the old history in slices notices the replacement even when
   * the new one keeps the execution id (an SDK's rewind may). The sequence counter never repeats a value. */
  struct sc_key gk;
  unsigned char gen[8];
  sc_key_payload(&gk, iid, SC_PAYLOAD_HISTORY_GEN);
  sc_put_be64(gen, next_seq(s));
  wb_put(r, SC_CF_PAYLOAD, &gk, gen, sizeof gen);
  if (e->hist_known) {
    struct sc_key k;
    for (uint32_t i = 0; i < e->nev; i++) {
      sc_key_hist(&k, iid, i);
      wb_del(r, SC_CF_HIST, &k);
    }
  } else {
    rc = clear_iid(s, SC_CF_HIST, iid);
  }
  sc_hot_journal(&r->hot, e);
  if (rc == SC_OK)
    sc_hot_set_hist_empty(&r->hot, e);
  else
    sc_hot_forget_hist(&r->hot, e);
  return rc;
}

static int history_load(struct sc_store *s, bool txn, const char *iid,
                        struct sc_arena *a, HistoryEvent ***out, size_t *n)
{
  struct rstore *r = RS(s);
  struct sc_hot_inst *e = txn ? sc_hot_get(&r->hot, iid, false) : NULL;
  if (e && e->hist_known) {
    atomic_fetch_add_explicit(&sc_metrics.cache_hits, 1, memory_order_relaxed);
    /* The cache's own events: the caller reads them before its next store call. */
    *out = sc_arena_alloc(a, (e->nev ? e->nev : 1) * sizeof **out);
    if (e->nev)
      memcpy(*out, e->ev, e->nev * sizeof **out);
    *n = e->nev;
    return SC_OK;
  }
  if (txn) {
    atomic_fetch_add_explicit(&sc_metrics.cache_misses, 1, memory_order_relaxed);
    e = sc_hot_get(&r->hot, iid, true);
    sc_hot_journal(&r->hot, e);
    sc_hot_set_hist_empty(&r->hot, e);
  }
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  struct range_it ri;
  range_open(r, txn, SC_CF_HIST, NULL, lo.b, lo.len, hi.b, hi.len, &ri);
  size_t cnt = 0, cap = 0;
  HistoryEvent **evs = NULL;
  int rc = SC_OK;
  for (; rc == SC_OK && range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t vl, kl;
    const char *v = rocksdb_iter_value(ri.it, &vl);
    const unsigned char *key = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    /* The cache keeps event i at history index i; any other layout is left to the store. */
    if (e && e->hist_known && (kl != lo.len + 4 || sc_get_be32(key + lo.len) != cnt))
      sc_hot_forget_hist(&r->hot, e);
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 32;
      HistoryEvent **ne = sc_arena_alloc(a, nc * sizeof *ne);
      if (cnt)
        memcpy(ne, evs, cnt * sizeof *ne);
      evs = ne;
      cap = nc;
    }
    if (e && e->hist_known && sc_hot_hist_append(&r->hot, e, v, vl)) {
      evs[cnt++] = e->ev[e->nev - 1];
      continue;
    }
    rc = unpack_into(&history_event__descriptor, v, vl, a, (void **)&evs[cnt]);
    if (rc == SC_OK)
      cnt++;
  }
  int rc2 = range_close(&ri);
  if (e && (rc != SC_OK || rc2 != SC_OK))
    sc_hot_forget_hist(&r->hot, e);
  *out = evs;
  *n = cnt;
  return rc != SC_OK ? rc : rc2;
}

static int history_range(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
                         struct sc_arena *a, struct sc_history_slice *out)
{
  struct rstore *r = RS(s);
  memset(out, 0, sizeof *out);
  const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(r->db);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_snapshot(ro, snap);
  struct sc_key k;
  sc_key_inst(&k, iid);
  char *v;
  size_t vl;
  int rc = get_raw(r, false, SC_CF_INST, &k, ro, &v, &vl);
  if (rc == SC_OK && !v)
    rc = SC_ENOTFOUND;
  if (rc == SC_OK) {
    rc = unpack_into(&taskhubd__store__stored_instance__descriptor, v, vl, a, (void **)&out->rec);
    rocksdb_free(v);
  }
  if (rc == SC_OK) {
    sc_key_payload(&k, iid, SC_PAYLOAD_HISTORY_GEN);
    rc = get_raw(r, false, SC_CF_PAYLOAD, &k, ro, &v, &vl);
    if (rc == SC_OK && v) {
      if (vl == 8)
        out->generation = sc_get_be64((const unsigned char *)v);
      else
        rc = SC_ECORRUPT;
      rocksdb_free(v);
    }
  }
  rocksdb_readoptions_destroy(ro);
  if (rc == SC_OK && max_events > 0) {
    struct sc_key lo, hi;
    sc_key_hist(&lo, iid, from);
    sc_key_iid_hi(&hi, iid);
    struct range_it ri;
    range_open(r, false, SC_CF_HIST, snap, lo.b, lo.len, hi.b, hi.len, &ri);
    out->events = sc_arena_alloc(a, max_events * sizeof *out->events);
    for (; rc == SC_OK && out->n < max_events && range_valid(&ri); rocksdb_iter_next(ri.it)) {
      size_t kl;
      const unsigned char *key = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
      const char *ev = rocksdb_iter_value(ri.it, &vl);
      if (kl != lo.len || sc_get_be32(key + lo.len - 4) != from + out->n) {
        rc = SC_ECORRUPT; /* event i lives at index i, with no gaps */
        break;
      }
      if (out->n > 0 && out->bytes + vl > max_bytes)
        break;
      rc = unpack_into(&history_event__descriptor, ev, vl, a, (void **)&out->events[out->n]);
      if (rc == SC_OK) {
        out->n++;
        out->bytes += vl;
      }
    }
    int rc2 = range_close(&ri);
    if (rc == SC_OK)
      rc = rc2;
  }
  rocksdb_release_snapshot(r->db, snap);
  return rc;
}

static int inbox_append(struct sc_store *s, const char *iid, int band,
                        uint64_t seq, const StoredMsg *m)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_inbox(&k, iid, band, seq);
  size_t n;
  const unsigned char *v = wb_put_msg(r, SC_CF_INBOX, &k, &m->base, &n);
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, false);
  if (e && e->inbox_known) {
    sc_hot_journal(&r->hot, e);
    sc_hot_inbox_put(&r->hot, e, band, seq, v, n);
  }
  return SC_OK;
}

static int inbox_delete(struct sc_store *s, const char *iid, int band,
                        uint64_t seq)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_inbox(&k, iid, band, seq);
  wb_del(r, SC_CF_INBOX, &k);
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, false);
  if (e && e->inbox_known) {
    sc_hot_journal(&r->hot, e);
    sc_hot_inbox_del(&r->hot, e, band, seq);
  }
  return SC_OK;
}

static int inbox_clear(struct sc_store *s, const char *iid)
{
  struct rstore *r = RS(s);
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, true);
  int rc = SC_OK;
  if (e->inbox_known) {
    struct sc_key k;
    for (size_t i = 0; i < e->nmsg; i++) {
      sc_key_inbox(&k, iid, e->msg[i].band, e->msg[i].seq);
      wb_del(r, SC_CF_INBOX, &k);
    }
  } else {
    rc = clear_iid(s, SC_CF_INBOX, iid);
  }
  sc_hot_journal(&r->hot, e);
  if (rc == SC_OK)
    sc_hot_set_inbox_empty(&r->hot, e);
  else
    sc_hot_forget_inbox(&r->hot, e);
  return rc;
}

static int inbox_stats(struct sc_store *s, const char *iid, size_t max_count, size_t *count, size_t *bytes)
{
  struct rstore *r = RS(s);
  struct sc_hot_inst *e = sc_hot_get(&r->hot, iid, false);
  *count = *bytes = 0;
  if (e && e->inbox_known) {
    for (size_t i = 0; i < e->nmsg && *count < max_count; i++) {
      ++*count;
      *bytes += e->msg[i].len;
    }
    return SC_OK;
  }
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  struct range_it ri;
  range_open(r, true, SC_CF_INBOX, NULL, lo.b, lo.len, hi.b, hi.len, &ri);
  for (; *count < max_count && range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t vl;
    rocksdb_iter_value(ri.it, &vl);
    ++*count;
    *bytes += vl;
  }
  return range_close(&ri);
}

static int inbox_load(struct sc_store *s, bool txn, const char *iid,
                      struct sc_arena *a, struct sc_inbox_msg **out, size_t *n)
{
  struct rstore *r = RS(s);
  struct sc_hot_inst *e = txn ? sc_hot_get(&r->hot, iid, false) : NULL;
  if (e && e->inbox_known) {
    atomic_fetch_add_explicit(&sc_metrics.cache_hits, 1, memory_order_relaxed);
    struct sc_inbox_msg *msgs = sc_arena_alloc(a, (e->nmsg ? e->nmsg : 1) * sizeof *msgs);
    for (size_t i = 0; i < e->nmsg; i++) {
      msgs[i].band = e->msg[i].band;
      msgs[i].seq = e->msg[i].seq;
      int rc = unpack_into(&taskhubd__store__stored_msg__descriptor, (const char *)e->msg[i].b, e->msg[i].len,
                           a, (void **)&msgs[i].msg);
      if (rc != SC_OK)
        return rc;
    }
    *out = msgs;
    *n = e->nmsg;
    return SC_OK;
  }
  if (txn) {
    atomic_fetch_add_explicit(&sc_metrics.cache_misses, 1, memory_order_relaxed);
    e = sc_hot_get(&r->hot, iid, true);
    sc_hot_journal(&r->hot, e);
    sc_hot_set_inbox_empty(&r->hot, e);
  }
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  struct range_it ri;
  range_open(r, txn, SC_CF_INBOX, NULL, lo.b, lo.len, hi.b, hi.len, &ri);
  size_t cnt = 0, cap = 0;
  struct sc_inbox_msg *msgs = NULL;
  int rc = SC_OK;
  for (; rc == SC_OK && range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl, vl;
    const unsigned char *k = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    const char *v = rocksdb_iter_value(ri.it, &vl);
    if (kl != lo.len + 9) {
      rc = SC_ECORRUPT;
      break;
    }
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 16;
      struct sc_inbox_msg *nm = sc_arena_alloc(a, nc * sizeof *nm);
      if (cnt)
        memcpy(nm, msgs, cnt * sizeof *nm);
      msgs = nm;
      cap = nc;
    }
    msgs[cnt].band = k[lo.len];
    msgs[cnt].seq = sc_get_be64(k + lo.len + 1);
    if (e && e->inbox_known)
      sc_hot_inbox_put(&r->hot, e, msgs[cnt].band, msgs[cnt].seq, v, vl);
    rc = unpack_into(&taskhubd__store__stored_msg__descriptor, v, vl, a, (void **)&msgs[cnt].msg);
    if (rc == SC_OK)
      cnt++;
  }
  int rc2 = range_close(&ri);
  if (e && (rc != SC_OK || rc2 != SC_OK))
    sc_hot_forget_inbox(&r->hot, e);
  *out = msgs;
  *n = cnt;
  return rc != SC_OK ? rc : rc2;
}

/* ------------------------------------------------------------------ timers */

static int timer_put(struct sc_store *s, int64_t due_us, uint64_t seq,
                     const StoredTimer *t)
{
  struct sc_key k;
  sc_key_timer(&k, due_us, seq);
  size_t n;
  wb_put_msg(RS(s), SC_CF_TIMER, &k, &t->base, &n);
  return SC_OK;
}

static int timer_delete(struct sc_store *s, int64_t due_us, uint64_t seq)
{
  struct sc_key k;
  sc_key_timer(&k, due_us, seq);
  wb_del(RS(s), SC_CF_TIMER, &k);
  return SC_OK;
}

static int timer_get(struct sc_store *s, int64_t due_us, uint64_t seq,
                     struct sc_arena *a, StoredTimer **out)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_timer(&k, due_us, seq);
  char *v;
  size_t n;
  int rc = get_raw(r, true, SC_CF_TIMER, &k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (!v)
    return SC_ENOTFOUND;
  rc = unpack_into(&taskhubd__store__stored_timer__descriptor, v, n, a, (void **)out);
  rocksdb_free(v);
  return rc;
}

static int timer_scan(struct sc_store *s, sc_timer_fn fn, void *ctx)
{
  struct rstore *r = RS(s);
  struct range_it ri;
  range_open(r, false, SC_CF_TIMER, NULL, "", 0, NULL, 0, &ri);
  struct sc_arena a;
  sc_arena_init(&a);
  int rc = SC_OK;
  for (; rc == SC_OK && range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl, vl;
    const unsigned char *k = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    const char *v = rocksdb_iter_value(ri.it, &vl);
    if (kl != 16) {
      rc = SC_ECORRUPT;
      break;
    }
    struct sc_timer_row row = {sc_key_get_ts(k), sc_get_be64(k + 8), NULL};
    rc = unpack_into(&taskhubd__store__stored_timer__descriptor, v, vl, &a, (void **)&row.timer);
    if (rc == SC_OK)
      rc = fn(&row, ctx);
    sc_arena_reset(&a);
  }
  sc_arena_free(&a);
  int rc2 = range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

static int children(struct sc_store *s, bool txn, const char *parent,
                    sc_child_fn fn, void *ctx)
{
  struct rstore *r = RS(s);
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, parent);
  sc_key_iid_hi(&hi, parent);
  struct range_it ri;
  range_open(r, txn, SC_CF_IX_PARENT, NULL, lo.b, lo.len, hi.b, hi.len, &ri);
  /* Copy the ids out first: the callback may write to the transaction. */
  size_t n = 0, cap = 0;
  char **ids = NULL;
  for (; range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl;
    const char *k = rocksdb_iter_key(ri.it, &kl);
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      ids = realloc(ids, cap * sizeof *ids);
      if (!ids)
        sc_panic("out of memory listing children");
    }
    ids[n] = strndup(k + lo.len, kl - lo.len);
    if (!ids[n])
      sc_panic("out of memory listing children");
    n++;
  }
  int rc = range_close(&ri);
  for (size_t i = 0; i < n; i++) {
    if (rc == SC_OK)
      rc = fn(ids[i], ctx);
    free(ids[i]);
  }
  free(ids);
  return rc;
}

/* ------------------------------------------------------------------ activity queue */

static int actq_put(struct sc_store *s, uint64_t seq, const StoredActivity *act)
{
  struct sc_key k;
  sc_key_actq(&k, seq);
  size_t n;
  wb_put_msg(RS(s), SC_CF_ACTQ, &k, &act->base, &n);
  return SC_OK;
}

static int actq_delete(struct sc_store *s, uint64_t seq)
{
  struct sc_key k;
  sc_key_actq(&k, seq);
  wb_del(RS(s), SC_CF_ACTQ, &k);
  return SC_OK;
}

static int actq_get(struct sc_store *s, bool txn, uint64_t seq,
                    struct sc_arena *a, StoredActivity **out)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_actq(&k, seq);
  char *v;
  size_t n;
  int rc = get_raw(r, txn, SC_CF_ACTQ, &k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (!v)
    return SC_ENOTFOUND;
  rc = unpack_into(&taskhubd__store__stored_activity__descriptor, v, n, a, (void **)out);
  rocksdb_free(v);
  return rc;
}

static int actq_scan(struct sc_store *s, sc_seq_fn fn, void *ctx)
{
  struct range_it ri;
  range_open(RS(s), false, SC_CF_ACTQ, NULL, "", 0, NULL, 0, &ri);
  int rc = SC_OK;
  for (; rc == SC_OK && range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl;
    const unsigned char *k = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    rc = kl == 8 ? fn(sc_get_be64(k), ctx) : SC_ECORRUPT;
  }
  int rc2 = range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

/* Visits each instance with inbox messages once: after the first key of an instance, seek past its range. */
static int inbox_scan_instances(struct sc_store *s, sc_child_fn fn, void *ctx)
{
  struct range_it ri;
  range_open(RS(s), false, SC_CF_INBOX, NULL, "", 0, NULL, 0, &ri);
  int rc = SC_OK;
  char iid[SC_MAX_ID + 1];
  while (rc == SC_OK && range_valid(&ri)) {
    size_t kl;
    const char *k = rocksdb_iter_key(ri.it, &kl);
    const char *z = memchr(k, 0, kl);
    if (!z || (size_t)(z - k) > SC_MAX_ID) {
      rc = SC_ECORRUPT;
      break;
    }
    memcpy(iid, k, (size_t)(z - k));
    iid[z - k] = 0;
    rc = fn(iid, ctx);
    struct sc_key hi;
    sc_key_iid_hi(&hi, iid);
    rocksdb_iter_seek(ri.it, (const char *)hi.b, hi.len);
  }
  int rc2 = range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

/* ------------------------------------------------------------------ queries */

static bool status_wanted(const struct sc_query *q, int st)
{
  if (!q->n_statuses)
    return true;
  for (size_t i = 0; i < q->n_statuses; i++)
    if (q->statuses[i] == st)
      return true;
  return false;
}

static bool time_wanted(const struct sc_query *q, int64_t t)
{
  return (!q->has_from || t >= q->from_us) && (!q->has_to || t < q->to_us);
}

static void page_add(struct sc_query_page *p, size_t cap, struct sc_arena *a,
                     const char *iid, size_t iid_len, StoredInstance *rec)
{
  if (!p->rows)
    p->rows = sc_arena_alloc(a, cap * sizeof *p->rows);
  p->rows[p->n].iid = sc_arena_strndup(a, iid, iid_len);
  p->rows[p->n].rec = rec;
  p->n++;
}

static void set_cursor(struct sc_query_page *p, struct sc_arena *a,
                       const void *c, size_t n)
{
  p->next_cursor = sc_arena_alloc(a, n ? n : 1);
  memcpy(p->next_cursor, c, n);
  p->next_cursor_len = n;
}

static size_t scan_budget(const struct sc_query *q)
{
  return q->max_scan ? q->max_scan : SC_QUERY_DEFAULT_SCAN;
}

/*
 * Prefix queries walk the instance records in id order. The cursor is the last id returned, or, when the scan
 * budget runs out first, the last id examined.
 */
static int query_prefix(struct rstore *r, const rocksdb_snapshot_t *snap,
                        const struct sc_query *q, struct sc_arena *a,
                        struct sc_query_page *out)
{
  size_t pl = strlen(q->prefix);
  struct sc_key lo, hi;
  memcpy(lo.b, q->prefix, pl);
  lo.len = pl;
  if (q->cursor) {
    if (q->cursor_len + 1 > sizeof lo.b || q->cursor_len < pl || memcmp(q->cursor, q->prefix, pl))
      return SC_EINVAL;
    memcpy(lo.b, q->cursor, q->cursor_len);
    lo.b[q->cursor_len] = 0; /* the smallest id after the cursor */
    lo.len = q->cursor_len + 1;
  }
  /* Upper bound: the prefix with its last byte incremented (ids hold no 0xff byte: UTF-8 has none). */
  memcpy(hi.b, q->prefix, pl);
  hi.len = pl;
  bool has_hi = false;
  while (hi.len > 0) {
    if (hi.b[hi.len - 1] != 0xff) {
      hi.b[hi.len - 1]++;
      has_hi = true;
      break;
    }
    hi.len--;
  }
  struct range_it ri;
  range_open(r, false, SC_CF_INST, snap, lo.b, lo.len, has_hi ? hi.b : NULL, hi.len, &ri);
  int rc = SC_OK;
  size_t budget = scan_budget(q), scanned = 0;
  while (range_valid(&ri)) {
    size_t kl, vl;
    const char *k = rocksdb_iter_key(ri.it, &kl);
    if (kl < pl || memcmp(k, q->prefix, pl) != 0)
      break;
    const char *v = rocksdb_iter_value(ri.it, &vl);
    StoredInstance *rec;
    rc = unpack_into(&taskhubd__store__stored_instance__descriptor, v, vl, a, (void **)&rec);
    if (rc != SC_OK)
      break;
    scanned++;
    if (status_wanted(q, rec->status) && time_wanted(q, rec->created_us)) {
      if (out->n == q->page_size) {
        /* One more match exists: this page is not the last. */
        set_cursor(out, a, out->rows[out->n - 1].iid, strlen(out->rows[out->n - 1].iid));
        break;
      }
      page_add(out, q->page_size, a, k, kl, rec);
    }
    if (scanned == budget) {
      /* Out of budget: resume after this record, if anything follows it. */
      set_cursor(out, a, k, kl);
      rocksdb_iter_next(ri.it);
      if (!range_valid(&ri) || (k = rocksdb_iter_key(ri.it, &kl), kl < pl || memcmp(k, q->prefix, pl) != 0)) {
        out->next_cursor = NULL;
        out->next_cursor_len = 0;
      }
      break;
    }
    rocksdb_iter_next(ri.it);
  }
  int rc2 = range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

/*
 * Index queries: one iterator per wanted status over `ix_status` (or a single one over `ix_created` /
 * `ix_completed`), merged by (time, id). The cursor is the last (time, id) returned, or, when the scan budget
 * runs out first, the last one examined.
 */
#define MAX_MERGE 16

static int query_index(struct rstore *r, const rocksdb_snapshot_t *snap,
                       const struct sc_query *q, struct sc_arena *a,
                       struct sc_query_page *out)
{
  const bool completed = q->index == SC_Q_COMPLETED;
  const bool by_status = !completed && q->n_statuses > 0;
  int cf = completed ? SC_CF_IX_COMPLETED : by_status ? SC_CF_IX_STATUS : SC_CF_IX_CREATED;
  size_t nit = by_status ? q->n_statuses : 1;
  if (nit > MAX_MERGE)
    return SC_EINVAL;
  if (q->cursor && (q->cursor_len < 8 || q->cursor_len + 2 > SC_KEY_MAX))
    return SC_EINVAL;
  struct range_it its[MAX_MERGE];
  size_t off = by_status ? 1 : 0; /* the status byte before (time, id) */
  for (size_t i = 0; i < nit; i++) {
    struct sc_key lo, hi;
    lo.len = hi.len = 0;
    if (by_status) {
      lo.b[lo.len++] = (unsigned char)q->statuses[i];
      hi.b[hi.len++] = (unsigned char)q->statuses[i];
    }
    if (q->cursor) {
      memcpy(lo.b + lo.len, q->cursor, q->cursor_len);
      lo.len += q->cursor_len;
      lo.b[lo.len++] = 0; /* strictly after the cursor */
    } else if (q->has_from) {
      sc_key_ts(lo.b + lo.len, q->from_us);
      lo.len += 8;
    }
    bool has_hi = true;
    if (q->has_to) {
      sc_key_ts(hi.b + hi.len, q->to_us);
      hi.len += 8;
    } else if (by_status) {
      hi.b[0]++;
    } else {
      has_hi = false;
    }
    range_open(r, false, cf, snap, lo.b, lo.len, has_hi ? hi.b : NULL, hi.len, &its[i]);
  }
  int rc = SC_OK;
  size_t budget = scan_budget(q), scanned = 0;
  size_t pl = q->prefix ? strlen(q->prefix) : 0;
  for (;;) {
    /* Pick the iterator with the smallest (time, id). */
    int best = -1;
    const char *bk = NULL;
    size_t bkl = 0;
    for (size_t i = 0; i < nit; i++) {
      if (!range_valid(&its[i]))
        continue;
      size_t kl;
      const char *k = rocksdb_iter_key(its[i].it, &kl);
      if (best < 0) {
        best = (int)i, bk = k, bkl = kl;
        continue;
      }
      size_t m = kl - off < bkl - off ? kl - off : bkl - off;
      int c = memcmp(k + off, bk + off, m);
      if (c < 0 || (c == 0 && kl < bkl))
        best = (int)i, bk = k, bkl = kl;
    }
    if (best < 0)
      break;
    if (bkl < off + 8) {
      rc = SC_ECORRUPT;
      break;
    }
    const char *tid = bk + off;
    size_t tidl = bkl - off;
    const char *iid = tid + 8;
    size_t iidl = tidl - 8;
    scanned++;
    bool wanted = true;
    if (completed) {
      size_t vl;
      const char *v = rocksdb_iter_value(its[best].it, &vl);
      wanted = vl == 1 && status_wanted(q, (unsigned char)v[0]);
    }
    if (wanted && pl && (iidl < pl || memcmp(iid, q->prefix, pl) != 0))
      wanted = false;
    if (wanted) {
      if (out->n == q->page_size)
        break; /* another match: the cursor set when the page filled stands */
      /* Load the record under the same snapshot as the index. */
      struct sc_key k;
      k.len = iidl;
      memcpy(k.b, iid, iidl);
      rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
      rocksdb_readoptions_set_snapshot(ro, snap);
      char *v;
      size_t vl;
      rc = get_raw(r, false, SC_CF_INST, &k, ro, &v, &vl);
      rocksdb_readoptions_destroy(ro);
      if (rc != SC_OK)
        break;
      if (!v) {
        SC_WARN("event=index_orphan cf=%s", sc_cf_names[cf]);
      } else {
        StoredInstance *rec;
        rc = unpack_into(&taskhubd__store__stored_instance__descriptor, v, vl, a, (void **)&rec);
        rocksdb_free(v);
        if (rc != SC_OK)
          break;
        page_add(out, q->page_size, a, iid, iidl, rec);
        if (out->n == q->page_size)
          set_cursor(out, a, tid, tidl);
      }
    }
    if (scanned == budget) {
      /* Out of budget: resume after this entry (the check below drops the cursor if nothing follows). */
      set_cursor(out, a, tid, tidl);
      rocksdb_iter_next(its[best].it);
      break;
    }
    rocksdb_iter_next(its[best].it);
  }
  /* A page whose iterators are exhausted is the last page after all. */
  if (out->next_cursor) {
    bool more = false;
    for (size_t i = 0; i < nit; i++)
      more |= range_valid(&its[i]);
    if (!more) {
      out->next_cursor = NULL;
      out->next_cursor_len = 0;
    }
  }
  for (size_t i = 0; i < nit; i++) {
    int rc2 = range_close(&its[i]);
    if (rc == SC_OK)
      rc = rc2;
  }
  return rc;
}

static int query(struct sc_store *s, const struct sc_query *q,
                 struct sc_arena *a, struct sc_query_page *out,
                 struct sc_err *err)
{
  struct rstore *r = RS(s);
  memset(out, 0, sizeof *out);
  const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(r->db);
  int rc;
  if (q->index == SC_Q_CREATED && q->prefix && q->prefix[0])
    rc = query_prefix(r, snap, q, a, out);
  else
    rc = query_index(r, snap, q, a, out);
  rocksdb_release_snapshot(r->db, snap);
  if (rc == SC_EINVAL)
    sc_err_set(err, SC_EINVAL, "continuationToken: not a token this server issued for this query");
  else if (rc != SC_OK)
    sc_err_set(err, rc, "query failed reading the store");
  return rc;
}

/* ------------------------------------------------------------------ admin */

static int wipe(struct sc_store *s, struct sc_err *err)
{
  struct rstore *r = RS(s);
  static unsigned char hi[SC_KEY_MAX + 16];
  memset(hi, 0xff, sizeof hi);
  rocksdb_writebatch_wi_clear(r->wb);
  r->seq_dirty = false;
  sc_hot_clear(&r->hot);
  /* One batch, one synced write: a crash leaves either the old store or an empty one, never old inbox and
   * timer keys beside a fresh schema, nor a sequence counter that starts again at 1. The puts come after the
   * range deletions in the batch, so they survive them. */
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  for (int i = 0; i < SC_CF_COUNT; i++)
    rocksdb_writebatch_delete_range_cf(b, r->cf[i], "", 0, (const char *)hi, sizeof hi);
  unsigned char v[8];
  sc_put_be32(v, SC_SCHEMA_VERSION);
  rocksdb_writebatch_put_cf(b, r->cf[SC_CF_META], "schema", 6, (const char *)v, 4);
  /* Sequence numbers handed out before the wipe are never handed out again. */
  sc_put_be64(v, r->next_seq);
  rocksdb_writebatch_put_cf(b, r->cf[SC_CF_META], "seq", 3, (const char *)v, 8);
  char *rerr = NULL;
  rocksdb_write(r->db, r->wo_sync, b, &rerr);
  rocksdb_writebatch_destroy(b);
  return rocks_status(rerr, err, "wipe");
}

static int64_t property(struct sc_store *s, const char *name)
{
  struct rstore *r = RS(s);
  int64_t total = 0;
  for (int i = 0; i < SC_CF_COUNT; i++) {
    char *v = rocksdb_property_value_cf(r->db, r->cf[i], name);
    if (!v)
      return -1;
    total += strtoll(v, NULL, 10);
    rocksdb_free(v);
  }
  return total;
}

static const struct sc_store_ops rocks_ops = {
    .close = rclose,
    .txn_reset = txn_reset,
    .txn_size = txn_size,
    .txn_commit = txn_commit,
    .txn_savepoint = txn_savepoint,
    .txn_rollback = txn_rollback,
    .next_seq = next_seq,
    .get_instance = get_instance,
    .put_instance = put_instance,
    .delete_instance = delete_instance,
    .get_payload = get_payload,
    .put_payload = put_payload,
    .history_append = history_append,
    .history_clear = history_clear,
    .history_load = history_load,
    .history_range = history_range,
    .inbox_append = inbox_append,
    .inbox_delete = inbox_delete,
    .inbox_clear = inbox_clear,
    .inbox_load = inbox_load,
    .inbox_stats = inbox_stats,
    .timer_put = timer_put,
    .timer_delete = timer_delete,
    .timer_get = timer_get,
    .timer_scan = timer_scan,
    .children = children,
    .actq_put = actq_put,
    .actq_delete = actq_delete,
    .actq_get = actq_get,
    .actq_scan = actq_scan,
    .inbox_scan_instances = inbox_scan_instances,
    .query = query,
    .wipe = wipe,
    .property = property,
};
