#include "sc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ logging */

static void sdk_log(int level, const char *message, void *user_data)
{
  (void)user_data;
  /* warnings and errors only: enough to explain a failure, quiet otherwise */
  if (level >= 2)
    fprintf(stderr, "sdk[%s]: %s\n", level >= 3 ? "error" : "warn", message);
}

/* ------------------------------------------------------------------ hub */

dt_worker *sc_worker_start(sc_hub *h, sc_register_fn reg, const dt_worker_options *opt)
{
  dt_worker *w = NULL;
  ASSERT_OK(dt_worker_new(h->target, opt, &w));
  reg(w);
  ASSERT_OK(dt_worker_start(w));
  return w;
}

int sc_hub_start(sc_hub *h, const char *const *server_args, sc_register_fn reg)
{
  memset(h, 0, sizeof *h);
  int rc = th_server_start(&h->srv, server_args);
  if (rc != 0)
    return rc;
  dt_set_log_fn(sdk_log, NULL);
  snprintf(h->target, sizeof h->target, "127.0.0.1:%d", h->srv.port);
  if (reg)
    h->w = sc_worker_start(h, reg, NULL);
  ASSERT_OK(dt_client_open(h->target, NULL, &h->c));
  return 0;
}

void sc_hub_stop(sc_hub *h)
{
  dt_worker_free(h->w);
  h->w = NULL;
  dt_client_close(h->c);
  h->c = NULL;
  th_server_free(&h->srv);
}

const char *sc_id(char *buf, size_t cap, const char *prefix)
{
  static int n;
  snprintf(buf, cap, "csc-%s-%d-%d", prefix, (int)getpid(), ++n);
  return buf;
}

/* ------------------------------------------------------------------ client helpers */

void sc_schedule(sc_hub *h, const char *name, const char *input, const char *iid)
{
  dt_start_options o;
  memset(&o, 0, sizeof o);
  o.instance_id = iid;
  o.input = input;
  char *got = NULL;
  int rc = dt_client_schedule(h->c, name, &o, &got);
  if (rc != DT_OK)
    TEST_FAIL("dt_client_schedule(%s, %s): %s", name, iid, dt_strerror(rc));
  ASSERT_STR_EQ(got, iid);
  dt_free(got);
}

dt_instance *sc_done(sc_hub *h, const char *iid, int timeout_ms)
{
  dt_instance *in = NULL;
  int rc = dt_client_wait_completion(h->c, iid, timeout_ms, true, &in);
  if (rc != DT_OK) {
    dt_instance *now = NULL;
    dt_client_get(h->c, iid, true, &now);
    TEST_FAIL("waiting for %s to finish: %s (status now %s, custom status %s)", iid, dt_strerror(rc),
              now ? dt_status_name(now->status) : "-", now && now->custom_status ? now->custom_status : "-");
  }
  ASSERT(in != NULL);
  return in;
}

dt_instance *sc_started(sc_hub *h, const char *iid)
{
  dt_instance *in = NULL;
  int rc = dt_client_wait_start(h->c, iid, SC_WAIT_MS, true, &in);
  if (rc != DT_OK)
    TEST_FAIL("waiting for %s to start: %s", iid, dt_strerror(rc));
  return in;
}

dt_instance *sc_get(sc_hub *h, const char *iid, bool payloads)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(h->c, iid, payloads, &in);
  if (rc == DT_ERR_NOT_FOUND)
    return NULL;
  if (rc != DT_OK)
    TEST_FAIL("dt_client_get(%s): %s", iid, dt_strerror(rc));
  return in;
}

struct status_wait {
  sc_hub *h;
  const char *iid;
  dt_status want;
  dt_instance *got;
};

static bool status_is(void *arg)
{
  struct status_wait *s = arg;
  dt_instance_free(s->got);
  s->got = sc_get(s->h, s->iid, true);
  return s->got && s->got->status == s->want;
}

dt_instance *sc_until_status(sc_hub *h, const char *iid, dt_status status, int timeout_ms)
{
  struct status_wait s = {h, iid, status, NULL};
  if (!sc_poll(status_is, &s, timeout_ms))
    TEST_FAIL("%s did not reach %s within %d ms (last: %s)", iid, dt_status_name(status), timeout_ms,
              s.got ? dt_status_name(s.got->status) : "does not exist");
  return s.got;
}

void sc_raise(sc_hub *h, const char *iid, const char *name, const char *data)
{
  int rc = dt_client_raise_event(h->c, iid, name, data);
  if (rc != DT_OK)
    TEST_FAIL("raise %s to %s: %s", name, iid, dt_strerror(rc));
}

void sc_expect_status_(const dt_instance *in, dt_status want, const char *file, int line)
{
  if (in == NULL)
    TEST_FAIL("%s:%d: instance missing, expected %s", file, line, dt_status_name(want));
  if (in->status != want) {
    const dt_failure *f = in->failure;
    TEST_FAIL("%s:%d: %s is %s, expected %s (output %s; failure %s: %s)", file, line, in->instance_id,
              dt_status_name(in->status), dt_status_name(want), in->output ? in->output : "-",
              f && f->error_type ? f->error_type : "-", f && f->message ? f->message : "-");
  }
}

