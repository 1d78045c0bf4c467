/*
 * The engine over a fault-injecting store (store/faulty/faulty.h): one workload, run again and again with one
 * fault each time, so that every rollback and recovery path the workload reaches is walked.
 *
 * The workload (client commands and a worker answering through a fake stream): start a, b, c; raise an event
 * for a; terminate b; suspend and resume c; purge b; a worker runs a and c to completion (a schedules one
 * activity, continues as new, schedules another; c waits on a durable timer of 50 ms, then runs a
 * sub-orchestration; each completes with "done");
 * start z, then y. Each run happens in a child process (a panic there is a
 * finding, not the end of the test binary) on a fresh RocksDB directory, and reports which calls were
 * acknowledged. The parent then opens the directory again, as a restart would, and checks the state:
 *  - everything acknowledged is there (an acknowledged start exists, an acknowledged terminate is terminal, an
 *    acknowledged completion is COMPLETED with its output), and with a failed write or read, what was refused
 *    is not (a refused start does not exist, a refused raise left no event);
 *  - nothing is half-applied: every instance's record agrees with its history (count, last event, output),
 *    no task, timer or child was scheduled, completed or fired twice, and a parent that recorded creating its
 *    child has that child;
 *  - with failed writes and reads the engine kept serving: the last call, after the fault, is acknowledged
 *    (a start after it is acknowledged), and a and c completed (their work items were handed out again);
 *  - an engine starts on the data (recovery reads it all).
 * Walks: the Nth write failing (ENOSPC and EIO alternately), the Nth read, the Nth iterator step, a crash at
 * the Nth store operation (nothing after it reaches the disk, the child dies there), and a crash just after the
 * Nth write reached the disk. Each walk takes at most WALK_SAMPLES values of N, evenly spread, unless
 * TH_FAULT_WALK_ALL=1 (every N: the long run, see docs/storage.md).
 */
#include "common/pbutil.h"
#include "common/util.h"
#include "helpers.h"
#include "store/faulty/faulty.h"
#include "test.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WALK_SAMPLES 8

/* ------------------------------------------------------------------ a fake worker stream */

struct fstream {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  WorkItem *items[512];
  size_t n, taken;
};

