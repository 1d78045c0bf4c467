/*
 * Durable entities: keyed actors "@name@key" with a state and a queue of operations (protocol.md §6).
 *
 * An entity's queue is the inbox of its id (entity ids start with '@', orchestration ids may not), so queued
 * operations are stored, recovered, forwarded between partitions and delayed by timers exactly as an
 * orchestration's messages are; its record (state, last change, lock) lives in the store's entity place. The
 * ready queue holds entity ids beside instance ids; an entity has at most one batch out at a time (its lease is
 * keyed by its id, like an orchestration's), carrying the operations at the front of its queue. A batch's
 * completion applies in one commit: the operations it answered leave the queue, the state changes once, its
 * signals and orchestration starts are queued. Operations it did not answer stay at the front.
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Operations in one batch at most: a batch is one work item, and one slow operation holds up the rest. */
#define MAX_BATCH_OPS 100

bool entity_name(const char *id, char *out, size_t cap)
{
  if (!sc_is_entity_id(id))
    return false;
  const char *at = strchr(id + 1, '@');
  if (!at || at == id + 1 || (size_t)(at - id - 1) >= cap)
    return false;
  memcpy(out, id + 1, (size_t)(at - id - 1));
  out[at - id - 1] = 0;
  return true;
}

/* A fresh request id for the signals taskhubd makes (a client's own keep theirs): a random UUID, as the SDKs'. */
static char *new_request_id(struct sc_arena *a)
{
  char h[33];
  sc_random_hex32(h);
  return sc_arena_printf(a, "%.8s-%.4s-4%.3s-%c%.3s-%.12s", h, h + 8, h + 13, "89ab"[h[16] % 4], h + 17, h + 20);
}

static bool is_operation(const HistoryEvent *ev)
{
  return ev && (ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED ||
                ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED);
}

/* ------------------------------------------------------------------ queueing operations */

int entity_deliver(struct sc_engine *e, const char *id, HistoryEvent *op)
{
  struct sc_txn *tx = e->tx;
  StoredEntity *rec = NULL;
  int rc = sc_txn_get_entity(tx, id, &e->ba, &rec);
  if (rc == SC_ENOTFOUND) {
    /* Signalled before it has state: a transient record, so queries with includeTransient and
     * CleanEntityStorage see it. */
    StoredEntity fresh = TASKHUBD__STORE__STORED_ENTITY__INIT;
    fresh.last_modified_us = sc_now_us();
    rc = sc_txn_put_entity(tx, id, &fresh);
  }
  if (rc != SC_OK)
    return rc;
  return enqueue_msg(e, id, SC_BAND_NORMAL, op, NULL);
}

int entity_send(struct sc_engine *e, const char *id, HistoryEvent *op, int64_t at_us)
{
  if (!owns(e, id)) {
    Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
    f.kind = TASKHUBD__STORE__FORWARD__KIND__ENTITY_MSG;
    f.instance_id = (char *)id;
    f.event = op;
    f.execution_id = (char *)"";
    /* A delay travels with it: the owner schedules it (scheduledTime is in the event). */
    forward_send(e, &f);
    return SC_OK;
  }
  if (at_us > sc_now_us()) {
    StoredMsg m = TASKHUBD__STORE__STORED_MSG__INIT;
    m.event = op;
    StoredTimer tm = TASKHUBD__STORE__STORED_TIMER__INIT;
    tm.kind = TASKHUBD__STORE__STORED_TIMER__KIND__ORCH_MSG;
    tm.instance_id = (char *)id;
    tm.msg = &m;
    tm.band = SC_BAND_NORMAL;
    uint64_t seq = sc_txn_next_seq(e->tx);
    int rc = sc_txn_timer_put(e->tx, at_us, seq, &tm);
    if (rc == SC_OK)
      sc_heap_push(&e->theap, (struct sc_heap_item){at_us, seq, NULL});
    return rc;
  }
  return entity_deliver(e, id, op);
}

/* When a signal's scheduledTime lies ahead, 0 otherwise. */
static int64_t scheduled_us(const Google__Protobuf__Timestamp *t)
{
  return t ? sc_pb_ts_us(t) : 0;
}

int entity_forwarded(struct sc_engine *e, const char *id, HistoryEvent *op)
{
  int64_t at = 0;
  if (op && op->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED)
    at = scheduled_us(op->entityoperationsignaled->scheduledtime);
  return op ? entity_send(e, id, op, at) : SC_EINVAL;
}

