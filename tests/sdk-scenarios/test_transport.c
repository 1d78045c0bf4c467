/*
 * The worker's transport against a real taskhubd.
 *
 * scen_history_streaming: BigHistory (big_history.h) grows its history past 1 MiB. The worker declares
 * WORKER_CAPABILITY_HISTORY_STREAMING, so taskhubd sends the later turns without pastEvents and the worker fetches
 * them with StreamInstanceHistory; the orchestration must complete with the right output, taskhubd's log must show
 * the capability, and its /metrics the StreamInstanceHistory calls.
 *
 * scen_keepalive_silent_connection: the worker reaches taskhubd through a TCP relay in this process. Once an
 * orchestration has gone through it, the relay goes silent on the worker's connection: it closes its side towards
 * taskhubd (which drops that stream) but keeps the worker's socket open and stops reading it, as a NAT entry or a
 * load balancer that drops a connection without telling anyone would. With keepalive pings (1 s, answered within
 * 1 s) the worker must notice within seconds, reconnect (a second connection to the relay), and complete the next
 * orchestration. Without keepalive it would wait on the dead connection forever.
 */
#include "sc.h" /* first: it defines _GNU_SOURCE */

#include "big_history.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const OPS_ARGS[] = {"--ops-listen", "127.0.0.1:0", NULL};

#define HISTORY_CALLS "taskhubd_grpc_requests_total{method=\"StreamInstanceHistory\",code=\"OK\"}"

TEST_IMPL(scen_history_streaming)
{
  sc_hub h;
  int rc = sc_hub_start(&h, OPS_ARGS, big_register);
  if (rc != 0)
    return rc;
  char iid[64];
  sc_id(iid, sizeof iid, "bighist");
  sc_schedule(&h, "BigHistory", BIG_INPUT, iid);
  dt_instance *in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, BIG_OUTPUT);
  dt_instance_free(in);

  ASSERT_EQ(sc_log_count(&h.srv, "event=worker_connected", "history_streaming=1"), 1);
  /* The turns with 4 and with 5 results carry more than 1 MiB of history: at least two fetches. (This test reads
   * no history itself, so every StreamInstanceHistory call is the worker's.) */
  long long fetches = sc_metric(&h.srv, HISTORY_CALLS);
  if (fetches < 2)
    TEST_FAIL("taskhubd served %lld StreamInstanceHistory calls, expected at least 2 (history streamed)", fetches);
  /* Run against PostgreSQL too (label pg): the 1.5 MB history went through its commits and reads. */
  long long pg_commits = sc_metric(&h.srv, "taskhubd_postgres_round_trips_total{kind=\"commit\"}");
  long long pg_reads = sc_metric(&h.srv, "taskhubd_postgres_round_trips_total{kind=\"read\"}");
  if (getenv("TASKHUBD_TEST_PG")) {
    ASSERT_GT(pg_commits, 5);
    ASSERT_GT(pg_reads, 2);
  } else {
    ASSERT_EQ(pg_commits + pg_reads, 0);
  }
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ a TCP relay that can go silent */

#define RELAY_MAX_PAIRS 32

struct relay_pair {
  int down, up; /* the client's connection, ours to the server (-1 once frozen) */
  bool frozen;
};

struct relay {
  int lfd, port, upstream_port;
  int ctl[2]; /* commands to the relay thread: 'f' freeze, 'q' quit */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int accepted, freezes; /* guarded by mu */
  struct relay_pair pairs[RELAY_MAX_PAIRS]; /* the relay thread's own */
  int npairs;
};

static bool write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

static void pair_close(struct relay_pair *p)
{
  if (p->down >= 0)
    close(p->down);
  if (p->up >= 0)
    close(p->up);
  p->down = p->up = -1;
}

static void *relay_main(void *arg)
{
  struct relay *r = arg;
  static char buf[1 << 16];
  for (;;) {
    struct pollfd pfd[2 + 2 * RELAY_MAX_PAIRS];
    int who[2 + 2 * RELAY_MAX_PAIRS]; /* pair index * 2 + side (0: down, 1: up) */
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = r->ctl[0], .events = POLLIN};
    pfd[n++] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
    for (int i = 0; i < r->npairs; i++) {
      if (r->pairs[i].frozen || r->pairs[i].down < 0)
        continue; /* a frozen pair's client side stays open and is never read */
      who[n] = 2 * i;
      pfd[n++] = (struct pollfd){.fd = r->pairs[i].down, .events = POLLIN};
      who[n] = 2 * i + 1;
      pfd[n++] = (struct pollfd){.fd = r->pairs[i].up, .events = POLLIN};
    }
    if (poll(pfd, (nfds_t)n, -1) < 0) {
      if (errno == EINTR)
        continue;
      TEST_FAIL("relay: poll: %s", strerror(errno));
    }
    if (pfd[0].revents) {
      char c = 0;
      if (read(r->ctl[0], &c, 1) != 1 || c == 'q')
        break;
      for (int i = 0; i < r->npairs; i++)
        if (!r->pairs[i].frozen && r->pairs[i].down >= 0) {
          r->pairs[i].frozen = true;
          close(r->pairs[i].up);
          r->pairs[i].up = -1;
        }
      pthread_mutex_lock(&r->mu);
      r->freezes++;
      pthread_cond_broadcast(&r->cv);
      pthread_mutex_unlock(&r->mu);
      continue;
    }
    if (pfd[1].revents) {
      int down = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
      if (down >= 0) {
        ASSERT(r->npairs < RELAY_MAX_PAIRS);
        int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->upstream_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (up < 0 || connect(up, (struct sockaddr *)&a, sizeof a) != 0)
          TEST_FAIL("relay: connecting to the server: %s", strerror(errno));
        r->pairs[r->npairs++] = (struct relay_pair){down, up, false};
        pthread_mutex_lock(&r->mu);
        r->accepted++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
      }
    }
    for (int k = 2; k < n; k++) {
      if (!pfd[k].revents)
        continue;
      struct relay_pair *p = &r->pairs[who[k] / 2];
      int from = who[k] % 2 ? p->up : p->down, to = who[k] % 2 ? p->down : p->up;
      if (from < 0 || to < 0)
        continue; /* closed by an earlier event of this round */
      ssize_t got = read(from, buf, sizeof buf);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0 || !write_all(to, buf, (size_t)got))
        pair_close(p);
    }
  }
  for (int i = 0; i < r->npairs; i++)
    pair_close(&r->pairs[i]);
  return NULL;
}

