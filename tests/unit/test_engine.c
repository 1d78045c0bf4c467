#include "common/pbutil.h"
#include "common/util.h"
#include "helpers.h"
#include "test.h"

#include <pthread.h>

#define PENDING ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING
#define TERMINATED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED

TEST_IMPL(engine_start_generates_ids_and_rejects_duplicates)
{
  struct fixture f;
  fx_setup(&f, 64, 60000000);
  char iid[SC_MAX_ID + 1];
  ASSERT_OK(fx_start(&f, fx_start_req(&f.a, "", "1"), iid));
  ASSERT_EQ(strlen(iid), 32);
  StoredInstance *r = fx_get(&f, iid);
  ASSERT(r != NULL);
  ASSERT_EQ(r->status, PENDING);
  ASSERT_EQ(strlen(r->execution_id), 32);

  ASSERT_OK(fx_start(&f, fx_start_req(&f.a, "fixed", "1"), iid));
  struct sc_cmd c = {.kind = SC_CMD_START};
  c.u.start.req = fx_start_req(&f.a, "fixed", "2");
  ASSERT_EQ(th_engine_run(f.e, &c), SC_EEXIST);
  ASSERT_STR_CONTAINS(c.err.msg, "orchestration instance already exists");
  /* The failed start changed nothing. */
  char *p;
  size_t n;
  ASSERT_OK(f.st->ops->get_payload(f.st, "fixed", SC_PAYLOAD_INPUT, &f.a, &p, &n));
  ASSERT_STR_EQ(p, "1");
  fx_teardown(&f);
  return 0;
}

TEST_IMPL(engine_reuse_policies)
{
  struct fixture f;
  fx_setup(&f, 64, 60000000);
  ASSERT_OK(fx_start(&f, fx_start_req(&f.a, "r", "old"), NULL));
  char *old_exec = sc_arena_strdup(&f.a, fx_get(&f, "r")->execution_id);

  OrchestrationStatus replaceable[] = {PENDING, TERMINATED};
  OrchestrationIdReusePolicy pol = ORCHESTRATION_ID_REUSE_POLICY__INIT;
  pol.n_replaceablestatus = 2;
  pol.replaceablestatus = replaceable;
  CreateInstanceRequest *req = fx_start_req(&f.a, "r", "new");
  req->orchestrationidreusepolicy = &pol;
  ASSERT_OK(fx_start(&f, req, NULL));
  ASSERT(strcmp(fx_get(&f, "r")->execution_id, old_exec) != 0);

  /* Legacy encoding: IGNORE keeps the existing instance untouched. */
  char *exec2 = sc_arena_strdup(&f.a, fx_get(&f, "r")->execution_id);
  pol.action = CREATE_ORCHESTRATION_ACTION__CREATE_ORCHESTRATION_ACTION_IGNORE;
  pol.n_replaceablestatus = 1;
  req = fx_start_req(&f.a, "r", "ignored");
  req->orchestrationidreusepolicy = &pol;
  ASSERT_OK(fx_start(&f, req, NULL));
  ASSERT_STR_EQ(fx_get(&f, "r")->execution_id, exec2);

  /* Status not listed: ALREADY_EXISTS. */
  OrchestrationStatus only_terminated[] = {TERMINATED};
  pol.action = 0;
  pol.replaceablestatus = only_terminated;
  req = fx_start_req(&f.a, "r", "x");
  req->orchestrationidreusepolicy = &pol;
  ASSERT_EQ(fx_start(&f, req, NULL), SC_EEXIST);
  fx_teardown(&f);
  return 0;
}

TEST_IMPL(engine_terminate_pending_writes_history)
{
  struct fixture f;
  fx_setup(&f, 64, 60000000);
  ASSERT_OK(fx_start(&f, fx_start_req(&f.a, "t", "in"), NULL));
  ASSERT_OK(fx_terminate(&f, "t", "\"bye\""));
  StoredInstance *r = fx_get(&f, "t");
  ASSERT_EQ(r->status, TERMINATED);
  ASSERT_GT(r->completed_us, 0);
  HistoryEvent **h;
  size_t n;
  ASSERT_OK(sc_store_history(f.st, "t", &f.a, &h, &n));
  ASSERT_EQ(n, 3);
  ASSERT_EQ(h[0]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED);
  ASSERT_EQ(h[1]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED);
  ASSERT_EQ(h[2]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED);
  ASSERT_STR_EQ(h[2]->executioncompleted->result->value, "\"bye\"");
  struct sc_inbox_msg *m;
  ASSERT_OK(sc_store_inbox(f.st, "t", &f.a, &m, &n));
  ASSERT_EQ(n, 0);
  /* Terminating again is a no-op; an unknown id is NOT_FOUND. */
  ASSERT_OK(fx_terminate(&f, "t", "again"));
  ASSERT_EQ(fx_terminate(&f, "nope", NULL), SC_ENOTFOUND);
  fx_teardown(&f);
  return 0;
}

