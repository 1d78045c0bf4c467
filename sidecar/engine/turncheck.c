/*
 * Whether a worker's response to an orchestration work item can be applied. A worker's actions and the
 * histories it supplies are held to the same rules as client requests (the limits layer: ids, names, payload
 * sizes, UTF-8), and to the invariants a history needs to be replayed: one completion and nothing after it,
 * unique action ids, no rewind nobody asked for, a rewound history with exactly one start and no end,
 * continue-as-new carrying over only events. A response that breaks any of them fails the orchestration with
 * the reason, and the history stays consistent (the work item's events, then ExecutionCompleted).
 */
#include "internal.h"

#include "common/log.h"
#include "common/pbutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct check {
  const struct turn_check *tc;
  struct sc_err err;
  const char *type; /* the failure's errorType */
};

static bool bad(struct check *k, const char *type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool bad(struct check *k, const char *type, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->err.msg, sizeof k->err.msg, fmt, ap);
  va_end(ap);
  k->type = type;
  return false;
}

/* A limits check failed: its message, and the type by what it found. */
static bool limit(struct check *k, bool ok)
{
  if (!ok)
    k->type = k->err.code == SC_ETOOBIG ? "PayloadTooLarge" : "InvalidAction";
  return ok;
}

static const char *sv(const Google__Protobuf__StringValue *v)
{
  return v ? v->value : NULL;
}

static bool payload(struct check *k, const char *field, const Google__Protobuf__StringValue *v)
{
  return limit(k, sc_check_payload(k->tc->lim, field, sv(v), &k->err));
}

static bool name(struct check *k, const char *field, const char *v, bool required)
{
  return limit(k, sc_check_name(k->tc->lim, field, v, required, &k->err));
}

static bool id(struct check *k, const char *field, const char *v)
{
  return limit(k, sc_check_id(k->tc->lim, field, v, &k->err));
}

static bool tags(struct check *k, const char *field, size_t n, void *const *t)
{
  return limit(k, sc_check_tags(k->tc->lim, field, n, t, &k->err));
}

/* One event a worker supplies (a rewound history, a carried-over event): the fields that become ids, names
 * and payloads are checked as a client's would be. */
static bool check_event(struct check *k, const char *where, const HistoryEvent *ev)
{
  char f[160];
#define F(s) (snprintf(f, sizeof f, "%s.%s", where, s), f)
  switch (ev->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED: {
    const ExecutionStartedEvent *s = ev->executionstarted;
    const OrchestrationInstance *oi = s->orchestrationinstance;
    if (oi && oi->instanceid[0] && strcmp(oi->instanceid, k->tc->iid) != 0)
      return bad(k, "InvalidAction", "%s: executionStarted names instance %s, not %s", where, oi->instanceid,
                 k->tc->iid);
    return name(k, F("executionStarted.name"), s->name, true) &&
           (!s->version || name(k, F("executionStarted.version"), s->version->value, false)) &&
           payload(k, F("executionStarted.input"), s->input) &&
           (!oi || !oi->executionid || id(k, F("executionStarted.orchestrationInstance.executionId"),
                                          oi->executionid->value)) &&
           (!s->parentinstance || !s->parentinstance->orchestrationinstance ||
            id(k, F("executionStarted.parentInstance.orchestrationInstance.instanceId"),
               s->parentinstance->orchestrationinstance->instanceid)) &&
           tags(k, F("executionStarted.tags"), s->n_tags, (void *const *)s->tags);
  }
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED: {
    const TaskScheduledEvent *s = ev->taskscheduled;
    return name(k, F("taskScheduled.name"), s->name, true) &&
           (!s->version || name(k, F("taskScheduled.version"), s->version->value, false)) &&
           payload(k, F("taskScheduled.input"), s->input) &&
           tags(k, F("taskScheduled.tags"), s->n_tags, (void *const *)s->tags);
  }
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED:
    return payload(k, F("taskCompleted.result"), ev->taskcompleted->result);
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED:
    return limit(k, sc_check_failure(k->tc->lim, F("taskFailed.failureDetails"), ev->taskfailed->failuredetails,
                                     &k->err));
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED: {
    const SubOrchestrationInstanceCreatedEvent *s = ev->suborchestrationinstancecreated;
    return id(k, F("subOrchestrationInstanceCreated.instanceId"), s->instanceid) &&
           name(k, F("subOrchestrationInstanceCreated.name"), s->name, true) &&
           (!s->version || name(k, F("subOrchestrationInstanceCreated.version"), s->version->value, false)) &&
           payload(k, F("subOrchestrationInstanceCreated.input"), s->input) &&
           tags(k, F("subOrchestrationInstanceCreated.tags"), s->n_tags, (void *const *)s->tags);
  }
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED:
    return payload(k, F("subOrchestrationInstanceCompleted.result"), ev->suborchestrationinstancecompleted->result);
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED:
    return limit(k, sc_check_failure(k->tc->lim, F("subOrchestrationInstanceFailed.failureDetails"),
                                     ev->suborchestrationinstancefailed->failuredetails, &k->err));
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT:
    return id(k, F("eventSent.instanceId"), ev->eventsent->instanceid) &&
           name(k, F("eventSent.name"), ev->eventsent->name, true) && payload(k, F("eventSent.input"), ev->eventsent->input);
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED:
    return name(k, F("eventRaised.name"), ev->eventraised->name, true) &&
           payload(k, F("eventRaised.input"), ev->eventraised->input);
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED:
    return payload(k, F("executionTerminated.input"), ev->executionterminated->input);
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED:
    return payload(k, F("executionSuspended.input"), ev->executionsuspended->input);
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED:
    return payload(k, F("executionResumed.input"), ev->executionresumed->input);
  case HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED:
  case HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_COMPLETED:
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED:
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED:
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND:
    return true;
  default: {
    /* Anything else carries nothing the engine reads; it only has to stay within reason. */
    size_t size = history_event__get_packed_size(ev);
    if (size > 2 * k->tc->lim->max_payload)
      return bad(k, "PayloadTooLarge", "%s: an event of %zu bytes is more than twice the %zu-byte payload limit "
                 "(--max-payload)", where, size, k->tc->lim->max_payload);
    return true;
  }
  }
#undef F
}

