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
/* Reports that |iid| is in the wrong state for what was asked (|msg| says why); returns CTL_EXIT_STATE. */
int ctl_wrong_state(const struct ctl *c, const char *iid, const char *msg);
/* A simple acknowledgement document: {"instanceId", "operation"}; the caller may add to it. */
json_object *ctl_ack_doc(const char *iid, const char *operation);
/* Prints an acknowledgement: |text| as a line, or ctl_ack_doc(iid, operation). Returns CTL_EXIT_OK. */
int ctl_finish_ack(const struct ctl *c, const char *iid, const char *operation, const char *text);

#endif
