/*
 * The C SDK's entity worker (dt_worker_add_entity) against a real taskhubd: batches run operation by operation, a
 * failed operation rolled back while later ones run, signals and orchestration starts from an entity, and the
 * final state written back. The entity reports its state by starting an orchestration; the test waits for that
 * orchestration (a condition variable, then dt_client_wait_completion), never for time.
 */
#define _GNU_SOURCE
#include "durabletask.h"
#include "support/th_server.h"
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 20000

struct seen {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int reports;
  int boom_runs;
};

static long long state_num(const char *s)
{
  return s ? atoll(s) : 0;
}

static const char *counter(dt_entity_ctx *ctx, const char *op, const char *input, void *ud)
{
  struct seen *s = ud;
  long long v = state_num(dt_entity_state(ctx));
  if (strcmp(op, "add") == 0) {
    dt_entity_set_state(ctx, dt_entity_printf(ctx, "%lld", v + state_num(input)));
    return NULL;
  }
  if (strcmp(op, "get") == 0)
    return dt_entity_state(ctx);
  if (strcmp(op, "boom") == 0) {
    /* Changes everything, then fails: none of it may count. */
    pthread_mutex_lock(&s->mu);
    s->boom_runs++;
    pthread_mutex_unlock(&s->mu);
    dt_entity_set_state(ctx, "999");
    dt_entity_signal(ctx, "@counter@other", "add", "1000", 0);
    dt_entity_start_orchestration(ctx, "echo", "never-started", "x", NULL);
    dt_entity_fail(ctx, "Boom", "this operation fails");
    return NULL;
  }
  if (strcmp(op, "fanout") == 0) {
    if (dt_entity_signal(ctx, "@Counter@other", "add", input, 0) != DT_OK ||
        dt_entity_signal(ctx, "@counter@other", "report", NULL, 0) != DT_OK)
      dt_entity_fail(ctx, "SignalFailed", "dt_entity_signal failed");
    return NULL;
  }
  if (strcmp(op, "report") == 0) {
    const char *iid = dt_entity_printf(ctx, "report-%s", dt_entity_key(ctx));
    const char *got = NULL;
    if (dt_entity_start_orchestration(ctx, "echo", iid, dt_entity_state(ctx), &got) != DT_OK || strcmp(got, iid))
      dt_entity_fail(ctx, "StartFailed", "dt_entity_start_orchestration failed");
    return NULL;
  }
  if (strcmp(op, "delete") == 0) {
    dt_entity_delete_state(ctx);
    return NULL;
  }
  dt_entity_fail(ctx, "UnknownOperation", dt_entity_printf(ctx, "no operation '%s'", op));
  return NULL;
}

static const char *echo(dt_orch_ctx *ctx, const char *input, void *ud)
{
  struct seen *s = ud;
  (void)ctx;
  pthread_mutex_lock(&s->mu);
  s->reports++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return input;
}

static int wait_reports(struct seen *s, int n)
{
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += WAIT_MS / 1000;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  while (s->reports < n && rc == 0)
    rc = pthread_cond_timedwait(&s->cv, &s->mu, &dl);
  int got = s->reports;
  pthread_mutex_unlock(&s->mu);
  return got >= n ? 0 : -1;
}

static int expect_output(dt_client *c, const char *iid, const char *want)
{
  dt_instance *in = NULL;
  ASSERT_OK(dt_client_wait_completion(c, iid, WAIT_MS, true, &in));
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output ? in->output : "(null)", want);
  dt_instance_free(in);
  return 0;
}

