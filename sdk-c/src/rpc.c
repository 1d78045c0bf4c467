/* Unary and server-streaming gRPC calls over the C core API: one completion queue per call, drained by the calling
 * thread. */
#include "internal.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int dt__from_grpc(grpc_status_code s)
{
  switch (s) {
  case GRPC_STATUS_OK: return DT_OK;
  case GRPC_STATUS_INVALID_ARGUMENT: return DT_ERR_INVALID_ARG;
  case GRPC_STATUS_NOT_FOUND: return DT_ERR_NOT_FOUND;
  case GRPC_STATUS_ALREADY_EXISTS: return DT_ERR_EXISTS;
  case GRPC_STATUS_FAILED_PRECONDITION: return DT_ERR_STATE;
  case GRPC_STATUS_DEADLINE_EXCEEDED: return DT_ERR_TIMEOUT;
  case GRPC_STATUS_UNAVAILABLE: return DT_ERR_UNAVAILABLE;
  case GRPC_STATUS_CANCELLED: return DT_ERR_CANCELLED;
  case GRPC_STATUS_UNIMPLEMENTED: return DT_ERR_UNSUPPORTED;
  case GRPC_STATUS_RESOURCE_EXHAUSTED: return DT_ERR_TOO_BIG;
  case GRPC_STATUS_UNAUTHENTICATED: return DT_ERR_UNAUTHENTICATED;
  case GRPC_STATUS_PERMISSION_DENIED: return DT_ERR_UNAUTHENTICATED;
  default: return DT_ERR_INTERNAL;
  }
}

/* The gRPC status of this thread's last call, for dt_last_call_status(). Per thread, because one client serves
 * many threads and a status belongs to the call that produced it. */
static _Thread_local struct {
  bool failed;
  grpc_status_code code;
  char message[1024];
} last_call;

static const char *grpc_code_name(grpc_status_code s)
{
  static const char *const names[] = {
      "OK",           "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND",    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",      "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS",    "UNAUTHENTICATED",
  };
  return (int)s >= 0 && (size_t)s < sizeof names / sizeof names[0] ? names[s] : "UNKNOWN";
}

static void last_call_begin(void)
{
  last_call.failed = false;
}

static void last_call_failed(grpc_status_code code, grpc_slice details)
{
  size_t n = GRPC_SLICE_LENGTH(details);
  const unsigned char *p = GRPC_SLICE_START_PTR(details);
  if (n >= sizeof last_call.message) {
    n = sizeof last_call.message - 1;
    while (n > 0 && (p[n] & 0xC0) == 0x80) /* not into the middle of a UTF-8 character */
      n--;
  }
  memcpy(last_call.message, p, n);
  last_call.message[n] = '\0';
  last_call.code = code;
  last_call.failed = true;
}

bool dt_last_call_status(const char **code, const char **message)
{
  if (!last_call.failed)
    return false;
  if (code)
    *code = grpc_code_name(last_call.code);
  if (message)
    *message = last_call.message;
  return true;
}

/* A token goes into an HTTP/2 header: visible ASCII only, or the call would fail in a less telling way. */
static bool token_ok(const char *t)
{
  if (!*t || strlen(t) > 4096)
    return false;
  for (const unsigned char *p = (const unsigned char *)t; *p; p++)
    if (*p < 0x21 || *p > 0x7e)
      return false;
  return true;
}

void dt__conn_initial_md(const dt__conn *c, grpc_op *op)
{
  op->data.send_initial_metadata.count = c->n_md;
  op->data.send_initial_metadata.metadata = c->n_md ? (grpc_metadata *)&c->md : NULL;
}

