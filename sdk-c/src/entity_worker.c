/*
 * The entity executor: one entity work item (a batch of operations for one entity) run operation by operation
 * through the registered entity function. Each operation starts from the state the previous one left; a failed
 * one is rolled back (its state change, signals and orchestration starts), and the batch goes on. The answer has
 * one result per operation, the final state and the actions of the operations that succeeded.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dt_entity_ctx {
  dt__arena arena;
  const char *id, *name, *key;
  const char *state; /* NULL: none */
  bool failed;
  const char *error_type, *message;
  OperationAction **actions;
  size_t n_actions, cap_actions;
  bool oom;
};

static char *edup(dt_entity_ctx *ctx, const char *s)
{
  if (!s)
    return NULL;
  char *p = dt__arena_strdup(&ctx->arena, s);
  if (!p)
    ctx->oom = true;
  return p;
}

static void *ealloc(dt_entity_ctx *ctx, size_t n)
{
  void *p = dt__arena_alloc(&ctx->arena, n ? n : 1);
  if (!p) {
    ctx->oom = true;
    return NULL;
  }
  memset(p, 0, n ? n : 1);
  return p;
}

static Google__Protobuf__StringValue *esv(dt_entity_ctx *ctx, const char *s)
{
  if (!s)
    return NULL;
  Google__Protobuf__StringValue *v = ealloc(ctx, sizeof *v);
  if (!v)
    return NULL;
  google__protobuf__string_value__init(v);
  v->value = edup(ctx, s);
  return v->value ? v : NULL;
}

static Google__Protobuf__Timestamp *ets(dt_entity_ctx *ctx, int64_t ms)
{
  Google__Protobuf__Timestamp *t = ealloc(ctx, sizeof *t);
  if (!t)
    return NULL;
  google__protobuf__timestamp__init(t);
  t->seconds = ms / 1000;
  t->nanos = (int32_t)((ms % 1000) * 1000000);
  return t;
}

const char *dt_entity_id(const dt_entity_ctx *ctx)
{
  return ctx->id;
}

const char *dt_entity_name(const dt_entity_ctx *ctx)
{
  return ctx->name;
}

const char *dt_entity_key(const dt_entity_ctx *ctx)
{
  return ctx->key;
}

const char *dt_entity_state(const dt_entity_ctx *ctx)
{
  return ctx->state;
}

void dt_entity_set_state(dt_entity_ctx *ctx, const char *state)
{
  ctx->state = edup(ctx, state);
}

void dt_entity_delete_state(dt_entity_ctx *ctx)
{
  ctx->state = NULL;
}

void dt_entity_fail(dt_entity_ctx *ctx, const char *error_type, const char *message)
{
  ctx->failed = true;
  ctx->error_type = edup(ctx, error_type && *error_type ? error_type : "Error");
  ctx->message = edup(ctx, message ? message : "");
}

char *dt_entity_printf(dt_entity_ctx *ctx, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *p = dt__arena_vprintf(&ctx->arena, fmt, ap);
  va_end(ap);
  if (!p)
    ctx->oom = true;
  return p;
}

void *dt_entity_alloc(dt_entity_ctx *ctx, size_t n)
{
  return ealloc(ctx, n);
}

static OperationAction *new_op_action(dt_entity_ctx *ctx)
{
  if (ctx->n_actions == ctx->cap_actions) {
    size_t cap = ctx->cap_actions ? ctx->cap_actions * 2 : 8;
    OperationAction **a = ealloc(ctx, cap * sizeof *a);
    if (!a)
      return NULL;
    if (ctx->n_actions)
      memcpy(a, ctx->actions, ctx->n_actions * sizeof *a);
    ctx->actions = a;
    ctx->cap_actions = cap;
  }
  OperationAction *a = ealloc(ctx, sizeof *a);
  if (!a)
    return NULL;
  operation_action__init(a);
  a->id = (int32_t)ctx->n_actions;
  ctx->actions[ctx->n_actions++] = a;
  return a;
}

