/* The rules of guard.h: what makes a request to the ops port one that may change state. */
#include "guard.h"

#include "common/tokens.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *header(struct MHD_Connection *conn, const char *name)
{
  return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* |host| without its port is an IPv4 or bracketed IPv6 literal, or localhost. */
static bool host_is_literal(const char *host)
{
  char h[256];
  if (!host || !*host || strlen(host) >= sizeof h)
    return false;
  if (host[0] == '[') {
    const char *end = strchr(host, ']');
    if (!end || (end[1] && end[1] != ':'))
      return false;
    size_t n = (size_t)(end - host - 1);
    memcpy(h, host + 1, n);
    h[n] = 0;
    unsigned char a6[16];
    return inet_pton(AF_INET6, h, a6) == 1;
  }
  snprintf(h, sizeof h, "%s", host);
  char *colon = strchr(h, ':');
  if (colon)
    *colon = 0;
  unsigned char a4[4];
  return strcasecmp(h, "localhost") == 0 || inet_pton(AF_INET, h, a4) == 1;
}

/* The media type of |ct| (before any parameters) is one an HTML form can send. */
static bool form_type(const char *ct)
{
  static const char *const forms[] = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"};
  while (*ct == ' ' || *ct == '\t')
    ct++;
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    size_t n = strlen(forms[i]);
    if (strncasecmp(ct, forms[i], n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t'))
      return true;
  }
  return false;
}

unsigned sc_ops_guard(struct MHD_Connection *conn, char *why, size_t whycap)
{
  if (sc_tokens_enabled() && !sc_tokens_check_bearer(header(conn, MHD_HTTP_HEADER_AUTHORIZATION))) {
    snprintf(why, whycap, "a valid bearer token is required (Authorization: Bearer <token>; --auth-token-file)");
    return 401;
  }
  if (!header(conn, "X-Taskhubd-Admin")) {
    snprintf(why, whycap, "the X-Taskhubd-Admin header is required for requests that change state");
    return 403;
  }
  const char *site = header(conn, "Sec-Fetch-Site");
  if (site && strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0) {
    snprintf(why, whycap, "cross-site requests are refused (Sec-Fetch-Site: %.40s)", site);
    return 403;
  }
  const char *host = header(conn, MHD_HTTP_HEADER_HOST);
  const char *origin = header(conn, "Origin");
  if (origin && (!host || strncasecmp(origin, "http://", 7) != 0 || strcasecmp(origin + 7, host) != 0)) {
    snprintf(why, whycap, "cross-origin requests are refused (Origin: %.80s)", origin);
    return 403;
  }
  const char *ct = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (ct && form_type(ct)) {
    snprintf(why, whycap, "form-encoded requests are refused (Content-Type: %.60s)", ct);
    return 403;
  }
  if (!sc_tokens_enabled() && host && !host_is_literal(host)) {
    snprintf(why, whycap, "without --auth-token-file, requests that change state must name the host by IP address "
             "or localhost (Host: %.80s)", host);
    return 403;
  }
  return 0;
}
