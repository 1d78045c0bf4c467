/*
 * th_replay_record: writes the committed history of an orchestration instance, read from a running taskhubd
 * with dt_client_history(), in the .hist format of tests/replay/hist.h — so that replay tests can use
 * histories from real runs. Built with the tests, never run by them.
 *
 *   th_replay_record TARGET INSTANCE_ID [OUT.hist]
 *       records an existing instance.
 *   th_replay_record TARGET --run chain|fanout [OUT.hist]
 *       runs one of the demo orchestrations of demo.c (RecChain, RecFanOut) on an in-process C SDK worker,
 *       waits for it to finish, then records it.
 *
 * The history is split at its last OrchestratorStarted: what came before becomes pastEvents; that episode's
 * OrchestratorStarted and inbox events become newEvents ("--- new"), and the events the worker's actions
 * committed in it (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent,
 * ExecutionCompleted) become the expect section, with the instance's custom status. dt_event carries
 * millisecond timestamps, so finer digits of the server's clock are lost (replay only uses milliseconds).
 */
#include "demo.h"
#include "durabletask.h"
#include "hist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A HistoryEvent rebuilt from a flattened dt_event, with all the storage it points into. */
struct conv {
  HistoryEvent he;
  Google__Protobuf__Timestamp ts, fire;
  Google__Protobuf__StringValue payload;
  OrchestrationInstance oi;
  TaskFailureDetails fd, inner;
  ExecutionStartedEvent es;
  ExecutionCompletedEvent ec;
  ExecutionTerminatedEvent et;
  ExecutionSuspendedEvent esus;
  ExecutionResumedEvent eres;
  ExecutionRewoundEvent erw;
  TaskScheduledEvent tsch;
  TaskCompletedEvent tc;
  TaskFailedEvent tf;
  SubOrchestrationInstanceCreatedEvent sc;
  SubOrchestrationInstanceCompletedEvent scd;
  SubOrchestrationInstanceFailedEvent sf;
  TimerCreatedEvent tcr;
  TimerFiredEvent tfi;
  OrchestratorStartedEvent os;
  OrchestratorCompletedEvent oc;
  EventSentEvent esent;
  EventRaisedEvent er;
  GenericEvent ge;
  ContinueAsNewEvent can;
};

static void set_ts(Google__Protobuf__Timestamp *t, int64_t ms)
{
  google__protobuf__timestamp__init(t);
  t->seconds = ms / 1000;
  t->nanos = (int32_t)(ms % 1000) * 1000000;
}

static char *s(const char *v)
{
  return (char *)(v ? v : "");
}

static TaskFailureDetails *failure(struct conv *c, const dt_failure *f)
{
  if (!f)
    return NULL;
  task_failure_details__init(&c->fd);
  c->fd.errortype = s(f->error_type);
  c->fd.errormessage = s(f->message);
  if (f->inner) {
    task_failure_details__init(&c->inner);
    c->inner.errortype = s(f->inner->error_type);
    c->inner.errormessage = s(f->inner->message);
    c->fd.innerfailure = &c->inner;
  }
  return &c->fd;
}

