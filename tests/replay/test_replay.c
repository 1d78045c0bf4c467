/*
 * Replay tests: each feeds a .hist history (tests/data/replay) through dt__replay, the C SDK's replay executor,
 * with the straight-line orchestrators below, and compares the OrchestratorResponse with the file's expect
 * section (see hist.h). A work item goes the way the worker sends it: packed, unpacked by protobuf-c, replayed,
 * freed with free_unpacked — so the run is ASan/LSan-clean only if the executor is.
 *
 * One workaround, applied everywhere except in replay_first_episode_null_past: dt__replay memcpy()s from
 * req->pastevents even when there are none, and protobuf-c leaves that pointer NULL for an empty list, which
 * UBSan aborts on (memcpy with a NULL source is undefined even for 0 bytes). The harness hands the executor a
 * non-NULL empty array instead, so that first-episode tests test what they are named for; the named test keeps
 * the NULL the worker really passes.
 */
#include "demo.h"
#include "hist.h"
#include "internal.h"
#include "test.h"

#include <dirent.h>

#ifndef HIST_DATA_DIR
#error HIST_DATA_DIR must name tests/data/replay
#endif

/* ------------------------------------------------------------------ orchestrators under test */

static const char *nz(const char *s)
{
  return s ? s : "null";
}

/* Chain: hello("Tokyo"), hello("Seattle"), hello("London") one after the other. */
static const char *o_chain(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_activity(ctx, "hello", "\"Tokyo\""));
  const char *b = dt_await(ctx, dt_call_activity(ctx, "hello", "\"Seattle\""));
  const char *c = dt_await(ctx, dt_call_activity(ctx, "hello", "\"London\""));
  return dt_ctx_printf(ctx, "[%s,%s,%s]", nz(a), nz(b), nz(c));
}

/* NdB: schedules "b" (histories say "a"). */
static const char *o_nd_b(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_call_activity(ctx, "b", NULL));
  return NULL;
}

/* FanOut: square(1), square(2), square(3) in parallel; returns the sum. */
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

/* AnyEventTimer: the "approval" event or a 60 s timer, whichever comes first; then another "approval". */
static const char *o_any(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *ev = dt_wait_event(ctx, "approval");
  dt_task *tm = dt_create_timer_in(ctx, 60000);
  dt_task *pair[2] = {ev, tm};
  dt_task *any = dt_when_any(ctx, pair, 2);
  dt_await(ctx, any);
  const char *first =
      dt_task_winner(any) == ev ? dt_ctx_printf(ctx, "approved:%s", nz(dt_task_result(ev))) : "timeout";
  const char *second = dt_await(ctx, dt_wait_event(ctx, "approval"));
  return dt_ctx_printf(ctx, "%s|%s", first, nz(second));
}

/* Buffered: an activity, then three waits on the same event under three spellings. */
static const char *o_buffered(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_call_activity(ctx, "step", NULL));
  const char *a = dt_await(ctx, dt_wait_event(ctx, "Data"));
  const char *b = dt_await(ctx, dt_wait_event(ctx, "data"));
  const char *c = dt_await(ctx, dt_wait_event(ctx, "DATA"));
  return dt_ctx_printf(ctx, "%s,%s,%s", nz(a), nz(b), nz(c));
}

/* TwoWaiters: two waits on "x" registered before any event arrives. */
static const char *o_two_waiters(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *w[2] = {dt_wait_event(ctx, "x"), dt_wait_event(ctx, "X")};
  dt_await(ctx, dt_when_all(ctx, w, 2));
  return dt_ctx_printf(ctx, "%s,%s", nz(dt_task_result(w[0])), nz(dt_task_result(w[1])));
}

/* WaitGo: the "go" event, then after(<its data>). */
static const char *o_wait_go(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *v = dt_await(ctx, dt_wait_event(ctx, "go"));
  return dt_await(ctx, dt_call_activity(ctx, "after", v));
}

/* Can: waits for "a", sends it on to "other", continues as new (keeping events unless the input is "drop"). */
static const char *o_can(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_wait_event(ctx, "a"));
  dt_send_event(ctx, "other", "ping", a);
  dt_continue_as_new(ctx, "\"next\"", !(input && strcmp(input, "\"drop\"") == 0));
}

/* Status: custom status around two activities, cleared at the end. */
static const char *o_status(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_set_custom_status(ctx, "\"starting\"");
  dt_await(ctx, dt_call_activity(ctx, "a", NULL));
  dt_set_custom_status(ctx, "\"halfway\"");
  dt_await(ctx, dt_call_activity(ctx, "b", NULL));
  dt_set_custom_status(ctx, NULL);
  return "\"done\"";
}

/* Clock: records dt_now_ms and dt_is_replaying at three points. */
static int64_t g_now[8];
static int g_replaying[8];
static int g_points;

static void clock_point(const dt_orch_ctx *ctx)
{
  if (g_points < 8) {
    g_now[g_points] = dt_now_ms(ctx);
    g_replaying[g_points] = dt_is_replaying(ctx);
    g_points++;
  }
}

static const char *o_clock(dt_orch_ctx *ctx, const char *input, void *ud)
{
  g_points = 0; /* each run starts from the top */
  clock_point(ctx);
  dt_await(ctx, dt_create_timer_in(ctx, 5000));
  clock_point(ctx);
  dt_await(ctx, dt_call_activity(ctx, "a", NULL));
  clock_point(ctx);
  return NULL;
}

