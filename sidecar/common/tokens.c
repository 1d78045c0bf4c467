#include "tokens.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKENS_MAX_FILE (1u << 20)
#define TOKENS_MAX_LEN 4096

struct token_set {
  size_t n;
  unsigned char (*digest)[SHA256_DIGEST_LENGTH];
};

static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct token_set *g_set; /* NULL: no token file */
static char *g_path;

static void set_free(struct token_set *s)
{
  if (s) {
    free(s->digest);
    free(s);
  }
}

static int fail(char *err, size_t errcap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errcap, const char *fmt, ...)
{
  if (err && errcap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int is_blank(char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

/* Reads and parses |path| into a new set; the file's contents are wiped from memory before returning. */
static int read_set(const char *path, struct token_set **out, char *err, size_t errcap)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    return fail(err, errcap, "auth token file %s: %s", path, strerror(errno));
  }
  char *buf = malloc(TOKENS_MAX_FILE + 1);
  if (!buf) {
    fclose(f);
    return fail(err, errcap, "auth token file %s: out of memory", path);
  }
  size_t len = fread(buf, 1, TOKENS_MAX_FILE + 1, f);
  int rd_err = ferror(f);
  fclose(f);
  int rc = 0;
  struct token_set *s = calloc(1, sizeof *s);
  if (rd_err)
    rc = fail(err, errcap, "auth token file %s: read error", path);
  else if (len > TOKENS_MAX_FILE)
    rc = fail(err, errcap, "auth token file %s: larger than 1 MiB", path);
  else if (!s)
    rc = fail(err, errcap, "auth token file %s: out of memory", path);
  size_t cap = 0;
  long lineno = 0;
  for (size_t pos = 0; rc == 0 && pos < len;) {
    size_t end = pos;
    while (end < len && buf[end] != '\n')
      end++;
    lineno++;
    size_t a = pos, b = end;
    pos = end + 1;
    while (a < b && is_blank(buf[a]))
      a++;
    while (b > a && is_blank(buf[b - 1]))
      b--;
    if (a == b || buf[a] == '#')
      continue;
    if (b - a > TOKENS_MAX_LEN) {
      rc = fail(err, errcap, "auth token file %s: line %ld: token longer than 4096 bytes", path, lineno);
      break;
    }
    for (size_t i = a; i < b; i++) {
      unsigned char c = (unsigned char)buf[i];
      /* What an HTTP/2 header value can carry after "Bearer ": no controls, no blanks inside. */
      if (c < 0x21 || c == 0x7f) {
        rc = fail(err, errcap, "auth token file %s: line %ld: a token may not contain blanks or control characters",
                  path, lineno);
        break;
      }
    }
    if (rc)
      break;
    if (s->n == cap) {
      size_t ncap = cap ? 2 * cap : 4;
      void *d = realloc(s->digest, ncap * sizeof *s->digest);
      if (!d) {
        rc = fail(err, errcap, "auth token file %s: out of memory", path);
        break;
      }
      s->digest = d;
      cap = ncap;
    }
    SHA256((const unsigned char *)buf + a, b - a, s->digest[s->n++]);
  }
  if (rc == 0 && s->n == 0)
    rc = fail(err, errcap, "auth token file %s: no token in it (one per line; # starts a comment)", path);
  OPENSSL_cleanse(buf, len < TOKENS_MAX_FILE + 1 ? len : TOKENS_MAX_FILE + 1);
  free(buf);
  if (rc) {
    set_free(s);
    return -1;
  }
  *out = s;
  return 0;
}

int sc_tokens_load(const char *path, char *err, size_t errcap)
{
  struct token_set *s = NULL;
  char *p = NULL;
  if (path) {
    if (read_set(path, &s, err, errcap))
      return -1;
    p = strdup(path);
    if (!p) {
      set_free(s);
      return fail(err, errcap, "auth token file %s: out of memory", path);
    }
  }
  pthread_rwlock_wrlock(&g_lock);
  struct token_set *old = g_set;
  char *old_path = g_path;
  g_set = s;
  g_path = p;
  pthread_rwlock_unlock(&g_lock);
  set_free(old);
  free(old_path);
  return 0;
}

int sc_tokens_reload(char *err, size_t errcap)
{
  /* g_path changes only in sc_tokens_load, at start; copy it so the file is read outside the lock. */
  pthread_rwlock_rdlock(&g_lock);
  char *path = g_path ? strdup(g_path) : NULL;
  int had = g_path != NULL;
  pthread_rwlock_unlock(&g_lock);
  if (!had)
    return 0;
  if (!path)
    return fail(err, errcap, "auth token file: out of memory");
  struct token_set *s = NULL;
  int rc = read_set(path, &s, err, errcap);
  free(path);
  if (rc)
    return -1;
  pthread_rwlock_wrlock(&g_lock);
  struct token_set *old = g_set;
  g_set = s;
  pthread_rwlock_unlock(&g_lock);
  set_free(old);
  return 0;
}

bool sc_tokens_enabled(void)
{
  pthread_rwlock_rdlock(&g_lock);
  bool on = g_set != NULL;
  pthread_rwlock_unlock(&g_lock);
  return on;
}

bool sc_tokens_check(const char *token, size_t len)
{
  if (!token)
    return false;
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)token, len, d);
  int match = 0;
  pthread_rwlock_rdlock(&g_lock);
  if (g_set)
    for (size_t i = 0; i < g_set->n; i++)
      match |= CRYPTO_memcmp(d, g_set->digest[i], sizeof d) == 0;
  pthread_rwlock_unlock(&g_lock);
  OPENSSL_cleanse(d, sizeof d);
  return match != 0;
}

bool sc_tokens_check_bearer(const char *h)
{
  if (!h)
    return false;
  while (is_blank(*h))
    h++;
  if (strncasecmp(h, "Bearer", 6) != 0 || !is_blank(h[6]))
    return false;
  h += 6;
  while (is_blank(*h))
    h++;
  size_t len = strlen(h);
  while (len > 0 && is_blank(h[len - 1]))
    len--;
  if (len == 0)
    return false;
  return sc_tokens_check(h, len);
}
