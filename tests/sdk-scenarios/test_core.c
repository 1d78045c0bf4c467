/*
 * Core scenarios, C SDK as worker and client (mirrors test_worker.py sections 1-4, 10, 11 and worker.test.js):
 * function chaining, fan-out/fan-in over 1,000 activities, durable timers, external events (raced against a
 * timer, buffered in order, raised before the start), orchestrator and activity failures, custom status.
 */
#include "sc.h"

/* ------------------------------------------------------------------ activities */

static const char *chain_step(dt_activity_ctx *a, const char *input, void *ud)
{
  sc_record("chain", dt_activity_instance_id(a), dt_activity_task_id(a));
  long long i = sc_json_array_int(input, 0), v = sc_json_array_int(input, 1);
  return dt_activity_printf(a, "%lld", v * 3 + i);
}

static const char *square(dt_activity_ctx *a, const char *input, void *ud)
{
  sc_record("square", dt_activity_instance_id(a), dt_activity_task_id(a));
  long long n = sc_json_int(input);
  return dt_activity_printf(a, "%lld", n * n);
}

static const char *echo(dt_activity_ctx *a, const char *input, void *ud)
{
  return input;
}

static const char *disk_full(dt_activity_ctx *a, const char *input, void *ud)
{
  sc_record("disk_full", dt_activity_instance_id(a), dt_activity_task_id(a));
  dt_activity_fail(a, "IOError", "disk full on /var/data");
  return NULL;
}

/* ------------------------------------------------------------------ orchestrators */

static const char *chain_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  long long v = sc_json_int(input);
  const char *out = "[";
  for (int i = 0; i < 5; i++) {
    const char *r = dt_await(ctx, dt_call_activity(ctx, "chain_step", dt_ctx_printf(ctx, "[%d,%lld]", i, v)));
    v = sc_json_int(r);
    out = dt_ctx_printf(ctx, "%s%s%s", out, i ? "," : "", r);
  }
  return dt_ctx_printf(ctx, "%s]", out);
}

static const char *fan_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  long long n = sc_json_int(input);
  dt_task **tasks = dt_ctx_alloc(ctx, (size_t)n * sizeof *tasks);
  for (long long i = 0; i < n; i++)
    tasks[i] = dt_call_activity(ctx, "square", dt_ctx_printf(ctx, "%lld", i));
  dt_await(ctx, dt_when_all(ctx, tasks, (size_t)n));
  long long sum = 0;
  bool in_order = true;
  for (long long i = 0; i < n; i++) {
    long long r = sc_json_int(dt_task_result(tasks[i]));
    sum += r;
    in_order = in_order && r == i * i;
  }
  return dt_ctx_printf(ctx, "{\"count\":%lld,\"sum\":%lld,\"in_order\":%s}", n, sum, in_order ? "true" : "false");
}

/* input [kind, ms]: kind 0 = dt_create_timer_in(ms), 1 = an absolute fireAt 5 s in the past,
 * 2 = dt_create_timer(now + ms). Output [start, fire_at, after] in ms since the epoch. */
static const char *timer_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  long long kind = sc_json_array_int(input, 0), ms = sc_json_array_int(input, 1);
  int64_t start = dt_now_ms(ctx), fire_at;
  if (kind == 0) {
    fire_at = start + ms;
    dt_await(ctx, dt_create_timer_in(ctx, ms));
  } else if (kind == 1) {
    fire_at = start - 5000;
    dt_await(ctx, dt_create_timer(ctx, fire_at));
  } else {
    fire_at = start + ms;
    dt_await(ctx, dt_create_timer(ctx, fire_at));
  }
  return dt_ctx_printf(ctx, "[%lld,%lld,%lld]", (long long)start, (long long)fire_at, (long long)dt_now_ms(ctx));
}

