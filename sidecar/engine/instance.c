/* Changes to instances shared by client commands and orchestration turns: creating one, queueing a message for
 * one, telling a parent its child ended, terminating, rewinding. */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct recurse_ctx {
  struct sc_engine *e;
  const Google__Protobuf__StringValue *reason;
};

int create_instance(struct sc_engine *e, const struct new_instance *ni)
{
  struct sc_txn *tx = e->tx;
  struct sc_arena *a = &e->ba;
  int64_t now = sc_now_us();
  int rc;
  StoredInstance rec;
  taskhubd__store__stored_instance__init(&rec);
  rec.name = (char *)ni->name;
  if (ni->version) {
    rec.version = ni->version->value;
    rec.has_version = true;
  }
  rec.status = ST_PENDING;
  rec.execution_id = (char *)ni->exec;
  rec.created_us = now;
  rec.last_updated_us = now;
  rec.scheduled_start_us = ni->scheduled_us;
  rec.n_tags = ni->n_tags;
  rec.tags = sc_pb_copy_tags(a, &taskhubd__store__stored_instance__tags_entry__descriptor, ni->n_tags, ni->tags);
  rec.trace_context = ni->trace;
  rec.has_input = ni->input != NULL;
  if (ni->parent) {
    rec.parent = ni->parent;
    rec.parent_instance_id = ni->parent->orchestrationinstance->instanceid;
  }
  if ((rc = sc_txn_put_instance(tx, ni->iid, &rec, NULL)) != SC_OK)
    return rc;
  if (ni->input &&
      (rc = sc_txn_put_payload(tx, ni->iid, SC_PAYLOAD_INPUT, ni->input->value, strlen(ni->input->value))) !=
          SC_OK)
    return rc;

  ExecutionStartedEvent *es = sc_arena_alloc(a, sizeof *es);
  execution_started_event__init(es);
  es->name = (char *)ni->name;
  es->version = (Google__Protobuf__StringValue *)ni->version;
  es->input = (Google__Protobuf__StringValue *)ni->input;
  OrchestrationInstance *oi = sc_arena_alloc(a, sizeof *oi);
  orchestration_instance__init(oi);
  oi->instanceid = (char *)ni->iid;
  oi->executionid = sc_pb_sv(a, ni->exec);
  es->orchestrationinstance = oi;
  es->parentinstance = ni->parent;
  if (ni->scheduled_us)
    es->scheduledstarttimestamp = (Google__Protobuf__Timestamp *)ni->scheduled_ts;
  es->parenttracecontext = ni->trace;
  es->n_tags = ni->n_tags;
  es->tags = sc_pb_copy_tags(a, &execution_started_event__tags_entry__descriptor, ni->n_tags, ni->tags);
  HistoryEvent *ev = sc_pb_event(a, -1, now);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED;
  ev->executionstarted = es;
  if ((rc = enqueue_msg(e, ni->iid, SC_BAND_START, ev, ni->exec)) != SC_OK)
    return rc;

  if (ni->scheduled_us) {
    /* The ExecutionStarted waits in the inbox; this timer says when the instance may run. */
    StoredTimer t;
    taskhubd__store__stored_timer__init(&t);
    t.kind = TASKHUBD__STORE__STORED_TIMER__KIND__START;
    t.instance_id = (char *)ni->iid;
    t.execution_id = (char *)ni->exec;
    uint64_t seq = sc_txn_next_seq(tx);
    if ((rc = sc_txn_timer_put(tx, ni->scheduled_us, seq, &t)) != SC_OK)
      return rc;
    sc_heap_push(&e->theap, (struct sc_heap_item){ni->scheduled_us, seq, NULL});
  }
  add_changed(e, ni->iid, ST_PENDING, true);
  atomic_fetch_add_explicit(&sc_metrics.started, 1, memory_order_relaxed);
  SC_DEBUG("event=instance_created instance=%s name=%s scheduled=%d parent=%s input_bytes=%zu", SC_Q(ni->iid),
           SC_Q(ni->name), ni->scheduled_us != 0, SC_Q(rec.parent_instance_id),
           ni->input ? strlen(ni->input->value) : 0);
  return SC_OK;
}

char *new_exec_id(struct sc_arena *a)
{
  char *exec = sc_arena_alloc(a, 33);
  sc_random_hex32(exec);
  return exec;
}

