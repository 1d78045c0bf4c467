/*
 * The RPC handlers that post commands: validate each decoded request (naming the offending field), then post a
 * command to the engine and reply from its done callback, after the commit. The handlers that read committed
 * state (GetInstance, WaitFor*, QueryInstances, ListInstanceIds, StreamInstanceHistory) are in reads.c.
 */
#include "call.h"
#include "common/log.h"
#include "common/pbutil.h"
#include "common/util.h"
#include "limits/limits.h"
#include "google/protobuf/empty.pb-c.h"
#include "health.pb-c.h"
#include "taskhubd_admin.pb-c.h"

#include <grpc/support/alloc.h>

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define MAX_PURGE_BATCH 500


/* ------------------------------------------------------------------ handlers */

static void h_hello(struct sc_call *c)
{
  Google__Protobuf__Empty resp = GOOGLE__PROTOBUF__EMPTY__INIT;
  sc_call_reply(c, 0, NULL, &resp.base);
}

static void h_health(struct sc_call *c)
{
  const Grpc__Health__V1__HealthCheckRequest *r = (void *)c->req;
  if (r->service[0] && strcmp(r->service, "TaskHubSidecarService") != 0) {
    sc_call_reject(c, GRPC_NOT_FOUND, "unknown service %s", r->service);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  sc_call_reply(c, 0, NULL, &resp.base);
}

static char *metadata(struct sc_call *c, const char *key)
{
  for (size_t i = 0; i < c->md.count; i++) {
    const grpc_metadata *m = &c->md.metadata[i];
    size_t kl = GRPC_SLICE_LENGTH(m->key);
    if (kl == strlen(key) && memcmp(GRPC_SLICE_START_PTR(m->key), key, kl) == 0)
      return sc_arena_strndup(&c->arena, (const char *)GRPC_SLICE_START_PTR(m->value), GRPC_SLICE_LENGTH(m->value));
  }
  return NULL;
}

/* A W3C traceparent in the call's metadata ("00-<trace id>-<parent span id>-<flags>") stands in for a missing
 * parentTraceContext, so that spans join up even when the client SDK does not fill the field. */
static TraceContext *trace_from_metadata(struct sc_call *c)
{
  char *tp = metadata(c, "traceparent");
  if (!tp || strlen(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
    return NULL;
  TraceContext *t = sc_arena_alloc(&c->arena, sizeof *t);
  trace_context__init(t);
  t->traceparent = tp;
  t->spanid = sc_arena_strndup(&c->arena, tp + 36, 16);
  char *state = metadata(c, "tracestate");
  if (state)
    t->tracestate = sc_pb_sv(&c->arena, state);
  return t;
}

/* gRPC's name of the call's connection ("ipv4:127.0.0.1:54321"), in the call's arena. */
static const char *call_peer(struct sc_call *c)
{
  char *p = grpc_call_get_peer(c->call);
  const char *out = p ? sc_arena_strdup(&c->arena, p) : NULL;
  gpr_free(p);
  return out;
}

static void start_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  CreateInstanceResponse resp = CREATE_INSTANCE_RESPONSE__INIT;
  resp.instanceid = cmd->u.start.iid;
  sc_call_reply(c, 0, NULL, &resp.base);
}

static void h_start(struct sc_call *c)
{
  const CreateInstanceRequest *r = (void *)c->req;
  if (r->instanceid[0] && !sc_call_check_id(c, "instanceId", r->instanceid))
    return;
  if (sc_is_entity_id(r->instanceid)) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "instanceId: ids starting with '@' are entity ids (@name@key)");
    return;
  }
  if (!sc_call_check_name(c, "name", r->name, true))
    return;
  if (r->version && !sc_call_check_name(c, "version", r->version->value, false))
    return;
  if (r->executionid && r->executionid->value[0] && !sc_call_check_id(c, "executionId", r->executionid->value))
    return;
  if (!sc_call_check_payload(c, "input", r->input) || !sc_call_check_tags(c, r->n_tags, (void *const *)r->tags))
    return;
  const OrchestrationIdReusePolicy *p = r->orchestrationidreusepolicy;
  if (p) {
    bool live = false, terminated = false;
    for (size_t i = 0; i < p->n_replaceablestatus; i++) {
      int s = (int)p->replaceablestatus[i];
      if (!sc_call_valid_status(s)) {
        sc_call_reject(c, GRPC_INVALID_ARGUMENT, "orchestrationIdReusePolicy.replaceableStatus: unknown status %d", s);
        return;
      }
      live |= s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING ||
              s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING ||
              s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED;
      terminated |= s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED;
    }
    if ((int)p->action < 0 || (int)p->action > 2) {
      sc_call_reject(c, GRPC_INVALID_ARGUMENT, "orchestrationIdReusePolicy.action: unknown action %d", (int)p->action);
      return;
    }
    /* Replacing a live instance terminates it, so a policy that allows that must allow TERMINATED too. */
    if (p->action == 0 && live && !terminated) {
      /* The managed service's wording, which the JS SDK's tests expect. */
      sc_call_reject(c, GRPC_INVALID_ARGUMENT,
             "Invalid reusable statuses: cannot exclude 'Terminated' while also allowing reuse of running "
             "instances (orchestrationIdReusePolicy.replaceableStatus)");
      return;
    }
  }
  if (!r->parenttracecontext)
    ((CreateInstanceRequest *)r)->parenttracecontext = trace_from_metadata(c);
  c->cmd.kind = SC_CMD_START;
  c->cmd.u.start.req = r;
  sc_call_post(c, start_done);
}

