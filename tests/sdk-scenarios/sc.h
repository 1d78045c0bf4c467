/*
 * Shared harness of the C SDK scenario tests (tests/sdk-scenarios): the C SDK is both the worker and the client,
 * against a real taskhubd started by th_server, and drives the orchestration scenarios the Python and JS interop
 * tests run (tests/interop/python/test_worker.py, tests/interop/js/worker*.test.js), asserting the same results.
 *
 * Every test is its own process (CTest runs one per TEST_ENTRY): sc_hub_start() starts one taskhubd, one worker
 * with the file's orchestrators and activities registered, and one client; sc_hub_stop() frees the worker and the
 * client and stops the server, asserting it exits 0 with no sanitizer report. Waiting is done with the SDK's
 * blocking waits or by polling a condition against a deadline, never by sleeping.
 *
 * Payloads are JSON written by hand (there is no JSON library here); outputs are compared as exact strings
 * because the C orchestrators produce them.
 */
#ifndef SC_H
#define SC_H

/* First include of every file here: th_server.h needs PATH_MAX, which -std=c11 hides without this. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "durabletask.h"
#include "test.h"
#include "th_server.h"

#include <stdbool.h>
#include <stdint.h>

#define SC_WAIT_MS 30000 /* ceiling for one orchestration to finish; healthy runs take milliseconds to seconds */

typedef void (*sc_register_fn)(dt_worker *w);

typedef struct sc_hub {
  th_server srv;
  char target[64];
  dt_worker *w;
  dt_client *c;
} sc_hub;

/* Starts taskhubd (extra args may be NULL), a worker with |reg|'s registrations (NULL: no worker) and a client.
 * Returns 0, or TEST_SKIP when $TASKHUBD_BIN is unset (the test returns that). */
int sc_hub_start(sc_hub *h, const char *const *server_args, sc_register_fn reg);
/* A started worker for the hub's server with |reg|'s registrations and |opt| (may be NULL). */
dt_worker *sc_worker_start(sc_hub *h, sc_register_fn reg, const dt_worker_options *opt);
/* Frees the worker and client, stops the server (asserting a clean exit and log), removes its directory. */
void sc_hub_stop(sc_hub *h);

/* A fresh instance id "csc-<prefix>-<pid>-<n>" in |buf|. */
const char *sc_id(char *buf, size_t cap, const char *prefix);

/* Schedules |name| with |input| (may be NULL) under |iid|; asserts success. */
void sc_schedule(sc_hub *h, const char *name, const char *input, const char *iid);
/* Waits for completion (payloads included) and returns the state; asserts the wait succeeded. */
dt_instance *sc_done(sc_hub *h, const char *iid, int timeout_ms);
/* Waits until the instance has started; returns the state. */
dt_instance *sc_started(sc_hub *h, const char *iid);
/* Reads the state (NULL when it does not exist). */
dt_instance *sc_get(sc_hub *h, const char *iid, bool payloads);
/* Polls until the instance exists with |status|, or fails the test after |timeout_ms|. */
dt_instance *sc_until_status(sc_hub *h, const char *iid, dt_status status, int timeout_ms);
void sc_raise(sc_hub *h, const char *iid, const char *name, const char *data);

/* Lines of the server's logs (every start so far) that contain |a| and, unless NULL, |b|. */
int sc_log_count(const th_server *s, const char *a, const char *b);

/* The value of one series of the server's /metrics, e.g.
 * "taskhubd_grpc_requests_total{method=\"Hello\",code=\"OK\"}" (0 when the server does not list it). The ops port
 * is read from the server's log ("event=ops_listening ... port=N"): start the server with
 * --ops-listen 127.0.0.1:0. */
long long sc_metric(const th_server *s, const char *series);

/* Runs `pg.sh CMD DIR` (tests/support/pg.sh; DIR "" for none); its first output line in |out| (may be NULL).
 * Fails the test when it fails. */
void sc_pg_sh(const char *cmd, const char *dir, char *out, size_t cap);

/* Asserts the status, with the failure details in the message when it differs. */
void sc_expect_status_(const dt_instance *in, dt_status want, const char *file, int line);
#define SC_EXPECT_STATUS(in, want) sc_expect_status_((in), (want), __FILE__, __LINE__)

/* Polls pred(arg) every few milliseconds until it is true (returns true) or |timeout_ms| passes (false). */
bool sc_poll(bool (*pred)(void *arg), void *arg, int timeout_ms);

int64_t sc_wall_ms(void);
int64_t sc_mono_ms(void);

/* The history of |iid|; fails the test when it cannot be read (free with dt_history_free). */
dt_history *sc_history(sc_hub *h, const char *iid);
/* Returns the history's event types joined by ',' (caller frees with free()). */
char *sc_history_types(const dt_history *h, bool skip_orchestrator_started);
/* Number of events of |type| in the history. */
size_t sc_history_count(const dt_history *h, const char *type);
/* The i-th (0-based) event of |type|, or NULL. */
const dt_event *sc_history_find(const dt_history *h, const char *type, size_t i);

/*
 * Activity bookkeeping, keyed by (what, orchestration instance id), guarded by a mutex: activities run on the
 * worker's pool threads of this process.
 */
int sc_record(const char *what, const char *iid, int32_t task_id); /* returns the new count */
int sc_attempts(const char *what, const char *iid);
/* Copies up to |max| recorded task ids in call order; returns how many were recorded. */
size_t sc_task_ids(const char *what, const char *iid, int32_t *out, size_t max);

/* Parsing of the integer JSON the tests send: a number, or the |i|-th element of a flat array of numbers. */
long long sc_json_int(const char *s);
long long sc_json_array_int(const char *s, size_t i);
size_t sc_json_array_len(const char *s);
/* The contents of a simple JSON string literal (no escapes) in |json|, in the context's memory. */
const char *sc_unquote_ctx(dt_orch_ctx *ctx, const char *json);
const char *sc_unquote_act(dt_activity_ctx *a, const char *json);
/* A JSON string literal for |s| (escapes quotes, backslashes and control characters), in the context's memory. */
const char *sc_json_str(dt_orch_ctx *ctx, const char *s);
/* "<this instance's id>-child": the id the scenario parents give their sub-orchestration. */
const char *sc_child_id(dt_orch_ctx *ctx);
/* An orchestrator that waits for the event "proceed" and returns {"got":<its data>}. */
const char *sc_wait_event_orch(dt_orch_ctx *ctx, const char *input, void *ud);

#endif
