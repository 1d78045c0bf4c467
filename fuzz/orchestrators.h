#ifndef TH_FZ_ORCHESTRATORS_H
#define TH_FZ_ORCHESTRATORS_H

/* Orchestrators for the C SDK's replay executor (orchestrators.c), named as in the .hist files of tests/data/replay
 * so that those histories (the seeds) reach their code, and using every kind of task the SDK offers. Entities for
 * its entity executor. */

#include "internal.h"

extern const struct dt__orchestrator fz_orchestrators[];
extern const size_t fz_n_orchestrators;
extern const struct dt__entity fz_entities[];
extern const size_t fz_n_entities;

/* The orchestration's name: that of the first ExecutionStarted event in the request's history ("" without one). */
const char *fz_orchestration_name(const OrchestratorRequest *req);

#endif
