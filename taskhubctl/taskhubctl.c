/*
 * taskhubctl — a command-line client for taskhubd, built on the C SDK (sdk-c/include/durabletask.h).
 *
 * argv -> struct ctl (one pass over the whole command line: global options are accepted anywhere, a
 * command's own options win over global ones of the same name) -> one cmd_* function. Every command prints
 * text for people or, with --output json, exactly one JSON document on stdout (errors included), and returns
 * one of the exit codes of ctl.h. The reference is taskhubctl.1; `taskhubctl help COMMAND` is generated from
 * the tables below.
 */
#include "ctl.h"
#include "migrate.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifndef TASKHUBCTL_VERSION
#define TASKHUBCTL_VERSION "unknown"
#endif

#define DEFAULT_ADDRESS "127.0.0.1:4001"
#define DEFAULT_INTERVAL_MS 500
#define EXCERPT_BYTES 60
#define MAX_TAGS 64
#define MAX_POS 3

/* ------------------------------------------------------------------ options */

enum opt_id {
  /* global */
  O_ADDRESS,
  O_OUTPUT,
  O_JSON,
  O_TIMEOUT,
  O_HELP,
  O_TOOL_VERSION,
  /* commands */
  O_STATUS,
  O_PREFIX,
  O_CREATED_AFTER,
  O_CREATED_BEFORE,
  O_PAGE_SIZE,
  O_ALL,
  O_CONTINUATION,
  O_PAYLOADS,
  O_ID,
  O_INPUT,
  O_INPUT_FILE,
  O_START_AT,
  O_VERSION,
  O_TAG,
  O_WAIT,
  O_DATA,
  O_REASON,
  O_TERM_OUTPUT,
  O_RECURSIVE,
  O_PURGE_STATUS,
  O_PURGE_RECURSIVE,
  O_YES,
  O_NEW_ID,
  O_INTERVAL,
  O_FROM,
  O_TO,
  O_BATCH,
  O_END = -1
};

struct optdef {
  int id;
  const char *name;    /* "--address" */
  char short_name;     /* 'a', or 0 */
  const char *metavar; /* NULL: a flag */
  const char *help;
};

static const struct optdef global_opts[] = {
    {O_ADDRESS, "--address", 'a', "HOST:PORT",
     "taskhubd's gRPC address, or unix:PATH (env TASKHUBD_ADDRESS; default " DEFAULT_ADDRESS ")"},
    {O_OUTPUT, "--output", 'o', "text|json",
     "output format (default text); json prints exactly one JSON document, errors included"},
    {O_JSON, "--json", 0, NULL, "the same as --output json"},
    {O_TIMEOUT, "--timeout-ms", 0, "MS",
     "deadline of each call (default 30000), and the longest start --wait and watch wait (default: no limit)"},
    {O_HELP, "--help", 'h', NULL, "show help: for the tool, or for the command it follows"},
    {O_TOOL_VERSION, "--version", 0, NULL, "print the version of taskhubctl (before a command only)"},
    {O_END, NULL, 0, NULL, NULL},
};

static const struct optdef cmd_opts[] = {
    {O_STATUS, "--status", 0, "STATUS",
     "only instances with this status (repeatable, or comma-separated): RUNNING, COMPLETED, CONTINUED_AS_NEW, "
     "FAILED, CANCELED, TERMINATED, PENDING, SUSPENDED"},
    {O_PREFIX, "--prefix", 0, "PREFIX", "only instances whose id starts with PREFIX"},
    {O_CREATED_AFTER, "--created-after", 0, "TIME", "only instances created at or after TIME (RFC 3339)"},
    {O_CREATED_BEFORE, "--created-before", 0, "TIME", "only instances created before TIME (RFC 3339)"},
    {O_PAGE_SIZE, "--page-size", 0, "N", "instances per page (default 100)"},
    {O_ALL, "--all", 0, NULL, "follow continuation tokens and print every page"},
    {O_CONTINUATION, "--continuation", 0, "TOKEN", "start at the page a previous list printed the token of"},
    {O_PAYLOADS, "--payloads", 0, NULL, "include inputs, outputs and custom status in full"},
    {O_ID, "--id", 0, "ID", "the instance id (default: a random 32-hex-digit id)"},
    {O_INPUT, "--input", 0, "JSON", "the orchestration input, a JSON value (e.g. '{\"n\":1}' or '\"text\"')"},
    {O_INPUT_FILE, "--input-file", 0, "FILE", "read the input (JSON) from FILE; - reads stdin"},
    {O_START_AT, "--start-at", 0, "TIME", "do not start before TIME (RFC 3339): a scheduled start"},
    {O_VERSION, "--version", 0, "VERSION", "the orchestration version"},
    {O_TAG, "--tag", 0, "KEY=VALUE", "a tag on the instance (repeatable)"},
    {O_WAIT, "--wait", 0, NULL,
     "wait for the instance to finish and print its final state (bounded by --timeout-ms)"},
    {O_DATA, "--data", 0, "JSON", "the event data, a JSON value"},
    {O_REASON, "--reason", 0, "TEXT", "a reason, recorded in the instance history"},
    {O_TERM_OUTPUT, "--output", 0, "JSON",
     "the output recorded for the terminated instance, a JSON value (use -o json for JSON output here)"},
    {O_RECURSIVE, "--recursive", 0, NULL, "terminate its sub-orchestrations too"},
    {O_PURGE_STATUS, "--status", 0, "STATUS",
     "only instances with this finished status (repeatable, or comma-separated): COMPLETED, FAILED, "
     "TERMINATED, CANCELED (default: all four)"},
    {O_PURGE_RECURSIVE, "--recursive", 0, NULL, "with ID: purge its finished sub-orchestrations too"},
    {O_YES, "--yes", 'y', NULL, "purge without asking for confirmation"},
    {O_NEW_ID, "--new-id", 0, NULL, "start the copy under a new random id (default: the same id)"},
    {O_INTERVAL, "--interval-ms", 0, "MS", "how often to poll the history (default 500)"},
    {O_FROM, "--from", 0, "rocksdb:DIR",
     "the RocksDB task hub to copy (taskhubd's --data-dir); taskhubd must be stopped"},
    {O_TO, "--to", 0, "STORE",
     "the PostgreSQL task hub to copy into, as taskhubd's --store takes it: postgresql://USER@HOST/DB or "
     "\"host=... dbname=...\"; the password comes from PGPASSWORD or a PGPASSFILE, never from here"},
    {O_BATCH, "--batch", 0, "N", "instances per change set written to the target (default 200, at most 10000)"},
    {O_END, NULL, 0, NULL, NULL},
};

static const struct optdef *opt_by_id(int id)
{
  for (const struct optdef *o = cmd_opts; o->name; o++)
    if (o->id == id)
      return o;
  for (const struct optdef *o = global_opts; o->name; o++)
    if (o->id == id)
      return o;
  return NULL;
}

/* ------------------------------------------------------------------ state */

struct ctl;
typedef int (*cmd_fn)(struct ctl *c);

struct command {
  const char *name;
  cmd_fn run;
  const char *args; /* positional synopsis */
  int min_pos, max_pos;
  const int *opts;  /* allowed command options, O_END-terminated */
  const char *summary;
  const char *description;
};

struct ctl {
  /* global */
  const char *address;
  bool json;
  int timeout_ms; /* 0: not given */
  bool help;
  bool tool_version;
  const struct command *cmd;
  const char *pos[MAX_POS];
  int npos;
  char err[512]; /* the first usage error, reported once the whole line is parsed */
  /* command options */
  dt_status statuses[16];
  size_t n_statuses;
  const char *prefix;
  int64_t created_after, created_before; /* 0: not given */
  int page_size;
  bool all, payloads, wait, recursive, yes, new_id;
  const char *continuation;
  const char *id, *input, *input_file, *version, *data, *reason, *term_output;
  int64_t start_at;
  dt_tag tags[MAX_TAGS];
  size_t n_tags;
  int interval_ms;
  const char *from, *to;
  int batch;
  dt_client *client;
};

/* ------------------------------------------------------------------ reporting */

static void error_doc(const struct ctl *c, const char *code, int exit_code, const char *msg, const char *iid)
{
  if (!c->json)
    return;
  json_object *e = json_object_new_object();
  json_object_object_add(e, "code", json_object_new_string(code));
  json_object_object_add(e, "exitCode", json_object_new_int(exit_code));
  json_object_object_add(e, "message", json_object_new_string(msg));
  if (iid)
    json_object_object_add(e, "instanceId", json_object_new_string(iid));
  json_object *doc = json_object_new_object();
  json_object_object_add(doc, "error", e);
  ctl_json_print(doc);
}

