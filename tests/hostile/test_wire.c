/* Issue 13, defects 1, 9 and 14: what a request's encoding may hold, checked before anything unpacks it. */
#define _GNU_SOURCE
#include "hx.h"

#include <json-c/json.h>

#define ACT IT_SVC "CompleteActivityTask"

/* TaskFailureDetails{errorType:"E", innerFailure: ...} nested |depth| deep. */
static void nested_failure(hx_buf *out, int depth)
{
  hx_buf cur = {0};
  hx_str(&cur, 1, "E");
  for (int i = 1; i < depth; i++) {
    hx_buf next = {0};
    hx_str(&next, 1, "E");
    hx_msg(&next, 4, &cur);
    hx_free(&cur);
    cur = next;
  }
  *out = cur;
}

/* ActivityResponse{instanceId:"nobody", taskId:1, failureDetails: f}. */
static void activity_response(hx_buf *out, const hx_buf *f)
{
  memset(out, 0, sizeof *out);
  hx_str(out, 1, "nobody");
  hx_uint(out, 2, 1);
  hx_msg(out, 4, f);
}

TEST_IMPL(hostile_nested_failure_is_refused)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  hx_buf f, req;
  nested_failure(&f, 10000);
  activity_response(&req, &f);
  ASSERT_GT(req.n, 30000); /* the 34 KB message of the report */
  char *d = NULL;
  grpc_status_code st = hx_send(e.cli, ACT, &req, &d);
  ASSERT_STATUS(st, GRPC_STATUS_INVALID_ARGUMENT, d);
  ASSERT_STR_CONTAINS(d, "failureDetails.innerFailure");
  ASSERT_STR_CONTAINS(d, "nested more than 100");
  free(d);
  hx_free(&f);
  hx_free(&req);
  hx_assert_alive(e.cli);
  /* Ordinary nesting still passes the check: the call reaches the engine, which knows no such work item. */
  nested_failure(&f, 20);
  activity_response(&req, &f);
  st = hx_send(e.cli, ACT, &req, &d);
  ASSERT_STATUS(st, GRPC_STATUS_NOT_FOUND, d);
  free(d);
  hx_free(&f);
  hx_free(&req);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(hostile_nested_value_is_refused)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  /* google.protobuf.Value{struct_value(5): Struct{fields(1): {key:"a", value: Value{...}}}} */
  hx_buf v = {0};
  hx_uint(&v, 4, 1); /* bool_value: the innermost value */
  for (int i = 0; i < 5000; i++) {
    hx_buf entry = {0}, st = {0}, outer = {0};
    hx_str(&entry, 1, "a");
    hx_msg(&entry, 2, &v);
    hx_msg(&st, 1, &entry);
    hx_msg(&outer, 5, &st);
    hx_free(&entry);
    hx_free(&st);
    hx_free(&v);
    v = outer;
  }
  /* TaskFailureDetails{errorType:"E", properties(6): {key:"p", value: v}} */
  hx_buf entry = {0}, f = {0}, req;
  hx_str(&entry, 1, "p");
  hx_msg(&entry, 2, &v);
  hx_str(&f, 1, "E");
  hx_msg(&f, 6, &entry);
  activity_response(&req, &f);
  char *d = NULL;
  grpc_status_code st = hx_send(e.cli, ACT, &req, &d);
  ASSERT_STATUS(st, GRPC_STATUS_INVALID_ARGUMENT, d);
  ASSERT_STR_CONTAINS(d, "failureDetails.properties");
  ASSERT_STR_CONTAINS(d, "nested more than 100");
  free(d);
  hx_free(&v);
  hx_free(&entry);
  hx_free(&f);
  hx_free(&req);
  hx_assert_alive(e.cli);
  it_teardown(&e);
  return 0;
}

/* Timestamp{seconds, nanos} */
static void ts(hx_buf *out, int64_t seconds, int64_t nanos)
{
  memset(out, 0, sizeof *out);
  if (seconds)
    hx_uint(out, 1, (uint64_t)seconds);
  if (nanos)
    hx_uint(out, 2, (uint64_t)nanos);
}