/* Uuid: two UUIDs, a one-minute timer, a third UUID. */
static const char *o_uuid(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *u1 = dt_new_uuid(ctx);
  const char *u2 = dt_new_uuid(ctx);
  dt_await(ctx, dt_create_timer_in(ctx, 60000));
  const char *u3 = dt_new_uuid(ctx);
  return dt_ctx_printf(ctx, "%s,%s,%s", u1, u2, u3);
}

/* Parent: a child with the default instance id, then one with an explicit id whose failure is caught. */
static const char *o_parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_sub_orchestrator(ctx, "child", NULL, "\"in\""));
  dt_task *t = dt_call_sub_orchestrator(ctx, "child", "explicit-id", NULL);
  const char *r = NULL;
  if (dt_await_result(ctx, t, &r) == DT_ERR_TASK_FAILED)
    return dt_ctx_printf(ctx, "%s|failed:%s:%s", nz(a), nz(dt_task_failure(t)->error_type),
                         nz(dt_task_failure(t)->message));
  return dt_ctx_printf(ctx, "%s|%s", nz(a), nz(r));
}

/* SubHex: nine activities, then a child at action id 10. */
static const char *o_sub_hex(dt_orch_ctx *ctx, const char *input, void *ud)
{
  for (int i = 0; i < 9; i++)
    dt_call_activity(ctx, "noop", NULL);
  return dt_await(ctx, dt_call_sub_orchestrator(ctx, "child", NULL, NULL));
}

/* Sender: an event to another instance, then an activity. */
static const char *o_sender(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_send_event(ctx, "other-iid", "Ping", "\"hi\"");
  dt_await(ctx, dt_call_activity(ctx, "a", NULL));
  return "\"done\"";
}

/* Fail: check(); a "bad" result fails the orchestration with dt_orch_fail. */
static const char *o_fail(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *r = dt_await(ctx, dt_call_activity(ctx, "check", NULL));
  if (strcmp(nz(r), "\"bad\"") == 0)
    dt_orch_fail(ctx, "ValidationError", "the input was rejected");
  return r;
}

/* Compensate: risky("x"); when it fails, undo("<type>: <message>"). */
static int g_await_rc = 1;
static const char *o_compensate(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *t = dt_call_activity(ctx, "risky", "\"x\"");
  const char *r = "unset";
  g_await_rc = dt_await_result(ctx, t, &r);
  if (g_await_rc == DT_ERR_TASK_FAILED) {
    if (strcmp(r, "unset") != 0)
      dt_orch_fail(ctx, "TestError", "dt_await_result wrote *result for a failed task");
    const dt_failure *f = dt_task_failure(t);
    if (!f || dt_task_result(t) || !dt_task_is_done(t))
      dt_orch_fail(ctx, "TestError", "a failed task must have a failure, no result, and be done");
    return dt_await(ctx, dt_call_activity(ctx, "undo", dt_ctx_printf(ctx, "%s: %s", nz(f->error_type),
                                                                      nz(f->message))));
  }
  return r;
}

/* Retry: flaky("x") with 3 attempts, 1 s first delay, backoff 2. */
static const char *o_retry(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_retry_policy p = {.max_attempts = 3, .first_delay_ms = 1000, .backoff = 2.0};
  return dt_await(ctx, dt_call_activity_retry(ctx, "flaky", "\"x\"", &p));
}

/* RetryHandler: 5 attempts 500 ms apart, while the handler agrees (it refuses "Fatal"). */
static char g_handler_log[256];
static bool retry_handler(const dt_failure *f, int attempt, void *ud)
{
  size_t n = strlen(g_handler_log);
  snprintf(g_handler_log + n, sizeof g_handler_log - n, "%s%d:%s", n ? "," : "", attempt,
           f && f->error_type ? f->error_type : "?");
  return !(f && f->error_type && strcmp(f->error_type, "Fatal") == 0);
}

static const char *o_retry_handler(dt_orch_ctx *ctx, const char *input, void *ud)
{
  g_handler_log[0] = 0; /* each run starts from the top */
  dt_retry_policy p = {.max_attempts = 5, .first_delay_ms = 500, .handler = retry_handler};
  return dt_await(ctx, dt_call_activity_retry(ctx, "flaky", NULL, &p));
}

/* LongTimer: sleeps 7 days. */
static const char *o_long_timer(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_create_timer_in(ctx, 7LL * 24 * 3600 * 1000));
  return "\"woke\"";
}

/* HugeAlloc: asks the context for SIZE_MAX - <input> bytes; never returns. */
static int g_huge_reached;
static const char *o_huge_alloc(dt_orch_ctx *ctx, const char *input, void *ud)
{
  size_t n = SIZE_MAX - (size_t)strtoull(input ? input : "0", NULL, 10);
  dt_ctx_alloc(ctx, n);
  g_huge_reached = 1; /* dt_ctx_alloc never returns NULL: it must have ended the run instead */
  return "\"allocated\"";
}

#define ORCH(n, f) {(char *)(n), (f), NULL}
static const struct dt__orchestrator orchs[] = {
    ORCH("Chain", o_chain),
    ORCH("NdB", o_nd_b),
    ORCH("FanOut", o_fanout),
    ORCH("AnyEventTimer", o_any),
    ORCH("Buffered", o_buffered),
    ORCH("TwoWaiters", o_two_waiters),
    ORCH("WaitGo", o_wait_go),
    ORCH("Can", o_can),
    ORCH("Status", o_status),
    ORCH("Clock", o_clock),
    ORCH("Uuid", o_uuid),
    ORCH("Parent", o_parent),
    ORCH("SubHex", o_sub_hex),
    ORCH("Sender", o_sender),
    ORCH("Fail", o_fail),
    ORCH("Compensate", o_compensate),
    ORCH("Retry", o_retry),
    ORCH("RetryHandler", o_retry_handler),
    ORCH("LongTimer", o_long_timer),
    ORCH("HugeAlloc", o_huge_alloc),
    ORCH("RecChain", demo_chain),
    ORCH("RecFanOut", demo_fanout),
};
#define N_ORCHS (sizeof orchs / sizeof orchs[0])

