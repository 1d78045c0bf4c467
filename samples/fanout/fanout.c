/*
 * fanout — fan-out/fan-in: one activity per item of a batch, all running in parallel, then one aggregate.
 *
 * The orchestration "make_thumbnails" lists the images of an album (an activity, since it is I/O), schedules a
 * "resize" activity for every image before awaiting any of them — so the worker's activity threads run them
 * in parallel — waits for all of them with dt_when_all(), and sums up the thumbnails.
 *
 * Storage is flaky: the first write of harbor.jpg's thumbnail times out. The resizes are scheduled with a retry
 * policy, so that one is simply tried again after a short durable delay and the batch still completes.
 *
 * usage: sample_fanout [HOST:PORT]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001; start taskhubd first)
 * Exits 0 when every image got a thumbnail and the totals add up.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "durabletask.h"

/* Compact JSON, and "/" left as it is (json-c escapes it as "\/" by default). */
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ------------------------------------------------------------------------------------------------ the "storage" */

/* A stand-in for an object store: the album's images and their sizes. */
struct image {
  const char *name;
  int width, height;
};

static const struct image ALBUM[] = {
    {"beach.jpg", 4032, 3024},  {"harbor.jpg", 6000, 4000}, {"lighthouse.jpg", 3024, 4032},
    {"market.png", 1920, 1080}, {"sunset.jpg", 5472, 3648}, {"tram.png", 600, 800},
    {"castle.jpg", 4000, 3000}, {"fado.png", 1280, 720},
};
#define ALBUM_SIZE (sizeof ALBUM / sizeof ALBUM[0])

/* Thumbnails are at most |max_width| wide, keep the aspect ratio, and take (pretend) 2 bits per pixel. */
static void thumbnail_size(int width, int height, int max_width, int *w, int *h)
{
  *w = width > max_width ? max_width : width;
  *h = width > max_width ? (height * max_width + width / 2) / width : height;
}

static long long thumbnail_bytes(int w, int h)
{
  return (long long)w * h / 4;
}

/* ------------------------------------------------------------------------------------------------ activities */

/* Serialises |obj| into activity memory and releases it. */
static const char *activity_json(dt_activity_ctx *actx, json_object *obj)
{
  const char *s = dt_activity_printf(actx, "%s", json_object_to_json_string_ext(obj, JSON_FLAGS));
  json_object_put(obj);
  return s;
}

/* "lisbon-2024" -> [{"name":"beach.jpg","width":4032,"height":3024}, ...] */
static const char *list_images(dt_activity_ctx *actx, const char *input, void *user_data)
{
  json_object *list = json_object_new_array();
  for (size_t i = 0; i < ALBUM_SIZE; i++) {
    json_object *img = json_object_new_object();
    json_object_object_add(img, "name", json_object_new_string(ALBUM[i].name));
    json_object_object_add(img, "width", json_object_new_int(ALBUM[i].width));
    json_object_object_add(img, "height", json_object_new_int(ALBUM[i].height));
    json_object_array_add(list, img);
  }
  return activity_json(actx, list);
}

/* {"name":"beach.jpg","width":4032,"height":3024,"max_width":640} -> {"name":"thumbs/beach.jpg","width":640,
 * "height":480,"bytes":76800}. Runs on an activity thread, in parallel with the other resizes. */