TEST_IMPL(sdk_entity_worker_batches)
{
  th_server srv;
  if (th_server_start(&srv, NULL) != 0)
    TEST_FAIL("taskhubd did not start");
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", srv.port);
  struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  dt_worker *w = NULL;
  ASSERT_OK(dt_worker_new(target, NULL, &w));
  ASSERT_EQ(dt_worker_add_entity(w, "Counter", counter, &s), DT_OK);
  ASSERT_EQ(dt_worker_add_entity(w, "counter", counter, &s), DT_ERR_EXISTS);
  ASSERT_EQ(dt_worker_add_entity(w, "a@b", counter, &s), DT_ERR_INVALID_ARG);
  ASSERT_EQ(dt_worker_add_entity(w, "", counter, &s), DT_ERR_INVALID_ARG);
  ASSERT_OK(dt_worker_add_orchestrator(w, "echo", echo, &s));
  ASSERT_OK(dt_worker_start(w));
  ASSERT_EQ(dt_worker_add_entity(w, "late", counter, &s), DT_ERR_STATE);
  dt_client *c = NULL;
  ASSERT_OK(dt_client_open(target, NULL, &c));

  /* add 5, add 3, a failing operation, an unknown one, add 2, then the state and a signal to another entity. */
  ASSERT_OK(dt_client_signal_entity(c, "@counter@k", "add", "5", 0));
  ASSERT_OK(dt_client_signal_entity(c, "@counter@k", "add", "3", 0));
  ASSERT_OK(dt_client_signal_entity(c, "@counter@k", "boom", NULL, 0));
  ASSERT_OK(dt_client_signal_entity(c, "@counter@k", "nosuch", NULL, 0));
  ASSERT_OK(dt_client_signal_entity(c, "@counter@k", "add", "2", 0));
  ASSERT_OK(dt_client_signal_entity(c, "@counter@k", "fanout", "7", 0));
  ASSERT_OK(dt_client_signal_entity(c, "@counter@k", "report", NULL, 0));
  ASSERT_OK(wait_reports(&s, 2));
  if (expect_output(c, "report-k", "10") != 0 || expect_output(c, "report-other", "7") != 0)
    return 1;
  dt_entity *en = NULL;
  ASSERT_OK(dt_client_get_entity(c, "@counter@k", true, &en));
  ASSERT(en->exists);
  ASSERT_STR_EQ(en->state, "10");
  dt_entity_free(en);
  en = NULL;
  ASSERT_OK(dt_client_get_entity(c, "@counter@other", true, &en));
  ASSERT_STR_EQ(en->state, "7"); /* the failed operation's signal (1000) was rolled back */
  dt_entity_free(en);
  dt_instance *never = NULL;
  ASSERT_EQ(dt_client_get(c, "never-started", false, &never), DT_ERR_NOT_FOUND);
  pthread_mutex_lock(&s.mu);
  ASSERT_EQ(s.boom_runs, 1);
  pthread_mutex_unlock(&s.mu);

  /* An entity that deletes its state is gone. */
  int purged = 0;
  ASSERT_OK(dt_client_purge(c, "report-other", false, &purged));
  ASSERT_EQ(purged, 1);
  ASSERT_OK(dt_client_signal_entity(c, "@counter@other", "delete", NULL, 0));
  ASSERT_OK(dt_client_signal_entity(c, "@counter@other", "report", NULL, 0));
  ASSERT_OK(wait_reports(&s, 3));
  if (expect_output(c, "report-other", "(null)") != 0)
    return 1;
  en = NULL;
  int rc = dt_client_get_entity(c, "@counter@other", true, &en);
  ASSERT(rc == DT_ERR_NOT_FOUND || (rc == DT_OK && !en->exists));
  dt_entity_free(en);

  dt_client_close(c);
  dt_worker_free(w);
  th_server_free(&srv);
  return 0;
}

/* ------------------------------------------------------------------ orchestrations calling entities */

