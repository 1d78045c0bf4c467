/*
 * th-bench's entity worker: a "counter" entity (state a JSON integer, operation "add" adds its input) served over
 * the gRPC C core directly, since the C SDK has no entity worker. It plays the worker as
 * tests/sdk/test_entity_client.c does: one GetWorkItems stream per target asking only for entity work
 * (maxConcurrentEntityWorkItems, filters naming "counter"), each EntityBatchRequest answered with
 * CompleteEntityTask.
 */
#ifndef TH_BENCH_ENTITY_WORKER_H
#define TH_BENCH_ENTITY_WORKER_H

#include <stddef.h>

/* What the worker writes to |notify| each time the operations it has completed (CompleteEntityTask answered OK)
 * reach the next goal. */
struct ew_progress {
  long ops;     /* operations completed so far */
  long batches; /* batches completed so far */
  long errors;  /* failed completions, streams that ended on their own, unexpected work items or operations */
};

/* Serves entity work from every target until |hold| reaches end of file, writing one struct ew_progress to
 * |notify| when the operations completed reach each of |goals| (ascending) in turn. Returns 0 when nothing went
 * wrong. Call it in a process (or before any other gRPC use) of its own: it runs grpc_init and grpc_shutdown. */
int entity_worker_run(char **targets, size_t n_targets, int hold, int notify, const long *goals, size_t n_goals);

#endif
