/*
 * The dashboard's reads, through the store's read paths (the ones QueryInstances, GetInstance and
 * StreamInstanceHistory use): a page of instances from the time or id index with the query's scan budget, one
 * record with its payloads and inbox, a slice of a history, an instance's children, counts, and the engine's
 * figures. Every reply is bounded: pages, slices and lists have caps, so no request walks the whole task hub.
 */
#include "internal.h"

#include "common/metrics.h"
#include "common/util.h"
#include "store/query_token.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_PAGE 50
#define MAX_PAGE 500
/* A filter the store cannot apply itself (name, the second time range) is applied to at most this many store
 * pages per request; a page may come back short, with `next` to go on. */
#define MAX_ROUNDS 4
#define POST_FILTER_PAGE 1000
#define DEFAULT_SLICE 1000
#define MAX_SLICE 5000
#define SLICE_BYTES (16u << 20)
#define MAX_CHILDREN 500
#define MAX_INBOX_SHOWN 100

/* ------------------------------------------------------------------ parameters */

static const char *arg(struct MHD_Connection *conn, const char *name)
{
  return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

struct allowed {
  const char *const *names;
  const char *bad;
};

static enum MHD_Result check_name(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  struct allowed *a = cls;
  (void)kind;
  (void)value;
  for (const char *const *n = a->names; *n; n++)
    if (strcmp(*n, key) == 0)
      return MHD_YES;
  a->bad = key;
  return MHD_NO;
}

/* NULL, or the first query parameter not in |names| (a misspelt filter must not silently match everything). */
static const char *unknown_arg(struct MHD_Connection *conn, const char *const *names)
{
  struct allowed a = {names, NULL};
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, check_name, &a);
  return a.bad;
}

/* RFC 3339 ("2026-01-02T03:04:05Z", optional fraction, Z or ±hh:mm) or milliseconds since the epoch. */
static bool parse_time(const char *s, int64_t *us)
{
  if (!*s)
    return false;
  bool digits = true;
  for (const char *p = s; *p; p++)
    digits &= isdigit((unsigned char)*p) != 0;
  if (digits) {
    errno = 0;
    char *end;
    long long ms = strtoll(s, &end, 10);
    if (errno || *end || ms > INT64_MAX / 1000)
      return false;
    *us = ms * 1000;
    return true;
  }
  struct tm tm = {0};
  int n = 0;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
             &tm.tm_sec, &n) != 6 || n != 19)
    return false;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t t = (int64_t)timegm(&tm) * 1000000;
  const char *p = s + n;
  if (*p == '.') {
    int64_t scale = 100000;
    p++;
    if (!isdigit((unsigned char)*p))
      return false;
    for (; isdigit((unsigned char)*p); p++, scale /= 10)
      t += (*p - '0') * scale;
  }
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int hh, mm, k = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &k) != 2 || k != 5 || hh > 23 || mm > 59)
      return false;
    int64_t off = ((int64_t)hh * 3600 + mm * 60) * 1000000;
    t += *p == '+' ? -off : off;
    p += 6;
  } else {
    return false;
  }
  if (*p)
    return false;
  *us = t;
  return true;
}

static bool time_arg(struct MHD_Connection *conn, const char *name, bool *has, int64_t *us, char *why, size_t cap)
{
  const char *v = arg(conn, name);
  *has = v != NULL && *v;
  if (*has && !parse_time(v, us)) {
    snprintf(why, cap, "%s: \"%.64s\" is not a time (RFC 3339, e.g. 2026-01-02T03:04:05Z, or milliseconds since "
                       "the epoch)", name, v);
    return false;
  }
  return true;
}

static bool int_arg(struct MHD_Connection *conn, const char *name, long lo, long hi, long dflt, long *out,
                    char *why, size_t cap)
{
  const char *v = arg(conn, name);
  *out = dflt;
  if (!v || !*v)
    return true;
  errno = 0;
  char *end;
  long n = strtol(v, &end, 10);
  if (errno || *end || n < lo || n > hi) {
    snprintf(why, cap, "%s: \"%.32s\" is not a whole number from %ld to %ld", name, v, lo, hi);
    return false;
  }
  *out = n;
  return true;
}

