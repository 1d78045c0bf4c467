/*
 * Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from real messages, so that fuzzing starts
 * from inputs that reach deep:
 *   fuzz_replay                 the replay tests' histories (the .hist files of tests/data/replay) as work items;
 *   fuzz_orchestrator_response  what the C SDK's replay executor answers for them (the turns a real worker sends);
 *   fuzz_entity_executor        entity work items: batches of the counter's operations (v1, and v2 history events);
 *   fuzz_entity_result          what the SDK's entity executor answers for them;
 *   fuzz_requests               one request per method, built as the SDKs send them, and the two answers above;
 *   fuzz_store_records          the records a real engine wrote to RocksDB while running instances and entities.
 * Usage: th_fuzz_seeds OUTDIR (fuzz/corpus); files are named after what they hold, so a rerun rewrites them.
 */
#include "fz.h"
#include "hist.h"
#include "orchestrators.h"

#include "common/pbutil.h"
#include "health.pb-c.h"
#include "server/call.h"
#include "store/rocksdb/rocks.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *outdir;

static FILE *open_seed(const char *target, const char *name)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", outdir, target);
  if (mkdir(path, 0777) != 0 && errno != EEXIST)
    fz_fail("mkdir %s", path);
  snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    fz_fail("cannot write %s", path);
  return f;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*len ? *len : 1);
  protobuf_c_message_pack(m, b);
  return b;
}

/* One request of |path| for fuzz_requests: the method's index in the server's table, then the message. */
static void request_seed(const char *path, const char *name, const uint8_t *b, size_t len)
{
  size_t i = 0;
  while (i < sc_n_methods && strcmp(sc_methods[i].path, path) != 0)
    i++;
  if (i == sc_n_methods)
    fz_fail("no method %s", path);
  FILE *f = open_seed("fuzz_requests", name);
  fputc((int)i, f);
  fwrite(b, 1, len, f);
  fclose(f);
}

static void request_msg(const char *method, const char *name, const ProtobufCMessage *m)
{
  size_t len;
  uint8_t *b = pack(m, &len);
  char path[256];
  snprintf(path, sizeof path, "%s%s", strchr(method, '/') ? "" : "/TaskHubSidecarService/", method);
  request_seed(path, name, b, len);
  free(b);
}

/* ------------------------------------------------------------------ histories and the SDK's answers */

struct answers {
  char name[64];
  uint8_t *resp[4];
  size_t len[4];
  size_t n;
};

static int by_name(const struct dirent **a, const struct dirent **b)
{
  return strcmp((*a)->d_name, (*b)->d_name);
}

