/*
 * blob — a long job that checkpoints its progress and survives a restart of the sidecar.
 *
 * The orchestration "process_blob" reads a large blob (here a 160 KiB access log) chunk by chunk: one
 * "process_chunk" activity per 4 KiB, one at a time, adding up bytes, lines and a byte sum. Every completed
 * chunk is a checkpoint — taskhubd has recorded it before the next one is scheduled — and every 8 chunks the
 * orchestration continues as new, carrying the offset and the running totals in its input, so no single
 * history grows with the size of the blob. The custom status shows how far it is.
 *
 * Kill taskhubd (even with SIGKILL) while this runs and start it again on the same data dir and address: the
 * worker reconnects by itself, the chunk that was in flight is delivered again, and the job finishes with the
 * same totals as an uninterrupted run. Activities run at least once, so process_chunk is a pure function of
 * its chunk; the totals live in the orchestration, which counts each chunk exactly once.
 *
 * usage: sample_blob [HOST:PORT] [--chunk-delay-ms N]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001, 25 ms)
 *   --chunk-delay-ms  how long each chunk takes (a stand-in for reading it from slow storage)
 * Exits 0 when the totals match a direct pass over the blob.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "durabletask.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

#define BLOB_NAME "logs/access-2024-06-01.log"
#define BLOB_SIZE (160 * 1024)
#define CHUNK_SIZE 4096
#define CHUNKS_PER_EXECUTION 8

/* ------------------------------------------------------------------------------------------------ the blob */

/* A stand-in for blob storage: one blob, generated the same way every time. */
struct storage {
  char *data;
  size_t size;
  int chunk_delay_ms;
};

static void make_blob(struct storage *s)
{
  s->size = BLOB_SIZE;
  s->data = malloc(s->size + 128);
  if (!s->data) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  size_t n = 0;
  for (unsigned i = 0; n < s->size; i++)
    n += (size_t)snprintf(s->data + n, 128, "2024-06-01T%02u:%02u:%02u 10.0.%u.%u GET /api/items/%u %u %u ms\n",
                          i / 3600 % 24, i / 60 % 60, i % 60, i % 7, i % 251, i * 7919 % 10000,
                          i % 13 == 0 ? 404 : 200, i * 31 % 97);
}

/* What a chunk adds to the totals. */
struct tally {
  long long lines;
  unsigned long long sum;
};

