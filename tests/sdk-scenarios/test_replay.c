/*
 * Replay-related scenarios, C SDK as worker and client (mirrors test_worker.py sections 12-13 and
 * worker-rewind.test.js): rewind (a failed activity; a failed child; a purged failed child), rewind/restart
 * preconditions, restart in place and under a new id, the history layout through dt_client_history, and
 * dt_new_uuid being the same on every replay.
 */
#include "sc.h"

#include <ctype.h>
#include <pthread.h>

/* ------------------------------------------------------------------ activities */

static const char *plain_activity(dt_activity_ctx *a, const char *input, void *ud)
{
  sc_record("plain", dt_activity_instance_id(a), dt_activity_task_id(a));
  return dt_activity_printf(a, "\"plain:%s\"", sc_unquote_act(a, input));
}

static const char *fails_first_time(dt_activity_ctx *a, const char *input, void *ud)
{
  int n = sc_record("fails_first", dt_activity_instance_id(a), dt_activity_task_id(a));
  if (n == 1) {
    dt_activity_fail(a, "RuntimeError", "first call fails");
    return NULL;
  }
  return dt_activity_printf(a, "\"second:%s\"", sc_unquote_act(a, input));
}

static const char *counting_activity(dt_activity_ctx *a, const char *input, void *ud)
{
  sc_record("restart", dt_activity_instance_id(a), dt_activity_task_id(a));
  return dt_activity_printf(a, "%lld", sc_json_int(input) + 1);
}

static const char *hist_activity(dt_activity_ctx *a, const char *input, void *ud)
{
  return dt_activity_printf(a, "\"act(%s)\"", sc_unquote_act(a, input));
}

/* What record_uuids saw, by instance id (one instance per test process). */
static pthread_mutex_t g_uuid_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_uuid_seen[256];
static int g_uuid_calls;

static const char *record_uuids(dt_activity_ctx *a, const char *input, void *ud)
{
  pthread_mutex_lock(&g_uuid_mu);
  snprintf(g_uuid_seen, sizeof g_uuid_seen, "%s", input ? input : "");
  g_uuid_calls++;
  pthread_mutex_unlock(&g_uuid_mu);
  return NULL;
}

/* ------------------------------------------------------------------ orchestrators */

static const char *rewind_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_activity(ctx, "plain_activity", input));
  const char *b = dt_await(ctx, dt_call_activity(ctx, "fails_first_time", input));
  return dt_ctx_printf(ctx, "[%s,%s]", a, b);
}

static const char *rew_child(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *r = dt_await(ctx, dt_call_activity(ctx, "fails_first_time", input));
  return dt_ctx_printf(ctx, "{\"x\":%s,\"r\":%s}", input, r);
}

static const char *rew_parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *pre = dt_await(ctx, dt_call_activity(ctx, "plain_activity", input));
  const char *child = dt_await(ctx, dt_call_sub_orchestrator(ctx, "rew_child", sc_child_id(ctx), input));
  return dt_ctx_printf(ctx, "{\"pre\":%s,\"child\":%s}", pre, child);
}

static const char *restart_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *r = dt_await(ctx, dt_call_activity(ctx, "counting_activity", input));
  return dt_ctx_printf(ctx, "{\"input\":%s,\"result\":%s}", input, r);
}

static const char *hist_child(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_ctx_printf(ctx, "\"child(%s)\"", sc_unquote_ctx(ctx, input));
}

static const char *hist_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_activity(ctx, "hist_activity", input));
  dt_await(ctx, dt_create_timer_in(ctx, 50));
  const char *c = dt_await(ctx, dt_call_sub_orchestrator(ctx, "hist_child", sc_child_id(ctx), input));
  return dt_ctx_printf(ctx, "[%s,%s]", a, c);
}

/* Two UUIDs in the first turn, shown as custom status and handed to an activity (which runs once, in that turn);
 * every later turn replays them. The output, written in the third turn, holds the replayed values and a third
 * UUID taken after the replay. */
