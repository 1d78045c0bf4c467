/*
 * Commands other replicas forwarded to this replica's partitions (forward.c on their side). Each is applied like
 * the command it stands for, and marked done in the same commit, so it takes effect exactly once however often
 * it is handed over; a client's command is answered with a ForwardReply in that commit too.
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"

#include <stdio.h>
#include <string.h>

static void noop_done(struct sc_cmd *c)
{
  (void)c;
}

/* The forward's packed client request, decoded into the batch arena; NULL (the reply says why) when it does not
 * decode. */
static void *unpack_request(struct sc_engine *e, const Taskhubd__Store__Forward *f, const ProtobufCMessageDescriptor *d,
                            Taskhubd__Store__ForwardReply *reply)
{
  struct sc_blob b = {f->request.data, f->request.len};
  void *req;
  if (sc_store_unpack(d, &b, &e->ba, &req) == SC_OK)
    return req;
  reply->code = SC_EIO;
  reply->message = (char *)"a forwarded request does not decode";
  return NULL;
}

/* A forwarded client command, rebuilt as the command it was. */
static int apply_forwarded_client(struct sc_engine *e, const Taskhubd__Store__Forward *f,
                                  Taskhubd__Store__ForwardReply *reply)
{
  struct sc_cmd *c = sc_arena_alloc(&e->ba, sizeof *c);
  memset(c, 0, sizeof *c);
  c->kind = (enum sc_cmd_kind)f->command;
  c->done = noop_done;
  void *req = NULL;
  switch (c->kind) {
  case SC_CMD_START:
    if ((req = unpack_request(e, f, &create_instance_request__descriptor, reply)))
      c->u.start.req = req;
    break;
  case SC_CMD_RAISE:
    if ((req = unpack_request(e, f, &raise_event_request__descriptor, reply)))
      c->u.raise.req = req;
    break;
  case SC_CMD_TERMINATE:
    if ((req = unpack_request(e, f, &terminate_request__descriptor, reply)))
      c->u.terminate.req = req;
    break;
  case SC_CMD_PURGE:
    if ((req = unpack_request(e, f, &purge_instances_request__descriptor, reply)))
      c->u.purge.req = req;
    break;
  case SC_CMD_REWIND:
    if ((req = unpack_request(e, f, &rewind_instance_request__descriptor, reply)))
      c->u.rewind.req = req;
    break;
  case SC_CMD_RESTART:
    if ((req = unpack_request(e, f, &restart_instance_request__descriptor, reply)))
      c->u.restart.req = req;
    break;
  case SC_CMD_SIGNAL_ENTITY:
    if ((req = unpack_request(e, f, &signal_entity_request__descriptor, reply)))
      c->u.signal_entity.req = req;
    break;
  case SC_CMD_SUSPEND:
  case SC_CMD_RESUME:
    req = c; /* no request: the forward carries the id and the reason */
    c->u.suspend.iid = f->instance_id;
    c->u.suspend.reason = f->reason;
    break;
  default:
    reply->code = SC_EINVAL;
    reply->message = (char *)"a forwarded command of an unknown kind";
    break;
  }
  if (!req)
    return reply->code;
  sc_txn_savepoint(e->tx);
  apply_client(e, c);
  if (c->err.code != SC_OK)
    sc_txn_rollback(e->tx);
  reply->code = c->err.code;
  reply->message = sc_arena_strdup(&e->ba, c->err.msg);
  if (c->kind == SC_CMD_START)
    reply->instance_id = sc_arena_strdup(&e->ba, c->u.start.iid);
  else if (c->kind == SC_CMD_RESTART)
    reply->instance_id = sc_arena_strdup(&e->ba, c->u.restart.iid);
  else if (c->kind == SC_CMD_PURGE)
    reply->deleted = c->u.purge.deleted;
  return c->err.code;
}

/* What an orchestration on another partition asked of an instance of this one. */
static int apply_engine_forward(struct sc_engine *e, Taskhubd__Store__Forward *f)
{
  switch (f->kind) {
  case TASKHUBD__STORE__FORWARD__KIND__EVENT:
    return f->event ? deliver_event(e, f->instance_id, f->event) : SC_EINVAL;
  case TASKHUBD__STORE__FORWARD__KIND__PARENT:
    return f->event ? deliver_to_parent(e, f->instance_id, f->execution_id, f->event) : SC_EINVAL;
  case TASKHUBD__STORE__FORWARD__KIND__TERMINATE:
    return terminate_other(e, f->instance_id, f->reason, f->recurse);
  case TASKHUBD__STORE__FORWARD__KIND__CREATE_CHILD:
    if (!f->created || !f->parent || !f->parent->orchestrationinstance)
      return SC_EINVAL;
    f->created->instanceid = f->instance_id;
    return create_child(e, f->created, f->parent, f->trace);
  case TASKHUBD__STORE__FORWARD__KIND__REWIND_CHILD:
    if (!f->created || !f->parent || !f->parent->orchestrationinstance)
      return SC_EINVAL;
    return rewind_child(e, f->created, f->parent);
  case TASKHUBD__STORE__FORWARD__KIND__PURGE_CHILD:
    return purge_instance(e, f->instance_id, f->recurse);
  case TASKHUBD__STORE__FORWARD__KIND__ENTITY_MSG:
    return entity_forwarded(e, f->instance_id, f->event);
  default:
    return SC_EINVAL;
  }
}

int apply_incoming(struct sc_engine *e, struct sc_cmd *c)
{
  int part = c->u.store_event.part;
  uint64_t id = c->u.store_event.id;
  if (!owns_part(e, part))
    return DONE; /* let go of meanwhile: its new owner applies it */
  if (incoming_seen(e, id))
    return DONE;
  Taskhubd__Store__Forward *f;
  struct sc_blob b = {c->u.store_event.body, c->u.store_event.len};
  if (sc_store_unpack(&taskhubd__store__forward__descriptor, &b, &e->ba, (void **)&f) != SC_OK) {
    SC_ERROR("event=forward_dropped id=%llu reason=undecodable", (unsigned long long)id);
    sc_txn_forward_done(e->tx, part, id);
    return DONE;
  }
  if (!owns(e, f->instance_id)) {
    SC_ERROR("event=forward_dropped id=%llu instance=%s reason=wrong_partition", (unsigned long long)id,
             SC_Q(f->instance_id));
    sc_txn_forward_done(e->tx, part, id);
    return DONE;
  }
  Taskhubd__Store__ForwardReply reply = TASKHUBD__STORE__FORWARD_REPLY__INIT;
  if (f->kind == TASKHUBD__STORE__FORWARD__KIND__CLIENT) {
    apply_forwarded_client(e, f, &reply);
  } else {
    sc_txn_savepoint(e->tx);
    int rc = apply_engine_forward(e, f);
    if (rc != SC_OK) {
      sc_txn_rollback(e->tx);
      SC_ERROR("event=forward_failed id=%llu kind=%d instance=%s status=%d", (unsigned long long)id, (int)f->kind,
               SC_Q(f->instance_id), rc);
    }
  }
  sc_txn_forward_done(e->tx, part, id);
  if (f->reply_to[0])
    sc_txn_reply(e->tx, f->reply_to, f->reply_id, &reply.base);
  atomic_fetch_add_explicit(&sc_metrics.forwards_applied, 1, memory_order_relaxed);
  return DONE;
}
