/*
 * The replay executor. An orchestrator runs once per work item, from the top. The history (past events, then
 * new events) is consumed lazily: dt_await() processes events one by one until the awaited task completes,
 * exactly where an event loop would have resumed the code, so the replay-safe clock, external-event delivery
 * and suspension behave as in the other SDKs. When the history runs out before the task completes, the run
 * longjmps back here, and every action the code decided that the history does not confirm becomes a new
 * action for the server.
 */
#include "internal.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LONG_TIMER_MS (3LL * 24 * 3600 * 1000) /* longer timers are split, as the other SDKs do */

enum tstate { T_PENDING, T_DONE, T_FAILED };
enum tkind { K_ACTIVITY, K_TIMER, K_SUB, K_EVENT, K_ALL, K_ANY, K_RETRY, K_ENTITY, K_LOCK };

struct dt_task {
  enum tkind kind;
  enum tstate state;
  int32_t id; /* the action id, for activities, timers and sub-orchestrations */
  const char *result;
  dt_failure *failure;
  struct dt_task *observer; /* a composite or retry task waiting on this one */
  /* composites */
  struct dt_task **children;
  size_t n, ndone;
  struct dt_task *winner, *first_failure;
  /* external events */
  const char *event_name; /* lowercased */
  bool cancelled;
  struct dt_task *next_waiter;
  /* timers */
  int64_t final_fire_at;
  /* retries */
  dt_retry_policy policy;
  int attempt;
  int64_t first_attempt_ms;
  bool retry_sub;
  const char *name, *input, *sub_iid;
  struct dt_task *current;
  /* entity calls (requestId) and lock requests (criticalSectionId) */
  const char *request_id;
  const char *entity_id;
};

struct action {
  OrchestratorAction *a;
  struct dt_task *task;
  bool confirmed;
};

struct buffered_event {
  const char *name; /* lowercased, for matching */
  const char *raw_name;
  const char *data;
  uint64_t order;
  struct buffered_event *next;
};

enum { JUMP_YIELD = 1, JUMP_DONE = 2 };

struct dt_orch_ctx {
  dt__arena arena;
  const char *instance_id, *name, *version, *parent_iid, *execution_id;
  HistoryEvent **events;
  size_t n_events, n_past, pos;
  int64_t now_us; /* from the latest OrchestratorStarted: the replay-safe clock */
  bool replaying;
  int32_t seq;
  struct action *actions; /* indexed by action id */
  size_t cap_actions;
  struct dt_task *waiters; /* external-event waits, oldest first */
  struct buffered_event *buffered;
  uint64_t event_order;
  bool suspended;
  HistoryEvent **held; /* events that arrived while suspended */
  size_t n_held, cap_held;
  /* the outcome */
  bool complete;
  int status;
  const char *output;
  TaskFailureDetails *failure;
  bool keep_events;
  const char *custom_status;
  int uuid_counter;
  jmp_buf jb;
  bool oom;
  bool nondeterministic; /* then only the failure goes out: nothing scheduled by a divergent run */
  /* the open critical section: its id (NULL: none), its entities (sorted), which of them have a call out */
  const char *cs_id;
  const char **cs_ids;
  bool *cs_busy;
  size_t cs_n;
  bool cs_pending; /* the lock is requested, not yet granted */
};

/* ------------------------------------------------------------------ memory */

static void *alloc0(dt_orch_ctx *ctx, size_t n)
{
  void *p = dt__arena_alloc(&ctx->arena, n);
  if (!p) {
    ctx->oom = true;
    longjmp(ctx->jb, JUMP_DONE);
  }
  memset(p, 0, n);
  return p;
}

static char *sdup(dt_orch_ctx *ctx, const char *s)
{
  if (!s)
    return NULL;
  char *p = dt__arena_strdup(&ctx->arena, s);
  if (!p) {
    ctx->oom = true;
    longjmp(ctx->jb, JUMP_DONE);
  }
  return p;
}

void *dt_ctx_alloc(dt_orch_ctx *ctx, size_t n)
{
  return alloc0(ctx, n);
}

char *dt_ctx_strdup(dt_orch_ctx *ctx, const char *s)
{
  return sdup(ctx, s);
}

char *dt_ctx_printf(dt_orch_ctx *ctx, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *p = dt__arena_vprintf(&ctx->arena, fmt, ap);
  va_end(ap);
  if (!p) {
    ctx->oom = true;
    longjmp(ctx->jb, JUMP_DONE);
  }
  return p;
}

static char *lower(dt_orch_ctx *ctx, const char *s)
{
  char *p = sdup(ctx, s ? s : "");
  for (char *q = p; *q; q++)
    *q = (char)tolower((unsigned char)*q);
  return p;
}

static Google__Protobuf__StringValue *sv(dt_orch_ctx *ctx, const char *s)
{
  if (!s)
    return NULL;
  Google__Protobuf__StringValue *v = alloc0(ctx, sizeof *v);
  google__protobuf__string_value__init(v);
  v->value = sdup(ctx, s);
  return v;
}

static Google__Protobuf__Timestamp *ts(dt_orch_ctx *ctx, int64_t ms)
{
  Google__Protobuf__Timestamp *t = alloc0(ctx, sizeof *t);
  google__protobuf__timestamp__init(t);
  int64_t s = ms / 1000, rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    s--;
  }
  t->seconds = s;
  t->nanos = (int32_t)(rem * 1000000);
  return t;
}

static const char *svs(const Google__Protobuf__StringValue *v)
{
  return v ? v->value : NULL;
}

static dt_failure *to_failure(dt_orch_ctx *ctx, const TaskFailureDetails *f)
{
  if (!f)
    return NULL;
  dt_failure *d = alloc0(ctx, sizeof *d);
  d->error_type = f->errortype;
  d->message = f->errormessage;
  d->stack_trace = svs(f->stacktrace);
  d->inner = to_failure(ctx, f->innerfailure);
  return d;
}

static TaskFailureDetails *pb_failure(dt_orch_ctx *ctx, const char *type, const char *msg,
                                      const TaskFailureDetails *inner)
{
  TaskFailureDetails *f = alloc0(ctx, sizeof *f);
  task_failure_details__init(f);
  f->errortype = sdup(ctx, type ? type : "Error");
  f->errormessage = sdup(ctx, msg ? msg : "");
  f->innerfailure = (TaskFailureDetails *)inner;
  return f;
}

static TaskFailureDetails *failure_to_pb(dt_orch_ctx *ctx, const dt_failure *f)
{
  if (!f)
    return NULL;
  TaskFailureDetails *p = pb_failure(ctx, f->error_type, f->message, failure_to_pb(ctx, f->inner));
  p->stacktrace = sv(ctx, f->stack_trace);
  return p;
}

/* ------------------------------------------------------------------ completion of the orchestration */