int apply_signal_entity(struct sc_engine *e, struct sc_cmd *c)
{
  const SignalEntityRequest *r = c->u.signal_entity.req;
  const char *id = r->instanceid;
  if (e->cfg.max_inbox) {
    size_t count = 0, bytes = 0;
    int rc = sc_txn_inbox_stats(e->tx, id, e->cfg.max_inbox, &count, &bytes);
    if (rc != SC_OK)
      return fail(c, rc, "reading entity %s failed", id);
    if (count >= e->cfg.max_inbox)
      return fail(c, SC_ETOOBIG, "entity %s has %zu operations queued, the most --max-inbox allows", id, count);
  }
  HistoryEvent *ev = ev_new(e, -1);
  EntityOperationSignaledEvent *s = sc_arena_alloc(&e->ba, sizeof *s);
  entity_operation_signaled_event__init(s);
  s->requestid = r->requestid[0] ? r->requestid : new_request_id(&e->ba);
  s->operation = r->name;
  s->input = r->input;
  s->scheduledtime = r->scheduledtime;
  s->targetinstanceid = sc_pb_sv(&e->ba, id);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED;
  ev->entityoperationsignaled = s;
  int rc = entity_send(e, id, ev, scheduled_us(r->scheduledtime));
  if (rc != SC_OK)
    return fail(c, rc, "queueing the signal for entity %s failed", id);
  SC_DEBUG("event=entity_signalled entity=%s operation=%s", SC_Q(id), SC_Q(r->name));
  return DONE;
}

/* ------------------------------------------------------------------ batches */

int dispatch_entity(struct sc_engine *e, const char *id)
{
  struct sc_txn *tx = e->tx;
  if (!owns(e, id) || work_is_leased(e, id))
    return DROPPED; /* another replica's now, or looked at again when its batch ends */
  char name[SC_MAX_ID + 1];
  if (!entity_name(id, name, sizeof name))
    return DROPPED;
  struct sc_inbox_msg *msgs;
  size_t n;
  if (sc_txn_inbox_load(tx, id, &e->ba, &msgs, &n) != SC_OK || n == 0)
    return DROPPED;
  StoredEntity *rec = NULL;
  if (sc_txn_get_entity(tx, id, &e->ba, &rec) != SC_OK)
    rec = NULL;
  struct want want = {LEASE_ENTITY, name, "", false};
  struct sc_stream *s = pick_stream(e, &want, NULL);
  if (!s) {
    wait_for_stream(e, &want, xstrdup(id));
    return WAITING;
  }

  EntityBatchRequest req = ENTITY_BATCH_REQUEST__INIT;
  req.instanceid = (char *)id;
  if (rec && rec->has_state)
    req.entitystate = sc_pb_sv(&e->ba, rec->state);
  WorkItem wi = WORK_ITEM__INIT;
  wi.request_case = WORK_ITEM__REQUEST_ENTITY_REQUEST;
  wi.entityrequest = &req;
  struct sc_lease *l = lease_new(e, LEASE_ENTITY, id, NULL);
  wi.completiontoken = l->token;
  l->keys = malloc((n < MAX_BATCH_OPS ? n : MAX_BATCH_OPS) * sizeof *l->keys + 1);
  req.operations = sc_arena_alloc(&e->ba, (n < MAX_BATCH_OPS ? n : MAX_BATCH_OPS) * sizeof *req.operations + 1);
  if (!l->keys)
    sc_panic("out of memory");
  size_t size = work_item__get_packed_size(&wi);
  for (size_t i = 0; i < n && req.n_operations < MAX_BATCH_OPS; i++) {
    HistoryEvent *ev = msgs[i].msg->event;
    if (!is_operation(ev))
      continue; /* lock and unlock messages: not operations (critical sections come with orchestration calls) */
    OperationRequest *op = sc_arena_alloc(&e->ba, sizeof *op);
    operation_request__init(op);
    if (ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED) {
      op->operation = ev->entityoperationsignaled->operation;
      op->requestid = ev->entityoperationsignaled->requestid;
      op->input = ev->entityoperationsignaled->input;
    } else {
      op->operation = ev->entityoperationcalled->operation;
      op->requestid = ev->entityoperationcalled->requestid;
      op->input = ev->entityoperationcalled->input;
    }
    size_t add = operation_request__get_packed_size(op) + 8;
    if (req.n_operations > 0 && size + add > e->cfg.max_message)
      break; /* the rest go in the next batch */
    size += add;
    req.operations[req.n_operations++] = op;
    l->keys[l->nkeys++] = (struct msgkey){msgs[i].band, (int)req.n_operations - 1, msgs[i].seq};
  }
  if (req.n_operations == 0) {
    lease_free(l);
    return DROPPED;
  }
  l->nsent = req.n_operations;
  size = work_item__get_packed_size(&wi);
  lease_attach(e, l, s);
  send_item(e, s, &wi, size);
  SC_DEBUG("event=dispatched kind=entity entity=%s token=%s stream=%llu operations=%zu", SC_Q(id), l->token,
           (unsigned long long)s->id, req.n_operations);
  return DISPATCHED;
}

