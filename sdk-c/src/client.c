/*
 * The client: one function per TaskHubSidecarService RPC. Requests are built on the stack, responses come back
 * unpacked by protobuf-c and are copied into malloc()ed API structs, so nothing protobuf-c owns ever reaches the
 * caller. StreamInstanceHistory is the one server-streaming call (dt__server_stream, shared with the worker).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define SVC "/TaskHubSidecarService/"

struct dt_client {
  dt__conn conn;
};

dt__conn *dt__client_conn(dt_client *c)
{
  return &c->conn;
}

/* ------------------------------------------------------------------ helpers */

static bool valid_id(const char *s)
{
  return s != NULL && s[0] != '\0';
}

static bool valid_status(dt_status s)
{
  return (int)s >= DT_STATUS_RUNNING && (int)s <= DT_STATUS_SUSPENDED;
}

static bool valid_statuses(const dt_status *v, size_t n)
{
  if (n > 0 && !v)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!valid_status(v[i]))
      return false;
  return true;
}

static char *cp_sv(const Google__Protobuf__StringValue *v, bool *oom)
{
  return v ? dt__cp(v->value, oom) : NULL;
}

static void free_const(const void *p)
{
  free((void *)(uintptr_t)p);
}

int dt__client_call(dt_client *c, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                    int timeout_ms, ProtobufCMessage **resp)
{
  char *msg = NULL;
  int rc = dt__unary(&c->conn, method, req, rd, timeout_ms, resp, &msg);
  if (rc != DT_OK)
    DT_DEBUG("rpc=%s rc=%s message=\"%s\"", method, dt_strerror(rc), msg ? msg : "");
  free(msg);
  return rc;
}

int dt_client_call_raw(dt_client *c, const char *method, const uint8_t *req, size_t req_len, int timeout_ms,
                       uint8_t **resp, size_t *resp_len)
{
  if (!c || !method || method[0] != '/' || (!req && req_len) || !resp || !resp_len || timeout_ms < 0)
    return DT_ERR_INVALID_ARG;
  char *msg = NULL;
  int rc = dt__unary_raw(&c->conn, method, req ? req : (const uint8_t *)"", req_len, timeout_ms, resp, resp_len,
                         &msg);
  if (rc != DT_OK)
    DT_DEBUG("rpc=%s rc=%s message=\"%s\"", method, dt_strerror(rc), msg ? msg : "");
  free(msg);
  return rc;
}

