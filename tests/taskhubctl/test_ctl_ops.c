/*
 * taskhubctl on live orchestrations: start --wait, show's timeline, raise/suspend/resume, terminate, purge (by id
 * and by filter, with and without confirmation), rewind, restart and watch. The C SDK worker of ctl_harness.c
 * runs the orchestrations in this process; the SDK client sets up and checks state.
 */
#include "ctl_harness.h"

#include <unistd.h>

/* The event of |type| (the i-th one) in a JSON history array, or NULL. */
static json_object *jevent(json_object *hist, const char *type, int i)
{
  for (size_t k = 0; k < json_object_array_length(hist); k++) {
    json_object *e = json_object_array_get_idx(hist, k);
    if (strcmp(jstr(e, "type"), type) == 0 && i-- == 0)
      return e;
  }
  return NULL;
}

static void free_doc(json_object *doc, ctl_res *r)
{
  json_object_put(doc);
  ctl_res_free(r);
}

/* ------------------------------------------------------------------ start --wait */

TEST_IMPL(ctl_start_wait)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  /* COMPLETED: exit 0 with the output. */
  ctl_res r = CTL(h.addr, "start", "hello", "--id", "w1", "--input", "\"hi\"", "--wait");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "w1 COMPLETED\n");
  ASSERT_STR_CONTAINS(r.out, "output: {\"echo\":\"hi\"}\n");
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "start", "hello", "--id", "w2", "--input", "7", "--wait", "--timeout-ms", "30000");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "w2");
  ASSERT_STR_EQ(jstr(doc, "name"), "hello");
  ASSERT_STR_EQ(jstr(doc, "status"), "COMPLETED");
  ASSERT_STR_EQ(jstr(doc, "input"), "7");
  ASSERT_STR_EQ(jstr(doc, "output"), "{\"echo\":7}");
  ASSERT(is_rfc3339_ms(jstr(doc, "completedAt")));
  ASSERT(jget(doc, "failure") == NULL);
  free_doc(doc, &r);

  /* FAILED: exit 1 with the failure. */
  r = CTL(h.addr, "start", "fail", "--id", "w3", "--wait");
  ASSERT_EXIT(r, 1);
  ASSERT_STR_CONTAINS(r.out, "w3 FAILED\n");
  char *fl = line_with(r.out, "failure: ");
  ASSERT(fl != NULL);
  ASSERT_STR_CONTAINS(fl, "kaput");
  free(fl);
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "start", "fail", "--id", "w4", "--wait");
  ASSERT_EXIT(r, 1);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "status"), "FAILED");
  json_object *f = jget(doc, "failure");
  ASSERT(f != NULL);
  ASSERT(jstr(f, "type") != NULL);
  ASSERT_STR_CONTAINS(jstr(f, "message"), "kaput");
  free_doc(doc, &r);

  /* Not finished within --timeout-ms: exit 5. */
  int64_t t0 = mono_ms();
  r = CTL(h.addr, "start", "waiter", "--id", "w5", "--wait", "--timeout-ms", "700");
  ASSERT_EXIT(r, 5);
  ASSERT_GE(mono_ms() - t0, 600);
  ASSERT_STR_CONTAINS(r.err, "timed out");
  ctl_res_free(&r);
  r = CTL(h.addr, "start", "waiter", "--id", "w6", "--wait", "--timeout-ms", "500", "--json");
  ASSERT_EXIT(r, 5);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "TIMEOUT");
  ASSERT_STR_EQ(jstr(jget(doc, "error"), "instanceId"), "w6");
  free_doc(doc, &r);

  /* TERMINATED while waiting: exit 1. */
  ctl_proc *p = ctl_spawn(&(ctl_opts){.address = h.addr},
                          (const char *const[]){"start", "waiter", "--id", "w7", "--wait", NULL});
  until_status(&h, "w7", DT_STATUS_RUNNING, CTL_WAIT_MS);
  ASSERT_OK(dt_client_terminate(h.c, "w7", "\"enough\"", false));
  r = ctl_finish(p, CTL_RUN_MS);
  ASSERT_EXIT(r, 1);
  ASSERT_STR_CONTAINS(r.out, "w7 TERMINATED\n");
  ASSERT_STR_CONTAINS(r.out, "output: \"enough\"");
  ctl_res_free(&r);
  for (int i = 5; i <= 6; i++) {
    char id[8];
    snprintf(id, sizeof id, "w%d", i);
    ASSERT_OK(dt_client_terminate(h.c, id, NULL, false));
    until_status(&h, id, DT_STATUS_TERMINATED, CTL_WAIT_MS); /* nothing in flight when the worker stops */
  }
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ show */

