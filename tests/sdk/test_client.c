/*
 * The C SDK client (sdk-c/include/durabletask.h) against a real taskhubd. Mostly no worker runs, so every
 * instance stays PENDING until the client terminates it; that reaches every client call and its errors. The
 * history and failure tests play the worker by hand over raw gRPC (GetWorkItems + Complete*Task), so that
 * they control exactly which events the history holds.
 */
#define _GNU_SOURCE
#include "durabletask.h"
#include "orchestrator_service.pb-c.h"
#include "support/th_client.h"
#include "support/th_server.h"
#include "test.h"

#include <arpa/inet.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 10000

typedef struct env {
  th_server srv;
  dt_client *c;
} env;

static void test_log(int level, const char *message, void *user_data)
{
  (void)user_data;
  fprintf(stderr, "[dt %d] %s\n", level, message);
}

static int setup_args(env *e, const char *const *extra)
{
  memset(e, 0, sizeof *e);
  int rc = th_server_start(&e->srv, extra);
  if (rc != 0)
    return rc;
  dt_set_log_fn(test_log, NULL);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", e->srv.port);
  dt_conn_options o = {.call_timeout_ms = CALL_TIMEOUT_MS};
  ASSERT_OK(dt_client_open(target, &o, &e->c));
  ASSERT(e->c != NULL);
  return 0;
}

static int setup(env *e)
{
  return setup_args(e, NULL);
}

static void teardown(env *e)
{
  dt_client_close(e->c);
  e->c = NULL;
  th_server_free(&e->srv);
}

static int64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool is_hex32(const char *s)
{
  if (!s || strlen(s) != 32)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

/* Schedules |name| under |id| (NULL: generated) with |input|; must succeed. Returns the id (dt_free it). */
static char *sched(dt_client *c, const char *id, const char *name, const char *input)
{
  dt_start_options o = {.instance_id = id, .input = input};
  char *out = NULL;
  ASSERT_OK(dt_client_schedule(c, name, &o, &out));
  ASSERT(out != NULL);
  if (id)
    ASSERT_STR_EQ(out, id);
  return out;
}

static dt_instance *get(dt_client *c, const char *id, bool payloads)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(c, id, payloads, &in);
  if (rc != DT_OK)
    TEST_FAIL("dt_client_get(%s): %s", id, dt_strerror(rc));
  ASSERT(in != NULL);
  ASSERT_STR_EQ(in->instance_id, id);
  return in;
}

static int status_of(dt_client *c, const char *id)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(c, id, false, &in);
  if (rc == DT_ERR_NOT_FOUND)
    return -1;
  ASSERT_OK(rc);
  int s = (int)in->status;
  dt_instance_free(in);
  return s;
}

#define ASSERT_STATUS_IS(c, id, want)                                                                      \
  do {                                                                                                     \
    int s_ = status_of((c), (id));                                                                         \
    if (s_ != (int)(want))                                                                                 \
      TEST_FAIL("instance %s is %s, expected %s", (id), s_ < 0 ? "missing" : dt_status_name((dt_status)s_), \
                dt_status_name(want));                                                                     \
  } while (0)

#define ASSERT_RC(expr, want)                                                                              \
  do {                                                                                                     \
    int r_ = (expr), w_ = (want);                                                                          \
    if (r_ != w_)                                                                                          \
      TEST_FAIL("%s returned %d (%s), expected %d (%s)", #expr, r_, dt_strerror(r_), w_, dt_strerror(w_)); \
  } while (0)

static const char *tag_value(const dt_instance *in, const char *key)
{
  for (size_t i = 0; i < in->n_tags; i++)
    if (strcmp(in->tags[i].key, key) == 0)
      return in->tags[i].value;
  return NULL;
}

/* A local TCP port that refuses connections: bound, never listening. Close the returned fd when done. */
static int dead_port(int *port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
  socklen_t len = sizeof a;
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
  *port = ntohs(a.sin_port);
  return fd;
}

/* ------------------------------------------------------------------ schedule */

TEST_IMPL(sdk_client_schedule_generated_id)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  int64_t before = wall_ms();
  char *a = NULL, *b = NULL;
  ASSERT_OK(dt_client_schedule(e.c, "Orch", NULL, &a));
  ASSERT(is_hex32(a));
  /* An empty id is "none" too. */
  dt_start_options o = {.instance_id = "", .input = "{\"n\":1}"};
  ASSERT_OK(dt_client_schedule(e.c, "Orch", &o, &b));
  ASSERT(is_hex32(b));
  ASSERT(strcmp(a, b) != 0);
  /* A NULL out-parameter is allowed. */
  ASSERT_OK(dt_client_schedule(e.c, "Orch", NULL, NULL));
  int64_t after = wall_ms();

  dt_instance *in = get(e.c, a, true);
  ASSERT_STR_EQ(in->name, "Orch");
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_GE(in->created_ms, before - 1000);
  ASSERT_LE(in->created_ms, after + 1000);
  ASSERT_GE(in->last_updated_ms, in->created_ms);
  ASSERT_EQ(in->completed_ms, 0);
  ASSERT_EQ(in->scheduled_start_ms, 0);
  ASSERT(in->version == NULL);
  ASSERT(in->execution_id != NULL && in->execution_id[0] != '\0');
  ASSERT(in->parent_instance_id == NULL);
  ASSERT(in->input == NULL);
  ASSERT(in->output == NULL);
  ASSERT(in->custom_status == NULL);
  ASSERT(in->failure == NULL);
  ASSERT_EQ(in->n_tags, 0);
  dt_instance_free(in);

  in = get(e.c, b, true);
  ASSERT_STR_EQ(in->input, "{\"n\":1}");
  dt_instance_free(in);
  in = get(e.c, b, false);
  ASSERT(in->input == NULL); /* payloads only when asked for */
  dt_instance_free(in);

  dt_free(a);
  dt_free(b);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_schedule_round_trip)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_tag tags[] = {{"env", "prod"}, {"team", "core"}, {"empty", NULL}};
  dt_start_options o = {.instance_id = "rt-1", .input = "[1,2,3]", .version = "1.2.3", .tags = tags, .n_tags = 3};
  char *id = NULL;
  ASSERT_OK(dt_client_schedule(e.c, "RoundTrip", &o, &id));
  ASSERT_STR_EQ(id, "rt-1");
  dt_free(id);

  dt_instance *in = get(e.c, "rt-1", true);
  ASSERT_STR_EQ(in->name, "RoundTrip");
  ASSERT_STR_EQ(in->version, "1.2.3");
  ASSERT_STR_EQ(in->input, "[1,2,3]");
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_EQ(in->n_tags, 3);
  ASSERT_STR_EQ(tag_value(in, "env"), "prod");
  ASSERT_STR_EQ(tag_value(in, "team"), "core");
  ASSERT_STR_EQ(tag_value(in, "empty"), ""); /* a NULL value is sent as "" */
  dt_instance_free(in);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_schedule_scheduled_start)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  int64_t at = wall_ms() + 3600 * 1000;
  dt_start_options o = {.instance_id = "later", .start_at_ms = at};
  char *id = NULL;
  ASSERT_OK(dt_client_schedule(e.c, "Orch", &o, &id));
  dt_free(id);
  dt_instance *in = get(e.c, "later", false);
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_EQ(in->scheduled_start_ms, at);
  dt_instance_free(in);

  /* A start time in the past means "now". */
  o.instance_id = "past";
  o.start_at_ms = wall_ms() - 60000;
  ASSERT_OK(dt_client_schedule(e.c, "Orch", &o, NULL));
  ASSERT_STATUS_IS(e.c, "past", DT_STATUS_PENDING);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_schedule_duplicate)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "dup-1", "Orch", NULL));
  char sentinel[] = "untouched";
  char *out = sentinel;
  dt_start_options o = {.instance_id = "dup-1"};
  ASSERT_RC(dt_client_schedule(e.c, "Orch", &o, &out), DT_ERR_EXISTS);
  ASSERT(out == sentinel);

  /* A finished instance is kept when the policy is empty ("replace nothing") ... */
  ASSERT_OK(dt_client_terminate(e.c, "dup-1", NULL, false));
  dt_reuse_policy never = {NULL, 0};
  o.reuse = &never;
  ASSERT_RC(dt_client_schedule(e.c, "Orch", &o, &out), DT_ERR_EXISTS);
  ASSERT(out == sentinel);
  ASSERT_STATUS_IS(e.c, "dup-1", DT_STATUS_TERMINATED);
  /* ... and replaced when there is no policy at all. */
  o.reuse = NULL;
  ASSERT_OK(dt_client_schedule(e.c, "Orch", &o, &out));
  ASSERT_STR_EQ(out, "dup-1");
  dt_free(out);
  ASSERT_STATUS_IS(e.c, "dup-1", DT_STATUS_PENDING);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_schedule_reuse_policy)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "ru-1", "Orch", "\"first\""));
  ASSERT_OK(dt_client_terminate(e.c, "ru-1", NULL, false));
  dt_instance *old = get(e.c, "ru-1", false);
  ASSERT_EQ(old->status, DT_STATUS_TERMINATED);

  /* A finished instance in the list is replaced: a new execution, PENDING, with the new input. */
  static const dt_status finished[] = {DT_STATUS_COMPLETED, DT_STATUS_FAILED, DT_STATUS_TERMINATED};
  dt_reuse_policy replace_finished = {finished, 3};
  dt_start_options o = {.instance_id = "ru-1", .input = "\"second\"", .reuse = &replace_finished};
  char *id = NULL;
  ASSERT_OK(dt_client_schedule(e.c, "Orch", &o, &id));
  ASSERT_STR_EQ(id, "ru-1");
  dt_free(id);
  dt_instance *in = get(e.c, "ru-1", true);
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_STR_EQ(in->input, "\"second\"");
  ASSERT(strcmp(in->execution_id, old->execution_id) != 0);
  dt_instance_free(old);
  old = in;

  /* A PENDING instance is not in that list. */
  ASSERT_RC(dt_client_schedule(e.c, "Orch", &o, NULL), DT_ERR_EXISTS);

  /* Listing PENDING replaces the live instance (terminated first). */
  static const dt_status live[] = {DT_STATUS_PENDING, DT_STATUS_RUNNING, DT_STATUS_TERMINATED};
  dt_reuse_policy replace_live = {live, 3};
  o.reuse = &replace_live;
  o.input = "\"third\"";
  ASSERT_OK(dt_client_schedule(e.c, "Orch", &o, NULL));
  in = get(e.c, "ru-1", true);
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_STR_EQ(in->input, "\"third\"");
  ASSERT(strcmp(in->execution_id, old->execution_id) != 0);
  dt_instance_free(in);
  dt_instance_free(old);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_schedule_server_limits)
{
  env e;
  static const char *const args[] = {"--max-payload", "1024", NULL};
  int rc = setup_args(&e, args);
  if (rc)
    return rc;
  char big[2048];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  dt_start_options o = {.instance_id = "big", .input = big};
  ASSERT_RC(dt_client_schedule(e.c, "Orch", &o, NULL), DT_ERR_TOO_BIG);
  /* The server rejects control characters in ids: its INVALID_ARGUMENT comes back as DT_ERR_INVALID_ARG. */
  o.instance_id = "bad\x01id";
  o.input = NULL;
  ASSERT_RC(dt_client_schedule(e.c, "Orch", &o, NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_raise_event(e.c, "no-such", "E", big), DT_ERR_TOO_BIG);
  teardown(&e);
  return 0;
}

/* ------------------------------------------------------------------ get, wait, terminate */

TEST_IMPL(sdk_client_get_unknown)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_instance sentinel;
  dt_instance *out = &sentinel;
  ASSERT_RC(dt_client_get(e.c, "no-such-instance", true, &out), DT_ERR_NOT_FOUND);
  ASSERT(out == &sentinel);
  ASSERT_RC(dt_client_get(e.c, "no-such-instance", false, &out), DT_ERR_NOT_FOUND);
  ASSERT(out == &sentinel);
  teardown(&e);
  return 0;
}

