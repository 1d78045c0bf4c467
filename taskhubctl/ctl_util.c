/* taskhubctl helpers: exit codes, RFC 3339 times, status names, excerpts and the JSON forms (see ctl.h). */
#include "ctl.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------------ exit codes */

int ctl_exit_for(int rc)
{
  switch (rc) {
  case DT_OK: return CTL_EXIT_OK;
  case DT_ERR_INVALID_ARG: return CTL_EXIT_USAGE;
  case DT_ERR_NOT_FOUND: return CTL_EXIT_NOT_FOUND;
  case DT_ERR_EXISTS:
  case DT_ERR_STATE: return CTL_EXIT_STATE;
  case DT_ERR_TIMEOUT:
  case DT_ERR_UNAVAILABLE:
  case DT_ERR_CANCELLED: return CTL_EXIT_UNAVAIL;
  case DT_ERR_UNAUTHENTICATED: return CTL_EXIT_AUTH;
  default: return CTL_EXIT_FAILED;
  }
}

const char *ctl_code_name(int rc)
{
  switch (rc) {
  case DT_OK: return "OK";
  case DT_ERR_INVALID_ARG: return "INVALID_ARGUMENT";
  case DT_ERR_NOT_FOUND: return "NOT_FOUND";
  case DT_ERR_EXISTS: return "ALREADY_EXISTS";
  case DT_ERR_STATE: return "WRONG_STATE";
  case DT_ERR_TIMEOUT: return "TIMEOUT";
  case DT_ERR_UNAVAILABLE: return "UNAVAILABLE";
  case DT_ERR_TASK_FAILED: return "TASK_FAILED";
  case DT_ERR_NONDETERMINISM: return "NONDETERMINISM";
  case DT_ERR_NOMEM: return "NO_MEMORY";
  case DT_ERR_INTERNAL: return "INTERNAL";
  case DT_ERR_CANCELLED: return "CANCELLED";
  case DT_ERR_UNSUPPORTED: return "UNSUPPORTED";
  case DT_ERR_TOO_BIG: return "TOO_BIG";
  case DT_ERR_UNAUTHENTICATED: return "UNAUTHENTICATED";
  default: return "UNKNOWN";
  }
}

/* ------------------------------------------------------------------ times */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads exactly |n| digits at *p. */
static bool digits(const char **p, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return false;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return true;
}

bool ctl_parse_time(const char *s, int64_t *out_ms)
{
  if (!s)
    return false;
  const char *p = s;
  int y, mo, d, h = 0, mi = 0, se = 0, ms = 0, off = 0;
  if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
    return false;
  if (*p) {
    if (*p != 'T' && *p != 't' && *p != ' ')
      return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &se))
      return false;
    if (h > 23 || mi > 59 || se > 60)
      return false;
    if (se == 60) /* a leap second: the epoch has none */
      se = 59;
    if (*p == '.') {
      p++;
      int n = 0;
      while (isdigit((unsigned char)*p)) {
        if (n < 3)
          ms = ms * 10 + (*p - '0');
        n++;
        p++;
      }
      if (n == 0)
        return false;
      for (; n < 3; n++)
        ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1, oh, om;
      if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
        return false;
      off = sign * (oh * 60 + om);
    } else {
      return false; /* RFC 3339 requires the offset */
    }
    if (*p)
      return false;
  }
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - (int64_t)off * 60;
  *out_ms = secs * 1000 + ms;
  return true;
}

bool ctl_parse_duration(const char *s, int64_t *out_ms)
{
  /* Up to ten years: more is surely a typo, and the sums stay far from overflowing. */
  static const int64_t max_ms = 3650LL * 86400 * 1000;
  if (!s || !*s)
    return false;
  int64_t total = 0;
  const char *p = s;
  while (*p) {
    if (!isdigit((unsigned char)*p))
      return false;
    int64_t n = 0;
    while (isdigit((unsigned char)*p)) {
      n = n * 10 + (*p++ - '0');
      if (n > max_ms)
        return false;
    }
    int64_t unit;
    switch (*p++) {
    case 's': unit = 1000; break;
    case 'm': unit = 60 * 1000; break;
    case 'h': unit = 3600 * 1000; break;
    case 'd': unit = 86400 * 1000; break;
    case 'w': unit = 7 * 86400 * 1000; break;
    default: return false;
    }
    if (n > max_ms / unit || (total += n * unit) > max_ms)
      return false;
  }
  *out_ms = total;
  return true;
}

