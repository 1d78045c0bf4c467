/*
 * BigHistory: an orchestration whose history grows past 1 MiB, the size above which taskhubd leaves pastEvents out
 * of an OrchestratorRequest (requiresHistoryStreaming) for a worker that declared
 * WORKER_CAPABILITY_HISTORY_STREAMING. It awaits the activity "Blob" BIG_BLOBS times, one after the other; each
 * returns a JSON string of BIG_BLOB_BYTES copies of one letter ('a' for the first, 'b' for the second, ...), so
 * that the turns after the fourth result carry more than 1 MiB of history. The orchestrator checks every result it
 * replays (a history that came back wrong fails it with "BadBlob") and returns BIG_OUTPUT.
 * Used by the scenario tests (test_transport.c) and the fault tests (tests/sdk/fault).
 */
#ifndef BIG_HISTORY_H
#define BIG_HISTORY_H

#include "durabletask.h"

#define BIG_BLOBS 5
#define BIG_BLOB_BYTES 300000 /* under taskhubd's default --max-payload (512 KiB) */
#define BIG_INPUT "5"
#define BIG_OUTPUT "{\"blobs\":5,\"bytes\":1500000}"

/* Registers the orchestrator "BigHistory" and the activity "Blob". */
void big_register(dt_worker *w);

#endif
