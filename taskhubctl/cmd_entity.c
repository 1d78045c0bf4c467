/*
 * The entity commands: entity list (filters, paging), entity show, entity signal and entity clean, on the C SDK's
 * entity client calls. Entity ids are "@name@key"; the SDK lowercases the name part, as the other SDKs do.
 */
#include "commands.h"
#include "report.h"

#include <stdlib.h>
#include <string.h>

#define ENTITY_DEFAULT_LIMIT 100
/* Pages asked for when reading more than one: the most taskhubd sends at once. */
#define ENTITY_FETCH_PAGE 1000
/* A clean that is still going after this many pages is stopped rather than looping for ever on a server that
 * keeps handing out tokens. */
#define CLEAN_MAX_PAGES 1000000

/* The JSON form of an entity (taskhubctl(1)): id, its name and key, exists, lastModifiedAt, backlog, lockedBy and
 * state (null unless asked for and present). */
static json_object *json_entity(const dt_entity *e)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "entityId", ctl_json_str(e->entity_id));
  /* The id split as the SDKs split it: the name up to the second '@', the key after it. */
  const char *at = e->entity_id[0] == '@' ? strchr(e->entity_id + 1, '@') : NULL;
  json_object_object_add(o, "name", at ? json_object_new_string_len(e->entity_id + 1, (int)(at - e->entity_id - 1))
                                       : NULL);
  json_object_object_add(o, "key", at ? json_object_new_string(at + 1) : NULL);
  json_object_object_add(o, "exists", json_object_new_boolean(e->exists));
  json_object_object_add(o, "lastModifiedAt", ctl_json_time(e->last_modified_ms));
  json_object_object_add(o, "backlog", json_object_new_int(e->backlog));
  json_object_object_add(o, "lockedBy", ctl_json_str(e->locked_by));
  json_object_object_add(o, "state", ctl_json_str(e->state));
  return o;
}

/* An entity's failure to be found, said as such (ctl_fail() would call it an instance). */
static int entity_not_found(const struct ctl *c, const char *id, const char *what)
{
  char msg[512];
  snprintf(msg, sizeof msg, "%s: entity '%s' not found", what, id);
  fprintf(stderr, "taskhubctl: %s\n", msg);
  ctl_error_doc(c, ctl_code_name(DT_ERR_NOT_FOUND), CTL_EXIT_NOT_FOUND, msg, id);
  return CTL_EXIT_NOT_FOUND;
}

/* ------------------------------------------------------------------ list */

struct entities {
  dt_entity **v;
  size_t n, cap;
};

static void entities_free(struct entities *l)
{
  for (size_t i = 0; i < l->n; i++)
    dt_entity_free(l->v[i]);
  free(l->v);
}

/* Moves the entities of |p| into |l| while it holds fewer than |limit| (0: no limit); frees the rest and |p|.
 * *cut is set when some were left out. False on out-of-memory. */
static bool take(struct entities *l, dt_entity_page *p, size_t limit, bool *cut)
{
  bool ok = true;
  for (size_t i = 0; i < p->n; i++) {
    dt_entity *e = p->entities[i];
    if (!ok || (limit && l->n >= limit)) {
      *cut = *cut || ok;
      dt_entity_free(e);
      continue;
    }
    if (l->n == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 64;
      dt_entity **v = realloc(l->v, cap * sizeof *v);
      if (!v) {
        ok = false;
        dt_entity_free(e);
        continue;
      }
      l->v = v;
      l->cap = cap;
    }
    l->v[l->n++] = e;
  }
  p->n = 0;
  dt_entity_page_free(p);
  return ok;
}