static struct sc_store *store_or_503(struct sc_dashboard *d, struct MHD_Connection *conn, enum MHD_Result *ret)
{
  struct sc_store *st = atomic_load(&d->store);
  if (!st)
    *ret = dash_error(conn, 503, "taskhubd is still recovering: the store is not open yet");
  return st;
}

/* ------------------------------------------------------------------ records */

static struct json_object *instance_summary(const char *iid, const StoredInstance *r)
{
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(iid));
  json_object_object_add(o, "name", json_object_new_string(r->name ? r->name : ""));
  if (r->has_version)
    json_object_object_add(o, "version", json_object_new_string(r->version));
  json_object_object_add(o, "status", json_object_new_string(dash_status_name(r->status)));
  json_object_object_add(o, "createdAt", dash_json_time(r->created_us));
  json_object_object_add(o, "lastUpdatedAt", dash_json_time(r->last_updated_us));
  if (r->completed_us)
    json_object_object_add(o, "completedAt", dash_json_time(r->completed_us));
  if (r->scheduled_start_us)
    json_object_object_add(o, "scheduledStartAt", dash_json_time(r->scheduled_start_us));
  if (r->parent_instance_id && r->parent_instance_id[0])
    json_object_object_add(o, "parentId", json_object_new_string(r->parent_instance_id));
  if (r->n_tags) {
    struct json_object *t = json_object_new_object();
    for (size_t i = 0; i < r->n_tags; i++)
      json_object_object_add(t, r->tags[i]->key, json_object_new_string(r->tags[i]->value));
    json_object_object_add(o, "tags", t);
  }
  return o;
}

static void add_payload(struct json_object *o, const char *key, struct sc_store *st, const char *iid, int kind,
                        bool has, struct sc_arena *a)
{
  char *data;
  size_t len;
  if (has && st->ops->get_payload(st, iid, kind, a, &data, &len) == SC_OK)
    json_object_object_add(o, key, json_object_new_string_len(data, (int)len));
}

/* ------------------------------------------------------------------ instances */

static const int *status_list(const char *v, int *out, size_t *n, char *why, size_t cap)
{
  *n = 0;
  while (v && *v) {
    const char *comma = strchr(v, ',');
    size_t len = comma ? (size_t)(comma - v) : strlen(v);
    if (len) {
      int s = dash_status_parse(v, len);
      if (s < 0) {
        snprintf(why, cap, "status: \"%.*s\" is not a status (RUNNING, COMPLETED, CONTINUED_AS_NEW, FAILED, "
                           "CANCELED, TERMINATED, PENDING, SUSPENDED)", (int)(len > 64 ? 64 : len), v);
        return NULL;
      }
      bool dup = false;
      for (size_t i = 0; i < *n; i++)
        dup |= out[i] == s;
      if (!dup)
        out[(*n)++] = s;
    }
    v = comma ? comma + 1 : NULL;
  }
  return out;
}

