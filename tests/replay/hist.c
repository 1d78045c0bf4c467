/* The .hist format (see hist.h): parser, expectation checker and formatter. */
#include "hist.h"

#include <stddef.h>
#include <stdint.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ memory */

struct hist_blk {
  struct hist_blk *next;
  max_align_t data[];
};

struct hist_arena {
  struct hist_blk *head;
};

static void oom(void)
{
  fprintf(stderr, "hist: out of memory\n");
  abort();
}

static void *aalloc(struct hist_arena *a, size_t n)
{
  struct hist_blk *b = calloc(1, sizeof *b + (n ? n : 1));
  if (!b)
    oom();
  b->next = a->head;
  a->head = b;
  return b->data;
}

static char *adup(struct hist_arena *a, const char *s)
{
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *p = aalloc(a, n);
  memcpy(p, s, n);
  return p;
}

static char *adupn(struct hist_arena *a, const char *s, size_t n)
{
  if (n >= (size_t)PTRDIFF_MAX) /* never: lengths come from pointers into one line */
    n = 0;
  char *p = aalloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

static void arena_free(struct hist_arena *a)
{
  if (!a)
    return;
  for (struct hist_blk *b = a->head, *n; b; b = n) {
    n = b->next;
    free(b);
  }
  free(a);
}

/* A growable string. */
struct sbuf {
  char *p;
  size_t n, cap;
};

static void sb_grow(struct sbuf *s, size_t more)
{
  if (s->n + more + 1 <= s->cap)
    return;
  size_t cap = s->cap ? s->cap : 128;
  while (cap < s->n + more + 1)
    cap *= 2;
  char *p = realloc(s->p, cap);
  if (!p)
    oom();
  s->p = p;
  s->cap = cap;
}

static void sb_putn(struct sbuf *s, const char *p, size_t n)
{
  sb_grow(s, n);
  memcpy(s->p + s->n, p, n);
  s->n += n;
  s->p[s->n] = 0;
}

static void sb_puts(struct sbuf *s, const char *p)
{
  sb_putn(s, p, strlen(p));
}

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  sb_grow(s, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(s->p + s->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s->n += (size_t)n;
}

static char *sb_take(struct sbuf *s)
{
  if (!s->p)
    sb_grow(s, 0), s->p[0] = 0;
  char *p = s->p;
  s->p = NULL;
  s->n = s->cap = 0;
  return p;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = malloc(n > 0 ? (size_t)n + 1 : 1);
  if (!p)
    oom();
  va_start(ap, fmt);
  vsnprintf(p, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
  va_end(ap);
  return p;
}

/* ------------------------------------------------------------------ times */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i]))
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool hist_parse_time(const char *s, int64_t *ns)
{
  if (!s || !*s)
    return false;
  const char *p = s;
  if (*p == '-')
    p++;
  bool all_digits = *p != 0;
  for (const char *q = p; *q; q++)
    if (!isdigit((unsigned char)*q))
      all_digits = false;
  if (all_digits) {
    errno = 0;
    long long ms = strtoll(s, NULL, 10);
    if (errno)
      return false;
    *ns = (int64_t)ms * 1000000;
    return true;
  }
  int Y, M, D, h, mi, sec;
  if (strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
      !digits(s + 8, 2, &D) || s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' ||
      !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return false;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60)
    return false;
  p = s + 19;
  int64_t frac = 0;
  if (*p == '.') {
    p++;
    int n = 0;
    while (isdigit((unsigned char)*p)) {
      if (n == 9)
        return false;
      frac = frac * 10 + (*p - '0');
      n++;
      p++;
    }
    if (n == 0)
      return false;
    for (; n < 9; n++)
      frac *= 10;
  }
  if (strcmp(p, "Z") != 0)
    return false;
  int64_t secs = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + sec;
  *ns = secs * 1000000000 + frac;
  return true;
}

void hist_format_time(int64_t ns, char out[40])
{
  int64_t secs = ns / 1000000000, frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    secs--;
  }
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  char f[16];
  if (frac % 1000000 == 0)
    snprintf(f, sizeof f, "%03d", (int)(frac / 1000000));
  else if (frac % 1000 == 0)
    snprintf(f, sizeof f, "%06d", (int)(frac / 1000));
  else
    snprintf(f, sizeof f, "%09d", (int)frac);
  char full[128]; /* room for any year; real timestamps fit in 40 */
  snprintf(full, sizeof full, "%04lld-%02u-%02uT%02d:%02d:%02d.%sZ", (long long)y, m, d, (int)(rem / 3600),
           (int)(rem / 60 % 60), (int)(rem % 60), f);
  memcpy(out, full, 39);
  out[39] = 0;
}

static int64_t pbts_ns(const Google__Protobuf__Timestamp *t)
{
  return t ? t->seconds * 1000000000 + t->nanos : 0;
}

/* ------------------------------------------------------------------ tokens */

struct ptok {
  const char *key; /* the word, or the key of key=value */
  const char *value; /* NULL for a bare word */
  bool contains;
};

#define MAX_TOKS 32

struct parser {
  hist *h;
  struct hist_arena *a;
  const char *name;
  int line;
  char *err;
  int64_t cur_ts;
};

static bool perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool perr(struct parser *p, const char *fmt, ...)
{
  if (p->err)
    return false;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *msg = malloc((size_t)n + 1);
  if (!msg)
    oom();
  va_start(ap, fmt);
  vsnprintf(msg, (size_t)n + 1, fmt, ap);
  va_end(ap);
  p->err = xprintf("%s:%d: %s", p->name, p->line, msg);
  free(msg);
  return false;
}

