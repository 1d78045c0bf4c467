/*
 * th-bench: taskhubd load scenarios driven by the C SDK: a worker in a child process, the client in this one.
 *
 *   th-bench TARGET[,TARGET...] SCENARIO [COUNT] [--sidecar-pid PID[,PID...]] [--json FILE] [--same-process]
 *            [--settle SECONDS] [--threads N] [--entities K]
 *
 * Several comma-separated targets are replicas of one task hub (taskhubd on one PostgreSQL database): the worker
 * process then runs one worker per target, the client opens one connection per target, and instance i is
 * started, waited for, raised and terminated through target i mod N (starts round-robin; one-at-a-time latency
 * runs take the targets in turn). Fan-out, queries and purges go through the first target. The warm-up runs one
 * orchestration through each target. Several --sidecar-pid values (the replicas) report summed CPU and RSS.
 * --settle waits that long after the warm-up, the workers connected, and warms up again before measuring: time
 * for replicas to move partitions to the replicas that now have workers.
 * --threads sets the client's threads (default 16), each with one call in flight.
 *
 * The worker runs in its own process, as an app's workers and clients usually do: in one process gRPC hands
 * every socket event from whichever of the client's waiting threads polls to the worker's threads, which cost
 * the load generator 15-20 % more CPU on two cores. --same-process runs both in this process.
 *
 * Scenarios (COUNT's meaning in brackets):
 *   hello_cities5  orchestrations calling 5 activities in sequence [orchestrations, default 1000]
 *   fanout         one orchestration fanning out activities and aggregating [activities, default 1000]
 *   latency        one hello_cities5 at a time, start to completion as the client sees it [runs, default 200]
 *   timers         orchestrations waiting on a 1 s durable timer [orchestrations, default 1000]
 *   events         orchestrations waiting for an external event, then raised [orchestrations, default 1000]
 *   large_state    COUNT finished instances, then QueryInstances by status (page of 100) and purge by filter
 *   idle           COUNT instances left waiting for an event; reports the sidecar's RSS
 *   entity_calls   orchestrations each calling one of --entities K counter entities (C SDK worker, dt_call_entity)
 *                  and awaiting its result; the counters' sum is checked afterwards [orchestrations, default 2000]
 *   entity_signals signals (dt_client_signal_entity, from --threads threads) spread over --entities K counter
 *                  entities (default 1000), timed until the last operation completed; p50/p95/p99 are the
 *                  SignalEntity calls' latency; every entity's sum is then checked with QueryEntities
 *                  [signals, default 20000]. The C SDK has no entity worker: the child process runs th-bench's
 *                  own over raw gRPC (entity_worker.c), whatever --same-process says.
 *
 * TH_BENCH_TLS_CA, TH_BENCH_TLS_CERT and TH_BENCH_TLS_KEY (PEM files) connect the client and the worker with TLS
 * (and a client certificate); TASKHUBD_AUTH_TOKEN adds the bearer token (bench/security.sh).
 *
 * Prints one line: RESULT scenario=<name> throughput=<per second> p50_ms=<x> p95_ms=<x> p99_ms=<x>
 * sidecar_cpu_s=<x> sidecar_rss_mb=<x> (CPU and RSS of --sidecar-pid over the measured part). entity_signals adds
 * entities=<K> threads=<N> signal_s=<seconds the signalling took> batches=<entity batches> ops_per_batch=<x>.
 */
#define _GNU_SOURCE
#include "durabletask.h"
#include "entity_worker.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256

size_t n_entities_for_calls(void); /* --entities, for the worker's orchestrations defined before it */

static size_t n_threads = 16; /* --threads: the client's threads, each with one call in flight */

#define MAX_TARGETS 16

static char *targets[MAX_TARGETS];
static size_t n_targets;
static int sidecar_pids[MAX_TARGETS];
static size_t n_pids;

/* Splits a comma-separated list into at most MAX_TARGETS non-empty items; returns their number, 0 on error. */
static size_t split_list(char *list, char **out)
{
  size_t n = 0;
  for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (n == MAX_TARGETS)
      return 0;
    out[n++] = t;
  }
  return n;
}

