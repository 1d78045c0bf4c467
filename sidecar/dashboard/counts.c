/*
 * The dashboard's counts: instances by status and by orchestration name, from the counter /metrics uses
 * (ops/counts.h, owned by the ops server), which counts on a thread of its own so that the ops thread serving
 * /healthz and /readyz never waits for a scan. A request gets the last count at once and asks for a new one of
 * each kind that is older than ten times what it cost; a count by name (every record read) is as old as the last
 * such pass, and says so.
 */
#include "internal.h"

#include "common/log.h"
#include "ops/counts.h"

#include <stdlib.h>
#include <string.h>

struct dash_counts {
  struct sc_counts *shared; /* NULL: nothing is counted, the API says "counting" */
};

struct dash_counts *dash_counts_new(struct sc_counts *shared)
{
  struct dash_counts *c = calloc(1, sizeof *c);
  if (!c)
    sc_panic("out of memory starting the dashboard's counts");
  c->shared = shared;
  return c;
}

bool dash_counts_get(struct dash_counts *c, struct sc_store *st, uint64_t out[8], int64_t *age_us)
{
  if (!c->shared || !st->ops->count_by_status)
    return false;
  struct sc_counts_totals t;
  /* Names too: the counts the page shows come with the names' table. */
  sc_counts_get(c->shared, SC_COUNT_TOTALS | SC_COUNT_NAMES, &t);
  if (!t.have)
    return false;
  memcpy(out, t.by_status, sizeof t.by_status);
  *age_us = t.age_us;
  return true;
}

struct json_object *dash_counts_names_json(struct dash_counts *c)
{
  struct sc_name_count *v;
  size_t n, distinct;
  int64_t age_us;
  if (!c->shared || !sc_counts_names(c->shared, &v, &n, &distinct, &age_us))
    return NULL;
  struct json_object *o = json_object_new_object();
  struct json_object *arr = json_object_new_array();
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "name", json_object_new_string(v[i].name));
    json_object_object_add(e, "total", json_object_new_uint64(v[i].total));
    struct json_object *bs = json_object_new_object();
    for (int k = 0; k < 8; k++)
      if (v[i].by_status[k])
        json_object_object_add(bs, dash_status_name(k), json_object_new_uint64(v[i].by_status[k]));
    json_object_object_add(e, "byStatus", bs);
    json_object_array_add(arr, e);
  }
  json_object_object_add(o, "names", arr);
  json_object_object_add(o, "distinct", json_object_new_uint64(distinct));
  json_object_object_add(o, "countedAgoMillis", json_object_new_int64(age_us / 1000));
  sc_name_counts_free(v, n);
  return o;
}

void dash_counts_free(struct dash_counts *c)
{
  free(c);
}
