/* CreateTaskHub / DeleteTaskHub, guarded by --allow-delete-taskhub. */
#define _GNU_SOURCE
#include "it.h"

static grpc_status_code delete_hub(th_client *c, char **details)
{
  DeleteTaskHubRequest req = DELETE_TASK_HUB_REQUEST__INIT;
  return th_call_unary(c, IT_SVC "DeleteTaskHub", &req.base, &delete_task_hub_response__descriptor, IT_TIMEOUT_MS,
                       NULL, details);
}

static grpc_status_code create_hub(th_client *c, int recreate, char **details)
{
  CreateTaskHubRequest req = CREATE_TASK_HUB_REQUEST__INIT;
  req.recreateifexists = recreate;
  return th_call_unary(c, IT_SVC "CreateTaskHub", &req.base, &create_task_hub_response__descriptor, IT_TIMEOUT_MS,
                       NULL, details);
}

static void populate(th_client *c)
{
  free(it_start(c, "hub-1", "Orch", "\"a\""));
  free(it_start(c, "hub-2", "Orch", "\"b\""));
  free(it_start(c, "hub-3", "Orch", NULL));
  ASSERT_STATUS(it_terminate(c, "hub-3", "\"c\"", NULL), GRPC_STATUS_OK, "");
  ASSERT_STATUS(it_raise(c, "hub-1", "Ev", "1", NULL), GRPC_STATUS_OK, "");
}

TEST_IMPL(taskhub_delete_disabled)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  populate(e.cli);
  char *before = it_snapshot(e.cli);
  char *details = NULL;
  ASSERT_STATUS(delete_hub(e.cli, &details), GRPC_STATUS_FAILED_PRECONDITION, details);
  free(details);
  ASSERT_STATUS(create_hub(e.cli, 1, &details), GRPC_STATUS_FAILED_PRECONDITION, details);
  free(details);
  it_assert_snapshot(e.cli, before, "DeleteTaskHub/CreateTaskHub(recreate) without --allow-delete-taskhub");
  /* CreateTaskHub without recreate is a harmless no-op. */
  ASSERT_STATUS(create_hub(e.cli, 0, &details), GRPC_STATUS_OK, details);
  free(details);
  it_assert_snapshot(e.cli, before, "CreateTaskHub(recreateIfExists=false)");
  /* And the data is still there after a restart. */
  it_kill_restart(&e);
  it_assert_snapshot(e.cli, before, "restart after refused DeleteTaskHub");
  free(before);
  it_teardown(&e);
  return 0;
}

static void assert_empty(th_client *c, const char *what)
{
  char *snap = it_snapshot(c);
  if (strcmp(snap, "0 instances\n") != 0)
    TEST_FAIL("%s: store not empty:\n%s", what, snap);
  free(snap);
  const char *ids[] = {"hub-1", "hub-2", "hub-3"};
  for (int i = 0; i < 3; i++)
    if (it_exists(c, ids[i]))
      TEST_FAIL("%s: %s still exists", what, ids[i]);
  ListInstanceIdsRequest req = LIST_INSTANCE_IDS_REQUEST__INIT;
  ProtobufCMessage *m = NULL;
  char *details = NULL;
  ASSERT_STATUS(th_call_unary(c, IT_SVC "ListInstanceIds", &req.base, &list_instance_ids_response__descriptor,
                              IT_TIMEOUT_MS, &m, &details),
                GRPC_STATUS_OK, details);
  free(details);
  ASSERT_EQ(((ListInstanceIdsResponse *)m)->n_instanceids, 0);
  it_free(m);
  /* Raising an event to a wiped instance finds nothing. */
  ASSERT_STATUS(it_raise(c, "hub-1", "Ev", NULL, &details), GRPC_STATUS_NOT_FOUND, details);
  free(details);
}

TEST_IMPL(taskhub_delete_enabled)
{
  static const char *const args[] = {"--allow-delete-taskhub", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  char *details = NULL;
  populate(e.cli);
  ASSERT_STATUS(delete_hub(e.cli, &details), GRPC_STATUS_OK, details);
  free(details);
  assert_empty(e.cli, "after DeleteTaskHub");

  /* The hub is usable afterwards, and the wipe is durable. */
  populate(e.cli);
  ASSERT_EQ(it_status(e.cli, "hub-3"), TERMINATED);
  ASSERT_STATUS(create_hub(e.cli, 0, &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_EQ(it_status(e.cli, "hub-2"), PENDING); /* no recreate: data kept */
  ASSERT_STATUS(create_hub(e.cli, 1, &details), GRPC_STATUS_OK, details);
  free(details);
  assert_empty(e.cli, "after CreateTaskHub(recreateIfExists=true)");
  it_kill_restart(&e);
  assert_empty(e.cli, "after DeleteTaskHub and a restart");
  free(it_start(e.cli, "hub-1", "Orch", NULL));
  ASSERT_EQ(it_status(e.cli, "hub-1"), PENDING);
  it_teardown(&e);
  return 0;
}