static void histories(void)
{
  struct dirent **ents;
  int n = scandir(HIST_DATA_DIR, &ents, NULL, by_name);
  if (n < 0)
    fz_fail("cannot read %s", HIST_DATA_DIR);
  struct answers by[32];
  size_t nby = 0;
  for (int i = 0; i < n; i++) {
    const char *fn = ents[i]->d_name;
    size_t fl = strlen(fn);
    if (fl < 6 || strcmp(fn + fl - 5, ".hist") != 0)
      continue;
    char path[4096], *err = NULL, seed[256];
    snprintf(path, sizeof path, "%s/%s", HIST_DATA_DIR, fn);
    hist *h = hist_load(path, &err);
    if (!h) {
      fprintf(stderr, "skipping %s: %s\n", fn, err);
      free(err);
      continue;
    }
    OrchestratorRequest *req = hist_request(h);
    size_t len;
    uint8_t *b = pack(&req->base, &len);
    snprintf(seed, sizeof seed, "%.*s", (int)(fl - 5), fn);
    FILE *f = open_seed("fuzz_replay", seed);
    fputc(0, f);
    fwrite(b, 1, len, f);
    fclose(f);
    free(b);

    uint8_t *out = NULL;
    size_t out_len = 0;
    if (dt__replay(fz_orchestrators, fz_n_orchestrators, req, "seed-token", &out, &out_len) != DT_OK)
      fz_fail("dt__replay failed on %s", fn);
    f = open_seed("fuzz_orchestrator_response", seed);
    fz_put_chunk(f, out, out_len);
    fclose(f);
    /* Successive answers of one orchestrator (the files sort by episode) make multi-turn inputs. */
    const char *oname = fz_orchestration_name(req);
    size_t j = 0;
    while (j < nby && strcmp(by[j].name, oname) != 0)
      j++;
    if (j == nby && nby < 32) {
      snprintf(by[nby].name, sizeof by[nby].name, "%s", oname);
      by[nby++].n = 0;
    }
    if (j < nby && by[j].n < 4) {
      by[j].resp[by[j].n] = out;
      by[j].len[by[j].n++] = out_len;
    } else {
      free(out);
    }
    hist_free(h);
  }
  for (size_t j = 0; j < nby; j++) {
    char seed[128];
    snprintf(seed, sizeof seed, "turns_%s", by[j].name);
    FILE *f = open_seed("fuzz_orchestrator_response", seed);
    for (size_t k = 0; k < by[j].n; k++)
      fz_put_chunk(f, by[j].resp[k], by[j].len[k]);
    fclose(f);
    if (j == 0)
      request_seed("/TaskHubSidecarService/CompleteOrchestratorTask", "complete_orchestrator", by[j].resp[0],
                   by[j].len[0]);
    for (size_t k = 0; k < by[j].n; k++)
      free(by[j].resp[k]);
  }
  for (int i = 0; i < n; i++)
    free(ents[i]);
  free(ents);

  /* No history calls entities: the first turn of one that does (calls, signals, a lock). */
  ExecutionStartedEvent es = EXECUTION_STARTED_EVENT__INIT;
  es.name = (char *)"Entities";
  OrchestrationInstance oi = ORCHESTRATION_INSTANCE__INIT;
  oi.instanceid = (char *)"seed-entities";
  es.orchestrationinstance = &oi;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1767225600;
  HistoryEvent started = HISTORY_EVENT__INIT, exec = HISTORY_EVENT__INIT;
  OrchestratorStartedEvent os = ORCHESTRATOR_STARTED_EVENT__INIT;
  started.eventid = -1;
  started.timestamp = &ts;
  started.event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
  started.orchestratorstarted = &os;
  exec.eventid = -1;
  exec.timestamp = &ts;
  exec.event_type_case = HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED;
  exec.executionstarted = &es;
  HistoryEvent *evs[] = {&started, &exec};
  OrchestratorRequest req = ORCHESTRATOR_REQUEST__INIT;
  req.instanceid = (char *)"seed-entities";
  req.n_newevents = 2;
  req.newevents = evs;
  uint8_t *out = NULL;
  size_t out_len = 0;
  if (dt__replay(fz_orchestrators, fz_n_orchestrators, &req, "seed-token", &out, &out_len) != DT_OK)
    fz_fail("dt__replay failed on the entity orchestration");
  FILE *f = open_seed("fuzz_orchestrator_response", "entities_first");
  fz_put_chunk(f, out, out_len);
  fclose(f);
  free(out);
}

/* ------------------------------------------------------------------ entity batches */

