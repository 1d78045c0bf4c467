/* WaitForInstanceStart / WaitForInstanceCompletion: wake-ups, deadlines, the no-deadline cap, cancellation and
 * shutdown while waits are parked. */
#define _GNU_SOURCE
#include "google/protobuf/empty.pb-c.h"
#include "it.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define WAIT_START IT_SVC "WaitForInstanceStart"
#define WAIT_DONE IT_SVC "WaitForInstanceCompletion"

static th_call *start_wait(th_client *c, const char *method, const char *id, int timeout_ms)
{
  GetInstanceRequest req = GET_INSTANCE_REQUEST__INIT;
  req.instanceid = (char *)id;
  req.getinputsandoutputs = 1;
  return th_call_start(c, method, &req.base, timeout_ms);
}

static grpc_status_code finish_wait(th_call *call, GetInstanceResponse **resp, char **details)
{
  ProtobufCMessage *m = NULL;
  grpc_status_code st = th_call_finish(call, &get_instance_response__descriptor, &m, details);
  *resp = (GetInstanceResponse *)m;
  return st;
}

/* Asserts that a just-started wait is parked: it has not completed within ms. */
static void assert_parked(th_call *call, int ms, const char *what)
{
  if (th_call_wait(call, ms))
    TEST_FAIL("%s completed within %d ms although the instance is PENDING", what, ms);
}

static void assert_hello_fast(th_client *c)
{
  Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
  char *details = NULL;
  long long t0 = th_now_ms();
  grpc_status_code st =
      th_call_unary(c, IT_SVC "Hello", &req.base, &google__protobuf__empty__descriptor, 5000, NULL, &details);
  ASSERT_STATUS(st, GRPC_STATUS_OK, details);
  free(details);
  ASSERT_LT(th_now_ms() - t0, 2000);
}

struct terminator {
  int port;
  const char *id;
  grpc_status_code status;
  long long done_ms;
};

static void *terminate_thread(void *arg)
{
  struct terminator *t = arg;
  th_client *c = th_client_open(t->port);
  t->status = it_terminate(c, t->id, "\"stopped\"", NULL);
  t->done_ms = th_now_ms();
  th_client_close(c);
  return NULL;
}

TEST_IMPL(wait_completion_woken_by_terminate)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "wait-1", "Orch", NULL));
  enum { N = 4 };
  th_call *w[N];
  w[0] = start_wait(e.cli, WAIT_DONE, "wait-1", 30000);
  w[1] = start_wait(e.cli, WAIT_DONE, "wait-1", 30000);
  w[2] = start_wait(e.cli, WAIT_DONE, "wait-1", TH_NO_DEADLINE);
  w[3] = start_wait(e.cli, WAIT_START, "wait-1", 30000); /* TERMINATED != PENDING wakes a start wait too */
  assert_parked(w[0], 300, "WaitForInstanceCompletion");
  for (int i = 1; i < N; i++)
    assert_parked(w[i], 0, "wait");

  /* Terminate from another thread over another connection. */
  struct terminator t = {.port = e.srv.port, .id = "wait-1"};
  pthread_t th;
  ASSERT_OK(pthread_create(&th, NULL, terminate_thread, &t));
  ASSERT_OK(pthread_join(th, NULL));
  ASSERT_STATUS(t.status, GRPC_STATUS_OK, "");

  for (int i = 0; i < N; i++) {
    GetInstanceResponse *r = NULL;
    char *details = NULL;
    ASSERT(th_call_wait(w[i], 5000)); /* woken promptly, not by a deadline */
    long long lag = th_now_ms() - t.done_ms;
    ASSERT_STATUS(finish_wait(w[i], &r, &details), GRPC_STATUS_OK, details);
    free(details);
    ASSERT(r->exists);
    ASSERT(r->orchestrationstate != NULL);
    ASSERT_STR_EQ(r->orchestrationstate->instanceid, "wait-1");
    ASSERT_EQ(r->orchestrationstate->orchestrationstatus, TERMINATED);
    ASSERT(r->orchestrationstate->output != NULL);
    ASSERT_STR_EQ(r->orchestrationstate->output->value, "\"stopped\"");
    ASSERT_LT(lag, 5000);
    it_free(r);
  }
  it_teardown(&e);
  return 0;
}

