#define _GNU_SOURCE
#include "hx.h"

#include "google/protobuf/empty.pb-c.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

void hx_varint(hx_buf *p, uint64_t v)
{
  do {
    if (p->n + 1 > p->cap) {
      p->cap = p->cap ? p->cap * 2 : 256;
      p->b = realloc(p->b, p->cap);
      ASSERT(p->b != NULL);
    }
    uint8_t byte = v & 0x7f;
    v >>= 7;
    p->b[p->n++] = (uint8_t)(byte | (v ? 0x80 : 0));
  } while (v);
}

void hx_tag(hx_buf *p, unsigned field, unsigned wire_type)
{
  hx_varint(p, (uint64_t)field << 3 | wire_type);
}

void hx_bytes(hx_buf *p, unsigned field, const void *data, size_t len)
{
  hx_tag(p, field, 2);
  hx_varint(p, len);
  while (p->n + len > p->cap) {
    p->cap = p->cap ? p->cap * 2 : 256;
    p->b = realloc(p->b, p->cap);
    ASSERT(p->b != NULL);
  }
  if (len)
    memcpy(p->b + p->n, data, len);
  p->n += len;
}

void hx_str(hx_buf *p, unsigned field, const char *s)
{
  hx_bytes(p, field, s, strlen(s));
}

void hx_uint(hx_buf *p, unsigned field, uint64_t v)
{
  hx_tag(p, field, 0);
  hx_varint(p, v);
}

void hx_msg(hx_buf *p, unsigned field, const hx_buf *inner)
{
  hx_bytes(p, field, inner->b, inner->n);
}

void hx_free(hx_buf *p)
{
  free(p->b);
  memset(p, 0, sizeof *p);
}

grpc_status_code hx_send(th_client *c, const char *method, const hx_buf *p, char **details)
{
  return th_call_raw(c, method, p->b, p->n, IT_TIMEOUT_MS, NULL, NULL, details);
}

void hx_assert_alive(th_client *c)
{
  Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
  char *d = NULL;
  grpc_status_code st = th_call_unary(c, IT_SVC "Hello", &req.base, &google__protobuf__empty__descriptor,
                                      IT_TIMEOUT_MS, NULL, &d);
  ASSERT_STATUS(st, GRPC_STATUS_OK, d);
  free(d);
}

char *hx_server_log(const th_server *s)
{
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/log-%d.txt", s->root, s->starts - 1);
  FILE *f = fopen(path, "rb");
  ASSERT(f != NULL);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  ASSERT(buf != NULL);
  ASSERT_EQ(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = 0;
  fclose(f);
  return buf;
}

long hx_rss_kb(pid_t pid)
{
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  ASSERT(f != NULL);
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  ASSERT_GT(kb, 0);
  return kb;
}

int hx_free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
  socklen_t len = sizeof a;
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
  close(fd);
  return ntohs(a.sin_port);
}