TEST_IMPL(ctl_show_timeline)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  char input[128];
  snprintf(input, sizeof input, "\"%0100d\"", 7); /* a 102-byte JSON string: longer than an excerpt */
  sched(&h, "timeline", "t1", input);
  dt_instance *in = done(&h, "t1");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  dt_instance_free(in);

  ctl_res r = CTL(h.addr, "show", "t1");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "Instance:        t1\n");
  ASSERT_STR_CONTAINS(r.out, "Name:            timeline\n");
  ASSERT_STR_CONTAINS(r.out, "Status:          COMPLETED\n");
  ASSERT_STR_CONTAINS(r.out, "Completed:       ");
  ASSERT_STR_CONTAINS(r.out, "History (");
  /* One line per event, in order, with what each carries. */
  static const char *const order[][2] = {
      {"ExecutionStarted", "name=timeline"}, {"TaskScheduled", "name=echo"},
      {"TaskCompleted", "task="},           {"TimerCreated", "fireAt="},
      {"TimerFired", "fireAt="},             {"ExecutionCompleted", "status=COMPLETED"},
  };
  long prev = -1;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    char needle[64];
    snprintf(needle, sizeof needle, " %s ", order[i][0]);
    char *line = line_with(r.out, needle);
    if (!line)
      TEST_FAIL("no %s line in:\n%s", order[i][0], r.out);
    ASSERT_STR_CONTAINS(line, order[i][1]);
    ASSERT_STR_CONTAINS(line, "  +"); /* relative time */
    long at = index_of(r.out, line);
    ASSERT_GT(at, prev);
    prev = at;
    free(line);
  }
  ASSERT_EQ(count_lines(r.out, " TaskScheduled "), 1);
  /* The first event is the time origin. */
  char *first = line_with(r.out, "History (");
  ASSERT(first != NULL);
  free(first);
  ASSERT_GE(count_lines(r.out, "  +0.000s "), 1);
  /* Payloads are cut to an excerpt without --payloads... */
  char *started = line_with(r.out, " ExecutionStarted ");
  ASSERT(strstr(started, input) == NULL);
  ASSERT_STR_CONTAINS(started, "input=\"0000");
  ASSERT_STR_CONTAINS(started, "...");
  free(started);
  ctl_res_free(&r);
  /* ...and shown in full with it. */
  r = CTL(h.addr, "show", "t1", "--payloads");
  ASSERT_EXIT(r, 0);
  started = line_with(r.out, " ExecutionStarted ");
  ASSERT_STR_CONTAINS(started, input);
  free(started);
  char *tc = line_with(r.out, " TaskCompleted ");
  char want[160];
  snprintf(want, sizeof want, "result={\"echo\":%s}", input);
  ASSERT_STR_CONTAINS(tc, want);
  free(tc);
  ctl_res_free(&r);

  /* JSON: state plus the history events, the same ones the SDK reads. */
  r = CTL(h.addr, "show", "t1", "-o", "json");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "t1");
  ASSERT_STR_EQ(jstr(doc, "name"), "timeline");
  ASSERT_STR_EQ(jstr(doc, "status"), "COMPLETED");
  ASSERT_STR_EQ(jstr(doc, "input"), input);
  ASSERT(jstr(doc, "output") != NULL);
  ASSERT(is_rfc3339_ms(jstr(doc, "createdAt")));
  ASSERT(is_rfc3339_ms(jstr(doc, "completedAt")));
  json_object *ev = jget(doc, "history");
  ASSERT(ev && json_object_is_type(ev, json_type_array));
  char *types = history_types(&h, "t1");
  ASSERT_STR_EQ(types, "ExecutionStarted,TaskScheduled,TaskCompleted,TimerCreated,TimerFired,ExecutionCompleted");
  char joined[512] = "";
  int64_t min_off = INT64_MAX;
  for (size_t i = 0; i < json_object_array_length(ev); i++) {
    json_object *e = json_object_array_get_idx(ev, i);
    const char *t = jstr(e, "type");
    ASSERT(is_rfc3339_ms(jstr(e, "timestamp")));
    int64_t off = jint(e, "offsetMs"); /* from the earliest event */
    ASSERT_GE(off, 0);
    ASSERT_LT(off, CTL_WAIT_MS);
    min_off = off < min_off ? off : min_off;
    if (strcmp(t, "OrchestratorStarted") == 0 || strcmp(t, "OrchestratorCompleted") == 0)
      continue;
    if (joined[0])
      strcat(joined, ",");
    strcat(joined, t);
  }
  ASSERT_EQ(min_off, 0);
  ASSERT_STR_EQ(joined, types);
  free(types);
  json_object *es = jevent(ev, "ExecutionStarted", 0), *ts = jevent(ev, "TaskScheduled", 0),
              *tcj = jevent(ev, "TaskCompleted", 0), *tcr = jevent(ev, "TimerCreated", 0),
              *tf = jevent(ev, "TimerFired", 0), *ec = jevent(ev, "ExecutionCompleted", 0);
  ASSERT_STR_EQ(jstr(es, "name"), "timeline");
  ASSERT_STR_EQ(jstr(es, "payload"), input);
  ASSERT_STR_EQ(jstr(ts, "name"), "echo");
  ASSERT_EQ(jint(tcj, "taskId"), jint(ts, "eventId"));
  ASSERT(jget(ts, "taskId") == NULL);
  ASSERT_EQ(jint(tf, "taskId"), jint(tcr, "eventId"));
  ASSERT(is_rfc3339_ms(jstr(tcr, "fireAt")));
  ASSERT_STR_EQ(jstr(tcr, "fireAt"), jstr(tf, "fireAt"));
  ASSERT_STR_EQ(jstr(ec, "status"), "COMPLETED");
  ASSERT_STR_EQ(jstr(ec, "payload"), jstr(doc, "output"));
  ASSERT(jget(ts, "status") == NULL);
  free_doc(doc, &r);

  /* A failed instance: the failure in the state and on the TaskFailed line. */
  sched(&h, "fail", "f1", NULL);
  in = done(&h, "f1");
  ASSERT_EQ(in->status, DT_STATUS_FAILED);
  dt_instance_free(in);
  r = CTL(h.addr, "show", "f1");
  ASSERT_EXIT(r, 0);
  char *fline = line_with(r.out, "Failure:");
  ASSERT(fline != NULL);
  ASSERT_STR_CONTAINS(fline, "kaput");
  free(fline);
  char *tfl = line_with(r.out, " TaskFailed ");
  ASSERT(tfl != NULL);
  ASSERT_STR_CONTAINS(tfl, "failure=BoomError: boom: kaput");
  free(tfl);
  ctl_res_free(&r);
  r = CTL(h.addr, "show", "f1", "--json");
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "status"), "FAILED");
  ASSERT_STR_CONTAINS(jstr(jget(doc, "failure"), "message"), "kaput");
  json_object *tfj = jevent(jget(doc, "history"), "TaskFailed", 0);
  ASSERT(tfj != NULL);
  ASSERT_STR_EQ(jstr(jget(tfj, "failure"), "type"), "BoomError");
  ASSERT_STR_EQ(jstr(jget(tfj, "failure"), "message"), "boom: kaput");
  free_doc(doc, &r);

  /* A PENDING instance has no history yet. */
  dt_start_options o = {.instance_id = "later", .start_at_ms = wall_ms() + 3600 * 1000};
  ASSERT_OK(dt_client_schedule(h.c, "hello", &o, NULL));
  r = CTL(h.addr, "show", "later");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "Scheduled start: ");
  ASSERT_STR_CONTAINS(r.out, "History: no events yet");
  ctl_res_free(&r);
  ASSERT_OK(dt_client_terminate(h.c, "later", NULL, false));
  until_status(&h, "later", DT_STATUS_TERMINATED, CTL_WAIT_MS);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ raise, suspend, resume */

