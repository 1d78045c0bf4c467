#include "log.h"

#include "log_json.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sc_log_level = SC_LOG_INFO;
int sc_log_json = 0;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void vwrite(int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vwrite(int level, const char *fmt, va_list ap)
{
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   level_names[level]);
  if (n < 0)
    return;
  if (sc_log_json) {
    /* Built from the format and its arguments, not from the logfmt text: typed, and not cut to a line. */
    char when[40];
    snprintf(when, sizeof when, "%.24s", line + 3);
    char *json = sc_log_json_line(when, level_names[level], fmt, ap);
    if (json) {
      fwrite(json, 1, strlen(json), stderr);
      free(json);
    }
    return;
  }
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  if (m < 0)
    m = 0;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof line - 2) {
    len = sizeof line - 2;
    /* Cut before a character the limit split, so a long line stays UTF-8. */
    size_t k = len;
    while (k > 0 && ((unsigned char)line[k - 1] & 0xc0) == 0x80)
      k--;
    if (k > 0 && (unsigned char)line[k - 1] >= 0xc0 &&
        sc_utf8_seq_len((const unsigned char *)line + k - 1, len - (k - 1)) != len - (k - 1))
      len = k - 1;
  }
  line[len++] = '\n';
  /* One write per line keeps lines whole when several threads log at once. */
  fwrite(line, 1, len, stderr);
}

void sc_log_write(int level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vwrite(level, fmt, ap);
  va_end(ap);
}

const char *sc_log_quote(const char *s)
{
  static _Thread_local char ring[8][600];
  static _Thread_local unsigned next;
  if (sc_log_json)
    return s ? s : ""; /* the JSON renderer escapes it, whole */
  if (!s)
    return "\"\"";
  bool plain = *s != 0;
  for (const char *p = s; *p && plain; p++)
    plain = *p != ' ' && *p != '=' && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 &&
            (unsigned char)*p < 0x7f;
  if (plain && strlen(s) < sizeof ring[0])
    return s;
  char *out = ring[next++ % 8];
  size_t o = 0;
  out[o++] = '"';
  size_t n = strlen(s);
  for (size_t i = 0; i < n && o + 6 < sizeof ring[0];) {
    unsigned char ch = (unsigned char)s[i];
    size_t len = ch < 0x80 ? 1 : sc_utf8_seq_len((const unsigned char *)s + i, n - i);
    if (ch == '"' || ch == '\\')
      out[o++] = '\\';
    if (ch < 0x20 || ch == 0x7f || len == 0) {
      out[o++] = '?'; /* control bytes and bytes that are not UTF-8 */
      i++;
      continue;
    }
    memcpy(out + o, s + i, len);
    o += len;
    i += len;
  }
  out[o++] = '"';
  out[o] = 0;
  return out;
}

int sc_log_parse_level(const char *s)
{
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  if (strcmp(s, "warning") == 0)
    return SC_LOG_WARN;
  return -1;
}

void sc_panic(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vwrite(SC_LOG_ERROR, fmt, ap);
  va_end(ap);
  fflush(stderr);
  abort();
}
