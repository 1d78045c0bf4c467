/* Connected GetWorkItems streams: what each accepts (limits, filters), and sending work items down them. */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
void send_item(struct sc_engine *e, struct sc_stream *s, const WorkItem *wi, size_t size)
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
  s->ready = c->u.stream_open.ready;
  s->ctx = c->u.stream_open.ctx;
  s->peer = c->u.stream_open.peer ? xstrdup(c->u.stream_open.peer) : NULL;
  /* A worker's own limit counts up to --max-work-items: no worker holds more than that of each kind. */
  int cap = e->cfg.default_max_items;
  int32_t mo = r->maxconcurrentorchestrationworkitems, ma = r->maxconcurrentactivityworkitems;
  s->max_orch = mo > 0 && mo < cap ? mo : cap;
  s->max_act = ma > 0 && ma < cap ? ma : cap;
  /* Entity work goes to workers that asked for it (a limit, or filters naming entities) before any other; a
   * worker that did neither (the Python SDK never sets the limit) may still get it when no such worker is
   * connected, as it gets anything no filter names. */
  int32_t me = r->maxconcurrententityworkitems;
  s->max_entity = me > 0 && me < cap ? me : cap;
  s->entity_asked = me > 0 || (r->workitemfilters && r->workitemfilters->n_entities > 0);
  s->history_streaming = has_cap(r, WORKER_CAPABILITY__WORKER_CAPABILITY_HISTORY_STREAMING);
  s->last_send_us = sc_now_us();
  if (e->nstreams == e->capstreams) {
    e->capstreams = e->capstreams ? e->capstreams * 2 : 8;
    e->streams = realloc(e->streams, e->capstreams * sizeof *e->streams);
    if (!e->streams)
      sc_panic("out of memory");
  }
  e->streams[e->nstreams++] = s;
  if (e->nstreams == 1)
    e->st->ops->set_workers(e->st, true); /* replicas with workers get the partitions */
  c->u.stream_open.id = s->id;
  e->slots_gen++; /* it may accept what waits */
  pthread_mutex_lock(&e->mu);
  e->stats.streams = e->nstreams;
  pthread_mutex_unlock(&e->mu);
  SC_INFO("event=worker_connected stream=%llu max_orchestrations=%d max_activities=%d max_entities=%d "
          "entities_asked=%d history_streaming=%d filters=%d",
          (unsigned long long)s->id, s->max_orch, s->max_act, s->max_entity, s->entity_asked, s->history_streaming,
          r->workitemfilters != NULL);
  return DONE;
}

int apply_stream_close(struct sc_engine *e, struct sc_cmd *c)
{
  size_t idx;
  struct sc_stream *s = find_stream(e, c->u.stream_close.ctx, &idx);
  if (!s)
    return DONE;
  int orphans = 0;
  /* Its work goes to whoever can take it now; the tokens still complete it for a while (lease.c). */
  while (s->leases) {
    lease_orphan(e, s->leases);
    orphans++;
  }
  e->streams[idx] = e->streams[--e->nstreams];
  if (e->nstreams == 0)
    e->st->ops->set_workers(e->st, false);
  if (e->rr >= e->nstreams)
    e->rr = 0;
  pthread_mutex_lock(&e->mu);
  e->stats.streams = e->nstreams;
  pthread_mutex_unlock(&e->mu);
  SC_INFO("event=worker_disconnected stream=%llu orphaned_items=%d", (unsigned long long)s->id, orphans);
  free(s->peer);
  free(s);
  return DONE;
}

static bool versions_match(char **versions, size_t n, const char *v)
{
  if (n == 0)
    return true;
  for (size_t i = 0; i < n; i++)
    if (strcmp(versions[i], v ? v : "") == 0)
      return true;
  return false;
}

/* How well a stream fits an item: 2 its filters name it, 1 it has no filters (takes anything), 0 it refuses it.
 * Entities: 2 also for a worker that set an entity limit without naming entities. */
static int fit(const struct sc_stream *s, enum lease_kind kind, const char *name, const char *version)
{
  const WorkItemFilters *f = s->req->workitemfilters;
  if (kind == LEASE_ENTITY) {
    if (f && f->n_entities > 0) {
      for (size_t i = 0; i < f->n_entities; i++)
        if (strcasecmp(f->entities[i]->name, name) == 0)
          return 2;
      return 0;
    }
    if (s->req->maxconcurrententityworkitems > 0)
      return 2;
    return f ? 0 : 1;
  }
  if (!f)
    return 1;
  if (kind == LEASE_ORCH) {
    for (size_t i = 0; i < f->n_orchestrations; i++)
      if (strcmp(f->orchestrations[i]->name, name) == 0 &&
          versions_match(f->orchestrations[i]->versions, f->orchestrations[i]->n_versions, version))
        return 2;
    return 0;
  }
  for (size_t i = 0; i < f->n_activities; i++)
    if (strcmp(f->activities[i]->name, name) == 0 &&
        (!version || !version[0] ||
         versions_match(f->activities[i]->versions, f->activities[i]->n_versions, version)))
      return 2;
  return 0;
}