/* A rewind is the SDK's answer to a rewind request, and its history must replay as a fresh execution. */
static bool check_rewind(struct check *k, int32_t aid, const RewindOrchestrationAction *r)
{
  if (!k->tc->rewind_requested)
    return bad(k, "InvalidAction", "action %d: rewindOrchestration, but nobody asked to rewind this instance", aid);
  if (r->n_newhistory == 0)
    return bad(k, "InvalidAction", "action %d: rewindOrchestration.newHistory is empty", aid);
  if (r->n_newhistory > k->tc->lim->max_history)
    return bad(k, "HistoryTooLarge", "action %d: rewindOrchestration.newHistory has %zu events, past the %zu-event "
               "limit (--max-history)", aid, r->n_newhistory, k->tc->lim->max_history);
  size_t starts = 0;
  for (size_t i = 0; i < r->n_newhistory; i++) {
    const HistoryEvent *ev = r->newhistory[i];
    char where[64];
    snprintf(where, sizeof where, "rewindOrchestration.newHistory[%zu]", i);
    if (ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED)
      starts++;
    else if (ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED)
      return bad(k, "InvalidAction", "%s: a rewound history cannot hold executionCompleted", where);
    if (!check_event(k, where, ev))
      return false;
  }
  if (starts != 1)
    return bad(k, "InvalidAction", "action %d: rewindOrchestration.newHistory has %zu executionStarted events, "
               "not one", aid, starts);
  return true;
}

static bool check_complete(struct check *k, int32_t aid, const CompleteOrchestrationAction *c)
{
  if (!payload(k, "completeOrchestration.result", c->result) ||
      !limit(k, sc_check_failure(k->tc->lim, "completeOrchestration.failureDetails", c->failuredetails, &k->err)) ||
      !tags(k, "completeOrchestration.tags", c->n_tags, (void *const *)c->tags) ||
      (c->newversion && !name(k, "completeOrchestration.newVersion", c->newversion->value, false)))
    return false;
  if (c->orchestrationstatus != ST_CONTINUED && c->n_carryoverevents)
    return bad(k, "InvalidAction", "action %d: carryoverEvents on a completion that does not continue as new", aid);
  for (size_t i = 0; i < c->n_carryoverevents; i++) {
    const HistoryEvent *ev = c->carryoverevents[i];
    char where[64];
    snprintf(where, sizeof where, "completeOrchestration.carryoverEvents[%zu]", i);
    /* Only events from outside carry over: results of this execution's tasks and timers mean nothing to the
     * next one. */
    if (ev->event_type_case != HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED)
      return bad(k, "InvalidAction", "%s: only eventRaised events carry over to the next execution", where);
    if (!check_event(k, where, ev))
      return false;
  }
  return true;
}

