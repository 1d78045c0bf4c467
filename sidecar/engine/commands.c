/* The client commands: StartInstance, RaiseEvent, Suspend/Resume, Terminate, Purge, Rewind, Restart. */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* Instances one filter purge deletes per commit, so other commands interleave with a large purge. */
#define PURGE_CHUNK 500

enum reuse { REUSE_EXISTS, REUSE_IGNORE, REUSE_REPLACE };

struct purge_ctx {
  struct sc_engine *e;
  int depth;
  int32_t count;
  int rc;
};

static int purge_one(struct sc_engine *e, const char *iid, bool recursive, int depth, int32_t *count);

/*
 * No policy at all: a finished instance (COMPLETED, FAILED, TERMINATED, CANCELED) is replaced and a live one is
 * ALREADY_EXISTS, as Azure's managed scheduler does; the Java SDK's restartInstance(id, false) is exactly that
 * call. A policy, even with an empty list, is followed to the letter (an empty list replaces nothing).
 */
static enum reuse reuse_decision(const OrchestrationIdReusePolicy *p, int status)
{
  if (!p)
    return sc_status_is_terminal(status) ? REUSE_REPLACE : REUSE_EXISTS;
  if (p->n_replaceablestatus == 0)
    return REUSE_EXISTS;
  bool listed = false;
  for (size_t i = 0; i < p->n_replaceablestatus; i++)
    listed |= (int)p->replaceablestatus[i] == status;
  if (p->action == CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_IGNORE)
    return listed ? REUSE_IGNORE : REUSE_EXISTS;
  return listed ? REUSE_REPLACE : REUSE_EXISTS; /* TERMINATE, and the legacy actions, replace */
}

const char *client_target(struct sc_cmd *c)
{
  switch (c->kind) {
  case SC_CMD_START:
    if (!c->u.start.iid[0]) {
      if (c->u.start.req->instanceid[0])
        snprintf(c->u.start.iid, sizeof c->u.start.iid, "%s", c->u.start.req->instanceid);
      else
        sc_random_hex32(c->u.start.iid);
    }
    return c->u.start.iid;
  case SC_CMD_RAISE:
    return c->u.raise.req->instanceid;
  case SC_CMD_SIGNAL_ENTITY:
    return c->u.signal_entity.req->instanceid;
  case SC_CMD_TERMINATE:
    return c->u.terminate.req->instanceid;
  case SC_CMD_SUSPEND:
  case SC_CMD_RESUME:
    return c->u.suspend.iid;
  case SC_CMD_PURGE:
    return c->u.purge.req->request_case == PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID ? c->u.purge.req->instanceid
                                                                                         : NULL;
  case SC_CMD_REWIND:
    return c->u.rewind.req->instanceid;
  case SC_CMD_RESTART:
    return c->u.restart.req->instanceid;
  default:
    return NULL;
  }
}

int apply_client(struct sc_engine *e, struct sc_cmd *c)
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
  case SC_CMD_REWIND:
    return apply_rewind(e, c);
  case SC_CMD_RESTART:
    return apply_restart(e, c);
  case SC_CMD_SIGNAL_ENTITY:
    return apply_signal_entity(e, c);
  default:
    return fail(c, SC_EINVAL, "not a client command: %d", (int)c->kind);
  }
}

int apply_start(struct sc_engine *e, struct sc_cmd *c)
{
  const CreateInstanceRequest *req = c->u.start.req;
  struct sc_txn *tx = e->tx;
  const char *iid = client_target(c);

  StoredInstance *old = NULL;
  int rc = sc_txn_get_instance(tx, iid, &e->ba, &old);
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
      if ((rc = sc_txn_delete_instance(tx, iid, old, sc_status_is_terminal(old->status))) != SC_OK)
        return fail(c, rc, "replacing instance %s failed", iid);
      leases_end_instance(e, iid); /* a worker's turn of the old execution is of no use now */
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
  int rc = sc_txn_get_instance(e->tx, iid, &e->ba, out);
  if (rc == SC_ENOTFOUND)
    return fail(c, SC_ENOTFOUND, "instance not found: %s", iid), SC_ENOTFOUND;
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", iid), rc;
  return SC_OK;
}

