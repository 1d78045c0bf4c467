#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Instances one filter purge deletes per commit, so other commands interleave with a large purge. */
#define PURGE_CHUNK 500
#define MAX_RECURSION 64
/* Batches of at most this many commands dispatch before their commit (see run_batch). */
#define EARLY_DISPATCH_MAX 4

/* A parked WaitForInstance* call. It stays in the deadline heap until its deadline pops, even when it was
 * answered earlier (cmd == NULL then), so that no heap entry ever points at freed memory. */
struct sc_waiter {
  struct sc_cmd *cmd;
  struct sc_waiter *next;
  char *iid;
};

/* ------------------------------------------------------------------ helpers */

void *grow_array(void *v, size_t *cap, size_t n, size_t elem)
{
  if (n < *cap)
    return v;
  size_t nc = *cap ? *cap * 2 : 64;
  void *p = realloc(v, nc * elem);
  if (!p)
    sc_panic("out of memory growing an array to %zu elements", nc);
  *cap = nc;
  return p;
}

void add_done(struct sc_engine *e, struct sc_cmd *c)
{
  e->done = grow_array(e->done, &e->capdone, e->ndone, sizeof *e->done);
  e->done[e->ndone++] = c;
}

void add_changed(struct sc_engine *e, const char *iid, int status, bool exists)
{
  e->chg = grow_array(e->chg, &e->capchg, e->nchg, sizeof *e->chg);
  e->chg[e->nchg++] = (struct changed){sc_arena_strdup(&e->ba, iid), status, exists};
}

int fail(struct sc_cmd *c, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  c->err.code = code;
  vsnprintf(c->err.msg, sizeof c->err.msg, fmt, ap);
  va_end(ap);
  return DONE;
}

static bool wait_satisfied(bool completion, int status)
{
  return completion ? sc_status_is_terminal(status) : status != ST_PENDING;
}

StoredInstance *copy_rec(struct sc_arena *a, const StoredInstance *r)
{
  StoredInstance *n = sc_arena_alloc(a, sizeof *n);
  *n = *r;
  return n;
}

/* ------------------------------------------------------------------ waiters */

static void waiter_unlink(struct sc_engine *e, struct sc_waiter *w)
{
  struct sc_waiter *head = sc_map_get(&e->waiters, w->iid);
  struct sc_waiter **pp = &head;
  while (*pp && *pp != w)
    pp = &(*pp)->next;
  if (*pp)
    *pp = w->next;
  if (head)
    sc_map_put(&e->waiters, w->iid, head);
  else
    sc_map_remove(&e->waiters, w->iid);
  free(w->iid);
  w->iid = NULL;
  w->next = NULL;
}

static void waiter_finish(struct sc_engine *e, struct sc_waiter *w, int code,
                          const char *msg)
{
  struct sc_cmd *c = w->cmd;
  if (!c)
    return;
  c->u.wait.w = NULL;
  w->cmd = NULL;
  c->err.code = code;
  size_t n = msg ? strlen(msg) : 0;
  if (n >= sizeof c->err.msg)
    n = sizeof c->err.msg - 1; /* long instance ids make long messages: keep the start */
  memcpy(c->err.msg, msg ? msg : "", n);
  c->err.msg[n] = 0;
  waiter_unlink(e, w);
  add_done(e, c);
}

static void wake_changed(struct sc_engine *e)
{
  for (size_t i = 0; i < e->nchg; i++) {
    struct changed *ch = &e->chg[i];
    struct sc_waiter *w = sc_map_get(&e->waiters, ch->iid);
    while (w) {
      struct sc_waiter *next = w->next;
      if (!ch->exists) {
        w->cmd->u.wait.exists = false;
        waiter_finish(e, w, SC_OK, NULL);
      } else if (wait_satisfied(w->cmd->u.wait.completion, ch->status)) {
        w->cmd->u.wait.exists = true;
        waiter_finish(e, w, SC_OK, NULL);
      }
      w = next;
    }
  }
  e->nchg = 0;
}

static void expire_waiters(struct sc_engine *e, int64_t now)
{
  const struct sc_heap_item *top;
  while ((top = sc_heap_top(&e->wheap)) && top->due <= now) {
    struct sc_waiter *w = sc_heap_pop(&e->wheap).data;
    if (w->cmd) {
      char msg[SC_MAX_ID + 64];
      snprintf(msg, sizeof msg, "timed out waiting for instance %s", w->iid);
      waiter_finish(e, w, SC_ETIMEOUT, msg);
    }
    free(w);
  }
}

/* ------------------------------------------------------------------ StartInstance */

enum reuse { REUSE_EXISTS, REUSE_IGNORE, REUSE_REPLACE };

static enum reuse reuse_decision(const OrchestrationIdReusePolicy *p, int status)
{
  if (!p || p->n_replaceablestatus == 0)
    return REUSE_EXISTS;
  bool listed = false;
  for (size_t i = 0; i < p->n_replaceablestatus; i++)
    listed |= (int)p->replaceablestatus[i] == status;
  if (p->action == CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_IGNORE)
    return listed ? REUSE_IGNORE : REUSE_EXISTS;
  if (p->action == CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_TERMINATE)
    return listed ? REUSE_REPLACE : REUSE_EXISTS;
  return listed ? REUSE_REPLACE : REUSE_EXISTS;
}

