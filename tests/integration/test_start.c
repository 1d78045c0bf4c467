/* StartInstance: ids, scheduled starts, stored fields, duplicates and reuse policies. */
#define _GNU_SOURCE
#include "it.h"

static OrchestrationState *state_of(GetInstanceResponse *r)
{
  ASSERT(r->exists);
  ASSERT(r->orchestrationstate != NULL);
  return r->orchestrationstate;
}

static char *exec_id(th_client *c, const char *id)
{
  GetInstanceResponse *r = it_get(c, id, 0);
  OrchestrationState *s = state_of(r);
  ASSERT(s->executionid != NULL);
  char *out = strdup(s->executionid->value);
  ASSERT(out != NULL);
  it_free(r);
  return out;
}

TEST_IMPL(start_generated_id)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  Google__Protobuf__Timestamp before = it_ts_now();
  char *id1 = it_start(e.cli, "", "MyOrchestration", NULL);
  Google__Protobuf__Timestamp after = it_ts_now();
  char *id2 = it_start(e.cli, "", "MyOrchestration", NULL);
  if (!it_is_lower_hex(id1, 32))
    TEST_FAIL("generated id \"%s\" is not 32 lowercase hex characters", id1);
  ASSERT(it_is_lower_hex(id2, 32));
  ASSERT(strcmp(id1, id2) != 0);

  GetInstanceResponse *r = it_get(e.cli, id1, 1);
  OrchestrationState *s = state_of(r);
  ASSERT_STR_EQ(s->name, "MyOrchestration");
  ASSERT_EQ(s->orchestrationstatus, PENDING);
  ASSERT(s->createdtimestamp != NULL);
  ASSERT_GE(it_ts_ms(s->createdtimestamp), it_ts_ms(&before) - 1000);
  ASSERT_LE(it_ts_ms(s->createdtimestamp), it_ts_ms(&after) + 1000);
  ASSERT(s->lastupdatedtimestamp != NULL);
  ASSERT_GE(it_ts_cmp(s->lastupdatedtimestamp, s->createdtimestamp), 0);
  ASSERT(s->executionid != NULL);
  if (!it_is_lower_hex(s->executionid->value, 32))
    TEST_FAIL("executionId \"%s\" is not 32 lowercase hex characters", s->executionid->value);
  ASSERT(s->scheduledstarttimestamp == NULL);
  ASSERT(s->completedtimestamp == NULL);
  ASSERT(s->failuredetails == NULL);
  ASSERT(s->input == NULL); /* none was given */
  ASSERT(s->output == NULL);
  ASSERT(s->customstatus == NULL);
  ASSERT_EQ(s->n_tags, 0);
  it_free(r);

  char *x1 = exec_id(e.cli, id1), *x2 = exec_id(e.cli, id2);
  ASSERT(strcmp(x1, x2) != 0);
  free(x1);
  free(x2);
  free(id1);
  free(id2);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(start_explicit_id_and_execution_id)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue exec = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  exec.value = (char *)"0123456789abcdef0123456789abcdef";
  req.instanceid = (char *)"order-42";
  req.name = (char *)"ProcessOrder";
  req.executionid = &exec;
  char *id = NULL, *details = NULL;
  ASSERT_STATUS(it_start_req(e.cli, &req, &id, &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_STR_EQ(id, "order-42");
  free(id);

  GetInstanceResponse *r = it_get(e.cli, "order-42", 0);
  OrchestrationState *s = state_of(r);
  ASSERT_STR_EQ(s->name, "ProcessOrder");
  ASSERT_EQ(s->orchestrationstatus, PENDING);
  ASSERT(s->executionid != NULL);
  ASSERT_STR_EQ(s->executionid->value, "0123456789abcdef0123456789abcdef");
  it_free(r);

  /* Ids are case-sensitive and exact: neighbours do not exist. */
  ASSERT(!it_exists(e.cli, "ORDER-42"));
  ASSERT(!it_exists(e.cli, "order-4"));
  ASSERT(!it_exists(e.cli, "order-420"));
  it_teardown(&e);
  return 0;
}

TEST_IMPL(start_scheduled)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  Google__Protobuf__Timestamp now = it_ts_now();
  long long now_ms = it_ts_ms(&now);
  struct {
    const char *id;
    long long at_ms; /* -1: epoch 0 */
    int expect_scheduled;
  } cases[] = {
      {"sched-future", now_ms + 3600 * 1000 + 123, 1},
      {"sched-epoch0", -1, 0},
      {"sched-past", now_ms - 3600 * 1000, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    if (cases[i].at_ms >= 0)
      at = it_ts_from_ms(cases[i].at_ms);
    req.instanceid = (char *)cases[i].id;
    req.name = (char *)"Scheduled";
    req.scheduledstarttimestamp = &at;
    char *details = NULL;
    ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &details), GRPC_STATUS_OK, details);
    free(details);

    GetInstanceResponse *r = it_get(e.cli, cases[i].id, 0);
    OrchestrationState *s = state_of(r);
    ASSERT_EQ(s->orchestrationstatus, PENDING);
    if (cases[i].expect_scheduled) {
      if (s->scheduledstarttimestamp == NULL)
        TEST_FAIL("%s: no scheduledStartTimestamp in GetInstance", cases[i].id);
      ASSERT_EQ(s->scheduledstarttimestamp->seconds, at.seconds);
      ASSERT_LE(llabs((long long)s->scheduledstarttimestamp->nanos - at.nanos), 1000000);
    } else if (s->scheduledstarttimestamp != NULL) {
      TEST_FAIL("%s: scheduledStartTimestamp %" PRId64 "s present for a start time <= now", cases[i].id,
                s->scheduledstarttimestamp->seconds);
    }
    it_free(r);
  }
  it_teardown(&e);
  return 0;
}

