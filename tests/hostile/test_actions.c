/* Issue 13, defects 4 and 15: a worker's actions and histories are held to the client rules and to the
 * invariants a history needs; what breaks them fails the orchestration, and the history stays consistent. */
#define _GNU_SOURCE
#include "hx.h"

/* Runs one turn of a fresh instance |iid| with |acts| and returns its final state (it_free). */
static GetInstanceResponse *one_turn(it_env *e, th_stream *w, const char *iid, OrchestratorAction **acts, size_t n)
{
  free(it_start(e->cli, iid, "Orch", NULL));
  WorkItem *wi = hx_expect_orch(w, 10000, iid);
  ASSERT_STR_EQ(wi->orchestratorrequest->instanceid, iid);
  char *d = NULL;
  ASSERT_STATUS(hx_complete_orch(e->cli, wi->completiontoken, NULL, acts, n, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  return hx_wait_done(e->cli, iid, 10000);
}

static void expect_failed(it_env *e, GetInstanceResponse *g, const char *iid, const char *type, const char *text)
{
  const OrchestrationState *s = g->orchestrationstate;
  if (s->orchestrationstatus != FAILED)
    TEST_FAIL("%s: status %s, expected FAILED (%s)", iid, it_status_name((int)s->orchestrationstatus), text);
  ASSERT_STR_EQ(s->failuredetails->errortype, type);
  ASSERT_STR_CONTAINS(s->failuredetails->errormessage, text);
  it_free(g);
  /* The history replays: one start, one end, nothing after it. */
  hx_hist h;
  hx_history(e->cli, iid, &h);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED), 1);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED), 1);
  ASSERT_EQ(h.ev[h.n - 1]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED);
  hx_history_free(&h);
}

TEST_IMPL(hostile_contradictory_actions_fail_the_orchestration)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_arena a = {0};
  {
    OrchestratorAction *acts[] = {hx_finish(&a, 1, COMPLETED, "1"), hx_finish(&a, 2, COMPLETED, "2")};
    expect_failed(&e, one_turn(&e, w, "two-completions", acts, 2), "two-completions", "InvalidAction",
                  "after the orchestration completed");
  }
  {
    OrchestratorAction *acts[] = {hx_finish(&a, 1, COMPLETED, "1"), hx_schedule(&a, 2, "Late", NULL)};
    expect_failed(&e, one_turn(&e, w, "after-completion", acts, 2), "after-completion", "InvalidAction",
                  "after the orchestration completed");
  }
  {
    OrchestratorAction *acts[] = {hx_schedule(&a, 1, "T", NULL), hx_schedule(&a, 1, "T", NULL)};
    expect_failed(&e, one_turn(&e, w, "same-id", acts, 2), "same-id", "InvalidAction", "share id 1");
  }
  {
    OrchestratorAction *acts[] = {hx_schedule(&a, 3, "T", NULL), hx_timer(&a, 3, 4102444800000LL)};
    expect_failed(&e, one_turn(&e, w, "task-and-timer", acts, 2), "task-and-timer", "InvalidAction", "share id 3");
  }
  {
    OrchestratorAction *acts[] = {hx_schedule(&a, -5, "T", NULL)};
    expect_failed(&e, one_turn(&e, w, "negative-id", acts, 1), "negative-id", "InvalidAction", "negative");
  }
  {
    /* A rewind nobody asked for, with an empty history, on a RUNNING instance. */
    OrchestratorAction *rw = hx_alloc(&a, sizeof *rw);
    orchestrator_action__init(rw);
    rw->id = 1;
    RewindOrchestrationAction *r = hx_alloc(&a, sizeof *r);
    rewind_orchestration_action__init(r);
    rw->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_REWIND_ORCHESTRATION;
    rw->rewindorchestration = r;
    expect_failed(&e, one_turn(&e, w, "rewind-unasked", &rw, 1), "rewind-unasked", "InvalidAction",
                  "nobody asked to rewind");
  }
  {
    /* Continue-as-new carrying over a TimerFired of this execution. */
    OrchestratorAction *can = hx_finish(&a, 1, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW, "0");
    HistoryEvent *tf = hx_alloc(&a, sizeof *tf);
    history_event__init(tf);
    tf->eventid = -1;
    TimerFiredEvent *t = hx_alloc(&a, sizeof *t);
    timer_fired_event__init(t);
    t->timerid = 1;
    tf->event_type_case = HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED;
    tf->timerfired = t;
    HistoryEvent **carry = hx_alloc(&a, sizeof *carry);
    carry[0] = tf;
    can->completeorchestration->carryoverevents = carry;
    can->completeorchestration->n_carryoverevents = 1;
    expect_failed(&e, one_turn(&e, w, "carry-timer", &can, 1), "carry-timer", "InvalidAction",
                  "only eventRaised events carry over");
  }
  /* None of them scheduled an activity. */
  ASSERT(th_work_next(w, 300) == NULL);
  hx_arena_free(&a);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* Defect 4: ids a worker gives (or leaves the engine to derive) obey --max-id-length like a client's. */