const char *ctl_format_time(int64_t ms, char *buf, size_t cap)
{
  int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  int frac = (int)(ms - secs * 1000);
  time_t t = (time_t)secs;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(buf, cap, "?");
    return buf;
  }
  snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

const char *ctl_format_offset(int64_t ms, char *buf, size_t cap)
{
  char sign = ms < 0 ? '-' : '+';
  uint64_t a = ms < 0 ? (uint64_t)(-(ms + 1)) + 1 : (uint64_t)ms;
  uint64_t s = a / 1000, frac = a % 1000;
  if (s < 60)
    snprintf(buf, cap, "%c%u.%03us", sign, (unsigned)s, (unsigned)frac);
  else if (s < 3600)
    snprintf(buf, cap, "%c%um%02u.%03us", sign, (unsigned)(s / 60), (unsigned)(s % 60), (unsigned)frac);
  else
    snprintf(buf, cap, "%c%lluh%02um%02us", sign, (unsigned long long)(s / 3600), (unsigned)(s / 60 % 60),
             (unsigned)(s % 60));
  return buf;
}

int64_t ctl_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ctl_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ statuses */

bool ctl_parse_status(const char *s, dt_status *out)
{
  if (!s)
    return false;
  for (int i = DT_STATUS_RUNNING; i <= DT_STATUS_SUSPENDED; i++) {
    if (strcasecmp(s, dt_status_name((dt_status)i)) == 0) {
      *out = (dt_status)i;
      return true;
    }
  }
  if (strcasecmp(s, "CANCELLED") == 0) {
    *out = DT_STATUS_CANCELED;
    return true;
  }
  return false;
}

bool ctl_status_is_final(dt_status s)
{
  return s == DT_STATUS_COMPLETED || s == DT_STATUS_FAILED || s == DT_STATUS_TERMINATED ||
         s == DT_STATUS_CANCELED;
}

