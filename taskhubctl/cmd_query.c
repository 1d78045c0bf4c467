/*
 * Commands over many instances: list (filters, paging) and purge (one instance, or every finished one a filter
 * matches, after confirmation).
 */
#include "commands.h"
#include "render.h"
#include "report.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------------ list */

#define LIST_DEFAULT_LIMIT 100
/* Pages asked for when reading every match: the most taskhubd sends at once. */
#define LIST_FETCH_PAGE 1000

/* The instances list prints, owned (taken out of their pages). */
struct picked {
  dt_instance **v;
  size_t n, cap;
};

static void picked_free(struct picked *p)
{
  for (size_t i = 0; i < p->n; i++)
    dt_instance_free(p->v[i]);
  free(p->v);
}

/* Newest first; among equal times the reverse of the server's order (by id), so that the order is total. */
static int newest_first(const void *a, const void *b)
{
  const dt_instance *x = *(dt_instance *const *)a, *y = *(dt_instance *const *)b;
  if (x->created_ms != y->created_ms)
    return x->created_ms > y->created_ms ? -1 : 1;
  return -strcmp(x->instance_id, y->instance_id);
}

/* Keeps the |limit| newest (0: all), freeing the rest. */
static void picked_trim(struct picked *p, size_t limit)
{
  if (p->n > 1)
    qsort(p->v, p->n, sizeof *p->v, newest_first);
  while (limit && p->n > limit)
    dt_instance_free(p->v[--p->n]);
}

/* Takes the instances of |pg| that pass the filters taskhubctl applies itself (--name); frees the rest and the
 * page. Returns false on out-of-memory (everything of |pg| freed). */
static bool take_page(const struct ctl *c, struct picked *p, dt_instance_page *pg, size_t *matched)
{
  bool ok = true;
  for (size_t i = 0; i < pg->n; i++) {
    dt_instance *in = pg->instances[i];
    if (ok && (!c->name || (in->name && strcmp(in->name, c->name) == 0))) {
      if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        dt_instance **v = realloc(p->v, cap * sizeof *v);
        if (!v) {
          ok = false;
          dt_instance_free(in);
          continue;
        }
        p->v = v;
        p->cap = cap;
      }
      p->v[p->n++] = in;
      (*matched)++;
    } else {
      dt_instance_free(in);
    }
  }
  pg->n = 0; /* every instance is ours now, or freed */
  dt_instance_page_free(pg);
  return ok;
}

static void print_list_text(const struct ctl *c, const struct picked *p)
{
  int wid = (int)strlen("INSTANCE ID"), wname = (int)strlen("NAME"), wst = (int)strlen("CONTINUED_AS_NEW");
  for (size_t i = 0; i < p->n; i++) {
    int l = (int)strlen(p->v[i]->instance_id);
    wid = l > wid ? l : wid;
    l = p->v[i]->name ? (int)strlen(p->v[i]->name) : 0;
    wname = l > wname ? l : wname;
  }
  if (p->n == 0) {
    printf("no instances\n");
    return;
  }
  printf("%-*s  %-*s  %-*s  %-24s  %s\n", wid, "INSTANCE ID", wname, "NAME", wst, "STATUS", "CREATED",
         "LAST UPDATED");
  for (size_t i = 0; i < p->n; i++) {
    const dt_instance *in = p->v[i];
    char t1[48], t2[48];
    printf("%-*s  %-*s  %-*s  %-24s  %s\n", wid, in->instance_id, wname, in->name ? in->name : "", wst,
           dt_status_name(in->status), ctl_format_time(in->created_ms, t1, sizeof t1),
           ctl_format_time(in->last_updated_ms, t2, sizeof t2));
    if (!c->payloads)
      continue;
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
      ctl_print_failure_block(stdout, in->failure, 6, true);
    }
  }
}

/*
 * Newest first without --prefix: taskhubd walks its creation index backwards (taskhubd.admin.Admin/
 * QueryInstancesReversed), so --limit N reads about N instances however large the task hub is, and learns that
 * older ones exist without counting them. Under --prefix (taskhubd keeps those in id order) and against a sidecar
 * without that call, every match is read, only the newest --limit kept meanwhile, and the ones left out counted.
 * --page-size and --continuation ask for one page in the server's own order instead, which is what a script
 * resuming from a token needs.
 */
