/*
 * What workers send back: CompleteOrchestratorTask, CompleteActivityTask and the Abandon calls. A completion
 * that cannot be accepted as it is (too large, contradictory) still ends its work item: the activity fails or
 * the orchestration fails, with the reason, rather than waiting for a redelivery that would end the same way.
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deprecated isPartial chunks beyond this many, or this many times --max-message in all, fail the turn. */
#define MAX_PARTIALS 256
#define MAX_PARTIAL_FACTOR 4

/*
 * A completion without a token names only its instance, so a retry of one already applied would match the
 * instance's next work item. An SDK never sends an action twice once the history confirms it: a response whose
 * scheduled actions are already in the history is such a retry.
 */
static bool tokenless_repeat(struct sc_engine *e, const char *iid, const OrchestratorResponse *resp)
{
  bool any = false;
  for (size_t i = 0; i < resp->n_actions && !any; i++)
    any = action_schedules(resp->actions[i]);
  if (!any)
    return false;
  HistoryEvent **h;
  size_t n;
  if (sc_txn_history_load(e->tx, iid, &e->ba, &h, &n) != SC_OK)
    return false;
  for (size_t i = 0; i < n; i++) {
    int t = (int)h[i]->event_type_case;
    if (t != HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED && t != HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED &&
        t != HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED && t != HISTORY_EVENT__EVENT_TYPE_EVENT_SENT)
      continue;
    for (size_t j = 0; j < resp->n_actions; j++)
      if (action_schedules(resp->actions[j]) && resp->actions[j]->id == h[i]->eventid)
        return true;
  }
  return false;
}

/* Keeps a deprecated isPartial chunk until the last one arrives; false when there are too many. */
static bool keep_partial(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *resp)
{
  size_t n = orchestrator_response__get_packed_size(resp);
  if (l->npartials >= MAX_PARTIALS || l->partial_bytes + n > MAX_PARTIAL_FACTOR * e->cfg.max_receive)
    return false;
  uint8_t *buf = malloc(n ? n : 1);
  uint8_t **parts = realloc(l->partials, (l->npartials + 1) * sizeof *parts);
  if (parts)
    l->partials = parts;
  size_t *lens = realloc(l->partial_lens, (l->npartials + 1) * sizeof *lens);
  if (lens)
    l->partial_lens = lens;
  if (!buf || !parts || !lens)
    sc_panic("out of memory");
  orchestrator_response__pack(resp, buf);
  l->partials[l->npartials] = buf;
  l->partial_lens[l->npartials++] = n;
  l->partial_bytes += n;
  return true;
}

int apply_complete_orch(struct sc_engine *e, struct sc_cmd *c)
{
  const OrchestratorResponse *resp = c->u.complete_orch.resp;
  bool tokenless = !resp->completiontoken[0];
  struct sc_lease *l = find_lease(e, LEASE_ORCH, resp->completiontoken, resp->instanceid);
  if (l && tokenless && tokenless_from_elsewhere(l, c->u.complete_orch.peer))
    return fail(c, SC_ENOTFOUND, "no work item of %s in flight on this connection: a completion without "
                "completionToken must come from the connection whose GetWorkItems stream received it",
                resp->instanceid);
  if (!l)
    return unknown_token(e, c, resp->completiontoken, resp->instanceid);
  if (resp->instanceid[0] && strcmp(resp->instanceid, l->iid) != 0) {
    /* Only the holder knows the token: a worker that names another instance is confused, and will not send
     * this item's result now. */
    /* The message first: abandoning frees the lease. */
    int r = fail(c, SC_EINVAL, "instanceId: %s does not match the work item's instance %s", resp->instanceid,
                 l->iid);
    lease_abandon(e, l, "completion_names_another_instance");
    return r;
  }
  if (tokenless && tokenless_repeat(e, l->iid, resp)) {
    SC_INFO("event=completion_repeated instance=%s", SC_Q(l->iid));
    return DONE; /* applied before: nothing to do */
  }
  const char *forced_type = NULL, *forced = NULL;
  if (resp->ispartial) {
    lease_renew(e, l); /* the worker is making progress on it */
    if (keep_partial(e, l, resp))
      return DONE;
    forced_type = "PayloadTooLarge";
    forced = sc_arena_printf(&e->ba, "the worker's response came in more than %d chunks or %zu bytes", MAX_PARTIALS,
                             MAX_PARTIAL_FACTOR * e->cfg.max_receive);
  } else if (resp->requireshistory) {
    lease_abandon(e, l, "worker_requires_history");
    return DONE;
  }
  OrchestratorAction **actions = resp->actions;
  size_t nact = resp->n_actions;
  int rc = SC_OK;
  if (l->npartials && !forced)
    rc = gather_actions(e, l, resp, &actions, &nact);
  bool dropped = false;
  if (rc == SC_OK)
    rc = apply_turn(e, l, resp, actions, nact, forced_type, forced, &dropped);
  if (rc != SC_OK) {
    /* Nothing of it is kept (the command's writes roll back); the work is handed out again. */
    int r = fail(c, rc, "applying the work item of %s failed", l->iid); /* before the lease is freed */
    lease_abandon(e, l, "completion_not_applied");
    return r;
  }
  backoff_forget(e, LEASE_ORCH, l->iid, 0);
  if (dropped) {
    lease_release(e, l);
    return DONE;
  }
  lease_applied(e, l);
  count_completed(e, LEASE_ORCH);
  return DONE;
}

