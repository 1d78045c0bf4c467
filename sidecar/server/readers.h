#ifndef SC_READERS_H
#define SC_READERS_H

/*
 * A small pool of reader threads for the work that reads committed state on behalf of one call: GetInstance,
 * QueryInstances, ListInstanceIds, the replies of WaitForInstance*, and each chunk of StreamInstanceHistory.
 * Those reads take RocksDB seeks and payload copies that must not hold up the completion-queue thread (every
 * other RPC) or the engine thread (every write), so the transport and the engine only queue them here.
 * Jobs run in the order they were posted.
 */

#include <stdbool.h>
#include <stddef.h>

struct sc_readers;

struct sc_job {
  void (*fn)(struct sc_job *job);
  struct sc_job *next;
};

/* Starts |n| threads (at least 1). Never fails: a thread that cannot be started is fatal. */
struct sc_readers *sc_readers_start(int n);
/* Queues |job|; thread-safe. The job must stay valid until its fn has run. After sc_readers_stop has begun,
 * the job runs at once on the calling thread, so nothing posted is ever lost. */
void sc_readers_post(struct sc_readers *r, struct sc_job *job);
/* The same, unless |max| (nonzero) jobs already wait for a thread: then nothing is queued, *waiting (when not
 * NULL) gets their number and false is returned. For reads a client asks for, so a flood of them is refused
 * rather than queued without bound; the reads that finish work already begun use sc_readers_post. */
bool sc_readers_try_post(struct sc_readers *r, struct sc_job *job, size_t max, size_t *waiting);
/* Runs every job already queued and joins the threads; later posts run on the posting thread. */
void sc_readers_stop(struct sc_readers *r);
/* Frees a stopped pool once nothing can post to it any more. NULL is a no-op. */
void sc_readers_free(struct sc_readers *r);

#endif
