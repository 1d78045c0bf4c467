/* Durability: everything acknowledged survives SIGKILL + restart on the same data dir. */
#define _GNU_SOURCE
#include "it.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

enum { DUR_N = 200 };

static int is_sched(int i) { return i % 9 == 2; }
static int is_terminated(int i) { return i % 10 == 0; }
static int is_purged(int i) { return i % 20 == 10; } /* a subset of the terminated ones */
static int has_event(int i) { return i % 7 == 3; }
static int is_suspended(int i) { return i % 5 == 1; }

static void dur_id(int i, char *buf, size_t cap) { snprintf(buf, cap, "dur-%03d", i); }

/* The observable index results, each as a sorted list. */
typedef struct dur_views {
  it_strs terminated, pending, prefix, listed;
} dur_views;

static void collect_views(th_client *c, dur_views *v)
{
  memset(v, 0, sizeof *v);
  InstanceQuery q = INSTANCE_QUERY__INIT;
  OrchestrationStatus st;
  q.maxinstancecount = 9;
  q.runtimestatus = &st;
  q.n_runtimestatus = 1;
  st = TERMINATED;
  it_query_all(c, &q, &v->terminated, NULL, 40);
  st = PENDING;
  it_query_all(c, &q, &v->pending, NULL, 40);

  InstanceQuery p = INSTANCE_QUERY__INIT;
  Google__Protobuf__StringValue prefix = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  prefix.value = (char *)"dur-1";
  p.instanceidprefix = &prefix;
  p.maxinstancecount = 9;
  it_query_all(c, &p, &v->prefix, NULL, 40);

  ListInstanceIdsRequest req = LIST_INSTANCE_IDS_REQUEST__INIT;
  Google__Protobuf__StringValue key = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  char *cursor = NULL;
  req.pagesize = 7;
  for (int pages = 0;; pages++) {
    ASSERT_LT(pages, 40);
    if (cursor) {
      key.value = cursor;
      req.lastinstancekey = &key;
    }
    ProtobufCMessage *m = NULL;
    char *details = NULL;
    ASSERT_STATUS(th_call_unary(c, IT_SVC "ListInstanceIds", &req.base, &list_instance_ids_response__descriptor,
                                IT_TIMEOUT_MS, &m, &details),
                  GRPC_STATUS_OK, details);
    free(details);
    ListInstanceIdsResponse *r = (ListInstanceIdsResponse *)m;
    for (size_t i = 0; i < r->n_instanceids; i++)
      it_strs_add(&v->listed, r->instanceids[i]);
    free(cursor);
    cursor = r->lastinstancekey ? strdup(r->lastinstancekey->value) : NULL;
    it_free(m);
    if (!cursor)
      break;
  }
}

static void free_views(dur_views *v)
{
  it_strs_free(&v->terminated);
  it_strs_free(&v->pending);
  it_strs_free(&v->prefix);
  it_strs_free(&v->listed);
}

static void assert_expected_views(const dur_views *v, const char *when)
{
  dur_views want;
  memset(&want, 0, sizeof want);
  for (int i = 0; i < DUR_N; i++) {
    char id[32];
    dur_id(i, id, sizeof id);
    if (is_purged(i))
      continue;
    if (is_terminated(i)) {
      it_strs_add(&want.terminated, id);
      it_strs_add(&want.listed, id);
    } else {
      it_strs_add(&want.pending, id);
    }
    if (strncmp(id, "dur-1", 5) == 0)
      it_strs_add(&want.prefix, id);
  }
  char what[128];
  snprintf(what, sizeof what, "%s: query runtimeStatus=[TERMINATED]", when);
  it_assert_same_set(&v->terminated, &want.terminated, what);
  snprintf(what, sizeof what, "%s: query runtimeStatus=[PENDING]", when);
  it_assert_same_set(&v->pending, &want.pending, what);
  snprintf(what, sizeof what, "%s: query prefix dur-1", when);
  it_assert_same_set(&v->prefix, &want.prefix, what);
  snprintf(what, sizeof what, "%s: ListInstanceIds", when);
  it_assert_same_set(&v->listed, &want.listed, what);
  free_views(&want);
}