static void fs_send(void *ctx, uint8_t *buf, size_t len)
{
  struct fstream *s = ctx;
  WorkItem *wi = work_item__unpack(NULL, len, buf);
  free(buf);
  pthread_mutex_lock(&s->mu);
  if (!wi || wi->request_case == WORK_ITEM__REQUEST_HEALTH_PING || s->n == 512) {
    if (wi)
      work_item__free_unpacked(wi, NULL);
  } else {
    s->items[s->n++] = wi;
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* The next work item, or NULL after |ms| without one. */
static WorkItem *fs_next(struct fstream *s, int ms)
{
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_nsec += (long)(ms % 1000) * 1000000L;
  dl.tv_sec += ms / 1000 + dl.tv_nsec / 1000000000L;
  dl.tv_nsec %= 1000000000L;
  pthread_mutex_lock(&s->mu);
  while (s->taken == s->n)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0)
      break;
  WorkItem *wi = s->taken < s->n ? s->items[s->taken++] : NULL;
  pthread_mutex_unlock(&s->mu);
  return wi;
}

/* ------------------------------------------------------------------ the workload */

/* What the child reports: which calls were acknowledged. */
struct acks {
  bool start_a, start_b, start_c, start_z;
  bool raise_a, raise_a_refused;
  bool terminate_b, suspend_c, resume_c, purge_b, stream_open;
  bool done_a, done_c; /* the turn completing it was acknowledged */
  bool later_ok;       /* the start of y, the last call, was acknowledged */
  int refused;         /* calls answered with an error */
  int bad_codes;       /* errors other than the injected fault's (or what a refused call implies) */
  struct sc_faulty_counts counts;
};

struct run {
  struct sc_store *st;
  struct sc_engine *e;
  struct sc_arena a;
  struct fstream fs;
  struct acks *k;
  bool crash;
};

static bool ok(struct run *r, int rc)
{
  if (rc == SC_OK)
    return true;
  r->k->refused++;
  /* A failed commit is RESOURCE_EXHAUSTED or UNAVAILABLE; a failed read is the read's own error. What a
   * crashed store answers does not matter: the process is dead. */
  if (!r->crash && rc != SC_ENOSPACE && rc != SC_EUNAVAIL && rc != SC_EIO && rc != SC_ENOTFOUND)
    r->k->bad_codes++;
  return false;
}

static int start(struct run *r, const char *iid)
{
  CreateInstanceRequest *q = sc_arena_alloc(&r->a, sizeof *q);
  create_instance_request__init(q);
  q->instanceid = (char *)iid;
  q->name = (char *)"o";
  q->input = sc_pb_sv(&r->a, "\"in\"");
  struct sc_cmd c = {.kind = SC_CMD_START};
  c.u.start.req = q;
  return th_engine_run(r->e, &c);
}

static int raise_ev(struct run *r, const char *iid)
{
  RaiseEventRequest q = RAISE_EVENT_REQUEST__INIT;
  q.instanceid = (char *)iid;
  q.name = (char *)"ev";
  q.input = sc_pb_sv(&r->a, "1");
  struct sc_cmd c = {.kind = SC_CMD_RAISE};
  c.u.raise.req = &q;
  return th_engine_run(r->e, &c);
}

static int terminate(struct run *r, const char *iid)
{
  TerminateRequest q = TERMINATE_REQUEST__INIT;
  q.instanceid = (char *)iid;
  q.output = sc_pb_sv(&r->a, "\"stop\"");
  struct sc_cmd c = {.kind = SC_CMD_TERMINATE};
  c.u.terminate.req = &q;
  return th_engine_run(r->e, &c);
}

static int suspend(struct run *r, const char *iid, bool resume)
{
  struct sc_cmd c = {.kind = resume ? SC_CMD_RESUME : SC_CMD_SUSPEND};
  c.u.suspend.iid = iid;
  return th_engine_run(r->e, &c);
}

static int purge(struct run *r, const char *iid)
{
  PurgeInstancesRequest q = PURGE_INSTANCES_REQUEST__INIT;
  q.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID;
  q.instanceid = (char *)iid;
  struct sc_cmd c = {.kind = SC_CMD_PURGE};
  c.u.purge.req = &q;
  return th_engine_run(r->e, &c);
}

static OrchestratorAction *action(struct sc_arena *a, bool finish)
{
  OrchestratorAction *x = sc_arena_alloc(a, sizeof *x);
  orchestrator_action__init(x);
  if (finish) {
    CompleteOrchestrationAction *c = sc_arena_alloc(a, sizeof *c);
    complete_orchestration_action__init(c);
    c->orchestrationstatus = ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED;
    c->result = sc_pb_sv(a, "\"done\"");
    x->id = 2;
    x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
    x->completeorchestration = c;
  } else {
    ScheduleTaskAction *s = sc_arena_alloc(a, sizeof *s);
    schedule_task_action__init(s);
    s->name = (char *)"act";
    s->input = sc_pb_sv(a, "\"x\"");
    x->id = 1;
    x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK;
    x->scheduletask = s;
  }
  return x;
}

static OrchestratorAction *timer_action(struct sc_arena *a)
{
  OrchestratorAction *x = sc_arena_alloc(a, sizeof *x);
  orchestrator_action__init(x);
  CreateTimerAction *t = sc_arena_alloc(a, sizeof *t);
  create_timer_action__init(t);
  t->fireat = sc_pb_ts(a, sc_now_us() + 50000);
  x->id = 1;
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER;
  x->createtimer = t;
  return x;
}

static OrchestratorAction *child_action(struct sc_arena *a)
{
  OrchestratorAction *x = sc_arena_alloc(a, sizeof *x);
  orchestrator_action__init(x);
  CreateSubOrchestrationAction *c = sc_arena_alloc(a, sizeof *c);
  create_sub_orchestration_action__init(c);
  c->instanceid = (char *)"c-child";
  c->name = (char *)"child";
  c->input = sc_pb_sv(a, "\"ci\"");
  x->id = 2;
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION;
  x->createsuborchestration = c;
  return x;
}

static OrchestratorAction *continue_as_new(struct sc_arena *a)
{
  OrchestratorAction *x = action(a, true);
  x->completeorchestration->orchestrationstatus = ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW;
  x->completeorchestration->result = sc_pb_sv(a, "\"in2\"");
  return x;
}

/* Whether the work item is for an execution started with the original input (not continued as new). */
static bool first_execution(const OrchestratorRequest *o)
{
  HistoryEvent **lists[2] = {o->pastevents, o->newevents};
  size_t ns[2] = {o->n_pastevents, o->n_newevents};
  for (int l = 0; l < 2; l++)
    for (size_t i = 0; i < ns[l]; i++)
      if (lists[l][i]->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED)
        return !lists[l][i]->executionstarted->input || strcmp(lists[l][i]->executionstarted->input->value, "\"in2\"");
  return true;
}

static bool has_event(HistoryEvent **ev, size_t n, int type)
{
  for (size_t i = 0; i < n; i++)
    if ((int)ev[i]->event_type_case == type)
      return true;
  return false;
}

/* Answers one work item as the worker's code would: schedule the activity, then finish once it completed. */
static void answer(struct run *r, WorkItem *wi)
{
  if (wi->request_case == WORK_ITEM__REQUEST_ACTIVITY_REQUEST) {
    ActivityResponse q = ACTIVITY_RESPONSE__INIT;
    q.completiontoken = wi->completiontoken;
    q.instanceid = wi->activityrequest->orchestrationinstance->instanceid;
    q.taskid = wi->activityrequest->taskid;
    q.result = sc_pb_sv(&r->a, "\"r\"");
    struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ACT};
    c.u.complete_act.resp = &q;
    ok(r, th_engine_run(r->e, &c));
    return;
  }
  if (wi->request_case != WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST)
    return;
  OrchestratorRequest *o = wi->orchestratorrequest;
  OrchestratorResponse q = ORCHESTRATOR_RESPONSE__INIT;
  q.completiontoken = wi->completiontoken;
  q.instanceid = o->instanceid;
  OrchestratorAction *acts[2];
  size_t n = 0;
  bool finish = false;
#define SEEN(type) (has_event(o->pastevents, o->n_pastevents, type) || has_event(o->newevents, o->n_newevents, type))
#define PAST(type) has_event(o->pastevents, o->n_pastevents, type)
  if (strcmp(o->instanceid, "c") == 0) {
    /* A durable timer, then a sub-orchestration, then done. */
    if (!PAST(HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED))
      acts[n++] = timer_action(&r->a);
    else if (SEEN(HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED) && !PAST(HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED))
      acts[n++] = child_action(&r->a);
    else if (SEEN(HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED))
      finish = true;
  } else if (strcmp(o->instanceid, "c-child") == 0) {
    finish = true;
  } else {
    /* An activity, then (in its first execution) continue-as-new with input "in2", an activity again, done. */
    if (!PAST(HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED)) {
      acts[n++] = action(&r->a, false);
    } else if (SEEN(HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED)) {
      if (first_execution(o))
        acts[n++] = continue_as_new(&r->a);
      else
        finish = true;
    }
  }
#undef SEEN
#undef PAST
  if (finish) {
    acts[n] = action(&r->a, true);
    acts[n++]->id = 3;
  }
  q.actions = acts;
  q.n_actions = n;
  struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ORCH};
  c.u.complete_orch.resp = &q;
  bool acked = ok(r, th_engine_run(r->e, &c));
  if (acked && finish) {
    if (strcmp(o->instanceid, "a") == 0)
      r->k->done_a = true;
    if (strcmp(o->instanceid, "c") == 0)
      r->k->done_c = true;
  }
}

