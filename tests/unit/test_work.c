/* The work-item engine without gRPC: a fake stream collects what the engine sends. */
#include "common/pbutil.h"
#include "common/util.h"
#include "engine/internal.h"
#include "helpers.h"
#include "test.h"

#include <pthread.h>
#include <time.h>

struct fake_stream {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  WorkItem *items[256];
  size_t n, taken;
};

static void fake_send(void *ctx, uint8_t *buf, size_t len)
{
  struct fake_stream *s = ctx;
  WorkItem *wi = work_item__unpack(NULL, len, buf);
  free(buf);
  ASSERT(wi != NULL);
  pthread_mutex_lock(&s->mu);
  if (wi->request_case == WORK_ITEM__REQUEST_HEALTH_PING || s->n == 256)
    work_item__free_unpacked(wi, NULL);
  else
    s->items[s->n++] = wi;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* The next work item, waiting up to 10 s for it. */
static WorkItem *next_item(struct fake_stream *s)
{
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&s->mu);
  while (s->taken == s->n)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0)
      break;
  WorkItem *wi = s->taken < s->n ? s->items[s->taken++] : NULL;
  pthread_mutex_unlock(&s->mu);
  if (!wi)
    TEST_FAIL("no work item within 10 s");
  return wi;
}

static void fake_free(struct fake_stream *s)
{
  for (size_t i = 0; i < s->n; i++)
    work_item__free_unpacked(s->items[i], NULL);
}

struct fx {
  char *dir;
  struct sc_store *st;
  struct sc_engine *e;
  struct sc_arena a;
  struct fake_stream fs;
  GetWorkItemsRequest gwr;
};

static void engine_up(struct fx *f)
{
  f->st = th_open_store(f->dir);
  struct sc_engine_config cfg = {.wait_cap_us = 60000000, .max_batch = 64, .sync = true,
                                 .orphan_grace_us = 0, .health_ping_us = 3600000000LL, .cache_budget = SC_CACHE_DEFAULT_BUDGET};
  struct sc_err err;
  ASSERT_OK(sc_engine_start(f->st, &cfg, &f->e, &err));
}

static void engine_down(struct fx *f)
{
  sc_engine_stop(f->e);
  sc_engine_free(f->e);
  sc_store_close(f->st);
}

static void open_stream(struct fx *f)
{
  get_work_items_request__init(&f->gwr);
  struct sc_cmd c = {.kind = SC_CMD_STREAM_OPEN};
  c.u.stream_open.req = &f->gwr;
  c.u.stream_open.send = fake_send;
  c.u.stream_open.ctx = &f->fs;
  ASSERT_OK(th_engine_run(f->e, &c));
}

static void close_stream(struct fx *f)
{
  struct sc_cmd c = {.kind = SC_CMD_STREAM_CLOSE};
  c.u.stream_close.ctx = &f->fs;
  ASSERT_OK(th_engine_run(f->e, &c));
}

static void setup(struct fx *f)
{
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->fs.mu, NULL);
  pthread_cond_init(&f->fs.cv, NULL);
  f->dir = th_tempdir();
  sc_arena_init(&f->a);
  engine_up(f);
}

static void teardown(struct fx *f)
{
  engine_down(f);
  fake_free(&f->fs);
  sc_arena_free(&f->a);
  th_rmdir(f->dir);
}

static void start(struct fx *f, const char *iid, const char *name)
{
  CreateInstanceRequest *r = sc_arena_alloc(&f->a, sizeof *r);
  create_instance_request__init(r);
  r->instanceid = (char *)iid;
  r->name = (char *)name;
  r->input = sc_pb_sv(&f->a, "\"in\"");
  struct sc_cmd c = {.kind = SC_CMD_START};
  c.u.start.req = r;
  ASSERT_OK(th_engine_run(f->e, &c));
}

static OrchestratorAction *act(struct sc_arena *a, int32_t id)
{
  OrchestratorAction *x = sc_arena_alloc(a, sizeof *x);
  orchestrator_action__init(x);
  x->id = id;
  return x;
}

