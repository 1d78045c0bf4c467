/*
 * th-limits-bench: taskhubd's memory (VmRSS, and VmHWM, the peak) under the two loads of issue 15 item 7, against a
 * running taskhubd whose pid is given. One RESULT line per run.
 *
 *   th-limits-bench HOST:PORT PID lazy_streams STREAMS INSTANCES INPUT_BYTES
 *       STREAMS GetWorkItems streams, each on its own connection (a worker process each), that never read; then
 *       INSTANCES orchestrations started with INPUT_BYTES of input each, which taskhubd hands to those streams as far
 *       as its limits let it. RSS before, with the streams open, and once the starts are done and dispatch settled.
 *       The streams are opened by a child process that then stops itself (SIGSTOP): a gRPC client that merely
 *       never asks for a message still lets its transport take megabytes per stream off the socket, so only a
 *       stopped process leaves what it does not read in taskhubd.
 *   th-limits-bench HOST:PORT PID inbox_flood EVENTS
 *       one instance (no worker) receives EVENTS RaiseEvent calls, 64 in flight; counts those accepted and those
 *       refused (RESOURCE_EXHAUSTED, --max-inbox); RSS before, at the peak, and after.
 */
#define _POSIX_C_SOURCE 200809L
#include "orchestrator_service.pb-c.h"
#include "unary.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IN_FLIGHT 64

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* VmRSS or VmHWM of |pid| in MiB. */
static double proc_mb(long pid, const char *field)
{
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "th-limits-bench: cannot read %s (taskhubd gone?)\n", path);
    exit(1);
  }
  double mb = -1;
  size_t fl = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
      mb = atof(line + fl + 1) / 1024.0;
      break;
    }
  fclose(f);
  return mb;
}

static grpc_channel *channel(const char *target)
{
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, creds, NULL);
  grpc_channel_credentials_release(creds);
  return ch;
}

/* ---- unary calls, IN_FLIGHT at a time on one completion queue ---- */

struct ucall {
  grpc_call *call;
  grpc_byte_buffer *req, *resp;
  grpc_metadata_array imd, tmd;
  grpc_status_code status;
  grpc_slice details;
};

typedef grpc_byte_buffer *(*make_req_fn)(long i, void *ctx);

/* Runs |total| calls of |method|, the i-th with make(i); counts OK and RESOURCE_EXHAUSTED answers (anything else
 * ends the program) and calls |tick| after each. */
static void run_unary(grpc_channel *ch, const char *method, long total, make_req_fn make, void *ctx, long *ok,
                      long *exhausted, void (*tick)(void))
{
  void *h = grpc_channel_register_call(ch, method, NULL, NULL);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  struct ucall *calls = calloc(IN_FLIGHT, sizeof *calls);
  long started = 0, done = 0;
  char last_refusal[300] = "";
  *ok = *exhausted = 0;
  for (;;) {
    while (started < total && started - done < IN_FLIGHT) {
      struct ucall *c = NULL;
      for (int i = 0; i < IN_FLIGHT && !c; i++)
        if (!calls[i].call)
          c = &calls[i];
      memset(c, 0, sizeof *c);
      grpc_metadata_array_init(&c->imd);
      grpc_metadata_array_init(&c->tmd);
      c->req = make(started++, ctx);
      c->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, h,
                                                    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
      grpc_op ops[6];
      bench_unary_ops(ops, c->req, &c->imd, &c->resp, &c->tmd, &c->status, &c->details);
      if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
        fprintf(stderr, "th-limits-bench: start_batch failed\n");
        exit(1);
      }
    }
    if (done == total)
      break;
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    struct ucall *c = ev.tag;
    char *d = grpc_slice_to_c_string(c->details);
    if (c->status == GRPC_STATUS_OK) {
      (*ok)++;
    } else if (c->status == GRPC_STATUS_RESOURCE_EXHAUSTED) {
      (*exhausted)++;
      snprintf(last_refusal, sizeof last_refusal, "%s", d);
    } else {
      fprintf(stderr, "th-limits-bench: %s failed: status=%d %s\n", method, c->status, d);
      exit(1);
    }
    gpr_free(d);
    grpc_byte_buffer_destroy(c->req);
    if (c->resp)
      grpc_byte_buffer_destroy(c->resp);
    grpc_metadata_array_destroy(&c->imd);
    grpc_metadata_array_destroy(&c->tmd);
    grpc_slice_unref(c->details);
    grpc_call_unref(c->call);
    c->call = NULL;
    done++;
    if (tick)
      tick();
  }
  if (last_refusal[0])
    fprintf(stderr, "th-limits-bench: %ld refused, e.g. \"%s\"\n", *exhausted, last_refusal);
  free(calls);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
}

