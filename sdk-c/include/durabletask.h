/*
 * durabletask.h — the C SDK for Durable Task: a client for orchestration instances and a worker that runs
 * orchestrators and activities, talking gRPC to taskhubd (or any server of the Durable Task protocol).
 *
 * If a declaration is not in this file, it is not part of the API.
 *
 * Conventions
 *  - Functions return DT_OK (0) or a negative DT_ERR_* code; results come back through out-parameters, which
 *    are left untouched on failure. dt_strerror() names a code.
 *  - Payloads (inputs, outputs, event data, custom status) are opaque NUL-terminated strings; the other SDKs
 *    put JSON in them, and so should you if they are to interoperate. NULL means "no payload".
 *  - Every returned pointer has a stated owner. "Caller frees with dt_free()" means exactly that; strings
 *    handed out by an orchestration or activity context belong to that context.
 *  - Times are milliseconds since the Unix epoch (UTC).
 *
 * Orchestrators are replayed: an orchestrator function runs again from the top for every work item, over the
 * recorded history, and must be deterministic — take time, ids and randomness from the context, never from
 * the system. dt_await() returns a task's result when the history has it; when it does not, the run ends
 * there (the SDK longjmps back to its executor) and the decisions made so far are sent to the server. Memory
 * from the context lives until the run ends, so leaving early leaks nothing. Any call taking the context may end
 * the run this way (dt_await, and also a failed argument check or running out of memory, which fail the
 * orchestration), so the one rule is: across calls on the context hold no resource the context does not own (no
 * malloc, no open files, no locks). For the same reason the context's allocators never return NULL.
 */
#ifndef DURABLETASK_H
#define DURABLETASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* DURABLETASK_VERSION_MAJOR, _MINOR, _PATCH and DURABLETASK_VERSION ("0.1.0"): this SDK's version, which the build
 * writes into durabletask_version.h (installed next to this file). */
#include "durabletask_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------ status */

/* Status codes. Negative values are errors; they are never renumbered and only appended. */
#define DT_OK 0
#define DT_ERR_INVALID_ARG (-1)     /* a bad argument, or the server rejected the request as invalid */
#define DT_ERR_NOT_FOUND (-2)       /* no such instance (or work item) */
#define DT_ERR_EXISTS (-3)          /* the instance id is taken */
#define DT_ERR_STATE (-4)           /* the instance is in the wrong state for this (e.g. rewind of a non-failed one) */
#define DT_ERR_TIMEOUT (-5)         /* the wait or call timed out */
#define DT_ERR_UNAVAILABLE (-6)     /* the server cannot be reached or is shutting down; retry later */
#define DT_ERR_TASK_FAILED (-7)     /* an awaited task failed; see dt_task_failure() */
#define DT_ERR_NONDETERMINISM (-8)  /* the orchestrator did not do what its history says it did */
#define DT_ERR_NOMEM (-9)           /* out of memory */
#define DT_ERR_INTERNAL (-10)       /* a server or protocol error */
#define DT_ERR_CANCELLED (-11)      /* the call was cancelled */
#define DT_ERR_UNSUPPORTED (-12)    /* the server does not implement this */
#define DT_ERR_TOO_BIG (-13)        /* a payload or message over the server's limit */
#define DT_ERR_UNAUTHENTICATED (-14) /* the server refused the credentials: a missing or wrong token (or not allowed) */

/* A static, human-readable description of a status code. Never NULL. */
const char *dt_strerror(int rc);

/* What the server (or the gRPC library) said when the calling thread's most recent call to it failed: the
 * gRPC status code's name ("DEADLINE_EXCEEDED", "NOT_FOUND", ...) in *code and the status message ("" when it
 * sent none) in *message; either pointer may be NULL. Several gRPC codes map to one DT_ERR_* code, and the
 * message often says what to do, so tools show these next to dt_strerror(). Returns false, leaving both
 * untouched, when the thread's most recent call to the server succeeded, or when a failure came from the SDK
 * itself (a bad argument, out of memory, an unreadable response) rather than from a gRPC status. The strings
 * belong to the thread and stay valid until its next call to the server. */
bool dt_last_call_status(const char **code, const char **message);

