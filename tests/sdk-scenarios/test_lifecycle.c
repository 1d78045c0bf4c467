/*
 * Lifecycle scenarios, C SDK as worker and client (mirrors test_worker.py sections 5-9 and
 * worker-lifecycle.test.js): sub-orchestrations (success, SDK-generated id, failure caught with dt_await_result +
 * dt_task_failure, failure not caught), continue-as-new (plain, carrying events with keep_events, dropping them
 * without), suspend/resume, terminate (of a suspended instance, recursive, of a child the parent waits on),
 * activity retries.
 */
#include "sc.h"

/* ------------------------------------------------------------------ activities */

static const char *double_act(dt_activity_ctx *a, const char *input, void *ud)
{
  return dt_activity_printf(a, "%lld", sc_json_int(input) * 2);
}

static const char *flaky_twice(dt_activity_ctx *a, const char *input, void *ud)
{
  int n = sc_record("flaky", dt_activity_instance_id(a), dt_activity_task_id(a));
  if (n <= 2) {
    dt_activity_fail(a, "ConnectionError", dt_activity_printf(a, "transient failure %d", n));
    return NULL;
  }
  return dt_activity_printf(a, "\"%s ok after %d attempts\"", sc_unquote_act(a, input), n);
}

static const char *always_fails(dt_activity_ctx *a, const char *input, void *ud)
{
  int n = sc_record("always", dt_activity_instance_id(a), dt_activity_task_id(a));
  dt_activity_fail(a, "PermissionError", dt_activity_printf(a, "permanent failure, attempt %d", n));
  return NULL;
}

/* ------------------------------------------------------------------ orchestrators */

static const char *child_ok(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *doubled = dt_await(ctx, dt_call_activity(ctx, "double", input));
  return dt_ctx_printf(ctx, "{\"doubled\":%s,\"me\":%s,\"parent\":%s}", doubled, sc_json_str(ctx, dt_instance_id(ctx)),
                       sc_json_str(ctx, dt_parent_instance_id(ctx)));
}

static const char *parent_ok(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *r = dt_await(ctx, dt_call_sub_orchestrator(ctx, "child_ok", sc_child_id(ctx), input));
  return dt_ctx_printf(ctx, "{\"child\":%s}", r);
}

static const char *parent_default_id(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_await(ctx, dt_call_sub_orchestrator(ctx, "child_ok", NULL, input));
}

static const char *child_fail(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_orch_fail(ctx, "ChildOrchestrationError", sc_unquote_ctx(ctx, input));
}

static const char *parent_catches(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *t = dt_call_sub_orchestrator(ctx, "child_fail", sc_child_id(ctx), input);
  int rc = dt_await_result(ctx, t, NULL);
  if (rc == DT_ERR_TASK_FAILED) {
    const dt_failure *f = dt_task_failure(t);
    return dt_ctx_printf(ctx, "{\"caught\":%s,\"error_type\":%s}", sc_json_str(ctx, f ? f->message : NULL),
                         sc_json_str(ctx, f ? f->error_type : NULL));
  }
  return dt_ctx_printf(ctx, "\"child did not fail (rc %d)\"", rc);
}

static const char *parent_does_not_catch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_call_sub_orchestrator(ctx, "child_fail", sc_child_id(ctx), input));
  return "\"child did not fail\"";
}

static const char *counter_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  long long n = sc_json_int(input);
  if (n < 10)
    dt_continue_as_new(ctx, dt_ctx_printf(ctx, "%lld", n + 1), false);
  const char *d = dt_await(ctx, dt_call_activity(ctx, "double", input));
  return dt_ctx_printf(ctx, "{\"n\":%lld,\"d\":%s}", n, d);
}

/* state [n, target, events...]: takes one "item" per execution and continues as new (keeping the events raised
 * meanwhile) until it has |target| of them. */
static const char *can_collect_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *ev = dt_await(ctx, dt_wait_event(ctx, "item"));
  long long n = sc_json_array_int(input, 0) + 1, target = sc_json_array_int(input, 1);
  size_t len = sc_json_array_len(input);
  const char *events = "";
  for (size_t i = 2; i < len; i++)
    events = dt_ctx_printf(ctx, "%s%lld,", events, sc_json_array_int(input, i));
  events = dt_ctx_printf(ctx, "%s%s", events, ev);
  if (n < target)
    dt_continue_as_new(ctx, dt_ctx_printf(ctx, "[%lld,%lld,%s]", n, target, events), true);
  return dt_ctx_printf(ctx, "{\"n\":%lld,\"events\":[%s],\"instance\":%s}", n, events,
                       sc_json_str(ctx, dt_instance_id(ctx)));
}