static void *last_status_thread(void *arg)
{
  const char *code = NULL;
  *(bool *)arg = dt_last_call_status(&code, NULL);
  return NULL;
}

/* dt_last_call_status: what the server said about the thread's last failed call, and nothing otherwise. */
TEST_IMPL(sdk_client_last_call_status)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  const char *code = "untouched", *msg = "untouched";
  dt_instance_page *p = NULL;
  ASSERT_OK(dt_client_query(e.c, &(dt_query){0}, &p));
  dt_instance_page_free(p);
  ASSERT(!dt_last_call_status(&code, &msg));
  ASSERT_STR_EQ(code, "untouched");

  /* A gRPC status with the server's message. */
  ASSERT_RC(dt_client_query(e.c, &(dt_query){.continuation = "bogus"}, &p), DT_ERR_INVALID_ARG);
  ASSERT(dt_last_call_status(&code, &msg));
  ASSERT_STR_EQ(code, "INVALID_ARGUMENT");
  ASSERT_STR_CONTAINS(msg, "continuationToken");
  ASSERT(dt_last_call_status(NULL, NULL));
  /* Per thread: another thread has made no failed call. */
  bool other = true;
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, NULL, last_status_thread, &other), 0);
  ASSERT_EQ(pthread_join(t, NULL), 0);
  ASSERT(!other);

  /* A client deadline is the gRPC library's DEADLINE_EXCEEDED. */
  dt_free(sched(e.c, "ls-1", "Orch", NULL));
  dt_instance *out = NULL;
  ASSERT_RC(dt_client_wait_completion(e.c, "ls-1", 100, false, &out), DT_ERR_TIMEOUT);
  ASSERT(dt_last_call_status(&code, NULL));
  ASSERT_STR_EQ(code, "DEADLINE_EXCEEDED");

  /* NOT_FOUND from GetInstance comes from its exists=false, not from a status: nothing to report, and the
   * failed call before it is forgotten. */
  ASSERT_RC(dt_client_get(e.c, "no-such", false, &out), DT_ERR_NOT_FOUND);
  ASSERT(!dt_last_call_status(NULL, NULL));
  /* Streams too (StreamInstanceHistory of an unknown instance). */
  dt_history *h = NULL;
  ASSERT_RC(dt_client_history(e.c, "no-such", &h), DT_ERR_NOT_FOUND);
  ASSERT(dt_last_call_status(&code, &msg));
  ASSERT_STR_EQ(code, "NOT_FOUND");
  ASSERT_OK(dt_client_terminate(e.c, "ls-1", NULL, false));
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_wait_timeout)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "w-1", "Orch", NULL));
  dt_instance sentinel;
  dt_instance *out = &sentinel;

  int64_t t0 = mono_ms();
  ASSERT_RC(dt_client_wait_start(e.c, "w-1", 300, false, &out), DT_ERR_TIMEOUT);
  int64_t dt = mono_ms() - t0;
  ASSERT_GE(dt, 250);
  ASSERT_LT(dt, 5000);
  ASSERT(out == &sentinel);

  t0 = mono_ms();
  ASSERT_RC(dt_client_wait_completion(e.c, "w-1", 300, true, &out), DT_ERR_TIMEOUT);
  dt = mono_ms() - t0;
  ASSERT_GE(dt, 250);
  ASSERT_LT(dt, 5000);
  ASSERT(out == &sentinel);

  /* Unknown instances are NOT_FOUND at once, not after the timeout. */
  t0 = mono_ms();
  ASSERT_RC(dt_client_wait_completion(e.c, "no-such", 5000, false, &out), DT_ERR_NOT_FOUND);
  ASSERT_RC(dt_client_wait_start(e.c, "no-such", 5000, false, &out), DT_ERR_NOT_FOUND);
  ASSERT_LT(mono_ms() - t0, 2500);
  ASSERT(out == &sentinel);

  /* Finished instances satisfy both waits at once. */
  ASSERT_OK(dt_client_terminate(e.c, "w-1", "\"done\"", false));
  t0 = mono_ms();
  ASSERT_OK(dt_client_wait_start(e.c, "w-1", 5000, false, &out));
  ASSERT_EQ(out->status, DT_STATUS_TERMINATED);
  dt_instance_free(out);
  ASSERT_OK(dt_client_wait_completion(e.c, "w-1", 5000, true, &out));
  ASSERT_EQ(out->status, DT_STATUS_TERMINATED);
  ASSERT_STR_EQ(out->output, "\"done\"");
  dt_instance_free(out);
  ASSERT_LT(mono_ms() - t0, 2500);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_wait_server_cap)
{
  env e;
  static const char *const args[] = {"--wait-cap", "1", NULL};
  int rc = setup_args(&e, args);
  if (rc)
    return rc;
  dt_free(sched(e.c, "cap-1", "Orch", NULL));
  dt_instance *out = NULL;
  /* timeout_ms <= 0: no client deadline, so the server's cap (1 s here) ends the wait. */
  int64_t t0 = mono_ms();
  ASSERT_RC(dt_client_wait_start(e.c, "cap-1", 0, false, &out), DT_ERR_TIMEOUT);
  int64_t dt = mono_ms() - t0;
  ASSERT_GE(dt, 900);
  ASSERT_LT(dt, 10000);
  t0 = mono_ms();
  ASSERT_RC(dt_client_wait_completion(e.c, "cap-1", -1, false, &out), DT_ERR_TIMEOUT);
  dt = mono_ms() - t0;
  ASSERT_GE(dt, 900);
  ASSERT_LT(dt, 10000);
  ASSERT(out == NULL);
  teardown(&e);
  return 0;
}