int create_instance(struct sc_engine *e, const struct new_instance *ni)
{
  struct sc_store *st = e->st;
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
  if ((rc = st->ops->put_instance(st, ni->iid, &rec, NULL)) != SC_OK)
    return rc;
  if (ni->input &&
      (rc = st->ops->put_payload(st, ni->iid, SC_PAYLOAD_INPUT, ni->input->value, strlen(ni->input->value))) !=
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
    uint64_t seq = st->ops->next_seq(st);
    if ((rc = st->ops->timer_put(st, ni->scheduled_us, seq, &t)) != SC_OK)
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

static char *new_exec_id(struct sc_arena *a)
{
  char *exec = sc_arena_alloc(a, 33);
  sc_random_hex32(exec);
  return exec;
}

static int apply_start(struct sc_engine *e, struct sc_cmd *c)
{
  const CreateInstanceRequest *req = c->u.start.req;
  struct sc_store *st = e->st;
  if (req->instanceid[0])
    snprintf(c->u.start.iid, sizeof c->u.start.iid, "%s", req->instanceid);
  else
    sc_random_hex32(c->u.start.iid);
  const char *iid = c->u.start.iid;

  StoredInstance *old = NULL;
  int rc = st->ops->get_instance(st, true, iid, &e->ba, &old);
  if (rc != SC_OK && rc != SC_ENOTFOUND)
    return fail(c, rc, "reading instance %s failed", iid);
  if (rc == SC_OK) {
    switch (reuse_decision(req->orchestrationidreusepolicy, old->status)) {
    case REUSE_EXISTS:
      return fail(c, SC_EEXIST, "orchestration instance already exists: %s (status %s)", iid,
                  sc_pb_status_name(old->status));
    case REUSE_IGNORE:
      return DONE;
    case REUSE_REPLACE:
      SC_INFO("event=instance_replaced instance=%s old_status=%s", SC_Q(iid), sc_pb_status_name(old->status));
      if (!sc_status_is_terminal(old->status) && old->parent &&
          (rc = notify_parent(e, old, ST_TERMINATED, NULL, NULL)) != SC_OK)
        return fail(c, rc, "replacing instance %s failed", iid);
      if ((rc = st->ops->delete_instance(st, iid, old)) != SC_OK)
        return fail(c, rc, "replacing instance %s failed", iid);
      break;
    }
  }
  int64_t sched = req->scheduledstarttimestamp ? sc_pb_ts_us(req->scheduledstarttimestamp) : 0;
  if (sched <= sc_now_us())
    sched = 0; /* JS sends epoch 0 when no start time was given */
  struct new_instance ni = {
      .iid = iid,
      .name = req->name,
      .exec = req->executionid && req->executionid->value[0] ? req->executionid->value : new_exec_id(&e->ba),
      .version = req->version,
      .input = req->input,
      .scheduled_us = sched,
      .scheduled_ts = req->scheduledstarttimestamp,
      .trace = req->parenttracecontext,
      .n_tags = req->n_tags,
      .tags = (void *const *)req->tags,
  };
  if ((rc = create_instance(e, &ni)) != SC_OK)
    return fail(c, rc, "creating instance %s failed", iid);
  return DONE;
}

int enqueue_msg(struct sc_engine *e, const char *iid, int band, HistoryEvent *ev, const char *exec)
{
  struct sc_store *st = e->st;
  StoredMsg m;
  taskhubd__store__stored_msg__init(&m);
  m.event = ev;
  if (exec)
    m.target_execution_id = (char *)exec;
  int rc = st->ops->inbox_append(st, iid, band, st->ops->next_seq(st), &m);
  if (rc == SC_OK)
    mark_dirty(e, iid);
  return rc;
}

static TaskFailureDetails *failure(struct sc_arena *a, const char *type, const char *msg)
{
  TaskFailureDetails *f = sc_arena_alloc(a, sizeof *f);
  task_failure_details__init(f);
  f->errortype = (char *)type;
  f->errormessage = (char *)msg;
  return f;
}

int notify_parent(struct sc_engine *e, const StoredInstance *child, int status,
                  const Google__Protobuf__StringValue *result, TaskFailureDetails *fd)
{
  const ParentInstanceInfo *p = child->parent;
  if (!p || !p->orchestrationinstance)
    return SC_OK;
  const char *piid = p->orchestrationinstance->instanceid;
  const char *pexec = p->orchestrationinstance->executionid ? p->orchestrationinstance->executionid->value : NULL;
  StoredInstance *prec;
  int rc = e->st->ops->get_instance(e->st, true, piid, &e->ba, &prec);
  if (rc == SC_ENOTFOUND || (rc == SC_OK && (sc_status_is_terminal(prec->status) ||
                                             (pexec && strcmp(pexec, prec->execution_id) != 0)))) {
    SC_DEBUG("event=parent_notification_dropped parent=%s", SC_Q(piid));
    return SC_OK;
  }
  if (rc != SC_OK)
    return rc;
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
      fd = failure(&e->ba, status == ST_TERMINATED ? "TaskTerminated" : "TaskFailed",
                   status == ST_TERMINATED
                       ? sc_arena_printf(&e->ba, "sub-orchestration was terminated%s%s",
                                         result ? ": " : "", result ? result->value : "")
                       : "sub-orchestration failed");
    f->failuredetails = fd;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED;
    ev->suborchestrationinstancefailed = f;
  }
  return enqueue_msg(e, piid, SC_BAND_NORMAL, ev, pexec);
}

/* ------------------------------------------------------------------ events into the inbox */

static int enqueue(struct sc_engine *e, const char *iid, StoredInstance *old,
                   HistoryEvent *ev, StoredInstance **rec_out)
{
  int rc = enqueue_msg(e, iid, SC_BAND_NORMAL, ev, NULL);
  if (rc != SC_OK)
    return rc;
  StoredInstance *rec = copy_rec(&e->ba, old);
  rec->last_updated_us = sc_pb_ts_us(ev->timestamp);
  *rec_out = rec;
  return SC_OK;
}

static int load_live(struct sc_engine *e, struct sc_cmd *c, const char *iid,
                     StoredInstance **out)
{
  int rc = e->st->ops->get_instance(e->st, true, iid, &e->ba, out);
  if (rc == SC_ENOTFOUND)
    return fail(c, SC_ENOTFOUND, "instance not found: %s", iid), SC_ENOTFOUND;
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", iid), rc;
  return SC_OK;
}

static int apply_raise(struct sc_engine *e, struct sc_cmd *c)
{
  const RaiseEventRequest *req = c->u.raise.req;
  StoredInstance *old, *rec;
  if (load_live(e, c, req->instanceid, &old) != SC_OK)
    return DONE;
  if (sc_status_is_terminal(old->status)) {
    SC_DEBUG("event=event_dropped instance=%s reason=terminal", SC_Q(req->instanceid));
    return DONE;
  }
  HistoryEvent *ev = sc_pb_event(&e->ba, -1, sc_now_us());
  EventRaisedEvent *er = sc_arena_alloc(&e->ba, sizeof *er);
  event_raised_event__init(er);
  er->name = req->name;
  er->input = req->input;
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED;
  ev->eventraised = er;
  int rc = enqueue(e, req->instanceid, old, ev, &rec);
  if (rc == SC_OK)
    rc = e->st->ops->put_instance(e->st, req->instanceid, rec, old);
  if (rc != SC_OK)
    return fail(c, rc, "queueing event for %s failed", req->instanceid);
  return DONE;
}

static int apply_suspend(struct sc_engine *e, struct sc_cmd *c, bool resume)
{
  const char *iid = c->u.suspend.iid;
  StoredInstance *old, *rec;
  if (load_live(e, c, iid, &old) != SC_OK)
    return DONE;
  if (sc_status_is_terminal(old->status))
    return DONE;
  /* What the instance will be once everything already queued is processed: duplicates are dropped, because
   * an SDK fails an orchestration that sees a resume while not suspended. */
  bool will_be_suspended = old->suspend_requested  ? true
                           : old->resume_requested ? false
                                                   : old->status == ST_SUSPENDED;
  if (will_be_suspended != resume)
    return DONE;
  HistoryEvent *ev = sc_pb_event(&e->ba, -1, sc_now_us());
  if (resume) {
    ExecutionResumedEvent *r = sc_arena_alloc(&e->ba, sizeof *r);
    execution_resumed_event__init(r);
    r->input = (Google__Protobuf__StringValue *)c->u.suspend.reason;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED;
    ev->executionresumed = r;
  } else {
    ExecutionSuspendedEvent *s = sc_arena_alloc(&e->ba, sizeof *s);
    execution_suspended_event__init(s);
    s->input = (Google__Protobuf__StringValue *)c->u.suspend.reason;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED;
    ev->executionsuspended = s;
  }
  int rc = enqueue(e, iid, old, ev, &rec);
  if (rc == SC_OK) {
    rec->suspend_requested = !resume;
    rec->resume_requested = resume;
    rc = e->st->ops->put_instance(e->st, iid, rec, old);
  }
  if (rc != SC_OK)
    return fail(c, rc, "queueing %s for %s failed", resume ? "resume" : "suspend", iid);
  return DONE;
}

/* ------------------------------------------------------------------ TerminateInstance */

/* An instance that never ran is terminated here, without a worker: a worker given
 * [ExecutionStarted, ExecutionTerminated] of an unknown orchestration would mark it FAILED instead. */
int terminate_pending(struct sc_engine *e, const char *iid, StoredInstance *old,
                      const Google__Protobuf__StringValue *output, bool recurse)
{
  struct sc_store *st = e->st;
  struct sc_arena *a = &e->ba;
  struct sc_inbox_msg *msgs;
  size_t n;
  int rc = st->ops->inbox_load(st, true, iid, a, &msgs, &n);
  if (rc != SC_OK)
    return rc;
  int64_t now = sc_now_us();
  uint32_t idx = old->history_count;
  for (size_t i = 0; i < n; i++) {
    HistoryEvent *ev = msgs[i].msg->event;
    if (ev && ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED) {
      if ((rc = st->ops->history_append(st, iid, idx++, ev)) != SC_OK)
        return rc;
      break;
    }
  }
  HistoryEvent *t = sc_pb_event(a, -1, now);
  ExecutionTerminatedEvent *te = sc_arena_alloc(a, sizeof *te);
  execution_terminated_event__init(te);
  te->input = (Google__Protobuf__StringValue *)output;
  te->recurse = recurse;
  t->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED;
  t->executionterminated = te;
  HistoryEvent *done = sc_pb_event(a, -1, now);
  ExecutionCompletedEvent *ce = sc_arena_alloc(a, sizeof *ce);
  execution_completed_event__init(ce);
  ce->orchestrationstatus = ST_TERMINATED;
  ce->result = (Google__Protobuf__StringValue *)output;
  done->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED;
  done->executioncompleted = ce;
  if ((rc = st->ops->history_append(st, iid, idx++, t)) != SC_OK ||
      (rc = st->ops->history_append(st, iid, idx++, done)) != SC_OK ||
      (rc = st->ops->inbox_clear(st, iid)) != SC_OK)
    return rc;
  StoredInstance *rec = copy_rec(a, old);
  rec->status = ST_TERMINATED;
  rec->completed_us = now;
  rec->last_updated_us = now;
  rec->history_count = idx;
  rec->suspend_requested = rec->resume_requested = false;
  rec->has_output = output != NULL;
  if (output && (rc = st->ops->put_payload(st, iid, SC_PAYLOAD_OUTPUT, output->value,
                                           strlen(output->value))) != SC_OK)
    return rc;
  if ((rc = st->ops->put_instance(st, iid, rec, old)) != SC_OK ||
      (rc = notify_parent(e, rec, ST_TERMINATED, output, NULL)) != SC_OK)
    return rc;
  add_changed(e, iid, ST_TERMINATED, true);
  atomic_fetch_add_explicit(&sc_metrics.finished[ST_TERMINATED], 1, memory_order_relaxed);
  SC_INFO("event=instance_terminated instance=%s mode=server", SC_Q(iid));
  return SC_OK;
}

static int apply_terminate(struct sc_engine *e, struct sc_cmd *c)
{
  const TerminateRequest *req = c->u.terminate.req;
  StoredInstance *old, *rec;
  if (load_live(e, c, req->instanceid, &old) != SC_OK)
    return DONE;
  if (sc_status_is_terminal(old->status))
    return DONE;
  int rc;
  /* A pending instance a worker already holds is terminated through that worker, like a running one. */
  if (old->status == ST_PENDING && !work_is_leased(e, req->instanceid)) {
    rc = terminate_pending(e, req->instanceid, old, req->output, req->recursive);
  } else {
    HistoryEvent *ev = sc_pb_event(&e->ba, -1, sc_now_us());
    ExecutionTerminatedEvent *te = sc_arena_alloc(&e->ba, sizeof *te);
    execution_terminated_event__init(te);
    te->input = req->output;
    te->recurse = req->recursive;
    ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED;
    ev->executionterminated = te;
    rc = enqueue(e, req->instanceid, old, ev, &rec);
    if (rc == SC_OK)
      rc = e->st->ops->put_instance(e->st, req->instanceid, rec, old);
  }
  if (rc != SC_OK)
    return fail(c, rc, "terminating %s failed", req->instanceid);
  return DONE;
}

/* ------------------------------------------------------------------ PurgeInstances */

struct purge_ctx {
  struct sc_engine *e;
  int depth;
  int32_t count;
  int rc;
};

static int purge_one(struct sc_engine *e, const char *iid, bool recursive,
                     int depth, int32_t *count);

static int purge_child(const char *child, void *arg)
{
  struct purge_ctx *p = arg;
  return purge_one(p->e, child, true, p->depth + 1, &p->count);
}

static int purge_one(struct sc_engine *e, const char *iid, bool recursive,
                     int depth, int32_t *count)
{
  struct sc_store *st = e->st;
  StoredInstance *old;
  int rc = st->ops->get_instance(st, true, iid, &e->ba, &old);
  if (rc == SC_ENOTFOUND)
    return SC_OK;
  if (rc != SC_OK)
    return rc;
  if (!sc_status_is_terminal(old->status))
    return SC_OK; /* only finished instances are purged; running ones are left alone */
  if (recursive && depth < MAX_RECURSION && old->has_children) {
    struct purge_ctx p = {e, depth, 0, SC_OK};
    if ((rc = st->ops->children(st, true, iid, purge_child, &p)) != SC_OK)
      return rc;
    *count += p.count;
  }
  if ((rc = st->ops->delete_instance(st, iid, old)) != SC_OK)
    return rc;
  (*count)++;
  add_changed(e, iid, 0, false);
  SC_DEBUG("event=instance_purged instance=%s", SC_Q(iid));
  return SC_OK;
}

static int purge_filter_chunk(struct sc_engine *e, struct sc_cmd *c)
{
  const PurgeInstanceFilter *f = c->u.purge.req->purgeinstancefilter;
  static const int terminal[] = {
      ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED,
      ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED,
      ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED,
      ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CANCELED};
  int statuses[8];
  size_t ns = 0;
  if (f->n_runtimestatus == 0) {
    memcpy(statuses, terminal, sizeof terminal);
    ns = 4;
  } else {
    for (size_t i = 0; i < f->n_runtimestatus && ns < 8; i++) {
      int s = (int)f->runtimestatus[i];
      bool dup = false;
      for (size_t j = 0; j < ns; j++)
        dup |= statuses[j] == s;
      if (sc_status_is_terminal(s) && !dup)
        statuses[ns++] = s;
    }
    if (ns == 0) {
      c->u.purge.complete = true; /* nothing non-terminal is ever purged */
      return DONE;
    }
  }
  struct sc_query q = {
      .index = SC_Q_CREATED,
      .statuses = statuses,
      .n_statuses = ns,
      .has_from = f->createdtimefrom != NULL,
      .from_us = f->createdtimefrom ? sc_pb_ts_us(f->createdtimefrom) : 0,
      .has_to = f->createdtimeto != NULL,
      .to_us = f->createdtimeto ? sc_pb_ts_us(f->createdtimeto) : 0,
      .page_size = PURGE_CHUNK,
      .cursor = c->u.purge.started ? c->u.purge.cursor : NULL,
      .cursor_len = c->u.purge.cursor_len,
  };
  struct sc_query_page page;
  struct sc_err err;
  int rc = e->st->ops->query(e->st, &q, &e->ba, &page, &err);
  if (rc != SC_OK)
    return fail(c, rc, "%s", err.msg);
  for (size_t i = 0; i < page.n; i++) {
    rc = purge_one(e, page.rows[i].iid, c->u.purge.req->recursive, 0, &c->u.purge.deleted);
    if (rc != SC_OK)
      return fail(c, rc, "purging %s failed", page.rows[i].iid);
  }
  c->u.purge.started = true;
  if (!page.next_cursor) {
    c->u.purge.complete = true;
    return DONE;
  }
  if (c->u.purge.deadline_us && sc_now_us() >= c->u.purge.deadline_us) {
    c->u.purge.complete = false;
    return DONE;
  }
  SC_ASSERT(page.next_cursor_len <= sizeof c->u.purge.cursor);
  memcpy(c->u.purge.cursor, page.next_cursor, page.next_cursor_len);
  c->u.purge.cursor_len = page.next_cursor_len;
  return CONTINUED;
}

static int apply_purge(struct sc_engine *e, struct sc_cmd *c)
{
  const PurgeInstancesRequest *req = c->u.purge.req;
  int rc = SC_OK;
  c->u.purge.complete = true;
  switch (req->request_case) {
  case PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID:
    rc = purge_one(e, req->instanceid, req->recursive, 0, &c->u.purge.deleted);
    break;
  case PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_BATCH:
    for (size_t i = 0; rc == SC_OK && i < req->instancebatch->n_instanceids; i++)
      rc = purge_one(e, req->instancebatch->instanceids[i], req->recursive, 0, &c->u.purge.deleted);
    break;
  case PURGE_INSTANCES_REQUEST__REQUEST_PURGE_INSTANCE_FILTER:
    return purge_filter_chunk(e, c);
  default:
    return fail(c, SC_EINVAL, "request: one of instanceId, purgeInstanceFilter or instanceBatch is required");
  }
  if (rc != SC_OK)
    return fail(c, rc, "purge failed");
  return DONE;
}

/* ------------------------------------------------------------------ waits */

static int apply_wait(struct sc_engine *e, struct sc_cmd *c)
{
  StoredInstance *rec;
  int rc = e->st->ops->get_instance(e->st, true, c->u.wait.iid, &e->ba, &rec);
  if (rc == SC_ENOTFOUND) {
    c->u.wait.exists = false;
    return DONE;
  }
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", c->u.wait.iid);
  c->u.wait.exists = true;
  if (wait_satisfied(c->u.wait.completion, rec->status))
    return DONE;
  struct sc_waiter *w = calloc(1, sizeof *w);
  if (!w || !(w->iid = strdup(c->u.wait.iid)))
    sc_panic("out of memory parking a waiter");
  w->cmd = c;
  w->next = sc_map_get(&e->waiters, w->iid);
  sc_map_put(&e->waiters, w->iid, w);
  c->u.wait.w = w;
  int64_t due = sc_now_us() + e->cfg.wait_cap_us;
  if (c->u.wait.deadline_us && c->u.wait.deadline_us < due)
    due = c->u.wait.deadline_us;
  sc_heap_push(&e->wheap, (struct sc_heap_item){due, e->wseq++, w});
  return PARKED;
}

static int apply_cancel(struct sc_engine *e, struct sc_cmd *c)
{
  struct sc_cmd *t = c->u.cancel.target;
  if (t->u.wait.w)
    waiter_finish(e, t->u.wait.w, SC_ECANCELLED, "the client cancelled the call");
  return DONE;
}

/* ------------------------------------------------------------------ timers */

static void fire_timers(struct sc_engine *e, int64_t now)
{
  struct sc_store *st = e->st;
  const struct sc_heap_item *top;
  while ((top = sc_heap_top(&e->theap)) && top->due <= now) {
    struct sc_heap_item it = sc_heap_pop(&e->theap);
    StoredTimer *t;
    int rc = st->ops->timer_get(st, it.due, it.seq, &e->ba, &t);
    if (rc == SC_ENOTFOUND)
      continue;
    if (rc != SC_OK)
      sc_panic("reading a due timer failed (status %d)", rc);
    st->ops->timer_delete(st, it.due, it.seq);
    StoredInstance *rec;
    rc = st->ops->get_instance(st, true, t->instance_id, &e->ba, &rec);
    bool live = rc == SC_OK && !sc_status_is_terminal(rec->status) &&
                (!t->execution_id[0] || strcmp(t->execution_id, rec->execution_id) == 0);
    if (!live) {
      SC_DEBUG("event=timer_dropped instance=%s", SC_Q(t->instance_id));
      continue;
    }
    if (t->kind == TASKHUBD__STORE__STORED_TIMER__KIND__ORCH_MSG && t->msg) {
      if (t->msg->event)
        t->msg->event->timestamp = sc_pb_ts(&e->ba, now); /* TimerFired is stamped when it fires */
      rc = st->ops->inbox_append(st, t->instance_id, (int)t->band, st->ops->next_seq(st), t->msg);
      if (rc != SC_OK)
        sc_panic("delivering a timer failed (status %d)", rc);
    }
    /* A due scheduled start has nothing to deliver: its ExecutionStarted already waits in the inbox. */
    mark_dirty(e, t->instance_id);
    SC_DEBUG("event=timer_fired instance=%s kind=%d", SC_Q(t->instance_id), t->kind);
  }
}

static int recover_timer(const struct sc_timer_row *row, void *ctx)
{
  struct sc_engine *e = ctx;
  sc_heap_push(&e->theap, (struct sc_heap_item){row->due_us, row->seq, NULL});
  return SC_OK;
}

/* ------------------------------------------------------------------ the loop */

static int apply(struct sc_engine *e, struct sc_cmd *c)
{
  switch (c->kind) {
  case SC_CMD_START:
    return apply_start(e, c);
  case SC_CMD_RAISE:
    return apply_raise(e, c);
  case SC_CMD_TERMINATE:
    return apply_terminate(e, c);
  case SC_CMD_SUSPEND:
    return apply_suspend(e, c, false);
  case SC_CMD_RESUME:
    return apply_suspend(e, c, true);
  case SC_CMD_PURGE:
    return apply_purge(e, c);
  case SC_CMD_WAIT:
    return apply_wait(e, c);
  case SC_CMD_WAIT_CANCEL:
    return apply_cancel(e, c);
  case SC_CMD_STREAM_OPEN:
    return apply_stream_open(e, c);
  case SC_CMD_STREAM_CLOSE:
    return apply_stream_close(e, c);
  case SC_CMD_COMPLETE_ORCH:
    return apply_complete_orch(e, c);
  case SC_CMD_COMPLETE_ACT:
    return apply_complete_act(e, c);
  case SC_CMD_ABANDON:
    return apply_abandon(e, c);
  case SC_CMD_REWIND:
    return apply_rewind(e, c);
  case SC_CMD_RESTART:
    return apply_restart(e, c);
  case SC_CMD_WIPE:
    break; /* handled by run_batch */
  }
  return fail(c, SC_EINVAL, "unknown command %d", (int)c->kind);
}

void commit(struct sc_engine *e)
{
  struct sc_err err = {0};
  size_t n = e->st->ops->txn_size(e->st);
  if (n == 0)
    return;
  int64_t t0 = sc_mono_us();
  int rc = e->st->ops->txn_commit(e->st, e->cfg.sync, &err);
  sc_hist_observe(&sc_metrics.commit_latency, sc_latency_bounds, SC_LATENCY_BUCKETS,
                  (double)(sc_mono_us() - t0) / 1e6);
  if (rc != SC_OK) {
    /* Nothing was acknowledged; a restart recovers the last durable state. */
    sc_panic("commit failed: %s", err.msg);
  }
  pthread_mutex_lock(&e->mu);
  e->stats.commits++;
  pthread_mutex_unlock(&e->mu);
}

static void drop_all_waiters(struct sc_engine *e, int code, const char *msg)
{
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->waiters))) {
    struct sc_waiter *w = sc_map_value(it);
    waiter_finish(e, w, code, msg);
  }
}

