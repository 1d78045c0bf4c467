#ifndef TH_UNIT_HELPERS_H
#define TH_UNIT_HELPERS_H

#include "engine/engine.h"
#include "store/store.h"

/* A fresh directory under $TMPDIR (or /tmp); th_rmdir removes it recursively. */
char *th_tempdir(void);
void th_rmdir(char *dir);

/* Opens a store in |dir|, aborting the test on failure. */
struct sc_store *th_open_store(const char *dir);

/* Posts |cmd| and blocks until its done callback ran; returns cmd->err.code. */
int th_engine_run(struct sc_engine *e, struct sc_cmd *cmd);

#endif