__attribute__((format(printf, 2, 3))) static int usage_error(const struct ctl *c, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "taskhubctl: %s\n", msg);
  if (c->cmd)
    fprintf(stderr, "Try 'taskhubctl help %s'.\n", c->cmd->name);
  else
    fprintf(stderr, "Try 'taskhubctl --help'.\n");
  error_doc(c, "USAGE", CTL_EXIT_USAGE, msg, NULL);
  return CTL_EXIT_USAGE;
}

/* Reports an SDK failure |rc| of an operation on |iid| (may be NULL); returns the exit code. */
__attribute__((format(printf, 4, 5))) static int fail(const struct ctl *c, int rc, const char *iid,
                                                      const char *fmt, ...)
{
  char what[384], msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  switch (rc) {
  case DT_ERR_NOT_FOUND:
    if (iid)
      snprintf(msg, sizeof msg, "%s: instance '%s' not found", what, iid);
    else
      snprintf(msg, sizeof msg, "%s: not found", what);
    break;
  case DT_ERR_UNAVAILABLE:
    snprintf(msg, sizeof msg, "%s: taskhubd at %s is unavailable (%s)", what, c->address, dt_strerror(rc));
    break;
  case DT_ERR_TIMEOUT: snprintf(msg, sizeof msg, "%s: timed out (%s)", what, dt_strerror(rc)); break;
  default: snprintf(msg, sizeof msg, "%s: %s", what, dt_strerror(rc)); break;
  }
  fprintf(stderr, "taskhubctl: %s\n", msg);
  int ex = ctl_exit_for(rc);
  error_doc(c, ctl_code_name(rc), ex, msg, iid);
  return ex;
}

/* A simple acknowledgement: text line or {"instanceId", "operation"} plus extras added by the caller. */
static json_object *ack_doc(const char *iid, const char *operation)
{
  json_object *doc = json_object_new_object();
  json_object_object_add(doc, "instanceId", ctl_json_str(iid));
  json_object_object_add(doc, "operation", json_object_new_string(operation));
  return doc;
}

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ text rendering */

