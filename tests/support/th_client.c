#define _GNU_SOURCE
#include "th_client.h"

#include "test.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <time.h>

struct th_client {
  grpc_channel *channel;
};

struct th_call {
  grpc_call *call;
  grpc_completion_queue *cq;
  grpc_byte_buffer *req;
  grpc_byte_buffer *resp;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_status_code status;
  grpc_slice details;
  char method[256];
  int timeout_ms;
  int done;
};

long long th_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *th_status_name(grpc_status_code code)
{
  static const char *const names[] = {
      "OK",        "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",      "UNIMPLEMENTED",  "INTERNAL",         "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  if ((int)code >= 0 && (size_t)code < sizeof names / sizeof names[0])
    return names[code];
  return "(invalid status)";
}

th_client *th_client_open_args(int port, const grpc_channel_args *args)
{
  grpc_init();
  th_client *c = calloc(1, sizeof *c);
  ASSERT(c != NULL);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->channel = grpc_channel_create(target, creds, args);
  grpc_channel_credentials_release(creds);
  ASSERT(c->channel != NULL);
  return c;
}

th_client *th_client_open(int port)
{
  return th_client_open_args(port, NULL);
}

th_client *th_client_open_own(int port)
{
  grpc_arg arg = {GRPC_ARG_INTEGER, (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}};
  grpc_channel_args args = {1, &arg};
  return th_client_open_args(port, &args);
}

grpc_call *th_client_create_call(th_client *c, grpc_slice method, grpc_completion_queue *cq, gpr_timespec deadline)
{
  grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline,
                                             NULL);
  ASSERT(call != NULL);
  return call;
}

void th_client_close(th_client *c)
{
  if (c == NULL)
    return;
  grpc_channel_destroy(c->channel);
  free(c);
  grpc_shutdown();
}

static gpr_timespec deadline_after_ms(long long ms)
{
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis((int64_t)ms, GPR_TIMESPAN));
}

static th_call *start_bytes(th_client *c, const char *method, const void *data, size_t len, int timeout_ms)
{
  th_call *call = calloc(1, sizeof *call);
  ASSERT(call != NULL);
  snprintf(call->method, sizeof call->method, "%s", method);
  call->timeout_ms = timeout_ms;
  call->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_metadata_array_init(&call->initial_md);
  grpc_metadata_array_init(&call->trailing_md);
  call->details = grpc_empty_slice();
  gpr_timespec deadline =
      timeout_ms < 0 ? gpr_inf_future(GPR_CLOCK_REALTIME) : deadline_after_ms(timeout_ms);
  grpc_slice method_slice = grpc_slice_from_copied_string(method);
  call->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, call->cq, method_slice,
                                        NULL, deadline, NULL);
  grpc_slice_unref(method_slice);
  ASSERT(call->call != NULL);

  grpc_slice payload = grpc_slice_from_copied_buffer(len ? (const char *)data : "", len);
  call->req = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = call->req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &call->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &call->resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &call->trailing_md;
  ops[5].data.recv_status_on_client.status = &call->status;
  ops[5].data.recv_status_on_client.status_details = &call->details;
  grpc_call_error e = grpc_call_start_batch(call->call, ops, 6, call, NULL);
  if (e != GRPC_CALL_OK)
    TEST_FAIL("grpc_call_start_batch(%s): %s", method, grpc_call_error_to_string(e));
  return call;
}

th_call *th_call_start(th_client *c, const char *method, const ProtobufCMessage *req, int timeout_ms)
{
  size_t len = protobuf_c_message_get_packed_size(req);
  uint8_t *buf = malloc(len ? len : 1);
  ASSERT(buf != NULL);
  ASSERT_EQ(protobuf_c_message_pack(req, buf), len);
  th_call *call = start_bytes(c, method, buf, len, timeout_ms);
  free(buf);
  return call;
}

