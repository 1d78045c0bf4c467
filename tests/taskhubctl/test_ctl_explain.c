/*
 * taskhubctl explains (issue 14): the server's status message on failures, list's order and filters, purge by id
 * prefix, terminate's reason, failures with their inner failures and stack traces, version, shell completion,
 * suggestions for mistyped commands, the note on out-of-order times in a timeline, and suspend of a PENDING
 * instance.
 */
#include "ctl_harness.h"

static void free_doc(json_object *doc, ctl_res *r)
{
  json_object_put(doc);
  ctl_res_free(r);
}

/* ------------------------------------------------------------------ the server's message */

TEST_IMPL(ctl_server_message)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  /* A token the server never issued: its INVALID_ARGUMENT says which field and why. */
  ctl_res r = CTL(h.addr, "list", "--continuation", "bogus", "--page-size", "5");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "(INVALID_ARGUMENT: query.continuationToken: not a token this server issued");
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "list", "--continuation", "bogus", "--page-size", "5");
  ASSERT_EXIT(r, 2);
  json_object *doc = ctl_doc(&r);
  json_object *e = jget(doc, "error");
  ASSERT_STR_EQ(jstr(e, "code"), "INVALID_ARGUMENT");
  ASSERT_STR_EQ(jstr(e, "grpcCode"), "INVALID_ARGUMENT");
  ASSERT_STR_CONTAINS(jstr(e, "grpcMessage"), "not a token this server issued");
  ASSERT_STR_CONTAINS(jstr(e, "message"), "not a token this server issued");
  free_doc(doc, &r);

  /* A wait that runs out names the gRPC code. */
  sched(&h, "hello", "sm-1", NULL);
  r = CTL(h.addr, "start", "hello", "--id", "sm-2", "--wait", "--timeout-ms", "300");
  ASSERT_EXIT(r, 5);
  ASSERT_STR_CONTAINS(r.err, "timed out (DEADLINE_EXCEEDED");
  ctl_res_free(&r);

  /* NOT_FOUND from a status (history of an unknown instance is a stream) keeps the old wording too. */
  r = CTL(h.addr, "show", "nope");
  ASSERT_EXIT(r, 3);
  ASSERT_STR_CONTAINS(r.err, "show: instance 'nope' not found");
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}
