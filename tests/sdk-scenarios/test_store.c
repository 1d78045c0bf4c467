/*
 * The store underneath a running hub: PostgreSQL restarted (every connection cut, as in a failover) while
 * orchestrations are in flight. Runs in the pg registration only (it starts a PostgreSQL server of its own, so
 * the shared one stays up for the other tests); the RocksDB registration skips it.
 */
#include "sc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void reg(dt_worker *w)
{
  dt_worker_add_orchestrator(w, "Steps", steps, NULL);
  dt_worker_add_activity(w, "Inc", inc, NULL);
}

/* Runs `pg.sh CMD DIR`; its first output line in |out| (may be NULL). */
static void pg(const char *cmd, const char *dir, char *out, size_t cap)
{
  char line[1024];
  snprintf(line, sizeof line, "bash '%s' %s '%s'", TH_PG_SH, cmd, dir);
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
  if (!getenv("TASKHUBD_TEST_PG"))
    return TEST_SKIP; /* a PostgreSQL scenario */
  char dir[] = "/tmp/taskhubd-pgrestart-XXXXXX";
  ASSERT(mkdtemp(dir) != NULL);
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
  char rm[128];
  snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
  ASSERT_EQ(system(rm), 0);
  return 0;
}