/* Returns false for event types this tool does not convert. */
static bool convert(const dt_event *ev, const char *iid, struct conv *c)
{
  HistoryEvent *e = &c->he;
  history_event__init(e);
  e->eventid = ev->event_id;
  set_ts(&c->ts, ev->timestamp_ms);
  e->timestamp = &c->ts;
  google__protobuf__string_value__init(&c->payload);
  c->payload.value = (char *)ev->payload;
  Google__Protobuf__StringValue *pl = ev->payload ? &c->payload : NULL;
  set_ts(&c->fire, ev->fire_at_ms);
  const char *t = ev->type;
  if (strcmp(t, "OrchestratorStarted") == 0) {
    orchestrator_started_event__init(&c->os);
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
    e->orchestratorstarted = &c->os;
  } else if (strcmp(t, "OrchestratorCompleted") == 0) {
    orchestrator_completed_event__init(&c->oc);
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_COMPLETED;
    e->orchestratorcompleted = &c->oc;
  } else if (strcmp(t, "ExecutionStarted") == 0) {
    execution_started_event__init(&c->es);
    c->es.name = s(ev->name);
    c->es.input = pl;
    orchestration_instance__init(&c->oi);
    c->oi.instanceid = (char *)iid;
    c->es.orchestrationinstance = &c->oi;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED;
    e->executionstarted = &c->es;
  } else if (strcmp(t, "ExecutionCompleted") == 0) {
    execution_completed_event__init(&c->ec);
    c->ec.orchestrationstatus = (OrchestrationStatus)ev->status;
    c->ec.result = pl;
    c->ec.failuredetails = failure(c, ev->failure);
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED;
    e->executioncompleted = &c->ec;
  } else if (strcmp(t, "ExecutionTerminated") == 0) {
    execution_terminated_event__init(&c->et);
    c->et.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED;
    e->executionterminated = &c->et;
  } else if (strcmp(t, "ExecutionSuspended") == 0) {
    execution_suspended_event__init(&c->esus);
    c->esus.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED;
    e->executionsuspended = &c->esus;
  } else if (strcmp(t, "ExecutionResumed") == 0) {
    execution_resumed_event__init(&c->eres);
    c->eres.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED;
    e->executionresumed = &c->eres;
  } else if (strcmp(t, "ExecutionRewound") == 0) {
    execution_rewound_event__init(&c->erw);
    c->erw.reason = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND;
    e->executionrewound = &c->erw;
  } else if (strcmp(t, "TaskScheduled") == 0) {
    task_scheduled_event__init(&c->tsch);
    c->tsch.name = s(ev->name);
    c->tsch.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED;
    e->taskscheduled = &c->tsch;
  } else if (strcmp(t, "TaskCompleted") == 0) {
    task_completed_event__init(&c->tc);
    c->tc.taskscheduledid = ev->task_id;
    c->tc.result = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED;
    e->taskcompleted = &c->tc;
  } else if (strcmp(t, "TaskFailed") == 0) {
    task_failed_event__init(&c->tf);
    c->tf.taskscheduledid = ev->task_id;
    c->tf.failuredetails = failure(c, ev->failure);
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_TASK_FAILED;
    e->taskfailed = &c->tf;
  } else if (strcmp(t, "SubOrchestrationInstanceCreated") == 0) {
    sub_orchestration_instance_created_event__init(&c->sc);
    c->sc.name = s(ev->name);
    c->sc.instanceid = s(ev->instance_id);
    c->sc.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED;
    e->suborchestrationinstancecreated = &c->sc;
  } else if (strcmp(t, "SubOrchestrationInstanceCompleted") == 0) {
    sub_orchestration_instance_completed_event__init(&c->scd);
    c->scd.taskscheduledid = ev->task_id;
    c->scd.result = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED;
    e->suborchestrationinstancecompleted = &c->scd;
  } else if (strcmp(t, "SubOrchestrationInstanceFailed") == 0) {
    sub_orchestration_instance_failed_event__init(&c->sf);
    c->sf.taskscheduledid = ev->task_id;
    c->sf.failuredetails = failure(c, ev->failure);
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED;
    e->suborchestrationinstancefailed = &c->sf;
  } else if (strcmp(t, "TimerCreated") == 0) {
    timer_created_event__init(&c->tcr);
    c->tcr.fireat = &c->fire;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED;
    e->timercreated = &c->tcr;
  } else if (strcmp(t, "TimerFired") == 0) {
    timer_fired_event__init(&c->tfi);
    c->tfi.timerid = ev->task_id;
    c->tfi.fireat = &c->fire;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED;
    e->timerfired = &c->tfi;
  } else if (strcmp(t, "EventSent") == 0) {
    event_sent_event__init(&c->esent);
    c->esent.name = s(ev->name);
    c->esent.instanceid = s(ev->instance_id);
    c->esent.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_SENT;
    e->eventsent = &c->esent;
  } else if (strcmp(t, "EventRaised") == 0) {
    event_raised_event__init(&c->er);
    c->er.name = s(ev->name);
    c->er.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED;
    e->eventraised = &c->er;
  } else if (strcmp(t, "GenericEvent") == 0) {
    generic_event__init(&c->ge);
    c->ge.data = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT;
    e->genericevent = &c->ge;
  } else if (strcmp(t, "ContinueAsNew") == 0) {
    continue_as_new_event__init(&c->can);
    c->can.input = pl;
    e->event_type_case = HISTORY_EVENT__EVENT_TYPE_CONTINUE_AS_NEW;
    e->continueasnew = &c->can;
  } else {
    return false;
  }
  return true;
}

