/*
 * Harness of the taskhubctl tests: a real taskhubd (th_server), optionally a C SDK worker in this process for
 * the orchestrations below, a C SDK client to set up and check state, and taskhubctl ($TASKHUBCTL_BIN) run as a
 * subprocess with its stdout, stderr and exit status captured.
 *
 * Orchestrations the worker runs (see ctl_harness.c):
 *   hello     {"echo":<input>} via the activity "echo"
 *   fail      fails: the activity "boom" fails with BoomError "boom: kaput"
 *   flaky     the activity "fails_first" fails on its first call per instance, then succeeds (for rewind)
 *   timeline  "echo" activity, then a 50 ms timer, then returns {"echo":...,"timer":true}
 *   waiter    custom status "waiting for go", then waits for the event "go" and returns {"got":<data>}
 *   parent    runs "waiter" as the sub-orchestration "<id>-child" and returns its output
 */
#ifndef CTL_HARNESS_H
#define CTL_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "durabletask.h"
#include "test.h"
#include "th_server.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#define CTL_RUN_MS 60000  /* the longest one taskhubctl run may take */
#define CTL_WAIT_MS 30000 /* the longest an orchestration may take to reach a state */

typedef struct hub {
  th_server srv;
  char addr[64];
  dt_client *c;
  dt_worker *w; /* NULL without a worker */
  int settles;  /* settle() instances so far */
} hub;

/* Starts taskhubd, a client and (with_worker) a worker. Returns 0, or TEST_SKIP when $TASKHUBD_BIN or
 * $TASKHUBCTL_BIN is unset (the test returns that). */
int hub_start(hub *h, bool with_worker);
/* hub_start with taskhubd options (NULL-terminated; NULL: none). */
int hub_start_args(hub *h, bool with_worker, const char *const *server_args);
/* Frees worker and client, stops the server (asserting a clean exit and log). */
void hub_stop(hub *h);

/* ------------------------------------------------------------------ running taskhubctl */

typedef struct ctl_res {
  int code;  /* exit status, or 128 + signal */
  char *out; /* stdout, NUL-terminated */
  char *err; /* stderr */
} ctl_res;

typedef struct ctl_opts {
  const char *address;    /* TASKHUBD_ADDRESS for the child; NULL: unset */
  const char *stdin_text; /* written to a pipe on stdin; NULL: stdin is /dev/null */
  const char *tty_answer; /* non-NULL: stdin is a pseudo-terminal and this text is typed into it */
} ctl_opts;

typedef struct ctl_proc ctl_proc;

/* Starts taskhubctl with |args| (NULL-terminated, without argv[0]). */
ctl_proc *ctl_spawn(const ctl_opts *o, const char *const *args);
/* Reads the child's output until its stdout contains |needle| (true) or |timeout_ms| passes (false). */
bool ctl_expect(ctl_proc *p, const char *needle, int timeout_ms);
/* Reads everything, reaps the child (killing it and failing the test after |timeout_ms|) and asserts that its
 * stderr has no sanitizer report. */
ctl_res ctl_finish(ctl_proc *p, int timeout_ms);
ctl_res ctl_run(const ctl_opts *o, const char *const *args);
void ctl_res_free(ctl_res *r);

/* Runs taskhubctl with TASKHUBD_ADDRESS=addr and the given arguments. */
#define CTL(addr, ...) ctl_run(&(ctl_opts){.address = (addr)}, (const char *const[]){__VA_ARGS__, NULL})

/* Asserts the exit status, printing the run's output when it differs. */
#define ASSERT_EXIT(r, want) ctl_assert_exit_(&(r), (want), __FILE__, __LINE__)
void ctl_assert_exit_(const ctl_res *r, int want, const char *file, int line);

/* ------------------------------------------------------------------ JSON */

/* Parses stdout, asserting it is exactly one JSON document (whitespace around it allowed). The caller frees
 * the result with json_object_put(). */
json_object *ctl_doc(const ctl_res *r);
/* A member of an object (NULL when absent or JSON null). */
json_object *jget(json_object *o, const char *key);
/* A string member, asserting it is a string or null/absent (then NULL). */
const char *jstr(json_object *o, const char *key);
/* An integer member (asserting it is one). */
int64_t jint(json_object *o, const char *key);
/* True when |s| is "YYYY-MM-DDTHH:MM:SS.mmmZ" as taskhubctl writes times. */
bool is_rfc3339_ms(const char *s);
/* The error code of a JSON error document ({"error":{"code":...}}), or NULL. */
const char *jerror_code(json_object *doc);

/* ------------------------------------------------------------------ helpers */

/* Formats |ms| as taskhubctl would: RFC 3339 UTC with milliseconds. */
const char *fmt_time(int64_t ms, char *buf, size_t cap);
int64_t wall_ms(void);
int64_t mono_ms(void);
void sleep_ms(int ms);

/* Schedules |name| with |input| under |iid| (must succeed). */
void sched(hub *h, const char *name, const char *iid, const char *input);
/* Reads an instance (NULL when it does not exist). */
dt_instance *get(hub *h, const char *iid);
/* Whether the instance exists. */
bool exists(hub *h, const char *iid);
/* Polls until the instance has |status|; fails the test after |timeout_ms|. */
void until_status(hub *h, const char *iid, dt_status status, int timeout_ms);
/* Waits for the instance to finish (payloads included); asserts the wait succeeded. */
dt_instance *done(hub *h, const char *iid);
/* Runs a short orchestration through the hub's worker to completion. Work the engine handed out before it
 * reaches the single worker stream first and completes first, so afterwards anything that was going to be
 * delivered has been: absence checks use this instead of sleeping. */
void settle(hub *h);
/* The history event types of |iid| joined by ',' without OrchestratorStarted/Completed (caller frees). */
char *history_types(hub *h, const char *iid);
/* Number of lines of |text| that contain |needle|. */
int count_lines(const char *text, const char *needle);
/* The line of |text| that contains |needle| (malloc()ed, caller frees), or NULL. */
char *line_with(const char *text, const char *needle);
/* Index in |text| of |needle|, or -1. */
long index_of(const char *text, const char *needle);
/* How many times the activity "fails_first" ran for |iid|. */
int flaky_attempts(const char *iid);

/* The worker's code every harness registers: an activity echoing its input ("echo"), one failing with
 * BoomError ("boom"), and orchestrations calling each ("hello", and "fail" for boom). */
const char *ctl_act_echo(dt_activity_ctx *a, const char *input, void *ud);
const char *ctl_act_boom(dt_activity_ctx *a, const char *input, void *ud);
const char *ctl_orch_hello(dt_orch_ctx *ctx, const char *input, void *ud);
const char *ctl_orch_fail(dt_orch_ctx *ctx, const char *input, void *ud);

#endif
