/*
 * monitor — the monitor pattern: poll a condition on a durable timer until it holds, as an eternal-style
 * orchestration that restarts itself with continue-as-new after every poll.
 *
 * The orchestration "monitor_job" watches a batch job (an export) through a "check_job" activity. If the job
 * is still running it publishes the progress as custom status, sleeps on a durable timer, and continues as new
 * with the poll count carried in its input — so its history never grows, however long the job takes. It ends
 * when the job has finished (or failed), or when its deadline passes. The deadline is computed once, from the
 * orchestration's replay-safe clock dt_now_ms(), and carried along like the count.
 *
 * The job is simulated: a stand-in for a remote batch system whose export advances a quarter each time its
 * status is read, so every run takes the same four polls.
 *
 * usage: sample_monitor [HOST:PORT]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001; start taskhubd first)
 * Exits 0 when the monitor saw the job succeed after four polls.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "durabletask.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ------------------------------------------------------------------------------------------------ the job */

/* A simulated remote job: every status read moves it on by 25 %. */
struct job_service {
  pthread_mutex_t mu;
  int progress;
};

/* "export-42" -> {"state":"running","progress":50} or {"state":"succeeded","progress":100} */
static const char *check_job(dt_activity_ctx *actx, const char *input, void *user_data)
{
  struct job_service *js = user_data;
  pthread_mutex_lock(&js->mu);
  js->progress = js->progress + 25 > 100 ? 100 : js->progress + 25;
  int progress = js->progress;
  pthread_mutex_unlock(&js->mu);
  const char *state = progress == 100 ? "succeeded" : "running";
  printf("check_job %s: %s, %d%%\n", input ? input : "?", state, progress);
  return dt_activity_printf(actx, "{\"state\":\"%s\",\"progress\":%d}", state, progress);
}

/* ------------------------------------------------------------------------------------------------ orchestrator */

/* The monitor's input, the same shape in every execution: {"job":"export-42","interval_ms":200,
 * "timeout_ms":30000,"polls":0,"deadline_ms":0}. polls and deadline_ms are what continue-as-new carries. */
struct watch {
  const char *job; /* JSON string */
  int64_t interval_ms, timeout_ms, deadline_ms;
  int polls;
};

static int64_t get_i64(json_object *o, const char *key)
{
  json_object *v;
  return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void read_watch(dt_orch_ctx *ctx, const char *input, struct watch *w)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  w->job = NULL;
  if (in && json_object_object_get_ex(in, "job", &v) && json_object_is_type(v, json_type_string))
    w->job = dt_ctx_strdup(ctx, json_object_to_json_string_ext(v, JSON_FLAGS)); /* kept as JSON: "..." */
  w->interval_ms = get_i64(in, "interval_ms");
  w->timeout_ms = get_i64(in, "timeout_ms");
  w->deadline_ms = get_i64(in, "deadline_ms");
  w->polls = (int)get_i64(in, "polls");
  json_object_put(in);
  if (!w->job || w->interval_ms <= 0 || w->timeout_ms <= 0)
    dt_orch_fail(ctx, "InvalidInput", "expected job, interval_ms > 0 and timeout_ms > 0");
}

/* Reads {"state": ..., "progress": n} into context memory. */
static const char *read_status(dt_orch_ctx *ctx, const char *status, int *progress)
{
  json_object *st = json_tokener_parse(status ? status : ""), *v;
  const char *state = st && json_object_object_get_ex(st, "state", &v) ? dt_ctx_strdup(ctx, json_object_get_string(v))
                                                                       : "unknown";
  *progress = (int)get_i64(st, "progress");
  json_object_put(st);
  return state;
}