/* An entity id as the client RPCs require it: "@name@key", within the id limit. */
static bool entity_id(struct check *k, const char *field, const char *v)
{
  if (!id(k, field, v))
    return false;
  const char *at = sc_is_entity_id(v) ? strchr(v + 1, '@') : NULL;
  if (!at || at == v + 1)
    return bad(k, "InvalidAction", "%s: not an entity id (@name@key): \"%s\"", field, v);
  return true;
}

/* Entities a critical section may lock at once. */
#define MAX_LOCK_SET 100

static bool check_entity_message(struct check *k, int32_t aid, const SendEntityMessageAction *m)
{
  char f[96];
#define F(s) (snprintf(f, sizeof f, "action %d: sendEntityMessage.%s", aid, s), f)
  switch (m->entity_message_type_case) {
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_SIGNALED: {
    const EntityOperationSignaledEvent *s = m->entityoperationsignaled;
    return entity_id(k, F("entityOperationSignaled.targetInstanceId"),
                     s->targetinstanceid ? s->targetinstanceid->value : "") &&
           name(k, F("entityOperationSignaled.operation"), s->operation, true) &&
           payload(k, F("entityOperationSignaled.input"), s->input);
  }
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_CALLED: {
    const EntityOperationCalledEvent *c = m->entityoperationcalled;
    return entity_id(k, F("entityOperationCalled.targetInstanceId"),
                     c->targetinstanceid ? c->targetinstanceid->value : "") &&
           name(k, F("entityOperationCalled.operation"), c->operation, true) &&
           name(k, F("entityOperationCalled.requestId"), c->requestid, true) &&
           payload(k, F("entityOperationCalled.input"), c->input);
  }
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_LOCK_REQUESTED: {
    const EntityLockRequestedEvent *l = m->entitylockrequested;
    if (!name(k, F("entityLockRequested.criticalSectionId"), l->criticalsectionid, true))
      return false;
    if (l->n_lockset == 0 || l->n_lockset > MAX_LOCK_SET)
      return bad(k, "InvalidAction", "action %d: sendEntityMessage.entityLockRequested.lockSet has %zu entities, "
                 "expected 1 to %d", aid, l->n_lockset, MAX_LOCK_SET);
    for (size_t i = 0; i < l->n_lockset; i++) {
      if (!entity_id(k, F("entityLockRequested.lockSet"), l->lockset[i]))
        return false;
      /* Locks are taken in this order, which the SDK makes one global order (its own sort) so that two sections
       * never wait for each other; it is kept as sent. A repeat would wait for itself. */
      for (size_t j = 0; j < i; j++)
        if (strcmp(l->lockset[j], l->lockset[i]) == 0)
          return bad(k, "InvalidAction", "action %d: sendEntityMessage.entityLockRequested.lockSet names \"%s\" twice",
                     aid, l->lockset[i]);
    }
    return true;
  }
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_UNLOCK_SENT: {
    const EntityUnlockSentEvent *u = m->entityunlocksent;
    return name(k, F("entityUnlockSent.criticalSectionId"), u->criticalsectionid, true) &&
           entity_id(k, F("entityUnlockSent.targetInstanceId"), u->targetinstanceid ? u->targetinstanceid->value : "");
  }
  default:
    return bad(k, "InvalidAction", "action %d: sendEntityMessage without a message", aid);
  }
#undef F
}

