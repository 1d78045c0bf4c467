/*
 * Every request the server accepts, decoded and checked by the real server. taskhubd runs inside the fuzzing
 * process (sc_server_bind on a unix socket in a scratch directory, the real engine on a real RocksDB store), and
 * each input is one call: the first byte picks the method from the server's own table (sc_methods, rpc.c), the
 * rest is sent as the request message, unchanged. So each input passes through what a client's would: gRPC, the
 * check before unpacking (limits/wire.c), protobuf-c, the handler's checks (server/checks.c, limits/text.c), and
 * for what passes, the engine and the store.
 *
 * Invariants, besides no crash, leak or undefined behaviour anywhere in taskhubd: every call is answered; a
 * refusal is a status a client can act on, never UNKNOWN, INTERNAL, DATA_LOSS, UNAVAILABLE or UNIMPLEMENTED (every
 * method here is implemented, and the server is up); and a call that is not a wait or a stream answers within 30 s.
 */
#include "fz.h"

#include "config.h"
#include "server/call.h"
#include "server/server.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MS 30000
#define WAIT_CALL_MS 100 /* waits and streams: long enough to be parked and answered, then cut by the deadline */

static grpc_channel *ch;
static grpc_completion_queue *cq;
static struct sc_server *srv;

/* At exit, before the engine goes (fz_engine's own handler, registered earlier, runs later). */
static void server_down(void)
{
  grpc_channel_destroy(ch);
  sc_server_stop_accepting(srv);
  sc_server_destroy(srv, 0);
}

static void up(void)
{
  static struct sc_config cfg;
  char sock[4200];
  snprintf(sock, sizeof sock, "unix:%s/taskhubd.sock", fz_tempdir("server"));
  char *argv[] = {(char *)"fuzz", (char *)"--listen", sock, (char *)"--ops-listen", (char *)"off", NULL};
  if (sc_config_parse(&cfg, 5, argv, stdout, stderr) != 0)
    fz_fail("the server's configuration does not parse");
  struct fz_engine *f = fz_engine();
  int port;
  struct sc_err err = {0};
  if (sc_server_bind(&cfg, &srv, &port, &err) != SC_OK)
    fz_fail("binding %s: %s", sock, err.msg);
  sc_server_start(srv, f->st, f->e);
  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  ch = grpc_channel_create(sock, creds, NULL);
  grpc_channel_credentials_release(creds);
  cq = grpc_completion_queue_create_for_pluck(NULL);
  atexit(server_down);
}

static bool none(const WorkItem *wi, void *ctx)
{
  (void)wi, (void)ctx;
  return false;
}

static bool is_wait(const char *path)
{
  return strstr(path, "/WaitFor") || strstr(path, "/GetWorkItems") || strstr(path, "/StreamInstanceHistory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!ch)
    up();
  if (size < 1)
    return 0;
  const struct sc_method *m = &sc_methods[data[0] % sc_n_methods];
  bool wait = is_wait(m->path);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(wait ? WAIT_CALL_MS : ANSWER_MS, GPR_TIMESPAN));
  grpc_slice method = grpc_slice_from_static_string(m->path);
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);
  grpc_slice body = grpc_slice_from_copied_buffer((const char *)data + 1, size - 1);
  grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&body, 1);
  grpc_slice_unref(body);

  grpc_metadata_array md_in, trailers;
  grpc_metadata_array_init(&md_in);
  grpc_metadata_array_init(&trailers);
  grpc_byte_buffer *resp = NULL;
  grpc_status_code status = GRPC_STATUS_OK;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_in;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailers;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  if (grpc_call_start_batch(call, ops, 6, (void *)call, NULL) != GRPC_CALL_OK)
    fz_fail("starting a call to %s", m->path);
  grpc_event ev = grpc_completion_queue_pluck(cq, (void *)call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (ev.type != GRPC_OP_COMPLETE)
    fz_fail("the call to %s never completed", m->path);

  char *msg = grpc_slice_to_c_string(details);
  if (status == GRPC_STATUS_UNKNOWN || status == GRPC_STATUS_INTERNAL || status == GRPC_STATUS_DATA_LOSS)
    fz_fail("%s answered status %d: %s", m->path, (int)status, msg);
  if (status == GRPC_STATUS_DEADLINE_EXCEEDED && !wait)
    fz_fail("%s did not answer within %d ms", m->path, ANSWER_MS);
  if (status == GRPC_STATUS_UNAVAILABLE || status == GRPC_STATUS_UNIMPLEMENTED)
    fz_fail("%s answered status %d: %s", m->path, (int)status, msg);
  gpr_free(msg);

  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&md_in);
  grpc_metadata_array_destroy(&trailers);
  if (resp)
    grpc_byte_buffer_destroy(resp);
  grpc_byte_buffer_destroy(req);
  grpc_call_unref(call);
  /* Work the calls made (started orchestrations, raised events) goes to the fixture's worker, which answers it. */
  fz_next_item(fz_engine(), none, NULL, 0);
  return 0;
}
