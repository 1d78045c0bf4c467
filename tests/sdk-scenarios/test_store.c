/*
 * The PostgreSQL store underneath running hubs, in the pg registration only (the RocksDB one skips these):
 *  - PostgreSQL restarted (every connection cut, as in a failover) while orchestrations are in flight; this test
 *    starts a PostgreSQL server of its own, so the shared one stays up for the other tests;
 *  - a replica stopped (SIGSTOP) past its partition lease, a standby taking over, then the stopped one resumed:
 *    it must not commit anything.
 */
#include "sc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_INSTANCES 40

static const char *inc(dt_activity_ctx *a, const char *input, void *ud)
{
  return dt_activity_printf(a, "%lld", sc_json_int(input) + 1);
}

/* Three steps around a timer, so that commits go on after the restart whatever the machine's speed. */
static const char *steps(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *v = dt_await(ctx, dt_call_activity(ctx, "Inc", input));
  dt_await(ctx, dt_create_timer_in(ctx, 1500));
  v = dt_await(ctx, dt_call_activity(ctx, "Inc", v));
  return dt_await(ctx, dt_call_activity(ctx, "Inc", v));
}

/* Three steps, no timer. */
static const char *chain(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *v = input;
  for (int i = 0; i < 3; i++)
    v = dt_await(ctx, dt_call_activity(ctx, "Inc", v));
  return v;
}

static void reg(dt_worker *w)
{
  dt_worker_add_orchestrator(w, "Chain", chain, NULL);
  dt_worker_add_orchestrator(w, "Steps", steps, NULL);
  dt_worker_add_activity(w, "Inc", inc, NULL);
}

/* Runs `pg.sh CMD DIR`; its first output line in |out| (may be NULL). */
static void pg(const char *cmd, const char *dir, char *out, size_t cap)
{
  char line[1024];
  if (dir[0])
    snprintf(line, sizeof line, "bash '%s' %s '%s'", TH_PG_SH, cmd, dir);
  else
    snprintf(line, sizeof line, "bash '%s' %s", TH_PG_SH, cmd);
  FILE *f = popen(line, "r");
  ASSERT(f != NULL);
  if (out && !fgets(out, (int)cap, f))
    TEST_FAIL("%s printed nothing", line);
  if (out)
    out[strcspn(out, "\n")] = 0;
  if (pclose(f) != 0)
    TEST_FAIL("%s failed", line);
}

TEST_IMPL(scen_postgres_restart_loses_nothing)
{
  const char *shared = getenv("TASKHUBD_TEST_PG");
  if (!shared)
    return TEST_SKIP; /* a PostgreSQL scenario */
  /* Under the shared server's directory, so that the fixture's stop ends this server too if the test dies. */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/restart-%d", shared, (int)getpid());
  char conninfo[512];
  pg("start", dir, conninfo, sizeof conninfo);
  const char *args[] = {"--store", conninfo, "--ops-listen", "127.0.0.1:0", NULL};
  sc_hub h;
  int rc = sc_hub_start(&h, args, reg);
  if (rc != 0)
    return rc;
  char iids[N_INSTANCES][64];
  for (int i = 0; i < N_INSTANCES; i++) {
    sc_id(iids[i], sizeof iids[i], "pgr");
    sc_schedule(&h, "Steps", "0", iids[i]); /* acknowledged: from here on it must finish */
  }
  /* Every instance is waiting on its timer (or about to): cut every connection now. */
  dt_instance *first = sc_until_status(&h, iids[0], DT_STATUS_RUNNING, SC_WAIT_MS);
  dt_instance_free(first);
  pg("restart", dir, NULL, 0);
  for (int i = 0; i < N_INSTANCES; i++) {
    dt_instance *in = sc_done(&h, iids[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    ASSERT_STR_EQ(in->output, "3");
    dt_instance_free(in);
  }
  /* The engine's commits after the restart found their connection cut and went through a new one. */
  ASSERT_GE(sc_log_count(&h.srv, "event=store_reconnected", NULL), 1);
  sc_hub_stop(&h);
  pg("stop", dir, NULL, 0);
  char rm[600];
  snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
  ASSERT_EQ(system(rm), 0);
  return 0;
}

/* A third replica started by hand (th_server waits for a server to serve, and a standby does not): its log in
 * |log|. */
static pid_t spawn_standby(const char *conninfo, const char *log)
{
  const char *bin = getenv("TASKHUBD_BIN");
  ASSERT(bin != NULL);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
      _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(bin, bin, "--listen", "127.0.0.1:0", "--store", conninfo, "--replica-id", "replica-c", "--ops-listen",
          "off", (char *)NULL);
    _exit(127);
  }
  return pid;
}

static const char *standby_log;

static bool standby_waiting(void *arg)
{
  (void)arg;
  FILE *f = fopen(standby_log, "r");
  if (!f)
    return false;
  char line[2048];
  bool found = false;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, "event=partitions_waiting") != NULL;
  fclose(f);
  return found;
}

