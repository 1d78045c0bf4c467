/*
 * approval — human interaction: a loan application waits for a person's decision, with escalation.
 *
 * The orchestration "loan_approval" asks the loan officer for a decision (an activity that sends a
 * notification), then waits for an external event named "approval" — raised by whoever decides, through any
 * client — racing it against a durable timer with dt_when_any(). If the timer wins, nobody decided in time:
 * the application is escalated (another activity notifies the next person up) and the wait starts again. After
 * max_escalations unanswered rounds it gives up. While it waits, its custom status says who it is waiting for.
 *
 * The people are played by a thread of this program that reads the notifications and raises the event with a
 * dt_client. Who answers depends on the mode:
 *   approve   (default) the loan officer approves at once: no escalation
 *   escalate  the loan officer never answers; the timer fires, the branch manager is notified and approves
 *   expire    nobody answers: two escalations, then the application is declined as undecided
 *
 * usage: sample_approval [HOST:PORT] [approve|escalate|expire]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001 approve)
 * Exits 0 when the outcome is the one the mode should give.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "durabletask.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Who is asked: the officer first, then one person further up per escalation. */
static const char *const CHAIN[] = {"loan-officer", "branch-manager", "regional-director"};

/* ------------------------------------------------------------------------------------------------ notifications */

/* Notifications from the activities to the people (the thread in main). A real system would send an e-mail or
 * a chat message with a link; here it is a queue in memory. */
#define INBOX_SIZE 16
struct note {
  char instance_id[128];
  char person[32];
};
struct inbox {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct note notes[INBOX_SIZE];
  int head, count;
  bool closed;
};

static void inbox_push(struct inbox *in, const char *instance_id, const char *person)
{
  pthread_mutex_lock(&in->mu);
  if (in->count < INBOX_SIZE) {
    struct note *n = &in->notes[(in->head + in->count++) % INBOX_SIZE];
    snprintf(n->instance_id, sizeof n->instance_id, "%s", instance_id);
    snprintf(n->person, sizeof n->person, "%s", person);
    pthread_cond_signal(&in->cv);
  }
  pthread_mutex_unlock(&in->mu);
}

/* Blocks for the next note; false once the inbox is closed and empty. */
static bool inbox_pop(struct inbox *in, struct note *out)
{
  pthread_mutex_lock(&in->mu);
  while (in->count == 0 && !in->closed)
    pthread_cond_wait(&in->cv, &in->mu);
  bool got = in->count > 0;
  if (got) {
    *out = in->notes[in->head];
    in->head = (in->head + 1) % INBOX_SIZE;
    in->count--;
  }
  pthread_mutex_unlock(&in->mu);
  return got;
}

/* ------------------------------------------------------------------------------------------------ activities */

/* Reads the "application" id out of an activity's JSON input, into activity memory. */
static const char *application_id(dt_activity_ctx *actx, const char *input)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  const char *id = in && json_object_object_get_ex(in, "application", &v)
                       ? dt_activity_printf(actx, "%s", json_object_get_string(v))
                       : "?";
  json_object_put(in);
  return id;
}

/* Notifies the loan officer that an application needs a decision; returns who was asked. */
static const char *request_approval(dt_activity_ctx *actx, const char *input, void *user_data)
{
  printf("notify %s: application %s needs a decision\n", CHAIN[0], application_id(actx, input));
  inbox_push(user_data, dt_activity_instance_id(actx), CHAIN[0]);
  return dt_activity_printf(actx, "\"%s\"", CHAIN[0]);
}

/* {"application": id, "level": n}: notifies the person n steps up; returns who was asked. */
static const char *escalate(dt_activity_ctx *actx, const char *input, void *user_data)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  int level = in && json_object_object_get_ex(in, "level", &v) ? json_object_get_int(v) : 0;
  json_object_put(in);
  if (level < 1 || level >= (int)(sizeof CHAIN / sizeof CHAIN[0])) {
    dt_activity_fail(actx, "InvalidInput", "no one to escalate to at this level");
    return NULL;
  }
  printf("escalation %d: notify %s: application %s needs a decision\n", level, CHAIN[level],
         application_id(actx, input));
  inbox_push(user_data, dt_activity_instance_id(actx), CHAIN[level]);
  return dt_activity_printf(actx, "\"%s\"", CHAIN[level]);
}