static bool exists(struct sc_store *st, struct sc_arena *a, const char *iid)
{
  StoredInstance *rec;
  return sc_store_get_instance(st, iid, a, &rec) == SC_OK;
}

static int status_of(struct sc_store *st, struct sc_arena *a, const char *iid)
{
  StoredInstance *rec;
  return sc_store_get_instance(st, iid, a, &rec) == SC_OK ? (int)rec->status : -1;
}

static void workload(struct run *r, struct sc_store *inner)
{
  struct acks *k = r->k;
  k->start_a = ok(r, start(r, "a"));
  k->start_b = ok(r, start(r, "b"));
  k->start_c = ok(r, start(r, "c"));
  int rc = raise_ev(r, "a");
  k->raise_a = ok(r, rc);
  k->raise_a_refused = rc != SC_OK;
  k->terminate_b = ok(r, terminate(r, "b"));
  k->suspend_c = ok(r, suspend(r, "c", false));
  k->resume_c = ok(r, suspend(r, "c", true));
  k->purge_b = ok(r, purge(r, "b"));

  GetWorkItemsRequest gwr = GET_WORK_ITEMS_REQUEST__INIT;
  struct sc_cmd so = {.kind = SC_CMD_STREAM_OPEN};
  so.u.stream_open.req = &gwr;
  so.u.stream_open.send = fs_send;
  so.u.stream_open.ctx = &r->fs;
  k->stream_open = ok(r, th_engine_run(r->e, &so));
  if (k->stream_open) {
    /* Until a and c are complete (as far as they can be), or nothing comes for a while. */
    for (int idle = 0; idle < 3 && !k->counts.crashed;) {
      WorkItem *wi = fs_next(&r->fs, 1500);
      if (!wi) {
        idle++;
        continue;
      }
      answer(r, wi);
      struct sc_arena a;
      sc_arena_init(&a);
      int sa = status_of(inner, &a, "a"), sc = status_of(inner, &a, "c");
      sc_arena_free(&a);
      bool a_done = sa < 0 || sc_status_is_terminal(sa);
      bool c_done = sc < 0 || sc_status_is_terminal(sc) || sc == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED;
      if (a_done && c_done)
        break;
    }
  }
  k->start_z = ok(r, start(r, "z"));
  /* It keeps serving: a call after the fault succeeds (tried twice, in case the fault was the first try). */
  k->later_ok = ok(r, start(r, "y")) || ok(r, start(r, "y"));
}