static const char *two_timers(dt_orch_ctx *ctx, const char *input, void *ud)
{
  int64_t t0 = dt_now_ms(ctx);
  int64_t a = t0 + sc_json_array_int(input, 0), b = t0 + sc_json_array_int(input, 1);
  dt_task *t[2] = {dt_create_timer(ctx, a), dt_create_timer(ctx, b)};
  dt_await(ctx, dt_when_all(ctx, t, 2));
  return dt_ctx_printf(ctx, "[%lld,%lld,%lld]", (long long)a, (long long)b, (long long)dt_now_ms(ctx));
}

static const char *approval_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *timer = dt_create_timer_in(ctx, sc_json_int(input));
  dt_task *approval = dt_wait_event(ctx, "approval");
  dt_task *both[2] = {approval, timer};
  dt_task *any = dt_when_any(ctx, both, 2);
  dt_await(ctx, any);
  if (dt_task_winner(any) == approval)
    return dt_ctx_printf(ctx, "{\"result\":\"approved\",\"data\":%s}", dt_task_result(approval));
  ASSERT(dt_task_winner(any) == timer);
  return "{\"result\":\"timed out\"}";
}

static const char *buffered_events_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_wait_event(ctx, "go"));
  const char *out = "[";
  for (int i = 0; i < 3; i++)
    out = dt_ctx_printf(ctx, "%s%s%s", out, i ? "," : "", dt_await(ctx, dt_wait_event(ctx, "data")));
  return dt_ctx_printf(ctx, "%s]", out);
}

static const char *collect_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *go = dt_await(ctx, dt_wait_event(ctx, "Go"));
  const char *a = dt_await(ctx, dt_wait_event(ctx, "Item"));
  const char *b = dt_await(ctx, dt_wait_event(ctx, "Item"));
  return dt_ctx_printf(ctx, "{\"go\":%s,\"items\":[%s,%s]}", go, a, b);
}

/* Fails with the (JSON string) input as the message. */
static const char *raising_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_orch_fail(ctx, "InteropOrchestratorError", sc_unquote_ctx(ctx, input));
}

static const char *activity_failure_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_call_activity(ctx, "disk_full", NULL));
  return "\"unreachable\"";
}

static const char *custom_status_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_set_custom_status(ctx, "{\"stage\":\"waiting\",\"step\":1}");
  const char *data = dt_await(ctx, dt_wait_event(ctx, "go"));
  const char *echoed = dt_await(ctx, dt_call_activity(ctx, "echo", data));
  dt_set_custom_status(ctx, dt_ctx_printf(ctx, "{\"stage\":\"done\",\"got\":%s}", echoed));
  return dt_ctx_printf(ctx, "{\"finished\":%s}", data);
}

static void reg(dt_worker *w)
{
  ASSERT_OK(dt_worker_add_activity(w, "chain_step", chain_step, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "square", square, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "echo", echo, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "disk_full", disk_full, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "chain_orch", chain_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "fan_orch", fan_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "timer_orch", timer_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "two_timers", two_timers, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "approval_orch", approval_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "buffered_events_orch", buffered_events_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "collect_orch", collect_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "raising_orch", raising_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "activity_failure_orch", activity_failure_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "custom_status_orch", custom_status_orch, NULL));
}

/* ------------------------------------------------------------------ 1. function chaining */

