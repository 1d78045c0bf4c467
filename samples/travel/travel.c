/*
 * travel — a saga: book a flight, a hotel and a car; if a later booking fails, undo the earlier ones.
 *
 * The orchestration "book_trip" runs the three reservations in order. Each is awaited with dt_await_result(),
 * which returns the failure rather than failing the orchestration, so the orchestrator can compensate: cancel
 * what did succeed, newest first (hotel, then flight), each cancellation retried until it goes through. The
 * result says what was booked, or what failed and what was compensated.
 *
 * The car rental has no cars at LIS, so the default trip fails at the car and both other bookings are
 * cancelled. With the mode "ok" the trip goes to OPO instead and everything is booked.
 *
 * usage: sample_travel [HOST:PORT] [fail|ok]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001 fail)
 * Exits 0 when the outcome is the expected one and no booking is left behind that should not be.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "durabletask.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ------------------------------------------------------------------------------------------------ providers */

/* The three providers, simulated: each keeps the set of live bookings (by confirmation code). */
enum { FLIGHT, HOTEL, CAR, N_KINDS };
static const char *const KIND[N_KINDS] = {"flight", "hotel", "car"};

struct providers {
  pthread_mutex_t mu;
  int live[N_KINDS]; /* bookings made and not cancelled */
};

/* The activities of the three providers share code; user_data says which provider. */
struct provider_op {
  struct providers *p;
  int kind;
};

/* The trip, as each activity reads it: {"trip":"T-42","traveler":"...","from":"SFO","to":"LIS","nights":3}. */
static const char *trip_field(dt_activity_ctx *actx, const char *input, const char *key)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  const char *s = NULL;
  if (in && json_object_object_get_ex(in, key, &v))
    s = dt_activity_printf(actx, "%s", json_object_get_string(v));
  json_object_put(in);
  return s;
}

/* reserve_<kind>: trip -> confirmation code ("FL-T-42"). The car rental has nothing at LIS. */
static const char *reserve(dt_activity_ctx *actx, const char *input, void *user_data)
{
  const struct provider_op *op = user_data;
  const char *trip = trip_field(actx, input, "trip"), *to = trip_field(actx, input, "to");
  if (!trip || !to) {
    dt_activity_fail(actx, "InvalidInput", "a trip needs trip and to");
    return NULL;
  }
  if (op->kind == CAR && strcmp(to, "LIS") == 0) {
    printf("reserve_car %s: no cars available at %s\n", trip, to);
    dt_activity_fail(actx, "SoldOut", dt_activity_printf(actx, "no cars available at %s", to));
    return NULL;
  }
  pthread_mutex_lock(&op->p->mu);
  op->p->live[op->kind]++;
  pthread_mutex_unlock(&op->p->mu);
  static const char *const PREFIX[N_KINDS] = {"FL", "HT", "CR"};
  printf("reserve_%s %s: to %s\n", KIND[op->kind], trip, to);
  return dt_activity_printf(actx, "\"%s-%s\"", PREFIX[op->kind], trip);
}