struct waiter {
  dt_client *c;
  const char *id;
  int rc;
  dt_instance *out;
};

static void *wait_thread(void *arg)
{
  struct waiter *w = arg;
  w->rc = dt_client_wait_completion(w->c, w->id, 20000, true, &w->out);
  return NULL;
}

TEST_IMPL(sdk_client_terminate_pending)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "t-1", "Orch", "\"in\""));
  struct waiter w = {e.c, "t-1", -100, NULL};
  pthread_t th;
  ASSERT_OK(pthread_create(&th, NULL, wait_thread, &w));
  sleep_ms(300);
  int64_t t0 = mono_ms();
  ASSERT_OK(dt_client_terminate(e.c, "t-1", "\"bye\"", false));
  ASSERT_OK(pthread_join(th, NULL));
  ASSERT_LT(mono_ms() - t0, 5000); /* woken by the terminate, not by its 20 s timeout */
  ASSERT_RC(w.rc, DT_OK);
  ASSERT_EQ(w.out->status, DT_STATUS_TERMINATED);
  ASSERT_STR_EQ(w.out->output, "\"bye\"");
  ASSERT_STR_EQ(w.out->input, "\"in\"");
  ASSERT_GT(w.out->completed_ms, 0);
  ASSERT_GE(w.out->completed_ms, w.out->created_ms);
  ASSERT(w.out->failure == NULL);
  dt_instance_free(w.out);

  /* Terminating a finished instance is a no-op; an unknown one is NOT_FOUND. */
  ASSERT_OK(dt_client_terminate(e.c, "t-1", "\"again\"", false));
  dt_instance *in = get(e.c, "t-1", true);
  ASSERT_STR_EQ(in->output, "\"bye\"");
  dt_instance_free(in);
  ASSERT_RC(dt_client_terminate(e.c, "no-such", NULL, false), DT_ERR_NOT_FOUND);

  /* Recursive, without output. */
  dt_free(sched(e.c, "t-2", "Orch", NULL));
  ASSERT_OK(dt_client_terminate(e.c, "t-2", NULL, true));
  in = get(e.c, "t-2", true);
  ASSERT_EQ(in->status, DT_STATUS_TERMINATED);
  ASSERT(in->output == NULL);
  dt_instance_free(in);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_raise_suspend_resume)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "ev-1", "Orch", NULL));
  ASSERT_OK(dt_client_raise_event(e.c, "ev-1", "Approval", "{\"ok\":true}"));
  ASSERT_OK(dt_client_raise_event(e.c, "ev-1", "NoData", NULL));
  ASSERT_OK(dt_client_suspend(e.c, "ev-1", "maintenance"));
  ASSERT_OK(dt_client_suspend(e.c, "ev-1", NULL));
  ASSERT_OK(dt_client_resume(e.c, "ev-1", "done"));
  ASSERT_OK(dt_client_resume(e.c, "ev-1", NULL));
  /* No worker runs, so nothing changes status. */
  ASSERT_STATUS_IS(e.c, "ev-1", DT_STATUS_PENDING);

  ASSERT_RC(dt_client_raise_event(e.c, "no-such", "Approval", NULL), DT_ERR_NOT_FOUND);
  ASSERT_RC(dt_client_suspend(e.c, "no-such", NULL), DT_ERR_NOT_FOUND);
  ASSERT_RC(dt_client_resume(e.c, "no-such", "r"), DT_ERR_NOT_FOUND);

  /* A finished instance drops events and ignores suspend/resume. */
  ASSERT_OK(dt_client_terminate(e.c, "ev-1", NULL, false));
  ASSERT_OK(dt_client_raise_event(e.c, "ev-1", "Late", "1"));
  ASSERT_OK(dt_client_suspend(e.c, "ev-1", NULL));
  ASSERT_OK(dt_client_resume(e.c, "ev-1", NULL));
  ASSERT_STATUS_IS(e.c, "ev-1", DT_STATUS_TERMINATED);
  teardown(&e);
  return 0;
}

/* ------------------------------------------------------------------ query */

#define NQ 23

/* Pages through |q| (its continuation is overwritten); marks every "qp-NN" id in seen[] (each at most once),
 * asserts page sizes and that tokens never repeat. Returns the number of instances. */
static size_t query_all(dt_client *c, dt_query *q, int max_page, int seen[NQ], dt_status *only)
{
  char *tokens[64];
  size_t ntok = 0, total = 0;
  char *cont = NULL;
  for (int pages = 0;; pages++) {
    ASSERT_LT(pages, 60);
    q->continuation = cont;
    dt_instance_page *p = NULL;
    ASSERT_OK(dt_client_query(c, q, &p));
    ASSERT(p != NULL);
    ASSERT_LE(p->n, (size_t)max_page);
    for (size_t i = 0; i < p->n; i++) {
      const dt_instance *in = p->instances[i];
      ASSERT(in->instance_id != NULL && in->name != NULL);
      ASSERT_GT(in->created_ms, 0);
      if (only)
        ASSERT_EQ(in->status, *only);
      int k = -1;
      if (sscanf(in->instance_id, "qp-%d", &k) == 1) {
        ASSERT(k >= 0 && k < NQ);
        if (seen[k])
          TEST_FAIL("instance %s returned twice", in->instance_id);
        seen[k] = 1;
      }
      total++;
    }
    if (!p->continuation) {
      dt_instance_page_free(p);
      break;
    }
    ASSERT(p->continuation[0] != '\0');
    for (size_t i = 0; i < ntok; i++)
      if (strcmp(tokens[i], p->continuation) == 0)
        TEST_FAIL("continuation token %s repeated", p->continuation);
    cont = strdup(p->continuation);
    ASSERT(cont != NULL);
    tokens[ntok++] = cont;
    dt_instance_page_free(p);
  }
  for (size_t i = 0; i < ntok; i++)
    free(tokens[i]);
  q->continuation = NULL;
  return total;
}