TEST_IMPL(scen_function_chaining)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "chain");
  sc_schedule(&h, "chain_orch", "2", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  /* v = v*3 + i from 2: 6, 19, 59, 180, 544 */
  ASSERT_STR_EQ(st->output, "[6,19,59,180,544]");
  ASSERT_STR_EQ(st->input, "2");
  ASSERT_STR_EQ(st->name, "chain_orch");
  ASSERT(st->failure == NULL);
  dt_instance_free(st);
  /* each activity ran exactly once, with the action id the SDK assigned (1..5) as its taskId */
  ASSERT_EQ(sc_attempts("chain", iid), 5);
  int32_t ids[8];
  ASSERT_EQ(sc_task_ids("chain", iid, ids, 8), 5);
  for (int i = 0; i < 5; i++)
    ASSERT_EQ(ids[i], i + 1);

  dt_history *hist = sc_history(&h, iid);
  char *types = sc_history_types(hist, true);
  ASSERT_STR_EQ(types, "ExecutionStarted,TaskScheduled,TaskCompleted,TaskScheduled,TaskCompleted,TaskScheduled,"
                       "TaskCompleted,TaskScheduled,TaskCompleted,TaskScheduled,TaskCompleted,ExecutionCompleted");
  free(types);
  ASSERT_STR_EQ(hist->events[0].type, "OrchestratorStarted");
  for (size_t i = 0; i < 5; i++) {
    const dt_event *s = sc_history_find(hist, "TaskScheduled", i), *c = sc_history_find(hist, "TaskCompleted", i);
    ASSERT_EQ(s->event_id, (int)i + 1);
    ASSERT_STR_EQ(s->name, "chain_step");
    ASSERT_EQ(c->task_id, (int)i + 1);
  }
  ASSERT_STR_EQ(sc_history_find(hist, "TaskCompleted", 4)->payload, "544");
  const dt_event *done = sc_history_find(hist, "ExecutionCompleted", 0);
  ASSERT_EQ(done->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(done->payload, "[6,19,59,180,544]");
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 2. fan-out / fan-in */

static int cmp_i32(const void *a, const void *b)
{
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

TEST_IMPL(scen_fan_out_fan_in_1000)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  enum { N = 1000 };
  char iid[96];
  sc_id(iid, sizeof iid, "fan");
  int64_t t0 = sc_mono_ms();
  sc_schedule(&h, "fan_orch", "1000", iid);
  dt_instance *st = sc_done(&h, iid, 90000);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  long long sum = 0;
  for (long long i = 0; i < N; i++)
    sum += i * i;
  char want[128];
  snprintf(want, sizeof want, "{\"count\":%d,\"sum\":%lld,\"in_order\":true}", N, sum);
  ASSERT_STR_EQ(st->output, want);
  dt_instance_free(st);
  /* every activity ran exactly once (a healthy stream delivers each once), task ids 1..N */
  static int32_t ids[N + 16];
  ASSERT_EQ(sc_task_ids("square", iid, ids, N + 16), N);
  qsort(ids, N, sizeof ids[0], cmp_i32);
  for (int i = 0; i < N; i++)
    ASSERT_EQ(ids[i], i + 1);
  fprintf(stderr, "# fan-out %d: %lld ms\n", N, (long long)(sc_mono_ms() - t0));
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 3. durable timers */

TEST_IMPL(scen_timer_never_fires_early)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "timer");
  int64_t t0 = sc_mono_ms(); /* before scheduling: the worker may start it before the call returns */
  sc_schedule(&h, "timer_orch", "[0,1500]", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  int64_t elapsed = sc_mono_ms() - t0, done_wall = sc_wall_ms();
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  long long start = sc_json_array_int(st->output, 0), fire_at = sc_json_array_int(st->output, 1),
            after = sc_json_array_int(st->output, 2);
  ASSERT_EQ(fire_at - start, 1500);
  /* the episode that resumed after the timer is stamped in a later millisecond than fireAt (dt_now_ms after the
   * timer): the Java SDK starts one more timer leg unless its millisecond time is strictly past fireAt ... */
  ASSERT_GT(after, fire_at);
  /* ... and the orchestration completed no earlier than fireAt (server and wall clock) */
  ASSERT_GE(st->last_updated_ms, fire_at);
  ASSERT_GE(st->completed_ms, fire_at);
  ASSERT_GE(done_wall, fire_at);
  ASSERT_GE(elapsed, 1500);
  ASSERT_LT(elapsed, 15000);
  dt_instance_free(st);

  /* TimerFired carries the requested fireAt and points back at TimerCreated's id; it comes in a new episode
   * that started no earlier than fireAt */
  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "TimerCreated"), 1);
  ASSERT_EQ(sc_history_count(hist, "TimerFired"), 1);
  const dt_event *created = sc_history_find(hist, "TimerCreated", 0), *fired = sc_history_find(hist, "TimerFired", 0);
  ASSERT_EQ(fired->task_id, created->event_id);
  ASSERT_EQ(created->fire_at_ms, fire_at);
  ASSERT_EQ(fired->fire_at_ms, fire_at);
  ASSERT(fired > hist->events);
  const dt_event *episode = fired - 1;
  ASSERT_STR_EQ(episode->type, "OrchestratorStarted");
  ASSERT_GT(episode->timestamp_ms, fire_at);
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_timer_tiny_and_past)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  static const char *const specs[] = {"[0,1]", "[1,0]", "[2,1]"};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    char iid[96];
    sc_id(iid, sizeof iid, "tiny-timer");
    int64_t t0 = sc_mono_ms();
    sc_schedule(&h, "timer_orch", specs[i], iid);
    dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
    SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
    ASSERT_GE(sc_json_array_int(st->output, 2), sc_json_array_int(st->output, 1));
    ASSERT_LT(sc_mono_ms() - t0, 10000);
    dt_instance_free(st);
  }
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_two_parallel_timers)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "two-timers");
  sc_schedule(&h, "two_timers", "[1000,2000]", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  int64_t done_wall = sc_wall_ms();
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  long long a = sc_json_array_int(st->output, 0), b = sc_json_array_int(st->output, 1),
            after = sc_json_array_int(st->output, 2);
  ASSERT_EQ(b - a, 1000);
  ASSERT_GE(done_wall, b);
  ASSERT_GE(after, b);
  ASSERT_GE(st->last_updated_ms, b);
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 4. external events */

TEST_IMPL(scen_event_beats_timer)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "approve");
  sc_schedule(&h, "approval_orch", "60000", iid);
  dt_instance *st = sc_started(&h, iid);
  SC_EXPECT_STATUS(st, DT_STATUS_RUNNING);
  dt_instance_free(st);
  int64_t t0 = sc_mono_ms();
  sc_raise(&h, iid, "approval", "{\"by\":\"alice\"}");
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"result\":\"approved\",\"data\":{\"by\":\"alice\"}}");
  ASSERT_LT(sc_mono_ms() - t0, 10000); /* the event completed it promptly, not the 60 s timer */
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_timer_beats_missing_event)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "no-approve");
  int64_t t0 = sc_mono_ms();
  sc_schedule(&h, "approval_orch", "1000", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  int64_t elapsed = sc_mono_ms() - t0;
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"result\":\"timed out\"}");
  ASSERT_GE(elapsed, 1000);
  ASSERT_LT(elapsed, 15000);
  dt_instance_free(st);
  /* a late event to a completed instance is accepted and changes nothing */
  sc_raise(&h, iid, "approval", "\"late\"");
  st = sc_get(&h, iid, true);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"result\":\"timed out\"}");
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_events_buffered_in_order)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "buffer");
  sc_schedule(&h, "buffered_events_orch", NULL, iid);
  /* RUNNING = the first episode committed: it now waits for "go", not yet for "data" */
  dt_instance *st = sc_started(&h, iid);
  SC_EXPECT_STATUS(st, DT_STATUS_RUNNING);
  dt_instance_free(st);
  sc_raise(&h, iid, "data", "\"first\"");
  sc_raise(&h, iid, "data", "{\"second\":2}");
  sc_raise(&h, iid, "DATA", "3"); /* names match case-insensitively */
  sc_raise(&h, iid, "go", NULL);
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "[\"first\",{\"second\":2},3]");
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_events_raised_while_pending)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "pending-events");
  dt_start_options o;
  memset(&o, 0, sizeof o);
  o.instance_id = iid;
  o.start_at_ms = sc_wall_ms() + 2000;
  char *got = NULL;
  ASSERT_OK(dt_client_schedule(h.c, "collect_orch", &o, &got));
  dt_free(got);
  dt_instance *st = sc_get(&h, iid, true);
  SC_EXPECT_STATUS(st, DT_STATUS_PENDING);
  dt_instance_free(st);
  sc_raise(&h, iid, "Item", "\"first\"");
  sc_raise(&h, iid, "Item", "\"second\"");
  sc_raise(&h, iid, "Go", "\"now\"");
  st = sc_done(&h, iid, SC_WAIT_MS);
  ASSERT_GE(sc_wall_ms(), o.start_at_ms); /* not before its scheduled start */
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"go\":\"now\",\"items\":[\"first\",\"second\"]}");
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 10. failure details */

