/* Applying a worker's response to an orchestration work item: its actions become history events, activities,
 * timers, sub-orchestrations and messages, and the instance's new state, all in the batch's transaction. */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  return sc_txn_history_append(t->e->tx, t->iid, t->idx++, ev);
}

static int schedule_task(struct turn *t, int32_t id, const ScheduleTaskAction *a)
{
  struct sc_engine *e = t->e;
  struct sc_txn *tx = e->tx;
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
  uint64_t seq = sc_txn_next_seq(tx);
  if ((rc = sc_txn_actq_put(tx, seq, &sa)) != SC_OK)
    return rc;
  new_activity(e, seq);
  return SC_OK;
}

static int create_timer(struct turn *t, int32_t id, const CreateTimerAction *a)
{
  struct sc_engine *e = t->e;
  struct sc_txn *tx = e->tx;
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
  /* Due in the millisecond after fireAt, not at it: the Java SDK truncates the turn's time to milliseconds and
   * starts one more leg of a long timer (or retry delay) unless that time is strictly later than fireAt; a turn
   * stamped within fireAt's own millisecond got an extra turn and shifted its task ids. At most 1 ms later. */
  int64_t fire_us = sc_pb_ts_us(a->fireat);
  int64_t due = fire_us >= 0 ? fire_us / 1000 * 1000 + 1000 : fire_us;
  uint64_t seq = sc_txn_next_seq(tx);
  if ((rc = sc_txn_timer_put(tx, due, seq, &tm)) != SC_OK)
    return rc;
  sc_heap_push(&e->theap, (struct sc_heap_item){due, seq, NULL});
  return SC_OK;
}

static int sub_orchestration(struct turn *t, int32_t id, const CreateSubOrchestrationAction *a)
{
  struct sc_engine *e = t->e;
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
  t->rec->has_children = true; /* purge and recursive terminate look for its children */
  ParentInstanceInfo *p = parent_info(ar, t->iid, t->rec, id);
  TraceContext *trace = a->parenttracecontext ? a->parenttracecontext : t->rec->trace_context;
  if (owns(e, child))
    return create_child(e, c, p, trace);
  Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
  f.kind = TASKHUBD__STORE__FORWARD__KIND__CREATE_CHILD;
  f.instance_id = (char *)child;
  f.created = c;
  f.parent = p;
  f.trace = trace;
  forward_send(e, &f);
  return SC_OK;
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
  HistoryEvent *raised = ev_new(e, -1);
  EventRaisedEvent *r = sc_arena_alloc(&e->ba, sizeof *r);
  event_raised_event__init(r);
  r->name = a->name;
  r->input = a->data;
  raised->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED;
  raised->eventraised = r;
  return deliver_event(e, a->instance->instanceid, raised);
}

/* Calls, signals, lock requests and unlocks to entities: recorded in the history under the action's id, then sent
 * (entities.c), with this orchestration as the parent whatever the worker wrote there. */
