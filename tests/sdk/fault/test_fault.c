/*
 * C SDK fault tests: what the SDK does when a system or gRPC call it depends on fails (fault.h injects the
 * failures). Where the defect was a hang, the call under test runs on a helper thread and the test fails when it
 * has not returned within a bound, rather than hanging until CTest's timeout.
 */
#include "sc.h" /* first: it defines _GNU_SOURCE */

#include "big_history.h"
#include "durabletask.h"
#include "fault.h"
#include "hist.h"
#include "internal.h"
#include "test.h"
#include "th_server.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#ifndef HIST_DATA_DIR
#error HIST_DATA_DIR must name tests/data/replay
#endif

#define BOUND_MS 10000 /* far above what any of these calls takes when it works */

static void sdk_log(int level, const char *message, void *user_data)
{
  (void)user_data;
  if (level >= 2)
    fprintf(stderr, "sdk[%s]: %s\n", level >= 3 ? "error" : "warn", message);
}


/* ------------------------------------------------------------------ bounded calls */

struct bounded {
  void (*fn)(void *arg);
  void *arg;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
};

static void *bounded_main(void *p)
{
  struct bounded *b = p;
  b->fn(b->arg);
  pthread_mutex_lock(&b->mu);
  b->done = true;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

/* Runs fn(arg) on a helper thread; fails the test (aborting the process, helper included) when it has not
 * returned within |ms|. */
static void run_bounded(void (*fn)(void *), void *arg, int ms, const char *what)
{
  struct bounded b = {fn, arg, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b.cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_t t;
  ASSERT_OK(pthread_create(&t, NULL, bounded_main, &b));
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&b.mu);
  while (!b.done) {
    if (pthread_cond_timedwait(&b.cv, &b.mu, &until) == ETIMEDOUT && !b.done)
      TEST_FAIL("%s did not return within %d ms", what, ms);
  }
  pthread_mutex_unlock(&b.mu);
  ASSERT_OK(pthread_join(t, NULL));
  pthread_cond_destroy(&b.cv);
}

static bool start_batch_failed(void *arg)
{
  (void)arg;
  return fault_start_batch_failed() >= 1;
}

/* ------------------------------------------------------------------ a worker against a real taskhubd */

static const char *o_hello(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  return dt_ctx_printf(ctx, "{\"hello\":%s}", input ? input : "null");
}

static void wait_done(dt_client *c, const char *iid, const char *want_output)
{
  dt_instance *in = NULL;
  int rc = dt_client_wait_completion(c, iid, 30000, true, &in);
  if (rc != DT_OK)
    TEST_FAIL("waiting for %s: %s", iid, dt_strerror(rc));
  if (in->status != DT_STATUS_COMPLETED)
    TEST_FAIL("%s is %s, expected COMPLETED", iid, dt_status_name(in->status));
  ASSERT_STR_EQ(in->output, want_output);
  dt_instance_free(in);
}

static void schedule(dt_client *c, const char *iid, const char *input)
{
  dt_start_options o = {.instance_id = iid, .input = input};
  ASSERT_OK(dt_client_schedule(c, "Hello", &o, NULL));
}

static dt_worker *hello_worker(const char *target)
{
  dt_worker *w = NULL;
  ASSERT_OK(dt_worker_new(target, NULL, &w));
  ASSERT_OK(dt_worker_add_orchestrator(w, "Hello", o_hello, NULL));
  ASSERT_OK(dt_worker_start(w));
  return w;
}

static void stop_worker(void *w)
{
  dt_worker_stop(w);
}

/* A completion whose grpc_call_start_batch fails is never answered by the server: dt_worker_stop waited for it
 * forever. It must return, and the work item must still be done by another worker once the server gives it
 * back (after its orphan grace). */
TEST_IMPL(sdk_fault_worker_stop_after_failed_batch)
{
  th_server srv;
  const char *args[] = {"--orphan-grace", "1", NULL};
  int rc = th_server_start(&srv, args);
  if (rc != 0)
    return rc;
  dt_set_log_fn(sdk_log, NULL);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", srv.port);
  dt_client *c = NULL;
  ASSERT_OK(dt_client_open(target, NULL, &c));
  dt_worker *w = hello_worker(target);

  /* The worker is connected and completing work (so its Hello call is behind it). */
  schedule(c, "fault-batch-1", "\"one\"");
  wait_done(c, "fault-batch-1", "{\"hello\":\"one\"}");

  /* The next completion the worker sends cannot be started. */
  fault_start_batch_fail_next(1);
  schedule(c, "fault-batch-2", "\"two\"");
  if (!sc_poll(start_batch_failed, NULL, BOUND_MS))
    TEST_FAIL("the worker never started the completion of fault-batch-2");
  run_bounded(stop_worker, w, BOUND_MS, "dt_worker_stop after a failed grpc_call_start_batch");
  dt_worker_free(w);

  dt_instance *in = NULL;
  ASSERT_OK(dt_client_get(c, "fault-batch-2", false, &in));
  ASSERT_EQ(in->status, DT_STATUS_PENDING); /* its first turn never completed: that completion never went out */
  dt_instance_free(in);

  /* Another worker gets it once the server has given it back. */
  w = hello_worker(target);
  wait_done(c, "fault-batch-2", "{\"hello\":\"two\"}");
  dt_worker_free(w);
  dt_client_close(c);
  th_server_free(&srv);
  return 0;
}

/* ------------------------------------------------------------------ worker threads */

static void start_fails_at(int nth)
{
  dt_set_log_fn(sdk_log, NULL);
  dt_worker_options opt = {.activity_threads = 2};
  dt_worker *w = NULL;
  ASSERT_OK(dt_worker_new("127.0.0.1:1", &opt, &w)); /* nothing listens there: the connection never matters */
  ASSERT_OK(dt_worker_add_orchestrator(w, "Hello", o_hello, NULL));
  fault_pthread_create_fail_nth(nth);
  int rc = dt_worker_start(w);
  ASSERT_EQ(fault_pthread_create_failed(), 1);
  if (rc == DT_OK)
    TEST_FAIL("dt_worker_start returned DT_OK although pthread_create #%d (of %d) failed", nth, 3);
  ASSERT_EQ(rc, DT_ERR_NOMEM);
  /* Not started: registrations are still allowed, and a second start works. */
  ASSERT_OK(dt_worker_add_orchestrator(w, "Hello2", o_hello, NULL));
  ASSERT_OK(dt_worker_start(w));
  run_bounded(stop_worker, w, BOUND_MS, "dt_worker_stop");
  dt_worker_free(w);
}

/* The stream thread is created last (after two activity threads); when that fails, dt_worker_start must fail
 * and leave nothing running (the activity threads are joined; LeakSanitizer checks the rest). */
TEST_IMPL(sdk_fault_worker_start_stream_thread_fails)
{
  start_fails_at(3);
  return 0;
}

TEST_IMPL(sdk_fault_worker_start_pool_thread_fails)
{
  start_fails_at(2);
  return 0;
}

/* ------------------------------------------------------------------ history streaming */

struct abandon_wait {
  sc_hub *h;
  const char *iid;
};

static bool abandoned_or_finished(void *arg)
{
  struct abandon_wait *a = arg;
  if (sc_log_count(&a->h->srv, "event=work_item_abandoned", "reason=worker_abandoned") > 0)
    return true;
  dt_instance *in = sc_get(a->h, a->iid, false);
  bool finished = in && in->status != DT_STATUS_RUNNING && in->status != DT_STATUS_PENDING;
  dt_instance_free(in);
  return finished;
}

/* A work item whose history must be streamed, and the history cannot be read (here: a chunk that does not decode):
 * the worker gives the item back with AbandonTaskOrchestratorWorkItem instead of replaying what it has (which
 * would fail the orchestration: no ExecutionStarted) or dropping it until its lease runs out. Once chunks decode
 * again, the redelivered item completes. */
TEST_IMPL(sdk_fault_history_fetch_fails_abandons)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, big_register);
  if (rc != 0)
    return rc;
  fault_history_chunk_fails(true);
  char iid[64];
  sc_id(iid, sizeof iid, "fetchfail");
  sc_schedule(&h, "BigHistory", BIG_INPUT, iid);
  struct abandon_wait aw = {&h, iid};
  if (!sc_poll(abandoned_or_finished, &aw, SC_WAIT_MS))
    TEST_FAIL("%s was neither abandoned nor finished within %d ms", iid, SC_WAIT_MS);
  fault_history_chunk_fails(false);
  dt_instance *in = sc_get(&h, iid, false);
  ASSERT(in != NULL);
  if (in->status != DT_STATUS_RUNNING)
    TEST_FAIL("%s is %s: the work item whose history could not be fetched was not abandoned", iid,
              dt_status_name(in->status));
  dt_instance_free(in);
  ASSERT_GT(fault_history_chunk_failed(), 0);
  ASSERT_GT(sc_log_count(&h.srv, "event=work_item_abandoned", iid), 0);

  in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, BIG_OUTPUT);
  dt_instance_free(in);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ randomness */

