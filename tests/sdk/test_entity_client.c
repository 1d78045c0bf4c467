/*
 * The C SDK's entity client calls (dt_client_signal_entity, _get_entity, _query_entities,
 * _clean_entity_storage) against a real taskhubd. Where an entity needs state the test plays the worker by hand
 * (the SDK's own entity worker is tested in test_entity_worker.c): a GetWorkItems stream that asks for entity work
 * (maxConcurrentEntityWorkItems) and a CompleteEntityTask with the state it chooses. Entities no worker ran
 * stay transient: a record with queued operations and no state.
 */
#define _GNU_SOURCE
#include "durabletask.h"
#include "orchestrator_service.pb-c.h"
#include "support/th_client.h"
#include "support/th_server.h"
#include "support/th_stream.h"
#include "test.h"

#include <time.h>

#define CALL_TIMEOUT_MS 10000
#define WAIT_MS 20000

typedef struct env {
  th_server srv;
  dt_client *c;
  th_client *raw;
} env;

static int setup(env *e)
{
  memset(e, 0, sizeof *e);
  int rc = th_server_start(&e->srv, NULL);
  if (rc != 0)
    return rc;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", e->srv.port);
  dt_conn_options o = {.call_timeout_ms = CALL_TIMEOUT_MS};
  ASSERT_OK(dt_client_open(target, &o, &e->c));
  e->raw = th_client_open(e->srv.port);
  return 0;
}

static void teardown(env *e)
{
  dt_client_close(e->c);
  th_client_close(e->raw);
  th_server_free(&e->srv);
}

