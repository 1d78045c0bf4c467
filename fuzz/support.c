/* What the fuzz targets share: see fz.h. */
#include "fz.h"

#include "common/arena.h"
#include "common/log.h"
#include "common/pbutil.h"
#include "config.h"
#include "store/txn.h"

#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ scratch directories */

static char *dirs[8];
static size_t ndirs;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

void fz_rmtree(const char *dir)
{
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_dirs(void)
{
  for (size_t i = 0; i < ndirs; i++)
    fz_rmtree(dirs[i]);
}

const char *fz_tempdir(const char *tag)
{
  const char *base = getenv("TMPDIR");
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/th-fuzz-%s-XXXXXX", base && *base ? base : "/tmp", tag);
  if (!mkdtemp(tmpl) || ndirs == sizeof dirs / sizeof dirs[0])
    fz_fail("cannot make a scratch directory %s", tmpl);
  if (ndirs == 0)
    atexit(rm_dirs);
  return dirs[ndirs++] = strdup(tmpl);
}

/* ------------------------------------------------------------------ inputs */

bool fz_next_chunk(const uint8_t **p, size_t *n, const uint8_t **chunk, size_t *len)
{
  if (*n < 2)
    return false;
  size_t want = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
  *p += 2;
  *n -= 2;
  *len = want < *n ? want : *n;
  *chunk = *p;
  *p += *len;
  *n -= *len;
  return true;
}

void fz_put_chunk(FILE *f, const uint8_t *b, size_t len)
{
  if (len > 0xffff)
    fz_fail("a chunk of %zu bytes does not fit the 2-byte length", len);
  fputc((int)(len & 0xff), f);
  fputc((int)(len >> 8), f);
  fwrite(b, 1, len, f);
}

void fz_fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz invariant broken: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* ------------------------------------------------------------------ the engine */

void fz_default_engine_config(struct sc_engine_config *ec)
{
  static struct sc_config cfg;
  char *argv[] = {(char *)"fuzz", NULL};
  if (sc_config_parse(&cfg, 1, argv, stdout, stderr) != 0)
    fz_fail("taskhubd's default configuration does not parse");
  sc_log_level = cfg.log_level; /* TASKHUBD_LOG_LEVEL=debug shows what the engine did with an input */
  /* As main.c builds it from the configuration. */
  *ec = (struct sc_engine_config){
      .wait_cap_us = cfg.wait_cap_s * 1000000,
      .max_batch = cfg.max_batch,
      .allow_wipe = false,
      .sync = false,
      .orphan_grace_us = cfg.orphan_grace_s * 1000000,
      .health_ping_us = cfg.health_ping_s * 1000000,
      .default_max_items = cfg.max_work_items,
      .max_message = cfg.max_send_message,
      .max_receive = cfg.max_message,
      .max_outbox = cfg.max_outbox,
      .max_inbox = cfg.max_inbox,
      .max_inbox_bytes = cfg.max_inbox_bytes,
      .orch_lease_us = cfg.orch_lease_s * 1000000,
      .act_lease_us = cfg.act_lease_s * 1000000,
      .limits = sc_config_limits(&cfg),
      .cache_budget = cfg.cache_size,
      .entity_v2 = false,
      .replica = "fuzz",
  };
}

/* The worker stream: the engine queues packed work items here (engine thread); the fuzz thread takes them. */
struct queued {
  WorkItem *wi;
  struct queued *next;
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct queued *head, **tail;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &q.head};

static void stream_send(void *ctx, uint8_t *buf, size_t len)
{
  (void)ctx;
  WorkItem *wi = work_item__unpack(NULL, len, buf);
  free(buf);
  if (!wi)
    fz_fail("the engine sent a work item that does not decode (%zu bytes)", len);
  if (wi->request_case == WORK_ITEM__REQUEST_HEALTH_PING) {
    work_item__free_unpacked(wi, NULL);
    return;
  }
  struct queued *e = malloc(sizeof *e);
  e->wi = wi;
  e->next = NULL;
  pthread_mutex_lock(&q.mu);
  *q.tail = e;
  q.tail = &e->next;
  pthread_cond_broadcast(&q.cv);
  pthread_mutex_unlock(&q.mu);
}

struct done_box {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
};

static void box_done(struct sc_cmd *cmd)
{
  struct done_box *b = cmd->user;
  pthread_mutex_lock(&b->mu);
  b->done = true;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

int fz_run(struct fz_engine *f, struct sc_cmd *cmd)
{
  struct done_box b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  cmd->done = box_done;
  cmd->user = &b;
  sc_engine_post(f->e, cmd);
  pthread_mutex_lock(&b.mu);
  while (!b.done)
    pthread_cond_wait(&b.cv, &b.mu);
  pthread_mutex_unlock(&b.mu);
  return cmd->err.code;
}

static struct fz_engine the_engine;

/* At exit (libFuzzer's time limit, or the end of the inputs), so that RocksDB's background work is finished before
 * LeakSanitizer looks (a compaction cut short at exit shows up as a leak) and the scratch directory goes. */
static void engine_down(void)
{
  sc_engine_stop(the_engine.e);
  sc_engine_free(the_engine.e);
  sc_store_close(the_engine.st);
}

struct fz_engine *fz_engine(void)
{
  static GetWorkItemsRequest gwr = GET_WORK_ITEMS_REQUEST__INIT;
  struct fz_engine *f = &the_engine;
  if (f->e)
    return f;
  fz_default_engine_config(&f->cfg);
  struct sc_err err = {0};
  if (sc_store_open_rocksdb(fz_tempdir("store"), &f->st, &err) != SC_OK)
    fz_fail("opening the store: %s", err.msg);
  if (sc_engine_start(f->st, &f->cfg, &f->e, &err) != SC_OK)
    fz_fail("starting the engine: %s", err.msg);
  struct sc_cmd c = {.kind = SC_CMD_STREAM_OPEN};
  c.u.stream_open.req = &gwr; /* every kind of work, the default limits */
  c.u.stream_open.send = stream_send;
  c.u.stream_open.ctx = f;
  if (fz_run(f, &c) != SC_OK)
    fz_fail("opening the worker stream: %s", c.err.msg);
  /* Registered after the store opened: runs before RocksDB's own exit handlers and fz_tempdir's. */
  atexit(engine_down);
  return f;
}

/* ------------------------------------------------------------------ work items */

static void finish_orchestration(struct fz_engine *f, const WorkItem *wi)
{
  CompleteOrchestrationAction done = COMPLETE_ORCHESTRATION_ACTION__INIT;
  done.orchestrationstatus = ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED;
  OrchestratorAction a = ORCHESTRATOR_ACTION__INIT;
  a.id = 1000000;
  a.orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
  a.completeorchestration = &done;
  OrchestratorAction *acts[] = {&a};
  OrchestratorResponse r = ORCHESTRATOR_RESPONSE__INIT;
  r.instanceid = wi->orchestratorrequest->instanceid;
  r.completiontoken = wi->completiontoken;
  r.n_actions = 1;
  r.actions = acts;
  struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ORCH};
  c.u.complete_orch.resp = &r;
  fz_run(f, &c);
}

static void finish_activity(struct fz_engine *f, const WorkItem *wi)
{
  Google__Protobuf__StringValue res = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  res.value = (char *)"null";
  ActivityResponse r = ACTIVITY_RESPONSE__INIT;
  const ActivityRequest *a = wi->activityrequest;
  r.instanceid = a->orchestrationinstance ? a->orchestrationinstance->instanceid : (char *)"";
  r.taskid = a->taskid;
  r.result = &res;
  r.completiontoken = wi->completiontoken;
  struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ACT};
  c.u.complete_act.resp = &r;
  fz_run(f, &c);
}