TEST_IMPL(sdk_client_query_paging)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  char id[32];
  for (int i = 0; i < NQ; i++) {
    snprintf(id, sizeof id, "qp-%02d", i);
    dt_free(sched(e.c, id, "Orch", NULL));
    if (i % 3 == 0)
      ASSERT_OK(dt_client_terminate(e.c, id, NULL, false));
  }
  for (int i = 0; i < 4; i++) {
    snprintf(id, sizeof id, "zz-%d", i);
    dt_free(sched(e.c, id, "Other", NULL));
  }

  /* Prefix, small pages: every instance exactly once, nothing outside the prefix. */
  int seen[NQ] = {0};
  dt_query q = {.instance_id_prefix = "qp-", .page_size = 5};
  ASSERT_EQ(query_all(e.c, &q, 5, seen, NULL), NQ);
  for (int i = 0; i < NQ; i++)
    ASSERT(seen[i]);

  /* Statuses + prefix. */
  memset(seen, 0, sizeof seen);
  dt_status term = DT_STATUS_TERMINATED;
  q = (dt_query){.instance_id_prefix = "qp-", .page_size = 3, .statuses = &term, .n_statuses = 1};
  ASSERT_EQ(query_all(e.c, &q, 3, seen, &term), (NQ + 2) / 3);
  for (int i = 0; i < NQ; i++)
    ASSERT_EQ(seen[i], i % 3 == 0);

  /* No prefix, several statuses, default page size: one page of every live instance. */
  memset(seen, 0, sizeof seen);
  dt_status live[] = {DT_STATUS_PENDING, DT_STATUS_SUSPENDED};
  q = (dt_query){.statuses = live, .n_statuses = 2};
  dt_instance_page *p = NULL;
  ASSERT_OK(dt_client_query(e.c, &q, &p));
  ASSERT_EQ(p->n, NQ - (NQ + 2) / 3 + 4);
  ASSERT(p->continuation == NULL);
  for (size_t i = 0; i < p->n; i++)
    ASSERT_EQ(p->instances[i]->status, DT_STATUS_PENDING);
  dt_instance_page_free(p);

  /* Everything, page by page, without a prefix. */
  memset(seen, 0, sizeof seen);
  q = (dt_query){.page_size = 4};
  ASSERT_EQ(query_all(e.c, &q, 4, seen, NULL), NQ + 4);
  for (int i = 0; i < NQ; i++)
    ASSERT(seen[i]);

  /* A token this server never issued. */
  q = (dt_query){.continuation = "not-a-token"};
  p = NULL;
  ASSERT_RC(dt_client_query(e.c, &q, &p), DT_ERR_INVALID_ARG);
  ASSERT(p == NULL);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_query_filters)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "f-a", "Orch", "\"a\""));
  sleep_ms(30);
  int64_t t1 = wall_ms();
  dt_free(sched(e.c, "f-b", "Orch", "\"b\""));
  dt_free(sched(e.c, "f-c", "Orch", "\"c\""));
  sleep_ms(30);
  int64_t t2 = wall_ms();
  sleep_ms(5);
  dt_free(sched(e.c, "f-d", "Orch", "\"d\""));

  /* [t1, t2) holds b and c. */
  dt_query q = {.created_from_ms = t1, .created_to_ms = t2, .payloads = true};
  dt_instance_page *p = NULL;
  ASSERT_OK(dt_client_query(e.c, &q, &p));
  ASSERT_EQ(p->n, 2);
  ASSERT(p->continuation == NULL);
  int got_b = 0, got_c = 0;
  for (size_t i = 0; i < p->n; i++) {
    const dt_instance *in = p->instances[i];
    ASSERT(in->created_ms >= t1 && in->created_ms < t2);
    if (strcmp(in->instance_id, "f-b") == 0) {
      got_b++;
      ASSERT_STR_EQ(in->input, "\"b\"");
    } else if (strcmp(in->instance_id, "f-c") == 0) {
      got_c++;
      ASSERT_STR_EQ(in->input, "\"c\"");
    }
  }
  ASSERT(got_b == 1 && got_c == 1);
  dt_instance_page_free(p);

  /* Without payloads there are none; from t2 on there is only d. */
  q = (dt_query){.created_from_ms = t2};
  ASSERT_OK(dt_client_query(e.c, &q, &p));
  ASSERT_EQ(p->n, 1);
  ASSERT_STR_EQ(p->instances[0]->instance_id, "f-d");
  ASSERT_STR_EQ(p->instances[0]->name, "Orch");
  ASSERT(p->instances[0]->input == NULL);
  dt_instance_page_free(p);

  /* Nothing matches: an empty last page. */
  q = (dt_query){.created_from_ms = wall_ms() + 3600 * 1000};
  ASSERT_OK(dt_client_query(e.c, &q, &p));
  ASSERT_EQ(p->n, 0);
  ASSERT(p->continuation == NULL);
  dt_instance_page_free(p);
  q = (dt_query){.instance_id_prefix = "nothing-"};
  ASSERT_OK(dt_client_query(e.c, &q, &p));
  ASSERT_EQ(p->n, 0);
  ASSERT(p->continuation == NULL);
  dt_instance_page_free(p);
  teardown(&e);
  return 0;
}

/* ------------------------------------------------------------------ purge */

TEST_IMPL(sdk_client_purge_single)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "p-done", "Orch", "1"));
  dt_free(sched(e.c, "p-live", "Orch", NULL));
  dt_free(sched(e.c, "p-rec", "Orch", NULL));
  ASSERT_OK(dt_client_terminate(e.c, "p-done", NULL, false));
  ASSERT_OK(dt_client_terminate(e.c, "p-rec", NULL, false));

  int deleted = -1;
  ASSERT_OK(dt_client_purge(e.c, "p-done", false, &deleted));
  ASSERT_EQ(deleted, 1);
  ASSERT_EQ(status_of(e.c, "p-done"), -1);
  deleted = -1;
  ASSERT_OK(dt_client_purge(e.c, "p-done", false, &deleted)); /* already gone */
  ASSERT_EQ(deleted, 0);

  deleted = -1;
  ASSERT_OK(dt_client_purge(e.c, "p-live", false, &deleted)); /* still running */
  ASSERT_EQ(deleted, 0);
  ASSERT_STATUS_IS(e.c, "p-live", DT_STATUS_PENDING);

  deleted = -1;
  ASSERT_OK(dt_client_purge(e.c, "no-such", false, &deleted));
  ASSERT_EQ(deleted, 0);

  ASSERT_OK(dt_client_purge(e.c, "p-rec", true, NULL));
  ASSERT_EQ(status_of(e.c, "p-rec"), -1);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_purge_filter)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  char id[32];
  for (int i = 0; i < 6; i++) {
    snprintf(id, sizeof id, "pf-%d", i);
    dt_free(sched(e.c, id, "Orch", NULL));
    if (i < 3)
      ASSERT_OK(dt_client_terminate(e.c, id, NULL, false));
  }
  int deleted = -1;
  bool complete = false;
  dt_status completed = DT_STATUS_COMPLETED, terminated = DT_STATUS_TERMINATED;
  dt_purge_filter f = {.statuses = &completed, .n_statuses = 1};
  ASSERT_OK(dt_client_purge_filter(e.c, &f, &deleted, &complete));
  ASSERT_EQ(deleted, 0);
  ASSERT(complete);

  f = (dt_purge_filter){.statuses = &terminated, .n_statuses = 1};
  complete = false;
  ASSERT_OK(dt_client_purge_filter(e.c, &f, &deleted, &complete));
  ASSERT_EQ(deleted, 3);
  ASSERT(complete);
  for (int i = 0; i < 6; i++) {
    snprintf(id, sizeof id, "pf-%d", i);
    if (i < 3)
      ASSERT_EQ(status_of(e.c, id), -1);
    else
      ASSERT_STATUS_IS(e.c, id, DT_STATUS_PENDING);
  }

  /* Live instances are never purged, whatever the filter says. */
  dt_status pending = DT_STATUS_PENDING;
  f = (dt_purge_filter){.statuses = &pending, .n_statuses = 1};
  ASSERT_OK(dt_client_purge_filter(e.c, &f, &deleted, NULL));
  ASSERT_EQ(deleted, 0);
  ASSERT_STATUS_IS(e.c, "pf-3", DT_STATUS_PENDING);

  /* A created range that matches nothing, then all finished ones (no statuses) with NULL outs. */
  ASSERT_OK(dt_client_terminate(e.c, "pf-3", NULL, false));
  ASSERT_OK(dt_client_terminate(e.c, "pf-4", NULL, false));
  f = (dt_purge_filter){.created_from_ms = wall_ms() + 3600 * 1000};
  ASSERT_OK(dt_client_purge_filter(e.c, &f, &deleted, &complete));
  ASSERT_EQ(deleted, 0);
  f = (dt_purge_filter){.created_to_ms = wall_ms() + 3600 * 1000};
  ASSERT_OK(dt_client_purge_filter(e.c, &f, NULL, NULL));
  ASSERT_EQ(status_of(e.c, "pf-3"), -1);
  ASSERT_EQ(status_of(e.c, "pf-4"), -1);
  ASSERT_STATUS_IS(e.c, "pf-5", DT_STATUS_PENDING);
  teardown(&e);
  return 0;
}

/* ------------------------------------------------------------------ restart, rewind, history */