int apply_raise(struct sc_engine *e, struct sc_cmd *c)
{
  const RaiseEventRequest *req = c->u.raise.req;
  StoredInstance *old, *rec;
  if (load_live(e, c, req->instanceid, &old) != SC_OK)
    return DONE;
  if (sc_status_is_terminal(old->status)) {
    SC_DEBUG("event=event_dropped instance=%s reason=terminal", SC_Q(req->instanceid));
    return DONE;
  }
  /* Events nobody consumes would pile up without bound: what waits for one instance is limited. Messages the
   * engine produces itself (results, timers) are bounded by the orchestration's own actions and never refused. */
  if (e->cfg.max_inbox || e->cfg.max_inbox_bytes) {
    size_t count, bytes, add = req->input ? strlen(req->input->value) : 0;
    size_t max = e->cfg.max_inbox ? e->cfg.max_inbox : SIZE_MAX;
    int rc = sc_txn_inbox_stats(e->tx, req->instanceid, max, &count, &bytes);
    if (rc != SC_OK)
      return fail(c, rc, "reading the inbox of %s failed", req->instanceid);
    if (e->cfg.max_inbox && count >= e->cfg.max_inbox)
      return fail(c, SC_ETOOBIG, "instance %s already has %zu events waiting, the limit (--max-inbox)",
                  req->instanceid, count);
    if (e->cfg.max_inbox_bytes && bytes + add > e->cfg.max_inbox_bytes)
      return fail(c, SC_ETOOBIG, "instance %s has %zu bytes of events waiting; %zu more would pass the %zu-byte "
                  "limit (--max-inbox-bytes)", req->instanceid, bytes, add, e->cfg.max_inbox_bytes);
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
    rc = sc_txn_put_instance(e->tx, req->instanceid, rec, old);
  if (rc != SC_OK)
    return fail(c, rc, "queueing event for %s failed", req->instanceid);
  add_touched(e, req->instanceid, rec->status);
  return DONE;
}

int apply_suspend(struct sc_engine *e, struct sc_cmd *c, bool resume)
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
    rc = sc_txn_put_instance(e->tx, iid, rec, old);
  }
  if (rc != SC_OK)
    return fail(c, rc, "queueing %s for %s failed", resume ? "resume" : "suspend", iid);
  return DONE;
}

int apply_terminate(struct sc_engine *e, struct sc_cmd *c)
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
    rc = enqueue(e, req->instanceid, old, terminated_event(e, req->output, req->recursive), &rec);
    if (rc == SC_OK)
      rc = sc_txn_put_instance(e->tx, req->instanceid, rec, old);
  }
  if (rc != SC_OK)
    return fail(c, rc, "terminating %s failed", req->instanceid);
  return DONE;
}

static int purge_child(const char *child, void *arg)
{
  struct purge_ctx *p = arg;
  return purge_one(p->e, child, true, p->depth + 1, &p->count);
}

static int purge_one(struct sc_engine *e, const char *iid, bool recursive,
                     int depth, int32_t *count)
{
  struct sc_txn *tx = e->tx;
  StoredInstance *old;
  if (!owns(e, iid)) {
    /* Its owner purges it if it is finished; counted as purged when it is finished now (a finished instance
     * stays so unless restarted or rewound meanwhile). */
    if (sc_store_get_instance(e->st, iid, &e->ba, &old) != SC_OK || !sc_status_is_terminal(old->status))
      return SC_OK;
    Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
    f.kind = TASKHUBD__STORE__FORWARD__KIND__PURGE_CHILD;
    f.instance_id = (char *)iid;
    f.recurse = recursive;
    forward_send(e, &f);
    (*count)++;
    return SC_OK;
  }
  int rc = sc_txn_get_instance(tx, iid, &e->ba, &old);
  if (rc == SC_ENOTFOUND)
    return SC_OK;
  if (rc != SC_OK)
    return rc;
  if (!sc_status_is_terminal(old->status))
    return SC_OK; /* only finished instances are purged; running ones are left alone */
  if (recursive && depth < MAX_RECURSION && old->has_children) {
    struct purge_ctx p = {e, depth, 0, SC_OK};
    if ((rc = sc_txn_children(tx, iid, purge_child, &p)) != SC_OK)
      return rc;
    *count += p.count;
  }
  if ((rc = sc_txn_delete_instance(tx, iid, old, true)) != SC_OK) /* finished: its inbox is empty */
    return rc;
  (*count)++;
  add_changed(e, iid, 0, false);
  SC_DEBUG("event=instance_purged instance=%s", SC_Q(iid));
  return SC_OK;
}

