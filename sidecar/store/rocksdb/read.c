/*
 * Committed reads of the RocksDB backend. Reads that return several things (a history slice with its record)
 * read them at one snapshot.
 */
#include "rocks.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Values are copied into |a| NUL-terminated (payloads are handed out as strings). */
static uint8_t *copy(struct sc_arena *a, const char *v, size_t n)
{
  return (uint8_t *)sc_arena_strndup(a, v, n);
}

int sc_rocks_get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob *out)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_inst(&k, iid);
  char *v;
  size_t n;
  int rc = sc_rocks_get(r, SC_CF_INST, &k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (!v)
    return SC_ENOTFOUND;
  out->b = copy(a, v, n);
  out->len = n;
  rocksdb_free(v);
  return SC_OK;
}

int sc_rocks_get_payload(struct sc_store *s, const char *iid, int kind, struct sc_arena *a, char **data,
                         size_t *len)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_payload(&k, iid, kind);
  char *v;
  size_t n;
  int rc = sc_rocks_get(r, SC_CF_PAYLOAD, &k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (!v)
    return SC_ENOTFOUND;
  *data = (char *)copy(a, v, n);
  *len = n;
  rocksdb_free(v);
  return SC_OK;
}

/* Grows an arena array of |size|-byte elements to hold one more. */
static void *grow(struct sc_arena *a, void *v, size_t n, size_t *cap, size_t size)
{
  if (n < *cap)
    return v;
  size_t nc = *cap ? *cap * 2 : 16;
  void *nv = sc_arena_alloc(a, nc * size);
  if (n)
    memcpy(nv, v, n * size);
  *cap = nc;
  return nv;
}

int sc_rocks_history_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob **out, size_t *n)
{
  struct rstore *r = RS(s);
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  struct sc_range ri;
  sc_range_open(r, SC_CF_HIST, NULL, lo.b, lo.len, hi.b, hi.len, &ri);
  struct sc_blob *evs = NULL;
  size_t cnt = 0, cap = 0;
  int rc = SC_OK;
  for (; sc_range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl, vl;
    const unsigned char *key = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    const char *v = rocksdb_iter_value(ri.it, &vl);
    if (kl != lo.len + 4 || sc_get_be32(key + lo.len) != cnt) {
      SC_ERROR("event=store_corrupt what=history_gap instance=%s index=%zu", SC_Q(iid), cnt);
      rc = SC_ECORRUPT; /* event i lives at index i, with no gaps */
      break;
    }
    evs = grow(a, evs, cnt, &cap, sizeof *evs);
    evs[cnt].b = copy(a, v, vl);
    evs[cnt].len = vl;
    cnt++;
  }
  int rc2 = sc_range_close(&ri);
  *out = evs;
  *n = cnt;
  return rc != SC_OK ? rc : rc2;
}

int sc_rocks_history_range(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
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
  int rc = sc_rocks_get(r, SC_CF_INST, &k, ro, &v, &vl);
  if (rc == SC_OK && !v)
    rc = SC_ENOTFOUND;
  if (rc == SC_OK) {
    rc = sc_rocks_unpack(&taskhubd__store__stored_instance__descriptor, v, vl, a, (void **)&out->rec);
    rocksdb_free(v);
  }
  if (rc == SC_OK) {
    sc_key_payload(&k, iid, SC_PAYLOAD_HISTORY_GEN);
    rc = sc_rocks_get(r, SC_CF_PAYLOAD, &k, ro, &v, &vl);
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
    struct sc_range ri;
    sc_range_open(r, SC_CF_HIST, snap, lo.b, lo.len, hi.b, hi.len, &ri);
    out->events = sc_arena_alloc(a, max_events * sizeof *out->events);
    for (; rc == SC_OK && out->n < max_events && sc_range_valid(&ri); rocksdb_iter_next(ri.it)) {
      size_t kl;
      const unsigned char *key = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
      const char *ev = rocksdb_iter_value(ri.it, &vl);
      if (kl != lo.len || sc_get_be32(key + lo.len - 4) != from + out->n) {
        rc = SC_ECORRUPT; /* event i lives at index i, with no gaps */
        break;
      }
      if (out->n > 0 && out->bytes + vl > max_bytes)
        break;
      rc = sc_rocks_unpack(&history_event__descriptor, ev, vl, a, (void **)&out->events[out->n]);
      if (rc == SC_OK) {
        out->n++;
        out->bytes += vl;
      }
    }
    int rc2 = sc_range_close(&ri);
    if (rc == SC_OK)
      rc = rc2;
  }
  rocksdb_release_snapshot(r->db, snap);
  return rc;
}