static const char *uuid_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *u1 = dt_new_uuid(ctx), *u2 = dt_new_uuid(ctx);
  const char *pair = dt_ctx_printf(ctx, "[\"%s\",\"%s\"]", u1, u2);
  dt_set_custom_status(ctx, pair);
  dt_await(ctx, dt_call_activity(ctx, "record_uuids", pair)); /* end of turn 1 */
  dt_await(ctx, dt_wait_event(ctx, "go"));                    /* end of turn 2 */
  const char *u3 = dt_new_uuid(ctx);
  return dt_ctx_printf(ctx, "[\"%s\",\"%s\",\"%s\",%s]", u1, u2, u3, dt_is_replaying(ctx) ? "true" : "false");
}

static void reg(dt_worker *w)
{
  ASSERT_OK(dt_worker_add_activity(w, "plain_activity", plain_activity, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "fails_first_time", fails_first_time, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "counting_activity", counting_activity, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "hist_activity", hist_activity, NULL));
  ASSERT_OK(dt_worker_add_activity(w, "record_uuids", record_uuids, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "rewind_orch", rewind_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "rew_child", rew_child, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "rew_parent", rew_parent, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "restart_orch", restart_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "wait_event_orch", sc_wait_event_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "hist_child", hist_child, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "hist_orch", hist_orch, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "uuid_orch", uuid_orch, NULL));
}

static char *execution_id(sc_hub *h, const char *iid)
{
  dt_instance *st = sc_get(h, iid, false);
  ASSERT(st != NULL && st->execution_id != NULL);
  char *e = strdup(st->execution_id);
  dt_instance_free(st);
  return e;
}

/* ------------------------------------------------------------------ 12. rewind */

TEST_IMPL(scen_rewind_failed_activity)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "rewind");
  sc_schedule(&h, "rewind_orch", "\"x\"", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_FAILED);
  ASSERT_STR_CONTAINS(st->failure->message, "first call fails");
  dt_instance_free(st);
  ASSERT_EQ(sc_attempts("plain", iid), 1);
  ASSERT_EQ(sc_attempts("fails_first", iid), 1);

  ASSERT_OK(dt_client_rewind(h.c, iid, "try again"));
  /* the rewind makes the instance non-FAILED before it returns */
  st = sc_get(&h, iid, false);
  ASSERT_NE(st->status, DT_STATUS_FAILED);
  dt_instance_free(st);
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "[\"plain:x\",\"second:x\"]");
  ASSERT(st->failure == NULL);
  dt_instance_free(st);
  ASSERT_EQ(sc_attempts("fails_first", iid), 2); /* only the failed activity ran again */
  ASSERT_EQ(sc_attempts("plain", iid), 1);       /* one that succeeded is not re-executed */

  dt_history *hist = sc_history(&h, iid);
  ASSERT_EQ(sc_history_count(hist, "TaskFailed"), 0);
  ASSERT_GE(sc_history_count(hist, "ExecutionRewound"), 1);
  ASSERT_EQ(sc_history_count(hist, "ExecutionCompleted"), 1);
  dt_history_free(hist);
  sc_hub_stop(&h);
  return 0;
}