static void finish_entity(struct fz_engine *f, const WorkItem *wi)
{
  size_t n = wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST ? wi->entityrequest->n_operations
                                                                     : wi->entityrequestv2->n_operationrequests;
  OperationResultSuccess ok = OPERATION_RESULT_SUCCESS__INIT;
  OperationResult one = OPERATION_RESULT__INIT;
  one.result_type_case = OPERATION_RESULT__RESULT_TYPE_SUCCESS;
  one.success = &ok;
  OperationResult **res = calloc(n ? n : 1, sizeof *res);
  for (size_t i = 0; i < n; i++)
    res[i] = &one;
  EntityBatchResult r = ENTITY_BATCH_RESULT__INIT;
  r.n_results = n;
  r.results = res;
  r.completiontoken = wi->completiontoken;
  struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ENTITY};
  c.u.complete_entity.res = &r;
  fz_run(f, &c);
  free(res);
}

void fz_finish(struct fz_engine *f, WorkItem *wi)
{
  switch (wi->request_case) {
  case WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST: finish_orchestration(f, wi); break;
  case WORK_ITEM__REQUEST_ACTIVITY_REQUEST: finish_activity(f, wi); break;
  case WORK_ITEM__REQUEST_ENTITY_REQUEST:
  case WORK_ITEM__REQUEST_ENTITY_REQUEST_V2: finish_entity(f, wi); break;
  default: break;
  }
  work_item__free_unpacked(wi, NULL);
}