static int64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define ASSERT_RC(expr, want)                                                                              \
  do {                                                                                                     \
    int r_ = (expr), w_ = (want);                                                                          \
    if (r_ != w_)                                                                                          \
      TEST_FAIL("%s returned %d (%s), expected %d (%s)", #expr, r_, dt_strerror(r_), w_, dt_strerror(w_)); \
  } while (0)

static dt_entity *get_entity(dt_client *c, const char *id, bool state)
{
  dt_entity *en = NULL;
  int rc = dt_client_get_entity(c, id, state, &en);
  if (rc != DT_OK)
    TEST_FAIL("dt_client_get_entity(%s): %s", id, dt_strerror(rc));
  ASSERT(en != NULL);
  return en;
}

/* A stream that gets entity batches before any other worker would. */
static th_stream *entity_worker(env *e)
{
  GetWorkItemsRequest req = GET_WORK_ITEMS_REQUEST__INIT;
  req.maxconcurrententityworkitems = 10;
  return th_work_open(e->raw, &req);
}

/* Takes the next batch, which must be for |id| with |n_ops| operations named |op|, and completes all of them
 * with |state| as the new state (NULL: the entity deletes its state). */
static void run_batch(env *e, th_stream *w, const char *id, size_t n_ops, const char *op, const char *state)
{
  WorkItem *wi = th_work_expect(w, WAIT_MS, "an entity batch");
  ASSERT_EQ(wi->request_case, WORK_ITEM__REQUEST_ENTITY_REQUEST);
  const EntityBatchRequest *b = wi->entityrequest;
  ASSERT_STR_EQ(b->instanceid, id);
  ASSERT_EQ(b->n_operations, n_ops);
  OperationResult *res = calloc(n_ops, sizeof *res);
  OperationResult **resp = calloc(n_ops, sizeof *resp);
  OperationResultSuccess ok = OPERATION_RESULT_SUCCESS__INIT;
  for (size_t i = 0; i < n_ops; i++) {
    ASSERT_STR_EQ(b->operations[i]->operation, op);
    operation_result__init(&res[i]);
    res[i].result_type_case = OPERATION_RESULT__RESULT_TYPE_SUCCESS;
    res[i].success = &ok;
    resp[i] = &res[i];
  }
  EntityBatchResult r = ENTITY_BATCH_RESULT__INIT;
  Google__Protobuf__StringValue st = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  r.n_results = n_ops;
  r.results = resp;
  if (state) {
    st.value = (char *)state;
    r.entitystate = &st;
  }
  r.completiontoken = wi->completiontoken;
  char *details = NULL;
  grpc_status_code sc = th_call_unary(e->raw, "/TaskHubSidecarService/CompleteEntityTask", &r.base,
                                      &complete_task_response__descriptor, CALL_TIMEOUT_MS, NULL, &details);
  if (sc != GRPC_STATUS_OK)
    TEST_FAIL("CompleteEntityTask: %s %s", th_status_name(sc), details);
  free(details);
  free(res);
  free(resp);
  work_item__free_unpacked(wi, NULL);
}

/* ------------------------------------------------------------------ ids, signal, get */

TEST_IMPL(sdk_client_entity_ids)
{
  char *id = NULL;
  ASSERT_OK(dt_make_entity_id("Counter", "Key-A", &id));
  ASSERT_STR_EQ(id, "@counter@Key-A"); /* the name lowercased as the other SDKs do, the key as given */
  dt_free(id);
  id = NULL;
  ASSERT_OK(dt_make_entity_id("c", "", &id));
  ASSERT_STR_EQ(id, "@c@");
  dt_free(id);
  id = NULL;
  ASSERT_RC(dt_make_entity_id("", "k", &id), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_make_entity_id("a@b", "k", &id), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_make_entity_id(NULL, "k", &id), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_make_entity_id("a", NULL, &id), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_make_entity_id("a", "k", NULL), DT_ERR_INVALID_ARG);
  ASSERT(id == NULL);

  /* Bad ids are refused before anything is sent: no server at all here (a client connects lazily). */
  dt_client *c = NULL;
  ASSERT_OK(dt_client_open("127.0.0.1:1", NULL, &c));
  static const char *const bad[] = {"counter@k", "@@k", "@counter", "", "plain"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dt_entity *en = NULL;
    ASSERT_RC(dt_client_signal_entity(c, bad[i], "op", NULL, 0), DT_ERR_INVALID_ARG);
    ASSERT_RC(dt_client_get_entity(c, bad[i], false, &en), DT_ERR_INVALID_ARG);
    ASSERT(en == NULL);
    ASSERT(!dt_last_call_status(NULL, NULL)); /* the SDK's own refusal, not a server status */
  }
  ASSERT_RC(dt_client_signal_entity(c, NULL, "op", NULL, 0), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_signal_entity(c, "@a@k", "", NULL, 0), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_signal_entity(c, "@a@k", NULL, NULL, 0), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_signal_entity(c, "@a@k", "op", NULL, -1), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_signal_entity(NULL, "@a@k", "op", NULL, 0), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_get_entity(c, "@a@k", false, NULL), DT_ERR_INVALID_ARG);
  dt_entity_page *p = NULL;
  ASSERT_RC(dt_client_query_entities(c, NULL, &p), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_query_entities(c, &(dt_entity_query){.page_size = -1}, &p), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_query_entities(c, &(dt_entity_query){0}, NULL), DT_ERR_INVALID_ARG);
  ASSERT(p == NULL);
  ASSERT_RC(dt_client_clean_entity_storage(NULL, true, true, NULL, NULL, NULL, NULL), DT_ERR_INVALID_ARG);
  dt_client_close(c);
  dt_entity_free(NULL);
  dt_entity_page_free(NULL);
  return 0;
}

TEST_IMPL(sdk_client_entity_signal_get)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_entity *en = NULL;
  /* Never signalled: no record. NOT_FOUND comes from exists=false without metadata, not from a status. */
  ASSERT_RC(dt_client_get_entity(e.c, "@counter@k1", true, &en), DT_ERR_NOT_FOUND);
  ASSERT(en == NULL);
  ASSERT(!dt_last_call_status(NULL, NULL));

  int64_t before = wall_ms();
  ASSERT_OK(dt_client_signal_entity(e.c, "@Counter@k1", "add", "1", 0));
  ASSERT_OK(dt_client_signal_entity(e.c, "@counter@k1", "add", "2", 0));
  int64_t after = wall_ms();

  /* No worker ran them: transient, described with its backlog, under the lowercased name whatever the case
   * of the id asked with. */
  static const char *const spellings[] = {"@counter@k1", "@COUNTER@k1", "@Counter@k1"};
  for (size_t i = 0; i < 3; i++) {
    en = get_entity(e.c, spellings[i], true);
    ASSERT_STR_EQ(en->entity_id, "@counter@k1");
    ASSERT(!en->exists);
    ASSERT_EQ(en->backlog, 2);
    ASSERT(en->state == NULL);
    ASSERT(en->locked_by == NULL);
    ASSERT_GE(en->last_modified_ms, before - 1000);
    ASSERT_LE(en->last_modified_ms, after + 1000);
    dt_entity_free(en);
  }
  /* The key is case-sensitive. */
  ASSERT_RC(dt_client_get_entity(e.c, "@counter@K1", false, &en), DT_ERR_NOT_FOUND);

  /* A worker runs both operations in one batch and leaves state 3: now it exists, with nothing queued. */
  th_stream *w = entity_worker(&e);
  run_batch(&e, w, "@counter@k1", 2, "add", "3");
  en = get_entity(e.c, "@counter@k1", true);
  ASSERT(en->exists);
  ASSERT_EQ(en->backlog, 0);
  ASSERT_STR_EQ(en->state, "3");
  ASSERT_GE(en->last_modified_ms, after - 1000);
  dt_entity_free(en);
  en = get_entity(e.c, "@counter@k1", false);
  ASSERT(en->exists);
  ASSERT(en->state == NULL); /* not asked for */
  dt_entity_free(en);

  /* It deletes its state with nothing queued: no record is left. */
  ASSERT_OK(dt_client_signal_entity(e.c, "@counter@k1", "delete", NULL, 0));
  run_batch(&e, w, "@counter@k1", 1, "delete", NULL);
  ASSERT_RC(dt_client_get_entity(e.c, "@counter@k1", true, &en), DT_ERR_NOT_FOUND);
  th_stream_free(w);

  /* The server's own checks come back with its message: an operation name over its limit. */
  char *op = malloc(5000);
  memset(op, 'o', 4999);
  op[4999] = '\0';
  rc = dt_client_signal_entity(e.c, "@counter@k2", op, NULL, 0);
  ASSERT(rc == DT_ERR_INVALID_ARG || rc == DT_ERR_TOO_BIG);
  const char *code = NULL, *msg = NULL;
  ASSERT(dt_last_call_status(&code, &msg));
  ASSERT_STR_CONTAINS(msg, "name");
  free(op);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_entity_scheduled_signal)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  int64_t at = wall_ms() + 1500;
  ASSERT_OK(dt_client_signal_entity(e.c, "@timer@x", "ring", "\"now\"", at));
  /* Until it is due the signal is a durable timer, not an operation of the entity: no record yet (the call
   * returns well before |at|, as the assertion on the clock says). */
  dt_entity *en = NULL;
  rc = dt_client_get_entity(e.c, "@timer@x", false, &en);
  ASSERT_LT(wall_ms(), at);
  ASSERT_RC(rc, DT_ERR_NOT_FOUND);
  /* A time already past queues it now. */
  ASSERT_OK(dt_client_signal_entity(e.c, "@timer@y", "ring", NULL, wall_ms() - 60000));
  en = get_entity(e.c, "@timer@y", false);
  ASSERT_EQ(en->backlog, 1);
  dt_entity_free(en);

  /* Poll for the record the timer creates: it appears, not before |at|, with the one signal queued. */
  int64_t deadline = wall_ms() + WAIT_MS;
  for (;;) {
    rc = dt_client_get_entity(e.c, "@timer@x", false, &en);
    if (rc == DT_OK)
      break;
    ASSERT_RC(rc, DT_ERR_NOT_FOUND);
    ASSERT_LT(wall_ms(), deadline);
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  ASSERT_GE(wall_ms(), at);
  ASSERT_GE(en->last_modified_ms, at - 5);
  ASSERT_EQ(en->backlog, 1);
  ASSERT(!en->exists);
  dt_entity_free(en);
  teardown(&e);
  return 0;
}