int notify_parent(struct sc_engine *e, const StoredInstance *child, int status,
                  const Google__Protobuf__StringValue *result, TaskFailureDetails *fd)
{
  const ParentInstanceInfo *p = child->parent;
  if (!p || !p->orchestrationinstance)
    return SC_OK;
  const char *piid = p->orchestrationinstance->instanceid;
  const char *pexec = p->orchestrationinstance->executionid ? p->orchestrationinstance->executionid->value : NULL;
  HistoryEvent *ev = sc_pb_event(&e->ba, -1, sc_now_us());
  if (status == ST_COMPLETED) {
    SubOrchestrationInstanceCompletedEvent *c = sc_arena_alloc(&e->ba, sizeof *c);
    sub_orchestration_instance_completed_event__init(c);
    c->taskscheduledid = p->taskscheduledid;
    c->result = (Google__Protobuf__StringValue *)result;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED;
    ev->suborchestrationinstancecompleted = c;
  } else {
    SubOrchestrationInstanceFailedEvent *f = sc_arena_alloc(&e->ba, sizeof *f);
    sub_orchestration_instance_failed_event__init(f);
    f->taskscheduledid = p->taskscheduledid;
    if (!fd)
      fd = make_failure(&e->ba, status == ST_TERMINATED ? "TaskTerminated" : "TaskFailed",
                   status == ST_TERMINATED
                       ? sc_arena_printf(&e->ba, "sub-orchestration was terminated%s%s",
                                         result ? ": " : "", result ? result->value : "")
                       : "sub-orchestration failed");
    f->failuredetails = fd;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED;
    ev->suborchestrationinstancefailed = f;
  }
  return deliver_to_parent(e, piid, pexec, ev);
}

int deliver_to_parent(struct sc_engine *e, const char *piid, const char *pexec, HistoryEvent *ev)
{
  if (!owns(e, piid)) {
    Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
    f.kind = TASKHUBD__STORE__FORWARD__KIND__PARENT;
    f.instance_id = (char *)piid;
    f.execution_id = (char *)(pexec ? pexec : "");
    f.event = ev;
    forward_send(e, &f);
    return SC_OK;
  }
  StoredInstance *prec;
  int rc = sc_txn_get_instance(e->tx, piid, &e->ba, &prec);
  if (rc == SC_ENOTFOUND || (rc == SC_OK && (sc_status_is_terminal(prec->status) ||
                                             (pexec && pexec[0] && strcmp(pexec, prec->execution_id) != 0)))) {
    SC_DEBUG("event=parent_notification_dropped parent=%s", SC_Q(piid));
    return SC_OK;
  }
  if (rc != SC_OK)
    return rc;
  return enqueue_msg(e, piid, SC_BAND_NORMAL, ev, pexec && pexec[0] ? pexec : NULL);
}

int deliver_event(struct sc_engine *e, const char *iid, HistoryEvent *raised)
{
  if (!owns(e, iid)) {
    Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
    f.kind = TASKHUBD__STORE__FORWARD__KIND__EVENT;
    f.instance_id = (char *)iid;
    f.event = raised;
    forward_send(e, &f);
    return SC_OK;
  }
  StoredInstance *target;
  int rc = sc_txn_get_instance(e->tx, iid, &e->ba, &target);
  if (rc == SC_ENOTFOUND || (rc == SC_OK && sc_status_is_terminal(target->status))) {
    SC_DEBUG("event=event_dropped instance=%s reason=target_gone", SC_Q(iid));
    return SC_OK; /* never re-runs a finished orchestration */
  }
  if (rc != SC_OK)
    return rc;
  return enqueue_msg(e, iid, SC_BAND_NORMAL, raised, NULL);
}

/*
 * Ends an instance without a worker: appends |cause| (if any) and ExecutionCompleted to its history (with the
 * ExecutionStarted still waiting in the inbox first, for an instance that never ran), empties its inbox and
 * tells its parent.
 */
