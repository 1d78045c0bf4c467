/*
 * The client's entity calls: SignalEntity, GetEntity, QueryEntities and CleanEntityStorage. Kept apart from
 * client.c, which is about orchestration instances; the two share only the connection (dt__client_conn).
 * As there, requests are built on the stack and responses copied into malloc()ed API structs.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC "/TaskHubSidecarService/"

/* ------------------------------------------------------------------ ids */

/* Whether |id| is "@name@key" with a non-empty name: what taskhubd accepts, so that a bad id fails here, with
 * DT_ERR_INVALID_ARG, rather than after a round trip. The key may hold '@' (the .NET SDK allows it). */
static bool valid_entity_id(const char *id)
{
  if (!id || id[0] != '@')
    return false;
  const char *at = strchr(id + 1, '@');
  return at && at > id + 1;
}

bool dt__valid_entity_id(const char *id)
{
  return valid_entity_id(id);
}

/* ASCII lowercase, in place, from |s| up to (not including) the first '@' or the end. The other SDKs lowercase
 * entity names (Python with str.lower, .NET with ToLowerInvariant); non-ASCII names are left as they are, since
 * the SDK carries no Unicode tables, and are the one case where the ids may differ from theirs. */
static void lower_name(char *s)
{
  for (; *s && *s != '@'; s++)
    if (*s >= 'A' && *s <= 'Z')
      *s = (char)(*s - 'A' + 'a');
}

/* A malloc()ed copy of the entity id |id| (valid) with its name lowercased, or NULL on out-of-memory. */
static char *normalized_id(const char *id)
{
  char *d = strdup(id);
  if (d)
    lower_name(d + 1);
  return d;
}

int dt_make_entity_id(const char *name, const char *key, char **out)
{
  if (!name || !name[0] || strchr(name, '@') || !key || !out)
    return DT_ERR_INVALID_ARG;
  size_t nn = strlen(name), nk = strlen(key);
  char *id = malloc(nn + nk + 3);
  if (!id)
    return DT_ERR_NOMEM;
  id[0] = '@';
  memcpy(id + 1, name, nn);
  id[nn + 1] = '@';
  memcpy(id + nn + 2, key, nk + 1);
  lower_name(id + 1);
  *out = id;
  return DT_OK;
}

/* ------------------------------------------------------------------ helpers */

/* ------------------------------------------------------------------ signal */

int dt_client_signal_entity(dt_client *c, const char *entity_id, const char *operation, const char *input,
                            int64_t signal_at_ms)
{
  if (!c || !valid_entity_id(entity_id) || !operation || !operation[0] || signal_at_ms < 0)
    return DT_ERR_INVALID_ARG;
  /* A request id as the other SDKs send one (a UUID: the .NET worker parses it as a Guid). */
  char hex[33], uuid[37];
  int rc = dt__random_hex32(hex);
  if (rc != DT_OK)
    return rc;
  hex[12] = '4';                                        /* version 4 */
  hex[16] = "89ab"[(hex[16] >= 'a' ? hex[16] - 'a' + 10 : hex[16] - '0') & 3]; /* RFC 4122 variant */
  snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);

  char *id = normalized_id(entity_id);
  if (!id)
    return DT_ERR_NOMEM;
  SignalEntityRequest req = SIGNAL_ENTITY_REQUEST__INIT;
  Google__Protobuf__StringValue in;
  Google__Protobuf__Timestamp at, now;
  req.instanceid = id;
  req.name = (char *)operation;
  req.input = dt__sv(&in, input);
  req.requestid = uuid;
  req.requesttime = dt__ts(&now, dt__now_ms());
  if (signal_at_ms > 0)
    req.scheduledtime = dt__ts(&at, signal_at_ms);
  ProtobufCMessage *m = NULL;
  rc = dt__client_call(c, SVC "SignalEntity", &req.base, &signal_entity_response__descriptor, 0, &m);
  if (rc == DT_OK)
    protobuf_c_message_free_unpacked(m, NULL);
  free(id);
  return rc;
}

/* ------------------------------------------------------------------ get, query */

void dt_entity_free(dt_entity *e)
{
  if (!e)
    return;
  free(e->entity_id);
  free(e->locked_by);
  free(e->state);
  free(e);
}