static int write_hist(FILE *out, const char *target, const char *how, const dt_history *h, const dt_instance *in)
{
  struct conv *c = calloc(h->n ? h->n : 1, sizeof *c);
  bool *ok = calloc(h->n ? h->n : 1, sizeof *ok);
  if (!c || !ok) {
    free(c);
    free(ok);
    return DT_ERR_NOMEM;
  }
  size_t last_os = h->n;
  for (size_t i = 0; i < h->n; i++) {
    ok[i] = convert(&h->events[i], in->instance_id, &c[i]);
    if (ok[i] && c[i].he.event_type_case == HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED)
      last_os = i;
  }
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
  fprintf(out, "# Recorded from a real run with tests/replay/record.c:\n");
  fprintf(out, "#   th_replay_record %s %s\n", target, how);
  fprintf(out, "# Recorded on %s; instance %s (%s) ended %s after %zu history events.\n", date,
          in->instance_id, in->name ? in->name : "?", dt_status_name(in->status), h->n);
  fprintf(out, "# The last episode is split off as '--- new'; the actions it committed are the expect section.\n");
  int64_t last_ts = INT64_MIN;
  for (size_t i = 0; i < h->n; i++) {
    if (i == last_os)
      fprintf(out, "--- new\n");
    if (i >= last_os && ok[i] && hist_is_confirmation(&c[i].he))
      continue;
    if (!ok[i]) {
      fprintf(out, "# (an event of type %s, which this tool does not convert)\n", h->events[i].type);
      continue;
    }
    char *line = hist_format_event(&c[i].he, &last_ts);
    fprintf(out, "%s\n", line);
    free(line);
  }
  fprintf(out, "--- expect\n");
  for (size_t i = last_os; i < h->n; i++) {
    if (!ok[i] || !hist_is_confirmation(&c[i].he))
      continue;
    char *line = hist_confirmation_to_expect(&c[i].he);
    fprintf(out, "%s\n", line);
    free(line);
  }
  if (in->custom_status) {
    char *q = hist_quote(in->custom_status);
    fprintf(out, "customStatus=%s\n", q);
    free(q);
  }
  free(c);
  free(ok);
  return DT_OK;
}

static int record(dt_client *cl, const char *target, const char *how, const char *iid, const char *path)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(cl, iid, true, &in);
  if (rc != DT_OK) {
    fprintf(stderr, "th_replay_record: get %s: %s\n", iid, dt_strerror(rc));
    return rc;
  }
  dt_history *h = NULL;
  rc = dt_client_history(cl, iid, &h);
  if (rc != DT_OK) {
    fprintf(stderr, "th_replay_record: history of %s: %s\n", iid, dt_strerror(rc));
    dt_instance_free(in);
    return rc;
  }
  FILE *out = path ? fopen(path, "w") : stdout;
  if (!out) {
    perror(path);
    rc = DT_ERR_INTERNAL;
  } else {
    rc = write_hist(out, target, how, h, in);
    if (path && fclose(out) != 0)
      rc = DT_ERR_INTERNAL;
  }
  dt_history_free(h);
  dt_instance_free(in);
  return rc;
}

static void log_fn(int level, const char *message, void *user_data)
{
  if (level >= 2)
    fprintf(stderr, "sdk: %s\n", message);
}