static int finish_by_server(struct sc_engine *e, const char *iid, StoredInstance *old, int status,
                            const Google__Protobuf__StringValue *output, TaskFailureDetails *fd, HistoryEvent *cause)
{
  struct sc_txn *tx = e->tx;
  struct sc_arena *a = &e->ba;
  int64_t now = sc_now_us();
  uint32_t idx = old->history_count;
  int rc;
  if (idx == 0) {
    struct sc_inbox_msg *msgs;
    size_t n;
    if ((rc = sc_txn_inbox_load(tx, iid, a, &msgs, &n)) != SC_OK)
      return rc;
    for (size_t i = 0; i < n; i++) {
      HistoryEvent *ev = msgs[i].msg->event;
      if (ev && ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED) {
        if ((rc = sc_txn_history_append(tx, iid, idx++, ev)) != SC_OK)
          return rc;
        break;
      }
    }
  }
  HistoryEvent *done = sc_pb_event(a, -1, now);
  ExecutionCompletedEvent *ce = sc_arena_alloc(a, sizeof *ce);
  execution_completed_event__init(ce);
  ce->orchestrationstatus = status;
  ce->result = (Google__Protobuf__StringValue *)output;
  ce->failuredetails = fd;
  done->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED;
  done->executioncompleted = ce;
  if ((cause && (rc = sc_txn_history_append(tx, iid, idx++, cause)) != SC_OK) ||
      (rc = sc_txn_history_append(tx, iid, idx++, done)) != SC_OK || (rc = sc_txn_inbox_clear(tx, iid)) != SC_OK)
    return rc;
  StoredInstance *rec = copy_rec(a, old);
  rec->status = status;
  rec->completed_us = now;
  rec->last_updated_us = now;
  rec->history_count = idx;
  rec->suspend_requested = rec->resume_requested = false;
  rec->has_output = output != NULL;
  rec->failure_details = fd;
  if ((rc = sc_txn_put_payload(tx, iid, SC_PAYLOAD_OUTPUT, output ? output->value : NULL,
                                 output ? strlen(output->value) : 0)) != SC_OK)
    return rc;
  if ((rc = sc_txn_put_instance(tx, iid, rec, old)) != SC_OK ||
      (rc = notify_parent(e, rec, status, output, fd)) != SC_OK || (rc = entity_release_locks(e, iid)) != SC_OK)
    return rc;
  add_changed(e, iid, status, true);
  atomic_fetch_add_explicit(&sc_metrics.finished[status & 7], 1, memory_order_relaxed);
  return SC_OK;
}

HistoryEvent *terminated_event(struct sc_engine *e, const Google__Protobuf__StringValue *output, bool recurse)
{
  HistoryEvent *t = ev_new(e, -1);
  ExecutionTerminatedEvent *te = sc_arena_alloc(&e->ba, sizeof *te);
  execution_terminated_event__init(te);
  te->input = (Google__Protobuf__StringValue *)output;
  te->recurse = recurse;
  t->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED;
  t->executionterminated = te;
  return t;
}

/* An instance that never ran is terminated here, without a worker: a worker given
 * [ExecutionStarted, ExecutionTerminated] of an unknown orchestration would mark it FAILED instead. */
int terminate_pending(struct sc_engine *e, const char *iid, StoredInstance *old,
                      const Google__Protobuf__StringValue *output, bool recurse)
{
  int rc = finish_by_server(e, iid, old, ST_TERMINATED, output, NULL, terminated_event(e, output, recurse));
  if (rc == SC_OK)
    SC_INFO("event=instance_terminated instance=%s mode=server", SC_Q(iid));
  return rc;
}

int fail_by_server(struct sc_engine *e, const char *iid, StoredInstance *old, const char *type, const char *msg)
{
  int rc = finish_by_server(e, iid, old, ST_FAILED, NULL, make_failure(&e->ba, type, msg), NULL);
  if (rc == SC_OK)
    SC_WARN("event=orchestration_failed_by_server instance=%s type=%s", SC_Q(iid), type);
  return rc;
}

/* Terminates |iid| on behalf of an orchestration (terminate action, recursive terminate). */
int terminate_other(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason,
                           bool recurse)
{
  if (!owns(e, iid)) {
    Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
    f.kind = TASKHUBD__STORE__FORWARD__KIND__TERMINATE;
    f.instance_id = (char *)iid;
    f.reason = (Google__Protobuf__StringValue *)reason;
    f.recurse = recurse;
    forward_send(e, &f);
    return SC_OK;
  }
  StoredInstance *rec;
  int rc = sc_txn_get_instance(e->tx, iid, &e->ba, &rec);
  if (rc == SC_ENOTFOUND || (rc == SC_OK && sc_status_is_terminal(rec->status)))
    return SC_OK;
  if (rc != SC_OK)
    return rc;
  if (rec->status == ST_PENDING && !work_is_leased(e, iid))
    return terminate_pending(e, iid, rec, reason, recurse);
  return enqueue_msg(e, iid, SC_BAND_NORMAL, terminated_event(e, reason, recurse), NULL);
}

static int terminate_child(const char *child, void *arg)
{
  struct recurse_ctx *r = arg;
  return terminate_other(r->e, child, r->reason, true);
}

ParentInstanceInfo *parent_info(struct sc_arena *a, const char *iid, const StoredInstance *p, int32_t task)
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
int rewind_children(struct sc_engine *e, const char *iid, const StoredInstance *parent, HistoryEvent **h,
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
    SubOrchestrationInstanceCreatedEvent *ce = h[i]->suborchestrationinstancecreated;
    ParentInstanceInfo *pi = parent_info(&e->ba, iid, parent, h[i]->eventid);
    int rc = SC_OK;
    if (owns(e, ce->instanceid)) {
      rc = rewind_child(e, ce, pi);
    } else {
      Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
      f.kind = TASKHUBD__STORE__FORWARD__KIND__REWIND_CHILD;
      f.instance_id = ce->instanceid;
      f.created = ce;
      f.parent = pi;
      forward_send(e, &f);
    }
    if (rc != SC_OK)
      return rc;
  }
  return SC_OK;
}

