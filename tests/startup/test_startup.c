/*
 * What a new user meets on a bad day: a port another taskhubd holds, an address without a port, a data directory
 * in a path that does not exist yet or removed under a running server. Each must end in one clear line and a
 * non-zero exit, never in a server that runs where nobody looks.
 */
#define _GNU_SOURCE
#include "support/th_client.h"
#include "support/th_server.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A child taskhubd of this test, its output in |log|. */
typedef struct {
  pid_t pid;
  char log[PATH_MAX];
} child;

static char g_dir[PATH_MAX / 2];

static void make_dir(void)
{
  const char *tmp = getenv("TMPDIR");
  snprintf(g_dir, sizeof g_dir, "%s/taskhubd-startup-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  ASSERT(mkdtemp(g_dir) != NULL);
}

static void remove_dir(void)
{
  char cmd[PATH_MAX];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  ASSERT_OK(system(cmd));
}

/* Starts taskhubd with |args| (NULL-terminated); with |ready| it waits for the line --ready-fd writes. */
static void spawn(child *c, const char *name, const char *const *args, int ready)
{
  const char *bin = getenv("TASKHUBD_BIN");
  ASSERT(bin && *bin);
  snprintf(c->log, sizeof c->log, "%s/%s.log", g_dir, name);
  int logfd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT(logfd >= 0);
  int p[2];
  ASSERT_OK(pipe2(p, O_CLOEXEC));
  char fdstr[16];
  snprintf(fdstr, sizeof fdstr, "%d", p[1]);
  const char *argv[32];
  int n = 0;
  argv[n++] = bin;
  for (int i = 0; args[i]; i++)
    argv[n++] = args[i];
  if (ready) {
    argv[n++] = "--ready-fd";
    argv[n++] = fdstr;
  }
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    dup2(logfd, 1);
    dup2(logfd, 2);
    if (ready)
      fcntl(p[1], F_SETFD, 0);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(logfd);
  close(p[1]);
  c->pid = pid;
  if (ready) {
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    ASSERT_EQ(poll(&pf, 1, TH_SERVER_START_MS), 1);
    char line[32] = {0};
    ASSERT(read(p[0], line, sizeof line - 1) > 0);
    ASSERT(strchr(line, '\n') != NULL);
  }
  close(p[0]);
}

/* Waits for the child's exit (at most |ms|) through a pidfd, never a sleep; returns its exit status. */
static int wait_exit(child *c, int ms)
{
  int pfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
  ASSERT(pfd >= 0);
  struct pollfd pf = {.fd = pfd, .events = POLLIN};
  int r = poll(&pf, 1, ms);
  close(pfd);
  if (r != 1) {
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    TEST_FAIL("taskhubd (log %s) did not exit within %d ms", c->log, ms);
  }
  int st = 0;
  ASSERT_EQ(waitpid(c->pid, &st, 0), c->pid);
  c->pid = 0;
  ASSERT(WIFEXITED(st)); /* not a crash */
  return WEXITSTATUS(st);
}

static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  ASSERT(f != NULL);
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

static int count_lines(const char *s)
{
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

/* A refused start: exits with |code| at once, says |why| and nothing of gRPC core's raw error, never "serving". */
static char *refused(const char *name, const char *const *args, int code, const char *why)
{
  child c;
  spawn(&c, name, args, 0);
  ASSERT_EQ(wait_exit(&c, 20000), code);
  char *out = slurp(c.log);
  ASSERT_STR_CONTAINS(out, why);
  ASSERT(strstr(out, "event=serving") == NULL);
  ASSERT(strstr(out, "chttp2") == NULL && strstr(out, "\"created\"") == NULL);
  ASSERT(strstr(out, "AddressSanitizer") == NULL && strstr(out, "runtime error") == NULL);
  return out;
}

TEST_IMPL(second_server_on_used_port_exits)
{
  th_server a;
  int rc = th_server_start(&a, NULL);
  if (rc)
    return rc;
  make_dir();
  char listen[64], dir[PATH_MAX];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", a.port);
  snprintf(dir, sizeof dir, "%s/second/data", g_dir);
  const char *args[] = {"--listen", listen, "--ops-listen", "127.0.0.1:0", "--data-dir", dir, NULL};
  char *out = refused("second", args, 1, "Address already in use");
  ASSERT_STR_CONTAINS(out, listen);
  ASSERT_LE(count_lines(out), 3); /* the ops port line, the error, nothing else */
  /* The port is checked before the store is recovered: the second server never created its data directory. */
  struct stat st;
  ASSERT(stat(dir, &st) != 0 && errno == ENOENT);
  /* The first one still serves, alone. */
  th_client *cli = th_client_open(a.port);
  grpc_status_code code = th_call_raw(cli, "/TaskHubSidecarService/Hello", "", 0, 5000, NULL, NULL, NULL);
  ASSERT_EQ(code, GRPC_STATUS_OK);
  th_client_close(cli);
  remove_dir();
  th_server_free(&a);
  return 0;
}

static int unix_connects(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  close(fd);
  return r == 0;
}

TEST_IMPL(second_server_on_used_unix_socket_exits)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  make_dir();
  char sock[PATH_MAX], d1[PATH_MAX], d2[PATH_MAX], listen[PATH_MAX + 8];
  snprintf(sock, sizeof sock, "%s/t.sock", g_dir);
  snprintf(listen, sizeof listen, "unix:%s", sock);
  snprintf(d1, sizeof d1, "%s/d1", g_dir);
  snprintf(d2, sizeof d2, "%s/d2", g_dir);
  child first;
  const char *a1[] = {"--listen", listen, "--ops-listen", "off", "--data-dir", d1, NULL};
  spawn(&first, "first", a1, 1);
  ASSERT(unix_connects(sock));
  const char *a2[] = {"--listen", listen, "--ops-listen", "off", "--data-dir", d2, NULL};
  refused("second", a2, 1, "address in use");
  /* The path still leads to the first server (gRPC core would have unlinked and taken it). */
  ASSERT(unix_connects(sock));
  kill(first.pid, SIGTERM);
  ASSERT_EQ(wait_exit(&first, TH_SERVER_STOP_MS), 0);
  /* A stale socket file (no server behind it) is taken over. */
  ASSERT(!unix_connects(sock));
  child again;
  spawn(&again, "again", a1, 1);
  ASSERT(unix_connects(sock));
  kill(again.pid, SIGTERM);
  ASSERT_EQ(wait_exit(&again, TH_SERVER_STOP_MS), 0);
  remove_dir();
  return 0;
}

TEST_IMPL(address_without_port_refused)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  make_dir();
  /* gRPC core would serve "127.0.0.1" on port 443. */
  const char *a1[] = {"--listen", "127.0.0.1", "--ops-listen", "off", "--data-dir", g_dir, NULL};
  refused("listen", a1, 2, "--listen: expected HOST:PORT");
  const char *a2[] = {"--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1", "--data-dir", g_dir, NULL};
  refused("ops", a2, 2, "--ops-listen: expected HOST:PORT");
  const char *a3[] = {"--listen", "127.0.0.1:99999", "--ops-listen", "off", "--data-dir", g_dir, NULL};
  refused("range", a3, 2, "--listen: expected HOST:PORT");
  const char *a4[] = {"--listen", "unix:", "--ops-listen", "off", "--data-dir", g_dir, NULL};
  refused("unix", a4, 2, "unix: needs a path");
  /* The environment twin is held to the same rule. */
  setenv("TASKHUBD_LISTEN", "localhost", 1);
  const char *a5[] = {"--ops-listen", "off", "--data-dir", g_dir, NULL};
  refused("env", a5, 2, "got \"localhost\"");
  unsetenv("TASKHUBD_LISTEN");
  remove_dir();
  return 0;
}

