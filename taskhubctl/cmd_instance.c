/*
 * Commands on one instance: show, start (and waiting for it), raise, suspend, resume, terminate, rewind and
 * restart.
 */
#include "commands.h"
#include "render.h"
#include "admin_calls.h"
#include "report.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ shared operations */

/* Waits until |iid| has finished (COMPLETED, FAILED, TERMINATED, CANCELED), within --timeout-ms when given.
 * The server caps each wait; without a deadline the wait is simply renewed. On DT_ERR_TIMEOUT, |why| holds
 * what the server said about the last wait it answered itself. */
static int wait_final(struct ctl *c, const char *iid, dt_instance **out, struct ctl_status *why)
{
  int64_t deadline = c->timeout_ms > 0 ? ctl_mono_ms() + c->timeout_ms : 0;
  for (;;) {
    int t = 0;
    if (deadline) {
      int64_t left = deadline - ctl_mono_ms();
      if (left <= 0)
        return DT_ERR_TIMEOUT;
      t = (int)left;
    }
    dt_instance *in = NULL;
    int64_t asked = ctl_mono_ms();
    int rc = dt_client_wait_completion(c->client, iid, t, true, &in);
    if (rc == DT_ERR_TIMEOUT) {
      /* taskhubd ends a wait before the client's deadline (at its --wait-cap, or just before the deadline) and
       * then says why the instance is not done, e.g. that no connected worker serves its orchestration. A wait
       * that lasted the whole deadline was ended by the gRPC library, which says nothing more: keep the
       * server's word over that. */
      if (!t || ctl_mono_ms() - asked < t)
        ctl_status_keep(why);
      continue;
    }
    if (rc != DT_OK)
      return rc;
    if (ctl_status_is_final(in->status)) {
      *out = in;
      return DT_OK;
    }
    dt_instance_free(in);
  }
}

/* ------------------------------------------------------------------ show */