static bool is_key_char(char c)
{
  return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* Splits one line into tokens (values are copied into the arena). Returns false on a syntax error. */
static bool tokenize(struct parser *p, const char *s, struct ptok *t, int *n)
{
  *n = 0;
  for (;;) {
    while (*s == ' ' || *s == '\t')
      s++;
    if (!*s || *s == '#')
      return true;
    if (*n == MAX_TOKS)
      return perr(p, "too many tokens");
    const char *k = s;
    while (is_key_char(*s))
      s++;
    if (s == k)
      return perr(p, "unexpected character '%c'", *s);
    struct ptok *tk = &t[(*n)++];
    tk->key = adupn(p->a, k, (size_t)(s - k));
    tk->value = NULL;
    tk->contains = false;
    if (*s == '~' && s[1] == '=') {
      tk->contains = true;
      s += 2;
    } else if (*s == '=') {
      s++;
    } else {
      if (*s && *s != ' ' && *s != '\t' && *s != '#')
        return perr(p, "unexpected character '%c' after '%s'", *s, tk->key);
      continue;
    }
    if (*s == '\'') {
      const char *e = strchr(s + 1, '\'');
      if (!e)
        return perr(p, "unterminated '...' value of %s", tk->key);
      tk->value = adupn(p->a, s + 1, (size_t)(e - s - 1));
      s = e + 1;
    } else if (*s == '"') {
      struct sbuf b = {0};
      s++;
      for (;;) {
        if (!*s) {
          free(b.p);
          return perr(p, "unterminated \"...\" value of %s", tk->key);
        }
        if (*s == '"')
          break;
        if (*s == '\\') {
          s++;
          char c = *s;
          switch (c) {
          case 'n': c = '\n'; break;
          case 'r': c = '\r'; break;
          case 't': c = '\t'; break;
          case '\\': case '"': case '\'': break;
          default:
            free(b.p);
            return perr(p, "unknown escape \\%c in %s", c ? c : '0', tk->key);
          }
          sb_putn(&b, &c, 1);
          s++;
        } else {
          sb_putn(&b, s, 1);
          s++;
        }
      }
      s++;
      char *v = sb_take(&b);
      tk->value = adup(p->a, v);
      free(v);
    } else {
      const char *v = s;
      while (*s && *s != ' ' && *s != '\t')
        s++;
      tk->value = adupn(p->a, v, (size_t)(s - v));
    }
    if (*s && *s != ' ' && *s != '\t')
      return perr(p, "expected a space after the value of %s", tk->key);
  }
}

static bool word_in(const char *w, const char *list)
{
  size_t n = strlen(w);
  for (const char *q = list; *q;) {
    while (*q == ' ')
      q++;
    const char *e = q;
    while (*e && *e != ' ')
      e++;
    if ((size_t)(e - q) == n && strncmp(q, w, n) == 0)
      return true;
    q = e;
  }
  return false;
}

static const struct ptok *find(const struct ptok *t, int n, const char *key)
{
  for (int i = 1; i < n; i++)
    if (strcmp(t[i].key, key) == 0)
      return &t[i];
  return NULL;
}

static const char *get(const struct ptok *t, int n, const char *key)
{
  const struct ptok *k = find(t, n, key);
  return k ? k->value : NULL;
}

static bool check_keys(struct parser *p, const struct ptok *t, int n, const char *allowed, const char *required)
{
  for (int i = 1; i < n; i++) {
    if (!t[i].value)
      return perr(p, "%s: '%s' needs a value", t[0].key, t[i].key);
    if (!word_in(t[i].key, allowed))
      return perr(p, "%s: unknown key '%s' (allowed: %s)", t[0].key, t[i].key, allowed);
    for (int j = 1; j < i; j++)
      if (strcmp(t[i].key, t[j].key) == 0 && !(t[i].contains && t[j].contains))
        return perr(p, "%s: '%s' given twice", t[0].key, t[i].key);
  }
  for (const char *q = required; *q;) {
    while (*q == ' ')
      q++;
    const char *e = q;
    while (*e && *e != ' ')
      e++;
    if (e > q) {
      char w[64];
      snprintf(w, sizeof w, "%.*s", (int)(e - q), q);
      if (!find(t, n, w))
        return perr(p, "%s: '%s' is required", t[0].key, w);
    }
    q = e;
  }
  return true;
}

static bool parse_int(struct parser *p, const char *key, const char *v, int32_t *out)
{
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || !*v || *end || x < INT32_MIN || x > INT32_MAX)
    return perr(p, "%s: '%s' is not an integer", key, v);
  *out = (int32_t)x;
  return true;
}

static bool parse_bool(struct parser *p, const char *key, const char *v, bool *out)
{
  if (strcmp(v, "true") == 0)
    *out = true;
  else if (strcmp(v, "false") == 0)
    *out = false;
  else
    return perr(p, "%s: '%s' is not true or false", key, v);
  return true;
}

static bool parse_status(struct parser *p, const char *v, int *out)
{
  char name[96];
  snprintf(name, sizeof name, "ORCHESTRATION_STATUS_%s", v);
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(&orchestration_status__descriptor, name);
  if (!ev)
    return perr(p, "unknown status '%s'", v);
  *out = ev->value;
  return true;
}

static const char *status_name(int v)
{
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(&orchestration_status__descriptor, v);
  if (!ev)
    return "UNKNOWN";
  return strncmp(ev->name, "ORCHESTRATION_STATUS_", 21) == 0 ? ev->name + 21 : ev->name;
}

/* ------------------------------------------------------------------ building events */

static Google__Protobuf__StringValue *asv(struct hist_arena *a, const char *s)
{
  if (!s)
    return NULL;
  Google__Protobuf__StringValue *v = aalloc(a, sizeof *v);
  google__protobuf__string_value__init(v);
  v->value = adup(a, s);
  return v;
}

static Google__Protobuf__Timestamp *ats(struct hist_arena *a, int64_t ns)
{
  Google__Protobuf__Timestamp *t = aalloc(a, sizeof *t);
  google__protobuf__timestamp__init(t);
  int64_t s = ns / 1000000000, r = ns % 1000000000;
  if (r < 0) {
    r += 1000000000;
    s--;
  }
  t->seconds = s;
  t->nanos = (int32_t)r;
  return t;
}

static char *astr(struct hist_arena *a, const char *s)
{
  return s ? adup(a, s) : (char *)protobuf_c_empty_string;
}

#define FAILURE_KEYS " type message stack nonretriable inner_type inner_message inner_stack"

static bool afailure(struct parser *p, const struct ptok *t, int n, TaskFailureDetails **out)
{
  TaskFailureDetails *f = aalloc(p->a, sizeof *f);
  task_failure_details__init(f);
  f->errortype = astr(p->a, get(t, n, "type"));
  f->errormessage = astr(p->a, get(t, n, "message"));
  f->stacktrace = asv(p->a, get(t, n, "stack"));
  const char *nr = get(t, n, "nonretriable");
  if (nr) {
    bool b = false;
    if (!parse_bool(p, "nonretriable", nr, &b))
      return false;
    f->isnonretriable = b;
  }
  if (get(t, n, "inner_type") || get(t, n, "inner_message") || get(t, n, "inner_stack")) {
    TaskFailureDetails *in = aalloc(p->a, sizeof *in);
    task_failure_details__init(in);
    in->errortype = astr(p->a, get(t, n, "inner_type"));
    in->errormessage = astr(p->a, get(t, n, "inner_message"));
    in->stacktrace = asv(p->a, get(t, n, "inner_stack"));
    f->innerfailure = in;
  }
  *out = f;
  return true;
}

static bool time_key(struct parser *p, const struct ptok *t, int n, const char *key, Google__Protobuf__Timestamp **out)
{
  const char *v = get(t, n, key);
  if (!v) {
    *out = NULL;
    return true;
  }
  int64_t ns;
  if (!hist_parse_time(v, &ns))
    return perr(p, "%s: bad time '%s'", key, v);
  *out = ats(p->a, ns);
  return true;
}

static bool int_key(struct parser *p, const struct ptok *t, int n, const char *key, int32_t *out)
{
  const char *v = get(t, n, key);
  return v ? parse_int(p, key, v, out) : true;
}

#define ALLOC_EV(field, type, init, kase)                                                                    \
  do {                                                                                                       \
    type *x_ = aalloc(p->a, sizeof *x_);                                                                     \
    init(x_);                                                                                                \
    e->event_type_case = kase;                                                                               \
    e->field = x_;                                                                                           \
  } while (0)

