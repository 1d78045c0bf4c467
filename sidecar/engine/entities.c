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

static bool is_operation(const HistoryEvent *ev)
{
  return ev && (ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED ||
                ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED);
}


/* Whether orchestration |iid| is gone or finished, as far as this replica can tell (another partition's: no). */
static bool owner_finished(struct sc_engine *e, const char *iid)
{
  StoredInstance *rec;
  int rc = owns(e, iid) ? sc_txn_get_instance(e->tx, iid, &e->ba, &rec) : sc_store_get_instance(e->st, iid, &e->ba, &rec);
  return rc == SC_ENOTFOUND || (rc == SC_OK && sc_status_is_terminal(rec->status));
}

/* A lock request at the front of an unlocked entity's queue: the entity is its section's now; the request goes on
 * to the next entity of the set, or the owner is told the whole set is locked. */
static int grant(struct sc_engine *e, StoredEntity *cur, const EntityLockRequestedEvent *l)
{
  const char *owner = l->parentinstanceid ? l->parentinstanceid->value : "";
  if (!owner[0] || owner_finished(e, owner))
    return SC_OK; /* nobody to hold it */
  cur->locked_by = sc_arena_strdup(&e->ba, owner);
  cur->lock_section = sc_arena_strdup(&e->ba, l->criticalsectionid);
  SC_DEBUG("event=entity_locked entity=%s owner=%s section=%s position=%d of=%zu", SC_Q(l->lockset[l->position]),
           SC_Q(owner), SC_Q(l->criticalsectionid), l->position, l->n_lockset);
  if ((size_t)l->position + 1 < l->n_lockset) {
    EntityLockRequestedEvent *next = sc_arena_alloc(&e->ba, sizeof *next);
    *next = *l;
    next->position = l->position + 1;
    HistoryEvent *ev = ev_new(e, -1);
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_REQUESTED;
    ev->entitylockrequested = next;
    return entity_send(e, next->lockset[next->position], ev, 0);
  }
  HistoryEvent *ev = ev_new(e, -1);
  EntityLockGrantedEvent *g = sc_arena_alloc(&e->ba, sizeof *g);
  entity_lock_granted_event__init(g);
  g->criticalsectionid = l->criticalsectionid;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_GRANTED;
  ev->entitylockgranted = g;
  return deliver_to_parent(e, owner, NULL, ev);
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
  int rc = sc_txn_inbox_load(tx, id, &e->ba, &msgs, &n);
  if (rc != SC_OK)
    return READ_FAILED; /* a queue left unread would wait until the next signal */
  if (n == 0)
    return DROPPED;
  StoredEntity *rec = NULL;
  rc = sc_txn_get_entity(tx, id, &e->ba, &rec);
  if (rc == SC_ENOTFOUND)
    rec = NULL;
  else if (rc != SC_OK)
    return READ_FAILED; /* never run its operations on an empty state in place of one we could not read */

  /* The queue from the front: unlocks and lock requests are the server's to apply, with or without a worker;
   * operations go to the worker, and while a critical section holds the entity only its owner's calls do (the
   * rest wait their turn). */
  StoredEntity cur = TASKHUBD__STORE__STORED_ENTITY__INIT;
  if (rec)
    cur = *rec;
  else
    cur.last_modified_us = sc_now_us();
  bool changed = false;
  size_t cap = n < MAX_BATCH_OPS ? n : MAX_BATCH_OPS;
  size_t *pick = sc_arena_alloc(&e->ba, cap * sizeof *pick + 1), npick = 0;
  bool *gone = sc_arena_alloc(&e->ba, n * sizeof *gone);
  memset(gone, 0, n * sizeof *gone);
  for (size_t i = 0; i < n && npick < cap; i++) {
    HistoryEvent *ev = msgs[i].msg->event;
    bool locked = cur.locked_by[0] != 0;
    if (gone[i])
      continue;
    if (ev && ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT) {
      gone[i] = true;
      sc_txn_inbox_delete(tx, id, msgs[i].band, msgs[i].seq);
      if (locked && strcmp(cur.lock_section, ev->entityunlocksent->criticalsectionid) == 0) {
        SC_DEBUG("event=entity_unlocked entity=%s owner=%s section=%s", SC_Q(id), SC_Q(cur.locked_by),
                 SC_Q(cur.lock_section));
        cur.locked_by = cur.lock_section = (char *)"";
        changed = true;
        /* What waited behind the lock (queued before this unlock) may go now: look from the front again. */
        npick = 0;
        i = (size_t)-1;
      }
      continue;
    }
    if (ev && ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_REQUESTED) {
      if (locked)
        continue; /* waits for the section that holds it */
      if (npick > 0)
        break; /* the operations before it run first */
      if (grant(e, &cur, ev->entitylockrequested) != SC_OK)
        sc_panic("granting a lock on %s failed", id);
      changed = true;
      gone[i] = true;
      sc_txn_inbox_delete(tx, id, msgs[i].band, msgs[i].seq);
      continue;
    }
    if (!is_operation(ev)) {
      gone[i] = true;
      sc_txn_inbox_delete(tx, id, msgs[i].band, msgs[i].seq); /* nothing an entity runs */
      continue;
    }
    if (locked && (ev->event_type_case != HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED ||
                   !ev->entityoperationcalled->parentinstanceid ||
                   strcmp(ev->entityoperationcalled->parentinstanceid->value, cur.locked_by) != 0))
      continue;
    pick[npick++] = i;
  }
  if (changed && sc_txn_put_entity(tx, id, &cur) != SC_OK)
    sc_panic("writing entity %s failed", id);
  if (npick == 0)
    return DROPPED;

  struct want want = {LEASE_ENTITY, name, "", false};
  struct sc_stream *s = pick_stream(e, &want, NULL);
  if (!s) {
    wait_for_stream(e, &want, xstrdup(id));
    return WAITING;
  }
  EntityBatchRequest req = ENTITY_BATCH_REQUEST__INIT;
  req.instanceid = (char *)id;
  if (cur.has_state)
    req.entitystate = sc_pb_sv(&e->ba, cur.state);
  /* The same batch, V2: the queued events themselves (the SDK converts them and sends operationInfos back, which
   * taskhubd does not need: it answers callers from the requests it sent). */
  EntityRequest req2 = ENTITY_REQUEST__INIT;
  req2.instanceid = (char *)id;
  req2.entitystate = req.entitystate;
  req2.operationrequests = sc_arena_alloc(&e->ba, npick * sizeof *req2.operationrequests);
  WorkItem wi = WORK_ITEM__INIT;
  if (e->cfg.entity_v2) {
    wi.request_case = WORK_ITEM__REQUEST_ENTITY_REQUEST_V2;
    wi.entityrequestv2 = &req2;
  } else {
    wi.request_case = WORK_ITEM__REQUEST_ENTITY_REQUEST;
    wi.entityrequest = &req;
  }
  struct sc_lease *l = lease_new(e, LEASE_ENTITY, id, NULL);
  wi.completiontoken = l->token;
  l->keys = malloc(npick * sizeof *l->keys);
  req.operations = sc_arena_alloc(&e->ba, npick * sizeof *req.operations);
  if (!l->keys)
    sc_panic("out of memory");
  size_t size = work_item__get_packed_size(&wi);
  for (size_t k = 0; k < npick; k++) {
    const struct sc_inbox_msg *m = &msgs[pick[k]];
    const HistoryEvent *ev = m->msg->event;
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
    if (e->cfg.entity_v2)
      add = history_event__get_packed_size(ev) + 8;
    if (req.n_operations > 0 && size + add > e->cfg.max_message)
      break; /* the rest go in the next batch */
    size += add;
    req.operations[req.n_operations++] = op;
    req2.operationrequests[req2.n_operationrequests++] = (HistoryEvent *)ev;
    l->keys[l->nkeys++] = (struct msgkey){m->band, (int)req.n_operations - 1, m->seq};
  }
  l->nsent = req.n_operations;
  size = work_item__get_packed_size(&wi);
  lease_attach(e, l, s);
  send_item(e, s, &wi, size);
  SC_DEBUG("event=dispatched kind=entity entity=%s token=%s stream=%llu operations=%zu encoding=%s", SC_Q(id),
           l->token, (unsigned long long)s->id, req.n_operations, e->cfg.entity_v2 ? "v2" : "v1");
  return DISPATCHED;
}