static void run_wipe(struct sc_engine *e, struct sc_cmd *c)
{
  if (!e->cfg.allow_wipe) {
    fail(c, SC_ESTATE,
         "deleting the task hub's data is disabled; start taskhubd with --allow-delete-taskhub to allow it");
    return;
  }
  commit(e); /* what came before the wipe in this batch */
  struct sc_err err = {0};
  if (e->st->ops->wipe(e->st, &err) != SC_OK)
    sc_panic("wiping the store failed: %s", err.msg);
  sc_heap_free(&e->theap);
  work_wipe(e);
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->waiters))) {
    struct sc_waiter *w = sc_map_value(it);
    w->cmd->u.wait.exists = false;
    waiter_finish(e, w, SC_OK, NULL);
  }
  SC_WARN("event=taskhub_wiped recreate=%d", c->u.wipe.recreate);
}

static void run_batch(struct sc_engine *e, struct sc_cmd *cmds, bool stopping)
{
  struct sc_store *st = e->st;
  st->ops->txn_reset(st);
  size_t n = 0;
  struct sc_cmd *conts = e->conts;
  e->conts = NULL;
  /* Continuations first: they were accepted earlier. */
  while (conts) {
    struct sc_cmd *c = conts;
    conts = c->next;
    st->ops->txn_savepoint(st);
    int r = purge_filter_chunk(e, c);
    if (r == CONTINUED && !stopping) {
      c->next = e->conts;
      e->conts = c;
    } else {
      if (r == CONTINUED)
        c->u.purge.complete = false;
      add_done(e, c);
    }
  }
  while (cmds) {
    struct sc_cmd *c = cmds;
    cmds = c->next;
    c->next = NULL;
    n++;
    if (c->kind == SC_CMD_WIPE) {
      run_wipe(e, c);
      add_done(e, c);
      continue;
    }
    st->ops->txn_savepoint(st);
    int r = apply(e, c);
    if (c->err.code != SC_OK)
      st->ops->txn_rollback(st); /* a failed command leaves nothing behind */
    if (r == DONE) {
      add_done(e, c);
    } else if (r == CONTINUED) {
      c->next = e->conts;
      e->conts = c;
    }
  }
  int64_t now = sc_now_us();
  fire_timers(e, now);
  work_timers(e, now);
  /* A small batch means a quiet engine where latency counts: hand out work while the commit syncs. Under load
   * dispatching after the commit lets more completions gather into the next batch, which is cheaper. */
  bool early = n <= EARLY_DISPATCH_MAX;
  if (early)
    work_dispatch(e);
  commit(e);
  if (!early) {
    work_dispatch(e);
    commit(e); /* clean-ups dispatch found, if any */
  }
  /* Counted before any reply goes out, so a caller that saw its reply sees its command counted. */
  if (n)
    sc_hist_observe(&sc_metrics.commit_batch, sc_batch_bounds, SC_BATCH_BUCKETS, (double)n);
  pthread_mutex_lock(&e->mu);
  e->stats.commands += n;
  if (n > e->stats.batched_max)
    e->stats.batched_max = n;
  pthread_mutex_unlock(&e->mu);
  wake_changed(e);
  expire_waiters(e, now);
  if (stopping)
    drop_all_waiters(e, SC_EUNAVAIL, "taskhubd is shutting down");
  /* Replies go out only now: everything they report is durable. */
  for (size_t i = 0; i < e->ndone; i++)
    e->done[i]->done(e->done[i]);
  e->ndone = 0;
  /* Gauges as of now, after this batch's work went out. */
  size_t in_orch, in_act;
  work_inflight(e, &in_orch, &in_act);
  pthread_mutex_lock(&e->mu);
  e->stats.ready_orchestrations = e->ready.n;
  e->stats.queued_activities = e->actq.n;
  e->stats.timers = e->theap.n;
  e->stats.waiters = e->waiters.count;
  e->stats.inflight_orchestrations = in_orch;
  e->stats.inflight_activities = in_act;
  e->stats.draining = e->draining;
  if (e->draining && in_orch + in_act == 0)
    pthread_cond_broadcast(&e->drained);
  pthread_mutex_unlock(&e->mu);
  sc_arena_reset(&e->ba);
}