char *hx_http_get(int port, const char *path, int *code)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
  ASSERT_EQ(write(fd, req, (size_t)n), n);
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  ASSERT(buf != NULL);
  for (;;) {
    if (len + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      ASSERT(buf != NULL);
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    ASSERT(r >= 0);
    if (r == 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = 0;
  ASSERT_EQ(sscanf(buf, "HTTP/1.%*d %d", code), 1);
  char *body = strstr(buf, "\r\n\r\n");
  ASSERT(body != NULL);
  char *out = strdup(body + 4);
  free(buf);
  return out;
}

double hx_metric(int port, const char *name)
{
  int code = 0;
  char *body = hx_http_get(port, "/metrics", &code);
  ASSERT_EQ(code, 200);
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  char *p = strstr(body, key);
  if (!p)
    TEST_FAIL("metric %s not found", name);
  double v = strtod(p + strlen(key), NULL);
  free(body);
  return v;
}

/* ---- bulk ---- */

void hx_pipeline(th_client *c, const char *method, int n, hx_make_fn make, void *ctx)
{
  enum { WINDOW = 128 };
  th_call *ring[WINDOW] = {0};
  for (int i = 0; i < n + WINDOW; i++) {
    th_call **slot = &ring[i % WINDOW];
    if (*slot) {
      char *d = NULL;
      ASSERT_STATUS(th_call_finish(*slot, NULL, NULL, &d), GRPC_STATUS_OK, d);
      free(d);
      *slot = NULL;
    }
    if (i < n)
      *slot = th_call_start(c, method, make(i, ctx), 30000);
  }
}

/* ---- a scripted worker ---- */

void *hx_alloc(hx_arena *a, size_t n)
{
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 64;
    a->p = realloc(a->p, a->cap * sizeof *a->p);
    ASSERT(a->p != NULL);
  }
  void *p = calloc(1, n ? n : 1);
  ASSERT(p != NULL);
  a->p[a->n++] = p;
  return p;
}

char *hx_strdup(hx_arena *a, const char *s)
{
  char *p = hx_alloc(a, strlen(s) + 1);
  strcpy(p, s);
  return p;
}

void hx_arena_free(hx_arena *a)
{
  for (size_t i = 0; i < a->n; i++)
    free(a->p[i]);
  free(a->p);
  memset(a, 0, sizeof *a);
}

static size_t count_names(const char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

/* A client for a worker that stops reading. Its transport stops taking messages only once its receive window is
 * full; on a shared connection, or with gRPC's bandwidth probe, that window grows with other clients' traffic until
 * the lazy transport has taken in every instance (a few MB) and the server has nothing stalled to notice. A
 * connection of its own with a fixed 64 KB window is the worker the tests mean. */
th_client *hx_lazy_client(int port)
{
  grpc_arg args[] = {
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, {.integer = 64 * 1024}},
  };
  grpc_channel_args chan = {sizeof args / sizeof args[0], args};
  return th_client_open_args(port, &chan);
}

int hx_drain(th_client *c, th_stream *w, int n, int wait_ms)
{
  int got = 0;
  while (got < n) {
    WorkItem *wi = th_work_next(w, wait_ms);
    if (!wi)
      break;
    got++;
    char *d = NULL;
    hx_arena a = {0};
    OrchestratorAction *fin = hx_finish(&a, 1, COMPLETED, NULL);
    ASSERT_STATUS(hx_complete_orch(c, wi->completiontoken, NULL, &fin, 1, NULL, &d), GRPC_STATUS_OK, d);
    free(d);
    hx_arena_free(&a);
    work_item__free_unpacked(wi, NULL);
  }
  return got;
}

th_stream *hx_worker(th_client *c, int max_orch, int max_act, const char *const *orchestrations,
                     const char *const *activities, int history_streaming)
{
  hx_arena a = {0};
  GetWorkItemsRequest req = GET_WORK_ITEMS_REQUEST__INIT;
  req.maxconcurrentorchestrationworkitems = max_orch;
  req.maxconcurrentactivityworkitems = max_act;
  WorkerCapability cap = WORKER_CAPABILITY__WORKER_CAPABILITY_HISTORY_STREAMING;
  if (history_streaming) {
    req.n_capabilities = 1;
    req.capabilities = &cap;
  }
  WorkItemFilters f = WORK_ITEM_FILTERS__INIT;
  if (orchestrations || activities) {
    f.n_orchestrations = count_names(orchestrations);
    f.orchestrations = hx_alloc(&a, (f.n_orchestrations + 1) * sizeof *f.orchestrations);
    for (size_t i = 0; i < f.n_orchestrations; i++) {
      OrchestrationFilter *o = hx_alloc(&a, sizeof *o);
      orchestration_filter__init(o);
      o->name = (char *)orchestrations[i];
      f.orchestrations[i] = o;
    }
    f.n_activities = count_names(activities);
    f.activities = hx_alloc(&a, (f.n_activities + 1) * sizeof *f.activities);
    for (size_t i = 0; i < f.n_activities; i++) {
      ActivityFilter *o = hx_alloc(&a, sizeof *o);
      activity_filter__init(o);
      o->name = (char *)activities[i];
      f.activities[i] = o;
    }
    req.workitemfilters = &f;
  }
  th_stream *s = th_work_open(c, &req);
  hx_arena_free(&a);
  return s;
}

WorkItem *hx_expect_orch(th_stream *s, int wait_ms, const char *what)
{
  WorkItem *wi = th_work_expect(s, wait_ms, what);
  if (wi->request_case != WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST)
    TEST_FAIL("%s: expected an orchestration work item, got kind %d", what, (int)wi->request_case);
  return wi;
}

WorkItem *hx_expect_act(th_stream *s, int wait_ms, const char *what)
{
  WorkItem *wi = th_work_expect(s, wait_ms, what);
  if (wi->request_case != WORK_ITEM__REQUEST_ACTIVITY_REQUEST)
    TEST_FAIL("%s: expected an activity work item, got kind %d", what, (int)wi->request_case);
  return wi;
}

static Google__Protobuf__StringValue *sv(hx_arena *a, const char *s)
{
  if (!s)
    return NULL;
  Google__Protobuf__StringValue *v = hx_alloc(a, sizeof *v);
  google__protobuf__string_value__init(v);
  v->value = hx_strdup(a, s);
  return v;
}

static OrchestratorAction *action(hx_arena *a, int32_t id)
{
  OrchestratorAction *x = hx_alloc(a, sizeof *x);
  orchestrator_action__init(x);
  x->id = id;
  return x;
}

OrchestratorAction *hx_schedule(hx_arena *a, int32_t id, const char *name, const char *input)
{
  OrchestratorAction *x = action(a, id);
  ScheduleTaskAction *s = hx_alloc(a, sizeof *s);
  schedule_task_action__init(s);
  s->name = hx_strdup(a, name);
  s->input = sv(a, input);
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK;
  x->scheduletask = s;
  return x;
}

OrchestratorAction *hx_timer(hx_arena *a, int32_t id, long long fire_at_ms)
{
  OrchestratorAction *x = action(a, id);
  CreateTimerAction *t = hx_alloc(a, sizeof *t);
  create_timer_action__init(t);
  Google__Protobuf__Timestamp *ts = hx_alloc(a, sizeof *ts);
  *ts = it_ts_from_ms(fire_at_ms);
  t->fireat = ts;
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER;
  x->createtimer = t;
  return x;
}

OrchestratorAction *hx_sub(hx_arena *a, int32_t id, const char *name, const char *iid)
{
  OrchestratorAction *x = action(a, id);
  CreateSubOrchestrationAction *s = hx_alloc(a, sizeof *s);
  create_sub_orchestration_action__init(s);
  s->name = hx_strdup(a, name);
  s->instanceid = hx_strdup(a, iid ? iid : "");
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION;
  x->createsuborchestration = s;
  return x;
}

OrchestratorAction *hx_finish(hx_arena *a, int32_t id, int status, const char *result)
{
  OrchestratorAction *x = action(a, id);
  CompleteOrchestrationAction *c = hx_alloc(a, sizeof *c);
  complete_orchestration_action__init(c);
  c->orchestrationstatus = status;
  c->result = sv(a, result);
  x->orchestrator_action_type_case = ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_COMPLETE_ORCHESTRATION;
  x->completeorchestration = c;
  return x;
}

grpc_status_code hx_complete_orch(th_client *c, const char *token, const char *iid, OrchestratorAction **acts,
                                  size_t n, const char *custom_status, char **details)
{
  hx_arena a = {0};
  OrchestratorResponse r = ORCHESTRATOR_RESPONSE__INIT;
  r.completiontoken = (char *)(token ? token : "");
  r.instanceid = (char *)(iid ? iid : "");
  r.actions = acts;
  r.n_actions = n;
  r.customstatus = sv(&a, custom_status);
  grpc_status_code st =
      th_call_unary(c, IT_SVC "CompleteOrchestratorTask", &r.base, NULL, IT_TIMEOUT_MS, NULL, details);
  hx_arena_free(&a);
  return st;
}

grpc_status_code hx_complete_act(th_client *c, const char *token, const char *iid, int32_t task_id,
                                 const char *result, char **details)
{
  hx_arena a = {0};
  ActivityResponse r = ACTIVITY_RESPONSE__INIT;
  r.completiontoken = (char *)(token ? token : "");
  r.instanceid = (char *)(iid ? iid : "");
  r.taskid = task_id;
  r.result = sv(&a, result);
  grpc_status_code st = th_call_unary(c, IT_SVC "CompleteActivityTask", &r.base, NULL, IT_TIMEOUT_MS, NULL, details);
  hx_arena_free(&a);
  return st;
}

GetInstanceResponse *hx_wait_done(th_client *c, const char *iid, int wait_ms)
{
  GetInstanceRequest req = GET_INSTANCE_REQUEST__INIT;
  req.instanceid = (char *)iid;
  req.getinputsandoutputs = 1;
  ProtobufCMessage *m = NULL;
  char *d = NULL;
  grpc_status_code st = th_call_unary(c, IT_SVC "WaitForInstanceCompletion", &req.base,
                                      &get_instance_response__descriptor, wait_ms, &m, &d);
  if (st != GRPC_STATUS_OK)
    TEST_FAIL("waiting for %s to finish: %s (%s), status now %s", iid, th_status_name(st), d,
              it_status_name(it_status(c, iid)));
  free(d);
  return (GetInstanceResponse *)m;
}

void hx_history(th_client *c, const char *iid, hx_hist *h)
{
  memset(h, 0, sizeof *h);
  StreamInstanceHistoryRequest req = STREAM_INSTANCE_HISTORY_REQUEST__INIT;
  req.instanceid = (char *)iid;
  th_stream *s = th_stream_start(c, IT_SVC "StreamInstanceHistory", &req.base, IT_TIMEOUT_MS);
  size_t cap = 0;
  for (;;) {
    uint8_t *buf;
    size_t len;
    int r = th_stream_read(s, IT_TIMEOUT_MS, &buf, &len);
    if (r == 0)
      TEST_FAIL("StreamInstanceHistory(%s): no chunk within %d ms", iid, IT_TIMEOUT_MS);
    if (r < 0)
      break;
    HistoryChunk *ch = history_chunk__unpack(NULL, len, buf);
    free(buf);
    ASSERT(ch != NULL);
    h->chunks = realloc(h->chunks, (h->nchunks + 1) * sizeof *h->chunks);
    ASSERT(h->chunks != NULL);
    h->chunks[h->nchunks++] = ch;
    for (size_t i = 0; i < ch->n_events; i++) {
      if (h->n == cap) {
        cap = cap ? cap * 2 : 64;
        h->ev = realloc(h->ev, cap * sizeof *h->ev);
        ASSERT(h->ev != NULL);
      }
      h->ev[h->n++] = ch->events[i];
    }
  }
  char *d = NULL;
  grpc_status_code st = th_stream_status(s, &d);
  ASSERT_STATUS(st, GRPC_STATUS_OK, d);
  free(d);
  th_stream_free(s);
}

void hx_history_free(hx_hist *h)
{
  for (size_t i = 0; i < h->nchunks; i++)
    history_chunk__free_unpacked(h->chunks[i], NULL);
  free(h->chunks);
  free(h->ev);
  memset(h, 0, sizeof *h);
}

size_t hx_count(const hx_hist *h, int type)
{
  size_t n = 0;
  for (size_t i = 0; i < h->n; i++)
    n += (int)h->ev[i]->event_type_case == type;
  return n;
}

void hx_expect_superseded(th_client *c, const char *iid, const char *old_token, const char *new_token)
{
  hx_arena a = {0};
  char *d = NULL;
  OrchestratorAction *fin = hx_finish(&a, 1, COMPLETED, "\"old\"");
  ASSERT_STATUS(hx_complete_orch(c, old_token, NULL, &fin, 1, NULL, &d), GRPC_STATUS_NOT_FOUND, d);
  free(d);
  fin = hx_finish(&a, 1, COMPLETED, "\"new\"");
  ASSERT_STATUS(hx_complete_orch(c, new_token, NULL, &fin, 1, NULL, &d), GRPC_STATUS_OK, d);
  free(d);
  GetInstanceResponse *g = hx_wait_done(c, iid, 5000);
  ASSERT_STR_EQ(g->orchestrationstate->output->value, "\"new\"");
  it_free(g);
  hx_arena_free(&a);
}