static int send_entity_message(struct turn *t, int32_t id, const SendEntityMessageAction *a)
{
  struct sc_engine *e = t->e;
  HistoryEvent *ev = ev_new(e, id);
  switch (a->entity_message_type_case) {
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_SIGNALED:
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED;
    ev->entityoperationsignaled = a->entityoperationsignaled;
    break;
  /* The parent's identity is ours to fill in, on copies: the action belongs to the worker's message, which the
   * engine must not change (engine.h), and the instance id it would point at goes with the lease. */
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_CALLED: {
    EntityOperationCalledEvent *c = sc_arena_alloc(&e->ba, sizeof *c);
    *c = *a->entityoperationcalled;
    c->parentinstanceid = sc_pb_sv(&e->ba, t->iid);
    c->parentexecutionid = sc_pb_sv(&e->ba, t->rec->execution_id);
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED;
    ev->entityoperationcalled = c;
    break;
  }
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_LOCK_REQUESTED: {
    EntityLockRequestedEvent *l = sc_arena_alloc(&e->ba, sizeof *l);
    *l = *a->entitylockrequested;
    l->parentinstanceid = sc_pb_sv(&e->ba, t->iid);
    l->position = 0;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_REQUESTED;
    ev->entitylockrequested = l;
    break;
  }
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_UNLOCK_SENT: {
    EntityUnlockSentEvent *u = sc_arena_alloc(&e->ba, sizeof *u);
    *u = *a->entityunlocksent;
    u->parentinstanceid = sc_pb_sv(&e->ba, t->iid);
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT;
    ev->entityunlocksent = u;
    break;
  }
  default:
    return SC_EINVAL; /* turncheck refused it */
  }
  int rc = hist(t, ev);
  if (rc != SC_OK)
    return rc;
  return entity_message(e, ev);
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
  struct sc_txn *tx = e->tx;
  struct sc_arena *ar = &e->ba;
  const CompleteOrchestrationAction *a = t->can;
  StoredInstance *r = t->rec;
  int rc = sc_txn_history_clear(tx, t->iid);
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
  if ((rc = sc_txn_put_payload(tx, t->iid, SC_PAYLOAD_OUTPUT, NULL, 0)) != SC_OK)
    return rc;
  rc = sc_txn_put_payload(tx, t->iid, SC_PAYLOAD_INPUT, a->result ? a->result->value : NULL,
                            a->result ? strlen(a->result->value) : 0);
  SC_DEBUG("event=continued_as_new instance=%s execution=%s carryover=%zu", SC_Q(t->iid), SC_Q(exec),
           a->n_carryoverevents);
  return rc;
}