TEST_IMPL(start_version_tags_input_round_trip)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue version = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  Google__Protobuf__StringValue input = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  CreateInstanceRequest__TagsEntry t1 = CREATE_INSTANCE_REQUEST__TAGS_ENTRY__INIT;
  CreateInstanceRequest__TagsEntry t2 = CREATE_INSTANCE_REQUEST__TAGS_ENTRY__INIT;
  CreateInstanceRequest__TagsEntry t3 = CREATE_INSTANCE_REQUEST__TAGS_ENTRY__INIT;
  CreateInstanceRequest__TagsEntry *tags[] = {&t1, &t2, &t3};
  const char *input_text = "{\"items\":[1,2,3],\"note\":\"h\\u00e9llo \xc3\xa9\"}";
  t1.key = (char *)"env";
  t1.value = (char *)"prod";
  t2.key = (char *)"owner";
  t2.value = (char *)"team-a";
  t3.key = (char *)"empty";
  t3.value = (char *)"";
  version.value = (char *)"1.2.3";
  input.value = (char *)input_text;
  req.instanceid = (char *)"rt-1";
  req.name = (char *)"RoundTrip";
  req.version = &version;
  req.input = &input;
  req.n_tags = 3;
  req.tags = tags;
  char *details = NULL;
  ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &details), GRPC_STATUS_OK, details);
  free(details);

  for (int with_io = 0; with_io < 2; with_io++) {
    GetInstanceResponse *r = it_get(e.cli, "rt-1", with_io);
    OrchestrationState *s = state_of(r);
    ASSERT_STR_EQ(s->name, "RoundTrip");
    ASSERT(s->version != NULL);
    ASSERT_STR_EQ(s->version->value, "1.2.3");
    ASSERT_EQ(s->n_tags, 3);
    it_strs got = {0}, want = {0};
    for (size_t i = 0; i < s->n_tags; i++) {
      char kv[256];
      snprintf(kv, sizeof kv, "%s=%s", s->tags[i]->key, s->tags[i]->value);
      it_strs_add(&got, kv);
    }
    it_strs_add(&want, "env=prod");
    it_strs_add(&want, "owner=team-a");
    it_strs_add(&want, "empty=");
    it_assert_same_set(&got, &want, "tags");
    it_strs_free(&got);
    it_strs_free(&want);
    if (with_io) {
      if (s->input == NULL)
        TEST_FAIL("GetInstance(getInputsAndOutputs=true) returned no input");
      ASSERT_STR_EQ(s->input->value, input_text);
    } else if (s->input != NULL) {
      TEST_FAIL("GetInstance(getInputsAndOutputs=false) returned input \"%s\"", s->input->value);
    }
    ASSERT(s->output == NULL);
    ASSERT(s->customstatus == NULL);
    ASSERT(s->failuredetails == NULL);
    it_free(r);
  }

  it_teardown(&e);
  return 0;
}

