/*
 * Leases: a work item handed to a worker, keyed by its completion token. Leases live only in memory: a restart
 * drops every stream anyway, and whatever was never completed is still in the durable inbox or activity queue
 * and is dispatched again. Delivery is at least once; applying a result is exactly once.
 *
 * The state machine. A unit of work is an orchestration instance (its inbox) or one queued activity.
 *
 *   queued ──dispatch──> ACTIVE lease (held by a connected stream; one per orchestration instance)
 *   ACTIVE ──its stream closes──> ORPHAN: the slot is free and the work is queued again at once, so a
 *          reconnected or different worker gets it now; until then, and for at most --orphan-grace, the
 *          orphan's token still completes it (a worker may finish over a new connection)
 *   ORPHAN ──its work is handed out again──> ended: the new work item's token is the valid one
 *   ACTIVE ──expires (--orchestration-lease / --activity-lease, renewed by signs of progress)──> ended, queued again
 *   any    ──completion applied──> ended; a repeat of it answers OK, any other token of the same work NOT_FOUND
 *   any    ──completion dropped (the instance ended, was replaced or purged meanwhile)──> ended
 *   any    ──completion refused (it contradicts its token), or it could not be applied──> ended, queued again
 *   any    ──abandoned by the worker──> ended, queued again after a backoff
 *   ACTIVE ──its instance is replaced or restarted──> ended (the old execution's result is of no use)
 *   ORPHAN ──grace passes──> ended (its work was queued again when it became an orphan)
 *
 * Whenever an orchestration lease ends, the instance is looked at again: messages that arrived while it was held
 * (or a replacement's ExecutionStarted) are dispatched then. Work is "queued again" only when no ACTIVE lease of
 * the same work remains. Tokens are 128 random bits, so holding one says nothing about another.
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

void leases_init(struct sc_engine *e)
{
  sc_map_init(&e->orch_leases);
  sc_map_init(&e->leases);
  sc_map_init(&e->by_work);
  sc_map_init(&e->act_by_task);
  sc_map_init(&e->backoff);
  sc_map_init(&e->applied_set);
  e->applied_cap = APPLIED_RING;
  e->applied = calloc(APPLIED_RING, sizeof *e->applied);
  if (!e->applied)
    sc_panic("out of memory");
}

void lease_free(struct sc_lease *l)
{
  for (size_t i = 0; i < l->npartials; i++)
    free(l->partials[i]);
  free(l->partials);
  free(l->partial_lens);
  free(l->iid);
  free(l->exec);
  free(l->peer);
  free(l->task_key);
  free(l->keys);
  free(l);
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
  sc_map_free(&e->by_work);
  sc_map_free(&e->act_by_task);
  sc_map_free(&e->backoff);
}

/* Remembers a key whose completion was applied, so that a repeat answers OK and changes nothing. */
void applied_add(struct sc_engine *e, const char *key)
{
  char *old = e->applied[e->applied_pos];
  if (old) {
    sc_map_remove(&e->applied_set, old);
    free(old);
  }
  e->applied[e->applied_pos] = xstrdup(key);
  sc_map_put(&e->applied_set, e->applied[e->applied_pos], (void *)1);
  e->applied_pos = (e->applied_pos + 1) % e->applied_cap;
}

void applied_forget_all(struct sc_engine *e)
{
  for (size_t i = 0; i < e->applied_cap; i++) {
    free(e->applied[i]);
    e->applied[i] = NULL;
  }
  sc_map_free(&e->applied_set);
  sc_map_init(&e->applied_set);
  e->applied_pos = 0;
}

bool applied_has(struct sc_engine *e, const char *key)
{
  return sc_map_get(&e->applied_set, key) != NULL;
}

/* The by_work key: "o" + instance id, or "a" + activity sequence number. */
static void work_key(const struct sc_lease *l, char *out, size_t cap)
{
  if (l->kind != LEASE_ACT) /* entity ids start with '@', which orchestration ids may not */
    snprintf(out, cap, "o%s", l->iid);
  else
    snprintf(out, cap, "a%llu", (unsigned long long)l->act_seq);
}