static const char *payload_label(const char *type)
{
  static const struct {
    const char *type, *label;
  } map[] = {
      {"ExecutionStarted", "input"},     {"TaskScheduled", "input"},
      {"SubOrchestrationInstanceCreated", "input"}, {"ContinueAsNew", "input"},
      {"TaskCompleted", "result"},       {"SubOrchestrationInstanceCompleted", "result"},
      {"ExecutionCompleted", "output"},  {"ExecutionTerminated", "output"},
      {"EventRaised", "data"},           {"EventSent", "data"},
      {"GenericEvent", "data"},          {"ExecutionSuspended", "reason"},
      {"ExecutionResumed", "reason"},    {"ExecutionRewound", "reason"},
      {"EntityOperationCompleted", "output"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (type && strcmp(map[i].type, type) == 0)
      return map[i].label;
  return "payload";
}

static void print_failure_text(FILE *f, const dt_failure *fl, size_t max)
{
  fputs(fl->error_type ? fl->error_type : "Error", f);
  fputs(": ", f);
  ctl_print_excerpt(f, fl->message ? fl->message : "", max);
}

/* One timeline line: offset, event id, type, then what the event carries. */
static void print_event(FILE *f, const dt_event *e, int64_t t0, bool full)
{
  char off[32], id[16], ts[48];
  size_t max = full ? 0 : EXCERPT_BYTES;
  ctl_format_offset(e->timestamp_ms - t0, off, sizeof off);
  if (e->event_id >= 0)
    snprintf(id, sizeof id, "#%d", (int)e->event_id);
  else
    snprintf(id, sizeof id, "-");
  bool completed = e->type && strcmp(e->type, "ExecutionCompleted") == 0;
  bool details = e->name || e->instance_id || e->task_id >= 0 || e->fire_at_ms || completed || e->payload ||
                 e->failure;
  fprintf(f, "  %-11s %-5s %-*s", off, id, details ? 34 : 0, e->type ? e->type : "?");
  if (e->name)
    fprintf(f, " name=%s", e->name);
  if (e->instance_id)
    fprintf(f, " instance=%s", e->instance_id);
  if (e->task_id >= 0)
    fprintf(f, " task=%d", (int)e->task_id);
  if (e->fire_at_ms) {
    char rel[32];
    fprintf(f, " fireAt=%s (%s)", ctl_format_time(e->fire_at_ms, ts, sizeof ts),
            ctl_format_offset(e->fire_at_ms - t0, rel, sizeof rel));
  }
  if (completed)
    fprintf(f, " status=%s", dt_status_name(e->status));
  if (e->payload) {
    fprintf(f, " %s=", payload_label(e->type));
    ctl_print_excerpt(f, e->payload, max);
  }
  if (e->failure) {
    fputs(" failure=", f);
    print_failure_text(f, e->failure, max);
  }
  fputc('\n', f);
}

static void print_field(const char *label, const char *value)
{
  printf("%-17s%s\n", label, value);
}

static void print_payload_field(const char *label, const char *value, bool full)
{
  printf("%-17s", label);
  ctl_print_excerpt(stdout, value, full ? 0 : EXCERPT_BYTES);
  fputc('\n', stdout);
}

static void print_instance_text(const dt_instance *in, bool full)
{
  char ts[48];
  print_field("Instance:", in->instance_id);
  print_field("Name:", in->name ? in->name : "");
  if (in->version)
    print_field("Version:", in->version);
  print_field("Status:", dt_status_name(in->status));
  if (in->execution_id)
    print_field("Execution:", in->execution_id);
  print_field("Created:", ctl_format_time(in->created_ms, ts, sizeof ts));
  print_field("Last updated:", ctl_format_time(in->last_updated_ms, ts, sizeof ts));
  if (in->completed_ms)
    print_field("Completed:", ctl_format_time(in->completed_ms, ts, sizeof ts));
  if (in->scheduled_start_ms)
    print_field("Scheduled start:", ctl_format_time(in->scheduled_start_ms, ts, sizeof ts));
  if (in->parent_instance_id)
    print_field("Parent:", in->parent_instance_id);
  if (in->n_tags > 0) {
    printf("%-17s", "Tags:");
    for (size_t i = 0; i < in->n_tags; i++)
      printf("%s%s=%s", i ? ", " : "", in->tags[i].key, in->tags[i].value ? in->tags[i].value : "");
    fputc('\n', stdout);
  }
  if (in->input)
    print_payload_field("Input:", in->input, full);
  if (in->output)
    print_payload_field("Output:", in->output, full);
  if (in->custom_status)
    print_payload_field("Custom status:", in->custom_status, full);
  if (in->failure) {
    printf("%-17s", "Failure:");
    print_failure_text(stdout, in->failure, full ? 0 : 200);
    fputc('\n', stdout);
    if (full && in->failure->stack_trace) {
      printf("%-17s", "Stack trace:");
      ctl_print_excerpt(stdout, in->failure->stack_trace, 0);
      fputc('\n', stdout);
    }
  }
}

/* The time a timeline counts from: the earliest event (ExecutionStarted may be older than the
 * OrchestratorStarted before it), else the creation time. */
static int64_t timeline_t0(const dt_instance *in, const dt_history *h)
{
  int64_t t0 = 0;
  for (size_t i = 0; h && i < h->n; i++)
    if (h->events[i].timestamp_ms && (!t0 || h->events[i].timestamp_ms < t0))
      t0 = h->events[i].timestamp_ms;
  return t0 ? t0 : in ? in->created_ms : 0;
}

static json_object *history_json(const dt_history *h, int64_t t0)
{
  json_object *arr = json_object_new_array();
  for (size_t i = 0; h && i < h->n; i++)
    json_object_array_add(arr, ctl_json_event(&h->events[i], t0));
  return arr;
}

/* ------------------------------------------------------------------ shared operations */

/* Waits until |iid| has finished (COMPLETED, FAILED, TERMINATED, CANCELED), within --timeout-ms when given.
 * The server caps each wait; without a deadline the wait is simply renewed. */
static int wait_final(struct ctl *c, const char *iid, dt_instance **out)
{
  int64_t deadline = c->timeout_ms > 0 ? mono_ms() + c->timeout_ms : 0;
  for (;;) {
    int t = 0;
    if (deadline) {
      int64_t left = deadline - mono_ms();
      if (left <= 0)
        return DT_ERR_TIMEOUT;
      t = (int)left;
    }
    dt_instance *in = NULL;
    int rc = dt_client_wait_completion(c->client, iid, t, true, &in);
    if (rc == DT_ERR_TIMEOUT)
      continue;
    if (rc != DT_OK)
      return rc;
    if (ctl_status_is_final(in->status)) {
      *out = in;
      return DT_OK;
    }
    dt_instance_free(in);
  }
}

/* Exit code of a finished instance: 0 for COMPLETED, 1 for any other end. */
static int exit_for_final(const dt_instance *in)
{
  return in->status == DT_STATUS_COMPLETED ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

static void print_final_text(const dt_instance *in)
{
  printf("%s %s\n", in->instance_id, dt_status_name(in->status));
  if (in->output) {
    fputs("output: ", stdout);
    ctl_print_excerpt(stdout, in->output, 0);
    fputc('\n', stdout);
  }
  if (in->failure) {
    fputs("failure: ", stdout);
    print_failure_text(stdout, in->failure, 0);
    fputc('\n', stdout);
  }
}

/* ------------------------------------------------------------------ list */

static int cmd_list(struct ctl *c)
{
  dt_query q = {
      .statuses = c->statuses,
      .n_statuses = c->n_statuses,
      .created_from_ms = c->created_after,
      .created_to_ms = c->created_before,
      .instance_id_prefix = c->prefix,
      .page_size = c->page_size,
      .payloads = c->payloads,
      .continuation = c->continuation,
  };
  dt_instance_page **pages = NULL;
  size_t n_pages = 0, total = 0;
  int rc = DT_OK, ex = CTL_EXIT_OK;
  for (;;) {
    dt_instance_page *p = NULL;
    rc = dt_client_query(c->client, &q, &p);
    if (rc != DT_OK) {
      ex = fail(c, rc, NULL, "list");
      goto done;
    }
    dt_instance_page **np = realloc(pages, (n_pages + 1) * sizeof *np);
    if (!np) {
      dt_instance_page_free(p);
      ex = fail(c, DT_ERR_NOMEM, NULL, "list");
      goto done;
    }
    pages = np;
    pages[n_pages++] = p;
    total += p->n;
    if (!c->all || !p->continuation)
      break;
    q.continuation = p->continuation;
  }
  const char *next = pages[n_pages - 1]->continuation;

  if (c->json) {
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n_pages; i++)
      for (size_t j = 0; j < pages[i]->n; j++)
        json_object_array_add(arr, ctl_json_instance(pages[i]->instances[j]));
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "instances", arr);
    json_object_object_add(doc, "count", json_object_new_int64((int64_t)total));
    json_object_object_add(doc, "continuationToken", ctl_json_str(next));
    ctl_json_print(doc);
    goto done;
  }

  int wid = (int)strlen("INSTANCE ID"), wname = (int)strlen("NAME"), wst = (int)strlen("CONTINUED_AS_NEW");
  for (size_t i = 0; i < n_pages; i++) {
    for (size_t j = 0; j < pages[i]->n; j++) {
      const dt_instance *in = pages[i]->instances[j];
      int l = (int)strlen(in->instance_id);
      wid = l > wid ? l : wid;
      l = in->name ? (int)strlen(in->name) : 0;
      wname = l > wname ? l : wname;
    }
  }
  if (total == 0) {
    printf("no instances\n");
  } else {
    printf("%-*s  %-*s  %-*s  %-24s  %s\n", wid, "INSTANCE ID", wname, "NAME", wst, "STATUS", "CREATED",
           "LAST UPDATED");
    for (size_t i = 0; i < n_pages; i++) {
      for (size_t j = 0; j < pages[i]->n; j++) {
        const dt_instance *in = pages[i]->instances[j];
        char t1[48], t2[48];
        printf("%-*s  %-*s  %-*s  %-24s  %s\n", wid, in->instance_id, wname, in->name ? in->name : "", wst,
               dt_status_name(in->status), ctl_format_time(in->created_ms, t1, sizeof t1),
               ctl_format_time(in->last_updated_ms, t2, sizeof t2));
        if (c->payloads) {
          if (in->input) {
            fputs("    input: ", stdout);
            ctl_print_excerpt(stdout, in->input, 0);
            fputc('\n', stdout);
          }
          if (in->output) {
            fputs("    output: ", stdout);
            ctl_print_excerpt(stdout, in->output, 0);
            fputc('\n', stdout);
          }
          if (in->custom_status) {
            fputs("    custom status: ", stdout);
            ctl_print_excerpt(stdout, in->custom_status, 0);
            fputc('\n', stdout);
          }
          if (in->failure) {
            fputs("    failure: ", stdout);
            print_failure_text(stdout, in->failure, 0);
            fputc('\n', stdout);
          }
        }
      }
    }
  }
  if (next)
    printf("more instances: continue with --continuation %s\n", next);
done:
  for (size_t i = 0; i < n_pages; i++)
    dt_instance_page_free(pages[i]);
  free(pages);
  return ex;
}

/* ------------------------------------------------------------------ show */

static int cmd_show(struct ctl *c)
{
  const char *iid = c->pos[0];
  dt_instance *in = NULL;
  dt_history *h = NULL;
  int rc = dt_client_get(c->client, iid, true, &in);
  if (rc != DT_OK)
    return fail(c, rc, iid, "show");
  rc = dt_client_history(c->client, iid, &h);
  if (rc != DT_OK) {
    dt_instance_free(in);
    return fail(c, rc, iid, "show (history)");
  }
  int64_t t0 = timeline_t0(in, h);
  if (c->json) {
    json_object *doc = ctl_json_instance(in);
    json_object_object_add(doc, "history", history_json(h, t0));
    ctl_json_print(doc);
  } else {
    print_instance_text(in, c->payloads);
    char ts[48];
    if (h->n == 0) {
      printf("\nHistory: no events yet\n");
    } else {
      printf("\nHistory (%zu events, times relative to %s):\n", h->n, ctl_format_time(t0, ts, sizeof ts));
      for (size_t i = 0; i < h->n; i++)
        print_event(stdout, &h->events[i], t0, c->payloads);
    }
  }
  dt_history_free(h);
  dt_instance_free(in);
  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ start */

/* Reads |path| ("-": stdin) into a malloc()ed string without trailing whitespace; NULL with errno on failure. */
static char *read_file(const char *path)
{
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n + 1 >= cap) {
      char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        errno = ENOMEM;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) {
      if (ferror(f)) {
        int e = errno;
        free(buf);
        buf = NULL;
        errno = e ? e : EIO;
      }
      break;
    }
  }
  if (f != stdin)
    fclose(f);
  if (!buf)
    return NULL;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    n--;
  buf[n] = '\0';
  if (strlen(buf) != n) {
    free(buf);
    errno = EINVAL; /* an embedded NUL: payloads are C strings */
    return NULL;
  }
  return buf;
}

static int cmd_start(struct ctl *c)
{
  const char *name = c->pos[0];
  char *file_input = NULL;
  const char *input = c->input;
  if (c->input_file) {
    file_input = read_file(c->input_file);
    if (!file_input) {
      int e = errno;
      return usage_error(c, "cannot read --input-file %s: %s", c->input_file, strerror(e));
    }
    if (!ctl_is_json(file_input)) {
      free(file_input);
      return usage_error(c, "--input-file %s does not hold one JSON value", c->input_file);
    }
    input = file_input;
  }
  dt_start_options o = {
      .instance_id = c->id,
      .input = input,
      .start_at_ms = c->start_at,
      .version = c->version,
      .tags = c->tags,
      .n_tags = c->n_tags,
  };
  char *iid = NULL;
  int rc = dt_client_schedule(c->client, name, &o, &iid);
  free(file_input);
  if (rc != DT_OK) {
    if (rc == DT_ERR_EXISTS) {
      char msg[512];
      snprintf(msg, sizeof msg, "start: instance '%s' already exists", c->id ? c->id : "?");
      fprintf(stderr, "taskhubctl: %s\n", msg);
      error_doc(c, ctl_code_name(rc), CTL_EXIT_STATE, msg, c->id);
      return CTL_EXIT_STATE;
    }
    return fail(c, rc, c->id, "start %s", name);
  }
  if (!c->wait) {
    if (c->json) {
      json_object *doc = ack_doc(iid, "start");
      json_object_object_add(doc, "name", json_object_new_string(name));
      ctl_json_print(doc);
    } else {
      printf("%s\n", iid);
    }
    dt_free(iid);
    return CTL_EXIT_OK;
  }
  if (!c->json)
    fprintf(stderr, "started %s; waiting for it to finish\n", iid);
  dt_instance *in = NULL;
  rc = wait_final(c, iid, &in);
  if (rc != DT_OK) {
    int ex = fail(c, rc, iid, "start --wait: waiting for %s", iid);
    dt_free(iid);
    return ex;
  }
  dt_free(iid);
  if (c->json)
    ctl_json_print(ctl_json_instance(in));
  else
    print_final_text(in);
  int ex = exit_for_final(in);
  dt_instance_free(in);
  return ex;
}