/* Frees memory the SDK handed to the caller (strings, lists). NULL is a no-op. */
void dt_free(void *p);

/* Where the SDK's log lines go (it never prints by itself). level: 0 debug, 1 info, 2 warn, 3 error.
 * Process-wide; best set before creating clients or workers. It may be changed while they run: a line logged on
 * another thread at that moment goes to the old or the new function, each with its own user_data.
 * NULL restores the default (discard). */
typedef void (*dt_log_fn)(int level, const char *message, void *user_data);
void dt_set_log_fn(dt_log_fn fn, void *user_data);

/* ------------------------------------------------------------------------------------------------ types */

typedef enum dt_status {
  DT_STATUS_RUNNING = 0,
  DT_STATUS_COMPLETED = 1,
  DT_STATUS_CONTINUED_AS_NEW = 2,
  DT_STATUS_FAILED = 3,
  DT_STATUS_CANCELED = 4,
  DT_STATUS_TERMINATED = 5,
  DT_STATUS_PENDING = 6,
  DT_STATUS_SUSPENDED = 7,
} dt_status;

/* "RUNNING", "COMPLETED", ... */
const char *dt_status_name(dt_status s);

/* Why a task or orchestration failed. Fields may be NULL. */
typedef struct dt_failure {
  const char *error_type;
  const char *message;
  const char *stack_trace;
  const struct dt_failure *inner;
} dt_failure;

typedef struct dt_tag {
  const char *key;
  const char *value;
} dt_tag;

/* ------------------------------------------------------------------------------------------------ client */

typedef struct dt_client dt_client;

typedef struct dt_conn_options {
  /* TLS: when true, the channel uses TLS with the system roots, or root_certs_pem if set (PEM text, not a path:
   * the CA that issued taskhubd's --tls-cert). */
  bool tls;
  const char *root_certs_pem;
  /* Deadline of each call in milliseconds (0: 30 s), history streams included. Waits use their own timeouts. */
  int call_timeout_ms;
  /* Largest message accepted from the server (0: 16 MiB). */
  int max_receive_bytes;
  /* HTTP/2 keepalive: after this many milliseconds without anything received, the connection is pinged, and
   * closed when the ping is not answered within keepalive_timeout_ms; calls on it fail with DT_ERR_UNAVAILABLE
   * and the worker reconnects. This is how a connection that went silent without closing (a NAT or load
   * balancer dropping it, a peer that vanished) is noticed. 0: 30000 and 10000; a negative keepalive_ms turns
   * keepalive off. taskhubd accepts pings down to one every 10 s (more often only while it sends data, e.g.
   * with a short --health-ping); other servers may close connections that ping more often than they allow. */
  int keepalive_ms;
  int keepalive_timeout_ms;
  /* Mutual TLS (with tls): this client's certificate chain and private key, PEM text, for a taskhubd started
   * with --tls-client-ca. Both or neither. */
  const char *client_cert_pem;
  const char *client_key_pem;
  /* With tls: the name the server's certificate must carry when it is not the target's host (e.g. "localhost"
   * for a unix: target, or an IP the certificate does not list). NULL: the target's host. */
  const char *tls_server_name;
  /* Sent as "authorization: Bearer <auth_token>" on every call, for a taskhubd started with --auth-token-file.
   * NULL: $TASKHUBD_AUTH_TOKEN if set, else none. The string is copied; it may be freed after the open. */
  const char *auth_token;
} dt_conn_options;

/* Where taskhubd is when a caller names no target: $TASKHUBD_ADDRESS (the variable taskhubctl reads too), else
 * "127.0.0.1:4001", taskhubd's default --listen. Its token, when it asks for one (--auth-token-file), comes from
 * dt_conn_options.auth_token or else $TASKHUBD_AUTH_TOKEN (read by taskhubctl too). A refused token or client
 * certificate fails calls with DT_ERR_UNAUTHENTICATED or DT_ERR_UNAVAILABLE; dt_last_call_status() has the
 * server's or gRPC's message. */
const char *dt_default_target(void);

/* CONSTRUCTOR. Connects lazily to |target| ("host:port", "unix:path"; NULL: dt_default_target()). |opt| may be
 * NULL.
 * Thread-safe: one client may be used from many threads at once; close it only when no call is in progress. */