static OrchestratorAction *schedule(struct sc_arena *a, int32_t id, const char *name)
{
  OrchestratorAction *x = act(a, id);
  ScheduleTaskAction *s = sc_arena_alloc(a, sizeof *s);
  schedule_task_action__init(s);
  s->name = (char *)name;
  s->input = sc_pb_sv(a, "\"x\"");
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK;
  x->scheduletask = s;
  return x;
}

static OrchestratorAction *finish(struct sc_arena *a, int32_t id, int status, const char *result)
{
  OrchestratorAction *x = act(a, id);
  CompleteOrchestrationAction *c = sc_arena_alloc(a, sizeof *c);
  complete_orchestration_action__init(c);
  c->orchestrationstatus = status;
  c->result = sc_pb_sv(a, result);
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
  x->completeorchestration = c;
  return x;
}

static int complete_orch(struct fx *f, const char *token, OrchestratorAction **acts, size_t n,
                         const char *custom)
{
  OrchestratorResponse r = ORCHESTRATOR_RESPONSE__INIT;
  r.completiontoken = (char *)token;
  r.actions = acts;
  r.n_actions = n;
  r.customstatus = sc_pb_sv(&f->a, custom);
  struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ORCH};
  c.u.complete_orch.resp = &r;
  return th_engine_run(f->e, &c);
}

static int complete_act(struct fx *f, const char *token, const char *result)
{
  ActivityResponse r = ACTIVITY_RESPONSE__INIT;
  r.completiontoken = (char *)token;
  r.result = sc_pb_sv(&f->a, result);
  struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ACT};
  c.u.complete_act.resp = &r;
  return th_engine_run(f->e, &c);
}

static StoredInstance *get(struct fx *f, const char *iid)
{
  StoredInstance *r;
  ASSERT_OK(sc_store_get_instance(f->st, iid, &f->a, &r));
  return r;
}

TEST_IMPL(work_chain_runs_end_to_end)
{
  struct fx f;
  setup(&f);
  start(&f, "c1", "chain");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  ASSERT_EQ(w->request_case, WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST);
  OrchestratorRequest *or = w->orchestratorrequest;
  ASSERT_STR_EQ(or->instanceid, "c1");
  ASSERT_EQ(or->n_pastevents, 0);
  ASSERT_EQ(or->n_newevents, 2);
  ASSERT_EQ(or->newevents[0]->event_type_case, HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED);
  ASSERT_EQ(or->newevents[1]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED);
  ASSERT(w->completiontoken[0]);
  OrchestratorAction *a1[] = {schedule(&f.a, 1, "hello")};
  ASSERT_OK(complete_orch(&f, w->completiontoken, a1, 1, "step 1"));
  ASSERT_EQ(get(&f, "c1")->status, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING);

  /* Completing the same token again is an idempotent OK; a made-up one is NOT_FOUND. */
  ASSERT_OK(complete_orch(&f, w->completiontoken, a1, 1, NULL));
  ASSERT_EQ(complete_orch(&f, "nope", a1, 1, NULL), SC_ENOTFOUND);

  WorkItem *act1 = next_item(&f.fs);
  ASSERT_EQ(act1->request_case, WORK_ITEM__REQUEST_ACTIVITY_REQUEST);
  ASSERT_STR_EQ(act1->activityrequest->name, "hello");
  ASSERT_EQ(act1->activityrequest->taskid, 1);
  ASSERT_STR_EQ(act1->activityrequest->orchestrationinstance->instanceid, "c1");
  ASSERT_OK(complete_act(&f, act1->completiontoken, "\"hi\""));

  WorkItem *w2 = next_item(&f.fs);
  or = w2->orchestratorrequest;
  ASSERT_EQ(or->n_pastevents, 3); /* OrchestratorStarted, ExecutionStarted, TaskScheduled */
  ASSERT_EQ(or->n_newevents, 2);
  ASSERT_EQ(or->newevents[1]->event_type_case, HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED);
  ASSERT_EQ(or->newevents[1]->taskcompleted->taskscheduledid, 1);
  ASSERT_STR_EQ(or->newevents[1]->taskcompleted->result->value, "\"hi\"");
  OrchestratorAction *a2[] = {finish(&f.a, 2, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED, "\"done\"")};
  ASSERT_OK(complete_orch(&f, w2->completiontoken, a2, 1, NULL));

  StoredInstance *r = get(&f, "c1");
  ASSERT_EQ(r->status, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED);
  ASSERT_GT(r->completed_us, 0);
  ASSERT(!r->has_custom_status); /* absent in the last turn: cleared */
  char *out;
  size_t n;
  ASSERT_OK(f.st->ops->get_payload(f.st, "c1", SC_PAYLOAD_OUTPUT, &f.a, &out, &n));
  ASSERT_STR_EQ(out, "\"done\"");
  HistoryEvent **h;
  ASSERT_OK(sc_store_history(f.st, "c1", &f.a, &h, &n));
  const int want[] = {HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED,
                      HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED, HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED,
                      HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED, HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED};
  ASSERT_EQ(n, 6);
  for (size_t i = 0; i < n; i++)
    ASSERT_EQ(h[i]->event_type_case, want[i]);
  ASSERT_EQ(h[2]->eventid, 1); /* confirmation events carry the action id */
  teardown(&f);
  return 0;
}