/* An orchestration an entity starts: created here when its partition is ours, else by its owner; an id in use
 * (live or finished) is left alone. */
static int start_from_entity(struct sc_engine *e, const StartNewOrchestrationAction *a)
{
  CreateInstanceRequest *req = sc_arena_alloc(&e->ba, sizeof *req);
  create_instance_request__init(req);
  req->instanceid = a->instanceid[0] ? a->instanceid : new_request_id(&e->ba);
  req->name = a->name;
  req->version = a->version;
  req->input = a->input;
  req->scheduledstarttimestamp = a->scheduledtime;
  OrchestrationIdReusePolicy *keep = sc_arena_alloc(&e->ba, sizeof *keep);
  orchestration_id_reuse_policy__init(keep); /* an empty list: replace nothing */
  req->orchestrationidreusepolicy = keep;
  struct sc_cmd *c = sc_arena_alloc(&e->ba, sizeof *c);
  memset(c, 0, sizeof *c);
  c->kind = SC_CMD_START;
  c->u.start.req = req;
  const char *iid = client_target(c);
  if (!owns(e, iid)) {
    Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
    f.kind = TASKHUBD__STORE__FORWARD__KIND__CLIENT;
    f.instance_id = (char *)iid;
    f.command = SC_CMD_START;
    size_t len = create_instance_request__get_packed_size(req);
    f.request.data = sc_arena_alloc(&e->ba, len ? len : 1);
    f.request.len = create_instance_request__pack(req, f.request.data);
    forward_send(e, &f);
    return SC_OK;
  }
  sc_txn_savepoint(e->tx);
  apply_start(e, c);
  if (c->err.code != SC_OK) {
    sc_txn_rollback(e->tx);
    SC_DEBUG("event=entity_start_skipped instance=%s reason=%s", SC_Q(iid), SC_Q(c->err.msg));
  }
  return SC_OK;
}

/* An action of a batch, checked as a client's request would be; a bad one is skipped with a warning (the batch's
 * operations already ran and cannot be undone). */
static int apply_action(struct sc_engine *e, const char *from, const OperationAction *a)
{
  struct sc_err err = {0};
  const struct sc_limits *lim = &e->cfg.limits;
  if (a->operation_action_type_case == OPERATION_ACTION__OPERATION_ACTION_TYPE_SEND_SIGNAL) {
    const SendSignalAction *s = a->sendsignal;
    char name[SC_MAX_ID + 1];
    if (!sc_check_id(lim, "sendSignal.instanceId", s->instanceid, &err) || !entity_name(s->instanceid, name, sizeof name) ||
        !sc_check_name(lim, "sendSignal.name", s->name, true, &err) ||
        !sc_check_payload(lim, "sendSignal.input", s->input ? s->input->value : NULL, &err)) {
      SC_WARN("event=entity_action_refused entity=%s action=sendSignal error=%s", SC_Q(from),
              SC_Q(err.msg[0] ? err.msg : "sendSignal.instanceId: not an entity id (@name@key)"));
      return SC_OK;
    }
    HistoryEvent *ev = ev_new(e, -1);
    EntityOperationSignaledEvent *sig = sc_arena_alloc(&e->ba, sizeof *sig);
    entity_operation_signaled_event__init(sig);
    sig->requestid = new_request_id(&e->ba);
    sig->operation = s->name;
    sig->input = s->input;
    sig->scheduledtime = s->scheduledtime;
    sig->targetinstanceid = sc_pb_sv(&e->ba, s->instanceid);
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED;
    ev->entityoperationsignaled = sig;
    return entity_send(e, s->instanceid, ev, scheduled_us(s->scheduledtime));
  }
  if (a->operation_action_type_case == OPERATION_ACTION__OPERATION_ACTION_TYPE_START_NEW_ORCHESTRATION) {
    const StartNewOrchestrationAction *s = a->startneworchestration;
    if ((s->instanceid[0] && !sc_check_id(lim, "startNewOrchestration.instanceId", s->instanceid, &err)) ||
        sc_is_entity_id(s->instanceid) || !sc_check_name(lim, "startNewOrchestration.name", s->name, true, &err) ||
        !sc_check_payload(lim, "startNewOrchestration.input", s->input ? s->input->value : NULL, &err)) {
      SC_WARN("event=entity_action_refused entity=%s action=startNewOrchestration error=%s", SC_Q(from),
              SC_Q(err.msg[0] ? err.msg : "startNewOrchestration.instanceId: ids starting with '@' are entities'"));
      return SC_OK;
    }
    return start_from_entity(e, s);
  }
  return SC_OK;
}