static enum MHD_Result list_instances(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *rq)
{
  static const char *const names[] = {"status", "name", "prefix", "createdFrom", "createdTo", "completedFrom",
                                      "completedTo", "sort", "direction", "pageSize", "next", NULL};
  const char *bad = unknown_arg(conn, names);
  if (bad)
    return dash_error(conn, 400, "unknown parameter \"%.64s\" (instances take status, name, prefix, createdFrom, "
                                 "createdTo, completedFrom, completedTo, sort, direction, pageSize, next)", bad);
  char why[256];
  int statuses[8];
  struct sc_query q = {.statuses = statuses};
  if (!status_list(arg(conn, "status"), statuses, &q.n_statuses, why, sizeof why))
    return dash_error(conn, 400, "%s", why);
  bool has_cf, has_ct, has_df, has_dt;
  int64_t cf = 0, ct = 0, df = 0, dt = 0;
  if (!time_arg(conn, "createdFrom", &has_cf, &cf, why, sizeof why) ||
      !time_arg(conn, "createdTo", &has_ct, &ct, why, sizeof why) ||
      !time_arg(conn, "completedFrom", &has_df, &df, why, sizeof why) ||
      !time_arg(conn, "completedTo", &has_dt, &dt, why, sizeof why))
    return dash_error(conn, 400, "%s", why);
  long page;
  if (!int_arg(conn, "pageSize", 1, MAX_PAGE, DEFAULT_PAGE, &page, why, sizeof why))
    return dash_error(conn, 400, "%s", why);
  const char *sort = arg(conn, "sort");
  if (sort && *sort && strcmp(sort, "created") != 0 && strcmp(sort, "completed") != 0)
    return dash_error(conn, 400, "sort: \"%.32s\" is not one of created, completed", sort);
  /* Newest first unless asked otherwise: what a person looking at a task hub wants to see first. */
  const char *direction = arg(conn, "direction");
  if (direction && *direction && strcmp(direction, "desc") != 0 && strcmp(direction, "asc") != 0)
    return dash_error(conn, 400, "direction: \"%.32s\" is not one of desc (newest first), asc", direction);
  q.descending = !(direction && strcmp(direction, "asc") == 0);
  const char *prefix = arg(conn, "prefix");
  const char *name = arg(conn, "name");
  struct sc_err err;
  if (prefix && *prefix && !sc_check_text("prefix", prefix, d->cfg.limits.max_id, false, &err))
    return dash_sc_error(conn, &err);
  if (name && *name && !sc_check_text("name", name, d->cfg.limits.max_name, false, &err))
    return dash_sc_error(conn, &err);
  /* The store walks an id prefix in id order, and everything else by a time index. */
  bool by_id = prefix && *prefix;
  bool completed = !by_id && ((sort && strcmp(sort, "completed") == 0) || ((has_df || has_dt) && !has_cf && !has_ct));
  if (by_id && (sort && strcmp(sort, "completed") == 0))
    return dash_error(conn, 400, "sort=completed cannot be combined with prefix (a prefix lists in id order)");
  q.index = completed ? SC_Q_COMPLETED : SC_Q_CREATED;
  q.prefix = by_id ? prefix : NULL;
  if (completed) {
    q.has_from = has_df, q.from_us = df, q.has_to = has_dt, q.to_us = dt;
  } else {
    q.has_from = has_cf, q.from_us = cf, q.has_to = has_ct, q.to_us = ct;
  }
  bool prefix_mode = by_id;
  unsigned char cur[SC_CURSOR_MAX];
  const char *next = arg(conn, "next");
  if (next && *next) {
    const char *tw;
    if (!sc_query_token_decode(next, prefix_mode, cur, &q.cursor_len, &tw))
      return dash_error(conn, 400, "next: %s", tw);
    q.cursor = cur;
  }
  enum MHD_Result ret;
  struct sc_store *st = store_or_503(d, conn, &ret);
  if (!st)
    return ret;
  int64_t t0 = sc_mono_us();
  struct json_object *rows = json_object_new_array();
  size_t n = 0;
  unsigned char *resume = NULL;
  size_t resume_len = 0;
  /* With a filter the index cannot apply, each store page is read larger (most rows may not match) and the page
   * may end within it: then `next` resumes after the last row taken, in the index's cursor form. */
  bool post = (name && *name) || (completed ? has_cf || has_ct : has_df || has_dt);
  unsigned char last[SC_CURSOR_MAX];
  for (int round = 0; round < MAX_ROUNDS; round++) {
    struct sc_query_page pg;
    q.page_size = post ? POST_FILTER_PAGE : (size_t)page - n;
    if (st->ops->query(st, &q, &rq->arena, &pg, &err) != SC_OK) {
      json_object_put(rows);
      return dash_sc_error(conn, &err);
    }
    resume = pg.next_cursor;
    resume_len = pg.next_cursor_len;
    for (size_t i = 0; i < pg.n; i++) {
      const StoredInstance *r = pg.rows[i].rec;
      bool ok = !(name && *name && strcmp(r->name, name) != 0);
      if (completed)
        ok = ok && (!has_cf || r->created_us >= cf) && (!has_ct || r->created_us < ct);
      else
        ok = ok && (!has_df || (r->completed_us && r->completed_us >= df)) &&
             (!has_dt || (r->completed_us && r->completed_us < dt));
      if (!ok)
        continue;
      json_object_array_add(rows, instance_summary(pg.rows[i].iid, r));
      if (++n == (size_t)page) {
        if (i + 1 < pg.n) {
          size_t il = strlen(pg.rows[i].iid);
          size_t off = prefix_mode ? 0 : 8;
          if (!prefix_mode)
            sc_cursor_put_time(last, completed ? r->completed_us : r->created_us);
          memcpy(last + off, pg.rows[i].iid, il);
          resume = last;
          resume_len = off + il;
        }
        break;
      }
    }
    if (!resume || n >= (size_t)page)
      break;
    memcpy(cur, resume, resume_len);
    q.cursor = cur;
    q.cursor_len = resume_len;
  }
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "instances", rows);
  json_object_object_add(o, "next", resume ? json_object_new_string(sc_query_token_encode(&rq->arena, prefix_mode,
                                                                                          resume, resume_len))
                                           : NULL);
  json_object_object_add(o, "order", json_object_new_string(by_id ? "id" : completed ? "completed" : "created"));
  json_object_object_add(o, "direction", json_object_new_string(q.descending ? "desc" : "asc"));
  json_object_object_add(o, "serverMicros", json_object_new_int64(sc_mono_us() - t0));
  return dash_json(conn, 200, o);
}

