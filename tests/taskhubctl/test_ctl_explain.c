/*
 * taskhubctl explains (issue 14): output and messages that say more than the bare facts, one section per item
 * of the issue. Each test starts its own taskhubd, and a C SDK worker where instances must run.
 */
#include "ctl_harness.h"
#include "support/th_client.h"
#include "support/th_stream.h"

#include <unistd.h>

static void free_doc(json_object *doc, ctl_res *r)
{
  json_object_put(doc);
  ctl_res_free(r);
}

/* ------------------------------------------------------------------ the server's message */

TEST_IMPL(ctl_server_message)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  /* A token the server never issued: its INVALID_ARGUMENT says which field and why. */
  ctl_res r = CTL(h.addr, "list", "--continuation", "bogus", "--page-size", "5");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "(INVALID_ARGUMENT: query.continuationToken: not a token this server issued");
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "list", "--continuation", "bogus", "--page-size", "5");
  ASSERT_EXIT(r, 2);
  json_object *doc = ctl_doc(&r);
  json_object *e = jget(doc, "error");
  ASSERT_STR_EQ(jstr(e, "code"), "INVALID_ARGUMENT");
  ASSERT_STR_EQ(jstr(e, "grpcCode"), "INVALID_ARGUMENT");
  ASSERT_STR_CONTAINS(jstr(e, "grpcMessage"), "not a token this server issued");
  ASSERT_STR_CONTAINS(jstr(e, "message"), "not a token this server issued");
  free_doc(doc, &r);

  /* A wait that runs out names the gRPC code. */
  sched(&h, "hello", "sm-1", NULL);
  r = CTL(h.addr, "start", "hello", "--id", "sm-2", "--wait", "--timeout-ms", "300");
  ASSERT_EXIT(r, 5);
  ASSERT_STR_CONTAINS(r.err, "timed out (DEADLINE_EXCEEDED");
  ctl_res_free(&r);

  /* NOT_FOUND from a status (history of an unknown instance is a stream) keeps the old wording too. */
  r = CTL(h.addr, "show", "nope");
  ASSERT_EXIT(r, 3);
  ASSERT_STR_CONTAINS(r.err, "show: instance 'nope' not found");
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

/* A wait that runs out says what taskhubd said about why, not the gRPC library's bare deadline. With
 * --wait-cap 1, taskhubd ends each wait after a second with its reason; later waits, cut by our deadline, must
 * not replace it. */
TEST_IMPL(ctl_wait_reason)
{
  hub h;
  static const char *const args[] = {"--wait-cap", "1", NULL};
  int rc = hub_start_args(&h, false, args);
  if (rc)
    return rc;
  ctl_res r = CTL(h.addr, "start", "chain", "--id", "wr-1", "--wait", "--timeout-ms", "2500");
  ASSERT_EXIT(r, 5);
  ASSERT_STR_CONTAINS(r.err, "start --wait: waiting for wr-1: timed out (DEADLINE_EXCEEDED: ");
  ASSERT_STR_CONTAINS(r.err, "no connected worker accepts orchestration 'chain'");
  ctl_res_free(&r);
  r = CTL(h.addr, "watch", "wr-1", "--timeout-ms", "1500", "--interval-ms", "3000");
  ASSERT_EXIT(r, 5);
  ASSERT_STR_CONTAINS(r.err, "did not finish within --timeout-ms 1500: timed out (DEADLINE_EXCEEDED: ");
  ASSERT_STR_CONTAINS(r.err, "no connected worker accepts orchestration 'chain'");
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "start", "chain", "--id", "wr-2", "--wait", "--timeout-ms", "1500");
  ASSERT_EXIT(r, 5);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(jget(doc, "error"), "grpcCode"), "DEADLINE_EXCEEDED");
  ASSERT_STR_CONTAINS(jstr(jget(doc, "error"), "grpcMessage"), "no connected worker accepts orchestration");
  free_doc(doc, &r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ helpers */

/* Waits until the wall clock is past |ms|. Not to wait for another party: list sorts by creation time, in
 * milliseconds, so instances created in the same millisecond would have no order to check. */
static void clock_past(int64_t ms)
{
  while (wall_ms() <= ms)
    sleep_ms(1);
}

/* Schedules |name| as |iid| and returns once the clock is past its creation time. */
static void sched_apart(hub *h, const char *name, const char *iid)
{
  sched(h, name, iid, NULL);
  dt_instance *in = get(h, iid);
  ASSERT(in != NULL);
  clock_past(in->created_ms);
  dt_instance_free(in);
}

/* The ids of a list document in the order printed, comma-joined (caller frees). */
static char *ids_in_order(json_object *doc)
{
  json_object *arr = jget(doc, "instances");
  ASSERT(arr && json_object_is_type(arr, json_type_array));
  size_t cap = 1;
  for (size_t i = 0; i < json_object_array_length(arr); i++)
    cap += strlen(jstr(json_object_array_get_idx(arr, i), "instanceId")) + 1;
  char *s = calloc(1, cap);
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    if (i)
      strcat(s, ",");
    strcat(s, jstr(json_object_array_get_idx(arr, i), "instanceId"));
  }
  return s;
}