TEST_IMPL(wait_deadline_exceeded)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "wait-dl", "Orch", NULL));
  const char *methods[] = {WAIT_START, WAIT_DONE};
  for (int i = 0; i < 2; i++) {
    long long t0 = th_now_ms();
    GetInstanceResponse *r = NULL;
    char *details = NULL;
    /* 2 s: the server answers a twentieth of it (100 ms) early, time enough for the answer on a loaded machine. */
    grpc_status_code st = finish_wait(start_wait(e.cli, methods[i], "wait-dl", 2000), &r, &details);
    long long took = th_now_ms() - t0;
    ASSERT_STATUS(st, GRPC_STATUS_DEADLINE_EXCEEDED, details);
    /* The server answers just before the deadline, saying why nothing happened (no worker runs "Orch"). */
    ASSERT_STR_CONTAINS(details, "no connected worker accepts orchestration 'Orch' (0 workers connected)");
    free(details);
    ASSERT(r == NULL);
    ASSERT_GE(took, 1800);
    ASSERT_LT(took, 8000);
  }
  ASSERT_EQ(it_status(e.cli, "wait-dl"), PENDING);
  assert_hello_fast(e.cli);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(wait_unknown_and_terminal_return_at_once)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "wait-t", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "wait-t", "\"o\"", NULL), GRPC_STATUS_OK, "");
  const char *methods[] = {WAIT_START, WAIT_DONE};
  for (int i = 0; i < 2; i++) {
    for (int timeout = 0; timeout < 2; timeout++) {
      int tmo = timeout ? 30000 : TH_NO_DEADLINE;
      long long t0 = th_now_ms();
      GetInstanceResponse *r = NULL;
      char *details = NULL;
      ASSERT_STATUS(finish_wait(start_wait(e.cli, methods[i], "wait-unknown", tmo), &r, &details), GRPC_STATUS_OK,
                    details);
      free(details);
      ASSERT_EQ(r->exists, 0);
      ASSERT(r->orchestrationstate == NULL);
      it_free(r);
      ASSERT_STATUS(finish_wait(start_wait(e.cli, methods[i], "wait-t", tmo), &r, &details), GRPC_STATUS_OK, details);
      free(details);
      ASSERT(r->exists);
      ASSERT_EQ(r->orchestrationstate->orchestrationstatus, TERMINATED);
      it_free(r);
      ASSERT_LT(th_now_ms() - t0, 2000);
    }
  }
  ASSERT(!it_exists(e.cli, "wait-unknown"));
  it_teardown(&e);
  return 0;
}

TEST_IMPL(wait_without_deadline_is_capped)
{
  static const char *const args[] = {"--wait-cap", "1", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  free(it_start(e.cli, "wait-cap", "Orch", NULL));
  const char *methods[] = {WAIT_DONE, WAIT_START};
  for (int i = 0; i < 2; i++) {
    long long t0 = th_now_ms();
    GetInstanceResponse *r = NULL;
    char *details = NULL;
    grpc_status_code st = finish_wait(start_wait(e.cli, methods[i], "wait-cap", TH_NO_DEADLINE), &r, &details);
    long long took = th_now_ms() - t0;
    ASSERT_STATUS(st, GRPC_STATUS_DEADLINE_EXCEEDED, details);
    free(details);
    ASSERT_GE(took, 900);
    ASSERT_LT(took, 10000);
  }
  /* A client deadline shorter than the cap still wins. */
  long long t0 = th_now_ms();
  GetInstanceResponse *r = NULL;
  char *details = NULL;
  ASSERT_STATUS(finish_wait(start_wait(e.cli, WAIT_DONE, "wait-cap", 200), &r, &details),
                GRPC_STATUS_DEADLINE_EXCEEDED, details);
  free(details);
  ASSERT_LT(th_now_ms() - t0, 900);
  ASSERT_EQ(it_status(e.cli, "wait-cap"), PENDING);
  it_teardown(&e);
  return 0;
}

/* Many waits without deadlines, abandoned by the client (like the JS SDK): the server keeps serving while they
 * are parked (no thread per waiter), releases them on cancellation, and works afterwards. Leaks would show in
 * the server's LeakSanitizer report at SIGTERM. */
TEST_IMPL(wait_cancelled_by_client)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "wait-c", "Orch", NULL));
  enum { N = 64, ROUNDS = 3 };
  for (int round = 0; round < ROUNDS; round++) {
    th_call *w[N];
    for (int i = 0; i < N; i++)
      w[i] = start_wait(e.cli, i % 2 ? WAIT_START : WAIT_DONE, "wait-c", TH_NO_DEADLINE);
    assert_parked(w[0], 300, "wait");
    for (int i = 1; i < N; i++)
      assert_parked(w[i], 0, "wait");
    assert_hello_fast(e.cli);
    ASSERT_EQ(it_status(e.cli, "wait-c"), PENDING);
    for (int i = 0; i < N; i++)
      th_call_cancel(w[i]);
    for (int i = 0; i < N; i++) {
      GetInstanceResponse *r = NULL;
      char *details = NULL;
      ASSERT_STATUS(finish_wait(w[i], &r, &details), GRPC_STATUS_CANCELLED, details);
      free(details);
    }
  }
  assert_hello_fast(e.cli);
  /* Wake-ups still work after the cancellations. */
  th_call *w = start_wait(e.cli, WAIT_DONE, "wait-c", 30000);
  assert_parked(w, 300, "wait");
  ASSERT_STATUS(it_terminate(e.cli, "wait-c", NULL, NULL), GRPC_STATUS_OK, "");
  GetInstanceResponse *r = NULL;
  char *details = NULL;
  ASSERT_STATUS(finish_wait(w, &r, &details), GRPC_STATUS_OK, details);
  free(details);
  ASSERT_EQ(r->orchestrationstate->orchestrationstatus, TERMINATED);
  it_free(r);
  it_teardown(&e);
  return 0;
}