static void expect_refused(th_client *c, const char *method, const hx_buf *req, const char *field)
{
  char *d = NULL;
  grpc_status_code st = hx_send(c, method, req, &d);
  if (st != GRPC_STATUS_INVALID_ARGUMENT)
    TEST_FAIL("%s naming %s: status %s (\"%s\"), expected INVALID_ARGUMENT", method, field, th_status_name(st), d);
  ASSERT_STR_CONTAINS(d, field);
  free(d);
}

TEST_IMPL(hostile_timestamps_out_of_range)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  free(it_start(e.cli, "ts-1", "Orch", NULL));
  char *before = it_snapshot(e.cli);
  hx_buf t, q, req;
  /* QueryInstances(createdTimeFrom.seconds = INT64_MAX/2): the overflow of the report. */
  ts(&t, INT64_MAX / 2, 0);
  memset(&q, 0, sizeof q);
  hx_msg(&q, 2, &t);
  memset(&req, 0, sizeof req);
  hx_msg(&req, 1, &q);
  expect_refused(e.cli, IT_SVC "QueryInstances", &req, "query.createdTimeFrom");
  hx_free(&t), hx_free(&q), hx_free(&req);
  /* The same at the other end, and nanos out of range. */
  ts(&t, -INT64_MAX / 2, 0);
  memset(&q, 0, sizeof q);
  hx_msg(&q, 3, &t);
  memset(&req, 0, sizeof req);
  hx_msg(&req, 1, &q);
  expect_refused(e.cli, IT_SVC "QueryInstances", &req, "query.createdTimeTo");
  hx_free(&t), hx_free(&q), hx_free(&req);
  ts(&t, 1, 2000000000);
  memset(&req, 0, sizeof req);
  hx_msg(&req, 2, &t); /* ListInstanceIdsRequest.completedTimeFrom */
  expect_refused(e.cli, IT_SVC "ListInstanceIds", &req, "completedTimeFrom");
  hx_free(&t), hx_free(&req);
  /* StartInstance with a scheduled start in the year 300,000,000,000. */
  ts(&t, INT64_MAX / 1000, 0);
  memset(&req, 0, sizeof req);
  hx_str(&req, 1, "ts-2");
  hx_str(&req, 2, "Orch");
  hx_msg(&req, 5, &t); /* scheduledStartTimestamp */
  expect_refused(e.cli, IT_SVC "StartInstance", &req, "scheduledStartTimestamp");
  hx_free(&t), hx_free(&req);
  /* PurgeInstances by filter with a Duration timeout of INT64_MAX seconds. */
  hx_buf dur = {0}, f = {0};
  hx_uint(&dur, 1, (uint64_t)INT64_MAX);
  hx_msg(&f, 4, &dur);
  memset(&req, 0, sizeof req);
  hx_msg(&req, 2, &f); /* purgeInstanceFilter */
  expect_refused(e.cli, IT_SVC "PurgeInstances", &req, "purgeInstanceFilter.timeout");
  hx_free(&dur), hx_free(&f), hx_free(&req);
  it_assert_snapshot(e.cli, before, "out-of-range timestamps");
  free(before);
  ASSERT(!it_exists(e.cli, "ts-2"));
  /* A timestamp at the edge of the range is fine. */
  ts(&t, 253402300799LL, 999999999);
  memset(&q, 0, sizeof q);
  hx_msg(&q, 3, &t);
  memset(&req, 0, sizeof req);
  hx_msg(&req, 1, &q);
  char *d = NULL;
  ASSERT_STATUS(hx_send(e.cli, IT_SVC "QueryInstances", &req, &d), GRPC_STATUS_OK, d);
  free(d);
  hx_free(&t), hx_free(&q), hx_free(&req);
  it_teardown(&e);
  return 0;
}

