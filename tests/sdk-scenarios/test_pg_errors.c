/*
 * PostgreSQL refusing a commit while taskhubd runs, in the pg registration only (the RocksDB one skips these):
 *  - out of disk space (SQLSTATE 53100): the task hub's tables live in a tablespace on a 16 MB tmpfs, mounted in
 *    a user and mount namespace held by a `cat` (no root needed; the server reaches it through
 *    /proc/<holder>/root), which the test fills through PostgreSQL itself. Calls whose commit is refused get
 *    RESOURCE_EXHAUSTED, what was acknowledged stays readable, and writes resume once space is freed, all in one
 *    taskhubd process; with two replicas, commands forwarded between them are neither lost nor left waiting;
 *  - a deadlock (40P01): a second connection takes row locks against a commit in the opposite order, PostgreSQL
 *    rolls the commit back as the victim, and taskhubd sends it again.
 */
#include "sc.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *inc(dt_activity_ctx *a, const char *input, void *ud)
{
  return dt_activity_printf(a, "%lld", sc_json_int(input) + 1);
}

static const char *chain(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *v = input;
  for (int i = 0; i < 3; i++)
    v = dt_await(ctx, dt_call_activity(ctx, "Inc", v));
  return v;
}

/* The length of its input: what a refused start carried arrives whole once it is accepted. */
static const char *length(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_ctx_printf(ctx, "%zu", input ? strlen(input) : (size_t)0);
}

static void reg(dt_worker *w)
{
  dt_worker_add_orchestrator(w, "Chain", chain, NULL);
  dt_worker_add_orchestrator(w, "Length", length, NULL);
  dt_worker_add_orchestrator(w, "Wait", sc_wait_event_orch, NULL);
  dt_worker_add_activity(w, "Inc", inc, NULL);
}

static PGconn *connect_db(const char *conninfo)
{
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK)
    TEST_FAIL("connecting to %s: %s", conninfo, PQerrorMessage(c));
  return c;
}

/* Runs |sql|; fails the test unless it succeeds. */
static void exec_ok(PGconn *c, const char *sql)
{
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    TEST_FAIL("%s: %s", sql, PQresultErrorMessage(r));
  PQclear(r);
}

/* Runs |sql|; its SQLSTATE in |state| ("" on success). */
static void exec_state(PGconn *c, const char *sql, char state[6])
{
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  snprintf(state, 6, "%s", st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : code ? code : "?");
  if (state[0] && strcmp(state, "53100") != 0)
    fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
  PQclear(r);
}

static long long query_ll(PGconn *c, const char *sql)
{
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    TEST_FAIL("%s: %s", sql, PQresultErrorMessage(r));
  long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return v;
}

struct owned {
  const th_server *srv;
};

static bool owns_all(void *arg)
{
  const struct owned *o = arg;
  return sc_metric(o->srv, "taskhubd_partitions_owned") == 32;
}

/* The conninfo of database |db| on the server of |conninfo| (libpq takes the last of a repeated keyword). */
static void with_db(char *out, size_t cap, const char *conninfo, const char *db)
{
  snprintf(out, cap, "%s dbname=%s", conninfo, db);
}

/* A StartInstance on a thread of its own, for calls that wait for something the test does next. */
struct start {
  sc_hub *h;
  const char *name, *iid, *input;
  int rc;
  char code[64], msg[512];
};

static void *start_thread(void *arg)
{
  struct start *s = arg;
  dt_start_options o;
  memset(&o, 0, sizeof o);
  o.instance_id = s->iid;
  o.input = s->input;
  char *got = NULL;
  s->rc = dt_client_schedule(s->h->c, s->name, &o, &got);
  dt_free(got);
  const char *code, *msg;
  if (s->rc != DT_OK && dt_last_call_status(&code, &msg)) {
    snprintf(s->code, sizeof s->code, "%s", code);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
  }
  return NULL;
}

struct lock_wait {
  PGconn *c;
  char sql[256];
};

static bool someone_waits(void *arg)
{
  struct lock_wait *w = arg;
  return query_ll(w->c, w->sql) > 0;
}

/* ------------------------------------------------------------------ out of disk space */

/* A PostgreSQL server of its own whose database th_full keeps its tables on a small filesystem. */
struct small_pg {
  char dir[512];
  char ts[700];      /* the small filesystem, as every process reaches it */
  char store[600];   /* conninfo of th_full */
  int keep;          /* the holder of the small filesystem lives while this is open */
  pid_t child;
  PGconn *filler;
};