/* ------------------------------------------------------------------ one instance */

static bool id_arg(struct sc_dashboard *d, struct MHD_Connection *conn, const char **iid, enum MHD_Result *ret)
{
  *iid = arg(conn, "id");
  struct sc_err err;
  if (!*iid || !**iid) {
    *ret = dash_error(conn, 400, "id: required (the instance id)");
    return false;
  }
  if (!sc_check_id(&d->cfg.limits, "id", *iid, &err)) {
    *ret = dash_sc_error(conn, &err);
    return false;
  }
  return true;
}

bool dash_only_id(struct sc_dashboard *d, struct MHD_Connection *conn, const char *endpoint, const char **iid,
                  enum MHD_Result *ret)
{
  static const char *const names[] = {"id", NULL};
  const char *bad = unknown_arg(conn, names);
  if (bad) {
    *ret = dash_error(conn, 400, "unknown parameter \"%.64s\" (%s takes id)", bad, endpoint);
    return false;
  }
  return id_arg(d, conn, iid, ret);
}

/* The instance ?id= (the endpoint's only parameter) names, with the store holding it and its record; false with the
 * reply (400, 404, 500, 503) sent. */
static bool instance_arg(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *rq,
                         const char *endpoint, const char **iid, struct sc_store **st, StoredInstance **r,
                         enum MHD_Result *ret)
{
  if (!dash_only_id(d, conn, endpoint, iid, ret) || !(*st = store_or_503(d, conn, ret)))
    return false;
  int rc = sc_store_get_instance(*st, *iid, &rq->arena, r);
  if (rc == SC_OK)
    return true;
  *ret = rc == SC_ENOTFOUND ? dash_error(conn, 404, "instance not found: %s", *iid)
                            : dash_error(conn, 500, "reading instance %s failed", *iid);
  return false;
}

static enum MHD_Result get_instance(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *rq)
{
  const char *iid;
  struct sc_store *st;
  StoredInstance *r;
  enum MHD_Result ret;
  if (!instance_arg(d, conn, rq, "instance", &iid, &st, &r, &ret))
    return ret;
  struct json_object *o = instance_summary(iid, r);
  json_object_object_add(o, "executionId", json_object_new_string(r->execution_id ? r->execution_id : ""));
  json_object_object_add(o, "historyLength", json_object_new_int64(r->history_count));
  add_payload(o, "input", st, iid, SC_PAYLOAD_INPUT, r->has_input, &rq->arena);
  add_payload(o, "output", st, iid, SC_PAYLOAD_OUTPUT, r->has_output, &rq->arena);
  add_payload(o, "customStatus", st, iid, SC_PAYLOAD_CUSTOM_STATUS, r->has_custom_status, &rq->arena);
  if (r->failure_details)
    json_object_object_add(o, "failureDetails", dash_json_message(&r->failure_details->base));
  json_object_object_add(o, "hasChildren", json_object_new_boolean(r->has_children));
  /* What waits for it: events raised and not yet delivered, and a requested suspend, resume or terminate. */
  struct json_object *w = json_object_new_object();
  json_object_object_add(w, "suspendRequested", json_object_new_boolean(r->suspend_requested));
  json_object_object_add(w, "resumeRequested", json_object_new_boolean(r->resume_requested));
  struct sc_inbox_msg *msgs;
  size_t nmsg;
  bool terminate = false;
  if (sc_store_inbox(st, iid, &rq->arena, &msgs, &nmsg) == SC_OK) {
    struct json_object *a = json_object_new_array();
    for (size_t i = 0; i < nmsg; i++) {
      HistoryEvent *ev = msgs[i].msg->event;
      if (!ev)
        continue;
      terminate |= ev->event_type_case == HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED;
      if (i < MAX_INBOX_SHOWN)
        json_object_array_add(a, dash_json_message(&ev->base));
    }
    json_object_object_add(w, "messages", a);
    json_object_object_add(w, "messageCount", json_object_new_int64((int64_t)nmsg));
  }
  json_object_object_add(w, "terminateRequested", json_object_new_boolean(terminate));
  json_object_object_add(o, "waiting", w);
  return dash_json(conn, 200, o);
}