static void entity_batches(void)
{
  static const char *ops[][2] = {{"add", "1"}, {"get", NULL}, {"reset", NULL}, {"delete", NULL}, {"nope", "2"}};
  static const size_t n_ops = sizeof ops / sizeof ops[0];
  for (size_t first = 0; first < n_ops; first++) {
    Google__Protobuf__StringValue inputs[5], state = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    state.value = (char *)"5";
    OperationRequest reqs[5], *preqs[5];
    size_t n = 0;
    for (size_t k = first; k < n_ops; k++, n++) {
      operation_request__init(&reqs[n]);
      reqs[n].operation = (char *)ops[k][0];
      reqs[n].requestid = (char *)"00000000-0000-0000-0000-000000000001";
      if (ops[k][1]) {
        google__protobuf__string_value__init(&inputs[n]);
        inputs[n].value = (char *)ops[k][1];
        reqs[n].input = &inputs[n];
      }
      preqs[n] = &reqs[n];
    }
    EntityBatchRequest b = ENTITY_BATCH_REQUEST__INIT;
    b.instanceid = (char *)"@counter@seed";
    b.entitystate = first % 2 ? NULL : &state;
    b.n_operations = n;
    b.operations = preqs;
    WorkItem wi = WORK_ITEM__INIT;
    wi.request_case = WORK_ITEM__REQUEST_ENTITY_REQUEST;
    wi.entityrequest = &b;
    wi.completiontoken = (char *)"seed-token";
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (dt__run_entity_batch(fz_entities, fz_n_entities, &wi, &out, &out_len) != DT_OK)
      fz_fail("dt__run_entity_batch failed");
    char seed[64];
    snprintf(seed, sizeof seed, "batch_from_%s", ops[first][0]);
    size_t wl;
    uint8_t *wb = pack(&wi.base, &wl);
    FILE *w = open_seed("fuzz_entity_executor", seed);
    fwrite(wb, 1, wl, w);
    fclose(w);
    free(wb);
    FILE *f = open_seed("fuzz_entity_result", seed);
    fz_put_chunk(f, out, out_len);
    if (first == 0)
      fz_put_chunk(f, out, out_len); /* two turns */
    fclose(f);
    if (first == 0)
      request_seed("/TaskHubSidecarService/CompleteEntityTask", "complete_entity", out, out_len);
    free(out);
  }

  /* The same as --entity-work-items v2 sends it: the queued history events, a signal and a call. */
  Google__Protobuf__StringValue one = GOOGLE__PROTOBUF__STRING_VALUE__INIT, parent = one, exec_id = one;
  one.value = (char *)"1";
  parent.value = (char *)"seed-parent";
  exec_id.value = (char *)"seed-exec";
  EntityOperationSignaledEvent sig = ENTITY_OPERATION_SIGNALED_EVENT__INIT;
  sig.requestid = (char *)"00000000-0000-0000-0000-000000000002";
  sig.operation = (char *)"add";
  sig.input = &one;
  EntityOperationCalledEvent call = ENTITY_OPERATION_CALLED_EVENT__INIT;
  call.requestid = (char *)"00000000-0000-0000-0000-000000000003";
  call.operation = (char *)"get";
  call.parentinstanceid = &parent;
  call.parentexecutionid = &exec_id;
  HistoryEvent h1 = HISTORY_EVENT__INIT, h2 = HISTORY_EVENT__INIT, *hs[] = {&h1, &h2};
  h1.event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED;
  h1.entityoperationsignaled = &sig;
  h2.event_type_case = HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED;
  h2.entityoperationcalled = &call;
  EntityRequest v2 = ENTITY_REQUEST__INIT;
  v2.instanceid = (char *)"@counter@seed";
  v2.n_operationrequests = 2;
  v2.operationrequests = hs;
  WorkItem wi2 = WORK_ITEM__INIT;
  wi2.request_case = WORK_ITEM__REQUEST_ENTITY_REQUEST_V2;
  wi2.entityrequestv2 = &v2;
  wi2.completiontoken = (char *)"seed-token";
  size_t wl;
  uint8_t *wb = pack(&wi2.base, &wl);
  FILE *w = open_seed("fuzz_entity_executor", "v2_signal_and_call");
  fwrite(wb, 1, wl, w);
  fclose(w);
  free(wb);
}

/* ------------------------------------------------------------------ one request per method */