#define LIST(h, ...) list_run((h), (const char *const[]){"--json", "list", __VA_ARGS__, NULL}, NULL, NULL)
/* Also what the list says of older matches left out: whether any (more), how many when counted (omitted; -1 for
 * null). */
#define LIST_MORE(h, more, omitted, ...)                                                                         \
  list_run((h), (const char *const[]){"--json", "list", __VA_ARGS__, NULL}, (more), (omitted))
static char *list_run(hub *h, const char *const *args, bool *more, int64_t *omitted)
{
  ctl_res r = ctl_run(&(ctl_opts){.address = h->addr}, args);
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  char *ids = ids_in_order(doc);
  ASSERT_EQ(jint(doc, "count"), (int64_t)json_object_array_length(jget(doc, "instances")));
  if (more)
    *more = json_object_get_boolean(jget(doc, "more"));
  if (omitted) {
    json_object *o = NULL;
    ASSERT(json_object_object_get_ex(doc, "omitted", &o));
    *omitted = o ? json_object_get_int64(o) : -1;
  }
  free_doc(doc, &r);
  return ids;
}

static void terminate_now(hub *h, const char *iid, const char *output)
{
  ASSERT_OK(dt_client_terminate(h->c, iid, output, false));
  until_status(h, iid, DT_STATUS_TERMINATED, CTL_WAIT_MS);
}

/* ------------------------------------------------------------------ list */

TEST_IMPL(ctl_list_newest_first)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  /* Ids in the opposite order to their creation, so that neither the server's time order nor its id order
   * (with --prefix) is newest first. */
  sched_apart(&h, "alpha", "n-c");
  sched_apart(&h, "beta", "n-b");
  sched_apart(&h, "alpha", "n-a");

  char *ids = LIST(&h, "--all");
  ASSERT_STR_EQ(ids, "n-a,n-b,n-c");
  free(ids);
  ids = LIST(&h, "--prefix", "n-");
  ASSERT_STR_EQ(ids, "n-a,n-b,n-c");
  free(ids);
  /* A page keeps the server's order, which is what its token resumes: oldest first, by id with --prefix. */
  ids = LIST(&h, "--page-size", "10");
  ASSERT_STR_EQ(ids, "n-c,n-b,n-a");
  free(ids);
  ids = LIST(&h, "--page-size", "10", "--prefix", "n-");
  ASSERT_STR_EQ(ids, "n-a,n-b,n-c");
  free(ids);

  /* --limit keeps the newest and says that older ones matched: read newest first from the server, so not how
   * many (omitted is null) ... */
  bool more = false;
  int64_t omitted = 0;
  ids = LIST_MORE(&h, &more, &omitted, "--limit", "2");
  ASSERT_STR_EQ(ids, "n-a,n-b");
  ASSERT(more);
  ASSERT_EQ(omitted, -1);
  free(ids);
  ids = LIST_MORE(&h, &more, &omitted, "--limit", "3");
  ASSERT_STR_EQ(ids, "n-a,n-b,n-c");
  ASSERT(!more);
  free(ids);
  ctl_res r = CTL(h.addr, "list", "--limit", "1");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, " alpha "), 1);
  ASSERT_STR_CONTAINS(r.out, "older instances not shown");
  ASSERT_LT(index_of(r.out, "n-a "), index_of(r.out, "older instances"));
  ctl_res_free(&r);
  /* ... and with --prefix, where every match is read, how many. */
  ids = LIST_MORE(&h, &more, &omitted, "--limit", "1", "--prefix", "n-");
  ASSERT_STR_EQ(ids, "n-a");
  ASSERT(more);
  ASSERT_EQ(omitted, 2);
  free(ids);
  r = CTL(h.addr, "list", "--limit", "1", "--prefix", "n-");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "2 older instances not shown");
  ctl_res_free(&r);
  /* Newest first across the server's pages: --all reads them 1 at a time and still lists every one in order. */
  ids = LIST(&h, "--all", "--page-size", "1");
  ASSERT_STR_EQ(ids, "n-a,n-b,n-c");
  free(ids);
  ids = LIST(&h, "--all", "--page-size", "1", "--created-after", "1h", "--created-before", "2100-01-01T00:00:00Z");
  ASSERT_STR_EQ(ids, "n-a,n-b,n-c");
  free(ids);

  /* --name: only that orchestration, still newest first; in text as in JSON. */
  ids = LIST(&h, "--name", "alpha");
  ASSERT_STR_EQ(ids, "n-a,n-c");
  free(ids);
  ids = LIST_MORE(&h, &more, &omitted, "--name", "alpha", "--limit", "1");
  ASSERT_STR_EQ(ids, "n-a");
  ASSERT(more);
  free(ids);
  ids = LIST_MORE(&h, &more, &omitted, "--name", "beta", "--limit", "1");
  ASSERT_STR_EQ(ids, "n-b");
  ASSERT(!more); /* read to the end: the only beta */
  free(ids);
  ids = LIST(&h, "--name", "beta", "--page-size", "1", "--prefix", "n-b");
  ASSERT_STR_EQ(ids, "n-b");
  free(ids);
  ids = LIST(&h, "--name", "Alpha");
  ASSERT_STR_EQ(ids, "");
  free(ids);
  r = CTL(h.addr, "list", "--name", "beta");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, " beta "), 1);
  ASSERT_EQ(count_lines(r.out, " alpha "), 0);
  ctl_res_free(&r);

  /* --limit is about newest first: not with --all, nor with a page. */
  const char *const *const bad[] = {
      (const char *const[]){"list", "--limit", "2", "--all", NULL},
      (const char *const[]){"list", "--limit", "2", "--page-size", "5", NULL},
      (const char *const[]){"list", "--limit", "0", NULL},
      (const char *const[]){"list", "--name", "", NULL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = ctl_run(&(ctl_opts){.address = h.addr}, bad[i]);
    ASSERT_EXIT(r, 2);
    ctl_res_free(&r);
  }
  hub_stop(&h);
  return 0;
}

