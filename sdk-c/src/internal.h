#ifndef DT_INTERNAL_H
#define DT_INTERNAL_H

/* SDK internals. Nothing here is API; names are dt__*. */

#include "durabletask.h"
#include "orchestrator_service.pb-c.h"

#include <grpc/grpc.h>
#include <stdarg.h>

/* ------------------------------------------------------------------ logging */

void dt__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define DT_DEBUG(...) dt__log(0, __VA_ARGS__)
#define DT_INFO(...) dt__log(1, __VA_ARGS__)
#define DT_WARN(...) dt__log(2, __VA_ARGS__)
#define DT_ERROR(...) dt__log(3, __VA_ARGS__)

/* ------------------------------------------------------------------ memory */

char *dt__strdup(const char *s); /* NULL in, NULL out (and NULL on out-of-memory) */

/* A bump allocator: everything one orchestrator run or activity allocates, released at once. */
struct dt__arena_chunk;
typedef struct dt__arena {
  struct dt__arena_chunk *head;
  ProtobufCAllocator pb;
} dt__arena;

void dt__arena_init(dt__arena *a);
void *dt__arena_alloc(dt__arena *a, size_t n); /* NULL on out-of-memory */
char *dt__arena_strdup(dt__arena *a, const char *s);
char *dt__arena_vprintf(dt__arena *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void dt__arena_free(dt__arena *a);

/* ------------------------------------------------------------------ gRPC */

typedef struct dt__conn {
  grpc_channel *ch;
  int call_timeout_ms;
  size_t n_md;    /* 1 with a token, else 0 */
  grpc_metadata md; /* "authorization: Bearer <token>", sent with every call */
} dt__conn;

int dt__conn_open(dt__conn *c, const char *target, const dt_conn_options *opt);
void dt__conn_close(dt__conn *c);
/* Fills a GRPC_OP_SEND_INITIAL_METADATA op with the connection's metadata (the token). */
void dt__conn_initial_md(const dt__conn *c, grpc_op *op);

#define DT__NO_DEADLINE (-1)

/*
 * One unary call. timeout_ms: 0 uses the connection's default, DT__NO_DEADLINE sends none. On DT_OK *resp holds
 * the unpacked response (free with protobuf_c_message_free_unpacked(*resp, NULL)). *err_msg (may be NULL)
 * receives the server's status message on failure (caller frees with free()).
 */
int dt__unary(dt__conn *c, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
              int timeout_ms, ProtobufCMessage **resp, char **err_msg);
/* dt__unary on packed bytes (methods whose messages the SDK does not know): *resp malloc'd, caller frees. */
int dt__unary_raw(dt__conn *c, const char *method, const uint8_t *req, size_t req_len, int timeout_ms,
                  uint8_t **resp, size_t *resp_len, char **err_msg);

/*
 * One server-streaming call (StreamInstanceHistory): sends |req|, then unpacks every message with |rd| and hands it
 * to |on_msg|, which takes ownership (free with protobuf_c_message_free_unpacked(m, NULL)) and returns DT_OK to go
 * on, or an error, which cancels the call. Returns DT_OK once the server ended the stream with OK, else the
 * callback's error, DT_ERR_INTERNAL for an undecodable message, or the call's status. timeout_ms as for dt__unary
 * (a deadline for the whole stream).
 */
int dt__server_stream(dt__conn *c, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *rd, int timeout_ms,
                      int (*on_msg)(ProtobufCMessage *m, void *arg), void *arg);

/* The connection of a client, for the client calls kept outside client.c (entity_client.c). */
dt__conn *dt__client_conn(dt_client *c);
/* One unary call of a client (client.c, entity_client.c); logs the server's message on failure, and
 * dt_last_call_status() has it. timeout_ms as for dt__unary. */
int dt__client_call(dt_client *c, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                    int timeout_ms, ProtobufCMessage **resp);

/* Whether |m|, or a message inside it, holds an unknown field protobuf-c took in but cannot write back out: field
 * number 0, which it accepts when the key's varint is padded (util.c). A response echoing it would not decode. */
bool dt__pb_unwritable(const ProtobufCMessage *m);

/* Request values of the client calls (util.c): |slot| filled with |s|, or NULL without a value; a time in ms. */
Google__Protobuf__StringValue *dt__sv(Google__Protobuf__StringValue *slot, const char *s);
Google__Protobuf__Timestamp *dt__ts(Google__Protobuf__Timestamp *slot, int64_t ms);
int64_t dt__ts_ms(const Google__Protobuf__Timestamp *t); /* NULL: 0; clamped to years 1 to 9999 */
int64_t dt__ts_us(const Google__Protobuf__Timestamp *t); /* the same in microseconds */
/* strdup that records an out-of-memory in *oom (NULL in, NULL out). */
char *dt__cp(const char *s, bool *oom);

/* gRPC status code -> DT_* code. */
int dt__from_grpc(grpc_status_code s);

int64_t dt__now_ms(void);

/* UUIDv5 of |name| in the Durable Task namespace, formatted 8-4-4-4-12. */
void dt__uuid5_string(const char *name, char out[37]);
/* 32 lowercase hex digits of randomness (+ NUL) from getrandom, else /dev/urandom. DT_OK, or DT_ERR_INTERNAL
 * (|out| untouched) when neither gives any; never blocks for long or spins. */
int dt__random_hex32(char out[33]) __attribute__((warn_unused_result));

/* ------------------------------------------------------------------ replay */

struct dt__orchestrator {
  char *name;
  dt_orchestrator_fn fn;
  void *user_data;
};

/*
 * Runs one orchestrator work item: replays |req| through the registered orchestrator and packs the
 * OrchestratorResponse (echoing |token|) into *out (malloc'd; caller frees). Returns DT_OK, DT_ERR_NOMEM, or
 * DT_ERR_INTERNAL (a rewind found no randomness for its new execution id); the work item is then not done.
 * Failures of the orchestration itself (unknown name, nondeterminism, errors) are in the response.
 */
int dt__replay(const struct dt__orchestrator *orchs, size_t n, const OrchestratorRequest *req, const char *token,
               uint8_t **out, size_t *out_len);

/* ------------------------------------------------------------------ entities */

struct dt__entity {
  char *name; /* lowercased */
  dt_entity_fn fn;
  void *user_data;
};

/*
 * Runs one entity work item (an EntityBatchRequest, or an EntityRequest of --entity-work-items v2) through the
 * registered entities, operation by operation, and packs the EntityBatchResult (echoing the work item's completion
 * token) into *out (malloc'd; caller frees). DT_OK, or DT_ERR_NOMEM / DT_ERR_INVALID_ARG (not an entity id): the
 * work item is then not done and should be abandoned.
 */
int dt__run_entity_batch(const struct dt__entity *ents, size_t n, const WorkItem *wi, uint8_t **out,
                         size_t *out_len);

/* Whether |id| is "@name@key" with a non-empty name. */
bool dt__valid_entity_id(const char *id);

#endif