int sc_log_count(const th_server *s, const char *a, const char *b)
{
  int n = 0;
  for (int i = 0; i < s->starts; i++) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/log-%d.txt", s->root, i);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0)
      if (strstr(line, a) && (!b || strstr(line, b)))
        n++;
    free(line);
    fclose(f);
  }
  return n;
}

static int ops_port(const th_server *s)
{
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/log-%d.txt", s->root, s->starts - 1);
  FILE *f = fopen(path, "r");
  if (!f)
    TEST_FAIL("cannot read %s", path);
  char *line = NULL;
  size_t cap = 0;
  int port = 0;
  while (!port && getline(&line, &cap, f) >= 0) {
    const char *p = strstr(line, "event=ops_listening");
    if (p && (p = strstr(p, " port=")) != NULL)
      port = atoi(p + 6);
  }
  free(line);
  fclose(f);
  if (port <= 0)
    TEST_FAIL("no ops port in %s (start the server with --ops-listen 127.0.0.1:0)", path);
  return port;
}

long long sc_metric(const th_server *s, const char *series)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)ops_port(s));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    TEST_FAIL("connecting to the ops port: %s", strerror(errno));
  static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  ASSERT_EQ(write(fd, req, sizeof req - 1), (long long)(sizeof req - 1));
  size_t len = 0, cap = 65536;
  char *body = malloc(cap);
  ASSERT(body != NULL);
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap *= 2;
      body = realloc(body, cap);
      ASSERT(body != NULL);
    }
    ssize_t n = read(fd, body + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      TEST_FAIL("reading /metrics: %s", strerror(errno));
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  body[len] = '\0';
  if (strncmp(body, "HTTP/1.", 7) != 0 || strstr(body, " 200 ") == NULL)
    TEST_FAIL("GET /metrics: %.80s", body);
  long long v = 0;
  size_t sl = strlen(series);
  for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
      v = strtoll(p + sl + 1, NULL, 10);
      break;
    }
  free(body);
  return v;
}

/* ------------------------------------------------------------------ time */

int64_t sc_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sc_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sc_poll(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
  int64_t deadline = sc_mono_ms() + timeout_ms;
  for (;;) {
    if (pred(arg))
      return true;
    if (sc_mono_ms() >= deadline)
      return false;
    struct timespec d = {0, 10 * 1000 * 1000}; /* poll interval, not synchronisation */
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
      ;
  }
}

/* ------------------------------------------------------------------ history */

dt_history *sc_history(sc_hub *h, const char *iid)
{
  dt_history *hist = NULL;
  int rc = dt_client_history(h->c, iid, &hist);
  if (rc != DT_OK)
    TEST_FAIL("dt_client_history(%s): %s", iid, dt_strerror(rc));
  return hist;
}

const char *sc_child_id(dt_orch_ctx *ctx)
{
  return dt_ctx_printf(ctx, "%s-child", dt_instance_id(ctx));
}

const char *sc_wait_event_orch(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)input;
  (void)ud;
  return dt_ctx_printf(ctx, "{\"got\":%s}", dt_await(ctx, dt_wait_event(ctx, "proceed")));
}

char *sc_history_types(const dt_history *h, bool skip_orchestrator_started)
{
  size_t cap = 1, len = 0;
  for (size_t i = 0; i < h->n; i++)
    cap += strlen(h->events[i].type) + 1;
  char *s = malloc(cap);
  ASSERT(s != NULL);
  s[0] = '\0';
  for (size_t i = 0; i < h->n; i++) {
    if (skip_orchestrator_started && strcmp(h->events[i].type, "OrchestratorStarted") == 0)
      continue;
    len += (size_t)snprintf(s + len, cap - len, "%s%s", len ? "," : "", h->events[i].type);
  }
  return s;
}

size_t sc_history_count(const dt_history *h, const char *type)
{
  size_t n = 0;
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(h->events[i].type, type) == 0)
      n++;
  return n;
}

const dt_event *sc_history_find(const dt_history *h, const char *type, size_t k)
{
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(h->events[i].type, type) == 0 && k-- == 0)
      return &h->events[i];
  return NULL;
}

/* ------------------------------------------------------------------ activity bookkeeping */

