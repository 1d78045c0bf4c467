/*
 * Dispatch: the ready queue of orchestrations and the activity queue, and building the work items that go to
 * streams. Runs after each batch's commands are applied (see run_batch).
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_STREAMING_THRESHOLD (1u << 20)

enum dispatch_result { DISPATCHED, DROPPED, UNMATCHED };

void work_init(struct sc_engine *e)
{
  char hex[33];
  sc_random_hex32(hex);
  memcpy(e->boot, hex, 8);
  e->boot[8] = 0;
  sc_map_init(&e->queued);
  sc_heap_init(&e->delayed);
  leases_init(e);
  if (e->cfg.health_ping_us <= 0)
    e->cfg.health_ping_us = 20 * 1000000LL;
  if (e->cfg.default_max_items <= 0)
    e->cfg.default_max_items = 1000;
  if (!e->cfg.max_message)
    e->cfg.max_message = 16u << 20;
  delay(e, sc_now_us() + e->cfg.health_ping_us / 2, D_PING, NULL, 0);
}

static void push_ready(struct sc_engine *e, const char *iid)
{
  if (sc_map_get(&e->queued, iid))
    return;
  sc_map_put(&e->queued, iid, (void *)1);
  fifo_push(&e->ready, xstrdup(iid));
}

static int recover_inbox(const char *iid, void *ctx)
{
  push_ready(ctx, iid);
  return SC_OK;
}

static int recover_act(uint64_t seq, void *ctx)
{
  struct sc_engine *e = ctx;
  fifo_push(&e->actq, SEQ2P(seq));
  return SC_OK;
}

int work_recover(struct sc_engine *e)
{
  int rc = e->st->ops->inbox_scan_instances(e->st, recover_inbox, e);
  if (rc == SC_OK)
    rc = e->st->ops->actq_scan(e->st, recover_act, e);
  return rc;
}

void work_wipe(struct sc_engine *e)
{
  char *s;
  while ((s = fifo_pop(&e->ready)))
    free(s);
  while ((s = fifo_pop(&e->unmatched)))
    free(s);
  sc_map_free(&e->queued);
  fifo_free(&e->actq);
  fifo_free(&e->unmatched_act);
}

void work_free(struct sc_engine *e)
{
  work_wipe(e);
  fifo_free(&e->ready);
  fifo_free(&e->unmatched);
  leases_free(e);
  for (size_t i = 0; i < e->nstreams; i++)
    free(e->streams[i]);
  free(e->streams);
  while (sc_heap_top(&e->delayed))
    free(sc_heap_pop(&e->delayed).data);
  sc_heap_free(&e->delayed);
  free(e->dirty);
  free(e->new_acts);
}

static bool is_wakeup(const HistoryEvent *ev)
{
  return ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
}

static bool wakes_suspended(const HistoryEvent *ev)
{
  return ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED ||
         ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED;
}

/* Deletes inbox messages nobody will ever read (stale executions); dispatch commits them together. */
static void drop_stale(struct sc_engine *e, const char *iid, const struct sc_inbox_msg *m, size_t n)
{
  struct sc_store *st = e->st;
  for (size_t i = 0; i < n; i++)
    st->ops->inbox_delete(st, iid, m[i].band, m[i].seq);
}