int dt__conn_open(dt__conn *c, const char *target, const dt_conn_options *opt)
{
  if (!target || !*target)
    return DT_ERR_INVALID_ARG;
  const char *token = opt && opt->auth_token ? opt->auth_token : getenv("TASKHUBD_AUTH_TOKEN");
  if (token && !*token && !(opt && opt->auth_token))
    token = NULL; /* an empty variable is no token */
  if (token && !token_ok(token)) {
    DT_ERROR("auth token: expected 1 to 4096 visible ASCII characters");
    return DT_ERR_INVALID_ARG;
  }
  if (opt && (!opt->client_cert_pem != !opt->client_key_pem || (opt->client_cert_pem && !opt->tls))) {
    DT_ERROR("client_cert_pem and client_key_pem go together, and need tls");
    return DT_ERR_INVALID_ARG;
  }
  grpc_init();
  int keepalive_ms = opt && opt->keepalive_ms != 0 ? opt->keepalive_ms : 30000;
  int keepalive_timeout_ms = opt && opt->keepalive_timeout_ms > 0 ? opt->keepalive_timeout_ms : 10000;
  grpc_arg args[] = {
      {GRPC_ARG_INTEGER,
       (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
       {.integer = opt && opt->max_receive_bytes > 0 ? opt->max_receive_bytes : 16 << 20}},
      /* Tests and sidecars run on loopback: never route through a proxy from the environment. */
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_HTTP_PROXY, {.integer = 0}},
      /* Keepalive: a connection that went silent without closing (a dropped NAT entry, a vanished peer) would
       * otherwise hold the worker's GetWorkItems stream, which has no deadline, forever. Pings go out while idle
       * too, and without data in between (taskhubd accepts one every 10 s). INT_MAX turns them off. */
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = keepalive_ms > 0 ? keepalive_ms : INT_MAX}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = keepalive_timeout_ms}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = keepalive_ms > 0}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
      {GRPC_ARG_STRING, (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
       {.string = opt && opt->tls_server_name ? (char *)opt->tls_server_name : NULL}},
  };
  grpc_channel_args ca = {sizeof args / sizeof args[0] - !(opt && opt->tls && opt->tls_server_name), args};
  grpc_channel_credentials *creds;
  if (opt && opt->tls) {
    grpc_ssl_pem_key_cert_pair pair = {opt->client_key_pem, opt->client_cert_pem};
    creds = grpc_ssl_credentials_create(opt->root_certs_pem, opt->client_cert_pem ? &pair : NULL, NULL, NULL);
  } else {
    creds = grpc_insecure_credentials_create();
  }
  c->ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  c->call_timeout_ms = opt && opt->call_timeout_ms > 0 ? opt->call_timeout_ms : 30000;
  if (!c->ch) {
    grpc_shutdown();
    return DT_ERR_INVALID_ARG;
  }
  c->n_md = 0;
  if (token) {
    size_t n = strlen(token);
    c->md.key = grpc_slice_from_static_string("authorization");
    c->md.value = grpc_slice_malloc(7 + n);
    memcpy(GRPC_SLICE_START_PTR(c->md.value), "Bearer ", 7);
    memcpy(GRPC_SLICE_START_PTR(c->md.value) + 7, token, n);
    c->n_md = 1;
  }
  return DT_OK;
}

void dt__conn_close(dt__conn *c)
{
  if (c->n_md) {
    grpc_slice_unref(c->md.value);
    c->n_md = 0;
  }
  if (c->ch) {
    grpc_channel_destroy(c->ch);
    c->ch = NULL;
    grpc_shutdown();
  }
}

/* One unary call on packed bytes: DT_OK with the response's bytes in *resp (caller unrefs), or the call's status. */
static int unary_bytes(dt__conn *c, const char *method, grpc_slice req, int timeout_ms, grpc_slice *resp,
                       char **err_msg)
{
  if (err_msg)
    *err_msg = NULL;
  last_call_begin();
  gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_REALTIME);
  if (timeout_ms != DT__NO_DEADLINE)
    deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                            gpr_time_from_millis(timeout_ms > 0 ? timeout_ms : c->call_timeout_ms, GPR_TIMESPAN));
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_slice path = grpc_slice_from_static_string(method);
  grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL, deadline, NULL);
  grpc_byte_buffer *out = grpc_raw_byte_buffer_create(&req, 1);
  grpc_byte_buffer *in = NULL;
  grpc_metadata_array imd, tmd;
  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  dt__conn_initial_md(c, &ops[0]);
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = out;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &in;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  int rc = DT_ERR_INTERNAL;
  if (grpc_call_start_batch(call, ops, 6, call, NULL) == GRPC_CALL_OK) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_OP_COMPLETE) {
      rc = dt__from_grpc(status);
      if (rc == DT_OK) {
        rc = DT_ERR_INTERNAL;
        grpc_byte_buffer_reader r;
        if (in && grpc_byte_buffer_reader_init(&r, in)) {
          *resp = grpc_byte_buffer_reader_readall(&r);
          grpc_byte_buffer_reader_destroy(&r);
          rc = DT_OK;
        }
      } else {
        last_call_failed(status, details);
        if (err_msg) {
          char *d = grpc_slice_to_c_string(details);
          *err_msg = strdup(d);
          gpr_free(d);
        }
      }
    }
  }
  if (rc != DT_OK)
    DT_DEBUG("call %s failed: %s (grpc status %d)", method, dt_strerror(rc), (int)status);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  grpc_byte_buffer_destroy(out);
  if (in)
    grpc_byte_buffer_destroy(in);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
  return rc;
}

