#define _GNU_SOURCE
#include "it.h"

#include <stdarg.h>
#include <time.h>

int it_setup(it_env *e, const char *const *extra_args)
{
  memset(e, 0, sizeof *e);
  int rc = th_server_start(&e->srv, extra_args);
  if (rc != 0)
    return rc;
  e->cli = th_client_open(e->srv.port);
  return 0;
}

void it_teardown(it_env *e)
{
  th_client_close(e->cli);
  e->cli = NULL;
  th_server_free(&e->srv);
}

void it_kill_restart(it_env *e)
{
  th_client_close(e->cli);
  e->cli = NULL;
  th_server_kill(&e->srv);
  th_server_restart(&e->srv);
  e->cli = th_client_open(e->srv.port);
}

void it_free(void *msg)
{
  if (msg)
    protobuf_c_message_free_unpacked((ProtobufCMessage *)msg, NULL);
}

grpc_status_code it_start_req(th_client *c, const CreateInstanceRequest *req, char **id_out, char **details)
{
  ProtobufCMessage *m = NULL;
  grpc_status_code st = th_call_unary(c, IT_SVC "StartInstance", &req->base, &create_instance_response__descriptor,
                                      IT_TIMEOUT_MS, &m, details);
  if (id_out)
    *id_out = NULL;
  if (st == GRPC_STATUS_OK) {
    CreateInstanceResponse *r = (CreateInstanceResponse *)m;
    if (id_out) {
      *id_out = strdup(r->instanceid);
      ASSERT(*id_out != NULL);
    }
  }
  it_free(m);
  return st;
}

char *it_start(th_client *c, const char *id, const char *name, const char *input)
{
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  req.instanceid = (char *)(id ? id : "");
  req.name = (char *)name;
  if (input) {
    in.value = (char *)input;
    req.input = &in;
  }
  char *out = NULL, *details = NULL;
  grpc_status_code st = it_start_req(c, &req, &out, &details);
  ASSERT_STATUS(st, GRPC_STATUS_OK, details);
  free(details);
  if (id && *id)
    ASSERT_STR_EQ(out, id);
  return out;
}

GetInstanceResponse *it_get(th_client *c, const char *id, int with_io)
{
  GetInstanceRequest req = GET_INSTANCE_REQUEST__INIT;
  req.instanceid = (char *)id;
  req.getinputsandoutputs = with_io != 0;
  ProtobufCMessage *m = NULL;
  char *details = NULL;
  grpc_status_code st =
      th_call_unary(c, IT_SVC "GetInstance", &req.base, &get_instance_response__descriptor, IT_TIMEOUT_MS, &m, &details);
  ASSERT_STATUS(st, GRPC_STATUS_OK, details);
  free(details);
  GetInstanceResponse *r = (GetInstanceResponse *)m;
  if (r->exists) {
    if (r->orchestrationstate == NULL)
      TEST_FAIL("GetInstance(%s): exists=true without orchestrationState", id);
    ASSERT_STR_EQ(r->orchestrationstate->instanceid, id);
  }
  return r;
}

int it_status(th_client *c, const char *id)
{
  GetInstanceResponse *r = it_get(c, id, 0);
  int st = r->exists ? (int)r->orchestrationstate->orchestrationstatus : -1;
  it_free(r);
  return st;
}

int it_exists(th_client *c, const char *id)
{
  return it_status(c, id) >= 0;
}

static grpc_status_code simple_call(th_client *c, const char *method, const ProtobufCMessage *req,
                                    const ProtobufCMessageDescriptor *rd, char **details)
{
  ProtobufCMessage *m = NULL;
  grpc_status_code st = th_call_unary(c, method, req, rd, IT_TIMEOUT_MS, &m, details);
  it_free(m);
  return st;
}

grpc_status_code it_terminate(th_client *c, const char *id, const char *output, char **details)
{
  TerminateRequest req = TERMINATE_REQUEST__INIT;
  Google__Protobuf__StringValue out = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  req.instanceid = (char *)id;
  if (output) {
    out.value = (char *)output;
    req.output = &out;
  }
  return simple_call(c, IT_SVC "TerminateInstance", &req.base, &terminate_response__descriptor, details);
}

grpc_status_code it_raise(th_client *c, const char *id, const char *name, const char *input, char **details)
{
  RaiseEventRequest req = RAISE_EVENT_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  req.instanceid = (char *)id;
  req.name = (char *)name;
  if (input) {
    in.value = (char *)input;
    req.input = &in;
  }
  return simple_call(c, IT_SVC "RaiseEvent", &req.base, &raise_event_response__descriptor, details);
}

grpc_status_code it_suspend(th_client *c, const char *id, char **details)
{
  SuspendRequest req = SUSPEND_REQUEST__INIT;
  req.instanceid = (char *)id;
  return simple_call(c, IT_SVC "SuspendInstance", &req.base, &suspend_response__descriptor, details);
}

grpc_status_code it_resume(th_client *c, const char *id, char **details)
{
  ResumeRequest req = RESUME_REQUEST__INIT;
  req.instanceid = (char *)id;
  return simple_call(c, IT_SVC "ResumeInstance", &req.base, &resume_response__descriptor, details);
}

