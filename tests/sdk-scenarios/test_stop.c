/*
 * Worker shutdown with activities in flight, against taskhubd --orphan-grace 1.
 *
 * scen_worker_stop_with_activities_in_flight: worker A (2 activity threads) holds a fan-out of 6 activities; two
 * are running (blocked on a gate), the rest wait in A's queue. dt_worker_stop(A) from another thread: the work-item
 * stream is closed at once (the server logs the disconnect) while stop waits for the running activities; once they
 * return, stop abandons the queued ones and returns, and A has started nothing else. Worker B then finishes the
 * orchestration: it runs exactly the activities A did not (A's two late completions are accepted within the grace
 * period). LeakSanitizer checks that stopping and freeing A leaks nothing.
 *
 * scen_worker_killed_redelivered_at_once: worker A runs in a forked process that is SIGKILLed while two of its
 * activities run, so no completion and no abandon ever arrives. Worker B (this process) gets every orphaned
 * activity as soon as it connects, long before the 30 s orphan grace ends, and the orchestration completes (a
 * rolling deploy must not stall in-flight work for the grace period).
 *
 * scen_worker_stream_lost_drops_queued: worker A holds the fan-out as in the first test (two activities running,
 * four queued) when taskhubd is SIGKILLed and started again on the same port. The tokens of A's queued items died
 * with the old stream, and the new server hands all six out again: A drops the queued four instead of running them
 * for nothing, so each of those runs once, and only the two that were running when the stream died run twice.
 */
#include "sc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 6, A_THREADS = 2 };

static const char *const SERVER_ARGS[] = {"--orphan-grace", "1", NULL};
static const char *const LONG_GRACE_ARGS[] = {"--orphan-grace", "30", NULL};

/* ------------------------------------------------------------------ shared state */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_a_started;          /* activities worker A has entered */
static int32_t g_a_ids[N * 2];   /* their task ids */
static bool g_release;           /* opens the gate for A's activities */
static int g_b_runs[N + 1];      /* task id -> executions by worker B */
static int64_t g_b_first_ms[N + 1]; /* task id -> monotonic time of B's first execution */
static int g_pipe_wr = -1;       /* forked worker A: reports each started task id */

static int64_t slow_result(const char *input)
{
  return sc_json_int(input) * 10;
}

/* Worker A, in this process: records the start, then blocks until the test opens the gate. */
static const char *slow_a(dt_activity_ctx *a, const char *input, void *ud)
{
  pthread_mutex_lock(&g_mu);
  g_a_ids[g_a_started++] = dt_activity_task_id(a);
  pthread_cond_broadcast(&g_cv);
  while (!g_release)
    pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  return dt_activity_printf(a, "%lld", (long long)slow_result(input));
}

/* Worker A, in the forked process: reports the start through the pipe, then never returns. */
static const char *slow_forked(dt_activity_ctx *a, const char *input, void *ud)
{
  int32_t id = dt_activity_task_id(a);
  ssize_t w = write(g_pipe_wr, &id, sizeof id);
  (void)w;
  for (;;)
    pause();
  return NULL;
}

/* Worker B: records and completes at once. */
static const char *slow_b(dt_activity_ctx *a, const char *input, void *ud)
{
  int32_t id = dt_activity_task_id(a);
  pthread_mutex_lock(&g_mu);
  if (id >= 1 && id <= N) {
    if (g_b_runs[id]++ == 0)
      g_b_first_ms[id] = sc_mono_ms();
  }
  pthread_mutex_unlock(&g_mu);
  return dt_activity_printf(a, "%lld", (long long)slow_result(input));
}

static const char *fan_slow(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *t[N];
  for (int i = 0; i < N; i++)
    t[i] = dt_call_activity(ctx, "slow", dt_ctx_printf(ctx, "%d", i + 1));
  dt_await(ctx, dt_when_all(ctx, t, N));
  const char *out = "[";
  for (int i = 0; i < N; i++)
    out = dt_ctx_printf(ctx, "%s%s%s", out, i ? "," : "", dt_task_result(t[i]));
  return dt_ctx_printf(ctx, "%s]", out);
}

static void reg_a(dt_worker *w)
{
  ASSERT_OK(dt_worker_add_orchestrator(w, "fan_slow", fan_slow, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "slow", slow_a, NULL));
}

static void reg_forked(dt_worker *w)
{
  ASSERT_OK(dt_worker_add_orchestrator(w, "fan_slow", fan_slow, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "slow", slow_forked, NULL));
}

