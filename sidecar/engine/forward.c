/*
 * Commands for instances of partitions another replica owns. The engine never reads or writes such an instance
 * through its transaction: it writes a Forward into the partition's incoming table in the same commit as the rest
 * of its batch (so a turn's messages to other partitions are as atomic as its own changes), and the owner applies
 * it (incoming.c). A client's command waits, parked, for the owner's answer (a ForwardReply, SC_CMD_REPLY);
 * what the engine sends on its own behalf (a child's completion, an event, a recursive terminate) needs none.
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void send_(struct sc_engine *e, Taskhubd__Store__Forward *f, uint64_t id)
{
  int part = sc_part_of(f->instance_id, e->nparts);
  SC_ASSERT(!owns_part(e, part));
  atomic_fetch_add_explicit(&sc_metrics.forwarded, 1, memory_order_relaxed);
  sc_txn_forward(e->tx, part, id, &f->base);
  SC_DEBUG("event=forwarded kind=%d command=%u instance=%s partition=%d id=%" PRIu64, (int)f->kind, f->command,
           SC_Q(f->instance_id), part, id);
}

void forward_send(struct sc_engine *e, Taskhubd__Store__Forward *f)
{
  send_(e, f, sc_txn_next_seq(e->tx));
}

/* The client's request, packed into the batch arena. */
static void pack_request(struct sc_engine *e, struct sc_cmd *c, Taskhubd__Store__Forward *f)
{
  const ProtobufCMessage *m = NULL;
  CreateInstanceRequest start;
  switch (c->kind) {
  case SC_CMD_START:
    /* With the id chosen here, so the owner creates the instance the caller is told about. */
    start = *c->u.start.req;
    start.instanceid = c->u.start.iid;
    m = &start.base;
    break;
  case SC_CMD_RAISE:
    m = &c->u.raise.req->base;
    break;
  case SC_CMD_TERMINATE:
    m = &c->u.terminate.req->base;
    break;
  case SC_CMD_SUSPEND:
  case SC_CMD_RESUME:
    f->reason = (Google__Protobuf__StringValue *)c->u.suspend.reason;
    return;
  case SC_CMD_PURGE:
    m = &c->u.purge.req->base;
    break;
  case SC_CMD_REWIND:
    m = &c->u.rewind.req->base;
    break;
  case SC_CMD_RESTART:
    m = &c->u.restart.req->base;
    break;
  case SC_CMD_SIGNAL_ENTITY:
    m = &c->u.signal_entity.req->base;
    break;
  default:
    sc_panic("command %d cannot be forwarded", (int)c->kind);
  }
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = sc_arena_alloc(&e->ba, n ? n : 1);
  protobuf_c_message_pack(m, b);
  f->request.data = b;
  f->request.len = n;
}

int forward_client(struct sc_engine *e, struct sc_cmd *c, const char *iid)
{
  if (!e->cfg.replica || !e->cfg.replica[0])
    return fail(c, SC_EUNAVAIL, "instance %s belongs to a partition of another replica, and this one has no name "
                                "to be answered at",
                iid);
  Taskhubd__Store__Forward f = TASKHUBD__STORE__FORWARD__INIT;
  f.kind = TASKHUBD__STORE__FORWARD__KIND__CLIENT;
  f.instance_id = (char *)iid;
  f.command = (uint32_t)c->kind;
  f.reply_to = (char *)e->cfg.replica;
  pack_request(e, c, &f);
  /* The row's id is the answer's id too: fresh sequence numbers never repeat, across replicas and restarts. */
  uint64_t id = sc_txn_next_seq(e->tx);
  f.reply_id = id;
  send_(e, &f, id);
  char key[24];
  snprintf(key, sizeof key, "%" PRIu64, id);
  sc_map_put(&e->pending, key, c);
  if (e->nfwd_new == e->capfwd_new) {
    size_t cap = e->capfwd_new ? 2 * e->capfwd_new : 64;
    uint64_t *v = realloc(e->fwd_new, cap * sizeof *v);
    if (!v)
      sc_panic("out of memory");
    e->fwd_new = v;
    e->capfwd_new = cap;
  }
  e->fwd_new[e->nfwd_new++] = id;
  return PARKED;
}

void forwards_committed(struct sc_engine *e)
{
  e->nfwd_new = 0;
}

void forwards_not_written(struct sc_engine *e, int code, const char *msg)
{
  for (size_t i = 0; i < e->nfwd_new; i++) {
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, e->fwd_new[i]);
    struct sc_cmd *c = sc_map_remove(&e->pending, key);
    if (!c)
      continue;
    fail(c, code, "not forwarded to the instance's replica, nothing of it was written: %s", msg);
    add_done(e, c);
  }
  e->nfwd_new = 0;
}

int apply_reply(struct sc_engine *e, struct sc_cmd *c)
{
  char key[24];
  snprintf(key, sizeof key, "%" PRIu64, c->u.store_event.id);
  struct sc_cmd *w = sc_map_remove(&e->pending, key);
  if (!w) {
    SC_DEBUG("event=reply_unclaimed id=%s", key);
    return DONE; /* its caller went away with an earlier process */
  }
  /* What it reports was committed by the owner: this batch's commit failing takes nothing from it. */
  w->wrote = false;
  struct sc_blob b = {c->u.store_event.body, c->u.store_event.len};
  Taskhubd__Store__ForwardReply *r;
  if (sc_store_unpack(&taskhubd__store__forward_reply__descriptor, &b, &e->ba, (void **)&r) != SC_OK) {
    fail(w, SC_EIO, "the answer from the instance's replica does not decode");
  } else {
    w->err.code = r->code;
    snprintf(w->err.msg, sizeof w->err.msg, "%s", r->message);
    if (w->kind == SC_CMD_START && r->instance_id[0])
      snprintf(w->u.start.iid, sizeof w->u.start.iid, "%s", r->instance_id);
    if (w->kind == SC_CMD_RESTART)
      snprintf(w->u.restart.iid, sizeof w->u.restart.iid, "%s", r->instance_id);
    if (w->kind == SC_CMD_PURGE) {
      w->u.purge.deleted = r->deleted;
      w->u.purge.complete = true;
    }
  }
  add_done(e, w);
  return DONE;
}

void forwards_fail_all(struct sc_engine *e, int code, const char *msg)
{
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->pending))) {
    struct sc_cmd *c = sc_map_value(it);
    sc_map_remove(&e->pending, sc_map_key(it));
    fail(c, code, "%s", msg);
    add_done(e, c);
  }
}

void forward_free(struct sc_engine *e)
{
  free(e->fwd_new);
  sc_map_free(&e->pending);
}