TEST_IMPL(ctl_relative_times)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "rel", "rel-1", NULL);
  sched(&h, "rel", "rel-2", NULL);
  terminate_now(&h, "rel-2", NULL);

  /* An age counts back from now: both were created within the last 10 minutes, neither before that. */
  char *ids = LIST(&h, "--created-after", "10m");
  ASSERT_STR_EQ(ids, "rel-2,rel-1");
  free(ids);
  ids = LIST(&h, "--created-before", "10m");
  ASSERT_STR_EQ(ids, "");
  free(ids);
  ids = LIST(&h, "--created-after", "1h30m", "--created-before", "1w");
  ASSERT_STR_EQ(ids, "");
  free(ids);
  ids = LIST(&h, "--created-after", "2d", "--status", "TERMINATED");
  ASSERT_STR_EQ(ids, "rel-2");
  free(ids);
  /* Absolute times still work, next to ages. */
  ids = LIST(&h, "--created-after", "2000-01-01", "--created-before", "10s");
  ASSERT_STR_EQ(ids, "");
  free(ids);

  /* purge takes them too. */
  ctl_res r = CTL(h.addr, "purge", "--created-before", "1h", "--yes");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "nothing to purge");
  ctl_res_free(&r);
  ASSERT(exists(&h, "rel-2"));
  r = CTL(h.addr, "purge", "--created-after", "1h", "--yes");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "purged 1 instance");
  ctl_res_free(&r);
  ASSERT(!exists(&h, "rel-2"));
  ASSERT(exists(&h, "rel-1"));

  static const char *const bad[] = {"1x", "h", "1h2", "-1h", "1.5h", "99999d", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = CTL(h.addr, "list", "--created-after", bad[i]);
    ASSERT_EXIT(r, 2);
    ASSERT_STR_CONTAINS(r.err, "nor an age");
    ctl_res_free(&r);
  }
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ purge --prefix */

TEST_IMPL(ctl_purge_prefix)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "pp", "pp-1", NULL);
  sched(&h, "pp", "pp-2", NULL);
  sched(&h, "pp", "pp-3", NULL); /* stays PENDING: not purged */
  sched(&h, "pp", "ppx", NULL);
  sched(&h, "pp", "other-pp-1", NULL);
  terminate_now(&h, "pp-1", NULL);
  terminate_now(&h, "pp-2", NULL);
  terminate_now(&h, "ppx", NULL);
  terminate_now(&h, "other-pp-1", NULL);

  /* Without a terminal or --yes it is refused, and says what it would have purged. */
  ctl_res r = CTL(h.addr, "purge", "--prefix", "pp-");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "2 instances");
  ASSERT_STR_CONTAINS(r.err, "id starting with 'pp-'");
  ctl_res_free(&r);
  ASSERT(exists(&h, "pp-1"));

  r = CTL(h.addr, "--json", "purge", "--prefix", "pp-", "--yes");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_EQ(jint(doc, "matched"), 2);
  ASSERT_EQ(jint(doc, "deleted"), 2);
  ASSERT(json_object_get_boolean(jget(doc, "complete")));
  free_doc(doc, &r);
  ASSERT(!exists(&h, "pp-1"));
  ASSERT(!exists(&h, "pp-2"));
  ASSERT(exists(&h, "pp-3"));
  ASSERT(exists(&h, "ppx"));
  ASSERT(exists(&h, "other-pp-1"));

  /* With a status, the prefix and the status both apply. */
  r = CTL(h.addr, "purge", "--prefix", "pp", "--status", "COMPLETED", "--yes");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "nothing to purge");
  ctl_res_free(&r);
  ASSERT(exists(&h, "ppx"));
  r = CTL(h.addr, "purge", "--prefix", "pp", "--status", "TERMINATED", "--yes");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "purged 1 instance\n");
  ctl_res_free(&r);
  ASSERT(!exists(&h, "ppx"));
  ASSERT(exists(&h, "pp-3"));

  r = CTL(h.addr, "purge", "x", "--prefix", "pp");
  ASSERT_EXIT(r, 2);
  ctl_res_free(&r);
  terminate_now(&h, "pp-3", NULL);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ terminate --reason */