/* ------------------------------------------------------------------ instance operations */

/*
 * taskhubd accepts raise, suspend, resume and terminate for an instance that has finished and does nothing, so
 * that "terminated X" would be printed for an instance that had completed long ago. Refuse those up front
 * (exit 4) and say what state the instance is in. Returns -1 to go on, else the exit code.
 */
static int refuse_finished(struct ctl *c, const char *iid, const char *verb)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(c->client, iid, false, &in);
  if (rc != DT_OK)
    return fail(c, rc, iid, "%s", verb);
  dt_status st = in->status;
  dt_instance_free(in);
  if (!ctl_status_is_final(st))
    return -1;
  char msg[512];
  snprintf(msg, sizeof msg, "%s: instance '%s' has already finished (%s)", verb, iid, dt_status_name(st));
  fprintf(stderr, "taskhubctl: %s\n", msg);
  error_doc(c, ctl_code_name(DT_ERR_STATE), CTL_EXIT_STATE, msg, iid);
  return CTL_EXIT_STATE;
}

static int finish_ack(struct ctl *c, const char *iid, const char *operation, const char *text)
{
  if (c->json)
    ctl_json_print(ack_doc(iid, operation));
  else
    printf("%s\n", text);
  return CTL_EXIT_OK;
}

static int cmd_raise(struct ctl *c)
{
  const char *iid = c->pos[0], *ev = c->pos[1];
  int ex = refuse_finished(c, iid, "raise");
  if (ex >= 0)
    return ex;
  int rc = dt_client_raise_event(c->client, iid, ev, c->data);
  if (rc != DT_OK)
    return fail(c, rc, iid, "raise %s", ev);
  if (c->json) {
    json_object *doc = ack_doc(iid, "raise");
    json_object_object_add(doc, "event", json_object_new_string(ev));
    ctl_json_print(doc);
  } else {
    printf("raised event %s on %s\n", ev, iid);
  }
  return CTL_EXIT_OK;
}

/* suspend, resume and terminate: refuse a finished instance, make the call, acknowledge "<past> <id><suffix>". */
static int act_on_live(struct ctl *c, const char *verb, const char *past, const char *suffix,
                       int (*call)(struct ctl *c, const char *iid))
{
  const char *iid = c->pos[0];
  int ex = refuse_finished(c, iid, verb);
  if (ex >= 0)
    return ex;
  int rc = call(c, iid);
  if (rc != DT_OK)
    return fail(c, rc, iid, "%s", verb);
  char text[320];
  snprintf(text, sizeof text, "%s %s%s", past, iid, suffix);
  return finish_ack(c, iid, verb, text);
}

static int call_suspend(struct ctl *c, const char *iid)
{
  return dt_client_suspend(c->client, iid, c->reason);
}

static int call_resume(struct ctl *c, const char *iid)
{
  return dt_client_resume(c->client, iid, c->reason);
}

static int call_terminate(struct ctl *c, const char *iid)
{
  return dt_client_terminate(c->client, iid, c->term_output, c->recursive);
}

static int cmd_suspend(struct ctl *c)
{
  return act_on_live(c, "suspend", "suspended", "", call_suspend);
}

static int cmd_resume(struct ctl *c)
{
  return act_on_live(c, "resume", "resumed", "", call_resume);
}

static int cmd_terminate(struct ctl *c)
{
  return act_on_live(c, "terminate", "terminated", c->recursive ? " and its sub-orchestrations" : "", call_terminate);
}

static int cmd_rewind(struct ctl *c)
{
  const char *iid = c->pos[0];
  int rc = dt_client_rewind(c->client, iid, c->reason);
  if (rc == DT_ERR_STATE) {
    /* Say what state it is in: rewind applies to FAILED instances only. */
    dt_instance *in = NULL;
    if (dt_client_get(c->client, iid, false, &in) == DT_OK) {
      char msg[512];
      snprintf(msg, sizeof msg, "rewind: instance '%s' is %s; only FAILED instances can be rewound", iid,
               dt_status_name(in->status));
      dt_instance_free(in);
      fprintf(stderr, "taskhubctl: %s\n", msg);
      error_doc(c, ctl_code_name(rc), CTL_EXIT_STATE, msg, iid);
      return CTL_EXIT_STATE;
    }
  }
  if (rc != DT_OK)
    return fail(c, rc, iid, "rewind");
  char text[320];
  snprintf(text, sizeof text, "rewound %s", iid);
  return finish_ack(c, iid, "rewind", text);
}

static int cmd_restart(struct ctl *c)
{
  const char *iid = c->pos[0];
  char *nid = NULL;
  int rc = dt_client_restart(c->client, iid, c->new_id, &nid);
  if (rc != DT_OK)
    return fail(c, rc, iid, "restart");
  if (c->json) {
    json_object *doc = ack_doc(nid, "restart");
    json_object_object_add(doc, "restartedFrom", json_object_new_string(iid));
    ctl_json_print(doc);
  } else {
    printf("%s\n", nid);
  }
  dt_free(nid);
  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ purge */

static int purge_one(struct ctl *c)
{
  const char *iid = c->pos[0];
  int deleted = 0;
  int rc = dt_client_purge(c->client, iid, c->recursive, &deleted);
  if (rc != DT_OK)
    return fail(c, rc, iid, "purge");
  if (deleted == 0) {
    /* Unknown, or not finished: the server does not say which, so ask. */
    dt_instance *in = NULL;
    rc = dt_client_get(c->client, iid, false, &in);
    if (rc != DT_OK)
      return fail(c, rc, iid, "purge");
    char msg[512];
    snprintf(msg, sizeof msg, "purge: instance '%s' is %s; only finished instances can be purged", iid,
             dt_status_name(in->status));
    dt_instance_free(in);
    fprintf(stderr, "taskhubctl: %s\n", msg);
    error_doc(c, ctl_code_name(DT_ERR_STATE), CTL_EXIT_STATE, msg, iid);
    return CTL_EXIT_STATE;
  }
  if (c->json) {
    json_object *doc = ack_doc(iid, "purge");
    json_object_object_add(doc, "deleted", json_object_new_int(deleted));
    ctl_json_print(doc);
  } else {
    printf("purged %s (%d instance%s)\n", iid, deleted, deleted == 1 ? "" : "s");
  }
  return CTL_EXIT_OK;
}

/* Describes the filter for the confirmation prompt. */
static void describe_filter(const struct ctl *c, char *buf, size_t cap)
{
  size_t n = 0;
  char ts[48];
  buf[0] = '\0';
  if (c->n_statuses > 0) {
    n += (size_t)snprintf(buf + n, cap - n, "status ");
    for (size_t i = 0; i < c->n_statuses && n < cap; i++)
      n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "|" : "", dt_status_name(c->statuses[i]));
  } else {
    n += (size_t)snprintf(buf + n, cap - n, "any finished status");
  }
  if (c->created_after && n < cap)
    n += (size_t)snprintf(buf + n, cap - n, ", created at or after %s",
                          ctl_format_time(c->created_after, ts, sizeof ts));
  if (c->created_before && n < cap)
    snprintf(buf + n, cap - n, ", created before %s", ctl_format_time(c->created_before, ts, sizeof ts));
}

/* Asks on the terminal; true for y/yes. */
static bool confirm(const char *question)
{
  fprintf(stderr, "%s [y/N] ", question);
  fflush(stderr);
  char line[64];
  if (!fgets(line, sizeof line, stdin))
    return false;
  size_t n = strcspn(line, "\r\n");
  line[n] = '\0';
  return strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0;
}

