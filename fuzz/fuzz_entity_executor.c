/*
 * The C SDK's entity executor fed arbitrary entity work items: each input is a WorkItem, as the worker receives it
 * (EntityBatchRequest, or EntityRequest with history events as --entity-work-items v2 sends), run through the
 * counter entity of orchestrators.c (state, signals, orchestration starts, failures) by dt__run_entity_batch.
 *
 * Invariants, besides no crash, leak or undefined behaviour: dt__run_entity_batch answers DT_OK, or
 * DT_ERR_INVALID_ARG for what is not an entity work item; its EntityBatchResult decodes, echoes the token and has
 * one result per operation.
 */
#include "fz.h"
#include "orchestrators.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  WorkItem *wi = work_item__unpack(NULL, size, data);
  if (!wi)
    return 0;
  size_t ops = 0;
  if (wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST) {
    ops = wi->entityrequest->n_operations;
  } else if (wi->request_case == WORK_ITEM__REQUEST_ENTITY_REQUEST_V2) {
    for (size_t i = 0; i < wi->entityrequestv2->n_operationrequests; i++) {
      int t = (int)wi->entityrequestv2->operationrequests[i]->event_type_case;
      ops += t == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_SIGNALED ||
             t == HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_CALLED;
    }
  }
  uint8_t *out = NULL;
  size_t out_len = 0;
  int rc = dt__run_entity_batch(fz_entities, fz_n_entities, wi, &out, &out_len);
  if (rc == DT_OK) {
    EntityBatchResult *r = entity_batch_result__unpack(NULL, out_len, out);
    if (!r)
      fz_fail("dt__run_entity_batch packed an EntityBatchResult that does not decode (%zu bytes)", out_len);
    if (strcmp(r->completiontoken, wi->completiontoken) != 0)
      fz_fail("dt__run_entity_batch answered with token \"%s\" for \"%s\"", r->completiontoken, wi->completiontoken);
    if (r->n_results != ops)
      fz_fail("dt__run_entity_batch answered %zu operations with %zu results", ops, r->n_results);
    entity_batch_result__free_unpacked(r, NULL);
  } else if (rc != DT_ERR_INVALID_ARG && rc != DT_ERR_NOMEM) {
    fz_fail("dt__run_entity_batch returned %d (%s)", rc, dt_strerror(rc));
  }
  free(out);
  work_item__free_unpacked(wi, NULL);
  return 0;
}