TEST_IMPL(start_duplicate)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "dup-1", "Orch", "first"));
  free(it_start(e.cli, "dup-done", "Orch", "first"));
  ASSERT_STATUS(it_terminate(e.cli, "dup-done", NULL, NULL), GRPC_STATUS_OK, "");
  char *before = it_snapshot(e.cli);

  OrchestrationIdReusePolicy empty_policy = ORCHESTRATION_ID_REUSE_POLICY__INIT;
  const char *ids[] = {"dup-1", "dup-done"};
  for (size_t i = 0; i < 2; i++) {
    for (int with_policy = 0; with_policy < 2; with_policy++) {
      if (i == 1 && !with_policy)
        continue; /* no policy on a finished instance replaces it: start_no_policy_replaces_finished */
      CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
      Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
      in.value = (char *)"second";
      req.instanceid = (char *)ids[i];
      req.name = (char *)"Orch";
      req.input = &in;
      if (with_policy)
        req.orchestrationidreusepolicy = &empty_policy; /* an empty list means "replace nothing" */
      char *details = NULL;
      grpc_status_code st = it_start_req(e.cli, &req, NULL, &details);
      ASSERT_STATUS(st, GRPC_STATUS_ALREADY_EXISTS, details);
      ASSERT_STR_CONTAINS(details, "orchestration instance already exists");
      free(details);
    }
  }
  it_assert_snapshot(e.cli, before, "duplicate StartInstance");
  free(before);
  it_teardown(&e);
  return 0;
}

/* No reuse policy: a finished instance is replaced (the Java SDK's restartInstance(id, false), and Azure's managed
 * scheduler), a live one is ALREADY_EXISTS. */
TEST_IMPL(start_no_policy_replaces_finished)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "np-done", "Orch", "\"first\""));
  ASSERT_STATUS(it_terminate(e.cli, "np-done", NULL, NULL), GRPC_STATUS_OK, "");
  ASSERT_EQ(it_status(e.cli, "np-done"), TERMINATED);
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  in.value = (char *)"\"second\"";
  req.instanceid = (char *)"np-done";
  req.name = (char *)"Orch";
  req.input = &in;
  char *details = NULL;
  ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_EQ(it_status(e.cli, "np-done"), PENDING); /* a new execution, waiting for a worker */
  /* ... which is live now: the same call is refused. */
  ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &details), GRPC_STATUS_ALREADY_EXISTS, details);
  ASSERT_STR_CONTAINS(details, "orchestration instance already exists");
  free(details);
  it_teardown(&e);
  return 0;
}

static grpc_status_code start_with_policy(th_client *c, const char *id, const char *input,
                                          const OrchestrationStatus *statuses, size_t n, CreateOrchestrationAction action,
                                          char **details)
{
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  OrchestrationIdReusePolicy pol = ORCHESTRATION_ID_REUSE_POLICY__INIT;
  OrchestrationStatus copy[8];
  ASSERT_LE(n, 8);
  memcpy(copy, statuses, n * sizeof *statuses);
  pol.n_replaceablestatus = n;
  pol.replaceablestatus = copy;
  pol.action = action;
  in.value = (char *)input;
  req.instanceid = (char *)id;
  req.name = (char *)"Orch";
  req.input = &in;
  req.orchestrationidreusepolicy = &pol;
  char *got = NULL;
  grpc_status_code st = it_start_req(c, &req, &got, details);
  if (st == GRPC_STATUS_OK)
    ASSERT_STR_EQ(got, id);
  free(got);
  return st;
}

static char *input_of(th_client *c, const char *id)
{
  GetInstanceResponse *r = it_get(c, id, 1);
  OrchestrationState *s = state_of(r);
  char *v = strdup(s->input ? s->input->value : "(none)");
  ASSERT(v != NULL);
  it_free(r);
  return v;
}