static const char *resize(dt_activity_ctx *actx, const char *input, void *user_data)
{
  atomic_int *harbor_writes = user_data;
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  const char *name = in && json_object_object_get_ex(in, "name", &v) ? json_object_get_string(v) : NULL;
  int width = in && json_object_object_get_ex(in, "width", &v) ? json_object_get_int(v) : 0;
  int height = in && json_object_object_get_ex(in, "height", &v) ? json_object_get_int(v) : 0;
  int max_width = in && json_object_object_get_ex(in, "max_width", &v) ? json_object_get_int(v) : 0;
  if (!name || width <= 0 || height <= 0 || max_width <= 0) {
    json_object_put(in);
    dt_activity_fail(actx, "InvalidInput", "resize needs name, width, height and max_width");
    return NULL;
  }
  int w, h;
  thumbnail_size(width, height, max_width, &w, &h);
  /* The simulated fault: the first write of this one thumbnail times out. */
  if (strcmp(name, "harbor.jpg") == 0 && atomic_fetch_add(harbor_writes, 1) == 0) {
    printf("resize %s: storage timed out (will be retried)\n", name);
    json_object_put(in);
    dt_activity_fail(actx, "StorageTimeout", "timed out writing thumbs/harbor.jpg");
    return NULL;
  }
  printf("resize %s %dx%d -> %dx%d\n", name, width, height, w, h);
  json_object *out = json_object_new_object();
  json_object_object_add(out, "name", json_object_new_string(dt_activity_printf(actx, "thumbs/%s", name)));
  json_object_object_add(out, "width", json_object_new_int(w));
  json_object_object_add(out, "height", json_object_new_int(h));
  json_object_object_add(out, "bytes", json_object_new_int64(thumbnail_bytes(w, h)));
  json_object_put(in);
  return activity_json(actx, out);
}

/* ------------------------------------------------------------------------------------------------ orchestrator */

/*
 * Across a dt_* call that may end the run (dt_await() above all), an orchestrator must not hold memory the
 * context does not own: when the run ends early, nothing would free it. So JSON is parsed, copied out into
 * context memory and released in one stretch, as in the helpers below. (The dt_ctx_* allocators used there end
 * the run only when memory is exhausted.)
 */

/* Reads {"album": "...", "max_width": N}. */
static void read_request(dt_orch_ctx *ctx, const char *input, const char **album, int *max_width)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  *album = NULL;
  if (in && json_object_object_get_ex(in, "album", &v) && json_object_is_type(v, json_type_string))
    *album = dt_ctx_strdup(ctx, json_object_to_json_string_ext(v, JSON_FLAGS)); /* kept as JSON: "..." */
  *max_width = in && json_object_object_get_ex(in, "max_width", &v) ? json_object_get_int(v) : 0;
  json_object_put(in);
  if (!*album || *max_width <= 0)
    dt_orch_fail(ctx, "InvalidInput", "expected {\"album\": name, \"max_width\": pixels}");
}

/* The input of each resize: one image of the listing plus the wanted width. Returns how many. */
static size_t resize_inputs(dt_orch_ctx *ctx, const char *listing, int max_width, const char ***inputs)
{
  json_object *list = json_tokener_parse(listing ? listing : "");
  size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
  *inputs = dt_ctx_alloc(ctx, (n ? n : 1) * sizeof **inputs);
  for (size_t i = 0; i < n; i++) {
    json_object *img = json_object_array_get_idx(list, i);
    json_object_object_add(img, "max_width", json_object_new_int(max_width));
    (*inputs)[i] = dt_ctx_strdup(ctx, json_object_to_json_string_ext(img, JSON_FLAGS));
  }
  json_object_put(list);
  return n;
}

/* {"album":...,"count":8,"total_bytes":...,"thumbnails":["thumbs/beach.jpg:640x480", ...]} from the results. */
static const char *summarize(dt_orch_ctx *ctx, const char *album, dt_task *const *resized, size_t n)
{
  json_object *out = json_object_new_object(), *thumbs = json_object_new_array();
  long long total = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *r = json_tokener_parse(dt_task_result(resized[i])), *v;
    const char *name = json_object_object_get_ex(r, "name", &v) ? json_object_get_string(v) : "?";
    int w = json_object_object_get_ex(r, "width", &v) ? json_object_get_int(v) : 0;
    int h = json_object_object_get_ex(r, "height", &v) ? json_object_get_int(v) : 0;
    total += json_object_object_get_ex(r, "bytes", &v) ? json_object_get_int64(v) : 0;
    char label[256];
    snprintf(label, sizeof label, "%s:%dx%d", name, w, h);
    json_object_array_add(thumbs, json_object_new_string(label));
    json_object_put(r);
  }
  json_object_object_add(out, "album", json_tokener_parse(album));
  json_object_object_add(out, "count", json_object_new_int((int)n));
  json_object_object_add(out, "total_bytes", json_object_new_int64(total));
  json_object_object_add(out, "thumbnails", thumbs);
  const char *s = dt_ctx_strdup(ctx, json_object_to_json_string_ext(out, JSON_FLAGS));
  json_object_put(out);
  return s;
}