/* ---- lazy_streams ---- */

struct start_ctx {
  const char *input;
  const char *run;
};

static grpc_byte_buffer *make_start(long i, void *p)
{
  struct start_ctx *s = p;
  char iid[64];
  snprintf(iid, sizeof iid, "lazy-%s-%07ld", s->run, i);
  CreateInstanceRequest r = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  in.value = (char *)s->input;
  r.instanceid = iid;
  r.name = (char *)"Lazy";
  r.input = &in;
  return bench_pack(&r.base);
}

/* The child: opens the streams, says so on |fd|, and stops itself until the parent kills it. */
static void open_and_stop(const char *target, long nstreams, int fd)
{
  grpc_init();
  /* Each stream on its own connection, as separate worker processes would open them. */
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_channel **chs = calloc((size_t)nstreams, sizeof *chs);
  grpc_call **calls = calloc((size_t)nstreams, sizeof *calls);
  grpc_metadata_array *mds = calloc((size_t)nstreams, sizeof *mds);
  GetWorkItemsRequest req = GET_WORK_ITEMS_REQUEST__INIT;
  req.maxconcurrentorchestrationworkitems = 1000000;
  req.maxconcurrentactivityworkitems = 1000000;
  grpc_byte_buffer *bb = bench_pack(&req.base);
  for (long i = 0; i < nstreams; i++) {
    chs[i] = channel(target);
    calls[i] = grpc_channel_create_call(chs[i], NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                        grpc_slice_from_static_string("/TaskHubSidecarService/GetWorkItems"), NULL,
                                        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array_init(&mds[i]);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &mds[i];
    if (grpc_call_start_batch(calls[i], ops, 4, &calls[i], NULL) != GRPC_CALL_OK) {
      fprintf(stderr, "th-limits-bench: opening a stream failed\n");
      _exit(1);
    }
  }
  /* Every stream is open once taskhubd sent its initial metadata. Never a RECV_MESSAGE: these workers never read. */
  for (long open = 0; open < nstreams;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                                gpr_time_from_seconds(120, GPR_TIMESPAN)), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
      fprintf(stderr, "th-limits-bench: only %ld of %ld streams opened in 120 s\n", open, nstreams);
      _exit(1);
    }
    if (ev.type == GRPC_OP_COMPLETE)
      open++;
  }
  char b = 1;
  if (write(fd, &b, 1) != 1)
    _exit(1);
  raise(SIGSTOP); /* not even the transport reads from now on */
  for (;;)
    pause();
}

static int lazy_streams(const char *target, long pid, long nstreams, long instances, long input_bytes)
{
  double rss0 = proc_mb(pid, "VmRSS");
  int p[2];
  if (pipe(p) != 0)
    return 1;
  pid_t child = fork();
  if (child < 0)
    return 1;
  if (child == 0) {
    close(p[0]);
    open_and_stop(target, nstreams, p[1]);
  }
  close(p[1]);
  char b;
  if (read(p[0], &b, 1) != 1) {
    fprintf(stderr, "th-limits-bench: the stream opener failed\n");
    waitpid(child, NULL, 0);
    return 1;
  }
  close(p[0]);
  double rss_streams = proc_mb(pid, "VmRSS");
  char *input = malloc((size_t)input_bytes + 1);
  memset(input, 'x', (size_t)input_bytes);
  input[0] = input[input_bytes - 1] = '"';
  input[input_bytes] = 0;
  grpc_init(); /* only now: the child forked from a process without gRPC's threads */
  char run[32];
  snprintf(run, sizeof run, "%lx", (long)time(NULL));
  struct start_ctx sc = {input, run};
  grpc_channel *ch = channel(target);
  long ok, refused;
  double t0 = now_s();
  run_unary(ch, "/TaskHubSidecarService/StartInstance", instances, make_start, &sc, &ok, &refused, NULL);
  double starts_s = now_s() - t0;
  /* Dispatch goes on after the last start is committed: wait until RSS stops growing (2 s without a new high) or
   * 30 s pass. */
  double peak = proc_mb(pid, "VmRSS"), last_high = now_s(), until = now_s() + 30;
  while (now_s() < until && now_s() - last_high < 2) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double r = proc_mb(pid, "VmRSS");
    if (r > peak + 1) {
      peak = r;
      last_high = now_s();
    }
  }
  double rss_after = proc_mb(pid, "VmRSS"), hwm = proc_mb(pid, "VmHWM");
  printf("RESULT scenario=lazy_streams streams=%ld instances=%ld input_bytes=%ld started=%ld refused=%ld "
         "starts_s=%.1f rss_before_mb=%.1f rss_streams_open_mb=%.1f rss_after_dispatch_mb=%.1f rss_peak_mb=%.1f\n",
         nstreams, instances, input_bytes, ok, refused, starts_s, rss0, rss_streams, rss_after, hwm);
  fflush(stdout);
  free(input);
  grpc_channel_destroy(ch);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return ok + refused == instances ? 0 : 1;
}