/* input [round, first]: round 0 takes one "Tick" and continues as new WITHOUT keep_events; round 1 waits 1 s for
 * another "Tick". */
static const char *forget_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  if (sc_json_array_int(input, 0) == 0) {
    dt_await(ctx, dt_wait_event(ctx, "Go"));
    const char *v = dt_await(ctx, dt_wait_event(ctx, "Tick"));
    dt_continue_as_new(ctx, dt_ctx_printf(ctx, "[1,%s]", v), false);
  }
  dt_task *ev = dt_wait_event(ctx, "Tick");
  dt_task *pair[2] = {ev, dt_create_timer_in(ctx, 1000)};
  dt_task *any = dt_when_any(ctx, pair, 2);
  dt_await(ctx, any);
  return dt_ctx_printf(ctx, "{\"first\":%lld,\"second\":%s}", sc_json_array_int(input, 1),
                       dt_task_winner(any) == ev ? dt_task_result(ev) : "\"timeout\"");
}

static const char *long_child(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_wait_event(ctx, "never"));
  return "\"child finished\"";
}

static const char *parent_of_long_child(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_await(ctx, dt_call_sub_orchestrator(ctx, "long_child", sc_child_id(ctx), NULL));
}

static const char *parent_catches_long_child(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *t = dt_call_sub_orchestrator(ctx, "long_child", sc_child_id(ctx), NULL);
  const char *r = NULL;
  if (dt_await_result(ctx, t, &r) == DT_ERR_TASK_FAILED)
    return dt_ctx_printf(ctx, "{\"caught\":%s}", sc_json_str(ctx, dt_task_failure(t)->message));
  return dt_ctx_printf(ctx, "{\"child returned\":%s}", r ? r : "null");
}

static const dt_retry_policy RETRY_200MS_X3 = {.max_attempts = 3, .first_delay_ms = 200, .backoff = 1.0};

static const char *retry_flaky_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_await(ctx, dt_call_activity_retry(ctx, "flaky_twice", input, &RETRY_200MS_X3));
}

static const char *retry_always_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_call_activity_retry(ctx, "always_fails", NULL, &RETRY_200MS_X3));
  return "\"unreachable\"";
}

static void reg(dt_worker *w)
{
  ASSERT_OK(dt_worker_add_activity(w, "double", double_act, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "flaky_twice", flaky_twice, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "always_fails", always_fails, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "child_ok", child_ok, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "parent_ok", parent_ok, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "parent_default_id", parent_default_id, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "child_fail", child_fail, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "parent_catches", parent_catches, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "parent_does_not_catch", parent_does_not_catch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "counter_orch", counter_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "can_collect_orch", can_collect_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "forget_orch", forget_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "wait_event_orch", sc_wait_event_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "long_child", long_child, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "parent_of_long_child", parent_of_long_child, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "parent_catches_long_child", parent_catches_long_child, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "retry_flaky_orch", retry_flaky_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "retry_always_orch", retry_always_orch, NULL));
}

/* ------------------------------------------------------------------ 5. sub-orchestrations */

