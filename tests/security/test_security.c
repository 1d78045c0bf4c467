/*
 * The C SDK (dt_conn_options: TLS roots, client certificate and key, token or $TASKHUBD_AUTH_TOKEN) and
 * taskhubctl (--tls-ca, --tls-cert/--tls-key, --token-file and their TASKHUBCTL_* twins) against a taskhubd
 * started with --tls-cert/--tls-key, --tls-client-ca and --auth-token-file: the right credentials work; a wrong
 * or missing token is UNAUTHENTICATED with the server's message handed to the caller; a missing or foreign
 * client certificate, or an untrusted server, fails in the handshake (UNAVAILABLE, with gRPC's reason).
 */
#include "ctl_harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "c-sdk-token-7f3a9d51e2b84c06"
/* taskhubctl's exit statuses (taskhubctl(1)). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_UNAVAIL 5
#define CTL_EXIT_AUTH 6
#define CALL_MS 15000

typedef struct sec {
  char dir[64];
  char path[16][256];
  th_server srv;
  char addr[64];
} sec;

static char *read_all(const char *path)
{
  FILE *f = fopen(path, "rb");
  ASSERT(f != NULL);
  char *buf = malloc(1 << 16);
  ASSERT(buf != NULL);
  size_t n = fread(buf, 1, (1 << 16) - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

/* The file |name| of the PKI directory. */
static const char *f(sec *s, const char *name)
{
  for (int i = 0; i < 16; i++) {
    if (!s->path[i][0]) {
      snprintf(s->path[i], sizeof s->path[i], "%s/%s", s->dir, name);
      return s->path[i];
    }
    if (strcmp(strrchr(s->path[i], '/') + 1, name) == 0)
      return s->path[i];
  }
  TEST_FAIL("too many paths");
}

/* A PKI, a token file and taskhubd with TLS, mutual TLS and the token. */
static int sec_start(sec *s)
{
  memset(s, 0, sizeof *s);
  if (!getenv("TASKHUBD_BIN") || !getenv("TASKHUBCTL_BIN"))
    return TEST_SKIP;
  snprintf(s->dir, sizeof s->dir, "/tmp/th-sec-XXXXXX");
  ASSERT(mkdtemp(s->dir) != NULL);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "bash %s %s", MAKE_PKI_SH, s->dir);
  ASSERT_EQ(system(cmd), 0);
  FILE *t = fopen(f(s, "tokens"), "w");
  ASSERT(t != NULL);
  fputs("# the app's token\n" TOKEN "\n", t);
  ASSERT_OK(fclose(t));
  const char *args[] = {"--tls-cert", f(s, "server.pem"), "--tls-key", f(s, "server.key"), "--tls-client-ca",
                        f(s, "ca.pem"), "--auth-token-file", f(s, "tokens"), NULL};
  int rc = th_server_start(&s->srv, args);
  if (rc)
    return rc;
  /* An IP address (the certificate lists 127.0.0.1): "localhost" would go through c-ares, whose resolver
   * leaks a few bytes that LeakSanitizer reports. */
  snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->srv.port);
  return 0;
}

static void sec_stop(sec *s)
{
  th_server_free(&s->srv);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  ASSERT_EQ(system(cmd), 0);
}

typedef struct creds {
  char *ca, *cert, *key;
} creds;

static creds load(sec *s, const char *ca, const char *cert, const char *key)
{
  return (creds){read_all(f(s, ca)), cert ? read_all(f(s, cert)) : NULL, key ? read_all(f(s, key)) : NULL};
}

static void creds_free(creds *c)
{
  free(c->ca);
  free(c->cert);
  free(c->key);
}

static dt_conn_options opts(const creds *c, const char *token)
{
  return (dt_conn_options){.tls = true, .root_certs_pem = c->ca, .client_cert_pem = c->cert,
                           .client_key_pem = c->key, .auth_token = token, .call_timeout_ms = CALL_MS};
}

/* GetInstance of an unknown id through a client with |o|: the code, and the server's status in code/msg. */
static int probe(sec *s, const dt_conn_options *o, const char **code, const char **msg)
{
  dt_client *c = NULL;
  ASSERT_OK(dt_client_open(s->addr, o, &c));
  dt_instance *in = NULL;
  int rc = dt_client_get(c, "no-such-instance", false, &in);
  *code = *msg = NULL;
  ASSERT(rc == DT_ERR_NOT_FOUND || dt_last_call_status(code, msg));
  dt_instance_free(in);
  dt_client_close(c);
  return rc;
}