static void relay_start(struct relay *r, int upstream_port)
{
  memset(r, 0, sizeof *r);
  r->upstream_port = upstream_port;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  ASSERT_OK(pipe2(r->ctl, O_CLOEXEC));
  r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(r->lfd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(r->lfd, (struct sockaddr *)&a, sizeof a));
  ASSERT_OK(listen(r->lfd, 16));
  socklen_t len = sizeof a;
  ASSERT_OK(getsockname(r->lfd, (struct sockaddr *)&a, &len));
  r->port = ntohs(a.sin_port);
  ASSERT_OK(pthread_create(&r->thread, NULL, relay_main, r));
}

static int relay_accepted(struct relay *r)
{
  pthread_mutex_lock(&r->mu);
  int n = r->accepted;
  pthread_mutex_unlock(&r->mu);
  return n;
}

/* Every connection relayed so far goes silent; returns once the relay has done it. */
static void relay_freeze(struct relay *r)
{
  pthread_mutex_lock(&r->mu);
  int want = r->freezes + 1;
  pthread_mutex_unlock(&r->mu);
  ASSERT_EQ(write(r->ctl[1], "f", 1), 1);
  pthread_mutex_lock(&r->mu);
  while (r->freezes < want)
    pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
}

/* Waits until the relay has accepted more than |n| connections, or |ms| pass; returns the count. */
static int relay_wait_accepted(struct relay *r, int n, int ms)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&r->mu);
  while (r->accepted <= n)
    if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
      break;
  int got = r->accepted;
  pthread_mutex_unlock(&r->mu);
  return got;
}

static void relay_stop(struct relay *r)
{
  ASSERT_EQ(write(r->ctl[1], "q", 1), 1);
  ASSERT_OK(pthread_join(r->thread, NULL));
  close(r->lfd);
  close(r->ctl[0]);
  close(r->ctl[1]);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
}

/* ------------------------------------------------------------------ keepalive */

static const char *o_echo(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ctx;
  (void)ud;
  return input;
}

#define SILENCE_NOTICED_MS 20000 /* 1 s keepalive + 1 s timeout + reconnect backoff, with a wide margin */

TEST_IMPL(scen_keepalive_silent_connection)
{
  sc_hub h;
  /* Health pings every second keep data flowing towards the worker, so that its 1 s pings are not counted
   * against it (taskhubd wants at most one ping per 10 s from a connection it sends nothing to). */
  const char *const args[] = {"--health-ping", "1", NULL};
  int rc = sc_hub_start(&h, args, NULL);
  if (rc != 0)
    return rc;
  struct relay r;
  relay_start(&r, h.srv.port);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", r.port);
  dt_worker_options opt;
  memset(&opt, 0, sizeof opt);
  opt.conn.keepalive_ms = 1000;
  opt.conn.keepalive_timeout_ms = 1000;
  dt_worker *w = NULL;
  ASSERT_OK(dt_worker_new(target, &opt, &w));
  ASSERT_OK(dt_worker_add_orchestrator(w, "Echo", o_echo, NULL));
  ASSERT_OK(dt_worker_start(w));

  char iid[64];
  sc_id(iid, sizeof iid, "keepalive");
  sc_schedule(&h, "Echo", "\"before\"", iid);
  dt_instance *in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, "\"before\"");
  dt_instance_free(in);

  int before = relay_accepted(&r);
  ASSERT_GE(before, 1);
  int64_t t0 = sc_mono_ms();
  relay_freeze(&r);
  int after = relay_wait_accepted(&r, before, SILENCE_NOTICED_MS);
  if (after <= before)
    TEST_FAIL("the worker did not reconnect within %d ms of its connection going silent (keepalive)",
              SILENCE_NOTICED_MS);
  fprintf(stderr, "the worker reconnected %lld ms after its connection went silent\n",
          (long long)(sc_mono_ms() - t0));

  sc_id(iid, sizeof iid, "keepalive");
  sc_schedule(&h, "Echo", "\"after\"", iid);
  in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, "\"after\"");
  dt_instance_free(in);

  dt_worker_free(w);
  relay_stop(&r);
  sc_hub_stop(&h);
  return 0;
}