/* Commands whose reply is an empty message of the given type. */
static void empty_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  /* All these responses are empty messages: an empty encoding serves every one of them. */
  Google__Protobuf__Empty resp = GOOGLE__PROTOBUF__EMPTY__INIT;
  sc_call_reply(c, 0, NULL, &resp.base);
}

static void h_raise(struct sc_call *c)
{
  const RaiseEventRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instanceid) ||
      !sc_call_check_name(c, "name", r->name, true) ||
      !sc_call_check_payload(c, "input", r->input))
    return;
  c->cmd.kind = SC_CMD_RAISE;
  c->cmd.u.raise.req = r;
  sc_call_post(c, empty_done);
}

static void h_terminate(struct sc_call *c)
{
  const TerminateRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instanceid) || !sc_call_check_payload(c, "output", r->output))
    return;
  c->cmd.kind = SC_CMD_TERMINATE;
  c->cmd.u.terminate.req = r;
  sc_call_post(c, empty_done);
}

static void suspend_common(struct sc_call *c, const char *iid,
                           const Google__Protobuf__StringValue *reason, bool resume)
{
  if (!sc_call_check_id(c, "instanceId", iid) || !sc_call_check_payload(c, "reason", reason))
    return;
  c->cmd.kind = resume ? SC_CMD_RESUME : SC_CMD_SUSPEND;
  c->cmd.u.suspend.iid = iid;
  /* An empty reason is left out of the event, as the SDKs expect. */
  c->cmd.u.suspend.reason = reason && reason->value[0] ? reason : NULL;
  sc_call_post(c, empty_done);
}

static void h_suspend(struct sc_call *c)
{
  const SuspendRequest *r = (void *)c->req;
  suspend_common(c, r->instanceid, r->reason, false);
}

static void h_resume(struct sc_call *c)
{
  const ResumeRequest *r = (void *)c->req;
  suspend_common(c, r->instanceid, r->reason, true);
}

/* ------------------------------------------------------------------ purge and task hub */

static void purge_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  PurgeInstancesResponse resp = PURGE_INSTANCES_RESPONSE__INIT;
  Google__Protobuf__BoolValue complete = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
  complete.value = cmd->u.purge.complete;
  resp.deletedinstancecount = cmd->u.purge.deleted;
  resp.iscomplete = &complete;
  if (cmd->u.purge.deleted)
    SC_INFO("event=purged count=%d complete=%d", cmd->u.purge.deleted, cmd->u.purge.complete);
  sc_call_reply(c, 0, NULL, &resp.base);
}

