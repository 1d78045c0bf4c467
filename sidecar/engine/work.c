/*
 * Work items: connected GetWorkItems streams, the ready queue of orchestrations and the activity queue,
 * leases keyed by completion token, and applying what workers send back. Everything here runs on the
 * engine thread. Leases live only in memory: a restart drops every stream anyway, and whatever was never
 * completed is still in the durable inbox or activity queue and is dispatched again.
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
#define HISTORY_STREAMING_THRESHOLD (1u << 20)

enum lease_kind { LEASE_ORCH, LEASE_ACT };

/* One inbox message taken by an orchestration work item. `sent` is its index in the item's newEvents, or
 * -1 for a message that was consumed without being sent (stale, or a wake-up marker). */
struct msgkey {
  int band;
  int sent;
  uint64_t seq;
};

struct sc_lease {
  char token[48];
  enum lease_kind kind;
  struct sc_stream *stream; /* NULL once orphaned */
  struct sc_lease *snext, *sprev;
  char *iid;
  char *exec;
  struct sc_arena arena;
  /* orchestrations */
  HistoryEvent **events;
  size_t nevents;
  struct msgkey *keys;
  size_t nkeys;
  uint8_t **partials; /* isPartial chunks, packed */
  size_t *partial_lens, npartials;
  /* activities */
  uint64_t act_seq;
  int32_t task_id;
  char *task_key;
};

struct sc_stream {
  uint64_t id;
  const GetWorkItemsRequest *req;
  sc_stream_send_fn send;
  void *ctx;
  int max_orch, max_act;
  int n_orch, n_act;
  bool history_streaming;
  int64_t last_send_us;
  struct sc_lease *leases;
};

enum delayed_kind { D_READY, D_ACT, D_ORPHAN, D_PING };

struct delayed {
  enum delayed_kind kind;
  uint64_t seq;
  char key[]; /* instance id or token */
};

/* ------------------------------------------------------------------ small containers */

void fifo_push(struct fifo *f, void *v)
{
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 64;
    void **nv = malloc(cap * sizeof *nv);
    if (!nv)
      sc_panic("out of memory growing a queue");
    for (size_t i = 0; i < f->n; i++)
      nv[i] = f->v[(f->head + i) % f->cap];
    free(f->v);
    f->v = nv;
    f->head = 0;
    f->cap = cap;
  }
  f->v[(f->head + f->n) % f->cap] = v;
  f->n++;
}

void *fifo_pop(struct fifo *f)
{
  if (!f->n)
    return NULL;
  void *v = f->v[f->head];
  f->head = (f->head + 1) % f->cap;
  f->n--;
  return v;
}

void fifo_free(struct fifo *f)
{
  free(f->v);
  memset(f, 0, sizeof *f);
}

static char *xstrdup(const char *s)
{
  char *p = strdup(s);
  if (!p)
    sc_panic("out of memory");
  return p;
}

static void delay(struct sc_engine *e, int64_t due, enum delayed_kind kind,
                  const char *key, uint64_t seq)
{
  size_t kl = key ? strlen(key) : 0;
  struct delayed *d = malloc(sizeof *d + kl + 1);
  if (!d)
    sc_panic("out of memory");
  d->kind = kind;
  d->seq = seq;
  memcpy(d->key, key ? key : "", kl + 1);
  sc_heap_push(&e->delayed, (struct sc_heap_item){due, e->dseq++, d});
}

/* Seq values travel through fifos as pointers; 0 is never a sequence number. */
#define SEQ2P(s) ((void *)(uintptr_t)(s))
#define P2SEQ(p) ((uint64_t)(uintptr_t)(p))

/* ------------------------------------------------------------------ setup */

void work_init(struct sc_engine *e)
{
  char hex[33];
  sc_random_hex32(hex);
  memcpy(e->boot, hex, 8);
  e->boot[8] = 0;
  sc_map_init(&e->queued);
  sc_map_init(&e->orch_leases);
  sc_map_init(&e->leases);
  sc_map_init(&e->act_by_task);
  sc_map_init(&e->backoff);
  sc_map_init(&e->applied_set);
  sc_heap_init(&e->delayed);
  e->applied_cap = APPLIED_RING;
  e->applied = calloc(APPLIED_RING, sizeof *e->applied);
  if (!e->applied)
    sc_panic("out of memory");
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

static void lease_free(struct sc_lease *l)
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
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->leases))) {
    struct sc_lease *l = sc_map_value(it);
    sc_map_remove(&e->leases, l->token);
    lease_free(l);
  }
  for (size_t i = 0; i < e->nstreams; i++)
    free(e->streams[i]);
  free(e->streams);
  while (sc_heap_top(&e->delayed))
    free(sc_heap_pop(&e->delayed).data);
  sc_heap_free(&e->delayed);
  for (size_t i = 0; i < e->applied_cap; i++)
    free(e->applied[i]);
  free(e->applied);
  sc_map_free(&e->applied_set);
  sc_map_free(&e->orch_leases);
  sc_map_free(&e->leases);
  sc_map_free(&e->act_by_task);
  sc_map_free(&e->backoff);
  free(e->dirty);
  free(e->new_acts);
}

/* ------------------------------------------------------------------ dirty instances */

void mark_dirty(struct sc_engine *e, const char *iid)
{
  e->dirty = grow_array(e->dirty, &e->capdirty, e->ndirty, sizeof *e->dirty);
  e->dirty[e->ndirty++] = sc_arena_strdup(&e->ba, iid);
}

static void new_activity(struct sc_engine *e, uint64_t seq)
{
  e->new_acts = grow_array(e->new_acts, &e->capnew_acts, e->nnew_acts, sizeof *e->new_acts);
  e->new_acts[e->nnew_acts++] = seq;
}

bool work_is_leased(struct sc_engine *e, const char *iid)
{
  return sc_map_get(&e->orch_leases, iid) != NULL;
}

/* ------------------------------------------------------------------ leases */

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