/* ------------------------------------------------------------------ one run, in a child */

static struct sc_engine *engine_on(struct sc_store *st)
{
  struct sc_engine_config cfg = {.wait_cap_us = 60000000, .max_batch = 64, .sync = true, .orphan_grace_us = 0,
                                 .health_ping_us = 3600000000LL, .cache_budget = SC_CACHE_DEFAULT_BUDGET,
                                 .failed_commit_hold_us = 20000};
  struct sc_engine *e = NULL;
  struct sc_err err = {0};
  if (sc_engine_start(st, &cfg, &e, &err) != SC_OK)
    TEST_FAIL("engine start failed: %s", err.msg);
  return e;
}

/* Runs the workload on |dir| with fault |f| in a child (a panic there is reported, not the end of the test
 * binary); what it acknowledged lands in |out| as it goes (shared memory), so a child that dies still tells.
 * False when the child died, unless it crashed on cue: a process whose store died may end any way it likes. */
static bool run_child(const char *dir, const struct sc_fault *f, struct acks *out)
{
  struct acks *k = mmap(NULL, sizeof *k, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT(k != MAP_FAILED);
  memset(k, 0, sizeof *k);
  fflush(stderr);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    struct sc_store *inner = th_open_store(dir);
    struct run r = {.st = sc_faulty_wrap(inner), .k = k, .crash = f && f->kind == SC_FAULT_CRASH};
    pthread_mutex_init(&r.fs.mu, NULL);
    pthread_cond_init(&r.fs.cv, NULL);
    sc_arena_init(&r.a);
    r.e = engine_on(r.st);
    sc_faulty_arm(r.st, f); /* after the start-up reads: those are the restart's, walked by the parent */
    sc_faulty_mirror(r.st, &k->counts);
    workload(&r, inner);
    sc_faulty_counts(r.st, &k->counts);
    if (!r.crash) {
      sc_engine_stop(r.e);
      sc_engine_free(r.e);
      sc_store_close(r.st);
    }
    _exit(0); /* a crashed child dies here without closing anything, as the process would have */
  }
  int status = 0;
  waitpid(pid, &status, 0);
  *out = *k;
  munmap(k, sizeof *k);
  bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!clean && out->counts.crashed)
    fprintf(stderr, "the child died after its store crashed (as a process would): fine\n");
  return clean || out->counts.crashed;
}

