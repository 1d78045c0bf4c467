#ifndef SC_SERVER_H
#define SC_SERVER_H

#include "common/status.h"
#include "config.h"
#include "engine/engine.h"
#include "store/store.h"

struct sc_server;

/* Binds cfg->listen, registers every method and starts the completion-queue thread. *port receives the
 * bound TCP port (0 for unix: addresses). */
int sc_server_start(const struct sc_config *cfg, struct sc_store *store,
                    struct sc_engine *engine, struct sc_server **out,
                    int *port, struct sc_err *err);

/* Stops accepting new calls; calls in flight go on. */
void sc_server_stop_accepting(struct sc_server *s);

/* Waits up to grace_ms for calls in flight to finish, cancels the rest, joins the thread and frees. */
void sc_server_destroy(struct sc_server *s, int grace_ms);

#endif
