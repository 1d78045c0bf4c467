/*
 * th-bench's entity worker (see entity_worker.h). One thread drives everything through one completion queue: the
 * streams' reads and every CompleteEntityTask in flight, so a batch is answered as soon as it is read and the
 * server may have as many batches out to it as its limit allows. A second thread only waits for |hold| to close
 * and then cancels the streams.
 */
#define _GNU_SOURCE
#include "entity_worker.h"
#include "orchestrator_service.pb-c.h"
#include "unary.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENTITY_NAME "counter"
#define MAX_ENTITY_ITEMS 1000 /* taskhubd's --max-work-items default caps it anyway */

enum tag_kind { T_OPEN, T_READ, T_STATUS, T_COMPLETE };

struct tag {
  enum tag_kind kind;
  void *obj;
};

struct stream {
  const char *target;
  grpc_channel *ch;
  void *h_complete;
  grpc_call *call;
  grpc_byte_buffer *req, *msg;
  grpc_metadata_array imd, tmd;
  grpc_status_code status;
  grpc_slice details;
  struct tag t_open, t_read, t_status;
  bool ended;
};

struct complete {
  struct tag t;
  struct stream *s;
  grpc_call *call;
  grpc_byte_buffer *req, *resp;
  grpc_metadata_array imd, tmd;
  grpc_status_code status;
  grpc_slice details;
  long ops;
};

static atomic_bool stopping;

struct holder {
  int hold;
  struct stream *streams;
  size_t n;
};

/* Waits for the parent to close |hold|, then cancels the streams (grpc_call_cancel is thread-safe). */
static void *wait_hold(void *arg)
{
  struct holder *h = arg;
  char buf[16];
  while (read(h->hold, buf, sizeof buf) > 0)
    ;
  atomic_store(&stopping, true);
  for (size_t i = 0; i < h->n; i++)
    grpc_call_cancel(h->streams[i].call, NULL);
  return NULL;
}

static bool start(grpc_call *call, grpc_op *ops, size_t n, struct tag *t)
{
  grpc_call_error e = grpc_call_start_batch(call, ops, n, t, NULL);
  if (e != GRPC_CALL_OK)
    fprintf(stderr, "th-bench entity worker: grpc_call_start_batch: %d\n", (int)e);
  return e == GRPC_CALL_OK;
}

static bool post_read(struct stream *s)
{
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->msg;
  return start(s->call, &op, 1, &s->t_read);
}

