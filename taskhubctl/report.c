/* taskhubctl's errors and acknowledgements (see report.h). */
#include "report.h"

#include <stdarg.h>

void ctl_error_doc(const struct ctl *c, const char *code, int exit_code, const char *msg, const char *iid)
{
  if (!c->json)
    return;
  json_object *e = json_object_new_object();
  json_object_object_add(e, "code", json_object_new_string(code));
  json_object_object_add(e, "exitCode", json_object_new_int(exit_code));
  json_object_object_add(e, "message", json_object_new_string(msg));
  if (iid)
    json_object_object_add(e, "instanceId", json_object_new_string(iid));
  json_object *doc = json_object_new_object();
  json_object_object_add(doc, "error", e);
  ctl_json_print(doc);
}

int ctl_usage_error(const struct ctl *c, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "taskhubctl: %s\n", msg);
  if (c->cmd)
    fprintf(stderr, "Try 'taskhubctl help %s'.\n", c->cmd->name);
  else
    fprintf(stderr, "Try 'taskhubctl --help'.\n");
  ctl_error_doc(c, "USAGE", CTL_EXIT_USAGE, msg, NULL);
  return CTL_EXIT_USAGE;
}

int ctl_fail(const struct ctl *c, int rc, const char *iid, const char *fmt, ...)
{
  char what[384], msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  switch (rc) {
  case DT_ERR_NOT_FOUND:
    if (iid)
      snprintf(msg, sizeof msg, "%s: instance '%s' not found", what, iid);
    else
      snprintf(msg, sizeof msg, "%s: not found", what);
    break;
  case DT_ERR_UNAVAILABLE:
    snprintf(msg, sizeof msg, "%s: taskhubd at %s is unavailable (%s)", what, c->address, dt_strerror(rc));
    break;
  case DT_ERR_TIMEOUT: snprintf(msg, sizeof msg, "%s: timed out (%s)", what, dt_strerror(rc)); break;
  default: snprintf(msg, sizeof msg, "%s: %s", what, dt_strerror(rc)); break;
  }
  fprintf(stderr, "taskhubctl: %s\n", msg);
  int ex = ctl_exit_for(rc);
  ctl_error_doc(c, ctl_code_name(rc), ex, msg, iid);
  return ex;
}

int ctl_wrong_state(const struct ctl *c, const char *iid, const char *msg)
{
  fprintf(stderr, "taskhubctl: %s\n", msg);
  ctl_error_doc(c, ctl_code_name(DT_ERR_STATE), CTL_EXIT_STATE, msg, iid);
  return CTL_EXIT_STATE;
}

json_object *ctl_ack_doc(const char *iid, const char *operation)
{
  json_object *doc = json_object_new_object();
  json_object_object_add(doc, "instanceId", ctl_json_str(iid));
  json_object_object_add(doc, "operation", json_object_new_string(operation));
  return doc;
}

int ctl_finish_ack(const struct ctl *c, const char *iid, const char *operation, const char *text)
{
  if (c->json)
    ctl_json_print(ctl_ack_doc(iid, operation));
  else
    printf("%s\n", text);
  return CTL_EXIT_OK;
}