/* A malloc()ed copy of |m|; |exists| as the server said it (GetEntity) or as the state says (QueryEntities). */
static int entity_from(const EntityMetadata *m, bool exists, bool include_state, dt_entity **out)
{
  dt_entity *e = calloc(1, sizeof *e);
  if (!e)
    return DT_ERR_NOMEM;
  bool oom = false;
  e->entity_id = dt__cp(m->instanceid, &oom);
  e->exists = exists;
  e->last_modified_ms = dt__ts_ms(m->lastmodifiedtime);
  e->backlog = m->backlogqueuesize;
  e->locked_by = m->lockedby && m->lockedby->value[0] ? dt__cp(m->lockedby->value, &oom) : NULL;
  e->state = include_state && m->serializedstate ? dt__cp(m->serializedstate->value, &oom) : NULL;
  if (oom) {
    dt_entity_free(e);
    return DT_ERR_NOMEM;
  }
  *out = e;
  return DT_OK;
}

int dt_client_get_entity(dt_client *c, const char *entity_id, bool include_state, dt_entity **out)
{
  if (!c || !valid_entity_id(entity_id) || !out)
    return DT_ERR_INVALID_ARG;
  char *id = normalized_id(entity_id);
  if (!id)
    return DT_ERR_NOMEM;
  GetEntityRequest req = GET_ENTITY_REQUEST__INIT;
  req.instanceid = id;
  req.includestate = include_state;
  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, SVC "GetEntity", &req.base, &get_entity_response__descriptor, 0, &m);
  if (rc == DT_OK) {
    const GetEntityResponse *resp = (const GetEntityResponse *)m;
    /* exists=false with metadata: a transient entity (taskhubd describes those); without: nothing known. */
    if (!resp->entity)
      rc = resp->exists ? DT_ERR_INTERNAL : DT_ERR_NOT_FOUND;
    else
      rc = entity_from(resp->entity, resp->exists, include_state, out);
    if (rc == DT_OK && !(*out)->entity_id[0]) { /* an id the server left out is the one asked for */
      free((*out)->entity_id);
      (*out)->entity_id = id;
      id = NULL;
    }
    protobuf_c_message_free_unpacked(m, NULL);
  }
  free(id);
  return rc;
}

void dt_entity_page_free(dt_entity_page *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++)
    dt_entity_free(p->entities[i]);
  free(p->entities);
  free(p->continuation);
  free(p);
}

/*
 * A page of a transient query without state cannot tell which entities have state, and asking for every state
 * to find out could move megabytes nobody asked for. Instead the same query is made again without the transient
 * ones, from the same token and as many as the page held: in id order, that covers every entity of the page
 * that has state, so those of the page it does not list are the transient ones. (An entity that changed in
 * between is reported as the second read saw it.)
 */
static int mark_transient(dt_client *c, const EntityQuery *first, const QueryEntitiesResponse *r1, dt_entity_page *p)
{
  QueryEntitiesRequest req = QUERY_ENTITIES_REQUEST__INIT;
  EntityQuery eq = *first;
  Google__Protobuf__Int32Value size = GOOGLE__PROTOBUF__INT32_VALUE__INIT;
  size.value = (int32_t)r1->n_entities;
  eq.pagesize = &size;
  eq.includetransient = false;
  eq.includestate = false;
  req.query = &eq;
  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, SVC "QueryEntities", &req.base, &query_entities_response__descriptor, 0, &m);
  if (rc != DT_OK)
    return rc;
  const QueryEntitiesResponse *r2 = (const QueryEntitiesResponse *)m;
  for (size_t i = 0; i < p->n; i++) {
    bool found = false;
    for (size_t k = 0; k < r2->n_entities && !found; k++)
      found = strcmp(r2->entities[k]->instanceid, p->entities[i]->entity_id) == 0;
    p->entities[i]->exists = found;
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return DT_OK;
}

