/* taskhubctl's connection credentials (see credentials.h). */
#include "credentials.h"

#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRED_MAX_FILE (1u << 20)

static const char *flag_or_env(const char *flag, const char *env)
{
  if (flag)
    return flag;
  const char *v = getenv(env);
  return v && *v ? v : NULL;
}

static char *slurp(const char *path, char *why, size_t whycap)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, whycap, "%s", strerror(errno));
    return NULL;
  }
  char *buf = malloc(CRED_MAX_FILE + 1);
  size_t n = buf ? fread(buf, 1, CRED_MAX_FILE + 1, f) : 0;
  bool bad = ferror(f) != 0;
  fclose(f);
  if (!buf || bad || n > CRED_MAX_FILE) {
    snprintf(why, whycap, "%s", !buf ? "out of memory" : bad ? "read error" : "larger than 1 MiB");
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  return buf;
}

/* The first token of a token file in taskhubd's format: one per line, blank lines and # comments skipped. */
static void first_token(char *text)
{
  char *line = text, *out = NULL;
  while (line && *line && !out) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = 0;
    char *a = line + strspn(line, " \t\r");
    size_t n = strlen(a);
    while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t' || a[n - 1] == '\r'))
      n--;
    if (n > 0 && a[0] != '#') {
      memmove(text, a, n);
      text[n] = 0;
      out = text;
    }
    line = nl ? nl + 1 : NULL;
  }
  if (!out)
    text[0] = 0;
}

int ctl_credentials_load(struct ctl *c, struct ctl_credentials *cred, dt_conn_options *o)
{
  memset(cred, 0, sizeof *cred);
  const char *ca = flag_or_env(c->tls_ca, "TASKHUBCTL_TLS_CA");
  const char *cert = flag_or_env(c->tls_cert, "TASKHUBCTL_TLS_CERT");
  const char *key = flag_or_env(c->tls_key, "TASKHUBCTL_TLS_KEY");
  const char *name = flag_or_env(c->tls_server_name, "TASKHUBCTL_TLS_SERVER_NAME");
  const char *token_file = flag_or_env(c->token_file, "TASKHUBCTL_TOKEN_FILE");
  const char *tls_env = getenv("TASKHUBCTL_TLS");
  bool tls = c->tls || ca || cert || (tls_env && (!strcmp(tls_env, "1") || !strcmp(tls_env, "true") ||
                                                  !strcmp(tls_env, "yes") || !strcmp(tls_env, "on")));
  if (!cert != !key)
    return ctl_usage_error(c, "--tls-cert and --tls-key go together (a client certificate and its key)");
  struct {
    const char *flag, *path;
    char **into;
  } files[] = {{"--tls-ca", ca, &cred->ca}, {"--tls-cert", cert, &cred->cert}, {"--tls-key", key, &cred->key},
               {"--token-file", token_file, &cred->token}};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    if (!files[i].path)
      continue;
    char why[128];
    *files[i].into = slurp(files[i].path, why, sizeof why);
    if (!*files[i].into) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s %s: %s", files[i].flag, files[i].path, why);
      fprintf(stderr, "taskhubctl: %s\n", msg);
      ctl_error_doc(c, "CREDENTIALS", CTL_EXIT_AUTH, msg, NULL);
      ctl_credentials_free(cred);
      return CTL_EXIT_AUTH;
    }
  }
  if (cred->token) {
    first_token(cred->token);
    if (!cred->token[0]) {
      char msg[512];
      snprintf(msg, sizeof msg, "--token-file %s: no token in it", token_file);
      fprintf(stderr, "taskhubctl: %s\n", msg);
      ctl_error_doc(c, "CREDENTIALS", CTL_EXIT_AUTH, msg, NULL);
      ctl_credentials_free(cred);
      return CTL_EXIT_AUTH;
    }
  }
  o->tls = tls;
  o->root_certs_pem = cred->ca;
  o->client_cert_pem = cred->cert;
  o->client_key_pem = cred->key;
  o->tls_server_name = name;
  o->auth_token = cred->token; /* NULL: the SDK reads TASKHUBD_AUTH_TOKEN */
  return CTL_EXIT_OK;
}

static void wipe(char *s)
{
  if (s) {
    volatile char *p = s;
    while (*p)
      *p++ = 0;
    free(s);
  }
}

void ctl_credentials_free(struct ctl_credentials *cred)
{
  wipe(cred->ca);
  wipe(cred->cert);
  wipe(cred->key);
  wipe(cred->token);
  memset(cred, 0, sizeof *cred);
}
