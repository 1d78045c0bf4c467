/*
 * taskhubctl migrate: a RocksDB task hub copied into PostgreSQL.
 *
 *  - ctl_migrate_refusals: what is refused before anything is copied (bad flags, a password in --to, a source
 *    that is not a task hub or that a running taskhubd holds). Needs no PostgreSQL.
 *  - ctl_migrate_roundtrip: taskhubd on RocksDB runs a mix of orchestrations (finished, failed, continued as new,
 *    waiting for an event with a timer pending, suspended with an event in its inbox, an activity queued for a
 *    worker that never came, a durable timer and a scheduled start still pending, a parent waiting on its
 *    child), stops; migrate copies it into a fresh PostgreSQL database; taskhubd on that database shows every
 *    instance as it was, then finishes all of them once a worker connects.
 *  - ctl_migrate_refuses_nonempty: a target that holds instances is refused and left as it was; an empty task hub
 *    is accepted; a second run into the same target is refused.
 * The last two need the `pg` fixture's PostgreSQL ($TASKHUBD_TEST_PG) and skip without it.
 */
#include "ctl_harness.h"

#include <dirent.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

/* The durable timer still pending when the source stops: long enough for stopping the source, migrating and
 * starting the target, which take about a second each under the sanitizers. */
#define NAP_MS 5000
#define N_HELLO 24

/* taskhubctl's exit statuses (taskhubctl(1)). */
enum { EXIT_USAGE = 2, EXIT_STATE = 4, EXIT_UNAVAIL = 5 };

static int need_bins(void)
{
  const char *b = getenv("TASKHUBCTL_BIN"), *d = getenv("TASKHUBD_BIN");
  return b && *b && d && *d ? 0 : TEST_SKIP;
}

/* The directory of the fixture's PostgreSQL, or NULL. It is taken out of the environment so that th_server
 * starts the source on RocksDB; the target gets its --store explicitly. */
static char *take_pg_dir(void)
{
  const char *d = getenv("TASKHUBD_TEST_PG");
  char *dir = d && *d ? strdup(d) : NULL;
  unsetenv("TASKHUBD_TEST_PG");
  return dir;
}

/* A fresh database on the fixture's server; its conninfo in |out|. */
static void createdb(const char *pgdir, const char *what, char *out, size_t cap)
{
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash '%s' createdb '%s' th_mig_%s_%d", TH_PG_SH, pgdir, what, (int)getpid());
  FILE *f = popen(cmd, "r");
  ASSERT(f != NULL);
  if (!fgets(out, (int)cap, f))
    TEST_FAIL("%s printed nothing", cmd);
  out[strcspn(out, "\n")] = 0;
  if (pclose(f) != 0)
    TEST_FAIL("%s failed", cmd);
}

/* ------------------------------------------------------------------ orchestrations */

static atomic_int g_later_calls;

/* Served only by the target's worker: until then its calls wait in the activity queue. */
static const char *act_later(dt_activity_ctx *a, const char *input, void *ud)
{
  atomic_fetch_add(&g_later_calls, 1);
  return dt_activity_printf(a, "{\"later\":%s}", input ? input : "null");
}

/* Continues as new up to 3: its history is replaced twice, so the store holds a history generation. */
static const char *orch_counter(dt_orch_ctx *ctx, const char *input, void *ud)
{
  long n = input ? strtol(input, NULL, 10) : 0;
  const char *e = dt_await(ctx, dt_call_activity(ctx, "echo", input));
  if (n < 3)
    dt_continue_as_new(ctx, dt_ctx_printf(ctx, "%ld", n + 1), false);
  return e;
}

/* Waits for "go" or an hour-long timer, whichever comes first. */
static const char *orch_approval(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_set_custom_status(ctx, "\"waiting\"");
  dt_task *t[2] = {dt_wait_event(ctx, "go"), dt_create_timer_in(ctx, 3600 * 1000)};
  dt_task *any = dt_when_any(ctx, t, 2);
  dt_await(ctx, any);
  if (dt_task_winner(any) == t[1])
    return "\"timed out\"";
  const char *got = dt_task_result(t[0]);
  return dt_ctx_printf(ctx, "{\"approved\":%s}", got ? got : "null");
}

static const char *orch_parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *child = dt_ctx_printf(ctx, "%s-child", dt_instance_id(ctx));
  return dt_await(ctx, dt_call_sub_orchestrator(ctx, "approval", child, input));
}

static const char *orch_queued(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_await(ctx, dt_call_activity(ctx, "later", input));
}