static void requests(void)
{
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT, ver = in, reason = in, prefix = in;
  in.value = (char *)"{\"n\":1}";
  ver.value = (char *)"1.0";
  reason.value = (char *)"seed";
  prefix.value = (char *)"seed";
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = 1767225600; /* 2026-01-01 */

  CreateInstanceRequest start = CREATE_INSTANCE_REQUEST__INIT;
  start.instanceid = (char *)"seed-1";
  start.name = (char *)"Chain";
  start.version = &ver;
  start.input = &in;
  start.scheduledstarttimestamp = &ts;
  CreateInstanceRequest__TagsEntry tag = CREATE_INSTANCE_REQUEST__TAGS_ENTRY__INIT, *tags[] = {&tag};
  tag.key = (char *)"team";
  tag.value = (char *)"a";
  start.n_tags = 1;
  start.tags = tags;
  OrchestrationIdReusePolicy reuse = ORCHESTRATION_ID_REUSE_POLICY__INIT;
  OrchestrationStatus replaceable[] = {ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED,
                                       ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED};
  reuse.n_replaceablestatus = 2;
  reuse.replaceablestatus = replaceable;
  start.orchestrationidreusepolicy = &reuse;
  request_msg("StartInstance", "start", &start.base);
  CreateInstanceRequest plain = CREATE_INSTANCE_REQUEST__INIT;
  plain.name = (char *)"Chain";
  request_msg("StartInstance", "start_no_id", &plain.base);

  GetInstanceRequest get = GET_INSTANCE_REQUEST__INIT;
  get.instanceid = (char *)"seed-1";
  get.getinputsandoutputs = true;
  request_msg("GetInstance", "get", &get.base);
  request_msg("WaitForInstanceStart", "wait_start", &get.base);
  request_msg("WaitForInstanceCompletion", "wait_completion", &get.base);

  RaiseEventRequest raise = RAISE_EVENT_REQUEST__INIT;
  raise.instanceid = (char *)"seed-1";
  raise.name = (char *)"approval";
  raise.input = &in;
  request_msg("RaiseEvent", "raise", &raise.base);

  TerminateRequest term = TERMINATE_REQUEST__INIT;
  term.instanceid = (char *)"seed-1";
  term.output = &in;
  term.recursive = true;
  request_msg("TerminateInstance", "terminate", &term.base);
  SuspendRequest sus = SUSPEND_REQUEST__INIT;
  sus.instanceid = (char *)"seed-1";
  sus.reason = &reason;
  request_msg("SuspendInstance", "suspend", &sus.base);
  ResumeRequest res = RESUME_REQUEST__INIT;
  res.instanceid = (char *)"seed-1";
  res.reason = &reason;
  request_msg("ResumeInstance", "resume", &res.base);

  InstanceQuery q = INSTANCE_QUERY__INIT;
  OrchestrationStatus st[] = {ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING};
  q.n_runtimestatus = 1;
  q.runtimestatus = st;
  q.createdtimefrom = &ts;
  q.maxinstancecount = 10;
  q.instanceidprefix = &prefix;
  q.fetchinputsandoutputs = true;
  QueryInstancesRequest qr = QUERY_INSTANCES_REQUEST__INIT;
  qr.query = &q;
  request_msg("QueryInstances", "query", &qr.base);
  ListInstanceIdsRequest li = LIST_INSTANCE_IDS_REQUEST__INIT;
  li.n_runtimestatus = 1;
  li.runtimestatus = st;
  li.pagesize = 5;
  request_msg("ListInstanceIds", "list_ids", &li.base);

  PurgeInstancesRequest p1 = PURGE_INSTANCES_REQUEST__INIT;
  p1.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_ID;
  p1.instanceid = (char *)"seed-1";
  p1.recursive = true;
  request_msg("PurgeInstances", "purge_id", &p1.base);
  InstanceBatch batch = INSTANCE_BATCH__INIT;
  char *bids[] = {(char *)"seed-1", (char *)"seed-2"};
  batch.n_instanceids = 2;
  batch.instanceids = bids;
  PurgeInstancesRequest p2 = PURGE_INSTANCES_REQUEST__INIT;
  p2.request_case = PURGE_INSTANCES_REQUEST__REQUEST_INSTANCE_BATCH;
  p2.instancebatch = &batch;
  request_msg("PurgeInstances", "purge_batch", &p2.base);
  PurgeInstanceFilter pf = PURGE_INSTANCE_FILTER__INIT;
  OrchestrationStatus done[] = {ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED};
  pf.createdtimefrom = &ts;
  pf.n_runtimestatus = 1;
  pf.runtimestatus = done;
  PurgeInstancesRequest p3 = PURGE_INSTANCES_REQUEST__INIT;
  p3.request_case = PURGE_INSTANCES_REQUEST__REQUEST_PURGE_INSTANCE_FILTER;
  p3.purgeinstancefilter = &pf;
  request_msg("PurgeInstances", "purge_filter", &p3.base);

  CreateTaskHubRequest ch = CREATE_TASK_HUB_REQUEST__INIT;
  request_msg("CreateTaskHub", "create_hub", &ch.base);
  DeleteTaskHubRequest dh = DELETE_TASK_HUB_REQUEST__INIT;
  request_msg("DeleteTaskHub", "delete_hub", &dh.base);
  GetWorkItemsRequest gw = GET_WORK_ITEMS_REQUEST__INIT;
  gw.maxconcurrentorchestrationworkitems = 2;
  gw.maxconcurrentactivityworkitems = 2;
  request_msg("GetWorkItems", "get_work_items", &gw.base);

  ActivityResponse ar = ACTIVITY_RESPONSE__INIT;
  ar.instanceid = (char *)"seed-1";
  ar.taskid = 1;
  ar.result = &in;
  ar.completiontoken = (char *)"seed-token";
  request_msg("CompleteActivityTask", "complete_activity", &ar.base);
  AbandonOrchestrationTaskRequest ao = ABANDON_ORCHESTRATION_TASK_REQUEST__INIT;
  ao.completiontoken = (char *)"seed-token";
  request_msg("AbandonTaskOrchestratorWorkItem", "abandon_orchestrator", &ao.base);
  AbandonActivityTaskRequest aa = ABANDON_ACTIVITY_TASK_REQUEST__INIT;
  aa.completiontoken = (char *)"seed-token";
  request_msg("AbandonTaskActivityWorkItem", "abandon_activity", &aa.base);
  AbandonEntityTaskRequest ae = ABANDON_ENTITY_TASK_REQUEST__INIT;
  ae.completiontoken = (char *)"seed-token";
  request_msg("AbandonTaskEntityWorkItem", "abandon_entity", &ae.base);

  RewindInstanceRequest rw = REWIND_INSTANCE_REQUEST__INIT;
  rw.instanceid = (char *)"seed-1";
  rw.reason = &reason;
  request_msg("RewindInstance", "rewind", &rw.base);
  RestartInstanceRequest rs = RESTART_INSTANCE_REQUEST__INIT;
  rs.instanceid = (char *)"seed-1";
  rs.restartwithnewinstanceid = true;
  request_msg("RestartInstance", "restart", &rs.base);
  StreamInstanceHistoryRequest sh = STREAM_INSTANCE_HISTORY_REQUEST__INIT;
  sh.instanceid = (char *)"seed-1";
  sh.forworkitemprocessing = true;
  request_msg("StreamInstanceHistory", "stream_history", &sh.base);

  SignalEntityRequest se = SIGNAL_ENTITY_REQUEST__INIT;
  se.instanceid = (char *)"@counter@seed";
  se.name = (char *)"add";
  se.input = &in;
  se.requestid = (char *)"00000000-0000-0000-0000-000000000001";
  se.scheduledtime = &ts;
  request_msg("SignalEntity", "signal_entity", &se.base);
  GetEntityRequest ge = GET_ENTITY_REQUEST__INIT;
  ge.instanceid = (char *)"@counter@seed";
  ge.includestate = true;
  request_msg("GetEntity", "get_entity", &ge.base);
  EntityQuery eq = ENTITY_QUERY__INIT;
  Google__Protobuf__StringValue eprefix = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  eprefix.value = (char *)"@counter@";
  eq.instanceidstartswith = &eprefix;
  eq.includestate = true;
  eq.includetransient = true;
  QueryEntitiesRequest qe = QUERY_ENTITIES_REQUEST__INIT;
  qe.query = &eq;
  request_msg("QueryEntities", "query_entities", &qe.base);
  CleanEntityStorageRequest ce = CLEAN_ENTITY_STORAGE_REQUEST__INIT;
  ce.removeemptyentities = true;
  ce.releaseorphanedlocks = true;
  request_msg("CleanEntityStorage", "clean_entities", &ce.base);

  Google__Protobuf__Empty hello = GOOGLE__PROTOBUF__EMPTY__INIT;
  request_msg("Hello", "hello", &hello.base);
  Grpc__Health__V1__HealthCheckRequest hc = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  hc.service = (char *)"TaskHubSidecarService";
  request_msg("/grpc.health.v1.Health/Check", "health", &hc.base);
}

