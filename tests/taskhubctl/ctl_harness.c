/* Harness of the taskhubctl tests; see ctl_harness.h. */
#include "ctl_harness.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------ time */

int64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

const char *fmt_time(int64_t ms, char *buf, size_t cap)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
  return buf;
}

/* ------------------------------------------------------------------ worker */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
#define MAX_FLAKY 32
static struct {
  char iid[128];
  int calls;
} g_flaky[MAX_FLAKY];

int flaky_attempts(const char *iid)
{
  int n = 0;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < MAX_FLAKY; i++)
    if (strcmp(g_flaky[i].iid, iid) == 0)
      n = g_flaky[i].calls;
  pthread_mutex_unlock(&g_mu);
  return n;
}

const char *ctl_act_echo(dt_activity_ctx *a, const char *input, void *ud)
{
  return dt_activity_printf(a, "{\"echo\":%s}", input ? input : "null");
}

const char *ctl_act_boom(dt_activity_ctx *a, const char *input, void *ud)
{
  dt_activity_fail(a, "BoomError", "boom: kaput");
  return NULL;
}

static const char *act_fails_first(dt_activity_ctx *a, const char *input, void *ud)
{
  const char *iid = dt_activity_instance_id(a);
  int calls = 0;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < MAX_FLAKY; i++) {
    if (strcmp(g_flaky[i].iid, iid) == 0 || g_flaky[i].iid[0] == '\0') {
      snprintf(g_flaky[i].iid, sizeof g_flaky[i].iid, "%s", iid);
      calls = ++g_flaky[i].calls;
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  if (calls == 1) {
    dt_activity_fail(a, "FlakyError", "first call fails");
    return NULL;
  }
  return "\"second time lucky\"";
}

const char *ctl_orch_hello(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_await(ctx, dt_call_activity(ctx, "echo", input));
}

const char *ctl_orch_fail(dt_orch_ctx *ctx, const char *input, void *ud)
{
  return dt_await(ctx, dt_call_activity(ctx, "boom", input));
}

static const char *orch_flaky(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_activity(ctx, "echo", input));
  const char *b = dt_await(ctx, dt_call_activity(ctx, "fails_first", input));
  return dt_ctx_printf(ctx, "[%s,%s]", a, b);
}

static const char *orch_timeline(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *a = dt_await(ctx, dt_call_activity(ctx, "echo", input));
  dt_await(ctx, dt_create_timer_in(ctx, 50));
  return dt_ctx_printf(ctx, "{\"echo\":%s,\"timer\":true}", a);
}

static const char *orch_waiter(dt_orch_ctx *ctx, const char *input, void *ud)
{
  dt_set_custom_status(ctx, "\"waiting for go\"");
  const char *got = dt_await(ctx, dt_wait_event(ctx, "go"));
  dt_set_custom_status(ctx, "\"got go\"");
  return dt_ctx_printf(ctx, "{\"got\":%s}", got ? got : "null");
}

static const char *orch_parent(dt_orch_ctx *ctx, const char *input, void *ud)
{
  const char *child = dt_ctx_printf(ctx, "%s-child", dt_instance_id(ctx));
  return dt_await(ctx, dt_call_sub_orchestrator(ctx, "waiter", child, input));
}

static void sdk_log(int level, const char *message, void *user_data)
{
  if (level >= 2)
    fprintf(stderr, "[sdk %d] %s\n", level, message);
}

int hub_start(hub *h, bool with_worker)
{
  return hub_start_args(h, with_worker, NULL);
}