/* A unary call whose response carries nothing we need. */
static int call_empty(dt_client *c, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *rd)
{
  ProtobufCMessage *resp = NULL;
  int rc = dt__client_call(c, method, req, rd, 0, &resp);
  if (rc == DT_OK)
    protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

/* ------------------------------------------------------------------ failures, instances */

static void failure_free(dt_failure *f)
{
  while (f) {
    dt_failure *inner = (dt_failure *)(uintptr_t)f->inner;
    free_const(f->error_type);
    free_const(f->message);
    free_const(f->stack_trace);
    free(f);
    f = inner;
  }
}

static dt_failure *failure_from(const TaskFailureDetails *d, bool *oom)
{
  dt_failure *head = NULL, *prev = NULL;
  for (; d; d = d->innerfailure) {
    dt_failure *f = calloc(1, sizeof *f);
    if (!f) {
      *oom = true;
      break;
    }
    f->error_type = dt__cp(d->errortype, oom);
    f->message = dt__cp(d->errormessage, oom);
    f->stack_trace = cp_sv(d->stacktrace, oom);
    if (prev)
      prev->inner = f;
    else
      head = f;
    prev = f;
  }
  return head;
}

void dt_instance_free(dt_instance *in)
{
  if (!in)
    return;
  free(in->instance_id);
  free(in->name);
  free(in->version);
  free(in->execution_id);
  free(in->parent_instance_id);
  free(in->input);
  free(in->output);
  free(in->custom_status);
  failure_free(in->failure);
  for (size_t i = 0; i < in->n_tags; i++) {
    free_const(in->tags[i].key);
    free_const(in->tags[i].value);
  }
  free(in->tags);
  free(in);
}

/* A malloc()ed copy of |s|; |iid| stands in for an empty instance id. */
static int instance_from(const OrchestrationState *s, const char *iid, bool payloads, dt_instance **out)
{
  dt_instance *in = calloc(1, sizeof *in);
  if (!in)
    return DT_ERR_NOMEM;
  bool oom = false;
  in->instance_id = dt__cp((s->instanceid[0] || !iid) ? s->instanceid : iid, &oom);
  in->name = dt__cp(s->name, &oom);
  in->version = cp_sv(s->version, &oom);
  in->execution_id = cp_sv(s->executionid, &oom);
  in->status = (dt_status)s->orchestrationstatus;
  in->created_ms = dt__ts_ms(s->createdtimestamp);
  in->last_updated_ms = dt__ts_ms(s->lastupdatedtimestamp);
  in->completed_ms = dt__ts_ms(s->completedtimestamp);
  in->scheduled_start_ms = dt__ts_ms(s->scheduledstarttimestamp);
  in->parent_instance_id = cp_sv(s->parentinstanceid, &oom);
  if (payloads) {
    in->input = cp_sv(s->input, &oom);
    in->output = cp_sv(s->output, &oom);
    in->custom_status = cp_sv(s->customstatus, &oom);
  }
  if (s->orchestrationstatus == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED)
    in->failure = failure_from(s->failuredetails, &oom);
  if (s->n_tags > 0) {
    in->tags = calloc(s->n_tags, sizeof *in->tags);
    if (!in->tags) {
      oom = true;
    } else {
      in->n_tags = s->n_tags;
      for (size_t i = 0; i < s->n_tags; i++) {
        in->tags[i].key = dt__cp(s->tags[i]->key, &oom);
        in->tags[i].value = dt__cp(s->tags[i]->value, &oom);
      }
    }
  }
  if (oom) {
    dt_instance_free(in);
    return DT_ERR_NOMEM;
  }
  *out = in;
  return DT_OK;
}

/* ------------------------------------------------------------------ open, close */

const char *dt_default_target(void)
{
  const char *env = getenv("TASKHUBD_ADDRESS");
  return env && *env ? env : "127.0.0.1:4001";
}

int dt_client_open(const char *target, const dt_conn_options *opt, dt_client **out)
{
  if (!target)
    target = dt_default_target();
  if (!*target || !out)
    return DT_ERR_INVALID_ARG;
  dt_client *c = calloc(1, sizeof *c);
  if (!c)
    return DT_ERR_NOMEM;
  int rc = dt__conn_open(&c->conn, target, opt);
  if (rc != DT_OK) {
    free(c);
    return rc;
  }
  DT_DEBUG("client opened target=%s", target);
  *out = c;
  return DT_OK;
}

void dt_client_close(dt_client *c)
{
  if (!c)
    return;
  dt__conn_close(&c->conn);
  free(c);
}

/* ------------------------------------------------------------------ schedule */

int dt_client_schedule(dt_client *c, const char *name, const dt_start_options *opt, char **instance_id)
{
  if (!c || !valid_id(name))
    return DT_ERR_INVALID_ARG;
  static const dt_start_options none;
  if (!opt)
    opt = &none;
  if (opt->start_at_ms < 0 || (opt->n_tags > 0 && !opt->tags))
    return DT_ERR_INVALID_ARG;
  for (size_t i = 0; i < opt->n_tags; i++)
    if (!valid_id(opt->tags[i].key))
      return DT_ERR_INVALID_ARG;
  if (opt->reuse && !valid_statuses(opt->reuse->replaceable, opt->reuse->n))
    return DT_ERR_INVALID_ARG;

  char gen[33];
  const char *iid = opt->instance_id;
  if (!iid || !*iid) {
    int rc = dt__random_hex32(gen);
    if (rc != DT_OK)
      return rc;
    iid = gen;
  }

  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue version, input;
  Google__Protobuf__Timestamp start;
  OrchestrationIdReusePolicy policy = ORCHESTRATION_ID_REUSE_POLICY__INIT;
  req.instanceid = (char *)iid;
  req.name = (char *)name;
  req.version = dt__sv(&version, opt->version);
  req.input = dt__sv(&input, opt->input);
  if (opt->start_at_ms > 0)
    req.scheduledstarttimestamp = dt__ts(&start, opt->start_at_ms);

  int rc = DT_ERR_NOMEM;
  CreateInstanceRequest__TagsEntry *entries = NULL, **tags = NULL;
  OrchestrationStatus *replaceable = NULL;
  if (opt->n_tags > 0) {
    entries = calloc(opt->n_tags, sizeof *entries);
    tags = calloc(opt->n_tags, sizeof *tags);
    if (!entries || !tags)
      goto done;
    for (size_t i = 0; i < opt->n_tags; i++) {
      create_instance_request__tags_entry__init(&entries[i]);
      entries[i].key = (char *)opt->tags[i].key;
      entries[i].value = (char *)(opt->tags[i].value ? opt->tags[i].value : "");
      tags[i] = &entries[i];
    }
    req.n_tags = opt->n_tags;
    req.tags = tags;
  }
  /* Sent even when empty: "replace nothing" differs from no policy (which replaces a finished instance). */
  if (opt->reuse) {
    replaceable = calloc(opt->reuse->n ? opt->reuse->n : 1, sizeof *replaceable);
    if (!replaceable)
      goto done;
    for (size_t i = 0; i < opt->reuse->n; i++)
      replaceable[i] = (OrchestrationStatus)opt->reuse->replaceable[i];
    policy.n_replaceablestatus = opt->reuse->n;
    policy.replaceablestatus = replaceable;
    req.orchestrationidreusepolicy = &policy;
  }

  ProtobufCMessage *m = NULL;
  rc = dt__client_call(c, SVC "StartInstance", &req.base, &create_instance_response__descriptor, 0, &m);
  if (rc == DT_OK) {
    const CreateInstanceResponse *resp = (const CreateInstanceResponse *)m;
    if (instance_id) {
      /* The server echoes the id; fall back to ours should it not. */
      char *id = strdup(resp->instanceid[0] ? resp->instanceid : iid);
      if (!id)
        rc = DT_ERR_NOMEM;
      else
        *instance_id = id;
    }
    protobuf_c_message_free_unpacked(m, NULL);
  }
done:
  free(entries);
  free(tags);
  free(replaceable);
  return rc;
}

/* ------------------------------------------------------------------ get, wait */

static int get_common(dt_client *c, const char *method, const char *instance_id, int timeout_ms, bool payloads,
                      dt_instance **out)
{
  if (!c || !valid_id(instance_id) || !out)
    return DT_ERR_INVALID_ARG;
  GetInstanceRequest req = GET_INSTANCE_REQUEST__INIT;
  req.instanceid = (char *)instance_id;
  req.getinputsandoutputs = payloads;
  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, method, &req.base, &get_instance_response__descriptor, timeout_ms, &m);
  if (rc != DT_OK)
    return rc;
  const GetInstanceResponse *resp = (const GetInstanceResponse *)m;
  if (!resp->exists)
    rc = DT_ERR_NOT_FOUND;
  else if (!resp->orchestrationstate)
    rc = DT_ERR_INTERNAL;
  else
    rc = instance_from(resp->orchestrationstate, instance_id, payloads, out);
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

int dt_client_get(dt_client *c, const char *instance_id, bool payloads, dt_instance **out)
{
  return get_common(c, SVC "GetInstance", instance_id, 0, payloads, out);
}

int dt_client_wait_start(dt_client *c, const char *instance_id, int timeout_ms, bool payloads, dt_instance **out)
{
  return get_common(c, SVC "WaitForInstanceStart", instance_id, timeout_ms > 0 ? timeout_ms : DT__NO_DEADLINE,
                    payloads, out);
}

int dt_client_wait_completion(dt_client *c, const char *instance_id, int timeout_ms, bool payloads,
                              dt_instance **out)
{
  return get_common(c, SVC "WaitForInstanceCompletion", instance_id,
                    timeout_ms > 0 ? timeout_ms : DT__NO_DEADLINE, payloads, out);
}

/* ------------------------------------------------------------------ instance operations */

int dt_client_raise_event(dt_client *c, const char *instance_id, const char *event_name, const char *data)
{
  if (!c || !valid_id(instance_id) || !valid_id(event_name))
    return DT_ERR_INVALID_ARG;
  RaiseEventRequest req = RAISE_EVENT_REQUEST__INIT;
  Google__Protobuf__StringValue in;
  req.instanceid = (char *)instance_id;
  req.name = (char *)event_name;
  req.input = dt__sv(&in, data);
  return call_empty(c, SVC "RaiseEvent", &req.base, &raise_event_response__descriptor);
}

int dt_client_terminate(dt_client *c, const char *instance_id, const char *output, bool recursive)
{
  if (!c || !valid_id(instance_id))
    return DT_ERR_INVALID_ARG;
  TerminateRequest req = TERMINATE_REQUEST__INIT;
  Google__Protobuf__StringValue out;
  req.instanceid = (char *)instance_id;
  req.output = dt__sv(&out, output);
  req.recursive = recursive;
  return call_empty(c, SVC "TerminateInstance", &req.base, &terminate_response__descriptor);
}

int dt_client_suspend(dt_client *c, const char *instance_id, const char *reason)
{
  if (!c || !valid_id(instance_id))
    return DT_ERR_INVALID_ARG;
  SuspendRequest req = SUSPEND_REQUEST__INIT;
  Google__Protobuf__StringValue r;
  req.instanceid = (char *)instance_id;
  req.reason = dt__sv(&r, reason);
  return call_empty(c, SVC "SuspendInstance", &req.base, &suspend_response__descriptor);
}

int dt_client_resume(dt_client *c, const char *instance_id, const char *reason)
{
  if (!c || !valid_id(instance_id))
    return DT_ERR_INVALID_ARG;
  ResumeRequest req = RESUME_REQUEST__INIT;
  Google__Protobuf__StringValue r;
  req.instanceid = (char *)instance_id;
  req.reason = dt__sv(&r, reason);
  return call_empty(c, SVC "ResumeInstance", &req.base, &resume_response__descriptor);
}

int dt_client_rewind(dt_client *c, const char *instance_id, const char *reason)
{
  if (!c || !valid_id(instance_id))
    return DT_ERR_INVALID_ARG;
  RewindInstanceRequest req = REWIND_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue r;
  req.instanceid = (char *)instance_id;
  req.reason = dt__sv(&r, reason);
  return call_empty(c, SVC "RewindInstance", &req.base, &rewind_instance_response__descriptor);
}

int dt_client_restart(dt_client *c, const char *instance_id, bool new_instance_id, char **new_instance_id_out)
{
  if (!c || !valid_id(instance_id))
    return DT_ERR_INVALID_ARG;
  RestartInstanceRequest req = RESTART_INSTANCE_REQUEST__INIT;
  req.instanceid = (char *)instance_id;
  req.restartwithnewinstanceid = new_instance_id;
  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, SVC "RestartInstance", &req.base, &restart_instance_response__descriptor, 0, &m);
  if (rc != DT_OK)
    return rc;
  const RestartInstanceResponse *resp = (const RestartInstanceResponse *)m;
  if (!resp->instanceid[0] && new_instance_id) {
    rc = DT_ERR_INTERNAL; /* the new id is the one thing the response must carry */
  } else if (new_instance_id_out) {
    char *id = strdup(resp->instanceid[0] ? resp->instanceid : instance_id);
    if (!id)
      rc = DT_ERR_NOMEM;
    else
      *new_instance_id_out = id;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

/* ------------------------------------------------------------------ query */

void dt_instance_page_free(dt_instance_page *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++)
    dt_instance_free(p->instances[i]);
  free(p->instances);
  free(p->continuation);
  free(p);
}

int dt_client_query(dt_client *c, const dt_query *q, dt_instance_page **out)
{
  if (!c || !q || !out || q->page_size < 0 || !valid_statuses(q->statuses, q->n_statuses))
    return DT_ERR_INVALID_ARG;
  QueryInstancesRequest req = QUERY_INSTANCES_REQUEST__INIT;
  InstanceQuery iq = INSTANCE_QUERY__INIT;
  Google__Protobuf__Timestamp from, to;
  Google__Protobuf__StringValue prefix, token;
  OrchestrationStatus *statuses = NULL;
  if (q->n_statuses > 0) {
    statuses = calloc(q->n_statuses, sizeof *statuses);
    if (!statuses)
      return DT_ERR_NOMEM;
    for (size_t i = 0; i < q->n_statuses; i++)
      statuses[i] = (OrchestrationStatus)q->statuses[i];
    iq.n_runtimestatus = q->n_statuses;
    iq.runtimestatus = statuses;
  }
  if (q->created_from_ms)
    iq.createdtimefrom = dt__ts(&from, q->created_from_ms);
  if (q->created_to_ms)
    iq.createdtimeto = dt__ts(&to, q->created_to_ms);
  iq.maxinstancecount = q->page_size > 0 ? q->page_size : 100;
  if (q->instance_id_prefix && q->instance_id_prefix[0])
    iq.instanceidprefix = dt__sv(&prefix, q->instance_id_prefix);
  if (q->continuation && q->continuation[0])
    iq.continuationtoken = dt__sv(&token, q->continuation);
  iq.fetchinputsandoutputs = q->payloads;
  req.query = &iq;

  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, q->reversed ? "/taskhubd.admin.Admin/QueryInstancesReversed" : SVC "QueryInstances",
                           &req.base, &query_instances_response__descriptor, 0, &m);
  free(statuses);
  if (rc != DT_OK)
    return rc;
  const QueryInstancesResponse *resp = (const QueryInstancesResponse *)m;
  dt_instance_page *p = calloc(1, sizeof *p);
  rc = DT_ERR_NOMEM;
  if (!p)
    goto done;
  if (resp->n_orchestrationstate > 0) {
    p->instances = calloc(resp->n_orchestrationstate, sizeof *p->instances);
    if (!p->instances)
      goto done;
    for (size_t i = 0; i < resp->n_orchestrationstate; i++) {
      if ((rc = instance_from(resp->orchestrationstate[i], NULL, q->payloads, &p->instances[i])) != DT_OK)
        goto done;
      p->n++;
    }
  }
  if (resp->continuationtoken && resp->continuationtoken->value[0]) {
    p->continuation = strdup(resp->continuationtoken->value);
    if (!p->continuation) {
      rc = DT_ERR_NOMEM;
      goto done;
    }
  }
  *out = p;
  p = NULL;
  rc = DT_OK;
done:
  dt_instance_page_free(p);
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

/* ------------------------------------------------------------------ purge */

static int purge_call(dt_client *c, const PurgeInstancesRequest *req, int *deleted, bool *complete)
{
  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, SVC "PurgeInstances", &req->base, &purge_instances_response__descriptor, 0, &m);
  if (rc != DT_OK)
    return rc;
  const PurgeInstancesResponse *resp = (const PurgeInstancesResponse *)m;
  if (deleted)
    *deleted = resp->deletedinstancecount;
  if (complete)
    *complete = resp->iscomplete ? resp->iscomplete->value : true;
  protobuf_c_message_free_unpacked(m, NULL);
  return DT_OK;
}

