/*
 * th-chaos-worker: the worker process of the crash-consistency harness (tests/fault/chaos.py), built on the C SDK
 * because the Python SDK is too slow for 10,000 orchestrations on two cores.
 *
 * usage: th-chaos-worker --target ADDRESS --exec-log FILE [--threads N] [--ready-fd FD]
 *
 * It serves one orchestrator per shape the harness starts, each with an output the harness computes from the
 * instance's number i (the input); the formulas are repeated in chaos.py's EXPECTED and must change together:
 *   chain   inc, dbl, inc, dbl in sequence                                     -> 4i+6
 *   fanout  sq(i+k) for k < 3 + i%6 in parallel, summed                        -> sum of sq(i+k)
 *   timer   inc, a durable timer of 100..999 ms, dbl                           -> 2i+2
 *   event   inc, custom status "waiting", waits for event "go" (data v = 3i+1) -> i+1+v
 *   parent  two sub-orchestrations "child" (ids <iid>:c0, <iid>:c1) in parallel  -> (2i+2)+(2i+4)
 *   can     three executions by continue-as-new, each adding inc(i+g)          -> 3i+6
 *   retry   "flaky" with a retry policy of 4 attempts; it fails its first two  -> 5i+1
 *
 * Every activity execution appends one line "<instance>\t<activity>\t<task id>\t<input>\t<pid>\t<epoch ms>\n" to
 * --exec-log and fdatasyncs it before the result is sent, so executions whose results a kill lost are still
 * counted: the harness counts re-executions as lines beyond the first for the same key (the first four fields). "flaky" fails deterministically by
 * task id: attempt k of a retried activity is action 2k-1 (each failed attempt is followed by its delay timer),
 * and "retry" schedules nothing before it, so task ids 1 and 3 fail and 5 succeeds.
 *
 * The worker runs until SIGTERM or SIGINT (the harness mostly SIGKILLs it), then stops cleanly and exits 0. With
 * --ready-fd it writes "ready" and a newline to FD once those signals are blocked and the worker started, so the
 * harness never sends SIGTERM to a process that would die of it rather than stop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "durabletask.h"

#define FANOUT_MAX 8
#define CAN_GENERATIONS 3
#define FLAKY_FIRST_GOOD_ID 5

static int g_log_fd = -1;
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what, int rc)
{
  fprintf(stderr, "th-chaos-worker: %s: %s\n", what, dt_strerror(rc));
  exit(1);
}

/* The durable execution record. One write(2) per line (O_APPEND) so a SIGKILL never leaves half a line; the
 * mutex keeps fdatasync from interleaving with another thread's line for no gain. */