TEST_IMPL(hostile_child_ids_obey_the_id_limit)
{
  static const char *const args[] = {"--max-id-length", "1024", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_arena a = {0};
  /* A parent id of 1024 bytes: "<parent>:0001" would be 1029. */
  char *parent = it_repeat('p', 1024);
  OrchestratorAction *derived = hx_sub(&a, 1, "Child", NULL);
  expect_failed(&e, one_turn(&e, w, parent, &derived, 1), parent, "InvalidAction", "--max-id-length");
  hx_assert_alive(e.cli);
  free(parent);
  th_stream_free(w);
  it_teardown(&e);

  static const char *const args64[] = {"--max-id-length", "64", NULL};
  rc = it_setup(&e, args64);
  if (rc)
    return rc;
  w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  char *child = it_repeat('c', 100);
  OrchestratorAction *explicit_id = hx_sub(&a, 1, "Child", child);
  expect_failed(&e, one_turn(&e, w, "p64", &explicit_id, 1), "p64", "InvalidAction", "instanceId");
  ASSERT(th_work_next(w, 300) == NULL); /* no child was created */
  free(child);
  hx_arena_free(&a);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* The Go client sends no tokens: a retry of its completion must not be applied to the instance's next turn. */
TEST_IMPL(hostile_tokenless_retry_is_not_applied_twice)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "tl", "Orch", NULL));
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_arena a = {0};
  char *d = NULL;
  WorkItem *wi = hx_expect_orch(w, 10000, "tl's first turn");
  OrchestratorAction *acts[] = {hx_schedule(&a, 1, "A1", NULL)};
  ASSERT_STATUS(hx_complete_orch(e.cli, NULL, "tl", acts, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  WorkItem *ai = hx_expect_act(w, 10000, "A1");
  ASSERT_STATUS(hx_complete_act(e.cli, NULL, "tl", 1, "\"r1\"", &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(ai, NULL);
  WorkItem *second = hx_expect_orch(w, 10000, "tl's second turn");
  /* The first completion again, as a retry would send it: answered, not applied to the second turn. */
  ASSERT_STATUS(hx_complete_orch(e.cli, NULL, "tl", acts, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  ASSERT_STATUS(hx_complete_act(e.cli, NULL, "tl", 1, "\"r1\"", &d), GRPC_STATUS_OK, d);
  free(d);
  hx_hist h;
  hx_history(e.cli, "tl", &h);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED), 1);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED), 0); /* the second turn holds it still */
  hx_history_free(&h);
  ASSERT(th_work_next(w, 300) == NULL); /* no second activity */
  /* The real second completion still applies. */
  OrchestratorAction *fin = hx_finish(&a, 2, COMPLETED, "\"ok\"");
  ASSERT_STATUS(hx_complete_orch(e.cli, NULL, "tl", &fin, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(second, NULL);
  GetInstanceResponse *g = hx_wait_done(e.cli, "tl", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, COMPLETED);
  it_free(g);
  hx_history(e.cli, "tl", &h);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED), 1);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED), 1);
  hx_history_free(&h);
  hx_arena_free(&a);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* A completion without a token names only its instance (and task), which any client may know: it counts only from
 * the connection whose stream received the work item, as the Go and Java SDKs send it. Another client's is refused
 * and changes nothing; the worker's own then applies. */