/* cancel_<kind>: confirmation code -> nothing. */
static const char *cancel(dt_activity_ctx *actx, const char *input, void *user_data)
{
  const struct provider_op *op = user_data;
  pthread_mutex_lock(&op->p->mu);
  op->p->live[op->kind]--; /* a real provider would look the code up, so that a repeated cancel is harmless */
  pthread_mutex_unlock(&op->p->mu);
  printf("cancel_%s %s\n", KIND[op->kind], input ? input : "null");
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ orchestrator */

/* One step of the saga: the activity that does it and the one that undoes it. */
static const struct {
  const char *name, *reserve, *cancel;
} STEPS[] = {
    {"flight", "reserve_flight", "cancel_flight"},
    {"hotel", "reserve_hotel", "cancel_hotel"},
    {"car", "reserve_car", "cancel_car"},
};
#define N_STEPS (sizeof STEPS / sizeof STEPS[0])

/* Builds {"trip":..,"booked":false,"failed":step,"error":message,"compensated":[names]}. */
static const char *not_booked(dt_orch_ctx *ctx, const char *trip, size_t failed, const dt_failure *f,
                              const char *const *undone, size_t n_undone)
{
  json_object *out = json_object_new_object(), *list = json_object_new_array();
  json_object_object_add(out, "trip", json_object_new_string(trip));
  json_object_object_add(out, "booked", json_object_new_boolean(0));
  json_object_object_add(out, "failed", json_object_new_string(STEPS[failed].name));
  json_object_object_add(out, "error", json_object_new_string(f && f->message ? f->message : ""));
  for (size_t i = 0; i < n_undone; i++)
    json_object_array_add(list, json_object_new_string(undone[i]));
  json_object_object_add(out, "compensated", list);
  const char *s = dt_ctx_strdup(ctx, json_object_to_json_string_ext(out, JSON_FLAGS));
  json_object_put(out);
  return s;
}

static const char *book_trip(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  /* The trip id, as a C string and as JSON; copied into context memory before the parser's object goes. */
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  const char *trip = NULL, *trip_json = NULL;
  if (in && json_object_object_get_ex(in, "trip", &v) && json_object_is_type(v, json_type_string)) {
    trip = dt_ctx_strdup(ctx, json_object_get_string(v));
    trip_json = dt_ctx_strdup(ctx, json_object_to_json_string_ext(v, JSON_FLAGS));
  }
  json_object_put(in);
  if (!trip)
    dt_orch_fail(ctx, "InvalidInput", "no trip id");

  const char *confirmation[N_STEPS];
  for (size_t i = 0; i < N_STEPS; i++) {
    dt_task *t = dt_call_activity(ctx, STEPS[i].reserve, input);
    if (dt_await_result(ctx, t, &confirmation[i]) == DT_OK)
      continue;

    /* Step i failed: undo steps i-1 .. 0, newest first, each one finished before the next starts. A
     * compensation must not give up on a passing glitch, so each is retried; if one still fails, the
     * orchestration fails (with dt_await) and an operator has to look at it. */
    dt_retry_policy retry = {.max_attempts = 5, .first_delay_ms = 500, .backoff = 2.0};
    const char *undone[N_STEPS];
    size_t n_undone = 0;
    for (size_t j = i; j-- > 0;) {
      dt_await(ctx, dt_call_activity_retry(ctx, STEPS[j].cancel, confirmation[j], &retry));
      undone[n_undone++] = STEPS[j].name;
    }
    return not_booked(ctx, trip, i, dt_task_failure(t), undone, n_undone);
  }
  /* The confirmations are JSON strings already. */
  return dt_ctx_printf(ctx, "{\"trip\":%s,\"booked\":true,\"flight\":%s,\"hotel\":%s,\"car\":%s}", trip_json,
                       confirmation[0], confirmation[1], confirmation[2]);
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
  const char *mode = argc > 2 ? argv[2] : "fail";
  if (strcmp(mode, "fail") != 0 && strcmp(mode, "ok") != 0) {
    fprintf(stderr, "usage: %s [HOST:PORT] [fail|ok]\n", argv[0]);
    return 2;
  }
  bool fail = strcmp(mode, "fail") == 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  dt_set_log_fn(log_line, NULL);

  struct providers providers = {.mu = PTHREAD_MUTEX_INITIALIZER};
  struct provider_op ops[N_KINDS];
  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "book_trip", book_trip, NULL), "add book_trip");
  for (int k = 0; k < N_KINDS; k++) {
    char name[32];
    ops[k] = (struct provider_op){&providers, k};
    snprintf(name, sizeof name, "reserve_%s", KIND[k]);
    check(dt_worker_add_activity(worker, name, reserve, &ops[k]), "add reserve activity");
    snprintf(name, sizeof name, "cancel_%s", KIND[k]);
    check(dt_worker_add_activity(worker, name, cancel, &ops[k]), "add cancel activity");
  }
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");
  dt_start_options start = {
      .input = fail ? "{\"trip\":\"T-42\",\"traveler\":\"Grace Hopper\",\"from\":\"SFO\",\"to\":\"LIS\",\"nights\":3}"
                    : "{\"trip\":\"T-43\",\"traveler\":\"Grace Hopper\",\"from\":\"SFO\",\"to\":\"OPO\",\"nights\":3}"};
  char *id = NULL;
  check(dt_client_schedule(client, "book_trip", &start, &id), "schedule book_trip");
  printf("started book_trip as %s\n", id);

  dt_instance *st = NULL;
  check(dt_client_wait_completion(client, id, 60000, true, &st), "wait for book_trip");
  printf("status: %s\n", dt_status_name(st->status));
  if (st->failure)
    printf("failure: %s: %s\n", st->failure->error_type, st->failure->message);
  printf("result: %s\n", st->output ? st->output : "null");
  const char *want = fail ? "{\"trip\":\"T-42\",\"booked\":false,\"failed\":\"car\",\"error\":\"no cars available at "
                            "LIS\",\"compensated\":[\"hotel\",\"flight\"]}"
                          : "{\"trip\":\"T-43\",\"booked\":true,\"flight\":\"FL-T-43\",\"hotel\":\"HT-T-43\","
                            "\"car\":\"CR-T-43\"}";
  bool ok = st->status == DT_STATUS_COMPLETED && st->output && strcmp(st->output, want) == 0;
  dt_instance_free(st);
  dt_free(id);
  dt_client_close(client);
  dt_worker_free(worker);

  /* After a failed trip nothing may be left booked; after a good one, one of each. */
  printf("live bookings: flight %d, hotel %d, car %d\n", providers.live[FLIGHT], providers.live[HOTEL],
         providers.live[CAR]);
  int each = fail ? 0 : 1;
  ok = ok && providers.live[FLIGHT] == each && providers.live[HOTEL] == each && providers.live[CAR] == each;
  return ok ? 0 : 1;
}