TEST_IMPL(ctl_terminate_reason)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "waiter", "tr-1", NULL);
  until_status(&h, "tr-1", DT_STATUS_RUNNING, CTL_WAIT_MS);
  ctl_res r = CTL(h.addr, "terminate", "tr-1", "--reason", "maintenance \"window\"");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "terminated tr-1\n");
  ctl_res_free(&r);
  dt_instance *in = done(&h, "tr-1");
  ASSERT_EQ(in->status, DT_STATUS_TERMINATED);
  ASSERT_STR_EQ(in->output, "\"maintenance \\\"window\\\"\""); /* a JSON string */
  dt_instance_free(in);
  r = CTL(h.addr, "show", "tr-1");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "Output:          \"maintenance \\\"window\\\"\"\n");
  char *line = line_with(r.out, " ExecutionTerminated ");
  ASSERT(line != NULL);
  ASSERT_STR_CONTAINS(line, "output=\"maintenance");
  free(line);
  ctl_res_free(&r);

  /* A PENDING one, in JSON. */
  dt_start_options o = {.instance_id = "tr-2", .start_at_ms = wall_ms() + 3600 * 1000};
  ASSERT_OK(dt_client_schedule(h.c, "waiter", &o, NULL));
  r = CTL(h.addr, "--json", "terminate", "tr-2", "--reason", "not needed");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "operation"), "terminate");
  free_doc(doc, &r);
  in = done(&h, "tr-2");
  ASSERT_STR_EQ(in->output, "\"not needed\"");
  dt_instance_free(in);

  /* The reason is the output: both at once is a usage error. */
  r = CTL(h.addr, "terminate", "tr-2", "--reason", "x", "--output", "1");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "--reason and --output exclude each other");
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ failures */

/* Plays the worker for |iid|'s first turn over raw gRPC and fails the orchestration with |outer| (the C SDK
 * sets no stack traces, so the failure is made by hand). */
static void fail_by_hand(hub *h, const char *iid, TaskFailureDetails *outer)
{
  th_client *tc = th_client_open(h->srv.port);
  th_stream *ws = th_work_open(tc, NULL);
  WorkItem *wi = NULL;
  for (;;) {
    wi = th_work_expect(ws, CTL_WAIT_MS, "the orchestrator work item");
    if (wi->request_case == WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST &&
        strcmp(wi->orchestratorrequest->instanceid, iid) == 0)
      break;
    work_item__free_unpacked(wi, NULL);
  }
  CompleteOrchestrationAction co = COMPLETE_ORCHESTRATION_ACTION__INIT;
  co.orchestrationstatus = ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED;
  co.failuredetails = outer;
  OrchestratorAction fin = ORCHESTRATOR_ACTION__INIT, *pfin = &fin;
  fin.orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
  fin.completeorchestration = &co;
  OrchestratorResponse resp = ORCHESTRATOR_RESPONSE__INIT;
  resp.instanceid = wi->orchestratorrequest->instanceid;
  resp.completiontoken = wi->completiontoken;
  resp.n_actions = 1;
  resp.actions = &pfin;
  char *details = NULL;
  grpc_status_code st = th_call_unary(tc, "/TaskHubSidecarService/CompleteOrchestratorTask", &resp.base,
                                      &complete_task_response__descriptor, CTL_WAIT_MS, NULL, &details);
  if (st != GRPC_STATUS_OK)
    TEST_FAIL("CompleteOrchestratorTask: %s (%s)", th_status_name(st), details ? details : "");
  free(details);
  work_item__free_unpacked(wi, NULL);
  th_stream_free(ws);
  th_client_close(tc);
}