/* ------------------------------------------------------------------ query */

/* Every entity |q| pages through, |page| at most per page; each id is put in |ids| (up to |cap|). */
static size_t query_all(dt_client *c, dt_entity_query q, dt_entity **ids, size_t cap)
{
  size_t n = 0;
  char *token = NULL;
  for (int pages = 0;; pages++) {
    ASSERT_LT(pages, 100);
    dt_entity_page *p = NULL;
    q.continuation = token;
    ASSERT_OK(dt_client_query_entities(c, &q, &p));
    if (q.page_size)
      ASSERT_LE(p->n, (size_t)q.page_size);
    for (size_t i = 0; i < p->n; i++) {
      ASSERT_LT(n, cap);
      ids[n++] = p->entities[i];
      p->entities[i] = NULL;
    }
    p->n = 0;
    free(token);
    token = p->continuation ? strdup(p->continuation) : NULL;
    dt_entity_page_free(p);
    if (!token)
      return n;
  }
}

static void free_all(dt_entity **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dt_entity_free(v[i]);
}

TEST_IMPL(sdk_client_entity_query)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  /* Three with state (s0..s2, state "10".."12") and @other@y with state; then four transient (t0..t3) and
   * @other@x, signalled after a clock tick so that a modified-time bound separates the two groups. */
  th_stream *w = entity_worker(&e);
  char id[32], st[8];
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "@qe@s%d", i);
    snprintf(st, sizeof st, "%d", 10 + i);
    ASSERT_OK(dt_client_signal_entity(e.c, id, "set", st, 0));
    run_batch(&e, w, id, 1, "set", st);
  }
  ASSERT_OK(dt_client_signal_entity(e.c, "@other@y", "set", "1", 0));
  run_batch(&e, w, "@other@y", 1, "set", "1");
  th_stream_free(w); /* no entity worker from here on: what is signalled now stays transient */
  int64_t mid = wall_ms() + 1;
  while (wall_ms() <= mid) /* a clock tick, not a wait for anything */
    ;
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof id, "@qe@t%d", i);
    ASSERT_OK(dt_client_signal_entity(e.c, id, "set", NULL, 0));
  }
  ASSERT_OK(dt_client_signal_entity(e.c, "@other@x", "set", NULL, 0));

  dt_entity *v[32];
  /* Without transient ones: the three with state, in id order, over pages of two; no state unless asked. */
  size_t n = query_all(e.c, (dt_entity_query){.id_prefix = "@QE@", .page_size = 2}, v, 32);
  ASSERT_EQ(n, 3);
  for (size_t i = 0; i < n; i++) {
    snprintf(id, sizeof id, "@qe@s%zu", i);
    ASSERT_STR_EQ(v[i]->entity_id, id);
    ASSERT(v[i]->exists);
    ASSERT(v[i]->state == NULL);
    ASSERT_EQ(v[i]->backlog, 0);
  }
  free_all(v, n);

  /* With them, pages of three, without state: exists tells the two kinds apart all the same. */
  n = query_all(e.c, (dt_entity_query){.id_prefix = "@qe@", .page_size = 3, .include_transient = true}, v, 32);
  ASSERT_EQ(n, 7);
  for (size_t i = 0; i < n; i++) {
    bool stateful = strncmp(v[i]->entity_id, "@qe@s", 5) == 0;
    if (v[i]->exists != stateful)
      TEST_FAIL("%s: exists=%d", v[i]->entity_id, v[i]->exists);
    ASSERT_EQ(v[i]->backlog, stateful ? 0 : 1);
    ASSERT(v[i]->state == NULL);
    if (i)
      ASSERT(strcmp(v[i - 1]->entity_id, v[i]->entity_id) < 0);
  }
  free_all(v, n);

  /* With state, in one page of the default size. */
  dt_entity_page *p = NULL;
  ASSERT_OK(dt_client_query_entities(
      e.c, &(dt_entity_query){.id_prefix = "@qe@", .include_transient = true, .include_state = true}, &p));
  ASSERT_EQ(p->n, 7);
  ASSERT(p->continuation == NULL);
  for (size_t i = 0; i < p->n; i++) {
    if (i < 3) {
      snprintf(st, sizeof st, "%zu", 10 + i);
      ASSERT(p->entities[i]->exists);
      ASSERT_STR_EQ(p->entities[i]->state, st);
    } else {
      ASSERT(!p->entities[i]->exists);
      ASSERT(p->entities[i]->state == NULL);
    }
  }
  dt_entity_page_free(p);

  /* No prefix: every entity, both names. */
  n = query_all(e.c, (dt_entity_query){.include_transient = true, .page_size = 4}, v, 32);
  ASSERT_EQ(n, 9);
  free_all(v, n);
  n = query_all(e.c, (dt_entity_query){0}, v, 32);
  ASSERT_EQ(n, 4);
  free_all(v, n);

  /* Modified-time bounds: from |mid| the transient ones, before it those with state. */
  n = query_all(e.c, (dt_entity_query){.include_transient = true, .modified_from_ms = mid}, v, 32);
  ASSERT_EQ(n, 5);
  for (size_t i = 0; i < n; i++)
    ASSERT(!v[i]->exists);
  free_all(v, n);
  n = query_all(e.c, (dt_entity_query){.include_transient = true, .modified_to_ms = mid}, v, 32);
  ASSERT_EQ(n, 4);
  for (size_t i = 0; i < n; i++)
    ASSERT(v[i]->exists);
  free_all(v, n);
  teardown(&e);
  return 0;
}