int dt__unary(dt__conn *c, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
              int timeout_ms, ProtobufCMessage **resp, char **err_msg)
{
  size_t n = protobuf_c_message_get_packed_size(req);
  grpc_slice sl = grpc_slice_malloc(n);
  protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(sl));
  grpc_slice all;
  int rc = unary_bytes(c, method, sl, timeout_ms, &all, err_msg);
  grpc_slice_unref(sl);
  if (rc != DT_OK)
    return rc;
  *resp = protobuf_c_message_unpack(rd, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
  grpc_slice_unref(all);
  if (!*resp) {
    DT_DEBUG("call %s: the response does not decode as %s", method, rd->name);
    return DT_ERR_INTERNAL;
  }
  return DT_OK;
}

int dt__unary_raw(dt__conn *c, const char *method, const uint8_t *req, size_t req_len, int timeout_ms,
                  uint8_t **resp, size_t *resp_len, char **err_msg)
{
  grpc_slice sl = grpc_slice_from_copied_buffer((const char *)req, req_len);
  grpc_slice all;
  int rc = unary_bytes(c, method, sl, timeout_ms, &all, err_msg);
  grpc_slice_unref(sl);
  if (rc != DT_OK)
    return rc;
  size_t n = GRPC_SLICE_LENGTH(all);
  *resp = malloc(n ? n : 1);
  if (!*resp) {
    grpc_slice_unref(all);
    return DT_ERR_NOMEM;
  }
  memcpy(*resp, GRPC_SLICE_START_PTR(all), n);
  *resp_len = n;
  grpc_slice_unref(all);
  return DT_OK;
}

/* Starts one batch and waits for it on |cq| (the call's only pending batch). Returns the op's success flag. */
static bool run_batch(grpc_call *call, grpc_completion_queue *cq, const grpc_op *ops, size_t n)
{
  grpc_call_error e = grpc_call_start_batch(call, ops, n, (void *)ops, NULL);
  if (e != GRPC_CALL_OK) {
    DT_ERROR("grpc_call_start_batch failed: %d", (int)e);
    return false;
  }
  grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

int dt__server_stream(dt__conn *c, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *rd, int timeout_ms,
                      int (*on_msg)(ProtobufCMessage *m, void *arg), void *arg)
{
  last_call_begin();
  size_t len = protobuf_c_message_get_packed_size(req);
  grpc_slice sl = grpc_slice_malloc(len);
  protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);

  gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_REALTIME);
  if (timeout_ms != DT__NO_DEADLINE)
    deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                            gpr_time_from_millis(timeout_ms > 0 ? timeout_ms : c->call_timeout_ms, GPR_TIMESPAN));
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                             grpc_slice_from_static_string(method), NULL, deadline, NULL);
  grpc_metadata_array imd, tmd;
  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  int rc = DT_OK; /* our own failure while reading the stream, if any */

  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  dt__conn_initial_md(c, &ops[0]);
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
  bool ok = run_batch(call, cq, ops, 4);

  /* Messages until the server ends the stream (or the call fails: then there is no message either). */
  while (ok) {
    grpc_byte_buffer *in = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &in;
    if (!run_batch(call, cq, &op, 1) || !in)
      break;
    ProtobufCMessage *m = NULL;
    grpc_byte_buffer_reader r;
    if (grpc_byte_buffer_reader_init(&r, in)) {
      grpc_slice all = grpc_byte_buffer_reader_readall(&r);
      grpc_byte_buffer_reader_destroy(&r);
      m = protobuf_c_message_unpack(rd, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
      grpc_slice_unref(all);
    }
    grpc_byte_buffer_destroy(in);
    rc = m ? on_msg(m, arg) : DT_ERR_INTERNAL;
    if (rc != DT_OK) {
      DT_WARN("rpc=%s reading the stream failed: %s", method, dt_strerror(rc));
      grpc_call_cancel(call, NULL);
      break;
    }
  }

  grpc_op st;
  memset(&st, 0, sizeof st);
  st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  st.data.recv_status_on_client.trailing_metadata = &tmd;
  st.data.recv_status_on_client.status = &status;
  st.data.recv_status_on_client.status_details = &details;
  if (!run_batch(call, cq, &st, 1) && rc == DT_OK)
    rc = DT_ERR_INTERNAL;
  else if (rc == DT_OK && (rc = dt__from_grpc(status)) != DT_OK)
    last_call_failed(status, details);
  if (rc != DT_OK) {
    char *d = grpc_slice_to_c_string(details);
    DT_DEBUG("rpc=%s rc=%s grpc_status=%d message=\"%s\"", method, dt_strerror(rc), (int)status, d);
    gpr_free(d);
  }

  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  grpc_byte_buffer_destroy(send);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
  return rc;
}
