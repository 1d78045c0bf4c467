/* taskhubd's own service (protos/taskhubd_admin.proto): the server's identity, an instance's pending messages,
 * QueryInstances newest first, and why an instance has not moved, with their bad inputs answered by status and a
 * message naming the field. */
#define _GNU_SOURCE
#include "it.h"
#include "support/th_stream.h"
#include "taskhubd_admin.pb-c.h"

#include <poll.h>
#include <stdbool.h>

#define INFO "/taskhubd.admin.Admin/GetServerInfo"
#define PENDING_RPC "/taskhubd.admin.Admin/ListPendingMessages"
#define REVERSED_RPC "/taskhubd.admin.Admin/QueryInstancesReversed"
#define EXPLAIN_RPC "/taskhubd.admin.Admin/ExplainInstance"

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

/* |a| holds |b| reversed. */
static void assert_reversed(const it_strs *a, const it_strs *b, const char *what)
{
  if (a->n != b->n)
    TEST_FAIL("%s: %zu ids reversed, %zu forwards", what, a->n, b->n);
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i], b->v[b->n - 1 - i]) != 0)
      TEST_FAIL("%s: position %zu is \"%s\", the forward walk has \"%s\" there from the end", what, i, a->v[i],
                b->v[b->n - 1 - i]);
}

/* Every filter of QueryInstances, walked both ways page by page: the reversed walk is the forward one backwards
 * (newest first by creation time, ids in reverse under a prefix), whatever the page size. */
TEST_IMPL(admin_query_reversed)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  /* Ids against the creation order, so that a walk by id and one by time differ; every third terminated. */
  Google__Protobuf__Timestamp mid = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  for (int i = 0; i < 12; i++) {
    char iid[16];
    snprintf(iid, sizeof iid, "rq-%02d", 11 - i);
    free(it_start(e.cli, iid, "Orch", NULL));
    if (i % 3 == 0)
      ASSERT_STATUS(it_terminate(e.cli, iid, NULL, NULL), GRPC_STATUS_OK, "");
    if (i == 5)
      mid = it_ts_now();
  }
  OrchestrationStatus terminated = ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED;
  OrchestrationStatus both[2] = {ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING,
                                 ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED};
  Google__Protobuf__StringValue prefix = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  prefix.value = (char *)"rq-0";
  for (int shape = 0; shape < 5; shape++) {
    for (int size = 1; size <= 5; size += 4) {
      InstanceQuery q = INSTANCE_QUERY__INIT;
      q.maxinstancecount = size;
      if (shape == 1) {
        q.n_runtimestatus = 1;
        q.runtimestatus = &terminated;
      } else if (shape == 2) {
        q.instanceidprefix = &prefix;
      } else if (shape == 3) {
        q.createdtimefrom = &mid;
      } else if (shape == 4) {
        q.n_runtimestatus = 2;
        q.runtimestatus = both;
      }
      it_strs fwd = {0}, back = {0};
      it_query_all(e.cli, &q, &fwd, NULL, 20);
      it_query_all_by(e.cli, REVERSED_RPC, &q, &back, NULL, 20);
      char what[64];
      snprintf(what, sizeof what, "shape %d, pages of %d", shape, size);
      ASSERT_GT(back.n, 0);
      assert_reversed(&back, &fwd, what);
      if (shape == 0 || shape == 4)
        ASSERT_STR_EQ(back.v[0], "rq-00"); /* the newest */
      if (shape == 4)
        ASSERT_EQ(back.n, 12);
      if (shape == 2)
        ASSERT_STR_EQ(back.v[0], "rq-09"); /* the largest id under "rq-0", not the newest */
      it_strs_free(&fwd);
      it_strs_free(&back);
    }
  }
  /* A token it did not issue is refused, naming the field. */
  QueryInstancesRequest req = QUERY_INSTANCES_REQUEST__INIT;
  InstanceQuery q = INSTANCE_QUERY__INIT;
  Google__Protobuf__StringValue bad = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  bad.value = (char *)"garbage";
  q.continuationtoken = &bad;
  req.query = &q;
  ProtobufCMessage *m = NULL;
  char *d = NULL;
  ASSERT_STATUS(th_call_unary(e.cli, REVERSED_RPC, &req.base, &query_instances_response__descriptor, IT_TIMEOUT_MS,
                              &m, &d),
                GRPC_STATUS_INVALID_ARGUMENT, d);
  ASSERT_STR_CONTAINS(d, "query.continuationToken");
  free(d);
  it_teardown(&e);
  return 0;
}

