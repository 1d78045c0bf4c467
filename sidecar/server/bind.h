#ifndef SC_SERVER_BIND_H
#define SC_SERVER_BIND_H

#include "common/status.h"

#include <stdbool.h>

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