static void h_purge(struct sc_call *c)
{
  const PurgeInstancesRequest *r = (void *)c->req;
  int64_t deadline = 0;
  switch (r->request_case) {
  case PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID:
    if (!sc_call_check_id(c, "instanceId", r->instanceid))
      return;
    break;
  case PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_BATCH: {
    const InstanceBatch *b = r->instancebatch;
    if (b->n_instanceids > MAX_PURGE_BATCH) {
      sc_call_reject(c, GRPC_INVALID_ARGUMENT, "instanceBatch.instanceIds: %zu ids, at most %d per call",
             b->n_instanceids, MAX_PURGE_BATCH);
      return;
    }
    for (size_t i = 0; i < b->n_instanceids; i++)
      if (!sc_call_check_id(c, "instanceBatch.instanceIds", b->instanceids[i]))
        return;
    break;
  }
  case PURGE_INSTANCES_REQUEST__REQUEST_PURGE_INSTANCE_FILTER: {
    const PurgeInstanceFilter *f = r->purgeinstancefilter;
    for (size_t i = 0; i < f->n_runtimestatus; i++)
      if (!sc_call_valid_status((int)f->runtimestatus[i])) {
        sc_call_reject(c, GRPC_INVALID_ARGUMENT, "purgeInstanceFilter.runtimeStatus: unknown status %d",
               (int)f->runtimestatus[i]);
        return;
      }
    int64_t budget = sc_call_ctx(c)->cfg->purge_timeout_s * 1000000;
    if (f->timeout && (f->timeout->seconds > 0 || f->timeout->nanos > 0))
      budget = f->timeout->seconds * 1000000 + f->timeout->nanos / 1000;
    deadline = sc_now_us() + budget;
    break;
  }
  default:
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "request: one of instanceId, purgeInstanceFilter or instanceBatch is required");
    return;
  }
  c->cmd.kind = SC_CMD_PURGE;
  c->cmd.u.purge.req = r;
  c->cmd.u.purge.deadline_us = deadline;
  sc_call_post(c, purge_done);
}

static void h_create_hub(struct sc_call *c)
{
  const CreateTaskHubRequest *r = (void *)c->req;
  if (!r->recreateifexists) {
    /* The store always exists: creating the task hub is a no-op. */
    CreateTaskHubResponse resp = CREATE_TASK_HUB_RESPONSE__INIT;
    sc_call_reply(c, 0, NULL, &resp.base);
    return;
  }
  c->cmd.kind = SC_CMD_WIPE;
  c->cmd.u.wipe.recreate = true;
  sc_call_post(c, empty_done);
}

static void h_delete_hub(struct sc_call *c)
{
  c->cmd.kind = SC_CMD_WIPE;
  c->cmd.u.wipe.recreate = false;
  sc_call_post(c, empty_done);
}

/* ------------------------------------------------------------------ workers */

static void stream_send(void *ctx, uint8_t *buf, size_t len)
{
  sc_call_stream_push(ctx, buf, len);
}

static bool stream_ready(void *ctx, size_t cap)
{
  return sc_call_stream_ready(ctx, cap);
}

static void stream_open_done(struct sc_cmd *cmd)
{
  /* A stopping or overloaded engine (--max-queued-commands) refuses a stream; the close that follows releases the
   * engine's reference. */
  if (cmd->err.code != SC_OK)
    sc_call_stream_end(cmd->user, sc_status_to_grpc(cmd->err.code), cmd->err.msg);
}

static void h_get_work_items(struct sc_call *c)
{
  const GetWorkItemsRequest *r = (void *)c->req;
  if (r->maxconcurrentorchestrationworkitems < 0 || r->maxconcurrentactivityworkitems < 0 ||
      r->maxconcurrententityworkitems < 0) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "maxConcurrent*WorkItems: must not be negative");
    return;
  }
  sc_call_stream_begin(c, true);
  atomic_fetch_add(&c->refs, 1); /* held by the engine until the stream is closed */
  c->cmd.kind = SC_CMD_STREAM_OPEN;
  c->cmd.u.stream_open.req = r;
  c->cmd.u.stream_open.send = stream_send;
  c->cmd.u.stream_open.ready = stream_ready;
  c->cmd.u.stream_open.ctx = c;
  c->cmd.u.stream_open.peer = call_peer(c);
  sc_call_post(c, stream_open_done);
}