grpc_status_code it_purge_one(th_client *c, const char *id, int32_t *deleted, int *complete, char **details)
{
  PurgeInstancesRequest req = PURGE_INSTANCES_REQUEST__INIT;
  req.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID;
  req.instanceid = (char *)id;
  ProtobufCMessage *m = NULL;
  grpc_status_code st = th_call_unary(c, IT_SVC "PurgeInstances", &req.base, &purge_instances_response__descriptor,
                                      IT_TIMEOUT_MS, &m, details);
  if (st == GRPC_STATUS_OK) {
    PurgeInstancesResponse *r = (PurgeInstancesResponse *)m;
    if (deleted)
      *deleted = r->deletedinstancecount;
    if (complete)
      *complete = r->iscomplete != NULL && r->iscomplete->value;
  }
  it_free(m);
  return st;
}

/* ---- string lists ---- */

void it_strs_add(it_strs *l, const char *s)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    ASSERT(l->v != NULL);
  }
  l->v[l->n] = strdup(s);
  ASSERT(l->v[l->n] != NULL);
  l->n++;
}

void it_strs_free(it_strs *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void it_strs_sort(it_strs *l)
{
  if (l->n > 1)
    qsort(l->v, l->n, sizeof *l->v, cmp_str);
}

int it_strs_contains(const it_strs *l, const char *s)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], s) == 0)
      return 1;
  return 0;
}

void it_assert_same_set(const it_strs *a, const it_strs *b, const char *what)
{
  it_strs x = {0}, y = {0};
  for (size_t i = 0; i < a->n; i++)
    it_strs_add(&x, a->v[i]);
  for (size_t i = 0; i < b->n; i++)
    it_strs_add(&y, b->v[i]);
  it_strs_sort(&x);
  it_strs_sort(&y);
  size_t i = 0;
  while (i < x.n && i < y.n && strcmp(x.v[i], y.v[i]) == 0)
    i++;
  if (i < x.n || i < y.n)
    TEST_FAIL("%s: sets differ (%zu vs %zu entries); first difference at sorted position %zu: \"%s\" vs \"%s\"", what,
              x.n, y.n, i, i < x.n ? x.v[i] : "(end)", i < y.n ? y.v[i] : "(end)");
  it_strs_free(&x);
  it_strs_free(&y);
}

/* ---- query ---- */

void it_query_all(th_client *c, InstanceQuery *q, it_strs *ids, it_strs *states, int max_pages)
{
  it_query_all_by(c, IT_SVC "QueryInstances", q, ids, states, max_pages);
}

void it_query_all_by(th_client *c, const char *method, InstanceQuery *q, it_strs *ids, it_strs *states,
                     int max_pages)
{
  QueryInstancesRequest req = QUERY_INSTANCES_REQUEST__INIT;
  req.query = q;
  Google__Protobuf__StringValue tok = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  it_strs seen_tokens = {0};
  char *token = NULL;
  size_t page_max = q->maxinstancecount > 0 ? (size_t)q->maxinstancecount : 100;
  int pages = 0;
  q->continuationtoken = NULL;
  for (;;) {
    if (token) {
      tok.value = token;
      q->continuationtoken = &tok;
    }
    ProtobufCMessage *m = NULL;
    char *details = NULL;
    grpc_status_code st = th_call_unary(c, method, &req.base, &query_instances_response__descriptor, IT_TIMEOUT_MS, &m,
                                        &details);
    ASSERT_STATUS(st, GRPC_STATUS_OK, details);
    free(details);
    pages++;
    if (pages > max_pages)
      TEST_FAIL("QueryInstances: more than %d pages", max_pages);
    QueryInstancesResponse *r = (QueryInstancesResponse *)m;
    if (r->n_orchestrationstate > page_max)
      TEST_FAIL("QueryInstances: page of %zu instances, maxInstanceCount %zu", r->n_orchestrationstate, page_max);
    for (size_t i = 0; i < r->n_orchestrationstate; i++) {
      const OrchestrationState *s = r->orchestrationstate[i];
      it_strs_add(ids, s->instanceid);
      if (states) {
        char line[1024];
        snprintf(line, sizeof line, "%s|%s", s->instanceid, it_status_name((int)s->orchestrationstatus));
        it_strs_add(states, line);
      }
    }
    free(token);
    token = NULL;
    if (r->continuationtoken) {
      const char *t = r->continuationtoken->value;
      if (t[0] == '\0' || strcmp(t, "0") == 0)
        TEST_FAIL("QueryInstances: continuation token \"%s\" (must be absent on the last page, never \"\" or \"0\")",
                  t);
      if (it_strs_contains(&seen_tokens, t))
        TEST_FAIL("QueryInstances: continuation token \"%s\" repeated", t);
      it_strs_add(&seen_tokens, t);
      token = strdup(t);
      ASSERT(token != NULL);
    }
    it_free(m);
    if (token == NULL)
      break;
  }
  q->continuationtoken = NULL;
  it_strs_free(&seen_tokens);
}

/* ---- snapshots ---- */