int rewind_child(struct sc_engine *e, const SubOrchestrationInstanceCreatedEvent *ce, ParentInstanceInfo *pi)
{
  StoredInstance *crec;
  const char *pexec = pi->orchestrationinstance->executionid ? pi->orchestrationinstance->executionid->value : "";
  int rc = sc_txn_get_instance(e->tx, ce->instanceid, &e->ba, &crec);
  if (rc == SC_OK && crec->status == ST_FAILED)
    return rewind_one(e, ce->instanceid, NULL, pexec, 1);
  if (rc == SC_ENOTFOUND) {
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
        .parent = pi,
    };
    rc = create_instance(e, &ni);
    SC_INFO("event=child_recreated instance=%s parent=%s", SC_Q(ce->instanceid),
            SC_Q(pi->orchestrationinstance->instanceid));
    return rc;
  }
  return rc == SC_OK ? SC_OK : rc; /* still running, or finished in a way the parent already saw */
}

int create_child(struct sc_engine *e, const SubOrchestrationInstanceCreatedEvent *c, ParentInstanceInfo *p,
                 TraceContext *trace)
{
  struct sc_arena *ar = &e->ba;
  const char *child = c->instanceid;
  const char *piid = p->orchestrationinstance->instanceid;
  const char *pexec = p->orchestrationinstance->executionid ? p->orchestrationinstance->executionid->value : "";
  StoredInstance *old;
  int rc = sc_txn_get_instance(e->tx, child, ar, &old);
  if (rc != SC_OK && rc != SC_ENOTFOUND)
    return rc;
  if (rc == SC_OK && !sc_status_is_terminal(old->status)) {
    /* Never touch a live instance; tell the parent at once so it does not wait forever. */
    HistoryEvent *f = ev_new(e, -1);
    SubOrchestrationInstanceFailedEvent *fe = sc_arena_alloc(ar, sizeof *fe);
    sub_orchestration_instance_failed_event__init(fe);
    fe->taskscheduledid = p->taskscheduledid;
    fe->failuredetails = make_failure(
        ar, "OrchestrationAlreadyExists",
        sc_arena_printf(ar, "orchestration instance already exists: %s (status %s)", child,
                        sc_pb_status_name(old->status)));
    f->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED;
    f->suborchestrationinstancefailed = fe;
    return deliver_to_parent(e, piid, pexec, f);
  }
  if (rc == SC_OK && (rc = sc_txn_delete_instance(e->tx, child, old, sc_status_is_terminal(old->status))) != SC_OK)
    return rc;
  char *exec = sc_arena_alloc(ar, 33);
  sc_random_hex32(exec);
  struct new_instance ni = {
      .iid = child,
      .name = c->name,
      .exec = exec,
      .version = c->version,
      .input = c->input,
      .trace = trace,
      .n_tags = c->n_tags,
      .tags = (void *const *)c->tags,
      .parent = p,
  };
  return create_instance(e, &ni);
}

int rewind_one(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason,
                      const char *parent_exec, int depth)
{
  struct sc_txn *tx = e->tx;
  StoredInstance *old;
  int rc = sc_txn_get_instance(tx, iid, &e->ba, &old);
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
  if ((rc = sc_txn_put_payload(tx, iid, SC_PAYLOAD_OUTPUT, NULL, 0)) != SC_OK)
    return rc;
  HistoryEvent *ev = ev_new(e, -1);
  ExecutionRewoundEvent *rw = sc_arena_alloc(&e->ba, sizeof *rw);
  execution_rewound_event__init(rw);
  rw->reason = (Google__Protobuf__StringValue *)reason;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND;
  ev->executionrewound = rw;
  if ((rc = enqueue_msg(e, iid, SC_BAND_NORMAL, ev, NULL)) != SC_OK ||
      (rc = sc_txn_put_instance(tx, iid, r, old)) != SC_OK)
    return rc;
  add_changed(e, iid, ST_RUNNING, true);
  SC_INFO("event=instance_rewound instance=%s depth=%d", SC_Q(iid), depth);
  return SC_OK;
}

int terminate_children(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason)
{
  struct recurse_ctx rctx = {e, reason};
  return sc_txn_children(e->tx, iid, terminate_child, &rctx);
}
