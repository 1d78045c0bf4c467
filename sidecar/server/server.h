#ifndef SC_SERVER_H
#define SC_SERVER_H

#include "common/status.h"
#include "config.h"
#include "engine/engine.h"
#include "store/store.h"

struct sc_server;

/* Binds cfg->listen and registers every method, before the store is opened: a port in use fails the start at
 * once rather than after a long recovery. Connections wait in the listen backlog until sc_server_start.
 * *port receives the bound TCP port (0 for unix: addresses). */
int sc_server_bind(const struct sc_config *cfg, struct sc_server **out, int *port, struct sc_err *err);

/* Starts serving calls with |store| and |engine| (the completion-queue and reader threads). */
void sc_server_start(struct sc_server *s, struct sc_store *store, struct sc_engine *engine);

/* Stops accepting new calls; calls in flight go on. */
void sc_server_stop_accepting(struct sc_server *s);

/* Waits up to grace_ms (a server never started: closes its port) for calls in flight to finish, cancels the rest, joins the thread and frees. */
void sc_server_destroy(struct sc_server *s, int grace_ms);

#endif
