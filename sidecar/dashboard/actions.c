/*
 * The dashboard's actions: each becomes the engine command its gRPC RPC posts (raise, suspend, resume,
 * terminate, rewind, restart, purge), after the same field checks (limits.h). The connection is suspended while
 * the command is in the engine and resumed by its done callback, so the ops thread never waits for a commit.
 *
 * POST /api/v1/actions/<action> with a JSON object: {"id": ..., and per action:}
 *   raise {"name", "input"?}  suspend/resume/rewind {"reason"?}  terminate {"output"?, "recursive"?}
 *   restart {"newInstanceId"?}  purge {"recursive"?}
 * Answers 200 {"ok": true, ...} or an error with the engine's message.
 */
#include "internal.h"

#include "common/pbutil.h"

#include <stdio.h>
#include <string.h>

enum { A_RAISE, A_SUSPEND, A_RESUME, A_TERMINATE, A_REWIND, A_RESTART, A_PURGE, N_ACTIONS };

static const char *const action_names[N_ACTIONS] = {"raise",  "suspend", "resume", "terminate",
                                                    "rewind", "restart", "purge"};
/* The fields each action takes besides "id". */
static const char *const action_fields[N_ACTIONS] = {"name input", "reason", "reason", "output recursive",
                                                     "reason", "newInstanceId", "recursive"};

static void cmd_done(struct sc_cmd *cmd)
{
  struct dash_req *r = cmd->user;
  atomic_store(&r->answered, true);
  MHD_resume_connection(r->conn);
}

enum MHD_Result dash_post(struct sc_engine *e, struct MHD_Connection *conn, struct dash_req *r)
{
  r->cmd.done = cmd_done;
  r->cmd.user = r;
  r->posted = true;
  MHD_suspend_connection(conn);
  sc_engine_post(e, &r->cmd);
  return MHD_YES;
}

static bool field_allowed(int action, const char *key)
{
  if (strcmp(key, "id") == 0)
    return true;
  const char *list = action_fields[action];
  size_t n = strlen(key);
  for (const char *p = list; (p = strstr(p, key)) != NULL; p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
      return true;
  return false;
}

/* A string field: absent (NULL, true), a string (true), or anything else (false, with |why|). */
static bool str_field(struct json_object *body, const char *key, const char **out, char *why, size_t cap)
{
  struct json_object *v;
  *out = NULL;
  if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
    return true;
  if (!json_object_is_type(v, json_type_string)) {
    snprintf(why, cap, "%s: must be a string", key);
    return false;
  }
  *out = json_object_get_string(v);
  if (strlen(*out) != (size_t)json_object_get_string_len(v)) {
    snprintf(why, cap, "%s: must not hold a NUL character", key);
    return false;
  }
  return true;
}

static bool bool_field(struct json_object *body, const char *key, bool *out, char *why, size_t cap)
{
  struct json_object *v;
  *out = false;
  if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
    return true;
  if (!json_object_is_type(v, json_type_boolean)) {
    snprintf(why, cap, "%s: must be true or false", key);
    return false;
  }
  *out = json_object_get_boolean(v);
  return true;
}

static Google__Protobuf__StringValue *sv(struct sc_arena *a, const char *s)
{
  return s ? sc_pb_sv(a, sc_arena_strdup(a, s)) : NULL;
}

static enum MHD_Result answer(struct dash_req *r)
{
  struct sc_cmd *c = &r->cmd;
  if (c->err.code != SC_OK)
    return dash_sc_error(r->conn, &c->err);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "ok", json_object_new_boolean(1));
  json_object_object_add(o, "action", json_object_new_string(action_names[r->action]));
  json_object_object_add(o, "id", json_object_new_string(r->iid));
  if (r->action == A_RESTART)
    json_object_object_add(o, "instanceId", json_object_new_string(c->u.restart.iid));
  if (r->action == A_PURGE)
    json_object_object_add(o, "deleted", json_object_new_int(c->u.purge.deleted));
  return dash_json(r->conn, 200, o);
}