/* ------------------------------------------------------------------ harness */

enum {
  KEEP_NULL_PAST = 1,  /* pass protobuf-c's NULL pastevents through (see the top of the file) */
  ALLOW_MUTATION = 2,  /* do not fail when dt__replay modifies the request */
};

static hist *load(const char *file)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", HIST_DATA_DIR, file);
  char *err = NULL;
  hist *h = hist_load(path, &err);
  if (!h)
    TEST_FAIL("%s", err ? err : "hist_load failed");
  return h;
}

static uint8_t *pack_request(const OrchestratorRequest *r, size_t *len)
{
  *len = orchestrator_request__get_packed_size(r);
  uint8_t *buf = malloc(*len ? *len : 1);
  ASSERT(buf != NULL);
  orchestrator_request__pack(r, buf);
  return buf;
}

static OrchestrationInstance *started_instance(OrchestratorRequest *r)
{
  for (size_t i = 0; i < r->n_pastevents + r->n_newevents; i++) {
    HistoryEvent *e = i < r->n_pastevents ? r->pastevents[i] : r->newevents[i - r->n_pastevents];
    if (e->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED)
      return e->executionstarted->orchestrationinstance;
  }
  return NULL;
}

static bool g_request_mutated;

/* Runs |h| through dt__replay the way the worker does; the caller frees the response. */
static OrchestratorResponse *replay_flags(hist *h, int flags)
{
  size_t len;
  uint8_t *buf = pack_request(hist_request(h), &len);
  OrchestratorRequest *u = orchestrator_request__unpack(NULL, len, buf);
  ASSERT(u != NULL);
  HistoryEvent *none[1] = {NULL};
  bool patched = false;
  if (!u->pastevents && !(flags & KEEP_NULL_PAST)) {
    u->pastevents = none;
    patched = true;
  }
  OrchestrationInstance *oi = started_instance(u);
  Google__Protobuf__StringValue *exec = oi ? oi->executionid : NULL;

  uint8_t *out = NULL;
  size_t out_len = 0;
  ASSERT_OK(dt__replay(orchs, N_ORCHS, u, "token-1", &out, &out_len));

  if (patched)
    u->pastevents = NULL;
  /* The request belongs to the worker, which frees it with free_unpacked; the executor must leave it alone. */
  bool exec_changed = oi && oi->executionid != exec;
  if (exec_changed)
    oi->executionid = exec; /* it pointed into the executor's (freed) arena; the original is still ours */
  size_t len2;
  uint8_t *buf2 = pack_request(u, &len2);
  g_request_mutated = exec_changed || len2 != len || memcmp(buf, buf2, len) != 0;
  free(buf2);
  free(buf);
  orchestrator_request__free_unpacked(u, NULL);
  if (g_request_mutated && !(flags & ALLOW_MUTATION)) {
    free(out);
    TEST_FAIL("%s: dt__replay modified the OrchestratorRequest it was given%s", h->name,
              exec_changed ? " (ExecutionStarted.orchestrationInstance.executionId now points into the executor's "
                             "arena, which dt__replay frees before returning)"
                           : "");
  }

  OrchestratorResponse *r = orchestrator_response__unpack(NULL, out_len, out);
  free(out);
  ASSERT(r != NULL);
  ASSERT_STR_EQ(r->completiontoken, "token-1");
  ASSERT_STR_EQ(r->instanceid, h->instance_id);
  return r;
}

static void check_response(hist *h, const OrchestratorResponse *r)
{
  char *report = hist_check(h, r);
  if (report) {
    fprintf(stderr, "%s", report);
    free(report);
    TEST_FAIL("%s: the actions differ from the expect section", h->name);
  }
}

/* Replays a file and checks its expect section. */
static void expect_file_flags(const char *file, int flags)
{
  hist *h = load(file);
  OrchestratorResponse *r = replay_flags(h, flags);
  check_response(h, r);
  orchestrator_response__free_unpacked(r, NULL);
  hist_free(h);
}

static void expect_file(const char *file)
{
  expect_file_flags(file, 0);
}

/* The completeOrchestration action of a replay (the last action), for closer looks. */
static const CompleteOrchestrationAction *completion(const OrchestratorResponse *r)
{
  ASSERT_GT(r->n_actions, 0);
  const OrchestratorAction *a = r->actions[r->n_actions - 1];
  ASSERT_EQ(a->orchestrator_action_type_case, ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION);
  return a->completeorchestration;
}

/* ------------------------------------------------------------------ the format itself */

/* Calls fn for every .hist file of the data directory; returns how many there were. */
static int each_hist(void (*fn)(const char *file, void *arg), void *arg)
{
  DIR *d = opendir(HIST_DATA_DIR);
  ASSERT(d != NULL);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l > 5 && strcmp(de->d_name + l - 5, ".hist") == 0) {
      fn(de->d_name, arg);
      n++;
    }
  }
  closedir(d);
  return n;
}