int apply_complete_entity(struct sc_engine *e, struct sc_cmd *c)
{
  const EntityBatchResult *res = c->u.complete_entity.res;
  struct sc_lease *l = find_lease(e, LEASE_ENTITY, res->completiontoken, NULL);
  if (!l)
    return unknown_token(e, c, res->completiontoken, "");
  if (res->failuredetails) {
    /* The worker could not run the batch at all: nothing of it happened; the operations go out again. */
    lease_abandon(e, l, "entity_batch_failed");
    return DONE;
  }
  struct sc_txn *tx = e->tx;
  const char *id = l->iid;
  struct sc_err err = {0};
  if (res->entitystate && !sc_check_payload(&e->cfg.limits, "entityState", res->entitystate->value, &err)) {
    lease_abandon(e, l, "entity_state_too_large");
    return fail(c, SC_ETOOBIG, "%s", err.msg);
  }
  size_t done = res->n_results < l->nkeys ? res->n_results : l->nkeys;
  for (size_t i = 0; i < done; i++)
    sc_txn_inbox_delete(tx, id, l->keys[i].band, l->keys[i].seq);
  StoredEntity *old = NULL;
  if (sc_txn_get_entity(tx, id, &e->ba, &old) != SC_OK)
    old = NULL;
  StoredEntity rec = TASKHUBD__STORE__STORED_ENTITY__INIT;
  if (old)
    rec = *old;
  if (done > 0) {
    /* The state after the operations it answered (an absent state: the entity deleted itself). */
    bool had = rec.has_state;
    const char *before = had ? rec.state : NULL;
    rec.has_state = res->entitystate != NULL;
    rec.state = rec.has_state ? res->entitystate->value : (char *)"";
    if (had != rec.has_state || (had && strcmp(before, rec.state) != 0) || !old)
      rec.last_modified_us = sc_now_us();
    for (size_t i = 0; i < res->n_actions; i++) {
      int rc = apply_action(e, id, res->actions[i]);
      if (rc != SC_OK)
        return fail(c, rc, "applying an action of entity %s failed", id);
    }
  }
  size_t left = 0, bytes = 0;
  int rc = sc_txn_inbox_stats(tx, id, 1, &left, &bytes);
  if (rc != SC_OK)
    return fail(c, rc, "reading entity %s failed", id);
  /* Nothing left of it (no state, no lock, nothing queued): no record either. */
  if (!rec.has_state && !rec.locked_by[0] && left == 0)
    rc = old ? sc_txn_put_entity(tx, id, NULL) : SC_OK;
  else
    rc = sc_txn_put_entity(tx, id, &rec);
  if (rc != SC_OK)
    return fail(c, rc, "writing entity %s failed", id);
  backoff_forget(e, LEASE_ENTITY, id, 0);
  SC_DEBUG("event=entity_batch_applied entity=%s operations=%zu answered=%zu has_state=%d", SC_Q(id), l->nkeys, done,
           rec.has_state);
  count_completed(e, LEASE_ENTITY);
  lease_applied(e, l);
  return DONE;
}

/* ------------------------------------------------------------------ clean-up */

int apply_clean_entities(struct sc_engine *e, struct sc_cmd *c)
{
  const CleanEntityStorageRequest *r = c->u.clean_entities.req;
  struct sc_entity_query q = {.after = r->continuationtoken && r->continuationtoken->value[0]
                                           ? r->continuationtoken->value
                                           : NULL,
                              .include_transient = true,
                              .page_size = 500};
  struct sc_entity_page page;
  struct sc_err err = {0};
  int rc = e->st->ops->query_entities(e->st, &q, &e->ba, &page, &err);
  if (rc != SC_OK)
    return fail(c, rc, "%s", err.msg);
  for (size_t i = 0; i < page.n; i++) {
    const char *id = page.rows[i].id;
    if (!owns(e, id) || work_is_leased(e, id))
      continue; /* another replica's, or in use right now: its owner or the next call cleans it */
    /* Committed state plus this batch's changes: the page was read from the store. */
    StoredEntity *rec = NULL;
    if (sc_txn_get_entity(e->tx, id, &e->ba, &rec) != SC_OK)
      continue;
    size_t left = 0, bytes = 0;
    if (sc_txn_inbox_stats(e->tx, id, 1, &left, &bytes) != SC_OK)
      continue;
    if (r->removeemptyentities && !rec->has_state && !rec->locked_by[0] && left == 0) {
      if ((rc = sc_txn_put_entity(e->tx, id, NULL)) != SC_OK)
        return fail(c, rc, "removing entity %s failed", id);
      c->u.clean_entities.removed++;
    }
  }
  if (page.next_after)
    snprintf(c->u.clean_entities.next, sizeof c->u.clean_entities.next, "%s", page.next_after);
  return DONE;
}
