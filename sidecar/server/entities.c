/*
 * The entity RPCs. SignalEntity, CompleteEntityTask and CleanEntityStorage are engine commands; GetEntity and
 * QueryEntities read committed state on the reader threads, as GetInstance and QueryInstances do.
 */
#include "call.h"
#include "common/pbutil.h"
#include "limits/limits.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#define GRPC_INVALID_ARGUMENT 3
#define MAX_PAGE 1000
#define DEFAULT_PAGE 100

/* An entity id: "@name@key" with a non-empty name, within the id limits. */
static bool check_entity_id(struct sc_call *c, const char *field, const char *id)
{
  if (!sc_call_check_id(c, field, id))
    return false;
  const char *at = sc_is_entity_id(id) ? strchr(id + 1, '@') : NULL;
  if (!at || at == id + 1)
    return sc_call_reject(c, GRPC_INVALID_ARGUMENT, "%s: not an entity id, expected @name@key, got \"%s\"", field,
                          id);
  return true;
}

static void empty_reply(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  Google__Protobuf__Empty resp = GOOGLE__PROTOBUF__EMPTY__INIT; /* SignalEntityResponse, CompleteTaskResponse */
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_signal_entity(struct sc_call *c)
{
  const SignalEntityRequest *r = (void *)c->req;
  if (!check_entity_id(c, "instanceId", r->instanceid) || !sc_call_check_name(c, "name", r->name, true) ||
      !sc_call_check_payload(c, "input", r->input) || !sc_call_check_text(c, "requestId", r->requestid, 256))
    return;
  c->cmd.kind = SC_CMD_SIGNAL_ENTITY;
  c->cmd.u.signal_entity.req = r;
  sc_call_post(c, empty_reply);
}

void sc_h_complete_entity(struct sc_call *c)
{
  const EntityBatchResult *r = (void *)c->req;
  if (!r->completiontoken[0]) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "completionToken: required (an entity batch is known by its token only)");
    return;
  }
  /* The state's size is the engine's to judge, with the batch at hand. */
  c->cmd.kind = SC_CMD_COMPLETE_ENTITY;
  c->cmd.u.complete_entity.res = r;
  sc_call_post(c, empty_reply);
}

static void clean_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  CleanEntityStorageResponse resp = CLEAN_ENTITY_STORAGE_RESPONSE__INIT;
  resp.emptyentitiesremoved = cmd->u.clean_entities.removed;
  resp.orphanedlocksreleased = cmd->u.clean_entities.released;
  if (cmd->u.clean_entities.next[0])
    resp.continuationtoken = sc_pb_sv(&c->arena, cmd->u.clean_entities.next);
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_clean_entities(struct sc_call *c)
{
  const CleanEntityStorageRequest *r = (void *)c->req;
  if (r->continuationtoken && r->continuationtoken->value[0] &&
      !check_entity_id(c, "continuationToken", r->continuationtoken->value))
    return;
  c->cmd.kind = SC_CMD_CLEAN_ENTITIES;
  c->cmd.u.clean_entities.req = r;
  sc_call_post(c, clean_done);
}

/* ------------------------------------------------------------------ reads */

static EntityMetadata *metadata(struct sc_arena *a, const char *id, const StoredEntity *e, uint32_t backlog,
                                bool state)
{
  EntityMetadata *m = sc_arena_alloc(a, sizeof *m);
  entity_metadata__init(m);
  m->instanceid = (char *)id;
  m->lastmodifiedtime = sc_pb_ts(a, e->last_modified_us);
  m->backlogqueuesize = (int32_t)backlog;
  if (e->locked_by[0])
    m->lockedby = sc_pb_sv(a, e->locked_by);
  if (state && e->has_state)
    m->serializedstate = sc_pb_sv(a, e->state);
  return m;
}

