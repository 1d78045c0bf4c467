/*
 * Shared helpers for the integration tests: a running server plus a client (it_env), typed wrappers for the
 * TaskHubSidecarService RPCs that assert the transport-level basics, and store snapshots for "nothing changed"
 * checks.
 */
#ifndef TH_IT_H
#define TH_IT_H

#include "orchestrator_service.pb-c.h"
#include "support/th_client.h"
#include "support/th_server.h"
#include "test.h"

#define IT_SVC "/TaskHubSidecarService/"
#define IT_TIMEOUT_MS 10000

#define PENDING ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING
#define RUNNING ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING
#define COMPLETED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED
#define FAILED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED
#define TERMINATED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED
#define SUSPENDED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED
#define CANCELED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CANCELED

/* Asserts a gRPC status, printing the status names and the message on failure. */
#define ASSERT_STATUS(got, want, details)                                                      \
  do {                                                                                         \
    grpc_status_code g_ = (got), w_ = (want);                                                  \
    if (g_ != w_)                                                                              \
      TEST_FAIL("status %s, expected %s (message: \"%s\")", th_status_name(g_), th_status_name(w_), \
                (details) ? (const char *)(details) : "");                                     \
  } while (0)

typedef struct it_env {
  th_server srv;
  th_client *cli;
} it_env;

/* Starts a server with the NULL-terminated extra args and connects; returns 0 or TEST_SKIP. */
int it_setup(it_env *e, const char *const *extra_args);
/* Closes the client, stops the server (asserting exit 0 and a clean log) and removes its directory. */
void it_teardown(it_env *e);
/* SIGKILLs the server, restarts it on the same data dir and reconnects. */
void it_kill_restart(it_env *e);

/* StartInstance; *id_out (malloc()ed) receives the returned id when OK. */
grpc_status_code it_start_req(th_client *c, const CreateInstanceRequest *req, char **id_out, char **details);
/* StartInstance(id, name, input?) that must succeed; returns the id (malloc()ed). */
char *it_start(th_client *c, const char *id, const char *name, const char *input);
/* GetInstance that must succeed at the transport level. Free with it_free. */
GetInstanceResponse *it_get(th_client *c, const char *id, int with_io);
/* The instance's status, or -1 when it does not exist. */
int it_status(th_client *c, const char *id);
int it_exists(th_client *c, const char *id);

grpc_status_code it_terminate(th_client *c, const char *id, const char *output, char **details);
grpc_status_code it_raise(th_client *c, const char *id, const char *name, const char *input, char **details);
grpc_status_code it_suspend(th_client *c, const char *id, char **details);
grpc_status_code it_resume(th_client *c, const char *id, char **details);
grpc_status_code it_purge_one(th_client *c, const char *id, int32_t *deleted, int *complete, char **details);

/* Frees any unpacked protobuf-c message (NULL is fine). */
void it_free(void *msg);

/* A list of strings. */
typedef struct it_strs {
  char **v;
  size_t n, cap;
} it_strs;
void it_strs_add(it_strs *l, const char *s);
void it_strs_free(it_strs *l);
void it_strs_sort(it_strs *l);
int it_strs_contains(const it_strs *l, const char *s);
/* Asserts that both lists hold the same strings (after sorting copies); names the first difference. */
void it_assert_same_set(const it_strs *a, const it_strs *b, const char *what);

/*
 * Runs QueryInstances over every page. q is used as the template (its continuationToken is overwritten).
 * Asserts the paging rules: page size <= the asked maximum (or 100 when 0), tokens never "" or "0", never
 * repeated, absent on the last page; at most max_pages pages. Appends every returned id to ids (and, when
 * states is not NULL, one "id|status" line per instance to states).
 */
void it_query_all(th_client *c, InstanceQuery *q, it_strs *ids, it_strs *states, int max_pages);
/* The same through another method taking a QueryInstancesRequest (taskhubd.admin.Admin/QueryInstancesReversed). */
void it_query_all_by(th_client *c, const char *method, InstanceQuery *q, it_strs *ids, it_strs *states,
                     int max_pages);

/* A printable canonical dump of every instance (query all + GetInstance with inputs), sorted. */
char *it_snapshot(th_client *c);
/* Asserts the snapshot equals an earlier one. */
void it_assert_snapshot(th_client *c, const char *before, const char *what);

/* Timestamps. */
Google__Protobuf__Timestamp it_ts_now(void);
Google__Protobuf__Timestamp it_ts_from_ms(long long ms);
long long it_ts_ms(const Google__Protobuf__Timestamp *t);
int it_ts_cmp(const Google__Protobuf__Timestamp *a, const Google__Protobuf__Timestamp *b);

/* A string of n copies of ch (malloc()ed). */
char *it_repeat(char ch, size_t n);
/* 1 if s is exactly n lowercase hex characters. */
int it_is_lower_hex(const char *s, size_t n);
/* Name of an orchestration status. */
const char *it_status_name(int st);

#endif
