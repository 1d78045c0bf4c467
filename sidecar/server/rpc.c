/*
 * The RPC handlers: validate each decoded request (naming the offending field), then either read the store
 * directly (GetInstance, QueryInstances, ListInstanceIds) or post a command to the engine and reply from its
 * done callback, after the commit.
 */
#include "call.h"
#include "common/log.h"
#include "common/pbutil.h"
#include "common/util.h"
#include "limits/limits.h"
#include "google/protobuf/empty.pb-c.h"
#include "health.pb-c.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define GRPC_RESOURCE_EXHAUSTED 8
#define MAX_PAGE 1000
#define DEFAULT_PAGE 100
#define MAX_PURGE_BATCH 500

/* ------------------------------------------------------------------ validation */

static bool reject(struct sc_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool reject(struct sc_call *c, int code, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sc_call_reply(c, code, msg, NULL);
  return false;
}

/* The limits layer's checks, answering the call when one fails. */
static bool check(struct sc_call *c, bool ok, const struct sc_err *err)
{
  if (!ok)
    sc_call_reply_err(c, err);
  return ok;
}

static const struct sc_limits *limits(struct sc_call *c)
{
  return &sc_call_ctx(c)->limits;
}

static bool check_id(struct sc_call *c, const char *field, const char *v)
{
  struct sc_err err;
  return check(c, sc_check_id(limits(c), field, v, &err), &err);
}

static bool check_name(struct sc_call *c, const char *field, const char *v, bool required)
{
  struct sc_err err;
  return check(c, sc_check_name(limits(c), field, v, required, &err), &err);
}

static bool check_payload(struct sc_call *c, const char *field, const Google__Protobuf__StringValue *v)
{
  struct sc_err err;
  return check(c, sc_check_payload(limits(c), field, v ? v->value : NULL, &err), &err);
}

static bool check_tags(struct sc_call *c, size_t n, void *const *tags)
{
  struct sc_err err;
  return check(c, sc_check_tags(limits(c), "tags", n, tags, &err), &err);
}

static bool valid_status(int s)
{
  return s >= ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING &&
         s <= ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED;
}

/* ------------------------------------------------------------------ state */

static Google__Protobuf__StringValue *payload(struct sc_arena *a, struct sc_store *st,
                                              const char *iid, int kind)
{
  char *data;
  size_t len;
  if (st->ops->get_payload(st, false, iid, kind, a, &data, &len) != SC_OK)
    return NULL;
  return sc_pb_sv(a, data);
}

static OrchestrationState *build_state(struct sc_arena *a, struct sc_store *st,
                                       const char *iid, const StoredInstance *r,
                                       bool payloads)
{
  OrchestrationState *s = sc_arena_alloc(a, sizeof *s);
  orchestration_state__init(s);
  s->instanceid = (char *)iid;
  s->name = r->name;
  if (r->has_version)
    s->version = sc_pb_sv(a, r->version);
  s->orchestrationstatus = r->status;
  if (r->scheduled_start_us)
    s->scheduledstarttimestamp = sc_pb_ts(a, r->scheduled_start_us);
  s->createdtimestamp = sc_pb_ts(a, r->created_us);
  s->lastupdatedtimestamp = sc_pb_ts(a, r->last_updated_us);
  if (r->execution_id[0])
    s->executionid = sc_pb_sv(a, r->execution_id);
  if (r->completed_us)
    s->completedtimestamp = sc_pb_ts(a, r->completed_us);
  if (r->parent_instance_id[0])
    s->parentinstanceid = sc_pb_sv(a, r->parent_instance_id);
  s->n_tags = r->n_tags;
  s->tags = sc_pb_copy_tags(a, &orchestration_state__tags_entry__descriptor, r->n_tags, (void *const *)r->tags);
  if (r->status == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED)
    s->failuredetails = r->failure_details;
  if (payloads) {
    if (r->has_input)
      s->input = payload(a, st, iid, SC_PAYLOAD_INPUT);
    if (r->has_output)
      s->output = payload(a, st, iid, SC_PAYLOAD_OUTPUT);
    if (r->has_custom_status)
      s->customstatus = payload(a, st, iid, SC_PAYLOAD_CUSTOM_STATUS);
  }
  return s;
}

/* Replies with GetInstanceResponse for |iid| as committed now. */
static void reply_instance(struct sc_call *c, const char *iid, bool payloads)
{
  struct sc_store *st = sc_call_ctx(c)->store;
  GetInstanceResponse resp = GET_INSTANCE_RESPONSE__INIT;
  StoredInstance *rec;
  int rc = st->ops->get_instance(st, false, iid, &c->arena, &rec);
  if (rc == SC_OK) {
    resp.exists = true;
    resp.orchestrationstate = build_state(&c->arena, st, iid, rec, payloads);
  } else if (rc != SC_ENOTFOUND) {
    struct sc_err err;
    sc_err_set(&err, rc, "reading instance %s failed", iid);
    sc_call_reply_err(c, &err);
    return;
  }
  sc_call_reply(c, 0, NULL, &resp.base);
}

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
    reject(c, GRPC_NOT_FOUND, "unknown service %s", r->service);
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
  if (r->instanceid[0] && !check_id(c, "instanceId", r->instanceid))
    return;
  if (!check_name(c, "name", r->name, true))
    return;
  if (r->version && !check_name(c, "version", r->version->value, false))
    return;
  if (r->executionid && r->executionid->value[0] && !check_id(c, "executionId", r->executionid->value))
    return;
  if (!check_payload(c, "input", r->input) || !check_tags(c, r->n_tags, (void *const *)r->tags))
    return;
  const OrchestrationIdReusePolicy *p = r->orchestrationidreusepolicy;
  if (p) {
    bool live = false, terminated = false;
    for (size_t i = 0; i < p->n_replaceablestatus; i++) {
      int s = (int)p->replaceablestatus[i];
      if (!valid_status(s)) {
        reject(c, GRPC_INVALID_ARGUMENT, "orchestrationIdReusePolicy.replaceableStatus: unknown status %d", s);
        return;
      }
      live |= s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING ||
              s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING ||
              s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED;
      terminated |= s == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED;
    }
    if ((int)p->action < 0 || (int)p->action > 2) {
      reject(c, GRPC_INVALID_ARGUMENT, "orchestrationIdReusePolicy.action: unknown action %d", (int)p->action);
      return;
    }
    /* Replacing a live instance terminates it, so a policy that allows that must allow TERMINATED too. */
    if (p->action == 0 && live && !terminated) {
      /* The managed service's wording, which the JS SDK's tests expect. */
      reject(c, GRPC_INVALID_ARGUMENT,
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

static void h_get(struct sc_call *c)
{
  const GetInstanceRequest *r = (void *)c->req;
  if (!check_id(c, "instanceId", r->instanceid))
    return;
  reply_instance(c, r->instanceid, r->getinputsandoutputs);
}

static void wait_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  atomic_store(&c->waiting, false);
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  const GetInstanceRequest *r = (void *)c->req;
  if (!cmd->u.wait.exists) {
    GetInstanceResponse resp = GET_INSTANCE_RESPONSE__INIT;
    sc_call_reply(c, 0, NULL, &resp.base);
    return;
  }
  reply_instance(c, r->instanceid, r->getinputsandoutputs);
}

static void wait_common(struct sc_call *c, bool completion)
{
  const GetInstanceRequest *r = (void *)c->req;
  if (!check_id(c, "instanceId", r->instanceid))
    return;
  int64_t dl = sc_call_deadline_us(c);
  c->cmd.kind = SC_CMD_WAIT;
  c->cmd.u.wait.iid = r->instanceid;
  c->cmd.u.wait.completion = completion;
  c->cmd.u.wait.deadline_us = dl < 0 ? 0 : dl;
  atomic_store(&c->waiting, true);
  sc_call_watch_cancel(c);
  sc_call_post(c, wait_done);
}

static void h_wait_start(struct sc_call *c)
{
  wait_common(c, false);
}

static void h_wait_completion(struct sc_call *c)
{
  wait_common(c, true);
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
  if (!check_id(c, "instanceId", r->instanceid) ||
      !check_name(c, "name", r->name, true) ||
      !check_payload(c, "input", r->input))
    return;
  c->cmd.kind = SC_CMD_RAISE;
  c->cmd.u.raise.req = r;
  sc_call_post(c, empty_done);
}

static void h_terminate(struct sc_call *c)
{
  const TerminateRequest *r = (void *)c->req;
  if (!check_id(c, "instanceId", r->instanceid) || !check_payload(c, "output", r->output))
    return;
  c->cmd.kind = SC_CMD_TERMINATE;
  c->cmd.u.terminate.req = r;
  sc_call_post(c, empty_done);
}

static void suspend_common(struct sc_call *c, const char *iid,
                           const Google__Protobuf__StringValue *reason, bool resume)
{
  if (!check_id(c, "instanceId", iid) || !check_payload(c, "reason", reason))
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

/* ------------------------------------------------------------------ queries */

static bool collect_statuses(struct sc_call *c, const char *field, size_t n,
                             const OrchestrationStatus *in, int *out,
                             size_t *nout)
{
  *nout = 0;
  for (size_t i = 0; i < n; i++) {
    int s = (int)in[i];
    if (!valid_status(s))
      return reject(c, GRPC_INVALID_ARGUMENT, "%s: unknown status %d", field, s);
    bool dup = false;
    for (size_t j = 0; j < *nout; j++)
      dup |= out[j] == s;
    if (!dup)
      out[(*nout)++] = s;
  }
  return true;
}

static size_t page_size(int32_t asked)
{
  if (asked <= 0)
    return DEFAULT_PAGE;
  return asked > MAX_PAGE ? MAX_PAGE : (size_t)asked;
}

/*
 * Continuation tokens: "t" + 16 hex digits of the index time + the instance id (index order), or
 * "p" + the instance id (prefix queries, id order). Both grow strictly from page to page, so a token never
 * repeats and is never "0".
 */
static char *encode_cursor(struct sc_arena *a, bool prefix_mode,
                           const unsigned char *cur, size_t n)
{
  if (prefix_mode)
    return sc_arena_printf(a, "p%.*s", (int)n, (const char *)cur);
  char hex[17];
  sc_hex_encode(cur, 8, hex);
  return sc_arena_printf(a, "t%s%.*s", hex, (int)(n - 8), (const char *)cur + 8);
}

static bool decode_cursor(struct sc_call *c, const char *field, const char *tok,
                          bool prefix_mode, unsigned char *out, size_t *n)
{
  size_t len = strlen(tok);
  if (len > SC_MAX_ID + 20)
    return reject(c, GRPC_INVALID_ARGUMENT, "%s: too long", field);
  if (prefix_mode && tok[0] == 'p') {
    memcpy(out, tok + 1, len - 1);
    *n = len - 1;
    return true;
  }
  size_t hn;
  if (!prefix_mode && tok[0] == 't' && len >= 17 && sc_hex_decode(tok + 1, 16, out, &hn) == 0) {
    memcpy(out + 8, tok + 17, len - 17);
    *n = 8 + len - 17;
    return true;
  }
  return reject(c, GRPC_INVALID_ARGUMENT, "%s: not a token this server issued for this query", field);
}

static void h_query(struct sc_call *c)
{
  const QueryInstancesRequest *r = (void *)c->req;
  static const InstanceQuery empty = INSTANCE_QUERY__INIT;
  const InstanceQuery *q = r->query ? r->query : &empty;
  int statuses[16];
  struct sc_query sq = {.index = SC_Q_CREATED, .statuses = statuses};
  if (!collect_statuses(c, "query.runtimeStatus", q->n_runtimestatus, q->runtimestatus, statuses,
                        &sq.n_statuses))
    return;
  if (q->maxinstancecount < 0) {
    reject(c, GRPC_INVALID_ARGUMENT, "query.maxInstanceCount: must not be negative");
    return;
  }
  sq.page_size = page_size(q->maxinstancecount);
  if (q->instanceidprefix && q->instanceidprefix->value[0]) {
    struct sc_err err;
    if (!check(c, sc_check_text("query.instanceIdPrefix", q->instanceidprefix->value, limits(c)->max_id, false,
                                &err), &err))
      return;
    sq.prefix = q->instanceidprefix->value;
  }
  sq.has_from = q->createdtimefrom != NULL;
  sq.from_us = sq.has_from ? sc_pb_ts_us(q->createdtimefrom) : 0;
  sq.has_to = q->createdtimeto != NULL;
  sq.to_us = sq.has_to ? sc_pb_ts_us(q->createdtimeto) : 0;
  bool prefix_mode = sq.prefix != NULL;
  unsigned char cur[SC_KEY_MAX];
  if (q->continuationtoken && q->continuationtoken->value[0]) {
    if (!decode_cursor(c, "query.continuationToken", q->continuationtoken->value, prefix_mode, cur,
                       &sq.cursor_len))
      return;
    sq.cursor = cur;
  }
  struct sc_store *st = sc_call_ctx(c)->store;
  struct sc_query_page page;
  struct sc_err err;
  if (st->ops->query(st, &sq, &c->arena, &page, &err) != SC_OK) {
    sc_call_reply_err(c, &err);
    return;
  }
  QueryInstancesResponse resp = QUERY_INSTANCES_RESPONSE__INIT;
  resp.orchestrationstate = sc_arena_alloc(&c->arena, (page.n ? page.n : 1) * sizeof(OrchestrationState *));
  /* With payloads a page could outgrow the message limit: end it early, and the token resumes after the
   * last state sent. */
  size_t budget = sc_call_ctx(c)->cfg->max_message / 2, used = 0;
  for (size_t i = 0; i < page.n; i++) {
    OrchestrationState *s = build_state(&c->arena, st, page.rows[i].iid, page.rows[i].rec,
                                        q->fetchinputsandoutputs);
    used += orchestration_state__get_packed_size(s);
    if (i > 0 && used > budget) {
      const struct sc_query_row *last = &page.rows[i - 1];
      size_t il = strlen(last->iid);
      if (prefix_mode) {
        memcpy(cur, last->iid, il);
        page.next_cursor_len = il;
      } else {
        sc_key_ts(cur, last->rec->created_us);
        memcpy(cur + 8, last->iid, il);
        page.next_cursor_len = 8 + il;
      }
      page.next_cursor = cur;
      break;
    }
    resp.orchestrationstate[resp.n_orchestrationstate++] = s;
  }
  if (page.next_cursor)
    resp.continuationtoken =
        sc_pb_sv(&c->arena, encode_cursor(&c->arena, prefix_mode, page.next_cursor, page.next_cursor_len));
  sc_call_reply(c, 0, NULL, &resp.base);
}

static void h_list_ids(struct sc_call *c)
{
  const ListInstanceIdsRequest *r = (void *)c->req;
  int asked[16], statuses[16];
  size_t nasked;
  if (!collect_statuses(c, "runtimeStatus", r->n_runtimestatus, r->runtimestatus, asked, &nasked))
    return;
  if (r->pagesize < 0) {
    reject(c, GRPC_INVALID_ARGUMENT, "pageSize: must not be negative");
    return;
  }
  struct sc_query sq = {.index = SC_Q_COMPLETED, .statuses = statuses, .page_size = page_size(r->pagesize)};
  /* Only finished instances have a completion time; asking for live statuses alone matches nothing. */
  for (size_t i = 0; i < nasked; i++)
    if (sc_status_is_terminal(asked[i]))
      statuses[sq.n_statuses++] = asked[i];
  ListInstanceIdsResponse resp = LIST_INSTANCE_IDS_RESPONSE__INIT;
  if (nasked > 0 && sq.n_statuses == 0) {
    sc_call_reply(c, 0, NULL, &resp.base);
    return;
  }
  sq.has_from = r->completedtimefrom != NULL;
  sq.from_us = sq.has_from ? sc_pb_ts_us(r->completedtimefrom) : 0;
  sq.has_to = r->completedtimeto != NULL;
  sq.to_us = sq.has_to ? sc_pb_ts_us(r->completedtimeto) : 0;
  unsigned char cur[SC_KEY_MAX];
  if (r->lastinstancekey && r->lastinstancekey->value[0]) {
    /* "<16 hex digits of the completion time>:<instance id>" */
    const char *k = r->lastinstancekey->value;
    size_t len = strlen(k), hn;
    if (len < 18 || k[16] != ':' || len - 17 > SC_MAX_ID || sc_hex_decode(k, 16, cur, &hn) != 0) {
      reject(c, GRPC_INVALID_ARGUMENT, "lastInstanceKey: not a key this server issued");
      return;
    }
    memcpy(cur + 8, k + 17, len - 17);
    sq.cursor = cur;
    sq.cursor_len = 8 + len - 17;
  }
  struct sc_store *st = sc_call_ctx(c)->store;
  struct sc_query_page page;
  struct sc_err err;
  if (st->ops->query(st, &sq, &c->arena, &page, &err) != SC_OK) {
    sc_call_reply_err(c, &err);
    return;
  }
  resp.n_instanceids = page.n;
  resp.instanceids = sc_arena_alloc(&c->arena, (page.n ? page.n : 1) * sizeof(char *));
  for (size_t i = 0; i < page.n; i++)
    resp.instanceids[i] = page.rows[i].iid;
  if (page.next_cursor) {
    char hex[17];
    sc_hex_encode(page.next_cursor, 8, hex);
    resp.lastinstancekey = sc_pb_sv(&c->arena, sc_arena_printf(&c->arena, "%s:%.*s", hex,
                                                               (int)(page.next_cursor_len - 8),
                                                               (const char *)page.next_cursor + 8));
  }
  sc_call_reply(c, 0, NULL, &resp.base);
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
    if (!check_id(c, "instanceId", r->instanceid))
      return;
    break;
  case PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_BATCH: {
    const InstanceBatch *b = r->instancebatch;
    if (b->n_instanceids > MAX_PURGE_BATCH) {
      reject(c, GRPC_INVALID_ARGUMENT, "instanceBatch.instanceIds: %zu ids, at most %d per call",
             b->n_instanceids, MAX_PURGE_BATCH);
      return;
    }
    for (size_t i = 0; i < b->n_instanceids; i++)
      if (!check_id(c, "instanceBatch.instanceIds", b->instanceids[i]))
        return;
    break;
  }
  case PURGE_INSTANCES_REQUEST__REQUEST_PURGE_INSTANCE_FILTER: {
    const PurgeInstanceFilter *f = r->purgeinstancefilter;
    for (size_t i = 0; i < f->n_runtimestatus; i++)
      if (!valid_status((int)f->runtimestatus[i])) {
        reject(c, GRPC_INVALID_ARGUMENT, "purgeInstanceFilter.runtimeStatus: unknown status %d",
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
    reject(c, GRPC_INVALID_ARGUMENT, "request: one of instanceId, purgeInstanceFilter or instanceBatch is required");
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
  /* Only a stopping engine refuses a stream; the close that follows releases the engine's reference. */
  if (cmd->err.code != SC_OK)
    sc_call_stream_end(cmd->user, sc_status_to_grpc(cmd->err.code), cmd->err.msg);
}

static void h_get_work_items(struct sc_call *c)
{
  const GetWorkItemsRequest *r = (void *)c->req;
  if (r->maxconcurrentorchestrationworkitems < 0 || r->maxconcurrentactivityworkitems < 0 ||
      r->maxconcurrententityworkitems < 0) {
    reject(c, GRPC_INVALID_ARGUMENT, "maxConcurrent*WorkItems: must not be negative");
    return;
  }
  sc_call_stream_begin(c, true);
  atomic_fetch_add(&c->refs, 1); /* held by the engine until the stream is closed */
  c->cmd.kind = SC_CMD_STREAM_OPEN;
  c->cmd.u.stream_open.req = r;
  c->cmd.u.stream_open.send = stream_send;
  c->cmd.u.stream_open.ready = stream_ready;
  c->cmd.u.stream_open.ctx = c;
  sc_call_post(c, stream_open_done);
}

static void h_complete_orch(struct sc_call *c)
{
  const OrchestratorResponse *r = (void *)c->req;
  if (!r->completiontoken[0] && !r->instanceid[0]) {
    reject(c, GRPC_INVALID_ARGUMENT, "completionToken: required (or instanceId, for clients without tokens)");
    return;
  }
  if (r->instanceid[0] && !check_id(c, "instanceId", r->instanceid))
    return;
  /* Sizes and the actions themselves are the engine's to judge: what it cannot accept fails the orchestration
   * with the reason, where refusing the call would leave the work item to be redelivered for ever. */
  c->cmd.kind = SC_CMD_COMPLETE_ORCH;
  c->cmd.u.complete_orch.resp = r;
  sc_call_post(c, empty_done); /* CompleteTaskResponse is empty too */
}

static void h_complete_act(struct sc_call *c)
{
  const ActivityResponse *r = (void *)c->req;
  if (!r->completiontoken[0] && !r->instanceid[0]) {
    reject(c, GRPC_INVALID_ARGUMENT, "completionToken: required (or instanceId and taskId, for clients without tokens)");
    return;
  }
  if (r->instanceid[0] && !check_id(c, "instanceId", r->instanceid))
    return;
  /* A result over the payload limit fails the task in the engine, with the reason. */
  c->cmd.kind = SC_CMD_COMPLETE_ACT;
  c->cmd.u.complete_act.resp = r;
  sc_call_post(c, empty_done);
}

static void abandon_common(struct sc_call *c, const char *token, enum sc_abandon_kind kind)
{
  if (!token[0]) {
    reject(c, GRPC_INVALID_ARGUMENT, "completionToken: must not be empty");
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
  if (!check_id(c, "instanceId", r->instanceid) || !check_payload(c, "reason", r->reason))
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
  if (!check_id(c, "instanceId", r->instanceid))
    return;
  c->cmd.kind = SC_CMD_RESTART;
  c->cmd.u.restart.req = r;
  sc_call_post(c, restart_done);
}

/* Chunks of at most this many events or about this many bytes. */
#define CHUNK_EVENTS 500
#define CHUNK_BYTES (1u << 20)

static void push_chunk(struct sc_call *c, HistoryEvent **evs, size_t n)
{
  HistoryChunk ch = HISTORY_CHUNK__INIT;
  ch.n_events = n;
  ch.events = evs;
  size_t len = history_chunk__get_packed_size(&ch);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    sc_panic("out of memory");
  history_chunk__pack(&ch, buf);
  sc_call_stream_push(c, buf, len);
}

static void h_stream_history(struct sc_call *c)
{
  const StreamInstanceHistoryRequest *r = (void *)c->req;
  if (!check_id(c, "instanceId", r->instanceid))
    return;
  struct sc_store *st = sc_call_ctx(c)->store;
  StoredInstance *rec;
  int rc = st->ops->get_instance(st, false, r->instanceid, &c->arena, &rec);
  if (rc == SC_ENOTFOUND ||
      (rc == SC_OK && r->executionid && r->executionid->value[0] &&
       strcmp(r->executionid->value, rec->execution_id) != 0)) {
    reject(c, GRPC_NOT_FOUND, "instance not found: %s%s%s", r->instanceid,
           rc == SC_OK ? " with execution " : "", rc == SC_OK ? r->executionid->value : "");
    return;
  }
  HistoryEvent **h = NULL;
  size_t n = 0;
  if (rc == SC_OK)
    rc = st->ops->history_load(st, false, r->instanceid, &c->arena, &h, &n);
  if (rc != SC_OK) {
    struct sc_err err;
    sc_err_set(&err, rc, "reading the history of %s failed", r->instanceid);
    sc_call_reply_err(c, &err);
    return;
  }
  sc_call_stream_begin(c, false);
  size_t start = 0, bytes = 0;
  for (size_t i = 0; i < n; i++) {
    size_t sz = history_event__get_packed_size(h[i]) + 8;
    if (i > start && (i - start == CHUNK_EVENTS || bytes + sz > CHUNK_BYTES)) {
      push_chunk(c, h + start, i - start);
      start = i;
      bytes = 0;
    }
    bytes += sz;
  }
  if (n > start)
    push_chunk(c, h + start, n - start);
  sc_call_stream_end(c, 0, NULL);
}

#define SVC "/TaskHubSidecarService/"

struct sc_method sc_methods[] = {
    {SVC "Hello", &google__protobuf__empty__descriptor, h_hello, 4, NULL, 0},
    {SVC "StartInstance", &create_instance_request__descriptor, h_start, 64, NULL, 0},
    {SVC "GetInstance", &get_instance_request__descriptor, h_get, 16, NULL, 0},
    {SVC "WaitForInstanceStart", &get_instance_request__descriptor, h_wait_start, 16, NULL, 0},
    {SVC "WaitForInstanceCompletion", &get_instance_request__descriptor, h_wait_completion, 64, NULL, 0},
    {SVC "RaiseEvent", &raise_event_request__descriptor, h_raise, 32, NULL, 0},
    {SVC "TerminateInstance", &terminate_request__descriptor, h_terminate, 16, NULL, 0},
    {SVC "SuspendInstance", &suspend_request__descriptor, h_suspend, 8, NULL, 0},
    {SVC "ResumeInstance", &resume_request__descriptor, h_resume, 8, NULL, 0},
    {SVC "QueryInstances", &query_instances_request__descriptor, h_query, 8, NULL, 0},
    {SVC "ListInstanceIds", &list_instance_ids_request__descriptor, h_list_ids, 8, NULL, 0},
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
    {SVC "StreamInstanceHistory", &stream_instance_history_request__descriptor, h_stream_history, 4, NULL, 0},
    {"/grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor, h_health, 4, NULL, 0},
};

const size_t sc_n_methods = sizeof sc_methods / sizeof sc_methods[0];