static struct tally count(const char *p, size_t n)
{
  struct tally t = {0, 0};
  for (size_t i = 0; i < n; i++) {
    t.lines += p[i] == '\n';
    t.sum += (unsigned char)p[i];
  }
  return t;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* ------------------------------------------------------------------------------------------------ activities */

static long long get_ll(json_object *o, const char *key)
{
  json_object *v;
  return o && json_object_object_get_ex(o, key, &v) ? (long long)json_object_get_int64(v) : -1;
}

/* The blob's size: "logs/..." -> 163840. */
static const char *stat_blob(dt_activity_ctx *actx, const char *input, void *user_data)
{
  const struct storage *s = user_data;
  return dt_activity_printf(actx, "%zu", s->size);
}

/* {"offset": o, "length": n} -> {"lines": l, "sum": s} for those bytes. Pure: running it twice is harmless. */
static const char *process_chunk(dt_activity_ctx *actx, const char *input, void *user_data)
{
  const struct storage *s = user_data;
  json_object *in = json_tokener_parse(input ? input : "");
  long long offset = get_ll(in, "offset"), length = get_ll(in, "length");
  json_object_put(in);
  if (offset < 0 || length <= 0 || (size_t)(offset + length) > s->size) {
    dt_activity_fail(actx, "InvalidInput", "the chunk is not inside the blob");
    return NULL;
  }
  sleep_ms(s->chunk_delay_ms); /* slow storage */
  struct tally t = count(s->data + offset, (size_t)length);
  printf("chunk %lld/%zu: offset %lld, %lld lines\n", offset / CHUNK_SIZE + 1,
         (s->size + CHUNK_SIZE - 1) / CHUNK_SIZE, offset, t.lines);
  return dt_activity_printf(actx, "{\"lines\":%lld,\"sum\":%llu}", t.lines, t.sum);
}

/* ------------------------------------------------------------------------------------------------ orchestrator */

/* The state carried from one execution to the next (the orchestration's input), and its result. */
struct progress {
  const char *blob; /* JSON string */
  long long size;   /* -1 until known */
  long long offset, chunks, lines, executions;
  unsigned long long sum;
};

static void read_progress(dt_orch_ctx *ctx, const char *input, struct progress *p)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  p->blob = NULL;
  if (in && json_object_object_get_ex(in, "blob", &v) && json_object_is_type(v, json_type_string))
    p->blob = dt_ctx_strdup(ctx, json_object_to_json_string_ext(v, JSON_FLAGS)); /* kept as JSON: "..." */
  p->size = in && json_object_object_get_ex(in, "size", &v) ? (long long)json_object_get_int64(v) : -1;
  p->offset = in && json_object_object_get_ex(in, "offset", &v) ? (long long)json_object_get_int64(v) : 0;
  p->chunks = in && json_object_object_get_ex(in, "chunks", &v) ? (long long)json_object_get_int64(v) : 0;
  p->lines = in && json_object_object_get_ex(in, "lines", &v) ? (long long)json_object_get_int64(v) : 0;
  p->sum = in && json_object_object_get_ex(in, "sum", &v) ? (unsigned long long)json_object_get_uint64(v) : 0;
  p->executions = (in && json_object_object_get_ex(in, "executions", &v) ? json_object_get_int64(v) : 0) + 1;
  json_object_put(in);
  if (!p->blob)
    dt_orch_fail(ctx, "InvalidInput", "no blob name");
}

static const char *write_progress(dt_orch_ctx *ctx, const struct progress *p)
{
  return dt_ctx_printf(ctx,
                       "{\"blob\":%s,\"size\":%lld,\"offset\":%lld,\"chunks\":%lld,\"lines\":%lld,\"sum\":%llu,"
                       "\"executions\":%lld}",
                       p->blob, p->size, p->offset, p->chunks, p->lines, p->sum, p->executions);
}

static const char *process_blob(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  struct progress p;
  read_progress(ctx, input, &p);
  if (p.size < 0)
    p.size = atoll(dt_await(ctx, dt_call_activity(ctx, "stat_blob", p.blob)));

  /* One chunk at a time: each completed chunk is recorded before the next is scheduled. */
  for (int k = 0; k < CHUNKS_PER_EXECUTION && p.offset < p.size; k++) {
    long long length = p.size - p.offset < CHUNK_SIZE ? p.size - p.offset : CHUNK_SIZE;
    const char *chunk = dt_ctx_printf(ctx, "{\"offset\":%lld,\"length\":%lld}", p.offset, length);
    const char *r = dt_await(ctx, dt_call_activity(ctx, "process_chunk", chunk));

    json_object *t = json_tokener_parse(r ? r : ""), *v;
    p.lines += t && json_object_object_get_ex(t, "lines", &v) ? (long long)json_object_get_int64(v) : 0;
    p.sum += t && json_object_object_get_ex(t, "sum", &v) ? (unsigned long long)json_object_get_uint64(v) : 0;
    json_object_put(t);
    p.offset += length;
    p.chunks++;
    dt_set_custom_status(ctx, dt_ctx_printf(ctx, "{\"offset\":%lld,\"size\":%lld,\"chunks\":%lld}", p.offset,
                                            p.size, p.chunks));
  }

  if (p.offset >= p.size)
    return dt_ctx_printf(ctx, "{\"blob\":%s,\"bytes\":%lld,\"chunks\":%lld,\"lines\":%lld,\"sum\":%llu,"
                              "\"executions\":%lld}",
                         p.blob, p.size, p.chunks, p.lines, p.sum, p.executions);
  /* A checkpoint of the whole state: a new execution starts from this input, with an empty history. */
  dt_continue_as_new(ctx, write_progress(ctx, &p), false);
}