int dt_client_purge(dt_client *c, const char *instance_id, bool recursive, int *deleted)
{
  if (!c || !valid_id(instance_id))
    return DT_ERR_INVALID_ARG;
  PurgeInstancesRequest req = PURGE_INSTANCES_REQUEST__INIT;
  req.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID;
  req.instanceid = (char *)instance_id;
  req.recursive = recursive;
  req.isorchestration = true;
  return purge_call(c, &req, deleted, NULL);
}

int dt_client_purge_filter(dt_client *c, const dt_purge_filter *f, int *deleted, bool *complete)
{
  if (!c || !f || !valid_statuses(f->statuses, f->n_statuses))
    return DT_ERR_INVALID_ARG;
  PurgeInstancesRequest req = PURGE_INSTANCES_REQUEST__INIT;
  PurgeInstanceFilter pf = PURGE_INSTANCE_FILTER__INIT;
  Google__Protobuf__Timestamp from, to;
  OrchestrationStatus *statuses = NULL;
  if (f->n_statuses > 0) {
    statuses = calloc(f->n_statuses, sizeof *statuses);
    if (!statuses)
      return DT_ERR_NOMEM;
    for (size_t i = 0; i < f->n_statuses; i++)
      statuses[i] = (OrchestrationStatus)f->statuses[i];
    pf.n_runtimestatus = f->n_statuses;
    pf.runtimestatus = statuses;
  }
  if (f->created_from_ms)
    pf.createdtimefrom = dt__ts(&from, f->created_from_ms);
  if (f->created_to_ms)
    pf.createdtimeto = dt__ts(&to, f->created_to_ms);
  req.request_case = PURGE_INSTANCES_REQUEST__REQUEST_PURGE_INSTANCE_FILTER;
  req.purgeinstancefilter = &pf;
  req.isorchestration = true;
  int rc = purge_call(c, &req, deleted, complete);
  free(statuses);
  return rc;
}

