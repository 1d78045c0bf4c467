#include "big_history.h"

#include <stdlib.h>
#include <string.h>

static const char *blob(dt_activity_ctx *a, const char *input, void *ud)
{
  (void)ud;
  long i = strtol(input ? input : "0", NULL, 10);
  char *s = dt_activity_alloc(a, BIG_BLOB_BYTES + 3);
  if (!s) {
    dt_activity_fail(a, "OutOfMemory", "no memory for the blob");
    return NULL;
  }
  s[0] = '"';
  memset(s + 1, 'a' + (int)(i % 26), BIG_BLOB_BYTES);
  s[BIG_BLOB_BYTES + 1] = '"';
  s[BIG_BLOB_BYTES + 2] = '\0';
  return s;
}

static bool blob_ok(const char *r, long i)
{
  if (!r || strlen(r) != BIG_BLOB_BYTES + 2 || r[0] != '"' || r[BIG_BLOB_BYTES + 1] != '"')
    return false;
  for (size_t k = 1; k <= BIG_BLOB_BYTES; k++)
    if (r[k] != 'a' + (int)(i % 26))
      return false;
  return true;
}

static const char *big_history(dt_orch_ctx *ctx, const char *input, void *ud)
{
  (void)ud;
  long n = strtol(input ? input : "0", NULL, 10);
  size_t total = 0;
  for (long i = 0; i < n; i++) {
    const char *r = dt_await(ctx, dt_call_activity(ctx, "Blob", dt_ctx_printf(ctx, "%ld", i)));
    if (!blob_ok(r, i))
      dt_orch_fail(ctx, "BadBlob", dt_ctx_printf(ctx, "blob %ld came back wrong (%zu bytes)", i, r ? strlen(r) : 0));
    total += strlen(r) - 2;
  }
  return dt_ctx_printf(ctx, "{\"blobs\":%ld,\"bytes\":%zu}", n, total);
}

void big_register(dt_worker *w)
{
  if (dt_worker_add_orchestrator(w, "BigHistory", big_history, NULL) != DT_OK ||
      dt_worker_add_activity(w, "Blob", blob, NULL) != DT_OK)
    abort();
}
