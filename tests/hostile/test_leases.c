/* Issue 13, defects 6 and 7: what ends a work item's lease, and that the instance is looked at afterwards. */
#define _GNU_SOURCE
#include "hx.h"

/* An activity result over the payload limit fails the task, with the reason, instead of being refused and
 * leaving the orchestration RUNNING for good. */
TEST_IMPL(hostile_oversized_result_fails_the_task)
{
  static const char *const args[] = {"--max-payload", "100K", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  free(it_start(e.cli, "o1", "Orch", NULL));
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_arena a = {0};
  char *d = NULL;
  WorkItem *wi = hx_expect_orch(w, 10000, "o1's first turn");
  OrchestratorAction *act = hx_schedule(&a, 1, "Big", NULL);
  ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, &act, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  WorkItem *ai = hx_expect_act(w, 10000, "the activity");
  char *big = it_repeat('r', 200 * 1024);
  big[0] = big[200 * 1024 - 1] = '"';
  ASSERT_STATUS(hx_complete_act(e.cli, ai->completiontoken, NULL, 0, big, &d), GRPC_STATUS_OK, d);
  free(d);
  free(big);
  work_item__free_unpacked(ai, NULL);
  /* The orchestration hears about it as a failed task, naming the limit. */
  wi = hx_expect_orch(w, 10000, "o1's turn with the activity's outcome");
  const HistoryEvent *failed = NULL;
  for (size_t i = 0; i < wi->orchestratorrequest->n_newevents; i++)
    if (wi->orchestratorrequest->newevents[i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_TASK_FAILED)
      failed = wi->orchestratorrequest->newevents[i];
  ASSERT(failed != NULL);
  ASSERT_STR_EQ(failed->taskfailed->failuredetails->errortype, "PayloadTooLarge");
  ASSERT_STR_CONTAINS(failed->taskfailed->failuredetails->errormessage, "--max-payload");
  /* A custom status over the limit fails the orchestration the same way. */
  char *status = it_repeat('s', 150 * 1024);
  ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, NULL, 0, status, &d), GRPC_STATUS_OK, d);
  free(d);
  free(status);
  work_item__free_unpacked(wi, NULL);
  GetInstanceResponse *g = hx_wait_done(e.cli, "o1", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, FAILED);
  ASSERT_STR_EQ(g->orchestrationstate->failuredetails->errortype, "PayloadTooLarge");
  ASSERT_STR_CONTAINS(g->orchestrationstate->failuredetails->errormessage, "customStatus");
  it_free(g);
  hx_arena_free(&a);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* A worker that takes a work item and never answers, while its stream stays open, holds it only until the lease
 * expires; then another worker gets it. */
TEST_IMPL(hostile_hung_worker_lease_expires)
{
  static const char *const args[] = {"--orchestration-lease", "1", "--activity-lease", "1", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  th_stream *hung = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_assert_alive(e.cli);
  free(it_start(e.cli, "h1", "Orch", NULL));
  WorkItem *wi = hx_expect_orch(hung, 10000, "h1's work item for the hung worker");
  work_item__free_unpacked(wi, NULL);
  th_client *cli2 = th_client_open(e.srv.port);
  th_stream *good = hx_worker(cli2, 0, 0, NULL, NULL, 0);
  /* Redelivered to whichever stream has room: the good one, or the hung one again (which reads, but never
   * answers); within a few lease periods the good one has it. */
  hx_arena a = {0};
  char *d = NULL;
  WorkItem *got = th_work_next(good, 8000);
  ASSERT(got != NULL);
  ASSERT_STR_EQ(got->orchestratorrequest->instanceid, "h1");
  OrchestratorAction *act = hx_schedule(&a, 1, "Slow", NULL);
  ASSERT_STATUS(hx_complete_orch(cli2, got->completiontoken, NULL, &act, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(got, NULL);
  /* The same for an activity: the hung stream may take it and sit on it; it comes back. */
  WorkItem *ai = NULL;
  long long until = th_now_ms() + 10000;
  while (!ai && th_now_ms() < until) {
    WorkItem *x = th_work_next(good, 500);
    if (x && x->request_case == WORK_ITEM__REQUEST_ACTIVITY_REQUEST)
      ai = x;
    else if (x)
      work_item__free_unpacked(x, NULL);
    WorkItem *y = th_work_next(hung, 1);
    if (y)
      work_item__free_unpacked(y, NULL);
  }
  ASSERT(ai != NULL);
  ASSERT_STATUS(hx_complete_act(cli2, ai->completiontoken, NULL, 0, "1", &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(ai, NULL);
  hx_arena_free(&a);
  th_stream_free(good);
  th_stream_free(hung);
  th_client_close(cli2);
  it_teardown(&e);
  return 0;
}

/* Defect 7: replacing an instance while a worker holds its work item dispatches the new instance at once; the
 * old item's completion is stale. */
TEST_IMPL(hostile_replaced_instance_is_dispatched)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "x", "Orch", "\"first\""));
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  WorkItem *old = hx_expect_orch(w, 10000, "the first x");
  /* Replace it: RUNNING, PENDING and TERMINATED instances are replaceable. */
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  OrchestrationIdReusePolicy pol = ORCHESTRATION_ID_REUSE_POLICY__INIT;
  OrchestrationStatus st[] = {RUNNING, PENDING, TERMINATED};
  pol.n_replaceablestatus = 3;
  pol.replaceablestatus = st;
  req.instanceid = (char *)"x";
  req.name = (char *)"Orch";
  in.value = (char *)"\"second\"";
  req.input = &in;
  req.orchestrationidreusepolicy = &pol;
  char *d = NULL;
  ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  /* The new instance is dispatched without waiting for the old item. */
  WorkItem *fresh = hx_expect_orch(w, 5000, "the replacement x");
  const HistoryEvent *es = NULL;
  for (size_t i = 0; i < fresh->orchestratorrequest->n_newevents; i++)
    if (fresh->orchestratorrequest->newevents[i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED)
      es = fresh->orchestratorrequest->newevents[i];
  ASSERT(es != NULL);
  ASSERT_STR_EQ(es->executionstarted->input->value, "\"second\"");
  hx_expect_superseded(e.cli, "x", old->completiontoken, fresh->completiontoken);
  work_item__free_unpacked(old, NULL);
  work_item__free_unpacked(fresh, NULL);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* Signs of progress renew a lease: a worker that sends its response in (deprecated) partial chunks, or fetches the
 * history of the item it holds, keeps the item past --orchestration-lease. */
TEST_IMPL(hostile_lease_renewed_by_progress)
{
  static const char *const args[] = {"--orchestration-lease", "2", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  th_stream *w1 = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_assert_alive(e.cli);
  free(it_start(e.cli, "slow", "Orch", NULL));
  WorkItem *wi = hx_expect_orch(w1, 10000, "slow's work item");
  th_client *cli2 = th_client_open(e.srv.port);
  th_stream *w2 = hx_worker(cli2, 0, 0, NULL, NULL, 0);
  hx_assert_alive(cli2);
  hx_arena a = {0};
  long long t0 = th_now_ms();
  for (int i = 0; th_now_ms() - t0 < 5000; i++) {
    /* A partial chunk, then a history fetch, in turns: each restarts the 2 s lease. */
    if (i % 2 == 0) {
      OrchestratorResponse r = ORCHESTRATOR_RESPONSE__INIT;
      OrchestratorAction *act = hx_schedule(&a, i + 1, "Part", NULL);
      r.completiontoken = wi->completiontoken;
      r.actions = &act;
      r.n_actions = 1;
      r.ispartial = 1;
      char *d = NULL;
      ASSERT_STATUS(th_call_unary(e.cli, IT_SVC "CompleteOrchestratorTask", &r.base, NULL, IT_TIMEOUT_MS, NULL, &d),
                    GRPC_STATUS_OK, d);
      free(d);
    } else {
      StreamInstanceHistoryRequest req = STREAM_INSTANCE_HISTORY_REQUEST__INIT;
      req.instanceid = (char *)"slow";
      req.forworkitemprocessing = 1;
      th_stream *hs = th_stream_start(e.cli, IT_SVC "StreamInstanceHistory", &req.base, IT_TIMEOUT_MS);
      uint8_t *buf;
      size_t len;
      while (th_stream_read(hs, IT_TIMEOUT_MS, &buf, &len) == 1)
        free(buf);
      th_stream_free(hs);
    }
    /* Meanwhile nobody else gets the item. */
    WorkItem *stolen = th_work_next(w2, 800);
    if (stolen)
      TEST_FAIL("the item went to another worker after %lld ms although its holder kept working",
                th_now_ms() - t0);
  }
  OrchestratorAction *fin = hx_finish(&a, 100, COMPLETED, "\"slow\"");
  char *d = NULL;
  ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, &fin, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  GetInstanceResponse *g = hx_wait_done(e.cli, "slow", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, COMPLETED);
  it_free(g);
  work_item__free_unpacked(wi, NULL);
  hx_arena_free(&a);
  th_stream_free(w1);
  th_stream_free(w2);
  th_client_close(cli2);
  it_teardown(&e);
  return 0;
}
