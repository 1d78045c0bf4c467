/*
 * Opening and closing the RocksDB backend, its schema record and sequence counter, the wipe, and the helpers
 * the other files share.
 */
#include "rocks.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

int sc_rocks_status(char *rerr, struct sc_err *err, const char *what)
{
  if (!rerr)
    return SC_OK;
  /* RocksDB's C API gives only the status text, which starts with the code's name. */
  int code = strncmp(rerr, "Corruption", 10) == 0 ? SC_ECORRUPT
             : strstr(rerr, "No space left on device") || strstr(rerr, "NoSpace") ? SC_ENOSPACE
                                                                                 : SC_EIO;
  SC_ERROR("event=store_error op=%s code=%s error=%s", what, sc_status_name(code), SC_Q(rerr));
  if (err)
    sc_err_set(err, code, "store %s failed: %s", what, rerr);
  rocksdb_free(rerr);
  return code;
}

int sc_rocks_get(struct rstore *r, int cf, const struct sc_key *k, const rocksdb_readoptions_t *ro, char **val,
                 size_t *len)
{
  char *rerr = NULL;
  *val = rocksdb_get_cf(r->db, ro, r->cf[cf], (const char *)k->b, k->len, len, &rerr);
  return sc_rocks_status(rerr, NULL, "get");
}

int sc_rocks_unpack(const ProtobufCMessageDescriptor *d, const char *v, size_t n, struct sc_arena *a, void **out)
{
  struct sc_blob b = {(uint8_t *)v, n};
  return sc_store_unpack(d, &b, a, out);
}

/* The iterator of a range with its one bound (NULL: none), kept in |ri|: the upper one walking forwards, the lower
 * one walking backwards. */
static void range_iter(struct rstore *r, int cf, const rocksdb_snapshot_t *snap, bool back, const void *bound,
                       size_t boundlen, struct sc_range *ri)
{
  ri->ro = rocksdb_readoptions_create();
  ri->back = back;
  if (bound) {
    struct sc_key *k = back ? &ri->lo : &ri->hi;
    SC_ASSERT(boundlen <= sizeof k->b);
    memcpy(k->b, bound, boundlen);
    k->len = boundlen;
    if (back)
      rocksdb_readoptions_set_iterate_lower_bound(ri->ro, (const char *)k->b, k->len);
    else
      rocksdb_readoptions_set_iterate_upper_bound(ri->ro, (const char *)k->b, k->len);
  }
  if (snap)
    rocksdb_readoptions_set_snapshot(ri->ro, snap);
  ri->it = rocksdb_create_iterator_cf(r->db, ri->ro, r->cf[cf]);
}

void sc_range_open(struct rstore *r, int cf, const rocksdb_snapshot_t *snap, const void *lo, size_t lolen,
                   const void *hi, size_t hilen, struct sc_range *ri)
{
  range_iter(r, cf, snap, false, hi, hilen, ri);
  rocksdb_iter_seek(ri->it, lo, lolen);
}

void sc_range_open_back(struct rstore *r, int cf, const rocksdb_snapshot_t *snap, const void *lo, size_t lolen,
                        const void *before, size_t beforelen, struct sc_range *ri)
{
  range_iter(r, cf, snap, true, lo, lolen, ri);
  if (!before) {
    rocksdb_iter_seek_to_last(ri->it);
    return;
  }
  /* SeekForPrev lands on the last key at or before |before|: step off it when it is |before| itself. */
  rocksdb_iter_seek_for_prev(ri->it, before, beforelen);
  if (rocksdb_iter_valid(ri->it)) {
    size_t kl;
    const char *k = rocksdb_iter_key(ri->it, &kl);
    if (kl == beforelen && memcmp(k, before, kl) == 0)
      rocksdb_iter_prev(ri->it);
  }
}

int sc_range_close(struct sc_range *ri)
{
  char *rerr = NULL;
  rocksdb_iter_get_error(ri->it, &rerr);
  rocksdb_iter_destroy(ri->it);
  rocksdb_readoptions_destroy(ri->ro);
  return sc_rocks_status(rerr, NULL, "iterate");
}

/* ------------------------------------------------------------------ open/close */

/* mkdir -p: RocksDB creates the last component only. */
static int make_dirs(const char *dir, struct sc_err *err)
{
  char *p = strdup(dir);
  if (!p)
    sc_panic("out of memory");
  for (char *c = p + 1;; c++) {
    if (*c != '/' && *c)
      continue;
    char was = *c;
    *c = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      sc_err_set(err, SC_EIO, "cannot create the data directory %s: %s: %s", dir, p, strerror(errno));
      free(p);
      return SC_EIO;
    }
    *c = was;
    if (!was)
      break;
  }
  free(p);
  return SC_OK;
}

