/*
 * The worker: one GetWorkItems stream (reconnected with backoff), orchestrator turns replayed on the stream's
 * thread, activities on a pool, and completions sent asynchronously so that neither waits for the server's
 * commit before taking the next work item. The stream and the completions share one completion queue that
 * only the stream thread polls: with a second polling thread, gRPC wakes one thread for the other's events,
 * a hand-off on every step of an orchestration.
 */
#include "internal.h"
#include "tsan.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define M_HELLO "/TaskHubSidecarService/Hello"
#define M_GET_WORK "/TaskHubSidecarService/GetWorkItems"
#define M_DONE_ORCH "/TaskHubSidecarService/CompleteOrchestratorTask"
#define M_DONE_ACT "/TaskHubSidecarService/CompleteActivityTask"
#define M_ABANDON_ACT "/TaskHubSidecarService/AbandonTaskActivityWorkItem"
#define M_ABANDON_ORCH "/TaskHubSidecarService/AbandonTaskOrchestratorWorkItem"
#define M_HISTORY "/TaskHubSidecarService/StreamInstanceHistory"
#define M_DONE_ENT "/TaskHubSidecarService/CompleteEntityTask"
#define M_ABANDON_ENT "/TaskHubSidecarService/AbandonTaskEntityWorkItem"

struct activity {
  char *name;
  dt_activity_fn fn;
  void *user_data;
};

struct job {
  WorkItem *wi;
  struct job *next;
};

struct dt_worker {
  char *target;
  dt_worker_options opt;
  dt__conn conn;
  struct dt__orchestrator *orchs;
  size_t n_orchs, cap_orchs;
  struct activity *acts;
  size_t n_acts, cap_acts;
  struct dt__entity *ents;
  size_t n_ents, cap_ents;
  bool started, stopped;

  pthread_mutex_t mu;
  pthread_cond_t cv;       /* jobs queued, stop requested */
  bool stopping;
  struct job *qh, *qt;     /* activities and entity batches waiting for a pool thread */
  grpc_call *stream;       /* the current GetWorkItems call, to cancel on stop */
  int inflight;            /* asynchronous completions not yet answered */

  pthread_t stream_thread;
  pthread_t *pool;
  int n_pool;
  grpc_completion_queue *cq; /* the stream's operations and every asynchronous completion */
};

/* ------------------------------------------------------------------ asynchronous sends */

enum { TAG_STREAM, TAG_ASYNC };

struct async_call {
  int tag_kind; /* TAG_ASYNC; first, so that a completion-queue tag tells its kind */
  grpc_call *call;
  grpc_byte_buffer *req, *resp;
  grpc_metadata_array imd, tmd;
  grpc_status_code status;
  grpc_slice details;
  const char *method;
};

static void async_done(dt_worker *w, struct async_call *a);

/* Sends a packed request without waiting for the answer; takes ownership of |buf|. */
static void send_async(dt_worker *w, const char *method, uint8_t *buf, size_t len)
{
  struct async_call *a = calloc(1, sizeof *a);
  if (!a) {
    free(buf);
    DT_ERROR("out of memory sending %s", method);
    return;
  }
  a->tag_kind = TAG_ASYNC;
  a->method = method;
  grpc_metadata_array_init(&a->imd);
  grpc_metadata_array_init(&a->tmd);
  a->details = grpc_empty_slice();
  grpc_slice sl = grpc_slice_new(buf, len, free);
  a->req = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(w->conn.call_timeout_ms, GPR_TIMESPAN));
  a->call = grpc_channel_create_call(w->conn.ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                     grpc_slice_from_static_string(method), NULL, deadline, NULL);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  dt__conn_initial_md(&w->conn, &ops[0]);
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = a->req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &a->imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &a->resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &a->tmd;
  ops[5].data.recv_status_on_client.status = &a->status;
  ops[5].data.recv_status_on_client.status_details = &a->details;
  pthread_mutex_lock(&w->mu);
  w->inflight++;
  pthread_mutex_unlock(&w->mu);
  /* Its completion is finished (and |a| freed) by whichever thread polls the queue: nothing of |a| is read once
   * the batch is started. */
  grpc_call *call = a->call;
  DT__TSAN_RELEASE(a);
  grpc_call_error e = grpc_call_start_batch(call, ops, 6, a, NULL);
  if (e != GRPC_CALL_OK) {
    /* No completion will ever come for it, so it is finished here: dt_worker_stop waits for inflight == 0. The
     * server keeps the lease and redelivers the item after the stream's grace period. */
    DT_ERROR("cannot start %s: grpc_call_start_batch returned %d", method, (int)e);
    a->status = GRPC_STATUS_OK; /* nothing to report twice */
    async_done(w, a);
  }
}

