/* Bad input, one class per test: the status code, a message naming the field, and an unchanged store. */
#define _GNU_SOURCE
#include "it.h"

#define MAX_PAYLOAD 1024
#define MAX_ID 64
#define MAX_NAME 32

static const char *const limits[] = {"--max-payload", "1024", "--max-id-length", "64", "--max-name-length", "32", NULL};

/* A few instances so that "nothing changed" is meaningful. */
static void seed(th_client *c)
{
  free(it_start(c, "seed-1", "Orch", "\"one\""));
  free(it_start(c, "seed-2", "Orch", NULL));
  ASSERT_STATUS(it_terminate(c, "seed-2", "\"two\"", NULL), GRPC_STATUS_OK, "");
}

/* Minimal protobuf writer for hand-made requests. */
typedef struct pb {
  uint8_t b[4096];
  size_t n;
} pb;

static void pb_varint(pb *p, uint64_t v)
{
  do {
    ASSERT(p->n < sizeof p->b);
    uint8_t byte = v & 0x7f;
    v >>= 7;
    p->b[p->n++] = (uint8_t)(byte | (v ? 0x80 : 0));
  } while (v);
}

static void pb_bytes(pb *p, unsigned field, const void *data, size_t len)
{
  pb_varint(p, (uint64_t)field << 3 | 2);
  pb_varint(p, len);
  ASSERT(p->n + len <= sizeof p->b);
  memcpy(p->b + p->n, data, len);
  p->n += len;
}

static grpc_status_code raw(th_client *c, const char *method, const pb *p, char **details)
{
  return th_call_raw(c, method, p->b, p->n, IT_TIMEOUT_MS, NULL, NULL, details);
}

static grpc_status_code start_simple(th_client *c, const char *id, const char *name, const char *input, char **details)
{
  CreateInstanceRequest req = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  req.instanceid = (char *)id;
  req.name = (char *)name;
  if (input) {
    in.value = (char *)input;
    req.input = &in;
  }
  return it_start_req(c, &req, NULL, details);
}

/* Checks status, a non-empty message and that it names the field; frees the message. */
static void check(const char *what, grpc_status_code got, grpc_status_code want, const char *field, char *details)
{
  if (got != want)
    TEST_FAIL("%s: status %s, expected %s (message \"%s\")", what, th_status_name(got), th_status_name(want),
              details ? details : "");
  if (details == NULL || details[0] == '\0')
    TEST_FAIL("%s: empty status message", what);
  if (strstr(details, field) == NULL)
    TEST_FAIL("%s: message \"%s\" does not name the field \"%s\"", what, details, field);
  free(details);
}