static void roundtrip_one(const char *file, void *arg)
{
  hist *h = load(file);
  if (!h->has_expect)
    TEST_FAIL("%s has no expect section (and no .expect file)", file);
  /* Format every event, parse the text again: the same events must come back. */
  char *text = NULL;
  size_t cap = 0;
  FILE *m = open_memstream(&text, &cap);
  ASSERT(m != NULL);
  int64_t last = INT64_MIN;
  for (size_t i = 0; i < h->n_past + h->n_new; i++) {
    if (i == h->n_past)
      fputs("--- new\n", m);
    char *line = hist_format_event(i < h->n_past ? h->past[i] : h->new_events[i - h->n_past], &last);
    fprintf(m, "%s\n", line);
    free(line);
  }
  if (h->n_new == 0)
    fputs("--- new\n", m);
  fclose(m);
  char *err = NULL;
  hist *h2 = hist_parse(text, file, &err);
  if (!h2)
    TEST_FAIL("%s: reparsing the formatted events failed: %s\n%s", file, err, text);
  ASSERT_EQ(h2->n_past, h->n_past);
  ASSERT_EQ(h2->n_new, h->n_new);
  for (size_t i = 0; i < h->n_past + h->n_new; i++) {
    const HistoryEvent *a = i < h->n_past ? h->past[i] : h->new_events[i - h->n_past];
    const HistoryEvent *b = i < h->n_past ? h2->past[i] : h2->new_events[i - h->n_past];
    size_t la = history_event__get_packed_size(a), lb = history_event__get_packed_size(b);
    uint8_t *ba = malloc(la + 1), *bb = malloc(lb + 1);
    ASSERT(ba && bb);
    history_event__pack(a, ba);
    history_event__pack(b, bb);
    if (la != lb || memcmp(ba, bb, la) != 0)
      TEST_FAIL("%s: event %zu does not survive format+parse:\n%s", file, i + 1, text);
    free(ba);
    free(bb);
  }
  ASSERT_STR_EQ(h2->instance_id, h->instance_id);
  free(text);
  hist_free(h2);
  hist_free(h);
}

/* Every data file parses, has expectations, and formats back to the same events. */
TEST_IMPL(replay_hist_roundtrip)
{
  ASSERT_GE(each_hist(roundtrip_one, NULL), 40);
  return 0;
}

static void parse_error(const char *text, const char *want)
{
  char *err = NULL;
  hist *h = hist_parse(text, "inline", &err);
  if (h)
    TEST_FAIL("expected a parse error containing \"%s\" for:\n%s", want, text);
  ASSERT_STR_CONTAINS(err, want);
  free(err);
}

/* Times, quoting, the expect syntax, and errors that point at the line. */
TEST_IMPL(replay_hist_syntax)
{
  int64_t ns;
  ASSERT(hist_parse_time("2026-01-01T00:00:00Z", &ns));
  ASSERT_EQ(ns, 1767225600LL * 1000000000);
  ASSERT(hist_parse_time("2026-01-01T00:00:00.123456Z", &ns));
  ASSERT_EQ(ns, 1767225600LL * 1000000000 + 123456000);
  ASSERT(hist_parse_time("1767225600250", &ns));
  ASSERT_EQ(ns, 1767225600250LL * 1000000);
  char buf[40];
  hist_format_time(1767225600250LL * 1000000, buf);
  ASSERT_STR_EQ(buf, "2026-01-01T00:00:00.250Z");
  hist_format_time(1767225600LL * 1000000000 + 123456000, buf);
  ASSERT_STR_EQ(buf, "2026-01-01T00:00:00.123456Z");
  hist_format_time(951782400LL * 1000000000, buf); /* a leap day */
  ASSERT_STR_EQ(buf, "2000-02-29T00:00:00.000Z");
  ASSERT(!hist_parse_time("2026-01-01 00:00:00Z", &ns));
  ASSERT(!hist_parse_time("2026-01-01T00:00:00", &ns));

  char *q = hist_quote("plain");
  ASSERT_STR_EQ(q, "plain");
  free(q);
  q = hist_quote("\"json\"");
  ASSERT_STR_EQ(q, "'\"json\"'");
  free(q);
  q = hist_quote("it's\n");
  ASSERT_STR_EQ(q, "\"it's\\n\"");
  free(q);

  char *err = NULL;
  hist *h = hist_parse("# c\nOrchestratorStarted ts=2026-01-01T00:00:01Z # trailing\n"
                       "ExecutionStarted name=X input=\"a \\\"b\\\"\" instance=i1 execution=e1\n"
                       "--- new\nEventRaised name=n data='' id=7\n"
                       "--- expect\ncompleteOrchestration status=FAILED message~=a message~=b\n"
                       "customStatus='\"s\"'\n",
                       "inline", &err);
  if (!h)
    TEST_FAIL("%s", err);
  ASSERT_EQ(h->n_past, 2);
  ASSERT_EQ(h->n_new, 1);
  ASSERT_STR_EQ(h->instance_id, "i1");
  ASSERT_STR_EQ(h->execution_id, "e1");
  ASSERT_STR_EQ(h->past[1]->executionstarted->input->value, "a \"b\"");
  ASSERT_EQ(h->past[0]->timestamp->seconds, 1767225601);
  ASSERT_EQ(h->new_events[0]->timestamp->seconds, 1767225601); /* ts is sticky */
  ASSERT_EQ(h->new_events[0]->eventid, 7);
  ASSERT_STR_EQ(h->new_events[0]->eventraised->input->value, "");
  ASSERT_EQ(h->n_expect, 1);
  ASSERT_EQ(h->expect[0].nf, 3);
  ASSERT_STR_EQ(h->custom_status, "\"s\"");
  hist_free(h);

  parse_error("OrchestratorStarted\nTaskSchedueld id=1 name=a\n", "inline:2: unknown event type 'TaskSchedueld'");
  parse_error("TaskScheduled name=a\n", "inline:1: TaskScheduled: 'id' is required");
  parse_error("TaskScheduled id=1 name=a colour=red\n", "unknown key 'colour'");
  parse_error("TimerFired timer=1 fire_at=tomorrow\n", "fire_at: bad time 'tomorrow'");
  parse_error("EventRaised name='oops\n", "unterminated");
  parse_error("--- expect\nscheduleTask name=a\n", "inline:2: scheduleTask: 'id' is required");
  parse_error("--- expect\ncarryover name=a\n", "carryover must follow a completeOrchestration");
  parse_error("--- expect\ncompleteOrchestration status=DONE\n", "unknown status 'DONE'");
  parse_error("--- new\n--- new\n", "unexpected section marker");
  return 0;
}