/* ------------------------------------------------------------------ the checks, after a restart */

static int count_type(HistoryEvent **h, size_t n, int type)
{
  int c = 0;
  for (size_t i = 0; i < n; i++)
    c += (int)h[i]->event_type_case == type;
  return c;
}

/* Whatever exists is whole: the record agrees with its history and payloads. */
static void check_whole(struct sc_store *st, struct sc_arena *a, const char *iid)
{
  StoredInstance *rec;
  if (sc_store_get_instance(st, iid, a, &rec) != SC_OK)
    return;
  HistoryEvent **h;
  size_t n;
  ASSERT_OK(sc_store_history(st, iid, a, &h, &n));
  ASSERT_EQ(rec->history_count, n);
  ASSERT_LE(count_type(h, n, HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED), 1);
  ASSERT_LE(count_type(h, n, HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED),
            count_type(h, n, HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED));
  ASSERT_LE(count_type(h, n, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED), 1);
  ASSERT_LE(count_type(h, n, HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED), 1);
  ASSERT_LE(count_type(h, n, HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED), 1);
  ASSERT_LE(count_type(h, n, HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED),
            count_type(h, n, HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED));
  /* A parent's record of creating its child and the child itself are written together. */
  if (count_type(h, n, HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED)) {
    StoredInstance *child;
    ASSERT_OK(sc_store_get_instance(st, "c-child", a, &child));
    ASSERT_STR_EQ(child->parent_instance_id, iid);
  }
  ASSERT_LE(count_type(h, n, HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED),
            count_type(h, n, HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED));
  char *data;
  size_t len;
  ASSERT_EQ(st->ops->get_payload(st, iid, SC_PAYLOAD_INPUT, a, &data, &len) == SC_OK, rec->has_input);
  ASSERT_EQ(st->ops->get_payload(st, iid, SC_PAYLOAD_OUTPUT, a, &data, &len) == SC_OK, rec->has_output);
  if (rec->status == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED) {
    ASSERT_GT(n, 0);
    ASSERT_EQ(h[n - 1]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED);
    ASSERT(rec->has_output);
    ASSERT_OK(st->ops->get_payload(st, iid, SC_PAYLOAD_OUTPUT, a, &data, &len));
    ASSERT_STR_EQ(data, "\"done\"");
  }
}

/* Whether |iid|'s history or inbox holds the raised event. */
static bool has_raised(struct sc_store *st, struct sc_arena *a, const char *iid)
{
  HistoryEvent **h;
  size_t n;
  if (sc_store_history(st, iid, a, &h, &n) == SC_OK && count_type(h, n, HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED))
    return true;
  struct sc_inbox_msg *m;
  if (sc_store_inbox(st, iid, a, &m, &n) != SC_OK)
    return false;
  for (size_t i = 0; i < n; i++)
    if (m[i].msg->event && m[i].msg->event->event_type_case == HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED)
      return true;
  return false;
}

/* Whether |iid| still runs its first execution (the input it was started with). */
static bool first_input(struct sc_store *st, struct sc_arena *a, const char *iid)
{
  char *in;
  size_t len;
  return st->ops->get_payload(st, iid, SC_PAYLOAD_INPUT, a, &in, &len) == SC_OK && strcmp(in, "\"in\"") == 0;
}