static void rewind_parent_child(bool purge_child)
{
  sc_hub h;
  ASSERT_OK(sc_hub_start(&h, NULL, reg));
  char iid[96], cid[128];
  sc_id(iid, sizeof iid, purge_child ? "rewind-purged" : "rewind-parent");
  snprintf(cid, sizeof cid, "%s-child", iid);
  sc_schedule(&h, "rew_parent", "\"p\"", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_FAILED);
  dt_instance_free(st);
  st = sc_get(&h, cid, false);
  SC_EXPECT_STATUS(st, DT_STATUS_FAILED);
  dt_instance_free(st);
  char *exec1 = execution_id(&h, iid);
  if (purge_child) {
    int deleted = -1;
    ASSERT_OK(dt_client_purge(h.c, cid, false, &deleted));
    ASSERT_EQ(deleted, 1);
    ASSERT(sc_get(&h, cid, false) == NULL);
  }

  ASSERT_OK(dt_client_rewind(h.c, iid, "retry the child"));
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"pre\":\"plain:p\",\"child\":{\"x\":\"p\",\"r\":\"second:p\"}}");
  dt_instance_free(st);
  st = sc_done(&h, cid, SC_WAIT_MS); /* rewound (or re-created) too */
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "{\"x\":\"p\",\"r\":\"second:p\"}");
  dt_instance_free(st);
  char *exec2 = execution_id(&h, iid);
  ASSERT(strcmp(exec1, exec2) != 0); /* the rewound history gives the parent a new execution id */
  free(exec1);
  free(exec2);
  ASSERT_EQ(sc_attempts("plain", iid), 1);      /* the parent's succeeded activity was not re-run */
  ASSERT_EQ(sc_attempts("fails_first", cid), 2); /* the child's failed activity ran again once */
  sc_hub_stop(&h);
}

TEST_IMPL(scen_rewind_failed_child)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  rewind_parent_child(false);
  return 0;
}

TEST_IMPL(scen_rewind_purged_child)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  rewind_parent_child(true);
  return 0;
}