TEST_IMPL(scen_orchestrator_failure_details)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "fail");
  sc_schedule(&h, "raising_orch", "\"orchestrator exploded\"", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_FAILED);
  ASSERT(st->failure != NULL);
  ASSERT_STR_EQ(st->failure->error_type, "InteropOrchestratorError");
  ASSERT_STR_EQ(st->failure->message, "orchestrator exploded");
  ASSERT(st->output == NULL);
  ASSERT_STR_EQ(st->input, "\"orchestrator exploded\"");
  ASSERT_GT(st->completed_ms, 0);
  dt_instance_free(st);

  /* the same details in the history's ExecutionCompleted */
  dt_history *hist = sc_history(&h, iid);
  const dt_event *done = sc_history_find(hist, "ExecutionCompleted", 0);
  ASSERT(done != NULL);
  ASSERT_EQ(done->status, DT_STATUS_FAILED);
  ASSERT(done->failure != NULL);
  ASSERT_STR_EQ(done->failure->error_type, "InteropOrchestratorError");
  ASSERT_STR_EQ(done->failure->message, "orchestrator exploded");
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

TEST_IMPL(scen_activity_failure_fails_orchestration)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "act-fail");
  sc_schedule(&h, "activity_failure_orch", NULL, iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_FAILED);
  ASSERT(st->failure != NULL);
  ASSERT_STR_EQ(st->failure->error_type, "TaskFailedError");
  ASSERT_STR_CONTAINS(st->failure->message, "disk full on /var/data");
  ASSERT(st->output == NULL);
  ASSERT_EQ(sc_attempts("disk_full", iid), 1);
  dt_instance_free(st);

  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "TaskFailed"), 1);
  const dt_event *failed = sc_history_find(hist, "TaskFailed", 0);
  ASSERT_EQ(failed->task_id, 1);
  ASSERT(failed->failure != NULL);
  ASSERT_STR_EQ(failed->failure->error_type, "IOError");
  ASSERT_STR_EQ(failed->failure->message, "disk full on /var/data");
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 11. custom status */