struct sc_lease *lease_new(struct sc_engine *e, enum lease_kind kind, const char *iid, const char *exec)
{
  struct sc_lease *l = calloc(1, sizeof *l);
  if (!l)
    sc_panic("out of memory");
  l->kind = kind;
  l->token[0] = kind == LEASE_ORCH ? 'o' : kind == LEASE_ACT ? 'a' : 'e';
  sc_random_hex32(l->token + 1);
  l->iid = xstrdup(iid);
  l->exec = xstrdup(exec ? exec : "");
  (void)e;
  return l;
}

static void end(struct sc_engine *e, struct sc_lease *l, bool look_again);

static int64_t lease_span(struct sc_engine *e, enum lease_kind kind)
{
  return kind == LEASE_ACT ? e->cfg.act_lease_us : e->cfg.orch_lease_us;
}

void lease_attach(struct sc_engine *e, struct sc_lease *l, struct sc_stream *s)
{
  char key[SC_MAX_ID + 8];
  work_key(l, key, sizeof key);
  /* Handed out again: an orphan's token is stale from now on, so only one result can ever be applied. */
  struct sc_lease *o;
  while ((o = sc_map_get(&e->by_work, key))) {
    SC_DEBUG("event=lease_superseded token=%s instance=%s", o->token, SC_Q(o->iid));
    end(e, o, false);
  }
  l->stream = s;
  free(l->peer);
  l->peer = s->peer ? xstrdup(s->peer) : NULL;
  l->snext = s->leases;
  l->sprev = NULL;
  if (s->leases)
    s->leases->sprev = l;
  s->leases = l;
  if (l->kind != LEASE_ACT) {
    if (l->kind == LEASE_ORCH)
      s->n_orch++;
    else
      s->n_entity++;
    sc_map_put(&e->orch_leases, l->iid, l);
  } else {
    s->n_act++;
    if (l->task_key)
      sc_map_put(&e->act_by_task, l->task_key, l);
  }
  sc_map_put(&e->leases, l->token, l);
  struct sc_lease *head = sc_map_get(&e->by_work, key);
  l->wnext = head;
  l->wprev = NULL;
  if (head)
    head->wprev = l;
  sc_map_put(&e->by_work, key, l);
  int64_t span = lease_span(e, l->kind);
  if (span > 0) {
    l->deadline_us = sc_now_us() + span;
    delay(e, l->deadline_us, D_EXPIRE, l->token, 0);
  }
}

/* Gives back the stream's slot; the lease itself lives on. */
static void detach_stream(struct sc_engine *e, struct sc_lease *l)
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
  if (l->kind != LEASE_ACT) {
    if (l->kind == LEASE_ORCH)
      s->n_orch--;
    else
      s->n_entity--;
    if (sc_map_get(&e->orch_leases, l->iid) == l)
      sc_map_remove(&e->orch_leases, l->iid);
  } else {
    s->n_act--;
  }
  l->stream = NULL;
  l->snext = l->sprev = NULL;
  e->slots_gen++; /* waiting work may fit now */
}

/* Whether some lease of the same work is still held by a connected stream. */
static bool work_active(struct sc_engine *e, const struct sc_lease *l)
{
  char key[SC_MAX_ID + 8];
  work_key(l, key, sizeof key);
  for (struct sc_lease *o = sc_map_get(&e->by_work, key); o; o = o->wnext)
    if (o != l && o->stream)
      return true;
  return false;
}