static int dispatch_orch(struct sc_engine *e, const char *iid)
{
  struct sc_store *st = e->st;
  if (work_is_leased(e, iid))
    return DROPPED; /* examined again when its lease ends */
  StoredInstance *rec;
  if (st->ops->get_instance(st, true, iid, &e->ba, &rec) != SC_OK)
    return DROPPED;
  if (sc_status_is_terminal(rec->status))
    return DROPPED;
  int64_t now = sc_now_us();
  if (rec->scheduled_start_us > now && rec->status == ST_PENDING)
    return DROPPED; /* its start timer marks it again */
  struct sc_lease *l = lease_new(e, LEASE_ORCH, NULL, iid, rec->execution_id);
  struct sc_inbox_msg *msgs;
  size_t n;
  if (st->ops->inbox_load(st, true, iid, &l->arena, &msgs, &n) != SC_OK || n == 0) {
    lease_free(l);
    return DROPPED;
  }
  l->keys = sc_arena_alloc(&l->arena, n * sizeof *l->keys);
  l->events = sc_arena_alloc(&l->arena, (n + 1) * sizeof *l->events);
  HistoryEvent *os = sc_pb_event(&l->arena, -1, now);
  OrchestratorStartedEvent *ose = sc_arena_alloc(&l->arena, sizeof *ose);
  orchestrator_started_event__init(ose);
  os->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
  os->orchestratorstarted = ose;
  l->events[l->nevents++] = os;
  size_t nstale = 0, nwake = 0;
  bool wakes = false;
  for (size_t i = 0; i < n; i++) {
    StoredMsg *m = msgs[i].msg;
    struct msgkey *k = &l->keys[l->nkeys++];
    k->band = msgs[i].band;
    k->seq = msgs[i].seq;
    k->sent = -1;
    if (!m->event || (m->target_execution_id[0] && strcmp(m->target_execution_id, rec->execution_id) != 0)) {
      nstale++;
      continue;
    }
    if (is_wakeup(m->event)) {
      nwake++;
      continue;
    }
    wakes |= wakes_suspended(m->event);
    k->sent = (int)l->nevents;
    l->events[l->nevents++] = m->event;
  }
  if (l->nevents == 1 && nwake == 0) {
    if (nstale)
      drop_stale(e, iid, msgs, n);
    lease_free(l);
    return DROPPED;
  }
  if (rec->status == ST_SUSPENDED && !wakes && nwake == 0) {
    lease_free(l); /* the SDK would only buffer these; dispatch on resume or terminate */
    return DROPPED;
  }
  struct sc_stream *s = pick_stream(e, LEASE_ORCH, rec->name, rec->has_version ? rec->version : NULL);
  if (!s) {
    lease_free(l);
    return UNMATCHED;
  }
  l->stream = s;

  HistoryEvent **past = NULL;
  size_t npast = 0;
  if (st->ops->history_load(st, true, iid, &e->ba, &past, &npast) != SC_OK) {
    lease_free(l);
    return DROPPED;
  }
  OrchestratorRequest req = ORCHESTRATOR_REQUEST__INIT;
  req.instanceid = (char *)iid;
  req.executionid = sc_pb_sv(&e->ba, rec->execution_id);
  req.n_pastevents = npast;
  req.pastevents = past;
  req.n_newevents = l->nevents;
  req.newevents = l->events;
  req.orchestrationtracecontext = rec->orchestration_trace;
  if (s->history_streaming && orchestrator_request__get_packed_size(&req) > HISTORY_STREAMING_THRESHOLD) {
    /* The worker fetches the history with StreamInstanceHistory instead. */
    req.n_pastevents = 0;
    req.pastevents = NULL;
    req.requireshistorystreaming = true;
  }
  WorkItem wi = WORK_ITEM__INIT;
  wi.completiontoken = l->token;
  wi.request_case = WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST;
  wi.orchestratorrequest = &req;
  size_t size = work_item__get_packed_size(&wi);
  if (size > e->cfg.max_message) {
    SC_ERROR("event=work_item_too_large instance=%s bytes=%zu max_message=%zu", SC_Q(iid), size,
             e->cfg.max_message);
    lease_free(l);
    return DROPPED;
  }
  lease_attach(e, l);
  send_item(e, s, &wi, size);
  SC_DEBUG("event=dispatched kind=orchestration instance=%s token=%s stream=%llu past=%zu new=%zu", SC_Q(iid),
           l->token, (unsigned long long)s->id, npast, l->nevents);
  return DISPATCHED;
}

static int dispatch_act(struct sc_engine *e, uint64_t seq)
{
  struct sc_store *st = e->st;
  struct sc_lease *l = lease_new(e, LEASE_ACT, NULL, "", NULL);
  StoredActivity *a;
  if (st->ops->actq_get(st, true, seq, &l->arena, &a) != SC_OK || !a->request ||
      !a->request->orchestrationinstance) {
    lease_free(l);
    return DROPPED; /* completed meanwhile */
  }
  ActivityRequest *r = a->request;
  const char *iid = r->orchestrationinstance->instanceid;
  const char *exec = r->orchestrationinstance->executionid ? r->orchestrationinstance->executionid->value : "";
  StoredInstance *rec;
  if (st->ops->get_instance(st, true, iid, &e->ba, &rec) != SC_OK || sc_status_is_terminal(rec->status) ||
      strcmp(rec->execution_id, exec) != 0) {
    /* Its orchestration is gone, finished or continued as new: nobody wants the result. */
    st->ops->actq_delete(st, seq);
    lease_free(l);
    return DROPPED;
  }
  struct sc_stream *s = pick_stream(e, LEASE_ACT, r->name, r->version ? r->version->value : NULL);
  if (!s) {
    lease_free(l);
    return UNMATCHED;
  }
  free(l->iid);
  free(l->exec);
  l->iid = xstrdup(iid);
  l->exec = xstrdup(exec);
  l->stream = s;
  l->act_seq = seq;
  l->task_id = r->taskid;
  char key[SC_MAX_ID + 16];
  snprintf(key, sizeof key, "%s\x01%d", iid, r->taskid);
  l->task_key = xstrdup(key);
  WorkItem wi = WORK_ITEM__INIT;
  wi.completiontoken = l->token;
  wi.request_case = WORK_ITEM__REQUEST_ACTIVITY_REQUEST;
  wi.activityrequest = r;
  lease_attach(e, l);
  send_item(e, s, &wi, 0);
  SC_DEBUG("event=dispatched kind=activity instance=%s task=%d name=%s token=%s stream=%llu", SC_Q(iid), r->taskid,
           SC_Q(r->name), l->token, (unsigned long long)s->id);
  return DISPATCHED;
}