/* The SDK's rewind: the history becomes exactly what it sent, and failed children are rewound too. */
static int rewind_history(struct turn *t, const RewindOrchestrationAction *a)
{
  struct sc_engine *e = t->e;
  int rc = sc_txn_history_clear(e->tx, t->iid);
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
  int rc = sc_txn_inbox_load(t->e->tx, t->iid, &t->e->ba, &m, &n);
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

/* The events the lease's work item carried: its OrchestratorStarted, then the inbox messages it sent, read again
 * from the inbox (a lease keeps only their keys). SC_ENOTFOUND when one is gone. */
static int lease_events(struct sc_engine *e, const struct sc_lease *l, HistoryEvent ***out)
{
  HistoryEvent **evs = sc_arena_alloc(&e->ba, (l->nsent ? l->nsent : 1) * sizeof *evs);
  HistoryEvent *os = sc_pb_event(&e->ba, -1, l->started_us);
  OrchestratorStartedEvent *ose = sc_arena_alloc(&e->ba, sizeof *ose);
  orchestrator_started_event__init(ose);
  os->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
  os->orchestratorstarted = ose;
  evs[0] = os;
  struct sc_inbox_msg *m;
  size_t n;
  int rc = sc_txn_inbox_load(e->tx, l->iid, &e->ba, &m, &n);
  if (rc != SC_OK)
    return rc;
  /* Both are in key order (band, then seq). */
  size_t j = 0;
  for (size_t i = 0; i < l->nkeys; i++) {
    const struct msgkey *k = &l->keys[i];
    if (k->sent < 1)
      continue;
    while (j < n && (m[j].band < k->band || (m[j].band == k->band && m[j].seq < k->seq)))
      j++;
    if (j == n || m[j].band != k->band || m[j].seq != k->seq || !m[j].msg->event)
      return SC_ENOTFOUND;
    evs[k->sent] = m[j].msg->event;
  }
  *out = evs;
  return SC_OK;
}

int apply_turn(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *resp,
               OrchestratorAction **actions, size_t nact, const char *forced_type, const char *forced_msg,
               bool *dropped)
{
  struct sc_txn *tx = e->tx;
  StoredInstance *old;
  HistoryEvent **events = NULL;
  *dropped = false;
  int rc = sc_txn_get_instance(tx, l->iid, &e->ba, &old);
  if (rc == SC_OK && !sc_status_is_terminal(old->status) && strcmp(old->execution_id, l->exec) == 0)
    rc = lease_events(e, l, &events);
  else if (rc == SC_OK)
    rc = SC_ENOTFOUND;
  if (rc == SC_ENOTFOUND) {
    SC_INFO("event=completion_dropped instance=%s reason=instance_changed", SC_Q(l->iid));
    *dropped = true;
    return SC_OK; /* terminated, replaced or purged while the worker held it */
  }
  if (rc != SC_OK)
    return rc;
  struct turn t = {.e = e, .iid = l->iid, .rec = copy_rec(&e->ba, old), .idx = old->history_count};

  size_t consumed = l->nsent;
  if (resp->numeventsprocessed && resp->numeventsprocessed->value >= 1 &&
      (size_t)resp->numeventsprocessed->value < consumed)
    consumed = (size_t)resp->numeventsprocessed->value;
  struct turn_check tc = {&e->cfg.limits, l->iid, old->history_count, consumed, false};
  for (size_t i = 0; i < l->nsent; i++)
    tc.rewind_requested |= events[i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND;
  char why[320];
  const char *invalid_type = forced_type;
  const char *invalid = forced_msg ? forced_msg : check_turn(&tc, resp, actions, nact, &invalid_type, why, sizeof why);
  const RewindOrchestrationAction *rewind = NULL;
  for (size_t i = 0; !invalid && i < nact; i++)
    if (actions[i]->orchestrator_action_type_case == ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_REWIND_ORCHESTRATION)
      rewind = actions[i]->rewindorchestration;
  for (size_t i = 0; i < consumed; i++) {
    /* A rewind's new history already holds the events of this work item. */
    if (!rewind && (rc = hist(&t, events[i])) != SC_OK)
      return rc;
    status_from_event(&t, events[i]);
  }
  for (size_t i = 0; i < l->nkeys; i++)
    if (l->keys[i].sent < (int)consumed &&
        (rc = sc_txn_inbox_delete(tx, l->iid, l->keys[i].band, l->keys[i].seq)) != SC_OK)
      return rc;
  if ((rc = refresh_suspend_flags(&t)) != SC_OK)
    return rc;

  if (invalid) {
    SC_WARN("event=invalid_response instance=%s type=%s error=%s", SC_Q(l->iid), invalid_type, SC_Q(invalid));
    CompleteOrchestrationAction fa = COMPLETE_ORCHESTRATION_ACTION__INIT;
    fa.orchestrationstatus = ST_FAILED;
    fa.failuredetails = make_failure(&e->ba, invalid_type, invalid);
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
        rc = send_entity_message(&t, a->id, a->sendentitymessage);
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
  if (invalid) {
    /* The custom status may be what was wrong: keep the last good one. */
  } else if (resp->customstatus) {
    rc = sc_txn_put_payload(tx, l->iid, SC_PAYLOAD_CUSTOM_STATUS, resp->customstatus->value,
                              strlen(resp->customstatus->value));
    r->has_custom_status = true;
  } else if (r->has_custom_status) {
    rc = sc_txn_put_payload(tx, l->iid, SC_PAYLOAD_CUSTOM_STATUS, NULL, 0);
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
    if ((rc = sc_txn_put_payload(tx, l->iid, SC_PAYLOAD_OUTPUT, t.result ? t.result->value : NULL,
                                   t.result ? strlen(t.result->value) : 0)) != SC_OK ||
        (rc = sc_txn_inbox_clear(tx, l->iid)) != SC_OK || (rc = notify_parent(e, r, t.final_status, t.result,
                                                                                t.failure)) != SC_OK ||
        (rc = entity_release_locks(e, l->iid)) != SC_OK)
      return rc;
    if (t.terminated && t.terminated->recurse && r->has_children) {
      if ((rc = terminate_children(e, l->iid, t.terminated->input)) != SC_OK)
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
  if ((rc = sc_txn_put_instance(tx, l->iid, r, old)) != SC_OK)
    return rc;
  if (r->status != old->status || t.can)
    add_changed(e, l->iid, r->status, true);
  else
    add_touched(e, l->iid, r->status);
  return SC_OK;
}

/* Joins the actions of buffered partial chunks (deprecated isPartial) with the final chunk's. */
int gather_actions(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *last,
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