static bool free_slot(const struct sc_stream *s, enum lease_kind kind)
{
  return kind == LEASE_ORCH ? s->n_orch < s->max_orch
         : kind == LEASE_ACT ? s->n_act < s->max_act
                             : s->n_entity < s->max_entity;
}

bool any_capacity(struct sc_engine *e, enum lease_kind kind)
{
  for (size_t i = 0; i < e->nstreams; i++)
    if (free_slot(e->streams[i], kind))
      return true;
  return false;
}

/* Whether the stream's worker reads what it is sent: one that holds --max-outbox unsent gets no more. */
static bool reads(struct sc_engine *e, struct sc_stream *s)
{
  return !s->ready || !e->cfg.max_outbox || s->ready(s->ctx, e->cfg.max_outbox);
}

/*
 * Round-robin among the streams that fit best. A worker whose filters name the item gets it before any worker
 * without filters, and while one is connected the unfiltered ones never do, even when it is busy: several apps
 * share a task hub, and an unfiltered worker of another app would fail an orchestration it has not registered.
 * Unfiltered workers get what no connected filter names.
 */
struct sc_stream *pick_stream(struct sc_engine *e, const struct want *w, struct pick_why *why)
{
  if (why)
    why->accepting = why->accepting_streaming = 0;
  int best = 0; /* the best fit among streams that could ever take it */
  for (size_t i = 0; i < e->nstreams; i++) {
    struct sc_stream *s = e->streams[i];
    int f = fit(s, w->kind, w->name, w->version);
    if (f && why) {
      why->accepting++;
      why->accepting_streaming += s->history_streaming;
    }
    if (f > best && (!w->needs_streaming || s->history_streaming))
      best = f;
  }
  if (!best)
    return NULL;
  for (size_t k = 0; k < e->nstreams; k++) {
    size_t i = (e->rr + k) % e->nstreams;
    struct sc_stream *s = e->streams[i];
    if (fit(s, w->kind, w->name, w->version) != best || (w->needs_streaming && !s->history_streaming) ||
        !free_slot(s, w->kind) || !reads(e, s))
      continue;
    e->rr = (i + 1) % e->nstreams;
    return s;
  }
  return NULL;
}

bool stream_fits_any(struct sc_engine *e, enum lease_kind kind, const char *name, const char *version)
{
  for (size_t i = 0; i < e->nstreams; i++)
    if (fit(e->streams[i], kind, name, version))
      return true;
  return false;
}

void wait_for_stream(struct sc_engine *e, const struct want *want, void *item)
{
  char key[2 * 1024];
  snprintf(key, sizeof key, "%c%d%s\x01%s", "oae"[want->kind], want->needs_streaming,
           want->name, want->version ? want->version : "");
  struct waitq *w = sc_map_get(&e->waitqs, key);
  if (!w) {
    w = calloc(1, sizeof *w);
    if (!w)
      sc_panic("out of memory");
    w->key = xstrdup(key);
    w->name = xstrdup(want->name);
    w->version = xstrdup(want->version ? want->version : "");
    w->want = (struct want){want->kind, w->name, w->version, want->needs_streaming};
    sc_map_put(&e->waitqs, w->key, w);
    w->next = e->waitqs_list;
    e->waitqs_list = w;
  }
  fifo_push(&w->items, item);
  e->last_waitq = w;
}

void ping(struct sc_engine *e, int64_t now)
{
  HealthPing hp = HEALTH_PING__INIT;
  WorkItem wi = WORK_ITEM__INIT;
  wi.request_case = WORK_ITEM__REQUEST_HEALTH_PING;
  wi.healthping = &hp;
  for (size_t i = 0; i < e->nstreams; i++) {
    struct sc_stream *s = e->streams[i];
    /* A stream that holds unsent work needs no ping, and one that stopped reading must not collect them; asking
     * also lets the transport end a stream that has stalled (--stream-stall). */
    if (s->ready && !s->ready(s->ctx, e->cfg.max_outbox ? e->cfg.max_outbox : SIZE_MAX))
      continue;
    if (now - s->last_send_us >= e->cfg.health_ping_us)
      send_item(e, s, &wi, 0);
  }
}

/* Work held by connected workers. Items of workers that went away wait for their grace period, not a drain. */
void work_inflight(struct sc_engine *e, size_t *orch, size_t *act)
{
  *orch = *act = 0;
  for (size_t i = 0; i < e->nstreams; i++) {
    *orch += (size_t)e->streams[i]->n_orch + (size_t)e->streams[i]->n_entity;
    *act += (size_t)e->streams[i]->n_act;
  }
}
