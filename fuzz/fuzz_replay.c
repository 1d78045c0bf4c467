/*
 * The C SDK's replay executor fed arbitrary histories: each input is one byte, then an OrchestratorRequest as it
 * arrives in a work item (the worker unpacks it with protobuf-c and hands it to dt__replay), replayed through the
 * orchestrators of orchestrators.c. When the history names none of them, the first input byte picks the one that
 * runs under the name the history gives, so every input exercises one.
 *
 * Invariants, besides no crash, leak or undefined behaviour: dt__replay answers (DT_OK; DT_ERR_INTERNAL only for a
 * rewind without randomness; DT_ERR_INVALID_ARG for a request with a field number 0, which protobuf-c accepts when
 * the key's varint is padded but cannot write back), its OrchestratorResponse decodes, echoes the token, and leaves the request as it was
 * given (the worker frees the request after it).
 */
#include "fz.h"
#include "orchestrators.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned pick = data[0];
  OrchestratorRequest *req = orchestrator_request__unpack(NULL, size - 1, data + 1);
  if (!req)
    return 0;
  const char *name = fz_orchestration_name(req);
  bool known = false;
  for (size_t i = 0; i < fz_n_orchestrators; i++)
    known |= strcmp(fz_orchestrators[i].name, name) == 0;
  const struct dt__orchestrator *orchs = fz_orchestrators;
  size_t n = fz_n_orchestrators;
  struct dt__orchestrator one;
  if (!known) {
    /* The name the request carries, run by an orchestrator picked by the first byte. */
    one = fz_orchestrators[pick % fz_n_orchestrators];
    one.name = (char *)name;
    orchs = &one;
    n = 1;
  }
  size_t before = orchestrator_request__get_packed_size(req);
  uint8_t *packed_before = malloc(before ? before : 1);
  orchestrator_request__pack(req, packed_before);

  uint8_t *out = NULL;
  size_t out_len = 0;
  int rc = dt__replay(orchs, n, req, "fuzz-token", &out, &out_len);
  if (rc == DT_OK) {
    OrchestratorResponse *r = orchestrator_response__unpack(NULL, out_len, out);
    if (!r)
      fz_fail("dt__replay packed an OrchestratorResponse that does not decode (%zu bytes)", out_len);
    if (strcmp(r->completiontoken, "fuzz-token") != 0)
      fz_fail("dt__replay answered with token \"%s\"", r->completiontoken);
    orchestrator_response__free_unpacked(r, NULL);
  } else if (rc != DT_ERR_INTERNAL && rc != DT_ERR_NOMEM && rc != DT_ERR_INVALID_ARG) {
    fz_fail("dt__replay returned %d (%s)", rc, dt_strerror(rc));
  }
  free(out);

  size_t after = orchestrator_request__get_packed_size(req);
  uint8_t *packed_after = malloc(after ? after : 1);
  orchestrator_request__pack(req, packed_after);
  if (after != before || memcmp(packed_before, packed_after, before) != 0)
    fz_fail("dt__replay modified the OrchestratorRequest it was given");
  free(packed_before);
  free(packed_after);
  orchestrator_request__free_unpacked(req, NULL);
  return 0;
}