TEST_IMPL(ctl_raise_suspend_resume)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "waiter", "r1", NULL);
  until_status(&h, "r1", DT_STATUS_RUNNING, CTL_WAIT_MS);

  ctl_res r = CTL(h.addr, "suspend", "r1", "--reason", "maintenance");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "suspended r1\n");
  ctl_res_free(&r);
  until_status(&h, "r1", DT_STATUS_SUSPENDED, CTL_WAIT_MS);

  r = CTL(h.addr, "--json", "raise", "r1", "go", "--data", "\"payload-1\"");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "r1");
  ASSERT_STR_EQ(jstr(doc, "operation"), "raise");
  ASSERT_STR_EQ(jstr(doc, "event"), "go");
  free_doc(doc, &r);
  /* Suspended: the event waits, even after later work went through the same worker. */
  settle(&h);
  dt_instance *in = get(&h, "r1");
  ASSERT_EQ(in->status, DT_STATUS_SUSPENDED);
  dt_instance_free(in);

  r = CTL(h.addr, "resume", "r1", "--reason", "done");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "resumed r1\n");
  ctl_res_free(&r);
  in = done(&h, "r1");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, "{\"got\":\"payload-1\"}");
  dt_instance_free(in);

  /* The history records all three, with the reasons and the data. */
  r = CTL(h.addr, "show", "r1", "--json");
  doc = ctl_doc(&r);
  json_object *hist = jget(doc, "history");
  json_object *sus = jevent(hist, "ExecutionSuspended", 0), *res = jevent(hist, "ExecutionResumed", 0),
              *raised = jevent(hist, "EventRaised", 0);
  ASSERT(sus && res && raised);
  ASSERT_STR_CONTAINS(jstr(sus, "payload"), "maintenance");
  ASSERT_STR_CONTAINS(jstr(res, "payload"), "done");
  ASSERT_STR_EQ(jstr(raised, "name"), "go");
  ASSERT_STR_EQ(jstr(raised, "payload"), "\"payload-1\"");
  free_doc(doc, &r);
  r = CTL(h.addr, "show", "r1");
  char *line = line_with(r.out, " EventRaised ");
  ASSERT(line != NULL);
  ASSERT_STR_CONTAINS(line, "name=go data=\"payload-1\"");
  free(line);
  line = line_with(r.out, " ExecutionSuspended ");
  ASSERT_STR_CONTAINS(line, "reason=");
  ASSERT_STR_CONTAINS(line, "maintenance");
  free(line);
  ctl_res_free(&r);

  /* Finished: every one of them is refused with exit 4 (the server would silently do nothing). */
  static const char *const verbs[] = {"raise", "suspend", "resume", "terminate"};
  for (size_t i = 0; i < 4; i++) {
    const char *args[] = {verbs[i], "r1", i == 0 ? "go" : NULL, NULL};
    r = ctl_run(&(ctl_opts){.address = h.addr}, args);
    ASSERT_EXIT(r, 4);
    ASSERT_STR_CONTAINS(r.err, "instance 'r1' has already finished (COMPLETED)");
    ctl_res_free(&r);
  }
  r = CTL(h.addr, "terminate", "r1", "--json");
  ASSERT_EXIT(r, 4);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "WRONG_STATE");
  free_doc(doc, &r);
  in = get(&h, "r1");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT(in->output != NULL);
  dt_instance_free(in);

  /* Text raise without data, on a second instance; JSON suspend/resume acknowledgements. */
  sched(&h, "waiter", "r2", NULL);
  until_status(&h, "r2", DT_STATUS_RUNNING, CTL_WAIT_MS);
  r = CTL(h.addr, "suspend", "r2", "-o", "json");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "operation"), "suspend");
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "r2");
  free_doc(doc, &r);
  until_status(&h, "r2", DT_STATUS_SUSPENDED, CTL_WAIT_MS);
  r = CTL(h.addr, "resume", "r2", "-o", "json");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "operation"), "resume");
  free_doc(doc, &r);
  r = CTL(h.addr, "raise", "r2", "go");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "raised event go on r2\n");
  ctl_res_free(&r);
  in = done(&h, "r2");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, "{\"got\":null}");
  dt_instance_free(in);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ terminate */

