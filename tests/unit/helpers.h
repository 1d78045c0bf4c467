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

/* An engine on a store in a fresh directory, and shorthands for its commands. */
struct fixture {
  char *dir;
  struct sc_store *st;
  struct sc_engine *e;
  struct sc_arena a;
};
void fx_setup(struct fixture *f, int max_batch, int64_t wait_cap_us);
void fx_teardown(struct fixture *f);
CreateInstanceRequest *fx_start_req(struct sc_arena *a, const char *iid, const char *input);
int fx_start(struct fixture *f, CreateInstanceRequest *r, char *iid_out);
/* The committed record, or NULL. */
StoredInstance *fx_get(struct fixture *f, const char *iid);
int fx_terminate(struct fixture *f, const char *iid, const char *output);

#endif
