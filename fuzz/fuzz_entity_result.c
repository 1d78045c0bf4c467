/*
 * CompleteEntityTask applied to stored state. Each input is up to four EntityBatchResult messages (chunks,
 * fz.h). A fresh entity is sent two operations on the real engine and RocksDB store; each chunk passes the
 * server's decoding (sc_wire_check, then protobuf-c) and is applied as the answer to the entity's next batch
 * (its completion token filled in, as a worker echoes it), so the engine's batch completion (entities.c: results,
 * state, signals and orchestration starts from the entity, operation infos) sees whatever the fuzzer invents.
 * Between turns another operation is signalled.
 *
 * Invariants, besides no crash, leak or undefined behaviour: the engine answers every completion and leaves the
 * message it was given as it was (engine.h: the poster owns it); the entity's
 * record still decodes; an entity sent an operation gets a batch for it (nothing stuck).
 */
#include "fz.h"

#include "limits/limits.h"

#include <stdio.h>
#include <string.h>

#define MAX_TURNS 4
#define WAIT_MS 10000

static bool for_entity(const WorkItem *wi, void *ctx)
{
  return wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST && strcmp(wi->entityrequest->instanceid, ctx) == 0;
}

static void signal_op(struct fz_engine *f, const char *id, const char *op)
{
  Google__Protobuf__StringValue in = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
  in.value = (char *)"1";
  SignalEntityRequest s = SIGNAL_ENTITY_REQUEST__INIT;
  s.instanceid = (char *)id;
  s.name = (char *)op;
  s.input = &in;
  struct sc_cmd c = {.kind = SC_CMD_SIGNAL_ENTITY};
  c.u.signal_entity.req = &s;
  if (fz_run(f, &c) != SC_OK)
    fz_fail("signalling %s: %s", id, c.err.msg);
}

static void check_entity(struct fz_engine *f, const char *id)
{
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_blob b;
  int rc = f->st->ops->get_entity(f->st, id, &a, &b);
  if (rc == SC_OK) {
    StoredEntity *e = NULL;
    if ((rc = sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &b, &a, (void **)&e)) != SC_OK)
      fz_fail("the record of entity %s does not decode: %d", id, rc);
  } else if (rc != SC_ENOTFOUND) {
    fz_fail("the record of entity %s does not load: %d", id, rc);
  }
  sc_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static unsigned long long n;
  struct fz_engine *f = fz_engine();
  char id[64];
  snprintf(id, sizeof id, "@counter@fz-%llu", ++n);
  signal_op(f, id, "add");
  signal_op(f, id, "get");
  WorkItem *wi = fz_next_item(f, for_entity, id, WAIT_MS);
  if (!wi)
    fz_fail("no batch for the new entity %s", id);
  const uint8_t *chunk;
  size_t len;
  char why[300];
  for (int turn = 0; wi && turn < MAX_TURNS && fz_next_chunk(&data, &size, &chunk, &len); turn++) {
    if (sc_wire_check(&entity_batch_result__descriptor, chunk, len, why, sizeof why) != 0)
      break;
    EntityBatchResult *r = entity_batch_result__unpack(NULL, len, chunk);
    if (!r)
      break;
    char *fuzzed_token = r->completiontoken;
    r->completiontoken = wi->completiontoken;
    struct sc_cmd done = {.kind = SC_CMD_COMPLETE_ENTITY};
    done.u.complete_entity.res = r;
    struct fz_snapshot before;
    fz_snapshot(&r->base, &before);
    fz_run(f, &done);
    fz_unchanged(&r->base, &before, "EntityBatchResult");
    r->completiontoken = fuzzed_token;
    entity_batch_result__free_unpacked(r, NULL);
    work_item__free_unpacked(wi, NULL);
    wi = NULL;
    check_entity(f, id);
    signal_op(f, id, "add");
    wi = fz_next_item(f, for_entity, id, WAIT_MS);
    if (!wi)
      fz_fail("entity %s was sent an operation and got no batch in %d ms", id, WAIT_MS);
  }
  if (wi)
    fz_finish(f, wi);
  check_entity(f, id);
  return 0;
}