/* ------------------------------------------------------------------ a real store's records */

static bool for_orch(const WorkItem *wi, void *ctx)
{
  return wi->request_case == WORK_ITEM__REQUEST_ORCHESTRATOR_REQUEST &&
         strcmp(wi->orchestratorrequest->instanceid, ctx) == 0;
}

/* Runs |iid| (orchestrator |name|) for a few turns with the SDK's own answers, then leaves it where it is. Its
 * activities, and anything else it starts, are answered by the fixture's worker (fz_next_item) meanwhile. */
static void run_instance(struct fz_engine *f, const char *iid, const char *name, int turns)
{
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  in.value = (char *)"\"go\"";
  CreateInstanceRequest start = CREATE_INSTANCE_REQUEST__INIT;
  start.instanceid = (char *)iid;
  start.name = (char *)name;
  start.input = &in;
  struct sc_cmd c = {.kind = SC_CMD_START};
  c.u.start.req = &start;
  if (fz_run(f, &c) != SC_OK)
    fz_fail("starting %s: %s", iid, c.err.msg);
  for (int t = 0; t < turns; t++) {
    WorkItem *wi = fz_next_item(f, for_orch, (void *)iid, 2000);
    if (!wi)
      return;
    uint8_t *out = NULL;
    size_t len = 0;
    if (dt__replay(fz_orchestrators, fz_n_orchestrators, wi->orchestratorrequest, wi->completiontoken, &out,
                   &len) != DT_OK)
      fz_fail("dt__replay on %s", iid);
    OrchestratorResponse *r = orchestrator_response__unpack(NULL, len, out);
    struct sc_cmd done = {.kind = SC_CMD_COMPLETE_ORCH};
    done.u.complete_orch.resp = r;
    fz_run(f, &done);
    orchestrator_response__free_unpacked(r, NULL);
    free(out);
    work_item__free_unpacked(wi, NULL);
    RaiseEventRequest ev = RAISE_EVENT_REQUEST__INIT;
    ev.instanceid = (char *)iid;
    ev.name = (char *)"approval";
    ev.input = &in;
    struct sc_cmd raise = {.kind = SC_CMD_RAISE};
    raise.u.raise.req = &ev;
    fz_run(f, &raise);
  }
}