/* Finishes an asynchronous completion once the server answered (or the call failed). */
static void async_done(dt_worker *w, struct async_call *a)
{
  if (a->status != GRPC_STATUS_OK) {
    /* The server keeps the lease; it redelivers the item after the stream's grace period. */
    char *d = grpc_slice_to_c_string(a->details);
    DT_WARN("%s failed: %s (%s)", a->method, dt_strerror(dt__from_grpc(a->status)), d);
    gpr_free(d);
  }
  grpc_byte_buffer_destroy(a->req);
  if (a->resp)
    grpc_byte_buffer_destroy(a->resp);
  grpc_metadata_array_destroy(&a->imd);
  grpc_metadata_array_destroy(&a->tmd);
  grpc_slice_unref(a->details);
  grpc_call_unref(a->call);
  free(a);
  pthread_mutex_lock(&w->mu);
  w->inflight--;
  pthread_mutex_unlock(&w->mu);
}

/* Polls the queue until |tag| completes or |deadline| passes, finishing completions that arrive meanwhile.
 * Returns 1 when |tag| succeeded, 0 when it failed, -1 at the deadline; with no |tag|, 2 after one
 * completion. */
static int poll_until(dt_worker *w, const void *tag, gpr_timespec deadline)
{
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, deadline, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT || ev.type == GRPC_QUEUE_SHUTDOWN)
      return -1;
    DT__TSAN_ACQUIRE(ev.tag);
    if (ev.tag == tag)
      return ev.success ? 1 : 0;
    if (*(const int *)ev.tag == TAG_ASYNC) {
      async_done(w, ev.tag);
      if (!tag)
        return 2;
    }
  }
}

static void send_msg(dt_worker *w, const char *method, const ProtobufCMessage *m)
{
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) {
    DT_ERROR("out of memory sending %s", method);
    return;
  }
  protobuf_c_message_pack(m, buf);
  send_async(w, method, buf, len);
}

/* ------------------------------------------------------------------ orchestrations */

/* The past events of a work item that requires history streaming, as the chunks that hold them. */
struct past {
  HistoryChunk **chunks;
  size_t n_chunks, cap_chunks;
  size_t n_events;
  HistoryEvent **events; /* all of them, in order, pointing into the chunks */
};

static int on_past_chunk(ProtobufCMessage *m, void *arg)
{
  struct past *p = arg;
  HistoryChunk *ch = (HistoryChunk *)m;
  if (p->n_chunks == p->cap_chunks) {
    size_t cap = p->cap_chunks ? p->cap_chunks * 2 : 8;
    HistoryChunk **c = realloc(p->chunks, cap * sizeof *c);
    if (!c) {
      protobuf_c_message_free_unpacked(m, NULL);
      return DT_ERR_NOMEM;
    }
    p->chunks = c;
    p->cap_chunks = cap;
  }
  p->chunks[p->n_chunks++] = ch;
  p->n_events += ch->n_events;
  return DT_OK;
}

static void past_free(struct past *p)
{
  for (size_t i = 0; i < p->n_chunks; i++)
    history_chunk__free_unpacked(p->chunks[i], NULL);
  free(p->chunks);
  free(p->events);
  memset(p, 0, sizeof *p);
}

/* Fetches the history the server left out of |r| (requiresHistoryStreaming): StreamInstanceHistory for the work
 * item's execution. Runs on the stream thread, which has nothing else to do until this work item is replayed; the
 * call has a completion queue of its own (dt__server_stream), so answers to completions wait in the shared one. */