int cmd_list(struct ctl *c)
{
  bool one_page = (c->page_size || c->continuation) && !c->all;
  size_t limit = c->all || one_page ? 0 : c->limit ? (size_t)c->limit : LIST_DEFAULT_LIMIT;
  /* Reading newest first, one more than --limit says whether older ones exist (unless --name drops rows). */
  int fetch = LIST_FETCH_PAGE;
  if (c->page_size)
    fetch = c->page_size;
  else if (one_page)
    fetch = 0;
  else if (limit && !c->name && limit < LIST_FETCH_PAGE)
    fetch = (int)limit + 1;
  dt_query q = {
      .statuses = c->statuses,
      .n_statuses = c->n_statuses,
      .created_from_ms = c->created_after,
      .created_to_ms = c->created_before,
      .instance_id_prefix = c->prefix,
      .page_size = fetch,
      .payloads = c->payloads,
      .continuation = c->continuation,
      .reversed = !one_page && !(c->prefix && c->prefix[0]),
  };
  struct picked p = {0};
  size_t matched = 0;
  bool more = false; /* reading newest first: older matches exist beyond the ones kept */
  char *next = NULL; /* the token after the page printed (one_page only) */
  int ex = CTL_EXIT_OK;
  for (;;) {
    dt_instance_page *pg = NULL;
    int rc = dt_client_query(c->client, &q, &pg);
    if (rc == DT_ERR_UNSUPPORTED && q.reversed && !q.continuation) {
      q.reversed = false; /* another sidecar: read everything, as its order is oldest first */
      q.page_size = c->page_size ? c->page_size : LIST_FETCH_PAGE;
      continue;
    }
    if (rc != DT_OK) {
      ex = ctl_fail(c, rc, NULL, "list");
      goto done;
    }
    free(next);
    next = pg->continuation;
    pg->continuation = NULL;
    if (!take_page(c, &p, pg, &matched)) {
      ex = ctl_fail(c, DT_ERR_NOMEM, NULL, "list");
      goto done;
    }
    if (q.reversed && limit && p.n > limit) {
      more = true;
      break;
    }
    if (!q.reversed && limit && p.n >= 2 * limit)
      picked_trim(&p, limit);
    if (one_page || !next)
      break;
    q.continuation = next;
  }
  if (!one_page)
    picked_trim(&p, limit);
  /* Counted when every match was read; newest first, only known to be more than none. */
  bool counted = !q.reversed;
  size_t omitted = counted ? matched - p.n : 0;
  more = more || omitted > 0;

  if (c->json) {
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < p.n; i++)
      json_object_array_add(arr, ctl_json_instance(p.v[i]));
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "instances", arr);
    json_object_object_add(doc, "count", json_object_new_int64((int64_t)p.n));
    json_object_object_add(doc, "more", json_object_new_boolean(more));
    json_object_object_add(doc, "omitted", counted ? json_object_new_int64((int64_t)omitted) : NULL);
    json_object_object_add(doc, "continuationToken", ctl_json_str(one_page ? next : NULL));
    ctl_json_print(doc);
    goto done;
  }
  print_list_text(c, &p);
  if (omitted)
    printf("%zu older instance%s not shown: --limit N or --all shows more\n", omitted, omitted == 1 ? "" : "s");
  else if (more)
    printf("older instances not shown: --limit N or --all shows more\n");
  if (one_page && next)
    printf("more instances: continue with --continuation %s\n", next);
done:
  picked_free(&p);
  free(next);
  return ex;
}

/* ------------------------------------------------------------------ purge */

static int purge_one(struct ctl *c)
{
  const char *iid = c->pos[0];
  int deleted = 0;
  int rc = dt_client_purge(c->client, iid, c->recursive, &deleted);
  if (rc != DT_OK)
    return ctl_fail(c, rc, iid, "purge");
  if (deleted == 0) {
    /* Unknown, or not finished: the server does not say which, so ask. */
    dt_instance *in = NULL;
    rc = dt_client_get(c->client, iid, false, &in);
    if (rc != DT_OK)
      return ctl_fail(c, rc, iid, "purge");
    char msg[512];
    snprintf(msg, sizeof msg, "purge: instance '%s' is %s; only finished instances can be purged", iid,
             dt_status_name(in->status));
    dt_instance_free(in);
    return ctl_wrong_state(c, iid, msg);
  }
  if (c->json) {
    json_object *doc = ctl_ack_doc(iid, "purge");
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
  if (c->prefix && n < cap)
    n += (size_t)snprintf(buf + n, cap - n, ", id starting with '%s'", c->prefix);
  if (c->created_after && n < cap)
    n += (size_t)snprintf(buf + n, cap - n, ", created at or after %s",
                          ctl_format_time(c->created_after, ts, sizeof ts));
  if (c->created_before && n < cap)
    snprintf(buf + n, cap - n, ", created before %s", ctl_format_time(c->created_before, ts, sizeof ts));
}

/* Instance ids a --prefix purge found. */
struct ids {
  char **v;
  size_t n, cap;
};

static bool ids_add(struct ids *l, const char *id)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    char **v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return false;
    l->v = v;
    l->cap = cap;
  }
  if (!(l->v[l->n] = strdup(id)))
    return false;
  l->n++;
  return true;
}

static void ids_free(struct ids *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
}

static void print_purged(const struct ctl *c, size_t matched, long long deleted, bool complete)
{
  if (c->json) {
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "operation", json_object_new_string("purge"));
    json_object_object_add(doc, "matched", json_object_new_int64((int64_t)matched));
    json_object_object_add(doc, "deleted", json_object_new_int64(deleted));
    json_object_object_add(doc, "complete", json_object_new_boolean(complete));
    ctl_json_print(doc);
  } else {
    printf("purged %lld instance%s\n", deleted, deleted == 1 ? "" : "s");
  }
}