static const char *monitor_job(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  struct watch w;
  read_watch(ctx, input, &w);
  /* The first execution fixes the deadline. dt_now_ms() is the orchestration's clock: the same on every
   * replay, unlike the system clock, which would make each replay compute a different deadline. */
  if (w.deadline_ms == 0)
    w.deadline_ms = dt_now_ms(ctx) + w.timeout_ms;

  int progress;
  const char *state = read_status(ctx, dt_await(ctx, dt_call_activity(ctx, "check_job", w.job)), &progress);
  w.polls++;
  dt_set_custom_status(ctx, dt_ctx_printf(ctx, "{\"state\":\"%s\",\"progress\":%d,\"polls\":%d}", state,
                                          progress, w.polls));

  if (strcmp(state, "running") != 0) /* the condition holds: succeeded (or failed) */
    return dt_ctx_printf(ctx, "{\"job\":%s,\"state\":\"%s\",\"polls\":%d}", w.job, state, w.polls);
  if (dt_now_ms(ctx) + w.interval_ms > w.deadline_ms)
    return dt_ctx_printf(ctx, "{\"job\":%s,\"state\":\"timed out\",\"polls\":%d}", w.job, w.polls);

  /* Sleep durably, then start over as a fresh execution with the new count. dt_continue_as_new() does not
   * return; the history so far is dropped and the instance keeps its id. */
  dt_await(ctx, dt_create_timer_in(ctx, w.interval_ms));
  dt_continue_as_new(ctx,
                     dt_ctx_printf(ctx,
                                   "{\"job\":%s,\"interval_ms\":%lld,\"timeout_ms\":%lld,\"polls\":%d,"
                                   "\"deadline_ms\":%lld}",
                                   w.job, (long long)w.interval_ms, (long long)w.timeout_ms, w.polls,
                                   (long long)w.deadline_ms),
                     false);
}

/* ------------------------------------------------------------------------------------------------ main */

static void log_line(int level, const char *message, void *user_data)
{
  if (level >= 2)
    fprintf(stderr, "durabletask: %s\n", message);
}

static void check(int rc, const char *what)
{
  if (rc != DT_OK) {
    fprintf(stderr, "%s: %s\n", what, dt_strerror(rc));
    exit(1);
  }
}

int main(int argc, char **argv)
{
  const char *target = argc > 1 ? argv[1] : dt_default_target();
  setvbuf(stdout, NULL, _IOLBF, 0);
  dt_set_log_fn(log_line, NULL);

  struct job_service jobs = {.mu = PTHREAD_MUTEX_INITIALIZER, .progress = 0};
  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "monitor_job", monitor_job, NULL), "add monitor_job");
  check(dt_worker_add_activity(worker, "check_job", check_job, &jobs), "add check_job");
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");
  dt_start_options start = {.input = "{\"job\":\"export-42\",\"interval_ms\":200,\"timeout_ms\":30000}"};
  char *id = NULL;
  check(dt_client_schedule(client, "monitor_job", &start, &id), "schedule monitor_job");
  printf("started monitor_job as %s\n", id);

  /* Waiting for completion rides over the continue-as-new restarts: the instance is the same throughout. */
  dt_instance *st = NULL;
  check(dt_client_wait_completion(client, id, 60000, true, &st), "wait for monitor_job");
  printf("status: %s\n", dt_status_name(st->status));
  if (st->failure)
    printf("failure: %s: %s\n", st->failure->error_type, st->failure->message);
  printf("custom status: %s\n", st->custom_status ? st->custom_status : "null");
  printf("result: %s\n", st->output ? st->output : "null");

  /* Only the last execution's history is kept: a handful of events, not four polls' worth. */
  dt_history *h = NULL;
  check(dt_client_history(client, id, &h), "history of monitor_job");
  size_t timers = 0;
  for (size_t i = 0; i < h->n; i++)
    timers += strcmp(h->events[i].type, "TimerCreated") == 0;
  printf("last execution: %zu history events, %zu timers\n", h->n, timers);

  bool ok = st->status == DT_STATUS_COMPLETED && st->output &&
            strcmp(st->output, "{\"job\":\"export-42\",\"state\":\"succeeded\",\"polls\":4}") == 0 && timers == 0;
  dt_history_free(h);
  dt_instance_free(st);
  dt_free(id);
  dt_client_close(client);
  dt_worker_free(worker);
  return ok ? 0 : 1;
}