static void assert_instances(th_client *c, const char *when)
{
  for (int i = 0; i < DUR_N; i++) {
    char id[32], input[64], tag[32];
    dur_id(i, id, sizeof id);
    GetInstanceResponse *r = it_get(c, id, 1);
    if (is_purged(i)) {
      if (r->exists)
        TEST_FAIL("%s: purged instance %s exists", when, id);
      it_free(r);
      continue;
    }
    if (!r->exists)
      TEST_FAIL("%s: instance %s is missing", when, id);
    OrchestrationState *s = r->orchestrationstate;
    int want = is_terminated(i) ? TERMINATED : PENDING;
    if ((int)s->orchestrationstatus != want)
      TEST_FAIL("%s: %s has status %s, expected %s", when, id, it_status_name((int)s->orchestrationstatus),
                it_status_name(want));
    ASSERT_STR_EQ(s->name, i % 2 ? "DurOdd" : "DurEven");
    snprintf(input, sizeof input, "{\"n\":%d}", i);
    ASSERT(s->input != NULL);
    ASSERT_STR_EQ(s->input->value, input);
    ASSERT_EQ(s->n_tags, 1);
    snprintf(tag, sizeof tag, "v%d", i);
    ASSERT_STR_EQ(s->tags[0]->key, "k");
    ASSERT_STR_EQ(s->tags[0]->value, tag);
    ASSERT(s->version != NULL);
    ASSERT_STR_EQ(s->version->value, "7");
    if (is_terminated(i)) {
      char out[32];
      snprintf(out, sizeof out, "\"out-%d\"", i);
      ASSERT(s->output != NULL);
      ASSERT_STR_EQ(s->output->value, out);
      ASSERT(s->completedtimestamp != NULL);
    }
    if (is_sched(i) && !is_terminated(i) && s->scheduledstarttimestamp == NULL)
      TEST_FAIL("%s: %s lost its scheduledStartTimestamp", when, id);
    it_free(r);
  }
}

TEST_IMPL(durability_sigkill_restart)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  Google__Protobuf__Timestamp now = it_ts_now();
  Google__Protobuf__Timestamp later = it_ts_from_ms(it_ts_ms(&now) + 2 * 3600 * 1000);
  for (int i = 0; i < DUR_N; i++) {
    char id[32], input[64], tagv[32];
    dur_id(i, id, sizeof id);
    snprintf(input, sizeof input, "{\"n\":%d}", i);
    snprintf(tagv, sizeof tagv, "v%d", i);
    CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
    Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT, ver = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    CreateInstanceRequest__TagsEntry tag = CREATE_INSTANCE_REQUEST__TAGS_ENTRY__INIT;
    CreateInstanceRequest__TagsEntry *tags[] = {&tag};
    in.value = input;
    ver.value = (char *)"7";
    tag.key = (char *)"k";
    tag.value = tagv;
    req.instanceid = id;
    req.name = (char *)(i % 2 ? "DurOdd" : "DurEven");
    req.input = &in;
    req.version = &ver;
    req.tags = tags;
    req.n_tags = 1;
    if (is_sched(i))
      req.scheduledstarttimestamp = &later;
    char *details = NULL;
    ASSERT_STATUS(it_start_req(e.cli, &req, NULL, &details), GRPC_STATUS_OK, details);
    free(details);
  }
  for (int i = 0; i < DUR_N; i++) {
    char id[32];
    dur_id(i, id, sizeof id);
    if (has_event(i))
      ASSERT_STATUS(it_raise(e.cli, id, "Ping", "\"p\"", NULL), GRPC_STATUS_OK, "");
    if (is_suspended(i))
      ASSERT_STATUS(it_suspend(e.cli, id, NULL), GRPC_STATUS_OK, "");
    if (is_terminated(i)) {
      char out[32];
      snprintf(out, sizeof out, "\"out-%d\"", i);
      ASSERT_STATUS(it_terminate(e.cli, id, out, NULL), GRPC_STATUS_OK, "");
    }
    if (is_purged(i)) {
      int32_t deleted = -1;
      ASSERT_STATUS(it_purge_one(e.cli, id, &deleted, NULL, NULL), GRPC_STATUS_OK, "");
      ASSERT_EQ(deleted, 1);
    }
  }
  assert_instances(e.cli, "before the kill");
  dur_views before;
  collect_views(e.cli, &before);
  assert_expected_views(&before, "before the kill");
  char *snap = it_snapshot(e.cli);

  it_kill_restart(&e);
  it_assert_snapshot(e.cli, snap, "SIGKILL + restart");
  assert_instances(e.cli, "after SIGKILL + restart");
  dur_views after;
  collect_views(e.cli, &after);
  assert_expected_views(&after, "after SIGKILL + restart");
  free_views(&before);
  free_views(&after);
  free(snap);

  /* The restarted server keeps working, and a second kill right after new acknowledgements loses nothing. */
  ASSERT_STATUS(it_terminate(e.cli, "dur-001", "\"late\"", NULL), GRPC_STATUS_OK, "");
  free(it_start(e.cli, "dur-new", "Orch", "\"fresh\""));
  ASSERT_STATUS(it_raise(e.cli, "dur-003", "Ping", NULL, NULL), GRPC_STATUS_OK, "");
  int32_t deleted = -1;
  ASSERT_STATUS(it_purge_one(e.cli, "dur-020", &deleted, NULL, NULL), GRPC_STATUS_OK, "");
  ASSERT_EQ(deleted, 1);
  snap = it_snapshot(e.cli);
  it_kill_restart(&e);
  it_assert_snapshot(e.cli, snap, "second SIGKILL + restart");
  free(snap);
  ASSERT_EQ(it_status(e.cli, "dur-001"), TERMINATED);
  ASSERT_EQ(it_status(e.cli, "dur-new"), PENDING);
  ASSERT_EQ(it_status(e.cli, "dur-020"), -1);
  it_teardown(&e);
  return 0;
}