TEST_IMPL(ops_port_in_use_names_the_cause)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  make_dir();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
  ASSERT_OK(listen(fd, 1));
  socklen_t sl = sizeof sa;
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&sa, &sl));
  char ops[64];
  snprintf(ops, sizeof ops, "127.0.0.1:%d", ntohs(sa.sin_port));
  const char *args[] = {"--listen", "127.0.0.1:0", "--ops-listen", ops, "--data-dir", g_dir, NULL};
  char *out = refused("ops", args, 1, "Address already in use");
  ASSERT_STR_CONTAINS(out, ops);
  ASSERT(strstr(out, "port 0") == NULL);
  close(fd);
  remove_dir();
  return 0;
}

TEST_IMPL(clean_start_log)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  make_dir();
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/data", g_dir);
  child c;
  const char *args[] = {"--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0", "--data-dir", dir, NULL};
  spawn(&c, "clean", args, 1);
  kill(c.pid, SIGTERM);
  ASSERT_EQ(wait_exit(&c, TH_SERVER_STOP_MS), 0);
  char *out = slurp(c.log);
  ASSERT_STR_CONTAINS(out, "event=serving");
  /* libmicrohttpd warned about the order of its options on every start. */
  ASSERT(strstr(out, "level=warn") == NULL);
  ASSERT(strstr(out, "level=error") == NULL);
  remove_dir();
  return 0;
}

TEST_IMPL(data_dir_parents_created)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  make_dir();
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/a/b/c", g_dir);
  child c;
  const char *args[] = {"--listen", "127.0.0.1:0", "--ops-listen", "off", "--data-dir", dir, NULL};
  spawn(&c, "parents", args, 1);
  char current[PATH_MAX + 16];
  snprintf(current, sizeof current, "%s/CURRENT", dir);
  struct stat st;
  ASSERT_OK(stat(current, &st)); /* RocksDB lives in the innermost directory */
  kill(c.pid, SIGTERM);
  ASSERT_EQ(wait_exit(&c, TH_SERVER_STOP_MS), 0);
  remove_dir();
  return 0;
}

TEST_IMPL(data_dir_removed_while_running_exits)
{
  if (!getenv("TASKHUBD_BIN"))
    return TEST_SKIP;
  make_dir();
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/data", g_dir);
  child c;
  const char *args[] = {"--listen", "127.0.0.1:0", "--ops-listen", "off", "--data-dir", dir, NULL};
  spawn(&c, "removed", args, 1);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ASSERT_OK(system(cmd));
  /* Checked about once a second: an error and exit 1, not warnings and a clean shutdown much later. */
  ASSERT_EQ(wait_exit(&c, 15000), 1);
  char *out = slurp(c.log);
  ASSERT_STR_CONTAINS(out, "event=store_lost");
  ASSERT_STR_CONTAINS(out, "is gone");
  ASSERT(strstr(out, "shutdown_done") == NULL);
  remove_dir();
  return 0;
}
