/*
 * Helpers for the hostile-input tests: a growable protobuf writer for requests no SDK would build (nesting
 * 10,000 deep, bytes that are not UTF-8, out-of-range timestamps), and a scripted worker on raw streams.
 */
#ifndef TH_HX_H
#define TH_HX_H

#include "it.h"
#include "support/th_stream.h"

typedef struct hx_buf {
  uint8_t *b;
  size_t n, cap;
} hx_buf;

void hx_varint(hx_buf *p, uint64_t v);
void hx_tag(hx_buf *p, unsigned field, unsigned wire_type);
/* field as a length-delimited record holding len bytes. */
void hx_bytes(hx_buf *p, unsigned field, const void *data, size_t len);
void hx_str(hx_buf *p, unsigned field, const char *s);
/* field as a varint. */
void hx_uint(hx_buf *p, unsigned field, uint64_t v);
/* field as a message holding inner's bytes. */
void hx_msg(hx_buf *p, unsigned field, const hx_buf *inner);
void hx_free(hx_buf *p);

/* Sends the bytes to method and returns the status (details malloc()ed, may be NULL). */
grpc_status_code hx_send(th_client *c, const char *method, const hx_buf *p, char **details);
/* Hello answers OK: the server is alive. */
void hx_assert_alive(th_client *c);

/* The server's current log (log-<starts-1>.txt), malloc()ed. */
char *hx_server_log(const th_server *s);

/* The resident memory of process |pid| in kB (VmRSS). */
long hx_rss_kb(pid_t pid);
/* A TCP port nobody listens on now. */
int hx_free_port(void);
/* GET http://127.0.0.1:port/path: the body (malloc()ed), the status in *code. */
char *hx_http_get(int port, const char *path, int *code);
/* The value of an unlabelled metric on the ops port. */
double hx_metric(int port, const char *name);

/* ---- bulk ---- */

/* Runs |n| unary calls, 128 at a time, each answering OK; make(i, ctx) returns request i (valid until the next
 * make). */
typedef const ProtobufCMessage *(*hx_make_fn)(int i, void *ctx);
void hx_pipeline(th_client *c, const char *method, int n, hx_make_fn make, void *ctx);

/* ---- a scripted worker ---- */

/* Memory for hand-built messages, freed at once. */
typedef struct hx_arena {
  void **p;
  size_t n, cap;
} hx_arena;
void *hx_alloc(hx_arena *a, size_t n);
char *hx_strdup(hx_arena *a, const char *s);
void hx_arena_free(hx_arena *a);

/* A client (its own connection, a fixed 64 KB receive window) for a worker that stops reading. */
th_client *hx_lazy_client(int port);

/* Takes orchestration work items from |w| and completes each (over |c|) until |n| were taken or |wait_ms| passes
 * without one; returns how many. */
int hx_drain(th_client *c, th_stream *w, int n, int wait_ms);

/* Opens GetWorkItems. limits of 0 send nothing; names: NULL-terminated filter lists (NULL: no filters). */
th_stream *hx_worker(th_client *c, int max_orch, int max_act, const char *const *orchestrations,
                     const char *const *activities, int history_streaming);
/* The next orchestration (or activity) work item within wait_ms; aborts the test on anything else. */
WorkItem *hx_expect_orch(th_stream *s, int wait_ms, const char *what);
WorkItem *hx_expect_act(th_stream *s, int wait_ms, const char *what);

/* Actions. */
OrchestratorAction *hx_schedule(hx_arena *a, int32_t id, const char *name, const char *input);
OrchestratorAction *hx_timer(hx_arena *a, int32_t id, long long fire_at_ms);
OrchestratorAction *hx_sub(hx_arena *a, int32_t id, const char *name, const char *iid);
OrchestratorAction *hx_finish(hx_arena *a, int32_t id, int status, const char *result);

grpc_status_code hx_complete_orch(th_client *c, const char *token, const char *iid, OrchestratorAction **acts,
                                  size_t n, const char *custom_status, char **details);
grpc_status_code hx_complete_act(th_client *c, const char *token, const char *iid, int32_t task_id,
                                 const char *result, char **details);

/* A redelivered orchestration: completing it with the superseded token is refused (NOT_FOUND), with the new one
 * it completes, and the instance's output is the new completion's. */
void hx_expect_superseded(th_client *c, const char *iid, const char *old_token, const char *new_token);

/* WaitForInstanceCompletion with a deadline; the state (caller frees with it_free) or aborts on timeout. */
GetInstanceResponse *hx_wait_done(th_client *c, const char *iid, int wait_ms);
/* The instance's history by StreamInstanceHistory; events owned by the returned chunks (hx_history_free). */
typedef struct hx_hist {
  HistoryEvent **ev;
  size_t n;
  HistoryChunk **chunks;
  size_t nchunks;
} hx_hist;
void hx_history(th_client *c, const char *iid, hx_hist *h);
void hx_history_free(hx_hist *h);
/* Events of one type in it. */
size_t hx_count(const hx_hist *h, int type);

#endif
