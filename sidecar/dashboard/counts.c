/*
 * Instances by status for the dashboard, counted on a thread of its own: counting scans the store's status index,
 * which takes about a second at a million instances, and the ops thread that serves /healthz and /readyz must not
 * wait for it. A request gets the last count at once and, when that count is older than ten times what it cost
 * (as /metrics does), starts a new one for the requests after it.
 */
#include "internal.h"

#include "common/log.h"
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
};

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
    pthread_mutex_lock(&c->mu);
    c->want = false;
    if (rc == SC_OK) {
      memcpy(c->by_status, v, sizeof v);
      c->have = true;
    }
    /* A failed count is tried again no sooner than a successful one would be. */
    c->counted_us = t1;
    c->cost_us = t1 - t0;
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
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}