TEST_IMPL(work_closed_stream_items_are_redelivered)
{
  struct fx f;
  setup(&f);
  start(&f, "r1", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  close_stream(&f); /* orphan grace 0: back in the queue at once */
  open_stream(&f);
  WorkItem *again = next_item(&f.fs);
  ASSERT_STR_EQ(again->orchestratorrequest->instanceid, "r1");
  ASSERT(strcmp(again->completiontoken, w->completiontoken) != 0);
  /* The first token is dead now. */
  OrchestratorAction *a[] = {finish(&f.a, 1, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED, "1")};
  ASSERT_EQ(complete_orch(&f, w->completiontoken, a, 1, NULL), SC_ENOTFOUND);
  ASSERT_OK(complete_orch(&f, again->completiontoken, a, 1, NULL));
  ASSERT_EQ(get(&f, "r1")->status, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED);
  teardown(&f);
  return 0;
}

TEST_IMPL(work_abandon_redelivers)
{
  struct fx f;
  setup(&f);
  start(&f, "ab", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  struct sc_cmd c = {.kind = SC_CMD_ABANDON};
  c.u.abandon.token = w->completiontoken;
  c.u.abandon.kind = SC_ABANDON_ORCH;
  ASSERT_OK(th_engine_run(f.e, &c));
  WorkItem *again = next_item(&f.fs); /* the first retry is immediate */
  ASSERT_STR_EQ(again->orchestratorrequest->instanceid, "ab");
  ASSERT_EQ(again->orchestratorrequest->n_newevents, 2);
  teardown(&f);
  return 0;
}

TEST_IMPL(work_timer_fires_with_requested_fire_at)
{
  struct fx f;
  setup(&f);
  start(&f, "t1", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  int64_t fire = sc_now_us() + 100000;
  OrchestratorAction *x = act(&f.a, 1);
  CreateTimerAction *ct = sc_arena_alloc(&f.a, sizeof *ct);
  create_timer_action__init(ct);
  ct->fireat = sc_pb_ts(&f.a, fire);
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER;
  x->createtimer = ct;
  ASSERT_OK(complete_orch(&f, w->completiontoken, &x, 1, NULL));
  WorkItem *w2 = next_item(&f.fs);
  ASSERT_GE(sc_now_us(), fire); /* never early */
  HistoryEvent *ev = w2->orchestratorrequest->newevents[1];
  ASSERT_EQ(ev->event_type_case, HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED);
  ASSERT_EQ(ev->timerfired->timerid, 1);
  ASSERT_EQ(sc_pb_ts_us(ev->timerfired->fireat), fire);
  teardown(&f);
  return 0;
}

TEST_IMPL(work_recovery_dispatches_after_restart)
{
  struct fx f;
  setup(&f);
  start(&f, "rec", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  OrchestratorAction *a1[] = {schedule(&f.a, 1, "act")};
  ASSERT_OK(complete_orch(&f, w->completiontoken, a1, 1, NULL));
  (void)next_item(&f.fs); /* the activity: dispatched, never completed */
  engine_down(&f);
  engine_up(&f);
  open_stream(&f);
  WorkItem *act1 = next_item(&f.fs);
  ASSERT_EQ(act1->request_case, WORK_ITEM__REQUEST_ACTIVITY_REQUEST);
  ASSERT_STR_EQ(act1->activityrequest->name, "act");
  ASSERT_OK(complete_act(&f, act1->completiontoken, "1"));
  WorkItem *w2 = next_item(&f.fs);
  ASSERT_EQ(w2->orchestratorrequest->newevents[1]->event_type_case, HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED);
  teardown(&f);
  return 0;
}

TEST_IMPL(work_continue_as_new_starts_a_new_execution)
{
  struct fx f;
  setup(&f);
  start(&f, "can", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  char *exec1 = sc_arena_strdup(&f.a, w->orchestratorrequest->executionid->value);
  OrchestratorAction *x = finish(&f.a, 1, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW, "2");
  HistoryEvent *carry = sc_pb_event(&f.a, -1, sc_now_us());
  EventRaisedEvent er = EVENT_RAISED_EVENT__INIT;
  er.name = (char *)"kept";
  carry->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED;
  carry->eventraised = &er;
  x->completeorchestration->n_carryoverevents = 1;
  x->completeorchestration->carryoverevents = &carry;
  ASSERT_OK(complete_orch(&f, w->completiontoken, &x, 1, NULL));
  WorkItem *w2 = next_item(&f.fs);
  OrchestratorRequest *or = w2->orchestratorrequest;
  ASSERT_EQ(or->n_pastevents, 0);
  ASSERT_EQ(or->n_newevents, 3);
  ASSERT_EQ(or->newevents[1]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED);
  ASSERT_STR_EQ(or->newevents[1]->executionstarted->input->value, "2");
  ASSERT_EQ(or->newevents[2]->event_type_case, HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED);
  ASSERT(strcmp(or->executionid->value, exec1) != 0);
  ASSERT_EQ(get(&f, "can")->status, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING);
  teardown(&f);
  return 0;
}

TEST_IMPL(work_sub_orchestration_notifies_parent)
{
  struct fx f;
  setup(&f);
  start(&f, "par", "parent");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  OrchestratorAction *x = act(&f.a, 1);
  CreateSubOrchestrationAction *cs = sc_arena_alloc(&f.a, sizeof *cs);
  create_sub_orchestration_action__init(cs);
  cs->name = (char *)"child";
  cs->input = sc_pb_sv(&f.a, "21");
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION;
  x->createsuborchestration = cs;
  ASSERT_OK(complete_orch(&f, w->completiontoken, &x, 1, NULL));
  WorkItem *cw = next_item(&f.fs);
  OrchestratorRequest *cr = cw->orchestratorrequest;
  ASSERT_STR_EQ(cr->instanceid, "par:0001"); /* the SDKs' default child id */
  ExecutionStartedEvent *es = cr->newevents[1]->executionstarted;
  ASSERT_EQ(es->parentinstance->taskscheduledid, 1);
  ASSERT_STR_EQ(es->parentinstance->orchestrationinstance->instanceid, "par");
  ASSERT_STR_EQ(get(&f, "par:0001")->parent_instance_id, "par");
  OrchestratorAction *done[] = {finish(&f.a, 1, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED, "42")};
  ASSERT_OK(complete_orch(&f, cw->completiontoken, done, 1, NULL));
  WorkItem *pw = next_item(&f.fs);
  HistoryEvent *ev = pw->orchestratorrequest->newevents[1];
  ASSERT_STR_EQ(pw->orchestratorrequest->instanceid, "par");
  ASSERT_EQ(ev->event_type_case, HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED);
  ASSERT_EQ(ev->suborchestrationinstancecompleted->taskscheduledid, 1);
  ASSERT_STR_EQ(ev->suborchestrationinstancecompleted->result->value, "42");
  teardown(&f);
  return 0;
}

/* Items in the fake stream so far (a snapshot; the engine may add more later). */
static size_t sent_count(struct fake_stream *s)
{
  pthread_mutex_lock(&s->mu);
  size_t n = s->n;
  pthread_mutex_unlock(&s->mu);
  return n;
}

TEST_IMPL(work_respects_stream_limits)
{
  struct fx f;
  setup(&f);
  start(&f, "l1", "o");
  start(&f, "l2", "o");
  start(&f, "l3", "o");
  get_work_items_request__init(&f.gwr);
  f.gwr.maxconcurrentorchestrationworkitems = 1;
  struct sc_cmd c = {.kind = SC_CMD_STREAM_OPEN};
  c.u.stream_open.req = &f.gwr;
  c.u.stream_open.send = fake_send;
  c.u.stream_open.ctx = &f.fs;
  ASSERT_OK(th_engine_run(f.e, &c));
  WorkItem *w = next_item(&f.fs);
  /* A round trip through the engine: anything it would dispatch has been sent by the time it answers. */
  start(&f, "l4", "o");
  ASSERT_EQ(sent_count(&f.fs), 1);
  OrchestratorAction *a[] = {finish(&f.a, 1, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED, "1")};
  ASSERT_OK(complete_orch(&f, w->completiontoken, a, 1, NULL));
  WorkItem *w2 = next_item(&f.fs); /* the slot is free again */
  ASSERT(strcmp(w2->orchestratorrequest->instanceid, "l1") != 0);
  ASSERT_EQ(sent_count(&f.fs), 2);
  teardown(&f);
  return 0;
}

TEST_IMPL(work_filters_route_by_name)
{
  struct fx f;
  setup(&f);
  OrchestrationFilter of = ORCHESTRATION_FILTER__INIT;
  of.name = (char *)"only-a";
  OrchestrationFilter *ofs[] = {&of};
  WorkItemFilters wf = WORK_ITEM_FILTERS__INIT;
  wf.n_orchestrations = 1;
  wf.orchestrations = ofs;
  get_work_items_request__init(&f.gwr);
  f.gwr.workitemfilters = &wf;
  struct sc_cmd c = {.kind = SC_CMD_STREAM_OPEN};
  c.u.stream_open.req = &f.gwr;
  c.u.stream_open.send = fake_send;
  c.u.stream_open.ctx = &f.fs;
  ASSERT_OK(th_engine_run(f.e, &c));
  start(&f, "fb", "only-b");
  start(&f, "fa", "only-a");
  WorkItem *w = next_item(&f.fs);
  ASSERT_STR_EQ(w->orchestratorrequest->instanceid, "fa");
  ASSERT_EQ(sent_count(&f.fs), 1); /* "only-b" stays PENDING for lack of a matching worker */

  /* A second, unfiltered stream takes it. */
  struct fake_stream other;
  memset(&other, 0, sizeof other);
  pthread_mutex_init(&other.mu, NULL);
  pthread_cond_init(&other.cv, NULL);
  GetWorkItemsRequest any = GET_WORK_ITEMS_REQUEST__INIT;
  struct sc_cmd c2 = {.kind = SC_CMD_STREAM_OPEN};
  c2.u.stream_open.req = &any;
  c2.u.stream_open.send = fake_send;
  c2.u.stream_open.ctx = &other;
  ASSERT_OK(th_engine_run(f.e, &c2));
  WorkItem *wb = next_item(&other);
  ASSERT_STR_EQ(wb->orchestratorrequest->instanceid, "fb");
  struct sc_cmd c3 = {.kind = SC_CMD_STREAM_CLOSE};
  c3.u.stream_close.ctx = &other;
  ASSERT_OK(th_engine_run(f.e, &c3));
  fake_free(&other);
  teardown(&f);
  return 0;
}

TEST_IMPL(work_partial_chunks_are_joined)
{
  struct fx f;
  setup(&f);
  start(&f, "pc", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  OrchestratorAction *first[] = {schedule(&f.a, 1, "one")};
  OrchestratorResponse r = ORCHESTRATOR_RESPONSE__INIT;
  r.completiontoken = w->completiontoken;
  r.ispartial = true;
  r.actions = first;
  r.n_actions = 1;
  struct sc_cmd c = {.kind = SC_CMD_COMPLETE_ORCH};
  c.u.complete_orch.resp = &r;
  ASSERT_OK(th_engine_run(f.e, &c));
  ASSERT_EQ(get(&f, "pc")->status, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING); /* nothing applied yet */
  OrchestratorAction *second[] = {schedule(&f.a, 2, "two")};
  ASSERT_OK(complete_orch(&f, w->completiontoken, second, 1, NULL));
  WorkItem *a1 = next_item(&f.fs), *a2 = next_item(&f.fs);
  ASSERT_STR_EQ(a1->activityrequest->name, "one");
  ASSERT_STR_EQ(a2->activityrequest->name, "two");
  teardown(&f);
  return 0;
}

TEST_IMPL(work_invalid_action_fails_the_orchestration)
{
  struct fx f;
  setup(&f);
  start(&f, "bad", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  OrchestratorAction *x = act(&f.a, 1);
  SendEventAction *se = sc_arena_alloc(&f.a, sizeof *se);
  send_event_action__init(se);
  se->name = (char *)"ev";
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT;
  x->sendevent = se; /* no target instance */
  ASSERT_OK(complete_orch(&f, w->completiontoken, &x, 1, NULL));
  StoredInstance *r = get(&f, "bad");
  ASSERT_EQ(r->status, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED);
  ASSERT_STR_CONTAINS(r->failure_details->errormessage, "sendEvent.instance");
  ASSERT_STR_EQ(r->failure_details->errortype, "InvalidAction");
  teardown(&f);
  return 0;
}

static void abandon(struct fx *f, const char *token, enum sc_abandon_kind kind)
{
  struct sc_cmd c = {.kind = SC_CMD_ABANDON};
  c.u.abandon.token = token;
  c.u.abandon.kind = kind;
  ASSERT_OK(th_engine_run(f->e, &c));
}

/* The abandon count of an activity whose orchestration ended meanwhile is forgotten with it. */
TEST_IMPL(work_backoff_of_a_dropped_activity_is_forgotten)
{
  struct fx f;
  setup(&f);
  start(&f, "bk", "o");
  open_stream(&f);
  WorkItem *w = next_item(&f.fs);
  OrchestratorAction *a1[] = {schedule(&f.a, 1, "act")};
  ASSERT_OK(complete_orch(&f, w->completiontoken, a1, 1, NULL));
  WorkItem *act = next_item(&f.fs);
  abandon(&f, act->completiontoken, SC_ABANDON_ACT);
  act = next_item(&f.fs); /* the first retry is immediate */
  abandon(&f, act->completiontoken, SC_ABANDON_ACT); /* the second waits a second */
  /* The orchestration ends before the activity comes back. */
  TerminateRequest t = TERMINATE_REQUEST__INIT;
  t.instanceid = (char *)"bk";
  struct sc_cmd c = {.kind = SC_CMD_TERMINATE};
  c.u.terminate.req = &t;
  ASSERT_OK(th_engine_run(f.e, &c));
  w = next_item(&f.fs);
  OrchestratorAction *fin[] = {finish(&f.a, 2, ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED, NULL)};
  ASSERT_OK(complete_orch(&f, w->completiontoken, fin, 1, NULL));
  /* When the delayed retry comes due, the activity is dropped, and its count with it. */
  int64_t until = sc_mono_us() + 10000000;
  size_t left;
  do {
    struct sc_cmd k = {.kind = SC_CMD_WAIT};
    k.u.wait.iid = "nobody";
    ASSERT_OK(th_engine_run(f.e, &k)); /* between batches: the engine thread is not touching the map */
    left = f.e->backoff.count;
  } while (left && sc_mono_us() < until);
  ASSERT_EQ(left, 0);
  teardown(&f);
  return 0;
}
