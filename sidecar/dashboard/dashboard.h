#ifndef SC_DASHBOARD_H
#define SC_DASHBOARD_H

/*
 * The web dashboard, served on the ops port (ops.c hands it every URL it serves, see sc_dashboard_serves):
 *   GET  /, /index.html, /assets/...      the page (HTML, CSS, JavaScript embedded at build time), with ETags
 *   GET  /api/v1/...                      JSON (json-c) read from the store: instances, one instance, its
 *                                         history and children, counts, an overview of the engine's figures
 *   GET  /api/v1/events                   server-sent events: the instances each engine batch changed
 *   GET  /api/v1/explain?id=              why an instance has not moved, asked of the engine
 *   POST /api/v1/actions/{action}         raise, suspend, resume, terminate, rewind, restart, purge, posted to
 *                                         the engine as the gRPC RPCs post them
 * docs/dashboard.md describes each endpoint, the token and the CSRF rules.
 */

#include "engine/engine.h"
#include "limits/limits.h"
#include "store/store.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sc_dashboard_mode { SC_DASHBOARD_OFF = 0, SC_DASHBOARD_READ_ONLY = 1, SC_DASHBOARD_ON = 2 };

struct sc_counts;

struct sc_dashboard_config {
  enum sc_dashboard_mode mode;
  struct sc_limits limits;   /* what an action's fields must pass, as the gRPC requests' do */
  int64_t purge_timeout_us;  /* a recursive purge's time budget */
  struct sc_counts *counts;  /* the ops server's counter (ops/counts.h, sc_ops_counts); NULL: no counts */
};

struct sc_dashboard;

struct sc_dashboard *sc_dashboard_new(const struct sc_dashboard_config *cfg);
/* Once they exist (after recovery); until then the API answers 503. Registers for the engine's changes. */
void sc_dashboard_attach(struct sc_dashboard *d, struct sc_engine *e, struct sc_store *st);
/* Whether |url| is the dashboard's (everything but the ops endpoints). */
bool sc_dashboard_serves(const char *url);
/* The libmicrohttpd access handler for the dashboard's URLs; *state is the dashboard's own from the first call
 * on, freed by sc_dashboard_request_done (MHD_OPTION_NOTIFY_COMPLETED). */
enum MHD_Result sc_dashboard_handle(struct sc_dashboard *d, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *upload, size_t *upload_size, void **state);
void sc_dashboard_request_done(void *state);
/* Before the HTTP server stops: event streams end and no connection stays suspended. */
void sc_dashboard_shutdown(struct sc_dashboard *d);
/* After the HTTP server stopped and the engine no longer runs. NULL is a no-op. */
void sc_dashboard_free(struct sc_dashboard *d);

#endif
