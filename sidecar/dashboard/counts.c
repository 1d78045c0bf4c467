/*
 * Instances by status for the dashboard, counted on a thread of its own: counting scans the store's status index,
 * which takes about a second at a million instances, and the ops thread that serves /healthz and /readyz must not
 * wait for it. A request gets the last count at once and, when that count is older than ten times what it cost
 * (as /metrics does), starts a new one for the requests after it.
 *
 * The same thread counts instances by orchestration name (and status): no index holds names, so it reads every
 * record, a query page of 1,000 at a time, which at a million instances takes seconds rather than one; a count by
 * name is therefore as old as the last such pass, and says so.
 */
#include "internal.h"

#include "common/log.h"
#include "common/map.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

struct dash_counts {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th;
  bool started, stop, want;
  struct sc_store *st;
  bool have;
  uint64_t by_status[8];
  int64_t counted_us, cost_us;
  /* By name: the most frequent names, most first, as of names_us. */
  struct name_count *names;
  size_t n_names, distinct_names;
  bool have_names;
  int64_t names_us;
};

#define NAMES_PAGE 1000
#define MAX_NAMES 100 /* names reported; the rest are counted in distinct_names only */

struct name_count {
  char *name;
  uint64_t total;
  uint64_t by_status[8];
};

static int by_total(const void *a, const void *b)
{
  const struct name_count *x = a, *y = b;
  if (x->total != y->total)
    return x->total > y->total ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void names_free(struct name_count *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i].name);
  free(v);
}

/* Every instance's record, page by page, tallied by name: the MAX_NAMES most frequent in *out (caller frees). */
static int count_names(struct sc_store *st, struct name_count **out, size_t *n, size_t *distinct, struct sc_err *err)
{
  struct sc_map m;
  sc_map_init(&m);
  struct sc_arena a;
  sc_arena_init(&a);
  unsigned char cursor[SC_CURSOR_MAX];
  size_t cursor_len = 0;
  bool more = true;
  int rc = SC_OK;
  while (more && rc == SC_OK) {
    struct sc_query q = {.index = SC_Q_CREATED, .page_size = NAMES_PAGE, .max_scan = NAMES_PAGE};
    if (cursor_len) {
      q.cursor = cursor;
      q.cursor_len = cursor_len;
    }
    struct sc_query_page p;
    rc = st->ops->query(st, &q, &a, &p, err);
    if (rc != SC_OK)
      break;
    for (size_t i = 0; i < p.n; i++) {
      const StoredInstance *r = p.rows[i].rec;
      struct name_count *c = sc_map_get(&m, r->name);
      if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
          sc_panic("out of memory counting instances by name");
        sc_map_put(&m, r->name, c);
      }
      c->total++;
      c->by_status[(unsigned)r->status & 7]++;
    }
    more = p.next_cursor != NULL && p.next_cursor_len <= sizeof cursor;
    if (more) {
      memcpy(cursor, p.next_cursor, p.next_cursor_len);
      cursor_len = p.next_cursor_len;
    }
    sc_arena_reset(&a);
  }
  sc_arena_free(&a);
  size_t k = 0;
  struct name_count *all = calloc(m.count ? m.count : 1, sizeof *all);
  if (!all)
    sc_panic("out of memory counting instances by name");
  for (struct sc_map_entry *it = sc_map_first(&m); it; it = sc_map_next(&m, it)) {
    struct name_count *c = sc_map_value(it);
    all[k] = *c;
    all[k].name = strdup(sc_map_key(it));
    if (!all[k].name)
      sc_panic("out of memory counting instances by name");
    k++;
    free(c);
  }
  sc_map_free(&m);
  qsort(all, k, sizeof *all, by_total);
  *distinct = k;
  if (k > MAX_NAMES) {
    for (size_t i = MAX_NAMES; i < k; i++)
      free(all[i].name);
    k = MAX_NAMES;
  }
  if (rc != SC_OK) {
    names_free(all, k);
    return rc;
  }
  *out = all;
  *n = k;
  return SC_OK;
}