TEST_IMPL(hostile_tokenless_completion_from_another_connection)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "tc", "Orch", NULL));
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  th_client *other = th_client_open_own(e.srv.port);
  hx_arena a = {0};
  char *d = NULL;
  WorkItem *wi = hx_expect_orch(w, 10000, "tc's first turn");
  OrchestratorAction *bogus = hx_finish(&a, 1, COMPLETED, "\"forged\"");
  ASSERT_EQ(hx_complete_orch(other, NULL, "tc", &bogus, 1, NULL, &d), GRPC_STATUS_NOT_FOUND);
  ASSERT(strstr(d, "on this connection") != NULL);
  free(d);
  ASSERT(it_status(e.cli, "tc") != COMPLETED); /* not completed by the forged result */
  OrchestratorAction *acts[] = {hx_schedule(&a, 1, "A1", NULL)};
  ASSERT_STATUS(hx_complete_orch(e.cli, NULL, "tc", acts, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  WorkItem *ai = hx_expect_act(w, 10000, "A1");
  ASSERT_EQ(hx_complete_act(other, NULL, "tc", 1, "\"forged\"", &d), GRPC_STATUS_NOT_FOUND);
  ASSERT(strstr(d, "on this connection") != NULL);
  free(d);
  ASSERT_STATUS(hx_complete_act(e.cli, NULL, "tc", 1, "\"r1\"", &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(ai, NULL);
  WorkItem *second = hx_expect_orch(w, 10000, "tc's second turn");
  hx_hist h;
  hx_history(e.cli, "tc", &h);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED), 1);
  hx_history_free(&h);
  OrchestratorAction *fin = hx_finish(&a, 2, COMPLETED, "\"ok\"");
  ASSERT_STATUS(hx_complete_orch(e.cli, NULL, "tc", &fin, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(second, NULL);
  GetInstanceResponse *g = hx_wait_done(e.cli, "tc", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, COMPLETED);
  ASSERT_STR_EQ(g->orchestrationstate->output->value, "\"ok\"");
  it_free(g);
  hx_arena_free(&a);
  th_stream_free(w);
  th_client_close(other);
  it_teardown(&e);
  return 0;
}

/* The reuse-policy rejection reads as the managed service's does (the JS SDK's suite matches the text). */
TEST_IMPL(hostile_reuse_policy_rejection_text)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  OrchestrationIdReusePolicy pol = ORCHESTRATION_ID_REUSE_POLICY__INIT;
  OrchestrationStatus st[] = {RUNNING};
  pol.n_replaceablestatus = 1;
  pol.replaceablestatus = st;
  req.instanceid = (char *)"rp";
  req.name = (char *)"Orch";
  req.orchestrationidreusepolicy = &pol;
  char *d = NULL;
  ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &d), GRPC_STATUS_INVALID_ARGUMENT, d);
  ASSERT_STR_CONTAINS(d, "Invalid reusable statuses: cannot exclude 'Terminated' while also allowing reuse of "
                         "running instances");
  free(d);
  it_teardown(&e);
  return 0;
}

/* A rewind that was asked for must still give a history that replays: exactly one ExecutionStarted. */
TEST_IMPL(hostile_rewound_history_must_replay)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_arena a = {0};
  OrchestratorAction *failed = hx_finish(&a, 1, FAILED, NULL);
  GetInstanceResponse *g = one_turn(&e, w, "rw", &failed, 1);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, FAILED);
  it_free(g);
  RewindInstanceRequest rr = REWIND_INSTANCE_REQUEST__INIT;
  rr.instanceid = (char *)"rw";
  char *d = NULL;
  ASSERT_STATUS(th_call_unary(e.cli, IT_SVC "RewindInstance", &rr.base, NULL, IT_TIMEOUT_MS, NULL, &d),
                GRPC_STATUS_OK, d);
  free(d);
  WorkItem *wi = hx_expect_orch(w, 10000, "the rewind request");
  const OrchestratorRequest *req = wi->orchestratorrequest;
  /* The SDK's answer, with the ExecutionStarted of the past history twice. */
  HistoryEvent *start = NULL;
  for (size_t i = 0; i < req->n_pastevents && !start; i++)
    if (req->pastevents[i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED)
      start = req->pastevents[i];
  ASSERT(start != NULL);
  OrchestratorAction *rw = hx_alloc(&a, sizeof *rw);
  orchestrator_action__init(rw);
  rw->id = 1;
  RewindOrchestrationAction *r = hx_alloc(&a, sizeof *r);
  rewind_orchestration_action__init(r);
  HistoryEvent **hist = hx_alloc(&a, 2 * sizeof *hist);
  hist[0] = hist[1] = start;
  r->newhistory = hist;
  r->n_newhistory = 2;
  rw->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_REWIND_ORCHESTRATION;
  rw->rewindorchestration = r;
  ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, &rw, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  g = hx_wait_done(e.cli, "rw", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, FAILED);
  ASSERT_STR_EQ(g->orchestrationstate->failuredetails->errortype, "InvalidAction");
  ASSERT_STR_CONTAINS(g->orchestrationstate->failuredetails->errormessage, "2 executionStarted events");
  it_free(g);
  hx_arena_free(&a);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}