static grpc_status_code explain(th_client *c, const char *iid, char **reason, char **details)
{
  Taskhubd__Admin__ExplainInstanceRequest req = TASKHUBD__ADMIN__EXPLAIN_INSTANCE_REQUEST__INIT;
  req.instance_id = (char *)iid;
  Taskhubd__Admin__ExplainInstanceResponse *r = NULL;
  grpc_status_code st = th_call_unary(c, EXPLAIN_RPC, &req.base, &taskhubd__admin__explain_instance_response__descriptor,
                                      IT_TIMEOUT_MS, (ProtobufCMessage **)&r, details);
  *reason = r ? strdup(r->reason) : NULL;
  if (r)
    protobuf_c_message_free_unpacked(&r->base, NULL);
  return st;
}

/* Why a PENDING instance has not started, at once (no wait runs out first): no worker for its name, a start set for
 * later, or nothing once a worker that accepts it is connected. */
TEST_IMPL(admin_explain_instance)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "ex-1", "Lonely", NULL));
  CreateInstanceRequest later = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__Timestamp at = it_ts_now();
  at.seconds += 3600;
  later.instanceid = (char *)"ex-later";
  later.name = (char *)"Lonely";
  later.scheduledstarttimestamp = &at;
  char *d = NULL;
  ASSERT_STATUS(it_start_req(e.cli, &later, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  char *why = NULL;
  d = NULL;
  ASSERT_STATUS(explain(e.cli, "ex-1", &why, &d), GRPC_STATUS_OK, d);
  free(d);
  ASSERT_STR_EQ(why, "it is PENDING and no connected worker accepts orchestration 'Lonely' (0 workers connected)");
  free(why);
  d = NULL;
  ASSERT_STATUS(explain(e.cli, "ex-later", &why, &d), GRPC_STATUS_OK, d);
  free(d);
  ASSERT_STR_EQ(why, "it is PENDING, scheduled to start later");
  free(why);
  /* A worker for another name changes nothing but the count; one that accepts it leaves nothing to explain. */
  GetWorkItemsRequest wr = GET_WORK_ITEMS_REQUEST__INIT;
  WorkItemFilters f = WORK_ITEM_FILTERS__INIT;
  OrchestrationFilter of = ORCHESTRATION_FILTER__INIT;
  of.name = (char *)"Other";
  OrchestrationFilter *ofp = &of;
  f.n_orchestrations = 1;
  f.orchestrations = &ofp;
  wr.workitemfilters = &f;
  th_stream *other = th_work_open(e.cli, &wr);
  d = NULL;
  long long deadline = th_now_ms() + 10000;
  for (;;) { /* until the engine has taken the stream in: the count says so */
    ASSERT_STATUS(explain(e.cli, "ex-1", &why, &d), GRPC_STATUS_OK, d);
    free(d);
    d = NULL;
    bool seen = strstr(why, "no connected worker accepts orchestration 'Lonely' (1 worker connected)") != NULL;
    if (!seen)
      ASSERT_STR_CONTAINS(why, "(0 workers connected)");
    free(why);
    if (seen)
      break;
    ASSERT_LT(th_now_ms(), deadline);
    poll(NULL, 0, 10); /* between checks of the condition */
  }
  th_stream *any = th_work_open(e.cli, NULL);
  WorkItem *wi = th_work_expect(any, 10000, "ex-1's start");
  ASSERT_STR_EQ(wi->orchestratorrequest->instanceid, "ex-1");
  work_item__free_unpacked(wi, NULL);
  ASSERT_STATUS(explain(e.cli, "ex-1", &why, &d), GRPC_STATUS_OK, d); /* leased, still PENDING: a worker has it */
  free(d);
  ASSERT_STR_EQ(why, "");
  free(why);
  /* Unknown and malformed ids. */
  d = NULL;
  ASSERT_STATUS(explain(e.cli, "ex-nobody", &why, &d), GRPC_STATUS_NOT_FOUND, d);
  ASSERT_STR_CONTAINS(d, "ex-nobody");
  free(d);
  free(why);
  d = NULL;
  ASSERT_STATUS(explain(e.cli, "", &why, &d), GRPC_STATUS_INVALID_ARGUMENT, d);
  ASSERT_STR_CONTAINS(d, "instanceId");
  free(d);
  free(why);
  th_stream_free(other);
  th_stream_free(any);
  it_teardown(&e);
  return 0;
}
