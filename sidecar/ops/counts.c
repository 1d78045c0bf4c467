/* The task hub's counts, off the ops thread (counts.h). */
#include "counts.h"

#include "common/arena.h"
#include "common/log.h"
#include "common/map.h"
#include "common/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NAMES_PAGE 1000
#define MAX_NAMES 100 /* names reported; the rest are counted in distinct only */

/* One kind of count: when it may run again, and whether it is asked for or running now. */
struct kind {
  bool want, busy;
  bool failing;             /* the last attempt failed: the next failure is not logged again */
  int64_t tried_us, cost_us; /* the last attempt's end and duration */
};

struct sc_counts {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th;
  bool started;
  atomic_bool stop; /* read between pages of a count by name, without the lock */
  struct sc_store *st;
  struct kind totals, names;
  /* The last successful count of each kind. */
  struct sc_counts_totals t;
  int64_t counted_us;
  struct sc_name_count *by_name;
  size_t n_names, distinct;
  bool have_names;
  int64_t names_us;
};

static int by_total(const void *a, const void *b)
{
  const struct sc_name_count *x = a, *y = b;
  if (x->total != y->total)
    return x->total > y->total ? -1 : 1;
  return strcmp(x->name, y->name);
}

void sc_name_counts_free(struct sc_name_count *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i].name);
  free(v);
}

/* Every instance's record, page by page, tallied by name: the MAX_NAMES most frequent in *out (caller frees).
 * SC_ECANCELLED when asked to stop between pages. */
static int count_names(struct sc_counts *c, struct sc_store *st, struct sc_name_count **out, size_t *n,
                       size_t *distinct, struct sc_err *err)
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
    if (atomic_load(&c->stop)) {
      sc_err_set(err, SC_ECANCELLED, "stopping");
      rc = SC_ECANCELLED;
      break;
    }
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
      struct sc_name_count *nc = sc_map_get(&m, r->name);
      if (!nc) {
        nc = calloc(1, sizeof *nc);
        if (!nc)
          sc_panic("out of memory counting instances by name");
        sc_map_put(&m, r->name, nc);
      }
      nc->total++;
      nc->by_status[(unsigned)r->status & 7]++;
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
  struct sc_name_count *all = calloc(m.count ? m.count : 1, sizeof *all);
  if (!all)
    sc_panic("out of memory counting instances by name");
  for (struct sc_map_entry *it = sc_map_first(&m); it; it = sc_map_next(&m, it)) {
    struct sc_name_count *nc = sc_map_value(it);
    all[k] = *nc;
    all[k].name = strdup(sc_map_key(it));
    if (!all[k].name)
      sc_panic("out of memory counting instances by name");
    k++;
    free(nc);
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
    sc_name_counts_free(all, k);
    return rc;
  }
  *out = all;
  *n = k;
  return SC_OK;
}

/* A failure is logged once until a count succeeds again: a store that stays down would otherwise log at every
 * scrape. */
static void note(struct kind *k, int rc, const char *what, const struct sc_err *err)
{
  if (rc != SC_OK && rc != SC_ECANCELLED && !k->failing)
    SC_WARN("event=count_failed count=%s error=%s", what, SC_Q(err->msg));
  k->failing = rc != SC_OK;
}

/* Both counts of totals, without the lock. */
static int count_totals(struct sc_store *st, struct sc_counts_totals *t, struct sc_err *err)
{
  memset(t, 0, sizeof *t);
  int rc = st->ops->count_by_status(st, t->by_status, err);
  if (rc != SC_OK)
    return rc;
  t->have = true;
  if (st->ops->count_entities && st->ops->count_entities(st, &t->entities_with_state, &t->entities_transient,
                                                         &t->entity_ops_queued, err) == SC_OK)
    t->have_entities = true;
  return SC_OK;
}