int dt_client_open(const char *target, const dt_conn_options *opt, dt_client **out);
/* DESTRUCTOR. NULL is a no-op. */
void dt_client_close(dt_client *c);

/* What to do when the instance id is already in use. */
typedef struct dt_reuse_policy {
  /* Statuses an existing instance may have for it to be replaced; anything else gives DT_ERR_EXISTS.
   * Replacing a live instance terminates it first, so a list with RUNNING, PENDING or SUSPENDED must also hold
   * TERMINATED (the server answers DT_ERR_INVALID_ARG otherwise). n == 0: never replace. */
  const dt_status *replaceable;
  size_t n;
} dt_reuse_policy;

typedef struct dt_start_options {
  const char *instance_id; /* NULL or "": the SDK generates a random 32-hex-digit id */
  const char *input;
  int64_t start_at_ms;     /* 0: start now; later times: a scheduled start */
  const char *version;
  const dt_tag *tags;
  size_t n_tags;
  const dt_reuse_policy *reuse; /* NULL: a finished instance (COMPLETED, FAILED, TERMINATED) is replaced, a live
                                 * one is DT_ERR_EXISTS (taskhubd; servers before 0.2 refused both) */
} dt_start_options;

/* Schedules a new orchestration instance of |name|. |opt| may be NULL. On success *instance_id (if not NULL)
 * receives the instance id (caller frees with dt_free()). A tag with a NULL value is sent as "". */
int dt_client_schedule(dt_client *c, const char *name, const dt_start_options *opt, char **instance_id);

/* An instance's state. Caller frees with dt_instance_free(). input/output/custom_status are set only when
 * payloads were asked for, and only when the instance has them. */
typedef struct dt_instance {
  char *instance_id;
  char *name;
  char *version;
  char *execution_id;
  dt_status status;
  int64_t created_ms;
  int64_t last_updated_ms;
  int64_t completed_ms;        /* 0 while not finished */
  int64_t scheduled_start_ms;  /* 0 unless a future start was requested */
  char *parent_instance_id;
  char *input;
  char *output;
  char *custom_status;
  dt_failure *failure;         /* only for FAILED instances */
  dt_tag *tags;
  size_t n_tags;
} dt_instance;

void dt_instance_free(dt_instance *in);

/* Reads an instance. DT_ERR_NOT_FOUND when it does not exist. */
int dt_client_get(dt_client *c, const char *instance_id, bool payloads, dt_instance **out);

/* Blocks until the instance has started (left PENDING) or finished, or |timeout_ms| passes
 * (DT_ERR_TIMEOUT; timeout_ms <= 0 waits without a client deadline, up to the server's cap). */
int dt_client_wait_start(dt_client *c, const char *instance_id, int timeout_ms, bool payloads, dt_instance **out);
int dt_client_wait_completion(dt_client *c, const char *instance_id, int timeout_ms, bool payloads,
                              dt_instance **out);

/* Sends an external event. DT_ERR_NOT_FOUND for an unknown instance; finished instances drop it. */
int dt_client_raise_event(dt_client *c, const char *instance_id, const char *event_name, const char *data);
/* Terminates an instance (and, with |recursive|, its sub-orchestrations). */
int dt_client_terminate(dt_client *c, const char *instance_id, const char *output, bool recursive);
int dt_client_suspend(dt_client *c, const char *instance_id, const char *reason);
int dt_client_resume(dt_client *c, const char *instance_id, const char *reason);
/* Rewinds a FAILED instance to retry what failed (DT_ERR_STATE otherwise). */
int dt_client_rewind(dt_client *c, const char *instance_id, const char *reason);
/* Starts an instance again with its original name, input and version: in place (only a finished instance:
 * DT_ERR_STATE otherwise), or under a new id (allowed while the original still runs). *new_instance_id_out,
 * if not NULL, receives the id either way (caller frees with dt_free()). */
int dt_client_restart(dt_client *c, const char *instance_id, bool new_instance_id, char **new_instance_id_out);

