#define _GNU_SOURCE
#include "th_server.h"

#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Servers of this process, for the SIGABRT handler. */
#define MAX_LIVE 8
static th_server *volatile g_live[MAX_LIVE];
static int g_handler_installed;

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Async-signal-safe helpers for the abort handler. */
static void put(const char *s)
{
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

static void log_path(const th_server *s, int i, char *out, size_t cap)
{
  /* Built by hand (no snprintf) because the abort handler uses it. */
  size_t n = strlen(s->root);
  const char *mid = "/log-";
  if (n + 5 + 12 + 5 >= cap) {
    out[0] = '\0';
    return;
  }
  memcpy(out, s->root, n);
  memcpy(out + n, mid, 5);
  n += 5;
  char digits[12];
  int nd = 0;
  do {
    digits[nd++] = (char)('0' + i % 10);
    i /= 10;
  } while (i > 0 && nd < 11);
  while (nd > 0)
    out[n++] = digits[--nd];
  memcpy(out + n, ".txt", 5);
}

static void dump_file(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char buf[4096];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0)
      break;
    ssize_t off = 0;
    while (off < r) {
      ssize_t w = write(2, buf + off, (size_t)(r - off));
      if (w <= 0)
        break;
      off += w;
    }
  }
  close(fd);
}

static void dump_logs_unsafe(const th_server *s)
{
  for (int i = 0; i < s->starts; i++) {
    char p[PATH_MAX + 32];
    log_path(s, i, p, sizeof p);
    put("----- taskhubd log ");
    put(p);
    put(" -----\n");
    dump_file(p);
    put("----- end of log -----\n");
  }
}

void th_server_dump_logs(const th_server *s)
{
  fflush(stderr);
  dump_logs_unsafe(s);
}

static void on_abort(int sig)
{
  for (int i = 0; i < MAX_LIVE; i++) {
    th_server *s = g_live[i];
    if (s == NULL)
      continue;
    if (s->pid > 0)
      kill(s->pid, SIGKILL);
    dump_logs_unsafe(s);
    put("(test failed; server directory kept: ");
    put(s->root);
    put(")\n");
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static void register_live(th_server *s)
{
  if (!g_handler_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_abort;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, NULL);
    g_handler_installed = 1;
  }
  for (int i = 0; i < MAX_LIVE; i++)
    if (g_live[i] == NULL) {
      g_live[i] = s;
      return;
    }
  TEST_FAIL("too many live servers");
}

static void unregister_live(th_server *s)
{
  for (int i = 0; i < MAX_LIVE; i++)
    if (g_live[i] == s)
      g_live[i] = NULL;
}

/* Waits up to timeout_ms for the child to exit (without polling on a timer when pidfd_open works). Returns 1
 * with *status set when it exited, 0 on timeout. */
static int wait_child(pid_t pid, long long timeout_ms, int *status)
{
#ifdef SYS_pidfd_open
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pfd >= 0) {
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    long long deadline = now_ms() + timeout_ms;
    int r;
    for (;;) {
      long long left = deadline - now_ms();
      if (left < 0)
        left = 0;
      r = poll(&p, 1, (int)left);
      if (r >= 0 || errno != EINTR)
        break;
    }
    close(pfd);
    if (r == 0)
      return 0;
  }
#else
  (void)timeout_ms;
#endif
  for (;;) {
    pid_t w = waitpid(pid, status, 0);
    if (w == pid)
      return 1;
    if (w < 0 && errno != EINTR)
      TEST_FAIL("waitpid(%d): %s", (int)pid, strerror(errno));
  }
}

/*
 * With $TASKHUBD_TEST_PG (the directory of a server that tests/support/pg.sh started), the server keeps its task
 * hub in a PostgreSQL database of its own, named after its temp dir, instead of RocksDB.
 */