static int purge_filter(struct ctl *c)
{
  static const dt_status finished[] = {DT_STATUS_COMPLETED, DT_STATUS_FAILED, DT_STATUS_TERMINATED,
                                       DT_STATUS_CANCELED};
  /* Count what the filter matches first, to say how many instances the confirmation is about. */
  dt_query q = {
      .statuses = c->n_statuses ? c->statuses : finished,
      .n_statuses = c->n_statuses ? c->n_statuses : sizeof finished / sizeof finished[0],
      .created_from_ms = c->created_after,
      .created_to_ms = c->created_before,
      .page_size = 500,
  };
  size_t matched = 0;
  char *token = NULL;
  for (;;) {
    dt_instance_page *p = NULL;
    int rc = dt_client_query(c->client, &q, &p);
    if (rc != DT_OK) {
      free(token);
      return fail(c, rc, NULL, "purge (counting matches)");
    }
    matched += p->n;
    free(token);
    token = p->continuation ? strdup(p->continuation) : NULL;
    bool more = p->continuation != NULL;
    dt_instance_page_free(p);
    if (!more)
      break;
    if (!token)
      return fail(c, DT_ERR_NOMEM, NULL, "purge (counting matches)");
    q.continuation = token;
  }
  char desc[512];
  describe_filter(c, desc, sizeof desc);
  if (matched == 0) {
    if (c->json) {
      json_object *doc = json_object_new_object();
      json_object_object_add(doc, "operation", json_object_new_string("purge"));
      json_object_object_add(doc, "matched", json_object_new_int(0));
      json_object_object_add(doc, "deleted", json_object_new_int(0));
      json_object_object_add(doc, "complete", json_object_new_boolean(1));
      ctl_json_print(doc);
    } else {
      printf("nothing to purge: no finished instance matches %s\n", desc);
    }
    return CTL_EXIT_OK;
  }
  if (!c->yes) {
    if (!isatty(STDIN_FILENO))
      return usage_error(c, "refusing to purge %zu instance%s (%s) without confirmation: stdin is not a "
                            "terminal; pass --yes to purge anyway",
                         matched, matched == 1 ? "" : "s", desc);
    char question[640];
    snprintf(question, sizeof question, "Purge %zu instance%s (%s)? This cannot be undone.", matched,
             matched == 1 ? "" : "s", desc);
    if (!confirm(question)) {
      char msg[] = "purge: not confirmed; nothing was purged";
      fprintf(stderr, "taskhubctl: %s\n", msg);
      error_doc(c, "ABORTED", CTL_EXIT_FAILED, msg, NULL);
      return CTL_EXIT_FAILED;
    }
  }
  dt_purge_filter f = {
      .created_from_ms = c->created_after,
      .created_to_ms = c->created_before,
      .statuses = c->statuses,
      .n_statuses = c->n_statuses,
  };
  long long total = 0;
  bool complete = false;
  /* The server may stop early (a time budget per call); go on until it says it is done. */
  for (int round = 0; round < 100000 && !complete; round++) {
    int deleted = 0;
    int rc = dt_client_purge_filter(c->client, &f, &deleted, &complete);
    if (rc != DT_OK) {
      if (total > 0)
        fprintf(stderr, "taskhubctl: %lld instances were purged before the error\n", total);
      return fail(c, rc, NULL, "purge");
    }
    total += deleted;
  }
  if (c->json) {
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "operation", json_object_new_string("purge"));
    json_object_object_add(doc, "matched", json_object_new_int64((int64_t)matched));
    json_object_object_add(doc, "deleted", json_object_new_int64(total));
    json_object_object_add(doc, "complete", json_object_new_boolean(complete));
    ctl_json_print(doc);
  } else {
    printf("purged %lld instance%s\n", total, total == 1 ? "" : "s");
  }
  return complete ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

static int cmd_purge(struct ctl *c)
{
  bool filter = c->n_statuses > 0 || c->created_after || c->created_before;
  if (c->npos == 1) {
    if (filter)
      return usage_error(c, "purge takes an instance id or a filter (--status, --created-after, "
                            "--created-before), not both");
    return purge_one(c);
  }
  if (!filter)
    return usage_error(c, "purge needs an instance id or a filter (--status, --created-after, --created-before)");
  if (c->recursive)
    return usage_error(c, "--recursive applies to purging one instance by id");
  for (size_t i = 0; i < c->n_statuses; i++)
    if (!ctl_status_is_final(c->statuses[i]))
      return usage_error(c, "purge --status %s: only finished instances (COMPLETED, FAILED, TERMINATED, "
                            "CANCELED) can be purged",
                         dt_status_name(c->statuses[i]));
  return purge_filter(c);
}

/* ------------------------------------------------------------------ watch */

struct seen {
  char *type;
  int64_t ts;
  int32_t id;
};

static bool same_event(const struct seen *s, const dt_event *e)
{
  return s->ts == e->timestamp_ms && s->id == e->event_id && strcmp(s->type, e->type ? e->type : "") == 0;
}

static void seen_free(struct seen *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(s[i].type);
  free(s);
}

static bool str_differs(const char *a, const char *b)
{
  if (!a || !b)
    return a != b;
  return strcmp(a, b) != 0;
}

/* A watch line that is not an event: the time it was seen (relative to |t0|, like the events), then text. */
__attribute__((format(printf, 2, 3))) static void note(int64_t t0, const char *fmt, ...)
{
  char off[32];
  printf("  %-11s ", ctl_format_offset(wall_ms() - t0, off, sizeof off));
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
}

static int cmd_watch(struct ctl *c)
{
  const char *iid = c->pos[0];
  int interval = c->interval_ms > 0 ? c->interval_ms : DEFAULT_INTERVAL_MS;
  int64_t deadline = c->timeout_ms > 0 ? mono_ms() + c->timeout_ms : 0;
  struct seen *seen = NULL;
  size_t n_seen = 0;
  char *exec_id = NULL, *custom = NULL;
  int last_status = -1;
  int64_t t0 = 0;
  int ex = CTL_EXIT_OK;
  dt_instance *in = NULL;
  dt_history *h = NULL;
  bool first = true;

  for (;;) {
    int rc = dt_client_get(c->client, iid, true, &in);
    if (rc == DT_OK)
      rc = dt_client_history(c->client, iid, &h);
    if (rc != DT_OK) {
      ex = fail(c, rc, iid, first ? "watch" : "watch (while following)");
      goto done;
    }
    if (first) {
      t0 = timeline_t0(in, h);
      if (!c->json) {
        char ts[48];
        printf("watching %s (%s); times relative to %s\n", iid, in->name ? in->name : "",
               ctl_format_time(t0, ts, sizeof ts));
      }
    }
    first = false;
    if (!c->json) {
      if (str_differs(exec_id, in->execution_id)) {
        if (exec_id)
          note(t0, "new execution %s\n", in->execution_id ? in->execution_id : "");
        free(exec_id);
        exec_id = in->execution_id ? strdup(in->execution_id) : NULL;
      }
      /* New events first (what happened), then the state they led to. New events are those after the
       * longest prefix that is unchanged: a rewind or a new execution rewrites the history. */
      size_t keep = 0;
      while (keep < n_seen && keep < h->n && same_event(&seen[keep], &h->events[keep]))
        keep++;
      if (keep < n_seen)
        note(t0, "history rewritten: %zu event%s replaced\n", n_seen - keep, n_seen - keep == 1 ? "" : "s");
      seen_free(seen, n_seen);
      seen = calloc(h->n ? h->n : 1, sizeof *seen);
      n_seen = 0;
      if (!seen) {
        ex = fail(c, DT_ERR_NOMEM, iid, "watch");
        goto done;
      }
      for (size_t i = 0; i < h->n; i++) {
        if (i >= keep)
          print_event(stdout, &h->events[i], t0, c->payloads);
        seen[i].type = strdup(h->events[i].type ? h->events[i].type : "");
        seen[i].ts = h->events[i].timestamp_ms;
        seen[i].id = h->events[i].event_id;
        n_seen++;
      }
      if ((int)in->status != last_status) {
        if (last_status < 0)
          note(t0, "status %s\n", dt_status_name(in->status));
        else
          note(t0, "status %s -> %s\n", dt_status_name((dt_status)last_status), dt_status_name(in->status));
        last_status = (int)in->status;
      }
      if (str_differs(custom, in->custom_status)) {
        note(t0, "custom status ");
        ctl_print_excerpt(stdout, in->custom_status, c->payloads ? 0 : EXCERPT_BYTES);
        fputc('\n', stdout);
        free(custom);
        custom = in->custom_status ? strdup(in->custom_status) : NULL;
      }
      fflush(stdout);
    }
    if (ctl_status_is_final(in->status)) {
      if (c->json) {
        json_object *doc = ctl_json_instance(in);
        json_object_object_add(doc, "history", history_json(h, t0));
        ctl_json_print(doc);
      } else {
        printf("finished: %s %s\n", iid, dt_status_name(in->status));
        if (in->output) {
          fputs("output: ", stdout);
          ctl_print_excerpt(stdout, in->output, 0);
          fputc('\n', stdout);
        }
        if (in->failure) {
          fputs("failure: ", stdout);
          print_failure_text(stdout, in->failure, 0);
          fputc('\n', stdout);
        }
      }
      ex = exit_for_final(in);
      goto done;
    }
    dt_instance_free(in);
    in = NULL;
    dt_history_free(h);
    h = NULL;

    /* Sleep by waiting for completion: returns at once when the instance finishes. */
    int t = interval;
    if (deadline) {
      int64_t left = deadline - mono_ms();
      if (left <= 0) {
        ex = fail(c, DT_ERR_TIMEOUT, iid, "watch: %s did not finish within --timeout-ms %d", iid, c->timeout_ms);
        goto done;
      }
      t = left < t ? (int)left : t;
    }
    dt_instance *w = NULL;
    rc = dt_client_wait_completion(c->client, iid, t, false, &w);
    dt_instance_free(w);
    if (rc != DT_OK && rc != DT_ERR_TIMEOUT) {
      ex = fail(c, rc, iid, "watch (while following)");
      goto done;
    }
  }
done:
  dt_instance_free(in);
  dt_history_free(h);
  seen_free(seen, n_seen);
  free(exec_id);
  free(custom);
  return ex;
}

