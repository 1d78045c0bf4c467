/* taskhubctl's errors and acknowledgements (see report.h). */
#include "report.h"

#include <stdarg.h>
#include <string.h>

/* The error document; |grpc_code| and |server_msg| (may be NULL) are what the server said, when it did. */
static void error_doc(const struct ctl *c, const char *code, int exit_code, const char *msg, const char *iid,
                      const char *grpc_code, const char *server_msg)
{
  if (!c->json)
    return;
  json_object *e = json_object_new_object();
  json_object_object_add(e, "code", json_object_new_string(code));
  json_object_object_add(e, "exitCode", json_object_new_int(exit_code));
  json_object_object_add(e, "message", json_object_new_string(msg));
  if (iid)
    json_object_object_add(e, "instanceId", json_object_new_string(iid));
  if (grpc_code) {
    json_object_object_add(e, "grpcCode", json_object_new_string(grpc_code));
    json_object_object_add(e, "grpcMessage", json_object_new_string(server_msg ? server_msg : ""));
  }
  json_object *doc = json_object_new_object();
  json_object_object_add(doc, "error", e);
  ctl_json_print(doc);
}

void ctl_error_doc(const struct ctl *c, const char *code, int exit_code, const char *msg, const char *iid)
{
  error_doc(c, code, exit_code, msg, iid, NULL, NULL);
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

void ctl_status_keep(struct ctl_status *s)
{
  const char *code = NULL, *msg = NULL;
  if (!dt_last_call_status(&code, &msg))
    return;
  snprintf(s->code, sizeof s->code, "%s", code);
  snprintf(s->message, sizeof s->message, "%s", msg);
  s->set = true;
}

static int vfail(const struct ctl *c, int rc, const char *iid, const char *grpc_code, const char *server_msg,
                 const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

int ctl_fail(const struct ctl *c, int rc, const char *iid, const char *fmt, ...)
{
  /* The gRPC code and the server's message, when the failure came from the server: one DT_ERR_* code stands
   * for several gRPC codes, and the message often says what to do (e.g. that no worker serves an
   * orchestration). */
  const char *grpc_code = NULL, *server_msg = NULL;
  dt_last_call_status(&grpc_code, &server_msg);
  va_list ap;
  va_start(ap, fmt);
  int ex = vfail(c, rc, iid, grpc_code, server_msg, fmt, ap);
  va_end(ap);
  return ex;
}

int ctl_fail_kept(const struct ctl *c, int rc, const char *iid, const struct ctl_status *kept, const char *fmt, ...)
{
  const char *grpc_code = NULL, *server_msg = NULL;
  if (kept && kept->set) {
    grpc_code = kept->code;
    server_msg = kept->message;
  } else {
    dt_last_call_status(&grpc_code, &server_msg);
  }
  va_list ap;
  va_start(ap, fmt);
  int ex = vfail(c, rc, iid, grpc_code, server_msg, fmt, ap);
  va_end(ap);
  return ex;
}

static int vfail(const struct ctl *c, int rc, const char *iid, const char *grpc_code, const char *server_msg,
                 const char *fmt, va_list ap)
{
  char what[384], msg[2048], why[1100];
  vsnprintf(what, sizeof what, fmt, ap);
  /* Without a gRPC status, the SDK's description of the code. */
  if (grpc_code)
    snprintf(why, sizeof why, "%s%s%s", grpc_code, server_msg[0] ? ": " : "", server_msg);
  else
    snprintf(why, sizeof why, "%s", dt_strerror(rc));
  switch (rc) {
  case DT_ERR_NOT_FOUND:
    if (iid)
      snprintf(msg, sizeof msg, "%s: instance '%s' not found", what, iid);
    else
      snprintf(msg, sizeof msg, "%s: not found", what);
    if (grpc_code) {
      size_t n = strlen(msg);
      snprintf(msg + n, sizeof msg - n, " (%s)", why);
    }
    break;
  case DT_ERR_UNAVAILABLE:
    snprintf(msg, sizeof msg, "%s: taskhubd at %s is unavailable (%s)", what, c->address, why);
    break;
  case DT_ERR_TIMEOUT:
    if (grpc_code)
      snprintf(msg, sizeof msg, "%s: timed out (%s)", what, why);
    else /* our own deadline, between calls */
      snprintf(msg, sizeof msg, "%s: timed out", what);
    break;
  default:
    if (grpc_code)
      snprintf(msg, sizeof msg, "%s: %s (%s)", what, dt_strerror(rc), why);
    else
      snprintf(msg, sizeof msg, "%s: %s", what, dt_strerror(rc));
    break;
  }
  fprintf(stderr, "taskhubctl: %s\n", msg);
  int ex = ctl_exit_for(rc);
  error_doc(c, ctl_code_name(rc), ex, msg, iid, grpc_code, server_msg);
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