TEST_IMPL(ctl_failure_details)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  /* OuterError (two message lines, a stack with a tab, as Java writes them) caused by InnerError, whose stack
   * has 12 lines. */
  char inner_stack[512] = "";
  for (int i = 1; i <= 12; i++)
    snprintf(inner_stack + strlen(inner_stack), sizeof inner_stack - strlen(inner_stack), "at inner%d()\n", i);
  Google__Protobuf__StringValue os = GOOGLE__PROTOBUF__STRING_VALUE__INIT, is = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  os.value = (char *)"at outer()\n\tat main()";
  is.value = inner_stack;
  TaskFailureDetails inner = TASK_FAILURE_DETAILS__INIT, outer = TASK_FAILURE_DETAILS__INIT;
  inner.errortype = (char *)"InnerError";
  inner.errormessage = (char *)"root cause";
  inner.stacktrace = &is;
  outer.errortype = (char *)"OuterError";
  outer.errormessage = (char *)"outer line 1\nouter line 2";
  outer.stacktrace = &os;
  outer.innerfailure = &inner;

  /* start --wait: the final state shows all of it. */
  ctl_proc *p = ctl_spawn(&(ctl_opts){.address = h.addr},
                          (const char *const[]){"start", "byhand", "--id", "fd-1", "--wait", NULL});
  until_status(&h, "fd-1", DT_STATUS_PENDING, CTL_WAIT_MS);
  fail_by_hand(&h, "fd-1", &outer);
  ctl_res r = ctl_finish(p, CTL_RUN_MS);
  ASSERT_EXIT(r, 1);
  static const char *const final_lines[] = {
      "fd-1 FAILED\n",
      "failure: OuterError: outer line 1\n",
      "    outer line 2\n",
      "    at outer()\n",
      "        at main()\n",
      "  caused by: InnerError: root cause\n",
      "    at inner1()\n",
      "    at inner12()\n",
  };
  long prev = -1;
  for (size_t i = 0; i < sizeof final_lines / sizeof final_lines[0]; i++) {
    long at = index_of(r.out, final_lines[i]);
    if (at <= prev)
      TEST_FAIL("start --wait: \"%s\" missing or out of place in:\n%s", final_lines[i], r.out);
    prev = at;
  }
  ASSERT(index_of(r.out, "\\n") < 0); /* nothing escaped */
  ctl_res_free(&r);

  /* show: under the Failure label; stack traces cut to 10 lines unless --payloads. */
  r = CTL(h.addr, "show", "fd-1");
  ASSERT_EXIT(r, 0);
  static const char *const show_lines[] = {
      "Failure:         OuterError: outer line 1\n",
      "                   outer line 2\n",
      "                   at outer()\n",
      "                       at main()\n",
      "                 caused by: InnerError: root cause\n",
      "                   at inner10()\n",
      "                   ... 2 more lines (--payloads shows all)\n",
  };
  prev = -1;
  for (size_t i = 0; i < sizeof show_lines / sizeof show_lines[0]; i++) {
    long at = index_of(r.out, show_lines[i]);
    if (at <= prev)
      TEST_FAIL("show: \"%s\" missing or out of place in:\n%s", show_lines[i], r.out);
    prev = at;
  }
  ASSERT(index_of(r.out, "at inner11()") < 0);
  ctl_res_free(&r);
  r = CTL(h.addr, "show", "fd-1", "--payloads");
  ASSERT_EXIT(r, 0);
  ASSERT(index_of(r.out, "more lines") < 0);
  /* The instance's failure and the ExecutionCompleted event's, each with its whole chain. */
  ASSERT_EQ(count_lines(r.out, "caused by: InnerError: root cause"), 2);
  ASSERT_EQ(count_lines(r.out, "at inner12()"), 2);
  ctl_res_free(&r);
  /* JSON holds the same chain as data. */
  r = CTL(h.addr, "--json", "show", "fd-1");
  json_object *doc = ctl_doc(&r);
  json_object *f = jget(doc, "failure");
  ASSERT_STR_EQ(jstr(f, "stackTrace"), "at outer()\n\tat main()");
  ASSERT_STR_EQ(jstr(jget(f, "inner"), "type"), "InnerError");
  free_doc(doc, &r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ version */

TEST_IMPL(ctl_version)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  ctl_res v = CTL(NULL, "--version");
  ASSERT_EXIT(v, 0);
  ASSERT(strncmp(v.out, "taskhubctl ", 11) == 0);
  char client[64];
  snprintf(client, sizeof client, "client: %s", v.out); /* "client: taskhubctl X.Y.Z\n" */
  ctl_res r = CTL(h.addr, "version");
  ASSERT_EXIT(r, 0);
  ASSERT(strncmp(r.out, client, strlen(client)) == 0);
  /* The server's version, library and store come from taskhubd's own service. */
  char *server = line_with(r.out, "server: ");
  ASSERT(server != NULL);
  char want[128];
  snprintf(want, sizeof want, "server: taskhubd %s", v.out + strlen("taskhubctl "));
  want[strcspn(want, "\n")] = '\0';
  ASSERT_STR_CONTAINS(server, want);
  bool pg = getenv("TASKHUBD_TEST_PG") != NULL;
  ASSERT_STR_CONTAINS(server, pg ? "store postgresql, replica " : "store rocksdb, 1 partition)");
  free(server);
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "version");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  char version[64];
  snprintf(version, sizeof version, "%s", v.out + strlen("taskhubctl "));
  version[strcspn(version, "\n")] = '\0';
  ASSERT_STR_EQ(jstr(doc, "client"), version);
  json_object *srv = jget(doc, "server");
  ASSERT(srv != NULL);
  ASSERT_STR_EQ(jstr(srv, "version"), version);
  ASSERT_STR_EQ(jstr(srv, "store"), pg ? "postgresql" : "rocksdb");
  ASSERT(jstr(srv, "grpc") != NULL && jstr(srv, "grpc")[0] != '\0');
  ASSERT(!json_object_object_get_ex(doc, "serverUnknownReason", NULL));
  free_doc(doc, &r);
  /* A server that is down: the client's version still, the reason, and exit status 5. */
  hub_stop(&h);
  r = CTL(h.addr, "version");
  ASSERT_EXIT(r, 5);
  ASSERT(strncmp(r.out, client, strlen(client)) == 0);
  ASSERT_STR_CONTAINS(r.out, "server: unknown (UNAVAILABLE");
  ctl_res_free(&r);
  ctl_res_free(&v);
  return 0;
}