/* A rewind hands back the history without running the code. */
static const char *o_not_run(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ctx;
  (void)input;
  (void)ud;
  TEST_FAIL("a rewind ran the orchestrator");
}

struct rewind_run {
  int rc;
  char exec[64];
};

static void rewind_replay(void *p)
{
  struct rewind_run *r = p;
  char *err = NULL;
  hist *h = hist_load(HIST_DATA_DIR "/rewind.hist", &err);
  if (!h)
    TEST_FAIL("%s", err ? err : "hist_load failed");
  static const struct dt__orchestrator chain[1] = {{(char *)"Chain", o_not_run, NULL}};
  uint8_t *out = NULL;
  size_t len = 0;
  r->rc = dt__replay(chain, 1, hist_request(h), "token-1", &out, &len);
  r->exec[0] = '\0';
  if (r->rc == DT_OK) {
    OrchestratorResponse *resp = orchestrator_response__unpack(NULL, len, out);
    ASSERT(resp != NULL && resp->n_actions == 1 && resp->actions[0]->rewindorchestration);
    const RewindOrchestrationAction *rw = resp->actions[0]->rewindorchestration;
    ASSERT(rw->n_newhistory > 1 && rw->newhistory[1]->executionstarted);
    const ExecutionStartedEvent *es = rw->newhistory[1]->executionstarted;
    ASSERT(es->orchestrationinstance && es->orchestrationinstance->executionid);
    snprintf(r->exec, sizeof r->exec, "%s", es->orchestrationinstance->executionid->value);
    orchestrator_response__free_unpacked(resp, NULL);
  } else {
    ASSERT(out == NULL);
  }
  free(out);
  hist_free(h);
}

