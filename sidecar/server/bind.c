/* Binding the gRPC port so that mistakes fail at start with one clear line (see bind.h). */
#include "server/bind.h"

#include "common/log.h"

#include <errno.h>
#include <grpc/support/log.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int sc_bind_precheck(const char *listen, struct sc_err *err)
{
  if (strncmp(listen, "unix:", 5) != 0)
    return SC_OK;
  const char *path = listen + 5;
  struct stat st;
  if (stat(path, &st) != 0)
    return SC_OK;
  if (!S_ISSOCK(st.st_mode)) {
    sc_err_set(err, SC_EUNAVAIL, "%s exists and is not a socket", path);
    return SC_EUNAVAIL;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    sc_err_set(err, SC_EINVAL, "unix socket path too long (%zu bytes, at most %zu)", strlen(path),
               sizeof sa.sun_path - 1);
    return SC_EINVAL;
  }
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return SC_OK;
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  close(fd);
  if (rc == 0) {
    sc_err_set(err, SC_EUNAVAIL, "address in use: a running server answers on %s", listen);
    return SC_EUNAVAIL;
  }
  return SC_OK;
}

void sc_bind_explain(const char *listen, struct sc_err *err)
{
  char host[256];
  const char *colon = strrchr(listen, ':');
  if (strncmp(listen, "unix:", 5) == 0 || !colon || (size_t)(colon - listen) >= sizeof host) {
    sc_err_set(err, SC_EUNAVAIL, "cannot listen on %s", listen);
    return;
  }
  size_t hl = (size_t)(colon - listen);
  const char *h = listen;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  memcpy(host, h, hl);
  host[hl] = 0;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
  if (gai != 0) {
    sc_err_set(err, SC_EUNAVAIL, "cannot listen on %s: %s", listen, gai_strerror(gai));
    return;
  }
  int why = 0;
  for (struct addrinfo *a = ai; a && !why; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0)
      why = errno;
    close(fd);
  }
  freeaddrinfo(ai);
  if (why)
    sc_err_set(err, SC_EUNAVAIL, "cannot listen on %s: %s", listen, strerror(why));
  else
    sc_err_set(err, SC_EUNAVAIL, "cannot listen on %s (gRPC refused the address)", listen);
}

/* Host part of HOST:PORT or [V6]:PORT into host (cap bytes); false when it does not fit. */
static bool host_of(const char *listen, char *host, size_t cap)
{
  const char *colon = strrchr(listen, ':');
  if (!colon || (size_t)(colon - listen) >= cap)
    return false;
  size_t hl = (size_t)(colon - listen);
  const char *h = listen;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  memcpy(host, h, hl);
  host[hl] = 0;
  return true;
}

static bool is_loopback(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

int sc_bind_check_exposure(const char *listen, bool secured, bool allow_insecure, struct sc_err *err)
{
  if (secured || allow_insecure || strncmp(listen, "unix:", 5) == 0)
    return SC_OK;
  char host[256];
  bool exposed = true;
  if (host_of(listen, host, sizeof host) && host[0]) {
    /* What the name resolves to now; every address must be loopback. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
      return SC_OK; /* the bind fails on it and says why */
    exposed = false;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
      exposed |= !is_loopback(a->ai_addr);
    freeaddrinfo(ai);
  }
  if (!exposed)
    return SC_OK;
  sc_err_set(err, SC_EINVAL,
             "%s is reachable from other machines: give --tls-cert/--tls-key or --auth-token-file, listen on "
             "127.0.0.1 or unix:PATH, or pass --allow-insecure on a trusted network",
             listen);
  return SC_EINVAL;
}

int sc_bind_add_port(grpc_server *server, const char *listen, grpc_server_credentials *creds)
{
  if (strncmp(listen, "unix:", 5) != 0)
    return grpc_server_add_http2_port(server, listen, creds);
  /* gRPC core binds the socket here, with the process umask: narrow it so the socket is never, even for an
   * instant, connectable by other users. No other thread creates files yet (the store opens later). */
  mode_t old = umask(0177);
  int p = grpc_server_add_http2_port(server, listen, creds);
  umask(old);
  if (p && chmod(listen + 5, 0600) != 0)
    SC_WARN("event=unix_socket_chmod_failed path=%s errno=%d", SC_Q(listen + 5), errno);
  return p;
}

static atomic_bool quiet;

static void grpc_log(gpr_log_func_args *a)
{
  const char *msg = a->message ? a->message : "";
  if (a->severity == GPR_LOG_SEVERITY_ERROR && !atomic_load(&quiet))
    SC_WARN("event=grpc_error file=%s line=%d message=%s", SC_Q(a->file), a->line, SC_Q(msg));
  else
    SC_DEBUG("event=grpc_log file=%s line=%d message=%s", SC_Q(a->file), a->line, SC_Q(msg));
}

void sc_grpc_log_route(bool q)
{
  atomic_store(&quiet, q);
  gpr_set_log_function(grpc_log);
}
