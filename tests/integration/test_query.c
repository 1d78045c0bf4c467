/* QueryInstances, ListInstanceIds and PurgeInstances. */
#define _GNU_SOURCE
#include "it.h"

static void start_n(th_client *c, const char *fmt_prefix, int n, it_strs *out)
{
  for (int i = 0; i < n; i++) {
    char id[64];
    snprintf(id, sizeof id, "%s%02d", fmt_prefix, i);
    free(it_start(c, id, "QueryOrch", "\"input\""));
    if (out)
      it_strs_add(out, id);
  }
}

static Google__Protobuf__Timestamp *created_of(th_client *c, const char *id, Google__Protobuf__Timestamp *out)
{
  GetInstanceResponse *r = it_get(c, id, 0);
  ASSERT(r->exists);
  ASSERT(r->orchestrationstate->createdtimestamp != NULL);
  *out = *r->orchestrationstate->createdtimestamp;
  out->base.unknown_fields = NULL;
  out->base.n_unknown_fields = 0;
  it_free(r);
  return out;
}

static void assert_created_order(th_client *c, const it_strs *ids, const char *what)
{
  Google__Protobuf__Timestamp prev = GOOGLE__PROTOBUF__TIMESTAMP__INIT, cur;
  for (size_t i = 0; i < ids->n; i++) {
    created_of(c, ids->v[i], &cur);
    if (i > 0 && it_ts_cmp(&prev, &cur) > 0)
      TEST_FAIL("%s: %s (created %" PRId64 ".%09d) comes after %s (created %" PRId64 ".%09d)", what, ids->v[i],
                cur.seconds, (int)cur.nanos, ids->v[i - 1], prev.seconds, (int)prev.nanos);
    prev = cur;
  }
}

static void assert_unique(const it_strs *ids, const char *what)
{
  it_strs s = {0};
  for (size_t i = 0; i < ids->n; i++)
    it_strs_add(&s, ids->v[i]);
  it_strs_sort(&s);
  for (size_t i = 1; i < s.n; i++)
    if (strcmp(s.v[i - 1], s.v[i]) == 0)
      TEST_FAIL("%s: %s returned twice", what, s.v[i]);
  it_strs_free(&s);
}