/* The checker itself: wrong values, unexpected keys, missing and extra actions, custom status. */
TEST_IMPL(replay_hist_check_reports_differences)
{
  static const char *const cases[][2] = {
      {"scheduleTask id=3 name=hello input='\"Paris\"'\n", "input='\"Paris\"' expected, got '\"London\"'"},
      {"scheduleTask id=3 name=hello\n", "unexpected input='\"London\"'"},
      {"scheduleTask id=4 name=hello input='\"London\"'\n", "id=4 expected, got 3"},
      {"createTimer id=3 fire_at=2026-01-01T00:00:00Z\n", "got a scheduleTask instead"},
      {"", "0 actions expected, got 1"},
      {"scheduleTask id=3 name=hello input='\"London\"'\ncompleteOrchestration status=COMPLETED\n",
       "2 actions expected, got 1"},
      {"scheduleTask id=3 name=hello input='\"London\"'\ncustomStatus=x\n", "customStatus: expected x, got (none)"},
      {"scheduleTask id=3 name~=hel name~=zz input='\"London\"'\n", "name~=zz expected"},
  };
  char *base = NULL;
  {
    char path[1024];
    snprintf(path, sizeof path, "%s/chain_midway.hist", HIST_DATA_DIR);
    FILE *f = fopen(path, "rb");
    ASSERT(f != NULL);
    size_t cap = 0;
    FILE *m = open_memstream(&base, &cap);
    char line[1024];
    while (fgets(line, sizeof line, f) && strncmp(line, "--- expect", 10) != 0)
      fputs(line, m);
    fclose(m);
    fclose(f);
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = strlen(base) + strlen(cases[i][0]) + 16;
    char *text = malloc(n);
    ASSERT(text != NULL);
    snprintf(text, n, "%s--- expect\n%s", base, cases[i][0]);
    char *err = NULL;
    hist *h = hist_parse(text, "case", &err);
    if (!h)
      TEST_FAIL("%s", err);
    OrchestratorResponse *r = replay_flags(h, 0);
    char *report = hist_check(h, r);
    if (!report)
      TEST_FAIL("case %zu: no difference reported for:\n%s", i, cases[i][0]);
    ASSERT_STR_CONTAINS(report, cases[i][1]);
    free(report);
    orchestrator_response__free_unpacked(r, NULL);
    hist_free(h);
    free(text);
  }
  free(base);
  return 0;
}

/* Every event type of the protocol's replay rules appears in at least one data file. */
static void collect_types(const char *file, void *arg)
{
  bool *seen = arg;
  hist *h = load(file);
  for (size_t i = 0; i < h->n_past + h->n_new; i++) {
    const HistoryEvent *e = i < h->n_past ? h->past[i] : h->new_events[i - h->n_past];
    if ((int)e->event_type_case < 64)
      seen[e->event_type_case] = true;
  }
  hist_free(h);
}

TEST_IMPL(replay_every_event_type_covered)
{
  bool seen[64] = {false};
  each_hist(collect_types, seen);
  static const struct {
    int type;
    const char *name;
  } want[] = {
      {HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED, "OrchestratorStarted"},
      {HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED, "ExecutionStarted"},
      {HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED, "TaskScheduled"},
      {HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED, "TaskCompleted"},
      {HISTORY_EVENT__EVENT_TYPE_TASK_FAILED, "TaskFailed"},
      {HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED, "TimerCreated"},
      {HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED, "TimerFired"},
      {HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED, "EventRaised"},
      {HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED, "ExecutionSuspended"},
      {HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED, "ExecutionResumed"},
      {HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED, "ExecutionTerminated"},
      {HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED, "SubOrchestrationInstanceCreated"},
      {HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED, "SubOrchestrationInstanceCompleted"},
      {HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED, "SubOrchestrationInstanceFailed"},
      {HISTORY_EVENT__EVENT_TYPE_EVENT_SENT, "EventSent"},
      {HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED, "ExecutionCompleted"},
      {HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_COMPLETED, "OrchestratorCompleted"},
      {HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND, "ExecutionRewound"},
      {HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT, "GenericEvent"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!seen[want[i].type])
      TEST_FAIL("no data file has a %s event", want[i].name);
  return 0;
}

/* ------------------------------------------------------------------ recorded histories */

TEST_IMPL(replay_recorded_chain)
{
  expect_file("rec_chain.hist");
  return 0;
}

TEST_IMPL(replay_recorded_fanout)
{
  expect_file("rec_fanout.hist");
  return 0;
}

/* Every earlier episode of a recorded history: its past, its inbox events as new events; the actions the
 * worker committed in it (the confirmation events that follow) must be what the replay decides. */
static void episodes_of(const char *file, void *arg)
{
  int *checked = arg;
  hist *h = load(file);
  for (size_t k = 0; k < h->n_past; k++) {
    if (h->past[k]->event_type_case != HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED)
      continue;
    size_t end = k + 1;
    while (end < h->n_past && h->past[end]->event_type_case != HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED)
      end++;
    char *text = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&text, &cap);
    ASSERT(m != NULL);
    int64_t last = INT64_MIN;
    for (size_t i = 0; i < k; i++) {
      char *line = hist_format_event(h->past[i], &last);
      fprintf(m, "%s\n", line);
      free(line);
    }
    fputs("--- new\n", m);
    for (size_t i = k; i < end; i++) {
      if (hist_is_confirmation(h->past[i]))
        continue;
      char *line = hist_format_event(h->past[i], &last);
      fprintf(m, "%s\n", line);
      free(line);
    }
    fputs("--- expect\n", m);
    for (size_t i = k; i < end; i++) {
      char *line = hist_confirmation_to_expect(h->past[i]);
      if (line)
        fprintf(m, "%s\n", line);
      free(line);
    }
    fclose(m);
    char label[256];
    snprintf(label, sizeof label, "%s, episode at event %zu", file, k + 1);
    char *err = NULL;
    hist *e = hist_parse(text, label, &err);
    if (!e)
      TEST_FAIL("%s\n%s", err, text);
    e->ignore_custom_status = true; /* not in the history */
    OrchestratorResponse *r = replay_flags(e, 0);
    char *report = hist_check(e, r);
    if (report)
      TEST_FAIL("%s\nthe generated history:\n%s", report, text);
    orchestrator_response__free_unpacked(r, NULL);
    hist_free(e);
    free(text);
    (*checked)++;
  }
  hist_free(h);
}