static const char *make_thumbnails(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  const char *album;
  int max_width;
  read_request(ctx, input, &album, &max_width);

  /* 1. What is in the album. */
  const char *listing = dt_await(ctx, dt_call_activity(ctx, "list_images", album));

  /* 2. Fan out: schedule every resize first; nothing runs until the orchestrator awaits, and then they all
   *    go to the worker at once. Transient failures are retried up to 3 attempts, 200 ms then 400 ms apart
   *    (durable timers: a retry survives a restart like any other step). */
  const char **inputs;
  size_t n = resize_inputs(ctx, listing, max_width, &inputs);
  dt_retry_policy retry = {.max_attempts = 3, .first_delay_ms = 200, .backoff = 2.0};
  dt_task **resized = dt_ctx_alloc(ctx, (n ? n : 1) * sizeof *resized);
  for (size_t i = 0; i < n; i++)
    resized[i] = dt_call_activity_retry(ctx, "resize", inputs[i], &retry);

  /* 3. Fan in: completes when all have (and fails if one still failed after its retries). dt_when_all() has
   *    no result of its own; each task keeps its own, read with dt_task_result(). */
  dt_await(ctx, dt_when_all(ctx, resized, n));

  /* 4. Aggregate. */
  dt_set_custom_status(ctx, "\"thumbnails ready\"");
  return summarize(ctx, album, resized, n);
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

/* Does the output have every image and the right total? */
static bool verify(const char *output, int max_width)
{
  long long want = 0;
  for (size_t i = 0; i < ALBUM_SIZE; i++) {
    int w, h;
    thumbnail_size(ALBUM[i].width, ALBUM[i].height, max_width, &w, &h);
    want += thumbnail_bytes(w, h);
  }
  json_object *out = json_tokener_parse(output ? output : ""), *count, *total;
  bool ok = json_object_object_get_ex(out, "count", &count) && json_object_get_int(count) == (int)ALBUM_SIZE &&
            json_object_object_get_ex(out, "total_bytes", &total) && json_object_get_int64(total) == want;
  json_object_put(out);
  return ok;
}

int main(int argc, char **argv)
{
  const char *target = argc > 1 ? argv[1] : dt_default_target();
  setvbuf(stdout, NULL, _IOLBF, 0); /* activities print from several threads */
  dt_set_log_fn(log_line, NULL);

  atomic_int harbor_writes = 0;
  dt_worker *worker = NULL;
  dt_worker_options wopt = {.activity_threads = 4}; /* up to 4 resizes at once */
  check(dt_worker_new(target, &wopt, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "make_thumbnails", make_thumbnails, NULL), "add make_thumbnails");
  check(dt_worker_add_activity(worker, "list_images", list_images, NULL), "add list_images");
  check(dt_worker_add_activity(worker, "resize", resize, &harbor_writes), "add resize");
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");
  dt_start_options start = {.input = "{\"album\":\"lisbon-2024\",\"max_width\":640}"};
  char *id = NULL;
  check(dt_client_schedule(client, "make_thumbnails", &start, &id), "schedule make_thumbnails");
  printf("started make_thumbnails as %s\n", id);

  dt_instance *st = NULL;
  check(dt_client_wait_completion(client, id, 60000, true, &st), "wait for make_thumbnails");
  printf("status: %s\n", dt_status_name(st->status));
  if (st->failure)
    printf("failure: %s: %s\n", st->failure->error_type, st->failure->message);
  printf("result: %s\n", st->output ? st->output : "null");
  printf("harbor.jpg written in %d attempts\n", atomic_load(&harbor_writes));

  bool ok = st->status == DT_STATUS_COMPLETED && verify(st->output, 640) && atomic_load(&harbor_writes) == 2;
  dt_instance_free(st);
  dt_free(id);
  dt_client_close(client);
  dt_worker_free(worker);
  return ok ? 0 : 1;
}