static enum MHD_Result get_history(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *rq)
{
  static const char *const names[] = {"id", "from", "limit", NULL};
  const char *bad = unknown_arg(conn, names);
  if (bad)
    return dash_error(conn, 400, "unknown parameter \"%.64s\" (history takes id, from, limit)", bad);
  const char *iid;
  enum MHD_Result ret;
  if (!id_arg(d, conn, &iid, &ret))
    return ret;
  char why[160];
  long from, limit;
  if (!int_arg(conn, "from", 0, UINT32_MAX >> 1, 0, &from, why, sizeof why) ||
      !int_arg(conn, "limit", 1, MAX_SLICE, DEFAULT_SLICE, &limit, why, sizeof why))
    return dash_error(conn, 400, "%s", why);
  struct sc_store *st = store_or_503(d, conn, &ret);
  if (!st)
    return ret;
  int64_t t0 = sc_mono_us();
  struct sc_history_slice sl;
  int rc = st->ops->history_range(st, iid, (uint32_t)from, (size_t)limit, SLICE_BYTES, &rq->arena, &sl);
  if (rc == SC_ENOTFOUND)
    return dash_error(conn, 404, "instance not found: %s", iid);
  if (rc != SC_OK)
    return dash_error(conn, 500, "reading the history of %s failed", iid);
  struct json_object *o = json_object_new_object();
  struct json_object *a = json_object_new_array_ext((int)sl.n);
  for (size_t i = 0; i < sl.n; i++)
    json_object_array_add(a, dash_json_message(&sl.events[i]->base));
  json_object_object_add(o, "events", a);
  json_object_object_add(o, "from", json_object_new_int64(from));
  json_object_object_add(o, "total", json_object_new_int64(sl.rec->history_count));
  json_object_object_add(o, "executionId", json_object_new_string(sl.rec->execution_id ? sl.rec->execution_id : ""));
  json_object_object_add(o, "status", json_object_new_string(dash_status_name(sl.rec->status)));
  json_object_object_add(o, "generation", json_object_new_uint64(sl.generation));
  json_object_object_add(o, "serverMicros", json_object_new_int64(sc_mono_us() - t0));
  return dash_json(conn, 200, o);
}

struct kids {
  struct sc_store *st;
  struct sc_arena *a;
  struct json_object *arr;
  size_t n;
};

static int add_child(const char *child, void *ctx)
{
  struct kids *k = ctx;
  if (++k->n > MAX_CHILDREN)
    return SC_OK;
  StoredInstance *r;
  if (sc_store_get_instance(k->st, child, k->a, &r) == SC_OK)
    json_object_array_add(k->arr, instance_summary(child, r));
  return SC_OK;
}

static enum MHD_Result get_children(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *rq)
{
  const char *iid;
  struct sc_store *st;
  StoredInstance *r;
  enum MHD_Result ret;
  if (!instance_arg(d, conn, rq, "children", &iid, &st, &r, &ret))
    return ret;
  struct kids k = {st, &rq->arena, json_object_new_array(), 0};
  if (st->ops->children(st, iid, add_child, &k) != SC_OK) {
    json_object_put(k.arr);
    return dash_error(conn, 500, "reading the children of %s failed", iid);
  }
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "children", k.arr);
  json_object_object_add(o, "count", json_object_new_int64((int64_t)k.n));
  json_object_object_add(o, "truncated", json_object_new_boolean(k.n > MAX_CHILDREN));
  return dash_json(conn, 200, o);
}