TEST_IMPL(replay_recorded_every_episode)
{
  int checked = 0;
  episodes_of("rec_chain.hist", &checked);
  episodes_of("rec_fanout.hist", &checked);
  ASSERT_GE(checked, 4);
  return 0;
}

/* ------------------------------------------------------------------ chaining */

/* The work item of a new instance really has no past events: protobuf-c then leaves pastevents NULL. */
TEST_IMPL(replay_first_episode_null_past)
{
  expect_file_flags("chain_first.hist", KEEP_NULL_PAST);
  return 0;
}

TEST_IMPL(replay_chain_first_step)
{
  expect_file("chain_first.hist");
  return 0;
}

/* Completed steps are replayed from history; only the next step is a new action. */
TEST_IMPL(replay_chain_midway_only_next_action)
{
  expect_file("chain_midway.hist");
  return 0;
}

TEST_IMPL(replay_chain_completes)
{
  expect_file("chain_done.hist");
  return 0;
}

/* ------------------------------------------------------------------ fan-out / fan-in */

TEST_IMPL(replay_fanout_schedules_all)
{
  expect_file("fanout_first.hist");
  return 0;
}

TEST_IMPL(replay_fanout_partial_results_no_actions)
{
  expect_file("fanout_partial.hist");
  return 0;
}

TEST_IMPL(replay_fanout_all_results_complete)
{
  expect_file("fanout_all.hist");
  return 0;
}

/* A failed child fails dt_when_all only once every child is done, with the first failure (in completion
 * order), and the orchestration's failure names that task. */
TEST_IMPL(replay_fanout_failure_waits_for_all)
{
  expect_file("fanout_fail_partial.hist");
  expect_file("fanout_fail_all.hist");
  return 0;
}

/* ------------------------------------------------------------------ when_any */

TEST_IMPL(replay_any_first_episode_creates_timer)
{
  expect_file("any_first.hist");
  return 0;
}

TEST_IMPL(replay_any_event_beats_timer)
{
  expect_file("any_event.hist");
  return 0;
}

/* The timer wins; the losing event wait is cancelled, so the next "approval" goes to the second wait. */
TEST_IMPL(replay_any_timer_cancels_event_wait)
{
  expect_file("any_timer.hist");
  return 0;
}

/* ------------------------------------------------------------------ external events */

/* Events raised before the wait are buffered; names match case-insensitively; same-named events are
 * consumed in arrival order; other names are left alone. */
TEST_IMPL(replay_events_buffered_case_insensitive_fifo)
{
  expect_file("events_buffered.hist");
  return 0;
}

/* Two waits registered before any event: the oldest wait gets the first event. */
TEST_IMPL(replay_events_waiters_fifo)
{
  expect_file("events_waiters.hist");
  return 0;
}

/* ------------------------------------------------------------------ suspension and termination */

TEST_IMPL(replay_suspend_holds_events)
{
  expect_file("suspend_hold.hist");
  return 0;
}

TEST_IMPL(replay_suspend_resume_releases_events)
{
  expect_file("suspend_resume.hist");
  return 0;
}

TEST_IMPL(replay_suspend_holds_task_results)
{
  expect_file("suspend_task.hist");
  expect_file("suspend_task_resumed.hist");
  return 0;
}

TEST_IMPL(replay_terminate_while_suspended)
{
  expect_file("terminate_suspended.hist");
  return 0;
}

/* ExecutionTerminated completes TERMINATED with its input as the output; later events change nothing. */
TEST_IMPL(replay_terminate)
{
  expect_file("terminate.hist");
  return 0;
}

/* ------------------------------------------------------------------ nondeterminism */

/* The history says TaskScheduled name=a, the code schedules b. */
TEST_IMPL(replay_nondeterminism_name)
{
  expect_file("nd_name.hist");
  return 0;
}

/* The history has a TaskScheduled id the code never scheduled. */
TEST_IMPL(replay_nondeterminism_unknown_id)
{
  expect_file("nd_unknown_id.hist");
  return 0;
}

/* The history has a TimerCreated where the code scheduled an activity. */
TEST_IMPL(replay_nondeterminism_timer_vs_activity)
{
  expect_file("nd_timer_vs_activity.hist");
  return 0;
}