TEST_IMPL(start_reuse_policy_replaces)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  const OrchestrationStatus pending_or_terminated[] = {PENDING, TERMINATED};
  const OrchestrationStatus terminated_only[] = {TERMINATED};
  const OrchestrationStatus no_pending[] = {COMPLETED, FAILED, TERMINATED};
  char *details = NULL;

  /* PENDING listed: replaced with a new execution. */
  free(it_start(e.cli, "reuse-1", "Orch", "v1"));
  char *x1 = exec_id(e.cli, "reuse-1");
  ASSERT_STATUS(start_with_policy(e.cli, "reuse-1", "v2", pending_or_terminated, 2,
                                  CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_ERROR, &details),
                GRPC_STATUS_OK, details);
  free(details);
  char *x2 = exec_id(e.cli, "reuse-1");
  if (strcmp(x1, x2) == 0)
    TEST_FAIL("replaced instance kept executionId %s", x1);
  ASSERT_EQ(it_status(e.cli, "reuse-1"), PENDING);
  char *in = input_of(e.cli, "reuse-1");
  ASSERT_STR_EQ(in, "v2");
  free(in);

  /* PENDING not listed: ALREADY_EXISTS and nothing changes. */
  char *before = it_snapshot(e.cli);
  ASSERT_STATUS(start_with_policy(e.cli, "reuse-1", "v3", no_pending, 3,
                                  CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_ERROR, &details),
                GRPC_STATUS_ALREADY_EXISTS, details);
  ASSERT_STR_CONTAINS(details, "orchestration instance already exists");
  free(details);
  it_assert_snapshot(e.cli, before, "StartInstance with a non-matching reuse policy");
  free(before);

  /* A terminated instance with TERMINATED listed: recreated fresh. */
  ASSERT_STATUS(it_terminate(e.cli, "reuse-1", "\"done\"", NULL), GRPC_STATUS_OK, "");
  ASSERT_EQ(it_status(e.cli, "reuse-1"), TERMINATED);
  ASSERT_STATUS(start_with_policy(e.cli, "reuse-1", "v4", terminated_only, 1,
                                  CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_ERROR, &details),
                GRPC_STATUS_OK, details);
  free(details);
  GetInstanceResponse *r = it_get(e.cli, "reuse-1", 1);
  OrchestrationState *s = state_of(r);
  ASSERT_EQ(s->orchestrationstatus, PENDING);
  ASSERT(s->output == NULL);
  ASSERT(s->completedtimestamp == NULL);
  ASSERT(s->input != NULL);
  ASSERT_STR_EQ(s->input->value, "v4");
  ASSERT(s->executionid != NULL);
  ASSERT(strcmp(s->executionid->value, x2) != 0);
  it_free(r);

  /* Exactly one instance exists: replacing does not duplicate index entries. */
  InstanceQuery q = INSTANCE_QUERY__INIT;
  it_strs ids = {0};
  it_query_all(e.cli, &q, &ids, NULL, 3);
  ASSERT_EQ(ids.n, 1);
  ASSERT_STR_EQ(ids.v[0], "reuse-1");
  it_strs_free(&ids);
  OrchestrationStatus term = TERMINATED;
  q.n_runtimestatus = 1;
  q.runtimestatus = &term;
  it_query_all(e.cli, &q, &ids, NULL, 3);
  ASSERT_EQ(ids.n, 0);
  it_strs_free(&ids);

  free(x1);
  free(x2);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(start_reuse_legacy_action)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  const OrchestrationStatus all[] = {PENDING, RUNNING, SUSPENDED, COMPLETED, FAILED, TERMINATED};
  char *details = NULL;
  free(it_start(e.cli, "legacy-1", "Orch", "orig"));
  char *x1 = exec_id(e.cli, "legacy-1");

  /* IGNORE: OK, nothing created or changed. */
  char *before = it_snapshot(e.cli);
  ASSERT_STATUS(start_with_policy(e.cli, "legacy-1", "ignored", all, 6,
                                  CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_IGNORE, &details),
                GRPC_STATUS_OK, details);
  free(details);
  it_assert_snapshot(e.cli, before, "legacy IGNORE");
  free(before);

  /* TERMINATE: replaced. */
  ASSERT_STATUS(start_with_policy(e.cli, "legacy-1", "replacement", all, 6,
                                  CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_TERMINATE, &details),
                GRPC_STATUS_OK, details);
  free(details);
  char *x2 = exec_id(e.cli, "legacy-1");
  if (strcmp(x1, x2) == 0)
    TEST_FAIL("legacy TERMINATE did not replace the instance (executionId unchanged)");
  char *in = input_of(e.cli, "legacy-1");
  ASSERT_STR_EQ(in, "replacement");
  free(in);
  ASSERT_EQ(it_status(e.cli, "legacy-1"), PENDING);
  free(x1);
  free(x2);
  it_teardown(&e);
  return 0;
}
