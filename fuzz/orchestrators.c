/* See orchestrators.h. Written for the fuzzer: each reaches a different part of the SDK's orchestration API. */
#include "orchestrators.h"

#include <stdlib.h>
#include <string.h>

static const char *nz(const char *s)
{
  return s ? s : "null";
}

static const char *o_chain(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_activity(ctx, "hello", "\"Tokyo\""));
  const char *b = dt_await(ctx, dt_call_activity(ctx, "hello", a));
  return dt_await(ctx, dt_call_activity(ctx, "hello", b));
}

static const char *o_fanout(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *t[3];
  for (int i = 0; i < 3; i++)
    t[i] = dt_call_activity(ctx, "square", dt_ctx_printf(ctx, "%d", i + 1));
  dt_await(ctx, dt_when_all(ctx, t, 3));
  long sum = 0;
  for (int i = 0; i < 3; i++)
    sum += strtol(nz(dt_task_result(t[i])), NULL, 10);
  return dt_ctx_printf(ctx, "%ld", sum);
}

static const char *o_any(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *ev = dt_wait_event(ctx, "approval");
  dt_task *pair[2] = {ev, dt_create_timer_in(ctx, 60000)};
  dt_task *any = dt_when_any(ctx, pair, 2);
  dt_await(ctx, any);
  const char *first = dt_task_winner(any) == ev ? nz(dt_task_result(ev)) : "timeout";
  return dt_ctx_printf(ctx, "%s|%s", first, nz(dt_await(ctx, dt_wait_event(ctx, "approval"))));
}

static const char *o_events(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_call_activity(ctx, "step", NULL));
  dt_task *w[2] = {dt_wait_event(ctx, "x"), dt_wait_event(ctx, "X")};
  dt_await(ctx, dt_when_all(ctx, w, 2));
  const char *v = dt_await(ctx, dt_wait_event(ctx, "go"));
  return dt_await(ctx, dt_call_activity(ctx, "after", v));
}

static const char *o_can(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_wait_event(ctx, "a"));
  dt_send_event(ctx, "other", "ping", a);
  dt_continue_as_new(ctx, "\"next\"", !(input && strcmp(input, "\"drop\"") == 0));
}

static const char *o_status(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_set_custom_status(ctx, "\"starting\"");
  dt_await(ctx, dt_call_activity(ctx, "a", NULL));
  dt_set_custom_status(ctx, dt_ctx_printf(ctx, "{\"at\":%lld}", (long long)dt_now_ms(ctx)));
  dt_await(ctx, dt_call_activity(ctx, "b", NULL));
  dt_set_custom_status(ctx, NULL);
  return dt_is_replaying(ctx) ? "\"replayed\"" : "\"done\"";
}

static const char *o_uuid(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *u1 = dt_new_uuid(ctx);
  dt_await(ctx, dt_create_timer_in(ctx, 60000));
  return dt_ctx_printf(ctx, "%s,%s,%s", u1, dt_new_uuid(ctx), nz(dt_parent_instance_id(ctx)));
}

static const char *o_parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_sub_orchestrator(ctx, "child", NULL, "\"in\""));
  dt_retry_policy p = {.max_attempts = 2, .first_delay_ms = 100};
  dt_task *t = dt_call_sub_orchestrator_retry(ctx, "child", "explicit-id", NULL, &p);
  const char *r = NULL;
  if (dt_await_result(ctx, t, &r) == DT_ERR_TASK_FAILED)
    return dt_ctx_printf(ctx, "%s|%s", nz(a), nz(dt_task_failure(t)->message));
  return dt_ctx_printf(ctx, "%s|%s", nz(a), nz(r));
}

static const char *o_sub_hex(dt_orch_ctx *ctx, const char *input, void *ud)
{
  for (int i = 0; i < 9; i++)
    dt_call_activity(ctx, "noop", NULL);
  return dt_await(ctx, dt_call_sub_orchestrator(ctx, "child", NULL, NULL));
}

static const char *o_sender(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_send_event(ctx, "other-iid", "Ping", "\"hi\"");
  dt_await(ctx, dt_call_activity(ctx, "a", NULL));
  return "\"done\"";
}

static const char *o_fail(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *r = dt_await(ctx, dt_call_activity(ctx, "check", NULL));
  if (strcmp(nz(r), "\"bad\"") == 0)
    dt_orch_fail(ctx, "ValidationError", "the input was rejected");
  return r;
}

static const char *o_compensate(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *t = dt_call_activity(ctx, "risky", "\"x\"");
  const char *r = NULL;
  if (dt_await_result(ctx, t, &r) == DT_ERR_TASK_FAILED) {
    const dt_failure *f = dt_task_failure(t);
    return dt_await(ctx, dt_call_activity(ctx, "undo", dt_ctx_printf(ctx, "%s: %s", nz(f ? f->error_type : NULL),
                                                                      nz(f ? f->message : NULL))));
  }
  return r;
}