/* ------------------------------------------------------------------------------------------------ orchestrator */

struct application {
  const char *id; /* as JSON: "L-7" with the quotes */
  int64_t escalate_after_ms;
  int max_escalations;
};

/* Parses the input, copying what is kept into context memory before the JSON object is released. */
static void read_application(dt_orch_ctx *ctx, const char *input, struct application *app)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  app->id = in && json_object_object_get_ex(in, "application", &v)
                ? dt_ctx_strdup(ctx, json_object_to_json_string_ext(v, JSON_FLAGS))
                : NULL;
  app->escalate_after_ms = in && json_object_object_get_ex(in, "escalate_after_ms", &v) ? json_object_get_int64(v) : 0;
  app->max_escalations = in && json_object_object_get_ex(in, "max_escalations", &v) ? json_object_get_int(v) : 0;
  json_object_put(in);
  if (!app->id || app->escalate_after_ms <= 0 || app->max_escalations < 0 || app->max_escalations > 2)
    dt_orch_fail(ctx, "InvalidInput", "expected application, escalate_after_ms > 0 and max_escalations 0..2");
}

/* The output once someone decided: the event data {"approved": bool, "by": name} plus what we know. */
static const char *decided(dt_orch_ctx *ctx, const struct application *app, const char *decision, int escalations)
{
  json_object *d = json_tokener_parse(decision ? decision : ""), *v;
  bool approved = d && json_object_object_get_ex(d, "approved", &v) && json_object_get_boolean(v);
  const char *by = d && json_object_object_get_ex(d, "by", &v) ? json_object_to_json_string_ext(v, JSON_FLAGS)
                                                                : "null";
  const char *out = dt_ctx_printf(ctx, "{\"application\":%s,\"approved\":%s,\"decided_by\":%s,\"escalations\":%d}",
                                  app->id, approved ? "true" : "false", by, escalations);
  json_object_put(d);
  return out;
}

static const char *loan_approval(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  struct application app;
  read_application(ctx, input, &app);

  const char *asked = dt_await(ctx, dt_call_activity(ctx, "request_approval", input));
  for (int escalations = 0;; escalations++) {
    /* Clients see this while the orchestration waits (dt_client_get with payloads). */
    dt_set_custom_status(ctx, dt_ctx_printf(ctx, "{\"waiting_for\":%s,\"escalations\":%d}", asked, escalations));
    /* The orchestrator runs again for every event; print only the first time through, not on replays. */
    if (!dt_is_replaying(ctx))
      printf("orchestrator: waiting for %s (escalations: %d)\n", asked, escalations);

    /* Race the decision against the deadline. The timer is durable: it fires even if every process involved
     * was restarted in between. A wait that loses is cancelled, so a late event goes to the next wait. */
    dt_task *decision = dt_wait_event(ctx, "approval");
    dt_task *deadline = dt_create_timer_in(ctx, app.escalate_after_ms);
    dt_task *first = dt_when_any(ctx, (dt_task *[]){decision, deadline}, 2);
    dt_await(ctx, first);
    if (dt_task_winner(first) == decision)
      return decided(ctx, &app, dt_task_result(decision), escalations);

    if (escalations == app.max_escalations)
      return dt_ctx_printf(ctx,
                           "{\"application\":%s,\"approved\":false,\"decided_by\":null,\"escalations\":%d,"
                           "\"reason\":\"no decision\"}",
                           app.id, escalations);
    const char *next = dt_ctx_printf(ctx, "{\"application\":%s,\"level\":%d}", app.id, escalations + 1);
    asked = dt_await(ctx, dt_call_activity(ctx, "escalate", next));
  }
}

/* ------------------------------------------------------------------------------------------------ the people */

struct people {
  struct inbox *inbox;
  dt_client *client;
  const char *mode;
};