static int fetch_past(dt_worker *w, const OrchestratorRequest *r, struct past *p)
{
  StreamInstanceHistoryRequest req = STREAM_INSTANCE_HISTORY_REQUEST__INIT;
  req.instanceid = r->instanceid;
  req.executionid = r->executionid;
  req.forworkitemprocessing = true;
  int rc = dt__server_stream(&w->conn, M_HISTORY, &req.base, &history_chunk__descriptor, 0, on_past_chunk, p);
  if (rc != DT_OK)
    return rc;
  p->events = malloc((p->n_events ? p->n_events : 1) * sizeof *p->events);
  if (!p->events)
    return DT_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < p->n_chunks; i++)
    for (size_t j = 0; j < p->chunks[i]->n_events; j++)
      p->events[k++] = p->chunks[i]->events[j];
  return DT_OK;
}

/* Gives a work item back to the server now (it redelivers it, with a backoff if this repeats), rather than
 * completing it wrongly or leaving it to the lease timeout. */
static void abandon_orchestration(dt_worker *w, const WorkItem *wi)
{
  AbandonOrchestrationTaskRequest ab = ABANDON_ORCHESTRATION_TASK_REQUEST__INIT;
  ab.completiontoken = wi->completiontoken;
  send_msg(w, M_ABANDON_ORCH, &ab.base);
}

static void run_orchestration(dt_worker *w, WorkItem *wi)
{
  OrchestratorRequest *r = wi->orchestratorrequest;
  HistoryEvent **sent = r->pastevents; /* nothing, when the history is streamed */
  size_t n_sent = r->n_pastevents;
  struct past past;
  memset(&past, 0, sizeof past);
  if (r->requireshistorystreaming) {
    int rc = fetch_past(w, r, &past);
    if (rc != DT_OK) {
      DT_WARN("%s: fetching the history failed: %s; abandoning the work item", r->instanceid, dt_strerror(rc));
      past_free(&past);
      abandon_orchestration(w, wi);
      return;
    }
    r->pastevents = past.events; /* borrowed for the replay; put back before the work item is freed */
    r->n_pastevents = past.n_events;
  }
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = dt__replay(w->orchs, w->n_orchs, r, wi->completiontoken, &buf, &len);
  r->pastevents = sent;
  r->n_pastevents = n_sent;
  past_free(&past);
  if (rc != DT_OK) {
    DT_ERROR("%s: replay failed: %s; abandoning the work item", r->instanceid, dt_strerror(rc));
    abandon_orchestration(w, wi);
    return;
  }
  send_async(w, M_DONE_ORCH, buf, len);
}

/* ------------------------------------------------------------------ activities */

struct dt_activity_ctx {
  dt__arena arena;
  const ActivityRequest *req;
  bool failed;
  const char *error_type, *message;
};

void dt_activity_fail(dt_activity_ctx *ctx, const char *error_type, const char *message)
{
  ctx->failed = true;
  ctx->error_type = dt__arena_strdup(&ctx->arena, error_type ? error_type : "Error");
  ctx->message = dt__arena_strdup(&ctx->arena, message ? message : "");
}

const char *dt_activity_instance_id(const dt_activity_ctx *ctx)
{
  return ctx->req->orchestrationinstance ? ctx->req->orchestrationinstance->instanceid : "";
}

const char *dt_activity_name(const dt_activity_ctx *ctx)
{
  return ctx->req->name;
}

int32_t dt_activity_task_id(const dt_activity_ctx *ctx)
{
  return ctx->req->taskid;
}

char *dt_activity_printf(dt_activity_ctx *ctx, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *p = dt__arena_vprintf(&ctx->arena, fmt, ap);
  va_end(ap);
  return p;
}

void *dt_activity_alloc(dt_activity_ctx *ctx, size_t n)
{
  void *p = dt__arena_alloc(&ctx->arena, n);
  if (p)
    memset(p, 0, n);
  return p;
}

