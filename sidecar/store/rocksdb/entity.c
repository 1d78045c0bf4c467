/* Entity records in the `entity` column family (see store.h): reading one, and paging through them by id. */
#include "rocks.h"

#include "common/log.h"

#include <stdlib.h>
#include <string.h>

int sc_rocks_get_entity(struct sc_store *s, const char *id, struct sc_arena *a, struct sc_blob *out)
{
  struct rstore *r = RS(s);
  struct sc_key k;
  sc_key_inst(&k, id);
  char *v;
  size_t n;
  int rc = sc_rocks_get(r, SC_CF_ENTITY, &k, r->ro, &v, &n);
  if (rc != SC_OK)
    return rc;
  if (!v)
    return SC_ENOTFOUND;
  out->b = sc_arena_alloc(a, n ? n : 1);
  memcpy(out->b, v, n);
  out->len = n;
  rocksdb_free(v);
  return SC_OK;
}

/* Messages waiting in |id|'s queue (its inbox), read at |snap|. */
static uint32_t backlog(struct rstore *r, const rocksdb_snapshot_t *snap, const char *id)
{
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, id);
  sc_key_iid_hi(&hi, id);
  struct sc_range it;
  sc_range_open(r, SC_CF_INBOX, snap, lo.b, lo.len, hi.b, hi.len, &it);
  uint32_t n = 0;
  for (; sc_range_valid(&it); rocksdb_iter_next(it.it))
    n++;
  sc_range_close(&it);
  return n;
}

int sc_rocks_query_entities(struct sc_store *s, const struct sc_entity_query *q, struct sc_arena *a,
                            struct sc_entity_page *out, struct sc_err *err)
{
  struct rstore *r = RS(s);
  memset(out, 0, sizeof *out);
  size_t pl = q->prefix ? strlen(q->prefix) : 0;
  /* From the later of the prefix and the key just after |after|; to the end of the prefix's range. */
  struct sc_key lo = {0}, hi = {0};
  const char *start = q->prefix ? q->prefix : "";
  if (q->after && strcmp(q->after, start) >= 0) {
    sc_key_inst(&lo, q->after);
    lo.b[lo.len++] = 0;
  } else {
    memcpy(lo.b, start, strlen(start));
    lo.len = strlen(start);
  }
  bool has_hi = false;
  if (pl) {
    /* The smallest key above every key with the prefix: the prefix with its last byte below 0xff raised. */
    memcpy(hi.b, q->prefix, pl);
    hi.len = pl;
    while (hi.len && hi.b[hi.len - 1] == 0xff)
      hi.len--;
    if (hi.len) {
      hi.b[hi.len - 1]++;
      has_hi = true;
    }
  }
  const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(r->db);
  struct sc_range it;
  sc_range_open(r, SC_CF_ENTITY, snap, lo.b, lo.len, has_hi ? hi.b : NULL, hi.len, &it);
  size_t cap = q->page_size ? q->page_size : 1;
  out->rows = sc_arena_alloc(a, cap * sizeof *out->rows);
  size_t budget = q->max_scan ? q->max_scan : q->page_size * 100 + 100, scanned = 0;
  char examined[SC_MAX_ID + 1]; /* the last key looked at */
  bool budget_hit = false;
  int rc = SC_OK;
  for (; sc_range_valid(&it) && out->n < q->page_size; rocksdb_iter_next(it.it)) {
    if (scanned++ >= budget) {
      budget_hit = true;
      break;
    }
    size_t kl, vl;
    const char *key = rocksdb_iter_key(it.it, &kl);
    const char *val = rocksdb_iter_value(it.it, &vl);
    if (kl > SC_MAX_ID)
      continue;
    memcpy(examined, key, kl);
    examined[kl] = 0;
    StoredEntity *ent = NULL;
    if (sc_rocks_unpack(&taskhubd__store__stored_entity__descriptor, val, vl, a, (void **)&ent) != SC_OK)
      continue; /* logged; a corrupt record is left for an operator, not a reason to fail every query */
    if (!ent->has_state && !q->include_transient)
      continue;
    if ((q->has_from && ent->last_modified_us < q->from_us) || (q->has_to && ent->last_modified_us >= q->to_us))
      continue;
    struct sc_entity_row *row = &out->rows[out->n++];
    row->id = sc_arena_strndup(a, key, kl);
    row->rec.b = sc_arena_alloc(a, vl ? vl : 1);
    memcpy(row->rec.b, val, vl);
    row->rec.len = vl;
    row->backlog = backlog(r, snap, row->id);
  }
  /* More may follow when the page filled or the scan budget ran out before the range did: the next page starts
   * after the last row returned, or after the last record examined. */
  if (budget_hit)
    out->next_after = sc_arena_strndup(a, examined, strlen(examined));
  else if (sc_range_valid(&it) && out->n)
    out->next_after = out->rows[out->n - 1].id;
  rc = sc_range_close(&it);
  rocksdb_release_snapshot(r->db, snap);
  if (rc != SC_OK)
    sc_err_set(err, rc, "reading entities failed");
  return rc;
}

int sc_rocks_count_entities(struct sc_store *s, uint64_t *with_state, uint64_t *transient, uint64_t *queued,
                            struct sc_err *err)
{
  struct rstore *r = RS(s);
  *with_state = *transient = *queued = 0;
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_range it;
  sc_range_open(r, SC_CF_ENTITY, NULL, "", 0, NULL, 0, &it);
  for (; sc_range_valid(&it); rocksdb_iter_next(it.it)) {
    size_t vl;
    const char *val = rocksdb_iter_value(it.it, &vl);
    StoredEntity *ent = NULL;
    if (sc_rocks_unpack(&taskhubd__store__stored_entity__descriptor, val, vl, &a, (void **)&ent) == SC_OK)
      (*(ent->has_state ? with_state : transient))++;
    sc_arena_reset(&a);
  }
  int rc = sc_range_close(&it);
  /* Entity ids start with '@' (0x40), and no instance id does: the queues are the inbox keys in ['@', 'A'). */
  if (rc == SC_OK) {
    sc_range_open(r, SC_CF_INBOX, NULL, "@", 1, "A", 1, &it);
    for (; sc_range_valid(&it); rocksdb_iter_next(it.it))
      (*queued)++;
    rc = sc_range_close(&it);
  }
  sc_arena_free(&a);
  if (rc != SC_OK)
    sc_err_set(err, rc, "counting entities failed");
  return rc;
}