int hub_start_args(hub *h, bool with_worker, const char *const *server_args)
{
  memset(h, 0, sizeof *h);
  const char *bin = getenv("TASKHUBCTL_BIN");
  if (!bin || !*bin) {
    fprintf(stderr, "TASKHUBCTL_BIN is not set\n");
    return TEST_SKIP;
  }
  int rc = th_server_start(&h->srv, server_args);
  if (rc != 0)
    return rc;
  dt_set_log_fn(sdk_log, NULL);
  snprintf(h->addr, sizeof h->addr, "127.0.0.1:%d", h->srv.port);
  dt_conn_options co = {.call_timeout_ms = 15000};
  ASSERT_OK(dt_client_open(h->addr, &co, &h->c));
  if (with_worker) {
    ASSERT_OK(dt_worker_new(h->addr, NULL, &h->w));
    ASSERT_OK(dt_worker_add_activity(h->w, "echo", ctl_act_echo, NULL));
    ASSERT_OK(dt_worker_add_activity(h->w, "boom", ctl_act_boom, NULL));
    ASSERT_OK(dt_worker_add_activity(h->w, "fails_first", act_fails_first, NULL));
    ASSERT_OK(dt_worker_add_orchestrator(h->w, "hello", ctl_orch_hello, NULL));
    ASSERT_OK(dt_worker_add_orchestrator(h->w, "fail", ctl_orch_fail, NULL));
    ASSERT_OK(dt_worker_add_orchestrator(h->w, "flaky", orch_flaky, NULL));
    ASSERT_OK(dt_worker_add_orchestrator(h->w, "timeline", orch_timeline, NULL));
    ASSERT_OK(dt_worker_add_orchestrator(h->w, "waiter", orch_waiter, NULL));
    ASSERT_OK(dt_worker_add_orchestrator(h->w, "parent", orch_parent, NULL));
    ASSERT_OK(dt_worker_start(h->w));
  }
  return 0;
}

void hub_stop(hub *h)
{
  dt_worker_free(h->w);
  h->w = NULL;
  dt_client_close(h->c);
  h->c = NULL;
  th_server_free(&h->srv);
}

/* ------------------------------------------------------------------ client helpers */

void sched(hub *h, const char *name, const char *iid, const char *input)
{
  dt_start_options o = {.instance_id = iid, .input = input};
  char *got = NULL;
  int rc = dt_client_schedule(h->c, name, &o, &got);
  if (rc != DT_OK)
    TEST_FAIL("schedule %s as %s: %s", name, iid, dt_strerror(rc));
  dt_free(got);
}

dt_instance *get(hub *h, const char *iid)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(h->c, iid, true, &in);
  if (rc == DT_ERR_NOT_FOUND)
    return NULL;
  if (rc != DT_OK)
    TEST_FAIL("get %s: %s", iid, dt_strerror(rc));
  return in;
}

bool exists(hub *h, const char *iid)
{
  dt_instance *in = get(h, iid);
  dt_instance_free(in);
  return in != NULL;
}

void until_status(hub *h, const char *iid, dt_status status, int timeout_ms)
{
  int64_t end = mono_ms() + timeout_ms;
  int last = -1;
  for (;;) {
    dt_instance *in = get(h, iid);
    if (in) {
      last = (int)in->status;
      dt_instance_free(in);
      if (last == (int)status)
        return;
    }
    if (mono_ms() > end)
      TEST_FAIL("%s did not become %s within %d ms (last: %s)", iid, dt_status_name(status), timeout_ms,
                last < 0 ? "missing" : dt_status_name((dt_status)last));
    sleep_ms(20);
  }
}

dt_instance *done(hub *h, const char *iid)
{
  dt_instance *in = NULL;
  int rc = dt_client_wait_completion(h->c, iid, CTL_WAIT_MS, true, &in);
  if (rc != DT_OK)
    TEST_FAIL("waiting for %s: %s", iid, dt_strerror(rc));
  return in;
}

void settle(hub *h)
{
  char iid[64];
  snprintf(iid, sizeof iid, "settle-%d", ++h->settles);
  sched(h, "hello", iid, "\"settle\"");
  dt_instance *in = done(h, iid);
  if (in->status != DT_STATUS_COMPLETED)
    TEST_FAIL("the settling orchestration %s ended %d", iid, (int)in->status);
  dt_instance_free(in);
}