/* ---- inbox_flood ---- */

static long flood_pid;
static double flood_peak;

static void flood_tick(void)
{
  static long n;
  if (++n % 1000 == 0) {
    double r = proc_mb(flood_pid, "VmRSS");
    if (r > flood_peak)
      flood_peak = r;
  }
}

static grpc_byte_buffer *make_raise(long i, void *p)
{
  RaiseEventRequest r = RAISE_EVENT_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  char data[32];
  snprintf(data, sizeof data, "%ld", i);
  in.value = data;
  r.instanceid = p;
  r.name = (char *)"tick";
  r.input = &in;
  return bench_pack(&r.base);
}

static grpc_byte_buffer *make_one_start(long i, void *p)
{
  (void)i;
  CreateInstanceRequest r = CREATE_INSTANCE_REQUEST__INIT;
  r.instanceid = p;
  r.name = (char *)"Flooded";
  return bench_pack(&r.base);
}

static int inbox_flood(const char *target, long pid, long events)
{
  grpc_channel *ch = channel(target);
  char iid[64];
  snprintf(iid, sizeof iid, "flooded-%lx", (long)time(NULL));
  long ok, refused;
  run_unary(ch, "/TaskHubSidecarService/StartInstance", 1, make_one_start, iid, &ok, &refused, NULL);
  if (ok != 1) {
    fprintf(stderr, "th-limits-bench: starting %s failed\n", iid);
    return 1;
  }
  double rss0 = proc_mb(pid, "VmRSS");
  flood_pid = pid;
  flood_peak = rss0;
  double t0 = now_s();
  run_unary(ch, "/TaskHubSidecarService/RaiseEvent", events, make_raise, iid, &ok, &refused, flood_tick);
  double secs = now_s() - t0;
  double rss1 = proc_mb(pid, "VmRSS");
  if (rss1 > flood_peak)
    flood_peak = rss1;
  printf("RESULT scenario=inbox_flood events=%ld accepted=%ld refused=%ld seconds=%.1f events_per_s=%.0f "
         "rss_before_mb=%.1f rss_peak_mb=%.1f rss_after_mb=%.1f\n",
         events, ok, refused, secs, (double)events / secs, rss0, flood_peak, rss1);
  fflush(stdout);
  grpc_channel_destroy(ch);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: th-limits-bench HOST:PORT PID lazy_streams STREAMS INSTANCES INPUT_BYTES\n"
                    "       th-limits-bench HOST:PORT PID inbox_flood EVENTS\n");
    return 2;
  }
  long pid = atol(argv[2]);
  int rc;
  if (strcmp(argv[3], "lazy_streams") == 0 && argc >= 7) {
    rc = lazy_streams(argv[1], pid, atol(argv[4]), atol(argv[5]), atol(argv[6]));
  } else if (strcmp(argv[3], "inbox_flood") == 0) {
    grpc_init();
    rc = inbox_flood(argv[1], pid, atol(argv[4]));
  }
  else {
    fprintf(stderr, "th-limits-bench: unknown scenario %s\n", argv[3]);
    return 2;
  }
  grpc_shutdown();
  return rc;
}