TEST_IMPL(security_c_sdk_client)
{
  sec s;
  int rc = sec_start(&s);
  if (rc)
    return rc;
  unsetenv("TASKHUBD_AUTH_TOKEN");
  creds good = load(&s, "ca.pem", "client.pem", "client.key");
  const char *code, *msg;
  dt_conn_options o = opts(&good, TOKEN);
  ASSERT_EQ(probe(&s, &o, &code, &msg), DT_ERR_NOT_FOUND);

  /* A wrong token and none: DT_ERR_UNAUTHENTICATED, the server's words (the same for both) in the status. */
  const char *bad[] = {TOKEN "x", NULL};
  for (int i = 0; i < 2; i++) {
    o = opts(&good, bad[i]);
    ASSERT_EQ(probe(&s, &o, &code, &msg), DT_ERR_UNAUTHENTICATED);
    ASSERT_STR_EQ(code, "UNAUTHENTICATED");
    ASSERT_STR_CONTAINS(msg, "missing or invalid bearer token");
    ASSERT(strstr(msg, TOKEN) == NULL);
  }
  ASSERT_STR_CONTAINS(dt_strerror(DT_ERR_UNAUTHENTICATED), "not authenticated");
  /* The token from the environment when the options name none; an empty variable is no token. */
  setenv("TASKHUBD_AUTH_TOKEN", TOKEN, 1);
  o = opts(&good, NULL);
  ASSERT_EQ(probe(&s, &o, &code, &msg), DT_ERR_NOT_FOUND);
  setenv("TASKHUBD_AUTH_TOKEN", "", 1);
  ASSERT_EQ(probe(&s, &o, &code, &msg), DT_ERR_UNAUTHENTICATED);
  unsetenv("TASKHUBD_AUTH_TOKEN");

  /* The handshake refuses: no client certificate, one from another CA, a server the client does not trust. */
  creds nocert = load(&s, "ca.pem", NULL, NULL), other = load(&s, "ca.pem", "other-client.pem", "other-client.key"),
        untrusted = load(&s, "other-ca.pem", "client.pem", "client.key");
  const creds *refused[] = {&nocert, &other, &untrusted};
  for (int i = 0; i < 3; i++) {
    o = opts(refused[i], TOKEN);
    ASSERT_EQ(probe(&s, &o, &code, &msg), DT_ERR_UNAVAILABLE);
    ASSERT_STR_EQ(code, "UNAVAILABLE");
    ASSERT(msg && msg[0]);
  }
  /* Plaintext to a TLS port fails the same way. */
  dt_conn_options plain = {.auth_token = TOKEN, .call_timeout_ms = CALL_MS};
  ASSERT_EQ(probe(&s, &plain, &code, &msg), DT_ERR_UNAVAILABLE);

  /* Options that cannot work are refused at open: a certificate without its key, a key without TLS, a token
   * that cannot go in a header. */
  dt_client *c = NULL;
  o = opts(&good, TOKEN);
  o.client_key_pem = NULL;
  ASSERT_EQ(dt_client_open(s.addr, &o, &c), DT_ERR_INVALID_ARG);
  o = opts(&good, TOKEN);
  o.tls = false;
  ASSERT_EQ(dt_client_open(s.addr, &o, &c), DT_ERR_INVALID_ARG);
  o = opts(&good, "two words");
  ASSERT_EQ(dt_client_open(s.addr, &o, &c), DT_ERR_INVALID_ARG);
  ASSERT(c == NULL);

  /* The name the certificate must carry, given explicitly (a unix: target needs it). */
  o = opts(&good, TOKEN);
  o.tls_server_name = "localhost";
  char ip[64];
  snprintf(ip, sizeof ip, "127.0.0.1:%d", s.srv.port);
  ASSERT_OK(dt_client_open(ip, &o, &c));
  dt_instance *in = NULL;
  ASSERT_EQ(dt_client_get(c, "none", false, &in), DT_ERR_NOT_FOUND);
  dt_client_close(c);

  creds_free(&good);
  creds_free(&nocert);
  creds_free(&other);
  creds_free(&untrusted);
  sec_stop(&s);
  return 0;
}

/* The SDK's log lines, kept so a test can wait for one (a condition with a deadline). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
static char log_text[16384];

static void keep_log(int level, const char *message, void *user_data)
{
  (void)user_data;
  fprintf(stderr, "[dt %d] %s\n", level, message);
  pthread_mutex_lock(&log_mu);
  size_t n = strlen(log_text);
  snprintf(log_text + n, sizeof log_text - n, "%s\n", message);
  pthread_cond_broadcast(&log_cv);
  pthread_mutex_unlock(&log_mu);
}

static bool wait_log(const char *needle, int timeout_ms)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  pthread_mutex_lock(&log_mu);
  bool found;
  while (!(found = strstr(log_text, needle) != NULL))
    if (pthread_cond_timedwait(&log_cv, &log_mu, &until) != 0)
      break;
  found = strstr(log_text, needle) != NULL;
  pthread_mutex_unlock(&log_mu);
  return found;
}

TEST_IMPL(security_c_sdk_worker)
{
  sec s;
  int rc = sec_start(&s);
  if (rc)
    return rc;
  creds good = load(&s, "ca.pem", "client.pem", "client.key");
  dt_worker_options wo = {.conn = opts(&good, TOKEN)};
  dt_worker *w = NULL;
  ASSERT_OK(dt_worker_new(s.addr, &wo, &w));
  ASSERT_OK(dt_worker_add_activity(w, "echo", ctl_act_echo, NULL));
  ASSERT_OK(dt_worker_add_orchestrator(w, "hello", ctl_orch_hello, NULL));
  ASSERT_OK(dt_worker_start(w));
  dt_conn_options o = opts(&good, TOKEN);
  dt_client *c = NULL;
  ASSERT_OK(dt_client_open(s.addr, &o, &c));
  dt_start_options so = {.instance_id = "sec-c-1", .input = "\"tls\""};
  ASSERT_OK(dt_client_schedule(c, "hello", &so, NULL));
  dt_instance *in = NULL;
  ASSERT_OK(dt_client_wait_completion(c, "sec-c-1", 30000, true, &in));
  ASSERT_EQ(in->status, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, "{\"echo\":\"tls\"}");
  dt_instance_free(in);
  dt_worker_free(w);

  /* A worker with a wrong token says why it cannot connect (once), with the server's message. */
  dt_set_log_fn(keep_log, NULL);
  wo.conn.auth_token = "not-the-token";
  ASSERT_OK(dt_worker_new(s.addr, &wo, &w));
  ASSERT_OK(dt_worker_add_orchestrator(w, "hello", ctl_orch_hello, NULL));
  ASSERT_OK(dt_worker_start(w));
  ASSERT(wait_log("missing or invalid bearer token", 20000));
  ASSERT(wait_log("cannot connect to", 0));
  dt_worker_free(w);
  dt_set_log_fn(NULL, NULL);
  dt_client_close(c);
  creds_free(&good);
  sec_stop(&s);
  return 0;
}