TEST_IMPL(query_paging)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  it_strs want = {0}, all = {0};
  start_n(e.cli, "other-", 5, &all);
  start_n(e.cli, "qpfx-", 30, &want);
  for (size_t i = 0; i < want.n; i++)
    it_strs_add(&all, want.v[i]);

  InstanceQuery q = INSTANCE_QUERY__INIT;
  Google__Protobuf__StringValue prefix = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  prefix.value = (char *)"qpfx-";
  q.instanceidprefix = &prefix;
  q.maxinstancecount = 7;
  it_strs got = {0};
  it_query_all(e.cli, &q, &got, NULL, 6); /* ceil(30/7) = 5 pages, one empty trailing page tolerated */
  assert_unique(&got, "prefix query");
  it_assert_same_set(&got, &want, "prefix query with maxInstanceCount=7");
  /* Prefix-only queries come in instance id order. */
  for (size_t i = 1; i < got.n; i++)
    if (strcmp(got.v[i - 1], got.v[i]) >= 0)
      TEST_FAIL("prefix query order: %s before %s", got.v[i - 1], got.v[i]);
  it_strs_free(&got);

  /* No filter at all: everything, in created order. */
  InstanceQuery q2 = INSTANCE_QUERY__INIT;
  q2.maxinstancecount = 7;
  it_query_all(e.cli, &q2, &got, NULL, 6);
  assert_unique(&got, "unfiltered query");
  it_assert_same_set(&got, &all, "unfiltered query");
  assert_created_order(e.cli, &got, "unfiltered query");
  it_strs_free(&got);

  /* maxInstanceCount 0 means 100 per page: one page. */
  InstanceQuery q3 = INSTANCE_QUERY__INIT;
  it_query_all(e.cli, &q3, &got, NULL, 1);
  ASSERT_EQ(got.n, 35);
  it_strs_free(&got);

  /* Page size 1 and a page size equal to the count. */
  q.maxinstancecount = 1;
  it_query_all(e.cli, &q, &got, NULL, 31);
  it_assert_same_set(&got, &want, "prefix query with maxInstanceCount=1");
  it_strs_free(&got);
  q.maxinstancecount = 30;
  it_query_all(e.cli, &q, &got, NULL, 2);
  it_assert_same_set(&got, &want, "prefix query with maxInstanceCount=30");
  it_strs_free(&got);

  it_strs_free(&want);
  it_strs_free(&all);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(query_status_filter)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  it_strs ids = {0}, terminated = {0}, pending = {0};
  start_n(e.cli, "qs-", 20, &ids);
  for (size_t i = 0; i < ids.n; i++) {
    if (i % 5 == 1 || i % 5 == 3) {
      ASSERT_STATUS(it_terminate(e.cli, ids.v[i], NULL, NULL), GRPC_STATUS_OK, "");
      it_strs_add(&terminated, ids.v[i]);
    } else {
      it_strs_add(&pending, ids.v[i]);
    }
  }
  OrchestrationStatus st[2];
  InstanceQuery q = INSTANCE_QUERY__INIT;
  q.runtimestatus = st;
  q.maxinstancecount = 3;
  it_strs got = {0};

  st[0] = TERMINATED;
  q.n_runtimestatus = 1;
  it_query_all(e.cli, &q, &got, NULL, 4);
  it_assert_same_set(&got, &terminated, "runtimeStatus=[TERMINATED]");
  assert_created_order(e.cli, &got, "runtimeStatus=[TERMINATED]");
  it_strs_free(&got);

  st[0] = PENDING;
  it_query_all(e.cli, &q, &got, NULL, 5);
  it_assert_same_set(&got, &pending, "runtimeStatus=[PENDING]");
  assert_created_order(e.cli, &got, "runtimeStatus=[PENDING]");
  it_strs_free(&got);

  st[0] = TERMINATED;
  st[1] = PENDING;
  q.n_runtimestatus = 2;
  it_query_all(e.cli, &q, &got, NULL, 8);
  it_assert_same_set(&got, &ids, "runtimeStatus=[TERMINATED,PENDING]");
  /* One walk in creation order across pages, however the store merges the statuses (PostgreSQL: one index range
   * per status). */
  assert_created_order(e.cli, &got, "runtimeStatus=[TERMINATED,PENDING]");
  it_strs_free(&got);

  st[0] = COMPLETED;
  st[1] = RUNNING;
  it_query_all(e.cli, &q, &got, NULL, 1);
  ASSERT_EQ(got.n, 0);
  it_strs_free(&got);

  /* fetchInputsAndOutputs controls input/output in query results. */
  for (int fetch = 0; fetch < 2; fetch++) {
    InstanceQuery q1 = INSTANCE_QUERY__INIT;
    QueryInstancesRequest req = QUERY_INSTANCES_REQUEST__INIT;
    OrchestrationStatus t = TERMINATED;
    q1.runtimestatus = &t;
    q1.n_runtimestatus = 1;
    q1.fetchinputsandoutputs = fetch;
    req.query = &q1;
    ProtobufCMessage *m = NULL;
    char *details = NULL;
    ASSERT_STATUS(th_call_unary(e.cli, IT_SVC "QueryInstances", &req.base, &query_instances_response__descriptor,
                                IT_TIMEOUT_MS, &m, &details),
                  GRPC_STATUS_OK, details);
    free(details);
    QueryInstancesResponse *r = (QueryInstancesResponse *)m;
    ASSERT_EQ(r->n_orchestrationstate, terminated.n);
    for (size_t i = 0; i < r->n_orchestrationstate; i++) {
      OrchestrationState *s = r->orchestrationstate[i];
      ASSERT_EQ(s->orchestrationstatus, TERMINATED);
      ASSERT_STR_EQ(s->name, "QueryOrch");
      ASSERT(s->createdtimestamp != NULL);
      if (fetch) {
        ASSERT(s->input != NULL);
        ASSERT_STR_EQ(s->input->value, "\"input\"");
      } else {
        ASSERT(s->input == NULL);
      }
    }
    it_free(m);
  }
  it_strs_free(&ids);
  it_strs_free(&terminated);
  it_strs_free(&pending);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(query_created_range)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  enum { N = 20 };
  it_strs ids = {0};
  start_n(e.cli, "cr-", N, &ids);
  Google__Protobuf__Timestamp created[N];
  for (int i = 0; i < N; i++)
    created_of(e.cli, ids.v[i], &created[i]);
  Google__Protobuf__Timestamp from = created[5], to = created[15];

  for (int mode = 0; mode < 3; mode++) { /* both bounds, only from, only to */
    InstanceQuery q = INSTANCE_QUERY__INIT;
    q.maxinstancecount = 4;
    if (mode != 2)
      q.createdtimefrom = &from;
    if (mode != 1)
      q.createdtimeto = &to;
    it_strs want = {0}, got = {0};
    for (int i = 0; i < N; i++) {
      int ok = (mode == 2 || it_ts_cmp(&created[i], &from) >= 0) && (mode == 1 || it_ts_cmp(&created[i], &to) < 0);
      if (ok)
        it_strs_add(&want, ids.v[i]);
    }
    ASSERT(it_strs_contains(&want, mode == 2 ? "cr-00" : "cr-05")); /* from is inclusive */
    if (mode != 1)
      ASSERT(!it_strs_contains(&want, "cr-15")); /* to is exclusive */
    it_query_all(e.cli, &q, &got, NULL, 7);
    assert_unique(&got, "created range query");
    it_assert_same_set(&got, &want, mode == 0 ? "[from, to)" : mode == 1 ? "[from, -)" : "[-, to)");
    assert_created_order(e.cli, &got, "created range query");
    it_strs_free(&want);
    it_strs_free(&got);
  }

  /* Range combined with a status filter and a prefix. */
  ASSERT_STATUS(it_terminate(e.cli, "cr-07", NULL, NULL), GRPC_STATUS_OK, "");
  ASSERT_STATUS(it_terminate(e.cli, "cr-16", NULL, NULL), GRPC_STATUS_OK, "");
  InstanceQuery q = INSTANCE_QUERY__INIT;
  OrchestrationStatus t = TERMINATED;
  Google__Protobuf__StringValue prefix = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  prefix.value = (char *)"cr-";
  q.createdtimefrom = &from;
  q.createdtimeto = &to;
  q.runtimestatus = &t;
  q.n_runtimestatus = 1;
  q.instanceidprefix = &prefix;
  it_strs got = {0};
  it_query_all(e.cli, &q, &got, NULL, 2);
  ASSERT_EQ(got.n, 1);
  ASSERT_STR_EQ(got.v[0], "cr-07");
  it_strs_free(&got);

  /* An empty range. */
  InstanceQuery q2 = INSTANCE_QUERY__INIT;
  q2.createdtimefrom = &to;
  q2.createdtimeto = &to;
  it_query_all(e.cli, &q2, &got, NULL, 1);
  ASSERT_EQ(got.n, 0);
  it_strs_free(&got);
  it_strs_free(&ids);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(query_prefix)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  const char *names[] = {"pre-a-1", "pre-a-2", "pre-ab-1", "pre-b-1", "prf", "pre", "PRE-a-3"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    free(it_start(e.cli, names[i], "Orch", NULL));
  struct {
    const char *prefix;
    const char *want[6];
  } cases[] = {
      {"pre-a", {"pre-a-1", "pre-a-2", "pre-ab-1"}},
      {"pre-a-", {"pre-a-1", "pre-a-2"}},
      {"pre-", {"pre-a-1", "pre-a-2", "pre-ab-1", "pre-b-1"}},
      {"pre", {"pre-a-1", "pre-a-2", "pre-ab-1", "pre-b-1", "pre"}},
      {"pre-a-1", {"pre-a-1"}},
      {"PRE", {"PRE-a-3"}},
      {"zzz", {NULL}},
      {"pre-a-10", {NULL}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    InstanceQuery q = INSTANCE_QUERY__INIT;
    Google__Protobuf__StringValue prefix = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    prefix.value = (char *)cases[i].prefix;
    q.instanceidprefix = &prefix;
    q.maxinstancecount = 2;
    it_strs got = {0}, want = {0};
    for (int k = 0; k < 6 && cases[i].want[k]; k++)
      it_strs_add(&want, cases[i].want[k]);
    it_query_all(e.cli, &q, &got, NULL, 4);
    char what[64];
    snprintf(what, sizeof what, "prefix \"%s\"", cases[i].prefix);
    it_assert_same_set(&got, &want, what);
    it_strs_free(&got);
    it_strs_free(&want);
  }
  it_teardown(&e);
  return 0;
}

/* ListInstanceIds pages over terminal instances only, ordered by completion time. */
TEST_IMPL(list_instance_ids)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  it_strs ids = {0}, terminated = {0};
  start_n(e.cli, "li-", 20, &ids);
  /* Terminate 13 of them in an order unrelated to id or creation order. */
  for (int k = 0; k < 13; k++) {
    const char *id = ids.v[(k * 7 + 3) % 20];
    ASSERT_STATUS(it_terminate(e.cli, id, NULL, NULL), GRPC_STATUS_OK, "");
    it_strs_add(&terminated, id);
  }

  for (int variant = 0; variant < 2; variant++) {
    ListInstanceIdsRequest req = LIST_INSTANCE_IDS_REQUEST__INIT;
    OrchestrationStatus t = TERMINATED;
    Google__Protobuf__StringValue key = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    req.pagesize = 5;
    if (variant) {
      req.runtimestatus = &t;
      req.n_runtimestatus = 1;
    }
    it_strs got = {0}, keys = {0};
    char *cursor = NULL;
    int pages = 0;
    for (;;) {
      if (cursor) {
        key.value = cursor;
        req.lastinstancekey = &key;
      }
      ProtobufCMessage *m = NULL;
      char *details = NULL;
      ASSERT_STATUS(th_call_unary(e.cli, IT_SVC "ListInstanceIds", &req.base, &list_instance_ids_response__descriptor,
                                  IT_TIMEOUT_MS, &m, &details),
                    GRPC_STATUS_OK, details);
      free(details);
      ListInstanceIdsResponse *r = (ListInstanceIdsResponse *)m;
      pages++;
      ASSERT_LE(pages, 4);
      ASSERT_LE(r->n_instanceids, 5);
      for (size_t i = 0; i < r->n_instanceids; i++)
        it_strs_add(&got, r->instanceids[i]);
      free(cursor);
      cursor = NULL;
      if (r->lastinstancekey) {
        const char *k = r->lastinstancekey->value;
        ASSERT(k[0] != '\0');
        if (it_strs_contains(&keys, k))
          TEST_FAIL("ListInstanceIds: lastInstanceKey \"%s\" repeated", k);
        it_strs_add(&keys, k);
        ASSERT(r->n_instanceids > 0);
        /* The cursor identifies the last returned instance. */
        ASSERT_STR_CONTAINS(k, r->instanceids[r->n_instanceids - 1]);
        cursor = strdup(k);
      }
      it_free(m);
      if (!cursor)
        break;
    }
    ASSERT_GE(pages, 3);
    assert_unique(&got, "ListInstanceIds");
    it_assert_same_set(&got, &terminated, "ListInstanceIds over terminated instances");
    /* Ordered by completion time. */
    Google__Protobuf__Timestamp prev = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    for (size_t i = 0; i < got.n; i++) {
      GetInstanceResponse *g = it_get(e.cli, got.v[i], 0);
      ASSERT(g->orchestrationstate->completedtimestamp != NULL);
      if (i > 0 && it_ts_cmp(&prev, g->orchestrationstate->completedtimestamp) > 0)
        TEST_FAIL("ListInstanceIds: %s completed before %s but comes after it", got.v[i], got.v[i - 1]);
      prev = *g->orchestrationstate->completedtimestamp;
      prev.base.unknown_fields = NULL;
      prev.base.n_unknown_fields = 0;
      it_free(g);
    }
    it_strs_free(&got);
    it_strs_free(&keys);
  }

  /* pageSize 0 means 100: one page, no cursor. */
  ListInstanceIdsRequest req = LIST_INSTANCE_IDS_REQUEST__INIT;
  ProtobufCMessage *m = NULL;
  char *details = NULL;
  ASSERT_STATUS(th_call_unary(e.cli, IT_SVC "ListInstanceIds", &req.base, &list_instance_ids_response__descriptor,
                              IT_TIMEOUT_MS, &m, &details),
                GRPC_STATUS_OK, details);
  free(details);
  ListInstanceIdsResponse *r = (ListInstanceIdsResponse *)m;
  ASSERT_EQ(r->n_instanceids, 13);
  ASSERT(r->lastinstancekey == NULL);
  it_free(m);

  /* A status no instance has: empty. */
  OrchestrationStatus c = COMPLETED;
  req.runtimestatus = &c;
  req.n_runtimestatus = 1;
  ASSERT_STATUS(th_call_unary(e.cli, IT_SVC "ListInstanceIds", &req.base, &list_instance_ids_response__descriptor,
                              IT_TIMEOUT_MS, &m, &details),
                GRPC_STATUS_OK, details);
  free(details);
  r = (ListInstanceIdsResponse *)m;
  ASSERT_EQ(r->n_instanceids, 0);
  ASSERT(r->lastinstancekey == NULL);
  it_free(m);
  it_strs_free(&ids);
  it_strs_free(&terminated);
  it_teardown(&e);
  return 0;
}