/* call may use D for its details out-parameter. */
#define EXPECT(call, code, field)                                                                                \
  do {                                                                                                           \
    char *d_ = NULL;                                                                                             \
    grpc_status_code s_ = (call);                                                                                \
    check(#call, s_, code, field, d_);                                                                           \
  } while (0)
#define D (&d_)

TEST_IMPL(badinput_malformed_protobuf)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  seed(e.cli);
  char *before = it_snapshot(e.cli);
  static const struct {
    const uint8_t bytes[16];
    size_t len;
  } bad[] = {
      {{0x0a, 0x05, 'a'}, 3},                                                   /* string longer than the message */
      {{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'}, 7},                           /* absurd length */
      {{0x12, 0x80}, 2},                                                        /* truncated length varint */
      {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11}, /* over-long tag varint */
      {{0x0a, 0x01, 'x', 0x0f}, 4},                                             /* wire type 7 does not exist */
  };
  static const char *const methods[] = {IT_SVC "StartInstance", IT_SVC "GetInstance", IT_SVC "RaiseEvent",
                                        IT_SVC "TerminateInstance", IT_SVC "QueryInstances", IT_SVC "PurgeInstances",
                                        IT_SVC "WaitForInstanceCompletion"};
  for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      char *d = NULL;
      grpc_status_code st = th_call_raw(e.cli, methods[m], bad[i].bytes, bad[i].len, IT_TIMEOUT_MS, NULL, NULL, &d);
      if (st != GRPC_STATUS_INVALID_ARGUMENT)
        TEST_FAIL("%s with malformed request #%zu: status %s, expected INVALID_ARGUMENT (\"%s\")", methods[m], i,
                  th_status_name(st), d);
      if (d[0] == '\0')
        TEST_FAIL("%s with malformed request #%zu: empty status message", methods[m], i);
      free(d);
    }
  it_assert_snapshot(e.cli, before, "malformed requests");
  free(before);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(badinput_missing_fields)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  seed(e.cli);
  char *before = it_snapshot(e.cli);
  EXPECT(start_simple(e.cli, "nm-1", "", "\"x\"", D), GRPC_STATUS_INVALID_ARGUMENT, "name");
  EXPECT(start_simple(e.cli, "", "", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "name");
  EXPECT(it_raise(e.cli, "seed-1", "", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "name");
  EXPECT(it_raise(e.cli, "", "Ev", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  EXPECT(it_terminate(e.cli, "", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  EXPECT(it_suspend(e.cli, "", D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  EXPECT(it_resume(e.cli, "", D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  it_assert_snapshot(e.cli, before, "requests with missing fields");
  ASSERT(!it_exists(e.cli, "nm-1"));
  free(before);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(badinput_long_instance_id)
{
  it_env e;
  int rc = it_setup(&e, limits);
  if (rc)
    return rc;
  seed(e.cli);
  char *before = it_snapshot(e.cli);
  char *long_id = it_repeat('i', MAX_ID + 1);
  char *huge_id = it_repeat('j', 5000);
  EXPECT(start_simple(e.cli, long_id, "Orch", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  EXPECT(start_simple(e.cli, huge_id, "Orch", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  it_assert_snapshot(e.cli, before, "StartInstance with over-long ids");
  free(before);
  /* The limit itself is accepted. */
  long_id[MAX_ID] = '\0';
  free(it_start(e.cli, long_id, "Orch", NULL));
  ASSERT_EQ(it_status(e.cli, long_id), PENDING);
  free(long_id);
  free(huge_id);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(badinput_long_name)
{
  it_env e;
  int rc = it_setup(&e, limits);
  if (rc)
    return rc;
  seed(e.cli);
  char *before = it_snapshot(e.cli);
  char *long_name = it_repeat('n', MAX_NAME + 1);
  EXPECT(start_simple(e.cli, "ln-1", long_name, NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "name");
  EXPECT(it_raise(e.cli, "seed-1", long_name, NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "name");
  it_assert_snapshot(e.cli, before, "over-long names");
  free(before);
  ASSERT(!it_exists(e.cli, "ln-1"));
  long_name[MAX_NAME] = '\0';
  free(it_start(e.cli, "ln-ok", long_name, NULL));
  ASSERT_STATUS(it_raise(e.cli, "ln-ok", long_name, NULL, NULL), GRPC_STATUS_OK, "");
  GetInstanceResponse *r = it_get(e.cli, "ln-ok", 0);
  ASSERT_STR_EQ(r->orchestrationstate->name, long_name);
  it_free(r);
  free(long_name);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(badinput_control_bytes_in_id)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  seed(e.cli);
  free(it_start(e.cli, "ab", "Orch", NULL)); /* what a NUL-truncated "ab\0cd" would collide with */
  free(it_start(e.cli, "cd", "Orch", NULL));
  ASSERT_STATUS(it_terminate(e.cli, "cd", NULL, NULL), GRPC_STATUS_OK, "");
  char *before = it_snapshot(e.cli);
  static const char *const bad_ids[] = {"a\001b", "\x1f", "x\x7f", "tab\there", "nl\n", "\x01"};
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
    EXPECT(start_simple(e.cli, bad_ids[i], "Orch", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  }
  EXPECT(it_terminate(e.cli, "seed\0011", NULL, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");

  /* Embedded NUL bytes, only expressible on the wire. */
  static const char nul_ab[] = {'a', 'b', '\0', 'c', 'd'};
  static const char nul_cd[] = {'c', 'd', '\0'};
  pb p = {.n = 0};
  pb_bytes(&p, 1, nul_ab, sizeof nul_ab);
  pb_bytes(&p, 2, "Orch", 4);
  EXPECT(raw(e.cli, IT_SVC "StartInstance", &p, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  p.n = 0;
  pb_bytes(&p, 1, nul_ab, sizeof nul_ab);
  EXPECT(raw(e.cli, IT_SVC "TerminateInstance", &p, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  EXPECT(raw(e.cli, IT_SVC "GetInstance", &p, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  EXPECT(raw(e.cli, IT_SVC "SuspendInstance", &p, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  pb_bytes(&p, 2, "Ev", 2);
  EXPECT(raw(e.cli, IT_SVC "RaiseEvent", &p, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");
  p.n = 0;
  pb_bytes(&p, 1, nul_cd, sizeof nul_cd);
  EXPECT(raw(e.cli, IT_SVC "PurgeInstances", &p, D), GRPC_STATUS_INVALID_ARGUMENT, "instanceId");

  it_assert_snapshot(e.cli, before, "ids with control bytes");
  free(before);
  ASSERT_EQ(it_status(e.cli, "ab"), PENDING);
  ASSERT_EQ(it_status(e.cli, "cd"), TERMINATED);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(badinput_payload_too_large)
{
  it_env e;
  int rc = it_setup(&e, limits);
  if (rc)
    return rc;
  seed(e.cli);
  char *before = it_snapshot(e.cli);
  char *big = it_repeat('p', MAX_PAYLOAD + 1);
  char *huge = it_repeat('q', 64 * 1024);
  EXPECT(start_simple(e.cli, "big-1", "Orch", big, D), GRPC_STATUS_RESOURCE_EXHAUSTED, "input");
  EXPECT(start_simple(e.cli, "big-2", "Orch", huge, D), GRPC_STATUS_RESOURCE_EXHAUSTED, "input");
  EXPECT(it_raise(e.cli, "seed-1", "Ev", big, D), GRPC_STATUS_RESOURCE_EXHAUSTED, "input");
  EXPECT(it_terminate(e.cli, "seed-1", big, D), GRPC_STATUS_RESOURCE_EXHAUSTED, "output");
  it_assert_snapshot(e.cli, before, "over-size payloads");
  free(before);
  ASSERT(!it_exists(e.cli, "big-1"));
  ASSERT_EQ(it_status(e.cli, "seed-1"), PENDING);

  /* Exactly the limit is accepted everywhere. */
  big[MAX_PAYLOAD] = '\0';
  free(it_start(e.cli, "big-ok", "Orch", big));
  ASSERT_STATUS(it_raise(e.cli, "big-ok", "Ev", big, NULL), GRPC_STATUS_OK, "");
  ASSERT_STATUS(it_terminate(e.cli, "big-ok", big, NULL), GRPC_STATUS_OK, "");
  GetInstanceResponse *r = it_get(e.cli, "big-ok", 1);
  ASSERT_STR_EQ(r->orchestrationstate->input->value, big);
  ASSERT_STR_EQ(r->orchestrationstate->output->value, big);
  it_free(r);
  free(big);
  free(huge);
  it_teardown(&e);
  return 0;
}