/* ------------------------------------------------------------------ history */

void dt_history_free(dt_history *h)
{
  if (!h)
    return;
  for (size_t i = 0; i < h->n; i++) {
    dt_event *e = &h->events[i];
    /* type is a static string; everything else was copied. */
    free_const(e->name);
    free_const(e->payload);
    free_const(e->instance_id);
    failure_free((dt_failure *)(uintptr_t)e->failure);
  }
  free(h->events);
  free(h);
}

static const char *event_type_name(HistoryEvent__EventTypeCase t)
{
  switch (t) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED: return "ExecutionStarted";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED: return "ExecutionCompleted";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED: return "ExecutionTerminated";
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED: return "TaskScheduled";
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED: return "TaskCompleted";
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED: return "TaskFailed";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED: return "SubOrchestrationInstanceCreated";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED: return "SubOrchestrationInstanceCompleted";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED: return "SubOrchestrationInstanceFailed";
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED: return "TimerCreated";
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED: return "TimerFired";
  case HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED: return "OrchestratorStarted";
  case HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_COMPLETED: return "OrchestratorCompleted";
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT: return "EventSent";
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED: return "EventRaised";
  case HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT: return "GenericEvent";
  case HISTORY_EVENT__EVENT_TYPE_HISTORY_STATE: return "HistoryState";
  case HISTORY_EVENT__EVENT_TYPE_CONTINUE_AS_NEW: return "ContinueAsNew";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED: return "ExecutionSuspended";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED: return "ExecutionResumed";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED: return "EntityOperationSignaled";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED: return "EntityOperationCalled";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_COMPLETED: return "EntityOperationCompleted";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_FAILED: return "EntityOperationFailed";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_REQUESTED: return "EntityLockRequested";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_GRANTED: return "EntityLockGranted";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT: return "EntityUnlockSent";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND: return "ExecutionRewound";
  case HISTORY_EVENT__EVENT_TYPE__NOT_SET: break;
  default: break;
  }
  return "Unknown";
}

