/*
 * GET /api/v1/explain?id=: why an instance has not moved ("it is PENDING and no connected worker accepts
 * orchestration 'chain' (0 workers connected)"), asked of the engine (SC_CMD_EXPLAIN), which alone knows the
 * connected workers. As with actions, the connection is suspended while the command is in the engine and resumed by
 * its done callback, so the ops thread never waits for the engine. A read: allowed with --dashboard read-only.
 */
#include "internal.h"

#include <string.h>

enum MHD_Result dash_explain(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *r)
{
  const char *iid;
  enum MHD_Result ret;
  if (!dash_only_id(d, conn, "explain", &iid, &ret))
    return ret;
  struct sc_engine *e = atomic_load(&d->engine);
  if (!e)
    return dash_error(conn, 503, "taskhubd is still recovering");
  r->iid = sc_arena_strdup(&r->arena, iid);
  struct sc_cmd *c = &r->cmd;
  c->kind = SC_CMD_EXPLAIN;
  c->u.explain.iid = r->iid;
  r->explain = true;
  return dash_post(e, conn, r);
}

enum MHD_Result dash_explain_answer(struct dash_req *r)
{
  if (!atomic_load(&r->answered))
    return MHD_YES;
  struct sc_cmd *c = &r->cmd;
  if (c->err.code != SC_OK)
    return dash_sc_error(r->conn, &c->err);
  if (!c->u.explain.exists)
    return dash_error(r->conn, 404, "instance not found: %s", r->iid);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(r->iid));
  json_object_object_add(o, "reason", json_object_new_string(c->u.explain.why));
  return dash_json(r->conn, 200, o);
}