TEST_IMPL(scen_sub_orchestration_success)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96], cid[128], want[512];
  sc_id(iid, sizeof iid, "parent-ok");
  snprintf(cid, sizeof cid, "%s-child", iid);
  sc_schedule(&h, "parent_ok", "21", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  snprintf(want, sizeof want, "{\"doubled\":42,\"me\":\"%s\",\"parent\":\"%s\"}", cid, iid);
  char want_parent[600];
  snprintf(want_parent, sizeof want_parent, "{\"child\":%s}", want);
  ASSERT_STR_EQ(st->output, want_parent);
  ASSERT(st->parent_instance_id == NULL || st->parent_instance_id[0] == '\0'); /* top level: no parent */
  dt_instance_free(st);

  dt_instance *child = sc_get(&h, cid, true);
  SC_EXPECT_STATUS(child, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(child->name, "child_ok");
  ASSERT_STR_EQ(child->input, "21");
  ASSERT_STR_EQ(child->output, want);
  ASSERT_STR_EQ(child->parent_instance_id, iid);
  dt_instance_free(child);

  /* SubOrchestrationInstanceCreated names the child; the completion points back at it */
  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "SubOrchestrationInstanceCreated"), 1);
  ASSERT_EQ(sc_history_count(hist, "SubOrchestrationInstanceCompleted"), 1);
  const dt_event *created = sc_history_find(hist, "SubOrchestrationInstanceCreated", 0);
  const dt_event *done = sc_history_find(hist, "SubOrchestrationInstanceCompleted", 0);
  ASSERT_STR_EQ(created->instance_id, cid);
  ASSERT_STR_EQ(created->name, "child_ok");
  ASSERT_EQ(done->task_id, created->event_id);
  ASSERT_STR_EQ(done->payload, want);
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_sub_orchestration_default_id)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96], cid[128], want[512];
  sc_id(iid, sizeof iid, "parent-default");
  /* "<parent id>:<4 hex digits of the action id>", as the other SDKs derive it; the call is action 1 */
  snprintf(cid, sizeof cid, "%s:0001", iid);
  sc_schedule(&h, "parent_default_id", "5", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  snprintf(want, sizeof want, "{\"doubled\":10,\"me\":\"%s\",\"parent\":\"%s\"}", cid, iid);
  ASSERT_STR_EQ(st->output, want);
  dt_instance_free(st);
  dt_history *hist = sc_history(&h, iid);
  const dt_event *created = sc_history_find(hist, "SubOrchestrationInstanceCreated", 0);
  ASSERT(created != NULL);
  ASSERT_STR_EQ(created->instance_id, cid);
  dt_history_free(hist);
  dt_instance *child = sc_get(&h, cid, true);
  SC_EXPECT_STATUS(child, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(child->output, want);
  ASSERT_STR_EQ(child->parent_instance_id, iid);
  dt_instance_free(child);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_sub_orchestration_failure_caught)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96], cid[128];
  sc_id(iid, sizeof iid, "parent-catch");
  snprintf(cid, sizeof cid, "%s-child", iid);
  sc_schedule(&h, "parent_catches", "\"child exploded\"", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  /* dt_task_failure() of the sub-orchestration task carries the child's own failure details */
  ASSERT_STR_EQ(st->output, "{\"caught\":\"child exploded\",\"error_type\":\"ChildOrchestrationError\"}");
  dt_instance_free(st);

  dt_instance *child = sc_get(&h, cid, true);
  SC_EXPECT_STATUS(child, DT_STATUS_FAILED);
  ASSERT(child->failure != NULL);
  ASSERT_STR_EQ(child->failure->message, "child exploded");
  ASSERT_STR_EQ(child->failure->error_type, "ChildOrchestrationError");
  ASSERT_STR_EQ(child->parent_instance_id, iid);
  ASSERT(child->output == NULL);
  dt_instance_free(child);

  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "SubOrchestrationInstanceFailed"), 1);
  const dt_event *f = sc_history_find(hist, "SubOrchestrationInstanceFailed", 0);
  ASSERT_EQ(f->task_id, sc_history_find(hist, "SubOrchestrationInstanceCreated", 0)->event_id);
  ASSERT(f->failure != NULL);
  ASSERT_STR_EQ(f->failure->message, "child exploded");
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_sub_orchestration_failure_uncaught)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96], cid[128];
  sc_id(iid, sizeof iid, "parent-fail");
  snprintf(cid, sizeof cid, "%s-child", iid);
  sc_schedule(&h, "parent_does_not_catch", "\"child broke\"", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_FAILED);
  ASSERT(st->output == NULL);
  ASSERT(st->failure != NULL);
  ASSERT_STR_CONTAINS(st->failure->message, "child broke");
  ASSERT_STR_EQ(st->failure->error_type, "TaskFailedError");
  dt_instance_free(st);
  dt_instance *child = sc_get(&h, cid, true);
  SC_EXPECT_STATUS(child, DT_STATUS_FAILED);
  ASSERT_STR_EQ(child->failure->message, "child broke");
  dt_instance_free(child);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 6. continue-as-new */