static void finish(dt_orch_ctx *ctx, int status, const char *output, TaskFailureDetails *failure)
{
  if (ctx->complete)
    return;
  ctx->complete = true;
  ctx->status = status;
  ctx->output = output;
  ctx->failure = failure;
}

__attribute__((noreturn)) static void fail_now(dt_orch_ctx *ctx, const char *type, const char *msg,
                                               const TaskFailureDetails *inner)
{
  finish(ctx, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED, NULL, pb_failure(ctx, type, msg, inner));
  longjmp(ctx->jb, JUMP_DONE);
}

void dt_orch_fail(dt_orch_ctx *ctx, const char *error_type, const char *message)
{
  fail_now(ctx, error_type, message, NULL);
}

void dt_continue_as_new(dt_orch_ctx *ctx, const char *input, bool keep_events)
{
  finish(ctx, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW, sdup(ctx, input), NULL);
  ctx->keep_events = keep_events;
  longjmp(ctx->jb, JUMP_DONE);
}

__attribute__((noreturn)) static void nondeterminism(dt_orch_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void nondeterminism(dt_orch_ctx *ctx, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = dt__arena_vprintf(&ctx->arena, fmt, ap);
  va_end(ap);
  DT_WARN("%s: nondeterminism: %s", ctx->instance_id, msg ? msg : "");
  ctx->nondeterministic = true;
  /* Found while stepping the history after the code returned, failed or continued as new: that outcome came
   * from a run that diverged, so the failure replaces it. A termination came from outside and stays. */
  if (ctx->complete && ctx->status != ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED) {
    ctx->complete = false;
    ctx->keep_events = false;
  }
  fail_now(ctx, "NonDeterminismError", msg, NULL);
}

/* ------------------------------------------------------------------ actions */

static struct action *slot(dt_orch_ctx *ctx, int32_t id)
{
  if (id < 0)
    return NULL;
  if ((size_t)id >= ctx->cap_actions) {
    size_t cap = ctx->cap_actions ? ctx->cap_actions : 64;
    while (cap <= (size_t)id)
      cap *= 2;
    struct action *a = alloc0(ctx, cap * sizeof *a);
    if (ctx->cap_actions)
      memcpy(a, ctx->actions, ctx->cap_actions * sizeof *a);
    ctx->actions = a;
    ctx->cap_actions = cap;
  }
  return &ctx->actions[id];
}

static OrchestratorAction *new_action(dt_orch_ctx *ctx, struct dt_task *t)
{
  int32_t id = ++ctx->seq;
  OrchestratorAction *a = alloc0(ctx, sizeof *a);
  orchestrator_action__init(a);
  a->id = id;
  struct action *s = slot(ctx, id);
  s->a = a;
  s->task = t;
  if (t)
    t->id = id;
  return a;
}

static struct dt_task *task_new(dt_orch_ctx *ctx, enum tkind k)
{
  struct dt_task *t = alloc0(ctx, sizeof *t);
  t->kind = k;
  t->id = -1;
  return t;
}

static void task_done(dt_orch_ctx *ctx, struct dt_task *t, const char *result);
static void task_failed(dt_orch_ctx *ctx, struct dt_task *t, dt_failure *f);

static void notify(dt_orch_ctx *ctx, struct dt_task *t);

static void task_done(dt_orch_ctx *ctx, struct dt_task *t, const char *result)
{
  if (t->state != T_PENDING)
    return;
  t->state = T_DONE;
  t->result = result;
  notify(ctx, t);
}

static void task_failed(dt_orch_ctx *ctx, struct dt_task *t, dt_failure *f)
{
  if (t->state != T_PENDING)
    return;
  t->state = T_FAILED;
  t->failure = f;
  notify(ctx, t);
}

static void schedule_activity_action(dt_orch_ctx *ctx, struct dt_task *t, const char *name, const char *input);
static void schedule_sub_action(dt_orch_ctx *ctx, struct dt_task *t, const char *name, const char *iid,
                                const char *input);
static void schedule_timer_action(dt_orch_ctx *ctx, struct dt_task *t, int64_t fire_at);

static int64_t retry_delay(const dt_retry_policy *p, int attempt)
{
  double d = (double)p->first_delay_ms;
  double b = p->backoff > 0 ? p->backoff : 1.0;
  for (int i = 1; i < attempt; i++)
    d *= b;
  if (p->max_delay_ms > 0 && d > (double)p->max_delay_ms)
    d = (double)p->max_delay_ms;
  return (int64_t)d;
}

/* A retry task steps forward when what it waits on (an attempt, or the delay timer) completes. */
static void retry_step(dt_orch_ctx *ctx, struct dt_task *r, struct dt_task *child)
{
  if (child->kind == K_TIMER) {
    struct dt_task *next = task_new(ctx, r->retry_sub ? K_SUB : K_ACTIVITY);
    next->observer = r;
    r->current = next;
    r->attempt++;
    if (r->retry_sub)
      schedule_sub_action(ctx, next, r->name, r->sub_iid, r->input);
    else
      schedule_activity_action(ctx, next, r->name, r->input);
    return;
  }
  if (child->state == T_DONE) {
    task_done(ctx, r, child->result);
    return;
  }
  const dt_retry_policy *p = &r->policy;
  bool again = r->attempt < p->max_attempts;
  if (again && p->max_total_ms > 0 && (ctx->now_us / 1000) - r->first_attempt_ms >= p->max_total_ms)
    again = false;
  if (again && p->handler)
    again = p->handler(child->failure, r->attempt, p->handler_data);
  if (!again) {
    task_failed(ctx, r, child->failure);
    return;
  }
  struct dt_task *timer = task_new(ctx, K_TIMER);
  timer->observer = r;
  r->current = timer;
  int64_t at = (ctx->now_us / 1000) + retry_delay(p, r->attempt);
  timer->final_fire_at = at;
  schedule_timer_action(ctx, timer, at);
}

static void cancel_waits(dt_orch_ctx *ctx, struct dt_task *t)
{
  if (t->state != T_PENDING)
    return;
  if (t->kind == K_EVENT) {
    t->cancelled = true;
    for (struct dt_task **pp = &ctx->waiters; *pp; pp = &(*pp)->next_waiter)
      if (*pp == t) {
        *pp = t->next_waiter;
        break;
      }
  } else if (t->kind == K_ALL || t->kind == K_ANY) {
    for (size_t i = 0; i < t->n; i++)
      cancel_waits(ctx, t->children[i]);
  }
}

static void notify(dt_orch_ctx *ctx, struct dt_task *t)
{
  struct dt_task *o = t->observer;
  if (!o || o->state != T_PENDING)
    return;
  switch (o->kind) {
  case K_ALL:
    o->ndone++;
    if (t->state == T_FAILED && !o->first_failure)
      o->first_failure = t;
    if (o->ndone == o->n) {
      if (o->first_failure)
        task_failed(ctx, o, o->first_failure->failure);
      else
        task_done(ctx, o, NULL);
    }
    break;
  case K_ANY:
    o->winner = t;
    for (size_t i = 0; i < o->n; i++)
      if (o->children[i] != t)
        cancel_waits(ctx, o->children[i]);
    task_done(ctx, o, NULL);
    break;
  case K_RETRY:
    if (t == o->current)
      retry_step(ctx, o, t);
    break;
  default:
    break;
  }
}

/* ------------------------------------------------------------------ events */

static struct dt_task *task_for(dt_orch_ctx *ctx, int32_t id, enum tkind kind)
{
  if (id < 0 || (size_t)id >= ctx->cap_actions)
    return NULL;
  struct dt_task *t = ctx->actions[id].task;
  return t && t->kind == kind ? t : NULL;
}

static const char *action_label(const OrchestratorAction *a)
{
  switch (a->orchestrator_action_type_case) {
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK: return "an activity";
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER: return "a timer";
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION: return "a sub-orchestration";
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT: return "an event";
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_ENTITY_MESSAGE: return "an entity message";
  default: return "an action";
  }
}

static const char *action_name(const OrchestratorAction *a)
{
  switch (a->orchestrator_action_type_case) {
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK: return a->scheduletask->name;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION:
    return a->createsuborchestration->name;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT: return a->sendevent->name;
  default: return "";
  }
}

/* A confirmation event (TaskScheduled, TimerCreated, ...) must match what the code scheduled with that id. */
static void confirm(dt_orch_ctx *ctx, const HistoryEvent *e, int want, const char *what, const char *name)
{
  int32_t id = e->eventid;
  struct action *s = id >= 0 && (size_t)id < ctx->cap_actions ? &ctx->actions[id] : NULL;
  if (!s || !s->a)
    nondeterminism(ctx,
                   "the history has %s '%s' with id %d, but the orchestrator did not schedule anything with that "
                   "id (it scheduled %d actions so far)",
                   what, name ? name : "", id, ctx->seq);
  if ((int)s->a->orchestrator_action_type_case != want ||
      (name && strcasecmp(name, action_name(s->a)) != 0 &&
       want != ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT) ||
      (want == ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT && strcmp(name, action_name(s->a)) != 0))
    nondeterminism(ctx, "action %d: the history has %s '%s', but the orchestrator scheduled %s '%s'", id, what,
                   name ? name : "", action_label(s->a), action_name(s->a));
  s->confirmed = true;
}

static void deliver_event(dt_orch_ctx *ctx, const char *raw_name, const char *data)
{
  const char *name = lower(ctx, raw_name);
  for (struct dt_task **pp = &ctx->waiters; *pp; pp = &(*pp)->next_waiter) {
    struct dt_task *w = *pp;
    if (strcmp(w->event_name, name) == 0) {
      *pp = w->next_waiter; /* the oldest wait for this name gets it */
      task_done(ctx, w, sdup(ctx, data));
      return;
    }
  }
  struct buffered_event *b = alloc0(ctx, sizeof *b);
  b->name = name;
  b->raw_name = sdup(ctx, raw_name);
  b->data = sdup(ctx, data);
  b->order = ctx->event_order++;
  struct buffered_event **pp = &ctx->buffered;
  while (*pp)
    pp = &(*pp)->next;
  *pp = b;
}

static void hold(dt_orch_ctx *ctx, HistoryEvent *e)
{
  if (ctx->n_held == ctx->cap_held) {
    size_t cap = ctx->cap_held ? ctx->cap_held * 2 : 16;
    HistoryEvent **h = alloc0(ctx, cap * sizeof *h);
    if (ctx->n_held)
      memcpy(h, ctx->held, ctx->n_held * sizeof *h);
    ctx->held = h;
    ctx->cap_held = cap;
  }
  ctx->held[ctx->n_held++] = e;
}

static void process(dt_orch_ctx *ctx, HistoryEvent *e);

static const char *entity_message_label(int type)
{
  switch (type) {
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_CALLED: return "entity call";
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_SIGNALED: return "entity signal";
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_LOCK_REQUESTED: return "lock request";
  case SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_UNLOCK_SENT: return "unlock";
  default: return "entity message";
  }
}

/* An entity message in the history (recorded under the action's id) must be what the code sent with that id. */
static struct dt_task *confirm_entity(dt_orch_ctx *ctx, const HistoryEvent *e, int want, const char *what)
{
  int32_t id = e->eventid;
  struct action *s = id >= 0 && (size_t)id < ctx->cap_actions ? &ctx->actions[id] : NULL;
  if (!s || !s->a)
    nondeterminism(ctx,
                   "the history has an %s with id %d, but the orchestrator did not schedule anything with that id "
                   "(it scheduled %d actions so far)",
                   what, id, ctx->seq);
  if (s->a->orchestrator_action_type_case != ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_ENTITY_MESSAGE)
    nondeterminism(ctx, "action %d: the history has an %s, but the orchestrator scheduled %s '%s'", id, what,
                   action_label(s->a), action_name(s->a));
  if ((int)s->a->sendentitymessage->entity_message_type_case != want)
    nondeterminism(ctx, "action %d: the history has an %s, but the orchestrator sent an %s", id, what,
                   entity_message_label((int)s->a->sendentitymessage->entity_message_type_case));
  s->confirmed = true;
  return s->task;
}

/* The entity call or lock task waiting for |request_id| (a requestId or a criticalSectionId). */
static struct dt_task *task_by_request(dt_orch_ctx *ctx, enum tkind kind, const char *request_id)
{
  if (!request_id)
    return NULL;
  for (int32_t id = 1; id <= ctx->seq && (size_t)id < ctx->cap_actions; id++) {
    struct dt_task *t = ctx->actions[id].task;
    if (t && t->kind == kind && t->state == T_PENDING && t->request_id && strcmp(t->request_id, request_id) == 0)
      return t;
  }
  return NULL;
}

/* Inside a critical section, an entity whose call returned may be called again. */
static void entity_call_returned(dt_orch_ctx *ctx, const struct dt_task *t)
{
  for (size_t i = 0; i < ctx->cs_n && ctx->cs_id; i++)
    if (strcmp(ctx->cs_ids[i], t->entity_id) == 0)
      ctx->cs_busy[i] = false;
}

static void resume_held(dt_orch_ctx *ctx)
{
  HistoryEvent **h = ctx->held;
  size_t n = ctx->n_held;
  ctx->held = NULL;
  ctx->n_held = ctx->cap_held = 0;
  for (size_t i = 0; i < n; i++)
    process(ctx, h[i]);
}

static void process(dt_orch_ctx *ctx, HistoryEvent *e)
{
  int type = (int)e->event_type_case;
  /* While suspended everything but resume and terminate waits, in order. */
  if (ctx->suspended && type != HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED &&
      type != HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED) {
    hold(ctx, e);
    return;
  }
  switch (type) {
  case HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED:
    ctx->now_us = dt__ts_us(e->timestamp);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED:
    confirm(ctx, e, ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK, "activity",
            e->taskscheduled->name);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED:
    confirm(ctx, e, ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER, "timer", NULL);
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED:
    confirm(ctx, e, ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION, "sub-orchestration",
            e->suborchestrationinstancecreated->name);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT:
    confirm(ctx, e, ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT, "sent event", e->eventsent->name);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED: {
    struct dt_task *t = task_for(ctx, e->taskcompleted->taskscheduledid, K_ACTIVITY);
    if (t)
      task_done(ctx, t, svs(e->taskcompleted->result));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED: {
    struct dt_task *t = task_for(ctx, e->taskfailed->taskscheduledid, K_ACTIVITY);
    if (t)
      task_failed(ctx, t, to_failure(ctx, e->taskfailed->failuredetails));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED: {
    struct dt_task *t = task_for(ctx, e->suborchestrationinstancecompleted->taskscheduledid, K_SUB);
    if (t)
      task_done(ctx, t, svs(e->suborchestrationinstancecompleted->result));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED: {
    struct dt_task *t = task_for(ctx, e->suborchestrationinstancefailed->taskscheduledid, K_SUB);
    if (t)
      task_failed(ctx, t, to_failure(ctx, e->suborchestrationinstancefailed->failuredetails));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED: {
    struct dt_task *t = task_for(ctx, e->timerfired->timerid, K_TIMER);
    if (!t)
      break;
    int64_t fired = dt__ts_ms(e->timerfired->fireat);
    if (fired < t->final_fire_at) {
      /* One leg of a long timer: schedule the next. */
      int64_t next = t->final_fire_at - fired > LONG_TIMER_MS ? fired + LONG_TIMER_MS : t->final_fire_at;
      schedule_timer_action(ctx, t, next);
    } else {
      task_done(ctx, t, NULL);
    }
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED:
    deliver_event(ctx, e->eventraised->name, svs(e->eventraised->input));
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED: {
    struct dt_task *t = confirm_entity(ctx, e, SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_CALLED,
                                       "entity call");
    if (t && t->kind == K_ENTITY)
      t->request_id = e->entityoperationcalled->requestid; /* the completion names the id the history has */
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED:
    confirm_entity(ctx, e, SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_SIGNALED, "entity signal");
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_REQUESTED: {
    struct dt_task *t =
        confirm_entity(ctx, e, SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_LOCK_REQUESTED, "lock request");
    if (t && t->kind == K_LOCK) {
      if (ctx->cs_id == t->request_id)
        ctx->cs_id = e->entitylockrequested->criticalsectionid;
      t->request_id = e->entitylockrequested->criticalsectionid;
    }
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_UNLOCK_SENT:
    confirm_entity(ctx, e, SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_UNLOCK_SENT, "unlock");
    break;
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_COMPLETED: {
    struct dt_task *t = task_by_request(ctx, K_ENTITY, e->entityoperationcompleted->requestid);
    if (t) {
      entity_call_returned(ctx, t);
      task_done(ctx, t, svs(e->entityoperationcompleted->output));
    }
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_FAILED: {
    struct dt_task *t = task_by_request(ctx, K_ENTITY, e->entityoperationfailed->requestid);
    if (t) {
      entity_call_returned(ctx, t);
      task_failed(ctx, t, to_failure(ctx, e->entityoperationfailed->failuredetails));
    }
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_GRANTED: {
    struct dt_task *t = task_by_request(ctx, K_LOCK, e->entitylockgranted->criticalsectionid);
    if (t) {
      if (ctx->cs_id && strcmp(ctx->cs_id, t->request_id) == 0)
        ctx->cs_pending = false;
      task_done(ctx, t, NULL);
    }
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED:
    ctx->suspended = true;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED:
    if (ctx->suspended) {
      ctx->suspended = false;
      resume_held(ctx);
    }
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED:
    if (!ctx->complete) {
      finish(ctx, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED, svs(e->executionterminated->input), NULL);
      longjmp(ctx->jb, JUMP_DONE);
    }
    break;
  default:
    break; /* OrchestratorCompleted, ExecutionCompleted, GenericEvent, ... carry nothing for replay */
  }
}

/* Processes the next event; false when the history is exhausted. */
static bool step(dt_orch_ctx *ctx)
{
  if (ctx->pos >= ctx->n_events)
    return false;
  size_t i = ctx->pos++;
  ctx->replaying = i < ctx->n_past;
  process(ctx, ctx->events[i]);
  return true;
}

static void wait_for(dt_orch_ctx *ctx, struct dt_task *t)
{
  while (t->state == T_PENDING)
    if (!step(ctx))
      longjmp(ctx->jb, JUMP_YIELD);
}

/* ------------------------------------------------------------------ the API used by orchestrators */

static void schedule_activity_action(dt_orch_ctx *ctx, struct dt_task *t, const char *name, const char *input)
{
  OrchestratorAction *a = new_action(ctx, t);
  ScheduleTaskAction *s = alloc0(ctx, sizeof *s);
  schedule_task_action__init(s);
  s->name = sdup(ctx, name);
  s->input = sv(ctx, input);
  a->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK;
  a->scheduletask = s;
}

static void schedule_sub_action(dt_orch_ctx *ctx, struct dt_task *t, const char *name, const char *iid,
                                const char *input)
{
  OrchestratorAction *a = new_action(ctx, t);
  CreateSubOrchestrationAction *s = alloc0(ctx, sizeof *s);
  create_sub_orchestration_action__init(s);
  s->name = sdup(ctx, name);
  s->instanceid = iid ? sdup(ctx, iid) : dt_ctx_printf(ctx, "%s:%04x", ctx->instance_id, (unsigned)a->id);
  s->input = sv(ctx, input);
  a->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION;
  a->createsuborchestration = s;
}

static void schedule_timer_action(dt_orch_ctx *ctx, struct dt_task *t, int64_t fire_at)
{
  OrchestratorAction *a = new_action(ctx, t);
  CreateTimerAction *c = alloc0(ctx, sizeof *c);
  create_timer_action__init(c);
  c->fireat = ts(ctx, fire_at);
  a->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER;
  a->createtimer = c;
}

static bool bad_name(dt_orch_ctx *ctx, const char *name, const char *what)
{
  if (name && *name)
    return false;
  fail_now(ctx, "InvalidArgument", dt_ctx_printf(ctx, "%s: a name is required", what), NULL);
}

dt_task *dt_call_activity(dt_orch_ctx *ctx, const char *name, const char *input)
{
  bad_name(ctx, name, "dt_call_activity");
  struct dt_task *t = task_new(ctx, K_ACTIVITY);
  schedule_activity_action(ctx, t, name, input);
  return t;
}

static dt_task *retry_task(dt_orch_ctx *ctx, bool sub, const char *name, const char *iid, const char *input,
                           const dt_retry_policy *p)
{
  struct dt_task *r = task_new(ctx, K_RETRY);
  r->policy = *p;
  if (r->policy.max_attempts < 1)
    r->policy.max_attempts = 1;
  r->retry_sub = sub;
  r->name = sdup(ctx, name);
  r->input = sdup(ctx, input);
  r->sub_iid = sdup(ctx, iid);
  r->attempt = 1;
  r->first_attempt_ms = (ctx->now_us / 1000);
  struct dt_task *first = task_new(ctx, sub ? K_SUB : K_ACTIVITY);
  first->observer = r;
  r->current = first;
  if (sub)
    schedule_sub_action(ctx, first, name, iid, input);
  else
    schedule_activity_action(ctx, first, name, input);
  return r;
}

dt_task *dt_call_activity_retry(dt_orch_ctx *ctx, const char *name, const char *input, const dt_retry_policy *p)
{
  bad_name(ctx, name, "dt_call_activity_retry");
  if (!p)
    return dt_call_activity(ctx, name, input);
  return retry_task(ctx, false, name, NULL, input, p);
}

dt_task *dt_call_sub_orchestrator(dt_orch_ctx *ctx, const char *name, const char *instance_id, const char *input)
{
  bad_name(ctx, name, "dt_call_sub_orchestrator");
  struct dt_task *t = task_new(ctx, K_SUB);
  schedule_sub_action(ctx, t, name, instance_id, input);
  return t;
}

dt_task *dt_call_sub_orchestrator_retry(dt_orch_ctx *ctx, const char *name, const char *instance_id,
                                        const char *input, const dt_retry_policy *p)
{
  bad_name(ctx, name, "dt_call_sub_orchestrator_retry");
  if (!p)
    return dt_call_sub_orchestrator(ctx, name, instance_id, input);
  /* Each attempt uses |instance_id| (the server replaces the failed child) or, when NULL, its own default id. */
  return retry_task(ctx, true, name, instance_id, input, p);
}

dt_task *dt_create_timer(dt_orch_ctx *ctx, int64_t fire_at_ms)
{
  struct dt_task *t = task_new(ctx, K_TIMER);
  t->final_fire_at = fire_at_ms;
  int64_t first = fire_at_ms - (ctx->now_us / 1000) > LONG_TIMER_MS ? (ctx->now_us / 1000) + LONG_TIMER_MS : fire_at_ms;
  schedule_timer_action(ctx, t, first);
  return t;
}

dt_task *dt_create_timer_in(dt_orch_ctx *ctx, int64_t delay_ms)
{
  return dt_create_timer(ctx, (ctx->now_us / 1000) + (delay_ms > 0 ? delay_ms : 0));
}

dt_task *dt_wait_event(dt_orch_ctx *ctx, const char *name)
{
  bad_name(ctx, name, "dt_wait_event");
  struct dt_task *t = task_new(ctx, K_EVENT);
  t->event_name = lower(ctx, name);
  for (struct buffered_event **pp = &ctx->buffered; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, t->event_name) == 0) {
      struct buffered_event *b = *pp;
      *pp = b->next;
      t->state = T_DONE;
      t->result = b->data;
      return t;
    }
  }
  struct dt_task **pp = &ctx->waiters;
  while (*pp)
    pp = &(*pp)->next_waiter;
  *pp = t;
  return t;
}

static dt_task *composite(dt_orch_ctx *ctx, enum tkind k, dt_task *const *tasks, size_t n)
{
  struct dt_task *c = task_new(ctx, k);
  c->children = alloc0(ctx, (n ? n : 1) * sizeof *c->children);
  c->n = n;
  for (size_t i = 0; i < n; i++) {
    if (!tasks[i])
      fail_now(ctx, "InvalidArgument", "dt_when_all/dt_when_any: a task is NULL", NULL);
    if (tasks[i]->observer)
      fail_now(ctx, "InvalidArgument", "dt_when_all/dt_when_any: a task can be given to one of them only", NULL);
    c->children[i] = tasks[i];
  }
  /* Children that already finished count now, in order; the rest report when they do. */
  for (size_t i = 0; i < n && c->state == T_PENDING; i++) {
    tasks[i]->observer = c;
    if (tasks[i]->state != T_PENDING)
      notify(ctx, tasks[i]);
  }
  if (n == 0)
    task_done(ctx, c, NULL);
  return c;
}

dt_task *dt_when_all(dt_orch_ctx *ctx, dt_task *const *tasks, size_t n)
{
  return composite(ctx, K_ALL, tasks, n);
}

dt_task *dt_when_any(dt_orch_ctx *ctx, dt_task *const *tasks, size_t n)
{
  if (n == 0)
    fail_now(ctx, "InvalidArgument", "dt_when_any: at least one task is required", NULL);
  return composite(ctx, K_ANY, tasks, n);
}

void dt_send_event(dt_orch_ctx *ctx, const char *instance_id, const char *name, const char *data)
{
  bad_name(ctx, name, "dt_send_event");
  if (!instance_id || !*instance_id)
    fail_now(ctx, "InvalidArgument", "dt_send_event: an instance id is required", NULL);
  OrchestratorAction *a = new_action(ctx, NULL);
  SendEventAction *s = alloc0(ctx, sizeof *s);
  send_event_action__init(s);
  OrchestrationInstance *oi = alloc0(ctx, sizeof *oi);
  orchestration_instance__init(oi);
  oi->instanceid = sdup(ctx, instance_id);
  s->instance = oi;
  s->name = sdup(ctx, name);
  s->data = sv(ctx, data);
  a->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT;
  a->sendevent = s;
}

/* ------------------------------------------------------------------ entities */

/* A copy of |id| with its name part lowercased; a malformed id fails the orchestration. */
static const char *entity_id_arg(dt_orch_ctx *ctx, const char *id, const char *what)
{
  if (!dt__valid_entity_id(id))
    fail_now(ctx, "InvalidArgument",
             dt_ctx_printf(ctx, "%s: \"%s\" is not an entity id (@name@key)", what, id ? id : "(null)"), NULL);
  char *c = sdup(ctx, id);
  for (char *p = c + 1; *p && *p != '@'; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  return c;
}

static OrchestratorAction *entity_action(dt_orch_ctx *ctx, struct dt_task *t, SendEntityMessageAction **m)
{
  OrchestratorAction *a = new_action(ctx, t);
  *m = alloc0(ctx, sizeof **m);
  send_entity_message_action__init(*m);
  a->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_ENTITY_MESSAGE;
  a->sendentitymessage = *m;
  return a;
}

static long cs_index(const dt_orch_ctx *ctx, const char *id)
{
  for (size_t i = 0; i < ctx->cs_n && ctx->cs_id; i++)
    if (strcmp(ctx->cs_ids[i], id) == 0)
      return (long)i;
  return -1;
}

dt_task *dt_call_entity(dt_orch_ctx *ctx, const char *entity_id, const char *operation, const char *input)
{
  const char *id = entity_id_arg(ctx, entity_id, "dt_call_entity");
  bad_name(ctx, operation, "dt_call_entity");
  if (ctx->cs_id) {
    long i = cs_index(ctx, id);
    if (ctx->cs_pending)
      fail_now(ctx, "LockingRulesViolation", "dt_call_entity: await the lock before calling an entity", NULL);
    if (i < 0)
      fail_now(ctx, "LockingRulesViolation",
               dt_ctx_printf(ctx, "dt_call_entity: %s is not one of the critical section's locked entities", id),
               NULL);
    if (ctx->cs_busy[i])
      fail_now(ctx, "LockingRulesViolation",
               dt_ctx_printf(ctx, "dt_call_entity: a call to %s is still pending in the critical section", id), NULL);
    ctx->cs_busy[i] = true;
  }
  struct dt_task *t = task_new(ctx, K_ENTITY);
  t->entity_id = id;
  SendEntityMessageAction *m;
  entity_action(ctx, t, &m);
  EntityOperationCalledEvent *c = alloc0(ctx, sizeof *c);
  entity_operation_called_event__init(c);
  c->requestid = (char *)dt_new_uuid(ctx);
  c->operation = sdup(ctx, operation);
  c->input = sv(ctx, input);
  c->parentinstanceid = sv(ctx, ctx->instance_id);
  c->targetinstanceid = sv(ctx, id);
  t->request_id = c->requestid;
  m->entity_message_type_case = SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_CALLED;
  m->entityoperationcalled = c;
  return t;
}

void dt_signal_entity(dt_orch_ctx *ctx, const char *entity_id, const char *operation, const char *input,
                      int64_t signal_at_ms)
{
  const char *id = entity_id_arg(ctx, entity_id, "dt_signal_entity");
  bad_name(ctx, operation, "dt_signal_entity");
  if (cs_index(ctx, id) >= 0)
    fail_now(ctx, "LockingRulesViolation",
             dt_ctx_printf(ctx, "dt_signal_entity: %s is locked by this orchestration's critical section", id), NULL);
  SendEntityMessageAction *m;
  entity_action(ctx, NULL, &m);
  EntityOperationSignaledEvent *s = alloc0(ctx, sizeof *s);
  entity_operation_signaled_event__init(s);
  s->requestid = (char *)dt_new_uuid(ctx);
  s->operation = sdup(ctx, operation);
  s->input = sv(ctx, input);
  s->targetinstanceid = sv(ctx, id);
  if (signal_at_ms > 0)
    s->scheduledtime = ts(ctx, signal_at_ms);
  m->entity_message_type_case = SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_OPERATION_SIGNALED;
  m->entityoperationsignaled = s;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define MAX_LOCK_SET 100

dt_task *dt_lock_entities(dt_orch_ctx *ctx, const char *const *entity_ids, size_t n)
{
  if (ctx->cs_id)
    fail_now(ctx, "LockingRulesViolation", "dt_lock_entities: a critical section is already open", NULL);
  if (n == 0 || !entity_ids)
    fail_now(ctx, "InvalidArgument", "dt_lock_entities: at least one entity is required", NULL);
  const char **ids = alloc0(ctx, n * sizeof *ids);
  for (size_t i = 0; i < n; i++)
    ids[i] = entity_id_arg(ctx, entity_ids[i], "dt_lock_entities");
  /* One global order (byte order of "@name@key", as the other SDKs sort), without repeats. */
  qsort(ids, n, sizeof *ids, cmp_str);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (k == 0 || strcmp(ids[k - 1], ids[i]) != 0)
      ids[k++] = ids[i];
  if (k > MAX_LOCK_SET)
    fail_now(ctx, "InvalidArgument",
             dt_ctx_printf(ctx, "dt_lock_entities: %zu entities, at most %d may be locked at once", k, MAX_LOCK_SET),
             NULL);
  struct dt_task *t = task_new(ctx, K_LOCK);
  SendEntityMessageAction *m;
  entity_action(ctx, t, &m);
  EntityLockRequestedEvent *l = alloc0(ctx, sizeof *l);
  entity_lock_requested_event__init(l);
  l->criticalsectionid = (char *)dt_new_uuid(ctx);
  l->lockset = (char **)ids;
  l->n_lockset = k;
  l->position = 0;
  l->parentinstanceid = sv(ctx, ctx->instance_id);
  m->entity_message_type_case = SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_LOCK_REQUESTED;
  m->entitylockrequested = l;
  t->request_id = l->criticalsectionid;
  ctx->cs_id = l->criticalsectionid;
  ctx->cs_ids = ids;
  ctx->cs_n = k;
  ctx->cs_busy = alloc0(ctx, k * sizeof *ctx->cs_busy);
  ctx->cs_pending = true;
  return t;
}

static void unlock_all(dt_orch_ctx *ctx)
{
  if (!ctx->cs_id)
    return;
  for (size_t i = 0; i < ctx->cs_n; i++) {
    SendEntityMessageAction *m;
    entity_action(ctx, NULL, &m);
    EntityUnlockSentEvent *u = alloc0(ctx, sizeof *u);
    entity_unlock_sent_event__init(u);
    u->criticalsectionid = (char *)ctx->cs_id;
    u->parentinstanceid = sv(ctx, ctx->instance_id);
    u->targetinstanceid = sv(ctx, ctx->cs_ids[i]);
    m->entity_message_type_case = SEND_ENTITY_MESSAGE_ACTION__ENTITY_MESSAGE_TYPE_ENTITY_UNLOCK_SENT;
    m->entityunlocksent = u;
  }
  ctx->cs_id = NULL;
  ctx->cs_ids = NULL;
  ctx->cs_busy = NULL;
  ctx->cs_n = 0;
  ctx->cs_pending = false;
}

void dt_unlock_entities(dt_orch_ctx *ctx)
{
  unlock_all(ctx);
}

bool dt_in_critical_section(const dt_orch_ctx *ctx)
{
  return ctx->cs_id != NULL;
}

static const char *kind_label(const struct dt_task *t)
{
  switch (t->kind) {
  case K_ACTIVITY: return "Activity";
  case K_SUB: return "Sub-orchestration";
  case K_TIMER: return "Timer";
  case K_EVENT: return "Event";
  case K_RETRY: return t->retry_sub ? "Sub-orchestration" : "Activity";
  case K_ENTITY: return "Entity operation";
  case K_LOCK: return "Entity lock";
  default: return "Task";
  }
}

const char *dt_await(dt_orch_ctx *ctx, dt_task *t)
{
  if (!t)
    fail_now(ctx, "InvalidArgument", "dt_await: the task is NULL", NULL);
  wait_for(ctx, t);
  if (t->state == T_FAILED) {
    /* An uncaught task failure fails the orchestration, naming the task (as the other SDKs do). */
    /* Name the task that failed: through composites to the failed child, through retries to the last attempt. */
    const struct dt_task *src = t;
    for (;;) {
      if (src->kind == K_ALL && src->first_failure)
        src = src->first_failure;
      else if (src->kind == K_ANY && src->winner)
        src = src->winner;
      else if (src->kind == K_RETRY && src->current)
        src = src->current;
      else
        break;
    }
    const char *msg = dt_ctx_printf(ctx, "%s task #%d failed: %s", kind_label(src), src->id,
                                    t->failure && t->failure->message ? t->failure->message : "");
    fail_now(ctx, "TaskFailedError", msg, failure_to_pb(ctx, t->failure));
  }
  return t->result;
}

int dt_await_result(dt_orch_ctx *ctx, dt_task *t, const char **result)
{
  if (!t)
    fail_now(ctx, "InvalidArgument", "dt_await_result: the task is NULL", NULL);
  wait_for(ctx, t);
  if (t->state == T_FAILED)
    return DT_ERR_TASK_FAILED;
  if (result)
    *result = t->result;
  return DT_OK;
}

bool dt_task_is_done(const dt_task *t)
{
  return t && t->state != T_PENDING;
}

const dt_failure *dt_task_failure(const dt_task *t)
{
  return t && t->state == T_FAILED ? t->failure : NULL;
}

dt_task *dt_task_winner(const dt_task *t)
{
  return t && t->kind == K_ANY ? t->winner : NULL;
}

const char *dt_task_result(const dt_task *t)
{
  return t && t->state == T_DONE ? t->result : NULL;
}

void dt_set_custom_status(dt_orch_ctx *ctx, const char *status)
{
  ctx->custom_status = sdup(ctx, status);
}

int64_t dt_now_ms(const dt_orch_ctx *ctx)
{
  return ctx->now_us / 1000;
}

bool dt_is_replaying(const dt_orch_ctx *ctx)
{
  return ctx->replaying;
}

const char *dt_instance_id(const dt_orch_ctx *ctx)
{
  return ctx->instance_id;
}

const char *dt_orchestration_name(const dt_orch_ctx *ctx)
{
  return ctx->name;
}

const char *dt_orchestration_version(const dt_orch_ctx *ctx)
{
  return ctx->version;
}

const char *dt_parent_instance_id(const dt_orch_ctx *ctx)
{
  return ctx->parent_iid;
}

const char *dt_new_uuid(dt_orch_ctx *ctx)
{
  /* "<instance id>_<clock as %Y-%m-%dT%H:%M:%S.%fZ>_<counter>", exactly as Python and JS format it. */
  time_t secs = (time_t)(ctx->now_us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char when[64];
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ctx->now_us % 1000000));
  const char *name = dt_ctx_printf(ctx, "%s_%s_%d", ctx->instance_id, when, ctx->uuid_counter++);
  char *out = alloc0(ctx, 37);
  dt__uuid5_string(name, out);
  return out;
}

/* ------------------------------------------------------------------ the executor */

static OrchestratorAction *completion_action(dt_orch_ctx *ctx)
{
  OrchestratorAction *a = new_action(ctx, NULL);
  CompleteOrchestrationAction *c = alloc0(ctx, sizeof *c);
  complete_orchestration_action__init(c);
  c->orchestrationstatus = ctx->status;
  c->result = sv(ctx, ctx->output);
  c->failuredetails = ctx->failure;
  if (ctx->status == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW && ctx->keep_events) {
    size_t n = 0;
    for (struct buffered_event *b = ctx->buffered; b; b = b->next)
      n++;
    c->carryoverevents = alloc0(ctx, (n ? n : 1) * sizeof *c->carryoverevents);
    for (struct buffered_event *b = ctx->buffered; b; b = b->next) {
      HistoryEvent *e = alloc0(ctx, sizeof *e);
      history_event__init(e);
      e->eventid = -1;
      e->timestamp = ts(ctx, (ctx->now_us / 1000));
      EventRaisedEvent *r = alloc0(ctx, sizeof *r);
      event_raised_event__init(r);
      r->name = (char *)b->raw_name;
      r->input = sv(ctx, b->data);
      e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED;
      e->eventraised = r;
      c->carryoverevents[c->n_carryoverevents++] = e;
    }
  }
  a->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
  a->completeorchestration = c;
  return a;
}

/* The SDK half of a rewind: hand back the history with the failures taken out (protocol: rewind). NULL when
 * there is no randomness for the new execution id. */
static OrchestratorAction *rewind_action(dt_orch_ctx *ctx)
{
  size_t n = ctx->n_events;
  int32_t *failed = alloc0(ctx, (n ? n : 1) * sizeof *failed);
  size_t nf = 0;
  for (size_t i = 0; i < n; i++)
    if (ctx->events[i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_TASK_FAILED)
      failed[nf++] = ctx->events[i]->taskfailed->taskscheduledid;
  RewindOrchestrationAction *r = alloc0(ctx, sizeof *r);
  rewind_orchestration_action__init(r);
  r->newhistory = alloc0(ctx, (n ? n : 1) * sizeof *r->newhistory);
  char exec[33];
  if (dt__random_hex32(exec) != DT_OK)
    return NULL; /* no new execution id: the work item is not done */
  for (size_t i = 0; i < n; i++) {
    HistoryEvent *e = ctx->events[i];
    int type = (int)e->event_type_case;
    if (type == HISTORY_EVENT__EVENT_TYPE_TASK_FAILED ||
        type == HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED ||
        type == HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED)
      continue;
    if (type == HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED) {
      bool drop = false;
      for (size_t j = 0; j < nf && !drop; j++)
        drop = failed[j] == e->eventid;
      if (drop)
        continue;
    }
    if (type == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED && e->executionstarted->orchestrationinstance) {
      /* A copy with the new execution id: the request belongs to the caller. */
      HistoryEvent *c = alloc0(ctx, sizeof *c);
      *c = *e;
      ExecutionStartedEvent *es = alloc0(ctx, sizeof *es);
      *es = *e->executionstarted;
      OrchestrationInstance *oi = alloc0(ctx, sizeof *oi);
      *oi = *e->executionstarted->orchestrationinstance;
      oi->executionid = sv(ctx, exec);
      es->orchestrationinstance = oi;
      c->executionstarted = es;
      e = c;
    }
    r->newhistory[r->n_newhistory++] = e;
  }
  OrchestratorAction *a = alloc0(ctx, sizeof *a);
  orchestrator_action__init(a);
  a->id = -1;
  a->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_REWIND_ORCHESTRATION;
  a->rewindorchestration = r;
  return a;
}

static bool has_type(HistoryEvent **evs, size_t n, int type)
{
  for (size_t i = 0; i < n; i++)
    if ((int)evs[i]->event_type_case == type)
      return true;
  return false;
}

struct run {
  dt_orch_ctx *ctx;
  const struct dt__orchestrator *o;
  const char *input;
  bool started;
};

static void run_body(struct run *r)
{
  dt_orch_ctx *ctx = r->ctx;
  /* Up to and including ExecutionStarted: the orchestration's clock and input. */
  ExecutionStartedEvent *es = NULL;
  while (!es && ctx->pos < ctx->n_events) {
    HistoryEvent *e = ctx->events[ctx->pos];
    if (e->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED) {
      es = e->executionstarted;
      ctx->replaying = ctx->pos < ctx->n_past;
      ctx->pos++;
    } else {
      step(ctx);
    }
  }
  if (!es)
    fail_now(ctx, "OrchestrationStateError", "the history has no ExecutionStarted event", NULL);
  ctx->name = es->name;
  ctx->version = svs(es->version);
  if (es->parentinstance && es->parentinstance->orchestrationinstance)
    ctx->parent_iid = es->parentinstance->orchestrationinstance->instanceid;
  if (!r->o)
    fail_now(ctx, "OrchestratorNotRegistered",
             dt_ctx_printf(ctx, "no orchestrator named '%s' is registered with this worker", es->name), NULL);
  const char *in = svs(es->input);
  r->started = true;
  const char *out = r->o->fn(ctx, in && *in ? in : NULL, r->o->user_data);
  finish(ctx, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED, sdup(ctx, out), NULL);
}

static int pack(const OrchestratorResponse *resp, uint8_t **out, size_t *out_len)
{
  size_t len = orchestrator_response__get_packed_size(resp);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return DT_ERR_NOMEM;
  orchestrator_response__pack(resp, buf);
  *out = buf;
  *out_len = len;
  return DT_OK;
}

/* The actions the history does not confirm, in id order, with the completion (if any) last. */
static void collect_actions(dt_orch_ctx *ctx, OrchestratorResponse *resp)
{
  /* Ending inside a critical section closes it, as leaving a `with` block does in Python. */
  if (ctx->complete && !ctx->nondeterministic && ctx->status != ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED)
    unlock_all(ctx);
  OrchestratorAction *done = ctx->complete ? completion_action(ctx) : NULL;
  size_t count = 0;
  for (int32_t id = 1; id <= ctx->seq; id++)
    if (ctx->actions[id].a && !ctx->actions[id].confirmed)
      count++;
  resp->actions = alloc0(ctx, (count ? count : 1) * sizeof *resp->actions);
  for (int32_t id = 1; id <= ctx->seq && !ctx->nondeterministic; id++) {
    struct action *s = &ctx->actions[id];
    if (s->a && !s->confirmed && s->a != done)
      resp->actions[resp->n_actions++] = s->a;
  }
  if (done)
    resp->actions[resp->n_actions++] = done; /* continue-as-new must come last */
  resp->customstatus = sv(ctx, ctx->custom_status);
}

static const struct dt__orchestrator *lookup(const struct dt__orchestrator *orchs, size_t n, HistoryEvent **evs,
                                             size_t nevs)
{
  for (size_t i = 0; i < nevs; i++)
    if (evs[i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED) {
      for (size_t k = 0; k < n; k++)
        if (strcmp(orchs[k].name, evs[i]->executionstarted->name) == 0)
          return &orchs[k];
      return NULL;
    }
  return NULL;
}

int dt__replay(const struct dt__orchestrator *orchs, size_t n, const OrchestratorRequest *req, const char *token,
               uint8_t **out, size_t *out_len)
{
  dt_orch_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return DT_ERR_NOMEM;
  dt__arena_init(&ctx->arena);
  ctx->instance_id = req->instanceid;
  ctx->execution_id = svs(req->executionid);
  ctx->n_past = req->n_pastevents;
  ctx->n_events = req->n_pastevents + req->n_newevents;
  ctx->replaying = true;
  OrchestratorResponse resp = ORCHESTRATOR_RESPONSE__INIT;
  resp.instanceid = req->instanceid;
  resp.completiontoken = (char *)(token ? token : "");
  volatile int rc = DT_ERR_NOMEM; /* set between setjmp and a possible longjmp */

  if (setjmp(ctx->jb) == 0) {
    ctx->events = alloc0(ctx, (ctx->n_events ? ctx->n_events : 1) * sizeof *ctx->events);
    if (req->n_pastevents) /* protobuf-c leaves empty lists NULL */
      memcpy(ctx->events, req->pastevents, req->n_pastevents * sizeof *ctx->events);
    if (req->n_newevents)
      memcpy(ctx->events + req->n_pastevents, req->newevents, req->n_newevents * sizeof *ctx->events);
    if (has_type(req->newevents, req->n_newevents, HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND) &&
        has_type(req->pastevents, req->n_pastevents, HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED)) {
      /* The history goes back as it came: not one the server could not decode (the one walk of the request, here
       * and not on every replay). */
      if (dt__pb_unwritable(&req->base)) {
        rc = DT_ERR_INVALID_ARG;
        goto out;
      }
      resp.actions = alloc0(ctx, sizeof *resp.actions);
      resp.actions[0] = rewind_action(ctx);
      resp.n_actions = 1;
      rc = resp.actions[0] ? pack(&resp, out, out_len) : DT_ERR_INTERNAL;
      goto out;
    }
    struct run r = {ctx, lookup(orchs, n, ctx->events, ctx->n_events), NULL, false};
    run_body(&r);
  }
  /* Here the code returned, failed, continued as new, or is waiting on something the history lacks. */
  if (ctx->oom)
    goto out;
  if (ctx->complete && setjmp(ctx->jb) == 0)
    while (step(ctx)) /* later events still count for what a continue-as-new carries over */
      ;
  if (ctx->oom)
    goto out;
  if (setjmp(ctx->jb) == 0) {
    collect_actions(ctx, &resp);
    rc = pack(&resp, out, out_len);
  }
out:
  dt__arena_free(&ctx->arena);
  free(ctx);
  return rc;
}
