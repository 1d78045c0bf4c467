/*
 * QueryInstances, ListInstanceIds and purge by filter page through the instance records (by id prefix) or the
 * time indexes (by creation or completion, one iterator per wanted status merged in order), at one snapshot per
 * page, examining at most max_scan entries.
 */
#include "rocks.h"

#include "common/log.h"

#include <string.h>

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
 * Prefix queries walk the instance records in id order (or its reverse). The cursor is the last id returned, or,
 * when the scan budget runs out first, the last id examined.
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
  struct sc_range ri;
  if (!q->descending)
    sc_range_open(r, SC_CF_INST, snap, lo.b, lo.len, has_hi ? hi.b : NULL, hi.len, &ri);
  else if (q->cursor)
    sc_range_open_back(r, SC_CF_INST, snap, q->prefix, pl, q->cursor, q->cursor_len, &ri);
  else
    sc_range_open_back(r, SC_CF_INST, snap, q->prefix, pl, has_hi ? hi.b : NULL, hi.len, &ri);
  int rc = SC_OK;
  size_t budget = scan_budget(q), scanned = 0;
  while (sc_range_valid(&ri)) {
    size_t kl, vl;
    const char *k = rocksdb_iter_key(ri.it, &kl);
    if (kl < pl || memcmp(k, q->prefix, pl) != 0)
      break;
    const char *v = rocksdb_iter_value(ri.it, &vl);
    StoredInstance *rec;
    rc = sc_rocks_unpack(&taskhubd__store__stored_instance__descriptor, v, vl, a, (void **)&rec);
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
      sc_range_next(&ri);
      if (!sc_range_valid(&ri) || (k = rocksdb_iter_key(ri.it, &kl), kl < pl || memcmp(k, q->prefix, pl) != 0)) {
        out->next_cursor = NULL;
        out->next_cursor_len = 0;
      }
      break;
    }
    sc_range_next(&ri);
  }
  int rc2 = sc_range_close(&ri);
  return rc != SC_OK ? rc : rc2;
}

/*
 * Index queries: one iterator per wanted status over `ix_status` (or a single one over `ix_created` /
 * `ix_completed`), merged by (time, id), or walked backwards and merged newest first. The cursor is the last
 * (time, id) returned, or, when the scan budget runs out first, the last one examined.
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
  struct sc_range its[MAX_MERGE];
  size_t off = by_status ? 1 : 0; /* the status byte before (time, id) */
  for (size_t i = 0; i < nit; i++) {
    struct sc_key lo, hi;
    lo.len = hi.len = 0;
    if (by_status) {
      lo.b[lo.len++] = (unsigned char)q->statuses[i];
      hi.b[hi.len++] = (unsigned char)q->statuses[i];
    }
    if (q->descending) {
      /* Keys from the status's (and from_us's) first, back from the cursor, to_us, or the status's end. */
      if (q->has_from) {
        sc_key_ts(lo.b + lo.len, q->from_us);
        lo.len += 8;
      }
      bool has_before = true;
      if (q->cursor) {
        memcpy(hi.b + hi.len, q->cursor, q->cursor_len);
        hi.len += q->cursor_len;
      } else if (q->has_to) {
        sc_key_ts(hi.b + hi.len, q->to_us);
        hi.len += 8;
      } else if (by_status) {
        hi.b[0]++;
      } else {
        has_before = false;
      }
      sc_range_open_back(r, cf, snap, lo.len ? lo.b : NULL, lo.len, has_before ? hi.b : NULL, hi.len, &its[i]);
      continue;
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
    sc_range_open(r, cf, snap, lo.b, lo.len, has_hi ? hi.b : NULL, hi.len, &its[i]);
  }
  int rc = SC_OK;
  size_t budget = scan_budget(q), scanned = 0;
  size_t pl = q->prefix ? strlen(q->prefix) : 0;
  for (;;) {
    /* Pick the iterator with the smallest (time, id), or the largest walking backwards. */
    int best = -1;
    const char *bk = NULL;
    size_t bkl = 0;
    for (size_t i = 0; i < nit; i++) {
      if (!sc_range_valid(&its[i]))
        continue;
      size_t kl;
      const char *k = rocksdb_iter_key(its[i].it, &kl);
      if (best < 0) {
        best = (int)i, bk = k, bkl = kl;
        continue;
      }
      size_t m = kl - off < bkl - off ? kl - off : bkl - off;
      int c = memcmp(k + off, bk + off, m);
      if (c == 0)
        c = kl < bkl ? -1 : kl > bkl;
      if (q->descending ? c > 0 : c < 0)
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
      rc = sc_rocks_get(r, SC_CF_INST, &k, ro, &v, &vl);
      rocksdb_readoptions_destroy(ro);
      if (rc != SC_OK)
        break;
      if (!v) {
        SC_WARN("event=index_orphan cf=%s", sc_cf_names[cf]);
      } else {
        StoredInstance *rec;
        rc = sc_rocks_unpack(&taskhubd__store__stored_instance__descriptor, v, vl, a, (void **)&rec);
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
      sc_range_next(&its[best]);
      break;
    }
    sc_range_next(&its[best]);
  }
  /* A page whose iterators are exhausted is the last page after all. */
  if (out->next_cursor) {
    bool more = false;
    for (size_t i = 0; i < nit; i++)
      more |= sc_range_valid(&its[i]);
    if (!more) {
      out->next_cursor = NULL;
      out->next_cursor_len = 0;
    }
  }
  for (size_t i = 0; i < nit; i++) {
    int rc2 = sc_range_close(&its[i]);
    if (rc == SC_OK)
      rc = rc2;
  }
  return rc;
}

int sc_rocks_query(struct sc_store *s, const struct sc_query *q,
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


int sc_rocks_count_by_status(struct sc_store *s, uint64_t counts[8], struct sc_err *err)
{
  struct rstore *r = RS(s);
  memset(counts, 0, 8 * sizeof *counts);
  struct sc_range it;
  sc_range_open(r, SC_CF_IX_STATUS, NULL, "", 0, NULL, 0, &it);
  for (; sc_range_valid(&it); rocksdb_iter_next(it.it)) {
    size_t kl = 0;
    const char *k = rocksdb_iter_key(it.it, &kl);
    if (kl && (unsigned char)k[0] < 8)
      counts[(unsigned char)k[0]]++;
  }
  int rc = sc_range_close(&it);
  if (rc != SC_OK)
    sc_err_set(err, rc, "counting instances by status failed");
  return rc;
}