static bool check_action(struct check *k, const OrchestratorAction *a)
{
  char f[96];
  int32_t aid = a->id;
#define F(s) (snprintf(f, sizeof f, "action %d: %s", aid, s), f)
  switch (a->orchestrator_action_type_case) {
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK: {
    const ScheduleTaskAction *s = a->scheduletask;
    return name(k, F("scheduleTask.name"), s->name, true) &&
           (!s->version || name(k, F("scheduleTask.version"), s->version->value, false)) &&
           payload(k, F("scheduleTask.input"), s->input) && tags(k, F("scheduleTask.tags"), s->n_tags, (void *const *)s->tags);
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER:
    if (!a->createtimer->fireat)
      return bad(k, "InvalidAction", "action %d: createTimer.fireAt is missing", aid);
    return true;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION: {
    const CreateSubOrchestrationAction *s = a->createsuborchestration;
    if (!name(k, F("createSubOrchestration.name"), s->name, true) ||
        (s->version && !name(k, F("createSubOrchestration.version"), s->version->value, false)) ||
        !payload(k, F("createSubOrchestration.input"), s->input) ||
        !tags(k, F("createSubOrchestration.tags"), s->n_tags, (void *const *)s->tags))
      return false;
    if (s->instanceid[0])
      return id(k, F("createSubOrchestration.instanceId"), s->instanceid);
    /* The id the engine derives must be one a client could use too. */
    char derived[2 * SC_MAX_ID];
    int n = snprintf(derived, sizeof derived, "%s:%04x", k->tc->iid, (unsigned)aid);
    if (n < 0 || (size_t)n > k->tc->lim->max_id)
      return bad(k, "InvalidAction",
                 "action %d: createSubOrchestration without an instanceId: the derived id \"<parent>:%04x\" would "
                 "be %d bytes, longer than the %zu-byte limit (--max-id-length); give the sub-orchestration an "
                 "instance id", aid, (unsigned)aid, n, k->tc->lim->max_id);
    return true;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT: {
    const SendEventAction *s = a->sendevent;
    if (!s->instance)
      return bad(k, "InvalidAction", "action %d: sendEvent.instance is missing", aid);
    return id(k, F("sendEvent.instance.instanceId"), s->instance->instanceid) &&
           name(k, F("sendEvent.name"), s->name, true) && payload(k, F("sendEvent.data"), s->data);
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION:
    return check_complete(k, aid, a->completeorchestration);
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_TERMINATE_ORCHESTRATION:
    return id(k, F("terminateOrchestration.instanceId"), a->terminateorchestration->instanceid) &&
           payload(k, F("terminateOrchestration.reason"), a->terminateorchestration->reason);
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_REWIND_ORCHESTRATION:
    return check_rewind(k, aid, a->rewindorchestration);
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_ENTITY_MESSAGE:
    return check_entity_message(k, aid, a->sendentitymessage);
  default:
    return bad(k, "InvalidAction", "action %d: no action type", aid);
  }
#undef F
}

bool action_schedules(const OrchestratorAction *a)
{
  switch (a->orchestrator_action_type_case) {
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK:
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER:
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION:
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT:
    return true;
  default:
    return false;
  }
}

static int cmp_i32(const void *a, const void *b)
{
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Events an action adds to the history. */
static size_t adds_events(const OrchestratorAction *a)
{
  return action_schedules(a) || a->orchestrator_action_type_case ==
                                    ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
}

const char *check_turn(const struct turn_check *tc, const OrchestratorResponse *resp, OrchestratorAction **acts,
                       size_t n, const char **type, char *buf, size_t len)
{
  struct check k = {.tc = tc};
  bool ok = payload(&k, "customStatus", resp->customstatus);
  const OrchestratorAction *done = NULL;
  size_t nref = 0, added = 0;
  bool continues = false;
  for (size_t i = 0; ok && i < n; i++) {
    const OrchestratorAction *a = acts[i];
    if (done)
      ok = bad(&k, "InvalidAction", "action %d comes after the orchestration completed (action %d)", a->id, done->id);
    else if (action_schedules(a) && a->id < 0)
      ok = bad(&k, "InvalidAction", "action %d: ids of scheduled work must not be negative", a->id);
    else
      ok = check_action(&k, a);
    if (a->orchestrator_action_type_case == ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION) {
      done = a;
      continues = a->completeorchestration->orchestrationstatus == ST_CONTINUED;
    }
    nref += action_schedules(a);
    added += adds_events(a);
  }
  if (ok && nref > 1) {
    /* Each id names one task, timer, sub-orchestration or sent event: results find their action by it. */
    int32_t *ids = malloc(nref * sizeof *ids);
    if (!ids)
      sc_panic("out of memory checking a turn");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (action_schedules(acts[i]))
        ids[m++] = acts[i]->id;
    qsort(ids, m, sizeof *ids, cmp_i32);
    for (size_t i = 1; ok && i < m; i++)
      if (ids[i] == ids[i - 1])
        ok = bad(&k, "InvalidAction", "two actions share id %d", ids[i]);
    free(ids);
  }
  if (ok && !continues && tc->history_count + tc->consumed + added > tc->lim->max_history)
    ok = bad(&k, "HistoryTooLarge", "the history would grow to %zu events, past the %zu-event limit (--max-history)",
             tc->history_count + tc->consumed + added, tc->lim->max_history);
  if (ok)
    return NULL;
  snprintf(buf, len, "%s", k.err.msg);
  *type = k.type;
  return buf;
}