static bool open_stream(struct stream *s, grpc_completion_queue *cq)
{
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  s->ch = grpc_channel_create(s->target, creds, NULL);
  grpc_channel_credentials_release(creds);
  s->h_complete = grpc_channel_register_call(s->ch, "/TaskHubSidecarService/CompleteEntityTask", NULL, NULL);
  grpc_metadata_array_init(&s->imd);
  grpc_metadata_array_init(&s->tmd);
  s->details = grpc_empty_slice();
  s->t_open = (struct tag){T_OPEN, s};
  s->t_read = (struct tag){T_READ, s};
  s->t_status = (struct tag){T_STATUS, s};

  GetWorkItemsRequest r = GET_WORK_ITEMS_REQUEST__INIT;
  WorkItemFilters f = WORK_ITEM_FILTERS__INIT;
  EntityFilter ef = ENTITY_FILTER__INIT;
  EntityFilter *efs[] = {&ef};
  ef.name = (char *)ENTITY_NAME;
  f.n_entities = 1;
  f.entities = efs;
  r.maxconcurrententityworkitems = MAX_ENTITY_ITEMS;
  r.workitemfilters = &f; /* entities only: no orchestration or activity work comes here */
  s->req = bench_pack(&r.base);

  grpc_slice m = grpc_slice_from_static_string("/TaskHubSidecarService/GetWorkItems");
  s->call = grpc_channel_create_call(s->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_slice_unref(m);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->imd;
  if (!start(s->call, ops, 4, &s->t_open))
    return false;
  grpc_op st;
  memset(&st, 0, sizeof st);
  st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  st.data.recv_status_on_client.trailing_metadata = &s->tmd;
  st.data.recv_status_on_client.status = &s->status;
  st.data.recv_status_on_client.status_details = &s->details;
  return start(s->call, &st, 1, &s->t_status) && post_read(s);
}

static void close_stream(struct stream *s)
{
  if (s->call)
    grpc_call_unref(s->call);
  if (s->msg)
    grpc_byte_buffer_destroy(s->msg);
  if (s->req)
    grpc_byte_buffer_destroy(s->req);
  grpc_metadata_array_destroy(&s->imd);
  grpc_metadata_array_destroy(&s->tmd);
  grpc_slice_unref(s->details);
  if (s->ch)
    grpc_channel_destroy(s->ch);
}

/* Runs a batch of "add" operations on the counter and sends its CompleteEntityTask; false when the batch is not
 * one this worker can run (it is then left to its lease). */
static bool run_batch(struct stream *s, grpc_completion_queue *cq, const WorkItem *wi, long *outstanding)
{
  const EntityBatchRequest *b = wi->entityrequest;
  long long v = 0;
  if (b->entitystate && b->entitystate->value)
    v = strtoll(b->entitystate->value, NULL, 10);
  OperationResult *res = calloc(b->n_operations ? b->n_operations : 1, sizeof *res);
  OperationResult **resp = calloc(b->n_operations ? b->n_operations : 1, sizeof *resp);
  OperationResultSuccess ok = OPERATION_RESULT_SUCCESS__INIT;
  bool good = true;
  for (size_t i = 0; i < b->n_operations; i++) {
    const OperationRequest *op = b->operations[i];
    if (strcmp(op->operation, "add") != 0 || !op->input || !op->input->value) {
      fprintf(stderr, "th-bench entity worker: %s: unexpected operation %s\n", b->instanceid, op->operation);
      good = false;
    }
    else
      v += strtoll(op->input->value, NULL, 10);
    operation_result__init(&res[i]);
    res[i].result_type_case = OPERATION_RESULT__RESULT_TYPE_SUCCESS;
    res[i].success = &ok;
    resp[i] = &res[i];
  }
  char state[32];
  snprintf(state, sizeof state, "%lld", v);
  EntityBatchResult r = ENTITY_BATCH_RESULT__INIT;
  Google__Protobuf__StringValue st = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  st.value = state;
  r.entitystate = &st;
  r.n_results = b->n_operations;
  r.results = resp;
  r.completiontoken = wi->completiontoken;

  struct complete *c = calloc(1, sizeof *c);
  c->t = (struct tag){T_COMPLETE, c};
  c->s = s;
  c->ops = (long)b->n_operations;
  c->req = bench_pack(&r.base);
  free(res);
  free(resp);
  grpc_metadata_array_init(&c->imd);
  grpc_metadata_array_init(&c->tmd);
  c->call = grpc_channel_create_registered_call(s->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, s->h_complete,
                                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_op ops[6];
  bench_unary_ops(ops, c->req, &c->imd, &c->resp, &c->tmd, &c->status, &c->details);
  if (!start(c->call, ops, 6, &c->t))
    exit(1);
  (*outstanding)++;
  return good;
}

static void free_complete(struct complete *c)
{
  grpc_byte_buffer_destroy(c->req);
  if (c->resp)
    grpc_byte_buffer_destroy(c->resp);
  grpc_metadata_array_destroy(&c->imd);
  grpc_metadata_array_destroy(&c->tmd);
  grpc_slice_unref(c->details);
  grpc_call_unref(c->call);
  free(c);
}

static WorkItem *unpack_item(grpc_byte_buffer *msg)
{
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, msg))
    return NULL;
  grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  WorkItem *wi = work_item__unpack(NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
  grpc_slice_unref(sl);
  return wi;
}

int entity_worker_run(char **targets, size_t n_targets, int hold, int notify, const long *goals, size_t n_goals)
{
  grpc_init();
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  struct stream *ss = calloc(n_targets, sizeof *ss);
  struct ew_progress p = {0, 0, 0};
  size_t live = 0;
  for (size_t i = 0; i < n_targets; i++) {
    ss[i].target = targets[i];
    if (!open_stream(&ss[i], cq))
      exit(1);
    live++;
  }
  struct holder h = {hold, ss, n_targets};
  pthread_t th;
  pthread_create(&th, NULL, wait_hold, &h);
  size_t goal = 0;
  long outstanding = 0; /* CompleteEntityTask calls in flight */
  while (live || outstanding) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    struct tag *t = ev.tag;
    struct stream *s = t->obj;
    switch (t->kind) {
    case T_OPEN:
      break;
    case T_READ:
      if (!ev.success || !s->msg) {
        s->ended = true; /* the status follows */
        break;
      }
      WorkItem *wi = unpack_item(s->msg);
      grpc_byte_buffer_destroy(s->msg);
      s->msg = NULL;
      if (!wi) {
        fprintf(stderr, "th-bench entity worker: a work item that does not parse\n");
        p.errors++;
      }
      else if (wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST) {
        if (!run_batch(s, cq, wi, &outstanding))
          p.errors++;
      }
      else if (wi->request_case != WORK_ITEM__REQUEST_HEALTH_PING) {
        fprintf(stderr, "th-bench entity worker: unexpected work item (case %d)\n", (int)wi->request_case);
        p.errors++;
      }
      if (wi)
        work_item__free_unpacked(wi, NULL);
      if (!post_read(s))
        exit(1);
      break;
    case T_STATUS:
      if (!atomic_load(&stopping)) {
        char *d = grpc_slice_to_c_string(s->details);
        fprintf(stderr, "th-bench entity worker: %s: the stream ended: status %d %s\n", s->target, (int)s->status,
                d);
        gpr_free(d);
        p.errors++;
      }
      live--;
      break;
    case T_COMPLETE: {
      struct complete *c = t->obj;
      outstanding--;
      if (!ev.success || c->status != GRPC_STATUS_OK) {
        char *d = grpc_slice_to_c_string(c->details);
        fprintf(stderr, "th-bench entity worker: CompleteEntityTask: status %d %s\n", (int)c->status, d);
        gpr_free(d);
        p.errors++;
      }
      else {
        p.ops += c->ops;
        p.batches++;
        while (goal < n_goals && p.ops >= goals[goal]) {
          if (write(notify, &p, sizeof p) != (ssize_t)sizeof p)
            perror("th-bench entity worker: notify");
          goal++;
        }
      }
      free_complete(c);
      break;
    }
    }
  }
  close(notify); /* a parent still waiting for a goal sees end of file rather than waiting for ever */
  pthread_join(th, NULL);
  for (size_t i = 0; i < n_targets; i++)
    close_stream(&ss[i]);
  free(ss);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
  grpc_shutdown();
  if (p.errors)
    fprintf(stderr, "th-bench entity worker: %ld errors\n", p.errors);
  return p.errors ? 1 : 0;
}
