/*
 * greet — a worker and a client in one program, built by tests/install against the installed SDK only (its
 * header, its pkg-config file or its CMake package, its library): nothing here may need the source tree.
 *
 * The orchestration "greet_cities" calls the activity "say_hello" for three cities in turn and returns the
 * greetings as a JSON array. The program also checks that the header's version macros agree with each other and
 * with the version the test expects.
 *
 * usage: greet HOST:PORT VERSION
 * Prints "version: ...", "status: ..." and "result: ..."; exits 0 when the version matches and the orchestration
 * completed with the expected result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durabletask.h"

#if !defined(DURABLETASK_VERSION_MAJOR) || !defined(DURABLETASK_VERSION_MINOR) || \
    !defined(DURABLETASK_VERSION_PATCH) || !defined(DURABLETASK_VERSION)
#error "durabletask.h does not define the DURABLETASK_VERSION macros"
#endif

#define EXPECTED_RESULT "[\"Hello, Tokyo!\",\"Hello, Seattle!\",\"Hello, London!\"]"

/* "\"Tokyo\"" -> "\"Hello, Tokyo!\"". Inputs are JSON strings without escapes, so the quotes are the ends. */
static const char *say_hello(dt_activity_ctx *actx, const char *input, void *user_data)
{
  (void)user_data;
  size_t n = input ? strlen(input) : 0;
  if (n < 2 || input[0] != '"' || input[n - 1] != '"') {
    dt_activity_fail(actx, "InvalidInput", "expected a JSON string");
    return NULL;
  }
  return dt_activity_printf(actx, "\"Hello, %.*s!\"", (int)(n - 2), input + 1);
}

static const char *greet_cities(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  (void)input;
  (void)user_data;
  const char *tokyo = dt_await(ctx, dt_call_activity(ctx, "say_hello", "\"Tokyo\""));
  const char *seattle = dt_await(ctx, dt_call_activity(ctx, "say_hello", "\"Seattle\""));
  const char *london = dt_await(ctx, dt_call_activity(ctx, "say_hello", "\"London\""));
  return dt_ctx_printf(ctx, "[%s,%s,%s]", tokyo, seattle, london);
}

static void log_line(int level, const char *message, void *user_data)
{
  (void)user_data;
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
  if (argc != 3) {
    fprintf(stderr, "usage: greet HOST:PORT VERSION\n");
    return 2;
  }
  const char *target = argv[1];

  char parts[64];
  snprintf(parts, sizeof parts, "%d.%d.%d", DURABLETASK_VERSION_MAJOR, DURABLETASK_VERSION_MINOR,
           DURABLETASK_VERSION_PATCH);
  printf("version: %s\n", DURABLETASK_VERSION);
  if (strcmp(parts, DURABLETASK_VERSION) != 0 || strcmp(DURABLETASK_VERSION, argv[2]) != 0) {
    fprintf(stderr, "version macros say %s and %s, expected %s\n", DURABLETASK_VERSION, parts, argv[2]);
    return 1;
  }

  dt_set_log_fn(log_line, NULL);
  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "greet_cities", greet_cities, NULL), "add greet_cities");
  check(dt_worker_add_activity(worker, "say_hello", say_hello, NULL), "add say_hello");
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");
  char *id = NULL;
  check(dt_client_schedule(client, "greet_cities", NULL, &id), "schedule greet_cities");
  dt_instance *st = NULL;
  check(dt_client_wait_completion(client, id, 60000, true, &st), "wait for greet_cities");
  printf("status: %s\n", dt_status_name(st->status));
  if (st->failure)
    printf("failure: %s: %s\n", st->failure->error_type, st->failure->message);
  printf("result: %s\n", st->output ? st->output : "null");
  int ok = st->status == DT_STATUS_COMPLETED && st->output && strcmp(st->output, EXPECTED_RESULT) == 0;

  dt_instance_free(st);
  dt_free(id);
  dt_client_close(client);
  dt_worker_free(worker);
  return ok ? 0 : 1;
}