/* Purges each of |ids|. One that is no longer there or no longer finished (purged or restarted since it was
 * counted) deletes nothing, and is said so, but is no error. */
static int purge_ids(struct ctl *c, size_t matched, const struct ids *ids)
{
  long long total = 0;
  for (size_t i = 0; i < ids->n; i++) {
    int deleted = 0;
    int rc = dt_client_purge(c->client, ids->v[i], false, &deleted);
    if (rc != DT_OK) {
      if (total > 0)
        fprintf(stderr, "taskhubctl: %lld instances were purged before the error\n", total);
      return ctl_fail(c, rc, ids->v[i], "purge");
    }
    total += deleted;
  }
  if (!c->json && total < (long long)ids->n)
    fprintf(stderr, "taskhubctl: %lld of the %zu instances matched were gone or no longer finished\n",
            (long long)ids->n - total, ids->n);
  print_purged(c, matched, total, true);
  return CTL_EXIT_OK;
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

static int confirm_and_purge(struct ctl *c, size_t matched, const struct ids *ids);

static int purge_filter(struct ctl *c)
{
  static const dt_status finished[] = {DT_STATUS_COMPLETED, DT_STATUS_FAILED, DT_STATUS_TERMINATED,
                                       DT_STATUS_CANCELED};
  /* Count what the filter matches first, to say how many instances the confirmation is about. PurgeInstances
   * has no id prefix in its filter, so for --prefix the ids found here are what gets purged, one by one. */
  dt_query q = {
      .statuses = c->n_statuses ? c->statuses : finished,
      .n_statuses = c->n_statuses ? c->n_statuses : sizeof finished / sizeof finished[0],
      .created_from_ms = c->created_after,
      .created_to_ms = c->created_before,
      .instance_id_prefix = c->prefix,
      .page_size = 500,
  };
  size_t matched = 0;
  char *token = NULL;
  struct ids ids = {0};
  for (;;) {
    dt_instance_page *p = NULL;
    int rc = dt_client_query(c->client, &q, &p);
    if (rc != DT_OK) {
      free(token);
      ids_free(&ids);
      return ctl_fail(c, rc, NULL, "purge (counting matches)");
    }
    matched += p->n;
    bool oom = false;
    for (size_t i = 0; c->prefix && i < p->n && !oom; i++)
      oom = !ids_add(&ids, p->instances[i]->instance_id);
    if (oom) {
      dt_instance_page_free(p);
      free(token);
      ids_free(&ids);
      return ctl_fail(c, DT_ERR_NOMEM, NULL, "purge (counting matches)");
    }
    free(token);
    token = p->continuation ? strdup(p->continuation) : NULL;
    bool more = p->continuation != NULL;
    dt_instance_page_free(p);
    if (!more)
      break;
    if (!token) {
      ids_free(&ids);
      return ctl_fail(c, DT_ERR_NOMEM, NULL, "purge (counting matches)");
    }
    q.continuation = token;
  }
  int ex = confirm_and_purge(c, matched, &ids);
  ids_free(&ids);
  return ex;
}

/* Asks (unless --yes), then purges: by filter on the server, or the |ids| a --prefix matched. */
static int confirm_and_purge(struct ctl *c, size_t matched, const struct ids *ids)
{
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
      return ctl_usage_error(c, "refusing to purge %zu instance%s (%s) without confirmation: stdin is not a "
                            "terminal; pass --yes to purge anyway",
                         matched, matched == 1 ? "" : "s", desc);
    char question[640];
    snprintf(question, sizeof question, "Purge %zu instance%s (%s)? This cannot be undone.", matched,
             matched == 1 ? "" : "s", desc);
    if (!confirm(question)) {
      char msg[] = "purge: not confirmed; nothing was purged";
      fprintf(stderr, "taskhubctl: %s\n", msg);
      ctl_error_doc(c, "ABORTED", CTL_EXIT_FAILED, msg, NULL);
      return CTL_EXIT_FAILED;
    }
  }
  if (c->prefix)
    return purge_ids(c, matched, ids);
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
      return ctl_fail(c, rc, NULL, "purge");
    }
    total += deleted;
  }
  print_purged(c, matched, total, complete);
  return complete ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

int cmd_purge(struct ctl *c)
{
  bool filter = c->n_statuses > 0 || c->created_after || c->created_before || c->prefix;
  if (c->npos == 1) {
    if (filter)
      return ctl_usage_error(c, "purge takes an instance id or a filter (--status, --prefix, --created-after, "
                                "--created-before), not both");
    return purge_one(c);
  }
  if (!filter)
    return ctl_usage_error(c, "purge needs an instance id or a filter (--status, --prefix, --created-after, "
                              "--created-before)");
  if (c->recursive)
    return ctl_usage_error(c, "--recursive applies to purging one instance by id");
  for (size_t i = 0; i < c->n_statuses; i++)
    if (!ctl_status_is_final(c->statuses[i]))
      return ctl_usage_error(c, "purge --status %s: only finished instances (COMPLETED, FAILED, TERMINATED, "
                            "CANCELED) can be purged",
                         dt_status_name(c->statuses[i]));
  return purge_filter(c);
}