static void print_entities_text(const struct ctl *c, const struct entities *l)
{
  if (l->n == 0) {
    printf(c->transient ? "no entities\n" : "no entities with state (--transient lists those without)\n");
    return;
  }
  int wid = (int)strlen("ENTITY ID"), wlock = (int)strlen("LOCKED BY");
  for (size_t i = 0; i < l->n; i++) {
    int n = (int)strlen(l->v[i]->entity_id);
    wid = n > wid ? n : wid;
    n = l->v[i]->locked_by ? (int)strlen(l->v[i]->locked_by) : 1;
    wlock = n > wlock ? n : wlock;
  }
  printf("%-*s  %-9s  %7s  %-*s  %s\n", wid, "ENTITY ID", "STATE", "BACKLOG", wlock, "LOCKED BY", "LAST MODIFIED");
  for (size_t i = 0; i < l->n; i++) {
    const dt_entity *e = l->v[i];
    char t[48];
    printf("%-*s  %-9s  %7d  %-*s  %s\n", wid, e->entity_id, e->exists ? "state" : "transient", (int)e->backlog,
           wlock, e->locked_by ? e->locked_by : "-", ctl_format_time(e->last_modified_ms, t, sizeof t));
    if (c->state && e->state) {
      fputs("    state: ", stdout);
      ctl_print_excerpt(stdout, e->state, 0);
      fputc('\n', stdout);
    }
  }
}

/*
 * The server pages in id order, so the first --limit come from the first pages; --page-size and --continuation
 * print one page with the token for the next, which is what a script resuming from a token needs.
 */
int cmd_entity_list(struct ctl *c)
{
  bool one_page = (c->page_size || c->continuation) && !c->all;
  size_t limit = c->all || one_page ? 0 : c->limit ? (size_t)c->limit : ENTITY_DEFAULT_LIMIT;
  dt_entity_query q = {
      .id_prefix = c->prefix,
      .include_state = c->state,
      .include_transient = c->transient,
      .page_size = c->page_size ? c->page_size
                   : one_page   ? 0
                   : limit && limit < ENTITY_FETCH_PAGE ? (int)limit + 1 /* one more says whether there are more */
                                                        : ENTITY_FETCH_PAGE,
      .continuation = c->continuation,
  };
  struct entities l = {0};
  bool cut = false;
  char *next = NULL;
  int ex = CTL_EXIT_OK;
  for (;;) {
    dt_entity_page *p = NULL;
    int rc = dt_client_query_entities(c->client, &q, &p);
    if (rc != DT_OK) {
      ex = ctl_fail(c, rc, NULL, "entity list");
      goto done;
    }
    free(next);
    next = p->continuation;
    p->continuation = NULL;
    if (!take(&l, p, limit, &cut)) {
      ex = ctl_fail(c, DT_ERR_NOMEM, NULL, "entity list");
      goto done;
    }
    /* With exactly |limit| taken the next page is still read: a token says only that more may follow. */
    if (one_page || !next || cut)
      break;
    q.continuation = next;
  }
  bool more = one_page ? next != NULL : cut;
  if (c->json) {
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < l.n; i++)
      json_object_array_add(arr, json_entity(l.v[i]));
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "entities", arr);
    json_object_object_add(doc, "count", json_object_new_int64((int64_t)l.n));
    json_object_object_add(doc, "more", json_object_new_boolean(more));
    json_object_object_add(doc, "continuationToken", ctl_json_str(one_page ? next : NULL));
    ctl_json_print(doc);
    goto done;
  }
  print_entities_text(c, &l);
  if (one_page && next)
    printf("more entities: continue with --continuation %s\n", next);
  else if (more)
    printf("more entities not shown: --limit N or --all shows more\n");
done:
  entities_free(&l);
  free(next);
  return ex;
}

/* ------------------------------------------------------------------ show */