/* ------------------------------------------------------------------ counts and overview */

/* {"byStatus", "total", "countedAgoMillis"}, or {"counting": true} before the first count is done. */
static struct json_object *counts_json(struct sc_dashboard *d, struct sc_store *st)
{
  uint64_t v[8];
  int64_t age;
  struct json_object *o = json_object_new_object();
  if (!dash_counts_get(d->counts, st, v, &age)) {
    json_object_object_add(o, "counting", json_object_new_boolean(1));
    return o;
  }
  struct json_object *c = json_object_new_object();
  uint64_t total = 0;
  for (int i = 0; i < 8; i++) {
    json_object_object_add(c, dash_status_name(i), json_object_new_uint64(v[i]));
    total += v[i];
  }
  json_object_object_add(o, "byStatus", c);
  json_object_object_add(o, "total", json_object_new_uint64(total));
  json_object_object_add(o, "countedAgoMillis", json_object_new_int64(age / 1000));
  json_object_object_add(o, "byName", dash_counts_names_json(d->counts));
  return o;
}

static enum MHD_Result get_counts(struct sc_dashboard *d, struct MHD_Connection *conn)
{
  static const char *const names[] = {NULL};
  const char *bad = unknown_arg(conn, names);
  if (bad)
    return dash_error(conn, 400, "unknown parameter \"%.64s\" (counts takes none)", bad);
  enum MHD_Result ret;
  struct sc_store *st = store_or_503(d, conn, &ret);
  if (!st)
    return ret;
  return dash_json(conn, 200, counts_json(d, st));
}

static struct json_object *u64(atomic_uint_fast64_t *v)
{
  return json_object_new_uint64(atomic_load_explicit(v, memory_order_relaxed));
}

static enum MHD_Result get_overview(struct sc_dashboard *d, struct MHD_Connection *conn)
{
  static const char *const names[] = {NULL};
  const char *bad = unknown_arg(conn, names);
  if (bad)
    return dash_error(conn, 400, "unknown parameter \"%.64s\" (overview takes none)", bad);
  enum MHD_Result ret;
  struct sc_store *st = store_or_503(d, conn, &ret);
  if (!st)
    return ret;
  struct sc_metrics *m = &sc_metrics;
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "now", dash_json_time(sc_now_us()));
  json_object_object_add(o, "started", u64(&m->started));
  json_object_object_add(o, "completed", u64(&m->finished[ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED]));
  json_object_object_add(o, "failed", u64(&m->finished[ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED]));
  json_object_object_add(o, "terminated", u64(&m->finished[ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED]));
  uint64_t cnt = atomic_load_explicit(&m->commit_latency.count, memory_order_relaxed);
  uint64_t sum = atomic_load_explicit(&m->commit_latency.sum_micros, memory_order_relaxed);
  json_object_object_add(o, "commits", json_object_new_uint64(cnt));
  json_object_object_add(o, "commitMicrosTotal", json_object_new_uint64(sum));
  struct sc_engine *e = atomic_load(&d->engine);
  if (e) {
    struct sc_engine_stats s;
    sc_engine_get_stats(e, &s);
    json_object_object_add(o, "readyOrchestrations", json_object_new_uint64(s.ready_orchestrations));
    json_object_object_add(o, "queuedActivities", json_object_new_uint64(s.queued_activities));
    json_object_object_add(o, "inFlightOrchestrations", json_object_new_uint64(s.inflight_orchestrations));
    json_object_object_add(o, "inFlightActivities", json_object_new_uint64(s.inflight_activities));
    json_object_object_add(o, "timers", json_object_new_uint64(s.timers));
    json_object_object_add(o, "workers", json_object_new_uint64(s.streams));
    json_object_object_add(o, "draining", json_object_new_boolean(s.draining));
  }
  json_object_object_add(o, "counts", counts_json(d, st));
  return dash_json(conn, 200, o);
}