typedef struct sbuf {
  char *p;
  size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    ASSERT(k >= 0);
    if (b->p && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    b->cap = (b->cap + (size_t)k + 1) * 2;
    b->p = realloc(b->p, b->cap);
    ASSERT(b->p != NULL);
  }
}

static void sb_sv(sbuf *b, const char *label, const Google__Protobuf__StringValue *v)
{
  if (v == NULL)
    sb_printf(b, " %s=-", label);
  else
    sb_printf(b, " %s=\"%s\"(%zu)", label, v->value, strlen(v->value));
}

static void sb_ts(sbuf *b, const char *label, const Google__Protobuf__Timestamp *t)
{
  if (t == NULL)
    sb_printf(b, " %s=-", label);
  else
    sb_printf(b, " %s=%" PRId64 ".%09" PRId32, label, t->seconds, t->nanos);
}

static char *state_line(const OrchestrationState *s)
{
  sbuf b = {0};
  sb_printf(&b, "%s name=%s status=%s", s->instanceid, s->name, it_status_name((int)s->orchestrationstatus));
  sb_sv(&b, "version", s->version);
  sb_sv(&b, "exec", s->executionid);
  sb_sv(&b, "input", s->input);
  sb_sv(&b, "output", s->output);
  sb_sv(&b, "custom", s->customstatus);
  sb_sv(&b, "parent", s->parentinstanceid);
  sb_ts(&b, "created", s->createdtimestamp);
  sb_ts(&b, "updated", s->lastupdatedtimestamp);
  sb_ts(&b, "completed", s->completedtimestamp);
  sb_ts(&b, "scheduled", s->scheduledstarttimestamp);
  it_strs tags = {0};
  for (size_t i = 0; i < s->n_tags; i++) {
    char t[1024];
    snprintf(t, sizeof t, "%s=%s", s->tags[i]->key, s->tags[i]->value);
    it_strs_add(&tags, t);
  }
  it_strs_sort(&tags);
  for (size_t i = 0; i < tags.n; i++)
    sb_printf(&b, " tag:%s", tags.v[i]);
  it_strs_free(&tags);
  return b.p;
}

char *it_snapshot(th_client *c)
{
  InstanceQuery q = INSTANCE_QUERY__INIT;
  q.maxinstancecount = 100;
  it_strs ids = {0};
  it_query_all(c, &q, &ids, NULL, 1000);
  it_strs lines = {0};
  for (size_t i = 0; i < ids.n; i++) {
    GetInstanceResponse *r = it_get(c, ids.v[i], 1);
    if (!r->exists)
      TEST_FAIL("snapshot: QueryInstances returned %s but GetInstance says it does not exist", ids.v[i]);
    char *line = state_line(r->orchestrationstate);
    it_strs_add(&lines, line);
    free(line);
    it_free(r);
  }
  it_strs_sort(&lines);
  sbuf b = {0};
  sb_printf(&b, "%zu instances\n", lines.n);
  for (size_t i = 0; i < lines.n; i++)
    sb_printf(&b, "%s\n", lines.v[i]);
  it_strs_free(&lines);
  it_strs_free(&ids);
  return b.p;
}

void it_assert_snapshot(th_client *c, const char *before, const char *what)
{
  char *after = it_snapshot(c);
  if (strcmp(before, after) != 0) {
    fprintf(stderr, "store changed by %s\n--- before ---\n%s--- after ---\n%s", what, before, after);
    free(after);
    TEST_FAIL("store changed by %s", what);
  }
  free(after);
}

/* ---- misc ---- */

Google__Protobuf__Timestamp it_ts_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  t.seconds = ts.tv_sec;
  t.nanos = (int32_t)ts.tv_nsec;
  return t;
}

Google__Protobuf__Timestamp it_ts_from_ms(long long ms)
{
  Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  t.seconds = ms / 1000;
  t.nanos = (int32_t)(ms % 1000) * 1000000;
  return t;
}

long long it_ts_ms(const Google__Protobuf__Timestamp *t)
{
  return (long long)t->seconds * 1000 + t->nanos / 1000000;
}

int it_ts_cmp(const Google__Protobuf__Timestamp *a, const Google__Protobuf__Timestamp *b)
{
  if (a->seconds != b->seconds)
    return a->seconds < b->seconds ? -1 : 1;
  if (a->nanos != b->nanos)
    return a->nanos < b->nanos ? -1 : 1;
  return 0;
}

char *it_repeat(char ch, size_t n)
{
  char *s = malloc(n + 1);
  ASSERT(s != NULL);
  memset(s, ch, n);
  s[n] = '\0';
  return s;
}

int it_is_lower_hex(const char *s, size_t n)
{
  if (s == NULL || strlen(s) != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

const char *it_status_name(int st)
{
  switch (st) {
  case -1: return "(absent)";
  case RUNNING: return "RUNNING";
  case COMPLETED: return "COMPLETED";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW: return "CONTINUED_AS_NEW";
  case FAILED: return "FAILED";
  case CANCELED: return "CANCELED";
  case TERMINATED: return "TERMINATED";
  case PENDING: return "PENDING";
  case SUSPENDED: return "SUSPENDED";
  default: return "(unknown status)";
  }
}
