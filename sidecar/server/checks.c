/* The transport's side of the limits layer: a request's fields checked, the call answered when one fails. */
#include "call.h"

#include <stdarg.h>
#include <stdio.h>

bool sc_call_reject(struct sc_call *c, int code, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sc_call_reply(c, code, msg, NULL);
  return false;
}

const struct sc_limits *sc_call_limits(const struct sc_call *c)
{
  return &sc_call_ctx(c)->limits;
}

static bool answer(struct sc_call *c, bool ok, const struct sc_err *err)
{
  if (!ok)
    sc_call_reply_err(c, err);
  return ok;
}

bool sc_call_check_id(struct sc_call *c, const char *field, const char *v)
{
  struct sc_err err;
  return answer(c, sc_check_id(sc_call_limits(c), field, v, &err), &err);
}

bool sc_call_check_name(struct sc_call *c, const char *field, const char *v, bool required)
{
  struct sc_err err;
  return answer(c, sc_check_name(sc_call_limits(c), field, v, required, &err), &err);
}

bool sc_call_check_text(struct sc_call *c, const char *field, const char *v, size_t max)
{
  struct sc_err err;
  return answer(c, sc_check_text(field, v, max, false, &err), &err);
}

bool sc_call_check_payload(struct sc_call *c, const char *field, const Google__Protobuf__StringValue *v)
{
  struct sc_err err;
  return answer(c, sc_check_payload(sc_call_limits(c), field, v ? v->value : NULL, &err), &err);
}

bool sc_call_check_tags(struct sc_call *c, size_t n, void *const *tags)
{
  struct sc_err err;
  return answer(c, sc_check_tags(sc_call_limits(c), "tags", n, tags, &err), &err);
}

bool sc_call_valid_status(int s)
{
  return s >= ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING &&
         s <= ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED;
}
