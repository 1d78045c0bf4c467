/* Issue 13, defects 2 and 16: whatever taskhubd accepts it can deliver, to a worker or client with the SDKs'
 * default 4 MiB receive limit (this test client has it too), or it fails the orchestration saying why. */
#define _GNU_SOURCE
#include "hx.h"

#define EVENTS 40
#define EVENT_BYTES 500000

static char *json_string(size_t n, char fill)
{
  char *s = it_repeat(fill, n);
  s[0] = s[n - 1] = '"';
  return s;
}

static void raise_many(th_client *c, const char *iid, int n)
{
  char *data = json_string(EVENT_BYTES, 'e');
  for (int i = 0; i < n; i++) {
    char name[16], *d = NULL;
    snprintf(name, sizeof name, "ev%02d", i);
    ASSERT_STATUS(it_raise(c, iid, name, data, &d), GRPC_STATUS_OK, d);
    free(d);
  }
  free(data);
}

/* 40 events of 500 KB (20 MB) wait for a pending instance: they arrive in order, cut into work items of at most
 * 4 MiB; with the history streamed to a worker that can take it. */
TEST_IMPL(hostile_large_inbox_is_cut_into_items)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "big", "Orch", NULL));
  raise_many(e.cli, "big", EVENTS);
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 1);
  int next = 0, items = 0;
  hx_arena a = {0};
  while (next < EVENTS) {
    WorkItem *wi = hx_expect_orch(w, 15000, "a work item with the waiting events");
    items++;
    ASSERT_LE(work_item__get_packed_size(wi), 4u << 20);
    const OrchestratorRequest *r = wi->orchestratorrequest;
    for (size_t i = 0; i < r->n_newevents; i++) {
      const HistoryEvent *ev = r->newevents[i];
      if (ev->event_type_case != HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED)
        continue;
      char want[16];
      snprintf(want, sizeof want, "ev%02d", next++);
      ASSERT_STR_EQ(ev->eventraised->name, want);
      ASSERT_EQ(strlen(ev->eventraised->input->value), EVENT_BYTES);
    }
    OrchestratorAction *fin = hx_finish(&a, 1, COMPLETED, "\"done\"");
    char *d = NULL;
    ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, "big", next == EVENTS ? &fin : NULL,
                                   next == EVENTS ? 1 : 0, NULL, &d),
                  GRPC_STATUS_OK, d);
    free(d);
    work_item__free_unpacked(wi, NULL);
  }
  ASSERT_GE(items, 5); /* 20 MB in items of at most 4 MiB */
  GetInstanceResponse *g = hx_wait_done(e.cli, "big", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, COMPLETED);
  it_free(g);
  hx_arena_free(&a);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* A worker that cannot stream histories cannot receive a history bigger than a work item: the orchestration
 * fails, saying so, instead of staying PENDING or RUNNING for good. */