TEST_IMPL(scen_rewind_restart_preconditions)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "precond");
  sc_schedule(&h, "wait_event_orch", NULL, iid);
  dt_instance *st = sc_started(&h, iid);
  SC_EXPECT_STATUS(st, DT_STATUS_RUNNING);
  dt_instance_free(st);
  /* a running instance can be neither rewound nor restarted in place ... */
  ASSERT_EQ(dt_client_rewind(h.c, iid, NULL), DT_ERR_STATE);
  char *nid = NULL;
  ASSERT_EQ(dt_client_restart(h.c, iid, false, &nid), DT_ERR_STATE);
  ASSERT(nid == NULL);
  /* ... but it can be restarted under a new id */
  ASSERT_OK(dt_client_restart(h.c, iid, true, &nid));
  ASSERT(nid != NULL && strcmp(nid, iid) != 0);
  const char *ids[2] = {iid, nid};
  for (int i = 0; i < 2; i++) {
    st = sc_started(&h, ids[i]);
    dt_instance_free(st);
    char data[160];
    snprintf(data, sizeof data, "\"%s\"", ids[i]);
    sc_raise(&h, ids[i], "proceed", data);
    st = sc_done(&h, ids[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
    char want[200];
    snprintf(want, sizeof want, "{\"got\":%s}", data);
    ASSERT_STR_EQ(st->output, want);
    dt_instance_free(st);
  }
  dt_free(nid);
  /* a completed (not failed) instance cannot be rewound; unknown ones are not found */
  ASSERT_EQ(dt_client_rewind(h.c, iid, NULL), DT_ERR_STATE);
  st = sc_get(&h, iid, false);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  dt_instance_free(st);
  char unknown[128];
  snprintf(unknown, sizeof unknown, "%s-nope", iid);
  ASSERT_EQ(dt_client_rewind(h.c, unknown, NULL), DT_ERR_NOT_FOUND);
  nid = NULL;
  ASSERT_EQ(dt_client_restart(h.c, unknown, false, &nid), DT_ERR_NOT_FOUND);
  ASSERT(nid == NULL);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ restart */

TEST_IMPL(scen_restart)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "restart");
  sc_schedule(&h, "restart_orch", "41", iid);
  dt_instance *first = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(first, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(first->output, "{\"input\":41,\"result\":42}");
  char *exec1 = execution_id(&h, iid);

  /* in place: same id, a new execution, the original input */
  char *got = NULL;
  ASSERT_OK(dt_client_restart(h.c, iid, false, &got));
  ASSERT_STR_EQ(got, iid);
  dt_free(got);
  dt_instance *again = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(again, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(again->output, first->output);
  ASSERT_STR_EQ(again->input, "41");
  ASSERT_EQ(sc_attempts("restart", iid), 2); /* the restarted instance ran again */
  char *exec2 = execution_id(&h, iid);
  ASSERT_EQ(strlen(exec2), 32);
  ASSERT(strcmp(exec1, exec2) != 0);
  free(exec1);
  free(exec2);
  dt_instance_free(again);

  /* with a new instance id */
  char *nid = NULL;
  ASSERT_OK(dt_client_restart(h.c, iid, true, &nid));
  ASSERT(nid != NULL && strcmp(nid, iid) != 0);
  dt_instance *other = sc_done(&h, nid, SC_WAIT_MS);
  SC_EXPECT_STATUS(other, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(other->name, "restart_orch");
  ASSERT_STR_EQ(other->input, "41");
  ASSERT_STR_EQ(other->output, first->output);
  ASSERT_EQ(sc_attempts("restart", nid), 1);
  dt_instance_free(other);
  dt_free(nid);
  dt_instance *orig = sc_get(&h, iid, true);
  SC_EXPECT_STATUS(orig, DT_STATUS_COMPLETED);
  dt_instance_free(orig);
  dt_instance_free(first);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ 13. history */

TEST_IMPL(scen_history_layout)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96], cid[128];
  sc_id(iid, sizeof iid, "history");
  snprintf(cid, sizeof cid, "%s-child", iid);
  sc_schedule(&h, "hist_orch", "\"h\"", iid);
  dt_instance *st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(st->output, "[\"act(h)\",\"child(h)\"]");
  dt_instance_free(st);

  dt_history *hist = sc_history(&h, iid);
  char *types = sc_history_types(hist, false);
  ASSERT_STR_EQ(types, "OrchestratorStarted,ExecutionStarted,TaskScheduled,"
                       "OrchestratorStarted,TaskCompleted,TimerCreated,"
                       "OrchestratorStarted,TimerFired,SubOrchestrationInstanceCreated,"
                       "OrchestratorStarted,SubOrchestrationInstanceCompleted,ExecutionCompleted");
  free(types);
  const dt_event *e = hist->events;
  const dt_event *started = &e[1], *scheduled = &e[2], *completed = &e[4], *timer_created = &e[5],
                 *timer_fired = &e[7], *sub_created = &e[8], *sub_done = &e[10], *done = &e[11];
  ASSERT_STR_EQ(started->name, "hist_orch");
  ASSERT_STR_EQ(started->payload, "\"h\"");
  ASSERT_STR_EQ(scheduled->name, "hist_activity");
  ASSERT_EQ(scheduled->event_id, 1);
  ASSERT_STR_EQ(scheduled->payload, "\"h\"");
  ASSERT_EQ(completed->task_id, 1);
  ASSERT_STR_EQ(completed->payload, "\"act(h)\"");
  ASSERT_EQ(timer_created->event_id, 2);
  ASSERT_EQ(timer_fired->task_id, 2);
  ASSERT_EQ(timer_fired->fire_at_ms, timer_created->fire_at_ms);
  ASSERT_EQ(sub_created->event_id, 3);
  ASSERT_STR_EQ(sub_created->name, "hist_child");
  ASSERT_STR_EQ(sub_created->instance_id, cid);
  ASSERT_EQ(sub_done->task_id, 3);
  ASSERT_STR_EQ(sub_done->payload, "\"child(h)\"");
  ASSERT_EQ(done->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(done->payload, "[\"act(h)\",\"child(h)\"]");
  /* OrchestratorStarted carries the dispatch time (the orchestration clock): it never goes backwards, and
   * nothing precedes the creation time carried by ExecutionStarted */
  int64_t last = 0;
  for (size_t i = 0; i < hist->n; i++) {
    if (strcmp(e[i].type, "OrchestratorStarted") == 0) {
      ASSERT_GE(e[i].timestamp_ms, last);
      last = e[i].timestamp_ms;
    }
    ASSERT_GE(e[i].timestamp_ms, started->timestamp_ms);
  }
  ASSERT_GE(timer_fired[-1].timestamp_ms, timer_created->fire_at_ms); /* the timer's episode, not earlier */
  dt_history_free(hist);

  /* the child's history is its own; the child names its parent */
  hist = sc_history(&h, cid);
  ASSERT_EQ(sc_history_count(hist, "ExecutionStarted"), 1);
  ASSERT_STR_EQ(sc_history_find(hist, "ExecutionStarted", 0)->name, "hist_child");
  dt_history_free(hist);
  dt_instance *child = sc_get(&h, cid, false);
  ASSERT_STR_EQ(child->parent_instance_id, iid);
  dt_instance_free(child);
  sc_hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ deterministic UUIDs */

static void assert_uuid5(const char *u, size_t len)
{
  ASSERT_EQ(len, 36);
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      ASSERT_EQ(u[i], '-');
    else if (!isxdigit((unsigned char)u[i]) || isupper((unsigned char)u[i]))
      TEST_FAIL("not a lower-case UUID: %.*s", (int)len, u);
  }
  ASSERT_EQ(u[14], '5'); /* version 5 (name-based, SHA-1) */
  ASSERT(strchr("89ab", u[19]) != NULL);
}

static bool custom_status_set(void *arg)
{
  void **a = arg;
  dt_instance **st = a[2];
  dt_instance_free(*st);
  *st = sc_get(a[0], a[1], true);
  return *st && (*st)->custom_status != NULL;
}

static bool uuid_recorded(void *arg)
{
  pthread_mutex_lock(&g_uuid_mu);
  int calls = g_uuid_calls;
  pthread_mutex_unlock(&g_uuid_mu);
  return calls > 0;
}

TEST_IMPL(scen_new_uuid_deterministic)
{
  sc_hub h;
  int rc = sc_hub_start(&h, NULL, reg);
  if (rc)
    return rc;
  char iid[96];
  sc_id(iid, sizeof iid, "uuid");
  sc_schedule(&h, "uuid_orch", NULL, iid);
  /* turn 1 committed the custom status and scheduled the activity; wait for turn 2 (waiting for "go") */
  dt_instance *st = NULL;
  void *arg[3] = {&h, iid, &st};
  ASSERT(sc_poll(custom_status_set, arg, SC_WAIT_MS));
  char turn1[256];
  snprintf(turn1, sizeof turn1, "%s", st->custom_status);
  dt_instance_free(st);
  ASSERT_EQ(strlen(turn1), 2 * 38 + 3);
  assert_uuid5(turn1 + 2, 36);
  assert_uuid5(turn1 + 41, 36);
  ASSERT(strncmp(turn1 + 2, turn1 + 41, 36) != 0); /* the counter makes successive ids differ */

  /* the activity ran (once) with the values of turn 1 */
  ASSERT(sc_poll(uuid_recorded, NULL, SC_WAIT_MS));
  sc_raise(&h, iid, "go", NULL);
  st = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(st, DT_STATUS_COMPLETED);
  /* output: [u1, u2, u3, replaying] written in turn 3, after replaying turns 1 and 2 */
  const char *out = st->output;
  ASSERT_EQ(strlen(out), 3 * 38 + 2 + 3 + 5);
  ASSERT(strncmp(out, turn1, 2 * 38 + 2) == 0); /* u1 and u2 replayed to the values of turn 1 */
  assert_uuid5(out + 80, 36);
  ASSERT(strncmp(out + 80, turn1 + 2, 36) != 0 && strncmp(out + 80, turn1 + 41, 36) != 0);
  ASSERT_STR_EQ(out + 3 * 38 + 4, "false]"); /* the last turn runs the new part live */
  dt_instance *final_status = st;
  ASSERT_STR_EQ(final_status->custom_status, turn1); /* re-set on every replay, to the same value */

  pthread_mutex_lock(&g_uuid_mu);
  ASSERT_EQ(g_uuid_calls, 1);
  ASSERT_STR_EQ(g_uuid_seen, turn1);
  pthread_mutex_unlock(&g_uuid_mu);
  dt_instance_free(st);
  sc_hub_stop(&h);
  return 0;
}