static bool is_hex32(const char *s)
{
  if (strlen(s) != 32)
    return false;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return false;
  return true;
}

/* A rewind gives the execution a new random id. getrandom failing every time (EINTR forever) made that a busy
 * loop; the kernel's /dev/urandom must serve instead. */
TEST_IMPL(sdk_fault_random_rewind_getrandom_eintr)
{
  fault_getrandom_errno(EINTR);
  struct rewind_run r;
  run_bounded(rewind_replay, &r, BOUND_MS, "dt__replay of a rewind while getrandom fails");
  ASSERT_OK(r.rc);
  if (!is_hex32(r.exec))
    TEST_FAIL("the new execution id is \"%s\", expected 32 hex digits", r.exec);
  ASSERT_GT(fault_getrandom_calls(), 0);
  return 0;
}

/* With no randomness at all the rewind cannot get an execution id: dt__replay fails (the worker abandons the
 * work item) rather than spin or make one up. */
TEST_IMPL(sdk_fault_random_rewind_no_source)
{
  fault_getrandom_errno(EINTR);
  fault_urandom_fails(true);
  struct rewind_run r;
  run_bounded(rewind_replay, &r, BOUND_MS, "dt__replay of a rewind without randomness");
  ASSERT_EQ(r.rc, DT_ERR_INTERNAL);
  return 0;
}

struct schedule_run {
  dt_client *c;
  int rc;
  char *iid;
};

static void schedule_generated(void *p)
{
  struct schedule_run *s = p;
  s->rc = dt_client_schedule(s->c, "Hello", NULL, &s->iid);
}

/* dt_client_schedule without an instance id generates one; getrandom failing with EINTR forever looped. */
TEST_IMPL(sdk_fault_random_client_getrandom_eintr)
{
  th_server srv;
  int rc = th_server_start(&srv, NULL);
  if (rc != 0)
    return rc;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", srv.port);
  struct schedule_run s = {NULL, -1, NULL};
  ASSERT_OK(dt_client_open(target, NULL, &s.c));
  fault_getrandom_errno(EINTR);
  run_bounded(schedule_generated, &s, BOUND_MS, "dt_client_schedule while getrandom fails");
  ASSERT_OK(s.rc);
  if (!is_hex32(s.iid))
    TEST_FAIL("the generated instance id is \"%s\", expected 32 hex digits", s.iid);
  ASSERT_GT(fault_getrandom_calls(), 0);
  dt_instance *in = NULL;
  ASSERT_OK(dt_client_get(s.c, s.iid, false, &in));
  ASSERT_STR_EQ(in->name, "Hello");
  dt_instance_free(in);
  dt_free(s.iid);
  dt_client_close(s.c);
  th_server_free(&srv);
  return 0;
}

/* No randomness at all: the call fails with DT_ERR_INTERNAL, before anything is sent. */
TEST_IMPL(sdk_fault_random_client_no_source)
{
  struct schedule_run s = {NULL, -1, NULL};
  ASSERT_OK(dt_client_open("127.0.0.1:1", NULL, &s.c)); /* never reached */
  fault_getrandom_errno(EINTR);
  fault_urandom_fails(true);
  run_bounded(schedule_generated, &s, BOUND_MS, "dt_client_schedule without randomness");
  ASSERT_EQ(s.rc, DT_ERR_INTERNAL);
  ASSERT(s.iid == NULL);
  dt_client_close(s.c);
  return 0;
}