/* Removes the lease from every table and frees it; |look_again|: the instance is looked at after this batch. */
static void end(struct sc_engine *e, struct sc_lease *l, bool look_again)
{
  detach_stream(e, l);
  sc_map_remove(&e->leases, l->token);
  if (l->task_key && sc_map_get(&e->act_by_task, l->task_key) == l) {
    sc_map_remove(&e->act_by_task, l->task_key);
    /* A token-less completion may still name a sibling. */
    struct sc_lease *sib = l->wprev ? l->wprev : l->wnext;
    if (sib)
      sc_map_put(&e->act_by_task, l->task_key, sib);
  }
  char key[SC_MAX_ID + 8];
  work_key(l, key, sizeof key);
  if (l->wprev)
    l->wprev->wnext = l->wnext;
  else if (l->wnext)
    sc_map_put(&e->by_work, key, l->wnext);
  else
    sc_map_remove(&e->by_work, key);
  if (l->wnext)
    l->wnext->wprev = l->wprev;
  if (look_again && l->kind != LEASE_ACT)
    mark_dirty(e, l->iid);
  lease_free(l);
}

void lease_applied(struct sc_engine *e, struct sc_lease *l)
{
  char key[SC_MAX_ID + 8];
  work_key(l, key, sizeof key);
  /* First result wins: the other leases of this work are stale from now on. */
  struct sc_lease *o = sc_map_get(&e->by_work, key);
  while (o) {
    struct sc_lease *next = o->wnext;
    if (o != l) {
      SC_DEBUG("event=lease_superseded token=%s instance=%s", o->token, SC_Q(o->iid));
      end(e, o, false);
    }
    o = next;
  }
  applied_add(e, l->token);
  end(e, l, true);
}

void lease_release(struct sc_engine *e, struct sc_lease *l)
{
  end(e, l, true);
}

static int64_t backoff_delay(struct sc_engine *e, const char *key)
{
  uintptr_t n = (uintptr_t)sc_map_get(&e->backoff, key) + 1;
  sc_map_put(&e->backoff, key, (void *)n);
  /* The first retry is immediate, then one more second per retry, at most five minutes. */
  int64_t s = n <= 1 ? 0 : (int64_t)(n - 1);
  return (s > MAX_BACKOFF_S ? MAX_BACKOFF_S : s) * 1000000;
}

void backoff_forget(struct sc_engine *e, enum lease_kind kind, const char *iid, uint64_t act_seq)
{
  if (kind != LEASE_ACT) {
    sc_map_remove(&e->backoff, iid);
  } else {
    char key[32];
    snprintf(key, sizeof key, "a%llu", (unsigned long long)act_seq);
    sc_map_remove(&e->backoff, key);
  }
}

/* Queues the lease's work again, after a backoff that grows with each failed attempt. */
static void requeue(struct sc_engine *e, struct sc_lease *l, bool with_backoff)
{
  int64_t now = sc_now_us();
  if (l->kind != LEASE_ACT) {
    int64_t d = with_backoff ? backoff_delay(e, l->iid) : 0;
    if (d == 0)
      mark_dirty(e, l->iid);
    else
      delay(e, now + d, D_READY, l->iid, 0);
  } else {
    char key[32];
    snprintf(key, sizeof key, "a%llu", (unsigned long long)l->act_seq);
    int64_t d = with_backoff ? backoff_delay(e, key) : 0;
    if (d == 0)
      new_activity(e, l->act_seq);
    else
      delay(e, now + d, D_ACT, NULL, l->act_seq);
  }
}

void lease_abandon(struct sc_engine *e, struct sc_lease *l, const char *why)
{
  SC_INFO("event=work_item_abandoned token=%s instance=%s reason=%s", l->token, SC_Q(l->iid), why);
  atomic_fetch_add_explicit(&sc_metrics.abandoned[wi_kind(l->kind)], 1,
                            memory_order_relaxed);
  pthread_mutex_lock(&e->mu);
  e->stats.abandoned++;
  pthread_mutex_unlock(&e->mu);
  bool requeue_it = l->stream != NULL && !work_active(e, l);
  detach_stream(e, l);
  if (requeue_it)
    requeue(e, l, true);
  end(e, l, false);
}

