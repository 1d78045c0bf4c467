/*
 * Durable entities, the part every other file may use: queueing operations for an entity (here, after a delay, or
 * through its partition's owner), SignalEntity, the messages an orchestration sends to entities, and the release
 * of an ending orchestration's locks. It sits below instance.c and turn.c, which call it; what runs batches and
 * applies their results is entities.c, above. See entities.c for the model.
 */
#include "internal.h"

#include "common/log.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
char *entity_request_id(struct sc_arena *a)
{
  char h[33];
  sc_random_hex32(h);
  return sc_arena_printf(a, "%.8s-%.4s-4%.3s-%c%.3s-%.12s", h, h + 8, h + 13, "89ab"[h[16] % 4], h + 17, h + 20);
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
int64_t entity_scheduled_us(const Google__Protobuf__Timestamp *t)
{
  return t ? sc_pb_ts_us(t) : 0;
}

int entity_forwarded(struct sc_engine *e, const char *id, HistoryEvent *op)
{
  int64_t at = 0;
  if (op && op->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED)
    at = entity_scheduled_us(op->entityoperationsignaled->scheduledtime);
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
  s->requestid = r->requestid[0] ? r->requestid : entity_request_id(&e->ba);
  s->operation = r->name;
  s->input = r->input;
  s->scheduledtime = r->scheduledtime;
  s->targetinstanceid = sc_pb_sv(&e->ba, id);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED;
  ev->entityoperationsignaled = s;
  int rc = entity_send(e, id, ev, entity_scheduled_us(r->scheduledtime));
  if (rc != SC_OK)
    return fail(c, rc, "queueing the signal for entity %s failed", id);
  SC_DEBUG("event=entity_signalled entity=%s operation=%s", SC_Q(id), SC_Q(r->name));
  return DONE;
}

/* ------------------------------------------------------------------ from orchestrations */

int entity_message(struct sc_engine *e, const HistoryEvent *ev)
{
  HistoryEvent *m = ev_new(e, -1);
  m->event_type_case = ev->event_type_case;
  const char *target = NULL;
  int64_t at = 0;
  switch (ev->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED:
    m->entityoperationsignaled = ev->entityoperationsignaled;
    target = ev->entityoperationsignaled->targetinstanceid->value;
    at = entity_scheduled_us(ev->entityoperationsignaled->scheduledtime);
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED:
    m->entityoperationcalled = ev->entityoperationcalled;
    target = ev->entityoperationcalled->targetinstanceid->value;
    at = entity_scheduled_us(ev->entityoperationcalled->scheduledtime);
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_REQUESTED:
    m->entitylockrequested = ev->entitylockrequested;
    target = ev->entitylockrequested->lockset[ev->entitylockrequested->position];
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT:
    m->entityunlocksent = ev->entityunlocksent;
    target = ev->entityunlocksent->targetinstanceid->value;
    break;
  default:
    return SC_EINVAL;
  }
  return entity_send(e, target, m, at);
}

/* Sends an unlock for critical section |section| of |owner| to entity |target|: it releases the lock if that
 * section holds it, and otherwise drops the message. */
static int send_unlock(struct sc_engine *e, const char *owner, const char *section, const char *target)
{
  HistoryEvent *ev = ev_new(e, -1);
  EntityUnlockSentEvent *u = sc_arena_alloc(&e->ba, sizeof *u);
  entity_unlock_sent_event__init(u);
  u->criticalsectionid = (char *)section;
  u->parentinstanceid = sc_pb_sv(&e->ba, owner);
  u->targetinstanceid = sc_pb_sv(&e->ba, target);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT;
  ev->entityunlocksent = u;
  return entity_send(e, target, ev, 0);
}

int entity_release_locks(struct sc_engine *e, const char *iid)
{
  HistoryEvent **h;
  size_t n;
  int rc = sc_txn_history_load(e->tx, iid, &e->ba, &h, &n);
  if (rc != SC_OK)
    return rc == SC_ENOTFOUND ? SC_OK : rc;
  /* Every entity of every critical section it asked for, unless it unlocked that one itself. A lock granted or
   * still on its way is released either way: an unlock that arrives first is dropped, and a grant to a finished
   * orchestration is refused where its owner can tell (see dispatch) or released by CleanEntityStorage. */
  for (size_t i = 0; i < n; i++) {
    if (h[i]->event_type_case != HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_REQUESTED)
      continue;
    const EntityLockRequestedEvent *l = h[i]->entitylockrequested;
    for (size_t j = 0; j < l->n_lockset; j++) {
      bool unlocked = false;
      for (size_t k = i + 1; k < n && !unlocked; k++)
        unlocked = h[k]->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT &&
                   strcmp(h[k]->entityunlocksent->criticalsectionid, l->criticalsectionid) == 0 &&
                   h[k]->entityunlocksent->targetinstanceid &&
                   strcmp(h[k]->entityunlocksent->targetinstanceid->value, l->lockset[j]) == 0;
      if (!unlocked && (rc = send_unlock(e, iid, l->criticalsectionid, l->lockset[j])) != SC_OK)
        return rc;
    }
  }
  return SC_OK;
}