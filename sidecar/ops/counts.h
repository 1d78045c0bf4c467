#ifndef SC_OPS_COUNTS_H
#define SC_OPS_COUNTS_H

/*
 * Counts of the whole task hub, taken on a thread of their own for /metrics and the dashboard. Counting scans the
 * store (0.4-1.4 s for the status index at a million instances, seconds for names) and the ops thread, which also
 * answers /healthz and /readyz, must never wait for that: a reader gets the last finished count at once, and asks
 * for a new one when that count is older than ten times what it cost.
 *
 * Two kinds, each with its own age and cost:
 *   totals  instances by status and entities (with state, transient, operations queued): /metrics and the
 *           dashboard's counts; counted once when the store is attached, so the first scrape usually has them
 *   names   instances by orchestration name (each by status): no index holds names, so every record is read;
 *           only the dashboard asks for it
 * One thread does both, totals first; a request that comes while its kind is being counted waits for the next.
 */

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { SC_COUNT_TOTALS = 1, SC_COUNT_NAMES = 2 };

struct sc_counts;

struct sc_counts_totals {
  bool have;           /* a count by status has finished (false: none yet, or the store cannot count) */
  uint64_t by_status[8];
  bool have_entities;  /* the store counts entities and has done so */
  uint64_t entities_with_state, entities_transient, entity_ops_queued;
  int64_t age_us;      /* since the last successful count of totals finished */
  int64_t cost_us;     /* how long that count took */
};

struct sc_name_count {
  char *name;
  uint64_t total;
  uint64_t by_status[8];
};

/* CONSTRUCTOR. Counts nothing until sc_counts_attach. */
struct sc_counts *sc_counts_new(void);
/* Once the store is open (after recovery): starts the thread and the first count of totals. Call once. */
void sc_counts_attach(struct sc_counts *c, struct sc_store *st);
/* The last count of totals into *out, never waiting for the store; asks for a fresh count of the kinds in |want|
 * (SC_COUNT_TOTALS, SC_COUNT_NAMES) that are stale. Thread-safe. */
void sc_counts_get(struct sc_counts *c, unsigned want, struct sc_counts_totals *out);
/* A copy of the last count by name: the 100 most frequent names, most first (*out: caller frees with
 * sc_name_counts_free), *distinct names in all, and its age. False before the first such count has finished. */
bool sc_counts_names(struct sc_counts *c, struct sc_name_count **out, size_t *n, size_t *distinct, int64_t *age_us);
void sc_name_counts_free(struct sc_name_count *v, size_t n);
/* Ends the thread: a count by name stops at its next page, a count of totals is waited for (one store scan).
 * Before the store closes. NULL is a no-op. */
void sc_counts_stop(struct sc_counts *c);
/* DESTRUCTOR, after sc_counts_stop. NULL is a no-op. */
void sc_counts_free(struct sc_counts *c);

#endif