static bool for_entity(const WorkItem *wi, void *ctx)
{
  return wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST && strcmp(wi->entityrequest->instanceid, ctx) == 0;
}

/* Signals |op| to |id| and answers the batch with the SDK's entity executor, so the entity keeps its state. */
static void run_entity(struct fz_engine *f, const char *id, const char *op)
{
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  in.value = (char *)"3";
  SignalEntityRequest se = SIGNAL_ENTITY_REQUEST__INIT;
  se.instanceid = (char *)id;
  se.name = (char *)op;
  se.input = &in;
  struct sc_cmd sig = {.kind = SC_CMD_SIGNAL_ENTITY};
  sig.u.signal_entity.req = &se;
  fz_run(f, &sig);
  WorkItem *wi = fz_next_item(f, for_entity, (void *)id, 2000);
  if (!wi)
    fz_fail("no batch for %s", id);
  uint8_t *out = NULL;
  size_t len = 0;
  if (dt__run_entity_batch(fz_entities, fz_n_entities, wi, &out, &len) != DT_OK)
    fz_fail("dt__run_entity_batch on %s", id);
  EntityBatchResult *r = entity_batch_result__unpack(NULL, len, out);
  struct sc_cmd done = {.kind = SC_CMD_COMPLETE_ENTITY};
  done.u.complete_entity.res = r;
  fz_run(f, &done);
  entity_batch_result__free_unpacked(r, NULL);
  free(out);
  work_item__free_unpacked(wi, NULL);
}

