#include "helpers.h"

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