/* ------------------------------------------------------------------ clean */

TEST_IMPL(sdk_client_entity_clean)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  th_stream *w = entity_worker(&e);
  ASSERT_OK(dt_client_signal_entity(e.c, "@keep@state", "set", "1", 0));
  run_batch(&e, w, "@keep@state", 1, "set", "1");
  th_stream_free(w);
  ASSERT_OK(dt_client_signal_entity(e.c, "@keep@queued", "set", NULL, 0));

  /* Nothing here is empty (one has state, one has an operation queued) and nothing is locked: nothing changes,
   * and one call covers it all. Out-parameters are set, or may be left out. */
  int removed = -1, released = -1;
  char *next = (char *)"untouched";
  ASSERT_OK(dt_client_clean_entity_storage(e.c, true, true, NULL, &removed, &released, &next));
  ASSERT_EQ(removed, 0);
  ASSERT_EQ(released, 0);
  ASSERT(next == NULL);
  ASSERT_OK(dt_client_clean_entity_storage(e.c, false, false, NULL, NULL, NULL, NULL));
  dt_entity *en = get_entity(e.c, "@keep@state", true);
  ASSERT(en->exists);
  dt_entity_free(en);
  en = get_entity(e.c, "@keep@queued", false);
  ASSERT_EQ(en->backlog, 1);
  dt_entity_free(en);

  /* A token that is no entity id: the server refuses it and says why. */
  ASSERT_RC(dt_client_clean_entity_storage(e.c, true, true, "bogus", &removed, &released, &next),
            DT_ERR_INVALID_ARG);
  const char *code = NULL, *msg = NULL;
  ASSERT(dt_last_call_status(&code, &msg));
  ASSERT_STR_EQ(code, "INVALID_ARGUMENT");
  ASSERT_STR_CONTAINS(msg, "continuationToken");
  teardown(&e);
  return 0;
}