static void dispatch(struct sc_engine *e)
{
  uint64_t norch = 0, nact = 0;
  if (e->drain_now)
    return; /* draining: what is queued stays queued (durably) for the next process */
  for (;;) {
    bool progress = false;
    if (e->ready.n && any_capacity(e, LEASE_ORCH)) {
      char *iid = fifo_pop(&e->ready);
      sc_map_remove(&e->queued, iid);
      int r = dispatch_orch(e, iid);
      if (r == UNMATCHED) {
        sc_map_put(&e->queued, iid, (void *)1);
        fifo_push(&e->unmatched, iid);
      } else {
        free(iid);
      }
      norch += r == DISPATCHED;
      progress = true;
    }
    if (e->actq.n && any_capacity(e, LEASE_ACT)) {
      void *seq = fifo_pop(&e->actq);
      int r = dispatch_act(e, P2SEQ(seq));
      if (r == UNMATCHED)
        fifo_push(&e->unmatched_act, seq);
      nact += r == DISPATCHED;
      progress = true;
    }
    if (!progress)
      break;
  }
  if (norch || nact) {
    atomic_fetch_add_explicit(&sc_metrics.dispatched[SC_WI_ORCH], norch, memory_order_relaxed);
    atomic_fetch_add_explicit(&sc_metrics.dispatched[SC_WI_ACT], nact, memory_order_relaxed);
    pthread_mutex_lock(&e->mu);
    e->stats.orch_dispatched += norch;
    e->stats.act_dispatched += nact;
    pthread_mutex_unlock(&e->mu);
  }
}

void work_dispatch(struct sc_engine *e)
{
  if (e->new_stream) {
    /* A new stream may accept what no other stream's filter did. */
    e->new_stream = false;
    char *iid;
    while ((iid = fifo_pop(&e->unmatched))) {
      sc_map_remove(&e->queued, iid);
      push_ready(e, iid);
      free(iid);
    }
    void *seq;
    while ((seq = fifo_pop(&e->unmatched_act)))
      fifo_push(&e->actq, seq);
  }
  for (size_t i = 0; i < e->ndirty; i++)
    if (!work_is_leased(e, e->dirty[i]))
      push_ready(e, e->dirty[i]);
  e->ndirty = 0;
  for (size_t i = 0; i < e->nnew_acts; i++)
    fifo_push(&e->actq, SEQ2P(e->new_acts[i]));
  e->nnew_acts = 0;
  dispatch(e);
}

void work_timers(struct sc_engine *e, int64_t now)
{
  const struct sc_heap_item *top;
  while ((top = sc_heap_top(&e->delayed)) && top->due <= now) {
    struct delayed *d = sc_heap_pop(&e->delayed).data;
    switch (d->kind) {
    case D_READY:
      mark_dirty(e, d->key);
      break;
    case D_ACT:
      new_activity(e, d->seq);
      break;
    case D_ORPHAN: {
      struct sc_lease *l = sc_map_get(&e->leases, d->key);
      if (l && !l->stream)
        lease_abandon(e, l, "stream_closed");
      break;
    }
    case D_PING:
      ping(e, now);
      delay(e, now + e->cfg.health_ping_us / 3, D_PING, NULL, 0);
      break;
    }
    free(d);
  }
}

int64_t work_next_wakeup(struct sc_engine *e)
{
  const struct sc_heap_item *top = sc_heap_top(&e->delayed);
  return top ? top->due : INT64_MAX;
}