struct child {
  pid_t pid;
  int status;
};

static bool child_exited(void *arg)
{
  struct child *c = arg;
  return waitpid(c->pid, &c->status, WNOHANG) == c->pid;
}

static void expect_done(sc_hub *h, char ids[][64], int n, const char *output)
{
  for (int i = 0; i < n; i++) {
    dt_instance *in = sc_done(h, ids[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    ASSERT_STR_EQ(in->output, output);
    dt_instance_free(in);
  }
}

TEST_IMPL(scen_postgres_stalled_replica_is_fenced)
{
  const char *pgdir = getenv("TASKHUBD_TEST_PG");
  if (!pgdir)
    return TEST_SKIP; /* a PostgreSQL scenario */
  /* Two replicas on one database of the shared server. */
  char cmd[1024], conninfo[512];
  snprintf(cmd, sizeof cmd, "createdb '%s' th_fence_%d", pgdir, (int)getpid());
  pg(cmd, "", conninfo, sizeof conninfo);
  const char *args_a[] = {"--store", conninfo, "--replica-id", "replica-a", "--partition-lease", "2",
                          "--ops-listen", "127.0.0.1:0", NULL};
  const char *args_b[] = {"--store", conninfo, "--replica-id", "replica-b", "--partition-lease", "2",
                          "--ops-listen", "127.0.0.1:0", NULL};
  sc_hub a, b;
  int rc = sc_hub_start(&a, args_a, reg);
  if (rc != 0)
    return rc;
  enum { N = 10 };
  char before[N][64], during[N][64], pending[N][64];
  for (int i = 0; i < N; i++)
    sc_schedule(&a, "Chain", "0", sc_id(before[i], sizeof before[i], "fa"));
  expect_done(&a, before, N, "3");
  /* Acknowledged by A, then A stalls with them waiting on their timers. */
  for (int i = 0; i < N; i++)
    sc_schedule(&a, "Steps", "0", sc_id(pending[i], sizeof pending[i], "fp"));
  th_server_signal(&a.srv, SIGSTOP);

  /* B takes the partitions once A's lease has run out, and runs everything. */
  rc = sc_hub_start(&b, args_b, reg);
  ASSERT_EQ(rc, 0);
  ASSERT_GE(sc_log_count(&b.srv, "event=partitions_taken", "owner=replica-b"), 1);
  for (int i = 0; i < N; i++)
    sc_schedule(&b, "Chain", "10", sc_id(during[i], sizeof during[i], "fb"));
  expect_done(&b, during, N, "13");
  expect_done(&b, pending, N, "3");
  expect_done(&b, before, N, "3");

  /* A third replica waits as a standby while B owns the partitions, and a SIGTERM ends the wait at once. */
  char log[256];
  snprintf(log, sizeof log, "/tmp/taskhubd-standby-%d.log", (int)getpid());
  standby_log = log;
  struct child c = {spawn_standby(conninfo, log), 0};
  if (!sc_poll(standby_waiting, NULL, 20000))
    TEST_FAIL("the third replica never reported waiting for the partitions");
  kill(c.pid, SIGTERM);
  if (!sc_poll(child_exited, &c, 10000))
    TEST_FAIL("a standby waiting for the partitions did not stop on SIGTERM");
  ASSERT(WIFEXITED(c.status));
  ASSERT_EQ(WEXITSTATUS(c.status), 0);
  unlink(log);

  /* A resumes: whatever it tries to commit is refused, and it leaves. */
  th_server_signal(&a.srv, SIGCONT);
  dt_start_options o;
  memset(&o, 0, sizeof o);
  o.instance_id = "late-through-a";
  char *got = NULL;
  int late = dt_client_schedule(a.c, "Chain", &o, &got);
  free(got);
  int status = 0;
  if (!th_server_wait_exit(&a.srv, 20000, &status))
    TEST_FAIL("the stalled replica went on running after its partitions were taken");
  ASSERT(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 3);
  ASSERT_GE(sc_log_count(&a.srv, "event=commit_fenced", "owner=replica-a"), 1);
  ASSERT_EQ(sc_log_count(&a.srv, "event=fenced_exit", NULL), 1);
  ASSERT(late != DT_OK); /* never acknowledged */
  ASSERT(sc_get(&b, "late-through-a", false) == NULL);
  fprintf(stderr, "stalled replica: %d commits refused by the fence\n",
          sc_log_count(&a.srv, "event=commit_fenced", NULL));
  dt_worker_free(a.w);
  a.w = NULL;
  dt_client_close(a.c);
  a.c = NULL;
  th_server_free(&a.srv);
  sc_hub_stop(&b);
  return 0;
}

/* A replica killed mid-load: a standby takes its partitions once the lease runs out and finishes everything it
 * had acknowledged. */
TEST_IMPL(scen_postgres_killed_replica_fails_over)
{
  const char *pgdir = getenv("TASKHUBD_TEST_PG");
  if (!pgdir)
    return TEST_SKIP; /* a PostgreSQL scenario */
  char cmd[1024], conninfo[512];
  snprintf(cmd, sizeof cmd, "createdb '%s' th_kill_%d", pgdir, (int)getpid());
  pg(cmd, "", conninfo, sizeof conninfo);
  const char *args_a[] = {"--store", conninfo, "--replica-id", "replica-a", "--partition-lease", "2", NULL};
  const char *args_b[] = {"--store", conninfo, "--replica-id", "replica-b", "--partition-lease", "2", NULL};
  sc_hub a, b;
  int rc = sc_hub_start(&a, args_a, reg);
  if (rc != 0)
    return rc;
  enum { N = 30 };
  char ids[N][64];
  for (int i = 0; i < N; i++)
    sc_schedule(&a, i % 2 ? "Steps" : "Chain", "0", sc_id(ids[i], sizeof ids[i], "fk"));
  dt_instance *first = sc_until_status(&a, ids[1], DT_STATUS_RUNNING, SC_WAIT_MS);
  dt_instance_free(first);
  th_server_kill(&a.srv); /* SIGKILL: no hand-over, the lease has to run out */
  int64_t t0 = sc_mono_ms();
  rc = sc_hub_start(&b, args_b, reg);
  ASSERT_EQ(rc, 0);
  fprintf(stderr, "standby serving %lld ms after the kill\n", (long long)(sc_mono_ms() - t0));
  ASSERT_GE(sc_log_count(&b.srv, "event=partitions_taken", "owner=replica-b"), 1);
  expect_done(&b, ids, N, "3");
  dt_worker_free(a.w);
  a.w = NULL;
  dt_client_close(a.c);
  a.c = NULL;
  th_server_free(&a.srv);
  sc_hub_stop(&b);
  return 0;
}
