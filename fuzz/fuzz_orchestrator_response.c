/*
 * CompleteOrchestratorTask applied to stored state. Each input is up to four OrchestratorResponse messages
 * (chunks, fz.h). A fresh instance is started on the real engine and RocksDB store; each chunk passes the
 * server's decoding (sc_wire_check, then protobuf-c, as server.c decode does) and is applied as the answer to
 * the instance's next work item (its completion token and instance id filled in, as a worker echoes them), so
 * the engine's checks (turncheck.c) and the turn (turn.c, instance.c, entity_queue.c) see every action the
 * fuzzer invents against a real history. Between turns an event wakes the instance up.
 *
 * Invariants, besides no crash, leak or undefined behaviour: the engine answers every completion and leaves the
 * message it was given as it was (engine.h: the poster owns it; the response is unpacked with malloc and freed
 * with free_unpacked, so a pointer the engine leaves in it shows up as a double free); the
 * instance's record, history and inbox still decode, its history length matches its record; and an instance
 * left running or pending gets its next work item after an event (nothing stuck). A chunk marked isPartial is
 * followed by the next chunk for the same work item, as a worker sends a large answer.
 */
#include "fz.h"

#include "common/pbutil.h"
#include "limits/limits.h"

#include <stdio.h>
#include <string.h>

#define MAX_TURNS 4
#define WAIT_MS 10000

static bool for_instance(const WorkItem *wi, void *ctx)
{
  return wi->request_case == WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST &&
         strcmp(wi->orchestratorrequest->instanceid, ctx) == 0;
}

static int status_of(struct fz_engine *f, const char *iid)
{
  struct sc_arena a;
  sc_arena_init(&a);
  StoredInstance *rec = NULL;
  int st = sc_store_get_instance(f->st, iid, &a, &rec) == SC_OK ? (int)rec->status : -1;
  sc_arena_free(&a);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static unsigned long long n;
  struct fz_engine *f = fz_engine();
  char iid[64];
  snprintf(iid, sizeof iid, "fz-orch-%llu", ++n);

  CreateInstanceRequest start = CREATE_INSTANCE_REQUEST__INIT;
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  in.value = (char *)"1";
  start.instanceid = iid;
  start.name = (char *)"Fuzzed";
  start.input = &in;
  struct sc_cmd c = {.kind = SC_CMD_START};
  c.u.start.req = &start;
  if (fz_run(f, &c) != SC_OK)
    fz_fail("starting %s: %s", iid, c.err.msg);

  WorkItem *wi = fz_next_item(f, for_instance, iid, WAIT_MS);
  if (!wi)
    fz_fail("no work item for the new instance %s", iid);
  const uint8_t *chunk;
  size_t len;
  char why[300];
  for (int turn = 0; wi && turn < MAX_TURNS && fz_next_chunk(&data, &size, &chunk, &len); turn++) {
    /* What the server refuses before the engine sees it, the engine never gets. */
    if (sc_wire_check(&orchestrator_response__descriptor, chunk, len, why, sizeof why) != 0)
      break;
    OrchestratorResponse *r = orchestrator_response__unpack(NULL, len, chunk);
    if (!r)
      break;
    char *fuzzed_iid = r->instanceid, *fuzzed_token = r->completiontoken;
    r->instanceid = iid;
    r->completiontoken = wi->completiontoken;
    struct sc_cmd done = {.kind = SC_CMD_COMPLETE_ORCH};
    done.u.complete_orch.resp = r;
    struct fz_snapshot before;
    fz_snapshot(&r->base, &before);
    int rc = fz_run(f, &done);
    fz_unchanged(&r->base, &before, "OrchestratorResponse");
    bool partial = r->ispartial;
    r->instanceid = fuzzed_iid;
    r->completiontoken = fuzzed_token;
    orchestrator_response__free_unpacked(r, NULL);
    fz_check_instance(f, iid);
    if (partial && rc == SC_OK)
      continue; /* one chunk of the answer: the next chunk answers the same work item, as a worker's would */
    work_item__free_unpacked(wi, NULL);
    wi = NULL;

    int st = status_of(f, iid);
    if (st != ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING &&
        st != ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING)
      break;
    RaiseEventRequest ev = RAISE_EVENT_REQUEST__INIT;
    ev.instanceid = iid;
    ev.name = (char *)"e";
    ev.input = &in;
    struct sc_cmd raise = {.kind = SC_CMD_RAISE};
    raise.u.raise.req = &ev;
    if (fz_run(f, &raise) != SC_OK)
      break;
    wi = fz_next_item(f, for_instance, iid, WAIT_MS);
    st = status_of(f, iid);
    if (!wi && (st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING ||
                st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING))
      fz_fail("instance %s is %s, was sent an event, and got no work item in %d ms", iid,
              st == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING ? "running" : "pending", WAIT_MS);
  }
  if (wi) /* a work item the input gave no (acceptable) answer for: a worker's plain completion */
    fz_finish(f, wi);

  /* Each input's instance goes, so the store stays the size of one input's work. */
  TerminateRequest t = TERMINATE_REQUEST__INIT;
  t.instanceid = iid;
  t.recursive = true;
  struct sc_cmd term = {.kind = SC_CMD_TERMINATE};
  term.u.terminate.req = &t;
  fz_run(f, &term);
  PurgeInstancesRequest p = PURGE_INSTANCES_REQUEST__INIT;
  p.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID;
  p.instanceid = iid;
  p.recursive = true;
  struct sc_cmd purge = {.kind = SC_CMD_PURGE};
  purge.u.purge.req = &p;
  fz_run(f, &purge);
  fz_check_instance(f, iid);
  return 0;
}