static int64_t next_wakeup(struct sc_engine *e)
{
  int64_t t = INT64_MAX;
  const struct sc_heap_item *a = sc_heap_top(&e->theap), *b = sc_heap_top(&e->wheap);
  if (a)
    t = a->due;
  if (b && b->due < t)
    t = b->due;
  int64_t w = work_next_wakeup(e);
  return w < t ? w : t;
}

static void *engine_main(void *arg)
{
  struct sc_engine *e = arg;
  for (;;) {
    pthread_mutex_lock(&e->mu);
    for (;;) {
      if (e->qh || e->stopping || e->conts || e->kick)
        break;
      int64_t wake = next_wakeup(e);
      if (wake == INT64_MAX) {
        pthread_cond_wait(&e->cv, &e->mu);
        continue;
      }
      int64_t delta = wake - sc_now_us();
      if (delta <= 0)
        break;
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      int64_t ns = ts.tv_nsec + (delta % 1000000) * 1000;
      ts.tv_sec += delta / 1000000 + ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    }
    struct sc_cmd *head = e->qh, *tail = NULL;
    int taken = 0;
    for (struct sc_cmd *c = e->qh; c && taken < e->cfg.max_batch; c = c->next) {
      tail = c;
      taken++;
    }
    if (tail) {
      e->qh = tail->next;
      if (!e->qh)
        e->qt = NULL;
      tail->next = NULL;
    } else {
      head = NULL;
    }
    bool stopping = e->stopping && !e->qh;
    e->kick = false;
    e->drain_now = e->draining;
    pthread_mutex_unlock(&e->mu);
    run_batch(e, head, stopping);
    if (stopping)
      break;
  }
  return NULL;
}