static double now_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void one_sidecar_usage(int sidecar_pid, double *cpu_s, double *rss_mb)
{
  *cpu_s = *rss_mb = 0;
  if (!sidecar_pid)
    return;
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", sidecar_pid);
  FILE *f = fopen(path, "r");
  if (f) {
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
      *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
  }
  snprintf(path, sizeof path, "/proc/%d/statm", sidecar_pid);
  f = fopen(path, "r");
  if (f) {
    long size, res;
    if (fscanf(f, "%ld %ld", &size, &res) == 2)
      *rss_mb = (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
    fclose(f);
  }
}

/* CPU seconds and RSS of every --sidecar-pid, summed. */
static void sidecar_usage(double *cpu_s, double *rss_mb)
{
  *cpu_s = *rss_mb = 0;
  for (size_t i = 0; i < n_pids; i++) {
    double c, r;
    one_sidecar_usage(sidecar_pids[i], &c, &r);
    *cpu_s += c;
    *rss_mb += r;
  }
}

static int cmpd(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static FILE *json_out;

/* |extra|: more " key=number" pairs for the RESULT line (and the JSON object), or NULL. */
static void result_extra(const char *scenario, double throughput, double *lat_ms, size_t n, double cpu0,
                         const char *extra)
{
  double cpu, rss;
  sidecar_usage(&cpu, &rss);
  double p50 = 0, p95 = 0, p99 = 0;
  if (n) {
    qsort(lat_ms, n, sizeof *lat_ms, cmpd);
    p50 = lat_ms[n / 2];
    p95 = lat_ms[(size_t)((double)(n - 1) * 0.95)];
    p99 = lat_ms[(size_t)((double)(n - 1) * 0.99)];
  }
  printf("RESULT scenario=%s throughput=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f sidecar_cpu_s=%.2f "
         "sidecar_rss_mb=%.1f%s\n",
         scenario, throughput, p50, p95, p99, cpu - cpu0, rss, extra ? extra : "");
  fflush(stdout);
  if (json_out) {
    fprintf(json_out,
            "{\"scenario\":\"%s\",\"throughput\":%.1f,\"p50_ms\":%.2f,\"p95_ms\":%.2f,\"p99_ms\":%.2f,"
            "\"sidecar_cpu_s\":%.2f,\"sidecar_rss_mb\":%.1f",
            scenario, throughput, p50, p95, p99, cpu - cpu0, rss);
    char *copy = extra ? strdup(extra) : NULL;
    for (char *save = NULL, *kv = copy ? strtok_r(copy, " ", &save) : NULL; kv; kv = strtok_r(NULL, " ", &save)) {
      char *eq = strchr(kv, '=');
      if (eq) {
        *eq = '\0';
        fprintf(json_out, ",\"%s\":%s", kv, eq + 1);
      }
    }
    free(copy);
    fprintf(json_out, "}\n");
  }
}

static void result(const char *scenario, double throughput, double *lat_ms, size_t n, double cpu0)
{
  result_extra(scenario, throughput, lat_ms, n, cpu0, NULL);
}

/* ------------------------------------------------------------------ orchestrators and activities */

static const char *say_hello(dt_activity_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  return dt_activity_printf(ctx, "\"Hello %s!\"", input ? input : "?");
}

static const char *hello_cities5(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input;
  (void)ud;
  static const char *const cities[] = {"Tokyo", "Seattle", "London", "Cairo", "Lima"};
  const char *r = NULL;
  for (int i = 0; i < 5; i++)
    r = dt_await(ctx, dt_call_activity(ctx, "say_hello", cities[i]));
  return r;
}

/* entity_calls: each orchestration calls one of --entities "tally" counters, picked by its instance id. */
#define TALLY_PREFIX "@tally@c"

static const char *call_counter(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input;
  (void)ud;
  unsigned h = 2166136261u;
  for (const char *p = dt_instance_id(ctx); *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  const char *id = dt_ctx_printf(ctx, TALLY_PREFIX "%zu", (size_t)h % n_entities_for_calls());
  return dt_await(ctx, dt_call_entity(ctx, id, "add", "1"));
}

static const char *tally(dt_entity_ctx *ctx, const char *operation, const char *input, void *ud)
{
  (void)ud;
  long v = dt_entity_state(ctx) ? strtol(dt_entity_state(ctx), NULL, 10) : 0;
  if (!strcmp(operation, "add"))
    v += input ? strtol(input, NULL, 10) : 0;
  const char *st = dt_entity_printf(ctx, "%ld", v);
  dt_entity_set_state(ctx, st);
  return st;
}

static const char *fanout(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  int n = input ? atoi(input) : 0;
  dt_task **t = dt_ctx_alloc(ctx, (size_t)(n ? n : 1) * sizeof *t);
  for (int i = 0; i < n; i++)
    t[i] = dt_call_activity(ctx, "say_hello", "x");
  dt_await(ctx, dt_when_all(ctx, t, (size_t)n));
  return dt_ctx_printf(ctx, "%d", n);
}

static const char *timer1(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input;
  (void)ud;
  dt_await(ctx, dt_create_timer_in(ctx, 1000));
  return "1";
}

static const char *wait_event(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input;
  (void)ud;
  return dt_await(ctx, dt_wait_event(ctx, "go"));
}

/* ------------------------------------------------------------------ parallel client work */

struct job {
  dt_client **c; /* one per target: instance i goes through c[i % n_targets] */
  const char *name, *input;
  char **ids;
  double *lat_ms;
  size_t from, to;
  int op; /* 0 schedule, 1 wait completion (latency from server times), 2 raise "go", 3 wait start, 4 terminate */
  atomic_int *failures;
};

static void *run_job(void *arg)
{
  struct job *j = arg;
  for (size_t i = j->from; i < j->to; i++) {
    int rc = DT_OK;
    dt_instance *st = NULL;
    dt_client *c = j->c[i % n_targets];
    switch (j->op) {
    case 0:
      rc = dt_client_schedule(c, j->name, &(dt_start_options){.input = j->input}, &j->ids[i]);
      break;
    case 1:
      rc = dt_client_wait_completion(c, j->ids[i], 600000, false, &st);
      if (rc == DT_OK && st->status != DT_STATUS_COMPLETED)
        rc = DT_ERR_INTERNAL;
      if (rc == DT_OK && j->lat_ms)
        j->lat_ms[i] = (double)(st->last_updated_ms - st->created_ms);
      break;
    case 2:
      rc = dt_client_raise_event(c, j->ids[i], "go", "1");
      break;
    case 3:
      rc = dt_client_wait_start(c, j->ids[i], 600000, false, &st);
      break;
    case 4:
      rc = dt_client_terminate(c, j->ids[i], NULL, false);
      break;
    }
    dt_instance_free(st);
    if (rc != DT_OK)
      atomic_fetch_add(j->failures, 1);
  }
  return NULL;
}

/* Runs |op| over ids[0..n) on n_threads threads. */
static int parallel(dt_client **c, int op, const char *name, const char *input, char **ids, double *lat, size_t n)
{
  pthread_t th[MAX_THREADS];
  struct job jobs[MAX_THREADS];
  atomic_int failures = 0;
  size_t k = n < n_threads ? (n ? n : 1) : n_threads;
  for (size_t t = 0; t < k; t++) {
    jobs[t] = (struct job){c, name, input, ids, lat, n * t / k, n * (t + 1) / k, op, &failures};
    pthread_create(&th[t], NULL, run_job, &jobs[t]);
  }
  for (size_t t = 0; t < k; t++)
    pthread_join(th[t], NULL);
  return atomic_load(&failures);
}

static void free_ids(char **ids, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dt_free(ids[i]);
  free(ids);
}

/* ------------------------------------------------------------------ scenarios */

static int many(dt_client **c, const char *scenario, const char *orch, const char *input, size_t n, bool events)
{
  char **ids = calloc(n, sizeof *ids);
  double *lat = calloc(n, sizeof *lat);
  double cpu0, rss;
  sidecar_usage(&cpu0, &rss);
  double t0 = now_s();
  int bad = parallel(c, 0, orch, input, ids, NULL, n);
  if (events) {
    bad += parallel(c, 3, NULL, NULL, ids, NULL, n); /* all are waiting for the event now */
    bad += parallel(c, 2, NULL, NULL, ids, NULL, n);
  }
  bad += parallel(c, 1, NULL, NULL, ids, lat, n);
  double el = now_s() - t0;
  if (bad)
    fprintf(stderr, "th-bench: %d calls failed\n", bad);
  result(scenario, (double)n / el, lat, n, cpu0);
  free_ids(ids, n);
  free(lat);
  return bad ? 1 : 0;
}

static int scenario_fanout(dt_client *c, size_t n)
{
  char input[32];
  snprintf(input, sizeof input, "%zu", n);
  double cpu0, rss;
  sidecar_usage(&cpu0, &rss);
  double t0 = now_s();
  char *id = NULL;
  dt_instance *st = NULL;
  int rc = dt_client_schedule(c, "fanout", &(dt_start_options){.input = input}, &id);
  if (rc == DT_OK)
    rc = dt_client_wait_completion(c, id, 600000, false, &st);
  double el = now_s() - t0;
  double ms = el * 1e3;
  char name[64];
  snprintf(name, sizeof name, "fanout_%zu", n);
  result(name, (double)n / el, &ms, 1, cpu0);
  bool ok = rc == DT_OK && st->status == DT_STATUS_COMPLETED;
  dt_instance_free(st);
  dt_free(id);
  return ok ? 0 : 1;
}

static int scenario_latency(dt_client **cs, size_t n)
{
  double *lat = calloc(n, sizeof *lat);
  double cpu0, rss;
  sidecar_usage(&cpu0, &rss);
  double t0 = now_s();
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double s = now_s();
    char *id = NULL;
    dt_instance *st = NULL;
    dt_client *c = cs[i % n_targets];
    int rc = dt_client_schedule(c, "hello_cities5", NULL, &id);
    if (rc == DT_OK)
      rc = dt_client_wait_completion(c, id, 60000, false, &st);
    bad += rc != DT_OK || st->status != DT_STATUS_COMPLETED;
    lat[i] = (now_s() - s) * 1e3;
    dt_instance_free(st);
    dt_free(id);
  }
  result("latency", (double)n / (now_s() - t0), lat, n, cpu0);
  free(lat);
  return bad ? 1 : 0;
}

static int scenario_large_state(dt_client **cs, size_t n)
{
  dt_client *c = cs[0];
  char **ids = calloc(n, sizeof *ids);
  double t0 = now_s();
  int bad = parallel(cs, 0, "never_runs", NULL, ids, NULL, n);
  bad += parallel(cs, 4, NULL, NULL, ids, NULL, n); /* server-side termination: finished instances */
  fprintf(stderr, "th-bench: %zu finished instances in %.1f s\n", n, now_s() - t0);
  enum { Q = 50 };
  double lat[Q];
  double cpu0, rss;
  sidecar_usage(&cpu0, &rss);
  dt_status term = DT_STATUS_TERMINATED;
  char *cont = NULL;
  for (int i = 0; i < Q; i++) {
    dt_query q = {.statuses = &term, .n_statuses = 1, .page_size = 100, .continuation = cont};
    dt_instance_page *p = NULL;
    double s = now_s();
    int rc = dt_client_query(c, &q, &p);
    lat[i] = (now_s() - s) * 1e3;
    bad += rc != DT_OK || !p || p->n != 100;
    free(cont);
    cont = p && p->continuation ? strdup(p->continuation) : NULL;
    dt_instance_page_free(p);
  }
  free(cont);
  result("query_by_status_page100", Q / ((lat[0] + 1e-9) * Q / 1e3), lat, Q, cpu0);
  sidecar_usage(&cpu0, &rss);
  double ps = now_s();
  int deleted = 0, total = 0;
  bool complete = false;
  dt_purge_filter f = {.statuses = &term, .n_statuses = 1};
  while (!complete && dt_client_purge_filter(c, &f, &deleted, &complete) == DT_OK)
    total += deleted;
  double pel = now_s() - ps;
  double pms = pel * 1e3;
  result("purge_by_filter", (double)total / pel, &pms, 1, cpu0);
  bad += (size_t)total != n;
  free_ids(ids, n);
  return bad ? 1 : 0;
}

static int scenario_idle(dt_client **c, size_t n)
{
  char **ids = calloc(n, sizeof *ids);
  double cpu0, rss;
  sidecar_usage(&cpu0, &rss);
  double t0 = now_s();
  int bad = parallel(c, 0, "wait_event", NULL, ids, NULL, n);
  bad += parallel(c, 3, NULL, NULL, ids, NULL, n);
  double el = now_s() - t0;
  result("idle_waiting", (double)n / el, NULL, 0, cpu0);
  free_ids(ids, n);
  return bad ? 1 : 0;
}

/* ------------------------------------------------------------------ entities */

/* Signal i goes to entity i mod |entities|, "@counter@e<index>", adding 1 + i mod 7 (so that a lost, repeated or
 * misrouted operation changes some entity's sum). */
#define ENTITY_PREFIX "@counter@e"

static size_t n_entities = 1000;

size_t n_entities_for_calls(void)
{
  return n_entities;
}
static int ew_notify = -1;        /* the entity worker's progress (struct ew_progress), read end */
static struct ew_progress ew_warm; /* its progress after the warm-up */

static long signal_amount(size_t i)
{
  return 1 + (long)(i % 7);
}

struct sig_job {
  dt_client **c;
  double *lat_ms;
  size_t from, to;
  atomic_int *failures;
};

static void *run_signals(void *arg)
{
  struct sig_job *j = arg;
  for (size_t i = j->from; i < j->to; i++) {
    char id[48], in[24];
    snprintf(id, sizeof id, ENTITY_PREFIX "%06zu", i % n_entities);
    snprintf(in, sizeof in, "%ld", signal_amount(i));
    double s = now_s();
    int rc = dt_client_signal_entity(j->c[i % n_targets], id, "add", in, 0);
    j->lat_ms[i] = (now_s() - s) * 1e3;
    if (rc != DT_OK) {
      if (atomic_fetch_add(j->failures, 1) == 0)
        fprintf(stderr, "th-bench: dt_client_signal_entity(%s): %s\n", id, dt_strerror(rc));
    }
  }
  return NULL;
}

/* Blocks until the entity worker reports its next goal reached; false when it died or reported errors. */
static bool wait_entity_goal(struct ew_progress *p)
{
  size_t got = 0;
  while (got < sizeof *p) {
    struct pollfd pfd = {.fd = ew_notify, .events = POLLIN};
    if (poll(&pfd, 1, 600000) == 0) { /* a bound on a stuck run, not a wait for anything in particular */
      fprintf(stderr, "th-bench: the entity worker reported nothing for 600 s\n");
      return false;
    }
    ssize_t r = read(ew_notify, (char *)p + got, sizeof *p - got);
    if (r <= 0) {
      fprintf(stderr, "th-bench: the entity worker stopped before completing every operation\n");
      return false;
    }
    got += (size_t)r;
  }
  if (p->errors)
    fprintf(stderr, "th-bench: the entity worker reports %ld errors\n", p->errors);
  return p->errors == 0;
}

/* Every entity's state, read back with QueryEntities (pages of 500, with state): each must hold its sum. */
static int check_entity_sums(dt_client *c, size_t n)
{
  size_t k = n < n_entities ? n : n_entities;
  long *want = calloc(k ? k : 1, sizeof *want);
  bool *seen = calloc(k ? k : 1, sizeof *seen);
  for (size_t i = 0; i < n; i++)
    want[i % n_entities] += signal_amount(i);
  size_t found = 0, wrong = 0;
  char *token = NULL;
  int rc = DT_OK;
  do {
    dt_entity_page *p = NULL;
    dt_entity_query q = {
        .id_prefix = ENTITY_PREFIX, .include_state = true, .include_transient = true, .page_size = 500,
        .continuation = token};
    rc = dt_client_query_entities(c, &q, &p);
    free(token);
    token = NULL;
    if (rc != DT_OK) {
      fprintf(stderr, "th-bench: dt_client_query_entities: %s\n", dt_strerror(rc));
      break;
    }
    for (size_t i = 0; i < p->n; i++) {
      const dt_entity *en = p->entities[i];
      size_t idx = (size_t)strtoul(en->entity_id + strlen(ENTITY_PREFIX), NULL, 10);
      long got = en->state ? strtol(en->state, NULL, 10) : -1;
      if (idx >= k || seen[idx] || got != want[idx] || en->backlog != 0) {
        if (wrong++ < 5)
          fprintf(stderr, "th-bench: %s: state %s, backlog %lld, expected %ld\n", en->entity_id,
                  en->state ? en->state : "(none)", (long long)en->backlog, idx < k ? want[idx] : -1L);
        continue;
      }
      seen[idx] = true;
      found++;
    }
    token = p->continuation ? strdup(p->continuation) : NULL;
    dt_entity_page_free(p);
  } while (token);
  free(token);
  free(want);
  free(seen);
  if (rc == DT_OK && (found != k || wrong))
    fprintf(stderr, "th-bench: %zu of %zu entities hold their sum, %zu wrong\n", found, k, wrong);
  return rc == DT_OK && found == k && !wrong ? 0 : 1;
}

/* |n| signals from n_threads threads (each waits for its call before the next: n_threads in flight) to
 * |n_entities| counters, timed until the worker has completed the last operation. p50/p95/p99 are the
 * SignalEntity calls' latency (queued durably); the sums are checked afterwards. */
static int scenario_entity_signals(dt_client **cs, size_t n)
{
  double *lat = calloc(n ? n : 1, sizeof *lat);
  pthread_t th[MAX_THREADS];
  struct sig_job jobs[MAX_THREADS];
  atomic_int failures = 0;
  size_t k = n < n_threads ? (n ? n : 1) : n_threads;
  double cpu0, rss;
  sidecar_usage(&cpu0, &rss);
  double t0 = now_s();
  for (size_t t = 0; t < k; t++) {
    jobs[t] = (struct sig_job){cs, lat, n * t / k, n * (t + 1) / k, &failures};
    pthread_create(&th[t], NULL, run_signals, &jobs[t]);
  }
  for (size_t t = 0; t < k; t++)
    pthread_join(th[t], NULL);
  double signalled = now_s() - t0;
  struct ew_progress p1 = {0};
  bool ok = !atomic_load(&failures) && wait_entity_goal(&p1);
  double el = now_s() - t0;
  if (atomic_load(&failures))
    fprintf(stderr, "th-bench: %d signals failed\n", atomic_load(&failures));
  long batches = p1.batches - ew_warm.batches, ops = p1.ops - ew_warm.ops; /* the measured part's */
  char extra[160];
  snprintf(extra, sizeof extra, " entities=%zu threads=%zu signal_s=%.2f batches=%ld ops_per_batch=%.1f",
           n < n_entities ? n : n_entities, n_threads, signalled, batches, batches ? (double)ops / (double)batches : 0);
  result_extra("entity_signals", (double)n / el, lat, n, cpu0, extra);
  free(lat);
  if (!ok)
    return 1;
  return check_entity_sums(cs[0], n);
}

/* The counters' states added up (-1 when they cannot be read). */
static long tally_sum(dt_client *c)
{
  long sum = 0;
  char *token = NULL;
  int rc;
  do {
    dt_entity_page *p = NULL;
    dt_entity_query q = {.id_prefix = TALLY_PREFIX, .include_state = true, .page_size = 500, .continuation = token};
    rc = dt_client_query_entities(c, &q, &p);
    free(token);
    token = NULL;
    if (rc != DT_OK)
      break;
    for (size_t i = 0; i < p->n; i++)
      sum += p->entities[i]->state ? strtol(p->entities[i]->state, NULL, 10) : 0;
    token = p->continuation ? strdup(p->continuation) : NULL;
    dt_entity_page_free(p);
  } while (token);
  free(token);
  return rc == DT_OK ? sum : -1;
}

/* TLS for a secured taskhubd (bench/security.sh): PEM files named by TH_BENCH_TLS_CA, _CERT and _KEY; the token
 * comes from TASKHUBD_AUTH_TOKEN, which the SDK reads itself. Read once; the SDK copies what it keeps. */
static void bench_security(dt_conn_options *o)
{
  static char *pem[3];
  static bool loaded;
  static const char *const vars[3] = {"TH_BENCH_TLS_CA", "TH_BENCH_TLS_CERT", "TH_BENCH_TLS_KEY"};
  if (!loaded) {
    loaded = true;
    for (int i = 0; i < 3; i++) {
      const char *path = getenv(vars[i]);
      FILE *f = path && *path ? fopen(path, "rb") : NULL;
      if (path && *path && !f) {
        fprintf(stderr, "th-bench: %s=%s: cannot open\n", vars[i], path);
        exit(2);
      }
      if (f) {
        pem[i] = calloc(1, 1 << 16);
        if (!pem[i] || fread(pem[i], 1, (1 << 16) - 1, f) == 0) {
          fprintf(stderr, "th-bench: %s=%s: cannot read\n", vars[i], path);
          exit(2);
        }
        fclose(f);
      }
    }
  }
  o->tls = pem[0] != NULL;
  o->root_certs_pem = pem[0];
  o->client_cert_pem = pem[1];
  o->client_key_pem = pem[2];
}

static int run_worker_start(const char *target, dt_worker **out)
{
  dt_worker_options wo = {.activity_threads = 2, .max_orchestrations = 1000, .max_activities = 1000};
  bench_security(&wo.conn);
  dt_worker *w = NULL;
  if (dt_worker_new(target, &wo, &w) != DT_OK)
    return DT_ERR_INTERNAL;
  dt_worker_add_orchestrator(w, "hello_cities5", hello_cities5, NULL);
  dt_worker_add_orchestrator(w, "fanout", fanout, NULL);
  dt_worker_add_orchestrator(w, "timer1", timer1, NULL);
  dt_worker_add_orchestrator(w, "wait_event", wait_event, NULL);
  dt_worker_add_activity(w, "say_hello", say_hello, NULL);
  dt_worker_add_orchestrator(w, "call_counter", call_counter, NULL);
  dt_worker_add_entity(w, "tally", tally, NULL);
  int rc = dt_worker_start(w);
  if (rc != DT_OK) {
    fprintf(stderr, "th-bench: cannot start the worker for %s: %s\n", target, dt_strerror(rc));
    dt_worker_free(w);
    return rc;
  }
  *out = w;
  return DT_OK;
}

/* One worker per target; on failure the ones started are freed. */
static int run_workers_start(dt_worker **ws)
{
  for (size_t i = 0; i < n_targets; i++)
    if (run_worker_start(targets[i], &ws[i]) != DT_OK) {
      while (i--)
        dt_worker_free(ws[i]);
      return DT_ERR_INTERNAL;
    }
  return DT_OK;
}

/* The worker process: serves work items until |hold| reaches end of file (the client side is done or died). */
static int run_worker(int hold)
{
  dt_worker *ws[MAX_TARGETS] = {0};
  if (run_workers_start(ws) != DT_OK)
    return 1;
  char buf[16];
  while (read(hold, buf, sizeof buf) > 0)
    ;
  for (size_t i = 0; i < n_targets; i++)
    dt_worker_free(ws[i]);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: th-bench TARGET[,TARGET...] SCENARIO [COUNT] [--sidecar-pid PID[,PID...]] [--json FILE] "
                    "[--same-process] [--settle SECONDS] [--threads N] [--entities K]\n");
    return 2;
  }
  n_targets = split_list(argv[1], targets);
  if (!n_targets) {
    fprintf(stderr, "th-bench: between 1 and %d comma-separated targets\n", MAX_TARGETS);
    return 2;
  }
  const char *scenario = argv[2];
  size_t count = 0;
  bool same_process = false;
  unsigned settle_s = 0;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--same-process"))
      same_process = true;
    else if (!strcmp(argv[i], "--sidecar-pid") && i + 1 < argc) {
      char *pids[MAX_TARGETS];
      n_pids = split_list(argv[++i], pids);
      for (size_t k = 0; k < n_pids; k++)
        sidecar_pids[k] = atoi(pids[k]);
    }
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      n_threads = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--entities") && i + 1 < argc)
      n_entities = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--settle") && i + 1 < argc)
      settle_s = (unsigned)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json") && i + 1 < argc)
      json_out = fopen(argv[++i], "a");
    else
      count = (size_t)atol(argv[i]);
  }
  if (!n_threads || n_threads > MAX_THREADS) {
    fprintf(stderr, "th-bench: --threads between 1 and %d\n", MAX_THREADS);
    return 2;
  }
  if (!n_entities) {
    fprintf(stderr, "th-bench: --entities must be at least 1\n");
    return 2;
  }
  bool entities = !strcmp(scenario, "entity_signals");
  if (entities && !count)
    count = 20000;
  bool needs_worker = strcmp(scenario, "large_state") != 0 && !entities;
  /* Forked before either side touches gRPC: the child runs the worker (the SDK's, or for the entity scenarios
   * th-bench's own entity worker) until the pipe closes. */
  pid_t child = -1;
  int hold = -1;
  if ((needs_worker && !same_process) || entities) {
    int fds[2], nfds[2] = {-1, -1};
    /* The entity worker reports when it has completed the warm-up's operations (one per target), then all. */
    long goals[2] = {(long)n_targets, (long)(n_targets + count)};
    if (pipe(fds) != 0 || (entities && pipe(nfds) != 0) || (child = fork()) < 0) {
      perror("th-bench: starting the worker process");
      return 1;
    }
    if (child == 0) {
      close(fds[1]);
      if (entities) {
        close(nfds[0]);
        _exit(entity_worker_run(targets, n_targets, fds[0], nfds[1], goals, 2));
      }
      int wrc = run_worker(fds[0]);
      _exit(wrc);
    }
    close(fds[0]);
    hold = fds[1];
    if (entities) {
      close(nfds[1]);
      ew_notify = nfds[0];
    }
  }
  dt_worker *ws[MAX_TARGETS] = {0};
  if (needs_worker && same_process && run_workers_start(ws) != DT_OK)
    return 1;
  dt_client *cs[MAX_TARGETS] = {0};
  /* Longer than the server's purge budget (30 s by default), so a long purge ends on the server's terms. */
  dt_conn_options co = {.call_timeout_ms = 120000};
  bench_security(&co);
  for (size_t i = 0; i < n_targets; i++)
    if (dt_client_open(targets[i], &co, &cs[i]) != DT_OK)
      return 1;
  dt_client *c = cs[0];
  /* Warm up the connections and the workers' streams: one orchestration through each target (twice with
   * --settle, before and after the wait). */
  for (int round = 0; needs_worker && round < (settle_s ? 2 : 1); round++) {
    if (round)
      sleep(settle_s);
    for (size_t i = 0; i < n_targets; i++) {
      char *id = NULL;
      dt_instance *st = NULL;
      dt_client_schedule(cs[i], "hello_cities5", NULL, &id);
      dt_client_wait_completion(cs[i], id, 60000, false, &st);
      dt_instance_free(st);
      dt_free(id);
    }
  }
  /* The entity worker's warm-up: one signal through each target to an entity of its own, run to completion. */
  if (entities) {
    for (size_t i = 0; i < n_targets; i++) {
      char id[48];
      snprintf(id, sizeof id, "@counter@warmup%zu", i);
      if (dt_client_signal_entity(cs[i], id, "add", "1", 0) != DT_OK) {
        fprintf(stderr, "th-bench: the warm-up signal through %s failed\n", targets[i]);
        return 1;
      }
    }
    if (!wait_entity_goal(&ew_warm))
      return 1;
  }
  int rc;
  if (!strcmp(scenario, "hello_cities5"))
    rc = many(cs, "hello_cities5", "hello_cities5", NULL, count ? count : 1000, false);
  else if (!strcmp(scenario, "fanout"))
    rc = scenario_fanout(c, count ? count : 1000);
  else if (!strcmp(scenario, "latency"))
    rc = scenario_latency(cs, count ? count : 200);
  else if (!strcmp(scenario, "timers"))
    rc = many(cs, "timers_1s", "timer1", NULL, count ? count : 1000, false);
  else if (!strcmp(scenario, "events"))
    rc = many(cs, "events", "wait_event", NULL, count ? count : 1000, true);
  else if (!strcmp(scenario, "large_state"))
    rc = scenario_large_state(cs, count ? count : 100000);
  else if (!strcmp(scenario, "idle"))
    rc = scenario_idle(cs, count ? count : 100000);
  else if (!strcmp(scenario, "entity_calls")) {
    /* Every call adds 1 to one counter: the counters grow by exactly the orchestrations run (a lost, repeated or
     * misrouted call shows). */
    size_t n = count ? count : 2000;
    long before = tally_sum(c);
    rc = many(cs, "entity_calls", "call_counter", NULL, n, false);
    long after = tally_sum(c);
    if (rc == 0 && (before < 0 || after - before != (long)n)) {
      fprintf(stderr, "th-bench: entity_calls: the counters grew by %ld, expected %zu\n", after - before, n);
      rc = 1;
    }
  } else if (entities)
    rc = scenario_entity_signals(cs, count);
  else {
    fprintf(stderr, "th-bench: unknown scenario %s\n", scenario);
    rc = 2;
  }
  for (size_t i = 0; i < n_targets; i++) {
    dt_client_close(cs[i]);
    dt_worker_free(ws[i]);
  }
  if (child > 0) {
    close(hold);
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "th-bench: the worker process failed\n");
      rc = rc ? rc : 1;
    }
  }
  if (json_out)
    fclose(json_out);
  return rc;
}
