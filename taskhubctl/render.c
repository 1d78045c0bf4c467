/* Text rendering of instances, failures and timelines (see render.h). */
#include "render.h"

#include <stdint.h>
#include <string.h>

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

void ctl_print_failure_text(FILE *f, const dt_failure *fl, size_t max)
{
  fputs(fl->error_type ? fl->error_type : "Error", f);
  fputs(": ", f);
  ctl_print_excerpt(f, fl->message ? fl->message : "", max);
}

#define FAILURE_MESSAGE_BYTES 200
#define STACK_LINES 10

/* The line at |s|: its length without the newline (and a \r before it); *next is where the next one starts. */
static size_t line_at(const char *s, const char **next)
{
  size_t n = strcspn(s, "\n");
  *next = s[n] ? s + n + 1 : s + n;
  return n > 0 && s[n - 1] == '\r' ? n - 1 : n;
}

/* The lines of |s| from where the cursor is, each at column |indent|, at most |max| (0: all). Leading tabs,
 * which Java's traces start with, become spaces; other control characters are escaped. */
static void print_lines(FILE *f, const char *s, int indent, size_t max)
{
  size_t total = 0;
  for (const char *p = s; *p; line_at(p, &p))
    total++;
  size_t shown = 0;
  for (const char *p = s; *p && (!max || shown < max); shown++) {
    const char *line = p;
    size_t n = line_at(line, &p);
    if (n > 0)
      fprintf(f, "%*s", indent, "");
    size_t i = 0;
    for (; i < n && (line[i] == ' ' || line[i] == '\t'); i++)
      fputs(line[i] == '\t' ? "    " : " ", f);
    ctl_print_escaped(f, line + i, n - i);
    fputc('\n', f);
  }
  if (shown < total)
    fprintf(f, "%*s... %zu more line%s (--payloads shows all)\n", indent, "", total - shown,
            total - shown == 1 ? "" : "s");
}

void ctl_print_failure_block(FILE *f, const dt_failure *fl, int indent, bool full)
{
  for (int depth = 0; fl; fl = fl->inner, depth++) {
    if (depth > 0)
      fprintf(f, "%*scaused by: ", indent, "");
    const char *msg = fl->message ? fl->message : "", *rest;
    size_t n = line_at(msg, &rest);
    fputs(fl->error_type ? fl->error_type : "Error", f);
    fputs(": ", f);
    if (!full && n > FAILURE_MESSAGE_BYTES) {
      n = FAILURE_MESSAGE_BYTES;
      while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80) /* not into a UTF-8 character */
        n--;
      ctl_print_escaped(f, msg, n);
      fputs("...", f);
    } else {
      ctl_print_escaped(f, msg, n);
    }
    fputc('\n', f);
    print_lines(f, rest, indent + 2, full ? 0 : STACK_LINES);
    if (fl->stack_trace)
      print_lines(f, fl->stack_trace, indent + 2, full ? 0 : STACK_LINES);
  }
}

/* Every event raised outside a turn (a task's result, a timer, an external event) waits in the inbox for the
 * next one, so it is a little older than the OrchestratorStarted before it in any history; a wait this long
 * (a suspension, no worker, a backlog) is worth a mark. */
#define EARLIER_MS 100

bool ctl_event_earlier(const dt_event *e, int64_t *latest)
{
  /* A run's ExecutionStarted carries the time the instance was created, so it is older than the
   * OrchestratorStarted before it in every history: that says nothing. */
  if (e->type && strcmp(e->type, "ExecutionStarted") == 0)
    return false;
  bool earlier = e->timestamp_ms <= *latest - EARLIER_MS;
  if (e->timestamp_ms > *latest)
    *latest = e->timestamp_ms;
  return earlier;
}

void ctl_print_earlier_note(FILE *f, const dt_history *h, size_t first)
{
  /* Was the instance suspended when that event was raised: is the last suspend or resume requested before
   * it a suspend? */
  bool suspended = false;
  int64_t at = first < h->n ? h->events[first].timestamp_ms : 0, last = INT64_MIN;
  for (size_t i = 0; i < h->n; i++) {
    const dt_event *e = &h->events[i];
    bool sus = e->type && strcmp(e->type, "ExecutionSuspended") == 0;
    if ((sus || (e->type && strcmp(e->type, "ExecutionResumed") == 0)) && e->timestamp_ms <= at &&
        e->timestamp_ms >= last) {
      last = e->timestamp_ms;
      suspended = sus;
    }
  }
  /* Events wait in the instance's inbox until the orchestration next runs: while it is suspended, while no
   * worker has taken it, or while a worker still holds its previous turn. They keep the time they were
   * raised, so they come after events that are younger. */
  fprintf(f,
          "  * earlier than an event above it: an event's time is when it was raised or requested, and it\n"
          "    joins the history when the orchestration next runs, so one that waited (%s)\n"
          "    comes after younger ones.\n",
          suspended ? "here: while the instance was suspended" : "while it was suspended, or for a worker");
}

void ctl_print_event(FILE *f, const dt_event *e, int64_t t0, bool full, bool earlier)
{
  char off[32], id[16], ts[48];
  size_t max = full ? 0 : CTL_EXCERPT_BYTES;
  ctl_format_offset(e->timestamp_ms - t0, off, sizeof off);
  if (earlier)
    strcat(off, "*");
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
    if (full && (e->failure->inner || e->failure->stack_trace)) {
      ctl_print_failure_block(f, e->failure, 20, true);
      return;
    }
    ctl_print_failure_text(f, e->failure, max);
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
  ctl_print_excerpt(stdout, value, full ? 0 : CTL_EXCERPT_BYTES);
  fputc('\n', stdout);
}

void ctl_print_instance_text(const dt_instance *in, bool full)
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
    ctl_print_failure_block(stdout, in->failure, 17, full);
  }
}

void ctl_print_final_text(const dt_instance *in)
{
  printf("%s %s\n", in->instance_id, dt_status_name(in->status));
  if (in->output) {
    fputs("output: ", stdout);
    ctl_print_excerpt(stdout, in->output, 0);
    fputc('\n', stdout);
  }
  if (in->failure) {
    fputs("failure: ", stdout);
    ctl_print_failure_block(stdout, in->failure, 2, true);
  }
}

int64_t ctl_timeline_t0(const dt_instance *in, const dt_history *h)
{
  int64_t t0 = 0;
  for (size_t i = 0; h && i < h->n; i++)
    if (h->events[i].timestamp_ms && (!t0 || h->events[i].timestamp_ms < t0))
      t0 = h->events[i].timestamp_ms;
  return t0 ? t0 : in ? in->created_ms : 0;
}

json_object *ctl_history_json(const dt_history *h, int64_t t0)
{
  json_object *arr = json_object_new_array();
  for (size_t i = 0; h && i < h->n; i++)
    json_object_array_add(arr, ctl_json_event(&h->events[i], t0));
  return arr;
}