static void pg_database(th_server *s)
{
  const char *pg = getenv("TASKHUBD_TEST_PG");
  if (!pg || !*pg)
    return;
  unsigned h = 2166136261u;
  for (const char *p = s->root; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  char cmd[PATH_MAX * 2];
  snprintf(cmd, sizeof cmd, "bash '%s' createdb '%s' th_%08x_%d", TH_PG_SH, pg, h, (int)getpid());
  FILE *f = popen(cmd, "r");
  if (!f || !fgets(s->store, sizeof s->store, f))
    TEST_FAIL("creating a PostgreSQL database failed: %s", cmd);
  s->store[strcspn(s->store, "\n")] = 0;
  if (pclose(f) != 0)
    TEST_FAIL("creating a PostgreSQL database failed: %s", cmd);
}

static void spawn(th_server *s)
{
  const char *bin = getenv("TASKHUBD_BIN");
  ASSERT(bin != NULL && *bin != '\0');

  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    TEST_FAIL("pipe2: %s", strerror(errno));
  char path[PATH_MAX + 32];
  log_path(s, s->starts, path, sizeof path);
  int logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (logfd < 0)
    TEST_FAIL("open %s: %s", path, strerror(errno));
  s->starts++;

  char fdstr[16];
  snprintf(fdstr, sizeof fdstr, "%d", p[1]);
  char *argv[8 + TH_SERVER_MAX_ARGS];
  int n = 0;
  argv[n++] = (char *)bin;
  argv[n++] = (char *)"--listen";
  argv[n++] = (char *)"127.0.0.1:0";
  if (s->store[0]) {
    argv[n++] = (char *)"--store";
    argv[n++] = s->store;
  } else {
    argv[n++] = (char *)"--data-dir";
    argv[n++] = s->data_dir;
  }
  argv[n++] = (char *)"--ready-fd";
  argv[n++] = fdstr;
  for (int i = 0; i < s->n_extra; i++)
    argv[n++] = s->extra[i];
  argv[n] = NULL;

  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    TEST_FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    /* Child: async-signal-safe calls only until execv. */
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGABRT, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    fcntl(p[1], F_SETFD, 0);
    execv(bin, argv);
    static const char msg[] = "th_server: execv failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  }
  close(p[1]);
  close(logfd);
  s->pid = pid;
  s->port = 0;

  char line[32];
  size_t len = 0;
  long long deadline = now_ms() + TH_SERVER_START_MS;
  while (len < sizeof line - 1 && memchr(line, '\n', len) == NULL) {
    long long left = deadline - now_ms();
    if (left <= 0)
      break;
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    ssize_t got = read(p[0], line + len, sizeof line - 1 - len);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break; /* EOF: the server closed the fd (or died) without a full line */
    len += (size_t)got;
  }
  close(p[0]);
  line[len] = '\0';
  char *end = NULL;
  long port = strtol(line, &end, 10);
  if (len == 0 || end == line || *end != '\n' || port <= 0 || port > 65535) {
    int st = 0;
    kill(pid, SIGKILL);
    wait_child(pid, TH_SERVER_STOP_MS, &st);
    s->pid = 0;
    TEST_FAIL("taskhubd (start #%d) did not report a port on --ready-fd within %d ms (read \"%s\")",
              s->starts, TH_SERVER_START_MS, line);
  }
  s->port = (int)port;
}

int th_server_start(th_server *s, const char *const *extra_args)
{
  memset(s, 0, sizeof *s);
  const char *bin = getenv("TASKHUBD_BIN");
  if (bin == NULL || *bin == '\0') {
    fprintf(stderr, "TASKHUBD_BIN is not set; skipping\n");
    return TEST_SKIP;
  }
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0')
    tmp = "/tmp";
  snprintf(s->root, sizeof s->root, "%s/taskhubd-it-XXXXXX", tmp);
  if (mkdtemp(s->root) == NULL)
    TEST_FAIL("mkdtemp %s: %s", s->root, strerror(errno));
  snprintf(s->data_dir, sizeof s->data_dir, "%s/data", s->root);
  pg_database(s);
  for (const char *const *a = extra_args; a && *a; a++) {
    ASSERT(s->n_extra < TH_SERVER_MAX_ARGS);
    s->extra[s->n_extra] = strdup(*a);
    ASSERT(s->extra[s->n_extra] != NULL);
    s->n_extra++;
  }
  register_live(s);
  spawn(s);
  return 0;
}

void th_server_restart(th_server *s)
{
  ASSERT_EQ(s->pid, 0);
  ASSERT(s->starts < TH_SERVER_MAX_LOGS);
  spawn(s);
}

void th_server_signal(th_server *s, int sig)
{
  ASSERT(s->pid > 0);
  ASSERT_OK(kill(s->pid, sig));
}

int th_server_wait_exit(th_server *s, long long timeout_ms, int *status)
{
  ASSERT(s->pid > 0);
  if (!wait_child(s->pid, timeout_ms, status))
    return 0;
  s->pid = 0;
  s->port = 0;
  return 1;
}

int th_server_term(th_server *s, long long *elapsed_ms)
{
  long long t0 = now_ms();
  th_server_signal(s, SIGTERM);
  int st = 0;
  if (!th_server_wait_exit(s, TH_SERVER_STOP_MS, &st)) {
    kill(s->pid, SIGKILL);
    wait_child(s->pid, TH_SERVER_STOP_MS, &st);
    s->pid = 0;
    TEST_FAIL("taskhubd did not exit within %d ms of SIGTERM", TH_SERVER_STOP_MS);
  }
  if (elapsed_ms)
    *elapsed_ms = now_ms() - t0;
  return st;
}

void th_server_stop(th_server *s)
{
  int st = th_server_term(s, NULL);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    if (WIFSIGNALED(st))
      TEST_FAIL("taskhubd died from signal %d after SIGTERM (expected exit status 0)", WTERMSIG(st));
    TEST_FAIL("taskhubd exited with status %d after SIGTERM (expected 0)", WEXITSTATUS(st));
  }
  th_server_assert_clean_log(s);
}