TEST_IMPL(scen_continue_as_new_counter)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "counter");
  sc_schedule(&h, "counter_orch", "0", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"n\":10,\"d\":20}");
  ASSERT_STR_EQ(st->input, "10"); /* the instance input is the last execution's */
  dt_instance_free(st);
  /* the history holds only the current execution */
  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "ExecutionStarted"), 1);
  ASSERT_STR_EQ(sc_history_find(hist, "ExecutionStarted", 0)->payload, "10");
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_continue_as_new_keeps_events)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  enum { TARGET = 12 };
  char iid[96];
  sc_id(iid, sizeof iid, "can");
  char input[32];
  snprintf(input, sizeof input, "[0,%d]", TARGET);
  sc_schedule(&h, "can_collect_orch", input, iid);
  dt_instance *st = sc_started(&h, iid);
  char *exec0 = strdup(st->execution_id ? st->execution_id : "");
  dt_instance_free(st);
  /* raised back to back: most arrive while an execution is in flight and must be carried over */
  for (int i = 0; i < TARGET; i++) {
    char d[16];
    snprintf(d, sizeof d, "%d", i);
    sc_raise(&h, iid, "item", d);
  }
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  char want[256];
  snprintf(want, sizeof want, "{\"n\":12,\"events\":[0,1,2,3,4,5,6,7,8,9,10,11],\"instance\":\"%s\"}", iid);
  ASSERT_STR_EQ(st->output, want); /* no event lost, duplicated or reordered */
  /* the final execution's input is what the previous one passed to dt_continue_as_new */
  ASSERT_STR_EQ(st->input, "[11,12,0,1,2,3,4,5,6,7,8,9,10]");
  ASSERT(st->execution_id != NULL);
  ASSERT_EQ(strlen(st->execution_id), 32);
  ASSERT(strcmp(st->execution_id, exec0) != 0); /* a new execution */
  free(exec0);
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_continue_as_new_drops_events)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "forget");
  sc_schedule(&h, "forget_orch", "[0,0]", iid);
  dt_instance *st = sc_started(&h, iid);
  dt_instance_free(st);
  /* round 0 waits for "Go", so both ticks are buffered in round 0; the second is not carried over */
  sc_raise(&h, iid, "Tick", "1");
  sc_raise(&h, iid, "Tick", "2");
  sc_raise(&h, iid, "Go", NULL);
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"first\":1,\"second\":\"timeout\"}");
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 7. suspend / resume */

TEST_IMPL(scen_suspend_resume)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "suspend");
  sc_schedule(&h, "wait_event_orch", NULL, iid);
  dt_instance *st = sc_started(&h, iid);
  SC_EXPECT_STATUS(st, DT_STATUS_RUNNING);
  dt_instance_free(st);
  ASSERT_OK(dt_client_suspend(h.c, iid, "hold on"));
  st = sc_until_status(&h, iid, DT_STATUS_SUSPENDED, 15000);
  dt_instance_free(st);

  sc_raise(&h, iid, "proceed", "\"payload\"");
  /* the event must not complete a suspended orchestration: a completion wait runs into its deadline */
  st = NULL;
  ASSERT_EQ(dt_client_wait_completion(h.c, iid, 1500, true, &st), DT_ERR_TIMEOUT);
  ASSERT(st == NULL);
  st = sc_get(&h, iid, true);
  SC_EXPECT_STATUS(st, DT_STATUS_SUSPENDED);
  ASSERT(st->output == NULL);
  dt_instance_free(st);

  ASSERT_OK(dt_client_resume(h.c, iid, "go on"));
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"got\":\"payload\"}");
  dt_instance_free(st);

  /* history: suspended, then resumed; the event is committed after the suspension */
  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "ExecutionSuspended"), 1);
  ASSERT_EQ(sc_history_count(hist, "ExecutionResumed"), 1);
  ASSERT_EQ(sc_history_count(hist, "EventRaised"), 1);
  const dt_event *susp = sc_history_find(hist, "ExecutionSuspended", 0);
  const dt_event *res = sc_history_find(hist, "ExecutionResumed", 0);
  const dt_event *raised = sc_history_find(hist, "EventRaised", 0);
  ASSERT_STR_EQ(raised->name, "proceed");
  ASSERT(susp < res);
  ASSERT(susp < raised);
  ASSERT_STR_EQ(susp->payload, "hold on");
  ASSERT_STR_EQ(res->payload, "go on");
  ASSERT_STR_EQ(hist->events[hist->n - 1].type, "ExecutionCompleted");
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_terminate_suspended)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "suspend-term");
  sc_schedule(&h, "wait_event_orch", NULL, iid);
  dt_instance *st = sc_started(&h, iid);
  dt_instance_free(st);
  ASSERT_OK(dt_client_suspend(h.c, iid, NULL));
  st = sc_until_status(&h, iid, DT_STATUS_SUSPENDED, 15000);
  dt_instance_free(st);
  ASSERT_OK(dt_client_terminate(h.c, iid, "{\"why\":\"suspended too long\"}", false));
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_TERMINATED);
  ASSERT_STR_EQ(st->output, "{\"why\":\"suspended too long\"}");
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 8. terminate */