char *history_types(hub *h, const char *iid)
{
  dt_history *hist = NULL;
  int rc = dt_client_history(h->c, iid, &hist);
  if (rc != DT_OK)
    TEST_FAIL("history %s: %s", iid, dt_strerror(rc));
  size_t cap = 1;
  for (size_t i = 0; i < hist->n; i++)
    cap += strlen(hist->events[i].type) + 1;
  char *s = calloc(1, cap);
  ASSERT(s != NULL);
  for (size_t i = 0; i < hist->n; i++) {
    const char *t = hist->events[i].type;
    if (strcmp(t, "OrchestratorStarted") == 0 || strcmp(t, "OrchestratorCompleted") == 0)
      continue;
    if (s[0])
      strcat(s, ",");
    strcat(s, t);
  }
  dt_history_free(hist);
  return s;
}

int count_lines(const char *text, const char *needle)
{
  int n = 0;
  for (const char *p = text; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char *line = strndup(p, len);
    ASSERT(line != NULL);
    if (strstr(line, needle))
      n++;
    free(line);
    p = nl ? nl + 1 : p + len;
  }
  return n;
}

char *line_with(const char *text, const char *needle)
{
  const char *hit = text ? strstr(text, needle) : NULL;
  if (!hit)
    return NULL;
  const char *b = hit;
  while (b > text && b[-1] != '\n')
    b--;
  const char *e = strchr(hit, '\n');
  return strndup(b, e ? (size_t)(e - b) : strlen(b));
}

long index_of(const char *text, const char *needle)
{
  const char *hit = text ? strstr(text, needle) : NULL;
  return hit ? (long)(hit - text) : -1;
}

/* ------------------------------------------------------------------ subprocess */

struct buf {
  char *p;
  size_t n, cap;
};

struct ctl_proc {
  pid_t pid;
  int out_fd, err_fd, in_fd, tty_fd; /* -1 when closed */
  struct buf out, err;
  char cmdline[512];
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    ASSERT(p != NULL);
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

/* The environment for the child: ours, with TASKHUBD_ADDRESS replaced (or removed). */
static char **child_env(const char *address, char *slot, size_t cap)
{
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 2, sizeof *env);
  ASSERT(env != NULL);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "TASKHUBD_ADDRESS=", 17) != 0)
      env[k++] = environ[i];
  if (address) {
    snprintf(slot, cap, "TASKHUBD_ADDRESS=%s", address);
    env[k++] = slot;
  }
  env[k] = NULL;
  return env;
}