/* A tmpfs of |size| bytes at |mnt| in a user and mount namespace of its own, held by a process that lives until
 * |p->keep| is closed (by small_pg_stop, or by the kernel when the test dies): every process reaches it at
 * |p->ts|. As root it is mounted by the PostgreSQL server's user, so that the server owns it. False (the test
 * skips) where user namespaces cannot mount. */
static bool small_disk(struct small_pg *p, const char *mnt, long size)
{
  int in[2], out[2];
  ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  char opts[64];
  snprintf(opts, sizeof opts, "size=%ld,mode=0700", size);
  static const char script[] = "mount -t tmpfs -o \"$1\" tmpfs \"$2\" && echo \"mounted $$\" && exec cat >/dev/null";
  pid_t c = fork();
  ASSERT(c >= 0);
  if (c == 0) {
    dup2(in[0], 0); /* the copies dup2 makes are inherited through exec */
    dup2(out[1], 1);
    dup2(out[1], 2);
    if (geteuid() == 0)
      execlp("runuser", "runuser", "-u", "postgres", "--", "unshare", "--user", "--map-root-user", "--mount", "sh",
             "-c", script, "sh", opts, mnt, (char *)NULL);
    else
      execlp("unshare", "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", opts, mnt,
             (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  p->keep = in[1];
  p->child = c;
  FILE *f = fdopen(out[0], "r");
  ASSERT(f != NULL);
  char line[512] = "";
  if (!fgets(line, sizeof line, f))
    line[0] = 0;
  fclose(f);
  if (strncmp(line, "mounted ", 8) != 0) {
    fprintf(stderr, "SKIP: no small filesystem (unshare --user --map-root-user --mount): %s\n", line);
    close(p->keep);
    waitpid(c, NULL, 0);
    return false;
  }
  /* `exec cat` kept the shell's pid, which is the holder's. */
  snprintf(p->ts, sizeof p->ts, "/proc/%d/root%s", atoi(line + 8), mnt);
  return true;
}

static unsigned long long free_bytes(const char *path)
{
  struct statvfs v;
  ASSERT_EQ(statvfs(path, &v), 0);
  return (unsigned long long)v.f_bavail * v.f_frsize;
}

/* Fills the tablespace through PostgreSQL: rows of incompressible bytes, smaller and smaller, each size until
 * PostgreSQL refuses one with 53100 (any other error fails the test). */
static void fill(PGconn *c)
{
  exec_ok(c, "CREATE TABLE filler (b bytea)");
  exec_ok(c, "ALTER TABLE filler ALTER b SET STORAGE EXTERNAL"); /* not compressed */
  static const int md5s[] = {16384, 512, 16, 1};           /* 16 random bytes each */
  for (size_t k = 0; k < sizeof md5s / sizeof *md5s; k++) {
    char sql[256], state[6];
    snprintf(sql, sizeof sql,
             "INSERT INTO filler SELECT decode(string_agg(md5(random()::text), ''), 'hex') FROM "
             "generate_series(1, %d)", md5s[k]);
    int n = 0;
    for (;; n++) {
      exec_state(c, sql, state);
      if (state[0])
        break;
      if (n > 100000)
        TEST_FAIL("the small filesystem never filled");
    }
    if (strcmp(state, "53100") != 0)
      TEST_FAIL("filling the tablespace failed with SQLSTATE %s, not 53100 (disk full)", state);
  }
}

/* A JSON string of |n| random hex digits (incompressible enough that PostgreSQL stores it at its size). */
static char *big_json(size_t n)
{
  char *s = malloc(n + 3);
  ASSERT(s != NULL);
  s[0] = '"';
  for (size_t i = 0; i < n; i++)
    s[i + 1] = "0123456789abcdef"[rand() % 16];
  s[n + 1] = '"';
  s[n + 2] = 0;
  return s;
}

static bool server_running(th_server *s)
{
  int status;
  return th_server_wait_exit(s, 0, &status) == 0;
}

/* Expects the thread's last call to have failed with RESOURCE_EXHAUSTED naming PostgreSQL and the disk. */
static void expect_refused(int rc, const char *what)
{
  const char *code = "", *msg = "";
  if (rc == DT_OK)
    TEST_FAIL("%s succeeded with PostgreSQL's disk full", what);
  if (!dt_last_call_status(&code, &msg))
    TEST_FAIL("%s failed without a gRPC status (%s)", what, dt_strerror(rc));
  fprintf(stderr, "%s while full: %s: %s\n", what, code, msg);
  ASSERT_STR_EQ(code, "RESOURCE_EXHAUSTED");
  ASSERT(strstr(msg, "PostgreSQL") != NULL);
  ASSERT(strstr(msg, "disk space") != NULL);
  ASSERT(strstr(msg, "53100") != NULL);
}

struct schedule_args {
  sc_hub *h;
  const char *name, *iid, *input;
};

static bool schedule_accepted(void *arg)
{
  struct schedule_args *a = arg;
  dt_start_options o;
  memset(&o, 0, sizeof o);
  o.instance_id = a->iid;
  o.input = a->input;
  char *got = NULL;
  int rc = dt_client_schedule(a->h->c, a->name, &o, &got);
  dt_free(got);
  return rc == DT_OK;
}

/* 0, or TEST_SKIP where no small filesystem can be mounted. */
static int small_pg_start(struct small_pg *p)
{
  const char *shared = getenv("TASKHUBD_TEST_PG");
  /* Under the shared server's directory, so that the fixture's stop ends this server too if the test dies; a
   * server of its own, since its tablespace goes when the small filesystem does. */
  char conninfo[512], mnt[600];
  snprintf(p->dir, sizeof p->dir, "%s/full-%d", shared, (int)getpid());
  sc_pg_sh("start", p->dir, conninfo, sizeof conninfo);
  snprintf(mnt, sizeof mnt, "%s/mnt", p->dir);
  ASSERT_EQ(mkdir(mnt, 0700), 0);
  if (geteuid() == 0) {
    char chown[700];
    snprintf(chown, sizeof chown, "chown postgres '%s'", mnt);
    ASSERT_EQ(system(chown), 0);
  }
  if (!small_disk(p, mnt, 16L << 20)) {
    sc_pg_sh("stop", p->dir, NULL, 0);
    return TEST_SKIP;
  }
  ASSERT(free_bytes(p->ts) <= 16ULL << 20); /* the small filesystem, not the one it is mounted on */
  PGconn *admin = connect_db(conninfo);
  char sql[1024];
  snprintf(sql, sizeof sql, "CREATE TABLESPACE small LOCATION '%s'", p->ts);
  exec_ok(admin, sql);
  exec_ok(admin, "CREATE DATABASE th_full");
  /* taskhubd creates its tables there; the catalogs and the WAL stay on the big disk, as when a data volume
   * fills up while the system's has room. */
  exec_ok(admin, "ALTER DATABASE th_full SET default_tablespace = small");
  PQfinish(admin);
  with_db(p->store, sizeof p->store, conninfo, "th_full");
  p->filler = connect_db(p->store);
  return 0;
}

static void small_pg_fill(struct small_pg *p)
{
  fill(p->filler);
  fprintf(stderr, "filled: %llu bytes free on the small filesystem\n", free_bytes(p->ts));
}

/* Space comes back: a dropped table's files are emptied at its commit. */
static void small_pg_free_space(struct small_pg *p)
{
  exec_ok(p->filler, "DROP TABLE filler");
  fprintf(stderr, "freed: %llu bytes free on the small filesystem\n", free_bytes(p->ts));
  ASSERT(free_bytes(p->ts) > 8ULL << 20);
}

static void small_pg_stop(struct small_pg *p)
{
  PQfinish(p->filler);
  sc_pg_sh("stop", p->dir, NULL, 0);
  close(p->keep);
  ASSERT_EQ(waitpid(p->child, NULL, 0), p->child);
  char rm[600];
  snprintf(rm, sizeof rm, "rm -rf '%s'", p->dir);
  ASSERT_EQ(system(rm), 0);
}

TEST_IMPL(scen_postgres_disk_full_refuses_and_resumes)
{
  const char *shared = getenv("TASKHUBD_TEST_PG");
  if (!shared)
    return TEST_SKIP; /* a PostgreSQL scenario */
  struct small_pg sp;
  int rc = small_pg_start(&sp);
  if (rc != 0)
    return rc;
  const char *args[] = {"--store", sp.store, "--ops-listen", "127.0.0.1:0", NULL};
  sc_hub h;
  rc = sc_hub_start(&h, args, reg);
  if (rc != 0)
    return rc;
  struct owned o = {&h.srv};
  if (!sc_poll(owns_all, &o, 20000))
    TEST_FAIL("taskhubd never took the task hub's 32 partitions");
  pid_t pid = h.srv.pid;

  /* Acknowledged before the disk fills: finished ones, and ones waiting for an event. */
  enum { N = 8 };
  char done[N][64], waiting[N][64];
  for (int i = 0; i < N; i++) {
    sc_schedule(&h, "Chain", "0", sc_id(done[i], sizeof done[i], "full-done"));
    sc_schedule(&h, "Wait", NULL, sc_id(waiting[i], sizeof waiting[i], "full-wait"));
  }
  for (int i = 0; i < N; i++) {
    dt_instance *in = sc_done(&h, done[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    dt_instance_free(in);
    dt_instance_free(sc_until_status(&h, waiting[i], DT_STATUS_RUNNING, SC_WAIT_MS));
  }
  long long failures_before = sc_metric(&h.srv, "taskhubd_commit_failures_total");
  ASSERT_EQ(failures_before, 0);

  small_pg_fill(&sp);

  /* Commits that need new pages are refused: the calls say so, and nothing of them is there. */
  char *big = big_json(64 * 1024);
  char refused_id[64];
  sc_id(refused_id, sizeof refused_id, "full-refused");
  dt_start_options so;
  memset(&so, 0, sizeof so);
  so.instance_id = refused_id;
  so.input = big;
  char *got = NULL;
  rc = dt_client_schedule(h.c, "Length", &so, &got);
  dt_free(got);
  expect_refused(rc, "StartInstance");
  ASSERT(sc_get(&h, refused_id, false) == NULL);
  rc = dt_client_raise_event(h.c, waiting[0], "proceed", big);
  expect_refused(rc, "RaiseEvent");
  ASSERT_GE(sc_metric(&h.srv, "taskhubd_commit_failures_total"), 2);
  ASSERT_GE(sc_log_count(&h.srv, "event=commit_failed", "SQLSTATE 53100"), 1);

  /* Reads go on meanwhile: what was acknowledged is all there. */
  for (int i = 0; i < N; i++) {
    dt_instance *in = sc_get(&h, done[i], true);
    ASSERT(in != NULL);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    ASSERT_STR_EQ(in->output, "3");
    dt_instance_free(in);
    in = sc_get(&h, waiting[i], false);
    ASSERT(in != NULL);
    SC_EXPECT_STATUS(in, DT_STATUS_RUNNING);
    dt_instance_free(in);
  }
  ASSERT(server_running(&h.srv));

  /* Space comes back: writes resume in the same process. */
  small_pg_free_space(&sp);
  struct schedule_args sa = {&h, "Length", refused_id, big};
  int64_t t0 = sc_mono_ms();
  if (!sc_poll(schedule_accepted, &sa, 20000))
    TEST_FAIL("StartInstance still refused 20 s after PostgreSQL had room again");
  fprintf(stderr, "writes resumed %lld ms after the space came back\n", (long long)(sc_mono_ms() - t0));
  dt_instance *in = sc_done(&h, refused_id, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  char want[32];
  snprintf(want, sizeof want, "%zu", strlen(big));
  ASSERT_STR_EQ(in->output, want);
  dt_instance_free(in);
  for (int i = 0; i < N; i++)
    sc_raise(&h, waiting[i], "proceed", "7");
  for (int i = 0; i < N; i++) {
    in = sc_done(&h, waiting[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    ASSERT_STR_EQ(in->output, "{\"got\":7}");
    dt_instance_free(in);
  }
  /* One process throughout, which never panicked. */
  ASSERT_EQ(h.srv.pid, pid);
  ASSERT_EQ(h.srv.starts, 1);
  ASSERT(server_running(&h.srv));
  ASSERT_EQ(sc_log_count(&h.srv, "panic", NULL), 0);
  free(big);
  sc_hub_stop(&h);
  small_pg_stop(&sp);
  return 0;
}

struct shares {
  const th_server *a, *b;
};

static bool split_evenly(void *arg)
{
  const struct shares *s = arg;
  return sc_metric(s->a, "taskhubd_partitions_owned") == 16 && sc_metric(s->b, "taskhubd_partitions_owned") == 16;
}

/* An instance id of |prefix| whose partition |owner| holds (FNV-1a modulo 32, as sc_part_of). */
static void id_owned_by(PGconn *c, const char *owner, const char *prefix, char *out, size_t cap)
{
  for (;;) {
    sc_id(out, cap, prefix);
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
      h = (h ^ *p) * 16777619u;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM th_partition WHERE id = %u AND owner = '%s'", h % 32u, owner);
    if (query_ll(c, sql) == 1)
      return;
  }
}

struct log_line {
  const th_server *srv;
  const char *a, *b;
};

static bool logged(void *arg)
{
  const struct log_line *l = arg;
  return sc_log_count(l->srv, l->a, l->b) >= 1;
}

/*
 * Two replicas, a full disk, and the commands between them:
 *  - a start through B for an instance of A's partition, forwarded while there was room, that A applies while
 *    PostgreSQL refuses its commit: the forwarded command stays waiting and A applies it again once there is
 *    room, so B's caller gets its answer;
 *  - a start through B whose own commit (the forward) is refused: B's caller gets RESOURCE_EXHAUSTED at once
 *    rather than waiting for an answer that could never come.
 */
TEST_IMPL(scen_postgres_disk_full_between_replicas)
{
  if (!getenv("TASKHUBD_TEST_PG"))
    return TEST_SKIP; /* a PostgreSQL scenario */
  struct small_pg sp;
  int rc = small_pg_start(&sp);
  if (rc != 0)
    return rc;
  /* Leases far longer than the test: A stopped for a moment keeps its partitions. */
  const char *args_a[] = {"--store", sp.store, "--replica-id", "replica-a", "--partition-lease", "120",
                          "--ops-listen", "127.0.0.1:0", NULL};
  const char *args_b[] = {"--store", sp.store, "--replica-id", "replica-b", "--partition-lease", "120",
                          "--ops-listen", "127.0.0.1:0", NULL};
  sc_hub a, b;
  rc = sc_hub_start(&a, args_a, reg);
  if (rc != 0)
    return rc;
  ASSERT_EQ(sc_hub_start(&b, args_b, reg), 0);
  struct shares sh = {&a.srv, &b.srv};
  if (!sc_poll(split_evenly, &sh, 60000))
    TEST_FAIL("the partitions were not split between the two replicas");
  char on_a[64], refused[64];
  id_owned_by(sp.filler, "replica-a", "fb-applied", on_a, sizeof on_a);
  id_owned_by(sp.filler, "replica-a", "fb-refused", refused, sizeof refused);
  char *big = big_json(64 * 1024);

  /* Forwarded by B while there is room; A, stopped, applies it only once the disk is full. */
  th_server_signal(&a.srv, SIGSTOP);
  struct start st = {&b, "Length", on_a, big, 0, "", ""};
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, NULL, start_thread, &st), 0);
  struct lock_wait fw = {sp.filler, "SELECT count(*) FROM th_incoming WHERE done IS NULL"};
  if (!sc_poll(someone_waits, &fw, 20000))
    TEST_FAIL("B never forwarded the start to A's partition");
  small_pg_fill(&sp);
  th_server_signal(&a.srv, SIGCONT);
  struct log_line failed = {&a.srv, "event=commit_failed", "SQLSTATE 53100"};
  if (!sc_poll(logged, &failed, 20000))
    TEST_FAIL("A never tried to apply the forwarded start");
  ASSERT_EQ(query_ll(sp.filler, "SELECT count(*) FROM th_incoming WHERE done IS NULL"), 1); /* still waiting */

  /* B's own commit refused: the forward is never written, and the caller hears so from B. */
  dt_start_options so;
  memset(&so, 0, sizeof so);
  so.instance_id = refused;
  so.input = big;
  char *got = NULL;
  rc = dt_client_schedule(b.c, "Length", &so, &got);
  dt_free(got);
  expect_refused(rc, "StartInstance forwarded by B");

  small_pg_free_space(&sp);
  /* A applies the waiting start at its next look (a notification or the 5 s sweep), and B's caller is answered. */
  ASSERT_EQ(pthread_join(th, NULL), 0);
  if (st.rc != DT_OK)
    TEST_FAIL("the start forwarded to A failed: %s %s", st.code, st.msg);
  struct schedule_args sa = {&b, "Length", refused, big};
  if (!sc_poll(schedule_accepted, &sa, 20000))
    TEST_FAIL("StartInstance through B still refused 20 s after PostgreSQL had room again");
  char want[32];
  snprintf(want, sizeof want, "%zu", strlen(big));
  const char *ids[2] = {on_a, refused};
  for (int i = 0; i < 2; i++) {
    dt_instance *in = sc_done(&b, ids[i], SC_WAIT_MS);
    SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
    ASSERT_STR_EQ(in->output, want);
    dt_instance_free(in);
  }
  ASSERT(server_running(&a.srv) && server_running(&b.srv));
  ASSERT_EQ(a.srv.starts + b.srv.starts, 2);
  free(big);
  sc_hub_stop(&a);
  sc_hub_stop(&b);
  small_pg_stop(&sp);
  return 0;
}

/* ------------------------------------------------------------------ a deadlock */

/*
 * The test's connection inserts the row a StartInstance's commit is about to write, so the commit waits for it,
 * holding the fence's share lock on the instance's partition; then the test's connection updates every
 * partition row, and waits for that lock: a cycle. PostgreSQL's deadlock check runs in the backend that has
 * waited deadlock_timeout, 1 s for taskhubd's and 20 s for the test's, so taskhubd's commit is the one rolled
 * back (40P01). taskhubd sends it again, and the start succeeds once the test's transaction ends.
 */
TEST_IMPL(scen_postgres_deadlock_is_retried)
{
  const char *pgdir = getenv("TASKHUBD_TEST_PG");
  if (!pgdir)
    return TEST_SKIP; /* a PostgreSQL scenario */
  char cmd[600], conninfo[512];
  snprintf(cmd, sizeof cmd, "createdb '%s' th_deadlock_%d", pgdir, (int)getpid());
  sc_pg_sh(cmd, "", conninfo, sizeof conninfo);
  PGconn *a = connect_db(conninfo);
  char sql[512];
  snprintf(sql, sizeof sql, "ALTER DATABASE th_deadlock_%d SET deadlock_timeout = '1s'", (int)getpid());
  exec_ok(a, sql);
  const char *args[] = {"--store", conninfo, "--ops-listen", "127.0.0.1:0", NULL};
  sc_hub h;
  int rc = sc_hub_start(&h, args, NULL);
  if (rc != 0)
    return rc;
  struct owned o = {&h.srv};
  if (!sc_poll(owns_all, &o, 20000))
    TEST_FAIL("taskhubd never took the task hub's 32 partitions");
  ASSERT_EQ(sc_metric(&h.srv, "taskhubd_pg_commit_retries_total"), 0);

  char iid[64];
  sc_id(iid, sizeof iid, "deadlock");
  exec_ok(a, "SET deadlock_timeout = '20s'");
  exec_ok(a, "BEGIN");
  snprintf(sql, sizeof sql,
           "INSERT INTO th_instance (iid, part, status, created_us, rec) VALUES ('%s', 0, 0, 0, '\\x')", iid);
  exec_ok(a, sql);
  long long xid = query_ll(a, "SELECT pg_current_xact_id()::text::bigint");

  struct start st = {&h, "Chain", iid, "0", 0, "", ""};
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, NULL, start_thread, &st), 0);
  /* taskhubd's commit waits for the test's transaction. */
  struct lock_wait w = {connect_db(conninfo), ""};
  snprintf(w.sql, sizeof w.sql,
           "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' AND "
           "transactionid::text = '%lld'", xid);
  if (!sc_poll(someone_waits, &w, 20000))
    TEST_FAIL("taskhubd's commit never waited for the test's row");
  /* Closes the cycle; it returns once PostgreSQL has rolled taskhubd's commit back. */
  PGresult *r = PQexec(a, "UPDATE th_partition SET lease_until = lease_until");
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    TEST_FAIL("the test's transaction, not taskhubd's commit, was chosen (%s): taskhubd's deadlock check ran "
              "before the cycle closed", PQresultErrorMessage(r));
  PQclear(r);
  exec_ok(a, "ROLLBACK");
  ASSERT_EQ(pthread_join(th, NULL), 0);
  if (st.rc != DT_OK)
    TEST_FAIL("StartInstance failed after the deadlock: %s %s", st.code, st.msg);

  dt_instance *in = sc_get(&h, iid, false);
  ASSERT(in != NULL);
  SC_EXPECT_STATUS(in, DT_STATUS_PENDING);
  dt_instance_free(in);
  ASSERT_GE(sc_metric(&h.srv, "taskhubd_pg_commit_retries_total"), 1);
  ASSERT_GE(sc_log_count(&h.srv, "event=store_commit_retry", "sqlstate=40P01"), 1);
  ASSERT_EQ(sc_metric(&h.srv, "taskhubd_commit_failures_total"), 0);
  ASSERT(server_running(&h.srv));
  fprintf(stderr, "deadlock: %lld commit(s) sent again\n", sc_metric(&h.srv, "taskhubd_pg_commit_retries_total"));
  PQfinish(w.c);
  PQfinish(a);
  sc_hub_stop(&h);
  return 0;
}