/* An orchestration an entity starts: created here when its partition is ours, else by its owner; an id in use
 * (live or finished) is left alone. */
static int start_from_entity(struct sc_engine *e, const StartNewOrchestrationAction *a)
{
  CreateInstanceRequest *req = sc_arena_alloc(&e->ba, sizeof *req);
  create_instance_request__init(req);
  req->instanceid = a->instanceid[0] ? a->instanceid : entity_request_id(&e->ba);
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
    sig->requestid = entity_request_id(&e->ba);
    sig->operation = s->name;
    sig->input = s->input;
    sig->scheduledtime = s->scheduledtime;
    sig->targetinstanceid = sc_pb_sv(&e->ba, s->instanceid);
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED;
    ev->entityoperationsignaled = sig;
    return entity_send(e, s->instanceid, ev, entity_scheduled_us(s->scheduledtime));
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

/* EntityOperationCompleted or EntityOperationFailed for the orchestration that called. */
static int reply_to_caller(struct sc_engine *e, const EntityOperationCalledEvent *call, const OperationResult *r)
{
  if (!call->parentinstanceid || !call->parentinstanceid->value[0])
    return SC_OK;
  HistoryEvent *ev = ev_new(e, -1);
  if (r->result_type_case == OPERATION_RESULT__RESULT_TYPE_FAILURE) {
    EntityOperationFailedEvent *f = sc_arena_alloc(&e->ba, sizeof *f);
    entity_operation_failed_event__init(f);
    f->requestid = call->requestid;
    f->failuredetails = r->failure ? r->failure->failuredetails : NULL;
    if (!f->failuredetails)
      f->failuredetails = make_failure(&e->ba, "EntityOperationFailed", "the entity operation failed");
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_FAILED;
    ev->entityoperationfailed = f;
  } else {
    EntityOperationCompletedEvent *done = sc_arena_alloc(&e->ba, sizeof *done);
    entity_operation_completed_event__init(done);
    done->requestid = call->requestid;
    done->output = r->success ? r->success->result : NULL;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_COMPLETED;
    ev->entityoperationcompleted = done;
  }
  const char *pexec = call->parentexecutionid ? call->parentexecutionid->value : NULL;
  return deliver_to_parent(e, call->parentinstanceid->value, pexec, ev);
}

int apply_complete_entity(struct sc_engine *e, struct sc_cmd *c)
{
  const EntityBatchResult *res = c->u.complete_entity.res;
  struct sc_lease *l = find_lease(e, LEASE_ENTITY, res->completiontoken, NULL);
  if (!l)
    return unknown_token(e, c, res->completiontoken, "");
  if (res->failuredetails || (res->n_results == 0 && l->nkeys > 0)) {
    /* The worker could not run the batch at all (or answered none of it): nothing of it happened; the operations
     * go out again, after a backoff that grows while this repeats. */
    lease_abandon(e, l, res->failuredetails ? "entity_batch_failed" : "entity_batch_unanswered");
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
  struct sc_inbox_msg *msgs = NULL;
  size_t nmsgs = 0;
  if (done && sc_txn_inbox_load(tx, id, &e->ba, &msgs, &nmsgs) != SC_OK)
    return fail(c, SC_EIO, "reading the queue of entity %s failed", id);
  /* The batch's keys are in queue order, as the queue is: one pass over both finds each operation's message. */
  size_t j = 0;
  for (size_t i = 0; i < done; i++) {
    while (j < nmsgs && (msgs[j].band != l->keys[i].band || msgs[j].seq != l->keys[i].seq))
      j++;
    /* A call's caller gets its result (from the request the batch carried, not from what the worker says). */
    const HistoryEvent *ev = j < nmsgs ? msgs[j].msg->event : NULL;
    if (ev && ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED) {
      int rc = reply_to_caller(e, ev->entityoperationcalled, res->results[i]);
      if (rc != SC_OK)
        return fail(c, rc, "answering a call to entity %s failed", id);
    }
    sc_txn_inbox_delete(tx, id, l->keys[i].band, l->keys[i].seq);
  }
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
    if (r->releaseorphanedlocks && rec->locked_by[0] && owner_finished(e, rec->locked_by)) {
      StoredEntity freed = *rec;
      freed.locked_by = freed.lock_section = (char *)"";
      if ((rc = sc_txn_put_entity(e->tx, id, &freed)) != SC_OK)
        return fail(c, rc, "releasing the lock of entity %s failed", id);
      rec = &freed;
      c->u.clean_entities.released++;
      mark_dirty(e, id); /* what waited for the lock may run now */
    }
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