ctl_proc *ctl_spawn(const ctl_opts *o, const char *const *args)
{
  const char *bin = getenv("TASKHUBCTL_BIN");
  ASSERT(bin != NULL);
  static const ctl_opts none;
  if (!o)
    o = &none;
  ctl_proc *p = calloc(1, sizeof *p);
  ASSERT(p != NULL);
  p->in_fd = p->tty_fd = -1;

  size_t n = 0;
  while (args[n])
    n++;
  char **argv = calloc(n + 2, sizeof *argv);
  ASSERT(argv != NULL);
  argv[0] = (char *)bin;
  size_t len = 0;
  len += (size_t)snprintf(p->cmdline + len, sizeof p->cmdline - len, "taskhubctl");
  for (size_t i = 0; i < n; i++) {
    argv[i + 1] = (char *)args[i];
    if (len < sizeof p->cmdline)
      len += (size_t)snprintf(p->cmdline + len, sizeof p->cmdline - len, " %s", args[i]);
  }

  int out[2], err[2], in[2] = {-1, -1};
  ASSERT_OK(pipe2(out, O_CLOEXEC));
  ASSERT_OK(pipe2(err, O_CLOEXEC));
  posix_spawn_file_actions_t fa;
  ASSERT_OK(posix_spawn_file_actions_init(&fa));
  int slave = -1;
  if (o->tty_answer) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT(m >= 0);
    ASSERT_OK(grantpt(m));
    ASSERT_OK(unlockpt(m));
    const char *name = ptsname(m);
    ASSERT(name != NULL);
    slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT(slave >= 0);
    p->tty_fd = m;
    ASSERT_OK(posix_spawn_file_actions_adddup2(&fa, slave, 0));
  } else if (o->stdin_text) {
    ASSERT_OK(pipe2(in, O_CLOEXEC));
    ASSERT_OK(posix_spawn_file_actions_adddup2(&fa, in[0], 0));
  } else {
    ASSERT_OK(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0));
  }
  ASSERT_OK(posix_spawn_file_actions_adddup2(&fa, out[1], 1));
  ASSERT_OK(posix_spawn_file_actions_adddup2(&fa, err[1], 2));
  char slot[256];
  char **env = child_env(o->address, slot, sizeof slot);
  int rc = posix_spawn(&p->pid, bin, &fa, NULL, argv, env);
  if (rc != 0)
    TEST_FAIL("posix_spawn %s: %s", bin, strerror(rc));
  posix_spawn_file_actions_destroy(&fa);
  free(env);
  free(argv);
  close(out[1]);
  close(err[1]);
  p->out_fd = out[0];
  p->err_fd = err[0];
  if (slave >= 0) {
    close(slave);
    size_t al = strlen(o->tty_answer);
    ASSERT_EQ(write(p->tty_fd, o->tty_answer, al), (ssize_t)al);
  }
  if (in[0] >= 0) {
    close(in[0]);
    size_t tl = strlen(o->stdin_text);
    /* Small texts only: the pipe buffer holds them without a reader. */
    ASSERT_EQ(write(in[1], o->stdin_text, tl), (ssize_t)tl);
    close(in[1]);
  }
  return p;
}