enum MHD_Result dash_action(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *r,
                            const char *path)
{
  if (r->posted)
    return atomic_load(&r->answered) ? answer(r) : MHD_YES;
  if (strncmp(path, "actions/", 8) != 0)
    return dash_error(conn, 404, "no such endpoint: POST /api/v1/%.128s (actions are POST /api/v1/actions/<action>)",
                      path);
  const char *name = path + 8;
  r->action = -1;
  for (int i = 0; i < N_ACTIONS; i++)
    if (strcmp(name, action_names[i]) == 0)
      r->action = i;
  if (r->action < 0)
    return dash_error(conn, 404, "no such action: %.64s (raise, suspend, resume, terminate, rewind, restart, purge)",
                      name);
  struct json_tokener *tok = json_tokener_new();
  struct json_object *body = r->len ? json_tokener_parse_ex(tok, r->body, (int)r->len) : NULL;
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  json_tokener_free(tok);
  if (!body || jerr != json_tokener_success || !json_object_is_type(body, json_type_object)) {
    json_object_put(body);
    return dash_error(conn, 400, "the body must be a JSON object with at least \"id\"%s%s",
                      jerr != json_tokener_success && r->len ? ": " : "",
                      jerr != json_tokener_success && r->len ? json_tokener_error_desc(jerr) : "");
  }
  char why[256] = "";
  enum MHD_Result ret = MHD_NO;
  struct sc_err err;
  json_object_object_foreach(body, key, val)
  {
    (void)val;
    if (!field_allowed(r->action, key)) {
      ret = dash_error(conn, 400, "%s: unknown field \"%.64s\" (it takes id%s%s)", action_names[r->action], key,
                       action_fields[r->action][0] ? " " : "", action_fields[r->action]);
      json_object_put(body);
      return ret;
    }
  }
  const char *iid, *text = NULL, *reason = NULL;
  bool flag = false;
  bool ok = str_field(body, "id", &iid, why, sizeof why);
  if (ok && !iid) {
    snprintf(why, sizeof why, "id: required (the instance id)");
    ok = false;
  }
  switch (r->action) {
  case A_RAISE:
    ok = ok && str_field(body, "name", &reason, why, sizeof why) && str_field(body, "input", &text, why, sizeof why);
    break;
  case A_TERMINATE:
    ok = ok && str_field(body, "output", &text, why, sizeof why) &&
         bool_field(body, "recursive", &flag, why, sizeof why);
    break;
  case A_RESTART:
    ok = ok && bool_field(body, "newInstanceId", &flag, why, sizeof why);
    break;
  case A_PURGE:
    ok = ok && bool_field(body, "recursive", &flag, why, sizeof why);
    break;
  default:
    ok = ok && str_field(body, "reason", &reason, why, sizeof why);
    break;
  }
  if (!ok) {
    json_object_put(body);
    return dash_error(conn, 400, "%s: %s", action_names[r->action], why);
  }
  /* Copied out of the JSON: the command outlives this call. */
  struct sc_arena *a = &r->arena;
  r->iid = sc_arena_strdup(a, iid);
  const struct sc_limits *l = &d->cfg.limits;
  ok = sc_check_id(l, "id", r->iid, &err);
  struct sc_cmd *c = &r->cmd;
  memset(c, 0, sizeof *c);
  switch (r->action) {
  case A_RAISE: {
    RaiseEventRequest *q = sc_arena_alloc(a, sizeof *q);
    raise_event_request__init(q);
    q->instanceid = (char *)r->iid;
    q->name = sc_arena_strdup(a, reason ? reason : "");
    q->input = sv(a, text);
    ok = ok && sc_check_name(l, "name", q->name, true, &err) && sc_check_payload(l, "input", text, &err);
    c->kind = SC_CMD_RAISE;
    c->u.raise.req = q;
    break;
  }
  case A_SUSPEND:
  case A_RESUME:
    ok = ok && sc_check_payload(l, "reason", reason, &err);
    c->kind = r->action == A_SUSPEND ? SC_CMD_SUSPEND : SC_CMD_RESUME;
    c->u.suspend.iid = r->iid;
    c->u.suspend.reason = reason && reason[0] ? sv(a, reason) : NULL;
    break;
  case A_TERMINATE: {
    TerminateRequest *q = sc_arena_alloc(a, sizeof *q);
    terminate_request__init(q);
    q->instanceid = (char *)r->iid;
    q->output = sv(a, text);
    q->recursive = flag;
    ok = ok && sc_check_payload(l, "output", text, &err);
    c->kind = SC_CMD_TERMINATE;
    c->u.terminate.req = q;
    break;
  }
  case A_REWIND: {
    RewindInstanceRequest *q = sc_arena_alloc(a, sizeof *q);
    rewind_instance_request__init(q);
    q->instanceid = (char *)r->iid;
    q->reason = sv(a, reason);
    ok = ok && sc_check_payload(l, "reason", reason, &err);
    c->kind = SC_CMD_REWIND;
    c->u.rewind.req = q;
    break;
  }
  case A_RESTART: {
    RestartInstanceRequest *q = sc_arena_alloc(a, sizeof *q);
    restart_instance_request__init(q);
    q->instanceid = (char *)r->iid;
    q->restartwithnewinstanceid = flag;
    c->kind = SC_CMD_RESTART;
    c->u.restart.req = q;
    break;
  }
  case A_PURGE: {
    PurgeInstancesRequest *q = sc_arena_alloc(a, sizeof *q);
    purge_instances_request__init(q);
    q->request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID;
    q->instanceid = (char *)r->iid;
    q->recursive = flag;
    c->kind = SC_CMD_PURGE;
    c->u.purge.req = q;
    break;
  }
  }
  json_object_put(body);
  if (!ok)
    return dash_sc_error(conn, &err);
  struct sc_engine *e = atomic_load(&d->engine);
  if (!e)
    return dash_error(conn, 503, "taskhubd is still recovering: actions are taken once it is ready");
  return dash_post(e, conn, r);
}