static const char *orch_nap(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_await(ctx, dt_create_timer_in(ctx, NAP_MS));
  return "\"rested\"";
}

/* ------------------------------------------------------------------ one taskhubd with a client */

typedef struct node {
  th_server srv;
  char addr[64];
  dt_client *c;
  dt_worker *w;
} node;

/* taskhubd on RocksDB (store NULL) or on the PostgreSQL database |store|. */
static void node_start(node *n, const char *store)
{
  memset(n, 0, sizeof *n);
  const char *pg[] = {"--store", store, "--drain-grace", "1", NULL};
  const char *rocks[] = {"--drain-grace", "1", NULL};
  ASSERT_OK(th_server_start(&n->srv, store ? pg : rocks));
  snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", n->srv.port);
  dt_conn_options co = {.call_timeout_ms = 15000};
  ASSERT_OK(dt_client_open(n->addr, &co, &n->c));
}

static void worker_start(node *n, bool with_later)
{
  ASSERT_OK(dt_worker_new(n->addr, NULL, &n->w));
  ASSERT_OK(dt_worker_add_activity(n->w, "echo", ctl_act_echo, NULL));
  ASSERT_OK(dt_worker_add_activity(n->w, "boom", ctl_act_boom, NULL));
  if (with_later)
    ASSERT_OK(dt_worker_add_activity(n->w, "later", act_later, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(n->w, "hello", ctl_orch_hello, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(n->w, "boom", ctl_orch_fail, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(n->w, "counter", orch_counter, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(n->w, "approval", orch_approval, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(n->w, "parent", orch_parent, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(n->w, "queued", orch_queued, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(n->w, "nap", orch_nap, NULL));
  ASSERT_OK(dt_worker_start(n->w));
}

/* Stops the worker, the client and taskhubd (SIGTERM, clean exit); the data directory stays until freed. */
static void node_stop(node *n)
{
  dt_worker_free(n->w);
  n->w = NULL;
  dt_client_close(n->c);
  n->c = NULL;
  th_server_stop(&n->srv);
}

static void schedule(node *n, const char *name, const char *iid, const char *input, int64_t start_at_ms)
{
  dt_start_options o = {.instance_id = iid, .input = input, .start_at_ms = start_at_ms};
  char *got = NULL;
  int rc = dt_client_schedule(n->c, name, &o, &got);
  if (rc != DT_OK)
    TEST_FAIL("schedule %s as %s: %s", name, iid, dt_strerror(rc));
  dt_free(got);
}

static dt_instance *finish(node *n, const char *iid, int timeout_ms)
{
  dt_instance *in = NULL;
  int rc = dt_client_wait_completion(n->c, iid, timeout_ms, true, &in);
  if (rc != DT_OK)
    TEST_FAIL("waiting for %s to finish: %s", iid, dt_strerror(rc));
  return in;
}

static void expect_done(node *n, const char *iid, dt_status st, const char *output, int timeout_ms)
{
  dt_instance *in = finish(n, iid, timeout_ms);
  if (in->status != st)
    TEST_FAIL("%s ended %s, expected %s", iid, dt_status_name(in->status), dt_status_name(st));
  if (output)
    ASSERT_STR_EQ(in->output, output);
  dt_instance_free(in);
}

/* Whether the history of |iid| holds an event of |type|. */
static bool has_event(node *n, const char *iid, const char *type)
{
  dt_history *h = NULL;
  int rc = dt_client_history(n->c, iid, &h);
  if (rc != DT_OK)
    TEST_FAIL("history of %s: %s", iid, dt_strerror(rc));
  bool found = false;
  for (size_t i = 0; i < h->n && !found; i++)
    found = strcmp(h->events[i].type, type) == 0;
  dt_history_free(h);
  return found;
}

/* Polls (the state is observable, there is no event to wait on) until |iid| has an event of |type|. */
static void until_event(node *n, const char *iid, const char *type)
{
  int64_t end = mono_ms() + CTL_WAIT_MS;
  while (!has_event(n, iid, type)) {
    if (mono_ms() > end)
      TEST_FAIL("%s has no %s event after %d ms", iid, type, CTL_WAIT_MS);
    sleep_ms(20);
  }
}

static void until_status_is(node *n, const char *iid, dt_status want)
{
  int64_t end = mono_ms() + CTL_WAIT_MS;
  for (;;) {
    dt_instance *in = NULL;
    ASSERT_OK(dt_client_get(n->c, iid, false, &in));
    bool ok = in->status == want;
    dt_instance_free(in);
    if (ok)
      return;
    if (mono_ms() > end)
      TEST_FAIL("%s never became %s", iid, dt_status_name(want));
    sleep_ms(20);
  }
}

static void until_custom_status(node *n, const char *iid, const char *want)
{
  int64_t end = mono_ms() + CTL_WAIT_MS;
  for (;;) {
    dt_instance *in = NULL;
    ASSERT_OK(dt_client_get(n->c, iid, true, &in));
    bool ok = in->custom_status && strcmp(in->custom_status, want) == 0;
    dt_instance_free(in);
    if (ok)
      return;
    if (mono_ms() > end)
      TEST_FAIL("%s never showed custom status %s", iid, want);
    sleep_ms(20);
  }
}

static const char *nz(const char *s)
{
  return s ? s : "-";
}

/* Everything a client can see of an instance, as one string: its state and the whole history. */
static char *snapshot(node *n, const char *iid)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(n->c, iid, true, &in);
  if (rc != DT_OK)
    TEST_FAIL("get %s on %s: %s", iid, n->addr, dt_strerror(rc));
  dt_history *h = NULL;
  ASSERT_OK(dt_client_history(n->c, iid, &h));
  char *s = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&s, &len);
  ASSERT(f != NULL);
  fprintf(f, "%s name=%s version=%s status=%s exec=%s created=%lld updated=%lld completed=%lld start=%lld parent=%s",
          in->instance_id, nz(in->name), nz(in->version), dt_status_name(in->status), nz(in->execution_id),
          (long long)in->created_ms, (long long)in->last_updated_ms, (long long)in->completed_ms,
          (long long)in->scheduled_start_ms, nz(in->parent_instance_id));
  fprintf(f, " input=%s output=%s custom=%s", nz(in->input), nz(in->output), nz(in->custom_status));
  if (in->failure)
    fprintf(f, " failure=%s:%s", nz(in->failure->error_type), nz(in->failure->message));
  for (size_t i = 0; i < in->n_tags; i++)
    fprintf(f, " tag:%s=%s", in->tags[i].key, nz(in->tags[i].value));
  for (size_t i = 0; i < h->n; i++) {
    const dt_event *e = &h->events[i];
    fprintf(f, "\n  %d %lld %s name=%s payload=%s task=%d instance=%s fire=%lld status=%d", (int)e->event_id,
            (long long)e->timestamp_ms, e->type, nz(e->name), nz(e->payload), (int)e->task_id, nz(e->instance_id),
            (long long)e->fire_at_ms, (int)e->status);
    if (e->failure)
      fprintf(f, " failure=%s:%s", nz(e->failure->error_type), nz(e->failure->message));
  }
  fclose(f);
  dt_history_free(h);
  dt_instance_free(in);
  return s;
}

static size_t count_instances(node *n)
{
  size_t total = 0;
  dt_query q = {.page_size = 10};
  char *cont = NULL;
  for (;;) {
    dt_instance_page *p = NULL;
    q.continuation = cont;
    ASSERT_OK(dt_client_query(n->c, &q, &p));
    total += p->n;
    free(cont);
    cont = p->continuation ? strdup(p->continuation) : NULL;
    dt_instance_page_free(p);
    if (!cont)
      return total;
  }
}

static bool dir_is_empty(const char *path)
{
  DIR *d = opendir(path);
  ASSERT(d != NULL);
  struct dirent *e;
  bool empty = true;
  while ((e = readdir(d)) != NULL)
    empty = empty && (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0);
  closedir(d);
  return empty;
}

#define MIGRATE(...) ctl_run(NULL, (const char *const[]){"migrate", __VA_ARGS__, NULL})

/* ------------------------------------------------------------------ tests */

TEST_IMPL(ctl_migrate_refusals)
{
  if (need_bins())
    return TEST_SKIP;
  free(take_pg_dir());
  static const char unreachable[] = "host=127.0.0.1 port=1 dbname=never_contacted";

  ctl_res r = ctl_run(NULL, (const char *const[]){"migrate", NULL});
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "needs --from");
  ctl_res_free(&r);

  /* taskhubd's own rule for --store: the password never on the command line. */
  r = MIGRATE("--from", "rocksdb:/nonexistent", "--to", "postgresql://taskhubd:secret@127.0.0.1/db");
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "--to must not hold the password");
  ctl_res_free(&r);
  r = ctl_run(NULL, (const char *const[]){"--json", "migrate", "--from", "rocksdb:/nonexistent", "--to",
                                          "host=127.0.0.1 dbname=db password=secret", NULL});
  ASSERT_EXIT(r, EXIT_USAGE);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "USAGE");
  ASSERT_STR_CONTAINS(jstr(jget(doc, "error"), "message"), "password");
  json_object_put(doc);
  ctl_res_free(&r);

  r = MIGRATE("--from", "rocksdb:", "--to", unreachable);
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "needs a directory");
  ctl_res_free(&r);
  r = MIGRATE("--from", "/var/lib/taskhubd", "--to", unreachable);
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "--from must be rocksdb:DIR");
  ctl_res_free(&r);
  r = MIGRATE("--from", "rocksdb:/nonexistent", "--to", "rocksdb:/tmp/x");
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "--to must be a PostgreSQL URI or conninfo");
  ctl_res_free(&r);
  r = MIGRATE("--from", "rocksdb:/nonexistent", "--to", unreachable, "--batch", "0");
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "--batch");
  ctl_res_free(&r);

  /* A directory that holds no task hub: refused, and nothing is created in it. */
  r = MIGRATE("--from", "rocksdb:/nonexistent/hub", "--to", unreachable);
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "No such file or directory");
  ctl_res_free(&r);
  char empty[] = "/tmp/ctl-migrate-empty-XXXXXX";
  ASSERT(mkdtemp(empty) != NULL);
  char from[PATH_MAX + 16];
  snprintf(from, sizeof from, "rocksdb:%s", empty);
  r = MIGRATE("--from", from, "--to", unreachable);
  ASSERT_EXIT(r, EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "is not a task hub");
  ctl_res_free(&r);
  ASSERT(dir_is_empty(empty));
  ASSERT_OK(rmdir(empty));

  /* A task hub that taskhubd has open: refused before PostgreSQL is contacted. */
  node src;
  node_start(&src, NULL);
  schedule(&src, "hello", "in-use", "1", 0);
  snprintf(from, sizeof from, "rocksdb:%s", src.srv.data_dir);
  r = MIGRATE("--from", from, "--to", unreachable);
  ASSERT_EXIT(r, EXIT_STATE);
  ASSERT_STR_CONTAINS(r.err, "stop taskhubd first");
  ctl_res_free(&r);
  /* Stopped, it is a task hub, and the target is what fails now: PostgreSQL is not there. */
  node_stop(&src);
  r = MIGRATE("--from", from, "--to", unreachable);
  ASSERT_EXIT(r, EXIT_UNAVAIL);
  ASSERT_STR_CONTAINS(r.err, "cannot open the target");
  ctl_res_free(&r);
  th_server_free(&src.srv);
  return 0;
}

