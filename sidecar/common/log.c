#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sc_log_level = SC_LOG_INFO;

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
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  if (m < 0)
    m = 0;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof line - 2)
    len = sizeof line - 2;
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