static void run_activity(dt_worker *w, WorkItem *wi)
{
  const ActivityRequest *r = wi->activityrequest;
  dt_activity_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  dt__arena_init(&ctx.arena);
  ctx.req = r;
  const struct activity *a = NULL;
  for (size_t i = 0; i < w->n_acts && !a; i++)
    if (strcmp(w->acts[i].name, r->name) == 0)
      a = &w->acts[i];
  const char *result = NULL;
  if (!a) {
    ctx.failed = true;
    ctx.error_type = "ActivityNotRegistered";
    ctx.message = dt_activity_printf(&ctx, "no activity named '%s' is registered with this worker", r->name);
  } else {
    const char *in = r->input ? r->input->value : NULL;
    result = a->fn(&ctx, in && *in ? in : NULL, a->user_data);
  }
  ActivityResponse resp = ACTIVITY_RESPONSE__INIT;
  Google__Protobuf__StringValue res = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  TaskFailureDetails fd = TASK_FAILURE_DETAILS__INIT;
  resp.instanceid = r->orchestrationinstance ? r->orchestrationinstance->instanceid : (char *)"";
  resp.taskid = r->taskid;
  resp.completiontoken = wi->completiontoken;
  if (ctx.failed) {
    fd.errortype = (char *)ctx.error_type;
    fd.errormessage = (char *)(ctx.message ? ctx.message : "");
    resp.failuredetails = &fd;
  } else if (result) {
    res.value = (char *)result;
    resp.result = &res;
  }
  send_msg(w, M_DONE_ACT, &resp.base);
  dt__arena_free(&ctx.arena);
}

/* ------------------------------------------------------------------ entities */

static void abandon_entity(dt_worker *w, const WorkItem *wi)
{
  AbandonEntityTaskRequest ab = ABANDON_ENTITY_TASK_REQUEST__INIT;
  ab.completiontoken = wi->completiontoken;
  send_msg(w, M_ABANDON_ENT, &ab.base);
}

static void run_entity(dt_worker *w, WorkItem *wi)
{
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = dt__run_entity_batch(w->ents, w->n_ents, wi, &buf, &len);
  if (rc != DT_OK) {
    DT_ERROR("entity batch for %s failed: %s; abandoning the work item",
             wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST ? wi->entityrequest->instanceid
                                                                   : wi->entityrequestv2->instanceid,
             dt_strerror(rc));
    abandon_entity(w, wi);
    return;
  }
  send_async(w, M_DONE_ENT, buf, len);
}

static void *pool_main(void *arg)
{
  dt_worker *w = arg;
  for (;;) {
    pthread_mutex_lock(&w->mu);
    while (!w->qh && !w->stopping)
      pthread_cond_wait(&w->cv, &w->mu);
    if (w->stopping) {
      pthread_mutex_unlock(&w->mu);
      break;
    }
    struct job *j = w->qh;
    w->qh = j->next;
    if (!w->qh)
      w->qt = NULL;
    pthread_mutex_unlock(&w->mu);
    if (j->wi->request_case == WORK_ITEM__REQUEST_ACTIVITY_REQUEST)
      run_activity(w, j->wi);
    else
      run_entity(w, j->wi);
    work_item__free_unpacked(j->wi, NULL);
    free(j);
  }
  return NULL;
}

static void enqueue_job(dt_worker *w, WorkItem *wi)
{
  struct job *j = malloc(sizeof *j);
  if (!j) {
    DT_ERROR("out of memory queueing a work item");
    work_item__free_unpacked(wi, NULL);
    return;
  }
  j->wi = wi;
  j->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->qt)
    w->qt->next = j;
  else
    w->qh = j;
  w->qt = j;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* ------------------------------------------------------------------ the stream */

/* The stream that delivered the queued items has ended: their tokens went with it (a restarted server knows none
 * of them, a live one gave the work back to the queue when the stream closed and hands it out again), so running
 * them would only do the work twice. Items already running finish; their completions may still count. */