static bool build_event(struct parser *p, const struct ptok *t, int n, HistoryEvent **out)
{
  const char *type = t[0].key;
  HistoryEvent *e = aalloc(p->a, sizeof *e);
  history_event__init(e);
  e->eventid = -1;
  const char *allowed = NULL, *required = "";
#define C " id ts"
  if (strcmp(type, "OrchestratorStarted") == 0) {
    allowed = C;
    ALLOC_EV(orchestratorstarted, OrchestratorStartedEvent, orchestrator_started_event__init,
             HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED);
  } else if (strcmp(type, "OrchestratorCompleted") == 0) {
    allowed = C;
    ALLOC_EV(orchestratorcompleted, OrchestratorCompletedEvent, orchestrator_completed_event__init,
             HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_COMPLETED);
  } else if (strcmp(type, "ExecutionStarted") == 0) {
    allowed = C " name input instance execution version parent_instance parent_execution parent_task parent_name "
                "scheduled_start";
    required = "name";
    ALLOC_EV(executionstarted, ExecutionStartedEvent, execution_started_event__init,
             HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED);
  } else if (strcmp(type, "ExecutionCompleted") == 0) {
    allowed = C " status result" FAILURE_KEYS;
    required = "status";
    ALLOC_EV(executioncompleted, ExecutionCompletedEvent, execution_completed_event__init,
             HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED);
  } else if (strcmp(type, "ExecutionTerminated") == 0) {
    allowed = C " input recurse";
    ALLOC_EV(executionterminated, ExecutionTerminatedEvent, execution_terminated_event__init,
             HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED);
  } else if (strcmp(type, "ExecutionSuspended") == 0) {
    allowed = C " input reason";
    ALLOC_EV(executionsuspended, ExecutionSuspendedEvent, execution_suspended_event__init,
             HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED);
  } else if (strcmp(type, "ExecutionResumed") == 0) {
    allowed = C " input reason";
    ALLOC_EV(executionresumed, ExecutionResumedEvent, execution_resumed_event__init,
             HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED);
  } else if (strcmp(type, "ExecutionRewound") == 0) {
    allowed = C " reason";
    ALLOC_EV(executionrewound, ExecutionRewoundEvent, execution_rewound_event__init,
             HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND);
  } else if (strcmp(type, "TaskScheduled") == 0) {
    allowed = C " name input version";
    required = "id name";
    ALLOC_EV(taskscheduled, TaskScheduledEvent, task_scheduled_event__init, HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED);
  } else if (strcmp(type, "TaskCompleted") == 0) {
    allowed = C " task result";
    required = "task";
    ALLOC_EV(taskcompleted, TaskCompletedEvent, task_completed_event__init, HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED);
  } else if (strcmp(type, "TaskFailed") == 0) {
    allowed = C " task" FAILURE_KEYS;
    required = "task";
    ALLOC_EV(taskfailed, TaskFailedEvent, task_failed_event__init, HISTORY_EVENT__EVENT_TYPE_TASK_FAILED);
  } else if (strcmp(type, "SubOrchestrationInstanceCreated") == 0) {
    allowed = C " name instance input version";
    required = "id name";
    ALLOC_EV(suborchestrationinstancecreated, SubOrchestrationInstanceCreatedEvent,
             sub_orchestration_instance_created_event__init,
             HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED);
  } else if (strcmp(type, "SubOrchestrationInstanceCompleted") == 0) {
    allowed = C " task result";
    required = "task";
    ALLOC_EV(suborchestrationinstancecompleted, SubOrchestrationInstanceCompletedEvent,
             sub_orchestration_instance_completed_event__init,
             HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED);
  } else if (strcmp(type, "SubOrchestrationInstanceFailed") == 0) {
    allowed = C " task" FAILURE_KEYS;
    required = "task";
    ALLOC_EV(suborchestrationinstancefailed, SubOrchestrationInstanceFailedEvent,
             sub_orchestration_instance_failed_event__init, HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED);
  } else if (strcmp(type, "TimerCreated") == 0) {
    allowed = C " fire_at";
    required = "id fire_at";
    ALLOC_EV(timercreated, TimerCreatedEvent, timer_created_event__init, HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED);
  } else if (strcmp(type, "TimerFired") == 0) {
    allowed = C " timer fire_at";
    required = "timer fire_at";
    ALLOC_EV(timerfired, TimerFiredEvent, timer_fired_event__init, HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED);
  } else if (strcmp(type, "EventSent") == 0) {
    allowed = C " name instance input data";
    required = "id name";
    ALLOC_EV(eventsent, EventSentEvent, event_sent_event__init, HISTORY_EVENT__EVENT_TYPE_EVENT_SENT);
  } else if (strcmp(type, "EventRaised") == 0) {
    allowed = C " name input data";
    required = "name";
    ALLOC_EV(eventraised, EventRaisedEvent, event_raised_event__init, HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED);
  } else if (strcmp(type, "GenericEvent") == 0) {
    allowed = C " data";
    ALLOC_EV(genericevent, GenericEvent, generic_event__init, HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT);
  } else if (strcmp(type, "ContinueAsNew") == 0) {
    allowed = C " input";
    ALLOC_EV(continueasnew, ContinueAsNewEvent, continue_as_new_event__init, HISTORY_EVENT__EVENT_TYPE_CONTINUE_AS_NEW);
  } else {
    return perr(p, "unknown event type '%s'", type);
  }
#undef C
  if (!check_keys(p, t, n, allowed, required))
    return false;
  if (!int_key(p, t, n, "id", &e->eventid))
    return false;
  const char *tsv = get(t, n, "ts");
  if (tsv && !hist_parse_time(tsv, &p->cur_ts))
    return perr(p, "ts: bad time '%s'", tsv);
  e->timestamp = ats(p->a, p->cur_ts);
  struct hist_arena *a = p->a;
  switch (e->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED: {
    ExecutionStartedEvent *es = e->executionstarted;
    es->name = astr(a, get(t, n, "name"));
    es->input = asv(a, get(t, n, "input"));
    es->version = asv(a, get(t, n, "version"));
    OrchestrationInstance *oi = aalloc(a, sizeof *oi);
    orchestration_instance__init(oi);
    const char *iid = get(t, n, "instance");
    oi->instanceid = adup(a, iid ? iid : "test-instance");
    oi->executionid = asv(a, get(t, n, "execution"));
    es->orchestrationinstance = oi;
    if (!p->h->instance_id) {
      p->h->instance_id = oi->instanceid;
      p->h->execution_id = adup(a, get(t, n, "execution"));
    }
    if (get(t, n, "parent_instance")) {
      ParentInstanceInfo *pi = aalloc(a, sizeof *pi);
      parent_instance_info__init(pi);
      if (!int_key(p, t, n, "parent_task", &pi->taskscheduledid))
        return false;
      pi->name = asv(a, get(t, n, "parent_name"));
      OrchestrationInstance *po = aalloc(a, sizeof *po);
      orchestration_instance__init(po);
      po->instanceid = adup(a, get(t, n, "parent_instance"));
      po->executionid = asv(a, get(t, n, "parent_execution"));
      pi->orchestrationinstance = po;
      es->parentinstance = pi;
    }
    if (!time_key(p, t, n, "scheduled_start", &es->scheduledstarttimestamp))
      return false;
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED: {
    int st = 0;
    if (!parse_status(p, get(t, n, "status"), &st))
      return false;
    e->executioncompleted->orchestrationstatus = st;
    e->executioncompleted->result = asv(a, get(t, n, "result"));
    if ((get(t, n, "type") || get(t, n, "message") || get(t, n, "inner_type")) &&
        !afailure(p, t, n, &e->executioncompleted->failuredetails))
      return false;
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED: {
    e->executionterminated->input = asv(a, get(t, n, "input"));
    const char *r = get(t, n, "recurse");
    bool b = false;
    if (r && !parse_bool(p, "recurse", r, &b))
      return false;
    e->executionterminated->recurse = b;
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED: {
    const char *v = get(t, n, "input");
    e->executionsuspended->input = asv(a, v ? v : get(t, n, "reason"));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED: {
    const char *v = get(t, n, "input");
    e->executionresumed->input = asv(a, v ? v : get(t, n, "reason"));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND:
    e->executionrewound->reason = asv(a, get(t, n, "reason"));
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED:
    e->taskscheduled->name = astr(a, get(t, n, "name"));
    e->taskscheduled->input = asv(a, get(t, n, "input"));
    e->taskscheduled->version = asv(a, get(t, n, "version"));
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED:
    if (!int_key(p, t, n, "task", &e->taskcompleted->taskscheduledid))
      return false;
    e->taskcompleted->result = asv(a, get(t, n, "result"));
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED:
    if (!int_key(p, t, n, "task", &e->taskfailed->taskscheduledid) ||
        !afailure(p, t, n, &e->taskfailed->failuredetails))
      return false;
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED: {
    SubOrchestrationInstanceCreatedEvent *s = e->suborchestrationinstancecreated;
    s->name = astr(a, get(t, n, "name"));
    s->instanceid = astr(a, get(t, n, "instance"));
    s->input = asv(a, get(t, n, "input"));
    s->version = asv(a, get(t, n, "version"));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED:
    if (!int_key(p, t, n, "task", &e->suborchestrationinstancecompleted->taskscheduledid))
      return false;
    e->suborchestrationinstancecompleted->result = asv(a, get(t, n, "result"));
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED:
    if (!int_key(p, t, n, "task", &e->suborchestrationinstancefailed->taskscheduledid) ||
        !afailure(p, t, n, &e->suborchestrationinstancefailed->failuredetails))
      return false;
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED:
    if (!time_key(p, t, n, "fire_at", &e->timercreated->fireat))
      return false;
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED:
    if (!int_key(p, t, n, "timer", &e->timerfired->timerid) || !time_key(p, t, n, "fire_at", &e->timerfired->fireat))
      return false;
    break;
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT: {
    if (get(t, n, "input") && get(t, n, "data"))
      return perr(p, "EventSent: give input= or data=, not both");
    const char *v = get(t, n, "input");
    e->eventsent->name = astr(a, get(t, n, "name"));
    e->eventsent->instanceid = astr(a, get(t, n, "instance"));
    e->eventsent->input = asv(a, v ? v : get(t, n, "data"));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED: {
    if (get(t, n, "input") && get(t, n, "data"))
      return perr(p, "EventRaised: give input= or data=, not both");
    const char *v = get(t, n, "input");
    e->eventraised->name = astr(a, get(t, n, "name"));
    e->eventraised->input = asv(a, v ? v : get(t, n, "data"));
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT:
    e->genericevent->data = asv(a, get(t, n, "data"));
    break;
  case HISTORY_EVENT__EVENT_TYPE_CONTINUE_AS_NEW:
    e->continueasnew->input = asv(a, get(t, n, "input"));
    break;
  default:
    break;
  }
  *out = e;
  return true;
}

/* ------------------------------------------------------------------ expectations */

static const struct {
  const char *kind, *allowed, *required;
} kinds[] = {
    {"scheduleTask", "id name input version", "id name"},
    {"createTimer", "id fire_at", "id fire_at"},
    {"createSubOrchestration", "id name instance input version", "id name instance"},
    {"sendEvent", "id instance name data", "id instance name"},
    {"completeOrchestration",
     "id status result type message stack inner_type inner_message inner_stack new_version", "status"},
    {"rewindOrchestration", "id history", "history"},
    {"terminateOrchestration", "id instance reason recurse", "id instance"},
};

static bool copy_fields(struct parser *p, const struct ptok *t, int n, struct hist_field **f, size_t *nf)
{
  *f = aalloc(p->a, (size_t)(n > 1 ? n - 1 : 1) * sizeof **f);
  *nf = 0;
  for (int i = 1; i < n; i++) {
    struct hist_field *x = &(*f)[(*nf)++];
    x->key = (char *)t[i].key;
    x->value = (char *)t[i].value;
    x->contains = t[i].contains;
    if (strcmp(x->key, "id") == 0) {
      int32_t id;
      if (x->contains || !parse_int(p, "id", x->value, &id))
        return x->contains ? perr(p, "id~= is not supported") : false;
    }
    if (strcmp(x->key, "fire_at") == 0 && !x->contains) {
      int64_t ns;
      if (!hist_parse_time(x->value, &ns))
        return perr(p, "fire_at: bad time '%s'", x->value);
      char buf[40];
      hist_format_time(ns, buf);
      x->value = adup(p->a, buf);
    }
    if (strcmp(x->key, "status") == 0 && !x->contains) {
      int st = 0;
      if (!parse_status(p, x->value, &st))
        return false;
    }
  }
  return true;
}

static bool parse_expect_line(struct parser *p, const struct ptok *t, int n)
{
  hist *h = p->h;
  if (strcmp(t[0].key, "customStatus") == 0) {
    if (n != 1 || !t[0].value || t[0].contains)
      return perr(p, "customStatus: write customStatus=<value>");
    if (h->custom_status)
      return perr(p, "customStatus given twice");
    h->custom_status = (char *)t[0].value;
    return true;
  }
  if (t[0].value)
    return perr(p, "expected an action name, got %s=", t[0].key);
  if (strcmp(t[0].key, "carryover") == 0) {
    if (!check_keys(p, t, n, "name data", "name"))
      return false;
    struct hist_expect *last = h->n_expect ? &h->expect[h->n_expect - 1] : NULL;
    if (!last || strcmp(last->kind, "completeOrchestration") != 0)
      return perr(p, "carryover must follow a completeOrchestration line");
    if (last->ncarry == last->capcarry) {
      size_t cap = last->capcarry ? last->capcarry * 2 : 8;
      struct hist_expect_carry *c = aalloc(p->a, cap * sizeof *c);
      if (last->ncarry)
        memcpy(c, last->carry, last->ncarry * sizeof *c);
      last->carry = c;
      last->capcarry = cap;
    }
    struct hist_expect_carry *c = &last->carry[last->ncarry++];
    c->line = p->line;
    return copy_fields(p, t, n, &c->f, &c->nf);
  }
  size_t k = 0;
  while (k < sizeof kinds / sizeof kinds[0] && strcmp(kinds[k].kind, t[0].key) != 0)
    k++;
  if (k == sizeof kinds / sizeof kinds[0])
    return perr(p, "unknown action '%s'", t[0].key);
  if (!check_keys(p, t, n, kinds[k].allowed, kinds[k].required))
    return false;
  static const size_t grow = 16;
  if (h->n_expect % grow == 0) {
    struct hist_expect *x = aalloc(p->a, (h->n_expect + grow) * sizeof *x);
    if (h->n_expect)
      memcpy(x, h->expect, h->n_expect * sizeof *x);
    h->expect = x;
  }
  struct hist_expect *x = &h->expect[h->n_expect++];
  memset(x, 0, sizeof *x);
  x->line = p->line;
  x->kind = (char *)t[0].key;
  return copy_fields(p, t, n, &x->f, &x->nf);
}

/* ------------------------------------------------------------------ parsing */

enum section { S_PAST, S_NEW, S_EXPECT };

struct evlist {
  HistoryEvent **v;
  size_t n, cap;
};

static void ev_push(struct hist_arena *a, struct evlist *l, HistoryEvent *e)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    HistoryEvent **v = aalloc(a, cap * sizeof *v);
    if (l->n)
      memcpy(v, l->v, l->n * sizeof *v);
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = e;
}

static bool parse_text(struct parser *p, const char *text, enum section sec, struct evlist *past,
                       struct evlist *nev, bool *saw_new)
{
  p->line = 0;
  const char *s = text;
  while (*s) {
    p->line++;
    const char *e = strchr(s, '\n');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    char *line = adupn(p->a, s, len);
    if (len && line[len - 1] == '\r')
      line[len - 1] = 0;
    s = e ? e + 1 : s + len;
    const char *q = line;
    while (*q == ' ' || *q == '\t')
      q++;
    if (strncmp(q, "---", 3) == 0) {
      const char *w = q + 3;
      while (*w == ' ')
        w++;
      char word[32];
      size_t wl = 0;
      while (w[wl] && w[wl] != ' ' && w[wl] != '#' && wl < sizeof word - 1)
        wl++;
      snprintf(word, sizeof word, "%.*s", (int)wl, w);
      if (strcmp(word, "new") == 0 && sec == S_PAST) {
        sec = S_NEW;
        *saw_new = true;
      } else if (strcmp(word, "expect") == 0 && sec != S_EXPECT) {
        sec = S_EXPECT;
        p->h->has_expect = true;
      } else {
        return perr(p, "unexpected section marker '--- %s'", word);
      }
      continue;
    }
    struct ptok t[MAX_TOKS];
    int n;
    if (!tokenize(p, q, t, &n))
      return false;
    if (n == 0)
      continue;
    if (sec == S_EXPECT) {
      if (!parse_expect_line(p, t, n))
        return false;
      continue;
    }
    if (t[0].value)
      return perr(p, "expected an event type, got %s=", t[0].key);
    HistoryEvent *ev = NULL;
    if (!build_event(p, t, n, &ev))
      return false;
    ev_push(p->a, sec == S_PAST ? past : nev, ev);
  }
  return true;
}

static hist *parse_full(const char *text, const char *expect_text, const char *name, char **err)
{
  hist *h = calloc(1, sizeof *h);
  if (!h)
    oom();
  h->arena = calloc(1, sizeof *h->arena);
  if (!h->arena)
    oom();
  struct parser p = {.h = h, .a = h->arena, .name = name};
  hist_parse_time("2026-01-01T00:00:00Z", &p.cur_ts);
  h->name = adup(h->arena, name);
  struct evlist past = {0}, nev = {0};
  bool saw_new = false;
  bool ok = parse_text(&p, text, S_PAST, &past, &nev, &saw_new);
  if (ok && expect_text && !h->has_expect) {
    char *ename = xprintf("%s (.expect)", name);
    p.name = ename;
    h->has_expect = true;
    ok = parse_text(&p, expect_text, S_EXPECT, &past, &nev, &saw_new);
    p.name = name;
    if (!ok) {
      *err = p.err;
      free(ename);
      hist_free(h);
      return NULL;
    }
    free(ename);
  }
  if (!ok) {
    *err = p.err;
    hist_free(h);
    return NULL;
  }
  if (!saw_new) {
    /* No marker: everything is new (a first episode). */
    nev = past;
    memset(&past, 0, sizeof past);
  }
  h->past = past.v;
  h->n_past = past.n;
  h->new_events = nev.v;
  h->n_new = nev.n;
  if (!h->instance_id)
    h->instance_id = adup(h->arena, "test-instance");
  return h;
}

hist *hist_parse(const char *text, const char *name, char **err)
{
  *err = NULL;
  return parse_full(text, NULL, name ? name : "<text>", err);
}

static char *read_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  struct sbuf b = {0};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    sb_putn(&b, buf, n);
  fclose(f);
  return sb_take(&b);
}

hist *hist_load(const char *path, char **err)
{
  *err = NULL;
  char *text = read_file(path);
  if (!text) {
    *err = xprintf("%s: cannot read: %s", path, strerror(errno));
    return NULL;
  }
  char *etext = NULL;
  size_t n = strlen(path);
  if (n > 5 && strcmp(path + n - 5, ".hist") == 0) {
    char *ep = xprintf("%.*s.expect", (int)(n - 5), path);
    etext = read_file(ep);
    free(ep);
  }
  const char *base = strrchr(path, '/');
  hist *h = parse_full(text, etext, base ? base + 1 : path, err);
  free(text);
  free(etext);
  return h;
}

void hist_free(hist *h)
{
  if (!h)
    return;
  arena_free(h->arena);
  free(h);
}

OrchestratorRequest *hist_request(hist *h)
{
  OrchestratorRequest *r = aalloc(h->arena, sizeof *r);
  orchestrator_request__init(r);
  r->instanceid = h->instance_id;
  r->executionid = asv(h->arena, h->execution_id);
  r->pastevents = h->past;
  r->n_pastevents = h->n_past;
  r->newevents = h->new_events;
  r->n_newevents = h->n_new;
  return r;
}

/* ------------------------------------------------------------------ rendering */

static bool bare_ok(const char *v)
{
  if (!*v)
    return false;
  for (const char *q = v; *q; q++)
    if (!(isalnum((unsigned char)*q) || strchr("_.:/+@-,", *q)))
      return false;
  return true;
}

char *hist_quote(const char *v)
{
  struct sbuf b = {0};
  if (bare_ok(v)) {
    sb_puts(&b, v);
  } else if (!strchr(v, '\'') && !strpbrk(v, "\n\r\t")) {
    sb_printf(&b, "'%s'", v);
  } else {
    sb_puts(&b, "\"");
    for (const char *q = v; *q; q++) {
      switch (*q) {
      case '\n': sb_puts(&b, "\\n"); break;
      case '\r': sb_puts(&b, "\\r"); break;
      case '\t': sb_puts(&b, "\\t"); break;
      case '\\': sb_puts(&b, "\\\\"); break;
      case '"': sb_puts(&b, "\\\""); break;
      default: sb_putn(&b, q, 1);
      }
    }
    sb_puts(&b, "\"");
  }
  return sb_take(&b);
}

static void kv(struct sbuf *b, const char *key, const char *v)
{
  if (!v)
    return;
  char *q = hist_quote(v);
  sb_printf(b, " %s=%s", key, q);
  free(q);
}

static void kv_sv(struct sbuf *b, const char *key, const Google__Protobuf__StringValue *v)
{
  kv(b, key, v ? v->value : NULL);
}

static void kv_str(struct sbuf *b, const char *key, const char *v) /* a proto3 string: "" is absent */
{
  kv(b, key, v && *v ? v : NULL);
}

static void kv_time(struct sbuf *b, const char *key, const Google__Protobuf__Timestamp *t)
{
  if (!t)
    return;
  char buf[40];
  hist_format_time(pbts_ns(t), buf);
  sb_printf(b, " %s=%s", key, buf);
}

static void kv_failure(struct sbuf *b, const TaskFailureDetails *f, bool stacks)
{
  if (!f)
    return;
  kv(b, "type", f->errortype);
  kv(b, "message", f->errormessage);
  if (stacks)
    kv_sv(b, "stack", f->stacktrace);
  if (f->isnonretriable)
    sb_puts(b, " nonretriable=true");
  if (f->innerfailure) {
    kv(b, "inner_type", f->innerfailure->errortype);
    kv(b, "inner_message", f->innerfailure->errormessage);
    if (stacks)
      kv_sv(b, "inner_stack", f->innerfailure->stacktrace);
  }
}

static const char *event_type_name(int t)
{
  switch (t) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED: return "ExecutionStarted";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED: return "ExecutionCompleted";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED: return "ExecutionTerminated";
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED: return "TaskScheduled";
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED: return "TaskCompleted";
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED: return "TaskFailed";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED: return "SubOrchestrationInstanceCreated";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED: return "SubOrchestrationInstanceCompleted";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED: return "SubOrchestrationInstanceFailed";
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED: return "TimerCreated";
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED: return "TimerFired";
  case HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED: return "OrchestratorStarted";
  case HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_COMPLETED: return "OrchestratorCompleted";
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT: return "EventSent";
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED: return "EventRaised";
  case HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT: return "GenericEvent";
  case HISTORY_EVENT__EVENT_TYPE_HISTORY_STATE: return "HistoryState";
  case HISTORY_EVENT__EVENT_TYPE_CONTINUE_AS_NEW: return "ContinueAsNew";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED: return "ExecutionSuspended";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED: return "ExecutionResumed";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND: return "ExecutionRewound";
  default: return NULL;
  }
}

char *hist_format_event(const HistoryEvent *e, int64_t *last_ts_ns)
{
  struct sbuf b = {0};
  const char *tn = event_type_name((int)e->event_type_case);
  if (!tn) {
    sb_printf(&b, "# (an event of type %d, which .hist cannot express)", (int)e->event_type_case);
    return sb_take(&b);
  }
  sb_puts(&b, tn);
  if (e->eventid != -1)
    sb_printf(&b, " id=%d", (int)e->eventid);
  if (e->timestamp) {
    int64_t ns = pbts_ns(e->timestamp);
    if (!last_ts_ns || *last_ts_ns != ns || e->event_type_case == HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED)
      kv_time(&b, "ts", e->timestamp);
    if (last_ts_ns)
      *last_ts_ns = ns;
  }
  switch (e->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED: {
    const ExecutionStartedEvent *es = e->executionstarted;
    kv_str(&b, "name", es->name);
    kv_sv(&b, "version", es->version);
    kv_sv(&b, "input", es->input);
    if (es->orchestrationinstance) {
      kv_str(&b, "instance", es->orchestrationinstance->instanceid);
      kv_sv(&b, "execution", es->orchestrationinstance->executionid);
    }
    if (es->parentinstance && es->parentinstance->orchestrationinstance) {
      kv_str(&b, "parent_instance", es->parentinstance->orchestrationinstance->instanceid);
      kv_sv(&b, "parent_execution", es->parentinstance->orchestrationinstance->executionid);
      sb_printf(&b, " parent_task=%d", (int)es->parentinstance->taskscheduledid);
      kv_sv(&b, "parent_name", es->parentinstance->name);
    }
    kv_time(&b, "scheduled_start", es->scheduledstarttimestamp);
    break;
  }
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED:
    sb_printf(&b, " status=%s", status_name((int)e->executioncompleted->orchestrationstatus));
    kv_sv(&b, "result", e->executioncompleted->result);
    kv_failure(&b, e->executioncompleted->failuredetails, true);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED:
    kv_sv(&b, "input", e->executionterminated->input);
    if (e->executionterminated->recurse)
      sb_puts(&b, " recurse=true");
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED:
    kv_sv(&b, "input", e->executionsuspended->input);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED:
    kv_sv(&b, "input", e->executionresumed->input);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_REWOUND:
    kv_sv(&b, "reason", e->executionrewound->reason);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED:
    kv_str(&b, "name", e->taskscheduled->name);
    kv_sv(&b, "version", e->taskscheduled->version);
    kv_sv(&b, "input", e->taskscheduled->input);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED:
    sb_printf(&b, " task=%d", (int)e->taskcompleted->taskscheduledid);
    kv_sv(&b, "result", e->taskcompleted->result);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED:
    sb_printf(&b, " task=%d", (int)e->taskfailed->taskscheduledid);
    kv_failure(&b, e->taskfailed->failuredetails, true);
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED:
    kv_str(&b, "name", e->suborchestrationinstancecreated->name);
    kv_str(&b, "instance", e->suborchestrationinstancecreated->instanceid);
    kv_sv(&b, "version", e->suborchestrationinstancecreated->version);
    kv_sv(&b, "input", e->suborchestrationinstancecreated->input);
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED:
    sb_printf(&b, " task=%d", (int)e->suborchestrationinstancecompleted->taskscheduledid);
    kv_sv(&b, "result", e->suborchestrationinstancecompleted->result);
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED:
    sb_printf(&b, " task=%d", (int)e->suborchestrationinstancefailed->taskscheduledid);
    kv_failure(&b, e->suborchestrationinstancefailed->failuredetails, true);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED:
    kv_time(&b, "fire_at", e->timercreated->fireat);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED:
    sb_printf(&b, " timer=%d", (int)e->timerfired->timerid);
    kv_time(&b, "fire_at", e->timerfired->fireat);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT:
    kv_str(&b, "instance", e->eventsent->instanceid);
    kv_str(&b, "name", e->eventsent->name);
    kv_sv(&b, "input", e->eventsent->input);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED:
    kv(&b, "name", e->eventraised->name);
    kv_sv(&b, "input", e->eventraised->input);
    break;
  case HISTORY_EVENT__EVENT_TYPE_GENERIC_EVENT:
    kv_sv(&b, "data", e->genericevent->data);
    break;
  case HISTORY_EVENT__EVENT_TYPE_CONTINUE_AS_NEW:
    kv_sv(&b, "input", e->continueasnew->input);
    break;
  default:
    break;
  }
  return sb_take(&b);
}

bool hist_is_confirmation(const HistoryEvent *e)
{
  switch (e->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED:
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED:
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED:
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT:
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED:
    return true;
  default:
    return false;
  }
}

char *hist_confirmation_to_expect(const HistoryEvent *e)
{
  struct sbuf b = {0};
  switch (e->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_TASK_SCHEDULED:
    sb_printf(&b, "scheduleTask id=%d", (int)e->eventid);
    kv_str(&b, "name", e->taskscheduled->name);
    kv_sv(&b, "input", e->taskscheduled->input);
    kv_sv(&b, "version", e->taskscheduled->version);
    break;
  case HISTORY_EVENT__EVENT_TYPE_TIMER_CREATED:
    sb_printf(&b, "createTimer id=%d", (int)e->eventid);
    kv_time(&b, "fire_at", e->timercreated->fireat);
    break;
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_CREATED:
    sb_printf(&b, "createSubOrchestration id=%d", (int)e->eventid);
    kv_str(&b, "name", e->suborchestrationinstancecreated->name);
    kv_str(&b, "instance", e->suborchestrationinstancecreated->instanceid);
    kv_sv(&b, "input", e->suborchestrationinstancecreated->input);
    kv_sv(&b, "version", e->suborchestrationinstancecreated->version);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EVENT_SENT:
    sb_printf(&b, "sendEvent id=%d", (int)e->eventid);
    kv_str(&b, "instance", e->eventsent->instanceid);
    kv_str(&b, "name", e->eventsent->name);
    kv_sv(&b, "data", e->eventsent->input);
    break;
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_COMPLETED:
    sb_printf(&b, "completeOrchestration id=%d status=%s", (int)e->eventid,
              status_name((int)e->executioncompleted->orchestrationstatus));
    kv_sv(&b, "result", e->executioncompleted->result);
    kv_failure(&b, e->executioncompleted->failuredetails, false);
    break;
  default:
    return NULL;
  }
  return sb_take(&b);
}

/* An action as key/value pairs (values NULL when absent), the way expectations name them. */
struct rfield {
  const char *key;
  char *value;
};

struct rendered {
  const char *kind;
  struct rfield f[16];
  size_t nf;
  struct rcarry {
    struct rfield f[2];
  } *carry;
  size_t ncarry;
};

static void rf_add(struct hist_arena *a, struct rendered *r, const char *key, const char *v)
{
  r->f[r->nf].key = key;
  r->f[r->nf].value = adup(a, v);
  r->nf++;
}

static void rf_sv(struct hist_arena *a, struct rendered *r, const char *key, const Google__Protobuf__StringValue *v)
{
  rf_add(a, r, key, v ? v->value : NULL);
}

static void rf_int(struct hist_arena *a, struct rendered *r, const char *key, int v)
{
  char buf[16];
  snprintf(buf, sizeof buf, "%d", v);
  rf_add(a, r, key, buf);
}

static void rf_str(struct hist_arena *a, struct rendered *r, const char *key, const char *v)
{
  rf_add(a, r, key, v && *v ? v : NULL);
}

static void render(struct hist_arena *a, const OrchestratorAction *x, struct rendered *r)
{
  memset(r, 0, sizeof *r);
  rf_int(a, r, "id", x->id);
  switch (x->orchestrator_action_type_case) {
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK:
    r->kind = "scheduleTask";
    rf_str(a, r, "name", x->scheduletask->name);
    rf_sv(a, r, "input", x->scheduletask->input);
    rf_sv(a, r, "version", x->scheduletask->version);
    break;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER: {
    r->kind = "createTimer";
    char buf[40] = "";
    if (x->createtimer->fireat)
      hist_format_time(pbts_ns(x->createtimer->fireat), buf);
    rf_add(a, r, "fire_at", x->createtimer->fireat ? buf : NULL);
    break;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION:
    r->kind = "createSubOrchestration";
    rf_str(a, r, "name", x->createsuborchestration->name);
    rf_str(a, r, "instance", x->createsuborchestration->instanceid);
    rf_sv(a, r, "input", x->createsuborchestration->input);
    rf_sv(a, r, "version", x->createsuborchestration->version);
    break;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT:
    r->kind = "sendEvent";
    rf_str(a, r, "instance", x->sendevent->instance ? x->sendevent->instance->instanceid : NULL);
    rf_str(a, r, "name", x->sendevent->name);
    rf_sv(a, r, "data", x->sendevent->data);
    break;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION: {
    const CompleteOrchestrationAction *c = x->completeorchestration;
    r->kind = "completeOrchestration";
    rf_add(a, r, "status", status_name((int)c->orchestrationstatus));
    rf_sv(a, r, "result", c->result);
    const TaskFailureDetails *f = c->failuredetails, *in = f ? f->innerfailure : NULL;
    rf_str(a, r, "type", f ? f->errortype : NULL);
    rf_str(a, r, "message", f ? f->errormessage : NULL);
    rf_sv(a, r, "stack", f ? f->stacktrace : NULL);
    rf_str(a, r, "inner_type", in ? in->errortype : NULL);
    rf_str(a, r, "inner_message", in ? in->errormessage : NULL);
    rf_sv(a, r, "inner_stack", in ? in->stacktrace : NULL);
    rf_sv(a, r, "new_version", c->newversion);
    r->ncarry = c->n_carryoverevents;
    r->carry = aalloc(a, (r->ncarry ? r->ncarry : 1) * sizeof *r->carry);
    for (size_t i = 0; i < c->n_carryoverevents; i++) {
      const HistoryEvent *e = c->carryoverevents[i];
      struct rcarry *rc = &r->carry[i];
      rc->f[0].key = "name";
      rc->f[1].key = "data";
      if (e->event_type_case == HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED) {
        rc->f[0].value = adup(a, e->eventraised->name);
        rc->f[1].value = e->eventraised->input ? adup(a, e->eventraised->input->value) : NULL;
      } else {
        const char *tn = event_type_name((int)e->event_type_case);
        char buf[64];
        snprintf(buf, sizeof buf, "<not an EventRaised: %s>", tn ? tn : "?");
        rc->f[0].value = adup(a, buf);
      }
    }
    break;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_REWIND_ORCHESTRATION: {
    r->kind = "rewindOrchestration";
    struct sbuf b = {0};
    for (size_t i = 0; i < x->rewindorchestration->n_newhistory; i++) {
      const HistoryEvent *e = x->rewindorchestration->newhistory[i];
      const char *tn = event_type_name((int)e->event_type_case);
      sb_printf(&b, "%s%s", i ? "," : "", tn ? tn : "?");
      if (e->eventid >= 0)
        sb_printf(&b, ":%d", (int)e->eventid);
    }
    char *s = sb_take(&b);
    rf_add(a, r, "history", s);
    free(s);
    break;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_TERMINATE_ORCHESTRATION:
    r->kind = "terminateOrchestration";
    rf_str(a, r, "instance", x->terminateorchestration->instanceid);
    rf_sv(a, r, "reason", x->terminateorchestration->reason);
    rf_add(a, r, "recurse", x->terminateorchestration->recurse ? "true" : NULL);
    break;
  default:
    r->kind = "unsupportedAction";
    break;
  }
}

static void render_line(struct sbuf *b, const struct rendered *r)
{
  sb_puts(b, r->kind);
  for (size_t i = 0; i < r->nf; i++)
    kv(b, r->f[i].key, r->f[i].value);
  sb_puts(b, "\n");
  for (size_t i = 0; i < r->ncarry; i++) {
    sb_puts(b, "carryover");
    kv(b, "name", r->carry[i].f[0].value);
    kv(b, "data", r->carry[i].f[1].value);
    sb_puts(b, "\n");
  }
}

char *hist_format_response(const OrchestratorResponse *resp)
{
  struct hist_arena *a = calloc(1, sizeof *a);
  if (!a)
    oom();
  struct sbuf b = {0};
  for (size_t i = 0; i < resp->n_actions; i++) {
    struct rendered r;
    render(a, resp->actions[i], &r);
    render_line(&b, &r);
  }
  if (resp->customstatus) {
    char *q = hist_quote(resp->customstatus->value);
    sb_printf(&b, "customStatus=%s\n", q);
    free(q);
  }
  if (!b.n)
    sb_puts(&b, "(no actions)\n");
  arena_free(a);
  return sb_take(&b);
}

static const char *rget(const struct rfield *f, size_t n, const char *key, bool *known)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(f[i].key, key) == 0) {
      *known = true;
      return f[i].value;
    }
  *known = false;
  return NULL;
}

static bool lenient(const char *kind, const char *key)
{
  if (strcmp(key, "stack") == 0 || strcmp(key, "inner_stack") == 0)
    return true;
  return strcmp(key, "id") == 0 &&
         (strcmp(kind, "completeOrchestration") == 0 || strcmp(kind, "rewindOrchestration") == 0);
}

/* Compares one set of fields; differences go to |d| prefixed with |where|. */
static int cmp_fields(struct sbuf *d, const char *where, const char *kind, const struct hist_field *ef, size_t enf,
                      const struct rfield *af, size_t anf)
{
  int n = 0;
  for (size_t i = 0; i < enf; i++) {
    bool known;
    const char *got = rget(af, anf, ef[i].key, &known);
    bool ok = got && (ef[i].contains ? strstr(got, ef[i].value) != NULL : strcmp(got, ef[i].value) == 0);
    if (!ok) {
      char *q = hist_quote(ef[i].value);
      char *g = got ? hist_quote(got) : NULL;
      sb_printf(d, "  - %s: %s%s%s expected, got %s\n", where, ef[i].key, ef[i].contains ? "~=" : "=", q,
                g ? g : "(absent)");
      free(q);
      free(g);
      n++;
    }
  }
  for (size_t i = 0; i < anf; i++) {
    if (!af[i].value || lenient(kind, af[i].key))
      continue;
    bool mentioned = false;
    for (size_t j = 0; j < enf && !mentioned; j++)
      mentioned = strcmp(ef[j].key, af[i].key) == 0;
    if (!mentioned) {
      char *g = hist_quote(af[i].value);
      sb_printf(d, "  - %s: unexpected %s=%s\n", where, af[i].key, g);
      free(g);
      n++;
    }
  }
  return n;
}

char *hist_check(const hist *h, const OrchestratorResponse *resp)
{
  struct hist_arena *a = calloc(1, sizeof *a);
  if (!a)
    oom();
  struct sbuf d = {0};
  int diffs = 0;
  if (!h->has_expect) {
    sb_puts(&d, "  - the file has no expect section\n");
    diffs++;
  }
  size_t n = resp->n_actions < h->n_expect ? resp->n_actions : h->n_expect;
  for (size_t i = 0; i < n; i++) {
    const struct hist_expect *e = &h->expect[i];
    struct rendered r;
    render(a, resp->actions[i], &r);
    char where[160];
    snprintf(where, sizeof where, "action %zu (%s, line %d)", i + 1, e->kind, e->line);
    if (strcmp(e->kind, r.kind) != 0) {
      sb_printf(&d, "  - %s: got a %s instead\n", where, r.kind);
      diffs++;
      continue;
    }
    diffs += cmp_fields(&d, where, r.kind, e->f, e->nf, r.f, r.nf);
    if (strcmp(e->kind, "completeOrchestration") == 0) {
      if (e->ncarry != r.ncarry) {
        sb_printf(&d, "  - %s: %zu carryover events expected, got %zu\n", where, e->ncarry, r.ncarry);
        diffs++;
      }
      for (size_t k = 0; k < e->ncarry && k < r.ncarry; k++) {
        char w2[320];
        snprintf(w2, sizeof w2, "%s carryover %zu (line %d)", where, k + 1, e->carry[k].line);
        diffs += cmp_fields(&d, w2, "carryover", e->carry[k].f, e->carry[k].nf, r.carry[k].f, 2);
      }
    }
  }
  if (resp->n_actions != h->n_expect) {
    sb_printf(&d, "  - %zu actions expected, got %zu\n", h->n_expect, resp->n_actions);
    diffs++;
  }
  const char *cs = resp->customstatus ? resp->customstatus->value : NULL;
  if (!h->ignore_custom_status &&
      ((cs == NULL) != (h->custom_status == NULL) || (cs && strcmp(cs, h->custom_status) != 0))) {
    char *q1 = h->custom_status ? hist_quote(h->custom_status) : NULL;
    char *q2 = cs ? hist_quote(cs) : NULL;
    sb_printf(&d, "  - customStatus: expected %s, got %s\n", q1 ? q1 : "(none)", q2 ? q2 : "(none)");
    free(q1);
    free(q2);
    diffs++;
  }
  arena_free(a);
  if (!diffs) {
    free(d.p);
    return NULL;
  }
  struct sbuf out = {0};
  sb_printf(&out, "%s: %d difference(s) between the expected and the actual actions:\n%s", h->name, diffs,
            d.p ? d.p : "");
  free(d.p);
  sb_puts(&out, "expected:\n");
  for (size_t i = 0; i < h->n_expect; i++) {
    const struct hist_expect *e = &h->expect[i];
    sb_printf(&out, "  %s", e->kind);
    for (size_t k = 0; k < e->nf; k++) {
      char *q = hist_quote(e->f[k].value);
      sb_printf(&out, " %s%s%s", e->f[k].key, e->f[k].contains ? "~=" : "=", q);
      free(q);
    }
    sb_puts(&out, "\n");
    for (size_t c = 0; c < e->ncarry; c++) {
      sb_puts(&out, "  carryover");
      for (size_t k = 0; k < e->carry[c].nf; k++) {
        char *q = hist_quote(e->carry[c].f[k].value);
        sb_printf(&out, " %s=%s", e->carry[c].f[k].key, q);
        free(q);
      }
      sb_puts(&out, "\n");
    }
  }
  if (h->custom_status) {
    char *q = hist_quote(h->custom_status);
    sb_printf(&out, "  customStatus=%s\n", q);
    free(q);
  }
  sb_puts(&out, "got:\n");
  char *got = hist_format_response(resp);
  for (char *line = got, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    sb_printf(&out, "  %.*s\n", (int)(nl ? nl - line : (long)strlen(line)), line);
    if (!nl)
      break;
  }
  free(got);
  return sb_take(&out);
}