/* ------------------------------------------------------------------------------------------------ main */

static void log_line(int level, const char *message, void *user_data)
{
  if (level >= 2)
    fprintf(stderr, "durabletask: %s\n", message);
}

static void check(int rc, const char *what)
{
  if (rc != DT_OK) {
    fprintf(stderr, "%s: %s\n", what, dt_strerror(rc));
    exit(1);
  }
}

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits for the instance to finish, riding out sidecar restarts: while taskhubd is down calls fail with
 * DT_ERR_UNAVAILABLE; the client reconnects on a later call once it is back (the worker does so by itself).
 */
static int wait_through_restarts(dt_client *client, const char *id, int64_t limit_ms, dt_instance **out)
{
  int64_t give_up = now_ms() + limit_ms;
  bool lost = false;
  for (;;) {
    int rc = dt_client_wait_completion(client, id, 10000, true, out);
    if (rc == DT_OK)
      return rc;
    if ((rc != DT_ERR_UNAVAILABLE && rc != DT_ERR_TIMEOUT) || now_ms() > give_up)
      return rc;
    if (rc == DT_ERR_UNAVAILABLE && !lost)
      printf("lost the sidecar (%s); waiting for it to come back\n", dt_strerror(rc));
    lost = lost || rc == DT_ERR_UNAVAILABLE;
    if (rc == DT_ERR_UNAVAILABLE)
      sleep_ms(200);
  }
}

int main(int argc, char **argv)
{
  const char *target = dt_default_target();
  struct storage storage = {.chunk_delay_ms = 25};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--chunk-delay-ms") == 0 && i + 1 < argc)
      storage.chunk_delay_ms = atoi(argv[++i]);
    else if (argv[i][0] != '-')
      target = argv[i];
    else {
      fprintf(stderr, "usage: %s [HOST:PORT] [--chunk-delay-ms N]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  dt_set_log_fn(log_line, NULL);
  make_blob(&storage);

  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "process_blob", process_blob, NULL), "add process_blob");
  check(dt_worker_add_activity(worker, "stat_blob", stat_blob, &storage), "add stat_blob");
  check(dt_worker_add_activity(worker, "process_chunk", process_chunk, &storage), "add process_chunk");
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");
  dt_start_options start = {.input = "{\"blob\":\"" BLOB_NAME "\"}"};
  char *id = NULL;
  check(dt_client_schedule(client, "process_blob", &start, &id), "schedule process_blob");
  printf("started process_blob as %s\n", id);

  dt_instance *st = NULL;
  check(wait_through_restarts(client, id, 120000, &st), "wait for process_blob");
  printf("status: %s\n", dt_status_name(st->status));
  if (st->failure)
    printf("failure: %s: %s\n", st->failure->error_type, st->failure->message);
  printf("result: %s\n", st->output ? st->output : "null");

  /* The same totals, computed directly. */
  struct tally t = count(storage.data, storage.size);
  char want[256];
  snprintf(want, sizeof want,
           "{\"blob\":\"" BLOB_NAME "\",\"bytes\":%zu,\"chunks\":%zu,\"lines\":%lld,\"sum\":%llu,\"executions\":%zu}",
           storage.size, (storage.size + CHUNK_SIZE - 1) / CHUNK_SIZE, t.lines, t.sum,
           ((storage.size + CHUNK_SIZE - 1) / CHUNK_SIZE + CHUNKS_PER_EXECUTION - 1) / CHUNKS_PER_EXECUTION);
  printf("expected: %s\n", want);
  bool ok = st->status == DT_STATUS_COMPLETED && st->output && strcmp(st->output, want) == 0;

  dt_instance_free(st);
  dt_free(id);
  dt_client_close(client);
  dt_worker_free(worker);
  free(storage.data);
  return ok ? 0 : 1;
}
