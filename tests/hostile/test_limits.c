/* Issue 15, item 7: a client flooding requests, or workers that stop reading their streams, meet limits
 * (RESOURCE_EXHAUSTED naming them, work withheld or handed to others) rather than memory that grows with them. */
#define _GNU_SOURCE
#include "hx.h"


#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- a flood of StartInstance ---- */

#define FLOOD_THREADS 16
#define FLOOD_EACH 40

struct flooder {
  int port, t;
  int ok, refused, other;
  bool named_limit; /* every refusal named --max-queued-commands */
  char accepted[FLOOD_EACH][32], rejected[FLOOD_EACH][32];
  char other_msg[200];
};

static void *flood_main(void *arg)
{
  struct flooder *f = arg;
  th_client *c = th_client_open(f->port);
  f->named_limit = true;
  for (int i = 0; i < FLOOD_EACH; i++) {
    char id[32];
    snprintf(id, sizeof id, "f%02d-%02d", f->t, i);
    CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
    req.instanceid = id;
    req.name = (char *)"Orch";
    char *out = NULL, *d = NULL;
    grpc_status_code st = it_start_req(c, &req, &out, &d);
    if (st == GRPC_STATUS_OK) {
      snprintf(f->accepted[f->ok++], 32, "%s", id);
    } else if (st == GRPC_STATUS_RESOURCE_EXHAUSTED) {
      snprintf(f->rejected[f->refused++], 32, "%s", id);
      if (!d || !strstr(d, "--max-queued-commands"))
        f->named_limit = false;
    } else {
      f->other++;
      snprintf(f->other_msg, sizeof f->other_msg, "%s: %s", th_status_name(st), d ? d : "");
    }
    free(out);
    free(d);
  }
  th_client_close(c);
  return NULL;
}

/* One commit per command (--max-batch 1) and room for two waiting: sixteen clients starting at once are partly
 * refused, with the limit named; everything accepted exists and nothing refused does; taskhubd serves on. */
TEST_IMPL(hostile_limits_start_flood_is_refused)
{
  int ops = hx_free_port();
  char ops_listen[32];
  snprintf(ops_listen, sizeof ops_listen, "127.0.0.1:%d", ops);
  static const char *args_fmt[] = {"--max-batch", "1", "--max-queued-commands", "2", "--ops-listen", NULL, NULL};
  const char *args[7];
  memcpy(args, args_fmt, sizeof args);
  args[5] = ops_listen;
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  static struct flooder fl[FLOOD_THREADS];
  pthread_t th[FLOOD_THREADS];
  int refused = 0, ok = 0;
  /* Rounds until some are refused (a machine fast enough to apply each start before the next arrives refuses
   * none); each round's ids are new. */
  long long deadline = th_now_ms() + 60000;
  for (int round = 0; refused == 0; round++) {
    ASSERT_LT(th_now_ms(), deadline);
    memset(fl, 0, sizeof fl);
    for (int t = 0; t < FLOOD_THREADS; t++) {
      fl[t].port = e.srv.port;
      fl[t].t = round * FLOOD_THREADS + t;
      ASSERT_OK(pthread_create(&th[t], NULL, flood_main, &fl[t]));
    }
    for (int t = 0; t < FLOOD_THREADS; t++)
      pthread_join(th[t], NULL);
    for (int t = 0; t < FLOOD_THREADS; t++) {
      if (fl[t].other)
        TEST_FAIL("a start failed with something other than RESOURCE_EXHAUSTED: %s", fl[t].other_msg);
      ASSERT(fl[t].named_limit);
      ok += fl[t].ok;
      refused += fl[t].refused;
      for (int i = 0; i < fl[t].ok; i++) {
        GetInstanceResponse *g = it_get(e.cli, fl[t].accepted[i], 0);
        ASSERT(g->exists);
        it_free(g);
      }
      for (int i = 0; i < fl[t].refused; i++) {
        GetInstanceResponse *g = it_get(e.cli, fl[t].rejected[i], 0);
        if (g->exists)
          TEST_FAIL("%s was refused but exists", fl[t].rejected[i]);
        it_free(g);
      }
    }
  }
  fprintf(stderr, "starts accepted %d, refused %d\n", ok, refused);
  ASSERT_GT(ok, 0);
  ASSERT_GE(hx_metric(ops, "taskhubd_refused_commands_total"), (double)refused);
  hx_assert_alive(e.cli);
  free(it_start(e.cli, "after-the-flood", "Orch", NULL));
  it_teardown(&e);
  return 0;
}