void th_server_kill(th_server *s)
{
  ASSERT(s->pid > 0);
  ASSERT_OK(kill(s->pid, SIGKILL));
  int st = 0;
  if (!wait_child(s->pid, TH_SERVER_STOP_MS, &st))
    TEST_FAIL("taskhubd did not die from SIGKILL");
  ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  s->pid = 0;
  s->port = 0;
}

static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  ASSERT(buf != NULL);
  for (;;) {
    if (len + 1024 + 1 > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      ASSERT(buf != NULL);
    }
    size_t r = fread(buf + len, 1, cap - len - 1, f);
    if (r == 0)
      break;
    len += r;
  }
  fclose(f);
  /* Logs may contain NUL bytes in theory; make them searchable. */
  for (size_t i = 0; i < len; i++)
    if (buf[i] == '\0')
      buf[i] = ' ';
  buf[len] = '\0';
  return buf;
}

void th_server_assert_clean_log(const th_server *s)
{
  static const char *const bad[] = {"AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                                    "ThreadSanitizer", "runtime error", "MemorySanitizer"};
  for (int i = 0; i < s->starts; i++) {
    char p[PATH_MAX + 32];
    log_path(s, i, p, sizeof p);
    char *text = slurp(p);
    if (text == NULL)
      continue;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
      if (strstr(text, bad[k]) != NULL) {
        free(text);
        TEST_FAIL("taskhubd log %s contains \"%s\"", p, bad[k]);
      }
    free(text);
  }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  if (remove(path) != 0)
    fprintf(stderr, "th_server: remove %s: %s\n", path, strerror(errno));
  return 0;
}

void th_server_free(th_server *s)
{
  if (s->pid > 0)
    th_server_stop(s);
  th_server_assert_clean_log(s);
  unregister_live(s);
  if (s->root[0] != '\0')
    nftw(s->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  for (int i = 0; i < s->n_extra; i++)
    free(s->extra[i]);
  s->n_extra = 0;
  s->root[0] = '\0';
}