static void *counter(void *arg)
{
  struct sc_counts *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->totals.want && !c->names.want && !atomic_load(&c->stop))
      pthread_cond_wait(&c->cv, &c->mu);
    if (atomic_load(&c->stop))
      break;
    struct sc_store *st = c->st;
    if (c->totals.want) {
      c->totals.want = false;
      c->totals.busy = true;
      pthread_mutex_unlock(&c->mu);
      struct sc_counts_totals t;
      struct sc_err err = {0};
      int64_t t0 = sc_mono_us();
      int rc = count_totals(st, &t, &err);
      int64_t t1 = sc_mono_us();
      SC_DEBUG("event=counted count=totals ok=%d micros=%lld", rc == SC_OK, (long long)(t1 - t0));
      pthread_mutex_lock(&c->mu);
      if (rc == SC_OK) {
        /* Entities that failed to count keep their last figures rather than vanish from /metrics. */
        if (!t.have_entities && c->t.have_entities) {
          t.have_entities = true;
          t.entities_with_state = c->t.entities_with_state;
          t.entities_transient = c->t.entities_transient;
          t.entity_ops_queued = c->t.entity_ops_queued;
        }
        t.cost_us = t1 - t0;
        c->t = t;
        c->counted_us = t1;
      }
      note(&c->totals, rc, "totals", &err);
      /* A failed count is tried again no sooner than a successful one would be. */
      c->totals.busy = false;
      c->totals.tried_us = t1;
      c->totals.cost_us = t1 - t0;
    }
    /* Names after totals in the same pass, so that a stream of scrapes cannot keep the dashboard from them. */
    if (!c->names.want || atomic_load(&c->stop))
      continue;
    c->names.want = false;
    c->names.busy = true;
    pthread_mutex_unlock(&c->mu);
    struct sc_name_count *names = NULL;
    size_t n = 0, distinct = 0;
    struct sc_err err = {0};
    int64_t t0 = sc_mono_us();
    int rc = count_names(c, st, &names, &n, &distinct, &err);
    int64_t t1 = sc_mono_us();
    SC_DEBUG("event=counted count=names ok=%d micros=%lld", rc == SC_OK, (long long)(t1 - t0));
    pthread_mutex_lock(&c->mu);
    if (rc == SC_OK) {
      sc_name_counts_free(c->by_name, c->n_names);
      c->by_name = names;
      c->n_names = n;
      c->distinct = distinct;
      c->have_names = true;
      c->names_us = t1;
    }
    note(&c->names, rc, "names", &err);
    c->names.busy = false;
    c->names.tried_us = t1;
    c->names.cost_us = t1 - t0;
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

struct sc_counts *sc_counts_new(void)
{
  struct sc_counts *c = calloc(1, sizeof *c);
  if (!c)
    sc_panic("out of memory starting the counter");
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  atomic_init(&c->stop, false);
  return c;
}

/* Under the lock: asks for kind |k| unless it is asked for, running, or younger than ten times its cost. */
static void ask(struct sc_counts *c, struct kind *k, int64_t now)
{
  if (k->want || k->busy || (k->tried_us && now - k->tried_us <= 10 * k->cost_us))
    return;
  k->want = true;
  pthread_cond_signal(&c->cv);
}

void sc_counts_attach(struct sc_counts *c, struct sc_store *st)
{
  if (!st->ops->count_by_status)
    return; /* nothing to count: readers get have == false */
  pthread_mutex_lock(&c->mu);
  if (!c->started && !atomic_load(&c->stop)) {
    c->st = st;
    if (pthread_create(&c->th, NULL, counter, c) != 0)
      sc_panic("cannot start the counting thread");
    c->started = true;
    ask(c, &c->totals, sc_mono_us());
  }
  pthread_mutex_unlock(&c->mu);
}

void sc_counts_get(struct sc_counts *c, unsigned want, struct sc_counts_totals *out)
{
  pthread_mutex_lock(&c->mu);
  int64_t now = sc_mono_us();
  if (c->started) {
    if (want & SC_COUNT_TOTALS)
      ask(c, &c->totals, now);
    if (want & SC_COUNT_NAMES)
      ask(c, &c->names, now);
  }
  *out = c->t;
  out->age_us = c->t.have ? now - c->counted_us : 0;
  pthread_mutex_unlock(&c->mu);
}

bool sc_counts_names(struct sc_counts *c, struct sc_name_count **out, size_t *n, size_t *distinct, int64_t *age_us)
{
  pthread_mutex_lock(&c->mu);
  bool have = c->have_names;
  if (have) {
    struct sc_name_count *v = calloc(c->n_names ? c->n_names : 1, sizeof *v);
    if (!v)
      sc_panic("out of memory copying the counts by name");
    for (size_t i = 0; i < c->n_names; i++) {
      v[i] = c->by_name[i];
      v[i].name = strdup(c->by_name[i].name);
      if (!v[i].name)
        sc_panic("out of memory copying the counts by name");
    }
    *out = v;
    *n = c->n_names;
    *distinct = c->distinct;
    *age_us = sc_mono_us() - c->names_us;
  }
  pthread_mutex_unlock(&c->mu);
  return have;
}

void sc_counts_stop(struct sc_counts *c)
{
  if (!c)
    return;
  pthread_mutex_lock(&c->mu);
  atomic_store(&c->stop, true);
  pthread_cond_signal(&c->cv);
  bool join = c->started;
  c->started = false;
  pthread_mutex_unlock(&c->mu);
  if (join)
    pthread_join(c->th, NULL);
}

void sc_counts_free(struct sc_counts *c)
{
  if (!c)
    return;
  sc_name_counts_free(c->by_name, c->n_names);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}
