#ifndef SC_CALL_H
#define SC_CALL_H

/*
 * Transport internals shared by server.c (the completion-queue machinery) and rpc.c (the handlers).
 * One struct sc_call per RPC; its embedded tags are the completion-queue tags.
 */

#include "common/arena.h"
#include "config.h"
#include "engine/engine.h"
#include "store/store.h"

#include <grpc/grpc.h>
#include <stdatomic.h>
#include <stdbool.h>

struct sc_call;
struct sc_server;

typedef void (*sc_tag_fn)(struct sc_call *c, bool ok);

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
  struct sc_tag t_new, t_close, t_done;
  struct sc_arena arena;
  ProtobufCMessage *req;
  struct sc_cmd cmd;
  struct sc_cmd cancel_cmd;
  int64_t start_us;
};

struct sc_server_ctx {
  const struct sc_config *cfg;
  struct sc_store *store;
  struct sc_engine *engine;
};

const struct sc_server_ctx *sc_call_ctx(const struct sc_call *c);

/* Sends the reply (message only when code is 0) and gives up the handler's reference. */
void sc_call_reply(struct sc_call *c, int grpc_code, const char *msg,
                   const ProtobufCMessage *resp);
/* Replies with the gRPC code of an sc status. */
void sc_call_reply_err(struct sc_call *c, const struct sc_err *err);
/* Posts c->cmd to the engine; its done callback receives the call in cmd->user. */
void sc_call_post(struct sc_call *c, sc_cmd_done_fn done);
/* Starts watching for the client going away; a parked wait is then cancelled in the engine. */
void sc_call_watch_cancel(struct sc_call *c);
/* Milliseconds of the client deadline from now, or -1 without one. */
int64_t sc_call_deadline_us(const struct sc_call *c);

/* rpc.c */
extern struct sc_method sc_methods[];
extern const size_t sc_n_methods;

#endif