int sc_engine_start(struct sc_store *st, const struct sc_engine_config *cfg,
                    struct sc_engine **out, struct sc_err *err)
{
  struct sc_engine *e = calloc(1, sizeof *e);
  if (!e)
    sc_panic("out of memory starting the engine");
  e->st = st;
  e->cfg = *cfg;
  if (e->cfg.max_batch < 1)
    e->cfg.max_batch = 1;
  sc_arena_init(&e->ba);
  sc_map_init(&e->waiters);
  sc_heap_init(&e->wheap);
  sc_heap_init(&e->theap);
  int64_t t0 = sc_mono_us();
  int rc = st->ops->timer_scan(st, recover_timer, e);
  if (rc != SC_OK) {
    sc_err_set(err, rc, "recovering timers from the store failed");
    free(e);
    return rc;
  }
  work_init(e);
  if ((rc = work_recover(e)) != SC_OK) {
    sc_err_set(err, rc, "recovering queued work from the store failed");
    work_free(e);
    free(e);
    return rc;
  }
  SC_INFO("event=recovered timers=%zu ready=%zu activities=%zu ms=%.1f", e->theap.n, e->ready.n, e->actq.n,
          (double)(sc_mono_us() - t0) / 1000.0);
  pthread_mutex_init(&e->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->cv, &ca);
  pthread_cond_init(&e->drained, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&e->th, NULL, engine_main, e) != 0)
    sc_panic("cannot start the engine thread");
  *out = e;
  return SC_OK;
}

