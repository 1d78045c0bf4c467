#define _GNU_SOURCE
#include "th_stream.h"

#include "test.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>

/* Completion-queue tags: the opening batch, the status batch and the one read in flight. */
enum { T_OPEN = 1, T_STATUS = 2, T_READ = 3 };

struct th_stream {
  grpc_call *call;
  grpc_completion_queue *cq;
  grpc_byte_buffer *req;
  grpc_byte_buffer *msg;
  grpc_metadata_array initial_md, trailing_md;
  grpc_status_code status;
  grpc_slice details;
  char method[128];
  int open_pending, status_pending, read_pending;
  int ended;
};

static gpr_timespec after_ms(long long ms)
{
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis((int64_t)ms, GPR_TIMESPAN));
}

/* Takes one event; returns its tag, or 0 on timeout. */
static int take(th_stream *s, gpr_timespec deadline, int *success)
{
  grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
  if (ev.type == GRPC_QUEUE_TIMEOUT)
    return 0;
  if (ev.type != GRPC_OP_COMPLETE)
    TEST_FAIL("%s: unexpected completion queue event %d", s->method, (int)ev.type);
  int tag = (int)(intptr_t)ev.tag;
  *success = ev.success;
  if (tag == T_OPEN)
    s->open_pending = 0;
  else if (tag == T_STATUS) {
    s->status_pending = 0;
    s->ended = 1;
  } else if (tag == T_READ)
    s->read_pending = 0;
  return tag;
}

th_stream *th_stream_start(th_client *c, const char *method, const ProtobufCMessage *req, int timeout_ms)
{
  th_stream *s = calloc(1, sizeof *s);
  ASSERT(s != NULL);
  snprintf(s->method, sizeof s->method, "%s", method);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  s->details = grpc_empty_slice();
  gpr_timespec deadline = timeout_ms < 0 ? gpr_inf_future(GPR_CLOCK_REALTIME) : after_ms(timeout_ms);
  grpc_slice m = grpc_slice_from_copied_string(method);
  s->call = th_client_create_call(c, m, s->cq, deadline);
  grpc_slice_unref(m);
  size_t len = protobuf_c_message_get_packed_size(req);
  grpc_slice payload = grpc_slice_malloc(len);
  protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(payload));
  s->req = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  ASSERT_EQ(grpc_call_start_batch(s->call, ops, 4, (void *)(intptr_t)T_OPEN, NULL), GRPC_CALL_OK);
  s->open_pending = 1;
  grpc_op st;
  memset(&st, 0, sizeof st);
  st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  st.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  st.data.recv_status_on_client.status = &s->status;
  st.data.recv_status_on_client.status_details = &s->details;
  ASSERT_EQ(grpc_call_start_batch(s->call, &st, 1, (void *)(intptr_t)T_STATUS, NULL), GRPC_CALL_OK);
  s->status_pending = 1;
  return s;
}

int th_stream_read(th_stream *s, int wait_ms, uint8_t **buf, size_t *len)
{
  if (!s->read_pending) {
    if (s->ended && !s->msg)
      return -1;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->msg;
    s->msg = NULL;
    ASSERT_EQ(grpc_call_start_batch(s->call, &op, 1, (void *)(intptr_t)T_READ, NULL), GRPC_CALL_OK);
    s->read_pending = 1;
  }
  gpr_timespec deadline = after_ms(wait_ms);
  while (s->read_pending) {
    int ok = 0;
    if (!take(s, deadline, &ok))
      return 0;
  }
  if (!s->msg) {
    s->ended = 1; /* the status follows (or has come) */
    return -1;
  }
  grpc_byte_buffer_reader r;
  ASSERT(grpc_byte_buffer_reader_init(&r, s->msg));
  grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  grpc_byte_buffer_destroy(s->msg);
  s->msg = NULL;
  *len = GRPC_SLICE_LENGTH(sl);
  *buf = malloc(*len ? *len : 1);
  ASSERT(*buf != NULL);
  memcpy(*buf, GRPC_SLICE_START_PTR(sl), *len);
  grpc_slice_unref(sl);
  return 1;
}

grpc_status_code th_stream_status(th_stream *s, char **details_out)
{
  gpr_timespec deadline = after_ms(TH_CALL_SAFETY_MS);
  while (s->status_pending) {
    int ok = 0;
    if (!take(s, deadline, &ok))
      TEST_FAIL("%s: no status within %d ms", s->method, TH_CALL_SAFETY_MS);
  }
  if (details_out) {
    size_t n = GRPC_SLICE_LENGTH(s->details);
    *details_out = malloc(n + 1);
    ASSERT(*details_out != NULL);
    memcpy(*details_out, GRPC_SLICE_START_PTR(s->details), n);
    (*details_out)[n] = 0;
  }
  return s->status;
}

void th_stream_cancel(th_stream *s)
{
  ASSERT_EQ(grpc_call_cancel(s->call, NULL), GRPC_CALL_OK);
}

void th_stream_free(th_stream *s)
{
  if (!s)
    return;
  grpc_call_cancel(s->call, NULL);
  gpr_timespec deadline = after_ms(TH_CALL_SAFETY_MS);
  while (s->open_pending || s->status_pending || s->read_pending) {
    int ok = 0;
    if (!take(s, deadline, &ok))
      TEST_FAIL("%s: operations still pending after cancel", s->method);
  }
  if (s->msg)
    grpc_byte_buffer_destroy(s->msg);
  grpc_call_unref(s->call);
  grpc_completion_queue_shutdown(s->cq);
  while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(s->cq);
  grpc_byte_buffer_destroy(s->req);
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
  grpc_slice_unref(s->details);
  free(s);
}

th_stream *th_work_open(th_client *c, const GetWorkItemsRequest *req)
{
  GetWorkItemsRequest empty = GET_WORK_ITEMS_REQUEST__INIT;
  return th_stream_start(c, "/TaskHubSidecarService/GetWorkItems", &(req ? req : &empty)->base, TH_NO_DEADLINE);
}

WorkItem *th_work_next(th_stream *s, int wait_ms)
{
  long long end = th_now_ms() + wait_ms;
  for (;;) {
    long long left = end - th_now_ms();
    uint8_t *buf;
    size_t len;
    if (left < 0 || th_stream_read(s, (int)left, &buf, &len) != 1)
      return NULL;
    WorkItem *wi = work_item__unpack(NULL, len, buf);
    free(buf);
    if (!wi)
      TEST_FAIL("a work item (%zu bytes) does not parse", len);
    if (wi->request_case != WORK_ITEM__REQUEST_HEALTH_PING)
      return wi;
    work_item__free_unpacked(wi, NULL);
  }
}

WorkItem *th_work_expect(th_stream *s, int wait_ms, const char *what)
{
  WorkItem *wi = th_work_next(s, wait_ms);
  if (!wi)
    TEST_FAIL("%s: no work item within %d ms", what, wait_ms);
  return wi;
}
