/*
 * The C half of the cross-language interop test (test_crosslang.py): a C SDK worker that shares one taskhubd with
 * a worker of the published Python SDK.
 *
 * usage: crosslang_worker PORT      (or HOST:PORT)
 *
 * Registers
 *   orchestrators  c_orch       calls the Python activity "py_act", then the C activity "c_act" on its result
 *                  c_orch_catch calls the Python activity "py_act_fail" and returns its failure details
 *                  c_parent     calls the Python orchestrator "py_child" as a sub-orchestration "<id>-child"
 *                  c_child      (called by the Python orchestrator "py_parent")
 *                  c_uuid_orch  returns dt_new_uuid() and dt_now_ms() of its first turn
 *   activities     c_act        "x" -> "c(x)"
 *                  c_act_fail   fails with CActivityError "c activity failed: x"
 *
 * Prints "ready" on stdout once the worker is started, then runs until stdin reaches EOF (the test closes it),
 * stops and frees the worker and exits 0 — so LeakSanitizer runs at exit and a leak makes the exit status
 * non-zero. SDK warnings and errors go to stderr.
 */
#include "durabletask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ JSON helpers (simple strings only) */

/* The contents of a JSON string literal without escapes, or NULL when |json| is not one. */
static char *unquote(char *buf, size_t cap, const char *json)
{
  size_t n = json ? strlen(json) : 0;
  if (n < 2 || json[0] != '"' || json[n - 1] != '"' || n - 2 >= cap || memchr(json + 1, '\\', n - 2))
    return NULL;
  memcpy(buf, json + 1, n - 2);
  buf[n - 2] = '\0';
  return buf;
}

/* A JSON string literal for |s| in the orchestration's memory. */
static const char *json_str(dt_orch_ctx *ctx, const char *s)
{
  if (!s)
    return "null";
  size_t n = strlen(s);
  char *out = dt_ctx_alloc(ctx, n * 6 + 3);
  size_t k = 0;
  out[k++] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      out[k++] = '\\';
      out[k++] = (char)*p;
    } else if (*p < 0x20) {
      k += (size_t)snprintf(out + k, 7, "\\u%04x", *p);
    } else {
      out[k++] = (char)*p;
    }
  }
  out[k++] = '"';
  out[k] = '\0';
  return out;
}

/* ------------------------------------------------------------------ activities */

static const char *c_act(dt_activity_ctx *a, const char *input, void *ud)
{
  (void)ud;
  char buf[1024];
  const char *x = unquote(buf, sizeof buf, input);
  if (!x) {
    dt_activity_fail(a, "CBadInput", dt_activity_printf(a, "c_act wants a simple JSON string, got %s",
                                                         input ? input : "nothing"));
    return NULL;
  }
  return dt_activity_printf(a, "\"c(%s)\"", x);
}

static const char *c_act_fail(dt_activity_ctx *a, const char *input, void *ud)
{
  (void)ud;
  char buf[1024];
  const char *x = unquote(buf, sizeof buf, input);
  dt_activity_fail(a, "CActivityError", dt_activity_printf(a, "c activity failed: %s", x ? x : "?"));
  return NULL;
}

/* ------------------------------------------------------------------ orchestrators */

static const char *c_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  const char *py = dt_await(ctx, dt_call_activity(ctx, "py_act", input));
  const char *c = dt_await(ctx, dt_call_activity(ctx, "c_act", py));
  return dt_ctx_printf(ctx, "{\"py\":%s,\"c\":%s}", py, c);
}

static const char *c_orch_catch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  dt_task *t = dt_call_activity(ctx, "py_act_fail", input);
  const char *r = NULL;
  if (dt_await_result(ctx, t, &r) == DT_OK)
    return dt_ctx_printf(ctx, "{\"no_failure\":%s}", r ? r : "null");
  const dt_failure *f = dt_task_failure(t);
  return dt_ctx_printf(ctx, "{\"error_type\":%s,\"message\":%s}", json_str(ctx, f ? f->error_type : NULL),
                       json_str(ctx, f ? f->message : NULL));
}

static const char *c_parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  const char *child_id = dt_ctx_printf(ctx, "%s-child", dt_instance_id(ctx));
  const char *r = dt_await(ctx, dt_call_sub_orchestrator(ctx, "py_child", child_id, input));
  return dt_ctx_printf(ctx, "{\"child\":%s}", r);
}

static const char *c_child(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  const char *c = dt_await(ctx, dt_call_activity(ctx, "c_act", input));
  return dt_ctx_printf(ctx, "{\"c\":%s,\"parent\":%s}", c, json_str(ctx, dt_parent_instance_id(ctx)));
}

static const char *c_uuid_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  const char *u0 = dt_new_uuid(ctx), *u1 = dt_new_uuid(ctx);
  return dt_ctx_printf(ctx, "{\"uuids\":[\"%s\",\"%s\"],\"now_ms\":%lld}", u0, u1, (long long)dt_now_ms(ctx));
}

/* ------------------------------------------------------------------ main */

static void log_fn(int level, const char *message, void *user_data)
{
  (void)user_data;
  if (level >= 2)
    fprintf(stderr, "crosslang_worker sdk[%d]: %s\n", level, message);
}

static int check(int rc, const char *what)
{
  if (rc != DT_OK) {
    fprintf(stderr, "crosslang_worker: %s: %s\n", what, dt_strerror(rc));
    exit(1);
  }
  return rc;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT|HOST:PORT\n", argv[0]);
    return 2;
  }
  char target[256];
  if (strchr(argv[1], ':'))
    snprintf(target, sizeof target, "%s", argv[1]);
  else
    snprintf(target, sizeof target, "127.0.0.1:%s", argv[1]);
  dt_set_log_fn(log_fn, NULL);

  dt_worker *w = NULL;
  check(dt_worker_new(target, NULL, &w), "dt_worker_new");
  check(dt_worker_add_orchestrator(w, "c_orch", c_orch, NULL), "add c_orch");
  check(dt_worker_add_orchestrator(w, "c_orch_catch", c_orch_catch, NULL), "add c_orch_catch");
  check(dt_worker_add_orchestrator(w, "c_parent", c_parent, NULL), "add c_parent");
  check(dt_worker_add_orchestrator(w, "c_child", c_child, NULL), "add c_child");
  check(dt_worker_add_orchestrator(w, "c_uuid_orch", c_uuid_orch, NULL), "add c_uuid_orch");
  check(dt_worker_add_activity(w, "c_act", c_act, NULL), "add c_act");
  check(dt_worker_add_activity(w, "c_act_fail", c_act_fail, NULL), "add c_act_fail");
  check(dt_worker_start(w), "dt_worker_start");
  printf("ready\n");
  fflush(stdout);

  char line[256];
  while (fgets(line, sizeof line, stdin)) /* until EOF: the test closes our stdin to stop us */
    ;
  dt_worker_free(w);
  fprintf(stderr, "crosslang_worker: stopped\n");
  return 0;
}