TEST_IMPL(ctl_terminate)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  /* --recursive: the parent and its sub-orchestration. */
  sched(&h, "parent", "p1", "\"x\"");
  until_status(&h, "p1-child", DT_STATUS_RUNNING, CTL_WAIT_MS);
  ctl_res r = CTL(h.addr, "terminate", "p1", "--output", "\"stopped\"", "--recursive");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "terminated p1 and its sub-orchestrations\n");
  ctl_res_free(&r);
  until_status(&h, "p1", DT_STATUS_TERMINATED, CTL_WAIT_MS);
  until_status(&h, "p1-child", DT_STATUS_TERMINATED, CTL_WAIT_MS);
  dt_instance *in = get(&h, "p1");
  ASSERT_STR_EQ(in->output, "\"stopped\"");
  dt_instance_free(in);
  /* Purge --recursive takes the child along. */
  r = CTL(h.addr, "--json", "purge", "p1", "--recursive");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "p1");
  ASSERT_EQ(jint(doc, "deleted"), 2);
  free_doc(doc, &r);
  ASSERT(!exists(&h, "p1"));
  ASSERT(!exists(&h, "p1-child"));

  /* Without --recursive the child goes on; JSON acknowledgement (format given with -o after the command). */
  sched(&h, "parent", "p2", NULL);
  until_status(&h, "p2-child", DT_STATUS_RUNNING, CTL_WAIT_MS);
  r = CTL(h.addr, "terminate", "p2", "-o", "json", "--output", "{\"by\":\"ctl\"}");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "p2");
  ASSERT_STR_EQ(jstr(doc, "operation"), "terminate");
  free_doc(doc, &r);
  until_status(&h, "p2", DT_STATUS_TERMINATED, CTL_WAIT_MS);
  in = get(&h, "p2");
  ASSERT_STR_EQ(in->output, "{\"by\":\"ctl\"}");
  dt_instance_free(in);
  settle(&h); /* a recursive terminate would have reached the child by now */
  in = get(&h, "p2-child");
  ASSERT_EQ(in->status, DT_STATUS_RUNNING);
  dt_instance_free(in);
  /* A terminated instance records the output in its history too. */
  r = CTL(h.addr, "show", "p2");
  char *line = line_with(r.out, " ExecutionTerminated ");
  ASSERT(line != NULL);
  ASSERT_STR_CONTAINS(line, "output={\"by\":\"ctl\"}");
  free(line);
  ctl_res_free(&r);
  r = CTL(h.addr, "terminate", "p2-child");
  ASSERT_EXIT(r, 0);
  ctl_res_free(&r);
  until_status(&h, "p2-child", DT_STATUS_TERMINATED, CTL_WAIT_MS);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ purge */

