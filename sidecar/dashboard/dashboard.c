/*
 * The dashboard's front door: which URLs are its own, the page's embedded files, the token and the CSRF rules,
 * and request bodies. What each endpoint does is in api.c (reads), actions.c (engine commands) and events.c (the
 * live stream); the replies they all send are in reply.c.
 */
#include "internal.h"

#include "assets.h"
#include "common/log.h"
#include "common/tokens.h"
#include "ops/guard.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A request body larger than this is refused with 413 before it is all read; an event's input is the largest
 * thing an action carries, and --max-payload bounds that. */
#define BODY_SLACK (64u << 10)

struct sc_dashboard *sc_dashboard_new(const struct sc_dashboard_config *cfg)
{
  struct sc_dashboard *d = calloc(1, sizeof *d);
  if (!d)
    sc_panic("out of memory starting the dashboard");
  d->cfg = *cfg;
  d->events = dash_events_new();
  d->counts = dash_counts_new(cfg->counts);
  return d;
}

void sc_dashboard_attach(struct sc_dashboard *d, struct sc_engine *e, struct sc_store *st)
{
  atomic_store(&d->store, st);
  atomic_store(&d->engine, e);
  if (e)
    sc_engine_observe(e, dash_events_observe, d->events);
}

void sc_dashboard_shutdown(struct sc_dashboard *d)
{
  if (!d)
    return;
  dash_events_shutdown(d->events);
}

void sc_dashboard_free(struct sc_dashboard *d)
{
  if (!d)
    return;
  dash_events_free(d->events);
  dash_counts_free(d->counts);
  free(d);
}

bool sc_dashboard_serves(const char *url)
{
  return strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0 || strncmp(url, "/assets/", 8) == 0 ||
         strncmp(url, "/api/", 5) == 0;
}

void sc_dashboard_request_done(void *state)
{
  struct dash_req *r = state;
  if (!r)
    return;
  sc_arena_free(&r->arena);
  free(r->body);
  free(r);
}

/* ------------------------------------------------------------------ the page */

static enum MHD_Result serve_asset(struct MHD_Connection *conn, const char *url)
{
  const struct dash_asset *a = NULL;
  const char *want = strcmp(url, "/") == 0 ? "/index.html" : url;
  for (size_t i = 0; i < dash_n_assets; i++)
    if (strcmp(dash_assets[i].path, want) == 0)
      a = &dash_assets[i];
  if (!a)
    return dash_error(conn, 404, "no such file: %s", url);
  /* The page revalidates every file by its ETag (a hash of its content): a new build is picked up at once, an
   * unchanged file costs a 304. */
  const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
  bool fresh = inm && strstr(inm, a->etag) != NULL;
  struct MHD_Response *resp = fresh ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
                                    : MHD_create_response_from_buffer(a->len, (void *)a->data,
                                                                      MHD_RESPMEM_PERSISTENT);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", a->type);
  MHD_add_response_header(resp, "ETag", a->etag);
  MHD_add_response_header(resp, "Cache-Control", "no-cache");
  dash_common_headers(resp);
  if (strcmp(a->path, "/index.html") == 0)
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  enum MHD_Result ret = MHD_queue_response(conn, fresh ? 304 : 200, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ------------------------------------------------------------------ checks */

static bool authorized(struct MHD_Connection *conn)
{
  if (!sc_tokens_enabled())
    return true;
  return sc_tokens_check_bearer(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
}

/* Without a token file, data goes only to requests that name the host by address (or localhost): a page whose DNS
 * name was re-pointed at this port (DNS rebinding) is same-origin with itself and could otherwise read the API. */
static bool host_allowed(struct MHD_Connection *conn)
{
  if (sc_tokens_enabled())
    return true;
  const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
  return !host || sc_ops_host_is_literal(host);
}

/* ------------------------------------------------------------------ the handler */

enum MHD_Result sc_dashboard_handle(struct sc_dashboard *d, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *upload, size_t *upload_size, void **state)
{
  struct dash_req *r = *state;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r)
      return MHD_NO;
    sc_arena_init(&r->arena);
    r->conn = conn;
    *state = r;
    return MHD_YES;
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    size_t max = d->cfg.limits.max_payload + BODY_SLACK;
    if (r->too_big || r->len + n > max) {
      r->too_big = true;
      return MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
      size_t cap = r->cap ? r->cap : 4096;
      while (cap < r->len + n + 1)
        cap *= 2;
      char *b = realloc(r->body, cap);
      if (!b)
        return MHD_NO;
      r->body = b;
      r->cap = cap;
    }
    memcpy(r->body + r->len, upload, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
  }
  if (r->posted) /* resumed: the engine answered */
    return r->explain ? dash_explain_answer(r) : dash_action(d, conn, r, NULL);

  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (strncmp(url, "/api/", 5) != 0) {
    if (!get)
      return dash_error(conn, 405, "%s %s: the page's files are read with GET", method, url);
    return serve_asset(conn, url);
  }
  if (strncmp(url, "/api/v1/", 8) != 0)
    return dash_error(conn, 404, "no such endpoint: %s (the API is under /api/v1/)", url);
  const char *path = url + 8;
  if (!authorized(conn))
    return dash_error(conn, 401, "a valid bearer token is required (Authorization: Bearer <token>, one of "
                                 "--auth-token-file's tokens)");
  if (!host_allowed(conn))
    return dash_error(conn, 403, "without --auth-token-file the API answers only requests that name the host by IP "
                                 "address or localhost");
  if (get) {
    if (strcmp(path, "events") == 0)
      return dash_events_stream(d->events, conn);
    if (strcmp(path, "explain") == 0)
      return dash_explain(d, conn, r);
    return dash_api_get(d, conn, r, path);
  }
  if (strcmp(method, "POST") != 0)
    return dash_error(conn, 405, "%s %s: the API takes GET, and POST for actions", method, url);
  if (d->cfg.mode != SC_DASHBOARD_ON)
    return dash_error(conn, 403, "the dashboard is read-only (--dashboard read-only): actions are disabled");
  /* The ops port's rules for state changes (ops/guard.h): the X-Taskhubd-Admin header, same-origin, not a form,
   * the token; and a JSON body. */
  char why[256];
  unsigned refused = sc_ops_guard(conn, why, sizeof why);
  if (refused)
    return dash_error(conn, refused, "%s", why);
  const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!ct || strncasecmp(ct, "application/json", 16) != 0)
    return dash_error(conn, 403, "actions take Content-Type: application/json");
  if (r->too_big)
    return dash_error(conn, 413, "the request body is larger than --max-payload allows");
  return dash_action(d, conn, r, path);
}
