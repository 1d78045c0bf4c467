/*
 * Leases: a work item handed to a worker, keyed by its completion token, until the worker completes or abandons
 * it, or its stream goes away. Leases live only in memory: a restart drops every stream anyway, and whatever
 * was never completed is still in the durable inbox or activity queue and is dispatched again.
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPLIED_RING 8192
#define MAX_BACKOFF_S 300

void lease_free(struct sc_lease *l)
{
  for (size_t i = 0; i < l->npartials; i++)
    free(l->partials[i]);
  free(l->partials);
  free(l->partial_lens);
  free(l->iid);
  free(l->exec);
  free(l->task_key);
  sc_arena_free(&l->arena);
  free(l);
}

void leases_init(struct sc_engine *e)
{
  sc_map_init(&e->orch_leases);
  sc_map_init(&e->leases);
  sc_map_init(&e->act_by_task);
  sc_map_init(&e->backoff);
  sc_map_init(&e->applied_set);
  e->applied_cap = APPLIED_RING;
  e->applied = calloc(APPLIED_RING, sizeof *e->applied);
  if (!e->applied)
    sc_panic("out of memory");
}

void leases_free(struct sc_engine *e)
{
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->leases))) {
    struct sc_lease *l = sc_map_value(it);
    sc_map_remove(&e->leases, l->token);
    lease_free(l);
  }
  for (size_t i = 0; i < e->applied_cap; i++)
    free(e->applied[i]);
  free(e->applied);
  sc_map_free(&e->applied_set);
  sc_map_free(&e->orch_leases);
  sc_map_free(&e->leases);
  sc_map_free(&e->act_by_task);
  sc_map_free(&e->backoff);
}

static void applied_add(struct sc_engine *e, const char *token)
{
  char *old = e->applied[e->applied_pos];
  if (old) {
    sc_map_remove(&e->applied_set, old);
    free(old);
  }
  e->applied[e->applied_pos] = xstrdup(token);
  sc_map_put(&e->applied_set, e->applied[e->applied_pos], (void *)1);
  e->applied_pos = (e->applied_pos + 1) % e->applied_cap;
}

struct sc_lease *lease_new(struct sc_engine *e, enum lease_kind kind,
                                  struct sc_stream *s, const char *iid,
                                  const char *exec)
{
  struct sc_lease *l = calloc(1, sizeof *l);
  if (!l)
    sc_panic("out of memory");
  l->kind = kind;
  snprintf(l->token, sizeof l->token, "%s-%c%llu", e->boot, kind == LEASE_ORCH ? 'o' : 'a',
           (unsigned long long)++e->token_seq);
  l->iid = xstrdup(iid);
  l->exec = xstrdup(exec ? exec : "");
  sc_arena_init(&l->arena);
  l->stream = s;
  return l;
}

void lease_attach(struct sc_engine *e, struct sc_lease *l)
{
  struct sc_stream *s = l->stream;
  l->snext = s->leases;
  l->sprev = NULL;
  if (s->leases)
    s->leases->sprev = l;
  s->leases = l;
  if (l->kind == LEASE_ORCH) {
    s->n_orch++;
    sc_map_put(&e->orch_leases, l->iid, l);
  } else {
    s->n_act++;
    if (l->task_key)
      sc_map_put(&e->act_by_task, l->task_key, l);
  }
  sc_map_put(&e->leases, l->token, l);
}

void lease_detach_stream(struct sc_lease *l)
{
  struct sc_stream *s = l->stream;
  if (!s)
    return;
  if (l->sprev)
    l->sprev->snext = l->snext;
  else
    s->leases = l->snext;
  if (l->snext)
    l->snext->sprev = l->sprev;
  if (l->kind == LEASE_ORCH)
    s->n_orch--;
  else
    s->n_act--;
  l->stream = NULL;
  l->snext = l->sprev = NULL;
}

/* Ends a lease: after a completion (`applied`: its token answers OK from now on) or an abandon. */
void lease_release(struct sc_engine *e, struct sc_lease *l, bool applied)
{
  lease_detach_stream(l);
  sc_map_remove(&e->leases, l->token);
  if (l->kind == LEASE_ORCH) {
    if (sc_map_get(&e->orch_leases, l->iid) == l)
      sc_map_remove(&e->orch_leases, l->iid);
  } else if (l->task_key && sc_map_get(&e->act_by_task, l->task_key) == l) {
    sc_map_remove(&e->act_by_task, l->task_key);
  }
  if (applied)
    applied_add(e, l->token);
  lease_free(l);
}

static int64_t backoff_delay(struct sc_engine *e, const char *key)
{
  uintptr_t n = (uintptr_t)sc_map_get(&e->backoff, key) + 1;
  sc_map_put(&e->backoff, key, (void *)n);
  /* The first retry is immediate, then one more second per retry, at most five minutes. */
  int64_t s = n <= 1 ? 0 : (int64_t)(n - 1);
  return (s > MAX_BACKOFF_S ? MAX_BACKOFF_S : s) * 1000000;
}

/* Returns a lease's work to the queue (abandon, or a stream that stayed away past its grace). */
void lease_abandon(struct sc_engine *e, struct sc_lease *l, const char *why)
{
  int64_t now = sc_now_us();
  SC_INFO("event=work_item_abandoned token=%s instance=%s reason=%s", l->token, SC_Q(l->iid), why);
  atomic_fetch_add_explicit(&sc_metrics.abandoned[l->kind == LEASE_ORCH ? SC_WI_ORCH : SC_WI_ACT], 1,
                            memory_order_relaxed);
  pthread_mutex_lock(&e->mu);
  e->stats.abandoned++;
  pthread_mutex_unlock(&e->mu);
  if (l->kind == LEASE_ORCH) {
    int64_t d = backoff_delay(e, l->iid);
    if (d == 0)
      mark_dirty(e, l->iid);
    else
      delay(e, now + d, D_READY, l->iid, 0);
  } else {
    char key[32];
    snprintf(key, sizeof key, "a%llu", (unsigned long long)l->act_seq);
    int64_t d = backoff_delay(e, key);
    if (d == 0)
      new_activity(e, l->act_seq);
    else
      delay(e, now + d, D_ACT, NULL, l->act_seq);
  }
  lease_release(e, l, false);
}

bool work_is_leased(struct sc_engine *e, const char *iid)
{
  return sc_map_get(&e->orch_leases, iid) != NULL;
}

struct sc_lease *find_lease(struct sc_engine *e, enum lease_kind kind, const char *token,
                                   const char *fallback)
{
  struct sc_lease *l = NULL;
  if (token && token[0])
    l = sc_map_get(&e->leases, token);
  else if (fallback)
    l = sc_map_get(kind == LEASE_ORCH ? &e->orch_leases : &e->act_by_task, fallback);
  return l && l->kind == kind ? l : NULL;
}

int unknown_token(struct sc_engine *e, struct sc_cmd *c, const char *token, const char *what)
{
  if (token && token[0] && sc_map_get(&e->applied_set, token))
    return DONE; /* a repeat of a completion already applied */
  if (token && token[0])
    return fail(c, SC_ENOTFOUND, "unknown or expired completion token %s", token);
  return fail(c, SC_ENOTFOUND, "no work item in flight for %s", what);
}
