/* taskhubd-grpc-ping: a tiny gRPC client for container probes and chart tests, where no grpc_health_probe
 * binary is available. It makes one unary call on an insecure channel and exits 0 when it succeeds:
 *
 *   taskhubd-grpc-ping [--timeout-ms MS] ADDRESS health [SERVICE]   grpc.health.v1.Health/Check == SERVING
 *   taskhubd-grpc-ping [--timeout-ms MS] ADDRESS hello              TaskHubSidecarService/Hello returns OK
 *
 * Exit status: 0 success, 1 call failed or NOT_SERVING, 2 usage. Built with the C core of gRPC only (the request and
 * response messages are small enough to encode by hand). */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
  fprintf(stderr, "usage: taskhubd-grpc-ping [--timeout-ms MS] ADDRESS health [SERVICE] | hello\n");
  return 2;
}

int main(int argc, char **argv)
{
  long timeout_ms = 3000;
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "--timeout-ms") == 0) {
    timeout_ms = strtol(argv[i + 1], NULL, 10);
    i += 2;
  }
  if (argc - i < 2 || timeout_ms <= 0)
    return usage();
  const char *target = argv[i], *what = argv[i + 1];
  const char *service = argc - i > 2 ? argv[i + 2] : "";
  int health = strcmp(what, "health") == 0;
  if (!health && strcmp(what, "hello") != 0)
    return usage();

  /* Request: HealthCheckRequest{service = 1} or google.protobuf.Empty. */
  unsigned char req[260];
  size_t req_len = 0, slen = strlen(service);
  if (health && slen > 0) {
    if (slen > 127)
      return usage();
    req[0] = 0x0a;
    req[1] = (unsigned char)slen;
    memcpy(req + 2, service, slen);
    req_len = slen + 2;
  }

  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, creds, NULL);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_slice method = grpc_slice_from_static_string(health ? "/grpc.health.v1.Health/Check"
                                                           : "/TaskHubSidecarService/Hello");
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);

  grpc_slice req_slice = grpc_slice_from_copied_buffer((const char *)req, req_len);
  grpc_byte_buffer *req_bb = grpc_raw_byte_buffer_create(&req_slice, 1);
  grpc_byte_buffer *resp_bb = NULL;
  grpc_metadata_array initial_md, trailing_md;
  grpc_metadata_array_init(&initial_md);
  grpc_metadata_array_init(&trailing_md);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &resp_bb;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;

  int rc = 1;
  if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK) {
    fprintf(stderr, "taskhubd-grpc-ping: cannot start the call\n");
  } else {
    grpc_event ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
      fprintf(stderr, "taskhubd-grpc-ping: call did not complete\n");
    } else if (status != GRPC_STATUS_OK) {
      char *d = grpc_slice_to_c_string(details);
      fprintf(stderr, "taskhubd-grpc-ping: %s: status %d: %s\n", target, (int)status, d);
      gpr_free(d);
    } else if (!health) {
      printf("hello: OK\n");
      rc = 0;
    } else {
      /* HealthCheckResponse{status = 1}: 08 01 is SERVING; an empty message is UNKNOWN. */
      int serving = 0;
      if (resp_bb) {
        grpc_byte_buffer_reader rd;
        if (grpc_byte_buffer_reader_init(&rd, resp_bb)) {
          grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
          const unsigned char *p = GRPC_SLICE_START_PTR(all);
          serving = GRPC_SLICE_LENGTH(all) == 2 && p[0] == 0x08 && p[1] == 0x01;
          grpc_slice_unref(all);
          grpc_byte_buffer_reader_destroy(&rd);
        }
      }
      printf("health: %s\n", serving ? "SERVING" : "NOT_SERVING");
      rc = serving ? 0 : 1;
    }
  }

  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&initial_md);
  grpc_metadata_array_destroy(&trailing_md);
  grpc_byte_buffer_destroy(req_bb);
  if (resp_bb)
    grpc_byte_buffer_destroy(resp_bb);
  grpc_slice_unref(req_slice);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  grpc_channel_destroy(ch);
  grpc_shutdown();
  return rc;
}
