#include "helpers.h"

#include "common/pbutil.h"
#include "test.h"

#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

char *th_tempdir(void)
{
  const char *base = getenv("TMPDIR");
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/th-unit-XXXXXX", base && *base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  ASSERT(d != NULL);
  return strdup(d);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void th_rmdir(char *dir)
{
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(dir);
}

struct sc_store *th_open_store(const char *dir)
{
  struct sc_store *st = NULL;
  struct sc_err err = {0};
  int rc = sc_store_open_rocksdb(dir, &st, &err);
  if (rc != SC_OK)
    TEST_FAIL("store open failed: %s", err.msg);
  return st;
}

struct waitbox {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
};

static void box_done(struct sc_cmd *cmd)
{
  struct waitbox *b = cmd->user;
  pthread_mutex_lock(&b->mu);
  b->done = true;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

int th_engine_run(struct sc_engine *e, struct sc_cmd *cmd)
{
  struct waitbox b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  cmd->done = box_done;
  cmd->user = &b;
  sc_engine_post(e, cmd);
  pthread_mutex_lock(&b.mu);
  while (!b.done)
    pthread_cond_wait(&b.cv, &b.mu);
  pthread_mutex_unlock(&b.mu);
  return cmd->err.code;
}

/* ---- an engine on a fresh store ---- */

void fx_setup(struct fixture *f, int max_batch, int64_t wait_cap_us)
{
  f->dir = th_tempdir();
  f->st = th_open_store(f->dir);
  struct sc_engine_config cfg = {.wait_cap_us = wait_cap_us, .max_batch = max_batch, .sync = true, .cache_budget = SC_CACHE_DEFAULT_BUDGET};
  struct sc_err err;
  ASSERT_OK(sc_engine_start(f->st, &cfg, &f->e, &err));
  sc_arena_init(&f->a);
}

void fx_teardown(struct fixture *f)
{
  sc_engine_stop(f->e);
  sc_engine_free(f->e);
  sc_store_close(f->st);
  sc_arena_free(&f->a);
  th_rmdir(f->dir);
}

CreateInstanceRequest *fx_start_req(struct sc_arena *a, const char *iid, const char *input)
{
  CreateInstanceRequest *r = sc_arena_alloc(a, sizeof *r);
  create_instance_request__init(r);
  r->instanceid = (char *)iid;
  r->name = (char *)"orch";
  r->input = sc_pb_sv(a, input);
  return r;
}

int fx_start(struct fixture *f, CreateInstanceRequest *r, char *iid_out)
{
  struct sc_cmd c = {.kind = SC_CMD_START};
  c.u.start.req = r;
  int rc = th_engine_run(f->e, &c);
  if (iid_out)
    strcpy(iid_out, c.u.start.iid);
  return rc;
}

StoredInstance *fx_get(struct fixture *f, const char *iid)
{
  StoredInstance *r = NULL;
  int rc = sc_store_get_instance(f->st, iid, &f->a, &r);
  return rc == SC_OK ? r : NULL;
}

int fx_terminate(struct fixture *f, const char *iid, const char *output)
{
  TerminateRequest t = TERMINATE_REQUEST__INIT;
  t.instanceid = (char *)iid;
  t.output = sc_pb_sv(&f->a, output);
  struct sc_cmd c = {.kind = SC_CMD_TERMINATE};
  c.u.terminate.req = &t;
  return th_engine_run(f->e, &c);
}

