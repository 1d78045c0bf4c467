/* What workers send back: CompleteOrchestratorTask, CompleteActivityTask and the Abandon calls. */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