int dt_entity_signal(dt_entity_ctx *ctx, const char *entity_id, const char *operation, const char *input,
                     int64_t signal_at_ms)
{
  if (!ctx || !dt__valid_entity_id(entity_id) || !operation || !*operation)
    return DT_ERR_INVALID_ARG;
  SendSignalAction *s = ealloc(ctx, sizeof *s);
  char *id = edup(ctx, entity_id);
  if (!s || !id)
    return DT_ERR_NOMEM;
  for (char *p = id + 1; *p && *p != '@'; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  send_signal_action__init(s);
  s->instanceid = id;
  s->name = edup(ctx, operation);
  s->input = esv(ctx, input);
  s->requesttime = ets(ctx, dt__now_ms());
  if (signal_at_ms > 0)
    s->scheduledtime = ets(ctx, signal_at_ms);
  OperationAction *a = new_op_action(ctx);
  if (ctx->oom || !a)
    return DT_ERR_NOMEM;
  a->operation_action_type_case = OPERATION_ACTION__OPERATION_ACTION_TYPE_SEND_SIGNAL;
  a->sendsignal = s;
  return DT_OK;
}

int dt_entity_start_orchestration(dt_entity_ctx *ctx, const char *name, const char *instance_id, const char *input,
                                  const char **instance_id_out)
{
  if (!ctx || !name || !*name)
    return DT_ERR_INVALID_ARG;
  char gen[33];
  if (!instance_id || !*instance_id) {
    if (dt__random_hex32(gen) != DT_OK)
      return DT_ERR_INTERNAL;
    instance_id = gen;
  }
  StartNewOrchestrationAction *s = ealloc(ctx, sizeof *s);
  if (!s)
    return DT_ERR_NOMEM;
  start_new_orchestration_action__init(s);
  s->instanceid = edup(ctx, instance_id);
  s->name = edup(ctx, name);
  s->input = esv(ctx, input);
  s->requesttime = ets(ctx, dt__now_ms());
  OperationAction *a = new_op_action(ctx);
  if (ctx->oom || !a)
    return DT_ERR_NOMEM;
  a->operation_action_type_case = OPERATION_ACTION__OPERATION_ACTION_TYPE_START_NEW_ORCHESTRATION;
  a->startneworchestration = s;
  if (instance_id_out)
    *instance_id_out = s->instanceid;
  return DT_OK;
}

/* One operation as the executor sees it, whichever kind of work item it came in. */
struct op {
  const char *operation, *request_id, *input;
  OrchestrationInstance *dest; /* v2: where a call's answer goes */
};

static int run_ops(const struct dt__entity *ents, size_t n_ents, dt_entity_ctx *ctx, const char *instance_id,
                   const char *state, const struct op *ops, size_t n_ops, bool v2, const char *token, uint8_t **out,
                   size_t *out_len)
{
  if (!dt__valid_entity_id(instance_id))
    return DT_ERR_INVALID_ARG;
  char *id = edup(ctx, instance_id);
  if (!id)
    return DT_ERR_NOMEM;
  const char *at = strchr(id + 1, '@');
  ctx->id = id;
  ctx->name = dt_entity_printf(ctx, "%.*s", (int)(at - id - 1), id + 1);
  ctx->key = at + 1;
  if (ctx->oom)
    return DT_ERR_NOMEM;
  for (char *p = (char *)ctx->name; *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  ctx->state = state;
  const struct dt__entity *e = NULL;
  for (size_t i = 0; i < n_ents && !e; i++)
    if (strcmp(ents[i].name, ctx->name) == 0)
      e = &ents[i];

  EntityBatchResult res = ENTITY_BATCH_RESULT__INIT;
  res.completiontoken = (char *)(token ? token : "");
  res.results = ealloc(ctx, (n_ops ? n_ops : 1) * sizeof *res.results);
  if (v2)
    res.operationinfos = ealloc(ctx, (n_ops ? n_ops : 1) * sizeof *res.operationinfos);
  if (ctx->oom)
    return DT_ERR_NOMEM;
  for (size_t i = 0; i < n_ops; i++) {
    const char *committed_state = ctx->state;
    size_t committed_actions = ctx->n_actions;
    ctx->failed = false;
    ctx->error_type = ctx->message = NULL;
    int64_t start = dt__now_ms();
    const char *result = NULL;
    if (!e) {
      ctx->failed = true;
      ctx->error_type = "EntityNotRegistered";
      ctx->message = dt_entity_printf(ctx, "no entity named '%s' is registered with this worker", ctx->name);
    } else {
      result = e->fn(ctx, ops[i].operation, ops[i].input && *ops[i].input ? ops[i].input : NULL, e->user_data);
    }
    if (ctx->oom)
      return DT_ERR_NOMEM;
    OperationResult *r = ealloc(ctx, sizeof *r);
    if (!r)
      return DT_ERR_NOMEM;
    operation_result__init(r);
    if (ctx->failed) {
      ctx->state = committed_state;
      ctx->n_actions = committed_actions;
      OperationResultFailure *f = ealloc(ctx, sizeof *f);
      TaskFailureDetails *fd = ealloc(ctx, sizeof *fd);
      if (!f || !fd)
        return DT_ERR_NOMEM;
      operation_result_failure__init(f);
      task_failure_details__init(fd);
      fd->errortype = (char *)ctx->error_type;
      fd->errormessage = (char *)(ctx->message ? ctx->message : "");
      f->failuredetails = fd;
      f->starttimeutc = ets(ctx, start);
      f->endtimeutc = ets(ctx, dt__now_ms());
      r->result_type_case = OPERATION_RESULT__RESULT_TYPE_FAILURE;
      r->failure = f;
    } else {
      OperationResultSuccess *s = ealloc(ctx, sizeof *s);
      if (!s)
        return DT_ERR_NOMEM;
      operation_result_success__init(s);
      s->result = esv(ctx, result);
      s->starttimeutc = ets(ctx, start);
      s->endtimeutc = ets(ctx, dt__now_ms());
      r->result_type_case = OPERATION_RESULT__RESULT_TYPE_SUCCESS;
      r->success = s;
    }
    res.results[res.n_results++] = r;
    if (v2) {
      OperationInfo *oi = ealloc(ctx, sizeof *oi);
      if (!oi)
        return DT_ERR_NOMEM;
      operation_info__init(oi);
      oi->requestid = (char *)(ops[i].request_id ? ops[i].request_id : "");
      oi->responsedestination = ops[i].dest;
      res.operationinfos[res.n_operationinfos++] = oi;
    }
    if (ctx->oom)
      return DT_ERR_NOMEM;
  }
  res.actions = ctx->actions;
  res.n_actions = ctx->n_actions;
  res.entitystate = esv(ctx, ctx->state);
  if (ctx->oom)
    return DT_ERR_NOMEM;
  size_t len = entity_batch_result__get_packed_size(&res);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return DT_ERR_NOMEM;
  entity_batch_result__pack(&res, buf);
  *out = buf;
  *out_len = len;
  return DT_OK;
}

int dt__run_entity_batch(const struct dt__entity *ents, size_t n, const WorkItem *wi, uint8_t **out,
                         size_t *out_len)
{
  dt_entity_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return DT_ERR_NOMEM;
  dt__arena_init(&ctx->arena);
  int rc = DT_ERR_INVALID_ARG;
  if (wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST) {
    const EntityBatchRequest *r = wi->entityrequest;
    struct op *ops = ealloc(ctx, (r->n_operations ? r->n_operations : 1) * sizeof *ops);
    if (!ops) {
      rc = DT_ERR_NOMEM;
      goto out;
    }
    for (size_t i = 0; i < r->n_operations; i++) {
      ops[i].operation = r->operations[i]->operation;
      ops[i].request_id = r->operations[i]->requestid;
      ops[i].input = r->operations[i]->input ? r->operations[i]->input->value : NULL;
    }
    rc = run_ops(ents, n, ctx, r->instanceid, r->entitystate ? r->entitystate->value : NULL, ops, r->n_operations,
                 false, wi->completiontoken, out, out_len);
  } else if (wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST_V2) {
    /* The queued history events, converted as the other SDKs do: signals and calls are operations. */
    const EntityRequest *r = wi->entityrequestv2;
    struct op *ops = ealloc(ctx, (r->n_operationrequests ? r->n_operationrequests : 1) * sizeof *ops);
    if (!ops) {
      rc = DT_ERR_NOMEM;
      goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->n_operationrequests; i++) {
      const HistoryEvent *h = r->operationrequests[i];
      if (h->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED) {
        const EntityOperationSignaledEvent *s = h->entityoperationsignaled;
        ops[k++] = (struct op){s->operation, s->requestid, s->input ? s->input->value : NULL, NULL};
      } else if (h->event_type_case == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED) {
        const EntityOperationCalledEvent *c = h->entityoperationcalled;
        OrchestrationInstance *d = ealloc(ctx, sizeof *d);
        if (!d) {
          rc = DT_ERR_NOMEM;
          goto out;
        }
        orchestration_instance__init(d);
        d->instanceid = c->parentinstanceid ? c->parentinstanceid->value : (char *)"";
        d->executionid = c->parentexecutionid;
        ops[k++] = (struct op){c->operation, c->requestid, c->input ? c->input->value : NULL, d};
      }
    }
    rc = run_ops(ents, n, ctx, r->instanceid, r->entitystate ? r->entitystate->value : NULL, ops, k, true,
                 wi->completiontoken, out, out_len);
  }
out:
  dt__arena_free(&ctx->arena);
  free(ctx);
  return rc;
}