/* Flattens |he| into |e| (zeroed by the caller). Returns false on out-of-memory (e is then freeable). */
static bool event_from(const HistoryEvent *he, dt_event *e)
{
  bool oom = false;
  const char *name = NULL, *iid = NULL;
  const Google__Protobuf__StringValue *payload = NULL, *name_sv = NULL, *iid_sv = NULL;
  const TaskFailureDetails *fd = NULL;
  e->event_id = he->eventid;
  e->timestamp_ms = dt__ts_ms(he->timestamp);
  e->type = event_type_name(he->event_type_case);
  e->task_id = -1;
  e->status = DT_STATUS_RUNNING;
  switch (he->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED:
    name = he->executionstarted->name;
    payload = he->executionstarted->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED:
    e->status = (dt_status)he->executioncompleted->orchestrationstatus;
    payload = he->executioncompleted->result;
    fd = he->executioncompleted->failuredetails;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED:
    payload = he->executionterminated->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED:
    name = he->taskscheduled->name;
    payload = he->taskscheduled->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED:
    e->task_id = he->taskcompleted->taskscheduledid;
    payload = he->taskcompleted->result;
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED:
    e->task_id = he->taskfailed->taskscheduledid;
    fd = he->taskfailed->failuredetails;
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED:
    name = he->suborchestrationinstancecreated->name;
    iid = he->suborchestrationinstancecreated->instanceid;
    payload = he->suborchestrationinstancecreated->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED:
    e->task_id = he->suborchestrationinstancecompleted->taskscheduledid;
    payload = he->suborchestrationinstancecompleted->result;
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED:
    e->task_id = he->suborchestrationinstancefailed->taskscheduledid;
    fd = he->suborchestrationinstancefailed->failuredetails;
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED:
    e->fire_at_ms = dt__ts_ms(he->timercreated->fireat);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED:
    e->fire_at_ms = dt__ts_ms(he->timerfired->fireat);
    e->task_id = he->timerfired->timerid;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT:
    name = he->eventsent->name;
    iid = he->eventsent->instanceid;
    payload = he->eventsent->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED:
    name = he->eventraised->name;
    payload = he->eventraised->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT:
    payload = he->genericevent->data;
    break;
  case HISTORY_EVENT__EVENT_TYPE_CONTINUE_AS_NEW:
    payload = he->continueasnew->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED:
    payload = he->executionsuspended->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED:
    payload = he->executionresumed->input;
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED:
    name = he->entityoperationsignaled->operation;
    payload = he->entityoperationsignaled->input;
    iid_sv = he->entityoperationsignaled->targetinstanceid;
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED:
    name = he->entityoperationcalled->operation;
    payload = he->entityoperationcalled->input;
    iid_sv = he->entityoperationcalled->targetinstanceid;
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_COMPLETED:
    payload = he->entityoperationcompleted->output;
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_FAILED:
    fd = he->entityoperationfailed->failuredetails;
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT:
    iid_sv = he->entityunlocksent->targetinstanceid;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND:
    name_sv = he->executionrewound->name;
    payload = he->executionrewound->reason;
    break;
  default:
    break;
  }
  e->name = name ? dt__cp(name, &oom) : cp_sv(name_sv, &oom);
  e->instance_id = iid ? dt__cp(iid, &oom) : cp_sv(iid_sv, &oom);
  e->payload = cp_sv(payload, &oom);
  e->failure = failure_from(fd, &oom);
  return !oom;
}