int sc_rocks_inbox_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_blob **out,
                        size_t *n)
{
  struct rstore *r = RS(s);
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  struct sc_range ri;
  sc_range_open(r, SC_CF_INBOX, NULL, lo.b, lo.len, hi.b, hi.len, &ri);
  struct sc_inbox_blob *msgs = NULL;
  size_t cnt = 0, cap = 0;
  int rc = SC_OK;
  for (; sc_range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl, vl;
    const unsigned char *k = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    const char *v = rocksdb_iter_value(ri.it, &vl);
    if (kl != lo.len + 9) {
      rc = SC_ECORRUPT;
      break;
    }
    msgs = grow(a, msgs, cnt, &cap, sizeof *msgs);
    msgs[cnt].band = k[lo.len];
    msgs[cnt].seq = sc_get_be64(k + lo.len + 1);
    msgs[cnt].msg.b = copy(a, v, vl);
    msgs[cnt].msg.len = vl;
    cnt++;
  }
  int rc2 = sc_range_close(&ri);
  *out = msgs;
  *n = cnt;
  return rc != SC_OK ? rc : rc2;
}

static int get_msg(struct rstore *r, int cf, const struct sc_key *k, const ProtobufCMessageDescriptor *d,
                   struct sc_arena *a, void **out)
{
  char *v;
  size_t n;
  int rc = sc_rocks_get(r, cf, k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (!v)
    return SC_ENOTFOUND;
  rc = sc_rocks_unpack(d, v, n, a, out);
  rocksdb_free(v);
  return rc;
}

int sc_rocks_timer_get(struct sc_store *s, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out)
{
  struct sc_key k;
  sc_key_timer(&k, due_us, seq);
  return get_msg(RS(s), SC_CF_TIMER, &k, &taskhubd__store__stored_timer__descriptor, a, (void **)out);
}

int sc_rocks_actq_get(struct sc_store *s, uint64_t seq, struct sc_arena *a, StoredActivity **out)
{
  struct sc_key k;
  sc_key_actq(&k, seq);
  return get_msg(RS(s), SC_CF_ACTQ, &k, &taskhubd__store__stored_activity__descriptor, a, (void **)out);
}

int sc_rocks_children(struct sc_store *s, const char *parent, sc_child_fn fn, void *ctx)
{
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, parent);
  sc_key_iid_hi(&hi, parent);
  struct sc_range ri;
  sc_range_open(RS(s), SC_CF_IX_PARENT, NULL, lo.b, lo.len, hi.b, hi.len, &ri);
  int rc = SC_OK;
  char iid[SC_MAX_ID + 1];
  for (; rc == SC_OK && sc_range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl;
    const char *k = rocksdb_iter_key(ri.it, &kl);
    if (kl - lo.len > SC_MAX_ID) {
      rc = SC_ECORRUPT;
      break;
    }
    memcpy(iid, k + lo.len, kl - lo.len);
    iid[kl - lo.len] = 0;
    rc = fn(iid, ctx);
  }
  int rc2 = sc_range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

int sc_rocks_timer_scan(struct sc_store *s, int part, sc_timer_fn fn, void *ctx)
{
  (void)part; /* the only partition */
  struct sc_range ri;
  sc_range_open(RS(s), SC_CF_TIMER, NULL, "", 0, NULL, 0, &ri);
  struct sc_arena a;
  sc_arena_init(&a);
  int rc = SC_OK;
  for (; rc == SC_OK && sc_range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl, vl;
    const unsigned char *k = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    const char *v = rocksdb_iter_value(ri.it, &vl);
    if (kl != 16) {
      rc = SC_ECORRUPT;
      break;
    }
    struct sc_timer_row row = {sc_key_get_ts(k), sc_get_be64(k + 8), NULL};
    rc = sc_rocks_unpack(&taskhubd__store__stored_timer__descriptor, v, vl, &a, (void **)&row.timer);
    if (rc == SC_OK)
      rc = fn(&row, ctx);
    sc_arena_reset(&a);
  }
  sc_arena_free(&a);
  int rc2 = sc_range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

int sc_rocks_actq_scan(struct sc_store *s, int part, sc_seq_fn fn, void *ctx)
{
  (void)part; /* the only partition */
  struct sc_range ri;
  sc_range_open(RS(s), SC_CF_ACTQ, NULL, "", 0, NULL, 0, &ri);
  int rc = SC_OK;
  for (; rc == SC_OK && sc_range_valid(&ri); rocksdb_iter_next(ri.it)) {
    size_t kl;
    const unsigned char *k = (const unsigned char *)rocksdb_iter_key(ri.it, &kl);
    rc = kl == 8 ? fn(sc_get_be64(k), ctx) : SC_ECORRUPT;
  }
  int rc2 = sc_range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

/* Visits each instance with inbox messages once: after the first key of an instance, seek past its range. */
int sc_rocks_inbox_scan_instances(struct sc_store *s, int part, sc_child_fn fn, void *ctx)
{
  (void)part; /* the only partition */
  struct sc_range ri;
  sc_range_open(RS(s), SC_CF_INBOX, NULL, "", 0, NULL, 0, &ri);
  int rc = SC_OK;
  char iid[SC_MAX_ID + 1];
  while (rc == SC_OK && sc_range_valid(&ri)) {
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
  int rc2 = sc_range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}