/* Every line of the log parses as a JSON object. */
static void assert_json_lines(const char *log)
{
  const char *p = log;
  int lines = 0;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char *line = strndup(p, n);
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, line, (int)n);
    enum json_tokener_error je = json_tokener_get_error(tok);
    if (!o || je != json_tokener_success || !json_object_is_type(o, json_type_object))
      TEST_FAIL("log line is not a JSON object (%s): %s", json_tokener_error_desc(je), line);
    json_object_put(o);
    json_tokener_free(tok);
    free(line);
    lines++;
    p += n + (nl ? 1 : 0);
  }
  ASSERT_GT(lines, 2);
}

TEST_IMPL(hostile_text_must_be_utf8)
{
  static const char *const args[] = {"--log-format", "json", "--log-level", "debug", NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  free(it_start(e.cli, "u-1", "Orch", "\"ok\""));
  char *before = it_snapshot(e.cli);
  static const struct {
    const char *bytes, *what;
  } bad[] = {
      {"a\xed\xa0\x80", "a surrogate"},
      {"a\xf4\x90\x80\x80", "a code point above U+10FFFF"},
      {"a\xc0\xaf", "an overlong slash"},
      {"a\xe0\x80\xaf", "an overlong three-byte form"},
      {"a\xff", "a byte that is never UTF-8"},
      {"a\xe2\x82", "a truncated sequence"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hx_buf req = {0};
    /* As the instance id, the name, and inside the input StringValue. */
    hx_str(&req, 1, bad[i].bytes);
    hx_str(&req, 2, "Orch");
    expect_refused(e.cli, IT_SVC "StartInstance", &req, "instanceId");
    hx_free(&req);
    hx_str(&req, 1, "u-2");
    hx_str(&req, 2, bad[i].bytes);
    expect_refused(e.cli, IT_SVC "StartInstance", &req, "name");
    hx_free(&req);
    hx_buf sv = {0};
    hx_str(&sv, 1, bad[i].bytes);
    hx_str(&req, 1, "u-2");
    hx_str(&req, 2, "Orch");
    hx_msg(&req, 4, &sv); /* input */
    expect_refused(e.cli, IT_SVC "StartInstance", &req, "input");
    hx_free(&req);
    /* RaiseEvent data and a worker's custom status. */
    hx_str(&req, 1, "u-1");
    hx_str(&req, 2, "Ev");
    hx_msg(&req, 3, &sv);
    expect_refused(e.cli, IT_SVC "RaiseEvent", &req, "input");
    hx_free(&req);
    hx_str(&req, 1, "u-1");
    hx_msg(&req, 3, &sv); /* OrchestratorResponse.customStatus */
    hx_str(&req, 4, "some-token");
    expect_refused(e.cli, IT_SVC "CompleteOrchestratorTask", &req, "customStatus");
    hx_free(&req);
    hx_free(&sv);
    (void)bad[i].what;
  }
  it_assert_snapshot(e.cli, before, "text that is not UTF-8");
  free(before);
  /* Valid multi-byte text goes through unchanged. */
  free(it_start(e.cli, "u-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "Orch", "\"\xe4\xb8\xad\""));
  GetInstanceResponse *r = it_get(e.cli, "u-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 1);
  ASSERT(r->exists);
  ASSERT_STR_EQ(r->orchestrationstate->input->value, "\"\xe4\xb8\xad\"");
  it_free(r);
  /* An unregistered method whose name is not UTF-8 reaches the log, which must stay JSON. */
  char *d = NULL;
  hx_buf empty = {0};
  grpc_status_code st = th_call_raw(e.cli, "/TaskHubSidecarService/\xc3\x28" "Bad", "", 0, IT_TIMEOUT_MS, NULL, NULL,
                                    &d);
  ASSERT_STATUS(st, GRPC_STATUS_UNIMPLEMENTED, d);
  free(d);
  hx_free(&empty);
  th_server_stop(&e.srv);
  char *log = hx_server_log(&e.srv);
  assert_json_lines(log);
  free(log);
  it_teardown(&e);
  return 0;
}