/* Appends the events of one HistoryChunk to |h|. */
static int history_append(dt_history *h, size_t *cap, const HistoryChunk *ch)
{
  if (ch->n_events > SIZE_MAX / sizeof *h->events - h->n)
    return DT_ERR_NOMEM;
  if (h->n + ch->n_events > *cap) {
    size_t ncap = *cap ? *cap : 64;
    while (ncap < h->n + ch->n_events)
      ncap = ncap > SIZE_MAX / sizeof *h->events / 2 ? h->n + ch->n_events : ncap * 2;
    dt_event *ev = realloc(h->events, ncap * sizeof *ev);
    if (!ev)
      return DT_ERR_NOMEM;
    h->events = ev;
    *cap = ncap;
  }
  for (size_t i = 0; i < ch->n_events; i++) {
    dt_event e;
    memset(&e, 0, sizeof e);
    bool ok = event_from(ch->events[i], &e);
    h->events[h->n++] = e; /* kept even when incomplete, so that dt_history_free releases it */
    if (!ok)
      return DT_ERR_NOMEM;
  }
  return DT_OK;
}

struct history_read {
  dt_history *h;
  size_t cap;
};

static int on_chunk(ProtobufCMessage *m, void *arg)
{
  struct history_read *r = arg;
  int rc = history_append(r->h, &r->cap, (const HistoryChunk *)m);
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

int dt_client_history(dt_client *c, const char *instance_id, dt_history **out)
{
  if (!c || !valid_id(instance_id) || !out)
    return DT_ERR_INVALID_ARG;
  struct history_read r = {calloc(1, sizeof(dt_history)), 0};
  if (!r.h)
    return DT_ERR_NOMEM;
  StreamInstanceHistoryRequest req = STREAM_INSTANCE_HISTORY_REQUEST__INIT;
  req.instanceid = (char *)instance_id;
  int rc = dt__server_stream(&c->conn, SVC "StreamInstanceHistory", &req.base, &history_chunk__descriptor, 0,
                             on_chunk, &r);
  if (rc != DT_OK) {
    dt_history_free(r.h);
    return rc;
  }
  *out = r.h;
  return DT_OK;
}