static void terminate(hub *h, const char *iid)
{
  ASSERT_OK(dt_client_terminate(h->c, iid, NULL, false));
  until_status(h, iid, DT_STATUS_TERMINATED, CTL_WAIT_MS);
}

static int count_instances(hub *h)
{
  dt_query q = {.page_size = 1000};
  dt_instance_page *p = NULL;
  ASSERT_OK(dt_client_query(h->c, &q, &p));
  int n = (int)p->n;
  dt_instance_page_free(p);
  return n;
}

TEST_IMPL(ctl_purge_single)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "orch", "ps1", NULL);
  /* Not finished: exit 4, nothing deleted. */
  ctl_res r = CTL(h.addr, "purge", "ps1");
  ASSERT_EXIT(r, 4);
  ASSERT_STR_CONTAINS(r.err, "'ps1' is PENDING");
  ctl_res_free(&r);
  ASSERT(exists(&h, "ps1"));
  terminate(&h, "ps1");
  r = CTL(h.addr, "purge", "ps1");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "purged ps1 (1 instance)\n");
  ctl_res_free(&r);
  ASSERT(!exists(&h, "ps1"));
  r = CTL(h.addr, "purge", "ps1");
  ASSERT_EXIT(r, 3);
  ctl_res_free(&r);

  sched(&h, "orch", "ps2", NULL);
  terminate(&h, "ps2");
  r = CTL(h.addr, "purge", "ps2", "--json");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "ps2");
  ASSERT_STR_EQ(jstr(doc, "operation"), "purge");
  ASSERT_EQ(jint(doc, "deleted"), 1);
  free_doc(doc, &r);
  ASSERT(!exists(&h, "ps2"));
  sched(&h, "orch", "ps3", NULL);
  r = CTL(h.addr, "purge", "ps3", "--json");
  ASSERT_EXIT(r, 4);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "WRONG_STATE");
  free_doc(doc, &r);
  hub_stop(&h);
  return 0;
}

TEST_IMPL(ctl_purge_filter)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "orch", "old-1", NULL);
  sched(&h, "orch", "old-2", NULL);
  terminate(&h, "old-1");
  terminate(&h, "old-2");
  sleep_ms(50);
  char mid[48];
  fmt_time(wall_ms(), mid, sizeof mid);
  sleep_ms(50);
  sched(&h, "orch", "new-1", NULL);
  sched(&h, "orch", "new-2", NULL);
  sched(&h, "orch", "new-3", NULL);
  sched(&h, "orch", "live-1", NULL);
  terminate(&h, "new-1");
  terminate(&h, "new-2");
  terminate(&h, "new-3");
  ASSERT_EQ(count_instances(&h), 6);

  /* No terminal on stdin and no --yes: refused, exit 2, nothing purged. */
  ctl_res r = CTL(h.addr, "purge", "--status", "TERMINATED");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "not a terminal");
  ASSERT_STR_CONTAINS(r.err, "--yes");
  ASSERT_STR_CONTAINS(r.err, "5 instances");
  ctl_res_free(&r);
  r = CTL(h.addr, "purge", "--created-before", mid, "--json");
  ASSERT_EXIT(r, 2);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "USAGE");
  free_doc(doc, &r);
  ASSERT_EQ(count_instances(&h), 6);

  /* --yes: status and creation time combine. */
  r = CTL(h.addr, "purge", "--status", "TERMINATED", "--created-before", mid, "--yes");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "purged 2 instances\n");
  ctl_res_free(&r);
  ASSERT(!exists(&h, "old-1"));
  ASSERT(!exists(&h, "old-2"));
  ASSERT_EQ(count_instances(&h), 4);

  /* Only a time: every finished instance created since; the running one stays. */
  r = CTL(h.addr, "--json", "purge", "--created-after", mid, "-y");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "operation"), "purge");
  ASSERT_EQ(jint(doc, "matched"), 3);
  ASSERT_EQ(jint(doc, "deleted"), 3);
  ASSERT(json_object_get_boolean(jget(doc, "complete")));
  free_doc(doc, &r);
  ASSERT_EQ(count_instances(&h), 1);
  ASSERT(exists(&h, "live-1"));

  /* Nothing matches: exit 0, no prompt even without a terminal. */
  r = CTL(h.addr, "purge", "--status", "COMPLETED");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "nothing to purge");
  ctl_res_free(&r);
  ASSERT_EQ(count_instances(&h), 1);
  hub_stop(&h);
  return 0;
}