typedef struct dt_query {
  const dt_status *statuses; /* any of these; n_statuses == 0: all */
  size_t n_statuses;
  int64_t created_from_ms;   /* 0: no lower bound */
  int64_t created_to_ms;     /* 0: no upper bound; the range is [from, to) */
  const char *instance_id_prefix;
  int page_size;             /* 0: 100 */
  bool payloads;
  const char *continuation;  /* NULL for the first page, then dt_instance_page.continuation */
  /* Newest first by creation time (ids in reverse with instance_id_prefix), through taskhubd's own service
   * (taskhubd.admin.Admin/QueryInstancesReversed): a sidecar without it answers DT_ERR_UNSUPPORTED. Tokens of one
   * order do not continue the other. */
  bool reversed;
} dt_query;

typedef struct dt_instance_page {
  dt_instance **instances;
  size_t n;
  char *continuation; /* NULL on the last page */
} dt_instance_page;

/* One page of instances. Caller frees with dt_instance_page_free(). */
int dt_client_query(dt_client *c, const dt_query *q, dt_instance_page **out);
void dt_instance_page_free(dt_instance_page *p);

/* Deletes a finished instance (and, with |recursive|, its finished sub-orchestrations). *deleted may be NULL;
 * it receives 0 when the instance is unknown or still running. */
int dt_client_purge(dt_client *c, const char *instance_id, bool recursive, int *deleted);

typedef struct dt_purge_filter {
  int64_t created_from_ms;   /* 0: no lower bound */
  int64_t created_to_ms;     /* 0: no upper bound */
  const dt_status *statuses; /* finished statuses to purge; n == 0: all finished ones */
  size_t n_statuses;
} dt_purge_filter;

/* Purges every finished instance the filter matches. *complete is false when the server stopped early
 * (call again to go on). Either out-parameter may be NULL. */
int dt_client_purge_filter(dt_client *c, const dt_purge_filter *f, int *deleted, bool *complete);

/* One history event, in a flattened form for reading and display. */
typedef struct dt_event {
  int32_t event_id;
  int64_t timestamp_ms;
  const char *type;     /* "ExecutionStarted", "TaskScheduled", "TimerFired", ... */
  const char *name;     /* orchestration, activity, event or sub-orchestration name, when the type has one */
  const char *payload;  /* input, result, event data or (suspend, resume, rewind) reason, when the type has one */
  int32_t task_id;      /* taskScheduledId / timerId of completion events, else -1 */
  const char *instance_id; /* target or child instance, when the type has one */
  int64_t fire_at_ms;   /* TimerCreated / TimerFired */
  dt_status status;     /* ExecutionCompleted; DT_STATUS_RUNNING (0) for other types */
  const dt_failure *failure;
} dt_event;

typedef struct dt_history {
  dt_event *events;
  size_t n;
} dt_history;

/* The committed history of an instance's current execution. Caller frees with dt_history_free(). */
int dt_client_history(dt_client *c, const char *instance_id, dt_history **out);
void dt_history_free(dt_history *h);

/* ------------------------------------------------------------------------------------------------ entities (client) */

/*
 * Durable entities, from a client: signal them, read them, list them, clean up after them (see taskhubd's
 * docs/entities.md). An entity id is "@name@key": the name non-empty and without '@', the key anything after
 * the second '@'. Entity names are case-insensitive: the other SDKs lowercase them, so every function here sends
 * the name part of an id lowercased (ASCII letters only), and "@Counter@k" and "@counter@k" are the same
 * entity. A malformed id is DT_ERR_INVALID_ARG before anything is sent. Thread-safe as the client is.
 */

/* "@name@key" with |name| lowercased, into *out (caller frees with dt_free()). DT_ERR_INVALID_ARG when |name| is
 * empty or holds '@', or |key| is NULL. */
int dt_make_entity_id(const char *name, const char *key, char **out);

/* Queues |operation| (non-empty) with |input| (NULL: none) for the entity, durably before the call returns.
 * signal_at_ms > 0 schedules it: the signal is queued at that time (a time already past queues it now). The
 * server needs no worker to accept it; it runs when a worker serving entities of that name takes it. */
int dt_client_signal_entity(dt_client *c, const char *entity_id, const char *operation, const char *input,
                            int64_t signal_at_ms);