static void drop_queued(dt_worker *w)
{
  pthread_mutex_lock(&w->mu);
  struct job *j = w->qh;
  w->qh = w->qt = NULL;
  pthread_mutex_unlock(&w->mu);
  size_t n = 0;
  while (j) {
    struct job *next = j->next;
    work_item__free_unpacked(j->wi, NULL);
    free(j);
    j = next;
    n++;
  }
  if (n)
    DT_INFO("dropped %zu queued work item%s of the ended work-item stream: the server hands them out again", n,
            n == 1 ? "" : "s");
}

static bool is_stopping(dt_worker *w)
{
  pthread_mutex_lock(&w->mu);
  bool stopping = w->stopping;
  pthread_mutex_unlock(&w->mu);
  return stopping;
}

/* Waits up to |ms| or until stop is requested, still finishing completions; true when stopping. Stop cannot
 * wake a completion-queue wait, so it is looked at every 50 ms. */
static bool pause_ms(dt_worker *w, int ms)
{
  gpr_timespec end = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
  while (!is_stopping(w)) {
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(now, end) >= 0)
      return false;
    gpr_timespec slice = gpr_time_add(now, gpr_time_from_millis(50, GPR_TIMESPAN));
    poll_until(w, NULL, gpr_time_cmp(slice, end) < 0 ? slice : end);
  }
  return true;
}

static const int stream_tag = TAG_STREAM;

static bool batch(dt_worker *w, grpc_call *call, const grpc_op *ops, size_t n)
{
  if (grpc_call_start_batch(call, ops, n, (void *)&stream_tag, NULL) != GRPC_CALL_OK)
    return false;
  return poll_until(w, &stream_tag, gpr_inf_future(GPR_CLOCK_REALTIME)) == 1;
}

