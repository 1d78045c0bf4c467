#ifndef SC_CALL_H
#define SC_CALL_H

/*
 * Transport internals shared by server.c (the completion-queue machinery), rpc.c (the handlers that post to
 * the engine) and reads.c (the handlers that read committed state, on reader threads).
 * One struct sc_call per RPC; its embedded tags are the completion-queue tags.
 */

#include "common/arena.h"
#include "config.h"
#include "engine/engine.h"
#include "limits/limits.h"
#include "readers.h"
#include "store/store.h"

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct sc_call;
struct sc_server;

typedef void (*sc_tag_fn)(struct sc_call *c, bool ok);
typedef void (*sc_call_fn)(struct sc_call *c);

struct sc_tag {
  sc_tag_fn fn;
  struct sc_call *call;
};

struct sc_method {
  const char *path;
  const ProtobufCMessageDescriptor *req_desc;
  void (*handle)(struct sc_call *c);
  int preposted;
  void *registered;
  size_t metric; /* index in sc_metrics */
};

/* A message waiting in a server stream's outbox. */
struct sc_outmsg {
  uint8_t *buf; /* malloc'd packed message */
  size_t len;
  struct sc_outmsg *next;
};

/*
 * Server-streaming state: an outbox sent one message at a time (gRPC allows one send in flight), so a slow
 * reader never blocks whoever produces its messages. Guarded by mu: the engine thread (work items) or a reader
 * thread (history chunks) queues, the completion-queue thread sends.
 */
struct sc_stream_out {
  pthread_mutex_t mu;
  struct sc_outmsg *head, *tail;
  size_t queued;
  size_t bytes;      /* queued plus the message being sent: what this stream holds in memory */
  size_t sending_len;
  size_t kick_below; /* nonzero: the engine wants a kick once bytes drop below this */
  int64_t progress_us; /* (monotonic) when a send last completed, or began after the outbox was idle */
  bool sending, ending, closed, status_sent;
  bool stalled;      /* ended by --stream-stall: end_code and end_msg say so */
  int end_code;
  char end_msg[256];
  grpc_byte_buffer *send_bb;
  bool work_stream; /* GetWorkItems: registered with the engine */
  sc_call_fn pull;  /* NULL, or called when the outbox empties: see sc_call_stream_begin_pull */
  struct sc_call *prev, *next; /* the server's list of open streams */
};

struct sc_call {
  struct sc_server *srv;
  const struct sc_method *m; /* NULL: a method we do not register */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_call_details details; /* unregistered calls only */
  grpc_byte_buffer *req_bb;
  grpc_byte_buffer *resp_bb;
  grpc_slice status_details;
  bool has_status_details;
  int cancelled;
  bool close_started;
  atomic_int refs;
  atomic_bool waiting; /* a WAIT command is parked in the engine */
  struct sc_tag t_new, t_close, t_done, t_send, t_md;
  struct sc_stream_out *out; /* server-streaming methods only */
  struct sc_arena arena;
  ProtobufCMessage *req;
  struct sc_cmd cmd;
  struct sc_cmd cancel_cmd;
  int64_t start_us;
  struct sc_job read_job; /* sc_call_read: one at a time */
  sc_call_fn read_fn;
  void *read_ctx;         /* the read handler's own state */
};

struct sc_server_ctx {
  const struct sc_config *cfg;
  struct sc_store *store;
  struct sc_engine *engine;
  struct sc_limits limits; /* from cfg */
};

const struct sc_server_ctx *sc_call_ctx(const struct sc_call *c);
/* What one reply may carry (--max-send-message), less room for the framing around the part being sized: what
 * pages of query results, history chunks and pending messages are cut to. */
size_t sc_call_send_budget(const struct sc_call *c);

/* An extra reference, for work that may outlive the handler's (a queued read job); sc_call_unref drops it. */
void sc_call_ref(struct sc_call *c);
void sc_call_unref(struct sc_call *c);

/* Runs fn(c) on a reader thread (readers.h). The reference the caller holds passes to fn. */
void sc_call_read(struct sc_call *c, sc_call_fn fn);
/* For a read a client asked for (GetInstance, queries, a history stream's start): like sc_call_read, but while
 * --max-queued-commands reads already wait for a reader thread, the call is answered RESOURCE_EXHAUSTED instead. */
