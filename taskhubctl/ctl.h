/*
 * Internals of taskhubctl shared between its files: exit codes, time and status parsing, payload excerpts, and
 * the JSON form of instances and history events (--output json).
 */
#ifndef CTL_H
#define CTL_H

#include "durabletask.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: documented in `taskhubctl --help` and taskhubctl(1). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAILED 1    /* the operation failed, or the orchestration ended FAILED/TERMINATED/CANCELED */
#define CTL_EXIT_USAGE 2     /* bad command line, or the server rejected the request as invalid */
#define CTL_EXIT_NOT_FOUND 3 /* no such instance */
#define CTL_EXIT_STATE 4     /* the id is taken, or the instance is in the wrong state for this */
#define CTL_EXIT_UNAVAIL 5   /* server unreachable or shutting down, or a timeout */
#define CTL_EXIT_AUTH 6      /* taskhubd refused the credentials (token), or they could not be read */

/* The exit code for an SDK status code. */
int ctl_exit_for(int rc);
/* A stable upper-case name for an SDK status code, as used in JSON error documents ("NOT_FOUND", ...). */
const char *ctl_code_name(int rc);

/* Parses an RFC 3339 timestamp ("2024-05-01T12:00:00Z", "...T12:00:00.250+02:00", or a date "2024-05-01",
 * meaning midnight UTC) into milliseconds since the epoch. Returns false when |s| is not one. */
bool ctl_parse_time(const char *s, int64_t *out_ms);
/* Parses a duration such as "30s", "90m", "1h30m", "2d" or "1w" (units s, m, h, d, w; at least one number and
 * unit, each number followed by its unit) into milliseconds. Returns false when |s| is not one. */
bool ctl_parse_duration(const char *s, int64_t *out_ms);
/* Formats |ms| as RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.250Z") into |buf| (>= 32 bytes). */
const char *ctl_format_time(int64_t ms, char *buf, size_t cap);
/* Formats a duration as "+1.250s", "+2m03.500s" or "+1h02m03s" (negative durations get "-"). */
const char *ctl_format_offset(int64_t ms, char *buf, size_t cap);
/* Milliseconds on the monotonic clock (for deadlines) and the wall clock (for timestamps). */
int64_t ctl_mono_ms(void);
int64_t ctl_wall_ms(void);

/* Parses a status name case-insensitively ("failed", "RUNNING", "canceled"/"cancelled"). */
bool ctl_parse_status(const char *s, dt_status *out);
bool ctl_status_is_final(dt_status s);
/* Exit code of a finished instance: 0 for COMPLETED, 1 for any other end. */
int ctl_exit_for_final(const dt_instance *in);

/* The edit distance between |a| and |b|, ignoring case: insertions, deletions, substitutions and swaps of
 * two neighbouring characters count one each (optimal string alignment). SIZE_MAX for strings over 64 bytes. */
size_t ctl_edit_distance(const char *a, const char *b);

/* True when |s| is one complete JSON value (object, array, string, number, true, false or null). */
bool ctl_is_json(const char *s);

/* Writes the |n| bytes at |s| to |f| with control characters escaped (\n, \t, \xNN). */
void ctl_print_escaped(FILE *f, const char *s, size_t n);
/* Writes |s| to |f| with control characters escaped (\n, \t, \xNN); with max > 0, at most about |max| bytes of
 * |s| (cut at a UTF-8 character boundary) followed by "...". */
void ctl_print_excerpt(FILE *f, const char *s, size_t max);

/* The JSON form of an instance: the stable object described in taskhubctl(1). */
json_object *ctl_json_instance(const dt_instance *in);
/* The JSON form of one history event; |t0_ms| is the time its offsetMs counts from. */
json_object *ctl_json_event(const dt_event *e, int64_t t0_ms);
/* The JSON form of a failure, or JSON null. */
json_object *ctl_json_failure(const dt_failure *f);
/* A JSON string, or JSON null for NULL. */
json_object *ctl_json_str(const char *s);
/* An RFC 3339 string, or JSON null for 0. */
json_object *ctl_json_time(int64_t ms);

/* Prints |doc| to stdout as one pretty-printed JSON document and releases it. */
void ctl_json_print(json_object *doc);

#endif