void sc_engine_post(struct sc_engine *e, struct sc_cmd *cmd)
{
  cmd->next = NULL;
  cmd->err.code = SC_OK;
  cmd->err.msg[0] = 0;
  pthread_mutex_lock(&e->mu);
  if (e->stopped) {
    pthread_mutex_unlock(&e->mu);
    sc_err_set(&cmd->err, SC_EUNAVAIL, "taskhubd is shutting down");
    cmd->done(cmd);
    return;
  }
  if (e->qt)
    e->qt->next = cmd;
  else
    e->qh = cmd;
  e->qt = cmd;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

void sc_engine_kick(struct sc_engine *e)
{
  pthread_mutex_lock(&e->mu);
  e->kick = true;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

void sc_engine_stop(struct sc_engine *e)
{
  if (!e)
    return;
  pthread_mutex_lock(&e->mu);
  e->stopping = true;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->th, NULL);
  pthread_mutex_lock(&e->mu);
  e->stopped = true;
  struct sc_cmd *late = e->qh;
  e->qh = e->qt = NULL;
  pthread_mutex_unlock(&e->mu);
  while (late) { /* posted between the last batch and `stopped` */
    struct sc_cmd *n = late->next;
    sc_err_set(&late->err, SC_EUNAVAIL, "taskhubd is shutting down");
    late->done(late);
    late = n;
  }
}

void sc_engine_free(struct sc_engine *e)
{
  if (!e)
    return;
  /* Waiters answered early stay in the deadline heap until they pop; free them now. */
  while (sc_heap_top(&e->wheap)) {
    struct sc_waiter *w = sc_heap_pop(&e->wheap).data;
    free(w->iid);
    free(w);
  }
  sc_heap_free(&e->wheap);
  sc_heap_free(&e->theap);
  sc_map_free(&e->waiters);
  work_free(e);
  sc_arena_free(&e->ba);
  free(e->done);
  free(e->chg);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  pthread_cond_destroy(&e->drained);
  free(e);
}

void sc_engine_get_stats(struct sc_engine *e, struct sc_engine_stats *out)
{
  pthread_mutex_lock(&e->mu);
  *out = e->stats;
  pthread_mutex_unlock(&e->mu);
}

void sc_engine_drain(struct sc_engine *e)
{
  pthread_mutex_lock(&e->mu);
  e->draining = true;
  e->kick = true;
  pthread_cond_signal(&e->cv); /* a batch refreshes the in-flight counts */
  pthread_mutex_unlock(&e->mu);
}

size_t sc_engine_wait_drained(struct sc_engine *e, int64_t deadline_us)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t left = deadline_us - sc_now_us();
  if (left < 0)
    left = 0;
  int64_t ns = ts.tv_nsec + (left % 1000000) * 1000;
  ts.tv_sec += left / 1000000 + ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  pthread_mutex_lock(&e->mu);
  /* The engine thread refreshes the counts after every batch and signals when they reach zero. */
  e->kick = true;
  pthread_cond_signal(&e->cv);
  while (e->stats.inflight_orchestrations + e->stats.inflight_activities > 0 || !e->stats.draining)
    if (pthread_cond_timedwait(&e->drained, &e->mu, &ts) != 0)
      break;
  size_t left_items = e->stats.inflight_orchestrations + e->stats.inflight_activities;
  pthread_mutex_unlock(&e->mu);
  return left_items;
}