static void record_execution(dt_activity_ctx *ctx, const char *input)
{
  char line[512];
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int n = snprintf(line, sizeof line, "%s\t%s\t%" PRId32 "\t%s\t%d\t%lld\n", dt_activity_instance_id(ctx),
                   dt_activity_name(ctx), dt_activity_task_id(ctx), input ? input : "", (int)getpid(),
                   (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
  if (n < 0 || (size_t)n >= sizeof line) {
    fprintf(stderr, "th-chaos-worker: execution record too long\n");
    abort();
  }
  pthread_mutex_lock(&g_log_mu);
  ssize_t w = write(g_log_fd, line, (size_t)n);
  int sync_rc = fdatasync(g_log_fd);
  pthread_mutex_unlock(&g_log_mu);
  if (w != n || sync_rc != 0) {
    /* an uncounted execution would make the harness's figures wrong: better no result at all */
    fprintf(stderr, "th-chaos-worker: writing the execution log failed: %s\n", strerror(errno));
    abort();
  }
}

static long long parse_ll(const char *s)
{
  return s ? strtoll(s, NULL, 10) : 0;
}

/* ---------------------------------------------------------------------------------------------- activities */

static const char *act_inc(dt_activity_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  record_execution(ctx, input);
  return dt_activity_printf(ctx, "%lld", parse_ll(input) + 1);
}

static const char *act_dbl(dt_activity_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  record_execution(ctx, input);
  return dt_activity_printf(ctx, "%lld", parse_ll(input) * 2);
}

static const char *act_sq(dt_activity_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  record_execution(ctx, input);
  long long x = parse_ll(input);
  return dt_activity_printf(ctx, "%lld", (x * x) % 1000003);
}

static const char *act_flaky(dt_activity_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  record_execution(ctx, input);
  if (dt_activity_task_id(ctx) < FLAKY_FIRST_GOOD_ID) {
    dt_activity_fail(ctx, "FlakyError", "fails deterministically before its third attempt");
    return NULL;
  }
  return dt_activity_printf(ctx, "%lld", parse_ll(input) * 5 + 1);
}

/* ---------------------------------------------------------------------------------------------- orchestrators */

static const char *num(dt_orch_ctx *ctx, long long v)
{
  return dt_ctx_printf(ctx, "%lld", v);
}

static long long call(dt_orch_ctx *ctx, const char *activity, long long x)
{
  return parse_ll(dt_await(ctx, dt_call_activity(ctx, activity, num(ctx, x))));
}

static const char *orch_chain(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  long long x = parse_ll(input);
  x = call(ctx, "inc", x);
  x = call(ctx, "dbl", x);
  x = call(ctx, "inc", x);
  x = call(ctx, "dbl", x);
  return num(ctx, x);
}

static const char *orch_fanout(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  long long i = parse_ll(input);
  size_t n = 3 + (size_t)(i % 6);
  dt_task *tasks[FANOUT_MAX];
  for (size_t k = 0; k < n; k++)
    tasks[k] = dt_call_activity(ctx, "sq", num(ctx, i + (long long)k));
  dt_await(ctx, dt_when_all(ctx, tasks, n));
  long long sum = 0;
  for (size_t k = 0; k < n; k++)
    sum += parse_ll(dt_task_result(tasks[k]));
  return num(ctx, sum);
}

static const char *orch_timer(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  long long i = parse_ll(input);
  long long a = call(ctx, "inc", i);
  dt_await(ctx, dt_create_timer_in(ctx, 100 + (i * 37) % 900));
  return num(ctx, call(ctx, "dbl", a));
}

static const char *orch_event(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  long long a = call(ctx, "inc", parse_ll(input));
  /* the harness raises "go" once it reads this status: the event then arrives while the instance runs */
  dt_set_custom_status(ctx, "\"waiting\"");
  long long v = parse_ll(dt_await(ctx, dt_wait_event(ctx, "go")));
  dt_set_custom_status(ctx, NULL);
  return num(ctx, a + v);
}

static const char *orch_child(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  return num(ctx, call(ctx, "dbl", call(ctx, "inc", parse_ll(input))));
}

static const char *orch_parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  long long i = parse_ll(input);
  const char *iid = dt_instance_id(ctx);
  dt_task *t[2] = {
      dt_call_sub_orchestrator(ctx, "child", dt_ctx_printf(ctx, "%s:c0", iid), num(ctx, i)),
      dt_call_sub_orchestrator(ctx, "child", dt_ctx_printf(ctx, "%s:c1", iid), num(ctx, i + 1)),
  };
  dt_await(ctx, dt_when_all(ctx, t, 2));
  return num(ctx, parse_ll(dt_task_result(t[0])) + parse_ll(dt_task_result(t[1])));
}

/* input "[i,g,acc]": instance number, generation, sum so far; the first execution gets a bare "i" */
static const char *orch_can(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  long long i = 0, g = 0, acc = 0;
  if (!input || sscanf(input, "[%lld,%lld,%lld]", &i, &g, &acc) != 3) {
    i = parse_ll(input);
    g = 0;
    acc = 0;
  }
  acc += call(ctx, "inc", i + g);
  if (g + 1 < CAN_GENERATIONS)
    dt_continue_as_new(ctx, dt_ctx_printf(ctx, "[%lld,%lld,%lld]", i, g + 1, acc), false);
  return num(ctx, acc);
}

static const char *orch_retry(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  dt_retry_policy p = {.max_attempts = 4, .first_delay_ms = 50, .backoff = 1.0};
  return dt_await(ctx, dt_call_activity_retry(ctx, "flaky", input, &p));
}

/* ---------------------------------------------------------------------------------------------- main */

static void log_to_stderr(int level, const char *message, void *ud)
{
  (void)ud;
  if (level >= 2)
    fprintf(stderr, "th-chaos-worker[%d]: %s\n", (int)getpid(), message);
}

static void usage(FILE *out)
{
  fprintf(out, "usage: th-chaos-worker --target ADDRESS --exec-log FILE [--threads N] [--ready-fd FD]\n"
               "  the worker of tests/fault/chaos.py; runs until SIGTERM or SIGINT\n");
}

int main(int argc, char **argv)
{
  const char *target = NULL, *exec_log = NULL;
  int threads = 8, ready_fd = -1;
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[a], "--target") && a + 1 < argc) {
      target = argv[++a];
    } else if (!strcmp(argv[a], "--exec-log") && a + 1 < argc) {
      exec_log = argv[++a];
    } else if (!strcmp(argv[a], "--ready-fd") && a + 1 < argc) {
      ready_fd = atoi(argv[++a]);
    } else if (!strcmp(argv[a], "--threads") && a + 1 < argc) {
      threads = atoi(argv[++a]);
    } else {
      fprintf(stderr, "th-chaos-worker: unknown or incomplete argument '%s'\n", argv[a]);
      usage(stderr);
      return 2;
    }
  }
  if (!target || !exec_log || threads < 1) {
    usage(stderr);
    return 2;
  }
  g_log_fd = open(exec_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (g_log_fd < 0) {
    fprintf(stderr, "th-chaos-worker: %s: %s\n", exec_log, strerror(errno));
    return 1;
  }

  /* block the stop signals in every thread the SDK starts; main waits for them with sigwait */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  dt_set_log_fn(log_to_stderr, NULL);
  dt_worker_options wo = {.activity_threads = threads, .max_orchestrations = 200, .max_activities = 200};
  dt_worker *w = NULL;
  int rc = dt_worker_new(target, &wo, &w);
  if (rc != DT_OK)
    die("dt_worker_new", rc);
  static const struct {
    const char *name;
    dt_orchestrator_fn fn;
  } orchs[] = {{"chain", orch_chain}, {"fanout", orch_fanout}, {"timer", orch_timer}, {"event", orch_event},
               {"parent", orch_parent}, {"child", orch_child},   {"can", orch_can},     {"retry", orch_retry}};
  static const struct {
    const char *name;
    dt_activity_fn fn;
  } acts[] = {{"inc", act_inc}, {"dbl", act_dbl}, {"sq", act_sq}, {"flaky", act_flaky}};
  for (size_t k = 0; k < sizeof orchs / sizeof orchs[0]; k++)
    if ((rc = dt_worker_add_orchestrator(w, orchs[k].name, orchs[k].fn, NULL)) != DT_OK)
      die("dt_worker_add_orchestrator", rc);
  for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++)
    if ((rc = dt_worker_add_activity(w, acts[k].name, acts[k].fn, NULL)) != DT_OK)
      die("dt_worker_add_activity", rc);
  if ((rc = dt_worker_start(w)) != DT_OK)
    die("dt_worker_start", rc);
  if (ready_fd >= 0) {
    if (write(ready_fd, "ready\n", 6) != 6)
      fprintf(stderr, "th-chaos-worker: --ready-fd %d: %s\n", ready_fd, strerror(errno));
    close(ready_fd);
  }

  int sig = 0;
  sigwait(&stop, &sig);
  dt_worker_free(w);
  close(g_log_fd);
  return 0;
}
