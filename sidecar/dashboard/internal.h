#ifndef SC_DASHBOARD_INTERNAL_H
#define SC_DASHBOARD_INTERNAL_H

/* What the dashboard's files share: the dashboard itself, one request's state, and the JSON replies. */

#include "common/arena.h"
#include "dashboard.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>

struct dash_events;
struct dash_counts;
struct sc_counts;

struct sc_dashboard {
  struct sc_dashboard_config cfg;
  _Atomic(struct sc_engine *) engine;
  _Atomic(struct sc_store *) store;
  struct dash_events *events;
  struct dash_counts *counts;
};

/* One HTTP request. Actions are answered from the engine thread's done callback: the connection is suspended
 * while the command is in the engine and resumed with its result. */
struct dash_req {
  struct sc_arena arena;
  char *body;
  size_t len, cap;
  bool too_big;
  struct MHD_Connection *conn;
  struct sc_cmd cmd;
  atomic_bool answered; /* the engine called done */
  bool posted;
  bool explain; /* the posted command is an SC_CMD_EXPLAIN (explain.c), not an action */
  int action;
  const char *iid;
};

/* Replies. Every JSON reply has Cache-Control: no-store; errors are {"error": message, "code": NAME}. */
/* reply.c */
/* The security headers of every reply (the page's files too). */
void dash_common_headers(struct MHD_Response *resp);
enum MHD_Result dash_json(struct MHD_Connection *conn, unsigned code, struct json_object *obj);
enum MHD_Result dash_error(struct MHD_Connection *conn, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An sc_status failure as its HTTP status (400, 404, 409, 413, 503, 500). */
enum MHD_Result dash_sc_error(struct MHD_Connection *conn, const struct sc_err *err);

/* The read endpoints (api.c): |path| is what follows /api/v1/. */
enum MHD_Result dash_api_get(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *r,
                             const char *path);
/* The instance id of an endpoint whose only parameter is ?id=; false with the 400 sent. */
bool dash_only_id(struct sc_dashboard *d, struct MHD_Connection *conn, const char *endpoint, const char **iid,
                  enum MHD_Result *ret);
/* Posts r->cmd to the engine with the connection suspended until its done callback resumes it (answered then). */
enum MHD_Result dash_post(struct sc_engine *e, struct MHD_Connection *conn, struct dash_req *r);
/* Why an instance has not moved (explain.c): GET explain?id= posts SC_CMD_EXPLAIN; the call after resume answers. */
enum MHD_Result dash_explain(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *r);
enum MHD_Result dash_explain_answer(struct dash_req *r);
/* The actions (actions.c): first call posts (or answers a bad request), the call after resume answers. */
enum MHD_Result dash_action(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *r,
                            const char *path);

/* Server-sent events (events.c). */
struct dash_events *dash_events_new(void);
void dash_events_observe(void *ctx, const struct sc_engine_change *v, size_t n);
enum MHD_Result dash_events_stream(struct dash_events *ev, struct MHD_Connection *conn);
void dash_events_shutdown(struct dash_events *ev);
void dash_events_free(struct dash_events *ev);

/* Instances by status, counted off the ops thread by |shared| (ops/counts.h, which outlives the dashboard):
 * the last count into out (false: none yet), and new counts by status and by name started when they are stale. */
struct dash_counts *dash_counts_new(struct sc_counts *shared);
bool dash_counts_get(struct dash_counts *c, struct sc_store *st, uint64_t out[8], int64_t *age_us);
/* Instances by orchestration name (the 100 most frequent, each by status), as of the last pass; NULL before the
 * first has ended. */
struct json_object *dash_counts_names_json(struct dash_counts *c);
void dash_counts_free(struct dash_counts *c);

/* JSON of stored things (pbjson.c). */
struct json_object *dash_json_time(int64_t us);
/* Any protobuf-c message as JSON: field names as in the .proto, enums by name, Timestamps as RFC 3339,
 * wrapper types (StringValue, ...) as their value. */
struct json_object *dash_json_message(const ProtobufCMessage *m);
const char *dash_status_name(int status);
/* "RUNNING" or "ORCHESTRATION_STATUS_RUNNING" (any case) → 0..7, or -1. */
int dash_status_parse(const char *s, size_t n);

#endif