static struct sc_lease *lease_new(struct sc_engine *e, enum lease_kind kind,
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

static void lease_attach(struct sc_engine *e, struct sc_lease *l)
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

static void lease_detach_stream(struct sc_lease *l)
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
static void lease_release(struct sc_engine *e, struct sc_lease *l, bool applied)
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
static void lease_abandon(struct sc_engine *e, struct sc_lease *l, const char *why)
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

/* ------------------------------------------------------------------ streams */

static struct sc_stream *find_stream(struct sc_engine *e, void *ctx, size_t *idx)
{
  for (size_t i = 0; i < e->nstreams; i++)
    if (e->streams[i]->ctx == ctx) {
      if (idx)
        *idx = i;
      return e->streams[i];
    }
  return NULL;
}

/* |size| is the packed size when the caller knows it (0: compute it); packing a large history twice costs. */
static void send_item(struct sc_engine *e, struct sc_stream *s, const WorkItem *wi, size_t size)
{
  size_t n = size ? size : work_item__get_packed_size(wi);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    sc_panic("out of memory packing a work item");
  work_item__pack(wi, buf);
  s->last_send_us = sc_now_us();
  s->send(s->ctx, buf, n);
}

static bool has_cap(const GetWorkItemsRequest *r, WorkerCapability c)
{
  for (size_t i = 0; i < r->n_capabilities; i++)
    if (r->capabilities[i] == c)
      return true;
  return false;
}

int apply_stream_open(struct sc_engine *e, struct sc_cmd *c)
{
  const GetWorkItemsRequest *r = c->u.stream_open.req;
  struct sc_stream *s = calloc(1, sizeof *s);
  if (!s)
    sc_panic("out of memory");
  s->id = ++e->stream_seq;
  s->req = r;
  s->send = c->u.stream_open.send;
  s->ctx = c->u.stream_open.ctx;
  s->max_orch = r->maxconcurrentorchestrationworkitems > 0 ? r->maxconcurrentorchestrationworkitems
                                                           : e->cfg.default_max_items;
  s->max_act = r->maxconcurrentactivityworkitems > 0 ? r->maxconcurrentactivityworkitems
                                                     : e->cfg.default_max_items;
  s->history_streaming = has_cap(r, WORKER_CAPABILITY__WORKER_CAPABILITY_HISTORY_STREAMING);
  s->last_send_us = sc_now_us();
  if (e->nstreams == e->capstreams) {
    e->capstreams = e->capstreams ? e->capstreams * 2 : 8;
    e->streams = realloc(e->streams, e->capstreams * sizeof *e->streams);
    if (!e->streams)
      sc_panic("out of memory");
  }
  e->streams[e->nstreams++] = s;
  c->u.stream_open.id = s->id;
  /* A new stream may accept what no other stream's filter did. */
  char *iid;
  while ((iid = fifo_pop(&e->unmatched))) {
    sc_map_remove(&e->queued, iid);
    push_ready(e, iid);
    free(iid);
  }
  void *seq;
  while ((seq = fifo_pop(&e->unmatched_act)))
    fifo_push(&e->actq, seq);
  pthread_mutex_lock(&e->mu);
  e->stats.streams = e->nstreams;
  pthread_mutex_unlock(&e->mu);
  SC_INFO("event=worker_connected stream=%llu max_orchestrations=%d max_activities=%d history_streaming=%d "
          "filters=%d",
          (unsigned long long)s->id, s->max_orch, s->max_act, s->history_streaming,
          r->workitemfilters != NULL);
  return DONE;
}

int apply_stream_close(struct sc_engine *e, struct sc_cmd *c)
{
  size_t idx;
  struct sc_stream *s = find_stream(e, c->u.stream_close.ctx, &idx);
  if (!s)
    return DONE;
  int64_t due = sc_now_us() + e->cfg.orphan_grace_us;
  int orphans = 0;
  /* Its work items may still be completed over another connection for a while; then they are abandoned. */
  while (s->leases) {
    struct sc_lease *l = s->leases;
    lease_detach_stream(l);
    delay(e, due, D_ORPHAN, l->token, 0);
    orphans++;
  }
  e->streams[idx] = e->streams[--e->nstreams];
  if (e->rr >= e->nstreams)
    e->rr = 0;
  pthread_mutex_lock(&e->mu);
  e->stats.streams = e->nstreams;
  pthread_mutex_unlock(&e->mu);
  SC_INFO("event=worker_disconnected stream=%llu orphaned_items=%d", (unsigned long long)s->id, orphans);
  free(s);
  return DONE;
}

/* ------------------------------------------------------------------ filters and stream choice */

static bool versions_match(char **versions, size_t n, const char *v)
{
  if (n == 0)
    return true;
  for (size_t i = 0; i < n; i++)
    if (strcmp(versions[i], v ? v : "") == 0)
      return true;
  return false;
}

static bool accepts(const struct sc_stream *s, enum lease_kind kind, const char *name,
                    const char *version)
{
  const WorkItemFilters *f = s->req->workitemfilters;
  if (!f)
    return true;
  if (kind == LEASE_ORCH) {
    for (size_t i = 0; i < f->n_orchestrations; i++)
      if (strcmp(f->orchestrations[i]->name, name) == 0 &&
          versions_match(f->orchestrations[i]->versions, f->orchestrations[i]->n_versions, version))
        return true;
    return false;
  }
  for (size_t i = 0; i < f->n_activities; i++)
    if (strcmp(f->activities[i]->name, name) == 0 &&
        (!version || !version[0] ||
         versions_match(f->activities[i]->versions, f->activities[i]->n_versions, version)))
      return true;
  return false;
}

static bool free_slot(const struct sc_stream *s, enum lease_kind kind)
{
  return kind == LEASE_ORCH ? s->n_orch < s->max_orch : s->n_act < s->max_act;
}

static bool any_capacity(struct sc_engine *e, enum lease_kind kind)
{
  for (size_t i = 0; i < e->nstreams; i++)
    if (free_slot(e->streams[i], kind))
      return true;
  return false;
}

/* Round-robin over streams with a free slot whose filter accepts the item. */
static struct sc_stream *pick_stream(struct sc_engine *e, enum lease_kind kind, const char *name,
                                     const char *version)
{
  for (size_t k = 0; k < e->nstreams; k++) {
    size_t i = (e->rr + k) % e->nstreams;
    struct sc_stream *s = e->streams[i];
    if (free_slot(s, kind) && accepts(s, kind, name, version)) {
      e->rr = (i + 1) % e->nstreams;
      return s;
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------ dispatch */

enum dispatch_result { DISPATCHED, DROPPED, UNMATCHED };

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

/* Work held by connected workers. Items of workers that went away wait for their grace period, not a drain. */
void work_inflight(struct sc_engine *e, size_t *orch, size_t *act)
{
  *orch = *act = 0;
  for (size_t i = 0; i < e->nstreams; i++) {
    *orch += (size_t)e->streams[i]->n_orch;
    *act += (size_t)e->streams[i]->n_act;
  }
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
  for (size_t i = 0; i < e->ndirty; i++)
    if (!work_is_leased(e, e->dirty[i]))
      push_ready(e, e->dirty[i]);
  e->ndirty = 0;
  for (size_t i = 0; i < e->nnew_acts; i++)
    fifo_push(&e->actq, SEQ2P(e->new_acts[i]));
  e->nnew_acts = 0;
  dispatch(e);
}

/* ------------------------------------------------------------------ delayed work */

static void ping(struct sc_engine *e, int64_t now)
{
  HealthPing hp = HEALTH_PING__INIT;
  WorkItem wi = WORK_ITEM__INIT;
  wi.request_case = WORK_ITEM__REQUEST_HEALTH_PING;
  wi.healthping = &hp;
  for (size_t i = 0; i < e->nstreams; i++)
    if (now - e->streams[i]->last_send_us >= e->cfg.health_ping_us)
      send_item(e, e->streams[i], &wi, 0);
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

/* ------------------------------------------------------------------ completing orchestrations */

static bool valid_id(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > SC_MAX_ID)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return false;
  return true;
}

/* Actions the engine cannot apply fail the orchestration (naming the action) instead of wedging it. */
static const char *invalid_action(const OrchestratorAction *a, char *buf, size_t len)
{
  switch (a->orchestrator_action_type_case) {
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK:
    if (!a->scheduletask->name[0])
      snprintf(buf, len, "action %d: scheduleTask.name is empty", a->id);
    else
      return NULL;
    return buf;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER:
    if (!a->createtimer->fireat)
      snprintf(buf, len, "action %d: createTimer.fireAt is missing", a->id);
    else
      return NULL;
    return buf;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION: {
    const CreateSubOrchestrationAction *s = a->createsuborchestration;
    if (!s->name[0])
      snprintf(buf, len, "action %d: createSubOrchestration.name is empty", a->id);
    else if (s->instanceid[0] && !valid_id(s->instanceid))
      snprintf(buf, len, "action %d: createSubOrchestration.instanceId is not a valid instance id", a->id);
    else
      return NULL;
    return buf;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT: {
    const SendEventAction *s = a->sendevent;
    if (!s->instance || !valid_id(s->instance->instanceid))
      snprintf(buf, len, "action %d: sendEvent.instance.instanceId is not a valid instance id", a->id);
    else if (!s->name[0])
      snprintf(buf, len, "action %d: sendEvent.name is empty", a->id);
    else
      return NULL;
    return buf;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_TERMINATE_ORCHESTRATION:
    if (!valid_id(a->terminateorchestration->instanceid))
      snprintf(buf, len, "action %d: terminateOrchestration.instanceId is not a valid instance id", a->id);
    else
      return NULL;
    return buf;
  default:
    return NULL;
  }
}

static HistoryEvent *ev_new(struct sc_engine *e, int32_t id)
{
  return sc_pb_event(&e->ba, id, sc_now_us());
}

static TaskFailureDetails *make_failure(struct sc_arena *a, const char *type, const char *msg)
{
  TaskFailureDetails *f = sc_arena_alloc(a, sizeof *f);
  task_failure_details__init(f);
  f->errortype = (char *)type;
  f->errormessage = sc_arena_strdup(a, msg);
  return f;
}

struct turn {
  struct sc_engine *e;
  const char *iid;
  StoredInstance *rec; /* the new record, built up as the turn is applied */
  uint32_t idx;        /* next history index */
  bool completed;
  int final_status;
  const Google__Protobuf__StringValue *result;
  TaskFailureDetails *failure;
  const CompleteOrchestrationAction *can;
  const ExecutionTerminatedEvent *terminated; /* consumed in this turn */
};

static int hist(struct turn *t, HistoryEvent *ev)
{
  return t->e->st->ops->history_append(t->e->st, t->iid, t->idx++, ev);
}

static int schedule_task(struct turn *t, int32_t id, const ScheduleTaskAction *a)
{
  struct sc_engine *e = t->e;
  struct sc_store *st = e->st;
  struct sc_arena *ar = &e->ba;
  HistoryEvent *ev = ev_new(e, id);
  TaskScheduledEvent *ts = sc_arena_alloc(ar, sizeof *ts);
  task_scheduled_event__init(ts);
  ts->name = a->name;
  ts->version = a->version;
  ts->input = a->input;
  /* Without a trace context of its own, the activity joins the orchestration's trace. */
  TraceContext *trace = a->parenttracecontext ? a->parenttracecontext : t->rec->trace_context;
  ts->parenttracecontext = trace;
  ts->n_tags = a->n_tags;
  ts->tags = sc_pb_copy_tags(ar, &task_scheduled_event__tags_entry__descriptor, a->n_tags, (void *const *)a->tags);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED;
  ev->taskscheduled = ts;
  int rc = hist(t, ev);
  if (rc != SC_OK)
    return rc;
  ActivityRequest *r = sc_arena_alloc(ar, sizeof *r);
  activity_request__init(r);
  r->name = a->name;
  r->version = a->version;
  r->input = a->input;
  OrchestrationInstance *oi = sc_arena_alloc(ar, sizeof *oi);
  orchestration_instance__init(oi);
  oi->instanceid = (char *)t->iid;
  oi->executionid = sc_pb_sv(ar, t->rec->execution_id);
  r->orchestrationinstance = oi;
  r->taskid = id;
  r->parenttracecontext = trace;
  r->n_tags = a->n_tags;
  r->tags = sc_pb_copy_tags(ar, &activity_request__tags_entry__descriptor, a->n_tags, (void *const *)a->tags);
  StoredActivity sa = TASKHUBD__STORE__STORED_ACTIVITY__INIT;
  sa.request = r;
  sa.enqueued_us = sc_now_us();
  uint64_t seq = st->ops->next_seq(st);
  if ((rc = st->ops->actq_put(st, seq, &sa)) != SC_OK)
    return rc;
  new_activity(e, seq);
  return SC_OK;
}

static int create_timer(struct turn *t, int32_t id, const CreateTimerAction *a)
{
  struct sc_engine *e = t->e;
  struct sc_store *st = e->st;
  HistoryEvent *ev = ev_new(e, id);
  TimerCreatedEvent *tc = sc_arena_alloc(&e->ba, sizeof *tc);
  timer_created_event__init(tc);
  tc->fireat = a->fireat;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED;
  ev->timercreated = tc;
  int rc = hist(t, ev);
  if (rc != SC_OK)
    return rc;
  /* TimerFired echoes the requested fireAt: SDKs compute the next leg of long timers from it. */
  HistoryEvent *fired = ev_new(e, -1);
  TimerFiredEvent *tf = sc_arena_alloc(&e->ba, sizeof *tf);
  timer_fired_event__init(tf);
  tf->fireat = a->fireat;
  tf->timerid = id;
  fired->event_type_case = HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED;
  fired->timerfired = tf;
  StoredMsg m = TASKHUBD__STORE__STORED_MSG__INIT;
  m.event = fired;
  m.target_execution_id = t->rec->execution_id;
  StoredTimer tm = TASKHUBD__STORE__STORED_TIMER__INIT;
  tm.kind = TASKHUBD__STORE__STORED_TIMER__KIND__ORCH_MSG;
  tm.instance_id = (char *)t->iid;
  tm.execution_id = t->rec->execution_id;
  tm.msg = &m;
  tm.band = SC_BAND_NORMAL;
  int64_t due = sc_pb_ts_us(a->fireat);
  uint64_t seq = st->ops->next_seq(st);
  if ((rc = st->ops->timer_put(st, due, seq, &tm)) != SC_OK)
    return rc;
  sc_heap_push(&e->theap, (struct sc_heap_item){due, seq, NULL});
  return SC_OK;
}

static int sub_orchestration(struct turn *t, int32_t id, const CreateSubOrchestrationAction *a)
{
  struct sc_engine *e = t->e;
  struct sc_store *st = e->st;
  struct sc_arena *ar = &e->ba;
  /* The SDKs' own default: "<parent>:<action id as 4 hex digits>". */
  const char *child = a->instanceid[0] ? a->instanceid : sc_arena_printf(ar, "%s:%04x", t->iid, (unsigned)id);
  HistoryEvent *ev = ev_new(e, id);
  SubOrchestrationInstanceCreatedEvent *c = sc_arena_alloc(ar, sizeof *c);
  sub_orchestration_instance_created_event__init(c);
  c->instanceid = (char *)child;
  c->name = a->name;
  c->version = a->version;
  c->input = a->input;
  c->parenttracecontext = a->parenttracecontext;
  c->n_tags = a->n_tags;
  c->tags = sc_pb_copy_tags(ar, &sub_orchestration_instance_created_event__tags_entry__descriptor, a->n_tags,
                      (void *const *)a->tags);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED;
  ev->suborchestrationinstancecreated = c;
  int rc = hist(t, ev);
  if (rc != SC_OK)
    return rc;
  StoredInstance *old;
  rc = st->ops->get_instance(st, true, child, ar, &old);
  if (rc != SC_OK && rc != SC_ENOTFOUND)
    return rc;
  if (rc == SC_OK && !sc_status_is_terminal(old->status)) {
    /* Never touch a live instance; tell the parent at once so it does not wait forever. */
    HistoryEvent *f = ev_new(e, -1);
    SubOrchestrationInstanceFailedEvent *fe = sc_arena_alloc(ar, sizeof *fe);
    sub_orchestration_instance_failed_event__init(fe);
    fe->taskscheduledid = id;
    fe->failuredetails = make_failure(
        ar, "OrchestrationAlreadyExists",
        sc_arena_printf(ar, "orchestration instance already exists: %s (status %s)", child,
                        sc_pb_status_name(old->status)));
    f->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED;
    f->suborchestrationinstancefailed = fe;
    return enqueue_msg(e, t->iid, SC_BAND_NORMAL, f, t->rec->execution_id);
  }
  if (rc == SC_OK && (rc = st->ops->delete_instance(st, child, old)) != SC_OK)
    return rc;
  t->rec->has_children = true; /* purge and recursive terminate look for its children */
  ParentInstanceInfo *p = sc_arena_alloc(ar, sizeof *p);
  parent_instance_info__init(p);
  p->taskscheduledid = id;
  p->name = sc_pb_sv(ar, t->rec->name);
  if (t->rec->has_version)
    p->version = sc_pb_sv(ar, t->rec->version);
  OrchestrationInstance *poi = sc_arena_alloc(ar, sizeof *poi);
  orchestration_instance__init(poi);
  poi->instanceid = (char *)t->iid;
  poi->executionid = sc_pb_sv(ar, t->rec->execution_id);
  p->orchestrationinstance = poi;
  char *exec = sc_arena_alloc(ar, 33);
  sc_random_hex32(exec);
  struct new_instance ni = {
      .iid = child,
      .name = a->name,
      .exec = exec,
      .version = a->version,
      .input = a->input,
      .trace = a->parenttracecontext ? a->parenttracecontext : t->rec->trace_context,
      .n_tags = a->n_tags,
      .tags = (void *const *)a->tags,
      .parent = p,
  };
  return create_instance(e, &ni);
}

static int send_event(struct turn *t, int32_t id, const SendEventAction *a)
{
  struct sc_engine *e = t->e;
  HistoryEvent *ev = ev_new(e, id);
  EventSentEvent *s = sc_arena_alloc(&e->ba, sizeof *s);
  event_sent_event__init(s);
  s->instanceid = a->instance->instanceid;
  s->name = a->name;
  s->input = a->data;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_SENT;
  ev->eventsent = s;
  int rc = hist(t, ev);
  if (rc != SC_OK)
    return rc;
  StoredInstance *target;
  rc = e->st->ops->get_instance(e->st, true, a->instance->instanceid, &e->ba, &target);
  if (rc == SC_ENOTFOUND || (rc == SC_OK && sc_status_is_terminal(target->status))) {
    SC_DEBUG("event=event_dropped instance=%s reason=target_gone", SC_Q(a->instance->instanceid));
    return SC_OK; /* never re-runs a finished orchestration */
  }
  if (rc != SC_OK)
    return rc;
  HistoryEvent *raised = ev_new(e, -1);
  EventRaisedEvent *r = sc_arena_alloc(&e->ba, sizeof *r);
  event_raised_event__init(r);
  r->name = a->name;
  r->input = a->data;
  raised->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED;
  raised->eventraised = r;
  return enqueue_msg(e, a->instance->instanceid, SC_BAND_NORMAL, raised, NULL);
}

/* Terminates |iid| on behalf of an orchestration (terminate action, recursive terminate). */
static int terminate_other(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason,
                           bool recurse)
{
  StoredInstance *rec;
  int rc = e->st->ops->get_instance(e->st, true, iid, &e->ba, &rec);
  if (rc == SC_ENOTFOUND || (rc == SC_OK && sc_status_is_terminal(rec->status)))
    return SC_OK;
  if (rc != SC_OK)
    return rc;
  if (rec->status == ST_PENDING && !work_is_leased(e, iid))
    return terminate_pending(e, iid, rec, reason, recurse);
  HistoryEvent *ev = ev_new(e, -1);
  ExecutionTerminatedEvent *te = sc_arena_alloc(&e->ba, sizeof *te);
  execution_terminated_event__init(te);
  te->input = (Google__Protobuf__StringValue *)reason;
  te->recurse = recurse;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED;
  ev->executionterminated = te;
  return enqueue_msg(e, iid, SC_BAND_NORMAL, ev, NULL);
}

struct recurse_ctx {
  struct sc_engine *e;
  const Google__Protobuf__StringValue *reason;
};

static int terminate_child(const char *child, void *arg)
{
  struct recurse_ctx *r = arg;
  return terminate_other(r->e, child, r->reason, true);
}

static int complete(struct turn *t, int32_t id, const CompleteOrchestrationAction *a)
{
  struct sc_engine *e = t->e;
  if (a->orchestrationstatus == ST_CONTINUED) {
    t->can = a;
    return SC_OK;
  }
  int status = (int)a->orchestrationstatus;
  TaskFailureDetails *fd = a->failuredetails;
  if (!sc_status_is_terminal(status)) {
    fd = make_failure(&e->ba, "InvalidOrchestrationStatus",
                      sc_arena_printf(&e->ba, "the worker completed the orchestration with status %s",
                                      sc_pb_status_name(status)));
    status = ST_FAILED;
  }
  HistoryEvent *ev = ev_new(e, id);
  ExecutionCompletedEvent *c = sc_arena_alloc(&e->ba, sizeof *c);
  execution_completed_event__init(c);
  c->orchestrationstatus = status;
  c->result = a->result;
  c->failuredetails = fd;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED;
  ev->executioncompleted = c;
  int rc = hist(t, ev);
  if (rc != SC_OK)
    return rc;
  t->completed = true;
  t->final_status = status;
  t->result = a->result;
  t->failure = status == ST_FAILED ? fd : NULL;
  if (a->n_tags) {
    t->rec->n_tags = a->n_tags;
    t->rec->tags = sc_pb_copy_tags(&e->ba, &taskhubd__store__stored_instance__tags_entry__descriptor, a->n_tags,
                             (void *const *)a->tags);
  }
  return SC_OK;
}

static int continue_as_new(struct turn *t)
{
  struct sc_engine *e = t->e;
  struct sc_store *st = e->st;
  struct sc_arena *ar = &e->ba;
  const CompleteOrchestrationAction *a = t->can;
  StoredInstance *r = t->rec;
  int rc = st->ops->history_clear(st, t->iid);
  if (rc != SC_OK)
    return rc;
  t->idx = 0;
  char *exec = sc_arena_alloc(ar, 33);
  sc_random_hex32(exec);
  if (a->newversion) {
    r->version = a->newversion->value;
    r->has_version = true;
  }
  if (a->n_tags) {
    r->n_tags = a->n_tags;
    r->tags = sc_pb_copy_tags(ar, &taskhubd__store__stored_instance__tags_entry__descriptor, a->n_tags,
                        (void *const *)a->tags);
  }
  ExecutionStartedEvent *es = sc_arena_alloc(ar, sizeof *es);
  execution_started_event__init(es);
  es->name = r->name;
  if (r->has_version)
    es->version = sc_pb_sv(ar, r->version);
  es->input = a->result;
  OrchestrationInstance *oi = sc_arena_alloc(ar, sizeof *oi);
  orchestration_instance__init(oi);
  oi->instanceid = (char *)t->iid;
  oi->executionid = sc_pb_sv(ar, exec);
  es->orchestrationinstance = oi;
  es->parentinstance = r->parent;
  es->parenttracecontext = r->trace_context;
  es->n_tags = r->n_tags;
  es->tags = sc_pb_copy_tags(ar, &execution_started_event__tags_entry__descriptor, r->n_tags, (void *const *)r->tags);
  HistoryEvent *ev = ev_new(e, -1);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED;
  ev->executionstarted = es;
  /* Band 0 puts the new start and the carried-over events ahead of anything that arrived meanwhile. */
  if ((rc = enqueue_msg(e, t->iid, SC_BAND_START, ev, exec)) != SC_OK)
    return rc;
  for (size_t i = 0; i < a->n_carryoverevents; i++)
    if ((rc = enqueue_msg(e, t->iid, SC_BAND_START, a->carryoverevents[i], NULL)) != SC_OK)
      return rc;
  r->execution_id = exec;
  r->status = ST_RUNNING;
  r->created_us = sc_now_us();
  r->completed_us = 0;
  r->failure_details = NULL;
  r->has_input = a->result != NULL;
  r->has_output = false;
  if ((rc = st->ops->put_payload(st, t->iid, SC_PAYLOAD_OUTPUT, NULL, 0)) != SC_OK)
    return rc;
  rc = st->ops->put_payload(st, t->iid, SC_PAYLOAD_INPUT, a->result ? a->result->value : NULL,
                            a->result ? strlen(a->result->value) : 0);
  SC_DEBUG("event=continued_as_new instance=%s execution=%s carryover=%zu", SC_Q(t->iid), SC_Q(exec),
           a->n_carryoverevents);
  return rc;
}

static int rewind_children(struct sc_engine *e, const char *iid, const StoredInstance *parent, HistoryEvent **h,
                           size_t n);

/* The SDK's rewind: the history becomes exactly what it sent, and failed children are rewound too. */
static int rewind_history(struct turn *t, const RewindOrchestrationAction *a)
{
  struct sc_engine *e = t->e;
  int rc = e->st->ops->history_clear(e->st, t->iid);
  if (rc != SC_OK)
    return rc;
  t->idx = 0;
  for (size_t i = 0; i < a->n_newhistory; i++) {
    HistoryEvent *ev = a->newhistory[i];
    if ((rc = hist(t, ev)) != SC_OK)
      return rc;
    if (ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED && ev->executionstarted &&
        ev->executionstarted->orchestrationinstance && ev->executionstarted->orchestrationinstance->executionid)
      t->rec->execution_id = ev->executionstarted->orchestrationinstance->executionid->value;
  }
  if ((rc = rewind_children(e, t->iid, t->rec, a->newhistory, a->n_newhistory)) != SC_OK)
    return rc;
  /* A wake-up so that a normal replay re-issues what the rewind removed. */
  HistoryEvent *wake = ev_new(e, -1);
  OrchestratorStartedEvent *os = sc_arena_alloc(&e->ba, sizeof *os);
  orchestrator_started_event__init(os);
  wake->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
  wake->orchestratorstarted = os;
  return enqueue_msg(e, t->iid, SC_BAND_NORMAL, wake, NULL);
}

static void status_from_event(struct turn *t, const HistoryEvent *ev)
{
  switch (ev->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED:
    if (t->rec->status == ST_PENDING)
      t->rec->status = ST_RUNNING;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED:
    t->rec->status = ST_SUSPENDED;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED:
    t->rec->status = ST_RUNNING;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED:
    t->terminated = ev->executionterminated;
    break;
  default:
    break;
  }
}

/* After consuming, the suspend/resume flags describe what is still queued. */
static int refresh_suspend_flags(struct turn *t)
{
  StoredInstance *r = t->rec;
  if (!r->suspend_requested && !r->resume_requested)
    return SC_OK;
  struct sc_inbox_msg *m;
  size_t n;
  int rc = t->e->st->ops->inbox_load(t->e->st, true, t->iid, &t->e->ba, &m, &n);
  if (rc != SC_OK)
    return rc;
  r->suspend_requested = r->resume_requested = false;
  for (size_t i = 0; i < n; i++) {
    int type = m[i].msg->event ? (int)m[i].msg->event->event_type_case : 0;
    if (type == HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED) {
      r->suspend_requested = true;
      r->resume_requested = false;
    } else if (type == HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED) {
      r->resume_requested = true;
      r->suspend_requested = false;
    }
  }
  return SC_OK;
}

static int apply_turn(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *resp,
                      OrchestratorAction **actions, size_t nact)
{
  struct sc_store *st = e->st;
  StoredInstance *old;
  int rc = st->ops->get_instance(st, true, l->iid, &e->ba, &old);
  if (rc == SC_ENOTFOUND || (rc == SC_OK && (sc_status_is_terminal(old->status) ||
                                             strcmp(old->execution_id, l->exec) != 0))) {
    SC_INFO("event=completion_dropped instance=%s reason=instance_changed", SC_Q(l->iid));
    return SC_OK; /* terminated, replaced or purged while the worker held it */
  }
  if (rc != SC_OK)
    return rc;
  struct turn t = {.e = e, .iid = l->iid, .rec = copy_rec(&e->ba, old), .idx = old->history_count};

  const RewindOrchestrationAction *rewind = NULL;
  char why[300];
  const char *invalid = NULL;
  for (size_t i = 0; i < nact; i++) {
    if (actions[i]->orchestrator_action_type_case ==
        ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_REWIND_ORCHESTRATION)
      rewind = actions[i]->rewindorchestration;
    if (!invalid)
      invalid = invalid_action(actions[i], why, sizeof why);
  }
  size_t consumed = l->nevents;
  if (resp->numeventsprocessed && resp->numeventsprocessed->value >= 1 &&
      (size_t)resp->numeventsprocessed->value < consumed)
    consumed = (size_t)resp->numeventsprocessed->value;
  for (size_t i = 0; i < consumed; i++) {
    /* A rewind's new history already holds the events of this work item. */
    if (!rewind && (rc = hist(&t, l->events[i])) != SC_OK)
      return rc;
    status_from_event(&t, l->events[i]);
  }
  for (size_t i = 0; i < l->nkeys; i++)
    if (l->keys[i].sent < (int)consumed &&
        (rc = st->ops->inbox_delete(st, l->iid, l->keys[i].band, l->keys[i].seq)) != SC_OK)
      return rc;
  if ((rc = refresh_suspend_flags(&t)) != SC_OK)
    return rc;

  if (invalid) {
    SC_WARN("event=invalid_actions instance=%s error=%s", SC_Q(l->iid), SC_Q(invalid));
    CompleteOrchestrationAction fa = COMPLETE_ORCHESTRATION_ACTION__INIT;
    fa.orchestrationstatus = ST_FAILED;
    fa.failuredetails = make_failure(&e->ba, "InvalidAction", invalid);
    rc = complete(&t, -1, &fa);
  } else if (rewind) {
    rc = rewind_history(&t, rewind);
  } else {
    for (size_t i = 0; rc == SC_OK && i < nact; i++) {
      const OrchestratorAction *a = actions[i];
      switch (a->orchestrator_action_type_case) {
      case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK:
        rc = schedule_task(&t, a->id, a->scheduletask);
        break;
      case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER:
        rc = create_timer(&t, a->id, a->createtimer);
        break;
      case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION:
        rc = sub_orchestration(&t, a->id, a->createsuborchestration);
        break;
      case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT:
        rc = send_event(&t, a->id, a->sendevent);
        break;
      case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION:
        rc = complete(&t, a->id, a->completeorchestration);
        break;
      case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_TERMINATE_ORCHESTRATION:
        rc = terminate_other(e, a->terminateorchestration->instanceid, a->terminateorchestration->reason,
                             a->terminateorchestration->recurse);
        break;
      case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_ENTITY_MESSAGE:
        SC_WARN("event=entity_message_ignored instance=%s action=%d reason=entities_not_supported", SC_Q(l->iid),
                a->id);
        break;
      default:
        break;
      }
    }
  }
  if (rc != SC_OK)
    return rc;

  StoredInstance *r = t.rec;
  int64_t now = sc_now_us();
  if (resp->customstatus) {
    rc = st->ops->put_payload(st, l->iid, SC_PAYLOAD_CUSTOM_STATUS, resp->customstatus->value,
                              strlen(resp->customstatus->value));
    r->has_custom_status = true;
  } else if (r->has_custom_status) {
    rc = st->ops->put_payload(st, l->iid, SC_PAYLOAD_CUSTOM_STATUS, NULL, 0);
    r->has_custom_status = false;
  }
  if (rc != SC_OK)
    return rc;
  if (resp->orchestrationtracecontext)
    r->orchestration_trace = resp->orchestrationtracecontext;
  if (t.completed && !t.can) {
    r->status = t.final_status;
    r->completed_us = now;
    r->failure_details = t.failure;
    r->has_output = t.result != NULL;
    r->suspend_requested = r->resume_requested = false;
    if ((rc = st->ops->put_payload(st, l->iid, SC_PAYLOAD_OUTPUT, t.result ? t.result->value : NULL,
                                   t.result ? strlen(t.result->value) : 0)) != SC_OK ||
        (rc = st->ops->inbox_clear(st, l->iid)) != SC_OK || (rc = notify_parent(e, r, t.final_status, t.result,
                                                                                t.failure)) != SC_OK)
      return rc;
    if (t.terminated && t.terminated->recurse && r->has_children) {
      struct recurse_ctx rctx = {e, t.terminated->input};
      if ((rc = st->ops->children(st, true, l->iid, terminate_child, &rctx)) != SC_OK)
        return rc;
    }
    atomic_fetch_add_explicit(&sc_metrics.finished[r->status & 7], 1, memory_order_relaxed);
    SC_DEBUG("event=orchestration_completed instance=%s status=%s", SC_Q(l->iid), sc_pb_status_name(r->status));
  } else if (t.can) {
    t.idx = 0;
    if ((rc = continue_as_new(&t)) != SC_OK)
      return rc;
  }
  r->last_updated_us = now;
  r->history_count = t.idx;
  if ((rc = st->ops->put_instance(st, l->iid, r, old)) != SC_OK)
    return rc;
  if (r->status != old->status || t.can)
    add_changed(e, l->iid, r->status, true);
  mark_dirty(e, l->iid); /* what arrived during the turn */
  return SC_OK;
}

/* Joins the actions of buffered partial chunks (deprecated isPartial) with the final chunk's. */
static int gather_actions(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *last,
                          OrchestratorAction ***out, size_t *n)
{
  size_t total = last->n_actions;
  OrchestratorResponse **parts = sc_arena_alloc(&e->ba, (l->npartials + 1) * sizeof *parts);
  for (size_t i = 0; i < l->npartials; i++) {
    parts[i] = orchestrator_response__unpack(sc_arena_allocator(&e->ba), l->partial_lens[i], l->partials[i]);
    if (!parts[i])
      return SC_ECORRUPT;
    total += parts[i]->n_actions;
  }
  OrchestratorAction **all = sc_arena_alloc(&e->ba, (total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (size_t i = 0; i < l->npartials; i++)
    for (size_t j = 0; j < parts[i]->n_actions; j++)
      all[k++] = parts[i]->actions[j];
  for (size_t j = 0; j < last->n_actions; j++)
    all[k++] = last->actions[j];
  *out = all;
  *n = k;
  return SC_OK;
}

static struct sc_lease *find_lease(struct sc_engine *e, enum lease_kind kind, const char *token,
                                   const char *fallback)
{
  struct sc_lease *l = NULL;
  if (token && token[0])
    l = sc_map_get(&e->leases, token);
  else if (fallback)
    l = sc_map_get(kind == LEASE_ORCH ? &e->orch_leases : &e->act_by_task, fallback);
  return l && l->kind == kind ? l : NULL;
}

static int unknown_token(struct sc_engine *e, struct sc_cmd *c, const char *token, const char *what)
{
  if (token && token[0] && sc_map_get(&e->applied_set, token))
    return DONE; /* a repeat of a completion already applied */
  if (token && token[0])
    return fail(c, SC_ENOTFOUND, "unknown or expired completion token %s", token);
  return fail(c, SC_ENOTFOUND, "no work item in flight for %s", what);
}

int apply_complete_orch(struct sc_engine *e, struct sc_cmd *c)
{
  const OrchestratorResponse *resp = c->u.complete_orch.resp;
  struct sc_lease *l = find_lease(e, LEASE_ORCH, resp->completiontoken, resp->instanceid);
  if (!l)
    return unknown_token(e, c, resp->completiontoken, resp->instanceid);
  if (resp->instanceid[0] && strcmp(resp->instanceid, l->iid) != 0)
    return fail(c, SC_EINVAL, "instanceId: %s does not match the work item's instance %s", resp->instanceid,
                l->iid);
  if (resp->ispartial) {
    size_t n = orchestrator_response__get_packed_size(resp);
    uint8_t *buf = malloc(n ? n : 1);
    l->partials = realloc(l->partials, (l->npartials + 1) * sizeof *l->partials);
    l->partial_lens = realloc(l->partial_lens, (l->npartials + 1) * sizeof *l->partial_lens);
    if (!buf || !l->partials || !l->partial_lens)
      sc_panic("out of memory");
    orchestrator_response__pack(resp, buf);
    l->partials[l->npartials] = buf;
    l->partial_lens[l->npartials++] = n;
    return DONE;
  }
  if (resp->requireshistory) {
    lease_abandon(e, l, "worker_requires_history");
    return DONE;
  }
  OrchestratorAction **actions = resp->actions;
  size_t nact = resp->n_actions;
  int rc = SC_OK;
  if (l->npartials)
    rc = gather_actions(e, l, resp, &actions, &nact);
  if (rc == SC_OK)
    rc = apply_turn(e, l, resp, actions, nact);
  if (rc != SC_OK)
    return fail(c, rc, "applying the work item of %s failed", l->iid);
  sc_map_remove(&e->backoff, l->iid);
  lease_release(e, l, true);
  atomic_fetch_add_explicit(&sc_metrics.completed[SC_WI_ORCH], 1, memory_order_relaxed);
  pthread_mutex_lock(&e->mu);
  e->stats.orch_completed++;
  pthread_mutex_unlock(&e->mu);
  return DONE;
}

/* ------------------------------------------------------------------ completing activities */

int apply_complete_act(struct sc_engine *e, struct sc_cmd *c)
{
  const ActivityResponse *resp = c->u.complete_act.resp;
  char key[SC_MAX_ID + 16];
  snprintf(key, sizeof key, "%s\x01%d", resp->instanceid, resp->taskid);
  struct sc_lease *l = find_lease(e, LEASE_ACT, resp->completiontoken, key);
  if (!l)
    return unknown_token(e, c, resp->completiontoken, key);
  struct sc_store *st = e->st;
  int rc = st->ops->actq_delete(st, l->act_seq);
  StoredInstance *rec;
  int grc = st->ops->get_instance(st, true, l->iid, &e->ba, &rec);
  if (rc == SC_OK && grc == SC_OK && !sc_status_is_terminal(rec->status) &&
      strcmp(rec->execution_id, l->exec) == 0) {
    HistoryEvent *ev = ev_new(e, -1);
    /* Failure is the presence of failureDetails, as every SDK encodes it. */
    if (resp->failuredetails) {
      TaskFailedEvent *f = sc_arena_alloc(&e->ba, sizeof *f);
      task_failed_event__init(f);
      f->taskscheduledid = l->task_id;
      f->failuredetails = resp->failuredetails;
      ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_TASK_FAILED;
      ev->taskfailed = f;
    } else {
      TaskCompletedEvent *d = sc_arena_alloc(&e->ba, sizeof *d);
      task_completed_event__init(d);
      d->taskscheduledid = l->task_id;
      d->result = resp->result;
      ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED;
      ev->taskcompleted = d;
    }
    rc = enqueue_msg(e, l->iid, SC_BAND_NORMAL, ev, l->exec);
  } else if (rc == SC_OK && grc != SC_OK && grc != SC_ENOTFOUND) {
    rc = grc;
  }
  if (rc != SC_OK)
    return fail(c, rc, "applying the activity result for %s failed", l->iid);
  char bkey[32];
  snprintf(bkey, sizeof bkey, "a%llu", (unsigned long long)l->act_seq);
  sc_map_remove(&e->backoff, bkey);
  lease_release(e, l, true);
  atomic_fetch_add_explicit(&sc_metrics.completed[SC_WI_ACT], 1, memory_order_relaxed);
  pthread_mutex_lock(&e->mu);
  e->stats.act_completed++;
  pthread_mutex_unlock(&e->mu);
  return DONE;
}

int apply_abandon(struct sc_engine *e, struct sc_cmd *c)
{
  enum lease_kind kind = c->u.abandon.kind == SC_ABANDON_ORCH ? LEASE_ORCH : LEASE_ACT;
  if (c->u.abandon.kind == SC_ABANDON_ENTITY)
    return fail(c, SC_ENOTFOUND, "unknown or expired completion token %s", c->u.abandon.token);
  struct sc_lease *l = find_lease(e, kind, c->u.abandon.token, NULL);
  if (!l)
    return unknown_token(e, c, c->u.abandon.token, "");
  lease_abandon(e, l, "worker_abandoned");
  return DONE;
}

/* ------------------------------------------------------------------ rewind and restart */

static int rewind_one(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason,
                      const char *parent_exec, int depth);

static ParentInstanceInfo *parent_info(struct sc_arena *a, const char *iid, const StoredInstance *p, int32_t task)
{
  ParentInstanceInfo *pi = sc_arena_alloc(a, sizeof *pi);
  parent_instance_info__init(pi);
  pi->taskscheduledid = task;
  pi->name = sc_pb_sv(a, p->name);
  if (p->has_version)
    pi->version = sc_pb_sv(a, p->version);
  OrchestrationInstance *oi = sc_arena_alloc(a, sizeof *oi);
  orchestration_instance__init(oi);
  oi->instanceid = (char *)iid;
  oi->executionid = sc_pb_sv(a, p->execution_id);
  pi->orchestrationinstance = oi;
  return pi;
}

/*
 * Children created in this history that never reported completion: a FAILED one is rewound, a purged one is
 * created again from its SubOrchestrationInstanceCreated event. Either way it reports to the parent's new
 * execution (the rewound history carries a new execution id).
 */
static int rewind_children(struct sc_engine *e, const char *iid, const StoredInstance *parent, HistoryEvent **h,
                           size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (h[i]->event_type_case != HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED)
      continue;
    bool finished = false;
    for (size_t j = i + 1; j < n && !finished; j++)
      finished = h[j]->event_type_case == HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED &&
                 h[j]->suborchestrationinstancecompleted->taskscheduledid == h[i]->eventid;
    if (finished)
      continue;
    const SubOrchestrationInstanceCreatedEvent *ce = h[i]->suborchestrationinstancecreated;
    StoredInstance *crec;
    int rc = e->st->ops->get_instance(e->st, true, ce->instanceid, &e->ba, &crec);
    if (rc == SC_OK && crec->status == ST_FAILED) {
      rc = rewind_one(e, ce->instanceid, NULL, parent->execution_id, 1);
    } else if (rc == SC_ENOTFOUND) {
      char *exec = sc_arena_alloc(&e->ba, 33);
      sc_random_hex32(exec);
      struct new_instance ni = {
          .iid = ce->instanceid,
          .name = ce->name,
          .exec = exec,
          .version = ce->version,
          .input = ce->input,
          .trace = ce->parenttracecontext,
          .n_tags = ce->n_tags,
          .tags = (void *const *)ce->tags,
          .parent = parent_info(&e->ba, iid, parent, h[i]->eventid),
      };
      rc = create_instance(e, &ni);
      SC_INFO("event=child_recreated instance=%s parent=%s", SC_Q(ce->instanceid), SC_Q(iid));
    } else if (rc == SC_OK) {
      rc = SC_OK; /* still running, or finished in a way the parent already saw */
    }
    if (rc != SC_OK)
      return rc;
  }
  return SC_OK;
}

static int rewind_one(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason,
                      const char *parent_exec, int depth)
{
  struct sc_store *st = e->st;
  StoredInstance *old;
  int rc = st->ops->get_instance(st, true, iid, &e->ba, &old);
  if (rc != SC_OK)
    return rc;
  if (old->status != ST_FAILED)
    return SC_ESTATE;
  StoredInstance *r = copy_rec(&e->ba, old);
  r->status = ST_RUNNING;
  r->completed_us = 0;
  r->failure_details = NULL;
  r->has_output = false;
  r->last_updated_us = sc_now_us();
  if (parent_exec && r->parent && r->parent->orchestrationinstance) {
    ParentInstanceInfo *p = sc_arena_alloc(&e->ba, sizeof *p);
    *p = *r->parent;
    OrchestrationInstance *oi = sc_arena_alloc(&e->ba, sizeof *oi);
    *oi = *r->parent->orchestrationinstance;
    oi->executionid = sc_pb_sv(&e->ba, parent_exec);
    p->orchestrationinstance = oi;
    r->parent = p;
  }
  if ((rc = st->ops->put_payload(st, iid, SC_PAYLOAD_OUTPUT, NULL, 0)) != SC_OK)
    return rc;
  HistoryEvent *ev = ev_new(e, -1);
  ExecutionRewoundEvent *rw = sc_arena_alloc(&e->ba, sizeof *rw);
  execution_rewound_event__init(rw);
  rw->reason = (Google__Protobuf__StringValue *)reason;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND;
  ev->executionrewound = rw;
  if ((rc = enqueue_msg(e, iid, SC_BAND_NORMAL, ev, NULL)) != SC_OK ||
      (rc = st->ops->put_instance(st, iid, r, old)) != SC_OK)
    return rc;
  add_changed(e, iid, ST_RUNNING, true);
  SC_INFO("event=instance_rewound instance=%s depth=%d", SC_Q(iid), depth);
  return SC_OK;
}

int apply_rewind(struct sc_engine *e, struct sc_cmd *c)
{
  const RewindInstanceRequest *req = c->u.rewind.req;
  StoredInstance *rec;
  int rc = e->st->ops->get_instance(e->st, true, req->instanceid, &e->ba, &rec);
  if (rc == SC_ENOTFOUND)
    return fail(c, SC_ENOTFOUND, "instance not found: %s", req->instanceid);
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", req->instanceid);
  if (rec->status != ST_FAILED)
    return fail(c, SC_ESTATE, "instance %s is %s; only FAILED instances can be rewound", req->instanceid,
                sc_pb_status_name(rec->status));
  rc = rewind_one(e, req->instanceid, req->reason, NULL, 0);
  if (rc != SC_OK)
    return fail(c, rc, "rewinding %s failed", req->instanceid);
  return DONE;
}

int apply_restart(struct sc_engine *e, struct sc_cmd *c)
{
  const RestartInstanceRequest *req = c->u.restart.req;
  struct sc_store *st = e->st;
  StoredInstance *old;
  int rc = st->ops->get_instance(st, true, req->instanceid, &e->ba, &old);
  if (rc == SC_ENOTFOUND)
    return fail(c, SC_ENOTFOUND, "instance not found: %s", req->instanceid);
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", req->instanceid);
  if (!req->restartwithnewinstanceid && !sc_status_is_terminal(old->status))
    return fail(c, SC_ESTATE, "instance %s is %s; only finished instances can be restarted in place",
                req->instanceid, sc_pb_status_name(old->status));
  char *input = NULL;
  size_t ilen;
  if (old->has_input && (rc = st->ops->get_payload(st, true, req->instanceid, SC_PAYLOAD_INPUT, &e->ba, &input,
                                                   &ilen)) != SC_OK)
    return fail(c, rc, "reading the input of %s failed", req->instanceid);
  if (req->restartwithnewinstanceid) {
    sc_random_hex32(c->u.restart.iid);
  } else {
    snprintf(c->u.restart.iid, sizeof c->u.restart.iid, "%s", req->instanceid);
    if ((rc = st->ops->delete_instance(st, req->instanceid, old)) != SC_OK)
      return fail(c, rc, "replacing %s failed", req->instanceid);
  }
  char *exec = sc_arena_alloc(&e->ba, 33);
  sc_random_hex32(exec);
  struct new_instance ni = {
      .iid = c->u.restart.iid,
      .name = old->name,
      .exec = exec,
      .version = old->has_version ? sc_pb_sv(&e->ba, old->version) : NULL,
      .input = sc_pb_sv(&e->ba, input),
      .trace = old->trace_context,
      .n_tags = old->n_tags,
      .tags = (void *const *)old->tags,
  };
  if ((rc = create_instance(e, &ni)) != SC_OK)
    return fail(c, rc, "restarting %s failed", req->instanceid);
  SC_INFO("event=instance_restarted instance=%s new_instance=%s", SC_Q(req->instanceid), SC_Q(c->u.restart.iid));
  return DONE;
}