static void check_after_restart(const char *dir, const struct sc_fault *f, const struct acks *k)
{
  bool crash = f->kind == SC_FAULT_CRASH;
  struct sc_store *st = th_open_store(dir);
  struct sc_arena a;
  sc_arena_init(&a);
  const char *ids[] = {"a", "b", "c", "c-child", "z", "y"};
  for (size_t i = 0; i < 6; i++)
    check_whole(st, &a, ids[i]);
  /* Nothing acknowledged is lost. */
  if (k->start_a)
    ASSERT(exists(st, &a, "a"));
  if (k->start_c)
    ASSERT(exists(st, &a, "c"));
  if (k->start_z)
    ASSERT(exists(st, &a, "z"));
  if (k->later_ok)
    ASSERT(exists(st, &a, "y"));
  /* (After a crash one unacknowledged write may be durable: the purge, when the terminate before it was
   * acknowledged.) */
  if (k->start_b && !k->purge_b)
    ASSERT(exists(st, &a, "b") || (crash && k->terminate_b));
  if (k->purge_b && k->terminate_b) /* a purge leaves an instance that is not finished alone */
    ASSERT(!exists(st, &a, "b"));
  if (k->terminate_b && !k->purge_b)
    ASSERT(!exists(st, &a, "b") || status_of(st, &a, "b") == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED);
  if (k->raise_a && first_input(st, &a, "a")) /* continued as new, its history starts afresh */
    ASSERT(has_raised(st, &a, "a"));
  if (k->done_a) {
    ASSERT_EQ(status_of(st, &a, "a"), ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED);
    char *in;
    size_t len;
    ASSERT_OK(st->ops->get_payload(st, "a", SC_PAYLOAD_INPUT, &a, &in, &len));
    ASSERT_STR_EQ(in, "\"in2\""); /* it finished in the execution it continued as */
  }
  if (k->done_c) {
    ASSERT_EQ(status_of(st, &a, "c"), ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED);
    ASSERT_EQ(status_of(st, &a, "c-child"), ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED);
  }
  if (!crash) {
    /* Refused means not applied, and the engine kept serving. */
    ASSERT_EQ(k->bad_codes, 0);
    if (!k->start_a)
      ASSERT(!exists(st, &a, "a"));
    if (!k->start_c)
      ASSERT(!exists(st, &a, "c"));
    if (!k->start_b)
      ASSERT(!exists(st, &a, "b"));
    if (k->raise_a_refused && k->start_a && first_input(st, &a, "a"))
      ASSERT(!has_raised(st, &a, "a"));
    ASSERT(k->later_ok);
    if (k->start_a && k->stream_open)
      ASSERT_EQ(status_of(st, &a, "a"), ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED);
    if (k->start_c && k->resume_c && k->stream_open)
      ASSERT_EQ(status_of(st, &a, "c"), ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED);
  }
  sc_arena_free(&a);
  /* And the restart's recovery reads it all. */
  struct sc_engine *e = engine_on(st);
  sc_engine_stop(e);
  sc_engine_free(e);
  sc_store_close(st);
}

/* The checks run in a child too: the parent never opens RocksDB, whose background threads a forked child
 * would lack (its flushes would wait for them forever). */