struct async_wait {
  struct fixture *f;
  struct sc_cmd cmd;
  int rc;
};

static void *wait_thread(void *arg)
{
  struct async_wait *w = arg;
  w->rc = th_engine_run(w->f->e, &w->cmd);
  return NULL;
}

TEST_IMPL(engine_wait_is_woken_by_terminate)
{
  struct fixture f;
  fx_setup(&f, 64, 60000000);
  ASSERT_OK(fx_start(&f, fx_start_req(&f.a, "w", NULL), NULL));
  struct async_wait w = {&f, {.kind = SC_CMD_WAIT}, -99};
  w.cmd.u.wait.iid = "w";
  w.cmd.u.wait.completion = true;
  pthread_t th;
  ASSERT_OK(pthread_create(&th, NULL, wait_thread, &w));
  /* Whether the wait parks before or after the terminate, it must end with the instance terminal. */
  ASSERT_OK(fx_terminate(&f, "w", NULL));
  pthread_join(th, NULL);
  ASSERT_OK(w.rc);
  ASSERT(w.cmd.u.wait.exists);
  ASSERT_EQ(fx_get(&f, "w")->status, TERMINATED);
  fx_teardown(&f);
  return 0;
}

TEST_IMPL(engine_wait_times_out_and_unknown_returns_at_once)
{
  struct fixture f;
  fx_setup(&f, 64, 50000); /* a 50 ms cap */
  ASSERT_OK(fx_start(&f, fx_start_req(&f.a, "slow", NULL), NULL));
  struct sc_cmd c = {.kind = SC_CMD_WAIT};
  c.u.wait.iid = "slow";
  c.u.wait.completion = false;
  ASSERT_EQ(th_engine_run(f.e, &c), SC_ETIMEOUT);
  struct sc_cmd u = {.kind = SC_CMD_WAIT};
  u.u.wait.iid = "unknown";
  ASSERT_OK(th_engine_run(f.e, &u));
  ASSERT(!u.u.wait.exists);
  fx_teardown(&f);
  return 0;
}

static int suspend(struct fixture *f, const char *iid, bool resume)
{
  struct sc_cmd c = {.kind = resume ? SC_CMD_RESUME : SC_CMD_SUSPEND};
  c.u.suspend.iid = iid;
  return th_engine_run(f->e, &c);
}

TEST_IMPL(engine_suspend_resume_are_deduplicated)
{
  struct fixture f;
  fx_setup(&f, 64, 60000000);
  ASSERT_OK(fx_start(&f, fx_start_req(&f.a, "s", NULL), NULL));
  ASSERT_OK(suspend(&f, "s", true)); /* resume while running: dropped */
  ASSERT_OK(suspend(&f, "s", false));
  ASSERT_OK(suspend(&f, "s", false)); /* second suspend: dropped */
  ASSERT_OK(suspend(&f, "s", true));
  ASSERT_OK(suspend(&f, "s", true)); /* second resume: dropped */
  struct sc_inbox_msg *m;
  size_t n;
  ASSERT_OK(sc_store_inbox(f.st, "s", &f.a, &m, &n));
  ASSERT_EQ(n, 3);
  ASSERT_EQ(m[0].msg->event->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED);
  ASSERT_EQ(m[1].msg->event->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED);
  ASSERT_EQ(m[2].msg->event->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED);
  ASSERT_EQ(suspend(&f, "missing", false), SC_ENOTFOUND);
  fx_teardown(&f);
  return 0;
}

