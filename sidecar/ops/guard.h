#ifndef SC_OPS_GUARD_H
#define SC_OPS_GUARD_H

/*
 * Who may change state through the ops port (POST /admin/drain, and any later route that acts rather than
 * reads). /healthz, /readyz and /metrics stay open: probes and scrapers carry no credentials.
 *
 * A state change is refused unless all of these hold:
 *   - with --auth-token-file: `Authorization: Bearer <token>` names one of the tokens (401 otherwise);
 *   - the header `X-Taskhubd-Admin` is present. A browser cannot add it to a cross-site request without a CORS
 *     preflight, which the ops port never grants, so no web page can make one;
 *   - no sign of a browser acting for another site: `Sec-Fetch-Site` absent, `same-origin` or `none`; `Origin`
 *     absent or `http://` + the request's Host;
 *   - not form-encoded: a Content-Type of application/x-www-form-urlencoded, multipart/form-data or text/plain
 *     (what an HTML form sends) is refused;
 *   - without a token file: the Host header is an IP address or `localhost`, so a page whose DNS name is
 *     re-pointed at 127.0.0.1 (DNS rebinding) cannot pass as same-origin.
 * The refusals are 403 with a one-line reason naming the rule.
 */

#include <microhttpd.h>

/* 0 when |conn|'s request may change state; otherwise the HTTP status (401 or 403) with the reason in |why|. */
unsigned sc_ops_guard(struct MHD_Connection *conn, char *why, size_t whycap);

#endif