static bool check_in_child(const char *dir, const struct sc_fault *f, const struct acks *k)
{
  fflush(stderr);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    check_after_restart(dir, f, k);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ------------------------------------------------------------------ the walks */

static const char *kind_name(enum sc_fault_kind k)
{
  return k == SC_FAULT_WRITE ? "write" : k == SC_FAULT_READ ? "read" : k == SC_FAULT_STEP ? "step" : "crash";
}

/* The counts of one fault-free run: how far each walk goes. */
static struct sc_faulty_counts baseline(void)
{
  char *dir = th_tempdir();
  struct acks k;
  struct sc_fault none = {.kind = SC_FAULT_NONE};
  ASSERT(run_child(dir, &none, &k));
  ASSERT_EQ(k.refused, 0);
  ASSERT(k.done_a && k.done_c && k.start_z && k.purge_b);
  ASSERT(check_in_child(dir, &none, &k));
  th_rmdir(dir);
  fprintf(stderr, "fault-free run: %llu writes, %llu reads, %llu iterator steps, %llu operations\n",
          (unsigned long long)k.counts.writes, (unsigned long long)k.counts.reads,
          (unsigned long long)k.counts.steps, (unsigned long long)k.counts.ops);
  return k.counts;
}

static void walk(enum sc_fault_kind kind, bool after_write, uint64_t total)
{
  const char *all = getenv("TH_FAULT_WALK_ALL");
  uint64_t stride = all && *all == '1' ? 1 : (total + WALK_SAMPLES - 1) / WALK_SAMPLES;
  if (stride == 0)
    stride = 1;
  int runs = 0, fired = 0;
  for (uint64_t n = 1; n <= total; n += stride) {
    struct sc_fault f = {.kind = kind, .n = n, .after_write = after_write,
                         .code = kind == SC_FAULT_WRITE && n % 2 ? SC_ENOSPACE : SC_EIO};
    char *dir = th_tempdir();
    struct acks k;
    fprintf(stderr, "walk: %s%s fault at %llu of %llu\n", kind_name(kind), after_write ? " (after the write)" : "",
            (unsigned long long)n, (unsigned long long)total);
    if (!run_child(dir, &f, &k))
      TEST_FAIL("the engine died with a %s fault at %llu (see above)", kind_name(kind), (unsigned long long)n);
    if (k.counts.fired) {
      fired++;
      if (kind == SC_FAULT_WRITE)
        ASSERT_GT(k.refused, 0); /* the failure was reported */
    }
    if (!check_in_child(dir, &f, &k)) {
      fprintf(stderr,
              "acknowledged: start a=%d b=%d c=%d z=%d, raise a=%d (refused %d), terminate b=%d, suspend c=%d, "
              "resume c=%d, purge b=%d, stream=%d, done a=%d c=%d, later=%d; refused %d; store: %llu writes, "
              "%llu reads, %llu steps, %llu operations\n",
              k.start_a, k.start_b, k.start_c, k.start_z, k.raise_a, k.raise_a_refused, k.terminate_b, k.suspend_c,
              k.resume_c, k.purge_b, k.stream_open, k.done_a, k.done_c, k.later_ok, k.refused,
              (unsigned long long)k.counts.writes, (unsigned long long)k.counts.reads,
              (unsigned long long)k.counts.steps, (unsigned long long)k.counts.ops);
      TEST_FAIL("after a %s fault at %llu the state is not what was acknowledged (see above)", kind_name(kind),
                (unsigned long long)n);
    }
    th_rmdir(dir);
    runs++;
  }
  fprintf(stderr, "%s%s walk: %d runs, the fault fired in %d\n", kind_name(kind),
          after_write ? " (after the write)" : "", runs, fired);
  ASSERT_GT(fired, 0);
}

TEST_IMPL(faults_failed_writes_roll_back_and_recover)
{
  struct sc_faulty_counts c = baseline();
  walk(SC_FAULT_WRITE, false, c.writes);
  return 0;
}

TEST_IMPL(faults_failed_reads_change_nothing)
{
  struct sc_faulty_counts c = baseline();
  walk(SC_FAULT_READ, false, c.reads);
  return 0;
}

TEST_IMPL(faults_failed_iterator_steps_change_nothing)
{
  struct sc_faulty_counts c = baseline();
  walk(SC_FAULT_STEP, false, c.steps);
  return 0;
}

TEST_IMPL(faults_crash_points_keep_what_was_acknowledged)
{
  struct sc_faulty_counts c = baseline();
  walk(SC_FAULT_CRASH, false, c.ops);
  return 0;
}

TEST_IMPL(faults_crash_after_a_durable_write_keeps_what_was_acknowledged)
{
  struct sc_faulty_counts c = baseline();
  walk(SC_FAULT_CRASH, true, c.writes);
  return 0;
}