/* Durable entities in id order: a page of the store's entity query (QueryEntities' read path). */
static enum MHD_Result list_entities(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *rq)
{
  static const char *const names[] = {"prefix", "pageSize", "next", NULL};
  const char *bad = unknown_arg(conn, names);
  if (bad)
    return dash_error(conn, 400, "unknown parameter \"%.64s\" (entities take prefix, pageSize, next)", bad);
  char why[160];
  long page;
  if (!int_arg(conn, "pageSize", 1, MAX_PAGE, DEFAULT_PAGE, &page, why, sizeof why))
    return dash_error(conn, 400, "%s", why);
  const char *prefix = arg(conn, "prefix"), *next = arg(conn, "next");
  struct sc_err err;
  if (prefix && *prefix && !sc_check_text("prefix", prefix, d->cfg.limits.max_id, false, &err))
    return dash_sc_error(conn, &err);
  if (next && *next && (!sc_is_entity_id(next) || !sc_check_text("next", next, d->cfg.limits.max_id, false, &err)))
    return dash_error(conn, 400, "next: not a token this server issued for entities");
  enum MHD_Result ret;
  struct sc_store *st = store_or_503(d, conn, &ret);
  if (!st)
    return ret;
  if (!st->ops->query_entities)
    return dash_error(conn, 404, "this store keeps no entities");
  /* Entity ids are "@name@key": "counter" and "@counter" mean the same prefix. */
  const char *full = !prefix || !*prefix ? NULL : prefix[0] == '@' ? prefix : sc_arena_printf(&rq->arena, "@%s", prefix);
  struct sc_entity_query q = {.prefix = full, .after = next && *next ? next : NULL, .include_transient = true,
                              .page_size = (size_t)page};
  struct sc_entity_page pg;
  if (st->ops->query_entities(st, &q, &rq->arena, &pg, &err) != SC_OK)
    return dash_sc_error(conn, &err);
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < pg.n; i++) {
    StoredEntity *e;
    if (sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &pg.rows[i].rec, &rq->arena, (void **)&e) !=
        SC_OK)
      continue;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(pg.rows[i].id));
    if (e->has_state)
      json_object_object_add(o, "state", json_object_new_string(e->state ? e->state : ""));
    json_object_object_add(o, "lastModifiedAt", dash_json_time(e->last_modified_us));
    if (e->locked_by && e->locked_by[0])
      json_object_object_add(o, "lockedBy", json_object_new_string(e->locked_by));
    json_object_object_add(o, "queued", json_object_new_int64(pg.rows[i].backlog));
    json_object_array_add(a, o);
  }
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "entities", a);
  json_object_object_add(o, "next", pg.next_after ? json_object_new_string(pg.next_after) : NULL);
  return dash_json(conn, 200, o);
}

static enum MHD_Result get_config(struct sc_dashboard *d, struct MHD_Connection *conn)
{
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "actions", json_object_new_boolean(d->cfg.mode == SC_DASHBOARD_ON));
  json_object_object_add(o, "version", json_object_new_string(TASKHUBD_VERSION));
  json_object_object_add(o, "ready", json_object_new_boolean(atomic_load(&d->store) != NULL));
  return dash_json(conn, 200, o);
}

enum MHD_Result dash_api_get(struct sc_dashboard *d, struct MHD_Connection *conn, struct dash_req *r,
                             const char *path)
{
  if (strcmp(path, "instances") == 0)
    return list_instances(d, conn, r);
  if (strcmp(path, "instance") == 0)
    return get_instance(d, conn, r);
  if (strcmp(path, "history") == 0)
    return get_history(d, conn, r);
  if (strcmp(path, "children") == 0)
    return get_children(d, conn, r);
  if (strcmp(path, "counts") == 0)
    return get_counts(d, conn);
  if (strcmp(path, "overview") == 0)
    return get_overview(d, conn);
  if (strcmp(path, "config") == 0)
    return get_config(d, conn);
  if (strcmp(path, "entities") == 0)
    return list_entities(d, conn, r);
  return dash_error(conn, 404, "no such endpoint: /api/v1/%.128s (instances, instance, history, children, counts, "
                               "overview, entities, config, events)", path);
}