WorkItem *fz_next_item(struct fz_engine *f, fz_item_pred want, void *ctx, int timeout_ms)
{
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  for (;;) {
    pthread_mutex_lock(&q.mu);
    while (!q.head)
      if (pthread_cond_timedwait(&q.cv, &q.mu, &dl) != 0)
        break;
    struct queued *e = q.head;
    if (e) {
      q.head = e->next;
      if (!q.head)
        q.tail = &q.head;
    }
    pthread_mutex_unlock(&q.mu);
    if (!e)
      return NULL;
    WorkItem *wi = e->wi;
    free(e);
    if (want(wi, ctx))
      return wi;
    fz_finish(f, wi);
  }
}

/* ------------------------------------------------------------------ invariants */

void fz_snapshot(const ProtobufCMessage *m, struct fz_snapshot *s)
{
  s->len = protobuf_c_message_get_packed_size(m);
  s->b = malloc(s->len ? s->len : 1);
  protobuf_c_message_pack(m, s->b);
}

void fz_unchanged(const ProtobufCMessage *m, struct fz_snapshot *s, const char *what)
{
  struct fz_snapshot now;
  fz_snapshot(m, &now);
  if (now.len != s->len || memcmp(now.b, s->b, s->len) != 0)
    fz_fail("the engine changed the %s it was given (%zu bytes before, %zu after)", what, s->len, now.len);
  free(now.b);
  free(s->b);
}

void fz_check_instance(struct fz_engine *f, const char *iid)
{
  struct sc_arena a;
  sc_arena_init(&a);
  StoredInstance *rec = NULL;
  int rc = sc_store_get_instance(f->st, iid, &a, &rec);
  if (rc == SC_OK) {
    if (rec->status < ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING ||
        rec->status > ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED)
      fz_fail("instance %s was stored with status %d", iid, (int)rec->status);
    HistoryEvent **ev = NULL;
    size_t n = 0;
    if ((rc = sc_store_history(f->st, iid, &a, &ev, &n)) != SC_OK)
      fz_fail("the history of %s does not load: %d", iid, rc);
    if (n != rec->history_count)
      fz_fail("instance %s holds %zu history events but its record counts %u", iid, n, rec->history_count);
    struct sc_inbox_msg *in = NULL;
    if ((rc = sc_store_inbox(f->st, iid, &a, &in, &n)) != SC_OK)
      fz_fail("the inbox of %s does not load: %d", iid, rc);
  } else if (rc != SC_ENOTFOUND) {
    fz_fail("the record of %s does not load: %d", iid, rc);
  }
  sc_arena_free(&a);
}