/* ---- concurrent starts while the server is killed ---- */

enum { CC_THREADS = 4, CC_KILL_AFTER = 300 };

struct cc_shared {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ok_total;
  int stopped;
};

struct cc_thread {
  struct cc_shared *sh;
  int port;
  int idx;
  it_strs ok;
  char failed_id[64];
  grpc_status_code last;
  char *last_details;
};

static void *cc_run(void *arg)
{
  struct cc_thread *t = arg;
  th_client *c = th_client_open(t->port);
  for (int n = 0; n < 1000000; n++) {
    char id[64];
    snprintf(id, sizeof id, "cc-%d-%06d", t->idx, n);
    CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
    Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    in.value = id;
    req.instanceid = id;
    req.name = (char *)"Concurrent";
    req.input = &in;
    char *details = NULL;
    grpc_status_code st = it_start_req(c, &req, NULL, &details);
    if (st != GRPC_STATUS_OK) {
      t->last = st;
      t->last_details = details;
      snprintf(t->failed_id, sizeof t->failed_id, "%s", id);
      break;
    }
    free(details);
    it_strs_add(&t->ok, id);
    pthread_mutex_lock(&t->sh->mu);
    t->sh->ok_total++;
    pthread_cond_broadcast(&t->sh->cv);
    pthread_mutex_unlock(&t->sh->mu);
  }
  th_client_close(c);
  pthread_mutex_lock(&t->sh->mu);
  t->sh->stopped++;
  pthread_cond_broadcast(&t->sh->cv);
  pthread_mutex_unlock(&t->sh->mu);
  return NULL;
}