static void h_complete_orch(struct sc_call *c)
{
  const OrchestratorResponse *r = (void *)c->req;
  if (!r->completiontoken[0] && !r->instanceid[0]) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "completionToken: required (or instanceId, for clients without tokens)");
    return;
  }
  if (r->instanceid[0] && !sc_call_check_id(c, "instanceId", r->instanceid))
    return;
  /* Sizes and the actions themselves are the engine's to judge: what it cannot accept fails the orchestration
   * with the reason, where refusing the call would leave the work item to be redelivered for ever. */
  c->cmd.kind = SC_CMD_COMPLETE_ORCH;
  c->cmd.u.complete_orch.resp = r;
  c->cmd.u.complete_orch.peer = r->completiontoken[0] ? NULL : call_peer(c);
  sc_call_post(c, empty_done); /* CompleteTaskResponse is empty too */
}

static void h_complete_act(struct sc_call *c)
{
  const ActivityResponse *r = (void *)c->req;
  if (!r->completiontoken[0] && !r->instanceid[0]) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "completionToken: required (or instanceId and taskId, for clients without tokens)");
    return;
  }
  if (r->instanceid[0] && !sc_call_check_id(c, "instanceId", r->instanceid))
    return;
  /* A result over the payload limit fails the task in the engine, with the reason. */
  c->cmd.kind = SC_CMD_COMPLETE_ACT;
  c->cmd.u.complete_act.resp = r;
  c->cmd.u.complete_act.peer = r->completiontoken[0] ? NULL : call_peer(c);
  sc_call_post(c, empty_done);
}

static void abandon_common(struct sc_call *c, const char *token, enum sc_abandon_kind kind)
{
  if (!token[0]) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "completionToken: must not be empty");
    return;
  }
  c->cmd.kind = SC_CMD_ABANDON;
  c->cmd.u.abandon.token = token;
  c->cmd.u.abandon.kind = kind;
  sc_call_post(c, empty_done);
}

static void h_abandon_orch(struct sc_call *c)
{
  abandon_common(c, ((const AbandonOrchestrationTaskRequest *)(void *)c->req)->completiontoken, SC_ABANDON_ORCH);
}

static void h_abandon_act(struct sc_call *c)
{
  abandon_common(c, ((const AbandonActivityTaskRequest *)(void *)c->req)->completiontoken, SC_ABANDON_ACT);
}

static void h_abandon_entity(struct sc_call *c)
{
  abandon_common(c, ((const AbandonEntityTaskRequest *)(void *)c->req)->completiontoken, SC_ABANDON_ENTITY);
}

static void h_rewind(struct sc_call *c)
{
  const RewindInstanceRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instanceid) || !sc_call_check_payload(c, "reason", r->reason))
    return;
  c->cmd.kind = SC_CMD_REWIND;
  c->cmd.u.rewind.req = r;
  sc_call_post(c, empty_done);
}

static void restart_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  RestartInstanceResponse resp = RESTART_INSTANCE_RESPONSE__INIT;
  resp.instanceid = cmd->u.restart.iid;
  sc_call_reply(c, 0, NULL, &resp.base);
}

static void h_restart(struct sc_call *c)
{
  const RestartInstanceRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instanceid))
    return;
  c->cmd.kind = SC_CMD_RESTART;
  c->cmd.u.restart.req = r;
  sc_call_post(c, restart_done);
}

#define SVC "/TaskHubSidecarService/"