static void reg_b(dt_worker *w)
{
  ASSERT_OK(dt_worker_add_orchestrator(w, "fan_slow", fan_slow, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "slow", slow_b, NULL));
}

static const char *expected_output(void)
{
  return "[10,20,30,40,50,60]";
}

static const dt_worker_options A_OPTIONS = {.activity_threads = A_THREADS, .max_activities = 10};

/* ------------------------------------------------------------------ helpers */

static bool a_started_two(void *arg)
{
  pthread_mutex_lock(&g_mu);
  bool ok = g_a_started >= A_THREADS;
  pthread_mutex_unlock(&g_mu);
  return ok;
}

struct log_wait {
  const th_server *srv;
  const char *needle;
};

static bool log_contains(void *arg)
{
  struct log_wait *lw = arg;
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/log-%d.txt", lw->srv->root, lw->srv->starts - 1);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  bool found = false;
  char line[4096];
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, lw->needle) != NULL;
  fclose(f);
  return found;
}

struct stopper {
  dt_worker *w;
  bool done;
};

static void *stop_main(void *arg)
{
  struct stopper *s = arg;
  dt_worker_stop(s->w);
  pthread_mutex_lock(&g_mu);
  s->done = true;
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

/* ------------------------------------------------------------------ tests */

TEST_IMPL(scen_worker_stop_with_activities_in_flight)
{
  sc_hub h;
  int rc = sc_hub_start(&h, SERVER_ARGS, NULL);
  if (rc)
    return rc;
  dt_worker *a = sc_worker_start(&h, reg_a, &A_OPTIONS);
  char iid[96];
  sc_id(iid, sizeof iid, "stop-inflight");
  sc_schedule(&h, "fan_slow", NULL, iid);
  if (!sc_poll(a_started_two, NULL, SC_WAIT_MS))
    TEST_FAIL("worker A did not start %d activities", A_THREADS);

  struct stopper st = {a, false};
  pthread_t t;
  ASSERT_OK(pthread_create(&t, NULL, stop_main, &st));
  /* the stream closes at once, while the running activities keep dt_worker_stop() waiting */
  struct log_wait lw = {&h.srv, "event=worker_disconnected"};
  if (!sc_poll(log_contains, &lw, 15000))
    TEST_FAIL("the server did not see worker A disconnect while its activities were running");
  pthread_mutex_lock(&g_mu);
  ASSERT(!st.done); /* stop waits for the activities it is running */
  ASSERT_EQ(g_a_started, A_THREADS);
  g_release = true;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  ASSERT_OK(pthread_join(t, NULL));
  ASSERT(st.done);
  pthread_mutex_lock(&g_mu);
  ASSERT_EQ(g_a_started, A_THREADS); /* nothing new started once stop began */
  int32_t a_ids[A_THREADS];
  memcpy(a_ids, g_a_ids, sizeof a_ids);
  pthread_mutex_unlock(&g_mu);
  dt_worker_free(a);

  /* the instance is still running; worker B finishes it */
  dt_instance *in = sc_get(&h, iid, false);
  SC_EXPECT_STATUS(in, DT_STATUS_RUNNING);
  dt_instance_free(in);
  h.w = sc_worker_start(&h, reg_b, NULL);
  in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, expected_output());
  dt_instance_free(in);

  /* B ran exactly the activities A did not: A's late completions counted, the abandoned ones came back */
  pthread_mutex_lock(&g_mu);
  for (int32_t id = 1; id <= N; id++) {
    bool by_a = id == a_ids[0] || id == a_ids[1];
    if (g_b_runs[id] != (by_a ? 0 : 1))
      TEST_FAIL("task %d: run %d times by worker B (ran on A: %s)", id, g_b_runs[id], by_a ? "yes" : "no");
  }
  pthread_mutex_unlock(&g_mu);
  sc_hub_stop(&h);
  return 0;
}

static void forked_worker_main(const char *target, int wr)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGABRT, SIG_DFL); /* the parent's abort handler kills its server; not ours to run */
  if (getppid() == 1)
    _exit(1);
  g_pipe_wr = wr;
  dt_worker *w = NULL;
  if (dt_worker_new(target, &A_OPTIONS, &w) != DT_OK)
    _exit(2);
  reg_forked(w);
  if (dt_worker_start(w) != DT_OK)
    _exit(3);
  for (;;)
    pause(); /* until SIGKILL */
}

