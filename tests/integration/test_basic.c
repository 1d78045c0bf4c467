/* Liveness, health and method dispatch. */
#define _GNU_SOURCE
#include "google/protobuf/empty.pb-c.h"
#include "health.pb-c.h"
#include "it.h"

TEST_IMPL(hello)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
  for (int i = 0; i < 3; i++) {
    ProtobufCMessage *resp = NULL;
    char *details = NULL;
    grpc_status_code st = th_call_unary(e.cli, IT_SVC "Hello", &req.base, &google__protobuf__empty__descriptor,
                                        IT_TIMEOUT_MS, &resp, &details);
    ASSERT_STATUS(st, GRPC_STATUS_OK, details);
    ASSERT(resp != NULL);
    it_free(resp);
    free(details);
  }
  /* Hello has no side effects. */
  char *snap = it_snapshot(e.cli);
  ASSERT_STR_EQ(snap, "0 instances\n");
  free(snap);
  it_teardown(&e);
  return 0;
}

TEST_IMPL(health_check_serving)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  ProtobufCMessage *m = NULL;
  char *details = NULL;
  grpc_status_code st = th_call_unary(e.cli, "/grpc.health.v1.Health/Check", &req.base,
                                      &grpc__health__v1__health_check_response__descriptor, IT_TIMEOUT_MS, &m, &details);
  ASSERT_STATUS(st, GRPC_STATUS_OK, details);
  free(details);
  Grpc__Health__V1__HealthCheckResponse *r = (Grpc__Health__V1__HealthCheckResponse *)m;
  ASSERT_EQ(r->status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  it_free(m);
  it_teardown(&e);
  return 0;
}

/* Unknown methods and the entity RPCs (not supported yet) answer UNIMPLEMENTED promptly (never a hang), and the server keeps
 * serving afterwards. */
TEST_IMPL(unimplemented_methods)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  static const char *const methods[] = {
      IT_SVC "NoSuchMethod",
      "/no.such.Service/Method",
      IT_SVC "SkipGracefulOrchestrationTerminations",
  };
  /* An empty message is a valid encoding of every request type; field 1 = "x" is a valid one for the rest. */
  static const uint8_t with_id[] = {0x0a, 0x01, 'x'};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    for (int variant = 0; variant < 2; variant++) {
      char *details = NULL;
      long long t0 = th_now_ms();
      grpc_status_code st = th_call_raw(e.cli, methods[i], with_id, variant ? sizeof with_id : 0, 5000, NULL, NULL,
                                        &details);
      long long took = th_now_ms() - t0;
      if (st != GRPC_STATUS_UNIMPLEMENTED)
        TEST_FAIL("%s: status %s, expected UNIMPLEMENTED (message \"%s\")", methods[i], th_status_name(st), details);
      if (took > 2000)
        TEST_FAIL("%s: UNIMPLEMENTED took %lld ms", methods[i], took);
      free(details);
    }
  }
  Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
  char *details = NULL;
  grpc_status_code st =
      th_call_unary(e.cli, IT_SVC "Hello", &req.base, &google__protobuf__empty__descriptor, IT_TIMEOUT_MS, NULL, &details);
  ASSERT_STATUS(st, GRPC_STATUS_OK, details);
  free(details);
  it_teardown(&e);
  return 0;
}

/* GetInstance of an unknown id: OK with exists=false and no state. */
TEST_IMPL(get_unknown)
{
  it_env e;
  int rc = it_setup(&e, NULL);
  if (rc)
    return rc;
  GetInstanceResponse *r = it_get(e.cli, "no-such-instance", 1);
  ASSERT_EQ(r->exists, 0);
  ASSERT(r->orchestrationstate == NULL);
  it_free(r);
  it_teardown(&e);
  return 0;
}