/* Does |person| answer in this mode? */
static bool answers(const char *mode, const char *person)
{
  if (strcmp(mode, "approve") == 0)
    return strcmp(person, "loan-officer") == 0;
  if (strcmp(mode, "escalate") == 0)
    return strcmp(person, "branch-manager") == 0;
  return false; /* expire */
}

static void *people_main(void *arg)
{
  struct people *p = arg;
  struct note n;
  while (inbox_pop(p->inbox, &n)) {
    if (!answers(p->mode, n.person)) {
      printf("%s does not answer\n", n.person);
      continue;
    }
    printf("%s approves\n", n.person);
    char data[128];
    snprintf(data, sizeof data, "{\"approved\":true,\"by\":\"%s\"}", n.person);
    int rc = dt_client_raise_event(p->client, n.instance_id, "approval", data);
    if (rc != DT_OK)
      fprintf(stderr, "raise approval: %s\n", dt_strerror(rc));
  }
  return NULL;
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

/* Is the outcome what |mode| should give? */
static bool verify(const char *mode, const char *output)
{
  json_object *out = json_tokener_parse(output ? output : ""), *approved, *by, *esc;
  bool ok = json_object_object_get_ex(out, "approved", &approved) &&
            json_object_object_get_ex(out, "decided_by", &by) && json_object_object_get_ex(out, "escalations", &esc);
  if (ok && strcmp(mode, "approve") == 0)
    ok = json_object_get_boolean(approved) && strcmp(json_object_get_string(by), "loan-officer") == 0 &&
         json_object_get_int(esc) == 0;
  else if (ok && strcmp(mode, "escalate") == 0)
    ok = json_object_get_boolean(approved) && strcmp(json_object_get_string(by), "branch-manager") == 0 &&
         json_object_get_int(esc) == 1;
  else if (ok)
    ok = !json_object_get_boolean(approved) && json_object_get_int(esc) == 2;
  json_object_put(out);
  return ok;
}

int main(int argc, char **argv)
{
  const char *target = argc > 1 ? argv[1] : dt_default_target();
  const char *mode = argc > 2 ? argv[2] : "approve";
  if (strcmp(mode, "approve") != 0 && strcmp(mode, "escalate") != 0 && strcmp(mode, "expire") != 0) {
    fprintf(stderr, "usage: %s [HOST:PORT] [approve|escalate|expire]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  dt_set_log_fn(log_line, NULL);

  struct inbox inbox = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "loan_approval", loan_approval, NULL), "add loan_approval");
  check(dt_worker_add_activity(worker, "request_approval", request_approval, &inbox), "add request_approval");
  check(dt_worker_add_activity(worker, "escalate", escalate, &inbox), "add escalate");
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");
  struct people people = {&inbox, client, mode};
  pthread_t people_thread;
  if (pthread_create(&people_thread, NULL, people_main, &people) != 0) {
    fprintf(stderr, "pthread_create failed\n");
    return 1;
  }

  dt_start_options start = {.input = "{\"application\":\"L-7\",\"applicant\":\"Ada Lovelace\",\"amount\":250000,"
                                     "\"escalate_after_ms\":1000,\"max_escalations\":2}"};
  char *id = NULL;
  check(dt_client_schedule(client, "loan_approval", &start, &id), "schedule loan_approval");
  printf("started loan_approval as %s (mode %s)\n", id, mode);

  dt_instance *st = NULL;
  check(dt_client_wait_completion(client, id, 60000, true, &st), "wait for loan_approval");
  printf("status: %s\n", dt_status_name(st->status));
  if (st->failure)
    printf("failure: %s: %s\n", st->failure->error_type, st->failure->message);
  printf("result: %s\n", st->output ? st->output : "null");
  bool ok = st->status == DT_STATUS_COMPLETED && verify(mode, st->output);

  pthread_mutex_lock(&inbox.mu);
  inbox.closed = true;
  pthread_cond_broadcast(&inbox.cv);
  pthread_mutex_unlock(&inbox.mu);
  pthread_join(people_thread, NULL);

  dt_instance_free(st);
  dt_free(id);
  dt_client_close(client);
  dt_worker_free(worker);
  return ok ? 0 : 1;
}