void lease_orphan(struct sc_engine *e, struct sc_lease *l)
{
  bool requeue_it = !work_active(e, l);
  detach_stream(e, l);
  l->deadline_us = sc_now_us() + e->cfg.orphan_grace_us;
  delay(e, l->deadline_us, D_EXPIRE, l->token, 0);
  if (requeue_it)
    requeue(e, l, false);
}

void lease_renew(struct sc_engine *e, struct sc_lease *l)
{
  int64_t span = lease_span(e, l->kind);
  if (l->stream && span > 0)
    l->deadline_us = sc_now_us() + span; /* the pending expiry sees the later deadline and waits again */
}

void lease_expire(struct sc_engine *e, const char *token, int64_t now)
{
  struct sc_lease *l = sc_map_get(&e->leases, token);
  if (!l || !l->deadline_us)
    return;
  if (l->deadline_us > now) {
    delay(e, l->deadline_us, D_EXPIRE, l->token, 0); /* renewed meanwhile */
    return;
  }
  if (!l->stream) {
    SC_DEBUG("event=orphan_expired token=%s instance=%s", l->token, SC_Q(l->iid));
    end(e, l, false); /* its work was queued again when it became an orphan */
    return;
  }
  lease_abandon(e, l, l->kind == LEASE_ORCH ? "orchestration_lease_expired"
                      : l->kind == LEASE_ACT ? "activity_lease_expired"
                                             : "entity_lease_expired");
}

void leases_end_instance(struct sc_engine *e, const char *iid)
{
  char key[SC_MAX_ID + 8];
  snprintf(key, sizeof key, "o%s", iid);
  struct sc_lease *l;
  while ((l = sc_map_get(&e->by_work, key)))
    end(e, l, true);
}

void leases_end_all(struct sc_engine *e)
{
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->leases)))
    end(e, sc_map_value(it), false);
}

bool work_is_leased(struct sc_engine *e, const char *iid)
{
  return sc_map_get(&e->orch_leases, iid) != NULL;
}

struct sc_lease *find_lease(struct sc_engine *e, enum lease_kind kind, const char *token, const char *fallback)
{
  struct sc_lease *l = NULL;
  if (token && token[0]) {
    l = sc_map_get(&e->leases, token);
  } else if (fallback && kind == LEASE_ORCH) {
    /* Without a token: the instance's active lease, or else one left by a closed stream. */
    l = sc_map_get(&e->orch_leases, fallback);
    if (!l) {
      char key[SC_MAX_ID + 8];
      snprintf(key, sizeof key, "o%s", fallback);
      l = sc_map_get(&e->by_work, key);
    }
  } else if (fallback) {
    l = sc_map_get(&e->act_by_task, fallback);
  }
  return l && l->kind == kind ? l : NULL;
}

bool tokenless_from_elsewhere(const struct sc_lease *l, const char *peer)
{
  return peer && l->peer && strcmp(peer, l->peer) != 0;
}

int unknown_token(struct sc_engine *e, struct sc_cmd *c, const char *token, const char *what)
{
  if (token && token[0] && applied_has(e, token))
    return DONE; /* a repeat of a completion already applied */
  if (token && token[0])
    return fail(c, SC_ENOTFOUND, "unknown or expired completion token %s", token);
  return fail(c, SC_ENOTFOUND, "no work item in flight for %s", what);
}

/* A work item's completion was applied: counted by kind. */
void count_completed(struct sc_engine *e, enum lease_kind kind)
{
  atomic_fetch_add_explicit(&sc_metrics.completed[wi_kind(kind)], 1, memory_order_relaxed);
  pthread_mutex_lock(&e->mu);
  if (kind == LEASE_ORCH)
    e->stats.orch_completed++;
  else if (kind == LEASE_ACT)
    e->stats.act_completed++;
  else
    e->stats.entity_completed++;
  pthread_mutex_unlock(&e->mu);
}