/* The code returned before the replay reached a confirmation event it does not account for: the executor steps
 * the rest of the history after the return, and what it finds there fails the orchestration, whatever the code
 * returned (the other SDKs do the same). One file per kind of confirmation event. */
TEST_IMPL(replay_nondeterminism_after_return_activity)
{
  expect_file("nd_after_return_activity.hist");
  return 0;
}

TEST_IMPL(replay_nondeterminism_after_return_timer)
{
  expect_file("nd_after_return_timer.hist");
  return 0;
}

TEST_IMPL(replay_nondeterminism_after_return_sub)
{
  expect_file("nd_after_return_sub.hist");
  return 0;
}

TEST_IMPL(replay_nondeterminism_after_return_send)
{
  expect_file("nd_after_return_send.hist");
  return 0;
}

/* ------------------------------------------------------------------ retries */

TEST_IMPL(replay_retry_failure_creates_timer)
{
  expect_file("retry_fail1.hist");
  return 0;
}

TEST_IMPL(replay_retry_timer_reschedules_activity)
{
  expect_file("retry_fire1.hist");
  return 0;
}

TEST_IMPL(replay_retry_backoff)
{
  expect_file("retry_fail2.hist");
  return 0;
}

TEST_IMPL(replay_retry_exhausted)
{
  expect_file("retry_exhausted.hist");
  return 0;
}

TEST_IMPL(replay_retry_then_success)
{
  expect_file("retry_success.hist");
  return 0;
}

TEST_IMPL(replay_retry_handler_agrees)
{
  expect_file("retry_handler_retry.hist");
  ASSERT_STR_EQ(g_handler_log, "1:ValueError");
  return 0;
}

TEST_IMPL(replay_retry_handler_refuses)
{
  expect_file("retry_handler_refuse.hist");
  ASSERT_STR_EQ(g_handler_log, "1:ValueError,2:Fatal");
  return 0;
}

/* ------------------------------------------------------------------ long timers */

TEST_IMPL(replay_long_timer_first_leg)
{
  expect_file("long_timer_first.hist");
  return 0;
}

TEST_IMPL(replay_long_timer_next_legs)
{
  expect_file("long_timer_leg2.hist");
  expect_file("long_timer_leg3.hist");
  return 0;
}

TEST_IMPL(replay_long_timer_completes)
{
  expect_file("long_timer_done.hist");
  return 0;
}

/* ------------------------------------------------------------------ continue-as-new, custom status */

TEST_IMPL(replay_continue_as_new_keeps_events)
{
  expect_file("can_keep.hist");
  return 0;
}

TEST_IMPL(replay_continue_as_new_drops_events)
{
  expect_file("can_drop.hist");
  return 0;
}

TEST_IMPL(replay_custom_status)
{
  expect_file("status_first.hist");
  expect_file("status_mid.hist");
  expect_file("status_done.hist");
  return 0;
}

/* ------------------------------------------------------------------ clock, replaying flag, uuids */

TEST_IMPL(replay_now_follows_orchestrator_started)
{
  expect_file("clock_first.hist");
  ASSERT_EQ(g_points, 1);
  ASSERT_EQ(g_now[0], 1767225600250LL);
  expect_file("clock.hist");
  ASSERT_EQ(g_points, 3);
  ASSERT_EQ(g_now[0], 1767225600250LL); /* the episode that ran ExecutionStarted */
  ASSERT_EQ(g_now[1], 1767225605300LL); /* the episode of the TimerFired, not its fireAt */
  ASSERT_EQ(g_now[2], 1767225607000LL);
  return 0;
}

TEST_IMPL(replay_is_replaying)
{
  expect_file("clock_first.hist");
  ASSERT_EQ(g_points, 1);
  ASSERT_EQ(g_replaying[0], 0); /* ExecutionStarted is a new event */
  expect_file("clock.hist");
  ASSERT_EQ(g_points, 3);
  ASSERT_EQ(g_replaying[0], 1);
  ASSERT_EQ(g_replaying[1], 1); /* resumed by a past TimerFired */
  ASSERT_EQ(g_replaying[2], 0); /* resumed by a new TaskCompleted */
  return 0;
}

/* Expected values from Python: uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_OID,
 * "9e952958-5e33-4daf-827f-2fa12937b875"), f"{iid}_{t:%Y-%m-%dT%H:%M:%S.%fZ}_{n}") (see the .hist files). */
TEST_IMPL(replay_new_uuid_matches_python)
{
  expect_file("uuid.hist");
  return 0;
}

/* The same with a microsecond clock, as taskhubd writes OrchestratorStarted timestamps: Python formats %f
 * from the full timestamp. */
TEST_IMPL(replay_new_uuid_microsecond_clock)
{
  expect_file("uuid_micro.hist");
  return 0;
}

/* ------------------------------------------------------------------ sub-orchestrations, sends */

TEST_IMPL(replay_sub_default_instance_id)
{
  expect_file("sub_first.hist");
  expect_file("sub_hex.hist");
  return 0;
}

TEST_IMPL(replay_sub_completed_then_failed)
{
  expect_file("sub_second.hist");
  expect_file("sub_failed.hist");
  return 0;
}

TEST_IMPL(replay_send_event)
{
  expect_file("send_first.hist");
  expect_file("send_confirmed.hist");
  return 0;
}

/* ------------------------------------------------------------------ failures */

TEST_IMPL(replay_unknown_orchestrator_fails)
{
  expect_file("unknown_orchestrator.hist");
  return 0;
}

/* Results for ids the code does not wait on are ignored (protocol.md §5.5). */
TEST_IMPL(replay_unknown_task_ids_ignored)
{
  expect_file("unknown_ids.hist");
  return 0;
}