/* ------------------------------------------------------------------ migrate */

static int cmd_migrate(struct ctl *c)
{
  if (!c->from || !c->to)
    return usage_error(c, "migrate needs --from rocksdb:DIR and --to STORE");
  struct ctl_migrate_opts o = {.from = c->from,
                               .to = c->to,
                               .batch = c->batch ? c->batch : CTL_MIGRATE_DEFAULT_BATCH,
                               .progress = true};
  struct ctl_migrate_result r;
  int ex = ctl_migrate(&o, &r);
  if (ex == CTL_EXIT_USAGE)
    return usage_error(c, "%s", r.msg);
  if (ex != CTL_EXIT_OK) {
    fprintf(stderr, "taskhubctl: migrate: %s\n", r.msg);
    error_doc(c, ex == CTL_EXIT_STATE ? "WRONG_STATE" : ex == CTL_EXIT_UNAVAIL ? "UNAVAILABLE" : "FAILED", ex, r.msg,
              NULL);
    return ex;
  }
  if (c->json) {
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "instances", json_object_new_int64((int64_t)r.instances));
    json_object_object_add(doc, "historyEvents", json_object_new_int64((int64_t)r.history_events));
    json_object_object_add(doc, "inboxMessages", json_object_new_int64((int64_t)r.inbox_messages));
    json_object_object_add(doc, "payloads", json_object_new_int64((int64_t)r.payloads));
    json_object_object_add(doc, "timers", json_object_new_int64((int64_t)r.timers));
    json_object_object_add(doc, "activities", json_object_new_int64((int64_t)r.activities));
    json_object_object_add(doc, "nextSequence", json_object_new_int64((int64_t)r.next_seq));
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", r.copy_s);
    json_object_object_add(doc, "copySeconds", json_object_new_double_s(r.copy_s, secs));
    snprintf(secs, sizeof secs, "%.3f", r.verify_s);
    json_object_object_add(doc, "verifySeconds", json_object_new_double_s(r.verify_s, secs));
    json_object_object_add(doc, "verified", json_object_new_boolean(1));
    ctl_json_print(doc);
  } else {
    printf("migrated %llu instances, %llu history events, %llu inbox messages, %llu timers, %llu activities in "
           "%.1f s; verified in %.1f s\n",
           (unsigned long long)r.instances, (unsigned long long)r.history_events,
           (unsigned long long)r.inbox_messages, (unsigned long long)r.timers, (unsigned long long)r.activities,
           r.copy_s, r.verify_s);
  }
  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ commands */

static int cmd_help(struct ctl *c);

static const int list_opts[] = {O_STATUS, O_PREFIX,     O_CREATED_AFTER, O_CREATED_BEFORE, O_PAGE_SIZE,
                                O_ALL,    O_CONTINUATION, O_PAYLOADS,      O_END};
static const int show_opts[] = {O_PAYLOADS, O_END};
static const int start_opts[] = {O_ID, O_INPUT, O_INPUT_FILE, O_START_AT, O_VERSION, O_TAG, O_WAIT, O_END};
static const int raise_opts[] = {O_DATA, O_END};
static const int reason_opts[] = {O_REASON, O_END};
static const int terminate_opts[] = {O_TERM_OUTPUT, O_RECURSIVE, O_END};
static const int purge_opts[] = {O_PURGE_STATUS, O_CREATED_AFTER, O_CREATED_BEFORE, O_PURGE_RECURSIVE, O_YES,
                                 O_END};
static const int restart_opts[] = {O_NEW_ID, O_END};
static const int watch_opts[] = {O_INTERVAL, O_PAYLOADS, O_END};
static const int migrate_opts[] = {O_FROM, O_TO, O_BATCH, O_END};
static const int no_opts[] = {O_END};