static void *counter(void *arg)
{
  struct dash_counts *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->want && !c->stop)
      pthread_cond_wait(&c->cv, &c->mu);
    if (c->stop)
      break;
    struct sc_store *st = c->st;
    pthread_mutex_unlock(&c->mu);
    uint64_t v[8];
    struct sc_err err = {0};
    int64_t t0 = sc_mono_us();
    int rc = st->ops->count_by_status(st, v, &err);
    int64_t t1 = sc_mono_us();
    if (rc != SC_OK)
      SC_WARN("event=dashboard_count_failed error=%s", SC_Q(err.msg));
    struct name_count *names = NULL;
    size_t n_names = 0, distinct = 0;
    struct sc_err nerr = {0};
    int nrc = count_names(st, &names, &n_names, &distinct, &nerr);
    if (nrc != SC_OK)
      SC_WARN("event=dashboard_count_names_failed error=%s", SC_Q(nerr.msg));
    int64_t t2 = sc_mono_us();
    pthread_mutex_lock(&c->mu);
    if (nrc == SC_OK) {
      names_free(c->names, c->n_names);
      c->names = names;
      c->n_names = n_names;
      c->distinct_names = distinct;
      c->have_names = true;
      c->names_us = t2;
    }
    c->want = false;
    if (rc == SC_OK) {
      memcpy(c->by_status, v, sizeof v);
      c->have = true;
    }
    /* A failed count is tried again no sooner than a successful one would be. */
    c->counted_us = t1;
    c->cost_us = t2 - t0; /* both counts: the next pass waits ten times what this one cost */
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

struct dash_counts *dash_counts_new(void)
{
  struct dash_counts *c = calloc(1, sizeof *c);
  if (!c)
    sc_panic("out of memory starting the dashboard's counter");
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  return c;
}

bool dash_counts_get(struct dash_counts *c, struct sc_store *st, uint64_t out[8], int64_t *age_us)
{
  if (!st->ops->count_by_status)
    return false;
  pthread_mutex_lock(&c->mu);
  if (!c->started && !c->stop) {
    if (pthread_create(&c->th, NULL, counter, c) != 0)
      sc_panic("cannot start the dashboard's counting thread");
    c->started = true;
  }
  int64_t now = sc_mono_us();
  if (!c->want && (!c->counted_us || now - c->counted_us > 10 * c->cost_us)) {
    c->st = st;
    c->want = true;
    pthread_cond_signal(&c->cv);
  }
  bool have = c->have;
  if (have) {
    memcpy(out, c->by_status, sizeof c->by_status);
    *age_us = now - c->counted_us;
  }
  pthread_mutex_unlock(&c->mu);
  return have;
}

struct json_object *dash_counts_names_json(struct dash_counts *c)
{
  pthread_mutex_lock(&c->mu);
  if (!c->have_names) {
    pthread_mutex_unlock(&c->mu);
    return NULL;
  }
  struct json_object *o = json_object_new_object();
  struct json_object *arr = json_object_new_array();
  for (size_t i = 0; i < c->n_names; i++) {
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "name", json_object_new_string(c->names[i].name));
    json_object_object_add(e, "total", json_object_new_uint64(c->names[i].total));
    struct json_object *bs = json_object_new_object();
    for (int k = 0; k < 8; k++)
      if (c->names[i].by_status[k])
        json_object_object_add(bs, dash_status_name(k), json_object_new_uint64(c->names[i].by_status[k]));
    json_object_object_add(e, "byStatus", bs);
    json_object_array_add(arr, e);
  }
  json_object_object_add(o, "names", arr);
  json_object_object_add(o, "distinct", json_object_new_uint64(c->distinct_names));
  json_object_object_add(o, "countedAgoMillis", json_object_new_int64((sc_mono_us() - c->names_us) / 1000));
  pthread_mutex_unlock(&c->mu);
  return o;
}

void dash_counts_stop(struct dash_counts *c)
{
  pthread_mutex_lock(&c->mu);
  c->stop = true;
  pthread_cond_signal(&c->cv);
  bool join = c->started;
  c->started = false;
  pthread_mutex_unlock(&c->mu);
  if (join)
    pthread_join(c->th, NULL);
}

void dash_counts_free(struct dash_counts *c)
{
  if (!c)
    return;
  names_free(c->names, c->n_names);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}