/* Reads what is available within |wait_ms|; returns false once both pipes are closed. */
static bool pump(ctl_proc *p, int wait_ms)
{
  struct pollfd fds[2];
  int nf = 0;
  if (p->out_fd >= 0)
    fds[nf++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
  if (p->err_fd >= 0)
    fds[nf++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
  if (nf == 0)
    return false;
  int r = poll(fds, (nfds_t)nf, wait_ms);
  if (r < 0 && errno != EINTR)
    TEST_FAIL("poll: %s", strerror(errno));
  for (int i = 0; r > 0 && i < nf; i++) {
    if (!fds[i].revents)
      continue;
    char tmp[4096];
    ssize_t got = read(fds[i].fd, tmp, sizeof tmp);
    bool is_out = fds[i].fd == p->out_fd;
    if (got > 0) {
      buf_add(is_out ? &p->out : &p->err, tmp, (size_t)got);
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      close(fds[i].fd);
      if (is_out)
        p->out_fd = -1;
      else
        p->err_fd = -1;
    }
  }
  return p->out_fd >= 0 || p->err_fd >= 0;
}

bool ctl_expect(ctl_proc *p, const char *needle, int timeout_ms)
{
  int64_t end = mono_ms() + timeout_ms;
  for (;;) {
    if (p->out.p && strstr(p->out.p, needle))
      return true;
    int64_t left = end - mono_ms();
    if (left <= 0)
      return false;
    if (!pump(p, (int)(left < 100 ? left : 100)) && !(p->out.p && strstr(p->out.p, needle)))
      return false;
  }
}

static const char *const sanitizer_marks[] = {"AddressSanitizer", "LeakSanitizer", "runtime error:",
                                              "UndefinedBehaviorSanitizer", NULL};

ctl_res ctl_finish(ctl_proc *p, int timeout_ms)
{
  int64_t end = mono_ms() + timeout_ms;
  while (pump(p, 100)) {
    if (mono_ms() > end) {
      kill(p->pid, SIGKILL);
      TEST_FAIL("%s did not finish within %d ms; stdout so far:\n%s\nstderr:\n%s", p->cmdline, timeout_ms,
                p->out.p ? p->out.p : "", p->err.p ? p->err.p : "");
    }
  }
  int st = 0;
  for (;;) {
    pid_t w = waitpid(p->pid, &st, WNOHANG);
    if (w == p->pid)
      break;
    if (w < 0 && errno != EINTR)
      TEST_FAIL("waitpid: %s", strerror(errno));
    if (mono_ms() > end) {
      kill(p->pid, SIGKILL);
      TEST_FAIL("%s did not exit within %d ms", p->cmdline, timeout_ms);
    }
    sleep_ms(5);
  }
  if (p->tty_fd >= 0)
    close(p->tty_fd);
  ctl_res r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  r.out = p->out.p ? p->out.p : strdup("");
  r.err = p->err.p ? p->err.p : strdup("");
  ASSERT(r.out != NULL && r.err != NULL);
  for (const char *const *m = sanitizer_marks; *m; m++)
    if (strstr(r.err, *m))
      TEST_FAIL("%s: sanitizer report on stderr:\n%s", p->cmdline, r.err);
  fprintf(stderr, "$ %s  -> exit %d\n", p->cmdline, r.code);
  if (getenv("CTL_TEST_VERBOSE")) /* the whole output, for reading what taskhubctl prints */
    fprintf(stderr, "%s--- stderr:\n%s---\n", r.out, r.err);
  free(p);
  return r;
}

ctl_res ctl_run(const ctl_opts *o, const char *const *args)
{
  return ctl_finish(ctl_spawn(o, args), CTL_RUN_MS);
}

void ctl_res_free(ctl_res *r)
{
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

void ctl_assert_exit_(const ctl_res *r, int want, const char *file, int line)
{
  if (r->code != want) {
    fprintf(stderr, "%s:%d: taskhubctl exited %d, expected %d\n--- stdout:\n%s\n--- stderr:\n%s\n", file, line,
            r->code, want, r->out, r->err);
    fflush(stderr);
    abort();
  }
}

/* ------------------------------------------------------------------ JSON */

json_object *ctl_doc(const ctl_res *r)
{
  const char *s = r->out;
  size_t len = strlen(s);
  json_tokener *tok = json_tokener_new();
  ASSERT(tok != NULL);
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  json_object *o = json_tokener_parse_ex(tok, s, (int)len + 1); /* with the NUL, which ends a bare number */
  enum json_tokener_error e = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (e != json_tokener_success || !o)
    TEST_FAIL("stdout is not a JSON document (%s):\n%s", json_tokener_error_desc(e), s);
  for (size_t i = end; i < len; i++)
    if (!isspace((unsigned char)s[i]))
      TEST_FAIL("stdout holds more than one JSON document (extra at offset %zu):\n%s", i, s);
  return o;
}

json_object *jget(json_object *o, const char *key)
{
  json_object *v = NULL;
  if (!o || !json_object_object_get_ex(o, key, &v))
    return NULL;
  return v;
}

const char *jstr(json_object *o, const char *key)
{
  json_object *v = jget(o, key);
  if (!v)
    return NULL;
  if (!json_object_is_type(v, json_type_string))
    TEST_FAIL("member %s is not a string: %s", key, json_object_to_json_string(v));
  return json_object_get_string(v);
}

int64_t jint(json_object *o, const char *key)
{
  json_object *v = jget(o, key);
  if (!v || !json_object_is_type(v, json_type_int))
    TEST_FAIL("member %s is not an integer: %s", key, v ? json_object_to_json_string(v) : "(absent)");
  return json_object_get_int64(v);
}

bool is_rfc3339_ms(const char *s)
{
  static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (!s || strlen(s) != sizeof pat - 1)
    return false;
  for (size_t i = 0; pat[i]; i++) {
    if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
      return false;
  }
  return true;
}

const char *jerror_code(json_object *doc)
{
  return jstr(jget(doc, "error"), "code");
}
