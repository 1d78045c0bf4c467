#ifndef SC_LIMITS_H
#define SC_LIMITS_H

/*
 * The limits layer: every check that input from outside must pass, in one place, so that a client request, a
 * worker's actions and a worker-supplied history are held to the same rules. docs/operations.md ("Limits")
 * lists each limit with its flag, its default and what a client gets when it is exceeded.
 *
 * Two stages:
 *  - sc_wire_check walks a message's encoding before protobuf-c unpacks it (wire.c): nesting depth, string
 *    fields (valid UTF-8, no NUL), Timestamp and Duration ranges, well-formedness. It needs nothing but the
 *    descriptor, so it runs on every RPC.
 *  - the value checks below (text.c) need the configured limits: id and name lengths and alphabet, payload
 *    sizes, tags. The transport turns a failed check into a gRPC status; the engine turns a worker's failed
 *    check into a failed task or orchestration.
 */

#include "common/status.h"
#include "orchestrator_service.pb-c.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of messages in one request (protobuf's own default recursion limit). protobuf-c unpacks,
 * packs and frees nested messages recursively, so a deeper message is refused before it is unpacked. */
#define SC_MAX_NESTING 100

struct sc_limits {
  size_t max_id;      /* --max-id-length: instance ids */
  size_t max_name;    /* --max-name-length: orchestration, activity, event names, versions, tag keys */
  size_t max_payload; /* --max-payload: any one input, output, event, result, custom status, failure or tag set */
  size_t max_history; /* --max-history: events in one execution's history */
};

/*
 * Checks the encoding of a |d| message: nesting, strings, timestamps, durations, wire format. Returns 0, or -1
 * with "<field path>: <problem>" in |err|.
 */
int sc_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, char *err, size_t errlen);

/*
 * Value checks. Each returns true, or false with err->code (INVALID_ARGUMENT or RESOURCE_EXHAUSTED) and a message
 * naming |field| and the limit.
 */
/* Text of at most |max| bytes: no control characters (the key layout needs that), valid UTF-8. */
bool sc_check_text(const char *field, const char *v, size_t max, bool required, struct sc_err *err);
/* Ids: not empty, at most max_id bytes, no control characters (the key layout needs that), valid UTF-8. */
bool sc_check_id(const struct sc_limits *l, const char *field, const char *v, struct sc_err *err);
/* Names: as ids with max_name; |required| refuses the empty string. */
bool sc_check_name(const struct sc_limits *l, const char *field, const char *v, bool required, struct sc_err *err);
/* A payload of |n| bytes (NULL: absent, always fine). */
bool sc_check_payload_len(const struct sc_limits *l, const char *field, size_t n, struct sc_err *err);
bool sc_check_payload(const struct sc_limits *l, const char *field, const char *v, struct sc_err *err);
/* map<string,string> tags (any of the generated entry types): keys are names; keys and values together count
 * as one payload. */
bool sc_check_tags(const struct sc_limits *l, const char *field, size_t n, void *const *entries, struct sc_err *err);
/* A failure with its stack trace, properties and inner failures counts as one payload (NULL: fine). */
bool sc_check_failure(const struct sc_limits *l, const char *field, const TaskFailureDetails *f,
                      struct sc_err *err);

#endif