/* SIGTERM with parked waits: the waiters get an error at once, the server exits 0 promptly once its clients
 * have gone, and the data survives. (The client is closed after its calls end because gRPC C-core clients only
 * do I/O while polled; a server's graceful shutdown waits for connected peers to disconnect.) */
TEST_IMPL(sigterm_with_parked_wait)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "wait-s", "Orch", "\"keep\""));
  th_call *w[2];
  w[0] = start_wait(e.cli, WAIT_DONE, "wait-s", TH_NO_DEADLINE);
  w[1] = start_wait(e.cli, WAIT_DONE, "wait-s", 60000);
  assert_parked(w[0], 300, "wait");
  assert_parked(w[1], 0, "wait");

  long long t0 = th_now_ms();
  th_server_signal(&e.srv, SIGTERM);
  for (int i = 0; i < 2; i++) {
    GetInstanceResponse *r = NULL;
    char *details = NULL;
    if (!th_call_wait(w[i], 2000))
      TEST_FAIL("parked wait %d still running 2 s after SIGTERM", i);
    grpc_status_code s = finish_wait(w[i], &r, &details);
    if (s != GRPC_STATUS_UNAVAILABLE && s != GRPC_STATUS_CANCELLED)
      TEST_FAIL("parked wait ended with %s (\"%s\") at shutdown, expected UNAVAILABLE or CANCELLED",
                th_status_name(s), details);
    free(details);
    it_free(r);
  }
  long long waits_done = th_now_ms() - t0;
  th_client_close(e.cli);
  e.cli = NULL;
  int st = 0;
  if (!th_server_wait_exit(&e.srv, TH_SERVER_STOP_MS, &st))
    TEST_FAIL("taskhubd still running %d ms after SIGTERM", TH_SERVER_STOP_MS);
  long long took = th_now_ms() - t0;
  fprintf(stderr, "waits ended %lld ms and taskhubd exited %lld ms after SIGTERM\n", waits_done, took);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    TEST_FAIL("taskhubd: wait status 0x%x after SIGTERM with parked waits (expected exit 0)", st);
  ASSERT_LT(took, 2000);
  th_server_assert_clean_log(&e.srv);

  th_server_restart(&e.srv);
  e.cli = th_client_open(e.srv.port);
  GetInstanceResponse *r = it_get(e.cli, "wait-s", 1);
  ASSERT(r->exists);
  ASSERT_EQ(r->orchestrationstate->orchestrationstatus, PENDING);
  ASSERT_STR_EQ(r->orchestrationstate->input->value, "\"keep\"");
  it_free(r);
  it_teardown(&e);
  return 0;
}