int ctl_exit_for_final(const dt_instance *in)
{
  return in->status == DT_STATUS_COMPLETED ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

/* ------------------------------------------------------------------ suggestions */

size_t ctl_edit_distance(const char *a, const char *b)
{
  enum { MAX = 64 };
  size_t n = strlen(a), m = strlen(b);
  if (n > MAX || m > MAX)
    return SIZE_MAX;
  size_t d[MAX + 1][MAX + 1];
  for (size_t i = 0; i <= n; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= m; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= n; i++) {
    for (size_t j = 1; j <= m; j++) {
      int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
      size_t best = d[i - 1][j - 1] + (ai != bj);
      if (d[i - 1][j] + 1 < best)
        best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == bj &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[n][m];
}

/* ------------------------------------------------------------------ payloads */

bool ctl_is_json(const char *s)
{
  if (!s)
    return false;
  json_tokener *tok = json_tokener_new();
  if (!tok)
    return false;
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  size_t len = strlen(s);
  if (len > INT_MAX - 1) {
    json_tokener_free(tok);
    return false;
  }
  /* The terminating NUL is passed too: it ends a top-level number ("7"), which would otherwise wait for more. */
  json_object *o = json_tokener_parse_ex(tok, s, (int)len + 1);
  bool ok = json_tokener_get_error(tok) == json_tokener_success;
  size_t end = json_tokener_get_parse_end(tok);
  /* Only whitespace may follow the value. */
  for (size_t i = end; ok && i < len; i++)
    ok = isspace((unsigned char)s[i]) != 0;
  if (!o && ok) /* "null" parses to NULL with success */
    ok = true;
  json_object_put(o);
  json_tokener_free(tok);
  return ok;
}

void ctl_print_excerpt(FILE *f, const char *s, size_t max)
{
  if (!s) {
    fputs("(none)", f);
    return;
  }
  size_t len = strlen(s), n = len;
  bool cut = false;
  if (max > 0 && len > max) {
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
    cut = true;
  }
  ctl_print_escaped(f, s, n);
  if (cut)
    fputs("...", f);
}

void ctl_print_escaped(FILE *f, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n')
      fputs("\\n", f);
    else if (c == '\r')
      fputs("\\r", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c < 0x20 || c == 0x7f)
      fprintf(f, "\\x%02x", c);
    else
      fputc(c, f);
  }
}

/* ------------------------------------------------------------------ JSON */

json_object *ctl_json_str(const char *s)
{
  return s ? json_object_new_string(s) : NULL;
}

json_object *ctl_json_time(int64_t ms)
{
  char buf[48];
  return ms ? json_object_new_string(ctl_format_time(ms, buf, sizeof buf)) : NULL;
}

json_object *ctl_json_failure(const dt_failure *f)
{
  if (!f)
    return NULL;
  json_object *o = json_object_new_object();
  json_object_object_add(o, "type", ctl_json_str(f->error_type));
  json_object_object_add(o, "message", ctl_json_str(f->message));
  json_object_object_add(o, "stackTrace", ctl_json_str(f->stack_trace));
  json_object_object_add(o, "inner", ctl_json_failure(f->inner));
  return o;
}

json_object *ctl_json_instance(const dt_instance *in)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "instanceId", ctl_json_str(in->instance_id));
  json_object_object_add(o, "name", ctl_json_str(in->name));
  json_object_object_add(o, "version", ctl_json_str(in->version));
  json_object_object_add(o, "executionId", ctl_json_str(in->execution_id));
  json_object_object_add(o, "status", json_object_new_string(dt_status_name(in->status)));
  json_object_object_add(o, "createdAt", ctl_json_time(in->created_ms));
  json_object_object_add(o, "lastUpdatedAt", ctl_json_time(in->last_updated_ms));
  json_object_object_add(o, "completedAt", ctl_json_time(in->completed_ms));
  json_object_object_add(o, "scheduledStartAt", ctl_json_time(in->scheduled_start_ms));
  json_object_object_add(o, "parentInstanceId", ctl_json_str(in->parent_instance_id));
  json_object_object_add(o, "input", ctl_json_str(in->input));
  json_object_object_add(o, "output", ctl_json_str(in->output));
  json_object_object_add(o, "customStatus", ctl_json_str(in->custom_status));
  json_object_object_add(o, "failure", ctl_json_failure(in->failure));
  json_object *tags = json_object_new_object();
  for (size_t i = 0; i < in->n_tags; i++)
    json_object_object_add(tags, in->tags[i].key, ctl_json_str(in->tags[i].value));
  json_object_object_add(o, "tags", tags);
  return o;
}

json_object *ctl_json_event(const dt_event *e, int64_t t0_ms)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "eventId", e->event_id >= 0 ? json_object_new_int(e->event_id) : NULL);
  json_object_object_add(o, "timestamp", ctl_json_time(e->timestamp_ms));
  json_object_object_add(o, "offsetMs", json_object_new_int64(e->timestamp_ms - t0_ms));
  json_object_object_add(o, "type", ctl_json_str(e->type));
  json_object_object_add(o, "name", ctl_json_str(e->name));
  json_object_object_add(o, "taskId", e->task_id >= 0 ? json_object_new_int(e->task_id) : NULL);
  json_object_object_add(o, "instanceId", ctl_json_str(e->instance_id));
  json_object_object_add(o, "fireAt", ctl_json_time(e->fire_at_ms));
  bool completed = e->type && strcmp(e->type, "ExecutionCompleted") == 0;
  json_object_object_add(o, "status", completed ? json_object_new_string(dt_status_name(e->status)) : NULL);
  json_object_object_add(o, "payload", ctl_json_str(e->payload));
  json_object_object_add(o, "failure", ctl_json_failure(e->failure));
  return o;
}

void ctl_json_print(json_object *doc)
{
  fputs(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE), stdout);
  fputc('\n', stdout);
  json_object_put(doc);
}
