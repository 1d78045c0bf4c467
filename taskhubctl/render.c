/* Text rendering of instances, failures and timelines (see render.h). */
#include "render.h"

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

void ctl_print_event(FILE *f, const dt_event *e, int64_t t0, bool full)
{
  char off[32], id[16], ts[48];
  size_t max = full ? 0 : CTL_EXCERPT_BYTES;
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
    ctl_print_failure_text(stdout, in->failure, full ? 0 : 200);
    fputc('\n', stdout);
    if (full && in->failure->stack_trace) {
      printf("%-17s", "Stack trace:");
      ctl_print_excerpt(stdout, in->failure->stack_trace, 0);
      fputc('\n', stdout);
    }
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
    ctl_print_failure_text(stdout, in->failure, 0);
    fputc('\n', stdout);
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