TEST_IMPL(security_taskhubctl)
{
  sec s;
  int rc = sec_start(&s);
  if (rc)
    return rc;
  unsetenv("TASKHUBD_AUTH_TOKEN");
  const char *a = s.addr;
  ctl_res r = CTL(a, "--tls-ca", f(&s, "ca.pem"), "--tls-cert", f(&s, "client.pem"), "--tls-key",
                  f(&s, "client.key"), "--token-file", f(&s, "tokens"), "list");
  ASSERT_EXIT(r, CTL_EXIT_OK);
  ASSERT_STR_CONTAINS(r.out, "no instances");
  ctl_res_free(&r);

  /* The same from the environment (TASKHUBCTL_* and the token itself in TASKHUBD_AUTH_TOKEN). */
  setenv("TASKHUBCTL_TLS_CA", f(&s, "ca.pem"), 1);
  setenv("TASKHUBCTL_TLS_CERT", f(&s, "client.pem"), 1);
  setenv("TASKHUBCTL_TLS_KEY", f(&s, "client.key"), 1);
  setenv("TASKHUBD_AUTH_TOKEN", TOKEN, 1);
  r = CTL(a, "start", "hello", "--id", "ctl-sec-1");
  ASSERT_EXIT(r, CTL_EXIT_OK);
  ctl_res_free(&r);
  r = CTL(a, "show", "ctl-sec-1", "-o", "json");
  ASSERT_EXIT(r, CTL_EXIT_OK);
  ctl_res_free(&r);

  /* A wrong token: exit 6, the server's message on stderr, and in the JSON error document. */
  setenv("TASKHUBD_AUTH_TOKEN", "not-the-token", 1);
  r = CTL(a, "list");
  ASSERT_EXIT(r, CTL_EXIT_AUTH);
  ASSERT_STR_CONTAINS(r.err, "UNAUTHENTICATED: missing or invalid bearer token");
  ctl_res_free(&r);
  unsetenv("TASKHUBD_AUTH_TOKEN");
  r = CTL(a, "list", "-o", "json");
  ASSERT_EXIT(r, CTL_EXIT_AUTH);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "UNAUTHENTICATED");
  ASSERT_STR_CONTAINS(jstr(jget(doc, "error"), "grpcMessage"), "missing or invalid bearer token");
  json_object_put(doc);
  ctl_res_free(&r);

  /* No client certificate: the handshake fails, exit 5 with gRPC's reason. */
  unsetenv("TASKHUBCTL_TLS_CERT");
  unsetenv("TASKHUBCTL_TLS_KEY");
  r = CTL(a, "--token-file", f(&s, "tokens"), "list");
  ASSERT_EXIT(r, CTL_EXIT_UNAVAIL);
  ASSERT_STR_CONTAINS(r.err, "UNAVAILABLE");
  ctl_res_free(&r);
  /* An unreadable credentials file, and a certificate without its key. */
  r = CTL(a, "--tls-cert", f(&s, "client.pem"), "--tls-key", "/nonexistent/key.pem", "list");
  ASSERT_EXIT(r, CTL_EXIT_AUTH);
  ASSERT_STR_CONTAINS(r.err, "/nonexistent/key.pem");
  ctl_res_free(&r);
  r = CTL(a, "--tls-cert", f(&s, "client.pem"), "list");
  ASSERT_EXIT(r, CTL_EXIT_USAGE);
  ASSERT_STR_CONTAINS(r.err, "--tls-key");
  ctl_res_free(&r);
  unsetenv("TASKHUBCTL_TLS_CA");
  sec_stop(&s);
  return 0;
}
