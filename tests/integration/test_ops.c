/* RaiseEvent, SuspendInstance/ResumeInstance and TerminateInstance on PENDING, unknown and terminal instances. */
#define _GNU_SOURCE
#include "it.h"

TEST_IMPL(raise_event)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  char *details = NULL;
  free(it_start(e.cli, "ev-1", "Orch", NULL));
  free(it_start(e.cli, "ev-done", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "ev-done", NULL, NULL), GRPC_STATUS_OK, "");

  ASSERT_STATUS(it_raise(e.cli, "ev-1", "Approval", "{\"ok\":true}", &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_STATUS(it_raise(e.cli, "ev-1", "NoInput", NULL, &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_EQ(it_status(e.cli, "ev-1"), PENDING);

  char *before = it_snapshot(e.cli);
  ASSERT_STATUS(it_raise(e.cli, "no-such-instance", "Approval", NULL, &details), GRPC_STATUS_NOT_FOUND, details);
  free(details);
  ASSERT(!it_exists(e.cli, "no-such-instance"));

  ASSERT_STATUS(it_raise(e.cli, "ev-1", "", "x", &details), GRPC_STATUS_INVALID_ARGUMENT, details);
  ASSERT_STR_CONTAINS(details, "name");
  free(details);

  /* A terminal instance accepts and drops the event. */
  ASSERT_STATUS(it_raise(e.cli, "ev-done", "Late", "x", &details), GRPC_STATUS_OK, details);
  free(details);
  it_assert_snapshot(e.cli, before, "RaiseEvent to unknown/terminal instances or with an empty name");
  free(before);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(suspend_resume)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  char *details = NULL;
  free(it_start(e.cli, "sr-1", "Orch", NULL));
  free(it_start(e.cli, "sr-done", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "sr-done", "\"out\"", NULL), GRPC_STATUS_OK, "");

  ASSERT_STATUS(it_suspend(e.cli, "sr-1", &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_STATUS(it_suspend(e.cli, "sr-1", &details), GRPC_STATUS_OK, details); /* de-duplicated, still OK */
  free(details);
  /* No worker exists, so the status only flips when one processes the event. */
  ASSERT_EQ(it_status(e.cli, "sr-1"), PENDING);
  ASSERT_STATUS(it_resume(e.cli, "sr-1", &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_STATUS(it_resume(e.cli, "sr-1", &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_EQ(it_status(e.cli, "sr-1"), PENDING);

  char *before = it_snapshot(e.cli);
  ASSERT_STATUS(it_suspend(e.cli, "sr-unknown", &details), GRPC_STATUS_NOT_FOUND, details);
  free(details);
  ASSERT_STATUS(it_resume(e.cli, "sr-unknown", &details), GRPC_STATUS_NOT_FOUND, details);
  free(details);
  ASSERT_STATUS(it_suspend(e.cli, "sr-done", &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_STATUS(it_resume(e.cli, "sr-done", &details), GRPC_STATUS_OK, details);
  free(details);
  it_assert_snapshot(e.cli, before, "Suspend/Resume of unknown and terminal instances");
  free(before);
  ASSERT_EQ(it_status(e.cli, "sr-done"), TERMINATED);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(terminate_pending)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  char *details = NULL;
  free(it_start(e.cli, "term-1", "Orch", "\"in\""));
  Google__Protobuf__Timestamp before_term = it_ts_now();
  ASSERT_STATUS(it_terminate(e.cli, "term-1", "\"bye\"", &details), GRPC_STATUS_OK, details);
  free(details);
  Google__Protobuf__Timestamp after_term = it_ts_now();

  GetInstanceResponse *r = it_get(e.cli, "term-1", 1);
  ASSERT(r->exists);
  OrchestrationState *s = r->orchestrationstate;
  ASSERT_EQ(s->orchestrationstatus, TERMINATED);
  if (s->output == NULL)
    TEST_FAIL("terminated instance has no output");
  ASSERT_STR_EQ(s->output->value, "\"bye\"");
  ASSERT(s->input != NULL);
  ASSERT_STR_EQ(s->input->value, "\"in\"");
  if (s->completedtimestamp == NULL)
    TEST_FAIL("terminated instance has no completedTimestamp");
  ASSERT_GE(it_ts_ms(s->completedtimestamp), it_ts_ms(&before_term) - 1000);
  ASSERT_LE(it_ts_ms(s->completedtimestamp), it_ts_ms(&after_term) + 1000);
  ASSERT_GE(it_ts_cmp(s->completedtimestamp, s->createdtimestamp), 0);
  ASSERT(s->lastupdatedtimestamp != NULL);
  ASSERT_GE(it_ts_cmp(s->lastupdatedtimestamp, s->createdtimestamp), 0);
  ASSERT(s->failuredetails == NULL);
  it_free(r);

  /* Terminate without an output: TERMINATED, no output. */
  free(it_start(e.cli, "term-2", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "term-2", NULL, &details), GRPC_STATUS_OK, details);
  free(details);
  r = it_get(e.cli, "term-2", 1);
  ASSERT_EQ(r->orchestrationstate->orchestrationstatus, TERMINATED);
  ASSERT(r->orchestrationstate->output == NULL);
  ASSERT(r->orchestrationstate->completedtimestamp != NULL);
  it_free(r);

  /* A scheduled start that has not fired is PENDING too and terminates at once. */
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__Timestamp at = it_ts_from_ms(it_ts_ms(&after_term) + 3600 * 1000);
  req.instanceid = (char *)"term-sched";
  req.name = (char *)"Orch";
  req.scheduledstarttimestamp = &at;
  ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_STATUS(it_terminate(e.cli, "term-sched", "\"x\"", &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_EQ(it_status(e.cli, "term-sched"), TERMINATED);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(terminate_unknown_and_terminal)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  char *details = NULL;
  free(it_start(e.cli, "tt-1", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "tt-1", "\"first\"", &details), GRPC_STATUS_OK, details);
  free(details);

  char *before = it_snapshot(e.cli);
  ASSERT_STATUS(it_terminate(e.cli, "tt-unknown", "\"x\"", &details), GRPC_STATUS_NOT_FOUND, details);
  free(details);
  ASSERT(!it_exists(e.cli, "tt-unknown"));
  /* Terminal: OK, no change (output, completedTimestamp, lastUpdatedTimestamp all kept). */
  ASSERT_STATUS(it_terminate(e.cli, "tt-1", "\"second\"", &details), GRPC_STATUS_OK, details);
  free(details);
  it_assert_snapshot(e.cli, before, "TerminateInstance of unknown/terminal instances");
  free(before);

  GetInstanceResponse *r = it_get(e.cli, "tt-1", 1);
  ASSERT_STR_EQ(r->orchestrationstate->output->value, "\"first\"");
  it_free(r);
  it_teardown(&e);
  return 0;
}