/* What the server says about an entity. Caller frees with dt_entity_free(). */
typedef struct dt_entity {
  char *entity_id;          /* "@name@key" */
  bool exists;              /* it has state; false for one signalled whose operations have not run yet (or that
                             * deleted its state with operations still queued): "transient" */
  int64_t last_modified_ms;
  int32_t backlog;          /* operations queued for it, not yet run */
  char *locked_by;          /* the orchestration whose critical section holds it, NULL when unlocked */
  char *state;              /* its state (JSON), only when asked for and when it exists */
} dt_entity;

void dt_entity_free(dt_entity *e);

/* Reads an entity. DT_ERR_NOT_FOUND when the server has no record of it at all. A transient entity (signalled,
 * no state yet) is DT_OK with exists == false, so that its backlog and lock can be seen; servers that do not
 * describe transient entities answer DT_ERR_NOT_FOUND for them. */
int dt_client_get_entity(dt_client *c, const char *entity_id, bool include_state, dt_entity **out);

typedef struct dt_entity_query {
  const char *id_prefix;     /* NULL: all; "@name@" for the entities of one name (the name part is lowercased) */
  int64_t modified_from_ms;  /* 0: no lower bound */
  int64_t modified_to_ms;    /* 0: no upper bound */
  bool include_state;
  bool include_transient;    /* also entities without state (see dt_entity.exists) */
  int page_size;             /* 0: the server's default (taskhubd: 100, at most 1000) */
  const char *continuation;  /* NULL for the first page, then dt_entity_page.continuation */
} dt_entity_query;

typedef struct dt_entity_page {
  dt_entity **entities;      /* in id order (taskhubd) */
  size_t n;
  char *continuation;        /* NULL on the last page */
} dt_entity_page;

/* One page of entities. Caller frees with dt_entity_page_free(). A page may hold fewer than page_size and still
 * have a continuation. With include_transient but not include_state the server does not say which entities have
 * state, so the SDK asks a second time, without the transient ones and without state, to set exists right: two
 * calls, rather than moving every state over the wire. */
int dt_client_query_entities(dt_client *c, const dt_entity_query *q, dt_entity_page **out);
void dt_entity_page_free(dt_entity_page *p);

/* One page of entity storage cleaning: with |remove_empty|, records without state, lock or queued operations are
 * removed; with |release_orphaned_locks|, locks whose orchestration has finished or is gone are released.
 * |continuation|: NULL at first, then *next until it comes back NULL. *removed, *released (counts for this page)
 * and *next (caller frees with dt_free()) may each be NULL. */
int dt_client_clean_entity_storage(dt_client *c, bool remove_empty, bool release_orphaned_locks,
                                   const char *continuation, int *removed, int *released, char **next);

/*
 * A unary call of a method outside the Durable Task protocol, over the client's connection (its address, TLS and
 * deadline): |method| is the full path ("/taskhubd.admin.Admin/GetServerInfo", see taskhubd's
 * protos/taskhubd_admin.proto), |req| the packed request; on DT_OK *resp holds the packed response (caller frees
 * with dt_free()). A server without the method answers DT_ERR_UNSUPPORTED. timeout_ms 0: the client's default.
 */
int dt_client_call_raw(dt_client *c, const char *method, const uint8_t *req, size_t req_len, int timeout_ms,
                       uint8_t **resp, size_t *resp_len);

/* ------------------------------------------------------------------------------------------------ orchestrations */

typedef struct dt_orch_ctx dt_orch_ctx;
typedef struct dt_task dt_task;

/*
 * An orchestrator. Runs from the top for every work item; |input| is the orchestration input (NULL if none).
 * Its return value is the orchestration output (NULL: none); the SDK copies it, so a string from the context
 * or a static string are both fine. To fail the orchestration call dt_orch_fail(); to start over with a new
 * input, dt_continue_as_new(). Owned strings (ctx, input) live until the run ends.
 */
typedef const char *(*dt_orchestrator_fn)(dt_orch_ctx *ctx, const char *input, void *user_data);

