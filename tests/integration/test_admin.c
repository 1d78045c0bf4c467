/* taskhubd's own service (protos/taskhubd_admin.proto): the server's identity, and an instance's pending messages,
 * with their bad inputs answered by status and a message naming the field. */
#define _GNU_SOURCE
#include "it.h"
#include "taskhubd_admin.pb-c.h"

#include <stdbool.h>

#define INFO "/taskhubd.admin.Admin/GetServerInfo"
#define PENDING_RPC "/taskhubd.admin.Admin/ListPendingMessages"

static grpc_status_code pending(th_client *c, const char *iid, int max,
                                Taskhubd__Admin__PendingMessagesResponse **out, char **details)
{
  Taskhubd__Admin__PendingMessagesRequest req = TASKHUBD__ADMIN__PENDING_MESSAGES_REQUEST__INIT;
  req.instance_id = (char *)iid;
  req.max_messages = max;
  return th_call_unary(c, PENDING_RPC, &req.base, &taskhubd__admin__pending_messages_response__descriptor,
                       IT_TIMEOUT_MS, (ProtobufCMessage **)out, details);
}

TEST_IMPL(admin_server_info)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  Taskhubd__Admin__ServerInfoRequest req = TASKHUBD__ADMIN__SERVER_INFO_REQUEST__INIT;
  Taskhubd__Admin__ServerInfoResponse *info = NULL;
  char *d = NULL;
  ASSERT_EQ(th_call_unary(e.cli, INFO, &req.base, &taskhubd__admin__server_info_response__descriptor,
                          IT_TIMEOUT_MS, (ProtobufCMessage **)&info, &d),
            GRPC_STATUS_OK);
  free(d);
  ASSERT_STR_EQ(info->version, TASKHUBD_VERSION);
  ASSERT(info->grpc_version[0] != '\0');
  bool pg = getenv("TASKHUBD_TEST_PG") != NULL;
  ASSERT_STR_EQ(info->store, pg ? "postgresql" : "rocksdb");
  ASSERT(pg ? info->partitions >= 1 && info->replica_id[0] != '\0' : info->partitions == 1);
  protobuf_c_message_free_unpacked(&info->base, NULL);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(admin_pending_messages)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  /* No worker: the start and three raised events wait in the inbox, oldest first. */
  free(it_start(e.cli, "pm-1", "Orch", NULL));
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "ev%d", i);
    ASSERT_STATUS(it_raise(e.cli, "pm-1", name, NULL, NULL), GRPC_STATUS_OK, "");
  }
  Taskhubd__Admin__PendingMessagesResponse *p = NULL;
  char *d = NULL;
  ASSERT_EQ(pending(e.cli, "pm-1", 0, &p, &d), GRPC_STATUS_OK);
  free(d);
  ASSERT_EQ(p->total, 4);
  ASSERT_EQ(p->n_messages, 4);
  ASSERT_EQ(p->messages[0]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED);
  ASSERT_STR_EQ(p->messages[0]->executionstarted->name, "Orch");
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "ev%d", i);
    ASSERT_EQ(p->messages[1 + i]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED);
    ASSERT_STR_EQ(p->messages[1 + i]->eventraised->name, name);
  }
  protobuf_c_message_free_unpacked(&p->base, NULL);
  /* Cut by maxMessages: the total still says how many wait. */
  ASSERT_EQ(pending(e.cli, "pm-1", 2, &p, &d), GRPC_STATUS_OK);
  free(d);
  ASSERT_EQ(p->n_messages, 2);
  ASSERT_EQ(p->total, 4);
  protobuf_c_message_free_unpacked(&p->base, NULL);
  /* Bad input and a missing instance. */
  ASSERT_EQ(pending(e.cli, "pm-1", 1001, &p, &d), GRPC_STATUS_INVALID_ARGUMENT);
  ASSERT(strstr(d, "maxMessages") != NULL);
  free(d);
  ASSERT_EQ(pending(e.cli, "pm-1", -1, &p, &d), GRPC_STATUS_INVALID_ARGUMENT);
  free(d);
  ASSERT_EQ(pending(e.cli, "", 0, &p, &d), GRPC_STATUS_INVALID_ARGUMENT);
  ASSERT(strstr(d, "instanceId") != NULL);
  free(d);
  ASSERT_EQ(pending(e.cli, "pm-missing", 0, &p, &d), GRPC_STATUS_NOT_FOUND);
  ASSERT(strstr(d, "pm-missing") != NULL);
  free(d);
  /* A malformed request is refused, not half-read. */
  static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
  ASSERT_EQ(th_call_raw(e.cli, PENDING_RPC, junk, sizeof junk, IT_TIMEOUT_MS, NULL, NULL, &d),
            GRPC_STATUS_INVALID_ARGUMENT);
  free(d);
  it_teardown(&e);
  return 0;
}