int cmd_entity_show(struct ctl *c)
{
  const char *id = c->pos[0];
  dt_entity *e = NULL;
  int rc = dt_client_get_entity(c->client, id, true, &e);
  if (rc == DT_ERR_NOT_FOUND)
    return entity_not_found(c, id, "entity show");
  if (rc == DT_ERR_INVALID_ARG && !dt_last_call_status(NULL, NULL))
    return ctl_usage_error(c, "entity show: '%s' is not an entity id (@name@key)", id);
  if (rc != DT_OK)
    return ctl_fail(c, rc, id, "entity show");
  if (c->json) {
    ctl_json_print(json_entity(e));
  } else {
    char t[48];
    printf("Entity:         %s\n", e->entity_id);
    printf("State:          %s\n", e->exists ? "yes" : "none (transient: signalled, nothing run yet)");
    printf("Last modified:  %s\n", ctl_format_time(e->last_modified_ms, t, sizeof t));
    printf("Backlog:        %d operation%s queued\n", (int)e->backlog, e->backlog == 1 ? "" : "s");
    printf("Locked by:      %s\n", e->locked_by ? e->locked_by : "-");
    if (e->state) {
      fputs("State value:    ", stdout);
      ctl_print_excerpt(stdout, e->state, 0);
      fputc('\n', stdout);
    }
  }
  dt_entity_free(e);
  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ signal */

int cmd_entity_signal(struct ctl *c)
{
  const char *id = c->pos[0], *op = c->pos[1];
  if (!op[0])
    return ctl_usage_error(c, "entity signal: empty operation name");
  int rc = dt_client_signal_entity(c->client, id, op, c->input, c->signal_at);
  if (rc == DT_ERR_INVALID_ARG && !dt_last_call_status(NULL, NULL))
    return ctl_usage_error(c, "entity signal: '%s' is not an entity id (@name@key)", id);
  if (rc != DT_OK)
    return ctl_fail(c, rc, id, "entity signal");
  char t[48];
  if (c->json) {
    json_object *doc = ctl_ack_doc(id, "signal");
    json_object_object_add(doc, "entityOperation", json_object_new_string(op));
    json_object_object_add(doc, "scheduledAt", ctl_json_time(c->signal_at));
    ctl_json_print(doc);
  } else if (c->signal_at) {
    printf("signalled %s: %s, scheduled for %s\n", id, op, ctl_format_time(c->signal_at, t, sizeof t));
  } else {
    printf("signalled %s: %s\n", id, op);
  }
  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ clean */

int cmd_entity_clean(struct ctl *c)
{
  /* Neither option: both, which is what cleaning up after entities usually means. */
  bool both = !c->remove_empty && !c->release_locks;
  bool remove = both || c->remove_empty, release = both || c->release_locks;
  long long removed = 0, released = 0;
  char *token = NULL;
  int pages = 0;
  for (;;) {
    int r1 = 0, r2 = 0;
    char *next = NULL;
    int rc = dt_client_clean_entity_storage(c->client, remove, release, token, &r1, &r2, &next);
    free(token);
    if (rc != DT_OK) {
      if (removed || released)
        fprintf(stderr, "taskhubctl: %lld removed and %lld released before the error\n", removed, released);
      return ctl_fail(c, rc, NULL, "entity clean");
    }
    removed += r1;
    released += r2;
    pages++;
    token = next;
    if (!token || pages >= CLEAN_MAX_PAGES)
      break;
  }
  bool complete = token == NULL;
  free(token);
  if (c->json) {
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "operation", json_object_new_string("clean"));
    json_object_object_add(doc, "removeEmpty", json_object_new_boolean(remove));
    json_object_object_add(doc, "releaseOrphanedLocks", json_object_new_boolean(release));
    json_object_object_add(doc, "emptyEntitiesRemoved", json_object_new_int64(removed));
    json_object_object_add(doc, "orphanedLocksReleased", json_object_new_int64(released));
    json_object_object_add(doc, "complete", json_object_new_boolean(complete));
    ctl_json_print(doc);
  } else {
    printf("removed %lld empty entit%s, released %lld orphaned lock%s\n", removed, removed == 1 ? "y" : "ies",
           released, released == 1 ? "" : "s");
  }
  return complete ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}