/* One GetWorkItems stream until it ends; returns true when work items arrived (the connection was good). */
static bool stream_once(dt_worker *w)
{
  GetWorkItemsRequest req = GET_WORK_ITEMS_REQUEST__INIT;
  req.maxconcurrentorchestrationworkitems = w->opt.max_orchestrations;
  req.maxconcurrentactivityworkitems = w->opt.max_activities;
  /* Entity work only when entities are registered: a limit alone would ask for every entity's batches. */
  if (w->n_ents > 0)
    req.maxconcurrententityworkitems = w->opt.max_entities;
  /* Large histories may then come without pastEvents, to be fetched with StreamInstanceHistory (run_orchestration). */
  WorkerCapability caps[] = {WORKER_CAPABILITY__WORKER_CAPABILITY_HISTORY_STREAMING};
  req.n_capabilities = sizeof caps / sizeof caps[0];
  req.capabilities = caps;
  /* Ask only for what is registered here, so that workers in other languages can share the task hub. */
  WorkItemFilters filters = WORK_ITEM_FILTERS__INIT;
  OrchestrationFilter *of = calloc(w->n_orchs + 1, sizeof *of);
  OrchestrationFilter **ofp = calloc(w->n_orchs + 1, sizeof *ofp);
  ActivityFilter *af = calloc(w->n_acts + 1, sizeof *af);
  ActivityFilter **afp = calloc(w->n_acts + 1, sizeof *afp);
  EntityFilter *ef = calloc(w->n_ents + 1, sizeof *ef);
  EntityFilter **efp = calloc(w->n_ents + 1, sizeof *efp);
  if (!of || !ofp || !af || !afp || !ef || !efp) {
    free(of), free(ofp), free(af), free(afp), free(ef), free(efp);
    return false;
  }
  for (size_t i = 0; i < w->n_orchs; i++) {
    orchestration_filter__init(&of[i]);
    of[i].name = w->orchs[i].name;
    ofp[filters.n_orchestrations++] = &of[i];
  }
  for (size_t i = 0; i < w->n_acts; i++) {
    activity_filter__init(&af[i]);
    af[i].name = w->acts[i].name;
    afp[filters.n_activities++] = &af[i];
  }
  for (size_t i = 0; i < w->n_ents; i++) {
    entity_filter__init(&ef[i]);
    ef[i].name = w->ents[i].name;
    efp[filters.n_entities++] = &ef[i];
  }
  filters.orchestrations = ofp;
  filters.activities = afp;
  filters.entities = efp;
  req.workitemfilters = &filters;
  size_t len = get_work_items_request__get_packed_size(&req);
  grpc_slice sl = grpc_slice_malloc(len);
  get_work_items_request__pack(&req, GRPC_SLICE_START_PTR(sl));
  free(of), free(ofp), free(af), free(afp), free(ef), free(efp);
  grpc_byte_buffer *out = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  grpc_call *call = grpc_channel_create_call(w->conn.ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
                                             grpc_slice_from_static_string(M_GET_WORK), NULL,
                                             gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  pthread_mutex_lock(&w->mu);
  bool stopping = w->stopping;
  if (!stopping)
    w->stream = call;
  pthread_mutex_unlock(&w->mu);
  grpc_metadata_array imd, tmd;
  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  grpc_status_code status = GRPC_STATUS_OK;
  grpc_slice details = grpc_empty_slice();
  bool got_any = false;
  if (!stopping) {
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    dt__conn_initial_md(&w->conn, &ops[0]);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = out;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
    if (batch(w, call, ops, 4)) {
      DT_INFO("connected to %s for work items", w->target);
      for (;;) {
        grpc_byte_buffer *in = NULL;
        grpc_op rop;
        memset(&rop, 0, sizeof rop);
        rop.op = GRPC_OP_RECV_MESSAGE;
        rop.data.recv_message.recv_message = &in;
        if (!batch(w, call, &rop, 1) || !in)
          break;
        grpc_byte_buffer_reader rd;
        WorkItem *wi = NULL;
        if (grpc_byte_buffer_reader_init(&rd, in)) {
          grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
          grpc_byte_buffer_reader_destroy(&rd);
          wi = work_item__unpack(NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
          grpc_slice_unref(all);
        }
        grpc_byte_buffer_destroy(in);
        if (!wi) {
          DT_ERROR("undecodable work item");
          continue;
        }
        got_any = true;
        switch (wi->request_case) {
        case WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST:
          run_orchestration(w, wi);
          work_item__free_unpacked(wi, NULL);
          break;
        case WORK_ITEM__REQUEST_ACTIVITY_REQUEST:
        case WORK_ITEM__REQUEST_ENTITY_REQUEST:
        case WORK_ITEM__REQUEST_ENTITY_REQUEST_V2:
          enqueue_job(w, wi); /* the pool frees it */
          break;
        default:
          work_item__free_unpacked(wi, NULL); /* health pings, and kinds this SDK does not run */
          break;
        }
      }
    }
    grpc_op sop;
    memset(&sop, 0, sizeof sop);
    sop.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    sop.data.recv_status_on_client.trailing_metadata = &tmd;
    sop.data.recv_status_on_client.status = &status;
    sop.data.recv_status_on_client.status_details = &details;
    batch(w, call, &sop, 1);
    if (status != GRPC_STATUS_OK && status != GRPC_STATUS_CANCELLED) {
      char *d = grpc_slice_to_c_string(details);
      DT_INFO("work-item stream ended: %s (%s)", dt_strerror(dt__from_grpc(status)), d);
      gpr_free(d);
    }
  }
  pthread_mutex_lock(&w->mu);
  w->stream = NULL;
  bool stopping_now = w->stopping;
  pthread_mutex_unlock(&w->mu);
  /* On stop, dt_worker_stop abandons them instead, which gives them back before the server notices the close. */
  if (!stopping_now)
    drop_queued(w);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  grpc_byte_buffer_destroy(out);
  grpc_call_unref(call);
  return got_any;
}

static void *stream_main(void *arg)
{
  dt_worker *w = arg;
  int backoff = 100;
  int last_rc = DT_OK;
  while (!is_stopping(w)) {
    Google__Protobuf__Empty hello = GOOGLE__PROTOBUF__EMPTY__INIT;
    ProtobufCMessage *resp = NULL;
    char *why = NULL;
    int rc = dt__unary(&w->conn, M_HELLO, &hello.base, &google__protobuf__empty__descriptor, 5000, &resp, &why);
    if (resp)
      protobuf_c_message_free_unpacked(resp, NULL);
    /* Once per kind of failure, not at every retry: a refused token or certificate otherwise retries in silence. */
    if (rc != DT_OK && rc != last_rc)
      DT_WARN("cannot connect to %s: %s (%s); retrying", w->target, dt_strerror(rc), why ? why : "");
    last_rc = rc;
    free(why);
    if (rc == DT_OK && stream_once(w))
      backoff = 100;
    if (pause_ms(w, backoff))
      break;
    backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
  }
  return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

int dt_worker_new(const char *target, const dt_worker_options *opt, dt_worker **out)
{
  if (!target)
    target = dt_default_target();
  if (!*target || !out)
    return DT_ERR_INVALID_ARG;
  dt_worker *w = calloc(1, sizeof *w);
  if (!w)
    return DT_ERR_NOMEM;
  if (opt)
    w->opt = *opt;
  if (w->opt.activity_threads <= 0)
    w->opt.activity_threads = 4;
  if (w->opt.max_orchestrations <= 0)
    w->opt.max_orchestrations = 100;
  if (w->opt.max_activities <= 0)
    w->opt.max_activities = 100;
  if (w->opt.max_entities <= 0)
    w->opt.max_entities = 100;
  w->target = strdup(target);
  if (!w->target) {
    free(w);
    return DT_ERR_NOMEM;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  *out = w;
  return DT_OK;
}

int dt_worker_add_orchestrator(dt_worker *w, const char *name, dt_orchestrator_fn fn, void *user_data)
{
  if (!w || !name || !*name || !fn)
    return DT_ERR_INVALID_ARG;
  if (w->started)
    return DT_ERR_STATE;
  for (size_t i = 0; i < w->n_orchs; i++)
    if (strcmp(w->orchs[i].name, name) == 0)
      return DT_ERR_EXISTS;
  if (w->n_orchs == w->cap_orchs) {
    size_t cap = w->cap_orchs ? w->cap_orchs * 2 : 8;
    struct dt__orchestrator *o = realloc(w->orchs, cap * sizeof *o);
    if (!o)
      return DT_ERR_NOMEM;
    w->orchs = o;
    w->cap_orchs = cap;
  }
  char *copy = strdup(name);
  if (!copy)
    return DT_ERR_NOMEM;
  w->orchs[w->n_orchs++] = (struct dt__orchestrator){copy, fn, user_data};
  return DT_OK;
}

int dt_worker_add_activity(dt_worker *w, const char *name, dt_activity_fn fn, void *user_data)
{
  if (!w || !name || !*name || !fn)
    return DT_ERR_INVALID_ARG;
  if (w->started)
    return DT_ERR_STATE;
  for (size_t i = 0; i < w->n_acts; i++)
    if (strcmp(w->acts[i].name, name) == 0)
      return DT_ERR_EXISTS;
  if (w->n_acts == w->cap_acts) {
    size_t cap = w->cap_acts ? w->cap_acts * 2 : 8;
    struct activity *a = realloc(w->acts, cap * sizeof *a);
    if (!a)
      return DT_ERR_NOMEM;
    w->acts = a;
    w->cap_acts = cap;
  }
  char *copy = strdup(name);
  if (!copy)
    return DT_ERR_NOMEM;
  w->acts[w->n_acts++] = (struct activity){copy, fn, user_data};
  return DT_OK;
}

int dt_worker_add_entity(dt_worker *w, const char *name, dt_entity_fn fn, void *user_data)
{
  if (!w || !name || !*name || strchr(name, '@') || !fn)
    return DT_ERR_INVALID_ARG;
  if (w->started)
    return DT_ERR_STATE;
  for (size_t i = 0; i < w->n_ents; i++)
    if (strcasecmp(w->ents[i].name, name) == 0)
      return DT_ERR_EXISTS;
  if (w->n_ents == w->cap_ents) {
    size_t cap = w->cap_ents ? w->cap_ents * 2 : 8;
    struct dt__entity *e = realloc(w->ents, cap * sizeof *e);
    if (!e)
      return DT_ERR_NOMEM;
    w->ents = e;
    w->cap_ents = cap;
  }
  char *copy = strdup(name);
  if (!copy)
    return DT_ERR_NOMEM;
  for (char *p = copy; *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  w->ents[w->n_ents++] = (struct dt__entity){copy, fn, user_data};
  return DT_OK;
}

int dt_worker_start(dt_worker *w)
{
  if (!w)
    return DT_ERR_INVALID_ARG;
  if (w->started)
    return DT_ERR_STATE;
  int rc = dt__conn_open(&w->conn, w->target, &w->opt.conn);
  if (rc != DT_OK)
    return rc;
  w->cq = grpc_completion_queue_create_for_next(NULL);
  w->pool = calloc((size_t)w->opt.activity_threads, sizeof *w->pool);
  if (!w->pool) {
    grpc_completion_queue_shutdown(w->cq);
    grpc_completion_queue_destroy(w->cq);
    dt__conn_close(&w->conn);
    return DT_ERR_NOMEM;
  }
  int err = 0;
  for (int i = 0; i < w->opt.activity_threads && !err; i++)
    if ((err = pthread_create(&w->pool[i], NULL, pool_main, w)) == 0)
      w->n_pool++;
  if (!err)
    err = pthread_create(&w->stream_thread, NULL, stream_main, w);
  if (err) {
    /* Undo everything: the threads that did start have nothing to do yet and leave when told to stop. */
    DT_ERROR("cannot start the worker's threads: pthread_create failed (%d)", err);
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n_pool; i++)
      pthread_join(w->pool[i], NULL);
    w->n_pool = 0;
    w->stopping = false;
    free(w->pool);
    w->pool = NULL;
    grpc_completion_queue_shutdown(w->cq);
    grpc_completion_queue_destroy(w->cq);
    w->cq = NULL;
    dt__conn_close(&w->conn);
    return DT_ERR_NOMEM;
  }
  w->started = true;
  return DT_OK;
}

void dt_worker_stop(dt_worker *w)
{
  if (!w || !w->started || w->stopped)
    return;
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  if (w->stream)
    grpc_call_cancel(w->stream, NULL);
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->stream_thread, NULL);
  for (int i = 0; i < w->n_pool; i++)
    pthread_join(w->pool[i], NULL);
  /* Activities and entity batches nobody started go back to the server now, rather than after its grace period. */
  struct job *j = w->qh;
  w->qh = w->qt = NULL;
  while (j) {
    struct job *next = j->next;
    if (j->wi->request_case == WORK_ITEM__REQUEST_ACTIVITY_REQUEST) {
      AbandonActivityTaskRequest ab = ABANDON_ACTIVITY_TASK_REQUEST__INIT;
      ab.completiontoken = j->wi->completiontoken;
      send_msg(w, M_ABANDON_ACT, &ab.base);
    } else {
      abandon_entity(w, j->wi);
    }
    work_item__free_unpacked(j->wi, NULL);
    free(j);
    j = next;
  }
  /* Every other thread has ended: this one polls until the server has answered every completion. */
  for (;;) {
    pthread_mutex_lock(&w->mu);
    int inflight = w->inflight;
    pthread_mutex_unlock(&w->mu);
    if (inflight == 0)
      break;
    if (poll_until(w, NULL, gpr_inf_future(GPR_CLOCK_REALTIME)) < 0)
      break; /* the queue is shut down: nothing more can arrive */
  }
  grpc_completion_queue_shutdown(w->cq);
  while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(w->cq);
  dt__conn_close(&w->conn);
  w->stopped = true;
}

void dt_worker_free(dt_worker *w)
{
  if (!w)
    return;
  dt_worker_stop(w);
  for (size_t i = 0; i < w->n_orchs; i++)
    free(w->orchs[i].name);
  for (size_t i = 0; i < w->n_acts; i++)
    free(w->acts[i].name);
  for (size_t i = 0; i < w->n_ents; i++)
    free(w->ents[i].name);
  free(w->ents);
  free(w->orchs);
  free(w->acts);
  free(w->pool);
  free(w->target);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}