/* ---- workers that stop reading ---- */

static void start_many(th_client *c, const char *prefix, int n, size_t input_bytes)
{
  char *input = it_repeat('i', input_bytes);
  input[0] = input[input_bytes - 1] = '"';
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "%s%04d", prefix, i);
    free(it_start(c, id, "Orch", input));
  }
  free(input);
}

/* A worker that asks for everything and never reads holds its stream's buffer full; after --stream-stall seconds
 * without a send its stream is ended with RESOURCE_EXHAUSTED naming the limits, what it held is freed, and its
 * work items go to the worker that reads: that one gets every instance. */
TEST_IMPL(hostile_limits_stalled_stream_is_ended)
{
  int ops = hx_free_port();
  char ops_listen[32];
  snprintf(ops_listen, sizeof ops_listen, "127.0.0.1:%d", ops);
  const char *args[] = {"--max-outbox", "64K", "--stream-stall", "2", "--health-ping", "3", "--ops-listen",
                        ops_listen, NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  enum { N = 300 };
  start_many(e.cli, "st", N, 20000);
  th_client *lazy_cli = hx_lazy_client(e.srv.port);
  th_stream *lazy = hx_worker(lazy_cli, 1000000, 1000000, NULL, NULL, 0);
  hx_assert_alive(lazy_cli);
  /* The lazy stream is given work until its buffer is full. */
  long long deadline = th_now_ms() + 20000;
  while (hx_metric(ops, "taskhubd_stream_buffered_bytes") < 64 * 1024) {
    ASSERT_LT(th_now_ms(), deadline);
    poll(NULL, 0, 50); /* between checks of the condition */
  }
  th_client *busy_cli = th_client_open(e.srv.port);
  th_stream *busy = hx_worker(busy_cli, 0, 0, NULL, NULL, 0);
  /* The busy worker gets everything, the lazy one's items too once its stream is ended (within the stall plus
   * one check interval). */
  int got = hx_drain(busy_cli, busy, N, 15000);
  ASSERT_EQ(got, N);
  /* The client sees the status after the messages its transport took before the stall: read them now. */
  uint8_t *buf;
  size_t len;
  int r, unread = 0;
  while ((r = th_stream_read(lazy, 10000, &buf, &len)) == 1) {
    free(buf);
    unread++;
  }
  ASSERT_EQ(r, -1);
  char *d = NULL;
  grpc_status_code st = th_stream_status(lazy, &d);
  fprintf(stderr, "the lazy stream had %d messages in its client's transport\n", unread);
  fprintf(stderr, "lazy stream ended: %s \"%s\"\n", th_status_name(st), d ? d : "");
  ASSERT_STATUS(st, GRPC_STATUS_RESOURCE_EXHAUSTED, d);
  ASSERT_STR_CONTAINS(d, "--stream-stall");
  free(d);
  char *log = hx_server_log(&e.srv);
  ASSERT_STR_CONTAINS(log, "event=stream_stalled");
  free(log);
  ASSERT_EQ(hx_metric(ops, "taskhubd_stream_buffered_bytes"), 0);
  th_stream_free(lazy);
  th_stream_free(busy);
  th_client_close(lazy_cli);
  th_client_close(busy_cli);
  it_teardown(&e);
  return 0;
}

/* Workers that stopped reading below their own --max-outbox, held back only because together they hold
 * --max-outbox-total, are ended by --stream-stall too: their work items go to the worker that reads, which gets
 * every instance. */
TEST_IMPL(hostile_limits_stalled_below_own_limit_is_ended)
{
  int ops = hx_free_port();
  char ops_listen[32];
  snprintf(ops_listen, sizeof ops_listen, "127.0.0.1:%d", ops);
  const char *args[] = {"--max-outbox", "1M", "--max-outbox-total", "192K", "--stream-stall", "2",
                        "--health-ping", "3", "--ops-listen", ops_listen, NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  enum { N = 300, LAZY = 3 };
  start_many(e.cli, "sb", N, 20000);
  th_client *cli[LAZY];
  th_stream *lazy[LAZY];
  for (int i = 0; i < LAZY; i++) {
    cli[i] = hx_lazy_client(e.srv.port);
    lazy[i] = hx_worker(cli[i], 1000000, 1000000, NULL, NULL, 0);
  }
  long long deadline = th_now_ms() + 20000;
  while (hx_metric(ops, "taskhubd_stream_buffered_bytes") < 192 * 1024) {
    ASSERT_LT(th_now_ms(), deadline);
    poll(NULL, 0, 50); /* between checks of the condition */
  }
  th_client *busy_cli = th_client_open(e.srv.port);
  th_stream *busy = hx_worker(busy_cli, 0, 0, NULL, NULL, 0);
  ASSERT_EQ(hx_drain(busy_cli, busy, N, 15000), N);
  for (int i = 0; i < LAZY; i++) {
    uint8_t *buf;
    size_t len;
    int r;
    while ((r = th_stream_read(lazy[i], 10000, &buf, &len)) == 1)
      free(buf);
    ASSERT_EQ(r, -1);
    char *d = NULL;
    grpc_status_code st = th_stream_status(lazy[i], &d);
    ASSERT_STATUS(st, GRPC_STATUS_RESOURCE_EXHAUSTED, d);
    ASSERT_STR_CONTAINS(d, "--max-outbox-total, --stream-stall");
    free(d);
    th_stream_free(lazy[i]);
    th_client_close(cli[i]);
  }
  th_stream_free(busy);
  th_client_close(busy_cli);
  it_teardown(&e);
  return 0;
}

/* Many workers that never read together hold at most --max-outbox-total (plus at most one item each past it), not
 * --max-outbox each; a worker that reads still gets all the rest meanwhile, and what they hold goes out once they
 * are gone. */
TEST_IMPL(hostile_limits_outbox_total)
{
  int ops = hx_free_port();
  char ops_listen[32];
  snprintf(ops_listen, sizeof ops_listen, "127.0.0.1:%d", ops);
  const char *args[] = {"--max-outbox", "256K", "--max-outbox-total", "512K", "--stream-stall", "0",
                        "--ops-listen", ops_listen, NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  enum { N = 1000, LAZY = 6, INPUT = 16000 };
  start_many(e.cli, "tot", N, INPUT);
  th_client *cli[LAZY];
  th_stream *lazy[LAZY];
  for (int i = 0; i < LAZY; i++) {
    cli[i] = hx_lazy_client(e.srv.port);
    lazy[i] = hx_worker(cli[i], 1000000, 1000000, NULL, NULL, 0);
  }
  /* Wait until the engine withholds work: the total is reached and instances wait for a worker. */
  long long deadline = th_now_ms() + 30000;
  double held = 0;
  for (;;) {
    ASSERT_LT(th_now_ms(), deadline);
    held = hx_metric(ops, "taskhubd_stream_buffered_bytes");
    if (held >= 512 * 1024 && hx_metric(ops, "taskhubd_waiting_for_worker") > 0)
      break;
    poll(NULL, 0, 50); /* between checks of the condition */
  }
  int lazy_items = (int)hx_metric(ops, "taskhubd_work_items_in_flight{kind=\"orchestration\"}");
  fprintf(stderr, "held for %d streams that never read: %.0f bytes, %d work items\n", LAZY, held, lazy_items);
  /* Past the total only a stream with nothing waiting takes one more item. Each stream alone could hold 256K. */
  ASSERT_LE(held, 512 * 1024 + LAZY * (INPUT + 1024));
  ASSERT_GT(lazy_items, 0);
  ASSERT_LT(lazy_items, N / 2);
  /* A worker that reads gets every other instance while they still hold the total (their transports may still
   * take a few more meanwhile, a window's worth each): it is given work until none is left but theirs. */
  th_stream *busy = hx_worker(e.cli, 0, 0, NULL, NULL, 0);
  int got = hx_drain(e.cli, busy, N, 3000);
  int lazy_before = lazy_items;
  lazy_items = (int)hx_metric(ops, "taskhubd_work_items_in_flight{kind=\"orchestration\"}");
  fprintf(stderr, "the reading worker got %d while they held %d\n", got, lazy_items);
  ASSERT_EQ(got + lazy_items, N);
  ASSERT_LE(lazy_items, lazy_before + LAZY * (64 * 1024 / INPUT + 1));
  ASSERT_EQ(hx_metric(ops, "taskhubd_waiting_for_worker"), 0);
  for (int i = 0; i < LAZY; i++) {
    th_stream_free(lazy[i]);
    th_client_close(cli[i]);
  }
  /* Then what they held. */
  ASSERT_EQ(hx_drain(e.cli, busy, lazy_items, 15000), lazy_items);
  th_stream_free(busy);
  it_teardown(&e);
  return 0;
}
