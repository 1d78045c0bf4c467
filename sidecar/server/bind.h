#ifndef SC_SERVER_BIND_H
#define SC_SERVER_BIND_H

#include "common/status.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <stdbool.h>

/* A TCP |listen| address that reaches beyond this machine (anything but loopback: 0.0.0.0, [::], a pod IP, a
 * host name resolving to any non-loopback address) served with neither TLS nor a token is refused unless
 * |allow_insecure|: anyone on the network could then start, stop and complete work. */
int sc_bind_check_exposure(const char *listen, bool secured, bool allow_insecure, struct sc_err *err);

/* grpc_server_add_http2_port, with a unix: socket created owner-only (0600: only taskhubd's user may connect).
 * Returns gRPC's bound port (0 on failure). */
int sc_bind_add_port(grpc_server *server, const char *listen, grpc_server_credentials *creds);

/* Before binding |listen|: refuses a unix: path a live server answers on (gRPC core would unlink it and take it
 * over, leaving that server unreachable) or that is not a socket. A stale socket file is left for gRPC to
 * replace. */
int sc_bind_precheck(const char *listen, struct sc_err *err);

/* After gRPC core failed to bind |listen|: tries the bind itself to name the cause ("Address already in use"). */
void sc_bind_explain(const char *listen, struct sc_err *err);

/* Routes gRPC core's own log lines into ours (one format on stderr). While |quiet|, its errors are logged at
 * debug: a failed bind is reported once, by us, rather than as gRPC's raw error dump. */
void sc_grpc_log_route(bool quiet);

#endif