int dt_client_query_entities(dt_client *c, const dt_entity_query *q, dt_entity_page **out)
{
  if (!c || !q || !out || q->page_size < 0 || q->modified_from_ms < 0 || q->modified_to_ms < 0)
    return DT_ERR_INVALID_ARG;
  char *prefix = NULL;
  if (q->id_prefix && q->id_prefix[0]) {
    if (!(prefix = strdup(q->id_prefix)))
      return DT_ERR_NOMEM;
    if (prefix[0] == '@')
      lower_name(prefix + 1);
  }
  QueryEntitiesRequest req = QUERY_ENTITIES_REQUEST__INIT;
  EntityQuery eq = ENTITY_QUERY__INIT;
  Google__Protobuf__StringValue pfx, token;
  Google__Protobuf__Timestamp from, to;
  Google__Protobuf__Int32Value size = GOOGLE__PROTOBUF__INT32_VALUE__INIT;
  eq.instanceidstartswith = dt__sv(&pfx, prefix);
  if (q->modified_from_ms)
    eq.lastmodifiedfrom = dt__ts(&from, q->modified_from_ms);
  if (q->modified_to_ms)
    eq.lastmodifiedto = dt__ts(&to, q->modified_to_ms);
  eq.includestate = q->include_state;
  eq.includetransient = q->include_transient;
  if (q->page_size > 0) {
    size.value = q->page_size;
    eq.pagesize = &size;
  }
  if (q->continuation && q->continuation[0])
    eq.continuationtoken = dt__sv(&token, q->continuation);
  req.query = &eq;

  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, SVC "QueryEntities", &req.base, &query_entities_response__descriptor, 0, &m);
  if (rc != DT_OK) {
    free(prefix);
    return rc;
  }
  const QueryEntitiesResponse *resp = (const QueryEntitiesResponse *)m;
  dt_entity_page *p = calloc(1, sizeof *p);
  rc = DT_ERR_NOMEM;
  if (!p)
    goto done;
  if (resp->n_entities > 0) {
    if (!(p->entities = calloc(resp->n_entities, sizeof *p->entities)))
      goto done;
    for (size_t i = 0; i < resp->n_entities; i++) {
      const EntityMetadata *em = resp->entities[i];
      /* QueryEntities has no per-entity "exists": an entity exists while it has state, which only a query for
       * state shows; without includeTransient every entity listed has state. */
      bool exists = q->include_state ? em->serializedstate != NULL : true;
      if ((rc = entity_from(em, exists, q->include_state, &p->entities[i])) != DT_OK)
        goto done;
      p->n++;
    }
    if (q->include_transient && !q->include_state && (rc = mark_transient(c, &eq, resp, p)) != DT_OK)
      goto done;
  }
  if (resp->continuationtoken && resp->continuationtoken->value[0] &&
      !(p->continuation = strdup(resp->continuationtoken->value))) {
    rc = DT_ERR_NOMEM;
    goto done;
  }
  *out = p;
  p = NULL;
  rc = DT_OK;
done:
  dt_entity_page_free(p);
  protobuf_c_message_free_unpacked(m, NULL);
  free(prefix); /* after mark_transient, whose query shares it */
  return rc;
}

/* ------------------------------------------------------------------ clean */

int dt_client_clean_entity_storage(dt_client *c, bool remove_empty, bool release_orphaned_locks,
                                   const char *continuation, int *removed, int *released, char **next)
{
  if (!c)
    return DT_ERR_INVALID_ARG;
  CleanEntityStorageRequest req = CLEAN_ENTITY_STORAGE_REQUEST__INIT;
  Google__Protobuf__StringValue token;
  req.removeemptyentities = remove_empty;
  req.releaseorphanedlocks = release_orphaned_locks;
  if (continuation && continuation[0])
    req.continuationtoken = dt__sv(&token, continuation);
  ProtobufCMessage *m = NULL;
  int rc = dt__client_call(c, SVC "CleanEntityStorage", &req.base, &clean_entity_storage_response__descriptor, 0, &m);
  if (rc != DT_OK)
    return rc;
  const CleanEntityStorageResponse *resp = (const CleanEntityStorageResponse *)m;
  char *tok = NULL;
  if (next && resp->continuationtoken && resp->continuationtoken->value[0] &&
      !(tok = strdup(resp->continuationtoken->value))) {
    protobuf_c_message_free_unpacked(m, NULL);
    return DT_ERR_NOMEM;
  }
  if (removed)
    *removed = resp->emptyentitiesremoved;
  if (released)
    *released = resp->orphanedlocksreleased;
  if (next)
    *next = tok;
  protobuf_c_message_free_unpacked(m, NULL);
  return DT_OK;
}
