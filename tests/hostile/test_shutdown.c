/* Issue 13, defect 12: probes of the ops port while taskhubd shuts down never touch freed memory (the engine was
 * freed before the ops server stopped, and /readyz and /metrics read it). Each round SIGTERMs a server while two
 * threads probe /readyz and /metrics as fast as they can; the sanitizers report any use after free in the log. */
#define _GNU_SOURCE
#include "hx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 12

struct prober {
  int port;
  const char *path;
  atomic_bool stop;
  atomic_int answered;
  pthread_t th;
};

/* One request; false once the port refuses connections (the ops server is gone). */
static bool probe(int port, const char *path)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return false;
  }
  char req[128], buf[4096];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
  if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n)
    while (read(fd, buf, sizeof buf) > 0)
      ;
  close(fd);
  return true;
}

static void *prober_main(void *arg)
{
  struct prober *p = arg;
  while (!atomic_load(&p->stop))
    if (probe(p->port, p->path))
      atomic_fetch_add(&p->answered, 1);
  return NULL;
}

TEST_IMPL(hostile_ops_probes_during_shutdown)
{
  for (int round = 0; round < ROUNDS; round++) {
    int ops = hx_free_port();
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", ops);
    const char *const args[] = {"--ops-listen", listen, "--drain-grace", "0", NULL};
    th_server srv;
    int rc = th_server_start(&srv, args);
    if (rc)
      return rc;
    struct prober p[2] = {{.port = ops, .path = "/readyz"}, {.port = ops, .path = "/metrics"}};
    for (int i = 0; i < 2; i++)
      ASSERT_OK(pthread_create(&p[i].th, NULL, prober_main, &p[i]));
    long long end = th_now_ms() + 30000;
    while ((atomic_load(&p[0].answered) < 5 || atomic_load(&p[1].answered) < 5) && th_now_ms() < end)
      sched_yield();
    ASSERT_GE(atomic_load(&p[0].answered), 5);
    ASSERT_GE(atomic_load(&p[1].answered), 5);
    int st = th_server_term(&srv, NULL);
    for (int i = 0; i < 2; i++) {
      atomic_store(&p[i].stop, true);
      pthread_join(p[i].th, NULL);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      th_server_dump_logs(&srv);
      TEST_FAIL("round %d: taskhubd did not exit cleanly under probes (wait status %d)", round, st);
    }
    th_server_assert_clean_log(&srv);
    th_server_free(&srv);
  }
  return 0;
}