TEST_IMPL(hostile_undeliverable_history_fails_the_orchestration)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "huge", "Orch", NULL));
  raise_many(e.cli, "huge", 12); /* 6 MB */
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  WorkItem *wi = hx_expect_orch(w, 15000, "the first cut of the inbox");
  ASSERT_LE(work_item__get_packed_size(wi), 4u << 20);
  char *d = NULL;
  ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, "huge", NULL, 0, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  /* The history now holds what was delivered; with the rest it no longer fits a work item. */
  GetInstanceResponse *g = hx_wait_done(e.cli, "huge", 15000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, FAILED);
  ASSERT_STR_EQ(g->orchestrationstate->failuredetails->errortype, "HistoryTooLarge");
  ASSERT_STR_CONTAINS(g->orchestrationstate->failuredetails->errormessage, "--max-send-message");
  it_free(g);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(hostile_inbox_limits)
{
  static const char *const args[] = {"--max-inbox", "5", "--max-inbox-bytes", "100K", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  free(it_start(e.cli, "ib", "Orch", NULL));
  char *d = NULL;
  /* The ExecutionStarted waits too: four more events fill the five places. */
  for (int i = 0; i < 4; i++) {
    ASSERT_STATUS(it_raise(e.cli, "ib", "ev", "1", &d), GRPC_STATUS_OK, d);
    free(d);
  }
  ASSERT_STATUS(it_raise(e.cli, "ib", "ev", "1", &d), GRPC_STATUS_RESOURCE_EXHAUSTED, d);
  ASSERT_STR_CONTAINS(d, "--max-inbox");
  free(d);
  free(it_start(e.cli, "ib2", "Orch", NULL));
  char *data = json_string(60000, 'x');
  ASSERT_STATUS(it_raise(e.cli, "ib2", "ev", data, &d), GRPC_STATUS_OK, d);
  free(d);
  ASSERT_STATUS(it_raise(e.cli, "ib2", "ev", data, &d), GRPC_STATUS_RESOURCE_EXHAUSTED, d);
  ASSERT_STR_CONTAINS(d, "--max-inbox-bytes");
  free(d);
  free(data);
  /* Once a worker takes the events, there is room again. */
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  WorkItem *wi = hx_expect_orch(w, 10000, "ib's work item");
  if (strcmp(wi->orchestratorrequest->instanceid, "ib") != 0) {
    ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, NULL, 0, NULL, &d), GRPC_STATUS_OK, d);
    free(d);
    work_item__free_unpacked(wi, NULL);
    wi = hx_expect_orch(w, 10000, "ib's work item");
  }
  ASSERT_STR_EQ(wi->orchestratorrequest->instanceid, "ib");
  ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, NULL, 0, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  ASSERT_STATUS(it_raise(e.cli, "ib", "ev", "1", &d), GRPC_STATUS_OK, d);
  free(d);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(hostile_history_limit)
{
  static const char *const args[] = {"--max-history", "20", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  free(it_start(e.cli, "long", "Orch", NULL));
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  hx_arena a = {0};
  char *d = NULL;
  /* Each turn schedules ten activities: the second turn would take the history past 20 events. */
  for (int turn = 0; turn < 2; turn++) {
    WorkItem *wi = th_work_expect(w, 10000, "a turn");
    while (wi->request_case != WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST) {
      work_item__free_unpacked(wi, NULL); /* the other activities: never answered */
      wi = th_work_expect(w, 10000, "a turn");
    }
    OrchestratorAction *acts[10];
    for (int i = 0; i < 10; i++)
      acts[i] = hx_schedule(&a, turn * 10 + i + 1, "Act", NULL);
    ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, acts, 10, NULL, &d), GRPC_STATUS_OK, d);
    free(d);
    work_item__free_unpacked(wi, NULL);
    if (turn == 0) {
      /* Let one activity finish so that a second turn comes. */
      WorkItem *ai = hx_expect_act(w, 10000, "an activity");
      ASSERT_STATUS(hx_complete_act(e.cli, ai->completiontoken, NULL, 0, "1", &d), GRPC_STATUS_OK, d);
      free(d);
      work_item__free_unpacked(ai, NULL);
    }
  }
  GetInstanceResponse *g = hx_wait_done(e.cli, "long", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, FAILED);
  ASSERT_STR_EQ(g->orchestrationstate->failuredetails->errortype, "HistoryTooLarge");
  ASSERT_STR_CONTAINS(g->orchestrationstate->failuredetails->errormessage, "--max-history");
  it_free(g);
  hx_arena_free(&a);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* Defect 16: what is accepted can be read back by a client with the default 4 MiB limit, and what could not be
 * is refused at the door. */
TEST_IMPL(hostile_payload_defaults_fit_default_clients)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  char *max = json_string(512 * 1024, 'm');
  char *over = json_string(512 * 1024 + 1, 'o');
  char *d = NULL;
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  req.instanceid = (char *)"p-over";
  req.name = (char *)"Orch";
  in.value = over;
  req.input = &in;
  ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &d), GRPC_STATUS_RESOURCE_EXHAUSTED, d);
  ASSERT_STR_CONTAINS(d, "--max-payload");
  free(d);
  /* At the limit: input, custom status and output all at 512 KiB still fit one reply. */
  free(it_start(e.cli, "p-max", "Orch", max));
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  WorkItem *wi = hx_expect_orch(w, 10000, "p-max's work item");
  hx_arena a = {0};
  OrchestratorAction *fin = hx_finish(&a, 1, COMPLETED, max);
  ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, &fin, 1, max, &d), GRPC_STATUS_OK, d);
  free(d);
  work_item__free_unpacked(wi, NULL);
  GetInstanceResponse *g = hx_wait_done(e.cli, "p-max", 10000);
  ASSERT_EQ(g->orchestrationstate->orchestrationstatus, COMPLETED);
  ASSERT_EQ(strlen(g->orchestrationstate->input->value), 512 * 1024);
  ASSERT_EQ(strlen(g->orchestrationstate->output->value), 512 * 1024);
  ASSERT_EQ(strlen(g->orchestrationstate->customstatus->value), 512 * 1024);
  it_free(g);
  hx_arena_free(&a);
  th_stream_free(w);
  free(max);
  free(over);
  it_teardown(&e);
  return 0;
}