static const char *orch_calls(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input, (void)ud;
  dt_signal_entity(ctx, "@Counter@s", "add", "4", 0);
  dt_await(ctx, dt_call_entity(ctx, "@counter@c", "add", "1"));
  const char *before = dt_await(ctx, dt_call_entity(ctx, "@counter@c", "get", NULL));
  const char *ids[] = {"@counter@c", "@COUNTER@c", "@counter@b"}; /* sorted and de-duplicated: b, c */
  dt_await(ctx, dt_lock_entities(ctx, ids, 3));
  if (!dt_in_critical_section(ctx))
    dt_orch_fail(ctx, "Test", "not in the critical section");
  dt_task *calls[] = {dt_call_entity(ctx, "@counter@c", "add", "10"), dt_call_entity(ctx, "@counter@b", "add", "2")};
  dt_await(ctx, dt_when_all(ctx, calls, 2));
  const char *after = dt_await(ctx, dt_call_entity(ctx, "@counter@c", "get", NULL));
  dt_unlock_entities(ctx);
  const char *failed = "none";
  dt_task *t = dt_call_entity(ctx, "@counter@c", "boom", NULL);
  if (dt_await_result(ctx, t, NULL) == DT_ERR_TASK_FAILED)
    failed = dt_ctx_printf(ctx, "%s: %s", dt_task_failure(t)->error_type, dt_task_failure(t)->message);
  return dt_ctx_printf(ctx, "%s %s %s %d", before, after, failed, dt_in_critical_section(ctx));
}

static const char *orch_bad_lock_call(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input, (void)ud;
  const char *ids[] = {"@counter@x"};
  dt_await(ctx, dt_lock_entities(ctx, ids, 1));
  dt_await(ctx, dt_call_entity(ctx, "@counter@y", "get", NULL)); /* not locked: fails the orchestration */
  return "unreachable";
}

static const char *orch_await_failure(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input, (void)ud;
  const char *ids[] = {"@counter@z"};
  dt_await(ctx, dt_lock_entities(ctx, ids, 1));
  dt_await(ctx, dt_call_entity(ctx, "@counter@z", "boom", NULL)); /* fails the orchestration, which unlocks */
  return "unreachable";
}

static int run_orch(dt_client *c, const char *name, dt_instance **out)
{
  char *id = NULL;
  ASSERT_OK(dt_client_schedule(c, name, NULL, &id));
  ASSERT_OK(dt_client_wait_completion(c, id, WAIT_MS, true, out));
  dt_free(id);
  return 0;
}

TEST_IMPL(sdk_entity_worker_orchestrations)
{
  th_server srv;
  if (th_server_start(&srv, NULL) != 0)
    TEST_FAIL("taskhubd did not start");
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", srv.port);
  struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  dt_worker *w = NULL;
  ASSERT_OK(dt_worker_new(target, NULL, &w));
  ASSERT_OK(dt_worker_add_entity(w, "counter", counter, &s));
  ASSERT_OK(dt_worker_add_orchestrator(w, "calls", orch_calls, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "bad_lock_call", orch_bad_lock_call, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "await_failure", orch_await_failure, NULL));
  ASSERT_OK(dt_worker_start(w));
  dt_client *c = NULL;
  ASSERT_OK(dt_client_open(target, NULL, &c));

  dt_instance *in = NULL;
  if (run_orch(c, "calls", &in) != 0)
    return 1;
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, "1 11 Boom: this operation fails 0");
  dt_instance_free(in);
  dt_entity *en = NULL;
  ASSERT_OK(dt_client_get_entity(c, "@counter@b", true, &en));
  ASSERT_STR_EQ(en->state, "2");
  ASSERT(en->locked_by == NULL);
  dt_entity_free(en);

  in = NULL;
  if (run_orch(c, "bad_lock_call", &in) != 0)
    return 1;
  ASSERT_EQ(in->status, DT_STATUS_FAILED);
  ASSERT_STR_EQ(in->failure->error_type, "LockingRulesViolation");
  dt_instance_free(in);

  in = NULL;
  if (run_orch(c, "await_failure", &in) != 0)
    return 1;
  ASSERT_EQ(in->status, DT_STATUS_FAILED);
  ASSERT_STR_EQ(in->failure->error_type, "TaskFailedError");
  ASSERT_STR_CONTAINS(in->failure->message, "Entity operation task #2 failed: this operation fails");
  ASSERT(in->failure->inner && strcmp(in->failure->inner->error_type, "Boom") == 0);
  dt_instance_free(in);

  /* The signal from "calls" reached its entity (the action was sent; the record exists). */
  en = NULL;
  ASSERT_OK(dt_client_get_entity(c, "@counter@s", true, &en));
  dt_entity_free(en);

  dt_client_close(c);
  dt_worker_free(w);
  th_server_free(&srv);
  return 0;
}