int sc_rocks_check_dir(struct rstore *r, struct sc_err *err)
{
  struct stat st;
  if (stat(r->dir, &st) != 0) {
    sc_err_set(err, SC_EIO, "the data directory %s is gone (%s): nothing written from now on would be durable",
               r->dir, strerror(errno));
    return SC_EIO;
  }
  if (st.st_dev != r->dir_dev || st.st_ino != r->dir_ino) {
    sc_err_set(err, SC_EIO, "the data directory %s was replaced by another while taskhubd ran", r->dir);
    return SC_EIO;
  }
  return SC_OK;
}

int sc_rocks_check(struct sc_store *s, struct sc_err *err)
{
  return sc_rocks_check_dir(RS(s), err);
}

void sc_rocks_close_db(struct rstore *r)
{
  if (!r->db)
    return;
  for (int i = 0; i < r->n_all_cf; i++)
    rocksdb_column_family_handle_destroy(r->all_cf[i]);
  free(r->all_cf);
  r->all_cf = NULL;
  r->n_all_cf = 0;
  rocksdb_close(r->db);
  r->db = NULL;
}

void sc_rocks_rclose(struct sc_store *s)
{
  struct rstore *r = RS(s);
  if (r->wb)
    rocksdb_writebatch_destroy(r->wb);
  if (r->db && r->n_all_cf && !r->failed && !r->read_only) {
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
  sc_rocks_close_db(r);
  free(r->all_cf);
  free(r->dir);
  if (r->opts)
    rocksdb_options_destroy(r->opts);
  if (r->wo_sync)
    rocksdb_writeoptions_destroy(r->wo_sync);
  if (r->wo_nosync)
    rocksdb_writeoptions_destroy(r->wo_nosync);
  if (r->ro)
    rocksdb_readoptions_destroy(r->ro);
  pthread_rwlock_destroy(&r->lock);
  free(r);
}

static int check_schema(struct rstore *r, const char *dir, struct sc_err *err)
{
  char *rerr = NULL;
  size_t n;
  char *v = rocksdb_get_cf(r->db, r->ro, r->cf[SC_CF_META], "schema", 6, &n, &rerr);
  if (rerr)
    return sc_rocks_status(rerr, err, "read schema");
  unsigned char b[8];
  if (!v) {
    /* A new store: record the schema so later versions know what they are reading. */
    sc_put_be32(b, SC_SCHEMA_VERSION);
    rocksdb_put_cf(r->db, r->wo_sync, r->cf[SC_CF_META], "schema", 6, (const char *)b, 4, &rerr);
    return sc_rocks_status(rerr, err, "write schema");
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
    return sc_rocks_status(rerr, err, "read sequence");
  if (v && n == 8)
    r->next_seq = sc_get_be64((const unsigned char *)v);
  rocksdb_free(v);
  return SC_OK;
}

/* The write-ahead log files in |dir|, for a message: those are what opening replays. */
static void wal_names(const char *dir, char *out, size_t cap)
{
  out[0] = 0;
  DIR *d = opendir(dir);
  if (!d)
    return;
  size_t at = 0;
  for (struct dirent *de; (de = readdir(d));) {
    size_t n = strlen(de->d_name);
    if (n > 4 && strcmp(de->d_name + n - 4, ".log") == 0 && at + n + 2 < cap)
      at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? ", " : "", de->d_name);
  }
  closedir(d);
}

int sc_rocks_open_db(struct rstore *r, bool read_only, struct sc_err *err)
{
  const char *dir = r->dir;
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
  if (!r->all_cf)
    sc_panic("out of memory opening the store");
  if (read_only)
    r->db = rocksdb_open_for_read_only_column_families(r->opts, dir, n, names, cf_opts, r->all_cf, 0, &rerr);
  else
    r->db = rocksdb_open_column_families(r->opts, dir, n, names, cf_opts, r->all_cf, &rerr);
  if (existing)
    rocksdb_list_column_families_destroy(existing, n_existing);
  if (rerr) {
    if (strncmp(rerr, "Corruption", 10) == 0) {
      char logs[512];
      wal_names(dir, logs, sizeof logs);
      sc_err_set(err, SC_ECORRUPT,
                 "cannot open the store in %s: %s; refusing to start rather than lose acknowledged state "
                 "(write-ahead log files replayed at start: %s; see docs/storage.md on corruption)",
                 dir, rerr, logs[0] ? logs : "none");
    } else {
      sc_err_set(err, strstr(rerr, "No space left on device") ? SC_ENOSPACE : SC_EIO,
                 "cannot open the store in %s: %s", dir, rerr);
    }
    rocksdb_free(rerr);
    r->db = NULL;
    free(r->all_cf);
    r->all_cf = NULL;
    return err->code;
  }
  r->n_all_cf = n;
  for (int i = 0; i < SC_CF_COUNT; i++)
    r->cf[i] = r->all_cf[i];
  return SC_OK;
}

int sc_store_open_rocksdb(const char *dir, struct sc_store **out,
                          struct sc_err *err)
{
  struct rstore *r = calloc(1, sizeof *r);
  if (!r)
    sc_panic("out of memory opening the store");
  r->base.ops = &sc_rocks_ops;
  r->next_seq = 1;
  pthread_rwlock_init(&r->lock, NULL);
  r->dir = strdup(dir);
  struct stat st;
  if (!r->dir)
    sc_panic("out of memory opening the store");
  if (make_dirs(dir, err) != SC_OK || stat(dir, &st) != 0) {
    if (!err->code)
      sc_err_set(err, SC_EIO, "cannot open the data directory %s: %s", dir, strerror(errno));
    free(r->dir);
    pthread_rwlock_destroy(&r->lock);
    free(r);
    return SC_EIO;
  }
  r->dir_dev = st.st_dev;
  r->dir_ino = st.st_ino;
  r->opts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(r->opts, 1);
  rocksdb_options_set_create_missing_column_families(r->opts, 1);
  rocksdb_options_increase_parallelism(r->opts, 2);
  rocksdb_options_set_max_background_jobs(r->opts, 2);
  /* Memtables are the sidecar's largest memory user and what a restart replays from the WAL: cap them all
   * together, so RSS stays small with many idle instances and recovery reads little. */
  rocksdb_options_set_write_buffer_size(r->opts, 8u << 20);
  rocksdb_options_set_db_write_buffer_size(r->opts, 32u << 20);
  /* Every commit is synced, so the only damage a crash can leave in the WAL is a torn last record, which was
   * never acknowledged: tolerate that and nothing else. RocksDB's default (point in time) stops replaying at a
   * corrupt record in the middle and opens without everything after it, acknowledged or not. */
  rocksdb_options_set_wal_recovery_mode(r->opts, 0 /* kTolerateCorruptedTailRecords */);
  rocksdb_options_set_paranoid_checks(r->opts, 1);
  /* RocksDB's info LOG lives on the data disk; once a write to it fails (disk full), the next one aborts the
   * process in an assertion of Debian's librocksdb. At the header level it is written only when opening. */
  rocksdb_options_set_info_log_level(r->opts, 5 /* HEADER_LEVEL */);
  r->wo_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(r->wo_sync, 1);
  r->wo_nosync = rocksdb_writeoptions_create();
  r->ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_verify_checksums(r->ro, 1);
  int rc = sc_rocks_open_db(r, false, err);
  if (rc != SC_OK) {
    sc_rocks_rclose(&r->base);
    return rc;
  }
  rc = check_schema(r, dir, err);
  if (rc != SC_OK) {
    sc_rocks_rclose(&r->base);
    return rc;
  }
  r->wb = rocksdb_writebatch_create();
  *out = &r->base;
  return SC_OK;
}

int sc_rocks_wipe(struct sc_store *s, uint64_t next_seq, struct sc_err *err)
{
  struct rstore *r = RS(s);
  static unsigned char hi[SC_KEY_MAX + 16];
  memset(hi, 0xff, sizeof hi);
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
  if (next_seq > r->next_seq)
    r->next_seq = next_seq;
  sc_put_be64(v, r->next_seq);
  rocksdb_writebatch_put_cf(b, r->cf[SC_CF_META], "seq", 3, (const char *)v, 8);
  char *rerr = NULL;
  rocksdb_write(r->db, r->wo_sync, b, &rerr);
  rocksdb_writebatch_destroy(b);
  bool failed = rerr != NULL;
  int rc = sc_rocks_status(rerr, err, "wipe");
  if (failed) { /* RocksDB takes no more writes until reopened (reopen.c) */
    r->failed = true;
    r->fail_code = rc;
  }
  return rc;
}

int64_t sc_rocks_property(struct sc_store *s, const char *name)
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

uint64_t sc_rocks_seq_start(struct sc_store *s)
{
  return RS(s)->next_seq;
}