/* The confirmation prompt on a pseudo-terminal: "n" keeps everything (exit 1), "y" purges. */
TEST_IMPL(ctl_purge_confirm_tty)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  const char *ids[] = {"c-1", "c-2", "c-3"};
  for (int i = 0; i < 3; i++) {
    sched(&h, "orch", ids[i], NULL);
    terminate(&h, ids[i]);
  }
  sched(&h, "orch", "c-live", NULL);
  const char *const args[] = {"purge", "--status", "TERMINATED", NULL};
  ctl_res r = ctl_run(&(ctl_opts){.address = h.addr, .tty_answer = "n\n"}, args);
  ASSERT_EXIT(r, 1);
  ASSERT_STR_CONTAINS(r.err, "Purge 3 instances (status TERMINATED)?");
  ASSERT_STR_CONTAINS(r.err, "[y/N]");
  ASSERT_STR_CONTAINS(r.err, "nothing was purged");
  ctl_res_free(&r);
  ASSERT_EQ(count_instances(&h), 4);
  /* Anything but y/yes is a no, an empty line included. */
  r = ctl_run(&(ctl_opts){.address = h.addr, .tty_answer = "\n"}, args);
  ASSERT_EXIT(r, 1);
  ctl_res_free(&r);
  ASSERT_EQ(count_instances(&h), 4);

  r = ctl_run(&(ctl_opts){.address = h.addr, .tty_answer = "y\n"}, args);
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.err, "[y/N]");
  ASSERT_STR_EQ(r.out, "purged 3 instances\n");
  ctl_res_free(&r);
  ASSERT_EQ(count_instances(&h), 1);
  ASSERT(exists(&h, "c-live"));
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ rewind, restart */

TEST_IMPL(ctl_rewind)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "flaky", "fl1", "\"r\"");
  dt_instance *in = done(&h, "fl1");
  ASSERT_EQ(in->status, DT_STATUS_FAILED);
  dt_instance_free(in);
  ASSERT_EQ(flaky_attempts("fl1"), 1);

  ctl_res r = CTL(h.addr, "rewind", "fl1", "--reason", "retry it");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "rewound fl1\n");
  ctl_res_free(&r);
  in = done(&h, "fl1");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, "[{\"echo\":\"r\"},\"second time lucky\"]");
  dt_instance_free(in);
  ASSERT_EQ(flaky_attempts("fl1"), 2);
  r = CTL(h.addr, "show", "fl1", "--json");
  json_object *doc = ctl_doc(&r);
  json_object *rw = jevent(jget(doc, "history"), "ExecutionRewound", 0);
  ASSERT(rw != NULL);
  ASSERT_STR_CONTAINS(jstr(rw, "payload"), "retry it");
  free_doc(doc, &r);

  /* Not FAILED: exit 4, saying why. */
  r = CTL(h.addr, "rewind", "fl1");
  ASSERT_EXIT(r, 4);
  ASSERT_STR_CONTAINS(r.err, "'fl1' is COMPLETED; only FAILED instances can be rewound");
  ctl_res_free(&r);
  r = CTL(h.addr, "rewind", "fl1", "--json");
  ASSERT_EXIT(r, 4);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "WRONG_STATE");
  free_doc(doc, &r);

  /* JSON acknowledgement on a second failed instance. */
  sched(&h, "flaky", "fl2", "\"s\"");
  in = done(&h, "fl2");
  ASSERT_EQ(in->status, DT_STATUS_FAILED);
  dt_instance_free(in);
  r = CTL(h.addr, "-o", "json", "rewind", "fl2");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "fl2");
  ASSERT_STR_EQ(jstr(doc, "operation"), "rewind");
  free_doc(doc, &r);
  in = done(&h, "fl2");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  dt_instance_free(in);
  hub_stop(&h);
  return 0;
}