static const char *o_retry(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_retry_policy p = {.max_attempts = 3, .first_delay_ms = 1000, .backoff = 2.0, .max_delay_ms = 5000,
                       .max_total_ms = 60000};
  return dt_await(ctx, dt_call_activity_retry(ctx, "flaky", "\"x\"", &p));
}

static bool refuse_fatal(const dt_failure *f, int attempt, void *ud)
{
  return !(f && f->error_type && strcmp(f->error_type, "Fatal") == 0) && attempt < 10;
}

static const char *o_retry_handler(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_retry_policy p = {.max_attempts = 5, .first_delay_ms = 500, .handler = refuse_fatal};
  return dt_await(ctx, dt_call_activity_retry(ctx, "flaky", NULL, &p));
}

static const char *o_long_timer(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_create_timer_in(ctx, 7LL * 24 * 3600 * 1000));
  dt_await(ctx, dt_create_timer(ctx, dt_now_ms(ctx) + 1000));
  return "\"woke\"";
}

static const char *o_entities(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *v = dt_await(ctx, dt_call_entity(ctx, "@counter@a", "add", "1"));
  dt_signal_entity(ctx, "@counter@b", "add", v, 0);
  dt_signal_entity(ctx, "@counter@b", "reset", NULL, dt_now_ms(ctx) + 60000);
  const char *ids[] = {"@counter@b", "@counter@a"};
  dt_await(ctx, dt_lock_entities(ctx, ids, 2));
  const char *r = NULL;
  dt_task *t = dt_call_entity(ctx, "@counter@a", "get", NULL);
  int rc = dt_await_result(ctx, t, &r);
  dt_unlock_entities(ctx);
  return rc == DT_OK ? r : "\"failed\"";
}

#define ORCH(n, f) {(char *)(n), (f), NULL}

const struct dt__orchestrator fz_orchestrators[] = {
    ORCH("Chain", o_chain),         ORCH("FanOut", o_fanout),       ORCH("AnyEventTimer", o_any),
    ORCH("Buffered", o_events),     ORCH("TwoWaiters", o_events),   ORCH("WaitGo", o_events),
    ORCH("Can", o_can),             ORCH("Status", o_status),       ORCH("Clock", o_status),
    ORCH("Uuid", o_uuid),           ORCH("Parent", o_parent),       ORCH("SubHex", o_sub_hex),
    ORCH("Sender", o_sender),       ORCH("Fail", o_fail),           ORCH("Compensate", o_compensate),
    ORCH("Retry", o_retry),         ORCH("RetryHandler", o_retry_handler), ORCH("LongTimer", o_long_timer),
    ORCH("Entities", o_entities),   ORCH("RecChain", o_chain),      ORCH("RecFanOut", o_fanout),
};
const size_t fz_n_orchestrators = sizeof fz_orchestrators / sizeof fz_orchestrators[0];

/* counter: add, get, reset, delete, and a failure for anything else. */
static const char *e_counter(dt_entity_ctx *ctx, const char *operation, const char *input, void *ud)
{
  long v = strtol(nz(dt_entity_state(ctx)), NULL, 10);
  if (strcmp(operation, "add") == 0) {
    dt_entity_set_state(ctx, dt_entity_printf(ctx, "%ld", v + strtol(nz(input), NULL, 10)));
    dt_entity_signal(ctx, "@counter@other", "get", NULL, 0);
    return NULL;
  }
  if (strcmp(operation, "get") == 0)
    return dt_entity_state(ctx);
  if (strcmp(operation, "reset") == 0) {
    dt_entity_set_state(ctx, "0");
    return NULL;
  }
  if (strcmp(operation, "delete") == 0) {
    dt_entity_delete_state(ctx);
    dt_entity_start_orchestration(ctx, "Chain", NULL, "\"from an entity\"", NULL);
    return NULL;
  }
  dt_entity_fail(ctx, "UnknownOperation", operation);
  return NULL;
}

const struct dt__entity fz_entities[] = {{(char *)"counter", e_counter, NULL}};
const size_t fz_n_entities = sizeof fz_entities / sizeof fz_entities[0];

static const char *started_name(HistoryEvent *const *ev, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (ev[i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED && ev[i]->executionstarted)
      return ev[i]->executionstarted->name;
  return NULL;
}

const char *fz_orchestration_name(const OrchestratorRequest *req)
{
  const char *n = started_name(req->pastevents, req->n_pastevents);
  if (!n)
    n = started_name(req->newevents, req->n_newevents);
  return n ? n : "";
}