TEST_IMPL(ctl_migrate_roundtrip)
{
  if (need_bins())
    return TEST_SKIP;
  char *pgdir = take_pg_dir();
  if (!pgdir)
    return TEST_SKIP; /* needs the pg fixture */

  /* ---- the source: taskhubd on RocksDB, with a worker that does not serve the activity "later" */
  node src;
  node_start(&src, NULL);
  worker_start(&src, false);
  char ids[N_HELLO][32];
  for (int i = 0; i < N_HELLO; i++) {
    snprintf(ids[i], sizeof ids[i], "hello-%02d", i);
    char input[32];
    snprintf(input, sizeof input, "{\"n\":%d}", i);
    schedule(&src, "hello", ids[i], input, 0);
  }
  schedule(&src, "boom", "failed", "\"x\"", 0);
  schedule(&src, "counter", "counter", "0", 0);
  schedule(&src, "approval", "approval", NULL, 0);
  schedule(&src, "parent", "parent", NULL, 0);
  schedule(&src, "approval", "held", NULL, 0);
  schedule(&src, "queued", "queued", "\"job\"", 0);
  for (int i = 0; i < N_HELLO; i++)
    expect_done(&src, ids[i], DT_STATUS_COMPLETED, NULL, CTL_WAIT_MS);
  expect_done(&src, "failed", DT_STATUS_FAILED, NULL, CTL_WAIT_MS);
  expect_done(&src, "counter", DT_STATUS_COMPLETED, "{\"echo\":3}", CTL_WAIT_MS);
  until_custom_status(&src, "approval", "\"waiting\"");
  until_custom_status(&src, "parent-child", "\"waiting\"");
  until_custom_status(&src, "held", "\"waiting\"");
  /* Suspended, so the event raised now waits in its inbox. */
  ASSERT_OK(dt_client_suspend(src.c, "held", "for the migration"));
  until_status_is(&src, "held", DT_STATUS_SUSPENDED);
  ASSERT_OK(dt_client_raise_event(src.c, "held", "go", "\"held-data\""));
  until_event(&src, "queued", "TaskScheduled");
  /* Last, so that their timers are still pending when the target starts. */
  schedule(&src, "nap", "nap", NULL, 0);
  schedule(&src, "hello", "later-start", "\"scheduled\"", wall_ms() + NAP_MS);
  until_event(&src, "nap", "TimerCreated");

  static const char *const others[] = {"failed", "counter",  "approval", "parent", "parent-child",
                                       "held",   "queued",   "nap",      "later-start"};
  enum { N_OTHERS = sizeof others / sizeof others[0], N_ALL = N_HELLO + N_OTHERS };
  const char *all[N_ALL];
  for (int i = 0; i < N_HELLO; i++)
    all[i] = ids[i];
  for (int i = 0; i < N_OTHERS; i++)
    all[N_HELLO + i] = others[i];
  /* With the worker gone nothing changes any more: what the client sees now is what must come across. */
  dt_worker_free(src.w);
  src.w = NULL;
  char *before[N_ALL];
  for (int i = 0; i < N_ALL; i++)
    before[i] = snapshot(&src, all[i]);
  ASSERT_EQ(count_instances(&src), N_ALL);
  /* An entity with an operation queued (no worker here runs entities): its record and queue come across too. */
  ASSERT_OK(dt_client_signal_entity(src.c, "@tally@m1", "add", "7", 0));
  node_stop(&src);

  /* ---- migrate; a small batch so that paging and several change sets are exercised */
  char conninfo[512], from[PATH_MAX + 16];
  createdb(pgdir, "rt", conninfo, sizeof conninfo);
  snprintf(from, sizeof from, "rocksdb:%s", src.srv.data_dir);
  int64_t t0 = mono_ms();
  ctl_res r = ctl_run(NULL, (const char *const[]){"--json", "migrate", "--from", from, "--to", conninfo, "--batch",
                                                  "7", NULL});
  ASSERT_EXIT(r, 0);
  fprintf(stderr, "migrate took %lld ms:\n%s%s", (long long)(mono_ms() - t0), r.err, r.out);
  json_object *doc = ctl_doc(&r);
  ASSERT_EQ(jint(doc, "instances"), N_ALL);
  /* approval, parent-child and held wait on an hour-long timer; nap on its own; later-start on its start. If
   * this finds 4, the machine was too slow to migrate within NAP_MS and the timer test below proves nothing. */
  ASSERT_EQ(jint(doc, "timers"), 5);
  ASSERT_EQ(jint(doc, "activities"), 1);
  ASSERT_GE(jint(doc, "inboxMessages"), 2); /* held's "go", and the entity's queued operation */
  ASSERT_EQ(jint(doc, "entities"), 1);
  /* Each hello has at least ExecutionStarted, TaskScheduled, TaskCompleted and ExecutionCompleted. */
  ASSERT_GT(jint(doc, "historyEvents"), 4 * N_HELLO);
  ASSERT_GE(jint(doc, "payloads"), N_HELLO * 2);
  ASSERT_GT(jint(doc, "nextSequence"), 1);
  json_object *verified = jget(doc, "verified");
  ASSERT(verified && json_object_get_boolean(verified));
  json_object_put(doc);
  ASSERT_STR_CONTAINS(r.err, "verified");
  ctl_res_free(&r);

  /* ---- the target: taskhubd on PostgreSQL; first without a worker, so nothing moves while it is compared */
  node dst;
  node_start(&dst, conninfo);
  ASSERT_EQ(count_instances(&dst), N_ALL);
  dt_entity *ent = NULL;
  ASSERT_OK(dt_client_get_entity(dst.c, "@tally@m1", false, &ent));
  ASSERT(!ent->exists);         /* transient: no state yet */
  ASSERT_EQ(ent->backlog, 1);   /* its operation still queued */
  dt_entity_free(ent);
  for (int i = 0; i < N_ALL; i++) {
    char *after = snapshot(&dst, all[i]);
    if (strcmp(before[i], after) != 0)
      TEST_FAIL("%s differs after the migration:\nbefore: %s\nafter:  %s", all[i], before[i], after);
    free(after);
    free(before[i]);
  }

  /* Everything that was waiting goes on: events, the suspended instance and its inbox, the queued activity (run
   * once), the durable timer and the scheduled start, a sub-orchestration reporting to its parent. */
  worker_start(&dst, true);
  ASSERT_OK(dt_client_raise_event(dst.c, "approval", "go", "\"yes\""));
  expect_done(&dst, "approval", DT_STATUS_COMPLETED, "{\"approved\":\"yes\"}", CTL_WAIT_MS);
  ASSERT_OK(dt_client_raise_event(dst.c, "parent-child", "go", "\"kid\""));
  expect_done(&dst, "parent", DT_STATUS_COMPLETED, "{\"approved\":\"kid\"}", CTL_WAIT_MS);
  ASSERT_OK(dt_client_resume(dst.c, "held", "migrated"));
  expect_done(&dst, "held", DT_STATUS_COMPLETED, "{\"approved\":\"held-data\"}", CTL_WAIT_MS);
  expect_done(&dst, "queued", DT_STATUS_COMPLETED, "{\"later\":\"job\"}", CTL_WAIT_MS);
  ASSERT_EQ(atomic_load(&g_later_calls), 1);
  expect_done(&dst, "nap", DT_STATUS_COMPLETED, "\"rested\"", NAP_MS + CTL_WAIT_MS);
  ASSERT(has_event(&dst, "nap", "TimerFired"));
  expect_done(&dst, "later-start", DT_STATUS_COMPLETED, "{\"echo\":\"scheduled\"}", NAP_MS + CTL_WAIT_MS);
  /* And new work runs as before. */
  schedule(&dst, "hello", "after-migration", "\"new\"", 0);
  expect_done(&dst, "after-migration", DT_STATUS_COMPLETED, "{\"echo\":\"new\"}", CTL_WAIT_MS);
  node_stop(&dst);
  th_server_free(&dst.srv);
  th_server_free(&src.srv);
  free(pgdir);
  return 0;
}

