/* watch: follows one instance live until it finishes, printing new history events and state changes. */
#include "commands.h"
#include "render.h"
#include "report.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_INTERVAL_MS 500

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
  printf("  %-11s ", ctl_format_offset(ctl_wall_ms() - t0, off, sizeof off));
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
}

int cmd_watch(struct ctl *c)
{
  const char *iid = c->pos[0];
  int interval = c->interval_ms > 0 ? c->interval_ms : DEFAULT_INTERVAL_MS;
  int64_t deadline = c->timeout_ms > 0 ? ctl_mono_ms() + c->timeout_ms : 0;
  struct seen *seen = NULL;
  size_t n_seen = 0;
  char *exec_id = NULL, *custom = NULL;
  int last_status = -1;
  int64_t t0 = 0;
  int ex = CTL_EXIT_OK;
  dt_instance *in = NULL;
  dt_history *h = NULL;
  bool first = true;
  bool noted = false; /* the note on events marked earlier is printed once */
  struct ctl_status why = {0};

  for (;;) {
    int rc = dt_client_get(c->client, iid, true, &in);
    if (rc == DT_OK)
      rc = dt_client_history(c->client, iid, &h);
    if (rc != DT_OK) {
      ex = ctl_fail(c, rc, iid, first ? "watch" : "watch (while following)");
      goto done;
    }
    if (first) {
      t0 = ctl_timeline_t0(in, h);
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
        ex = ctl_fail(c, DT_ERR_NOMEM, iid, "watch");
        goto done;
      }
      int64_t latest = 0;
      for (size_t i = 0; i < h->n; i++) {
        bool earlier = ctl_event_earlier(&h->events[i], &latest);
        if (i >= keep) {
          ctl_print_event(stdout, &h->events[i], t0, c->payloads, earlier);
          if (earlier && !noted) {
            ctl_print_earlier_note(stdout, h, i);
            noted = true;
          }
        }
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
        ctl_print_excerpt(stdout, in->custom_status, c->payloads ? 0 : CTL_EXCERPT_BYTES);
        fputc('\n', stdout);
        free(custom);
        custom = in->custom_status ? strdup(in->custom_status) : NULL;
      }
      fflush(stdout);
    }
    if (ctl_status_is_final(in->status)) {
      if (c->json) {
        json_object *doc = ctl_json_instance(in);
        json_object_object_add(doc, "history", ctl_history_json(h, t0));
        ctl_json_print(doc);
      } else {
        fputs("finished: ", stdout);
        ctl_print_final_text(in);
      }
      ex = ctl_exit_for_final(in);
      goto done;
    }
    dt_instance_free(in);
    in = NULL;
    dt_history_free(h);
    h = NULL;

    /* Sleep by waiting for completion: returns at once when the instance finishes. */
    int t = interval;
    if (deadline) {
      int64_t left = deadline - ctl_mono_ms();
      if (left <= 0) {
        ex = ctl_fail_kept(c, DT_ERR_TIMEOUT, iid, &why, "watch: %s did not finish within --timeout-ms %d", iid,
                           c->timeout_ms);
        goto done;
      }
      t = left < t ? (int)left : t;
    }
    dt_instance *w = NULL;
    int64_t asked = ctl_mono_ms();
    rc = dt_client_wait_completion(c->client, iid, t, false, &w);
    dt_instance_free(w);
    /* What taskhubd says when it ends a wait before our deadline (see wait_final in cmd_instance.c), for the
     * message if --timeout-ms passes; the reads before that would clear it. */
    if (rc == DT_ERR_TIMEOUT && ctl_mono_ms() - asked < t)
      ctl_status_keep(&why);
    if (rc != DT_OK && rc != DT_ERR_TIMEOUT) {
      ex = ctl_fail(c, rc, iid, "watch (while following)");
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
