#ifndef SC_METRICS_H
#define SC_METRICS_H

/*
 * Process-wide counters and histograms, updated lock-free from any thread and rendered in the Prometheus
 * text format by the ops server. Gauges that describe engine state are not here: the engine keeps them in
 * its stats and the ops server reads them at scrape time.
 */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SC_METRICS_MAX_METHODS 48
#define SC_GRPC_CODES 17
#define SC_LATENCY_BUCKETS 16
#define SC_BATCH_BUCKETS 12

extern const double sc_latency_bounds[SC_LATENCY_BUCKETS]; /* seconds */
extern const double sc_batch_bounds[SC_BATCH_BUCKETS];     /* commands per commit */

struct sc_hist {
  atomic_uint_fast64_t le[SC_LATENCY_BUCKETS + 1]; /* per bucket (not cumulative); last = +Inf */
  atomic_uint_fast64_t count;
  atomic_uint_fast64_t sum_micros; /* sum of observations x 1e6 */
};

enum sc_wi_kind { SC_WI_ORCH = 0, SC_WI_ACT = 1, SC_WI_ENTITY = 2, SC_WI_KINDS };

struct sc_metrics {
  const char *method_names[SC_METRICS_MAX_METHODS]; /* label values; index 0 is "unknown" */
  /* Atomic: the ops port renders /metrics from its own thread while the server still registers methods; a name
   * is stored before the count that makes it visible (release), and read after it (acquire). */
  atomic_size_t n_methods;
  atomic_uint_fast64_t rpc[SC_METRICS_MAX_METHODS][SC_GRPC_CODES];
  struct sc_hist rpc_latency[SC_METRICS_MAX_METHODS];
  struct sc_hist commit_latency;
  struct sc_hist commit_batch;
  atomic_uint_fast64_t started;          /* orchestrations created (start, sub-orchestrations, restarts) */
  atomic_uint_fast64_t finished[8];      /* by OrchestrationStatus of the terminal commit */
  atomic_uint_fast64_t dispatched[SC_WI_KINDS], completed[SC_WI_KINDS], abandoned[SC_WI_KINDS];
  atomic_uint_fast64_t cache_hits, cache_misses, cache_bytes; /* the store's hot-instance cache */
  atomic_uint_fast64_t commit_failures; /* commits the store could not write (nothing of them was) */
  atomic_uint_fast64_t pg_reads, pg_commits, pg_errors, pg_reconnects; /* PostgreSQL round trips and failures */
  atomic_uint_fast64_t pg_partitions_owned, pg_lease_renewals, pg_lease_losses, pg_fenced_commits;
  atomic_uint_fast64_t pg_commit_retries; /* commits sent again after a deadlock or serialization failure */
  /* Commands between replicas: forwarded, applied here, and found by the sweep rather than a notification. */
  atomic_uint_fast64_t forwarded, forwards_applied, pg_sweep_deliveries;
  atomic_int_fast64_t stream_bytes; /* held in server streams' outboxes, not yet sent */
};

extern struct sc_metrics sc_metrics;

/* Registers a method label (before serving); returns its index for sc_metrics_rpc. */
size_t sc_metrics_add_method(const char *label);
void sc_metrics_rpc(size_t method, int grpc_code, double seconds);
void sc_hist_observe(struct sc_hist *h, const double *bounds, size_t nbounds, double v);

#endif