TEST_IMPL(durability_concurrent_starts_sigkill)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  struct cc_shared sh = {.ok_total = 0};
  pthread_mutex_init(&sh.mu, NULL);
  pthread_cond_init(&sh.cv, NULL);
  struct cc_thread t[CC_THREADS];
  pthread_t th[CC_THREADS];
  memset(t, 0, sizeof t);
  for (int i = 0; i < CC_THREADS; i++) {
    t[i].sh = &sh;
    t[i].port = e.srv.port;
    t[i].idx = i;
    ASSERT_OK(pthread_create(&th[i], NULL, cc_run, &t[i]));
  }
  /* Kill once enough starts were acknowledged, while every thread still has calls in flight. */
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 60;
  pthread_mutex_lock(&sh.mu);
  while (sh.ok_total < CC_KILL_AFTER && sh.stopped == 0) {
    int w = pthread_cond_timedwait(&sh.cv, &sh.mu, &dl);
    if (w == ETIMEDOUT)
      break;
  }
  int ok_at_kill = sh.ok_total;
  pthread_mutex_unlock(&sh.mu);
  th_server_kill(&e.srv);
  for (int i = 0; i < CC_THREADS; i++)
    ASSERT_OK(pthread_join(th[i], NULL));
  if (ok_at_kill < CC_KILL_AFTER) {
    for (int i = 0; i < CC_THREADS; i++)
      if (t[i].last != GRPC_STATUS_OK)
        fprintf(stderr, "thread %d: StartInstance(%s) failed: %s (\"%s\")\n", i, t[i].failed_id,
                th_status_name(t[i].last), t[i].last_details);
    TEST_FAIL("only %d StartInstance calls were acknowledged before the kill (expected %d)", ok_at_kill,
              CC_KILL_AFTER);
  }

  it_strs acked = {0};
  for (int i = 0; i < CC_THREADS; i++) {
    if (t[i].last == GRPC_STATUS_OK)
      TEST_FAIL("thread %d never saw a failure", i);
    for (size_t k = 0; k < t[i].ok.n; k++)
      it_strs_add(&acked, t[i].ok.v[k]);
  }
  ASSERT_GE(acked.n, (size_t)CC_KILL_AFTER);

  th_client_close(e.cli);
  th_server_restart(&e.srv);
  e.cli = th_client_open(e.srv.port);
  for (size_t k = 0; k < acked.n; k++) {
    GetInstanceResponse *r = it_get(e.cli, acked.v[k], 1);
    if (!r->exists)
      TEST_FAIL("acknowledged StartInstance(%s) lost after SIGKILL (%zu acknowledged in total)", acked.v[k], acked.n);
    ASSERT_EQ(r->orchestrationstate->orchestrationstatus, PENDING);
    ASSERT_STR_EQ(r->orchestrationstate->name, "Concurrent");
    ASSERT_STR_EQ(r->orchestrationstate->input->value, acked.v[k]);
    it_free(r);
  }
  /* The indexes agree with the records: every acknowledged id is queryable, and the only extra instances are the
   * (at most one per thread) calls whose outcome the client never learnt. */
  InstanceQuery q = INSTANCE_QUERY__INIT;
  Google__Protobuf__StringValue prefix = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  prefix.value = (char *)"cc-";
  q.instanceidprefix = &prefix;
  it_strs listed = {0};
  it_query_all(e.cli, &q, &listed, NULL, 1000);
  for (size_t k = 0; k < acked.n; k++)
    if (!it_strs_contains(&listed, acked.v[k]))
      TEST_FAIL("acknowledged %s exists but is missing from QueryInstances after restart", acked.v[k]);
  ASSERT_LE(listed.n, acked.n + CC_THREADS);
  for (size_t k = 0; k < listed.n; k++)
    if (!it_strs_contains(&acked, listed.v[k])) {
      int ambiguous = 0;
      for (int i = 0; i < CC_THREADS; i++)
        ambiguous |= strcmp(listed.v[k], t[i].failed_id) == 0;
      if (!ambiguous)
        TEST_FAIL("instance %s exists but was never started", listed.v[k]);
    }
  fprintf(stderr, "concurrent starts: %zu acknowledged, %zu present after restart\n", acked.n, listed.n);

  it_strs_free(&listed);
  it_strs_free(&acked);
  for (int i = 0; i < CC_THREADS; i++) {
    it_strs_free(&t[i].ok);
    free(t[i].last_details);
  }
  pthread_mutex_destroy(&sh.mu);
  pthread_cond_destroy(&sh.cv);
  it_teardown(&e);
  return 0;
}