/* Retries for activities and sub-orchestrations. */
typedef bool (*dt_retry_handler_fn)(const dt_failure *failure, int attempt, void *user_data);
typedef struct dt_retry_policy {
  int max_attempts;            /* including the first; >= 1 */
  int64_t first_delay_ms;      /* before the second attempt */
  double backoff;              /* delay multiplier per attempt (0 or 1: constant) */
  int64_t max_delay_ms;        /* cap on one delay (0: none) */
  int64_t max_total_ms;        /* give up after this long since the first attempt (0: no limit) */
  dt_retry_handler_fn handler; /* NULL: retry every failure; else retry while it returns true */
  void *handler_data;
} dt_retry_policy;

/* Scheduling. Each returns a task owned by the context (never NULL; never freed by the caller). Inputs are
 * copied. Names are what the other side registered. */
dt_task *dt_call_activity(dt_orch_ctx *ctx, const char *name, const char *input);
dt_task *dt_call_activity_retry(dt_orch_ctx *ctx, const char *name, const char *input,
                                const dt_retry_policy *policy);
/* instance_id NULL: "<parent id>:<4 hex digits of the action id>", as the other SDKs do. */
dt_task *dt_call_sub_orchestrator(dt_orch_ctx *ctx, const char *name, const char *instance_id, const char *input);
dt_task *dt_call_sub_orchestrator_retry(dt_orch_ctx *ctx, const char *name, const char *instance_id,
                                        const char *input, const dt_retry_policy *policy);
/* A durable timer that fires at |fire_at_ms| (absolute) or after |delay_ms| of orchestration time. */
dt_task *dt_create_timer(dt_orch_ctx *ctx, int64_t fire_at_ms);
dt_task *dt_create_timer_in(dt_orch_ctx *ctx, int64_t delay_ms);
/* The next external event named |name| (matched case-insensitively; events are buffered in arrival order). */
dt_task *dt_wait_event(dt_orch_ctx *ctx, const char *name);
/* Completes when all |tasks| have; fails with the first failure, once all are done. */
dt_task *dt_when_all(dt_orch_ctx *ctx, dt_task *const *tasks, size_t n);
/* Completes when any of |tasks| has; dt_task_winner() then says which. Waits on event tasks that lose are
 * cancelled, so a later event goes to the next wait. A task can be given to one when_all/when_any only. */
dt_task *dt_when_any(dt_orch_ctx *ctx, dt_task *const *tasks, size_t n);
/* Fire-and-forget: an external event to another instance. */
void dt_send_event(dt_orch_ctx *ctx, const char *instance_id, const char *name, const char *data);

/* Waits for a task. Returns its result (NULL when it has none). When the history does not have it yet, the
 * run ends here. When it failed, the orchestration fails too (as an uncaught exception would). */
const char *dt_await(dt_orch_ctx *ctx, dt_task *t);
/* Like dt_await(), but a failure is returned rather than raised: DT_OK with *result set, or DT_ERR_TASK_FAILED
 * (see dt_task_failure()). |result| may be NULL. This is how compensation is written. */
int dt_await_result(dt_orch_ctx *ctx, dt_task *t, const char **result);

bool dt_task_is_done(const dt_task *t);
/* The failure of a failed task, else NULL. Owned by the context. */
const dt_failure *dt_task_failure(const dt_task *t);
/* For a task from dt_when_any(): the child that completed first, else NULL. */
dt_task *dt_task_winner(const dt_task *t);
/* The result of a completed task (NULL while pending, failed, or without a result). */
const char *dt_task_result(const dt_task *t);

/* Ends the orchestration now with FAILED and these details (does not return). */
__attribute__((noreturn)) void dt_orch_fail(dt_orch_ctx *ctx, const char *error_type, const char *message);
/* Ends this execution and starts a new one with |input| (does not return). With |keep_events|, external
 * events received but not yet waited for are carried over to the new execution. */
__attribute__((noreturn)) void dt_continue_as_new(dt_orch_ctx *ctx, const char *input, bool keep_events);

/* Shown to clients while the orchestration runs (NULL clears it). Copied. */
void dt_set_custom_status(dt_orch_ctx *ctx, const char *status);