int purge_instance(struct sc_engine *e, const char *iid, bool recursive)
{
  int32_t count = 0;
  return purge_one(e, iid, recursive, 0, &count);
}

int purge_filter_chunk(struct sc_engine *e, struct sc_cmd *c)
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

int apply_purge(struct sc_engine *e, struct sc_cmd *c)
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

int apply_rewind(struct sc_engine *e, struct sc_cmd *c)
{
  const RewindInstanceRequest *req = c->u.rewind.req;
  StoredInstance *rec;
  int rc = sc_txn_get_instance(e->tx, req->instanceid, &e->ba, &rec);
  if (rc == SC_ENOTFOUND)
    return fail(c, SC_ENOTFOUND, "instance not found: %s", req->instanceid);
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", req->instanceid);
  if (rec->status != ST_FAILED)
    return fail(c, SC_ESTATE, "instance %s is %s; only FAILED instances can be rewound", req->instanceid,
                sc_pb_status_name(rec->status));
  rc = rewind_one(e, req->instanceid, req->reason, NULL, 0);
  if (rc != SC_OK)
    return fail(c, rc, "rewinding %s failed", req->instanceid);
  return DONE;
}

int apply_restart(struct sc_engine *e, struct sc_cmd *c)
{
  const RestartInstanceRequest *req = c->u.restart.req;
  struct sc_txn *tx = e->tx;
  StoredInstance *old;
  int rc = sc_txn_get_instance(tx, req->instanceid, &e->ba, &old);
  if (rc == SC_ENOTFOUND)
    return fail(c, SC_ENOTFOUND, "instance not found: %s", req->instanceid);
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", req->instanceid);
  if (!req->restartwithnewinstanceid && !sc_status_is_terminal(old->status))
    return fail(c, SC_ESTATE, "instance %s is %s; only finished instances can be restarted in place",
                req->instanceid, sc_pb_status_name(old->status));
  char *input = NULL;
  size_t ilen;
  if (old->has_input && (rc = sc_txn_get_payload(tx, req->instanceid, SC_PAYLOAD_INPUT, &e->ba, &input,
                                                   &ilen)) != SC_OK)
    return fail(c, rc, "reading the input of %s failed", req->instanceid);
  if (req->restartwithnewinstanceid) {
    /* Drawn until it falls in a partition of this replica, so the new instance is created in this commit. */
    do
      sc_random_hex32(c->u.restart.iid);
    while (!owns(e, c->u.restart.iid));
  } else {
    snprintf(c->u.restart.iid, sizeof c->u.restart.iid, "%s", req->instanceid);
    if ((rc = sc_txn_delete_instance(tx, req->instanceid, old, sc_status_is_terminal(old->status))) != SC_OK)
      return fail(c, rc, "replacing %s failed", req->instanceid);
    leases_end_instance(e, req->instanceid);
  }
  char *exec = sc_arena_alloc(&e->ba, 33);
  sc_random_hex32(exec);
  struct new_instance ni = {
      .iid = c->u.restart.iid,
      .name = old->name,
      .exec = exec,
      .version = old->has_version ? sc_pb_sv(&e->ba, old->version) : NULL,
      .input = sc_pb_sv(&e->ba, input),
      .trace = old->trace_context,
      .n_tags = old->n_tags,
      .tags = (void *const *)old->tags,
  };
  if ((rc = create_instance(e, &ni)) != SC_OK)
    return fail(c, rc, "restarting %s failed", req->instanceid);
  SC_INFO("event=instance_restarted instance=%s new_instance=%s", SC_Q(req->instanceid), SC_Q(c->u.restart.iid));
  return DONE;
}