static void store_records(void)
{
  struct fz_engine *f = fz_engine();
  run_instance(f, "seed-chain", "Chain", 4);
  run_instance(f, "seed-any", "AnyEventTimer", 1);
  run_instance(f, "seed-parent", "Parent", 1);
  run_instance(f, "seed-status", "Status", 2);
  run_instance(f, "seed-timer", "LongTimer", 1);
  run_instance(f, "seed-done", "Sender", 3);
  run_entity(f, "@counter@seed", "add");
  run_entity(f, "@counter@seed", "add");
  run_entity(f, "@counter@gone", "delete");
  /* An instance nobody has taken yet, with an event waiting, and a queued activity nobody took: the stream is
   * closed first, so they stay in the inbox and the activity queue. */
  struct sc_cmd close = {.kind = SC_CMD_STREAM_CLOSE};
  close.u.stream_close.ctx = f;
  fz_run(f, &close);
  run_instance(f, "seed-pending", "Chain", 0);
  RaiseEventRequest ev = RAISE_EVENT_REQUEST__INIT;
  ev.instanceid = (char *)"seed-pending";
  ev.name = (char *)"approval";
  struct sc_cmd raise = {.kind = SC_CMD_RAISE};
  raise.u.raise.req = &ev;
  fz_run(f, &raise);
  SignalEntityRequest se = SIGNAL_ENTITY_REQUEST__INIT;
  se.instanceid = (char *)"@counter@queued";
  se.name = (char *)"add";
  struct sc_cmd sig = {.kind = SC_CMD_SIGNAL_ENTITY};
  sig.u.signal_entity.req = &se;
  fz_run(f, &sig);

  struct rstore *r = RS(f->st);
  FILE *all = open_seed("fuzz_store_records", "all");
  for (int cf = SC_CF_INST; cf < SC_CF_COUNT; cf++) {
    char name[64];
    snprintf(name, sizeof name, "cf_%s", sc_cf_names[cf]);
    FILE *one = open_seed("fuzz_store_records", name);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->ro, r->cf[cf]);
    size_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
      size_t kl, vl;
      const char *k = rocksdb_iter_key(it, &kl);
      const char *v = rocksdb_iter_value(it, &vl);
      if (kl > 255 || 2 + kl + vl > 0xffff)
        continue;
      uint8_t *rec = malloc(2 + kl + vl);
      rec[0] = (uint8_t)(cf - SC_CF_INST);
      rec[1] = (uint8_t)kl;
      memcpy(rec + 2, k, kl);
      memcpy(rec + 2 + kl, v, vl);
      fz_put_chunk(one, rec, 2 + kl + vl);
      fz_put_chunk(all, rec, 2 + kl + vl);
      free(rec);
      n++;
    }
    rocksdb_iter_destroy(it);
    fclose(one);
    fprintf(stderr, "%s: %zu records\n", sc_cf_names[cf], n);
  }
  fclose(all);
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: th_fuzz_seeds OUTDIR\n");
    return 2;
  }
  outdir = argv[1];
  histories();
  entity_batches();
  requests();
  store_records();
  return 0;
}