static void get_read(struct sc_call *c)
{
  const GetEntityRequest *r = (void *)c->req;
  struct sc_store *st = sc_call_ctx(c)->store;
  GetEntityResponse resp = GET_ENTITY_RESPONSE__INIT;
  struct sc_blob b;
  int rc = st->ops->get_entity(st, r->instanceid, &c->arena, &b);
  StoredEntity *e = NULL;
  if (rc == SC_OK)
    rc = sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &b, &c->arena, (void **)&e);
  if (rc == SC_OK) {
    struct sc_inbox_blob *msgs;
    size_t n = 0;
    if ((rc = st->ops->inbox_load(st, r->instanceid, &c->arena, &msgs, &n)) != SC_OK) {
      struct sc_err err;
      sc_err_set(&err, rc, "reading the queue of entity %s failed", r->instanceid);
      sc_call_reply_err(c, &err);
      return;
    }
    /* An entity exists while it has state; one only signalled so far is described, not said to exist. */
    resp.exists = e->has_state;
    resp.entity = metadata(&c->arena, r->instanceid, e, (uint32_t)n, r->includestate);
  } else if (rc != SC_ENOTFOUND) {
    struct sc_err err;
    sc_err_set(&err, rc, "reading entity %s failed", r->instanceid);
    sc_call_reply_err(c, &err);
    return;
  }
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_get_entity(struct sc_call *c)
{
  const GetEntityRequest *r = (void *)c->req;
  if (!check_entity_id(c, "instanceId", r->instanceid))
    return;
  sc_call_read_request(c, get_read);
}

static void query_read(struct sc_call *c)
{
  const QueryEntitiesRequest *r = (void *)c->req;
  const EntityQuery *q = r->query;
  struct sc_store *st = sc_call_ctx(c)->store;
  struct sc_entity_query eq = {.page_size = DEFAULT_PAGE};
  if (q) {
    eq.prefix = q->instanceidstartswith && q->instanceidstartswith->value[0] ? q->instanceidstartswith->value : NULL;
    eq.after = q->continuationtoken && q->continuationtoken->value[0] ? q->continuationtoken->value : NULL;
    eq.has_from = q->lastmodifiedfrom != NULL;
    eq.from_us = eq.has_from ? sc_pb_ts_us(q->lastmodifiedfrom) : 0;
    eq.has_to = q->lastmodifiedto != NULL;
    eq.to_us = eq.has_to ? sc_pb_ts_us(q->lastmodifiedto) : 0;
    eq.include_transient = q->includetransient;
    if (q->pagesize && q->pagesize->value > 0)
      eq.page_size = q->pagesize->value < MAX_PAGE ? (size_t)q->pagesize->value : MAX_PAGE;
  }
  struct sc_entity_page page;
  struct sc_err err = {0};
  if (st->ops->query_entities(st, &eq, &c->arena, &page, &err) != SC_OK) {
    sc_call_reply_err(c, &err);
    return;
  }
  QueryEntitiesResponse resp = QUERY_ENTITIES_RESPONSE__INIT;
  resp.entities = sc_arena_alloc(&c->arena, (page.n ? page.n : 1) * sizeof *resp.entities);
  /* A page must fit in one reply (--max-send-message): states are up to --max-payload each, so a page of large
   * ones ends early, and the next starts after the last entity it holds. */
  size_t budget = sc_call_send_budget(c), used = 0;
  const char *next = page.next_after;
  for (size_t i = 0; i < page.n; i++) {
    StoredEntity *e;
    if (sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &page.rows[i].rec, &c->arena, (void **)&e) !=
        SC_OK)
      continue;
    EntityMetadata *m = metadata(&c->arena, page.rows[i].id, e, page.rows[i].backlog, q && q->includestate);
    size_t size = entity_metadata__get_packed_size(m) + 6;
    if (resp.n_entities > 0 && used + size > budget) {
      next = resp.entities[resp.n_entities - 1]->instanceid;
      break;
    }
    used += size;
    resp.entities[resp.n_entities++] = m;
  }
  /* The token is the last id the page covered: strictly increasing, so it never repeats. */
  if (next)
    resp.continuationtoken = sc_pb_sv(&c->arena, next);
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_query_entities(struct sc_call *c)
{
  const QueryEntitiesRequest *r = (void *)c->req;
  const EntityQuery *q = r->query;
  if (q && q->instanceidstartswith && !sc_call_check_text(c, "query.instanceIdStartsWith",
                                                          q->instanceidstartswith->value, SC_MAX_ID))
    return;
  if (q && q->continuationtoken && q->continuationtoken->value[0] &&
      !sc_call_check_text(c, "query.continuationToken", q->continuationtoken->value, SC_MAX_ID))
    return;
  if (q && q->pagesize && q->pagesize->value < 0) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "query.pageSize: must not be negative");
    return;
  }
  sc_call_read_request(c, query_read);
}
