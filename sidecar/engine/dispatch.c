/*
 * Dispatch: the ready queue of orchestrations and the activity queue, the work that waits for a stream able to
 * take it, and building the work items that go to streams. Runs after each batch's commands are applied (see
 * run_batch).
 *
 * Work no stream can take now waits in a queue of its own kind, name and version (and whether its history must
 * be streamed). A queue is served again whenever some stream might take more (a slot freed, a stream opened, a
 * stream read its backlog), oldest first, for as long as a stream accepts it; nothing waits for a new stream.
 *
 * An orchestration's work item carries the inbox's messages in order, as many as fit in --max-send-message
 * beside its history; the rest go in the next item. A history that does not fit goes by StreamInstanceHistory
 * to workers that can stream it. What no connected worker that accepts it could ever receive fails the
 * orchestration, with the reason, rather than waiting for good.
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Work items bigger than this leave the history to StreamInstanceHistory for workers that can fetch it, even when
 * it would fit. */
#define HISTORY_STREAMING_THRESHOLD (1u << 20)


void work_init(struct sc_engine *e)
{
  sc_map_init(&e->queued);
  sc_map_init(&e->waitqs);
  sc_heap_init(&e->delayed);
  leases_init(e);
  if (e->cfg.health_ping_us <= 0)
    e->cfg.health_ping_us = 20 * 1000000LL;
  if (e->cfg.default_max_items <= 0)
    e->cfg.default_max_items = 1000;
  if (!e->cfg.max_message)
    e->cfg.max_message = 4u << 20;
  if (!e->cfg.max_receive)
    e->cfg.max_receive = 16u << 20;
  if (!e->cfg.limits.max_id) /* unit tests that set no limits get the defaults */
    e->cfg.limits = (struct sc_limits){.max_id = 256, .max_name = 256, .max_payload = 512u << 10,
                                       .max_history = 100000};
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

int work_recover(struct sc_engine *e, int part)
{
  int rc = e->st->ops->inbox_scan_instances(e->st, part, recover_inbox, e);
  if (rc == SC_OK)
    rc = e->st->ops->actq_scan(e->st, part, recover_act, e);
  return rc;
}

static void waitq_free(struct waitq *w)
{
  void *v;
  while ((v = fifo_pop(&w->items)))
    if (w->want.kind != LEASE_ACT)
      free(v);
  fifo_free(&w->items);
  free(w->key);
  free(w->name);
  free(w->version);
  free(w);
}

void work_wipe(struct sc_engine *e)
{
  char *s;
  while ((s = fifo_pop(&e->ready)))
    free(s);
  while (e->waitqs_list) {
    struct waitq *w = e->waitqs_list;
    e->waitqs_list = w->next;
    waitq_free(w);
  }
  sc_map_free(&e->waitqs);
  sc_map_free(&e->queued);
  fifo_free(&e->actq);
  leases_end_all(e);
}

void work_free(struct sc_engine *e)
{
  work_wipe(e);
  fifo_free(&e->ready);
  leases_free(e);
  for (size_t i = 0; i < e->nstreams; i++) {
    free(e->streams[i]->peer);
    free(e->streams[i]);
  }
  free(e->streams);
  while (sc_heap_top(&e->delayed))
    free(sc_heap_pop(&e->delayed).data);
  sc_heap_free(&e->delayed);
  free(e->dirty);
  free(e->new_acts);
}

/* ------------------------------------------------------------------ orchestrations */

/* A message for another execution of the instance (or with no event): consumed unsent. */
static bool msg_stale(const StoredMsg *m, const StoredInstance *rec)
{
  return !m->event || (m->target_execution_id[0] && strcmp(m->target_execution_id, rec->execution_id) != 0);
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
  struct sc_txn *tx = e->tx;
  for (size_t i = 0; i < n; i++)
    sc_txn_inbox_delete(tx, iid, m[i].band, m[i].seq);
}

/* What one element of a repeated message field adds to its parent's encoding. */
static size_t field_size(size_t len)
{
  size_t v = 1;
  for (size_t x = len; x >= 0x80; x >>= 7)
    v++;
  return 1 + v + len;
}

static size_t event_size(const HistoryEvent *ev)
{
  return field_size(history_event__get_packed_size(ev));
}

/* Fails an orchestration that no connected worker accepting it can receive. */
static void undeliverable(struct sc_engine *e, const char *iid, StoredInstance *rec, size_t hist_bytes)
{
  char msg[400];
  snprintf(msg, sizeof msg,
           "the history of %zu bytes does not fit in a work item of at most %zu bytes (--max-send-message), and "
           "no connected worker that runs '%s' can stream histories (WORKER_CAPABILITY_HISTORY_STREAMING)",
           hist_bytes, e->cfg.max_message, rec->name);
  SC_WARN("event=orchestration_undeliverable instance=%s history_bytes=%zu max_send_message=%zu", SC_Q(iid),
          hist_bytes, e->cfg.max_message);
  int rc = fail_by_server(e, iid, rec, "HistoryTooLarge", msg);
  if (rc != SC_OK)
    sc_panic("failing undeliverable orchestration %s: status %d", iid, rc);
}

/* Reading the work failed (the store, not the instance): it is looked at again a little later rather than left
 * until something else marks it, or taken for gone. */
#define READ_RETRY_US 1000000
static int retry_later(struct sc_engine *e, enum delayed_kind kind, const char *iid, uint64_t seq, int rc)
{
  SC_WARN("event=dispatch_read_failed instance=%s activity=%llu status=%s retry_ms=%d", SC_Q(iid),
          (unsigned long long)seq, sc_status_name(rc), READ_RETRY_US / 1000);
  delay(e, sc_now_us() + READ_RETRY_US, kind, iid, seq);
  return DROPPED;
}

static int dispatch_orch(struct sc_engine *e, const char *iid)
{
  struct sc_txn *tx = e->tx;
  if (!owns(e, iid))
    return DROPPED; /* its partition went to another replica */
  if (work_is_leased(e, iid))
    return DROPPED; /* looked at again when its lease ends */
  StoredInstance *rec;
  int rc = sc_txn_get_instance(tx, iid, &e->ba, &rec);
  if (rc != SC_OK)
    return rc == SC_ENOTFOUND ? DROPPED : retry_later(e, D_READY, iid, 0, rc);
  if (sc_status_is_terminal(rec->status)) {
    backoff_forget(e, LEASE_ORCH, iid, 0);
    return DROPPED;
  }
  int64_t now = sc_now_us();
  if (rec->scheduled_start_us > now && rec->status == ST_PENDING)
    return DROPPED; /* its start timer marks it again */
  struct sc_inbox_msg *msgs;
  size_t n;
  if ((rc = sc_txn_inbox_load(tx, iid, &e->ba, &msgs, &n)) != SC_OK)
    return retry_later(e, D_READY, iid, 0, rc);
  if (n == 0)
    return DROPPED;
  /* What would be sent: the live messages, in order; stale ones and wake-up markers are consumed unsent. */
  size_t nlive = 0, nstale = 0, nwake = 0;
  bool wakes = false;
  for (size_t i = 0; i < n; i++) {
    StoredMsg *m = msgs[i].msg;
    if (msg_stale(m, rec))
      nstale++;
    else if (is_wakeup(m->event))
      nwake++;
    else {
      nlive++;
      wakes |= wakes_suspended(m->event);
    }
  }
  if (nlive == 0 && nwake == 0) {
    if (nstale)
      drop_stale(e, iid, msgs, n);
    return DROPPED;
  }
  if (rec->status == ST_SUSPENDED && !wakes && nwake == 0)
    return DROPPED; /* the SDK would only buffer these; dispatch on resume or terminate */

  HistoryEvent **past = NULL;
  size_t npast = 0;
  if ((rc = sc_txn_history_load(tx, iid, &e->ba, &past, &npast)) != SC_OK)
    return retry_later(e, D_READY, iid, 0, rc);
  HistoryEvent *os = sc_pb_event(&e->ba, -1, now);
  OrchestratorStartedEvent *ose = sc_arena_alloc(&e->ba, sizeof *ose);
  orchestrator_started_event__init(ose);
  os->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
  os->orchestratorstarted = ose;

  OrchestratorRequest req = ORCHESTRATOR_REQUEST__INIT;
  req.instanceid = (char *)iid;
  req.executionid = sc_pb_sv(&e->ba, rec->execution_id);
  req.orchestrationtracecontext = rec->orchestration_trace;
  req.requireshistorystreaming = true; /* counted in the base size either way: one byte */
  WorkItem wi = WORK_ITEM__INIT;
  char token_room[sizeof ((struct sc_lease *)0)->token];
  memset(token_room, 'x', sizeof token_room - 1);
  token_room[sizeof token_room - 1] = 0;
  wi.completiontoken = token_room;
  wi.request_case = WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST;
  wi.orchestratorrequest = &req;
  /* The empty item, plus the length prefix the request gains once it holds events. */
  size_t base = work_item__get_packed_size(&wi) + 4;
  size_t hist_bytes = 0;
  for (size_t i = 0; i < npast; i++)
    hist_bytes += event_size(past[i]);
  size_t first = 0, live_bytes = 0; /* the first message that would be sent, and all of them */
  for (size_t i = 0; i < n; i++) {
    const StoredMsg *m = msgs[i].msg;
    if (!msg_stale(m, rec) && !is_wakeup(m->event)) {
      size_t sz = event_size(m->event);
      if (!first)
        first = sz;
      live_bytes += sz;
    }
  }
  size_t limit = e->cfg.max_message;
  size_t fixed = base + event_size(os);
  struct want want = {LEASE_ORCH, rec->name, rec->has_version ? rec->version : "", false};
  want.needs_streaming = fixed + hist_bytes + first > limit;
  struct pick_why why;
  struct sc_stream *s = pick_stream(e, &want, &why);
  if (!s) {
    if (want.needs_streaming && why.accepting > 0 && why.accepting_streaming == 0) {
      undeliverable(e, iid, rec, hist_bytes);
      return DROPPED;
    }
    wait_for_stream(e, &want, xstrdup(iid));
    return WAITING;
  }
  bool streamed = s->history_streaming &&
                  (want.needs_streaming || fixed + hist_bytes + live_bytes > HISTORY_STREAMING_THRESHOLD);
  size_t budget = limit - fixed - (streamed ? 0 : hist_bytes);

  struct sc_lease *l = lease_new(e, LEASE_ORCH, iid, rec->execution_id);
  l->started_us = now;
  l->keys = malloc(n * sizeof *l->keys);
  HistoryEvent **evs = sc_arena_alloc(&e->ba, (n + 1) * sizeof *evs);
  if (!l->keys)
    sc_panic("out of memory");
  size_t nev = 0, used = 0;
  evs[nev++] = os;
  for (size_t i = 0; i < n; i++) {
    StoredMsg *m = msgs[i].msg;
    bool stale = msg_stale(m, rec);
    int sent = -1;
    if (!stale && !is_wakeup(m->event)) {
      size_t sz = event_size(m->event);
      if (nev > 1 && used + sz > budget)
        break; /* the rest goes in the next work item */
      used += sz;
      sent = (int)nev;
      evs[nev++] = m->event;
    }
    l->keys[l->nkeys++] = (struct msgkey){msgs[i].band, sent, msgs[i].seq};
  }
  l->nsent = nev;
  req.requireshistorystreaming = streamed;
  if (!streamed) {
    req.n_pastevents = npast;
    req.pastevents = past;
  }
  req.n_newevents = nev;
  req.newevents = evs;
  wi.completiontoken = l->token;
  size_t size = work_item__get_packed_size(&wi);
  if (size > limit) {
    /* Every event is within the payload limits, which fit; this guards the arithmetic above, not a path. */
    lease_free(l);
    char msg[200];
    snprintf(msg, sizeof msg, "the work item of %zu bytes exceeds --max-send-message (%zu)", size, limit);
    if (fail_by_server(e, iid, rec, "WorkItemTooLarge", msg) != SC_OK)
      sc_panic("failing orchestration %s: %s", iid, msg);
    return DROPPED;
  }
  lease_attach(e, l, s);
  send_item(e, s, &wi, size);
  SC_DEBUG("event=dispatched kind=orchestration instance=%s token=%s stream=%llu past=%zu new=%zu streamed=%d "
           "bytes=%zu",
           SC_Q(iid), l->token, (unsigned long long)s->id, npast, nev, streamed, size);
  return DISPATCHED;
}

/* ------------------------------------------------------------------ activities */

/* Tells the orchestration that its activity could not be handed to any worker. */
static void fail_activity(struct sc_engine *e, uint64_t seq, const ActivityRequest *r, const char *exec,
                          const char *why)
{
  HistoryEvent *ev = ev_new(e, -1);
  TaskFailedEvent *f = sc_arena_alloc(&e->ba, sizeof *f);
  task_failed_event__init(f);
  f->taskscheduledid = r->taskid;
  f->failuredetails = make_failure(&e->ba, "WorkItemTooLarge", why);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_TASK_FAILED;
  ev->taskfailed = f;
  sc_txn_actq_delete(e->tx, r->orchestrationinstance->instanceid, seq);
  if (enqueue_msg(e, r->orchestrationinstance->instanceid, SC_BAND_NORMAL, ev, exec) != SC_OK)
    sc_panic("failing an activity of %s", r->orchestrationinstance->instanceid);
}

static int dispatch_act(struct sc_engine *e, uint64_t seq)
{
  struct sc_txn *tx = e->tx;
  StoredActivity *a;
  int rc = sc_txn_actq_get(tx, seq, &e->ba, &a);
  if (rc != SC_OK && rc != SC_ENOTFOUND)
    return retry_later(e, D_ACT, NULL, seq, rc);
  if (rc != SC_OK || !a->request || !a->request->orchestrationinstance) {
    backoff_forget(e, LEASE_ACT, NULL, seq);
    return DROPPED; /* completed meanwhile */
  }
  ActivityRequest *r = a->request;
  const char *iid = r->orchestrationinstance->instanceid;
  if (!owns(e, iid))
    return DROPPED; /* its partition went to another replica, which queued it */
  const char *exec = r->orchestrationinstance->executionid ? r->orchestrationinstance->executionid->value : "";
  StoredInstance *rec;
  if ((rc = sc_txn_get_instance(tx, iid, &e->ba, &rec)) != SC_OK && rc != SC_ENOTFOUND)
    return retry_later(e, D_ACT, iid, seq, rc); /* not a reason to drop the activity */
  if (rc != SC_OK || sc_status_is_terminal(rec->status) || strcmp(rec->execution_id, exec) != 0) {
    /* Its orchestration is gone, finished or continued as new: nobody wants the result. */
    sc_txn_actq_delete(tx, iid, seq);
    backoff_forget(e, LEASE_ACT, NULL, seq);
    return DROPPED;
  }
  struct want want = {LEASE_ACT, r->name, r->version ? r->version->value : "", false};
  struct sc_stream *s = pick_stream(e, &want, NULL);
  if (!s) {
    wait_for_stream(e, &want, SEQ2P(seq));
    return WAITING;
  }
  struct sc_lease *l = lease_new(e, LEASE_ACT, iid, exec);
  l->act_seq = seq;
  l->task_id = r->taskid;
  char key[SC_MAX_ID + 16];
  snprintf(key, sizeof key, "%s\x01%d", iid, r->taskid);
  l->task_key = xstrdup(key);
  WorkItem wi = WORK_ITEM__INIT;
  wi.completiontoken = l->token;
  wi.request_case = WORK_ITEM__REQUEST_ACTIVITY_REQUEST;
  wi.activityrequest = r;
  size_t size = work_item__get_packed_size(&wi);
  if (size > e->cfg.max_message) {
    /* Its input and tags are each within --max-payload, which fits; this is a guard, not a path. */
    char why[200];
    snprintf(why, sizeof why, "the activity's work item of %zu bytes exceeds --max-send-message (%zu)", size,
             e->cfg.max_message);
    fail_activity(e, seq, r, exec, why);
    lease_free(l);
    return DROPPED;
  }
  lease_attach(e, l, s);
  send_item(e, s, &wi, size);
  SC_DEBUG("event=dispatched kind=activity instance=%s task=%d name=%s token=%s stream=%llu", SC_Q(iid), r->taskid,
           SC_Q(r->name), l->token, (unsigned long long)s->id);
  return DISPATCHED;
}

/* ------------------------------------------------------------------ the loop */

static int dispatch_item(struct sc_engine *e, enum lease_kind kind, void *item)
{
  if (kind == LEASE_ACT)
    return dispatch_act(e, P2SEQ(item));
  char *iid = item;
  sc_map_remove(&e->queued, iid);
  int r = sc_is_entity_id(iid) ? dispatch_entity(e, iid) : dispatch_orch(e, iid);
  if (r == READ_FAILED)
    r = retry_later(e, D_READY, iid, 0, SC_EIO);
  if (r == WAITING)
    sc_map_put(&e->queued, iid, (void *)1); /* new messages are read when it leaves the queue */
  free(iid);
  return r;
}

/* Serves waiting work, oldest first, while some stream takes it. */
static void serve_waiting(struct sc_engine *e, uint64_t *n)
{
  if (e->served_gen == e->slots_gen || !e->waitqs_list)
    return;
  e->served_gen = e->slots_gen;
  struct waitq **pp = &e->waitqs_list;
  while (*pp) {
    struct waitq *w = *pp;
    while (w->items.n && pick_stream(e, &w->want, NULL)) {
      e->last_waitq = NULL;
      int r = dispatch_item(e, w->want.kind, fifo_pop(&w->items));
      n[w->want.kind] += r == DISPATCHED;
      if (r == WAITING && e->last_waitq == w)
        break; /* taken back by its own queue: no stream takes it after all */
    }
    if (w->items.n == 0) {
      *pp = w->next;
      sc_map_remove(&e->waitqs, w->key);
      waitq_free(w);
    } else {
      pp = &w->next;
    }
  }
}

static void dispatch(struct sc_engine *e)
{
  uint64_t n[3] = {0, 0, 0};
  if (e->drain_now)
    return; /* draining: what is queued stays queued (durably) for the next process */
  serve_waiting(e, n);
  for (;;) {
    bool progress = false;
    /* The ready queue holds orchestrations and entities: each that no stream can take now waits for one. */
    if (e->ready.n && (any_capacity(e, LEASE_ORCH) || any_capacity(e, LEASE_ENTITY))) {
      char *id = fifo_pop(&e->ready);
      enum lease_kind k = sc_is_entity_id(id) ? LEASE_ENTITY : LEASE_ORCH; /* dispatch_item frees id */
      n[k] += dispatch_item(e, LEASE_ORCH, id) == DISPATCHED;
      progress = true;
    }
    if (e->actq.n && any_capacity(e, LEASE_ACT)) {
      n[LEASE_ACT] += dispatch_item(e, LEASE_ACT, fifo_pop(&e->actq)) == DISPATCHED;
      progress = true;
    }
    if (!progress)
      break;
  }
  if (n[LEASE_ORCH] || n[LEASE_ACT] || n[LEASE_ENTITY]) {
    atomic_fetch_add_explicit(&sc_metrics.dispatched[SC_WI_ORCH], n[LEASE_ORCH], memory_order_relaxed);
    atomic_fetch_add_explicit(&sc_metrics.dispatched[SC_WI_ACT], n[LEASE_ACT], memory_order_relaxed);
    atomic_fetch_add_explicit(&sc_metrics.dispatched[SC_WI_ENTITY], n[LEASE_ENTITY], memory_order_relaxed);
    pthread_mutex_lock(&e->mu);
    e->stats.orch_dispatched += n[LEASE_ORCH];
    e->stats.act_dispatched += n[LEASE_ACT];
    e->stats.entity_dispatched += n[LEASE_ENTITY];
    pthread_mutex_unlock(&e->mu);
  }
}

static void take_dirty(struct sc_engine *e)
{
  for (size_t i = 0; i < e->ndirty; i++)
    if (!work_is_leased(e, e->dirty[i]))
      push_ready(e, e->dirty[i]);
  e->ndirty = 0;
  for (size_t i = 0; i < e->nnew_acts; i++)
    fifo_push(&e->actq, SEQ2P(e->new_acts[i]));
  e->nnew_acts = 0;
}

void work_dispatch(struct sc_engine *e)
{
  /* Dispatch may give work itself (an entity grants a lock: its owner has a message): a few more rounds take it,
   * and whatever is still marked then waits in the ready queue (the marks live in the batch's arena). */
  for (int round = 0; round < 4 && (round == 0 || e->ndirty || e->nnew_acts); round++) {
    take_dirty(e);
    dispatch(e);
  }
  take_dirty(e);
}

size_t work_waiting(struct sc_engine *e)
{
  size_t n = 0;
  for (struct waitq *w = e->waitqs_list; w; w = w->next)
    n += w->items.n;
  return n;
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
    case D_EXPIRE:
      lease_expire(e, d->key, now);
      break;
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
