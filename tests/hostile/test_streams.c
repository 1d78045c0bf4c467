/* Issue 13, defects 3, 5 and 13: how work is shared among worker streams that read slowly or not at all,
 * filter what they take, vanish without closing, or reconnect. */
#define _GNU_SOURCE
#include "hx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define INPUT_BYTES 100000

/* A worker that asks for a million items and never reads gets what fits its stream's buffer, not everything:
 * the others get the rest at once, and what taskhubd holds for the lazy one stays small. HX_PENDING scales it
 * up (the scenario is 3000) to measure the server's memory with a release build. */
TEST_IMPL(hostile_worker_that_never_reads)
{
  int ops = hx_free_port();
  char ops_listen[32];
  snprintf(ops_listen, sizeof ops_listen, "127.0.0.1:%d", ops);
  const char *const args[] = {"--ops-listen", ops_listen, NULL};
  const int n_pending = getenv("HX_PENDING") ? atoi(getenv("HX_PENDING")) : 400;
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  char *input = it_repeat('i', INPUT_BYTES);
  input[0] = input[INPUT_BYTES - 1] = '"';
  for (int i = 0; i < n_pending; i++) {
    char id[32];
    snprintf(id, sizeof id, "p%04d", i);
    free(it_start(e.cli, id, "Orch", input));
  }
  free(input);
  long before = hx_rss_kb(e.srv.pid);
  th_client *lazy_cli = hx_lazy_client(e.srv.port);
  th_stream *lazy = getenv("HX_NO_LAZY") ? NULL : hx_worker(lazy_cli, 1000000, 1000000, NULL, NULL, 0);
  /* Make sure the lazy stream is connected first: it would take everything if it could. */
  hx_assert_alive(lazy_cli);
  th_client *busy_cli = th_client_open(e.srv.port);
  th_stream *busy = hx_worker(busy_cli, 0, 0, NULL, NULL, 0);
  long long t0 = th_now_ms();
  int got = hx_drain(busy_cli, busy, n_pending, 3000);
  long after = hx_rss_kb(e.srv.pid);
  fprintf(stderr, "busy worker got %d of %d in %lld ms; server RSS %ld -> %ld kB\n", got, n_pending,
          th_now_ms() - t0, before, after);
  double held = hx_metric(ops, "taskhubd_stream_buffered_bytes");
  fprintf(stderr, "buffered for streams: %.0f bytes\n", held);
  /* The lazy stream holds at most its 1 MiB buffer plus what the transport took: a few dozen items. */
  ASSERT_GE(got, n_pending - 60);
  if (!lazy)
    ASSERT_EQ(got, n_pending);
  ASSERT_LT(held, 2 << 20);
  th_stream_free(lazy);
  th_stream_free(busy);
  th_client_close(lazy_cli);
  th_client_close(busy_cli);
  it_teardown(&e);
  return 0;
}

/* W1 runs only A, one at a time; W2 runs only B. The second A waits for W1's slot, not for a new stream. */
TEST_IMPL(hostile_filters_do_not_strand_work)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  static const char *const a_orch[] = {"A", NULL}, *const b_orch[] = {"B", NULL};
  static const char *const x_act[] = {"X", NULL}, *const y_act[] = {"Y", NULL};
  th_stream *w1 = hx_worker(e.cli, 1, 1, a_orch, x_act, 0);
  th_stream *w2 = hx_worker(e.cli, 10, 10, b_orch, y_act, 0);
  hx_assert_alive(e.cli);
  free(it_start(e.cli, "a1", "A", NULL));
  free(it_start(e.cli, "a2", "A", NULL));
  hx_arena a = {0};
  char *d = NULL;
  WorkItem *first = hx_expect_orch(w1, 10000, "the first A");
  /* It schedules two X activities, then A2 runs after it. */
  OrchestratorAction *xs[] = {hx_schedule(&a, 1, "X", NULL), hx_schedule(&a, 2, "X", NULL)};
  ASSERT_STATUS(hx_complete_orch(e.cli, first->completiontoken, NULL, xs, 2, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  char first_id[16];
  snprintf(first_id, sizeof first_id, "%s", first->orchestratorrequest->instanceid);
  work_item__free_unpacked(first, NULL);
  /* W1's one orchestration slot is free again: the other A comes, then the X activities one by one. */
  int orch = 0, acts = 0;
  for (int i = 0; i < 3; i++) {
    WorkItem *wi = th_work_expect(w1, 10000, "the second A or an X");
    if (wi->request_case == WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST) {
      orch++;
      ASSERT(strcmp(wi->orchestratorrequest->instanceid, first_id) != 0);
      OrchestratorAction *fin = hx_finish(&a, 1, COMPLETED, NULL);
      ASSERT_STATUS(hx_complete_orch(e.cli, wi->completiontoken, NULL, &fin, 1, NULL, &d), GRPC_STATUS_OK, d);
    } else {
      acts++;
      ASSERT_STR_EQ(wi->activityrequest->name, "X");
      ASSERT_STATUS(hx_complete_act(e.cli, wi->completiontoken, NULL, 0, "1", &d), GRPC_STATUS_OK, d);
    }
    free(d);
    work_item__free_unpacked(wi, NULL);
  }
  ASSERT_EQ(orch, 1);
  ASSERT_EQ(acts, 2);
  /* W2 got nothing it does not run. */
  ASSERT(th_work_next(w2, 200) == NULL);
  hx_arena_free(&a);
  th_stream_free(w1);
  th_stream_free(w2);
  it_teardown(&e);
  return 0;
}

/* Defect 13: a worker whose stream closes and that reconnects gets its work back at once, not after the 30 s
 * orphan grace; the token of the new work item is the valid one, the old one is stale: nothing applies twice. */
TEST_IMPL(hostile_reconnected_worker_gets_work_at_once)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "r1", "Orch", NULL));
  th_stream *w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  WorkItem *old = hx_expect_orch(w, 10000, "r1's work item");
  th_stream_free(w); /* the worker goes away without answering */
  long long t0 = th_now_ms();
  w = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  WorkItem *again = hx_expect_orch(w, 5000, "r1's work item again, long before the 30 s grace");
  ASSERT_LT(th_now_ms() - t0, 5000);
  ASSERT_STR_EQ(again->orchestratorrequest->instanceid, "r1");
  ASSERT(strcmp(again->completiontoken, old->completiontoken) != 0);
  hx_expect_superseded(e.cli, "r1", old->completiontoken, again->completiontoken);
  hx_hist h;
  hx_history(e.cli, "r1", &h);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED), 1);
  ASSERT_EQ(hx_count(&h, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED), 1);
  hx_history_free(&h);
  work_item__free_unpacked(old, NULL);
  work_item__free_unpacked(again, NULL);
  th_stream_free(w);
  it_teardown(&e);
  return 0;
}

