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

TEST_IMPL(scen_postgres_restart_loses_nothing)
{
  const char *shared = getenv("TASKHUBD_TEST_PG");
  if (!shared)
    return TEST_SKIP; /* a PostgreSQL scenario */
  /* Under the shared server's directory, so that the fixture's stop ends this server too if the test dies. */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/restart-%d", shared, (int)getpid());
  char conninfo[512];
  sc_pg_sh("start", dir, conninfo, sizeof conninfo);
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
  sc_pg_sh("restart", dir, NULL, 0);
  for (int i = 0; i < N_INSTANCES; i++) {
    dt_instance *in = sc_done(&h, iids[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    ASSERT_STR_EQ(in->output, "3");
    dt_instance_free(in);
  }
  /* The engine's commits after the restart found their connection cut and went through a new one. */
  ASSERT_GE(sc_log_count(&h.srv, "event=store_reconnected", NULL), 1);
  sc_hub_stop(&h);
  sc_pg_sh("stop", dir, NULL, 0);
  char rm[600];
  snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
  ASSERT_EQ(system(rm), 0);
  return 0;
}

struct took {
  const th_server *srv;
  const char *owner;
};

/* Replicas serve before they own anything: the partitions follow once the leases allow. */
static bool took_partitions(void *arg)
{
  const struct took *t = arg;
  return sc_log_count(t->srv, "event=partitions_taken", t->owner) >= 1;
}

struct renewals {
  const th_server *srv;
  long long until;
};

static bool renewed(void *arg)
{
  const struct renewals *r = arg;
  return sc_metric(r->srv, "taskhubd_partition_lease_renewals_total") >= r->until;
}

/* A fresh database of the shared test server, for the replicas of one test: its conninfo in |conninfo|. */
static void fresh_db(const char *pgdir, const char *name, char *conninfo, size_t cap)
{
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "createdb '%s' th_%s_%d", pgdir, name, (int)getpid());
  sc_pg_sh(cmd, "", conninfo, cap);
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
  char conninfo[512];
  fresh_db(pgdir, "fence", conninfo, sizeof conninfo);
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
  struct took tb = {&b.srv, "owner=replica-b"};
  if (!sc_poll(took_partitions, &tb, 20000))
    TEST_FAIL("replica B never took the stalled replica's partitions");
  for (int i = 0; i < N; i++)
    sc_schedule(&b, "Chain", "10", sc_id(during[i], sizeof during[i], "fb"));
  expect_done(&b, during, N, "13");
  expect_done(&b, pending, N, "3");
  expect_done(&b, before, N, "3");

  /* A third replica without a worker owns nothing while B (with one) is live, and still serves: an orchestration
   * started and waited for through it runs on B. */
  const char *args_c[] = {"--store", conninfo, "--replica-id", "replica-c", "--partition-lease", "2", NULL};
  sc_hub c3;
  ASSERT_EQ(sc_hub_start(&c3, args_c, NULL), 0);
  char via_c[64];
  sc_schedule(&c3, "Chain", "20", sc_id(via_c, sizeof via_c, "fc"));
  dt_instance *vc = sc_done(&c3, via_c, SC_WAIT_MS);
  SC_EXPECT_STATUS(vc, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(vc->output, "23");
  dt_instance_free(vc);
  /* Two of B's lease rounds with C live (each one reckons the shares): B keeps all 32, C took none. Before
   * replicas said whether workers were connected, B gave C half here. */
  struct renewals rb = {&b.srv, sc_metric(&b.srv, "taskhubd_partition_lease_renewals_total") + 2};
  if (!sc_poll(renewed, &rb, 20000))
    TEST_FAIL("replica B stopped renewing its partitions");
  ASSERT_EQ(sc_metric(&b.srv, "taskhubd_partitions_owned"), 32);
  ASSERT_EQ(sc_log_count(&b.srv, "event=partition_shed", NULL), 0);
  ASSERT_EQ(sc_log_count(&c3.srv, "event=partitions_taken", NULL), 0);
  sc_hub_stop(&c3);

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
  sc_hub_stop(&a);
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
  char conninfo[512];
  fresh_db(pgdir, "kill", conninfo, sizeof conninfo);
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
  struct took tb = {&b.srv, "owner=replica-b"};
  if (!sc_poll(took_partitions, &tb, 20000))
    TEST_FAIL("replica B never took the killed replica's partitions");
  fprintf(stderr, "replica B took partitions %lld ms after the kill\n", (long long)(sc_mono_ms() - t0));
  expect_done(&b, ids, N, "3");
  sc_hub_stop(&a);
  sc_hub_stop(&b);
  return 0;
}

/* ------------------------------------------------------------------ three replicas, one task hub */

/* Three activities at once, summed. */
static const char *fan(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_task *t[3];
  for (int i = 0; i < 3; i++)
    t[i] = dt_call_activity(ctx, "Inc", input);
  dt_await(ctx, dt_when_all(ctx, t, 3));
  long long sum = 0;
  for (int i = 0; i < 3; i++)
    sum += sc_json_int(dt_task_result(t[i]));
  return dt_ctx_printf(ctx, "%lld", sum);
}

/* A child (whose id hashes to some partition, usually another replica's) and an event raised from outside. */
static const char *parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  char child[96];
  snprintf(child, sizeof child, "%s-child", dt_instance_id(ctx));
  const char *c = dt_await(ctx, dt_call_sub_orchestrator(ctx, "Chain", child, input));
  const char *go = dt_await(ctx, dt_wait_event(ctx, "Go"));
  return dt_ctx_printf(ctx, "%lld", sc_json_int(c) + sc_json_int(go));
}

static void reg3(dt_worker *w)
{
  reg(w);
  dt_worker_add_orchestrator(w, "Fan", fan, NULL);
  dt_worker_add_orchestrator(w, "Parent", parent, NULL);
}

struct spread {
  sc_hub *h;
  int n;
};

/* Every replica has taken partitions (the share moved to each as it came). */
static bool spread_out(void *arg)
{
  struct spread *s = arg;
  for (int i = 0; i < s->n; i++)
    if (sc_log_count(&s->h[i].srv, "event=partitions_taken", NULL) < 1)
      return false;
  return true;
}

/*
 * Three replicas on one database, a worker on each: orchestrations started through all three (chains, fan-outs,
 * parents whose children land on other partitions), events raised through a replica other than the one that
 * started the instance, and every completion waited for through the third. Every one completes with its output.
 */
TEST_IMPL(scen_postgres_three_replicas)
{
  const char *pgdir = getenv("TASKHUBD_TEST_PG");
  if (!pgdir)
    return TEST_SKIP; /* a PostgreSQL scenario */
  char conninfo[512];
  fresh_db(pgdir, "three", conninfo, sizeof conninfo);
  enum { R = 3, N = 2000 };
  sc_hub h[R];
  static const char *names[R] = {"replica-1", "replica-2", "replica-3"};
  for (int r = 0; r < R; r++) {
    const char *args[] = {"--store", conninfo, "--replica-id", names[r], "--partition-lease", "3", NULL};
    int rc = sc_hub_start(&h[r], args, reg3);
    if (rc != 0)
      return rc;
  }
  struct spread sp = {h, R};
  if (!sc_poll(spread_out, &sp, 30000))
    TEST_FAIL("the partitions did not spread over the three replicas");
  static char ids[N][64];
  static const char *kinds[3] = {"Chain", "Fan", "Parent"};
  for (int i = 0; i < N; i++)
    sc_schedule(&h[i % R], kinds[i % 3], "1", sc_id(ids[i], sizeof ids[i], "three"));
  for (int i = 2; i < N; i += 3)
    sc_raise(&h[(i + 1) % R], ids[i], "Go", "100");
  for (int i = 0; i < N; i++) {
    static const char *want[3] = {"4", "6", "104"};
    dt_instance *in = sc_done(&h[(i + 2) % R], ids[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    ASSERT_STR_EQ(in->output, want[i % 3]);
    dt_instance_free(in);
  }
  /* Each replica still owns a share: nobody was fenced or left. */
  for (int r = 0; r < R; r++) {
    ASSERT_EQ(sc_log_count(&h[r].srv, "event=commit_fenced", NULL), 0);
    ASSERT_EQ(sc_log_count(&h[r].srv, "event=partition_lost", NULL), 0);
  }
  for (int r = 0; r < R; r++)
    sc_hub_stop(&h[r]);
  return 0;
}