TEST_IMPL(sdk_client_restart)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_start_options o = {.instance_id = "rs-1", .input = "\"in\"", .version = "v2"};
  ASSERT_OK(dt_client_schedule(e.c, "Orch", &o, NULL));
  ASSERT_OK(dt_client_terminate(e.c, "rs-1", "\"out\"", false));
  dt_instance *old = get(e.c, "rs-1", false);

  /* In place: same id, a new PENDING execution with the original name, input and version. */
  char *nid = NULL;
  ASSERT_OK(dt_client_restart(e.c, "rs-1", false, &nid));
  ASSERT_STR_EQ(nid, "rs-1");
  dt_free(nid);
  dt_instance *in = get(e.c, "rs-1", true);
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_STR_EQ(in->name, "Orch");
  ASSERT_STR_EQ(in->input, "\"in\"");
  ASSERT_STR_EQ(in->version, "v2");
  ASSERT(in->output == NULL);
  ASSERT(strcmp(in->execution_id, old->execution_id) != 0);
  dt_instance_free(in);
  dt_instance_free(old);

  /* In place is refused while it runs. */
  char sentinel[] = "x";
  nid = sentinel;
  ASSERT_RC(dt_client_restart(e.c, "rs-1", false, &nid), DT_ERR_STATE);
  ASSERT(nid == sentinel);

  /* Under a new id: a new PENDING instance; the old one is left as it was. */
  ASSERT_OK(dt_client_terminate(e.c, "rs-1", NULL, false));
  nid = NULL;
  ASSERT_OK(dt_client_restart(e.c, "rs-1", true, &nid));
  ASSERT(nid != NULL && strcmp(nid, "rs-1") != 0);
  in = get(e.c, nid, true);
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_STR_EQ(in->name, "Orch");
  ASSERT_STR_EQ(in->input, "\"in\"");
  ASSERT_STR_EQ(in->version, "v2");
  dt_instance_free(in);
  dt_free(nid);
  ASSERT_STATUS_IS(e.c, "rs-1", DT_STATUS_TERMINATED);

  /* NULL out-parameter; unknown instance. */
  ASSERT_OK(dt_client_restart(e.c, "rs-1", false, NULL));
  ASSERT_STATUS_IS(e.c, "rs-1", DT_STATUS_PENDING);
  nid = sentinel;
  ASSERT_RC(dt_client_restart(e.c, "no-such", false, &nid), DT_ERR_NOT_FOUND);
  ASSERT_RC(dt_client_restart(e.c, "no-such", true, &nid), DT_ERR_NOT_FOUND);
  ASSERT(nid == sentinel);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_rewind_not_failed)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  dt_free(sched(e.c, "rw-1", "Orch", NULL));
  ASSERT_RC(dt_client_rewind(e.c, "rw-1", "retry"), DT_ERR_STATE);
  ASSERT_OK(dt_client_terminate(e.c, "rw-1", NULL, false));
  ASSERT_RC(dt_client_rewind(e.c, "rw-1", NULL), DT_ERR_STATE);
  ASSERT_STATUS_IS(e.c, "rw-1", DT_STATUS_TERMINATED);
  ASSERT_RC(dt_client_rewind(e.c, "no-such", "retry"), DT_ERR_NOT_FOUND);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_history_terminated_pending)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  int64_t before = wall_ms();
  dt_free(sched(e.c, "h-1", "HistOrch", "\"x\""));
  ASSERT_OK(dt_client_terminate(e.c, "h-1", "\"bye\"", false));
  ASSERT_STATUS_IS(e.c, "h-1", DT_STATUS_TERMINATED);

  dt_history *h = NULL;
  ASSERT_OK(dt_client_history(e.c, "h-1", &h));
  ASSERT(h != NULL);
  ASSERT_EQ(h->n, 3);
  static const char *const want[] = {"ExecutionStarted", "ExecutionTerminated", "ExecutionCompleted"};
  for (size_t i = 0; i < 3; i++) {
    const dt_event *ev = &h->events[i];
    ASSERT_STR_EQ(ev->type, want[i]);
    ASSERT_EQ(ev->task_id, -1);
    ASSERT_GE(ev->timestamp_ms, before - 1000);
    ASSERT_LE(ev->timestamp_ms, wall_ms() + 1000);
    ASSERT(ev->failure == NULL);
    ASSERT(ev->instance_id == NULL);
    ASSERT_EQ(ev->fire_at_ms, 0);
  }
  ASSERT_STR_EQ(h->events[0].name, "HistOrch");
  ASSERT_STR_EQ(h->events[0].payload, "\"x\"");
  ASSERT_STR_EQ(h->events[1].payload, "\"bye\"");
  ASSERT(h->events[1].name == NULL);
  ASSERT_EQ(h->events[2].status, DT_STATUS_TERMINATED);
  ASSERT_STR_EQ(h->events[2].payload, "\"bye\"");
  dt_history_free(h);

  /* A PENDING instance has no committed history yet. */
  dt_free(sched(e.c, "h-2", "HistOrch", NULL));
  h = NULL;
  ASSERT_OK(dt_client_history(e.c, "h-2", &h));
  ASSERT_EQ(h->n, 0);
  dt_history_free(h);

  dt_history sentinel;
  h = &sentinel;
  ASSERT_RC(dt_client_history(e.c, "no-such", &h), DT_ERR_NOT_FOUND);
  ASSERT(h == &sentinel);
  teardown(&e);
  return 0;
}

/* ------------------------------------------------------------------ threads, arguments, transport */

#define NTHREADS 8
#define PER_THREAD 20

struct worker_arg {
  dt_client *c;
  int k;
  int failures;
};

static void *client_thread(void *p)
{
  struct worker_arg *a = p;
  char id[64];
  for (int i = 0; i < PER_THREAD; i++) {
    snprintf(id, sizeof id, "mt-%d-%d", a->k, i);
    dt_start_options o = {.instance_id = id, .input = id};
    dt_instance *in = NULL;
    if (dt_client_schedule(a->c, "Orch", &o, NULL) != DT_OK || dt_client_get(a->c, id, true, &in) != DT_OK)
      a->failures++;
    else if (strcmp(in->input, id) != 0 || dt_client_terminate(a->c, id, NULL, false) != DT_OK)
      a->failures++;
    dt_instance_free(in);
  }
  return NULL;
}

TEST_IMPL(sdk_client_concurrent_use)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  pthread_t th[NTHREADS];
  struct worker_arg args[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    args[i] = (struct worker_arg){e.c, i, 0};
    ASSERT_OK(pthread_create(&th[i], NULL, client_thread, &args[i]));
  }
  for (int i = 0; i < NTHREADS; i++) {
    ASSERT_OK(pthread_join(th[i], NULL));
    ASSERT_EQ(args[i].failures, 0);
  }
  dt_status term = DT_STATUS_TERMINATED;
  dt_query q = {.instance_id_prefix = "mt-", .statuses = &term, .n_statuses = 1, .page_size = 1000};
  dt_instance_page *p = NULL;
  ASSERT_OK(dt_client_query(e.c, &q, &p));
  ASSERT_EQ(p->n, NTHREADS * PER_THREAD);
  dt_instance_page_free(p);
  teardown(&e);
  return 0;
}

