/*
 * How taskhubctl reports: usage errors, failed calls and acknowledgements, as text for people (errors on stderr)
 * or, with --output json, as exactly one JSON document on stdout.
 */
#ifndef CTL_REPORT_H
#define CTL_REPORT_H

#include "cli.h"

/* With --output json, prints {"error": {code, exitCode, message, instanceId}}; in text mode nothing. */
void ctl_error_doc(const struct ctl *c, const char *code, int exit_code, const char *msg, const char *iid);
/* Reports a usage error (and how to get help); returns CTL_EXIT_USAGE. */
int ctl_usage_error(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a failure |rc| of an operation on |iid| (may be NULL); returns the exit code. */
int ctl_fail(const struct ctl *c, int rc, const char *iid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A call's gRPC status, kept past later calls (dt_last_call_status() holds the latest only). */
struct ctl_status {
  bool set;
  char code[32];
  char message[1024];
};
/* Keeps the thread's last call status in |s|, when it has one (else |s| is left as it is). */
void ctl_status_keep(struct ctl_status *s);
/* ctl_fail() with the status |kept| (when set) instead of the last call's. */
int ctl_fail_kept(const struct ctl *c, int rc, const char *iid, const struct ctl_status *kept, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Reports that |iid| is in the wrong state for what was asked (|msg| says why); returns CTL_EXIT_STATE. */
int ctl_wrong_state(const struct ctl *c, const char *iid, const char *msg);
/* A simple acknowledgement document: {"instanceId", "operation"}; the caller may add to it. */
json_object *ctl_ack_doc(const char *iid, const char *operation);
/* Prints an acknowledgement: |text| as a line, or ctl_ack_doc(iid, operation). Returns CTL_EXIT_OK. */
int ctl_finish_ack(const struct ctl *c, const char *iid, const char *operation, const char *text);

#endif
