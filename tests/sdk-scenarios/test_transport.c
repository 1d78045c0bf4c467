/*
 * The worker's transport against a real taskhubd.
 *
 * scen_history_streaming: BigHistory (big_history.h) grows its history past 1 MiB. The worker declares
 * WORKER_CAPABILITY_HISTORY_STREAMING, so taskhubd sends the later turns without pastEvents and the worker fetches
 * them with StreamInstanceHistory; the orchestration must complete with the right output, taskhubd's log must show
 * the capability, and its /metrics the StreamInstanceHistory calls.
 */
#include "sc.h" /* first: it defines _GNU_SOURCE */

#include "big_history.h"

static const char *const OPS_ARGS[] = {"--ops-listen", "127.0.0.1:0", NULL};

#define HISTORY_CALLS "taskhubd_grpc_requests_total{method=\"StreamInstanceHistory\",code=\"OK\"}"

TEST_IMPL(scen_history_streaming)
{
  sc_hub h;
  int rc = sc_hub_start(&h, OPS_ARGS, big_register);
  if (rc != 0)
    return rc;
  char iid[64];
  sc_id(iid, sizeof iid, "bighist");
  sc_schedule(&h, "BigHistory", BIG_INPUT, iid);
  dt_instance *in = sc_done(&h, iid, SC_WAIT_MS);
  SC_EXPECT_STATUS(in, DT_STATUS_COMPLETED);
  ASSERT_STR_EQ(in->output, BIG_OUTPUT);
  dt_instance_free(in);

  ASSERT_EQ(sc_log_count(&h.srv, "event=worker_connected", "history_streaming=1"), 1);
  /* The turns with 4 and with 5 results carry more than 1 MiB of history: at least two fetches. (This test reads
   * no history itself, so every StreamInstanceHistory call is the worker's.) */
  long long fetches = sc_metric(&h.srv, HISTORY_CALLS);
  if (fetches < 2)
    TEST_FAIL("taskhubd served %lld StreamInstanceHistory calls, expected at least 2 (history streamed)", fetches);
  sc_hub_stop(&h);
  return 0;
}