static void assert_purge_ok(th_client *c, const PurgeInstancesRequest *req, int32_t want_deleted, const char *what)
{
  ProtobufCMessage *m = NULL;
  char *details = NULL;
  grpc_status_code st = th_call_unary(c, IT_SVC "PurgeInstances", &req->base, &purge_instances_response__descriptor,
                                      IT_TIMEOUT_MS, &m, &details);
  if (st != GRPC_STATUS_OK)
    TEST_FAIL("%s: PurgeInstances status %s (\"%s\")", what, th_status_name(st), details);
  free(details);
  PurgeInstancesResponse *r = (PurgeInstancesResponse *)m;
  if (r->deletedinstancecount != want_deleted)
    TEST_FAIL("%s: deletedInstanceCount %d, expected %d", what, (int)r->deletedinstancecount, (int)want_deleted);
  if (r->iscomplete == NULL || !r->iscomplete->value)
    TEST_FAIL("%s: isComplete is not true", what);
  it_free(m);
}

static int in_list_instance_ids(th_client *c, const char *id)
{
  ListInstanceIdsRequest req = LIST_INSTANCE_IDS_REQUEST__INIT;
  req.pagesize = 1000;
  ProtobufCMessage *m = NULL;
  char *details = NULL;
  ASSERT_STATUS(th_call_unary(c, IT_SVC "ListInstanceIds", &req.base, &list_instance_ids_response__descriptor,
                              IT_TIMEOUT_MS, &m, &details),
                GRPC_STATUS_OK, details);
  free(details);
  ListInstanceIdsResponse *r = (ListInstanceIdsResponse *)m;
  int found = 0;
  for (size_t i = 0; i < r->n_instanceids; i++)
    found |= strcmp(r->instanceids[i], id) == 0;
  it_free(m);
  return found;
}

