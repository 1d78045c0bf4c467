/*
 * .hist: a small text format for orchestration histories and the actions expected from replaying them.
 *
 *   # comment (a '#' that starts a token starts a comment, to the end of the line)
 *   OrchestratorStarted ts=2026-01-01T00:00:00.000Z
 *   ExecutionStarted name=Chain input='"Tokyo"' instance=abc
 *   TaskScheduled id=1 name=hello input='"Tokyo"'
 *   --- new                       # what follows goes to newEvents (everything before it to pastEvents)
 *   OrchestratorStarted ts=2026-01-01T00:00:05.000Z
 *   TaskCompleted task=1 result='"Hello, Tokyo!"'
 *   --- expect                    # the actions, in order (the section may also live in a sibling .expect file)
 *   scheduleTask id=2 name=hello input='"Hello, Tokyo!"'
 *   completeOrchestration status=FAILED type=NonDeterminismError message~="'a'"
 *   carryover name=approval data='"yes"'      # a carried-over event of the completeOrchestration above
 *   customStatus='"step 2"'
 *
 * Values: bare (no spaces), '...' (verbatim), or "..." (with \\ \" \n \r \t escapes). An absent key means
 * "no value" (a NULL StringValue), '' is the empty string. Times: 2026-01-01T00:00:00[.fff[fff[fff]]]Z, or
 * integer milliseconds since the epoch.
 *
 * Events. Every event takes id= (eventId, default -1) and ts= (timestamp; default: the last ts= given, which
 * starts at 2026-01-01T00:00:00Z).
 *   OrchestratorStarted | OrchestratorCompleted
 *   ExecutionStarted name= [input= instance= execution= version= parent_instance= parent_execution=
 *                          parent_task= parent_name= scheduled_start=]
 *   ExecutionCompleted status=COMPLETED|FAILED|TERMINATED|... [result= <failure>]
 *   ExecutionTerminated [input= recurse=true|false]
 *   ExecutionSuspended [input=]  ExecutionResumed [input=]  ExecutionRewound [reason=]
 *   TaskScheduled name= [input= version=]      TaskCompleted task= [result=]     TaskFailed task= <failure>
 *   SubOrchestrationInstanceCreated name= [instance= input= version=]
 *   SubOrchestrationInstanceCompleted task= [result=]   SubOrchestrationInstanceFailed task= <failure>
 *   TimerCreated fire_at=                      TimerFired timer= fire_at=
 *   EventSent name= [instance= input=|data=]   EventRaised name= [input=|data=]
 *   GenericEvent [data=]                       ContinueAsNew [input=]
 *   <failure> = [type= message= stack= nonretriable=true inner_type= inner_message= inner_stack=]
 *
 * Expected actions (keys not given must be absent in the action, except id on completeOrchestration and
 * rewindOrchestration, and stack/inner_stack, which are checked only when given; k~=v checks a substring,
 * and may be repeated):
 *   scheduleTask id= name= [input= version=]
 *   createTimer id= fire_at=
 *   createSubOrchestration id= name= instance= [input= version=]
 *   sendEvent id= instance= name= [data=]
 *   completeOrchestration status= [id= result= type= message= stack= inner_type= inner_message=
 *                                  inner_stack= new_version=]   followed by its carryover lines, if any
 *   carryover name= [data=]
 *   rewindOrchestration [id=] history=Type[:eventId],Type[:eventId],...
 *   customStatus=<value>   (absent: the response must carry no custom status)
 */
#ifndef TH_HIST_H
#define TH_HIST_H

#include "orchestrator_service.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hist_arena;

struct hist_field {
  char *key;
  char *value;
  bool contains; /* written key~=value */
};

struct hist_expect {
  int line;
  char *kind; /* scheduleTask, createTimer, ..., completeOrchestration, rewindOrchestration */
  struct hist_field *f;
  size_t nf;
  struct hist_expect_carry {
    int line;
    struct hist_field *f;
    size_t nf;
  } *carry;
  size_t ncarry, capcarry;
};

typedef struct hist {
  char *name; /* file name or label, for messages */
  char *instance_id;
  char *execution_id;
  HistoryEvent **past;
  size_t n_past;
  HistoryEvent **new_events;
  size_t n_new;
  bool has_expect;
  struct hist_expect *expect;
  size_t n_expect;
  char *custom_status; /* NULL: none expected */
  bool ignore_custom_status; /* set by the caller to skip the customStatus comparison */
  struct hist_arena *arena;
} hist;

/* Parses |text|. NULL on error, with *err (malloc'd, "name:line: what") set. */
hist *hist_parse(const char *text, const char *name, char **err);
/* Reads and parses |path|. Without an expect section, a sibling file with .expect in place of .hist (if any)
 * supplies it. */
hist *hist_load(const char *path, char **err);
void hist_free(hist *h);

/* The work item, allocated in h (lives until hist_free). */
OrchestratorRequest *hist_request(hist *h);

/* Compares a response with the expect section. NULL when it matches, else a malloc'd report listing every
 * difference, then the expected and actual actions. */
char *hist_check(const hist *h, const OrchestratorResponse *r);

/* Rendering (all malloc'd). */
char *hist_format_event(const HistoryEvent *e, int64_t *last_ts_ns); /* one line; ts= only when it changed */
char *hist_format_response(const OrchestratorResponse *r);            /* actions, one per line, + customStatus */
/* The expect line a confirmation event (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated,
 * EventSent, ExecutionCompleted) stands for; NULL for any other event. */
char *hist_confirmation_to_expect(const HistoryEvent *e);
bool hist_is_confirmation(const HistoryEvent *e);
/* |v| as a value token: bare when it can be, else quoted. */
char *hist_quote(const char *v);

/* Times: nanoseconds since the epoch. */
bool hist_parse_time(const char *s, int64_t *ns);
void hist_format_time(int64_t ns, char out[40]);

#endif