int th_call_wait(th_call *call, int wait_ms)
{
  if (call->done)
    return 1;
  grpc_event ev = grpc_completion_queue_next(call->cq, deadline_after_ms(wait_ms), NULL);
  if (ev.type == GRPC_QUEUE_TIMEOUT)
    return 0;
  if (ev.type != GRPC_OP_COMPLETE || ev.tag != call)
    TEST_FAIL("%s: unexpected completion queue event %d", call->method, (int)ev.type);
  /* A unary batch with RECV_STATUS_ON_CLIENT always completes successfully; the status says how it went. */
  if (!ev.success)
    TEST_FAIL("%s: batch failed", call->method);
  call->done = 1;
  return 1;
}

void th_call_cancel(th_call *call)
{
  grpc_call_error e = grpc_call_cancel(call->call, NULL);
  ASSERT_EQ(e, GRPC_CALL_OK);
}

static void call_free(th_call *call)
{
  grpc_call_unref(call->call);
  grpc_completion_queue_shutdown(call->cq);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(call->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
  }
  grpc_completion_queue_destroy(call->cq);
  grpc_byte_buffer_destroy(call->req);
  if (call->resp)
    grpc_byte_buffer_destroy(call->resp);
  grpc_metadata_array_destroy(&call->initial_md);
  grpc_metadata_array_destroy(&call->trailing_md);
  grpc_slice_unref(call->details);
  free(call);
}

/* Waits for completion within the safety bound and copies out status details; the call stays allocated. */
static grpc_status_code await(th_call *call, char **details_out)
{
  long long bound = call->timeout_ms < 0 ? TH_CALL_SAFETY_MS : (long long)call->timeout_ms + 30000;
  if (!th_call_wait(call, (int)bound))
    TEST_FAIL("%s: no completion within %lld ms (server hung?)", call->method, bound);
  if (details_out) {
    size_t n = GRPC_SLICE_LENGTH(call->details);
    char *d = malloc(n + 1);
    ASSERT(d != NULL);
    memcpy(d, GRPC_SLICE_START_PTR(call->details), n);
    d[n] = '\0';
    *details_out = d;
  }
  return call->status;
}

static uint8_t *read_bytes(grpc_byte_buffer *bb, size_t *len_out)
{
  grpc_byte_buffer_reader r;
  ASSERT(grpc_byte_buffer_reader_init(&r, bb));
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  size_t n = GRPC_SLICE_LENGTH(s);
  uint8_t *out = malloc(n ? n : 1);
  ASSERT(out != NULL);
  memcpy(out, GRPC_SLICE_START_PTR(s), n);
  grpc_slice_unref(s);
  grpc_byte_buffer_reader_destroy(&r);
  *len_out = n;
  return out;
}

grpc_status_code th_call_finish(th_call *call, const ProtobufCMessageDescriptor *resp_desc,
                                ProtobufCMessage **resp_out, char **details_out)
{
  grpc_status_code st = await(call, details_out);
  if (resp_out)
    *resp_out = NULL;
  if (st == GRPC_STATUS_OK && resp_out) {
    if (call->resp == NULL)
      TEST_FAIL("%s: status OK without a response message", call->method);
    size_t n = 0;
    uint8_t *bytes = read_bytes(call->resp, &n);
    ProtobufCMessage *m = protobuf_c_message_unpack(resp_desc, NULL, n, bytes);
    free(bytes);
    if (m == NULL)
      TEST_FAIL("%s: response (%zu bytes) does not parse as %s", call->method, n, resp_desc->name);
    *resp_out = m;
  }
  call_free(call);
  return st;
}

grpc_status_code th_call_unary(th_client *c, const char *method, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                               ProtobufCMessage **resp_out, char **details_out)
{
  return th_call_finish(th_call_start(c, method, req, timeout_ms), resp_desc, resp_out, details_out);
}

grpc_status_code th_call_raw(th_client *c, const char *method, const void *data, size_t len, int timeout_ms,
                             void **resp_out, size_t *resp_len_out, char **details_out)
{
  th_call *call = start_bytes(c, method, data, len, timeout_ms);
  grpc_status_code st = await(call, details_out);
  if (resp_out) {
    *resp_out = NULL;
    if (resp_len_out)
      *resp_len_out = 0;
    if (st == GRPC_STATUS_OK && call->resp) {
      size_t n = 0;
      *resp_out = read_bytes(call->resp, &n);
      if (resp_len_out)
        *resp_len_out = n;
    }
  }
  call_free(call);
  return st;
}