TEST_IMPL(sdk_client_bad_args)
{
  /* The client points at a port that refuses connections: a call that reached the wire would give
   * DT_ERR_UNAVAILABLE, so DT_ERR_INVALID_ARG proves the SDK rejected the arguments itself. */
  int port;
  int fd = dead_port(&port);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  dt_set_log_fn(test_log, NULL);

  dt_client *c = NULL, *sentinel = (dt_client *)&port;
  dt_client *out = sentinel;
  ASSERT_RC(dt_client_open("", NULL, &out), DT_ERR_INVALID_ARG);
  ASSERT(out == sentinel);
  /* No target: TASKHUBD_ADDRESS (what taskhubctl reads), else taskhubd's default address. */
  setenv("TASKHUBD_ADDRESS", target, 1);
  ASSERT_STR_EQ(dt_default_target(), target);
  dt_client *d = NULL;
  ASSERT_OK(dt_client_open(NULL, NULL, &d));
  dt_client_close(d);
  unsetenv("TASKHUBD_ADDRESS");
  ASSERT_STR_EQ(dt_default_target(), "127.0.0.1:4001");
  ASSERT_RC(dt_client_open(target, NULL, NULL), DT_ERR_INVALID_ARG);
  ASSERT_OK(dt_client_open(target, NULL, &c));

  char *id = NULL;
  dt_instance *in = NULL;
  dt_instance_page *pg = NULL;
  dt_history *h = NULL;
  ASSERT_RC(dt_client_schedule(NULL, "Orch", NULL, &id), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_schedule(c, NULL, NULL, &id), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_schedule(c, "", NULL, &id), DT_ERR_INVALID_ARG);
  dt_start_options o = {.start_at_ms = -5};
  ASSERT_RC(dt_client_schedule(c, "Orch", &o, &id), DT_ERR_INVALID_ARG);
  o = (dt_start_options){.n_tags = 1};
  ASSERT_RC(dt_client_schedule(c, "Orch", &o, &id), DT_ERR_INVALID_ARG);
  dt_tag badtag = {NULL, "v"};
  o = (dt_start_options){.tags = &badtag, .n_tags = 1};
  ASSERT_RC(dt_client_schedule(c, "Orch", &o, &id), DT_ERR_INVALID_ARG);
  dt_status bogus = (dt_status)42;
  dt_reuse_policy bad_reuse = {&bogus, 1};
  o = (dt_start_options){.reuse = &bad_reuse};
  ASSERT_RC(dt_client_schedule(c, "Orch", &o, &id), DT_ERR_INVALID_ARG);
  dt_reuse_policy null_reuse = {NULL, 2};
  o.reuse = &null_reuse;
  ASSERT_RC(dt_client_schedule(c, "Orch", &o, &id), DT_ERR_INVALID_ARG);
  ASSERT(id == NULL);

  ASSERT_RC(dt_client_get(NULL, "x", false, &in), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_get(c, NULL, false, &in), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_get(c, "", false, &in), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_get(c, "x", false, NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_wait_start(NULL, "x", 10, false, &in), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_wait_start(c, NULL, 10, false, &in), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_wait_start(c, "x", 10, false, NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_wait_completion(NULL, "x", 10, false, &in), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_wait_completion(c, NULL, 10, false, &in), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_wait_completion(c, "x", 10, false, NULL), DT_ERR_INVALID_ARG);
  ASSERT(in == NULL);

  ASSERT_RC(dt_client_raise_event(NULL, "x", "E", NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_raise_event(c, NULL, "E", NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_raise_event(c, "x", NULL, NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_raise_event(c, "x", "", NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_terminate(NULL, "x", NULL, false), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_terminate(c, NULL, NULL, false), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_suspend(NULL, "x", NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_suspend(c, NULL, NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_resume(NULL, "x", NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_resume(c, "", NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_rewind(NULL, "x", NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_rewind(c, NULL, NULL), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_restart(NULL, "x", false, &id), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_restart(c, NULL, true, &id), DT_ERR_INVALID_ARG);
  ASSERT(id == NULL);

  dt_query q = {0};
  ASSERT_RC(dt_client_query(NULL, &q, &pg), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_query(c, NULL, &pg), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_query(c, &q, NULL), DT_ERR_INVALID_ARG);
  q.page_size = -1;
  ASSERT_RC(dt_client_query(c, &q, &pg), DT_ERR_INVALID_ARG);
  q = (dt_query){.statuses = &bogus, .n_statuses = 1};
  ASSERT_RC(dt_client_query(c, &q, &pg), DT_ERR_INVALID_ARG);
  q = (dt_query){.statuses = NULL, .n_statuses = 3};
  ASSERT_RC(dt_client_query(c, &q, &pg), DT_ERR_INVALID_ARG);
  ASSERT(pg == NULL);

  int deleted = -7;
  bool complete = false;
  ASSERT_RC(dt_client_purge(NULL, "x", false, &deleted), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_purge(c, NULL, false, &deleted), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_purge(c, "", false, &deleted), DT_ERR_INVALID_ARG);
  dt_purge_filter f = {0};
  ASSERT_RC(dt_client_purge_filter(NULL, &f, &deleted, &complete), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_purge_filter(c, NULL, &deleted, &complete), DT_ERR_INVALID_ARG);
  f = (dt_purge_filter){.statuses = &bogus, .n_statuses = 1};
  ASSERT_RC(dt_client_purge_filter(c, &f, &deleted, &complete), DT_ERR_INVALID_ARG);
  ASSERT_EQ(deleted, -7);
  ASSERT(!complete);

  ASSERT_RC(dt_client_history(NULL, "x", &h), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_history(c, NULL, &h), DT_ERR_INVALID_ARG);
  ASSERT_RC(dt_client_history(c, "x", NULL), DT_ERR_INVALID_ARG);
  ASSERT(h == NULL);

  /* Destructors take NULL. */
  dt_client_close(NULL);
  dt_instance_free(NULL);
  dt_instance_page_free(NULL);
  dt_history_free(NULL);
  dt_free(NULL);

  /* And the same client does reach the wire with good arguments. */
  int r = dt_client_get(c, "x", false, &in);
  ASSERT(r == DT_ERR_UNAVAILABLE || r == DT_ERR_TIMEOUT);
  dt_client_close(c);
  close(fd);
  return 0;
}

TEST_IMPL(sdk_client_unavailable)
{
  int port;
  int fd = dead_port(&port);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  dt_set_log_fn(test_log, NULL);
  dt_conn_options o = {.call_timeout_ms = 2000};
  dt_client *c = NULL;
  ASSERT_OK(dt_client_open(target, &o, &c));

  char *id = NULL;
  dt_instance *in = NULL;
  dt_instance_page *pg = NULL;
  dt_history *h = NULL;
  dt_query q = {0};
  int r[8];
  int64_t took[8];
  for (int i = 0; i < 8; i++) {
    int64_t t0 = mono_ms();
    switch (i) {
    case 0: r[i] = dt_client_get(c, "x", true, &in); break;
    case 1: r[i] = dt_client_schedule(c, "Orch", NULL, &id); break;
    case 2: r[i] = dt_client_terminate(c, "x", NULL, false); break;
    case 3: r[i] = dt_client_query(c, &q, &pg); break;
    case 4: r[i] = dt_client_history(c, "x", &h); break;
    case 5: r[i] = dt_client_purge(c, "x", false, NULL); break;
    case 6: r[i] = dt_client_wait_completion(c, "x", 1000, false, &in); break;
    default: r[i] = dt_client_raise_event(c, "x", "E", NULL); break;
    }
    took[i] = mono_ms() - t0;
  }
  for (int i = 0; i < 8; i++) {
    if (r[i] != DT_ERR_UNAVAILABLE && r[i] != DT_ERR_TIMEOUT)
      TEST_FAIL("call %d returned %d (%s)", i, r[i], dt_strerror(r[i]));
    if (took[i] > 2000 + 1500)
      TEST_FAIL("call %d took %lld ms, past the 2000 ms call timeout", i, (long long)took[i]);
  }
  ASSERT(id == NULL && in == NULL && pg == NULL && h == NULL);
  dt_client_close(c);
  close(fd);
  return 0;
}

/* ------------------------------------------------------------------ a hand-played worker */

#define SVC "/TaskHubSidecarService/"
#define RW_WAIT_MS 30000

/* One GetWorkItems stream over the gRPC core API, read one message at a time. */
struct rawworker {
  grpc_channel *ch;
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_metadata_array imd;
};

static bool rw_batch(struct rawworker *w, const grpc_op *ops, size_t n)
{
  ASSERT_EQ(grpc_call_start_batch(w->call, ops, n, w, NULL), GRPC_CALL_OK);
  gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(RW_WAIT_MS, GPR_TIMESPAN));
  grpc_event ev = grpc_completion_queue_next(w->cq, dl, NULL);
  if (ev.type != GRPC_OP_COMPLETE)
    TEST_FAIL("no work item within %d ms", RW_WAIT_MS);
  return ev.success != 0;
}

static void rw_open(struct rawworker *w, int port)
{
  memset(w, 0, sizeof *w);
  grpc_init();
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  w->ch = grpc_channel_create(target, creds, NULL);
  grpc_channel_credentials_release(creds);
  w->cq = grpc_completion_queue_create_for_next(NULL);
  w->call = grpc_channel_create_call(w->ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                     grpc_slice_from_static_string(SVC "GetWorkItems"), NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  GetWorkItemsRequest req = GET_WORK_ITEMS_REQUEST__INIT;
  size_t len = get_work_items_request__get_packed_size(&req);
  grpc_slice sl = grpc_slice_malloc(len ? len : 1);
  get_work_items_request__pack(&req, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, len ? 1 : 0);
  grpc_slice_unref(sl);
  grpc_metadata_array_init(&w->imd);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &w->imd;
  ASSERT(rw_batch(w, ops, 4));
  grpc_byte_buffer_destroy(bb);
}

/* The next work item other than a health ping. Free with work_item__free_unpacked(wi, NULL). */
static WorkItem *rw_next(struct rawworker *w)
{
  for (;;) {
    grpc_byte_buffer *in = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &in;
    ASSERT(rw_batch(w, &op, 1));
    ASSERT(in != NULL);
    grpc_byte_buffer_reader r;
    ASSERT(grpc_byte_buffer_reader_init(&r, in));
    grpc_slice all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    WorkItem *wi = work_item__unpack(NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    grpc_byte_buffer_destroy(in);
    ASSERT(wi != NULL);
    if (wi->request_case != WORK_ITEM__REQUEST_HEALTH_PING)
      return wi;
    work_item__free_unpacked(wi, NULL);
  }
}

/* The next orchestrator work item for |iid| (others are left unanswered; closing the stream gives them back). */
static WorkItem *rw_next_orch(struct rawworker *w, const char *iid)
{
  for (;;) {
    WorkItem *wi = rw_next(w);
    if (wi->request_case == WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST &&
        strcmp(wi->orchestratorrequest->instanceid, iid) == 0)
      return wi;
    work_item__free_unpacked(wi, NULL);
  }
}

static WorkItem *rw_next_activity(struct rawworker *w, const char *iid)
{
  for (;;) {
    WorkItem *wi = rw_next(w);
    if (wi->request_case == WORK_ITEM__REQUEST_ACTIVITY_REQUEST &&
        strcmp(wi->activityrequest->orchestrationinstance->instanceid, iid) == 0)
      return wi;
    work_item__free_unpacked(wi, NULL);
  }
}

static void rw_close(struct rawworker *w)
{
  grpc_call_cancel(w->call, NULL);
  grpc_metadata_array tmd;
  grpc_metadata_array_init(&tmd);
  grpc_status_code st;
  grpc_slice details;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &tmd;
  op.data.recv_status_on_client.status = &st;
  op.data.recv_status_on_client.status_details = &details;
  rw_batch(w, &op, 1);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&tmd);
  grpc_metadata_array_destroy(&w->imd);
  grpc_call_unref(w->call);
  grpc_completion_queue_shutdown(w->cq);
  while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(w->cq);
  grpc_channel_destroy(w->ch);
  grpc_shutdown();
}

static void complete_orch(th_client *tc, const WorkItem *wi, OrchestratorAction **actions, size_t n,
                          const char *custom_status)
{
  OrchestratorResponse resp = ORCHESTRATOR_RESPONSE__INIT;
  Google__Protobuf__StringValue cs = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  resp.instanceid = wi->orchestratorrequest->instanceid;
  resp.completiontoken = wi->completiontoken;
  resp.n_actions = n;
  resp.actions = actions;
  if (custom_status) {
    cs.value = (char *)custom_status;
    resp.customstatus = &cs;
  }
  char *details = NULL;
  grpc_status_code st = th_call_unary(tc, SVC "CompleteOrchestratorTask", &resp.base,
                                      &complete_task_response__descriptor, CALL_TIMEOUT_MS, NULL, &details);
  if (st != GRPC_STATUS_OK)
    TEST_FAIL("CompleteOrchestratorTask: %s (%s)", th_status_name(st), details ? details : "");
  free(details);
}

/* Index of the first event of |type| at or after |from|, or -1. */
static int find_event(const dt_history *h, size_t from, const char *type)
{
  for (size_t i = from; i < h->n; i++)
    if (strcmp(h->events[i].type, type) == 0)
      return (int)i;
  return -1;
}

static void dump_history(const dt_history *h)
{
  for (size_t i = 0; i < h->n; i++)
    fprintf(stderr, "  [%zu] %s id=%d task=%d name=%s payload=%s\n", i, h->events[i].type, h->events[i].event_id,
            h->events[i].task_id, h->events[i].name ? h->events[i].name : "-",
            h->events[i].payload ? h->events[i].payload : "-");
}

TEST_IMPL(sdk_client_worker_flow)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  th_client *tc = th_client_open(e.srv.port);
  dt_free(sched(e.c, "wf-1", "Rich", "\"in\""));
  struct rawworker w;
  rw_open(&w, e.srv.port);

  /* Episode 1: an activity, a timer, an event to another instance and a sub-orchestration. */
  WorkItem *wi = rw_next_orch(&w, "wf-1");
  int64_t fire_at = wall_ms() + 3600 * 1000;
  Google__Protobuf__StringValue a_in = GOOGLE__PROTOBUF__STRING_VALUE__INIT, ev_in = a_in, c_in = a_in;
  a_in.value = (char *)"\"a\"";
  ev_in.value = (char *)"\"p\"";
  c_in.value = (char *)"\"c\"";
  Google__Protobuf__Timestamp fire = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  fire.seconds = fire_at / 1000;
  fire.nanos = (int32_t)(fire_at % 1000) * 1000000;
  ScheduleTaskAction st = SCHEDULE_TASK_ACTION__INIT;
  st.name = (char *)"Act";
  st.input = &a_in;
  CreateTimerAction ct = CREATE_TIMER_ACTION__INIT;
  ct.fireat = &fire;
  OrchestrationInstance target = ORCHESTRATION_INSTANCE__INIT;
  target.instanceid = (char *)"wf-other";
  SendEventAction se = SEND_EVENT_ACTION__INIT;
  se.instance = &target;
  se.name = (char *)"Ping";
  se.data = &ev_in;
  CreateSubOrchestrationAction cs = CREATE_SUB_ORCHESTRATION_ACTION__INIT;
  cs.instanceid = (char *)"wf-1:child";
  cs.name = (char *)"Child";
  cs.input = &c_in;
  OrchestratorAction acts[4] = {ORCHESTRATOR_ACTION__INIT, ORCHESTRATOR_ACTION__INIT, ORCHESTRATOR_ACTION__INIT,
                                ORCHESTRATOR_ACTION__INIT};
  OrchestratorAction *pacts[4];
  for (int i = 0; i < 4; i++) {
    acts[i].id = i;
    pacts[i] = &acts[i];
  }
  acts[0].orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK;
  acts[0].scheduletask = &st;
  acts[1].orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER;
  acts[1].createtimer = &ct;
  acts[2].orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT;
  acts[2].sendevent = &se;
  acts[3].orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION;
  acts[3].createsuborchestration = &cs;
  complete_orch(tc, wi, pacts, 4, "\"cs\"");
  work_item__free_unpacked(wi, NULL);

  dt_instance *in = NULL;
  ASSERT_OK(dt_client_wait_start(e.c, "wf-1", 5000, true, &in));
  ASSERT_EQ(in->status, DT_STATUS_RUNNING);
  ASSERT_STR_EQ(in->custom_status, "\"cs\"");
  ASSERT_STR_EQ(in->input, "\"in\"");
  ASSERT(in->output == NULL && in->failure == NULL);
  dt_instance_free(in);
  in = get(e.c, "wf-1:child", true);
  ASSERT_STR_EQ(in->name, "Child");
  ASSERT_STR_EQ(in->parent_instance_id, "wf-1");
  ASSERT_STR_EQ(in->input, "\"c\"");
  dt_instance_free(in);

  dt_history *h = NULL;
  ASSERT_OK(dt_client_history(e.c, "wf-1", &h));
  dump_history(h);
  ASSERT_GE(h->n, 6);
  ASSERT_STR_EQ(h->events[0].type, "OrchestratorStarted");
  ASSERT_STR_EQ(h->events[1].type, "ExecutionStarted");
  ASSERT_STR_EQ(h->events[1].name, "Rich");
  ASSERT_STR_EQ(h->events[1].payload, "\"in\"");
  ASSERT_EQ(h->events[1].event_id, -1);
  int k = find_event(h, 2, "TaskScheduled");
  ASSERT_EQ(k, 2);
  ASSERT_EQ(h->events[k].event_id, 0);
  ASSERT_STR_EQ(h->events[k].name, "Act");
  ASSERT_STR_EQ(h->events[k].payload, "\"a\"");
  ASSERT_EQ(h->events[k].task_id, -1);
  k = find_event(h, 2, "TimerCreated");
  ASSERT_EQ(k, 3);
  ASSERT_EQ(h->events[k].event_id, 1);
  ASSERT_EQ(h->events[k].fire_at_ms, fire_at);
  k = find_event(h, 2, "EventSent");
  ASSERT_EQ(k, 4);
  ASSERT_EQ(h->events[k].event_id, 2);
  ASSERT_STR_EQ(h->events[k].name, "Ping");
  ASSERT_STR_EQ(h->events[k].instance_id, "wf-other");
  ASSERT_STR_EQ(h->events[k].payload, "\"p\"");
  k = find_event(h, 2, "SubOrchestrationInstanceCreated");
  ASSERT_EQ(k, 5);
  ASSERT_EQ(h->events[k].event_id, 3);
  ASSERT_STR_EQ(h->events[k].name, "Child");
  ASSERT_STR_EQ(h->events[k].instance_id, "wf-1:child");
  ASSERT_STR_EQ(h->events[k].payload, "\"c\"");
  ASSERT_EQ(find_event(h, 0, "ExecutionCompleted"), -1);
  dt_history_free(h);

  /* The activity completes... */
  wi = rw_next_activity(&w, "wf-1");
  ASSERT_STR_EQ(wi->activityrequest->name, "Act");
  ASSERT_EQ(wi->activityrequest->taskid, 0);
  ActivityResponse ar = ACTIVITY_RESPONSE__INIT;
  Google__Protobuf__StringValue res = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  res.value = (char *)"\"r\"";
  ar.instanceid = (char *)"wf-1";
  ar.taskid = 0;
  ar.result = &res;
  ar.completiontoken = wi->completiontoken;
  char *details = NULL;
  grpc_status_code gs = th_call_unary(tc, SVC "CompleteActivityTask", &ar.base, &complete_task_response__descriptor,
                                      CALL_TIMEOUT_MS, NULL, &details);
  if (gs != GRPC_STATUS_OK)
    TEST_FAIL("CompleteActivityTask: %s (%s)", th_status_name(gs), details ? details : "");
  free(details);
  work_item__free_unpacked(wi, NULL);

  /* ... and episode 2 fails the orchestration with a nested failure. */
  wi = rw_next_orch(&w, "wf-1");
  TaskFailureDetails inner = TASK_FAILURE_DETAILS__INIT, outer = TASK_FAILURE_DETAILS__INIT;
  Google__Protobuf__StringValue stack = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  stack.value = (char *)"at f()";
  inner.errortype = (char *)"Inner";
  inner.errormessage = (char *)"root cause";
  outer.errortype = (char *)"MyError";
  outer.errormessage = (char *)"boom";
  outer.stacktrace = &stack;
  outer.innerfailure = &inner;
  CompleteOrchestrationAction co = COMPLETE_ORCHESTRATION_ACTION__INIT;
  co.orchestrationstatus = ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED;
  co.failuredetails = &outer;
  OrchestratorAction fin = ORCHESTRATOR_ACTION__INIT, *pfin = &fin;
  fin.id = 4;
  fin.orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
  fin.completeorchestration = &co;
  complete_orch(tc, wi, &pfin, 1, NULL);
  work_item__free_unpacked(wi, NULL);

  ASSERT_OK(dt_client_wait_completion(e.c, "wf-1", 5000, true, &in));
  ASSERT_EQ(in->status, DT_STATUS_FAILED);
  ASSERT_GT(in->completed_ms, 0);
  ASSERT(in->failure != NULL);
  ASSERT_STR_EQ(in->failure->error_type, "MyError");
  ASSERT_STR_EQ(in->failure->message, "boom");
  ASSERT_STR_EQ(in->failure->stack_trace, "at f()");
  ASSERT(in->failure->inner != NULL);
  ASSERT_STR_EQ(in->failure->inner->error_type, "Inner");
  ASSERT_STR_EQ(in->failure->inner->message, "root cause");
  ASSERT(in->failure->inner->stack_trace == NULL);
  ASSERT(in->failure->inner->inner == NULL);
  dt_instance_free(in);

  /* FAILED instances come back from a query with their failure too. */
  dt_status failed = DT_STATUS_FAILED;
  dt_query q = {.statuses = &failed, .n_statuses = 1};
  dt_instance_page *p = NULL;
  ASSERT_OK(dt_client_query(e.c, &q, &p));
  ASSERT_EQ(p->n, 1);
  ASSERT_STR_EQ(p->instances[0]->instance_id, "wf-1");
  ASSERT(p->instances[0]->failure != NULL);
  ASSERT_STR_EQ(p->instances[0]->failure->message, "boom");
  dt_instance_page_free(p);

  h = NULL;
  ASSERT_OK(dt_client_history(e.c, "wf-1", &h));
  dump_history(h);
  k = find_event(h, 6, "TaskCompleted");
  ASSERT(k > 0);
  ASSERT_EQ(h->events[k].task_id, 0);
  ASSERT_STR_EQ(h->events[k].payload, "\"r\"");
  k = find_event(h, 0, "ExecutionCompleted");
  ASSERT(k > 0);
  ASSERT_EQ(h->events[k].status, DT_STATUS_FAILED);
  ASSERT(h->events[k].payload == NULL);
  ASSERT(h->events[k].failure != NULL);
  ASSERT_STR_EQ(h->events[k].failure->error_type, "MyError");
  ASSERT(h->events[k].failure->inner != NULL);
  ASSERT_STR_EQ(h->events[k].failure->inner->message, "root cause");
  ASSERT_GE(find_event(h, 6, "OrchestratorStarted"), 6);
  dt_history_free(h);

  /* A FAILED instance can be rewound: it runs again. */
  ASSERT_OK(dt_client_rewind(e.c, "wf-1", "try again"));
  ASSERT_STATUS_IS(e.c, "wf-1", DT_STATUS_RUNNING);
  in = get(e.c, "wf-1", true);
  ASSERT(in->failure == NULL);
  dt_instance_free(in);

  rw_close(&w);
  th_client_close(tc);
  teardown(&e);
  return 0;
}

#define BIG_N 1200

TEST_IMPL(sdk_client_history_chunks)
{
  env e;
  int rc = setup(&e);
  if (rc)
    return rc;
  th_client *tc = th_client_open(e.srv.port);
  dt_free(sched(e.c, "big", "Big", NULL));
  struct rawworker w;
  rw_open(&w, e.srv.port);
  WorkItem *wi = rw_next_orch(&w, "big");

  /* BIG_N activities: more events than one chunk of the server's stream may hold (500). */
  static ScheduleTaskAction st[BIG_N];
  static OrchestratorAction acts[BIG_N];
  static OrchestratorAction *pacts[BIG_N];
  static char names[BIG_N][16];
  for (int i = 0; i < BIG_N; i++) {
    schedule_task_action__init(&st[i]);
    snprintf(names[i], sizeof names[i], "Act%d", i);
    st[i].name = names[i];
    orchestrator_action__init(&acts[i]);
    acts[i].id = i;
    acts[i].orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK;
    acts[i].scheduletask = &st[i];
    pacts[i] = &acts[i];
  }
  complete_orch(tc, wi, pacts, BIG_N, NULL);
  work_item__free_unpacked(wi, NULL);
  rw_close(&w);

  dt_history *h = NULL;
  ASSERT_OK(dt_client_history(e.c, "big", &h));
  ASSERT_GE(h->n, 2 + BIG_N);
  ASSERT_STR_EQ(h->events[1].type, "ExecutionStarted");
  for (int i = 0; i < BIG_N; i++) {
    const dt_event *ev = &h->events[2 + i];
    ASSERT_STR_EQ(ev->type, "TaskScheduled");
    ASSERT_EQ(ev->event_id, i);
    ASSERT_STR_EQ(ev->name, names[i]);
    ASSERT(ev->payload == NULL);
  }
  dt_history_free(h);
  th_client_close(tc);
  teardown(&e);
  return 0;
}
