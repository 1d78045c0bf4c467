/*
 * chaining — function chaining: activities run one after another, each one's output the next one's input.
 *
 * The orchestration "publish_post" turns a draft title into a published post:
 *
 *     "  Durable Task, in C!  "  --normalize_title-->  "durable task, in c"
 *                                --slugify---------->  "durable-task-in-c"
 *                                --publish---------->  "https://blog.example.com/posts/durable-task-in-c"
 *
 * Each step is an activity: ordinary code that the worker runs on its activity threads. The orchestrator only
 * decides what runs next. Its progress is recorded by taskhubd after every step, so if this process died between
 * two steps, a new worker would carry on after the last completed one instead of starting over.
 *
 * The worker (which runs the code) and the client (which starts an instance and waits for it) live in the same
 * process here only to keep the sample in one file; usually they are different programs.
 *
 * usage: sample_chaining [HOST:PORT]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001; start taskhubd first)
 * Exits 0 when the orchestration completed with the expected URL.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "durabletask.h"

#define EXPECTED_URL "\"https://blog.example.com/posts/durable-task-in-c\""

/* ------------------------------------------------------------------------------------------------ activities */

/*
 * Payloads are JSON text. Every activity here takes a JSON string and returns one. Activities are plain C:
 * they may allocate, block and do I/O as they like. What they return is copied by the SDK, so it may live in
 * memory from dt_activity_printf(), which is released when the activity returns.
 */

/* Parses a JSON string payload into activity memory; NULL (and the activity marked failed) if it is not one. */
static char *string_input(dt_activity_ctx *actx, const char *input)
{
  json_object *v = json_tokener_parse(input ? input : "");
  char *s = NULL;
  if (v && json_object_is_type(v, json_type_string))
    s = dt_activity_printf(actx, "%s", json_object_get_string(v));
  else
    dt_activity_fail(actx, "InvalidInput", "expected a JSON string");
  json_object_put(v);
  return s;
}

/* Encodes |s| as a JSON string in activity memory. */
static const char *string_output(dt_activity_ctx *actx, const char *s)
{
  json_object *v = json_object_new_string(s);
  const char *out = dt_activity_printf(actx, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(v);
  return out;
}

/* "  Durable Task, in C!  " -> "durable task, in c": trimmed, lower case, one space between words, no '!'. */
static const char *normalize_title(dt_activity_ctx *actx, const char *input, void *user_data)
{
  char *title = string_input(actx, input);
  if (!title)
    return NULL;
  char *out = title; /* rewritten in place: the result is never longer */
  size_t n = 0;
  for (const char *p = title; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (isspace(ch)) {
      if (n > 0 && out[n - 1] != ' ')
        out[n++] = ' ';
    } else if (ch != '!' && ch != '?') {
      out[n++] = (char)tolower(ch);
    }
  }
  while (n > 0 && out[n - 1] == ' ')
    n--;
  out[n] = '\0';
  if (n == 0) {
    dt_activity_fail(actx, "InvalidInput", "the title is empty");
    return NULL;
  }
  return string_output(actx, out);
}

/* "durable task, in c" -> "durable-task-in-c": letters and digits, runs of anything else become one '-'. */
static const char *slugify(dt_activity_ctx *actx, const char *input, void *user_data)
{
  char *title = string_input(actx, input);
  if (!title)
    return NULL;
  char *slug = title;
  size_t n = 0;
  for (const char *p = title; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (isalnum(ch))
      slug[n++] = (char)tolower(ch);
    else if (n > 0 && slug[n - 1] != '-')
      slug[n++] = '-';
  }
  while (n > 0 && slug[n - 1] == '-')
    n--;
  slug[n] = '\0';
  return string_output(actx, slug);
}

/* Publishes the post (here: builds its URL; a real one would call the blog's API) and returns the URL. */
static const char *publish(dt_activity_ctx *actx, const char *input, void *user_data)
{
  const char *blog = user_data; /* the base URL, given at registration */
  char *slug = string_input(actx, input);
  if (!slug)
    return NULL;
  return string_output(actx, dt_activity_printf(actx, "%s/posts/%s", blog, slug));
}

/* ------------------------------------------------------------------------------------------------ orchestrator */

/*
 * The orchestrator is replayed from the top every time something it waits for completes, so it must be
 * deterministic: the same input and the same history give the same calls in the same order. dt_await() returns
 * a result the history already has; when the history does not have it yet, the run ends there (the SDK jumps
 * back into the worker) and is replayed later. All strings come from the context and live until the run ends.
 *
 * The activity results are JSON values already, so composing the output with dt_ctx_printf() is safe here.
 */
static const char *publish_post(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  const char *title = dt_await(ctx, dt_call_activity(ctx, "normalize_title", input));
  const char *slug = dt_await(ctx, dt_call_activity(ctx, "slugify", title));
  const char *url = dt_await(ctx, dt_call_activity(ctx, "publish", slug));
  return dt_ctx_printf(ctx, "{\"title\":%s,\"slug\":%s,\"url\":%s}", title, slug, url);
}

/* ------------------------------------------------------------------------------------------------ main */

/* The SDK never prints by itself; show its warnings and errors on stderr. */
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
  dt_set_log_fn(log_line, NULL);

  /* The worker: register the orchestrator and its activities under the names the orchestrator uses, then
   * start it. It connects to taskhubd and runs work items on background threads until it is freed. */
  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "publish_post", publish_post, NULL), "add publish_post");
  check(dt_worker_add_activity(worker, "normalize_title", normalize_title, NULL), "add normalize_title");
  check(dt_worker_add_activity(worker, "slugify", slugify, NULL), "add slugify");
  check(dt_worker_add_activity(worker, "publish", publish, (void *)"https://blog.example.com"), "add publish");
  check(dt_worker_start(worker), "dt_worker_start");

  /* The client: start one instance and wait for it to finish. */
  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");
  dt_start_options start = {.input = "\"  Durable Task, in C!  \""};
  char *id = NULL;
  check(dt_client_schedule(client, "publish_post", &start, &id), "schedule publish_post");
  printf("started publish_post as %s\n", id);

  dt_instance *st = NULL;
  check(dt_client_wait_completion(client, id, 60000, true, &st), "wait for publish_post");
  printf("status: %s\n", dt_status_name(st->status));
  if (st->failure)
    printf("failure: %s: %s\n", st->failure->error_type, st->failure->message);
  printf("result: %s\n", st->output ? st->output : "null");

  /* Exit 0 only if the orchestration did what it should. */
  int ok = 0;
  if (st->status == DT_STATUS_COMPLETED && st->output) {
    json_object *out = json_tokener_parse(st->output), *url = NULL;
    ok = out && json_object_object_get_ex(out, "url", &url) &&
         strcmp(json_object_to_json_string_ext(url, JSON_C_TO_STRING_NOSLASHESCAPE), EXPECTED_URL) == 0;
    json_object_put(out);
  }

  dt_instance_free(st);
  dt_free(id);
  dt_client_close(client);
  dt_worker_free(worker);
  return ok ? 0 : 1;
}