/* ------------------------------------------------------------------ completion, suggestions */

/* Runs bash with the completion script loaded and prints what _taskhubctl offers for each |lines| entry (the
 * command line up to the cursor), one line of candidates each. Returns bash's output (caller frees). */
static char *bash_complete(const char *script_path, const char *const *lines)
{
  char prog[4096];
  int n = snprintf(prog, sizeof prog, "source '%s' || exit 9\n"
                                      "t() { COMP_LINE=\"$1\"; COMP_POINT=${#1}; COMPREPLY=(); _taskhubctl; "
                                      "echo \"${COMPREPLY[*]}\"; }\n",
                   script_path);
  for (size_t i = 0; lines[i]; i++)
    n += snprintf(prog + n, sizeof prog - (size_t)n, "t '%s'\n", lines[i]);
  ASSERT_LT(n, (int)sizeof prog);
  char tmpl[] = "/tmp/ctl-comp-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, prog, (size_t)n), n);
  close(fd);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "bash --norc --noprofile '%s'", tmpl);
  FILE *f = popen(cmd, "r");
  ASSERT(f != NULL);
  char *out = NULL;
  size_t cap = 0;
  ssize_t got = getdelim(&out, &cap, '\0', f);
  int st = pclose(f);
  unlink(tmpl);
  ASSERT_EQ(st, 0);
  ASSERT_GE(got, 0);
  return out;
}