TEST_IMPL(scen_recursive_terminate)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96], cid[128];
  sc_id(iid, sizeof iid, "term-parent");
  snprintf(cid, sizeof cid, "%s-child", iid);
  sc_schedule(&h, "parent_of_long_child", NULL, iid);
  dt_instance *st = sc_until_status(&h, cid, DT_STATUS_RUNNING, 15000);
  dt_instance_free(st);
  st = sc_get(&h, iid, false);
  SC_EXPECT_STATUS(st, DT_STATUS_RUNNING);
  dt_instance_free(st);

  ASSERT_OK(dt_client_terminate(h.c, iid, "\"stopped by test\"", true));
  dt_instance *parent = sc_done(&h, iid, SC_WAIT_MS);
  dt_instance *child = sc_done(&h, cid, SC_WAIT_MS);
  SC_EXPECT_STATUS(parent, DT_STATUS_TERMINATED);
  SC_EXPECT_STATUS(child, DT_STATUS_TERMINATED);
  ASSERT_STR_EQ(parent->output, "\"stopped by test\"");
  ASSERT_STR_EQ(child->output, "\"stopped by test\"");
  ASSERT(parent->failure == NULL && child->failure == NULL);
  ASSERT_STR_EQ(child->parent_instance_id, iid);
  dt_instance_free(parent);
  dt_instance_free(child);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_terminated_child_fails_parent_task)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96], cid[128];
  sc_id(iid, sizeof iid, "term-child");
  snprintf(cid, sizeof cid, "%s-child", iid);
  sc_schedule(&h, "parent_catches_long_child", NULL, iid);
  dt_instance *st = sc_until_status(&h, cid, DT_STATUS_RUNNING, 15000);
  dt_instance_free(st);
  ASSERT_OK(dt_client_terminate(h.c, cid, "\"child killed\"", false));
  dt_instance *child = sc_done(&h, cid, SC_WAIT_MS);
  SC_EXPECT_STATUS(child, DT_STATUS_TERMINATED);
  ASSERT_STR_EQ(child->output, "\"child killed\"");
  dt_instance_free(child);
  /* the parent's sub-orchestration task fails (it must not wait forever) */
  dt_instance *parent = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(parent, DT_STATUS_COMPLETED);
  ASSERT_STR_CONTAINS(parent->output, "\"caught\"");
  ASSERT_STR_CONTAINS(parent->output, "child killed");
  dt_instance_free(parent);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 9. activity retries */

TEST_IMPL(scen_activity_retry_succeeds)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "retry-ok");
  int64_t t0 = sc_mono_ms();
  sc_schedule(&h, "retry_flaky_orch", "\"job\"", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  int64_t elapsed = sc_mono_ms() - t0;
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "\"job ok after 3 attempts\"");
  dt_instance_free(st);
  ASSERT_EQ(sc_attempts("flaky", iid), 3);
  ASSERT_GE(elapsed, 400);   /* two 200 ms retry timers elapsed */
  ASSERT_LT(elapsed, 10000); /* and were dispatched promptly */
  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "TaskScheduled"), 3);
  ASSERT_EQ(sc_history_count(hist, "TaskFailed"), 2);
  ASSERT_EQ(sc_history_count(hist, "TimerFired"), 2); /* one retry timer per failure */
  ASSERT_EQ(sc_history_count(hist, "TaskCompleted"), 1);
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_activity_retry_exhausted)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "retry-fail");
  sc_schedule(&h, "retry_always_orch", NULL, iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_FAILED);
  ASSERT_EQ(sc_attempts("always", iid), 3);
  ASSERT(st->failure != NULL);
  ASSERT_STR_EQ(st->failure->error_type, "TaskFailedError");
  ASSERT_STR_CONTAINS(st->failure->message, "permanent failure, attempt 3");
  ASSERT(st->output == NULL);
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}
