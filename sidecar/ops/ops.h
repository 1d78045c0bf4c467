#ifndef SC_OPS_H
#define SC_OPS_H

/*
 * The ops port: a small HTTP server (libmicrohttpd) for orchestration platforms and operators.
 *   GET  /healthz      200 while the process is alive
 *   GET  /readyz       200 once the store is open and recovery is done, 503 before and while draining
 *   GET  /metrics      Prometheus text format
 *   POST /admin/drain  drain, then exit (as SIGTERM does)
 * and, unless --dashboard off, the web dashboard (dashboard/dashboard.h) under / and /api/v1/.
 */

#include "common/status.h"
#include "engine/engine.h"
#include "store/store.h"

#include <stdbool.h>

struct sc_ops;

/* |listen| is "HOST:PORT" (port 0: any free port). *port receives the bound port. */
int sc_ops_start(const char *listen, struct sc_ops **out, int *port, struct sc_err *err);
/* Once they exist: the metrics then include engine and store figures. */
void sc_ops_attach(struct sc_ops *o, struct sc_engine *e, struct sc_store *st);
void sc_ops_set_ready(struct sc_ops *o, bool ready);
/* The counter /metrics renders from (counts.h), for the dashboard to share; the ops server owns it and stops it
 * after the dashboard. NULL without an ops server. */
struct sc_counts;
struct sc_counts *sc_ops_counts(struct sc_ops *o);
/* Serves |d| (sc_dashboard_new) from now on and frees it with the ops server. Call before requests matter. */
struct sc_dashboard;
void sc_ops_set_dashboard(struct sc_ops *o, struct sc_dashboard *d);
/* Renders the metrics page into a malloc'd string (for tests and the HTTP handler). */
char *sc_ops_render_metrics(struct sc_ops *o);
void sc_ops_stop(struct sc_ops *o);

#endif