static int in_query(th_client *c, const char *id)
{
  InstanceQuery q = INSTANCE_QUERY__INIT;
  it_strs got = {0};
  it_query_all(c, &q, &got, NULL, 100);
  int found = it_strs_contains(&got, id);
  it_strs_free(&got);
  return found;
}

TEST_IMPL(purge_single)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "pg-done", "Orch", "\"in\""));
  free(it_start(e.cli, "pg-pending", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "pg-done", "\"out\"", NULL), GRPC_STATUS_OK, "");
  ASSERT(in_list_instance_ids(e.cli, "pg-done"));

  PurgeInstancesRequest req = PURGE_INSTANCES_REQUEST__INIT;
  req.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID;
  req.instanceid = (char *)"pg-done";
  assert_purge_ok(e.cli, &req, 1, "purge of a terminated instance");
  GetInstanceResponse *r = it_get(e.cli, "pg-done", 1);
  ASSERT_EQ(r->exists, 0);
  it_free(r);
  ASSERT(!in_query(e.cli, "pg-done"));
  ASSERT(!in_list_instance_ids(e.cli, "pg-done"));
  assert_purge_ok(e.cli, &req, 0, "second purge of the same instance");

  char *before = it_snapshot(e.cli);
  req.instanceid = (char *)"pg-pending";
  assert_purge_ok(e.cli, &req, 0, "purge of a PENDING instance");
  req.instanceid = (char *)"pg-unknown";
  assert_purge_ok(e.cli, &req, 0, "purge of an unknown instance");
  it_assert_snapshot(e.cli, before, "purge of non-terminal/unknown instances");
  free(before);
  ASSERT_EQ(it_status(e.cli, "pg-pending"), PENDING);

  /* The id is free again: a plain StartInstance succeeds and yields a fresh instance. */
  free(it_start(e.cli, "pg-done", "Orch", "\"again\""));
  r = it_get(e.cli, "pg-done", 1);
  ASSERT_EQ(r->orchestrationstate->orchestrationstatus, PENDING);
  ASSERT(r->orchestrationstate->output == NULL);
  ASSERT_STR_EQ(r->orchestrationstate->input->value, "\"again\"");
  it_free(r);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(purge_batch)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  it_strs ids = {0};
  start_n(e.cli, "pb-", 10, &ids);
  for (int i = 0; i < 6; i++)
    ASSERT_STATUS(it_terminate(e.cli, ids.v[i], NULL, NULL), GRPC_STATUS_OK, "");
  /* One more terminated instance that only the oversized batch names. */
  free(it_start(e.cli, "pb-extra", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "pb-extra", NULL, NULL), GRPC_STATUS_OK, "");

  /* 501 ids: INVALID_ARGUMENT, nothing purged. */
  char *before = it_snapshot(e.cli);
  char **big = calloc(501, sizeof *big);
  ASSERT(big != NULL);
  for (int i = 0; i < 501; i++) {
    big[i] = malloc(32);
    ASSERT(big[i] != NULL);
    snprintf(big[i], 32, "pb-missing-%d", i);
  }
  snprintf(big[250], 32, "pb-extra");
  InstanceBatch batch = INSTANCE_BATCH__INIT;
  batch.instanceids = big;
  batch.n_instanceids = 501;
  PurgeInstancesRequest req = PURGE_INSTANCES_REQUEST__INIT;
  req.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_BATCH;
  req.instancebatch = &batch;
  char *details = NULL;
  grpc_status_code st = th_call_unary(e.cli, IT_SVC "PurgeInstances", &req.base, &purge_instances_response__descriptor,
                                      IT_TIMEOUT_MS, NULL, &details);
  ASSERT_STATUS(st, GRPC_STATUS_INVALID_ARGUMENT, details);
  ASSERT_STR_CONTAINS(details, "instance");
  free(details);
  it_assert_snapshot(e.cli, before, "PurgeInstances with 501 ids");
  free(before);

  /* Exactly 500 is allowed. */
  batch.n_instanceids = 500;
  assert_purge_ok(e.cli, &req, 1, "batch of 500 ids naming one terminated instance");
  ASSERT(!it_exists(e.cli, "pb-extra"));

  /* All 10 plus an unknown id: the 6 terminated ones go, the 4 pending stay. */
  char *small[11];
  for (int i = 0; i < 10; i++)
    small[i] = ids.v[i];
  small[10] = (char *)"pb-unknown";
  batch.instanceids = small;
  batch.n_instanceids = 11;
  assert_purge_ok(e.cli, &req, 6, "batch purge");
  for (int i = 0; i < 10; i++)
    if (it_exists(e.cli, ids.v[i]) != (i >= 6))
      TEST_FAIL("after batch purge: %s exists=%d", ids.v[i], it_exists(e.cli, ids.v[i]));

  for (int i = 0; i < 501; i++)
    free(big[i]);
  free(big);
  it_strs_free(&ids);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(purge_by_filter)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  it_strs ids = {0};
  start_n(e.cli, "pf-", 12, &ids);
  Google__Protobuf__Timestamp from, to;
  created_of(e.cli, ids.v[0], &from);
  created_of(e.cli, ids.v[8], &to);
  /* Terminated: 0-5 (inside [c0, c8)) and 8, 9 (outside). */
  for (int i = 0; i < 10; i++)
    if (i < 6 || i >= 8)
      ASSERT_STATUS(it_terminate(e.cli, ids.v[i], NULL, NULL), GRPC_STATUS_OK, "");

  PurgeInstanceFilter f = PURGE_INSTANCE_FILTER__INIT;
  OrchestrationStatus st[2] = {TERMINATED, PENDING};
  f.createdtimefrom = &from;
  f.createdtimeto = &to;
  f.runtimestatus = st;
  f.n_runtimestatus = 1;
  PurgeInstancesRequest req = PURGE_INSTANCES_REQUEST__INIT;
  req.request_case = PURGE_INSTANCES_REQUEST__REQUEST_PURGE_INSTANCE_FILTER;
  req.purgeinstancefilter = &f;
  assert_purge_ok(e.cli, &req, 6, "filter purge of TERMINATED in [c0, c8)");
  for (int i = 0; i < 12; i++) {
    int want = i >= 6;
    if (it_exists(e.cli, ids.v[i]) != want)
      TEST_FAIL("after filter purge: %s exists=%d, expected %d", ids.v[i], !want, want);
  }

  /* Non-terminal statuses in the filter purge nothing. */
  char *before = it_snapshot(e.cli);
  st[0] = PENDING;
  f.createdtimefrom = NULL;
  f.createdtimeto = NULL;
  assert_purge_ok(e.cli, &req, 0, "filter purge of PENDING");
  it_assert_snapshot(e.cli, before, "filter purge of PENDING");
  free(before);

  /* No range, no statuses: every terminal instance. */
  f.n_runtimestatus = 0;
  f.runtimestatus = NULL;
  assert_purge_ok(e.cli, &req, 2, "filter purge of everything terminal");
  for (int i = 0; i < 12; i++) {
    int want = i == 6 || i == 7 || i >= 10;
    if (it_exists(e.cli, ids.v[i]) != want)
      TEST_FAIL("after second filter purge: %s exists=%d, expected %d", ids.v[i], !want, want);
  }
  it_strs_free(&ids);
  it_teardown(&e);
  return 0;
}
