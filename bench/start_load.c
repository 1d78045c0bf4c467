/*
 * th-start-load: a StartInstance load generator. Keeps CONCURRENCY calls in flight on one completion queue
 * until TOTAL instances have been started, then prints one RESULT line. Every call must succeed.
 *
 *   th-start-load HOST:PORT CONCURRENCY TOTAL [LABEL]
 */
#define _POSIX_C_SOURCE 200809L
#include "orchestrator_service.pb-c.h"
#include "unary.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ccall {
  grpc_call *call;
  grpc_byte_buffer *req, *resp;
  grpc_metadata_array imd, tmd;
  grpc_status_code status;
  grpc_slice details;
  double t0;
};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static grpc_channel *ch;
static void *h_start;
static grpc_completion_queue *cq;
static long seq;
static char run_id[32];

static void start_one(struct ccall *c)
{
  memset(c, 0, sizeof *c);
  grpc_metadata_array_init(&c->imd);
  grpc_metadata_array_init(&c->tmd);
  char iid[96];
  snprintf(iid, sizeof iid, "load-%s-%08ld", run_id, seq++);
  CreateInstanceRequest r = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  in.value = (char *)"{\"city\":\"Tokyo\"}";
  r.instanceid = iid;
  r.name = (char *)"HelloCities";
  r.input = &in;
  c->req = bench_pack(&r.base);
  c->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, h_start,
                                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_op ops[6];
  bench_unary_ops(ops, c->req, &c->imd, &c->resp, &c->tmd, &c->status, &c->details);
  c->t0 = now_s();
  if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
    fprintf(stderr, "th-start-load: start_batch failed\n");
    exit(1);
  }
}

static void finish_one(struct ccall *c, int ok)
{
  if (!ok || c->status != GRPC_STATUS_OK || !c->resp) {
    char *d = grpc_slice_to_c_string(c->details);
    fprintf(stderr, "th-start-load: StartInstance failed: status=%d %s\n", c->status, d);
    gpr_free(d);
    exit(1);
  }
  grpc_byte_buffer_destroy(c->req);
  grpc_byte_buffer_destroy(c->resp);
  grpc_metadata_array_destroy(&c->imd);
  grpc_metadata_array_destroy(&c->tmd);
  grpc_slice_unref(c->details);
  grpc_call_unref(c->call);
}

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: th-start-load HOST:PORT CONCURRENCY TOTAL [LABEL]\n");
    return 2;
  }
  const char *target = argv[1];
  long conc = atol(argv[2]), total = atol(argv[3]);
  const char *label = argc > 4 ? argv[4] : "start_instance";
  if (conc < 1 || total < 1) {
    fprintf(stderr, "th-start-load: CONCURRENCY and TOTAL must be positive\n");
    return 2;
  }
  if (conc > total)
    conc = total;
  snprintf(run_id, sizeof run_id, "%lx", (long)time(NULL) ^ (long)clock());
  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  ch = grpc_channel_create(target, creds, NULL);
  grpc_channel_credentials_release(creds);
  h_start = grpc_channel_register_call(ch, "/TaskHubSidecarService/StartInstance", NULL, NULL);
  cq = grpc_completion_queue_create_for_next(NULL);
  struct ccall *calls = calloc((size_t)conc, sizeof *calls);
  double *lat = calloc((size_t)total, sizeof *lat);
  long started = 0, done = 0;
  double t0 = now_s();
  for (; started < conc; started++)
    start_one(&calls[started]);
  while (done < total) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    struct ccall *c = ev.tag;
    lat[done++] = now_s() - c->t0;
    finish_one(c, ev.success);
    if (started < total) {
      start_one(c);
      started++;
    }
  }
  double el = now_s() - t0;
  qsort(lat, (size_t)total, sizeof *lat, cmpd);
  printf("RESULT scenario=%s throughput=%.0f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f concurrency=%ld total=%ld\n",
         label, (double)total / el, lat[total / 2] * 1e3, lat[(size_t)((double)total * 0.95)] * 1e3,
         lat[(size_t)((double)total * 0.99)] * 1e3, conc, total);
  free(calls);
  free(lat);
  grpc_channel_destroy(ch);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
  grpc_shutdown();
  return 0;
}