static bool has_custom_status(void *arg)
{
  void **a = arg;
  sc_hub *h = a[0];
  dt_instance **st = a[2];
  dt_instance_free(*st);
  *st = sc_get(h, a[1], true);
  return *st && (*st)->custom_status != NULL;
}

TEST_IMPL(scen_custom_status)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "status");
  sc_schedule(&h, "custom_status_orch", NULL, iid);
  dt_instance *st = NULL;
  void *arg[3] = {&h, iid, &st};
  if (!sc_poll(has_custom_status, arg, SC_WAIT_MS))
    TEST_FAIL("no custom status while running");
  ASSERT_STR_EQ(st->custom_status, "{\"stage\":\"waiting\",\"step\":1}");
  SC_EXPECT_STATUS(st, DT_STATUS_RUNNING);
  ASSERT(st->output == NULL);
  int64_t running_updated = st->last_updated_ms;
  dt_instance_free(st);

  sc_raise(&h, iid, "go", "7");
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"finished\":7}");
  ASSERT_STR_EQ(st->custom_status, "{\"stage\":\"done\",\"got\":7}");
  ASSERT_GT(st->last_updated_ms, running_updated);
  dt_instance_free(st);
  st = sc_get(&h, iid, true);
  ASSERT_STR_EQ(st->custom_status, "{\"stage\":\"done\",\"got\":7}");
  dt_instance_free(st);
  st = sc_get(&h, iid, false); /* without payloads: the status, no custom status */
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT(st->custom_status == NULL);
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}