int cmd_show(struct ctl *c)
{
  const char *iid = c->pos[0];
  dt_instance *in = NULL;
  dt_history *h = NULL;
  int rc = dt_client_get(c->client, iid, true, &in);
  if (rc != DT_OK)
    return ctl_fail(c, rc, iid, "show");
  rc = dt_client_history(c->client, iid, &h);
  if (rc != DT_OK) {
    dt_instance_free(in);
    return ctl_fail(c, rc, iid, "show (history)");
  }
  /* What waits for it: asked of taskhubd's own service; another sidecar has none, and show goes without. */
  Taskhubd__Admin__PendingMessagesResponse *pending = NULL;
  int prc = ctl_pending_messages(c->client, iid, 100, &pending);
  /* Why a PENDING instance has not started ("it is PENDING and no connected worker accepts orchestration 'chain'
   * (0 workers connected)"), asked of taskhubd's engine, which knows the connected workers. */
  char *why = in->status == DT_STATUS_PENDING ? ctl_explain_instance(c->client, iid) : NULL;
  int64_t t0 = ctl_timeline_t0(in, h);
  if (c->json) {
    json_object *doc = ctl_json_instance(in);
    json_object_object_add(doc, "history", ctl_history_json(h, t0));
    json_object_object_add(doc, "pending", pending ? ctl_json_pending(pending) : NULL);
    if (why)
      json_object_object_add(doc, "pendingReason", json_object_new_string(why));
    ctl_json_print(doc);
  } else {
    ctl_print_instance_text(in, c->payloads);
    if (why)
      printf("Not started: %s\n", why);
    char ts[48];
    if (h->n == 0) {
      printf("\nHistory: no events yet\n");
    } else {
      printf("\nHistory (%zu events, times relative to %s):\n", h->n, ctl_format_time(t0, ts, sizeof ts));
      int64_t latest = 0;
      size_t first_earlier = SIZE_MAX;
      for (size_t i = 0; i < h->n; i++) {
        bool earlier = ctl_event_earlier(&h->events[i], &latest);
        if (earlier && first_earlier == SIZE_MAX)
          first_earlier = i;
        ctl_print_event(stdout, &h->events[i], t0, c->payloads, earlier);
      }
      if (first_earlier != SIZE_MAX)
        ctl_print_earlier_note(stdout, h, first_earlier);
    }
    if (pending) {
      ctl_print_pending(stdout, pending);
    } else if (prc != DT_ERR_UNSUPPORTED) {
      const char *code = NULL, *msg = NULL;
      dt_last_call_status(&code, &msg);
      printf("\nWaiting in its inbox: unknown (%s%s%s)\n", code ? code : dt_strerror(prc), msg && *msg ? ": " : "",
             msg ? msg : "");
    }
  }
  if (pending)
    protobuf_c_message_free_unpacked(&pending->base, NULL);
  free(why);
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

int cmd_start(struct ctl *c)
{
  const char *name = c->pos[0];
  char *file_input = NULL;
  const char *input = c->input;
  if (c->input_file) {
    file_input = read_file(c->input_file);
    if (!file_input) {
      int e = errno;
      return ctl_usage_error(c, "cannot read --input-file %s: %s", c->input_file, strerror(e));
    }
    if (!ctl_is_json(file_input)) {
      free(file_input);
      return ctl_usage_error(c, "--input-file %s does not hold one JSON value", c->input_file);
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
      ctl_error_doc(c, ctl_code_name(rc), CTL_EXIT_STATE, msg, c->id);
      return CTL_EXIT_STATE;
    }
    return ctl_fail(c, rc, c->id, "start %s", name);
  }
  if (!c->wait) {
    if (c->json) {
      json_object *doc = ctl_ack_doc(iid, "start");
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
  struct ctl_status why = {0};
  rc = wait_final(c, iid, &in, &why);
  if (rc != DT_OK) {
    int ex = ctl_fail_kept(c, rc, iid, rc == DT_ERR_TIMEOUT ? &why : NULL, "start --wait: waiting for %s", iid);
    dt_free(iid);
    return ex;
  }
  dt_free(iid);
  if (c->json)
    ctl_json_print(ctl_json_instance(in));
  else
    ctl_print_final_text(in);
  int ex = ctl_exit_for_final(in);
  dt_instance_free(in);
  return ex;
}

/* ------------------------------------------------------------------ instance operations */

/*
 * taskhubd accepts raise, suspend, resume and terminate for an instance that has finished and does nothing, so
 * that "terminated X" would be printed for an instance that had completed long ago. Refuse those up front
 * (exit 4) and say what state the instance is in. Returns -1 to go on, else the exit code.
 */
static int refuse_finished(struct ctl *c, const char *iid, const char *verb, dt_status *status)
{
  dt_instance *in = NULL;
  int rc = dt_client_get(c->client, iid, false, &in);
  if (rc != DT_OK)
    return ctl_fail(c, rc, iid, "%s", verb);
  dt_status st = in->status;
  dt_instance_free(in);
  if (status)
    *status = st;
  if (!ctl_status_is_final(st))
    return -1;
  char msg[512];
  snprintf(msg, sizeof msg, "%s: instance '%s' has already finished (%s)", verb, iid, dt_status_name(st));
  return ctl_wrong_state(c, iid, msg);
}

int cmd_raise(struct ctl *c)
{
  const char *iid = c->pos[0], *ev = c->pos[1];
  int ex = refuse_finished(c, iid, "raise", NULL);
  if (ex >= 0)
    return ex;
  int rc = dt_client_raise_event(c->client, iid, ev, c->data);
  if (rc != DT_OK)
    return ctl_fail(c, rc, iid, "raise %s", ev);
  if (c->json) {
    json_object *doc = ctl_ack_doc(iid, "raise");
    json_object_object_add(doc, "event", json_object_new_string(ev));
    ctl_json_print(doc);
  } else {
    printf("raised event %s on %s\n", ev, iid);
  }
  return CTL_EXIT_OK;
}

/*
 * suspend, resume and terminate: refuse a finished instance, make the call, acknowledge "<past> <id><suffix>".
 * A suspend or resume of a PENDING instance waits in its inbox until a worker starts it, so that is said
 * ("requested"), not that it happened; taskhubd terminates a PENDING instance at once.
 */
static int act_on_live(struct ctl *c, const char *verb, const char *past, const char *suffix,
                       int (*call)(struct ctl *c, const char *iid))
{
  const char *iid = c->pos[0];
  dt_status st = DT_STATUS_RUNNING;
  int ex = refuse_finished(c, iid, verb, &st);
  if (ex >= 0)
    return ex;
  int rc = call(c, iid);
  if (rc != DT_OK)
    return ctl_fail(c, rc, iid, "%s", verb);
  bool deferred = st == DT_STATUS_PENDING && strcmp(verb, "terminate") != 0;
  if (c->json) {
    json_object *doc = ctl_ack_doc(iid, verb);
    if (strcmp(verb, "terminate") != 0)
      json_object_object_add(doc, "requested", json_object_new_boolean(deferred));
    ctl_json_print(doc);
    return CTL_EXIT_OK;
  }
  if (deferred)
    printf("%s requested for %s: it is PENDING, and the %s takes effect when it starts\n", verb, iid, verb);
  else
    printf("%s %s%s\n", past, iid, suffix);
  return CTL_EXIT_OK;
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
  if (!c->term_reason)
    return dt_client_terminate(c->client, iid, c->term_output, c->recursive);
  /* TerminateRequest has only an output, and payloads are JSON: the reason goes there as a JSON string. */
  json_object *reason = json_object_new_string(c->term_reason);
  if (!reason)
    return DT_ERR_NOMEM;
  int rc = dt_client_terminate(c->client, iid,
                               json_object_to_json_string_ext(reason, JSON_C_TO_STRING_PLAIN |
                                                                          JSON_C_TO_STRING_NOSLASHESCAPE),
                               c->recursive);
  json_object_put(reason);
  return rc;
}

int cmd_suspend(struct ctl *c)
{
  return act_on_live(c, "suspend", "suspended", "", call_suspend);
}

int cmd_resume(struct ctl *c)
{
  return act_on_live(c, "resume", "resumed", "", call_resume);
}

int cmd_terminate(struct ctl *c)
{
  return act_on_live(c, "terminate", "terminated", c->recursive ? " and its sub-orchestrations" : "", call_terminate);
}

int cmd_rewind(struct ctl *c)
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
      return ctl_wrong_state(c, iid, msg);
    }
  }
  if (rc != DT_OK)
    return ctl_fail(c, rc, iid, "rewind");
  char text[320];
  snprintf(text, sizeof text, "rewound %s", iid);
  return ctl_finish_ack(c, iid, "rewind", text);
}

int cmd_restart(struct ctl *c)
{
  const char *iid = c->pos[0];
  char *nid = NULL;
  int rc = dt_client_restart(c->client, iid, c->new_id, &nid);
  if (rc != DT_OK)
    return ctl_fail(c, rc, iid, "restart");
  if (c->json) {
    json_object *doc = ctl_ack_doc(nid, "restart");
    json_object_object_add(doc, "restartedFrom", json_object_new_string(iid));
    ctl_json_print(doc);
  } else {
    printf("%s\n", nid);
  }
  dt_free(nid);
  return CTL_EXIT_OK;
}
