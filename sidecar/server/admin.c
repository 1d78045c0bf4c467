/*
 * taskhubd's own service (protos/taskhubd_admin.proto): the server's identity, what waits in an instance's inbox
 * (reads of committed state, on the reader threads like reads.c's), and why an instance has not moved (asked of the
 * engine). The public protocol has no call for any of them, which is why taskhubctl could not say which server it
 * talks to or why an instance has not moved.
 */
#include "call.h"
#include "common/pbutil.h"
#include "taskhubd_admin.pb-c.h"

#include <grpc/grpc.h>
#include <string.h>

#define GRPC_NOT_FOUND 5
#define DEFAULT_PENDING 100
#define MAX_PENDING 1000

static void info_read(struct sc_call *c)
{
  const struct sc_server_ctx *x = sc_call_ctx(c);
  Taskhubd__Admin__ServerInfoResponse resp = TASKHUBD__ADMIN__SERVER_INFO_RESPONSE__INIT;
  resp.version = (char *)TASKHUBD_VERSION;
  resp.grpc_version = (char *)grpc_version_string();
  resp.store = (char *)(x->cfg->store_postgres ? "postgresql" : "rocksdb");
  resp.replica_id = (char *)(x->cfg->store_postgres ? x->cfg->replica_id : "");
  resp.partitions = x->store->ops->partitions(x->store);
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_server_info(struct sc_call *c)
{
  sc_call_read(c, info_read);
}

static void pending_read(struct sc_call *c)
{
  const Taskhubd__Admin__PendingMessagesRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instance_id))
    return;
  if (r->max_messages < 0 || r->max_messages > MAX_PENDING) {
    sc_call_reject(c, GRPC_STATUS_INVALID_ARGUMENT, "maxMessages: %d is outside 0..%d", r->max_messages,
                   MAX_PENDING);
    return;
  }
  struct sc_store *st = sc_call_ctx(c)->store;
  struct sc_blob rec;
  int rc = st->ops->get_instance(st, r->instance_id, &c->arena, &rec);
  if (rc == SC_ENOTFOUND) {
    sc_call_reject(c, GRPC_NOT_FOUND, "instance %s not found", r->instance_id);
    return;
  }
  struct sc_inbox_msg *msgs = NULL;
  size_t n = 0;
  if (rc == SC_OK)
    rc = sc_store_inbox(st, r->instance_id, &c->arena, &msgs, &n);
  if (rc != SC_OK) {
    struct sc_err err;
    sc_err_set(&err, rc, "reading the inbox of %s failed", r->instance_id);
    sc_call_reply_err(c, &err);
    return;
  }
  size_t max = r->max_messages ? (size_t)r->max_messages : DEFAULT_PENDING;
  size_t budget = sc_call_send_budget(c), used = 0;
  Taskhubd__Admin__PendingMessagesResponse resp = TASKHUBD__ADMIN__PENDING_MESSAGES_RESPONSE__INIT;
  resp.messages = sc_arena_alloc(&c->arena, (n ? n : 1) * sizeof *resp.messages);
  for (size_t i = 0; i < n && resp.n_messages < max; i++) {
    if (!msgs[i].msg->event)
      continue;
    size_t sz = protobuf_c_message_get_packed_size(&msgs[i].msg->event->base) + 8;
    if (used + sz > budget)
      break;
    used += sz;
    resp.messages[resp.n_messages++] = msgs[i].msg->event;
  }
  resp.total = n > INT32_MAX ? INT32_MAX : (int32_t)n;
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_pending_messages(struct sc_call *c)
{
  sc_call_read(c, pending_read);
}

/* On the engine thread, which knows the connected workers: the reason goes out as it is. */
static void explain_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  if (!cmd->u.explain.exists) {
    sc_call_reject(c, GRPC_NOT_FOUND, "instance %s not found", cmd->u.explain.iid);
    return;
  }
  Taskhubd__Admin__ExplainInstanceResponse resp = TASKHUBD__ADMIN__EXPLAIN_INSTANCE_RESPONSE__INIT;
  resp.reason = cmd->u.explain.why;
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_explain_instance(struct sc_call *c)
{
  const Taskhubd__Admin__ExplainInstanceRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instance_id))
    return;
  c->cmd.kind = SC_CMD_EXPLAIN;
  c->cmd.u.explain.iid = r->instance_id;
  sc_call_post(c, explain_done);
}