TEST_IMPL(ctl_migrate_refuses_nonempty)
{
  if (need_bins())
    return TEST_SKIP;
  char *pgdir = take_pg_dir();
  if (!pgdir)
    return TEST_SKIP; /* needs the pg fixture */
  node src;
  node_start(&src, NULL);
  schedule(&src, "hello", "from-rocksdb", "1", 0);
  node_stop(&src);
  char from[PATH_MAX + 16];
  snprintf(from, sizeof from, "rocksdb:%s", src.srv.data_dir);

  /* A task hub in use on PostgreSQL: refused, and left as it was. */
  char used[512];
  createdb(pgdir, "used", used, sizeof used);
  node dst;
  node_start(&dst, used);
  schedule(&dst, "hello", "already-here", "2", 0);
  node_stop(&dst);
  ctl_res r = MIGRATE("--from", from, "--to", used);
  ASSERT_EXIT(r, EXIT_STATE);
  ASSERT_STR_CONTAINS(r.err, "the target is not empty");
  ASSERT_STR_CONTAINS(r.err, "already-here");
  ASSERT_STR_CONTAINS(r.err, "drop the database and create it again");
  ctl_res_free(&r);
  r = ctl_run(NULL, (const char *const[]){"--json", "migrate", "--from", from, "--to", used, NULL});
  ASSERT_EXIT(r, EXIT_STATE);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "WRONG_STATE");
  json_object_put(doc);
  ctl_res_free(&r);
  th_server_restart(&dst.srv);
  snprintf(dst.addr, sizeof dst.addr, "127.0.0.1:%d", dst.srv.port);
  ASSERT_OK(dt_client_open(dst.addr, NULL, &dst.c));
  ASSERT_EQ(count_instances(&dst), 1);
  dt_instance *in = NULL;
  ASSERT_EQ(dt_client_get(dst.c, "from-rocksdb", false, &in), DT_ERR_NOT_FOUND);
  node_stop(&dst);
  th_server_free(&dst.srv);

  /* An empty task hub (taskhubd created its tables and stopped) is a fine target; once copied into, it is not
   * empty any more, so running migrate a second time is refused. */
  char fresh[512];
  createdb(pgdir, "fresh", fresh, sizeof fresh);
  node_start(&dst, fresh);
  node_stop(&dst);
  r = MIGRATE("--from", from, "--to", fresh);
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "migrated 1 instances");
  ctl_res_free(&r);
  r = MIGRATE("--from", from, "--to", fresh);
  ASSERT_EXIT(r, EXIT_STATE);
  ASSERT_STR_CONTAINS(r.err, "from-rocksdb");
  ctl_res_free(&r);
  th_server_free(&dst.srv);
  th_server_free(&src.srv);
  free(pgdir);
  return 0;
}