TEST_IMPL(scen_worker_killed_redelivered_at_once)
{
  sc_hub h;
  memset(&h, 0, sizeof h);
  int rc = th_server_start(&h.srv, LONG_GRACE_ARGS);
  if (rc)
    return rc;
  snprintf(h.target, sizeof h.target, "127.0.0.1:%d", h.srv.port);
  /* fork before this process touches gRPC */
  int p[2];
  ASSERT_OK(pipe(p));
  fflush(stdout);
  fflush(stderr);
  pid_t child = fork();
  ASSERT(child >= 0);
  if (child == 0) {
    close(p[0]);
    forked_worker_main(h.target, p[1]);
  }
  close(p[1]);
  ASSERT_OK(dt_client_open(h.target, NULL, &h.c));
  char iid[96];
  sc_id(iid, sizeof iid, "killed");
  sc_schedule(&h, "fan_slow", NULL, iid);

  /* wait until the forked worker runs A_THREADS activities */
  int32_t a_ids[A_THREADS];
  size_t got = 0;
  int64_t deadline = sc_mono_ms() + SC_WAIT_MS;
  while (got < sizeof a_ids) {
    int64_t left = deadline - sc_mono_ms();
    if (left <= 0)
      TEST_FAIL("the forked worker started %zu of %d activities", got / sizeof(int32_t), A_THREADS);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    ASSERT(r >= 0);
    if (r == 0)
      continue;
    ssize_t n = read(p[0], (char *)a_ids + got, sizeof a_ids - got);
    if (n <= 0)
      TEST_FAIL("the forked worker went away (read %zd)", n);
    got += (size_t)n;
  }
  close(p[0]);

  int64_t kill_ms = sc_mono_ms();
  ASSERT_OK(kill(child, SIGKILL));
  int ws = 0;
  ASSERT_EQ(waitpid(child, &ws, 0), child);
  ASSERT(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);

  /* worker B gets every orphaned activity back at once, without waiting for the grace period */
  h.w = sc_worker_start(&h, reg_b, NULL);
  dt_instance *in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, expected_output());
  dt_instance_free(in);
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < A_THREADS; i++) {
    int32_t id = a_ids[i];
    ASSERT(id >= 1 && id <= N);
    ASSERT_EQ(g_b_runs[id], 1);
    /* well within the 30 s of --orphan-grace */
    ASSERT_LT(g_b_first_ms[id] - kill_ms, 15000);
  }
  for (int32_t id = 1; id <= N; id++)
    ASSERT_GE(g_b_runs[id], 1);
  pthread_mutex_unlock(&g_mu);
  struct log_wait lw = {&h.srv, "event=worker_disconnected"};
  ASSERT(log_contains(&lw));
  sc_hub_stop(&h);
  return 0;
}

/* A loopback port free now, for a server that must come back on the same one. */
static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
  close(fd);
  return ntohs(sa.sin_port);
}

TEST_IMPL(scen_worker_stream_lost_drops_queued)
{
  char listen[32];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
  const char *const args[] = {"--listen", listen, NULL};
  sc_hub h;
  int rc = sc_hub_start(&h, args, NULL);
  if (rc)
    return rc;
  h.w = sc_worker_start(&h, reg_a, &A_OPTIONS);
  char iid[96];
  sc_id(iid, sizeof iid, "stream-lost");
  sc_schedule(&h, "fan_slow", NULL, iid);
  if (!sc_poll(a_started_two, NULL, SC_WAIT_MS))
    TEST_FAIL("worker A did not start %d activities", A_THREADS);
  int32_t running[A_THREADS];
  pthread_mutex_lock(&g_mu);
  memcpy(running, g_a_ids, sizeof running);
  pthread_mutex_unlock(&g_mu);

  /* The server dies with A's stream; the same server comes back on the same port and A reconnects. */
  th_server_kill(&h.srv);
  th_server_restart(&h.srv);
  ASSERT_EQ(h.srv.port, atoi(strchr(listen, ':') + 1));
  pthread_mutex_lock(&g_mu);
  g_release = true;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  dt_instance *in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, expected_output());
  dt_instance_free(in);

  pthread_mutex_lock(&g_mu);
  int runs[N + 1] = {0};
  for (int i = 0; i < g_a_started; i++) {
    ASSERT(g_a_ids[i] >= 1 && g_a_ids[i] <= N);
    runs[g_a_ids[i]]++;
  }
  for (int32_t id = 1; id <= N; id++) {
    bool was_running = id == running[0] || id == running[1];
    if (runs[id] != (was_running ? 2 : 1))
      TEST_FAIL("task %d (%s when the stream died) ran %d times", id, was_running ? "running" : "queued", runs[id]);
  }
  pthread_mutex_unlock(&g_mu);
  sc_hub_stop(&h);
  return 0;
}