/* Runs a demo orchestration to completion on an in-process worker; *iid receives its id (dt_free()). */
static int run_demo(dt_client *cl, const char *target, const char *which, char **iid)
{
  const char *name, *input, *id;
  if (strcmp(which, "chain") == 0) {
    name = "RecChain";
    input = "\"Tokyo\"";
    id = "rec-chain";
  } else if (strcmp(which, "fanout") == 0) {
    name = "RecFanOut";
    input = NULL;
    id = "rec-fanout";
  } else {
    fprintf(stderr, "th_replay_record: --run chain|fanout\n");
    return DT_ERR_INVALID_ARG;
  }
  dt_worker *w = NULL;
  int rc = dt_worker_new(target, NULL, &w);
  if (rc == DT_OK)
    rc = dt_worker_add_orchestrator(w, "RecChain", demo_chain, NULL);
  if (rc == DT_OK)
    rc = dt_worker_add_orchestrator(w, "RecFanOut", demo_fanout, NULL);
  if (rc == DT_OK)
    rc = dt_worker_add_activity(w, "rec_hello", demo_hello, NULL);
  if (rc == DT_OK)
    rc = dt_worker_add_activity(w, "rec_square", demo_square, NULL);
  if (rc == DT_OK)
    rc = dt_worker_start(w);
  if (rc != DT_OK) {
    fprintf(stderr, "th_replay_record: worker: %s\n", dt_strerror(rc));
    dt_worker_free(w);
    return rc;
  }
  static const dt_status finished[] = {DT_STATUS_COMPLETED, DT_STATUS_FAILED, DT_STATUS_TERMINATED};
  dt_reuse_policy reuse = {finished, 3};
  dt_start_options so = {.instance_id = id, .input = input, .reuse = &reuse};
  rc = dt_client_schedule(cl, name, &so, iid);
  if (rc == DT_OK && strcmp(which, "fanout") == 0) {
    /* Raised once the instance runs, under a differently-cased name than the orchestrator waits for. */
    dt_instance *st = NULL;
    rc = dt_client_wait_start(cl, *iid, 30000, false, &st);
    dt_instance_free(st);
    if (rc == DT_OK)
      rc = dt_client_raise_event(cl, *iid, "approval", "\"yes\"");
  }
  if (rc == DT_OK) {
    dt_instance *done = NULL;
    rc = dt_client_wait_completion(cl, *iid, 60000, false, &done);
    if (rc == DT_OK)
      fprintf(stderr, "th_replay_record: %s ended %s\n", *iid, dt_status_name(done->status));
    dt_instance_free(done);
  }
  if (rc != DT_OK)
    fprintf(stderr, "th_replay_record: running %s: %s\n", name, dt_strerror(rc));
  dt_worker_free(w);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc < 3 || argc > 5 || (strcmp(argv[2], "--run") == 0 && argc < 4)) {
    fprintf(stderr, "usage: %s TARGET INSTANCE_ID [OUT.hist]\n       %s TARGET --run chain|fanout [OUT.hist]\n",
            argv[0], argv[0]);
    return 2;
  }
  dt_set_log_fn(log_fn, NULL);
  const char *target = argv[1];
  dt_client *cl = NULL;
  int rc = dt_client_open(target, NULL, &cl);
  if (rc != DT_OK) {
    fprintf(stderr, "th_replay_record: connect %s: %s\n", target, dt_strerror(rc));
    return 1;
  }
  char *iid = NULL;
  const char *out = NULL;
  char how[128];
  if (strcmp(argv[2], "--run") == 0) {
    rc = run_demo(cl, target, argv[3], &iid);
    out = argc > 4 ? argv[4] : NULL;
    snprintf(how, sizeof how, "--run %s", argv[3]);
  } else {
    iid = malloc(strlen(argv[2]) + 1);
    if (iid)
      strcpy(iid, argv[2]);
    rc = iid ? DT_OK : DT_ERR_NOMEM;
    out = argc > 3 ? argv[3] : NULL;
    snprintf(how, sizeof how, "%s", argv[2]);
  }
  if (rc == DT_OK)
    rc = record(cl, target, how, iid, out);
  if (strcmp(argv[2], "--run") == 0)
    dt_free(iid);
  else
    free(iid);
  dt_client_close(cl);
  return rc == DT_OK ? 0 : 1;
}