TEST_IMPL(ctl_restart)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "hello", "rs1", "\"again\"");
  dt_instance *in = done(&h, "rs1");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  char *exec1 = strdup(in->execution_id);
  dt_instance_free(in);

  /* --new-id: a new instance with the same name and input; the old one is untouched. */
  ctl_res r = CTL(h.addr, "restart", "rs1", "--new-id");
  ASSERT_EXIT(r, 0);
  size_t len = strcspn(r.out, "\n");
  ASSERT_GT(len, 0);
  ASSERT_STR_EQ(r.out + len, "\n");
  r.out[len] = '\0';
  ASSERT(strcmp(r.out, "rs1") != 0);
  in = done(&h, r.out);
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->name, "hello");
  ASSERT_STR_EQ(in->input, "\"again\"");
  ASSERT_STR_EQ(in->output, "{\"echo\":\"again\"}");
  dt_instance_free(in);
  ctl_res_free(&r);
  in = get(&h, "rs1");
  ASSERT_STR_EQ(in->execution_id, exec1);
  dt_instance_free(in);

  /* In place, JSON: the same id, a new execution. */
  r = CTL(h.addr, "--json", "restart", "rs1");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "rs1");
  ASSERT_STR_EQ(jstr(doc, "restartedFrom"), "rs1");
  ASSERT_STR_EQ(jstr(doc, "operation"), "restart");
  free_doc(doc, &r);
  int64_t end = mono_ms() + CTL_WAIT_MS;
  for (;;) {
    in = get(&h, "rs1");
    bool fresh = strcmp(in->execution_id, exec1) != 0 && in->status == DT_STATUS_COMPLETED;
    dt_instance_free(in);
    if (fresh)
      break;
    ASSERT_LT(mono_ms(), end);
    sleep_ms(20);
  }
  free(exec1);
  r = CTL(h.addr, "--json", "restart", "rs1", "--new-id");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT(strcmp(jstr(doc, "instanceId"), "rs1") != 0);
  ASSERT_STR_EQ(jstr(doc, "restartedFrom"), "rs1");
  in = done(&h, jstr(doc, "instanceId"));
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  dt_instance_free(in);
  free_doc(doc, &r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ watch */

TEST_IMPL(ctl_watch)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "waiter", "wt1", NULL);
  ctl_proc *p = ctl_spawn(&(ctl_opts){.address = h.addr},
                          (const char *const[]){"watch", "wt1", "--interval-ms", "100", NULL});
  /* Live: the custom status shows up while the instance still waits for its event. */
  if (!ctl_expect(p, "custom status \"waiting for go\"", CTL_WAIT_MS))
    TEST_FAIL("watch did not show the custom status");
  ASSERT(ctl_expect(p, " ExecutionStarted ", CTL_WAIT_MS));
  dt_instance *in = get(&h, "wt1");
  ASSERT_EQ(in->status, DT_STATUS_RUNNING);
  dt_instance_free(in);
  ASSERT_OK(dt_client_raise_event(h.c, "wt1", "go", "\"w\""));
  ctl_res r = ctl_finish(p, CTL_RUN_MS);
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "watching wt1 (waiter)");
  ASSERT_STR_CONTAINS(r.out, "RUNNING");
  ASSERT_STR_CONTAINS(r.out, "custom status \"got go\"");
  char *ev = line_with(r.out, " EventRaised ");
  ASSERT(ev != NULL);
  ASSERT_STR_CONTAINS(ev, "name=go data=\"w\"");
  free(ev);
  ASSERT_STR_CONTAINS(r.out, "finished: wt1 COMPLETED\n");
  ASSERT_STR_CONTAINS(r.out, "output: {\"got\":\"w\"}\n");
  long a = index_of(r.out, " ExecutionStarted "), b = index_of(r.out, " EventRaised "),
       c = index_of(r.out, " ExecutionCompleted "), d = index_of(r.out, "finished:");
  ASSERT(a >= 0 && a < b && b < c && c < d);
  /* Each event once. */
  ASSERT_EQ(count_lines(r.out, " ExecutionStarted "), 1);
  ASSERT_EQ(count_lines(r.out, " EventRaised "), 1);
  ctl_res_free(&r);

  /* JSON: one document at the end, the final state with its history. */
  sched(&h, "waiter", "wt2", NULL);
  p = ctl_spawn(&(ctl_opts){.address = h.addr},
                (const char *const[]){"--json", "watch", "wt2", "--interval-ms", "50", NULL});
  until_status(&h, "wt2", DT_STATUS_RUNNING, CTL_WAIT_MS);
  sleep_ms(200);
  ASSERT_OK(dt_client_raise_event(h.c, "wt2", "go", "2"));
  r = ctl_finish(p, CTL_RUN_MS);
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "wt2");
  ASSERT_STR_EQ(jstr(doc, "status"), "COMPLETED");
  ASSERT_STR_EQ(jstr(doc, "output"), "{\"got\":2}");
  ASSERT_STR_EQ(jstr(doc, "customStatus"), "\"got go\"");
  json_object *raised = jevent(jget(doc, "history"), "EventRaised", 0);
  ASSERT(raised != NULL);
  ASSERT_STR_EQ(jstr(raised, "payload"), "2");
  free_doc(doc, &r);

  /* Suspend and resume while watching: both transitions are shown. */
  sched(&h, "waiter", "wt3", NULL);
  until_status(&h, "wt3", DT_STATUS_RUNNING, CTL_WAIT_MS);
  p = ctl_spawn(&(ctl_opts){.address = h.addr},
                (const char *const[]){"watch", "wt3", "--interval-ms", "50", NULL});
  ASSERT(ctl_expect(p, "status RUNNING", CTL_WAIT_MS));
  ASSERT_OK(dt_client_suspend(h.c, "wt3", "pause"));
  ASSERT(ctl_expect(p, "status RUNNING -> SUSPENDED", CTL_WAIT_MS));
  ASSERT_OK(dt_client_resume(h.c, "wt3", NULL));
  ASSERT(ctl_expect(p, "status SUSPENDED -> RUNNING", CTL_WAIT_MS));
  ASSERT_OK(dt_client_raise_event(h.c, "wt3", "go", NULL));
  r = ctl_finish(p, CTL_RUN_MS);
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, " ExecutionSuspended ");
  ASSERT_STR_CONTAINS(r.out, "finished: wt3 COMPLETED\n");
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