static const struct command commands[] = {
    {"list", cmd_list, "", 0, 0, list_opts, "List instances, with filters and paging",
     "Lists orchestration instances in the order the server returns them. Filters combine (AND); "
     "--status may be repeated (OR). One page is printed unless --all is given; when more pages exist, the "
     "token for --continuation is printed (JSON: continuationToken)."},
    {"show", cmd_show, "ID", 1, 1, show_opts, "Show an instance's state and its history as a timeline",
     "Prints the instance's state and the history of its current execution, one line per event: the time "
     "since the first event, the event id, the type, then the name, instance, task id, timer time, status, "
     "payload excerpt and failure the event carries. Payloads are cut to 60 bytes unless --payloads is "
     "given; JSON output always holds them in full."},
    {"start", cmd_start, "NAME", 1, 1, start_opts, "Start a new orchestration instance",
     "Schedules a new instance of the orchestration NAME and prints its id. With --wait, waits for it to "
     "finish and prints its final state; the exit status is then 0 for COMPLETED and 1 for FAILED, "
     "TERMINATED or CANCELED (5 when --timeout-ms passes first). An id that is taken gives exit status 4."},
    {"raise", cmd_raise, "ID EVENT", 2, 2, raise_opts, "Send an external event to an instance",
     "Raises the external event EVENT on instance ID, with --data as its payload. Exit status 4 when the "
     "instance has already finished (it would drop the event)."},
    {"suspend", cmd_suspend, "ID", 1, 1, reason_opts, "Suspend a running instance",
     "Suspends instance ID: it stops making progress (events are kept) until resumed. Exit status 4 when "
     "the instance has already finished."},
    {"resume", cmd_resume, "ID", 1, 1, reason_opts, "Resume a suspended instance",
     "Resumes a suspended instance ID. Exit status 4 when the instance has already finished."},
    {"terminate", cmd_terminate, "ID", 1, 1, terminate_opts, "Terminate an instance",
     "Terminates instance ID (and, with --recursive, its sub-orchestrations), recording --output as its "
     "output. Exit status 4 when the instance has already finished. Note that after the command name "
     "--output is the termination output; give the output format as -o json, --json, or --output before the "
     "command."},
    {"purge", cmd_purge, "[ID]", 0, 1, purge_opts, "Delete finished instances, by id or by filter",
     "With ID, deletes that finished instance and its history (with --recursive, its finished "
     "sub-orchestrations too); exit status 3 when it does not exist, 4 when it has not finished. With a "
     "filter (--status, --created-after, --created-before; at least one), deletes every finished instance "
     "that matches, after printing how many match and asking for confirmation on the terminal (y/N). "
     "Without a terminal on stdin, a filter purge is refused (exit status 2) unless --yes is given; "
     "answering no exits with 1. Nothing is deleted in either case."},
    {"rewind", cmd_rewind, "ID", 1, 1, reason_opts, "Retry what failed in a FAILED instance",
     "Rewinds a FAILED instance: the failed activities and sub-orchestrations run again, the rest of the "
     "history is kept. Exit status 4 when the instance is not FAILED."},
    {"restart", cmd_restart, "ID", 1, 1, restart_opts, "Start a finished instance again",
     "Starts instance ID again with its original name, input and version, in place or (--new-id) under a "
     "new id, and prints the id of the new run."},
    {"watch", cmd_watch, "ID", 1, 1, watch_opts, "Follow an instance live until it finishes",
     "Follows instance ID: prints status and custom-status changes and new history events as they happen, "
     "until it finishes. Exits 0 when it COMPLETED, 1 when it ended FAILED, TERMINATED or CANCELED, 5 when "
     "--timeout-ms passes first. With --output json nothing is printed until the end, then one document: "
     "the final state with its history (as show prints it)."},
    {"migrate", cmd_migrate, "", 0, 0, migrate_opts, "Copy a stopped RocksDB task hub into PostgreSQL",
     "Copies every instance (record, input, output, custom status, history, pending messages), timer and queued "
     "activity of the RocksDB task hub --from into the PostgreSQL database --to, then reads everything back "
     "from PostgreSQL and compares it with the source; prints a summary. Needs no server: stop taskhubd "
     "first (the source is refused while taskhubd has it open), and start the PostgreSQL replicas with --store "
     "once migrate has succeeded. The source is only read. The target must hold no task hub data (exit status "
     "4 otherwise): a migrate that stopped half-way is not resumed; drop the database, create it again and run "
     "migrate again. Exit status 1 when copying or the comparison fails, 5 when PostgreSQL cannot be reached. "
     "Progress goes to stderr."},
    {"help", cmd_help, "[COMMAND]", 0, 1, no_opts, "Show help for taskhubctl or a command",
     "Prints the help of COMMAND, or of taskhubctl."},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name)
{
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static const char exit_codes_text[] =
    "Exit status:\n"
    "  0  success (for start --wait and watch: the instance COMPLETED)\n"
    "  1  the operation failed, or the instance ended FAILED, TERMINATED or CANCELED\n"
    "  2  usage error, or the server rejected the request as invalid\n"
    "  3  the instance was not found\n"
    "  4  the instance id is already taken, or the instance is in the wrong state for this (migrate: the\n"
    "     source or target is in use, or the target is not empty)\n"
    "  5  taskhubd is unavailable (unreachable, shutting down), or a call or wait timed out (migrate:\n"
    "     PostgreSQL is unreachable)\n";

/* Prints |text| wrapped at 100 columns, starting at column |col|; continuation lines start at |indent|. */
static void print_wrapped(FILE *f, const char *text, int col, int indent)
{
  bool at_start = true;
  for (const char *p = text; *p;) {
    while (*p == ' ')
      p++;
    size_t w = strcspn(p, " ");
    if (w == 0)
      break;
    if (!at_start && col + 1 + (int)w > 100) {
      fprintf(f, "\n%*s", indent, "");
      col = indent;
      at_start = true;
    }
    if (!at_start) {
      fputc(' ', f);
      col++;
    }
    fwrite(p, 1, w, f);
    col += (int)w;
    at_start = false;
    p += w;
  }
  fputc('\n', f);
}

static void print_opt(FILE *f, const struct optdef *o)
{
  char left[64];
  if (o->short_name && !o->name)
    snprintf(left, sizeof left, "-%c%s%s", o->short_name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
  else if (o->short_name)
    snprintf(left, sizeof left, "-%c, %s%s%s", o->short_name, o->name, o->metavar ? " " : "",
             o->metavar ? o->metavar : "");
  else
    snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
  fprintf(f, "  %-26s", left);
  if ((int)strlen(left) > 26)
    fprintf(f, "\n%*s", 28, "");
  print_wrapped(f, o->help, 28, 28);
}

/* The global options; for a command, those its own options do not shadow, and not the tool's --version. */
static void print_global_opts(FILE *f, const struct command *cmd)
{
  fputs("Global options (accepted anywhere on the command line):\n", f);
  for (const struct optdef *o = global_opts; o->name; o++) {
    bool shadowed = false;
    for (const int *id = cmd ? cmd->opts : no_opts; *id != O_END; id++)
      shadowed = shadowed || strcmp(opt_by_id(*id)->name, o->name) == 0;
    if (cmd && o->id == O_TOOL_VERSION)
      continue;
    if (!shadowed) {
      print_opt(f, o);
    } else if (o->short_name) {
      /* Only the short form still works after this command's name. */
      struct optdef short_only = *o;
      short_only.name = NULL;
      print_opt(f, &short_only);
    }
  }
}

static void print_tool_help(FILE *f)
{
  fputs("Usage: taskhubctl [GLOBAL OPTIONS] COMMAND [ARGUMENTS] [OPTIONS]\n\n"
        "A command-line client for taskhubd: list, inspect and operate Durable Task orchestration instances.\n\n"
        "Commands:\n",
        f);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fputc('\n', f);
  print_global_opts(f, NULL);
  fputs("\nTimes (TIME) are RFC 3339, e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00.5+02:00; a date alone\n"
        "means midnight UTC. Payloads (JSON) must be one JSON value: a string is '\"text\"'.\n\n",
        f);
  fputs(exit_codes_text, f);
  fputs("\nRun 'taskhubctl help COMMAND' or 'taskhubctl COMMAND --help' for a command's options; see also\n"
        "taskhubctl(1).\n",
        f);
}

static void print_command_help(FILE *f, const struct command *cmd)
{
  fprintf(f, "Usage: taskhubctl %s%s%s [OPTIONS]\n\n", cmd->name, cmd->args[0] ? " " : "", cmd->args);
  fprintf(f, "%s.\n\n", cmd->summary);
  print_wrapped(f, cmd->description, 0, 0);
  if (cmd->opts[0] != O_END) {
    fputs("\nOptions:\n", f);
    for (const int *id = cmd->opts; *id != O_END; id++)
      print_opt(f, opt_by_id(*id));
  }
  fputc('\n', f);
  print_global_opts(f, cmd);
  fputc('\n', f);
  fputs(exit_codes_text, f);
}

static int cmd_help(struct ctl *c)
{
  if (c->npos == 0) {
    print_tool_help(stdout);
    return CTL_EXIT_OK;
  }
  const struct command *cmd = find_command(c->pos[0]);
  if (!cmd) {
    c->cmd = NULL;
    return usage_error(c, "no such command: %s", c->pos[0]);
  }
  print_command_help(stdout, cmd);
  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ parsing */

__attribute__((format(printf, 2, 3))) static void parse_error(struct ctl *c, const char *fmt, ...)
{
  if (c->err[0])
    return; /* the first error is the one reported */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
  if (!s || !*s)
    return false;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return false;
  *out = (int)v;
  return true;
}

static bool cmd_allows(const struct command *cmd, int id)
{
  for (const int *p = cmd ? cmd->opts : no_opts; *p != O_END; p++)
    if (*p == id)
      return true;
  return false;
}

/* Finds the option called |name| ("--x" or "-x"): the command's own first, then the global ones. */
static const struct optdef *lookup(const struct command *cmd, const char *name)
{
  bool is_short = name[0] == '-' && name[1] && name[1] != '-' && !name[2];
  for (int pass = 0; pass < 2; pass++) {
    for (const struct optdef *o = pass == 0 ? cmd_opts : global_opts; o->name; o++) {
      if (pass == 0 && !cmd_allows(cmd, o->id))
        continue;
      if (is_short ? o->short_name == name[1] : strcmp(o->name, name) == 0)
        return o;
    }
  }
  return NULL;
}

static void add_status(struct ctl *c, const char *arg)
{
  const char *p = arg;
  while (*p) {
    size_t n = strcspn(p, ",");
    char one[32];
    if (n == 0 || n >= sizeof one) {
      parse_error(c, "--status: bad status list '%s'", arg);
      return;
    }
    memcpy(one, p, n);
    one[n] = '\0';
    dt_status s;
    if (!ctl_parse_status(one, &s)) {
      parse_error(c, "--status: unknown status '%s' (one of RUNNING, COMPLETED, CONTINUED_AS_NEW, FAILED, "
                     "CANCELED, TERMINATED, PENDING, SUSPENDED)",
                  one);
      return;
    }
    bool dup = false;
    for (size_t i = 0; i < c->n_statuses; i++)
      dup = dup || c->statuses[i] == s;
    if (!dup && c->n_statuses < sizeof c->statuses / sizeof c->statuses[0])
      c->statuses[c->n_statuses++] = s;
    p += n;
    if (*p == ',' && !*++p)
      parse_error(c, "--status: bad status list '%s'", arg);
  }
}

static void parse_time_opt(struct ctl *c, const char *opt, const char *arg, int64_t *out)
{
  if (!ctl_parse_time(arg, out) || *out <= 0)
    parse_error(c, "%s: '%s' is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z)", opt, arg);
}

static void need_json(struct ctl *c, const char *opt, const char *arg)
{
  if (!ctl_is_json(arg))
    parse_error(c, "%s: '%s' is not a JSON value (a string must be quoted: '\"%s\"')", opt, arg, arg);
}

static void apply(struct ctl *c, const struct optdef *o, char *arg)
{
  switch (o->id) {
  case O_ADDRESS:
    if (!*arg)
      parse_error(c, "--address: empty address");
    c->address = arg;
    break;
  case O_OUTPUT:
    if (strcmp(arg, "json") == 0)
      c->json = true;
    else if (strcmp(arg, "text") == 0)
      c->json = false;
    else
      parse_error(c, "--output: '%s' is not text or json", arg);
    break;
  case O_JSON: c->json = true; break;
  case O_TIMEOUT:
    if (!parse_int(arg, 1, INT_MAX, &c->timeout_ms))
      parse_error(c, "--timeout-ms: '%s' is not a positive number of milliseconds", arg);
    break;
  case O_HELP: c->help = true; break;
  case O_TOOL_VERSION:
    if (c->cmd)
      parse_error(c, "--version (of taskhubctl) goes before the command");
    c->tool_version = true;
    break;
  case O_STATUS:
  case O_PURGE_STATUS: add_status(c, arg); break;
  case O_PREFIX: c->prefix = arg; break;
  case O_CREATED_AFTER: parse_time_opt(c, o->name, arg, &c->created_after); break;
  case O_CREATED_BEFORE: parse_time_opt(c, o->name, arg, &c->created_before); break;
  case O_PAGE_SIZE:
    if (!parse_int(arg, 1, 100000, &c->page_size))
      parse_error(c, "--page-size: '%s' is not a number from 1 to 100000", arg);
    break;
  case O_ALL: c->all = true; break;
  case O_CONTINUATION: c->continuation = arg; break;
  case O_PAYLOADS: c->payloads = true; break;
  case O_ID:
    if (!*arg)
      parse_error(c, "--id: empty instance id");
    c->id = arg;
    break;
  case O_INPUT:
    need_json(c, o->name, arg);
    c->input = arg;
    break;
  case O_INPUT_FILE: c->input_file = arg; break;
  case O_START_AT: parse_time_opt(c, o->name, arg, &c->start_at); break;
  case O_VERSION: c->version = arg; break;
  case O_TAG: {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
      parse_error(c, "--tag: '%s' is not KEY=VALUE", arg);
      break;
    }
    if (c->n_tags >= MAX_TAGS) {
      parse_error(c, "--tag: at most %d tags", MAX_TAGS);
      break;
    }
    *eq = '\0'; /* argv strings are ours to modify */
    c->tags[c->n_tags].key = arg;
    c->tags[c->n_tags].value = eq + 1;
    c->n_tags++;
    break;
  }
  case O_WAIT: c->wait = true; break;
  case O_DATA:
    need_json(c, o->name, arg);
    c->data = arg;
    break;
  case O_REASON: c->reason = arg; break;
  case O_TERM_OUTPUT:
    if (!ctl_is_json(arg))
      parse_error(c, "terminate --output: '%s' is not a JSON value (after the command name, --output is the "
                     "termination output; for JSON output use -o json or --json)",
                  arg);
    c->term_output = arg;
    break;
  case O_RECURSIVE:
  case O_PURGE_RECURSIVE: c->recursive = true; break;
  case O_YES: c->yes = true; break;
  case O_NEW_ID: c->new_id = true; break;
  case O_INTERVAL:
    if (!parse_int(arg, 10, 3600000, &c->interval_ms))
      parse_error(c, "--interval-ms: '%s' is not a number from 10 to 3600000", arg);
    break;
  case O_FROM: c->from = arg; break;
  case O_TO: c->to = arg; break;
  case O_BATCH:
    if (!parse_int(arg, 1, CTL_MIGRATE_MAX_BATCH, &c->batch))
      parse_error(c, "--batch: '%s' is not a number from 1 to %d", arg, CTL_MIGRATE_MAX_BATCH);
    break;
  default: break;
  }
}

static void parse(struct ctl *c, int argc, char **argv)
{
  bool only_pos = false;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (!only_pos && strcmp(a, "--") == 0) {
      only_pos = true;
      continue;
    }
    if (!only_pos && a[0] == '-' && a[1]) {
      char name[64];
      char *val = NULL;
      char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
      size_t n = eq ? (size_t)(eq - a) : strlen(a);
      if (n >= sizeof name) {
        parse_error(c, "unknown option %s", a);
        continue;
      }
      memcpy(name, a, n);
      name[n] = '\0';
      if (eq)
        val = eq + 1;
      const struct optdef *o = lookup(c->cmd, name);
      if (!o) {
        if (c->cmd)
          parse_error(c, "unknown option %s for %s", name, c->cmd->name);
        else
          parse_error(c, "unknown option %s", name);
        continue;
      }
      if (o->metavar && !val) {
        if (i + 1 >= argc) {
          parse_error(c, "option %s needs a value (%s)", o->name, o->metavar);
          continue;
        }
        val = argv[++i];
      } else if (!o->metavar && val) {
        parse_error(c, "option %s takes no value", o->name);
        continue;
      }
      apply(c, o, val);
      continue;
    }
    if (!c->cmd) {
      c->cmd = find_command(a);
      if (!c->cmd) {
        parse_error(c, "no such command: %s", a);
        return;
      }
      continue;
    }
    if (c->npos >= c->cmd->max_pos) {
      parse_error(c, "unexpected argument '%s'", a);
      continue;
    }
    c->pos[c->npos++] = a;
  }
  if (c->cmd && c->npos < c->cmd->min_pos)
    parse_error(c, "%s needs %s", c->cmd->name, c->cmd->args);
  if (c->input && c->input_file)
    parse_error(c, "--input and --input-file exclude each other");
}

/* ------------------------------------------------------------------ main */

/* The SDK never prints; show its warnings and errors (not its debug lines) on stderr. */
static void sdk_log(int level, const char *message, void *user_data)
{
  (void)user_data;
  if (level >= 2)
    fprintf(stderr, "taskhubctl: sdk: %s\n", message);
}

int main(int argc, char **argv)
{
  struct ctl c;
  memset(&c, 0, sizeof c);
  const char *env = getenv("TASKHUBD_ADDRESS");
  c.address = env && *env ? env : DEFAULT_ADDRESS;
  parse(&c, argc, argv);

  if (c.help) {
    /* "CMD --help" and "help CMD --help" show CMD's page, "help --help" the page of help itself. */
    const struct command *page = c.cmd;
    if (page && page->run == cmd_help && c.npos == 1 && find_command(c.pos[0]))
      page = find_command(c.pos[0]);
    if (page)
      print_command_help(stdout, page);
    else
      print_tool_help(stdout);
    return CTL_EXIT_OK;
  }
  if (c.tool_version && !c.cmd && !c.err[0]) {
    printf("taskhubctl %s\n", TASKHUBCTL_VERSION);
    return CTL_EXIT_OK;
  }
  if (c.err[0])
    return usage_error(&c, "%s", c.err);
  if (!c.cmd) {
    print_tool_help(stderr);
    error_doc(&c, "USAGE", CTL_EXIT_USAGE, "no command given", NULL);
    return CTL_EXIT_USAGE;
  }
  if (c.cmd->run == cmd_help)
    return cmd_help(&c);
  if (c.cmd->run == cmd_migrate) /* talks to the stores, not to a server */
    return cmd_migrate(&c);

  dt_set_log_fn(sdk_log, NULL);
  dt_conn_options copt = {.call_timeout_ms = c.timeout_ms};
  int rc = dt_client_open(c.address, &copt, &c.client);
  if (rc != DT_OK)
    return fail(&c, rc, NULL, "cannot open a client for %s", c.address);
  int ex = c.cmd->run(&c);
  dt_client_close(c.client);
  fflush(stdout);
  return ex;
}