TEST_IMPL(ctl_completion)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "cmp", "cmp-one", NULL);
  sched(&h, "cmp", "cmp-two", NULL);
  sched(&h, "cmp", "other", NULL);

  ctl_res r = CTL(NULL, "completion", "bash");
  ASSERT_EXIT(r, 0);
  /* Every command the help lists is offered. */
  ctl_res help = CTL(NULL, "--help");
  char *cmds = strstr(help.out, "Commands:\n");
  ASSERT(cmds != NULL);
  int n_cmds = 0;
  for (char *l = strchr(cmds, '\n') + 1; strncmp(l, "  ", 2) == 0; l = strchr(l, '\n') + 1) {
    char name[32];
    ASSERT_EQ(sscanf(l, "%31s", name), 1);
    ASSERT_STR_CONTAINS(r.out, name);
    n_cmds++;
  }
  ASSERT_GE(n_cmds, 15);
  ctl_res_free(&help);
  char path[] = "/tmp/ctl-bash-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, r.out, strlen(r.out)), (ssize_t)strlen(r.out));
  close(fd);
  ctl_res_free(&r);

  /* What bash offers, from the tables: commands, options, option values, and ids from the server. */
  const char *bin = getenv("TASKHUBCTL_BIN");
  char show_line[256], addr_line[256];
  snprintf(show_line, sizeof show_line, "%s -a %s show cmp", bin, h.addr);
  snprintf(addr_line, sizeof addr_line, "%s --address=%s watch cmp-t", bin, h.addr);
  const char *const lines[] = {
      "taskhubctl li",
      "taskhubctl list --sta",
      "taskhubctl list --status=FA",
      "taskhubctl purge --status C",
      "taskhubctl -o j",
      "taskhubctl terminate x --output ",
      "taskhubctl help ter",
      "taskhubctl completion ",
      show_line,
      addr_line,
      NULL,
  };
  char *out = bash_complete(path, lines);
  unlink(path);
  static const char *const want[] = {
      "list\n",
      "--status\n",
      "FAILED\n",
      "COMPLETED CANCELED\n", /* purge's statuses are the finished ones */
      "json\n",
      "\n", /* terminate's own --output takes JSON: nothing to offer */
      "terminate\n",
      "bash zsh\n",
      "cmp-two cmp-one\n", /* newest first, as list prints them */
      "cmp-two\n",
  };
  const char *p = out;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    size_t len = strcspn(p, "\n") + 1;
    if (strlen(want[i]) != len || strncmp(p, want[i], len) != 0)
      TEST_FAIL("completing \"%s\": got \"%.*s\", want \"%.*s\"", lines[i], (int)len - 1, p,
                (int)strlen(want[i]) - 1, want[i]);
    p += len;
  }
  free(out);

  r = CTL(NULL, "completion", "zsh");
  ASSERT_EXIT(r, 0);
  ASSERT(strncmp(r.out, "#compdef taskhubctl\n", 20) == 0);
  ASSERT_STR_CONTAINS(r.out, "'list:List instances");
  ASSERT_STR_CONTAINS(r.out, "(COMPLETED FAILED TERMINATED CANCELED)");
  if (access("/usr/bin/zsh", X_OK) == 0) { /* the script parses, where zsh is there to say so */
    char zpath[] = "/tmp/ctl-zsh-XXXXXX";
    fd = mkstemp(zpath);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, r.out, strlen(r.out)), (ssize_t)strlen(r.out));
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "zsh -n '%s'", zpath);
    ASSERT_EQ(system(cmd), 0);
    unlink(zpath);
  }
  ctl_res_free(&r);
  r = CTL(NULL, "completion", "fish");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "bash, zsh");
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

TEST_IMPL(ctl_did_you_mean)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  const char *const *const cases[] = {
      (const char *const[]){"lsit", NULL},
      (const char *const[]){"stat", "hello", NULL},
      (const char *const[]){"terminat", "x", NULL},
      (const char *const[]){"help", "purg", NULL},
      (const char *const[]){"list", "--stauts", "FAILED", NULL},
      (const char *const[]){"--adress", "x", "list", NULL},
  };
  static const char *const want[] = {"'list'", "'start'", "'terminate'", "'purge'", "'--status'", "'--address'"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ctl_res r = ctl_run(&(ctl_opts){.address = h.addr}, cases[i]);
    ASSERT_EXIT(r, 2);
    char needle[64];
    snprintf(needle, sizeof needle, "(did you mean %s?)", want[i]);
    ASSERT_STR_CONTAINS(r.err, needle);
    ctl_res_free(&r);
  }
  /* Nothing close: no guess. */
  ctl_res r = CTL(h.addr, "frobnicate");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "no such command: frobnicate");
  ASSERT(index_of(r.err, "did you mean") < 0);
  ctl_res_free(&r);
  /* JSON error documents carry it too. */
  r = CTL(h.addr, "--json", "shwo", "x");
  ASSERT_EXIT(r, 2);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_CONTAINS(jstr(jget(doc, "error"), "message"), "did you mean 'show'?");
  free_doc(doc, &r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ timeline, suspend */

TEST_IMPL(ctl_timeline_earlier)
{
  hub h;
  int rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "waiter", "te-1", NULL);
  until_status(&h, "te-1", DT_STATUS_RUNNING, CTL_WAIT_MS);
  ASSERT_OK(dt_client_suspend(h.c, "te-1", "hold"));
  until_status(&h, "te-1", DT_STATUS_SUSPENDED, CTL_WAIT_MS);
  int64_t raised = wall_ms();
  ASSERT_OK(dt_client_raise_event(h.c, "te-1", "go", "1"));
  /* The mark is for waits of 100 ms or more: let the clock get there before the resume delivers it. */
  clock_past(raised + 150);
  ASSERT_OK(dt_client_resume(h.c, "te-1", NULL));
  dt_instance *in = done(&h, "te-1");
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  dt_instance_free(in);

  ctl_res r = CTL(h.addr, "show", "te-1");
  ASSERT_EXIT(r, 0);
  char *raised_line = line_with(r.out, " EventRaised ");
  ASSERT(raised_line != NULL);
  ASSERT_STR_CONTAINS(raised_line, "s*  ");
  free(raised_line);
  /* ExecutionStarted is always older than the OrchestratorStarted before it: no mark for that. */
  char *started = line_with(r.out, " ExecutionStarted ");
  ASSERT(started != NULL && strstr(started, "s* ") == NULL);
  free(started);
  ASSERT_EQ(count_lines(r.out, "  * earlier than an event above it"), 1);
  ASSERT_STR_CONTAINS(r.out, "(here: while the instance was suspended)");
  ASSERT_GT(index_of(r.out, "  * earlier"), index_of(r.out, " ExecutionCompleted "));
  ctl_res_free(&r);
  /* watch prints the same mark and note as the events come. */
  r = CTL(h.addr, "watch", "te-1");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, "  * earlier than an event above it"), 1);
  ctl_res_free(&r);

  /* In order: no mark, no note. */
  ASSERT_OK(dt_client_schedule(h.c, "waiter", &(dt_start_options){.instance_id = "te-2",
                                                                  .start_at_ms = wall_ms() + 3600 * 1000},
                               NULL));
  terminate_now(&h, "te-2", NULL);
  r = CTL(h.addr, "show", "te-2");
  ASSERT_EXIT(r, 0);
  ASSERT(index_of(r.out, "s* ") < 0);
  ASSERT(index_of(r.out, "earlier than") < 0);
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