/* Replay-safe facts about the run. */
int64_t dt_now_ms(const dt_orch_ctx *ctx);
bool dt_is_replaying(const dt_orch_ctx *ctx);
const char *dt_instance_id(const dt_orch_ctx *ctx);
const char *dt_orchestration_name(const dt_orch_ctx *ctx);
const char *dt_orchestration_version(const dt_orch_ctx *ctx); /* NULL when unversioned */
const char *dt_parent_instance_id(const dt_orch_ctx *ctx);    /* NULL unless a sub-orchestration */
/* A deterministic UUID (the same sequence on every replay, and the same as the Python and JS SDKs give for
 * the same instance, time and call count). Owned by the context. */
const char *dt_new_uuid(dt_orch_ctx *ctx);

/* Memory that lives until the run ends. */
void *dt_ctx_alloc(dt_orch_ctx *ctx, size_t n);
char *dt_ctx_strdup(dt_orch_ctx *ctx, const char *s);
char *dt_ctx_printf(dt_orch_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------------------------ entities (orchestrations) */

/*
 * Entities from an orchestrator (see taskhubd's docs/entities.md). Entity ids are "@name@key" as for the client
 * calls; the name part is lowercased; a malformed id fails the orchestration (InvalidArgument). Each call, signal,
 * lock request and unlock is an action recorded in the history, so all of them replay like activities do.
 */

/* Calls |operation| on the entity with |input| (NULL: none): a task completed with the operation's result, or
 * failed with its failure details (dt_await fails the orchestration with TaskFailedError; dt_await_result returns
 * DT_ERR_TASK_FAILED and dt_task_failure() has the entity's error type and message). Inside a critical section
 * only the locked entities may be called, one call at a time each. */
dt_task *dt_call_entity(dt_orch_ctx *ctx, const char *entity_id, const char *operation, const char *input);
/* One-way: queues |operation| for the entity (signal_at_ms > 0: not before that time). Not to an entity the
 * orchestration has locked. */
void dt_signal_entity(dt_orch_ctx *ctx, const char *entity_id, const char *operation, const char *input,
                      int64_t signal_at_ms);
/* Opens a critical section: a task that completes when all |n| (1 to 100) entities are locked for this
 * orchestration. The ids are sorted and duplicates dropped (the global order that keeps two sections from waiting
 * for each other). One section at a time: no lock request inside a critical section. */
dt_task *dt_lock_entities(dt_orch_ctx *ctx, const char *const *entity_ids, size_t n);
/* Closes the critical section: unlocks every entity it locked. A no-op outside one. An orchestration that
 * completes, fails or continues as new inside a critical section closes it first. */
void dt_unlock_entities(dt_orch_ctx *ctx);
/* Whether a critical section is open (requested, granted or not). */
bool dt_in_critical_section(const dt_orch_ctx *ctx);

/* ------------------------------------------------------------------------------------------------ activities */

typedef struct dt_activity_ctx dt_activity_ctx;

/*
 * An activity: ordinary code, run at least once per scheduling (make it idempotent). Returns its result
 * (NULL: none), which the SDK copies. To fail, call dt_activity_fail() and return NULL. Runs on the worker's
 * activity threads; several may run at once.
 */
typedef const char *(*dt_activity_fn)(dt_activity_ctx *ctx, const char *input, void *user_data);

void dt_activity_fail(dt_activity_ctx *ctx, const char *error_type, const char *message);
const char *dt_activity_instance_id(const dt_activity_ctx *ctx);
const char *dt_activity_name(const dt_activity_ctx *ctx);
int32_t dt_activity_task_id(const dt_activity_ctx *ctx);
/* Memory that lives until the activity returns. */
char *dt_activity_printf(dt_activity_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *dt_activity_alloc(dt_activity_ctx *ctx, size_t n);

/* ------------------------------------------------------------------------------------------------ entities (worker) */

typedef struct dt_entity_ctx dt_entity_ctx;

/*
 * An entity: runs one operation on the entity's state. |operation| is the operation's name (as sent), |input| its
 * input (NULL: none). Returns the operation's result (NULL: none), which the SDK copies. The state is read with
 * dt_entity_state() and changed with dt_entity_set_state()/dt_entity_delete_state(); to fail the operation call
 * dt_entity_fail() and return NULL: the state changes, signals and starts of a failed operation are rolled back,
 * and the caller (an orchestration's dt_call_entity) gets the failure. The operations of a batch run one after
 * the other on one of the worker's activity threads, each seeing the state the previous one left; entities of
 * different ids run in parallel, so |user_data| shared between them needs its own locking.
 * Strings from the context (ids, state, operation, input, dt_entity_printf) live until the batch is answered.
 */
typedef const char *(*dt_entity_fn)(dt_entity_ctx *ctx, const char *operation, const char *input,
                                    void *user_data);

const char *dt_entity_id(const dt_entity_ctx *ctx);   /* "@name@key" */
const char *dt_entity_name(const dt_entity_ctx *ctx); /* the name part, lowercased */
const char *dt_entity_key(const dt_entity_ctx *ctx);
/* The current state (JSON), NULL when the entity has none. */
const char *dt_entity_state(const dt_entity_ctx *ctx);
/* Replaces the state with a copy of |state| (NULL: deletes it, as dt_entity_delete_state). An entity left without
 * state after a batch is deleted. */
void dt_entity_set_state(dt_entity_ctx *ctx, const char *state);
void dt_entity_delete_state(dt_entity_ctx *ctx);
/* Fails the operation being run (return NULL after it): its changes are rolled back; later operations still run. */
void dt_entity_fail(dt_entity_ctx *ctx, const char *error_type, const char *message);
/* Queues |operation| for another entity (or this one) once the batch commits; signal_at_ms > 0 schedules it.
 * DT_ERR_INVALID_ARG for a malformed id or an empty operation, DT_ERR_NOMEM. */
int dt_entity_signal(dt_entity_ctx *ctx, const char *entity_id, const char *operation, const char *input,
                     int64_t signal_at_ms);
/* Starts an orchestration once the batch commits (an instance id in use is left alone). |instance_id| NULL or "":
 * a random one; *instance_id_out (may be NULL) receives the id, owned by the context. */
int dt_entity_start_orchestration(dt_entity_ctx *ctx, const char *name, const char *instance_id, const char *input,
                                  const char **instance_id_out);
/* Memory that lives until the batch is answered. */
char *dt_entity_printf(dt_entity_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *dt_entity_alloc(dt_entity_ctx *ctx, size_t n);

/* ------------------------------------------------------------------------------------------------ worker */

typedef struct dt_worker dt_worker;

typedef struct dt_worker_options {
  dt_conn_options conn;
  int activity_threads;        /* 0: 4 */
  int max_orchestrations;      /* work items of each kind in flight, as told to the server (0: 100) */
  int max_activities;
  int max_entities;            /* entity batches in flight (0: 100); asked for only when entities are registered */
} dt_worker_options;

/* CONSTRUCTOR. |target| as for dt_client_open (NULL: dt_default_target()). |opt| may be NULL. Register everything
 * before dt_worker_start(). */
int dt_worker_new(const char *target, const dt_worker_options *opt, dt_worker **out);
/* Names must be unique per kind; |user_data| is passed to every call. DT_ERR_STATE once started. */
int dt_worker_add_orchestrator(dt_worker *w, const char *name, dt_orchestrator_fn fn, void *user_data);
int dt_worker_add_activity(dt_worker *w, const char *name, dt_activity_fn fn, void *user_data);
/* An entity named |name| (non-empty, no '@'; lowercased, as entity names are case-insensitive): the worker then
 * asks the server for the batches of entities of that name. DT_ERR_EXISTS for a name already registered. */
int dt_worker_add_entity(dt_worker *w, const char *name, dt_entity_fn fn, void *user_data);
/* Connects and starts processing on background threads; reconnects with backoff when the server goes away.
 * The worker asks the server only for the orchestrators, activities and entities registered with it, so workers
 * in other languages can serve the rest of the same task hub. DT_ERR_NOMEM when its threads cannot be created:
 * nothing is left running then, and the worker can be started again. */
int dt_worker_start(dt_worker *w);
/* Stops: finishes the work item being applied, abandons what it will not run, joins the threads. */
void dt_worker_stop(dt_worker *w);
/* DESTRUCTOR (stops first if needed). NULL is a no-op. */
void dt_worker_free(dt_worker *w);

#ifdef __cplusplus
}
#endif

#endif