/* watch ends with the instance: 1 for FAILED or TERMINATED, 5 when --timeout-ms passes first. */
TEST_IMPL(ctl_watch_ends)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "fail", "we1", NULL);
  dt_instance *in = done(&h, "we1");
  ASSERT_EQ(in->status, DT_STATUS_FAILED);
  dt_instance_free(in);
  ctl_res r = CTL(h.addr, "watch", "we1");
  ASSERT_EXIT(r, 1);
  ASSERT_STR_CONTAINS(r.out, "finished: we1 FAILED\n");
  char *fl = line_with(r.out, "failure: ");
  ASSERT(fl != NULL);
  ASSERT_STR_CONTAINS(fl, "kaput");
  free(fl);
  ASSERT_STR_CONTAINS(r.out, " TaskFailed ");
  ctl_res_free(&r);

  sched(&h, "waiter", "we2", NULL);
  ctl_proc *p = ctl_spawn(&(ctl_opts){.address = h.addr},
                          (const char *const[]){"watch", "we2", "--interval-ms", "100", NULL});
  ASSERT(ctl_expect(p, "custom status", CTL_WAIT_MS));
  ASSERT_OK(dt_client_terminate(h.c, "we2", "\"cut\"", false));
  r = ctl_finish(p, CTL_RUN_MS);
  ASSERT_EXIT(r, 1);
  ASSERT_STR_CONTAINS(r.out, " ExecutionTerminated ");
  ASSERT_STR_CONTAINS(r.out, "finished: we2 TERMINATED\n");
  ASSERT_STR_CONTAINS(r.out, "output: \"cut\"\n");
  ctl_res_free(&r);

  /* A scheduled start an hour away: never finishes within the timeout. */
  dt_start_options o = {.instance_id = "we3", .start_at_ms = wall_ms() + 3600 * 1000};
  ASSERT_OK(dt_client_schedule(h.c, "waiter", &o, NULL));
  int64_t t0 = mono_ms();
  r = CTL(h.addr, "watch", "we3", "--timeout-ms", "800");
  ASSERT_EXIT(r, 5);
  ASSERT_GE(mono_ms() - t0, 700);
  ASSERT_STR_CONTAINS(r.out, "status PENDING");
  ASSERT_STR_CONTAINS(r.err, "did not finish within --timeout-ms 800");
  ctl_res_free(&r);
  r = CTL(h.addr, "watch", "we3", "--timeout-ms", "300", "--json");
  ASSERT_EXIT(r, 5);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "TIMEOUT");
  free_doc(doc, &r);
  ASSERT_OK(dt_client_terminate(h.c, "we3", NULL, false));
  until_status(&h, "we3", DT_STATUS_TERMINATED, CTL_WAIT_MS);
  hub_stop(&h);
  return 0;
}