TEST_IMPL(engine_purge_by_filter_only_terminal)
{
  struct fixture f;
  fx_setup(&f, 64, 60000000);
  char iid[16];
  for (int i = 0; i < 1200; i++) {
    snprintf(iid, sizeof iid, "p%04d", i);
    ASSERT_OK(fx_start(&f, fx_start_req(&f.a, iid, NULL), NULL));
    if (i % 2 == 0)
      ASSERT_OK(fx_terminate(&f, iid, NULL));
  }
  PurgeInstanceFilter flt = PURGE_INSTANCE_FILTER__INIT;
  PurgeInstancesRequest req = PURGE_INSTANCES_REQUEST__INIT;
  req.request_case = PURGE_INSTANCES_REQUEST__REQUEST_PURGE_INSTANCE_FILTER;
  req.purgeinstancefilter = &flt;
  struct sc_cmd c = {.kind = SC_CMD_PURGE};
  c.u.purge.req = &req;
  ASSERT_OK(th_engine_run(f.e, &c));
  ASSERT_EQ(c.u.purge.deleted, 600); /* more than one chunk of 500 */
  ASSERT(c.u.purge.complete);
  ASSERT(fx_get(&f, "p0000") == NULL);
  ASSERT(fx_get(&f, "p0001") != NULL);
  fx_teardown(&f);
  return 0;
}

struct poster {
  struct fixture *f;
  int n, base;
};

struct counter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int left;
  int failures;
};

static void count_done(struct sc_cmd *c)
{
  struct counter *k = c->user;
  pthread_mutex_lock(&k->mu);
  if (c->err.code != SC_OK)
    k->failures++;
  if (--k->left == 0)
    pthread_cond_signal(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

/* Posts n starts without waiting in between, then waits for all of them. */
static void post_many(struct fixture *f, int n, struct sc_engine_stats *stats)
{
  struct counter k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, n, 0};
  struct sc_cmd *cmds = calloc((size_t)n, sizeof *cmds);
  for (int i = 0; i < n; i++) {
    char *iid = sc_arena_printf(&f->a, "g%05d", i);
    cmds[i].kind = SC_CMD_START;
    cmds[i].u.start.req = fx_start_req(&f->a, iid, "x");
    cmds[i].done = count_done;
    cmds[i].user = &k;
    sc_engine_post(f->e, &cmds[i]);
  }
  pthread_mutex_lock(&k.mu);
  while (k.left > 0)
    pthread_cond_wait(&k.cv, &k.mu);
  pthread_mutex_unlock(&k.mu);
  ASSERT_EQ(k.failures, 0);
  sc_engine_get_stats(f->e, stats);
  free(cmds);
}

TEST_IMPL(engine_group_commit_folds_queued_commands)
{
  struct fixture f;
  fx_setup(&f, 1024, 60000000);
  struct sc_engine_stats s;
  post_many(&f, 500, &s);
  ASSERT_EQ(s.commands, 500);
  ASSERT_LT(s.commits, 500);
  ASSERT_GT(s.batched_max, 1);
  fx_teardown(&f);

  fx_setup(&f, 1, 60000000); /* --group-commit off */
  post_many(&f, 100, &s);
  ASSERT_EQ(s.commits, 100);
  ASSERT_EQ(s.batched_max, 1);
  fx_teardown(&f);
  return 0;
}

static int count_timer(const struct sc_timer_row *row, void *ctx)
{
  ASSERT_EQ(row->timer->kind, TASKHUBD__STORE__STORED_TIMER__KIND__START);
  ASSERT_STR_EQ(row->timer->instance_id, "later");
  (*(int *)ctx)++;
  return SC_OK;
}

TEST_IMPL(engine_scheduled_start_survives_restart)
{
  struct fixture f;
  fx_setup(&f, 64, 60000000);
  CreateInstanceRequest *r = fx_start_req(&f.a, "later", NULL);
  r->scheduledstarttimestamp = sc_pb_ts(&f.a, sc_now_us() + 3600LL * 1000000);
  ASSERT_OK(fx_start(&f, r, NULL));
  ASSERT_GT(fx_get(&f, "later")->scheduled_start_us, 0);
  sc_engine_stop(f.e);
  sc_engine_free(f.e);
  sc_store_close(f.st);
  /* Reopen: the durable timer is found again. */
  f.st = th_open_store(f.dir);
  int timers = 0;
  ASSERT_OK(f.st->ops->timer_scan(f.st, -1, count_timer, &timers));
  ASSERT_EQ(timers, 1);
  struct sc_engine_config cfg = {.wait_cap_us = 1000000, .max_batch = 8, .sync = true, .cache_budget = SC_CACHE_DEFAULT_BUDGET};
  struct sc_err err;
  ASSERT_OK(sc_engine_start(f.st, &cfg, &f.e, &err));
  ASSERT_EQ(fx_get(&f, "later")->status, PENDING);
  fx_teardown(&f);
  return 0;
}