struct sc_method sc_methods[] = {
    {SVC "Hello", &google__protobuf__empty__descriptor, h_hello, 4, NULL, 0},
    {SVC "StartInstance", &create_instance_request__descriptor, h_start, 64, NULL, 0},
    {SVC "GetInstance", &get_instance_request__descriptor, sc_h_get_instance, 16, NULL, 0},
    {SVC "WaitForInstanceStart", &get_instance_request__descriptor, sc_h_wait_start, 16, NULL, 0},
    {SVC "WaitForInstanceCompletion", &get_instance_request__descriptor, sc_h_wait_completion, 64, NULL, 0},
    {SVC "RaiseEvent", &raise_event_request__descriptor, h_raise, 32, NULL, 0},
    {SVC "TerminateInstance", &terminate_request__descriptor, h_terminate, 16, NULL, 0},
    {SVC "SuspendInstance", &suspend_request__descriptor, h_suspend, 8, NULL, 0},
    {SVC "ResumeInstance", &resume_request__descriptor, h_resume, 8, NULL, 0},
    {SVC "QueryInstances", &query_instances_request__descriptor, sc_h_query_instances, 8, NULL, 0},
    {SVC "ListInstanceIds", &list_instance_ids_request__descriptor, sc_h_list_instance_ids, 8, NULL, 0},
    {SVC "PurgeInstances", &purge_instances_request__descriptor, h_purge, 8, NULL, 0},
    {SVC "CreateTaskHub", &create_task_hub_request__descriptor, h_create_hub, 2, NULL, 0},
    {SVC "DeleteTaskHub", &delete_task_hub_request__descriptor, h_delete_hub, 2, NULL, 0},
    {SVC "GetWorkItems", &get_work_items_request__descriptor, h_get_work_items, 4, NULL, 0},
    {SVC "CompleteOrchestratorTask", &orchestrator_response__descriptor, h_complete_orch, 64, NULL, 0},
    {SVC "CompleteActivityTask", &activity_response__descriptor, h_complete_act, 64, NULL, 0},
    {SVC "AbandonTaskOrchestratorWorkItem", &abandon_orchestration_task_request__descriptor, h_abandon_orch, 4,
     NULL, 0},
    {SVC "AbandonTaskActivityWorkItem", &abandon_activity_task_request__descriptor, h_abandon_act, 4, NULL, 0},
    {SVC "AbandonTaskEntityWorkItem", &abandon_entity_task_request__descriptor, h_abandon_entity, 2, NULL, 0},
    {SVC "RewindInstance", &rewind_instance_request__descriptor, h_rewind, 4, NULL, 0},
    {SVC "RestartInstance", &restart_instance_request__descriptor, h_restart, 4, NULL, 0},
    {SVC "StreamInstanceHistory", &stream_instance_history_request__descriptor, sc_h_stream_history, 4, NULL, 0},
    {SVC "SignalEntity", &signal_entity_request__descriptor, sc_h_signal_entity, 16, NULL, 0},
    {SVC "GetEntity", &get_entity_request__descriptor, sc_h_get_entity, 8, NULL, 0},
    {SVC "QueryEntities", &query_entities_request__descriptor, sc_h_query_entities, 4, NULL, 0},
    {SVC "CleanEntityStorage", &clean_entity_storage_request__descriptor, sc_h_clean_entities, 2, NULL, 0},
    {SVC "CompleteEntityTask", &entity_batch_result__descriptor, sc_h_complete_entity, 16, NULL, 0},
    {"/taskhubd.admin.Admin/GetServerInfo", &taskhubd__admin__server_info_request__descriptor, sc_h_server_info, 2,
     NULL, 0},
    {"/taskhubd.admin.Admin/ListPendingMessages", &taskhubd__admin__pending_messages_request__descriptor,
     sc_h_pending_messages, 2, NULL, 0},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor, h_health, 4, NULL, 0},
    /* Last, so that the fuzz corpus's method bytes keep naming the methods before it. */
    {"/taskhubd.admin.Admin/QueryInstancesReversed", &query_instances_request__descriptor,
     sc_h_query_instances_reversed, 8, NULL, 0},
    {"/taskhubd.admin.Admin/ExplainInstance", &taskhubd__admin__explain_instance_request__descriptor,
     sc_h_explain_instance, 2, NULL, 0},
};

const size_t sc_n_methods = sizeof sc_methods / sizeof sc_methods[0];