TEST_IMPL(ctl_suspend_pending)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "waiter", "sp-1", NULL); /* no worker: it stays PENDING */
  ctl_res r = CTL(h.addr, "suspend", "sp-1", "--reason", "later");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "suspend requested for sp-1: it is PENDING, and the suspend takes effect when it starts\n");
  ctl_res_free(&r);
  dt_instance *in = get(&h, "sp-1");
  ASSERT_EQ(in->status, DT_STATUS_PENDING); /* "suspended" would not have been true */
  dt_instance_free(in);
  r = CTL(h.addr, "--json", "resume", "sp-1");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "operation"), "resume");
  ASSERT(json_object_get_boolean(jget(doc, "requested")));
  free_doc(doc, &r);

  /* A RUNNING one is suspended as before. */
  hub_stop(&h);
  rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "waiter", "sp-2", NULL);
  until_status(&h, "sp-2", DT_STATUS_RUNNING, CTL_WAIT_MS);
  r = CTL(h.addr, "--json", "suspend", "sp-2");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT(!json_object_get_boolean(jget(doc, "requested")));
  free_doc(doc, &r);
  until_status(&h, "sp-2", DT_STATUS_SUSPENDED, CTL_WAIT_MS);
  terminate_now(&h, "sp-2", NULL);
  hub_stop(&h);
  return 0;
}

/* show lists what waits in an instance's inbox: with no worker connected, its start, a raised event and a
 * requested suspend stay there, and none of them is in the history yet. */
TEST_IMPL(ctl_show_pending)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "waiter", "shp-1", NULL);
  ctl_res r = CTL(h.addr, "raise", "shp-1", "approval", "--data", "\"yes\"");
  ASSERT_EXIT(r, 0);
  ctl_res_free(&r);
  r = CTL(h.addr, "suspend", "shp-1");
  ASSERT_EXIT(r, 0);
  ctl_res_free(&r);
  r = CTL(h.addr, "show", "shp-1");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "Waiting in its inbox (3 messages, not yet in the history):");
  ASSERT_STR_CONTAINS(r.out, "Not started: it is PENDING and no connected worker accepts orchestration 'waiter'");
  const char *start = strstr(r.out, "start (no worker has run it yet) 'waiter'");
  const char *raised = strstr(r.out, "event raised 'approval'");
  const char *suspend = strstr(r.out, "suspend requested");
  ASSERT(start && raised && suspend);
  ASSERT(start < raised && raised < suspend); /* oldest first, the start ahead of the rest */
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "show", "shp-1");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  json_object *pending = jget(doc, "pending");
  ASSERT(pending != NULL && json_object_array_length(pending) == 3);
  json_object *ev = json_object_array_get_idx(pending, 1);
  ASSERT_STR_EQ(jstr(ev, "kind"), "event raised");
  ASSERT_STR_EQ(jstr(ev, "name"), "approval");
  ASSERT(jstr(ev, "timestamp") != NULL);
  ASSERT_STR_CONTAINS(jstr(doc, "pendingReason"), "no connected worker accepts orchestration 'waiter'");
  free_doc(doc, &r);
  hub_stop(&h);
  /* An instance a worker has run to its end has nothing waiting: no inbox section. */
  rc = hub_start(&h, true);
  if (rc)
    return rc;
  sched(&h, "hello", "shp-2", "1");
  until_status(&h, "shp-2", DT_STATUS_COMPLETED, CTL_WAIT_MS);
  r = CTL(h.addr, "show", "shp-2");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "ExecutionCompleted");
  ASSERT(strstr(r.out, "Waiting in its inbox") == NULL);
  ASSERT(strstr(r.out, "Not started") == NULL);
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}
