#include "demo.h"

#include <stdlib.h>
#include <string.h>

const char *demo_chain(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  const char *a = dt_await(ctx, dt_call_activity(ctx, "rec_hello", input));
  dt_await(ctx, dt_create_timer_in(ctx, 1000));
  const char *b = dt_await(ctx, dt_call_activity(ctx, "rec_hello", a));
  return dt_ctx_printf(ctx, "[%s,%s]", a ? a : "null", b ? b : "null");
}

const char *demo_fanout(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  dt_task *t[3];
  for (int i = 0; i < 3; i++)
    t[i] = dt_call_activity(ctx, "rec_square", dt_ctx_printf(ctx, "%d", i + 1));
  dt_await(ctx, dt_when_all(ctx, t, 3));
  long sum = 0;
  for (int i = 0; i < 3; i++)
    sum += strtol(dt_task_result(t[i]) ? dt_task_result(t[i]) : "0", NULL, 10);
  dt_set_custom_status(ctx, "\"waiting\"");
  const char *ok = dt_await(ctx, dt_wait_event(ctx, "Approval"));
  return dt_ctx_printf(ctx, "{\"sum\":%ld,\"approval\":%s}", sum, ok ? ok : "null");
}

const char *demo_hello(dt_activity_ctx *ctx, const char *input, void *user_data)
{
  size_t n = input ? strlen(input) : 0;
  if (n >= 2 && input[0] == '"' && input[n - 1] == '"')
    return dt_activity_printf(ctx, "\"Hello, %.*s!\"", (int)(n - 2), input + 1);
  return dt_activity_printf(ctx, "\"Hello, %s!\"", input ? input : "null");
}

const char *demo_square(dt_activity_ctx *ctx, const char *input, void *user_data)
{
  long v = input ? strtol(input, NULL, 10) : 0;
  return dt_activity_printf(ctx, "%ld", v * v);
}