void sc_call_read_request(struct sc_call *c, sc_call_fn fn);

/* Sends the reply (message only when code is 0) and gives up the handler's reference. */
void sc_call_reply(struct sc_call *c, int grpc_code, const char *msg,
                   const ProtobufCMessage *resp);
/* Replies with the gRPC code of an sc status. */
void sc_call_reply_err(struct sc_call *c, const struct sc_err *err);
/* checks.c: the limits layer's checks of request fields. Each answers the call (INVALID_ARGUMENT or
 * RESOURCE_EXHAUSTED, naming the field) and returns false when one fails. */
/* Replies with |code| and a formatted message; returns false, for `return sc_call_reject(...)`. */
bool sc_call_reject(struct sc_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const struct sc_limits *sc_call_limits(const struct sc_call *c);
bool sc_call_check_id(struct sc_call *c, const char *field, const char *v);
bool sc_call_check_name(struct sc_call *c, const char *field, const char *v, bool required);
/* Text of at most |max| bytes, possibly empty (an id prefix). */
bool sc_call_check_text(struct sc_call *c, const char *field, const char *v, size_t max);
bool sc_call_check_payload(struct sc_call *c, const char *field, const Google__Protobuf__StringValue *v);
bool sc_call_check_tags(struct sc_call *c, size_t n, void *const *tags);
/* An OrchestrationStatus value the protocol defines. */
bool sc_call_valid_status(int s);
/* Posts c->cmd to the engine; its done callback receives the call in cmd->user. */
void sc_call_post(struct sc_call *c, sc_cmd_done_fn done);
/* Starts watching for the client going away; a parked wait is then cancelled in the engine. */
void sc_call_watch_cancel(struct sc_call *c);
/* Milliseconds of the client deadline from now, or -1 without one. */
int64_t sc_call_deadline_us(const struct sc_call *c);

/* Streams: sc_call_stream_begin sends the initial metadata and watches for the client going away;
 * push queues one message (taking ownership of buf); end sends the status once the outbox is drained. */
void sc_call_stream_begin(struct sc_call *c, bool work_stream);
/* A stream whose messages are made on demand, so that a client that does not read holds one message at most:
 * |pull| runs on the completion-queue thread each time a send completes with nothing queued behind it while
 * the stream is neither ending nor closed, and must (eventually) push the next message or end the stream. */
void sc_call_stream_begin_pull(struct sc_call *c, sc_call_fn pull);
/* False once the stream is ending or the client has gone: no point making more messages. */
bool sc_call_stream_live(struct sc_call *c);
void sc_call_stream_push(struct sc_call *c, uint8_t *buf, size_t len);
/* True when fewer than |cap| bytes wait to be sent on the stream; otherwise false, and the engine is kicked once
 * they do. */
bool sc_call_stream_ready(struct sc_call *c, size_t cap);
void sc_call_stream_end(struct sc_call *c, int grpc_code, const char *msg);

/* rpc.c */
extern struct sc_method sc_methods[];
extern const size_t sc_n_methods;

/* reads.c: the handlers that read committed state, on the reader threads. */
void sc_h_get_instance(struct sc_call *c);
void sc_h_wait_start(struct sc_call *c);
void sc_h_wait_completion(struct sc_call *c);
void sc_h_query_instances(struct sc_call *c);
/* taskhubd.admin.Admin/QueryInstancesReversed: the same, newest first (ids in reverse under a prefix). */
void sc_h_query_instances_reversed(struct sc_call *c);
void sc_h_list_instance_ids(struct sc_call *c);
void sc_h_stream_history(struct sc_call *c);

/* admin.c: taskhubd's own service (taskhubd.admin.Admin), reads on the reader threads. */
void sc_h_server_info(struct sc_call *c);
void sc_h_pending_messages(struct sc_call *c);
/* On the engine thread (it alone knows the connected workers), like the writes. */
void sc_h_explain_instance(struct sc_call *c);

/* entities.c: the entity RPCs (writes go to the engine, reads to the reader threads). */
void sc_h_signal_entity(struct sc_call *c);
void sc_h_get_entity(struct sc_call *c);
void sc_h_query_entities(struct sc_call *c);
void sc_h_clean_entities(struct sc_call *c);
void sc_h_complete_entity(struct sc_call *c);

#endif