/* ---- a TCP relay that can go silent without closing, like a powered-off worker's connection ---- */

struct relay {
  int listen_fd, port;
  atomic_bool frozen, stop;
  pthread_t th;
};

static void *relay_main(void *arg)
{
  struct relay *r = arg;
  int c = accept(r->listen_fd, NULL, NULL);
  ASSERT(c >= 0);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(connect(s, (struct sockaddr *)&to, sizeof to));
  char buf[65536];
  while (!atomic_load(&r->stop)) {
    struct pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
    if (poll(p, 2, 50) <= 0 || atomic_load(&r->frozen))
      continue;
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP)))
        continue;
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n <= 0)
        goto out;
      ssize_t off = 0;
      while (off < n) {
        ssize_t w = send(i == 0 ? s : c, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
          goto out;
        off += w;
      }
    }
  }
out:
  close(c);
  close(s);
  return NULL;
}

/* Returns the relay's own port; it forwards one connection to |port|. */
static int relay_start(struct relay *r, int port)
{
  memset(r, 0, sizeof *r);
  r->port = port;
  r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(r->listen_fd, (struct sockaddr *)&a, sizeof a));
  ASSERT_OK(listen(r->listen_fd, 1));
  socklen_t len = sizeof a;
  ASSERT_OK(getsockname(r->listen_fd, (struct sockaddr *)&a, &len));
  ASSERT_OK(pthread_create(&r->th, NULL, relay_main, r));
  return ntohs(a.sin_port);
}

static void relay_stop(struct relay *r)
{
  atomic_store(&r->stop, true);
  pthread_join(r->th, NULL);
  close(r->listen_fd);
}

/* A worker whose connection goes silent (no FIN, no RST) holds its work item only until keepalive notices. */
TEST_IMPL(hostile_silent_worker_loses_its_work)
{
  static const char *const args[] = {"--keepalive", "1", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  struct relay r;
  int rport = relay_start(&r, e.srv.port);
  th_client *far = th_client_open(rport);
  th_stream *w1 = hx_worker(far, 0, 0, NULL, NULL, 0);
  hx_assert_alive(far);
  free(it_start(e.cli, "s1", "Orch", NULL));
  WorkItem *wi = hx_expect_orch(w1, 10000, "s1's work item through the relay");
  work_item__free_unpacked(wi, NULL);
  atomic_store(&r.frozen, true); /* the worker's machine is gone */
  th_stream *w2 = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  long long t0 = th_now_ms();
  WorkItem *again = hx_expect_orch(w2, 10000, "s1's work item after the silent worker was noticed");
  fprintf(stderr, "redelivered after %lld ms\n", th_now_ms() - t0);
  ASSERT_STR_EQ(again->orchestratorrequest->instanceid, "s1");
  work_item__free_unpacked(again, NULL);
  th_stream_free(w2);
  atomic_store(&r.frozen, false);
  th_stream_free(w1);
  th_client_close(far);
  relay_stop(&r);
  it_teardown(&e);
  return 0;
}