struct rec {
  char what[32];
  char *iid;
  int count;
  int32_t *ids;
  size_t n, cap;
  struct rec *next;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rec *g_recs;

static struct rec *find_rec(const char *what, const char *iid, bool create)
{
  for (struct rec *r = g_recs; r; r = r->next)
    if (strcmp(r->what, what) == 0 && strcmp(r->iid, iid) == 0)
      return r;
  if (!create)
    return NULL;
  struct rec *r = calloc(1, sizeof *r);
  ASSERT(r != NULL);
  snprintf(r->what, sizeof r->what, "%s", what);
  r->iid = strdup(iid);
  ASSERT(r->iid != NULL);
  r->next = g_recs;
  g_recs = r;
  return r;
}

/* Frees the bookkeeping at exit, so that LeakSanitizer reports only real leaks. */
static void free_recs(void)
{
  pthread_mutex_lock(&g_mu);
  while (g_recs) {
    struct rec *r = g_recs;
    g_recs = r->next;
    free(r->iid);
    free(r->ids);
    free(r);
  }
  pthread_mutex_unlock(&g_mu);
}

int sc_record(const char *what, const char *iid, int32_t task_id)
{
  static bool registered;
  pthread_mutex_lock(&g_mu);
  if (!registered) {
    atexit(free_recs);
    registered = true;
  }
  struct rec *r = find_rec(what, iid, true);
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 8;
    r->ids = realloc(r->ids, r->cap * sizeof *r->ids);
    ASSERT(r->ids != NULL);
  }
  r->ids[r->n++] = task_id;
  int n = ++r->count;
  pthread_mutex_unlock(&g_mu);
  return n;
}

int sc_attempts(const char *what, const char *iid)
{
  pthread_mutex_lock(&g_mu);
  struct rec *r = find_rec(what, iid, false);
  int n = r ? r->count : 0;
  pthread_mutex_unlock(&g_mu);
  return n;
}

size_t sc_task_ids(const char *what, const char *iid, int32_t *out, size_t max)
{
  pthread_mutex_lock(&g_mu);
  struct rec *r = find_rec(what, iid, false);
  size_t n = r ? r->n : 0;
  for (size_t i = 0; i < n && i < max; i++)
    out[i] = r->ids[i];
  pthread_mutex_unlock(&g_mu);
  return n;
}

/* ------------------------------------------------------------------ JSON */

long long sc_json_int(const char *s)
{
  ASSERT(s != NULL);
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || errno != 0)
    TEST_FAIL("not a JSON integer: %s", s);
  return v;
}

static const char *array_elem(const char *s, size_t i)
{
  ASSERT(s != NULL);
  const char *p = strchr(s, '[');
  if (!p)
    TEST_FAIL("not a JSON array: %s", s);
  p++;
  for (size_t k = 0; k < i; k++) {
    p = strchr(p, ',');
    if (!p)
      TEST_FAIL("JSON array %s has no element %zu", s, i);
    p++;
  }
  while (isspace((unsigned char)*p))
    p++;
  return p;
}

long long sc_json_array_int(const char *s, size_t i)
{
  return sc_json_int(array_elem(s, i));
}

size_t sc_json_array_len(const char *s)
{
  const char *p = array_elem(s, 0);
  if (*p == ']')
    return 0;
  size_t n = 1;
  for (; *p && *p != ']'; p++)
    if (*p == ',')
      n++;
  return n;
}

const char *sc_json_str(dt_orch_ctx *ctx, const char *s)
{
  if (!s)
    return "null";
  size_t n = strlen(s);
  char *out = dt_ctx_alloc(ctx, n * 6 + 3);
  size_t k = 0;
  out[k++] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      out[k++] = '\\';
      out[k++] = (char)*p;
    } else if (*p < 0x20) {
      k += (size_t)snprintf(out + k, 7, "\\u%04x", *p);
    } else {
      out[k++] = (char)*p;
    }
  }
  out[k++] = '"';
  out[k] = '\0';
  return out;
}

static void check_simple_string(const char *json)
{
  size_t n = json ? strlen(json) : 0;
  if (n < 2 || json[0] != '"' || json[n - 1] != '"' || memchr(json + 1, '\\', n - 2) || memchr(json + 1, '"', n - 2))
    TEST_FAIL("not a simple JSON string: %s", json ? json : "(null)");
}

const char *sc_unquote_ctx(dt_orch_ctx *ctx, const char *json)
{
  check_simple_string(json);
  return dt_ctx_printf(ctx, "%.*s", (int)strlen(json) - 2, json + 1);
}

const char *sc_unquote_act(dt_activity_ctx *a, const char *json)
{
  check_simple_string(json);
  return dt_activity_printf(a, "%.*s", (int)strlen(json) - 2, json + 1);
}

void sc_pg_sh(const char *cmd, const char *dir, char *out, size_t cap)
{
  char line[1024];
  if (dir[0])
    snprintf(line, sizeof line, "bash '%s' %s '%s'", TH_PG_SH, cmd, dir);
  else
    snprintf(line, sizeof line, "bash '%s' %s", TH_PG_SH, cmd);
  FILE *f = popen(line, "r");
  ASSERT(f != NULL);
  if (out && !fgets(out, (int)cap, f))
    TEST_FAIL("%s printed nothing", line);
  if (out)
    out[strcspn(out, "\n")] = 0;
  if (pclose(f) != 0)
    TEST_FAIL("%s failed", line);
}