/* ExecutionResumed while not suspended is ignored (protocol.md §5.8). */
TEST_IMPL(replay_resume_without_suspend_ignored)
{
  expect_file("resume_not_suspended.hist");
  return 0;
}

/* OrchestratorCompleted, GenericEvent, and ExecutionRewound without ExecutionCompleted change nothing. */
TEST_IMPL(replay_ignored_events)
{
  expect_file("ignored.hist");
  return 0;
}

/* The rewind work item: one rewindOrchestration action (id -1) whose newHistory drops TaskFailed, the failed
 * TaskScheduled and ExecutionCompleted, and gives ExecutionStarted a new execution id. */
TEST_IMPL(replay_rewind_drops_failures)
{
  hist *h = load("rewind.hist");
  OrchestratorResponse *r = replay_flags(h, ALLOW_MUTATION);
  check_response(h, r);
  const RewindOrchestrationAction *rw = r->actions[0]->rewindorchestration;
  const HistoryEvent *es = rw->newhistory[1];
  ASSERT_EQ(es->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED);
  ASSERT_STR_EQ(es->executionstarted->name, "Chain");
  ASSERT(es->executionstarted->orchestrationinstance && es->executionstarted->orchestrationinstance->executionid);
  const char *exec = es->executionstarted->orchestrationinstance->executionid->value;
  ASSERT_EQ(strlen(exec), 32);
  ASSERT(strcmp(exec, "exec-old") != 0);
  const HistoryEvent *last = rw->newhistory[rw->n_newhistory - 1];
  ASSERT_EQ(last->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND);
  ASSERT_STR_EQ(last->executionrewound->reason->value, "retry");
  orchestrator_response__free_unpacked(r, NULL);
  hist_free(h);
  return 0;
}

/* The worker frees the work item with free_unpacked after dt__replay: the rewind must not rewrite it. */
TEST_IMPL(replay_rewind_leaves_request_intact)
{
  hist *h = load("rewind.hist");
  OrchestratorResponse *r = replay_flags(h, 0);
  orchestrator_response__free_unpacked(r, NULL);
  hist_free(h);
  return 0;
}

TEST_IMPL(replay_orch_fail)
{
  expect_file("orch_fail.hist");
  hist *h = load("orch_fail.hist");
  OrchestratorResponse *r = replay_flags(h, 0);
  ASSERT(completion(r)->failuredetails->innerfailure == NULL);
  orchestrator_response__free_unpacked(r, NULL);
  hist_free(h);
  return 0;
}

/* dt_await on a failed activity: TaskFailedError naming the task, with the activity's failure inside. */
TEST_IMPL(replay_await_failed_task)
{
  expect_file("await_failed.hist");
  return 0;
}

/* dt_await_result returns DT_ERR_TASK_FAILED and leaves the orchestration running (compensation). */
TEST_IMPL(replay_await_result_task_failed)
{
  expect_file("await_result_failed.hist");
  ASSERT_EQ(g_await_rc, DT_ERR_TASK_FAILED);
  return 0;
}

/* ------------------------------------------------------------------ memory */

/* Sizes near SIZE_MAX must take the arena's out-of-memory path, never wrap around into a small allocation
 * (rounding up to the alignment, or adding the chunk header, overflowed). */
static const size_t huge_minus[] = {4, 0, 1, 15, 16, 17, 40, 64, 100};

TEST_IMPL(replay_ctx_alloc_huge_fails_cleanly)
{
  for (size_t i = 0; i < sizeof huge_minus / sizeof huge_minus[0]; i++) {
    char text[256];
    snprintf(text, sizeof text,
             "OrchestratorStarted ts=2026-01-01T00:00:00Z\nExecutionStarted name=HugeAlloc instance=huge-%zu "
             "input=%zu\n",
             huge_minus[i], huge_minus[i]);
    char *err = NULL;
    hist *h = hist_parse(text, "inline", &err);
    if (!h)
      TEST_FAIL("%s", err ? err : "hist_parse failed");
    uint8_t *out = NULL;
    size_t out_len = 0;
    g_huge_reached = 0;
    int rc = dt__replay(orchs, N_ORCHS, hist_request(h), "token-1", &out, &out_len);
    if (rc != DT_ERR_NOMEM)
      TEST_FAIL("dt_ctx_alloc(ctx, SIZE_MAX - %zu): dt__replay returned %d (%s), expected DT_ERR_NOMEM", huge_minus[i],
                rc, dt_strerror(rc));
    ASSERT(out == NULL);
    ASSERT_EQ(g_huge_reached, 0);
    hist_free(h);
  }
  return 0;
}

TEST_IMPL(replay_arena_huge_sizes_return_null)
{
  dt__arena a;
  dt__arena_init(&a);
  char *small = dt__arena_alloc(&a, 10); /* a chunk exists, so a wrapped size would be carved from it */
  ASSERT(small != NULL);
  for (size_t i = 0; i < sizeof huge_minus / sizeof huge_minus[0]; i++) {
    void *p = dt__arena_alloc(&a, SIZE_MAX - huge_minus[i]);
    if (p != NULL)
      TEST_FAIL("dt__arena_alloc(SIZE_MAX - %zu) returned %p, expected NULL", huge_minus[i], p);
  }
  ASSERT(dt__arena_alloc(&a, (size_t)PTRDIFF_MAX) == NULL);
  /* Still usable afterwards. */
  char *again = dt__arena_alloc(&a, 100);
  ASSERT(again != NULL);
  memset(again, 'x', 100);
  dt__arena_free(&a);
  return 0;
}