/* The event that reports the activity's outcome to its orchestration. */
static HistoryEvent *activity_outcome(struct sc_engine *e, const struct sc_lease *l, const ActivityResponse *resp)
{
  const struct sc_limits *lim = &e->cfg.limits;
  HistoryEvent *ev = ev_new(e, -1);
  struct sc_err err;
  TaskFailureDetails *fd = resp->failuredetails;
  /* A result or failure over the payload limit fails the task, with the reason, instead of being refused:
   * a refused completion would only be redelivered and end the same way. */
  if (!sc_check_payload(lim, "the activity's result", resp->result ? resp->result->value : NULL, &err) ||
      !sc_check_failure(lim, "the activity's failure details", fd, &err))
    fd = make_failure(&e->ba, "PayloadTooLarge", err.msg);
  /* Failure is the presence of failureDetails, as every SDK encodes it. */
  if (fd) {
    TaskFailedEvent *f = sc_arena_alloc(&e->ba, sizeof *f);
    task_failed_event__init(f);
    f->taskscheduledid = l->task_id;
    f->failuredetails = fd;
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
  return ev;
}

int apply_complete_act(struct sc_engine *e, struct sc_cmd *c)
{
  const ActivityResponse *resp = c->u.complete_act.resp;
  bool tokenless = !resp->completiontoken[0];
  char key[SC_MAX_ID + 16];
  snprintf(key, sizeof key, "%s\x01%d", resp->instanceid, resp->taskid);
  struct sc_lease *l = find_lease(e, LEASE_ACT, resp->completiontoken, key);
  char applied_key[SC_MAX_ID + 18];
  snprintf(applied_key, sizeof applied_key, "t%s", key);
  if (l && tokenless && tokenless_from_elsewhere(l, c->u.complete_act.peer))
    return fail(c, SC_ENOTFOUND, "no task %s/%d in flight on this connection: a completion without "
                "completionToken must come from the connection whose GetWorkItems stream received it",
                resp->instanceid, resp->taskid);
  if (!l) {
    if (tokenless && applied_has(e, applied_key))
      return DONE; /* a repeat of a completion already applied */
    return unknown_token(e, c, resp->completiontoken, key);
  }
  if (resp->instanceid[0] && (strcmp(resp->instanceid, l->iid) != 0 || resp->taskid != l->task_id)) {
    int r = fail(c, SC_EINVAL, "instanceId/taskId: %s/%d does not match the work item's task %s/%d",
                 resp->instanceid, resp->taskid, l->iid, l->task_id); /* before the lease is freed */
    lease_abandon(e, l, "completion_names_another_task");
    return r;
  }
  struct sc_txn *tx = e->tx;
  int rc = sc_txn_actq_delete(tx, l->iid, l->act_seq);
  StoredInstance *rec;
  int grc = sc_txn_get_instance(tx, l->iid, &e->ba, &rec);
  if (rc == SC_OK && grc == SC_OK && !sc_status_is_terminal(rec->status) &&
      strcmp(rec->execution_id, l->exec) == 0)
    rc = enqueue_msg(e, l->iid, SC_BAND_NORMAL, activity_outcome(e, l, resp), l->exec);
  else if (rc == SC_OK && grc != SC_OK && grc != SC_ENOTFOUND)
    rc = grc;
  if (rc != SC_OK) {
    int r = fail(c, rc, "applying the activity result for %s failed", l->iid); /* before the lease is freed */
    lease_abandon(e, l, "completion_not_applied");
    return r;
  }
  backoff_forget(e, LEASE_ACT, NULL, l->act_seq);
  if (tokenless)
    applied_add(e, applied_key);
  lease_applied(e, l);
  count_completed(e, LEASE_ACT);
  return DONE;
}

int apply_renew(struct sc_engine *e, struct sc_cmd *c)
{
  struct sc_lease *l = sc_map_get(&e->orch_leases, c->u.renew.iid);
  if (l)
    lease_renew(e, l);
  return DONE;
}

int apply_abandon(struct sc_engine *e, struct sc_cmd *c)
{
  enum lease_kind kind = c->u.abandon.kind == SC_ABANDON_ORCH  ? LEASE_ORCH
                         : c->u.abandon.kind == SC_ABANDON_ACT ? LEASE_ACT
                                                               : LEASE_ENTITY;
  struct sc_lease *l = find_lease(e, kind, c->u.abandon.token, NULL);
  if (!l)
    return unknown_token(e, c, c->u.abandon.token, "");
  lease_abandon(e, l, "worker_abandoned");
  return DONE;
}
